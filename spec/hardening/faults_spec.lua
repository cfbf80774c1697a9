-- Faults from the network, against a server subprocess (spec/hardening/
-- servers/echo.lua): a reset in the middle of a frame, a peer that is gone
-- without a word (half-open TCP: it reads but never answers a ping), and
-- peers that vanish while the server writes to them (SIGPIPE must never
-- kill the process).
local h = require "helper"
local proc = require "support.proc"
local hard = require "support.hardening"
local core = h.core

local it_py = proc.have_python() and it or pending

describe("network faults", function()
  after_each(function()
    proc.cleanup()
    h.pump(function() return core.live() == 0 end, "the spec's clients to finish", 10)
  end)

  it_py("reports 1006 to the close handler for each of 200 peers that reset in the middle of a frame, and leaks nothing", function()
    local srv = hard.server {}
    assert(hard.fresh_echo(srv.probe))
    h.idle(0.2)
    local base_fds, base_rss = hard.fds(srv.pid), hard.rss(srv.pid)
    local r = hard.report(hard.attack("resetmid", srv.port, "--count", 200, "--pause", 0.005), 60)
    h.pump(function() return #hard.closes(srv) >= r.count end, "the close handlers", 60)
    local fds = hard.settle(srv, base_fds, 30)
    local st = hard.ctl(srv)
    print(("# reset mid-frame: %d peers; close handler codes %s, reasons %s; fds %d -> %d; RSS %d -> %d KiB; live %d")
      :format(r.count, hard.counts(hard.tally(hard.closes(srv))), hard.counts(hard.tally(hard.lines(srv, "^close %d+ (.*)$"))),
      base_fds, fds, base_rss, hard.rss(srv.pid), st.live))
    local codes = hard.closes(srv)
    assert.equal(r.count, #codes)
    for _, c in ipairs(codes) do assert.equal(1006, c) end
    assert.equal(base_fds, fds)
    assert.equal(1, st.live)   -- the /ctl connection asking
    assert.equal(0, st.pending)
    assert(hard.fresh_echo(srv.probe))
  end)

  -- Times are the attacker's, from before its connect(), so never shorter
  -- than the server's: a lower bound checks that no timer fired early; the
  -- upper bounds allow LATE seconds, for a loaded machine.
  it_py("finds a peer that reads but never answers pings with the keep-alive ping: 1006 \"timeout\" after interval + timeout", function()
    local INTERVAL, TIMEOUT, LATE = 0.3, 0.3, 10
    local srv = hard.server { keep_alive_interval = INTERVAL, keep_alive_timeout = TIMEOUT }
    local r = hard.report(hard.attack("silent", srv.port, "--wait", INTERVAL + TIMEOUT + LATE + 5), LATE + 30)
    h.pump(function() return #hard.closes(srv) > 0 end, "the close handler", 30)
    print(("# half-open peer: pings at %s s; close frame %s %q at %s s; then %s at %.3f s; server: %s")
      :format(table.concat(r.pings, ", "), tostring(r.close_code), tostring(r.close_reason),
      tostring(r.close_after), r.how, r.end_after, table.concat(hard.lines(srv, "^(close .*)$"), "; ")))
    assert.same({ "1006 timeout" }, hard.lines(srv, "^close (.*)$"))
    assert.equal(1, #r.pings)   -- one ping, unanswered: no second ping while it waits
    assert.is_true(r.pings[1] >= INTERVAL - 0.15 and r.pings[1] <= INTERVAL + LATE, "the ping came at " .. r.pings[1] .. " s")
    -- the peer is told, in case it still listens, and the connection ends
    assert.equal(1001, r.close_code)
    assert.equal("timeout", r.close_reason)
    assert.equal("eof", r.how)
    assert.is_true(r.end_after >= INTERVAL + TIMEOUT - 0.05 and r.end_after <= INTERVAL + TIMEOUT + LATE,
      ("ended after %.3f s"):format(r.end_after))
  end)

  describe("peers that vanish while the server writes (SIGPIPE)", function()
    local SHIM = "build/hardening/keep_sigpipe.so"

    -- 60 peers of each flood route, each vanishing one of three ways (FIN
    -- then a reset with unread data, a reset, shutdown of both directions).
    local function attack_both(srv)
      local out = {}
      for _, path in ipairs { "/flood", "/flood-paused" } do
        out[path] = hard.report(hard.attack("pipe", srv.port, "--count", 60, "--path", path), 60)
        if not hard.alive(srv) then break end
      end
      return out
    end

    it_py("never kill the server, paused or not", function()
      local srv = hard.server {}
      local out = attack_both(srv)
      h.idle(0.3)
      print(("# SIGPIPE: /flood %s, /flood-paused %s; server %s"):format(hard.counts(out["/flood"].ways),
        hard.counts(out["/flood-paused"] and out["/flood-paused"].ways), hard.alive(srv) and "alive" or
        ("exited with status " .. tostring(srv.proc:status()))))
      assert.is_true(hard.alive(srv), "the server died: status " .. tostring(srv.proc:status()) .. " " .. srv.proc:stderr())
      for path, r in pairs(out) do
        assert.is_true(type(r.failed) ~= "string", path .. ": " .. tostring(r.failed))   -- null: none failed
        assert.equal(60, r.count)
      end
      assert(hard.fresh_echo(srv.probe))
    end)

    -- The control: with SIGPIPE left at its default action (an LD_PRELOAD
    -- shim refuses to change it, and /proc shows it is not ignored), the same
    -- peers still leave the server running, because its writes pass
    -- MSG_NOSIGNAL. (Before that flag, this control died of SIGPIPE, status
    -- 141: the peers above do make the server write into broken sockets.)
    it_py("leave alive even a server whose SIGPIPE is at its default action (writes use MSG_NOSIGNAL)", function()
      proc.check { "mkdir", "-p", "build/hardening" }
      proc.check({ "cc", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o", SHIM,
        "spec/hardening/tools/keep_sigpipe.c", "-ldl" }, { unset = { "LD_PRELOAD" } })
      local preload = os.getenv("LD_PRELOAD")   -- the ASan runtime under SANITIZE=1 comes first
      preload = (preload and preload ~= "" and preload .. ":" or "") .. SHIM
      local srv = hard.server({}, { env = { LD_PRELOAD = preload } })
      local f = assert(io.open("/proc/" .. srv.proc.pid .. "/status"))
      local sigign = tonumber(f:read("a"):match("SigIgn:%s*(%x+)"), 16)
      f:close()
      assert.equal(0, sigign & (1 << 12), "SIGPIPE is ignored: the control does not test MSG_NOSIGNAL")
      local out = attack_both(srv)
      h.idle(0.3)
      print(("# SIGPIPE control: with SIGPIPE at its default the server is %s (/flood-paused: %s)")
        :format(hard.alive(srv) and "alive" or ("dead, status " .. tostring(srv.proc:status())),
          tostring(out["/flood-paused"] and out["/flood-paused"].failed)))
      assert.is_true(hard.alive(srv), "the server died: status " .. tostring(srv.proc:status()))
      assert(hard.fresh_echo(srv.probe))
    end)
  end)
end)
