-- SPDX-License-Identifier: MIT
--
-- spec/support/hardening.lua: what the hardening specs (spec/hardening/)
-- share: the attacked server as a subprocess, its RSS, descriptors and CPU
-- time read from /proc, the attack tools, and the latency a fresh client
-- sees while an attack runs (reported, never checked).
--
--   local hard = require "support.hardening"
--   local srv = hard.server { handshake_timeout = 1 }    -- spec/hardening/servers/echo.lua
--   local base = hard.rss(srv.pid)                      -- KiB
--   local atk = hard.attack("slowloris", srv.port, "--sockets", 500)
--   local samples = hard.sample_echo(srv.probe, function() return atk:status() end)
--   local report = hard.report(atk, 30)                  -- the tool's JSON line, decoded
--
-- Every wait steps the luaws loop (support.proc), every process is
-- stopped by its PID (proc.cleanup in after_each).

local helper = require "helper"
local proc = require "support.proc"
local json = require "support.json"
local core = require "luaws.core"
local luaws = require "luaws"

local M = {}

M.SERVER = "spec/hardening/servers/echo.lua"
M.TOOL = "spec/hardening/tools/attack.py"
M.MiB = 1024   -- RSS figures are in KiB

-- Is this run instrumented (make test SANITIZE=1)? The server subprocess
-- then runs under ASan too, whose shadow memory, redzones and quarantine
-- (up to 256 MiB of freed memory kept on purpose) make RSS and speed
-- figures those of ASan, not of luaws.
M.sanitized = (os.getenv("LUAWS_TEST_RUNENV") or "") ~= ""

--[[ figure(ok, msg): a memory bound that is about correctness (RSS grows
  by a cap, not by what an attacker sent; nothing kept per connection).
  Checked (an error with msg when not ok) in the optimized build; under
  ASan only reported, since there the figure is ASan's. Behaviour (codes,
  closes, descriptors, liveness) is checked in both builds. Speed (rates,
  latencies, CPU per cycle) is never checked by a spec, only printed as a
  "# " line: the machines are shared; `make bench` measures speed. ]]
function M.figure(ok, msg)
  if ok then return end
  if M.sanitized then
    print("# ASan build, figure reported, not checked: " .. msg)
    return
  end
  error(msg, 2)
end

--[[ server(opts [, spawn_opts]) -> {proc, pid, port, url, probe}
  Starts spec/hardening/servers/echo.lua with opts as name=value arguments
  and waits (stepping the loop) for its "listening" line (its first port).
  spawn_opts.nofile: a limit on its descriptors (RLIMIT_NOFILE, soft and
  hard, as `ulimit -n` sets it; by prlimit(1)); spawn_opts.env: environment
  variables for the server only (set by env(1) after it restored SIGPIPE,
  so an LD_PRELOAD there does not act on env itself); spawn_opts.script:
  another server script (servers/two.lua). ]]
