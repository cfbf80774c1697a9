-- SPDX-License-Identifier: MIT
--
-- An echo server process for the specs that signal it (integration/endings,
-- hardening/sigterm): examples/echo.lua's echo under luaws.run{grace = N},
-- plus a control route to ask what it has done and to start a shutdown
-- from inside.
--
--   lua5.4 spec/support/grace_server.lua [--grace N] [--close-timeout N] [--port N] [--coroutine]
--     (from the repository root)
--
-- It prints one line once it listens, and one when luaws.run() returns:
--   luaws grace server listening on 127.0.0.1:PORT
--   exit shutdown_cut=N frames_cut=N echoed=N
-- Routes:
--   /ws    echo, each message back with its kind (callback style, or with
--          --coroutine a coroutine route); counts what it echoed
--   /ctl   "stats": answers "echoed=N connections=N"; "shutdown G": prints
--          "shutdown started", then calls luaws.shutdown(G)
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath

local luaws = require "luaws"

local grace, port, close_timeout, coroutine_style = 5, 0, nil, false
local i = 1
while arg[i] do
  local a = arg[i]
  if a == "--grace" then grace = assert(tonumber(arg[i + 1]), "--grace needs seconds"); i = i + 1
  elseif a == "--close-timeout" then close_timeout = assert(tonumber(arg[i + 1]), "--close-timeout needs seconds"); i = i + 1
  elseif a == "--port" then port = assert(tonumber(arg[i + 1]), "--port needs a number"); i = i + 1
  elseif a == "--coroutine" then coroutine_style = true
  else io.stderr:write("grace_server.lua: unknown option ", a, "\n"); os.exit(2) end
  i = i + 1
end

local server = assert(luaws.listen { host = "127.0.0.1", port = port, close_timeout = close_timeout })
io.stdout:setvbuf("line")

local echoed = 0
if coroutine_style then
  server:route("/ws", function(ws)
    for msg, kind in ws:messages() do
      if ws:send(msg, kind) then echoed = echoed + 1 end
    end
  end)
else
  server:route("/ws", {
    message = function(ws, msg, kind)
      if ws:send(msg, kind) then echoed = echoed + 1 end
    end,
  })
end

server:route("/ctl", {
  message = function(ws, msg)
    if msg == "stats" then
      ws:send(("echoed=%d connections=%d"):format(echoed, server:stats().connections))
    elseif msg:match("^shutdown ") then
      print("shutdown started")
      luaws.shutdown(assert(tonumber(msg:match("^shutdown (%S+)"))))
    else
      ws:send("unknown command")
    end
  end,
})

print(("luaws grace server listening on 127.0.0.1:%d"):format(server.port))
luaws.run { grace = grace }
local st = server:stats()
print(("exit shutdown_cut=%s frames_cut=%s echoed=%d"):format(tostring(st.shutdown_cut),
  tostring(st.frames_cut), echoed))
