-- SPDX-License-Identifier: MIT
--
-- A server under luaws.run{workers = N}, for spec/integration/workers_spec.lua.
--
--   lua5.4 spec/support/workers_server.lua [--workers N|auto] [--port N]
--     [--grace S] [--reload-grace S] [--tag FILE]      (from the repository root)
--
-- Every process (the master, then each worker, which runs this script again)
-- prints once it listens:
--   luaws workers server listening on 127.0.0.1:PORT pid PID worker ID|master
-- and once luaws.run() returns:
--   exit pid PID worker ID|master
-- Routes (every connection is first sent "hello ID PID TAG": the worker's
-- number, its PID from /proc/self/stat, and the first line of --tag FILE as
-- this process read it at its start, "-" without one):
--   /ws           echo; "!publish TOPIC DATA" publishes DATA to TOPIC on this
--                 server and answers "published N" (N: local subscribers);
--                 "!exit N" calls os.exit(N) in the handler
--   /sub?topic=T  subscribes to T, then gets what is published to it
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath

local luaws = require "luaws"

local workers, port, grace, reload_grace, tagfile = 2, 0, 2, 30, nil
local i = 1
while arg[i] do
  local a, v = arg[i], arg[i + 1]
  if a == "--workers" then workers = v == "auto" and "auto" or assert(math.tointeger(tonumber(v)), "--workers needs a number")
  elseif a == "--port" then port = assert(tonumber(v), "--port needs a number")
  elseif a == "--grace" then grace = assert(tonumber(v), "--grace needs seconds")
  elseif a == "--reload-grace" then reload_grace = assert(tonumber(v), "--reload-grace needs seconds")
  elseif a == "--tag" then tagfile = v
  else io.stderr:write("workers_server.lua: unknown option ", a, "\n"); os.exit(2) end
  i = i + 2
end

local function own_pid()
  local f = assert(io.open("/proc/self/stat"))
  local s = f:read("l")
  f:close()
  return assert(tonumber(s:match("^(%d+)")))
end
local PID = own_pid()

local tag = "-"
if tagfile then
  local f = io.open(tagfile)
  if f then tag = f:read("l") or "-"; f:close() end
end

local who = luaws.worker_id() and tostring(luaws.worker_id()) or "master"
local hello = ("hello %s %d %s"):format(luaws.worker_id() or 0, PID, tag)

io.stdout:setvbuf("line")
local server = assert(luaws.listen { host = "127.0.0.1", port = port })

server:route("/ws", {
  open = function(ws) ws:send(hello) end,
  message = function(ws, msg, kind)
    local topic, data = msg:match("^!publish (%S+) (.*)$")
    if topic then
      ws:send(("published %d"):format(server:publish(topic, data)))
      return
    end
    local code = msg:match("^!exit (%d+)$")
    if code then os.exit(tonumber(code)) end
    ws:send(msg, kind)
  end,
})

server:route("/sub", {
  open = function(ws)
    local topic = (ws.query or ""):match("topic=([%w_:.-]+)")
    assert(ws:subscribe(topic or "none"))
    ws:send(hello)
  end,
})

print(("luaws workers server listening on 127.0.0.1:%d pid %d worker %s"):format(server.port, PID, who))
assert(luaws.run { workers = workers, grace = grace, reload_grace = reload_grace })
print(("exit pid %d worker %s"):format(PID, who))
