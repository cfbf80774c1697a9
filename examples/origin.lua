-- SPDX-License-Identifier: MIT
--
-- Who may connect: the allowed_origins option, and an upgrade hook that
-- checks a token.
--
-- The story: this server runs at https://server.com; a page served by
-- https://client.com may open a WebSocket to it, a page from anywhere else
-- may not. Browsers send the page's origin in the Origin header of the
-- handshake; luaws answers 403 to an Origin that is not in allowed_origins.
-- A request without Origin (a script, curl, another server) passes: it is
-- not a browser, and the rule protects browser users only.
--
-- Origin is NOT authentication. Any program can write any Origin header; it
-- only stops other web pages from using your visitors' browsers (and their
-- cookies) against you. To know who connects, check a credential, as the
-- upgrade hook of /private does: a token in the query string
-- (?token=...) or in an "Authorization: Bearer ..." header, else 401.
--
--   lua5.4 examples/origin.lua          -- once built (make)
--     /ws       echo, for pages from the allowed origins (default https://client.com)
--     /private  echo, only with the token (default s3cret)
--     /         the echo page: open http://localhost:5000/ and Connect. It is
--               refused (the log shows 1006; on the wire it was a 403),
--               because its origin, http://localhost:5000, is not allowed.
--   lua5.4 examples/origin.lua --allow-origin http://localhost:5000
--               now the page connects.
--
-- Try it without a browser (curl prints the status line):
--   curl -si -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' \
--     -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' -H 'Origin: https://evil.example' \
--     http://localhost:5000/ws | head -1                                     # 403 Forbidden
--   ... the same with -H 'Origin: https://client.com'                       # 101 Switching Protocols
--   ... the same with no Origin, to http://localhost:5000/private           # 401 Unauthorized
--   ... to 'http://localhost:5000/private?token=s3cret'                     # 101 Switching Protocols
--
-- Options: --host H (default localhost; "*" for every address), --port N
-- (0 picks a free one), --allow-origin ORIGIN (repeatable; replaces the
-- default https://client.com), --token T. It prints one line once it listens:
--   luaws origin listening on http://HOST:PORT/

-- Run from a checkout without installing: find lua/ and build/ beside us.
local here = (arg and arg[0] or ""):match("^(.-)[^/]*$")
package.path = here .. "../lua/?.lua;" .. here .. "../lua/?/init.lua;" .. package.path
package.cpath = here .. "../build/?.so;" .. package.cpath

local luaws = require "luaws"

local opts = { host = "localhost", port = 5000, origins = {}, token = "s3cret" }
local usage = "usage: lua5.4 examples/origin.lua [--host H] [--port N] [--allow-origin ORIGIN]... [--token T]\n"
local i = 1
while arg and arg[i] do
  local a = arg[i]
  if a == "--port" then opts.port = assert(tonumber(arg[i + 1]), "--port needs a number"); i = i + 1
  elseif a == "--host" then opts.host = assert(arg[i + 1], "--host needs a value"); i = i + 1
  elseif a == "--allow-origin" then
    opts.origins[#opts.origins + 1] = assert(arg[i + 1], "--allow-origin needs an origin"); i = i + 1
  elseif a == "--token" then opts.token = assert(arg[i + 1], "--token needs a value"); i = i + 1
  else io.stderr:write(usage); os.exit(2) end
  i = i + 1
end
if #opts.origins == 0 then opts.origins = { "https://client.com" } end

local server = assert(luaws.listen {
  host = opts.host,
  port = opts.port,
  static = here .. "echo/public",
  -- Exact origins: scheme, host and port (https://client.com is not
  -- http://client.com, nor https://client.com:8443). Others get 403 before
  -- any route sees the request.
  allowed_origins = opts.origins,
})

local function echo(ws, msg, kind) ws:send(msg, kind) end

server:route("/ws", { message = echo })

-- The token, from "?token=..." or "Authorization: Bearer ...". A real
-- server would check a signed, expiring token or a session, and compare in
-- constant time; a fixed string keeps the example short.
local function token_of(req)
  local q = req.query and ("&" .. req.query):match("&token=([^&]*)")
  local bearer = req.headers.authorization and req.headers.authorization:match("^[Bb]earer%s+(%S+)%s*$")
  return q or bearer
end

server:route("/private", {
  -- Runs after the origin check, before the 101. Returning false, status
  -- [, body] refuses; anything else accepts.
  upgrade = function(req)
    if token_of(req) ~= opts.token then
      io.stderr:write(("origin: refused %s on /private: no valid token\n"):format(req.remote))
      return false, 401, "401 Unauthorized: a valid token is needed\n"
    end
  end,
  message = echo,
})

io.stdout:setvbuf("line")
print(("luaws origin listening on http://%s:%d/"):format(
  opts.host:find(":", 1, true) and "[" .. opts.host .. "]" or opts.host, server.port))
luaws.run()
