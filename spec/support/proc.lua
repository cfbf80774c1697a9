-- SPDX-License-Identifier: MIT
--
-- spec/support/proc.lua: the one process helper of the specs (and of
-- scripts/soak.lua): start a program from an argv, wait for a line of its
-- output, signal it by PID, tell whether it runs, read its exit status, run
-- one to completion under a time limit, kill what is left; plus raw TCP
-- peers (one write, or a script of writes and pauses), HTTP response
-- parsing, and the Python to run peers with.
--
--   local proc = require "support.proc"
--   local p = proc.spawn { "lua5.4", "examples/echo.lua", "--port", "0" }
--   local port = assert(p:wait_line("listening on http://[^:]+:(%d+)/", 10))
--   p:signal("TERM"); local status = p:wait(5)              -- exit status
--   local out, code = proc.run({ proc.PYTHON, "-c", "print(1)" }, { timeout = 20 })
--   proc.cleanup()                                          -- in after_each
--   local port = proc.free_port()                           -- for nginx, redis-server
--
-- A program gets its arguments as they are: no shell reads them, so there
-- is no quoting to get wrong. It runs under a small sh that writes its PID,
-- then its exit status (128 + n for signal n) to files beside its output,
-- so nothing here blocks. Every wait has a deadline; while it waits it steps
-- the luaws loop when luaws.core is loaded (a server in this process keeps
-- serving; package.loaded["luaws.core"]) and sleeps otherwise. Signals go to
-- one PID this module started, never by name, never to a group; PIDs below
-- 2 are refused.

local M = {}

local tonumber, tostring, type = tonumber, tostring, type

-- Debian's python3 has python3-websockets; LUAWS_PYTHON names another.
M.PYTHON = os.getenv("LUAWS_PYTHON") or "/usr/bin/python3"

-- Quote a string for /bin/sh: proc.quote("it's") --> 'it'\''s'
function M.quote(s)
  return "'" .. tostring(s):gsub("'", [['\'']]) .. "'"
end

