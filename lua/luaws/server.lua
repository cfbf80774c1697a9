-- SPDX-License-Identifier: MIT
--
-- luaws.server: luaws.listen{...} -- options and their defaults, routes,
-- the origin policy, subprotocol choice, the upgrade hook, static files.
--
-- The C core calls on_request(req) once per request head, after it has
-- answered what RFC 6455 decides by itself (400 for a malformed upgrade, 405,
-- 426, 431). Everything here is app policy, in the order a request meets it:
--   upgrade request:  route? (404) -> origin allowed? (403) -> subprotocol ->
--                     the route's upgrade hook (false, status) -> 101
--   plain request:    a WebSocket route? (400) -> static file? -> 404

local core = require "luaws.core"
local conn = require "luaws.conn"
local util = require "luaws.util"

local M = {}

-- Option names, their defaults (nil: off) and their checks.
local defaults = {
  host = "localhost",            -- "*" for every address, IPv4 and IPv6
  port = 5000,                   -- 0 picks a free port: server.port tells which
  keep_alive_interval = 120,     -- seconds between pings; 0 turns them off
  keep_alive_timeout = nil,      -- seconds to wait for the pong; nil waits forever
  receive_buffer_size = 4096,    -- bytes per read
  allowed_origins = nil,         -- nil or "*": all; a list of exact origins; or a function
  max_message_size = 16 * 1024 * 1024,
  idle_timeout = nil,            -- seconds with nothing received -> close (1006 "timeout")
  protocols = nil,               -- subprotocols we speak, in preference order
  static = nil,                  -- a directory: plain GETs get files from it
  max_backpressure = 16 * 1024 * 1024, -- send queue bytes before closing with 1008
  handshake_timeout = 10,        -- seconds to finish the opening handshake
  close_timeout = 5,             -- seconds to wait for the peer's half of the close
  max_connections = nil,         -- beyond it: 503
  backlog = 511,
}
M.defaults = defaults

local kinds = {
  host = "string", port = "number", keep_alive_interval = "number",
  keep_alive_timeout = "number", receive_buffer_size = "number",
  allowed_origins = { table = true, string = true, ["function"] = true },
  max_message_size = "number", idle_timeout = "number", protocols = "table",
  static = "string", max_backpressure = "number", handshake_timeout = "number",
  close_timeout = "number", max_connections = "number", backlog = "number",
  tls = "table",                 -- { certificate = "cert.pem", key = "key.pem" }: wss://
}

local function check_options(opts)
  if type(opts) ~= "table" then error("bad argument #1 to 'listen' (table expected, got " .. type(opts) .. ")", 3) end
  local o = {}
  for k, v in pairs(opts) do
    local want = kinds[k]
    if not want then error("unknown option '" .. tostring(k) .. "'", 3) end
    local t = type(v)
    if (type(want) == "string" and t ~= want) or (type(want) == "table" and not want[t]) then
      error("option '" .. k .. "' must be a " .. (type(want) == "string" and want or "table, string or function")
        .. ", got " .. t, 3)
    end
    if t == "number" and (v < 0 or v ~= v) then error("option '" .. k .. "' must not be negative", 3) end
    o[k] = v
  end
  for k, v in pairs(defaults) do
    if o[k] == nil then o[k] = v end
  end
  if o.tls then
    local t = o.tls
    if type(t.certificate) ~= "string" or type(t.key) ~= "string" then
      error("option 'tls' needs certificate and key (PEM file names)", 3)
    end
  end
  if o.port ~= math.floor(o.port) or o.port > 65535 then error("option 'port' must be an integer 0-65535", 3) end
  if o.receive_buffer_size < 256 then error("option 'receive_buffer_size' must be at least 256", 3) end
  if o.max_message_size < 1 then error("option 'max_message_size' must be at least 1", 3) end
  if o.static then o.static = o.static:gsub("/+$", "") end
  return o
end

-- Is this Origin allowed? No Origin header (not a browser) always passes;
-- Origin is the browser's word, not authentication.
local function origin_policy(allowed)
  if allowed == nil or allowed == "*" then return function() return true end end
  if type(allowed) == "function" then return allowed end
  if type(allowed) == "string" then allowed = { allowed } end
  local set = {}
  for _, o in ipairs(allowed) do
    if o == "*" then return function() return true end end
    set[o:lower():gsub("/+$", "")] = true
  end
  return function(origin) return set[origin:lower()] == true end
end

-- The first of our protocols (in our order) that the client offered.
local function pick_protocol(ours, offered)
  if not ours or not offered then return nil end
  local theirs = {}
  for _, p in ipairs(util.tokens(offered)) do theirs[p] = true end
  for _, p in ipairs(ours) do
    if theirs[p] then return p end
  end
end

local function text(status, body, extra)
  local h = { ["Content-Type"] = "text/plain; charset=utf-8" }
  for k, v in pairs(extra or {}) do h[k] = v end
  return false, status, h, body or (status .. "\n")
end

local methods = {}
local mt = { __index = methods, __name = "luaws.Server" }

function mt.__tostring(self)
  return ("luaws.Server{%s:%d}"):format(self.host, self.port)
end

