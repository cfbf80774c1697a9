local luaws = require "luaws"

-- lua5.4 07_tls.lua [--host H] [--port N] [--certs DIR]
local host, port, dir = "localhost", 5443, "/etc/app"
for i = 1, #arg, 2 do
  if arg[i] == "--host" then host = arg[i + 1]
  elseif arg[i] == "--port" then port = assert(tonumber(arg[i + 1]), "--port needs a number")
  elseif arg[i] == "--certs" then dir = arg[i + 1]
  else error("unknown option " .. arg[i]) end
end

local server = assert(luaws.listen {
  host = host, port = port,
  tls = {
    -- chosen by the name the client asks for (SNI); the one without
    -- server_name is the default, for any other name and for none
    { certificate = dir .. "/a.pem", key = dir .. "/a-key.pem", server_name = "a.example" },
    { certificate = dir .. "/wild.pem", key = dir .. "/wild-key.pem", server_name = "*.b.example" },
    { certificate = dir .. "/default.pem", key = dir .. "/default-key.pem" },
    -- ask for a client certificate from this CA; a client without one gets in too
    ca = dir .. "/clients-ca.pem", verify_client = "optional",
  },
})

server:route("/ws", {
  open = function(ws)
    -- ws.tls.subject: the subject of the client's certificate, nil without one
    ws:send(("hello %s over %s"):format(ws.tls.subject or "stranger", ws.tls.protocol))
  end,
  message = function(ws, msg, kind) ws:send(msg, kind) end,
})

io.stdout:setvbuf("line")
print(("luaws tls listening on https://%s:%d/"):format(host, server.port))
luaws.run()   -- SIGHUP: every file above is read again; open connections keep theirs
