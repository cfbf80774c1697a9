local luaws = require "luaws"

local host, port = "localhost", 5000   -- lua5.4 06_rooms.lua [--host H] [--port N]
for i = 1, #arg, 2 do
  if arg[i] == "--host" then host = arg[i + 1]
  elseif arg[i] == "--port" then port = assert(tonumber(arg[i + 1]), "--port needs a number")
  else error("unknown option " .. arg[i]) end
end

local server = assert(luaws.listen { host = host, port = port })

-- One route for every room: /chat/lobby, /chat/games, ... The room is in
-- ws.params.room; ?name=ada arrives parsed and decoded in req.args.name.
server:route("/chat/:room", {
  upgrade = function(req)
    local name = req.args.name
    if type(name) ~= "string" or name == "" then
      return false, 400, "say who you are: /chat/ROOM?name=NAME\n"
    end
    req.data.name = name                     -- req.data becomes ws.data
  end,
  open = function(ws)
    ws:subscribe(ws.params.room)             -- a topic per room
    server:publish(ws.params.room, ws.data.name .. " joined " .. ws.params.room)
  end,
  message = function(ws, msg)
    server:publish(ws.params.room, ws.data.name .. ": " .. msg)
  end,
  close = function(ws)
    server:publish(ws.params.room, ws.data.name .. " left")
  end,
})

-- Plain HTTP on the same port, e.g. for a load balancer's health check.
server:get("/health", function()
  return 200, ("ok, %d connected\n"):format(server:stats().connections)
end)

io.stdout:setvbuf("line")
print(("luaws rooms listening on http://%s:%d/"):format(host, server.port))
luaws.run()