--[[ server:route(path, handlers | fn) -> server
  handlers: { upgrade = function(req) ... end,   -- false, status to refuse
              open = function(ws) end, message = function(ws, msg, kind) end,
              close = function(ws, code, reason) end, drain = function(ws) end,
              ping = function(ws, payload) end, pong = function(ws, payload) end,
              protocols = {...} }                -- overrides the server's
  fn: coroutine style, fn(ws) runs as a coroutine for each connection and may
  wait in ws:receive() / ws:messages(). ]]
function methods:route(path, handlers)
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" then
    error("bad argument #1 to 'route' (path starting with / expected)", 2)
  end
  if type(handlers) == "function" then
    handlers = conn.coroutine_handlers(handlers)
  elseif type(handlers) ~= "table" then
    error("bad argument #2 to 'route' (table or function expected, got " .. type(handlers) .. ")", 2)
  else
    for k, v in pairs(handlers) do
      if k == "protocols" then
        if type(v) ~= "table" then error("route 'protocols' must be a table", 2) end
      elseif k ~= "upgrade" and k ~= "open" and k ~= "message" and k ~= "close" and k ~= "drain"
        and k ~= "ping" and k ~= "pong" then
        error("unknown handler '" .. tostring(k) .. "'", 2)
      elseif type(v) ~= "function" then
        error("handler '" .. k .. "' must be a function", 2)
      end
    end
  end
  self._routes[path] = handlers
  return self
end

-- Answer one request head (called by the C core; see the file comment).
local function on_request(self, req)
  local route = self._routes[req.path]
  if req.upgrade then
    if not route then return text(404, "404 Not Found\n") end
    if req.origin and not self._origin_ok(req.origin) then
      return text(403, "403 Forbidden: origin not allowed\n")
    end
    req.protocol = pick_protocol(route.protocols or self.options.protocols,
      req.headers["sec-websocket-protocol"])
    if route.upgrade then
      local ok, status, body, headers = route.upgrade(req)
      if ok == false then
        status = math.tointeger(status) or 403
        if status < 400 or status > 599 then status = 403 end
        return text(status, body, headers)   -- e.g. WWW-Authenticate with a 401
      end
    end
    local p = req.protocol
    if p ~= nil then
      local offered = false
      for _, q in ipairs(util.tokens(req.headers["sec-websocket-protocol"])) do
        if q == p then offered = true end
      end
      -- RFC 6455 §4.2.2: the server may only pick what the client offered
      if not offered then
        error(("upgrade hook chose subprotocol %q, which the client did not offer"):format(tostring(p)))
      end
    end
    return true, route, p, req.response_headers
  end
  if route then
    return text(400, "400 Bad Request: this path speaks WebSocket only\n")
  end
  if self.options.static then
    return false, util.static(self.options.static, req)
  end
  return text(404, "404 Not Found\n")
end

--[[ luaws.listen(opts) -> server | nil, token, detail
  opts: see M.defaults (unknown names raise). The server listens at once;
  add routes with server:route(). server.port is the bound port. ]]
function M.listen(opts)
  local o = check_options(opts or {})
  local self = setmetatable({
    options = o, host = o.host, _routes = {},
    _origin_ok = origin_policy(o.allowed_origins),
  }, mt)
  local copts = {
    keep_alive_interval = o.keep_alive_interval, keep_alive_timeout = o.keep_alive_timeout or 0,
    idle_timeout = o.idle_timeout or 0, handshake_timeout = o.handshake_timeout,
    close_timeout = o.close_timeout, max_message_size = math.floor(o.max_message_size),
    max_backpressure = math.floor(o.max_backpressure),
    receive_buffer_size = math.floor(o.receive_buffer_size),
    max_connections = o.max_connections and math.floor(o.max_connections) or 0,
    backlog = math.floor(o.backlog),
    tls = o.tls,
  }
  local c, token, detail = core.listen(o.host, math.floor(o.port), copts, function(req)
    return on_request(self, req)
  end)
  if not c then return nil, token, detail end
  self._c = c
  self.port = c:port()
  return self
end

-- server:close([code [, reason]]): stop accepting; close every connection
-- with code (default 1001 "server closed"; 0 leaves them open).
function methods:close(code, reason) return self._c:close(code, reason) end

-- server:broadcast(data [, kind [, except_ws | {except = ws, route = path}] ])
--   -> connections sent to. The frame is encoded once for all of them. Without
--   a route it reaches every open connection of the server, on every route.
function methods:broadcast(data, kind, opts)
  if type(opts) == "table" then
    local handlers
    if opts.route ~= nil then
      handlers = self._routes[opts.route]
      if not handlers then error("bad argument #3 to 'broadcast' (no route " .. tostring(opts.route) .. ")", 2) end
    end
    return self._c:broadcast(data, kind, opts.except, handlers)
  end
  return self._c:broadcast(data, kind, opts)
end

-- server:stats() -> {connections, accepted, upgraded, rejected,
--   messages_in, messages_out, bytes_in, bytes_out}
function methods:stats() return self._c:stats() end

-- server:connections() -> array of open connections
function methods:connections() return self._c:connections() end

-- server:url([path]) -> "ws://host:port/path" (wss:// with tls) for this server
function methods:url(path)
  local host = self.host
  if host == "*" or host == "0.0.0.0" or host == "::" then host = "127.0.0.1" end
  if host:find(":", 1, true) then host = "[" .. host .. "]" end
  return ("%s://%s:%d%s"):format(self.options.tls and "wss" or "ws", host, self.port, path or "/")
end

return M
