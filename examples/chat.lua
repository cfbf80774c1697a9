-- SPDX-License-Identifier: MIT
--
-- A chat room: what one client says, every client in the room hears, on
-- every worker and every machine, and the server speaks every few seconds.
-- It shows topics (ws:subscribe, server:publish: one frame for the room), a
-- push from outside any handler (luaws.every), a worker per core and a
-- Redis backplane between servers, with JSON through lua-cjson.
--
--   lua5.4 examples/chat.lua                      -- once built (make); then open
--                                                 -- http://localhost:5000/ in two tabs
--   lua5.4 examples/chat.lua --workers 2          -- two processes on one port
--   lua5.4 examples/chat.lua --port 5001 --redis redis://127.0.0.1:6379
--                                                 -- rooms joined across servers
--
-- Wire format (examples/chat/public/chat.js is the other side), text frames:
--   client -> server   {"name": "ada", "text": "hello"}
--   server -> everyone {"from": "ada", "text": "hello", "at": "2024-05-01T12:00:00Z"}
--   every --tick s     {"from": "server", "text": "tick N", "at": "..."}
-- A message that is not such JSON is dropped (and logged on stderr). The
-- name "server" is the server's own: a client that takes it is "anonymous".
--
-- Options: --host H (default localhost; "*" for every address), --port N
-- (0 picks a free one), --tick S (default 5), --workers N (or "auto"),
-- --redis URL (a backplane: every server given the same Redis shares the
-- room). The page is at /, the room at /ws (and /chat, its old name). It
-- prints one line once it listens:
--   luaws chat listening on http://HOST:PORT/

-- Run from a checkout without installing: find lua/ and build/ beside us.
local here = (arg and arg[0] or ""):match("^(.-)[^/]*$")
package.path = here .. "../lua/?.lua;" .. here .. "../lua/?/init.lua;" .. package.path
package.cpath = here .. "../build/?.so;" .. package.cpath

local luaws = require "luaws"
local json = require "cjson.safe"   -- Debian lua-cjson: decode returns nil on bad JSON

-- lua-cjson 2.1 writes "/" as "\/"; a chat line should arrive as it was typed.
local function encode(t) return (json.encode(t):gsub("\\/", "/")) end

local opts = { host = "localhost", port = 5000, tick = 5 }
local usage = "usage: lua5.4 examples/chat.lua [--host H] [--port N] [--tick SECONDS]"
  .. " [--workers N|auto] [--redis URL]\n"
local i = 1
while arg and arg[i] do
  local a = arg[i]
  if a == "--port" then opts.port = assert(tonumber(arg[i + 1]), "--port needs a number"); i = i + 1
  elseif a == "--host" then opts.host = assert(arg[i + 1], "--host needs a value"); i = i + 1
  elseif a == "--tick" then
    opts.tick = tonumber(arg[i + 1])
    assert(opts.tick and opts.tick > 0, "--tick needs a positive number of seconds")
    i = i + 1
  elseif a == "--workers" then
    opts.workers = arg[i + 1] == "auto" and "auto" or tonumber(arg[i + 1])
    assert(opts.workers, "--workers needs a number or auto"); i = i + 1
  elseif a == "--redis" then opts.redis = assert(arg[i + 1], "--redis needs a URL"); i = i + 1
  else io.stderr:write(usage); os.exit(2) end
  i = i + 1
end

local MAX_NAME = 40   -- characters, as the page's input allows

local server = assert(luaws.listen {
  host = opts.host,
  port = opts.port,
  static = here .. "chat/public",
  max_message_size = 16 * 1024,   -- a chat line, not a file: bigger ones close with 1009
  backplane = opts.redis,         -- nil: this process (and its workers) only
  -- JSON chat lines repeat their keys: permessage-deflate (browsers offer
  -- it) shrinks them several times. Without context takeover on our side a
  -- room's message is compressed once for every subscriber that agreed to
  -- the same parameters (the publish shares one frame), and an idle
  -- connection holds no compressor state; lines under 64 bytes go plain.
  compression = { server_context_takeover = false, threshold = 64 },
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

-- The room is a topic: every client subscribes when it opens, and a message
-- is published to it once, for every subscriber here, on the other workers
-- and, through Redis, on the other servers.
local ROOM = "room"
local room = {
  open = function(ws) assert(ws:subscribe(ROOM)) end,
  message = function(ws, msg, kind)
    local m = kind == "text" and json.decode(msg)
    if type(m) ~= "table" or type(m.text) ~= "string" then
      io.stderr:write(("chat: dropped a message from %s that is not {name, text} JSON\n"):format(ws.remote))
      return
    end
    server:publish(ROOM, encode { from = display_name(m.name), text = m.text, at = now_iso() })
  end,
}
server:route("/ws", room)
server:route("/chat", room)

-- A push from outside any handler, to this process's part of the room (each
-- worker and each server says its own ticks).
local ticks = 0
luaws.every(opts.tick, function()
  ticks = ticks + 1
  local text = luaws.worker_id and luaws.worker_id() and ("tick %d (worker %d)"):format(ticks, luaws.worker_id())
    or "tick " .. ticks
  server:broadcast(encode { from = "server", text = text, at = now_iso() })
end)

io.stdout:setvbuf("line")
print(("luaws chat listening on http://%s:%d/"):format(
  opts.host:find(":", 1, true) and "[" .. opts.host .. "]" or opts.host, server.port))
luaws.run { workers = opts.workers }
