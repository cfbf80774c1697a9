local luaws = require "luaws"

local host, port = "localhost", 5000   -- lua5.4 01_configure.lua [--host H] [--port N]
for i = 1, #arg, 2 do
  if arg[i] == "--host" then host = arg[i + 1]
  elseif arg[i] == "--port" then port = assert(tonumber(arg[i + 1]), "--port needs a number")
  else error("unknown option " .. arg[i]) end
end

-- Name what differs from luaws.defaults; a misspelt option raises an error.
local server = assert(luaws.listen {
  host = host,                   -- "localhost" is 127.0.0.1 and ::1; "*" is every interface
  port = port,                   -- 0 picks a free port: server.port says which
  max_message_size = 64 * 1024,  -- a bigger message closes the connection with 1009
})

-- Upgrade requests for /ws become connections; other paths get 404.
server:route("/ws", {
  open = function(ws) ws:send("welcome, " .. ws.remote) end,
})

io.stdout:setvbuf("line")
print(("luaws configure listening on http://%s:%d/"):format(host, server.port))
luaws.run()
