-- Hostile frames against a server subprocess (spec/hardening/servers/
-- echo.lua): a header that announces more than max_message_size must be
-- refused with 1009 when the header arrives, before any payload, and
-- nothing may be allocated for what it announced; invalid UTF-8 deep inside
-- a large fragmented text message must end in a 1007 close frame the peer
-- receives, not in a dropped socket. The server's RSS is read from
-- /proc/PID/status before and after.
local h = require "helper"
local proc = require "support.proc"
local hard = require "support.hardening"

local it_py = proc.have_python() and it or pending
local MiB = 1024 * 1024

describe("hostile frames", function()
  local srv, base_rss, closes0
  before_each(function()
    if not proc.have_python() then return end
    srv = hard.server {}
    -- one whole connection first, so one-time set-up (OpenSSL's SHA-1 for the
    -- accept key, the Lua heap's first growth) is in the baseline
    assert(hard.fresh_echo(srv.probe))
    h.idle(0.2)
    base_rss = hard.rss(srv.pid)
    closes0 = #hard.closes(srv)
  end)
  after_each(function()
    proc.cleanup()
    h.pump(function() return h.core.live() == 0 end, "the spec's clients to finish", 10)
  end)

  for _, case in ipairs {
    { "1 GiB", 1 << 30 },
    { "2^62 bytes", 1 << 62 },
  } do
    local what, announce = case[1], case[2]
    it_py(("closes with 1009 at the header of a frame that announces %s, and allocates nothing for it"):format(what), function()
      -- only the header, then wait (at most 20 s) for the close: a server
      -- that waited for the payload would never send it; then 32 MiB of the
      -- announced payload, which the failed connection must read and drop
      local atk = hard.attack("bigframe", srv.port, "--announce", announce, "--first", 0,
        "--then", 32 * MiB, "--wait", 20, "--hold", 1)
      assert(atk:wait_line("(holding)", 60), "the attacker stopped: " .. atk:stdout() .. atk:stderr())
      local rss = hard.rss(srv.pid)   -- while the attacker's connection is still there
      local r = hard.report(atk, 60)
      pcall(h.pump, function() return #hard.closes(srv, closes0) > 0 end, "the server's close handler", 30)
      print(("# frame announcing %s: close %s %q %.1f ms after the header (reported, not checked); then %d bytes of payload sent (%s); "
        .. "server RSS %d -> %d KiB"):format(what, tostring(r.close_code), tostring(r.close_reason),
        hard.num(r.close_after) * 1e3, r.sent_after, r.send_end, base_rss, rss))
      -- the close came while only the header had been sent (close_after is
      -- null when it did not come before the payload was)
      assert.equal(1009, r.close_code)
      assert.is_true(hard.num(r.close_after) >= 0, "no close before the payload was sent")
      assert.same({ 1009 }, hard.closes(srv, closes0))
      assert.is_true(rss - base_rss <= 1024, ("server RSS grew by %d KiB"):format(rss - base_rss))
      local c, e = hard.fresh_echo(srv.probe)
      assert(c, e)
    end)
  end

  it_py("sends a 1007 close frame for a bad byte at 7 MiB of an 8 MiB text message in 64 KiB fragments", function()
    local r = hard.report(hard.attack("utf8deep", srv.port, "--total", 8 * MiB, "--fragment", 64 * 1024,
      "--bad-at", 7 * MiB, "--wait", 10), 60)
    h.pump(function() return #hard.closes(srv, closes0) > 0 end, "the server's close handler", 30)
    local rss = hard.rss(srv.pid)
    print(("# invalid UTF-8 at 7 MiB: close %s %q, then %s; %d bytes sent (%s); server RSS %d -> %d KiB")
      :format(tostring(r.close_code), tostring(r.close_reason), r.how, r.sent, r.send_end, base_rss, rss))
    assert.equal("done", r.send_end)   -- the rest of the message was read and dropped, no reset
    assert.equal(1007, r.close_code)   -- a close frame, not a dropped socket
    assert.same({ ["8"] = 1 }, r.frames)
    assert.equal("eof", r.how)
    assert.same({ 1007 }, hard.closes(srv, closes0))
    -- the 7 MiB before the bad byte were held for reassembly; once failed, given back
    hard.figure(rss - base_rss <= 2048, ("server RSS grew by %d KiB"):format(rss - base_rss))
  end)
end)
