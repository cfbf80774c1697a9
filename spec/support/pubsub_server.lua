-- SPDX-License-Identifier: MIT
--
-- The server of the fan-out specs (spec/hardening/fanout_spec.lua), as a
-- process of its own so that its RSS (/proc/PID/status) is its alone.
--
--   lua5.4 spec/support/pubsub_server.lua [name=value ...]   (from the repository root)
--
-- Arguments are luaws.listen options (numbers where they parse as numbers);
-- host is 127.0.0.1 and port 0 unless given. It prints one line once it
-- listens:
--   luaws pubsub server listening on 127.0.0.1:PORT
-- Routes:
--   /sub?topic=A&topic=B   subscribes to each topic named in the query at
--                          open; its close handler counts the close codes
--   /ctl                   one command per text message, one answer each:
--     "publish TOPIC COUNT SIZE"  COUNT binary messages of SIZE bytes (>= 18)
--         with server:publish: "SEQ:SIZE:" (8 digits each, SEQ counting
--         from 0 per topic) then SIZE - 18 times string.char(65 + SEQ % 26)
--         (what spec/support/pubsub_clients.py checks). Answer: the counts
--         publish returned, comma-separated
--     "end TOPIC"   the text "end:N" (N: messages published to TOPIC);
--         answer: the count
--     "stats"       name=value pairs: subs (open /sub connections), opens,
--         closes (of /sub, and closes_CODE for each code), queued (bytes
--         waiting in the /sub connections' send queues, ws:buffered()),
--         queued_max (the largest), queued_conns (how many hold some),
--         live (core.live()), lua_kib (the Lua heap)
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
-- LUAWS_HARDENING_CPATH: another build of luaws.core, as for servers/echo.lua
package.cpath = (os.getenv("LUAWS_HARDENING_CPATH") or "build/?.so") .. ";" .. package.cpath

local luaws = require "luaws"
local core = require "luaws.core"

local opts = { host = "127.0.0.1", port = 0 }
for _, a in ipairs(arg) do
  local k, v = a:match("^([%w_]+)=(.*)$")
  if not k then
    io.stderr:write("pubsub_server.lua: bad argument '", a, "' (name=value expected)\n")
    os.exit(2)
  end
  opts[k] = tonumber(v) or v
end

local server = assert(luaws.listen(opts))
io.stdout:setvbuf("line")

local subs, nsubs, opens, closes, nclosed = {}, 0, 0, {}, 0
server:route("/sub", {
  open = function(ws)
    for t in (ws.query or ""):gmatch("topic=([^&]+)") do assert(ws:subscribe(t)) end
    subs[ws] = true
    nsubs, opens = nsubs + 1, opens + 1
  end,
  close = function(ws, code)
    if subs[ws] then
      subs[ws] = nil
      nsubs = nsubs - 1
    end
    nclosed = nclosed + 1
    closes[code] = (closes[code] or 0) + 1
  end,
})

local seq = {}   -- topic -> messages published so far

local function payload(n, size)
  local head = ("%08d:%08d:"):format(n, size)
  return head .. string.char(65 + n % 26):rep(size - #head)
end

local commands = {}

function commands.publish(topic, count, size)
  count, size = tonumber(count), tonumber(size)
  if not (topic and count and size and size >= 18) then return "bad publish" end
  local out = {}
  for i = 1, count do
    local n = seq[topic] or 0
    seq[topic] = n + 1
    out[i] = server:publish(topic, payload(n, size), "binary")
  end
  return table.concat(out, ",")
end

commands["end"] = function(topic)
  return tostring(server:publish(topic, ("end:%d"):format(seq[topic] or 0)))
end

function commands.stats()
  local queued, qmax, qconns = 0, 0, 0
  for ws in pairs(subs) do
    local b = ws:buffered()
    queued = queued + b
    if b > qmax then qmax = b end
    if b > 0 then qconns = qconns + 1 end
  end
  local st = { subs = nsubs, opens = opens, closes = nclosed, queued = queued, queued_max = qmax,
    queued_conns = qconns, live = core.live(), lua_kib = math.floor(collectgarbage("count")) }
  for code, n in pairs(closes) do st["closes_" .. code] = n end
  local out = {}
  for k, v in pairs(st) do out[#out + 1] = k .. "=" .. v end
  table.sort(out)
  return table.concat(out, " ")
end

server:route("/ctl", {
  message = function(ws, msg)
    local words = {}
    for w in msg:gmatch("%S+") do words[#words + 1] = w end
    local f = commands[words[1] or ""]
    ws:send(f and f(table.unpack(words, 2)) or ("unknown command " .. msg))
  end,
})

print(("luaws pubsub server listening on 127.0.0.1:%d"):format(server.port))
luaws.run()
