-- SPDX-License-Identifier: MIT
--
-- spec/support/fragment_server.lua: a server in its own process for
-- streaming_spec.lua's upload, so that its memory is its own to measure.
--
--   lua5.4 spec/support/fragment_server.lua [max_message_size]
--
-- Prints "luaws fragment listening on http://127.0.0.1:PORT/" once it
-- listens. /up has a fragment handler that keeps no chunk: it counts frames
-- and bytes and folds every byte into a checksum. On open it sends
-- "start RSS HWM", after each message's last frame "done BYTES FRAMES SUM
-- RSS HWM": VmRSS and VmHWM (the peak RSS) from /proc/self/status, in KiB.
-- /whole is the control: a message handler, so the message is held whole
-- (and SUM is not comparable with /up's).
-- Runs until SIGTERM.

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local luaws = require "luaws"

local function vm(field)
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match(field .. ":%s*(%d+) kB"))
end

-- A cheap checksum folded over a chunk (every 4099th byte and the last),
-- enough to see that the chunks came in order without holding them; the
-- spec folds the chunks it sends the same way.
local function fold(sum, chunk)
  local n = #chunk
  for i = 1, n, 4099 do sum = (sum * 31 + chunk:byte(i)) % 2147483647 end
  if n > 0 then sum = (sum * 31 + chunk:byte(n)) % 2147483647 end
  return sum
end

local server = assert(luaws.listen {
  host = "127.0.0.1", port = 0,
  max_message_size = math.tointeger(tonumber(arg[1] or "")) or (1 << 30),
})
server:route("/up", {
  open = function(ws)
    ws.data.bytes, ws.data.frames, ws.data.sum = 0, 0, 0
    collectgarbage()
    assert(ws:send(("start %d %d"):format(vm("VmRSS"), vm("VmHWM"))))
  end,
  fragment = function(ws, chunk, _, fin)
    local d = ws.data
    d.bytes, d.frames, d.sum = d.bytes + #chunk, d.frames + 1, fold(d.sum, chunk)
    if fin then
      assert(ws:send(("done %d %d %d %d %d"):format(d.bytes, d.frames, d.sum, vm("VmRSS"), vm("VmHWM"))))
      d.bytes, d.frames, d.sum = 0, 0, 0
    end
  end,
})

-- The control: the same upload through a message handler, reassembled whole.
server:route("/whole", {
  open = function(ws)
    collectgarbage()
    assert(ws:send(("start %d %d"):format(vm("VmRSS"), vm("VmHWM"))))
  end,
  message = function(ws, msg)
    assert(ws:send(("done %d %d %d %d %d"):format(#msg, 1, fold(0, msg), vm("VmRSS"), vm("VmHWM"))))
  end,
})

io.stdout:setvbuf("line")
print(("luaws fragment listening on http://127.0.0.1:%d/"):format(server.port))
luaws.run()
