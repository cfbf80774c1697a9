-- SPDX-License-Identifier: MIT
--
-- A broadcast chat room: what one client says, every client hears, and the
-- server pushes a message of its own every few seconds. It shows
-- server:broadcast() (one frame for every connection), a push from outside
-- any handler with luaws.every(), and JSON on the wire.
--
--   lua5.4 examples/chat.lua            -- once built (make); then open
--                                       -- http://localhost:5000/ in two tabs
--   lua5.4 examples/chat.lua --tick 2   -- the server speaks every 2 s
--
-- Wire format (examples/chat/public/chat.js is the other side), text frames:
--   client -> server   {"name": "ada", "text": "hello"}
--   server -> everyone {"from": "ada", "text": "hello", "at": "2024-05-01T12:00:00Z"}
--   every --tick s     {"from": "server", "text": "tick N", "at": "..."}
-- A message that is not such JSON is dropped (and logged on stderr). The
-- name "server" is the server's own: a client that takes it is "anonymous".
--
-- Options: --host H (default localhost; "*" for every address), --port N
-- (0 picks a free one), --tick S (default 5). It prints one line once it
-- listens:
--   luaws chat listening on http://HOST:PORT/

-- Run from a checkout without installing: find lua/ and build/ beside us,
-- and the small JSON module in examples/lib/.
local here = (arg and arg[0] or ""):match("^(.-)[^/]*$")
package.path = here .. "../lua/?.lua;" .. here .. "../lua/?/init.lua;" .. here .. "lib/?.lua;" .. package.path
package.cpath = here .. "../build/?.so;" .. package.cpath

local luaws = require "luaws"
local json = require "json"

local opts = { host = "localhost", port = 5000, tick = 5 }
local usage = "usage: lua5.4 examples/chat.lua [--host H] [--port N] [--tick SECONDS]\n"
local i = 1
while arg and arg[i] do
  local a = arg[i]
  if a == "--port" then opts.port = assert(tonumber(arg[i + 1]), "--port needs a number"); i = i + 1
  elseif a == "--host" then opts.host = assert(arg[i + 1], "--host needs a value"); i = i + 1
  elseif a == "--tick" then
    opts.tick = tonumber(arg[i + 1])
    assert(opts.tick and opts.tick > 0, "--tick needs a positive number of seconds")
    i = i + 1
  else io.stderr:write(usage); os.exit(2) end
  i = i + 1
end

local MAX_NAME = 40   -- characters, as the page's input allows

local server = assert(luaws.listen {
  host = opts.host,
  port = opts.port,
  static = here .. "chat/public",
  max_message_size = 16 * 1024,   -- a chat line, not a file: bigger ones close with 1009
})

local function now_iso()
  return os.date("!%Y-%m-%dT%H:%M:%SZ")
end

-- The name a message is shown under: trimmed, at most MAX_NAME characters,
-- never empty and never "server".
local function display_name(name)
  name = type(name) == "string" and name:match("^%s*(.-)%s*$") or ""
  if utf8.len(name) > MAX_NAME then name = name:sub(1, utf8.offset(name, MAX_NAME + 1) - 1) end
  if name == "" or name:lower() == "server" then name = "anonymous" end
  return name
end

server:route("/chat", {
  message = function(ws, msg, kind)
    local m = kind == "text" and json.decode(msg)
    if type(m) ~= "table" or type(m.text) ~= "string" then
      io.stderr:write(("chat: dropped a message from %s that is not {name, text} JSON\n"):format(ws.remote))
      return
    end
    server:broadcast(json.encode { from = display_name(m.name), text = m.text, at = now_iso() })
  end,
})

-- A push from outside any handler: every connection gets it.
local ticks = 0
luaws.every(opts.tick, function()
  ticks = ticks + 1
  server:broadcast(json.encode { from = "server", text = "tick " .. ticks, at = now_iso() })
end)

io.stdout:setvbuf("line")
print(("luaws chat listening on http://%s:%d/"):format(
  opts.host:find(":", 1, true) and "[" .. opts.host .. "]" or opts.host, server.port))
luaws.run()