-- The whole contents of a file, or nil, err.
function M.read_all(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("a")
  f:close()
  return s
end

-- Seconds on a clock whose differences mean something: luaws's when it is
-- loaded, else /proc/uptime (else os.time).
function M.now()
  local core = package.loaded["luaws.core"]
  if core then return core.now() end
  local t = tonumber((M.read_all("/proc/uptime") or ""):match("^[%d.]+") or "")
  return t or os.time()
end

-- Sleep s seconds without stepping the loop (a spec that freezes on purpose).
function M.sleep(s)
  os.execute(("sleep %.3f"):format(s))
end

--[[ wait_until(cond, timeout) -> cond's value | nil
  Calls cond until it returns a true value or timeout seconds pass; between
  calls steps the luaws loop (10 ms) when luaws.core is loaded, else sleeps
  50 ms. ]]
function M.wait_until(cond, timeout)
  local deadline = M.now() + timeout
  while true do
    local v = cond()
    if v then return v end
    if M.now() > deadline then return nil end
    local core = package.loaded["luaws.core"]
    if core then core.step(0.01) else M.sleep(0.05) end
  end
end

-- The environment (for opts.env) that lets a lua5.4 started from the
-- repository root find luaws in lua/ and build/ when the script does not
-- set its own paths.
function M.luaws_env()
  return {
    LUA_PATH = "lua/?.lua;lua/?/init.lua;" .. (os.getenv("LUA_PATH") or ";"),
    LUA_CPATH = "build/?.so;" .. (os.getenv("LUA_CPATH") or ";"),
  }
end

local live = {}     -- processes started and not yet seen to exit
local spawned = {}  -- every process started whose files are still there

local P = {}
P.__index = P

--[[ spawn(argv [, opts]) -> process
  argv: the program and its arguments. opts.env: {NAME = value} to set;
  opts.unset: names to drop (e.g. {"LD_PRELOAD"}, for a peer that must not
  load the sanitizer runtime); opts.cwd: the directory it runs in;
  opts.stdin: a file to read (default /dev/null); opts.merge: stderr into
  the same file as stdout (their lines then keep their order). The fields
  pid, argv and cmd (argv as one line, for messages). Errors when no PID
  comes within 10 s. ]]
function M.spawn(argv, opts)
  opts = opts or {}
  assert(type(argv) == "table" and #argv > 0, "proc.spawn: argv must be a non-empty list")
  local q = M.quote
  local base = os.tmpname()
  local p = setmetatable({ base = base, out = base .. ".out", err = opts.merge and base .. ".out" or base .. ".err",
    pidfile = base .. ".pid", statusfile = base .. ".status", argv = argv, cmd = table.concat(argv, " ") }, P)
  local words = { "env" }   -- env(1) execs the program: $! is the program's own PID
  for _, name in ipairs(opts.unset or {}) do
    words[#words + 1] = "-u " .. q(name)
  end
  if opts.cwd then words[#words + 1] = "-C " .. q(opts.cwd) end
  local names = {}
  for k in pairs(opts.env or {}) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    assert(tostring(k):match("^[%a_][%w_]*$"), "proc.spawn: bad environment variable name")
    words[#words + 1] = q(k .. "=" .. tostring(opts.env[k]))
  end
  for _, a in ipairs(argv) do words[#words + 1] = q(a) end
  local script = table.concat({
    table.concat(words, " ") .. " <" .. q(opts.stdin or "/dev/null") .. " >" .. q(p.out)
      .. (opts.merge and " 2>&1" or " 2>" .. q(p.err)) .. " &",
    "echo $! >" .. q(p.pidfile .. ".tmp") .. " && mv " .. q(p.pidfile .. ".tmp") .. " " .. q(p.pidfile),
    "wait $!",
    "echo $? >" .. q(p.statusfile .. ".tmp") .. " && mv " .. q(p.statusfile .. ".tmp") .. " " .. q(p.statusfile),
  }, "\n")
  assert(os.execute("sh -c " .. q(script) .. " >/dev/null 2>&1 &"))
  spawned[p] = true
  local pid = M.wait_until(function()
    local s = M.read_all(p.pidfile)
    return s and tonumber(s:match("^(%d+)"))
  end, 10)
  if not pid or pid < 2 then error("proc.spawn: no PID for " .. p.cmd, 2) end
  p.pid = pid
  live[p] = true
  return p
end

-- The exit status once the process has exited, else nil.
function P:status()
  if self.exit_status then return self.exit_status end
  local s = M.read_all(self.statusfile)
  local n = s and tonumber(s:match("^(%d+)"))
  if n then
    live[self] = nil
    self.exit_status = n
  end
  return n
end

-- Does it still run? (A zombie does not.)
function P:alive()
  if self:status() then return false end
  local stat = M.read_all("/proc/" .. self.pid .. "/stat")
  if not stat then return false end
  local state = stat:match(".*%)%s+(%a)")   -- after the last ")": comm may hold one
  return state ~= nil and state ~= "Z" and state ~= "X"
end

-- Wait up to timeout seconds (default 10) for the exit: the status, or nil.
function P:wait(timeout)
  return M.wait_until(function() return self:status() end, timeout or 10)
end

-- Send a signal ("TERM", "KILL", "USR1", …) to the process if it still
-- runs. True if kill(1) succeeded.
function P:signal(sig)
  sig = tostring(sig or "TERM")
  assert(sig:match("^%w+$"), "proc: bad signal name")
  if self:status() or not self.pid or self.pid < 2 then return false end
  return os.execute(("kill -%s %d 2>/dev/null"):format(sig, self.pid)) == true
end

--[[ p:stop([timeout]) -> true | false, why
  SIGTERM, wait up to timeout seconds (default 5), SIGKILL if it is still
  there. True if it exited after the SIGTERM; false and why if it had
  exited before (it should have been running) or needed SIGKILL. ]]
function P:stop(timeout)
  timeout = timeout or 5
  local status = self:status()
  if status then return false, ("it had exited before SIGTERM (status %d)"):format(status) end
  self:signal("TERM")
  if self:wait(timeout) then return true end
  self:signal("KILL")
  self:wait(5)
  return false, ("PID %d did not exit within %g s of SIGTERM (sent SIGKILL)"):format(self.pid, timeout)
end

function P:stdout() return M.read_all(self.out) or "" end
function P:stderr() return self.err == self.out and "" or (M.read_all(self.err) or "") end

-- The captures of the first whole line of text that matches pattern, or nil.
-- partial: also the last line when it has no newline yet.
local function match_line(text, pattern, partial)
  if partial and text ~= "" and text:sub(-1) ~= "\n" then text = text .. "\n" end
  for line in text:gmatch("([^\n]*)\n") do
    local caps = table.pack(line:match(pattern))
    if caps[1] ~= nil then return caps end
  end
end

--[[ p:wait_line(pattern [, timeout]) -> captures | nil, why
  Wait up to timeout seconds (default 10) for a line of stdout (a whole
  one: a line still being written does not count) that matches the Lua
  pattern; returns its captures (or the whole match). nil and why (the
  process exited, or time ran out, with what it printed) otherwise. ]]
function P:wait_line(pattern, timeout)
  timeout = timeout or 10
  local caps, exited
  M.wait_until(function()
    exited = self:status()   -- read before the output: what it printed before its exit is all there
    caps = match_line(self:stdout(), pattern, exited ~= nil)
    return caps or exited
  end, timeout)
  if caps then return table.unpack(caps, 1, caps.n) end
  local why = exited and ("%s exited (status %d) before printing a line matching %q")
    :format(self.cmd, exited, pattern)
    or ("%s printed no line matching %q within %g s"):format(self.cmd, pattern, timeout)
  return nil, ("%s\n--- stdout ---\n%s\n--- stderr ---\n%s"):format(why, self:stdout():sub(-2000),
    self:stderr():sub(-2000))
end

-- Remove the process's files (once it has exited).
function P:remove_files()
  for _, f in ipairs { self.base, self.out, self.err, self.pidfile, self.statusfile } do os.remove(f) end
  spawned[self] = nil
end

--[[ run(argv [, opts]) -> output, status | output, nil, why
  Runs argv to completion, stdout and stderr together in output. opts as in
  spawn, plus opts.timeout (default 120 s): a program still running then is
  sent SIGKILL, and status is nil. The loop is stepped while it runs. ]]
function M.run(argv, opts)
  opts = opts or {}
  local o = { merge = true }
  for k, v in pairs(opts) do o[k] = v end
  local p = M.spawn(argv, o)
  local timeout = opts.timeout or 120
  local status = p:wait(timeout)
  local why
  if not status then
    p:signal("KILL")
    p:wait(5)
    why = ("%s ran past %g s (sent SIGKILL)"):format(p.cmd, timeout)
  end
  local out = p:stdout()
  p:remove_files()
  return out, status, why
end

-- run(argv, opts), raising with the output unless it exited 0; the output.
-- Usage: proc.check { "mkdir", "-p", dir }
function M.check(argv, opts)
  local out, status, why = M.run(argv, opts)
  if status ~= 0 then
    error(("%s: %s\n%s"):format(table.concat(argv, " "), why or ("exit " .. tostring(status)), out:sub(-2000)), 2)
  end
  return out
end

-- Kill (SIGKILL, by PID) every process started here that still runs, wait
-- for each (5 s at most), and remove the files of every one that exited.
-- A TCP port on 127.0.0.1 that nothing listens on now (bound with luaws at
-- port 0 and let go), for a server the spec starts (nginx, redis-server).
function M.free_port()
  local luaws = require "luaws"
  local s = assert(luaws.listen { host = "127.0.0.1", port = 0 })
  local port = s.port
  s:close(0)
  return port
end

-- python3-websockets' answer to "hello" at url (spec/support/proxied_client.py;
-- args: its options, e.g. { "--unix", path } or { "--from", "127.0.0.2" }).
function M.proxied_reply(url, args, wait)
  local argv = { M.PYTHON, "spec/support/proxied_client.py", url }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local p = M.spawn(argv, { unset = { "LD_PRELOAD" } })
  local reply = p:wait_line("^reply (.*)$", wait or 20)
  assert(reply, "no reply: " .. p:stdout() .. p:stderr())
  p:wait(wait or 20)
  return reply
end

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

local python_has = {}

--[[ have_python([module]) -> true | false, why
  Whether M.PYTHON exists and, given a module name, can import it
  (remembered per module). ]]
function M.have_python(module)
  local f = io.open(M.PYTHON)
  if not f then return false, M.PYTHON .. " does not exist" end
  f:close()
  if not module then return true end
  if python_has[module] == nil then
    local _, status = M.run({ M.PYTHON, "-c", "import " .. module }, { timeout = 20, unset = { "LD_PRELOAD" } })
    python_has[module] = status == 0
  end
  if python_has[module] then return true end
  return false, ("%s cannot import %s"):format(M.PYTHON, module)
end

local command_has = {}

--[[ have_command(name) -> boolean
  Whether name is a command on PATH (`command -v`), remembered per name. ]]
function M.have_command(name)
  if command_has[name] == nil then
    command_has[name] = os.execute("command -v " .. M.quote(name) .. " >/dev/null 2>&1") == true
  end
  return command_has[name]
end

--[[ tmpdir() -> path
  A fresh empty directory (os.tmpname's name, made a directory); the
  caller removes it. ]]
function M.tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p " .. M.quote(d)))
  return d
end

local node_ws   -- nil until asked: then true, or the reason it is missing

--[[ have_node_ws() -> true | false, why
  Whether node is on PATH and npm's ws is under spec/peers/node_modules
  (scripts/deps.sh installs it); remembered. Paths are from the repository
  root, where make test runs busted. ]]
function M.have_node_ws()
  if node_ws == nil then
    local _, code = M.run({ "node", "--version" }, { timeout = 20 })
    local f = code == 0 and io.open("spec/peers/node_modules/ws/package.json")
    if f then f:close() end
    node_ws = code ~= 0 and "no node on PATH"
      or not f and "spec/peers/node_modules/ws is missing (scripts/deps.sh installs it)"
      or true
  end
  if node_ws == true then return true end
  return false, node_ws
end

--[[ raw(port, request [, opts]) -> {how, elapsed, response}
  A plain TCP peer (spec/support/rawtcp.py): connects to 127.0.0.1:port
  (opts.host), sends request (bytes; nil sends nothing), reads until the
  server closes (how "eof"), resets ("reset") or opts.timeout seconds
  (default 5) pass ("timeout"); with opts.head, only until the response head
  is whole ("head": for an answer after which the server keeps the
  connection, such as a 101, so that opts.timeout only bounds the wait).
  elapsed: seconds from just before connect to that moment (never shorter
  than the server's view). The loop is stepped while it runs. ]]
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

--[[ raw_steps(port, steps [, opts]) -> {how, elapsed, response}
  A plain TCP peer that plays steps (spec/support/rawsteps.py) on
  127.0.0.1:port (opts.host): { "send", bytes }, { "sleep", seconds } (reading
  meanwhile), { "hold", seconds } (not reading), { "shut" } (half-close);
  then it reads until the server closes
  or opts.timeout seconds (default 5) from the connect pass. how: "eof",
  "reset", "timeout", or "broken" (a send found the server gone). The loop
  is stepped while it runs. ]]
function M.raw_steps(port, steps, opts)
  opts = opts or {}
  local file = os.tmpname()
  local f = assert(io.open(file, "wb"))
  for _, st in ipairs(steps) do
    if st[1] == "send" then
      f:write("send ", (st[2]:gsub(".", function(c) return ("%02x"):format(c:byte()) end)), "\n")
    elseif st[1] == "sleep" or st[1] == "hold" then
      f:write(("%s %.3f\n"):format(st[1], st[2]))
    elseif st[1] == "shut" then
      f:write("shut\n")
    else
      error("proc.raw_steps: unknown step " .. tostring(st[1]), 2)
    end
  end
  f:close()
  local p = M.spawn({ M.PYTHON, "spec/support/rawsteps.py", opts.host or "127.0.0.1", tostring(port), file,
    tostring(opts.timeout or 5) }, { unset = { "LD_PRELOAD" } })
  local status = p:wait((opts.timeout or 5) + 10)
  os.remove(file)
  if status ~= 0 then
    if not status then p:signal("KILL") end
    error(("rawsteps.py: exit %s: %s"):format(tostring(status), p:stderr()), 2)
  end
  local out = p:stdout()
  p:remove_files()
  local how, elapsed, rest = out:match("^(%a+) ([%d.]+)\n(.*)$")
  if not how then error("rawsteps.py: unexpected output: " .. out, 2) end
  return { how = how, elapsed = tonumber(elapsed), response = rest }
end

--[[ parse_responses(s) -> list of {status, headers, body}
  Every HTTP/1.1 response in s, in order, read as a client would: a body by
  its Content-Length, chunked (decoded), or to the end; none after a 1xx
  or 204/304 or HEAD (opts.head). Stops at bytes it cannot read (the list
  then has .rest). ]]
function M.parse_responses(s, opts)
  local out, pos = {}, 1
  while pos <= #s do
    local line_end = s:find("\r\n\r\n", pos, true)
    if not line_end then break end
    local head = s:sub(pos, line_end - 1)
    local status = tonumber(head:match("^HTTP/1%.%d (%d%d%d)"))
    if not status then break end
    local headers = {}
    for name, value in head:gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do headers[name:lower()] = value end
    pos = line_end + 4
    local body = ""
    if status < 200 or status == 204 or status == 304 or (opts and opts.head) then
      body = ""
    elseif headers["transfer-encoding"] then
      local parts = {}
      while true do
        local size_end = s:find("\r\n", pos, true)
        if not size_end then return out end
        local size = tonumber(s:sub(pos, size_end - 1):match("^%x+"), 16)
        if not size then out.rest = s:sub(pos) return out end
        pos = size_end + 2
        if size == 0 then
          local trailer_end = s:find("\r\n", pos, true)
          pos = (trailer_end or #s) + 2
          break
        end
        parts[#parts + 1] = s:sub(pos, pos + size - 1)
        pos = pos + size + 2
      end
      body = table.concat(parts)
    elseif headers["content-length"] then
      local n = tonumber(headers["content-length"])
      body = s:sub(pos, pos + n - 1)
      pos = pos + n
    else
      body = s:sub(pos)
      pos = #s + 1
    end
    out[#out + 1] = { status = status, headers = headers, body = body }
  end
  if pos <= #s then out.rest = s:sub(pos) end
  return out
end

-- The status code, the headers (lower-case names) and the body of an HTTP
-- response.
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
