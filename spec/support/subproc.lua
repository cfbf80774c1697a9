-- SPDX-License-Identifier: MIT
--
-- spec/support/subproc.lua: subprocesses for integration specs that keep
-- the luaws loop turning while they wait (support/proc.lua waits with sleep,
-- for specs whose server runs in another process), plus a raw TCP/HTTP peer.
--
--   local proc = require "support.subproc"
--   local p = proc.spawn { "lua5.4", "examples/echo.lua", "--port", "0" }
--   local line = p:wait_output("listening on (%S+)", 5)   -- steps the loop
--   p:signal("TERM"); local status = p:wait(5)             -- exit status
--   proc.cleanup()                                         -- SIGKILL leftovers, by PID
--
-- A command runs under a small sh that writes its PID, then its exit status
-- (128 + n for signal n) to files beside its output, so nothing here blocks:
-- every wait steps the luaws loop (a server in this process keeps serving)
-- and has a deadline. Signals go to one PID we started, never by name.

local core = require "luaws.core"

local M = {}

M.PYTHON = "/usr/bin/python3"   -- Debian's, with python3-websockets

function M.quote(s)
  return "'" .. tostring(s):gsub("'", [['\'']]) .. "'"
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
M.slurp = slurp

local function step_until(cond, timeout)
  local deadline = core.now() + timeout
  while true do
    local v = cond()
    if v then return v end
    if core.now() > deadline then return nil end
    core.step(0.01)
  end
end

local live = {}   -- processes started and not yet seen to exit
local spawned = {} -- every process started since the last cleanup (its files)

local P = {}
P.__index = P

--[[ spawn(argv [, opts]) -> process
  argv: the command and its arguments (no shell syntax). opts.unset: names
  of environment variables to drop (e.g. LD_PRELOAD for a peer that must not
  load the sanitizer runtime); opts.stdin: a file to read stdin from
  (default /dev/null). The process's stdout and stderr go to p.out, p.err. ]]
function M.spawn(argv, opts)
  opts = opts or {}
  local base = os.tmpname()
  local p = setmetatable({ base = base, out = base .. ".out", err = base .. ".err",
    pidfile = base .. ".pid", statusfile = base .. ".status", argv = argv }, P)
  local words = {}
  if opts.unset and #opts.unset > 0 then
    words[#words + 1] = "env"
    for _, name in ipairs(opts.unset) do
      words[#words + 1] = "-u"
      words[#words + 1] = M.quote(name)
    end
  end
  for _, a in ipairs(argv) do words[#words + 1] = M.quote(a) end
  local q = M.quote
  local script = table.concat({
    table.concat(words, " ") .. " <" .. q(opts.stdin or "/dev/null") .. " >" .. q(p.out) .. " 2>" .. q(p.err) .. " &",
    "echo $! >" .. q(p.pidfile .. ".tmp") .. " && mv " .. q(p.pidfile .. ".tmp") .. " " .. q(p.pidfile),
    "wait $!",
    "echo $? >" .. q(p.statusfile .. ".tmp") .. " && mv " .. q(p.statusfile .. ".tmp") .. " " .. q(p.statusfile),
  }, "\n")
  assert(os.execute("sh -c " .. q(script) .. " >/dev/null 2>&1 &"))
  local pid = step_until(function()
    local s = slurp(p.pidfile)
    return s and tonumber(s:match("^(%d+)"))
  end, 10)
  if not pid then error("proc: no PID for " .. table.concat(argv, " "), 2) end
  assert(pid >= 2, "proc: bad PID")
  p.pid = pid
  live[p] = true
  spawned[p] = true
  return p
end

-- Exit status once the process has exited, else nil.
function P:status()
  local s = slurp(self.statusfile)
  local n = s and tonumber(s:match("^(%d+)"))
  if n then live[self] = nil end
  return n
end

-- Wait (stepping the loop) up to timeout seconds for the exit; the status or
-- nil on timeout.
function P:wait(timeout)
  return step_until(function() return self:status() end, timeout or 10)
end

-- Send a signal ("TERM", "KILL", …) to the process if it still runs.
function P:signal(sig)
  if self:status() or not self.pid or self.pid < 2 then return false end
  return os.execute(("kill -%s %d 2>/dev/null"):format(sig, self.pid)) == true
end

function P:stdout() return slurp(self.out) or "" end
function P:stderr() return slurp(self.err) or "" end

-- Wait (stepping the loop) until stdout matches pattern; the captures, or
-- nil, "exited"/"timeout".
function P:wait_output(pattern, timeout)
  local res
  local ok = step_until(function()
    res = { self:stdout():match(pattern) }
    if #res > 0 then return true end
    if self:status() then return true end
  end, timeout or 10)
  if #res > 0 then return table.unpack(res) end
  return nil, ok and "exited" or "timeout"
end

-- Remove the files of a process that has exited.
function P:remove_files()
  for _, f in ipairs { self.base, self.out, self.err, self.pidfile, self.statusfile } do os.remove(f) end
  spawned[self] = nil
end

-- Kill (SIGKILL, by PID) every process still running, wait for them, and
-- remove the files of every process started.
function M.cleanup()
  for p in pairs(live) do
    if not p:status() then
      p:signal("KILL")
      p:wait(5)
    end
    live[p] = nil
  end
  for p in pairs(spawned) do
    if p:status() then p:remove_files() end
  end
end

function M.have_python()
  local f = io.open(M.PYTHON)
  if f then f:close() return true end
  return false
end

--[[ raw(port, request [, opts]) -> {how, elapsed, response}
  A plain TCP peer (spec/support/rawtcp.py under /usr/bin/python3): connects
  to 127.0.0.1:port, sends request (bytes; nil sends nothing), reads until
  the server closes (how "eof"), resets ("reset") or opts.timeout seconds
  pass ("timeout"); with opts.head, only until the response head is whole
  ("head": for an answer after which the server keeps the connection, such
  as a 101, so that opts.timeout only bounds the wait). elapsed: seconds
  from just before connect to that moment (never shorter than the server's
  view). The loop is stepped while it runs. ]]
function M.raw(port, request, opts)
  opts = opts or {}
  local reqfile = os.tmpname()
  local f = assert(io.open(reqfile, "wb"))
  f:write(request or "")
  f:close()
  local p = M.spawn({ M.PYTHON, "spec/support/rawtcp.py", opts.host or "127.0.0.1", tostring(port),
    reqfile, tostring(opts.timeout or 5), opts.head and "head" or nil }, { unset = { "LD_PRELOAD" } })
  local status = p:wait((opts.timeout or 5) + 10)
  os.remove(reqfile)
  if status ~= 0 then
    if not status then p:signal("KILL") end
    error(("rawtcp.py: exit %s: %s"):format(tostring(status), p:stderr()), 2)
  end
  local out = p:stdout()
  p:remove_files()
  local how, elapsed, rest = out:match("^(%a+) ([%d.]+)\n(.*)$")
  if not how then error("rawtcp.py: unexpected output: " .. out, 2) end
  return { how = how, elapsed = tonumber(elapsed), response = rest }
end

-- The status code and the head of an HTTP response, lower-cased names.
function M.parse_response(s)
  local status = tonumber(s:match("^HTTP/1%.1 (%d%d%d)"))
  local head, body = s:match("^(.-)\r\n\r\n(.*)$")
  local headers = {}
  for name, value in (head or ""):gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do
    headers[name:lower()] = value
  end
  return status, headers, body
end

return M
