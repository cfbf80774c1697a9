-- SPDX-License-Identifier: MIT
--
-- luaws inside a cqueues event loop: the WebSocket echo at
-- ws://localhost:5000/ws, served from a program whose loop is cqueues'
-- (Debian's lua-cqueues), with no LuaSocket and no polling.
--
--   lua5.4 examples/hostloop_cqueues.lua [--host H] [--port N]
--
-- The recipe (README, "Loop"): wait until luaws.pollfd() is readable, for
-- at most luaws.timeout() seconds (nil: no timer, wait for the fd alone),
-- then luaws.step(0); again. Here that is one coroutine, with the fd as a
-- cqueues pollable. Ask luaws.timeout() right before each wait: it also
-- brings the fd up to date with what luaws was asked to do since. Host code
-- that calls luaws while that coroutine waits (the signal coroutine below)
-- wakes it, so that it asks again. SIGINT/SIGTERM are the host's here
-- (cqueues.signal): they start luaws.shutdown(), and the script ends once
-- the server's connections are gone. Prints, once it listens,
--   luaws hostloop_cqueues listening on http://HOST:PORT/

-- Run from a checkout without installing: find lua/ and build/ beside us.
local here = (arg and arg[0] or ""):match("^(.-)[^/]*$")
package.path = here .. "../lua/?.lua;" .. here .. "../lua/?/init.lua;" .. package.path
package.cpath = here .. "../build/?.so;" .. package.cpath

local luaws = require "luaws"
local cqueues = require "cqueues"
local condition = require "cqueues.condition"
local signal = require "cqueues.signal"

local opts = { host = "localhost", port = 5000 }
local i = 1
while arg and arg[i] do
  local a = arg[i]
  if a == "--port" then opts.port = assert(tonumber(arg[i + 1]), "--port needs a number"); i = i + 1
  elseif a == "--host" then opts.host = assert(arg[i + 1], "--host needs a value"); i = i + 1
  else io.stderr:write("usage: lua5.4 examples/hostloop_cqueues.lua [--host H] [--port N]\n"); os.exit(2) end
  i = i + 1
end

local server = assert(luaws.listen { host = opts.host, port = opts.port })
server:route("/ws", {
  message = function(ws, msg, kind) ws:send(msg, kind) end,
})

local cq = cqueues.new()
local luaws_fd = { pollfd = assert(luaws.pollfd()), events = "r" }   -- a cqueues pollable
local wake = condition.new()   -- host code that called luaws signals it
local stopping = false

-- luaws's turn: readiness or luaws's next timer wakes it, never a clock.
cq:wrap(function()
  while true do
    if stopping then
      local st = server:stats()
      if st.connections + st.pending == 0 then break end
    end
    cqueues.poll(luaws_fd, wake, luaws.timeout())
    luaws.step(0)
  end
end)

-- The host's signals (signalfd: blocked first, then read as a pollable).
signal.block(signal.SIGINT, signal.SIGTERM)
cq:wrap(function()
  local signals = signal.listen(signal.SIGINT, signal.SIGTERM)
  signals:wait()
  print("shutting down: connections get 1001")
  io.stdout:flush()
  luaws.shutdown(2)
  stopping = true
  wake:signal()
end)

print(("luaws hostloop_cqueues listening on http://%s:%d/"):format(opts.host, server.port))
io.stdout:flush()
assert(cq:loop())
print("bye")
