-- SPDX-License-Identifier: MIT
--
-- luaws_fanout.lua -- the luaws fan-out server of bench/fanout.sh.
--
--   lua5.4 bench/peers/luaws_fanout.lua PORT [--mode sub|open|bare]
--                                            [--backplane redis://127.0.0.1:P]
--                                            [--compression]
--
-- Listens on 127.0.0.1:PORT, path /ws. Every message from any connection is
-- published to topic "all" with server:publish (the sender gets it too, as
-- with node ws's loop over wss.clients and socket.io's io.emit).
--   --mode sub   (default) every connection subscribes to "all" in its open
--                handler;
--   --mode open  the same open handler, without the subscribe: the baseline
--                for the cost of one subscription (the open handler makes the
--                connection's Lua box, so both modes have it);
--   --mode bare  no open handler at all (no Lua box per connection).
--   --backplane  joins the topics of every process on that Redis; the
--                "listening" line is printed only once the backplane is up,
--                so the benchmark never publishes into a backplane that
--                would drop it.
--   --compression  listen{compression = true}: permessage-deflate with the
--                defaults, so a publish to subscribers that agreed on the
--                same parameters without context takeover is compressed once.

local here = (arg and arg[0] or ""):match("^(.-)[^/]*$")
package.path = here .. "../../lua/?.lua;" .. here .. "../../lua/?/init.lua;" .. package.path
package.cpath = here .. "../../build/?.so;" .. package.cpath

local luaws = require "luaws"

local port = tonumber(arg[1])
local mode, backplane, compression = "sub", nil, nil
local i = 2
while arg[i] do
  if arg[i] == "--mode" then mode = arg[i + 1]; i = i + 1
  elseif arg[i] == "--backplane" then backplane = arg[i + 1]; i = i + 1
  elseif arg[i] == "--compression" then compression = true
  else port = nil; break end
  i = i + 1
end
if not port or (mode ~= "sub" and mode ~= "open" and mode ~= "bare") then
  io.stderr:write("usage: lua5.4 luaws_fanout.lua PORT [--mode sub|open|bare] [--backplane redis://H:P]"
    .. " [--compression]\n")
  os.exit(2)
end

io.stdout:setvbuf("line")
local server
local function ready()
  print(("luaws fan-out (%s%s%s) listening on ws://127.0.0.1:%d/ws"):format(
    mode, backplane and ", backplane " .. backplane or "", compression and ", compression" or "",
    server.port))
end

local said = false
server = assert(luaws.listen {
  host = "127.0.0.1",
  port = port,
  backlog = 4096,
  backplane = backplane,
  compression = compression,
  on_backplane = backplane and function(state, detail)
    io.stdout:write(("backplane %s: %s\n"):format(state, detail))
    if state == "up" and not said then said = true; ready() end
  end or nil,
})

local handlers = {
  message = function(_, msg, kind) server:publish("all", msg, kind) end,
}
if mode == "sub" then
  handlers.open = function(ws) assert(ws:subscribe("all")) end
elseif mode == "open" then
  handlers.open = function() end
end
server:route("/ws", handlers)

if not backplane then ready() end
luaws.run()
