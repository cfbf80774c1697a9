-- SPDX-License-Identifier: MIT
-- spec/support/proc.lua: process helpers for specs, in plain Lua 5.4 (no C modules).
--
-- What it does: start a command in the background with its output going to a
-- temporary file, wait for a line in that output, signal it by PID, tell
-- whether a PID is still alive, wait for it to exit, run a command to
-- completion under a time limit.
--
-- What it deliberately does not do: kill by name (pkill, killall), kill
-- process groups, or wait without a bound. Every loop here has a deadline;
-- PIDs below 2 are refused, so a parsing slip can never signal init or
-- "all processes".
--
-- Commands are run by /bin/sh. spawn() execs the command so that the PID it
-- returns is the command's own, which only works for a simple command
-- ("prog arg arg", optionally with VAR=value in opts.env), not a pipeline.

local M = {}

local tonumber, tostring, type = tonumber, tostring, type
local io_open, io_popen, os_execute = io.open, io.popen, os.execute

--- Quote a string for /bin/sh.
-- Usage: proc.quote("it's") --> 'it'\''s'
function M.quote(s)
  return "'" .. tostring(s):gsub("'", [['\'']]) .. "'"
end

--- Wall-clock seconds with sub-second resolution where /proc/uptime exists.
-- Only differences between two calls mean anything.
function M.now()
  local f = io_open("/proc/uptime", "r")
  if f then
    local t = f:read("n")
    f:close()
    if t then return t end
  end
  return os.time()
end

--- Sleep for s seconds (fractions allowed).
function M.sleep(s)
  os_execute(string.format("sleep %.3f", s))
end

--- Whole contents of a file, or nil, err.
function M.read_all(path)
  local f, err = io_open(path, "rb")
  if not f then return nil, err end
  local s = f:read("a")
  f:close()
  return s
end

local function check_pid(pid)
  if type(pid) == "table" then pid = pid.pid end
  pid = tonumber(pid)
  if not pid or pid ~= math.floor(pid) or pid < 2 then
    error("proc: refusing to use PID " .. tostring(pid), 3)
  end
  return math.floor(pid)
end

