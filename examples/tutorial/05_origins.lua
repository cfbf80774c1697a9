local luaws = require "luaws"

local host, port = "localhost", 5000   -- lua5.4 05_origins.lua [--host H] [--port N]
for i = 1, #arg, 2 do
  if arg[i] == "--host" then host = arg[i + 1]
  elseif arg[i] == "--port" then port = assert(tonumber(arg[i + 1]), "--port needs a number")
  else error("unknown option " .. arg[i]) end
end

local server = assert(luaws.listen {
  host = host, port = port,
  -- Only pages from https://client.com may connect; other pages get 403.
  -- No Origin header (a script, not a browser) passes: Origin protects
  -- browser users, it does not authenticate anyone.
  allowed_origins = { "https://client.com" },
})

server:route("/ws", {
  upgrade = function(req)           -- after the origin check, before the 101
    print("upgrade from " .. (req.origin or "no origin"))
  end,
  message = function(ws, msg, kind) ws:send(msg, kind) end,
})

io.stdout:setvbuf("line")
print(("luaws origins listening on http://%s:%d/"):format(host, server.port))
luaws.run()
