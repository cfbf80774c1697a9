local luaws = require "luaws"

local url = arg[1] or "ws://127.0.0.1:5000/ws"   -- lua5.4 00_echo_client.lua [URL]
local ws = assert(luaws.connect(url))
ws:send("hello")
print(ws:receive(5))          --> hello   text
ws:close(1000, "done")
