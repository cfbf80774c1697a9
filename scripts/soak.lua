-- SPDX-License-Identifier: MIT
--
-- scripts/soak.lua: `make soak`. An echo server subprocess (spec/hardening/
-- servers/echo.lua, default options) under SOAK_CLIENTS clients (default
-- 500) for SOAK_SECONDS (default 60): half are luaws clients, each a
-- coroutine in this process (luaws.spawn), half python3-websockets asyncio
-- clients in one subprocess (scripts/soak_peer.py). Each client sends
-- bursts of 1-4 messages of random size (0 B - 64 KiB, text or binary) and
-- checks that every echo comes back intact and in order, pauses 0-400 ms,
-- and now and then drops its connection on purpose (a close right after a
-- burst, before its echoes, or between rounds; the python clients also
-- reset) and connects again.
--
-- It reports messages sent, echoed, dropped (sent on a connection dropped
-- on purpose before the echo) and lost (sent, not dropped, never echoed
-- intact), the server's RSS (idle, after a 10 s warm-up, at the end of the
-- traffic, idle again) and its descriptors, and ends with
--   soak: N passed, N failed
-- over its checks: nothing lost, corrupt or closed unexpectedly on either
-- side; RSS growth from the warm-up to the end under 10%; descriptors back
-- at the baseline once the clients are gone; the server still alive.
-- Exit status 0 when every check passed. SOAK_SEED fixes the random choices.
package.path = "lua/?.lua;lua/?/init.lua;spec/?.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath

local luaws = require "luaws"
local core = require "luaws.core"
local conn = require "luaws.conn"
local h = require "helper"   -- the specs' helper: h.idle steps the loop
local proc = require "support.proc"
local hard = require "support.hardening"
local json = require "support.json"

local SECONDS = tonumber(os.getenv("SOAK_SECONDS")) or 60
local CLIENTS = math.floor(tonumber(os.getenv("SOAK_CLIENTS")) or 500)
local SEED = math.floor(tonumber(os.getenv("SOAK_SEED")) or os.time())
local N_LUA = CLIENTS // 2
local N_PY = CLIENTS - N_LUA
local ECHO_TIMEOUT = 10
local MiB = 1024

io.stdout:setvbuf("line")
math.randomseed(SEED)

