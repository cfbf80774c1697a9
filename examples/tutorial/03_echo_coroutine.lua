local luaws = require "luaws"

local host, port = "localhost", 5000   -- lua5.4 03_echo_coroutine.lua [--host H] [--port N]
for i = 1, #arg, 2 do
  if arg[i] == "--host" then host = arg[i + 1]
  elseif arg[i] == "--port" then port = assert(tonumber(arg[i + 1]), "--port needs a number")
  else error("unknown option " .. arg[i]) end
end

local server = assert(luaws.listen { host = host, port = port })

-- Coroutine style: one coroutine per connection, written top to bottom.
-- receive() yields this coroutine only; the loop serves everyone else.
server:route("/ws", function(ws)
  ws:send("what is your name?")
  local name = ws:receive(30)                 -- nil, message, "timeout" after 30 s (or "closed")
  if not name then return end                 -- returning closes with 1000
  ws:send("hello, " .. name)
  for msg, kind in ws:messages() do           -- the echo loop, until the client closes
    ws:send(msg, kind)
  end
end)

io.stdout:setvbuf("line")
print(("luaws coroutine listening on http://%s:%d/"):format(host, server.port))
luaws.run()
