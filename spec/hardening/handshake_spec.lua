-- Hostile handshakes against a server subprocess (spec/hardening/servers/
-- echo.lua): slowloris (handshake_timeout) and a request head that never
-- ends (the 8 KiB head limit, LUAWS_MAX_HEAD_BYTES). The attackers are
-- spec/hardening/tools/attack.py; a fresh luaws client in this process
-- measures what everyone else sees meanwhile.
local h = require "helper"
local proc = require "support.proc"
local hard = require "support.hardening"

local it_py = proc.have_python() and it or pending

describe("hostile handshakes", function()
  after_each(function()
    proc.cleanup()
    h.pump(function() return h.core.live() == 0 end, "the spec's clients to finish", 10)
  end)

  -- What is checked is what happens: every socket dropped, none before
  -- handshake_timeout and none later than LATE seconds after it, all held at
  -- once, fresh clients served meanwhile. How fast the fresh clients were
  -- served is reported, not checked (the machine is shared).
  it_py("drops each of 500 slowloris sockets (a byte a second) after handshake_timeout, while fresh clients get their echo", function()
    local TIMEOUT, SOCKETS, LATE = 1, 500, 10
    local srv = hard.server { handshake_timeout = TIMEOUT }
    local base_fds = hard.fds(srv.pid)
    -- the attacker ends once every socket is dropped; --duration only bounds it
    local atk = hard.attack("slowloris", srv.port, "--sockets", SOCKETS, "--duration", TIMEOUT + LATE + 5)
    assert(atk:wait_line("(connected %d+)", 60), "the attacker did not connect: " .. atk:stderr())
    -- a fresh client every 50 ms until the attacker ends; before each, the
    -- slowloris sockets the server holds
    local held, held_echoes, samples = 0, 0, {}
    while atk:status() == nil do
      local n = hard.fds(srv.pid) - base_fds
      held = math.max(held, n)
      local c, e = hard.fresh_echo(srv.probe)
      assert(c, e)
      samples[#samples + 1] = { connect = c, echo = e, total = c + e }
      if n >= SOCKETS * 0.9 then held_echoes = held_echoes + 1 end
      h.idle(0.05)
    end
    local r = hard.report(atk, 30)
    print(("# slowloris: %d sockets, %d held by the server at once, dropped %d (%s), lifetime %.3f-%.3f s "
      .. "(median %.3f); %d fresh clients served while it held 90%%+ of them; fresh client connect %s, echo %s, "
      .. "total %s (reported, not checked)"):format(r.connected, held, r.dropped, hard.counts(r.how),
      r.lifetime.min or -1, r.lifetime.max or -1, r.lifetime.median or -1, held_echoes,
      hard.describe(samples, "connect"), hard.describe(samples, "echo"), hard.describe(samples, "total")))
    assert.equal(SOCKETS, r.connected)
    assert.is_true(held >= SOCKETS * 0.9, ("the server held only %d of the %d sockets at once"):format(held, SOCKETS))
    assert.equal(SOCKETS, r.dropped, ("%d sockets still open after %.1f s"):format(r.still_open, r.seconds))
    assert.equal(0, r.answered)   -- a timeout is a drop, not an HTTP answer
    -- lifetimes are measured from before connect(), so never shorter than the server's
    assert.is_true(r.lifetime.min >= TIMEOUT - 0.01, ("one was dropped after %.3f s"):format(r.lifetime.min))
    assert.is_true(r.lifetime.max <= TIMEOUT + LATE, ("one was dropped after %.3f s"):format(r.lifetime.max))
    -- others are served while the server holds the attack's sockets
    assert.is_true(held_echoes >= 1, "no fresh client was served while the server held the sockets")
    assert.equal(base_fds, hard.settle(srv, base_fds, 30))
    assert.is_true(hard.alive(srv))
  end)

  -- handshake_timeout far above every bound here: a connection that ends
  -- before it was ended by the 431, not by the timer
  local HANDSHAKE_TIMEOUT = 60

  it_py("answers a head of 65 short header lines (under 8 KiB) with 431 and closes", function()
    local srv = hard.server { handshake_timeout = HANDSHAKE_TIMEOUT }
    local head = { "GET /ws HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13" }
    for i = #head + 1, 66 do head[i] = "X-" .. i .. ": v" end   -- 65 header lines after the request line
    local req = table.concat(head, "\r\n") .. "\r\n\r\n"
    assert.is_true(#req < 2048)
    local r = proc.raw(srv.port, req, { timeout = 20 })
    print(("# 65 header lines: %s, then %s after %.3f s"):format(tostring((proc.parse_response(r.response))),
      r.how, r.elapsed))
    assert.equal(431, (proc.parse_response(r.response)))
    assert.equal("eof", r.how)   -- within 20 s: after the answer, not at handshake_timeout
    assert.is_true(r.elapsed < HANDSHAKE_TIMEOUT, ("closed after %.3f s"):format(r.elapsed))
  end)

  it_py("answers a request head that never ends (100 KiB sent slowly, no CRLF CRLF) with 431 and closes, its memory bounded", function()
    local SOCKETS, KIB = 100, 100
    local srv = hard.server { handshake_timeout = HANDSHAKE_TIMEOUT }
    local base_fds, base_rss = hard.fds(srv.pid), hard.rss(srv.pid)
    -- 100 sockets at once, each 1 KiB every 10 ms: a head of 100 KiB takes 1 s
    local atk = hard.attack("endless-head", srv.port, "--sockets", SOCKETS, "--kib", KIB,
      "--chunk", 1024, "--pause", 0.01)
    local peak = base_rss
    while atk:status() == nil do
      peak = math.max(peak, hard.rss(srv.pid))
      h.idle(0.02)
    end
    local r = hard.report(atk, 60)
    local hwm = math.max(peak, hard.hwm(srv.pid))
    print(("# endless head: %d sockets x %d KiB: status %s, answered after %s bytes sent (max), %.3f s; "
      .. "ended %s, the last %.3f s after its connect; RSS %d KiB -> peak %d KiB (VmHWM %d KiB)"):format(SOCKETS, KIB,
      hard.counts(r.status), tostring(r.sent_at_answer.max), r.answer_after.max or -1,
      hard.counts(r.how), r.end_after.max or -1, base_rss, peak, hwm))
    assert.same({ ["431"] = SOCKETS }, r.status)
    assert.same({ eof = SOCKETS }, r.how)   -- closed after the answer, no reset eating it
    -- answered once the head passed 8 KiB (plus at most one read), not at the end
    assert.is_true(r.sent_at_answer.max <= 8192 + 4096 + 1024, "answered only after " .. r.sent_at_answer.max .. " bytes")
    -- the connection closed after the answer, not at the handshake timeout
    -- (attack.py waits at most 10 s after its last write for the end)
    assert.is_true(r.end_after.max < HANDSHAKE_TIMEOUT / 2, ("a connection ended %.2f s after connect"):format(r.end_after.max))
    -- memory: at most the head limit plus a read per socket, not 100 KiB each
    hard.figure(hwm - base_rss <= 4 * hard.MiB,
      ("RSS grew by %d KiB under %d endless heads"):format(hwm - base_rss, SOCKETS))
    assert.equal(base_fds, hard.settle(srv, base_fds, 30))
    local c, e = hard.fresh_echo(srv.probe)
    assert(c, e)
  end)
end)
