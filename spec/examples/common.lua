-- SPDX-License-Identifier: MIT
-- spec/examples/common.lua: run an example script as a subprocess and drive it.
--
--   local ex = common.start("examples/chat.lua", { "--tick", "0.3" })
--   local ws = assert(luaws.connect(ex:url("/chat")))
--   ex:wait_output("disconnected", "the disconnect log")   -- pumps the loop
--   common.stop_all()                                        -- in after_each
--
-- Each script is started from the repository root as
--   lua5.4 SCRIPT --port 0 --host 127.0.0.1 ARGS...
-- with LUA_PATH/LUA_CPATH pointing at lua/ and build/ (the tutorial files do
-- not set their own paths), and must print
--   luaws NAME listening on http://127.0.0.1:PORT/
-- Every wait is bounded; processes are stopped by PID (SIGTERM, then SIGKILL).

local h = require "helper"
local proc = require "support.proc"

local M = {}

M.READY = "^luaws (%S+) listening on http://127%.0%.0%.1:(%d+)/$"

-- The repository root, from where this file lives.
function M.root()
  local src = debug.getinfo(1, "S").source
  src = src:sub(1, 1) == "@" and src:sub(2) or ""
  return src:match("^(.*)/spec/examples/[^/]*$") or "."
end

-- examples/lib/json.lua, loaded as the chat example loads it.
function M.json()
  return assert(loadfile(M.root() .. "/examples/lib/json.lua"))()
end

local running = {}

-- The environment that lets a script find lua/ and build/ from the root.
local function lua_env()
  return {
    LUA_PATH = "lua/?.lua;lua/?/init.lua;" .. (os.getenv("LUA_PATH") or ";"),
    LUA_CPATH = "build/?.so;" .. (os.getenv("LUA_CPATH") or ";"),
  }
end

-- "lua5.4 script args...", each argument quoted for /bin/sh.
local function command(script, args, extra)
  local parts = { "lua5.4", script }
  for _, a in ipairs(extra or {}) do parts[#parts + 1] = a end
  for _, a in ipairs(args or {}) do parts[#parts + 1] = proc.quote(a) end
  return table.concat(parts, " ")
end

local methods = {}
local mt = { __index = methods }

-- ws:// URL of path on the example.
function methods:url(path) return ("ws://127.0.0.1:%d%s"):format(self.port, path or "/ws") end

-- Everything the process printed so far (stdout and stderr together).
function methods:output() return proc.read_all(self.proc.out) or "" end

-- Step the luaws loop until the output has a line matching pattern (a Lua
-- pattern); returns its captures. Errors after timeout seconds with the output.
function methods:wait_output(pattern, what, timeout)
  local caps
  local ok, err = pcall(h.pump, function()
    for line in self:output():gmatch("[^\n]+") do
      local c = table.pack(line:match(pattern))
      if c[1] ~= nil then caps = c return true end
    end
    return false
  end, what or pattern, timeout or 10)
  if not ok then error(tostring(err) .. "\n--- output of " .. self.cmd .. " ---\n" .. self:output(), 2) end
  return table.unpack(caps, 1, caps.n)
end

-- SIGTERM, wait, SIGKILL if needed. Returns true if it exited on SIGTERM,
-- false and why otherwise (also when it had already died). Idempotent.
function methods:stop(timeout)
  if self.stopped ~= nil then return self.stopped, self.why end
  if not proc.alive(self.proc.pid) then
    self.stopped, self.why = false, "it had exited before SIGTERM"
  else
    self.stopped, self.why = proc.stop(self.proc, timeout or 5)
  end
  self.final_output = self:output()
  proc.cleanup(self.proc)
  self.output = function(s) return s.final_output end
  return self.stopped, self.why
end

-- Start script (relative to the root) with args; wait for its listening line.
-- Returns an object with :url(path), :output(), :wait_output(), :stop(), and
-- the fields name, port, pid, cmd.
function M.start(script, args, timeout)
  local cmd = command(script, args, { "--port", "0", "--host", "127.0.0.1" })
  local p = assert(proc.spawn(cmd, {
    cwd = M.root(),
    env = lua_env(),
  }))
  local self = setmetatable({ proc = p, pid = p.pid, cmd = cmd }, mt)
  running[#running + 1] = self
  local name, port = proc.wait_line(p, M.READY, timeout or 10)
  if not name then
    local _, why = self:stop(2)
    error(("%s did not start: %s %s"):format(cmd, port, why or ""), 2)
  end
  self.name, self.port = name, tonumber(port)
  return self
end

-- Run script to completion with args (no --port/--host added), at most
-- timeout seconds. Returns its output and exit code.
function M.run(script, args, timeout)
  return proc.run(command(script, args), {
    cwd = M.root(), timeout = timeout or 30,
    env = lua_env(),
  })
end

-- Start script with args in the background without waiting for a listening
-- line (a client). Stopped by stop_all like the servers; set .may_exit when
-- it is expected to end on its own.
function M.spawn(script, args)
  local cmd = command(script, args)
  local p = assert(proc.spawn(cmd, {
    cwd = M.root(),
    env = lua_env(),
  }))
  local self = setmetatable({ proc = p, pid = p.pid, cmd = cmd }, mt)
  running[#running + 1] = self
  return self
end

-- Is the process still running?
function methods:alive() return proc.alive(self.proc.pid) end

-- Stop every process started here (after_each). Errors if one had to be
-- killed or had died on its own, after stopping them all.
function M.stop_all()
  local problems = {}
  for i = #running, 1, -1 do
    local ex = running[i]
    running[i] = nil
    local ok, why = ex:stop()
    if not ok and not ex.may_exit then
      problems[#problems + 1] = ex.cmd .. ": " .. tostring(why) .. "\n" .. (ex.final_output or ""):sub(-2000)
    end
  end
  if #problems > 0 then error(table.concat(problems, "\n"), 2) end
end

return M
