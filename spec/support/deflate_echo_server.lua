-- SPDX-License-Identifier: MIT
--
-- spec/support/deflate_echo_server.lua: the echo page (examples/echo/public)
-- and one echo route per permessage-deflate setting, for the browser test
-- spec/browser/deflate.test.js (a browser offers one thing; the server's
-- settings choose what is agreed).
--
--   lua5.4 spec/support/deflate_echo_server.lua --port 0 --host 127.0.0.1
--
-- Routes (each a per-route `compression`): /ws (true), /snct
-- (server_context_takeover = false), /cnct (client_context_takeover = false),
-- /both (both false), /sw8 .. /sw15 (server_max_window_bits), /cw8 .. /cw15
-- (client_max_window_bits). When a connection ends it prints one JSON line:
-- {"path", "offer": the request's Sec-WebSocket-Extensions, "compression":
-- ws.compression, "stats": ws:stats(), "sizes": the wire bytes of each
-- message received}. Prints "luaws deflate echo listening on
-- http://HOST:PORT/" once it listens; runs until SIGTERM.

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local luaws = require "luaws"
local cjson = require "cjson"

local host, port = "127.0.0.1", 0
local i = 1
while arg[i] do
  if arg[i] == "--port" then port = assert(tonumber(arg[i + 1])); i = i + 1
  elseif arg[i] == "--host" then host = assert(arg[i + 1]); i = i + 1
  else io.stderr:write("usage: deflate_echo_server.lua [--host H] [--port N]\n"); os.exit(2) end
  i = i + 1
end

local server = assert(luaws.listen { host = host, port = port, compression = true,
  static = "examples/echo/public", max_message_size = 64 * 1024 * 1024 })

local function route(path, compression)
  server:route(path, {
    compression = compression,
    open = function(ws)
      ws.data.sizes, ws.data.wire = {}, 0
    end,
    message = function(ws, msg, kind)
      local wire = ws:stats().wire_bytes_in
      table.insert(ws.data.sizes, wire - ws.data.wire)
      ws.data.wire = wire
      assert(ws:send(msg, kind))
    end,
    close = function(ws)
      print(cjson.encode {
        path = path, offer = ws.headers and ws.headers["sec-websocket-extensions"] or cjson.null,
        compression = ws.compression or cjson.null, stats = ws:stats(), sizes = ws.data.sizes,
      })
    end,
  })
end

route("/ws", true)
route("/snct", { server_context_takeover = false })
route("/cnct", { client_context_takeover = false })
route("/both", { server_context_takeover = false, client_context_takeover = false })
for n = 8, 15 do
  route("/sw" .. n, { server_max_window_bits = n })
  route("/cw" .. n, { client_max_window_bits = n })
end

io.stdout:setvbuf("line")
print(("luaws deflate echo listening on http://%s:%d/"):format(host, server.port))
luaws.run()
