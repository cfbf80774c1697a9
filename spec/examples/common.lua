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
-- The processes are support.proc's (stdout and stderr in one file, in
-- order); every wait is bounded, and they are stopped by PID (SIGTERM, then
-- SIGKILL).

local proc = require "support.proc"

local M = {}

M.READY = "^luaws (%S+) listening on http://127%.0%.0%.1:(%d+)/$"

-- The repository root, from where this file lives.
function M.root()
  local src = debug.getinfo(1, "S").source
  src = src:sub(1, 1) == "@" and src:sub(2) or ""
  return src:match("^(.*)/spec/examples/[^/]*$") or "."
end

-- The JSON the chat example speaks: Debian's lua-cjson (safe: nil on bad input).
function M.json()
  return require "cjson.safe"
end

local running = {}

-- How the scripts are run: from the root, finding lua/ and build/ there.
local function run_opts()
  return { cwd = M.root(), merge = true, env = proc.luaws_env() }
end

-- { "lua5.4", script, extra..., args... }
local function argv(script, args, extra)
  local t = { "lua5.4", script }
  for _, a in ipairs(extra or {}) do t[#t + 1] = a end
  for _, a in ipairs(args or {}) do t[#t + 1] = a end
  return t
end

local methods = {}
local mt = { __index = methods }

-- ws:// URL of path on the example.
function methods:url(path) return ("ws://127.0.0.1:%d%s"):format(self.port, path or "/ws") end

-- Everything the process printed so far (stdout and stderr together).
function methods:output() return self.final_output or self.proc:stdout() end

-- Step the luaws loop until the output has a line matching pattern (a Lua
-- pattern); returns its captures. Errors after timeout seconds with the
-- output; what names the line in that error.
function methods:wait_output(pattern, what, timeout)
  local caps = table.pack(self.proc:wait_line(pattern, timeout or 10))
  if caps[1] == nil then error(("waiting for %s: %s"):format(what or pattern, caps[2]), 2) end
  return table.unpack(caps, 1, caps.n)
end

-- Send a signal to the process; wait (stepping the loop) for its exit status.
function methods:signal(sig) return self.proc:signal(sig) end
function methods:wait(timeout) return self.proc:wait(timeout) end

-- Is the process still running?
function methods:alive() return self.proc:alive() end

-- SIGTERM, wait, SIGKILL if needed. Returns true if it exited on SIGTERM,
-- false and why otherwise (also when it had already exited). Idempotent.
function methods:stop(timeout)
  if self.stopped ~= nil then return self.stopped, self.why end
  self.stopped, self.why = self.proc:stop(timeout or 5)
  self.final_output = self.proc:stdout()
  self.proc:remove_files()
  return self.stopped, self.why
end

local function started(p)
  local self = setmetatable({ proc = p, pid = p.pid, cmd = p.cmd }, mt)
  running[#running + 1] = self
  return self
end

-- Start script (relative to the root) with args; wait for its listening line.
-- Returns an object with :url(path), :output(), :wait_output(), :signal(),
-- :wait(), :alive(), :stop(), and the fields name, port, pid, cmd.
function M.start(script, args, timeout)
  local self = started(proc.spawn(argv(script, args, { "--port", "0", "--host", "127.0.0.1" }), run_opts()))
  local name, port = self.proc:wait_line(M.READY, timeout or 10)
  if not name then
    local _, why = self:stop(2)
    error(("%s did not start: %s (%s)"):format(self.cmd, port, why), 2)
  end
  self.name, self.port = name, tonumber(port)
  return self
end

-- Run script to completion with args (no --port/--host added), at most
-- timeout seconds. Returns its output and exit status (nil on timeout).
function M.run(script, args, timeout)
  local o = run_opts()
  o.timeout = timeout or 30
  return proc.run(argv(script, args), o)
end

-- Start script with args in the background without waiting for a listening
-- line (a client). Stopped by stop_all like the servers; set .may_exit when
-- it is expected to end on its own.
function M.spawn(script, args)
  return started(proc.spawn(argv(script, args), run_opts()))
end

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
