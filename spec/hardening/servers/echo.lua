-- SPDX-License-Identifier: MIT
--
-- The server the hardening specs attack, as a process of its own, so that
-- its RSS (/proc/PID/status VmRSS) and descriptors (/proc/PID/fd) are its
-- alone and a crash cannot take the spec runner with it.
--
--   lua5.4 spec/hardening/servers/echo.lua [name=value ...]   (from the repository root)
--
-- Arguments are luaws.listen options (numbers where they parse as numbers);
-- host is 127.0.0.1 and port 0 unless given. It prints one line once it
-- listens, then one line per connection the /ws route closes:
--   luaws hardening server listening on 127.0.0.1:PORT
--   close CODE REASON
-- Routes:
--   /ws     echo (callback style), each message back with its kind
--   /probe  the same echo without the "close" lines: for the clients that
--           measure the server while /ws is attacked
--   /flood  on open, sends a 64 KiB binary message every millisecond until
--           the connection ends (a server that writes to peers that vanish)
--   /flood-paused  the same, but the connection is paused at once
--           (ws:pause()): the server reads nothing, so it learns that the
--           peer went only from a write that fails
--   /ctl    answers "stats" with one line of name=value pairs: the server's
--           stats(), core.live(), the Lua heap in KiB, and how many times
--           /ws's open and close handlers ran (ws_opens, ws_closes)
--
-- Two environment variables exist to show that a spec fails without the
-- limit it attacks (spec/hardening/README.md):
--   LUAWS_HARDENING_OVERRIDE  "name=value,name=value": options applied on
--                             top of the arguments (e.g. max_backpressure=0)
--   LUAWS_HARDENING_CPATH     a package.cpath entry for another build of
--                             luaws.core (e.g. one built with a larger
--                             -DLUAWS_MAX_HEAD_BYTES)
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("LUAWS_HARDENING_CPATH") or "build/?.so") .. ";" .. package.cpath

local luaws = require "luaws"
local core = require "luaws.core"

local opts = { host = "127.0.0.1", port = 0 }
local function set(item)
  local k, v = item:match("^([%w_]+)=(.*)$")
  if not k then
    io.stderr:write("echo.lua: bad argument '", item, "' (name=value expected)\n")
    os.exit(2)
  end
  opts[k] = tonumber(v) or v
end
for _, a in ipairs(arg) do set(a) end
for item in (os.getenv("LUAWS_HARDENING_OVERRIDE") or ""):gmatch("[^,%s]+") do set(item) end

local server = assert(luaws.listen(opts))
io.stdout:setvbuf("line")

local ws_opens, ws_closes = 0, 0
server:route("/ws", {
  open = function() ws_opens = ws_opens + 1 end,
  message = function(ws, msg, kind) ws:send(msg, kind) end,
  close = function(_, code, reason)
    ws_closes = ws_closes + 1
    print(("close %d %s"):format(code, reason))
  end,
})
server:route("/probe", { message = function(ws, msg, kind) ws:send(msg, kind) end })

local CHUNK = ("\0\1\2\3\4\5\6\7"):rep(8192)   -- 64 KiB
local function flood(paused)
  return {
    open = function(ws)
      if paused then ws:pause() end
      luaws.every(0.001, function(t)
        if ws.state ~= "open" then return t:stop() end
        ws:send(CHUNK, "binary")
      end)
    end,
  }
end
server:route("/flood", flood(false))
server:route("/flood-paused", flood(true))

server:route("/ctl", {
  message = function(ws, msg)
    if msg == "stats" then
      local st, out = server:stats(), {}
      st.live = core.live()
      st.lua_kib = math.floor(collectgarbage("count"))
      st.ws_opens, st.ws_closes = ws_opens, ws_closes
      for k, v in pairs(st) do out[#out + 1] = k .. "=" .. v end
      table.sort(out)
      ws:send(table.concat(out, " "))
    else
      ws:send("unknown command")
    end
  end,
})

print(("luaws hardening server listening on 127.0.0.1:%d"):format(server.port))
luaws.run()
