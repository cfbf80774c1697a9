-- SPDX-License-Identifier: MIT
--
-- luaws: a WebSocket server (and client) for Lua 5.4 with a C core.
--
-- This is the module scripts use. It re-exports the pieces:
--   luaws.listen{...}            a server (lua/luaws/server.lua)
--   luaws.connect(url, opts)     a client (lua/luaws/client.lua)
--   luaws.run() / step(t) / stop() / shutdown(grace)   the loop
--   luaws.after(t, fn) / every(t, fn)                   timers
-- The C core (luaws.core) does bytes, sockets and time; this layer does
-- options, routes and the coroutine style. See README.md.

local core = require "luaws.core"
local server = require "luaws.server"
local client = require "luaws.client"
require "luaws.conn"   -- adds receive/messages to every connection

local M = {
  version = core.version,
  listen = server.listen,
  connect = client.connect,
  defaults = server.defaults,
}

-- Run the loop until luaws.stop(), or until SIGINT/SIGTERM has closed every
-- connection (1001) or the grace period (default 5 s) has passed.
-- opts.signals = false leaves SIGINT/SIGTERM to the host program.
function M.run(opts)
  opts = opts or {}
  if opts.signals ~= false then core.watch_signals(true, opts.grace or 5) end
  return core.run()
end

-- One loop iteration, waiting at most timeout seconds (default 0).
-- For a host program that has its own loop, and for tests.
function M.step(timeout) return core.step(timeout) end

M.stop = core.stop
M.now = core.now
M.on_error = core.on_error
M.spawn = require("luaws.conn").spawn

-- Graceful stop from a script: close every connection with 1001 and let
-- luaws.run() return once they are gone (or after grace seconds).
function M.shutdown(grace) core.shutdown(grace or 5) end

local function check_fn(fn)
  if type(fn) ~= "function" then error("bad argument #2 (function expected, got " .. type(fn) .. ")", 3) end
end

-- Call fn(timer) once after seconds. Returns the timer (timer:stop()).
function M.after(seconds, fn)
  check_fn(fn)
  return core.timer(seconds, 0, fn)
end

-- Call fn(timer) every seconds, first after seconds. timer:stop() ends it.
function M.every(seconds, fn)
  check_fn(fn)
  if type(seconds) ~= "number" or seconds <= 0 then
    error("bad argument #1 (positive number of seconds expected)", 2)
  end
  return core.timer(seconds, seconds, fn)
end

return M
