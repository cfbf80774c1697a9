-- SPDX-License-Identifier: MIT
--
-- The sample echo app: a page at http://localhost:5000/ (Connect, Send,
-- Close Socket, a Communication Log) and WebSocket echo at ws://localhost:5000/ws.
--
--   make run                              -- builds, then runs this on port 5000
--   lua5.4 examples/echo.lua --port 8080  -- once built
--   lua5.4 examples/echo.lua --coroutine  -- the same echo, written as a coroutine
--   lua5.4 examples/echo.lua --compression  -- with permessage-deflate (make run COMPRESSION=1)
--   make run TLS=1                        -- https://localhost:5443/ with a self-signed
--                                            certificate made once into build/tls/
--
-- Options: --host H (default localhost; "*" for every address), --port N
-- (0 picks a free one), --coroutine, --compression (accept permessage-deflate
-- offers: browsers make one; see README "Compression"), --tls-cert FILE
-- --tls-key FILE (PEM: serve the page over https:// and the echo over
-- wss://; SIGHUP reads the files again). It prints one line once it listens:
--   luaws echo listening on http://HOST:PORT/   (https:// with --tls-cert)
--
-- Behind a proxy (docs/deploy.md):
--   --unix PATH            listen on a unix-domain socket (mode 0660) instead of
--                          host:port; prints "luaws echo listening on unix:PATH"
--   --trusted-proxy CIDR   trust X-Forwarded-For / Forwarded from these peers (an
--                          address, a range, or "unix"); repeatable
--   --proxy-protocol       a PROXY protocol v1/v2 header comes first
--   --metrics              Prometheus text at /metrics
--   --access-log           one log line per upgrade and per close

-- Run from a checkout without installing: find lua/ and build/ beside us.
local here = (arg and arg[0] or ""):match("^(.-)[^/]*$")
package.path = here .. "../lua/?.lua;" .. here .. "../lua/?/init.lua;" .. package.path
package.cpath = here .. "../build/?.so;" .. package.cpath

local luaws = require "luaws"

local opts = { host = "localhost", port = 5000, coroutine = false, compression = false, trusted = {} }
local usage = "usage: lua5.4 examples/echo.lua [--host H] [--port N] [--coroutine] [--compression]"
  .. " [--tls-cert FILE --tls-key FILE] [--unix PATH] [--trusted-proxy CIDR]... [--proxy-protocol]"
  .. " [--metrics] [--access-log]\n"
local i = 1
while arg and arg[i] do
  local a = arg[i]
  if a == "--port" then opts.port = assert(tonumber(arg[i + 1]), "--port needs a number"); i = i + 1
  elseif a == "--host" then opts.host = assert(arg[i + 1], "--host needs a value"); i = i + 1
  elseif a == "--coroutine" then opts.coroutine = true
  elseif a == "--compression" then opts.compression = true
  elseif a == "--tls-cert" then opts.cert = assert(arg[i + 1], "--tls-cert needs a file"); i = i + 1
  elseif a == "--tls-key" then opts.key = assert(arg[i + 1], "--tls-key needs a file"); i = i + 1
  elseif a == "--unix" then opts.unix = assert(arg[i + 1], "--unix needs a path"); i = i + 1
  elseif a == "--trusted-proxy" then
    opts.trusted[#opts.trusted + 1] = assert(arg[i + 1], "--trusted-proxy needs an address or range"); i = i + 1
  elseif a == "--proxy-protocol" then opts.proxy_protocol = true
  elseif a == "--metrics" then opts.metrics = true
  elseif a == "--access-log" then opts.access_log = true
  else io.stderr:write(usage); os.exit(2) end
  i = i + 1
end

if (opts.cert == nil) ~= (opts.key == nil) then
  io.stderr:write("echo.lua: --tls-cert and --tls-key go together\n", usage)
  os.exit(2)
end

local server = assert(luaws.listen {
  host = opts.host,
  port = opts.port,
  static = here .. "echo/public",
  compression = opts.compression,
  unix = opts.unix,
  unix_mode = opts.unix and "0660" or nil,
  trusted_proxies = #opts.trusted > 0 and opts.trusted or nil,
  proxy_protocol = opts.proxy_protocol,
  metrics = opts.metrics and "/metrics" or nil,
  access_log = opts.access_log,
  -- the page then comes over https://, and it connects to wss:// itself
  tls = opts.cert and { certificate = opts.cert, key = opts.key } or nil,
})

if opts.coroutine then
  -- coroutine style: one coroutine per connection, receive() yields
  server:route("/ws", function(ws)
    for msg, kind in ws:messages() do ws:send(msg, kind) end
  end)
else
  -- callback style: one call per message
  server:route("/ws", {
    message = function(ws, msg, kind) ws:send(msg, kind) end,
  })
end

io.stdout:setvbuf("line")
if opts.unix then
  print("luaws echo listening on unix:" .. opts.unix)
else
  print(("luaws echo listening on %s://%s:%d/"):format(opts.cert and "https" or "http",
    opts.host:find(":", 1, true) and "[" .. opts.host .. "]" or opts.host, server.port))
end
if opts.compression then print("luaws echo: permessage-deflate on") end
local stat = io.open("/proc/self/stat")   -- its first field is our PID
local pid = stat and stat:read("n")
if stat then stat:close() end
if pid then print(("luaws echo: pid %d (Ctrl-C, or kill -TERM %d, stops it)"):format(pid, pid)) end
luaws.run()
