-- SPDX-License-Identifier: MIT
--
-- spec/support/deflate_workers_server.lua: luaws.run{workers = 2} with
-- compression on, for deflate_spec.lua: a publish on one worker reaches the
-- compressed subscribers of both.
--
--   lua5.4 spec/support/deflate_workers_server.lua     (from the repository root)
--
-- Each worker prints "luaws deflate workers listening on 127.0.0.1:PORT worker ID"
-- (the master: "worker master"). Routes: /sub subscribes to "news" and sends
-- "hello ID"; /pub sends "hello ID" and publishes each message it gets to
-- "news", answering "published N". Runs until SIGTERM.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath

local luaws = require "luaws"

io.stdout:setvbuf("line")
local id = luaws.worker_id()
local hello = ("hello %s"):format(id or 0)
local port = tonumber(arg[1] or "0")
local server = assert(luaws.listen { host = "127.0.0.1", port = port, compression = true })
server:route("/sub", {
  open = function(ws)
    assert(ws:subscribe("news"))
    assert(ws:send(hello))
  end,
})
server:route("/pub", {
  open = function(ws) assert(ws:send(hello)) end,
  message = function(ws, msg, kind)
    assert(ws:send(("published %d"):format(server:publish("news", msg, kind))))
  end,
})
print(("luaws deflate workers listening on 127.0.0.1:%d worker %s"):format(server.port, id or "master"))
assert(luaws.run { workers = 2, grace = 2 })
