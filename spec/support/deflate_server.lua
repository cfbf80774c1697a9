-- SPDX-License-Identifier: MIT
--
-- spec/support/deflate_server.lua: an echo server with compression on, in its
-- own process, for deflate_spec.lua's decompression bomb: its memory is its
-- own to measure (the spec reads /proc/PID/status).
--
--   lua5.4 spec/support/deflate_server.lua [max_message_size]
--
-- Prints "luaws deflate listening on http://127.0.0.1:PORT/" once it listens.
-- /ws echoes, /frag counts what a fragment handler gets; each connection's
-- end is printed as "closed CODE TOKEN" (TOKEN "-" after a close
-- handshake). Runs until SIGTERM.

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local luaws = require "luaws"

local opts = { host = "127.0.0.1", port = 0, compression = true }
local max = math.tointeger(tonumber(arg[1] or ""))
if max then opts.max_message_size = max end
local server = assert(luaws.listen(opts))
server:route("/ws", {
  message = function(ws, msg, kind) ws:send(msg, kind) end,
  close = function(_, code, _, token)
    collectgarbage()   -- what the spec measures next is what is held, not garbage
    print(("closed %s %s"):format(tostring(code), token or "-"))
  end,
})
-- /frag: a fragment handler that keeps no chunk; at a message's end it
-- answers "got BYTES FRAMES"
server:route("/frag", {
  fragment = function(ws, chunk, _, fin)
    ws.data.bytes = (ws.data.bytes or 0) + #chunk
    ws.data.frames = (ws.data.frames or 0) + 1
    if fin then
      assert(ws:send(("got %d %d"):format(ws.data.bytes, ws.data.frames)))
      ws.data.bytes, ws.data.frames = 0, 0
    end
  end,
  close = function(_, code, _, token)
    collectgarbage()   -- what the spec measures next is what is held, not garbage
    print(("closed %s %s"):format(tostring(code), token or "-"))
  end,
})
io.stdout:setvbuf("line")
print(("luaws deflate listening on http://127.0.0.1:%d/"):format(server.port))
luaws.run()
