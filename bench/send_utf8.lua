-- SPDX-License-Identifier: MIT
--
-- bench/send_utf8.lua: what ws:send's UTF-8 check costs, in instructions.
--
--   bench/send_utf8.sh                       -- every case under callgrind, one table
--   lua5.4 bench/send_utf8.lua on|off ascii|latin|cjk [N]
--
-- One process: a server and a client on 127.0.0.1. The client asks N times
-- ("go"); each time the server's message handler sends one 16 KiB text
-- message (check_send_utf8 on or off) and the client reads it. Under
-- callgrind, the inclusive cost of lconn_send (the C side of ws:send) divided
-- by N is the instructions per send, with and without the check; the
-- difference is ws_utf8_feed. Kernel time (the write itself) is not counted
-- by callgrind. Text: ascii (bytes < 0x80), latin (French and German prose,
-- about one two-byte character in six), cjk (three-byte characters only).

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local luaws = require "luaws"
local core = require "luaws.core"

local check, kind, n = arg[1], arg[2], tonumber(arg[3] or "1000")
assert(check == "on" or check == "off", "usage: send_utf8.lua on|off ascii|latin|cjk [N]")

local SIZE = 16 * 1024
local unit = ({
  ascii = "The quick brown fox jumps over the lazy dog. ",
  latin = "Déjà vu: à la fête, über die Straße, ça va très bien. ",
  cjk = "日本語の文章と中文的句子",
})[kind]
assert(unit, "text: ascii, latin or cjk")
local text = unit:rep(SIZE // #unit + 1)
-- cut to 16 KiB on a character boundary (back off continuation bytes)
local cut = SIZE
while text:byte(cut + 1) and text:byte(cut + 1) >= 0x80 and text:byte(cut + 1) < 0xC0 do cut = cut - 1 end
text = text:sub(1, cut)
assert(utf8.len(text), "the sample is UTF-8")

local server = assert(luaws.listen { host = "127.0.0.1", port = 0, check_send_utf8 = check == "on" })
server:route("/ws", { message = function(ws) assert(ws:send(text)) end })

local ws = assert(luaws.connect(server:url("/ws")))
for _ = 1, n do
  assert(ws:send("go"))
  local msg = assert(ws:receive(10))
  assert(#msg == #text)
end
ws:close()
server:close()
core.step(0)
print(("%s %s: %d sends of %d bytes"):format(check, kind, n, #text))
