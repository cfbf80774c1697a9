-- SPDX-License-Identifier: MIT
--
-- Noticing that a client has gone. A client that loses its network (a laptop
-- lid, a dead Wi-Fi, a pulled cable) sends no close frame and often no TCP
-- reset either: without a timeout its connection would look open for hours.
--
-- The rule here: clients ping every X seconds; a connection the server has
-- heard nothing from for 2·X seconds is dead. That is one option,
--   luaws.listen { idle_timeout = 2 * X }
-- Anything received counts (a ping, a message). When it fires, luaws tells
-- the client "1001 timeout" if it can still listen, closes the socket and
-- calls the route's close handler with code 1006 and reason "timeout"; this
-- server logs it on stderr.
--
--   lua5.4 examples/timeout.lua --interval 2          -- the server (once built: make)
--   lua5.4 examples/timeout.lua --client ws://localhost:5000/ws --interval 2 --pings 3
--       a client that pings every 2 s, stops after 3 pings and then says
--       nothing: about 4 s later the server logs that it disconnected, and
--       the client prints the close it got (1001 timeout).
--
-- The client side, in your own script (luaws.connect returns the connection):
--   local ws = assert(luaws.connect("ws://localhost:5000/ws"))
--   local pinger = luaws.every(X, function() ws:ping() end)
--
-- Browsers cannot send pings from JavaScript. For them, either send a small
-- message every X seconds, or let the server ask:
--   luaws.listen { keep_alive_interval = X, keep_alive_timeout = X }
-- (the server pings every X s and gives up when no pong came X s later).
--
-- Options: --host H (default localhost), --port N (0 picks a free one),
-- --interval X (seconds, default 10). Client mode: --client URL, --pings N
-- (stop pinging after N; default: never). The server prints one line once
-- it listens:
--   luaws timeout listening on http://HOST:PORT/

-- Run from a checkout without installing: find lua/ and build/ beside us.
local here = (arg and arg[0] or ""):match("^(.-)[^/]*$")
package.path = here .. "../lua/?.lua;" .. here .. "../lua/?/init.lua;" .. package.path
package.cpath = here .. "../build/?.so;" .. package.cpath

local luaws = require "luaws"

local opts = { host = "localhost", port = 5000, interval = 10 }
local usage = "usage: lua5.4 examples/timeout.lua [--host H] [--port N] [--interval X]\n"
  .. "       lua5.4 examples/timeout.lua --client URL [--interval X] [--pings N]\n"
local i = 1
while arg and arg[i] do
  local a, v = arg[i], arg[i + 1]
  if a == "--port" then opts.port = assert(tonumber(v), "--port needs a number")
  elseif a == "--host" then opts.host = assert(v, "--host needs a value")
  elseif a == "--interval" then opts.interval = tonumber(v)
    assert(opts.interval and opts.interval > 0, "--interval needs a positive number of seconds")
  elseif a == "--client" then opts.client = assert(v, "--client needs a ws:// URL")
  elseif a == "--pings" then opts.pings = assert(math.tointeger(tonumber(v)), "--pings needs a whole number")
  else io.stderr:write(usage); os.exit(2) end
  i = i + 2
end
io.stdout:setvbuf("line")
local X = opts.interval

if opts.client then
  -- Client mode: ping every X seconds (opts.pings times, or for ever), then
  -- wait until the server closes the connection.
  local ws, err = luaws.connect(opts.client)
  if not ws then
    io.stderr:write(("timeout client: %s\n"):format(err))   -- "connect ws://...: connection refused"
    os.exit(1)
  end
  print(("client: connected to %s, pinging every %g s"):format(opts.client, X))
  local sent = 0
  luaws.every(X, function(timer)
    if opts.pings and sent >= opts.pings then
      timer:stop()
      print("client: silent from now on")
      return
    end
    sent = sent + 1
    if ws:ping("keep-alive") then print("client: ping " .. sent) end
  end)
  -- receive() turns the loop (so the timer runs) until a message or the close.
  while ws:receive() do end
  print(("client: the server closed the connection: %s %s"):format(ws:close_status()))
  os.exit(0)
end

local server = assert(luaws.listen {
  host = opts.host,
  port = opts.port,
  idle_timeout = 2 * X,       -- heard nothing for 2·X s: the client is gone
  keep_alive_interval = 0,    -- the clients ping; the server does not
})

local function log(fmt, ...)
  io.stderr:write(os.date("%H:%M:%S "), fmt:format(...), "\n")
end

server:route("/ws", {
  open = function(ws)
    ws.data.since = luaws.now()
    log("client %s:%d connected", ws.remote, ws.port)
  end,
  message = function(ws, msg, kind) ws:send(msg, kind) end,
  close = function(ws, code, reason)
    local how = (code == 1006 and reason == "timeout")
      and ("silent for %g s"):format(2 * X) or "closed"
    log("client %s:%d disconnected (%s) after %.1f s: code %d, reason %q",
      ws.remote, ws.port, how, luaws.now() - ws.data.since, code, reason or "")
  end,
})

print(("luaws timeout listening on http://%s:%d/"):format(
  opts.host:find(":", 1, true) and "[" .. opts.host .. "]" or opts.host, server.port))
luaws.run()
