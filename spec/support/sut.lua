-- SPDX-License-Identifier: MIT
-- spec/support/sut.lua: start and stop the server under test for the
-- conformance and peer specs.
--
-- The server is a command run from the repository root that prints one line,
-- `luaws echo listening on http://127.0.0.1:PORT/`, once it listens (the luaws
-- echo contract, spec/conformance/README.md). By default it is luaws's sample
-- app; LUAWS_CONFORMANCE_SERVER replaces the command (words separated by
-- spaces, no shell syntax), e.g. with the stand-in:
--   LUAWS_CONFORMANCE_SERVER="/usr/bin/python3 spec/support/standin_echo.py --port 0 --host 127.0.0.1"
-- It is stopped by its PID with SIGTERM, never by name.

local proc = require("support.proc")

local M = {}

M.DEFAULT = { "lua5.4", "examples/echo.lua", "--port", "0", "--host", "127.0.0.1" }
M.ENV = "LUAWS_CONFORMANCE_SERVER"
M.READY = "^luaws echo listening on http://[^/]+:(%d+)/%s*$"

--- Repository root, derived from where this file lives.
function M.root()
  local src = debug.getinfo(1, "S").source
  src = src:sub(1, 1) == "@" and src:sub(2) or ""
  return src:match("^(.*)/spec/support/[^/]*$") or (src:match("^spec/support/") and ".") or "."
end

--- The argv that starts the server under test.
function M.command()
  local argv = {}
  for word in (os.getenv(M.ENV) or ""):gmatch("%S+") do argv[#argv + 1] = word end
  if #argv > 0 then return argv end
  return M.DEFAULT
end

--- Start the server and wait (at most timeout s, default 10) for its port.
-- Returns {proc=, port=, url="ws://127.0.0.1:PORT/ws", cmd=} or nil, reason.
function M.start(timeout)
  local argv = M.command()
  -- the sample app finds lua/ and build/ even when it does not set its paths
  local p = proc.spawn(argv, { cwd = M.root(), merge = true, env = proc.luaws_env() })
  local port, why = p:wait_line(M.READY, timeout or 10)
  if not port then
    p:stop(2)
    p:remove_files()
    return nil, "the server did not start: " .. why
  end
  return { proc = p, port = tonumber(port), url = "ws://127.0.0.1:" .. port .. "/ws", cmd = p.cmd }
end

--- Stop the server by PID (SIGTERM, then SIGKILL after timeout s, default 5).
-- Returns true if it exited on SIGTERM, else false, reason (also when it
-- had exited before: it should still have been serving). Idempotent.
function M.stop(s, timeout)
  if not s or s.stopped ~= nil then return s and s.stopped, s and s.stop_err end
  s.stopped, s.stop_err = s.proc:stop(timeout or 5)
  s.output = s.proc:stdout()
  if not s.stopped then s.stop_err = s.stop_err .. "; its output: " .. s.output:sub(-2000) end
  s.proc:remove_files()
  return s.stopped, s.stop_err
end

return M
