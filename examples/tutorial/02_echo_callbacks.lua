local luaws = require "luaws"

local host, port = "localhost", 5000   -- lua5.4 02_echo_callbacks.lua [--host H] [--port N]
for i = 1, #arg, 2 do
  if arg[i] == "--host" then host = arg[i + 1]
  elseif arg[i] == "--port" then port = assert(tonumber(arg[i + 1]), "--port needs a number")
  else error("unknown option " .. arg[i]) end
end

local server = assert(luaws.listen { host = host, port = port })

-- Callback style: luaws calls message() once per whole message.
server:route("/ws", {
  open = function(ws) ws.data.count = 0 end,       -- ws.data: a table for your state
  message = function(ws, msg, kind)                -- kind: "text" or "binary"
    ws.data.count = ws.data.count + 1
    ws:send(msg, kind)                             -- queued at once; never blocks
  end,
  close = function(ws, code, reason)
    print(("%s sent %d messages, then closed: %d %s"):format(ws.remote, ws.data.count, code, reason))
  end,
})

io.stdout:setvbuf("line")
print(("luaws callbacks listening on http://%s:%d/"):format(host, server.port))
luaws.run()