function M.server(opts, spawn_opts)
  spawn_opts = spawn_opts or {}
  local argv = {}
  if spawn_opts.nofile then
    argv = { "prlimit", "--nofile=" .. math.floor(spawn_opts.nofile), "--" }
  end
  -- SIGPIPE at its default action, as from a login shell: the spec runner's
  -- own luaws ignores it, and an ignored signal is inherited across exec,
  -- which would hide a server that forgot to ignore it itself.
  argv[#argv + 1] = "env"
  argv[#argv + 1] = "--default-signal=PIPE"
  for k, v in pairs(spawn_opts.env or {}) do argv[#argv + 1] = k .. "=" .. v end
  argv[#argv + 1] = "lua5.4"
  argv[#argv + 1] = spawn_opts.script or M.SERVER
  local names = {}
  for k in pairs(opts or {}) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do argv[#argv + 1] = k .. "=" .. tostring(opts[k]) end
  local p = proc.spawn(argv, { unset = spawn_opts.unset })
  local port, why = p:wait_line("listening on 127%.0%.0%.1:(%d+)", 15)
  assert(port, "the hardening server did not start: " .. tostring(why))
  local base = "ws://127.0.0.1:" .. port
  return { proc = p, pid = p.pid, port = tonumber(port), url = base .. "/ws", probe = base .. "/probe" }
end

-- A field of /proc/PID/status in KiB (VmRSS, VmHWM, ...), or nil.
local function status_kib(pid, field)
  local s = proc.read_all("/proc/" .. pid .. "/status")
  return s and tonumber(s:match(field .. ":%s*(%d+) kB"))
end

-- Resident set size of pid in KiB (VmRSS).
function M.rss(pid) return (assert(status_kib(pid, "VmRSS"), "no VmRSS for PID " .. pid)) end

-- Peak resident set size of pid in KiB (VmHWM): what RSS reached in between.
function M.hwm(pid) return (assert(status_kib(pid, "VmHWM"), "no VmHWM for PID " .. pid)) end

-- Open descriptors of pid (entries of /proc/PID/fd); with below, only
-- those numbered below it (what an RLIMIT_NOFILE of below allows: a process
-- may hold inherited ones above it).
function M.fds(pid, below)
  local out, status = proc.run({ "ls", "/proc/" .. math.floor(pid) .. "/fd" }, { timeout = 10 })
  local count = 0
  if status ~= 0 then return count end   -- the process is gone
  for fd in out:gmatch("%d+") do
    if not below or tonumber(fd) < below then count = count + 1 end
  end
  return count
end

-- CPU seconds (user + system) pid has used.
function M.cpu(pid)
  local s = proc.read_all("/proc/" .. pid .. "/stat") or ""
  local rest = s:match("%) (.*)$") or ""
  local fields = {}
  for w in rest:gmatch("%S+") do fields[#fields + 1] = w end
  -- after "pid (comm) ": state is field 1, utime 12, stime 13 (man 5 proc)
  return ((tonumber(fields[12]) or 0) + (tonumber(fields[13]) or 0)) / 100
end

-- CPU seconds the whole machine has spent busy (every CPU, /proc/stat:
-- all but idle and iowait), for telling how much other processes took.
function M.machine_busy()
  local line = (proc.read_all("/proc/stat") or ""):match("^cpu%s+([^\n]*)") or ""
  local v = {}
  for n in line:gmatch("%d+") do v[#v + 1] = tonumber(n) end
  local busy = 0
  for i, n in ipairs(v) do
    if i ~= 4 and i ~= 5 and i <= 8 then busy = busy + n end   -- skip idle, iowait; guest is in user
  end
  return busy / 100
end

-- Is the process still running (no exit status yet)?
function M.alive(srv) return srv.proc:status() == nil end

--[[ attack(mode, port, ...) -> process
  Runs spec/hardening/tools/attack.py MODE --port PORT ... under Debian's
  python3 (without the sanitizer runtime). It prints one JSON line. ]]
function M.attack(mode, port, ...)
  local argv = { proc.PYTHON, M.TOOL, mode, "--port", tostring(port) }
  for _, a in ipairs { ... } do argv[#argv + 1] = tostring(a) end
  return proc.spawn(argv, { unset = { "LD_PRELOAD" } })
end

-- Wait (stepping the loop) for a tool to exit 0 and decode its last JSON line.
function M.report(p, timeout)
  local status = p:wait(timeout or 60)
  if not status then
    p:signal("KILL")
    error(("%s did not finish within %s s: %s"):format(table.concat(p.argv, " "), timeout or 60, p:stderr()), 2)
  end
  if status ~= 0 then
    error(("%s: exit %d: %s%s"):format(table.concat(p.argv, " "), status, p:stdout(), p:stderr()), 2)
  end
  local last
  for line in p:stdout():gmatch("[^\n]+") do last = line end
  local r = json.decode(last or "")
  if type(r) ~= "table" then error("attack.py printed no JSON: " .. p:stdout() .. p:stderr(), 2) end
  return r
end

--[[ fresh_echo(url) -> connect_s, echo_s | nil, err
  A new luaws client: the time its handshake took, and the time from its
  send to its echo. The client then closes. ]]
function M.fresh_echo(url)
  local t0 = core.now()
  local ws, err = luaws.connect(url, { timeout = 5 })
  if not ws then return nil, err end
  local t1 = core.now()
  local msg = "are you there? " .. t1
  assert(ws:send(msg))
  local got, err = ws:receive(5)
  local t2 = core.now()
  ws:close()
  if got ~= msg then return nil, "echo: " .. tostring(got or err) end
  return t1 - t0, t2 - t1
end

--[[ sample_echo(url, done [, every]) -> samples
  Fresh echoes (see fresh_echo) every `every` seconds (default 0.1) until
  done() is true; each sample {connect = s, echo = s, total = s, at = t}.
  An error fails the calling spec. ]]
function M.sample_echo(url, done, every)
  return M.watch(nil, done, { url = url, every = every }).fresh
end

-- The time from ws:send to its echo on an open client, or nil, err.
function M.echo_on(ws)
  local t0 = core.now()
  local msg = "still there? " .. t0
  local ok, err = ws:send(msg)
  if not ok then return nil, err end
  local got, why = ws:receive(5)
  if got ~= msg then return nil, "echo: " .. tostring(got or why) end
  return core.now() - t0
end

--[[ watch(srv, done, opts) -> {peak = KiB, fresh = samples, bystander = samples}
  Until done() is true: the server's RSS every 20 ms (peak: the largest
  seen, and VmHWM), and every opts.every seconds (default 0.1) a fresh echo
  on opts.url (default srv.probe; opts.url = false: none) and an echo on the
  open client opts.bystander (if given), as in sample_echo. An echo that
  fails fails the calling spec. ]]
function M.watch(srv, done, opts)
  opts = opts or {}
  local url = opts.url
  if url == nil and srv then url = srv.probe end
  local res = { peak = srv and M.rss(srv.pid) or 0, fresh = {}, bystander = {} }
  local every = opts.every or 0.1
  local next_echo, next_rss = core.now(), core.now()
  while not done() do
    local now = core.now()
    if srv and now >= next_rss then
      res.peak = math.max(res.peak, M.rss(srv.pid))
      next_rss = now + 0.02
    end
    if now >= next_echo and (url or opts.bystander) then
      if url then
        local c, e = M.fresh_echo(url)
        assert(c, e)
        res.fresh[#res.fresh + 1] = { connect = c, echo = e, total = c + e, at = core.now() }
      end
      if opts.bystander then
        local e = assert(M.echo_on(opts.bystander))
        res.bystander[#res.bystander + 1] = { echo = e, at = core.now() }
      end
      next_echo = core.now() + every
    end
    core.step(0.005)
  end
  if srv and M.alive(srv) then res.peak = math.max(res.peak, M.rss(srv.pid), M.hwm(srv.pid)) end
  return res
end

-- The largest value of field among samples, and the median.
function M.worst(samples, field)
  local v = {}
  for i, s in ipairs(samples) do v[i] = s[field] end
  table.sort(v)
  return v[#v] or 0, v[(#v + 1) // 2] or 0
end

-- "ms" text for a list of samples' field: "n=12 median 0.8 ms, worst 2.1 ms".
function M.describe(samples, field)
  local worst, median = M.worst(samples, field)
  return ("n=%d median %.2f ms, worst %.2f ms"):format(#samples, median * 1e3, worst * 1e3)
end

--[[ ctl(srv) -> stats
  The server's stats over its /ctl route: connections, pending, accepted,
  upgraded (this connection included), rejected, live (every connection
  the core tracks, this one included), lua_kib, and ws_opens, ws_closes
  (how many times /ws's open and close handlers ran). ]]
function M.ctl(srv)
  local ws = assert(luaws.connect("ws://127.0.0.1:" .. srv.port .. "/ctl", { timeout = 5 }))
  assert(ws:send("stats"))
  local line = assert(ws:receive(5))
  ws:close()
  local st = {}
  for k, v in line:gmatch("([%w_]+)=(%d+)") do st[k] = tonumber(v) end
  return st
end

--[[ settle(srv, want_fds, timeout) -> fds
  Wait (stepping the loop) until the server holds at most want_fds
  descriptors, or timeout seconds pass; the last count. ]]
function M.settle(srv, want_fds, timeout)
  local deadline = core.now() + (timeout or 10)
  local n = M.fds(srv.pid)
  while n > want_fds and core.now() < deadline do
    helper.idle(0.1)
    n = M.fds(srv.pid)
  end
  return n
end

-- A number from a tool's JSON, or -1 for null (json.null) and absent.
function M.num(v) return type(v) == "number" and v or -1 end

-- "a=1 b=2" for a table of counts (the tools' JSON objects), keys sorted.
function M.counts(t)
  local out = {}
  for k, v in pairs(t or {}) do out[#out + 1] = tostring(k) .. "=" .. tostring(v) end
  table.sort(out)
  return table.concat(out, " ")
end

-- Lines of the server's stdout that match pattern, as a list of captures.
function M.lines(srv, pattern)
  local out = {}
  for line in srv.proc:stdout():gmatch("[^\n]+") do
    local cap = line:match(pattern)
    if cap then out[#out + 1] = cap end
  end
  return out
end

-- The codes the server's /ws close handler reported ("close CODE REASON"
-- lines), in order, from the first+1-th on (first defaults to 0).
function M.closes(srv, first)
  local codes = M.lines(srv, "^close (%d+)")
  local out = {}
  for i = (first or 0) + 1, #codes do out[#out + 1] = tonumber(codes[i]) end
  return out
end

-- The values of list counted: {[value] = times}.
function M.tally(list)
  local t = {}
  for _, v in ipairs(list) do t[v] = (t[v] or 0) + 1 end
  return t
end

return M