--- Start cmd in the background.
-- opts.env: table of extra environment variables; opts.cwd: directory to run
-- in; opts.out: output file (default: a new temporary file). stdout and
-- stderr both go to the output file; stdin is /dev/null.
-- Returns {pid = n, out = path, cmd = cmd} or nil, err.
-- Usage: local p = proc.spawn("lua5.4 examples/echo.lua --port 0", {cwd = root})
function M.spawn(cmd, opts)
  opts = opts or {}
  local out = opts.out or os.tmpname()
  local parts = {}
  if opts.cwd then parts[#parts + 1] = "cd " .. M.quote(opts.cwd) .. " &&" end
  parts[#parts + 1] = "exec"
  if opts.env and next(opts.env) then
    parts[#parts + 1] = "env"
    local names = {}
    for k in pairs(opts.env) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do
      assert(tostring(k):match("^[%a_][%w_]*$"), "proc.spawn: bad environment variable name")
      parts[#parts + 1] = k .. "=" .. M.quote(opts.env[k])
    end
  end
  parts[#parts + 1] = cmd
  local line = "(" .. table.concat(parts, " ") .. ") > " .. M.quote(out) .. " 2>&1 < /dev/null & echo $!"
  local pipe, err = io_popen(line, "r")
  if not pipe then return nil, "proc.spawn: " .. tostring(err) end
  local pid = tonumber(pipe:read("l"))
  pipe:close()
  if not pid or pid < 2 then return nil, "proc.spawn: no PID for " .. cmd end
  return { pid = pid, out = out, cmd = cmd }
end

--- Is the process alive? A zombie counts as dead (nobody may reap it here).
-- Usage: proc.alive(p.pid) or proc.alive(p)
function M.alive(pid)
  pid = check_pid(pid)
  local f = io_open("/proc/" .. pid .. "/stat", "r")
  if f then
    local stat = f:read("a") or ""
    f:close()
    local state = stat:match(".*%)%s+(%a)")  -- last ")": comm may hold one
    return state ~= nil and state ~= "Z" and state ~= "X"
  end
  if io_open("/proc/self/stat", "r") then return false end -- /proc works: pid is gone
  return os_execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

--- Send a signal (default TERM) to one PID. Returns true if kill succeeded.
-- Usage: proc.kill(p) / proc.kill(p, "KILL")
function M.kill(pid, sig)
  pid = check_pid(pid)
  sig = sig or "TERM"
  assert(tostring(sig):match("^%w+$"), "proc.kill: bad signal name")
  return os_execute("kill -" .. sig .. " " .. pid .. " 2>/dev/null") == true
end

--- Wait until pid has exited, at most timeout seconds (default 5).
-- Returns true if it is gone.
function M.wait_exit(pid, timeout)
  pid = check_pid(pid)
  timeout = timeout or 5
  local start, step = M.now(), 0.05
  for _ = 1, math.ceil(timeout / step) + 1 do
    if not M.alive(pid) then return true end
    if M.now() - start > timeout then break end
    M.sleep(step)
  end
  return not M.alive(pid)
end

--- SIGTERM, wait up to timeout (default 5 s), then SIGKILL if needed.
-- Returns true if the process left on SIGTERM, or false, reason.
function M.stop(p, timeout)
  local pid = check_pid(p)
  if not M.alive(pid) then return true end
  M.kill(pid, "TERM")
  if M.wait_exit(pid, timeout or 5) then return true end
  M.kill(pid, "KILL")
  M.wait_exit(pid, 2)
  return false, "PID " .. pid .. " did not exit within " .. (timeout or 5) .. " s of SIGTERM (sent SIGKILL)"
end

--- Poll p's output file for a line matching a Lua pattern, at most timeout
-- seconds (default 10). Returns the pattern's captures (or the whole match),
-- or nil, reason (timeout, or the process exited) with the output so far.
-- Usage: local port = proc.wait_line(p, "listening on http://[^:]+:(%d+)/", 10)
function M.wait_line(p, pattern, timeout)
  timeout = timeout or 10
  local start, step = M.now(), 0.05
  local text = ""
  for _ = 1, math.ceil(timeout / step) + 1 do
    text = M.read_all(p.out) or ""
    for line in text:gmatch("[^\n]+") do
      local caps = table.pack(line:match(pattern))
      if caps[1] ~= nil then return table.unpack(caps, 1, caps.n) end
    end
    if not M.alive(p.pid) then
      text = M.read_all(p.out) or text
      for line in text:gmatch("[^\n]+") do
        local caps = table.pack(line:match(pattern))
        if caps[1] ~= nil then return table.unpack(caps, 1, caps.n) end
      end
      return nil, "process exited before printing the line; output: " .. text:sub(1, 2000)
    end
    if M.now() - start > timeout then break end
    M.sleep(step)
  end
  return nil, "no matching line within " .. timeout .. " s; output: " .. text:sub(1, 2000)
end

--- Run cmd to completion (stdout and stderr together) under coreutils
-- `timeout` (default 120 s). Returns output, exit code (124 on timeout).
-- opts.cwd and opts.env as in spawn().
-- Usage: local out, code = proc.run("/usr/bin/python3 client.py", {timeout = 60})
function M.run(cmd, opts)
  opts = opts or {}
  local parts = {}
  if opts.cwd then parts[#parts + 1] = "cd " .. M.quote(opts.cwd) .. " &&" end
  parts[#parts + 1] = string.format("timeout -k 5 %d", math.ceil(opts.timeout or 120))
  if opts.env and next(opts.env) then
    parts[#parts + 1] = "env"
    for k, v in pairs(opts.env) do parts[#parts + 1] = k .. "=" .. M.quote(v) end
  end
  parts[#parts + 1] = cmd
  local pipe = assert(io_popen("(" .. table.concat(parts, " ") .. ") 2>&1 < /dev/null", "r"))
  local out = pipe:read("a")
  local _, _, code = pipe:close()
  return out, code
end

--- Remove p's output file.
function M.cleanup(p)
  if p and p.out then os.remove(p.out) end
end

return M
