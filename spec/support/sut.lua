-- SPDX-License-Identifier: MIT
-- spec/support/sut.lua: start and stop the server under test for the
-- conformance and peer specs.
--
-- The server is a command run from the repository root that prints one line,
-- `luaws echo listening on http://127.0.0.1:PORT/`, once it listens (the luaws
-- echo contract, spec/conformance/README.md). By default it is luaws's sample
-- app; LUAWS_CONFORMANCE_SERVER replaces the command, e.g. with the stand-in:
--   LUAWS_CONFORMANCE_SERVER="/usr/bin/python3 spec/support/standin_echo.py --port 0 --host 127.0.0.1"
-- It is stopped by its PID with SIGTERM, never by name.

local proc = require("support.proc")

local M = {}

M.DEFAULT = "lua5.4 examples/echo.lua --port 0 --host 127.0.0.1"
M.ENV = "LUAWS_CONFORMANCE_SERVER"
M.PYTHON = os.getenv("LUAWS_PYTHON") or "/usr/bin/python3"   -- Debian's, which has websockets
M.READY = "^luaws echo listening on http://[^/]+:(%d+)/%s*$"

--- Repository root, derived from where this file lives.
function M.root()
  local src = debug.getinfo(1, "S").source
  src = src:sub(1, 1) == "@" and src:sub(2) or ""
  return src:match("^(.*)/spec/support/[^/]*$") or (src:match("^spec/support/") and ".") or "."
end

--- The command that starts the server under test.
function M.command()
  local cmd = os.getenv(M.ENV)
  if cmd and cmd:match("%S") then return cmd end
  return M.DEFAULT
end

--- Start the server and wait (at most timeout s, default 10) for its port.
-- Returns {proc=, port=, url="ws://127.0.0.1:PORT/ws", cmd=} or nil, reason.
function M.start(timeout)
  local cmd = M.command()
  local p, err = proc.spawn(cmd, {
    cwd = M.root(),
    -- Let the sample app find lua/ and build/ when it does not set its paths itself.
    env = {
      LUA_PATH = "lua/?.lua;lua/?/init.lua;" .. (os.getenv("LUA_PATH") or ";"),
      LUA_CPATH = "build/?.so;" .. (os.getenv("LUA_CPATH") or ";"),
    },
  })
  if not p then return nil, err end
  local port, why = proc.wait_line(p, M.READY, timeout or 10)
  if not port then
    proc.stop(p, 2)
    proc.cleanup(p)
    return nil, string.format("server did not start (%s): %s", cmd, why)
  end
  return { proc = p, port = tonumber(port), url = "ws://127.0.0.1:" .. port .. "/ws", cmd = cmd }
end

--- Stop the server by PID (SIGTERM, then SIGKILL after timeout s, default 5).
-- Returns true if it exited on SIGTERM, else false, reason. Idempotent.
function M.stop(s, timeout)
  if not s or s.stopped ~= nil then return s and s.stopped, s and s.stop_err end
  if not proc.alive(s.proc.pid) then
    -- It should still be serving: it crashed or exited on its own.
    s.stopped = false
    s.stop_err = "the server had already exited before SIGTERM; its output: "
      .. (proc.read_all(s.proc.out) or ""):sub(-2000)
    proc.cleanup(s.proc)
    return s.stopped, s.stop_err
  end
  s.stopped, s.stop_err = proc.stop(s.proc, timeout or 5)
  if s.stopped and proc.alive(s.proc.pid) then
    s.stopped, s.stop_err = false, "PID " .. s.proc.pid .. " still alive after stop"
  end
  s.output = proc.read_all(s.proc.out)
  proc.cleanup(s.proc)
  return s.stopped, s.stop_err
end

--- True if /usr/bin/python3 (or LUAWS_PYTHON) can import python3-websockets.
function M.has_python_websockets()
  local _, code = proc.run(M.PYTHON .. " -c 'import websockets'", { timeout = 20 })
  return code == 0
end

return M
