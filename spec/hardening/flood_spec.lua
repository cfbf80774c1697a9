-- Peers that send and never read, against a server subprocess
-- (spec/hardening/servers/echo.lua): echo traffic whose echoes pile up
-- (max_backpressure) and a ping flood whose pongs pile up (the same cap).
-- The server's RSS is sampled every 20 ms while the attacker holds its
-- connection without reading; a bystander client and fresh clients must
-- keep their echo meanwhile (how fast they got it is reported, not checked:
-- the machine is shared; the RSS bounds are the caps at work, checked).
local h = require "helper"
local proc = require "support.proc"
local hard = require "support.hardening"
local luaws, core = h.luaws, h.core

local it_py = proc.have_python() and it or pending
local MiB = 1024 * 1024

-- How many of the samples (hard.watch) ended at or after t (nil: none).
local function count_since(samples, t)
  local n = 0
  for _, s in ipairs(samples) do
    if t and s.at >= t then n = n + 1 end
  end
  return n
end

describe("peers that never read", function()
  local srv, base_rss, base_fds, closes0, bystander
  local function start(opts)
    srv = hard.server(opts)
    assert(hard.fresh_echo(srv.probe))   -- one-time set-up goes into the baseline
    bystander = assert(luaws.connect(srv.probe))
    assert(hard.echo_on(bystander))
    h.idle(0.2)
    base_rss, base_fds, closes0 = hard.rss(srv.pid), hard.fds(srv.pid), #hard.closes(srv)
  end
  after_each(function()
    if bystander and bystander.state == "open" then bystander:close() end
    bystander = nil
    proc.cleanup()
    h.pump(function() return core.live() == 0 end, "the spec's clients to finish", 10)
  end)

  it_py("closes a peer that sends 200 MiB of 64 KiB messages and reads nothing: RSS grows at most 64 MiB, others keep their echo", function()
    local CLOSE_TIMEOUT, LATE = 2, 30
    start { close_timeout = CLOSE_TIMEOUT }   -- max_backpressure: the default, 16 MiB
    -- the attacker sends, then holds its connection without reading until
    -- we release it (SIGUSR1; --hold only bounds it); the server must end
    -- the connection by itself meanwhile, with 1008 ("close CODE" on its
    -- stdout), within LATE seconds however slow the machine is
    local atk = hard.attack("nonreader", srv.port, "--mib", 200, "--size", 64 * 1024,
      "--hold", CLOSE_TIMEOUT + 2 * LATE, "--wait", 30, "--block", 30)
    local t0, holding_at = core.now(), nil
    local w = hard.watch(srv, function()
      if not holding_at and atk:stdout():find("holding", 1, true) then holding_at = core.now() end
      return #hard.closes(srv, closes0) > 0 or atk:status() ~= nil or core.now() - t0 > CLOSE_TIMEOUT + LATE
    end, { bystander = bystander, every = 0.05 })
    local closed_after = core.now() - t0
    local held = atk:status() == nil   -- the attacker still held on when the server let go
    atk:signal("USR1")                 -- now it reads what came back
    local r = hard.report(atk, 60)
    local fds = hard.settle(srv, base_fds, 30)
    print(("# nonreader: sent %d MiB (%d messages, %s in %.2f s); server closed it with %s after %.2f s%s; "
      .. "RSS %d KiB -> peak %d KiB (+%.1f MiB); the attacker then read %d echoes and close %s (%s); "
      .. "bystander echo %s; fresh client %s (reported, not checked); fds %d -> %d"):format(r.sent // MiB, r.messages_sent, r.send_end,
      r.send_seconds, table.concat(hard.closes(srv, closes0), ","), closed_after,
      held and " (attacker still not reading)" or "", base_rss, w.peak, (w.peak - base_rss) / 1024,
      r.frames["2"] or 0, tostring(r.close_code), r.how, hard.describe(w.bystander, "echo"),
      hard.describe(w.fresh, "total"), base_fds, fds))
    assert.equal("done", r.send_end)   -- the server kept reading (and dropping) to the end
    assert.is_true(r.sent >= 200 * MiB)
    assert.same({ 1008 }, hard.closes(srv, closes0))
    assert.is_true(held, "the server did not end the connection while the attacker held it")
    assert.equal("signal", r.released)   -- it held on until we let it go
    hard.figure(w.peak - base_rss <= 64 * hard.MiB,
      ("server RSS grew by %.1f MiB"):format((w.peak - base_rss) / 1024))
    -- the bystander and fresh clients got every echo (watch asserts each),
    -- also while the attacker held its connection and its echoes piled up
    assert.is_true(count_since(w.bystander, holding_at) >= 1 and count_since(w.fresh, holding_at) >= 1,
      "no echo while the attacker held its connection")
    assert.equal("open", bystander.state)
    assert.equal(base_fds, fds)
  end)

  for _, case in ipairs {
    { pings = 100000, big_every = 10, opts = {}, what = "every 10th with 125 bytes" },
    { pings = 100000, big_every = 1, opts = {}, what = "all with 125 bytes" },
    -- 50 MB of pongs: more than the cap, which must close the connection
    { pings = 400000, big_every = 1, opts = { max_backpressure = 4 * MiB }, what = "all with 125 bytes",
      closes = 1008 },
  } do
    local cap = case.opts.max_backpressure and ("max_backpressure %d MiB"):format(case.opts.max_backpressure // MiB)
      or "default options"
    it_py(("stays live and grows at most 16 MiB under %d pings (%s) whose pongs are never read, %s%s")
      :format(case.pings, case.what, cap, case.closes and ", and closes with " .. case.closes or ""), function()
      start(case.opts)
      -- it reads after its hold until every pong or the close came (--wait bounds that)
      local atk = hard.attack("pingflood", srv.port, "--count", case.pings, "--big-every", case.big_every,
        "--hold", 2, "--wait", 30)
      -- while it sends, and then for 1 s of the 2 it holds its connection
      local until_t, holding_at
      local w = hard.watch(srv, function()
        if atk:status() ~= nil then return true end
        if not until_t and atk:stdout():find("holding", 1, true) then
          holding_at = core.now()
          until_t = holding_at + 1
        end
        return until_t ~= nil and core.now() > until_t
      end, { bystander = bystander, every = 0.02 })
      local r = hard.report(atk, 60)
      local peak, fresh, by = w.peak, w.fresh, w.bystander
      print(("# ping flood: %d pings, %d bytes, sent in %.3f s (%s); attacker then read %d pongs, close %s; "
        .. "RSS %d KiB -> peak %d KiB (+%.1f MiB); fresh client %s; bystander echo %s (reported, not checked)"):format(r.pings, r.bytes,
        r.send_seconds, r.send_end, r.pongs, tostring(r.close_code), base_rss, peak, (peak - base_rss) / 1024,
        hard.describe(fresh, "total"), hard.describe(by, "echo")))
      assert.equal("done", r.send_end)
      hard.figure(peak - base_rss <= 16 * hard.MiB, ("server RSS grew by %.1f MiB"):format((peak - base_rss) / 1024))
      -- fresh clients and the bystander got every echo (watch asserts each),
      -- also while the attacker held its connection, its pongs unread
      assert.is_true(count_since(fresh, holding_at) >= 1 and count_since(by, holding_at) >= 1,
        "no echo while the attacker held its connection")
      if case.closes then
        assert.equal(case.closes, r.close_code)
        h.pump(function() return #hard.closes(srv, closes0) > 0 end, "the server's close handler", 30)
        assert.same({ case.closes }, hard.closes(srv, closes0))
      else
        assert.equal(case.pings, r.pongs)   -- every ping answered, once the peer read
      end
      assert.equal("open", bystander.state)
    end)
  end
end)
