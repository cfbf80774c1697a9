local luaws = require "luaws"

local host, port, X = "localhost", 5000, 20   -- [--host H] [--port N] [--interval X]
for i = 1, #arg, 2 do
  if arg[i] == "--host" then host = arg[i + 1]
  elseif arg[i] == "--port" then port = assert(tonumber(arg[i + 1]), "--port needs a number")
  elseif arg[i] == "--interval" then X = assert(tonumber(arg[i + 1]), "--interval needs seconds")
  else error("unknown option " .. arg[i]) end
end

local server = assert(luaws.listen {
  host = host, port = port,
  keep_alive_interval = X,   -- ping every X s: browsers and luaws clients answer with a pong
  idle_timeout = 2 * X,      -- nothing received for 2·X s (no pong, no message): gone
})

server:route("/ws", {
  open = function(ws) print(ws.remote .. " connected") end,
  message = function(ws, msg, kind) ws:send(msg, kind) end,
  -- Called once per connection, however it ended: the client's close frame
  -- (its code), a timeout (1006 "timeout"), a dropped TCP connection (1006).
  close = function(ws, code, reason)
    print(("%s disconnected: %d %s"):format(ws.remote, code, reason))
  end,
})

io.stdout:setvbuf("line")
print(("luaws disconnects listening on http://%s:%d/"):format(host, server.port))
luaws.run()
