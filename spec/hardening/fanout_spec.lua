-- SPDX-License-Identifier: MIT
--
-- Fan-out under load, against a server subprocess
-- (spec/support/pubsub_server.lua) whose RSS is read from /proc/PID/status:
-- a topic with 10,000 subscribers of which one never reads, and 500 paused
-- subscribers holding one shared 1 MiB frame. The subscribers are raw
-- asyncio sockets in one Python process (spec/support/pubsub_clients.py);
-- the never-readers and paused ones set SO_RCVBUF=1024 and TCP_MAXSEG=536,
-- so the kernel holds some tens of KiB for them and what is published to
-- them waits in the server's queues. Every message is checked at every
-- subscriber: sequence number, size, every byte.
--
-- Outcomes are checked (counts publish returns, the 1008, every message
-- at every reader, what the queues hold); RSS bounds that prove a cap or
-- the sharing are checked in the plain build and only reported under ASan;
-- times are only reported ("# " lines). Every process is stopped by PID.
local h = require "helper"
local proc = require "support.proc"
local hard = require "support.hardening"
local luaws, core = h.luaws, h.core

local MiB = 1024 * 1024
local SERVER = "spec/support/pubsub_server.lua"
local TOOL = "spec/support/pubsub_clients.py"

-- ASan here (make test SANITIZE=1 says so in LUAWS_TEST_RUNENV; a direct
-- run under LD_PRELOAD=libasan.so says so in LD_PRELOAD): RSS is ASan's.
local sanitized = hard.sanitized or (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true) ~= nil
local function figure(ok, msg)
  if ok then return end
  if sanitized then
    print("# ASan build, figure reported, not checked: " .. msg)
    return
  end
  error(msg, 2)
end

-- 10,000 subscribers need 10,000 descriptors in the server and in the
-- clients' process: the soft limit is raised to the hard one in both.
local function hard_nofile()
  local f = io.popen("sh -c 'ulimit -Hn' 2>/dev/null")
  local s = f and f:read("a") or ""
  if f then f:close() end
  if s:match("unlimited") then return math.huge end
  return tonumber(s:match("%d+")) or 0
end
local NOFILE = "ulimit -n 65536 2>/dev/null || ulimit -n \"$(ulimit -Hn)\";"
local have_python = proc.have_python()
local it_py = have_python and it or pending
local it_10k = (have_python and hard_nofile() >= 10100) and it or pending

