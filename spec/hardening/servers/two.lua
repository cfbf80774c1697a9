-- SPDX-License-Identifier: MIT
--
-- Two servers in one process (as a program serving ws:// and wss:// on two
-- ports would run), both with the /ws echo of servers/echo.lua:
--
--   lua5.4 spec/hardening/servers/two.lua
--   luaws hardening servers listening on 127.0.0.1:PORT1 and 127.0.0.1:PORT2
--
-- For the spec where both run out of descriptors at once (faults_spec.lua).
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("LUAWS_HARDENING_CPATH") or "build/?.so") .. ";" .. package.cpath

local luaws = require "luaws"

io.stdout:setvbuf("line")
local servers = {}
for i = 1, 2 do
  servers[i] = assert(luaws.listen { host = "127.0.0.1", port = 0 })
  servers[i]:route("/ws", {
    message = function(ws, msg, kind) ws:send(msg, kind) end,
    close = function(_, code, reason) print(("close %d %s"):format(code, reason)) end,
  })
end
print(("luaws hardening servers listening on 127.0.0.1:%d and 127.0.0.1:%d"):format(servers[1].port, servers[2].port))
luaws.run()