local callback_errors = {}
core.on_error(function(msg)   -- replaces the helper's collector
  callback_errors[#callback_errors + 1] = msg
  io.stderr:write(msg, "\n")
end)

local function say(fmt, ...) print(("soak: " .. fmt):format(...)) end

-- Payload material: random bytes and ASCII text, sliced per message.
local BLOB_LEN = 128 * 1024
local blob_bin, blob_text
do
  local b, t = {}, {}
  local letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "
  for i = 1, BLOB_LEN do
    b[i] = string.char(math.random(0, 255))
    local k = math.random(#letters)
    t[i] = letters:sub(k, k)
  end
  blob_bin, blob_text = table.concat(b), table.concat(t)
end

-- A message of random size (60% up to 256 B, 30% up to 8 KiB, 10% up to
-- 64 KiB), text or binary, named by its first bytes.
local function payload(id, seq)
  local r = math.random()
  local size = r < 0.6 and math.random(0, 256) or r < 0.9 and math.random(257, 8192)
    or math.random(8193, 65536)
  local head = ("l%d:%d:"):format(id, seq)
  local kind = math.random() < 0.5 and "text" or "binary"
  local n = math.max(0, size - #head)
  local from = math.random(1, BLOB_LEN - n)
  return head .. (kind == "text" and blob_text or blob_bin):sub(from, from + n - 1), kind
end

local function sleep(seconds)
  local co = coroutine.running()
  luaws.after(seconds, function() conn.resume(co) end)
  coroutine.yield()
end

local st = { connections = 0, sent = 0, echoed = 0, dropped = 0, corrupt = 0, timeouts = 0,
  unexpected = 0, connect_failed = 0, problems = {} }
local function problem(msg)
  if #st.problems < 10 then st.problems[#st.problems + 1] = msg end
end

local srv = hard.server {}
local url = srv.url
local deadline
local finished = 0

-- One luaws client: connect, rounds, drops, until the deadline.
local function client(id)
  local seq = 0
  while core.now() < deadline do
    local ws, err = luaws.connect(url, { timeout = 10 })
    if not ws then
      st.connect_failed = st.connect_failed + 1
      problem(("lua client %d: %s"):format(id, err))
      sleep(0.5)
    else
      st.connections = st.connections + 1
      local ended = false   -- dropped on purpose, or broken
      while core.now() < deadline do
        local burst = {}
        for _ = 1, math.random(4) do
          seq = seq + 1
          local msg, kind = payload(id, seq)
          local ok, err = ws:send(msg, kind)
          if not ok then
            st.unexpected = st.unexpected + 1
            problem(("lua client %d: %s"):format(id, tostring(err)))
            ended = true
            break
          end
          burst[#burst + 1] = { msg, kind }
          st.sent = st.sent + 1
        end
        if ended then break end
        local r = math.random()
        if r < 0.02 then   -- close before the echoes
          st.dropped = st.dropped + #burst
          ws:close(1000, "dropping")
          ended = true
          break
        end
        for _, want in ipairs(burst) do
          local got, kind, token = ws:receive(ECHO_TIMEOUT)
          if got == nil then
            if token == "timeout" then
              st.timeouts = st.timeouts + 1
              problem(("lua client %d: no echo within %d s"):format(id, ECHO_TIMEOUT))
            else
              st.unexpected = st.unexpected + 1
              problem(("lua client %d: closed by the server: %s"):format(id, tostring(ws:close_status())))
            end
            ended = true
            break
          end
          if got ~= want[1] or kind ~= want[2] then
            st.corrupt = st.corrupt + 1
            problem(("lua client %d: echo differs (%d %s vs %d %s bytes)"):format(id, #got, kind, #want[1], want[2]))
          else
            st.echoed = st.echoed + 1
          end
        end
        if ended then
          if ws.state == "open" then ws:close(1001, "giving up") end
          break
        end
        if r < 0.03 then   -- close between rounds
          ws:close(1000, "between rounds")
          ended = true
          break
        end
        sleep(math.random() * 0.4)
      end
      if not ended then
        ws:close(1000, "done")
        while ws:receive(ECHO_TIMEOUT) do end   -- until the close completes
        if ws:close_status() ~= 1000 then
          st.unexpected = st.unexpected + 1
          problem(("lua client %d: final close %s"):format(id, tostring(ws:close_status())))
        end
      end
    end
  end
  finished = finished + 1
end

-- ------------------------------------------------------------------ the run

h.idle(0.3)
local base_fds, rss_idle = hard.fds(srv.pid), hard.rss(srv.pid)
say("%d s, %d clients (%d luaws, %d python3-websockets), seed %d; server PID %d, %d fds, RSS %d KiB",
  SECONDS, CLIENTS, N_LUA, N_PY, SEED, srv.pid, base_fds, rss_idle)

local py = proc.spawn({ proc.PYTHON, "scripts/soak_peer.py", url, tostring(N_PY), tostring(SECONDS), tostring(SEED) },
  { unset = { "LD_PRELOAD" } })
local t0 = core.now()
deadline = t0 + SECONDS
for i = 1, N_LUA do luaws.spawn(client, i) end

-- RSS climbs while the 500 connections' state, the Lua heap and malloc's
-- arenas reach their working size; growth is measured from the end of that
-- warm-up (10 s, or half of a shorter run) to the end of the traffic.
local warm = math.min(10, SECONDS / 2)
local rss_start, rss_end, rss_max = nil, nil, rss_idle
local next_sample, next_report = t0, t0 + 10
while finished < N_LUA or py:status() == nil do
  core.step(0.05)
  local now = core.now()
  if now >= next_sample and hard.alive(srv) then
    local rss = hard.rss(srv.pid)
    rss_max = math.max(rss_max, rss)
    if not rss_start and now - t0 >= warm then rss_start = rss end
    if now < deadline then rss_end = rss end
    next_sample = now + 0.5
  end
  if now >= next_report and now < deadline then
    say("%3.0f s: luaws clients sent %d, echoed %d; server RSS %d KiB, %d fds", now - t0, st.sent, st.echoed,
      hard.alive(srv) and hard.rss(srv.pid) or -1, hard.alive(srv) and hard.fds(srv.pid) or -1)
    next_report = now + 10
  end
  if now > deadline + 60 then
    say("the clients did not finish within 60 s of the end")
    break
  end
end

local py_status = py:wait(30)
local pst = {}
for line in py:stdout():gmatch("[^\n]+") do
  local v = line:match("^{") and json.decode(line)
  if type(v) == "table" then pst = v end
end
local alive = hard.alive(srv)
local fds = alive and hard.settle(srv, base_fds, 10) or -1
h.idle(0.5)
local rss_after = alive and hard.rss(srv.pid) or -1
local closes = {}
for _, c in ipairs(alive and hard.closes(srv) or {}) do closes[c] = (closes[c] or 0) + 1 end
st.lost = st.sent - st.echoed - st.dropped - st.corrupt

local function side(name, s)
  say("%s: %d connections, sent %d, echoed %d, dropped %d, lost %d, corrupt %d, timeouts %d, unexpected closes %d, "
    .. "failed connects %d", name, s.connections or 0, s.sent or 0, s.echoed or 0, s.dropped or 0, s.lost or -1,
    s.corrupt or -1, s.timeouts or -1, s.unexpected or -1, s.connect_failed or -1)
  for _, p in ipairs(s.problems or {}) do say("  %s: %s", name, p) end
end
side("luaws clients", st)
side("python clients", pst)
say("total: sent %d, echoed %d, dropped %d, lost %d", st.sent + (pst.sent or 0), st.echoed + (pst.echoed or 0),
  st.dropped + (pst.dropped or 0), st.lost + (pst.lost or 0))
local growth = rss_start and rss_end and (rss_end - rss_start) / rss_start or math.huge
say("server RSS: idle %d KiB, after the %.0f s warm-up %d KiB, at the end %d KiB (%+.1f%%), highest %d KiB, "
  .. "idle again %d KiB", rss_idle, warm, rss_start or -1, rss_end or -1, growth * 100, rss_max, rss_after)
say("server fds: %d before, %d after; close codes seen by the server: %s", base_fds, fds, hard.counts(closes))

local passed, failed = 0, 0
local function check(ok, what)
  if ok then passed = passed + 1 else failed = failed + 1 end
  say("%s %s", ok and "ok" or "FAILED", what)
end
check(st.sent > 0 and (pst.sent or 0) > 0, "both kinds of client sent messages")
check(st.lost == 0 and st.corrupt == 0, ("luaws clients: nothing lost or corrupt (%d, %d)"):format(st.lost, st.corrupt))
check(st.unexpected == 0 and st.timeouts == 0 and st.connect_failed == 0,
  "luaws clients: no unexpected close, echo timeout or failed connect")
check(py_status == 0, "python clients exited 0 (" .. tostring(py_status) .. ")" .. (py_status ~= 0 and (": " .. py:stderr():sub(-500)) or ""))
check(pst.lost == 0 and pst.corrupt == 0, ("python clients: nothing lost or corrupt (%s, %s)"):format(tostring(pst.lost), tostring(pst.corrupt)))
check(pst.unexpected == 0 and pst.timeouts == 0 and pst.connect_failed == 0,
  "python clients: no unexpected close, echo timeout or failed connect")
-- Under ASan (make soak SANITIZE=1) the RSS figure is ASan's (its
-- quarantine keeps freed memory on purpose): reported, not checked.
check(growth < 0.10 or hard.sanitized, ("server RSS growth from the warm-up to the end under 10%% (%+.1f%%)%s")
  :format(growth * 100, hard.sanitized and ", ASan build: reported, not checked" or ""))
check(fds == base_fds, ("server fds back at the baseline (%d -> %d)"):format(base_fds, fds))
check(alive and srv.proc:stderr() == "", "server alive, nothing on its stderr")
check(#callback_errors == 0, ("no callback errors in the clients (%d)"):format(#callback_errors))
local stopped = alive and srv.proc:signal("TERM") and srv.proc:wait(10)
check(stopped == 0, "server exits 0 on SIGTERM (" .. tostring(stopped) .. ")")
proc.cleanup()
print(("soak: %d passed, %d failed"):format(passed, failed))
os.exit(failed == 0 and 0 or 1)
