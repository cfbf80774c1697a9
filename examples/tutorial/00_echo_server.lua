local luaws = require "luaws"

local host, port = "127.0.0.1", 5000   -- lua5.4 00_echo_server.lua [--host H] [--port N]
for i = 1, #arg, 2 do
  if arg[i] == "--host" then host = arg[i + 1]
  elseif arg[i] == "--port" then port = assert(tonumber(arg[i + 1]), "--port needs a number")
  else error("unknown option " .. arg[i]) end
end

local server = assert(luaws.listen {
  host = host, port = port,
  allowed_origins = { "http://localhost:5000" },   -- browsers from elsewhere get 403
  idle_timeout = 240,                              -- silent for 4 minutes: closed
})

server:route("/ws", {
  open    = function(ws) print("open from " .. ws.remote) end,
  message = function(ws, msg, kind) ws:send(msg, kind) end,
  close   = function(ws, code, reason) print("closed", code, reason) end,
})

-- the same echo as a coroutine: receive() yields, the loop never blocks
server:route("/echo", function(ws)
  for msg, kind in ws:messages() do ws:send(msg, kind) end
end)

luaws.every(30, function() server:broadcast("tick") end)  -- push from outside a handler

io.stdout:setvbuf("line")   -- each line at once, even into a pipe
print(("luaws echo listening on http://%s:%d/"):format(host, server.port))
luaws.run()      -- until SIGINT/SIGTERM: every connection gets 1001, then it returns