describe("fan-out to many subscribers", function()
  local srv, ctl_ws
  after_each(function()
    if ctl_ws and ctl_ws.state == "open" then ctl_ws:close() end
    ctl_ws = nil
    proc.cleanup()
    h.pump(function() return core.live() == 0 end, "the spec's clients to finish", 10)
  end)

  local function start(opts)
    srv = hard.server(opts, { script = SERVER, shell = NOFILE })
    ctl_ws = assert(luaws.connect("ws://127.0.0.1:" .. srv.port .. "/ctl", { timeout = 10 }))
  end

  -- One command to the server's /ctl route, its answer.
  local function ctl(cmd, timeout)
    assert(ctl_ws:send(cmd))
    local answer, err = ctl_ws:receive(timeout or 120)
    assert(answer, ("ctl %q: %s"):format(cmd, tostring(err)))
    return answer
  end

  local function stats()
    local st = {}
    for k, v in ctl("stats"):gmatch("([%w_]+)=(%d+)") do st[k] = tonumber(v) end
    return st
  end

  local function numbers(s)
    local t = {}
    for n in s:gmatch("%d+") do t[#t + 1] = tonumber(n) end
    return t
  end

  -- The subscribers: pubsub_clients.py with these arguments, under a raised
  -- descriptor limit, without the sanitizer runtime; waits for "ready".
  local function subscribers(args, timeout)
    local words = { proc.quote(proc.PYTHON), proc.quote(TOOL), "--port", tostring(srv.port) }
    for _, a in ipairs(args) do words[#words + 1] = proc.quote(a) end
    local p = proc.spawn({ "sh", "-c", NOFILE .. " exec " .. table.concat(words, " ") }, { unset = { "LD_PRELOAD" } })
    local connected, failed = p:wait_line("ready (%d+) (%d+)", timeout or 180)
    assert(connected, ("the subscribers did not connect (%s): %s"):format(tostring(failed), p:stderr()))
    return p, tonumber(connected), tonumber(failed)
  end

  -- Wait (stepping the loop) for the tool's JSON report, sampling the
  -- server's RSS meanwhile; the report and the peak RSS.
  local function report(p, timeout)
    local w = hard.watch(srv, function() return p:status() ~= nil end, { url = false })
    local r = hard.report(p, timeout or 30)
    return r, w.peak
  end

  it_10k("a 10,000-subscriber topic with one subscriber that never reads: 1008 for it, every message for the rest, RSS bounded", function()
    local N, CAP, SIZE = 10000, 16 * 1024, 1000
    start { max_backpressure = CAP, close_timeout = 2, keep_alive_interval = 0 }
    local t0 = core.now()
    local tool, connected, failed = subscribers({ "--count", N, "--never", 1, "--timeout", 300 })
    local connect_s = core.now() - t0
    assert.same({ N, 0 }, { connected, failed })
    local st = stats()
    assert.equal(N, st.subs)
    h.idle(0.5)
    local base = hard.rss(srv.pid)

    -- 16 publishes of 1000 bytes a command, until the one that does not
    -- read is refused (its socket takes some tens of KiB, its queue 16 KiB)
    local counts, peak = {}, base
    t0 = core.now()
    for _ = 1, 12 do
      for _, n in ipairs(numbers(ctl("publish all 16 " .. SIZE))) do counts[#counts + 1] = n end
      peak = math.max(peak, hard.rss(srv.pid))
      if counts[#counts] < N then break end
    end
    local cut
    for k, n in ipairs(counts) do
      if n ~= N then cut = cut or k end
    end
    assert(cut, ("%d publishes of %d bytes all reached the subscriber that does not read"):format(#counts, SIZE))
    -- and 32 more, which reach the others
    for _ = 1, 2 do
      for _, n in ipairs(numbers(ctl("publish all 16 " .. SIZE))) do counts[#counts + 1] = n end
      peak = math.max(peak, hard.rss(srv.pid))
    end
    local publish_s = core.now() - t0
    local shape = {}
    for k, n in ipairs(counts) do shape[k] = (k < cut and n == N or k >= cut and n == N - 1) and "." or tostring(n) end
    assert.equal(("."):rep(#counts), table.concat(shape, ""))
    -- close_timeout (2 s) later the server gives up on it: its close handler says 1008
    local deadline = core.now() + 60
    repeat
      st = stats()
      if (st.closes_1008 or 0) >= 1 then break end
      h.idle(0.2)
    until core.now() > deadline
    assert.equal(1, st.closes_1008, "the never-reader's close code")
    assert.equal(1, st.closes, "closes other than the never-reader's")
    assert.equal(N - 1, st.subs)
    assert.equal(tostring(N - 1), ctl("end all"))
    local r, tool_peak = report(tool, 120)
    peak = math.max(peak, tool_peak)
    local never = r.never[1] or {}
    print(("# 10,000 subscribers connected in %.1f s; %d publishes of %d bytes in %.1f s, the never-reader refused at %d "
      .. "(it had read %d before the cut, intact %s); readers done after %.1f s; RSS %d KiB -> peak %d KiB (+%.1f MiB) "
      .. "(bound: +32 MiB)"):format(connect_s, #counts, SIZE, publish_s, cut,
      math.floor(never.messages or -1), tostring(never.intact), r.seconds, base, peak, (peak - base) / 1024))
    assert.same({}, r.errors)
    assert.same({ N - 1, N - 1, N - 1 }, { r.readers, r.complete, r.intact })
    assert.same({ #counts, #counts, #counts }, { r["end"], r.min, r.max })
    assert.is_true(never.intact, never.error)
    assert.is_true(never.messages < cut, "the never-reader got what it was refused")
    assert.is_true(hard.alive(srv))
    figure(peak - base <= 32 * hard.MiB, ("server RSS grew by %.1f MiB"):format((peak - base) / 1024))
  end)

  it_py("500 paused subscribers hold one shared 1 MiB publish: ~480 MiB queued, RSS grows by about 1 MiB, not 500", function()
    local PAUSED, READERS = 500, 50
    start { keep_alive_interval = 0 }   -- max_backpressure: the default 16 MiB
    local tool, connected = subscribers({ "--count", PAUSED + READERS, "--paused", PAUSED, "--timeout", 300 })
    assert.equal(PAUSED + READERS, connected)
    assert.equal(PAUSED + READERS, stats().subs)
    h.idle(0.5)
    local base = hard.rss(srv.pid)
    assert.equal(tostring(PAUSED + READERS), ctl("publish all 1 " .. MiB))
    local st = stats()
    h.idle(0.5)
    local after = hard.rss(srv.pid)
    local hwm = hard.hwm(srv.pid)
    print(("# one 1 MiB publish to %d subscribers: %d paused queues hold %.1f MiB (the largest %.1f KiB); "
      .. "server RSS %d KiB -> %d KiB (+%.1f MiB), VmHWM %d KiB"):format(PAUSED + READERS, st.queued_conns,
      st.queued / MiB, st.queued_max / 1024, base, after, (after - base) / 1024, hwm))
    -- the frame really waits in (nearly) every paused queue ...
    assert.is_true(st.queued_conns >= PAUSED * 9 // 10, st.queued_conns .. " paused queues hold bytes")
    assert.is_true(st.queued >= 250 * MiB, ("the queues hold %.1f MiB"):format(st.queued / MiB))
    -- ... and costs about one copy: 500 copies would be about 480 MiB more
    figure(after - base <= 48 * hard.MiB and hwm - base <= 48 * hard.MiB,
      ("server RSS grew by %.1f MiB (peak %.1f MiB) while its queues held %.1f MiB"):format((after - base) / 1024,
        (hwm - base) / 1024, st.queued / MiB))
    assert.equal(tostring(PAUSED + READERS), ctl("end all"))
    assert(tool:signal("USR1"))   -- the paused ones read now
    local r, peak = report(tool, 120)
    print(("# after they read: every subscriber done in %.1f s since connecting; RSS peak %d KiB"):format(r.seconds, peak))
    assert.same({}, r.errors)
    assert.is_true(r.resumed)
    assert.same({ PAUSED + READERS, PAUSED + READERS, PAUSED + READERS }, { r.readers, r.complete, r.intact })
    assert.same({ 1, 1, 1 }, { r["end"], r.min, r.max })
    assert.is_true(hard.alive(srv))
  end)
end)
