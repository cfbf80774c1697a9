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
local options = require "luaws.options"
local util = require "luaws.util"

local M = {}

M.defaults = options.defaults

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

-- Every server listened in this process (weak keys), for luaws.run in a
-- worker: those with a backplane are kept off the workers' relay.
M.listened = setmetatable({}, { __mode = "k" })

--[[ luaws.listen(opts) -> server | nil, message, token
  opts: see M.defaults (unknown names raise). The server listens at once;
  add routes with server:route(). server.port is the bound port. When it
  cannot listen: nil, "listen localhost:5000: address already in use", "io".
  Usage: local server = assert(luaws.listen { port = 8080 }) ]]
function M.listen(opts)
  local o = options.check(opts or {}, "listen", "listen", 2)
  local self = setmetatable({
    options = o, host = o.host, _routes = {},
    _origin_ok = origin_policy(o.allowed_origins),
  }, mt)
  local copts = options.core_options(o)
  copts.tls = o.tls
  -- a worker (luaws.run{workers}): the k-th listen adopts the sockets the
  -- master bound in its k-th listen, instead of binding
  copts.fds = core.worker_fds()
  local c, message, token = core.listen(o.host, math.floor(o.port), copts, function(req)
    return on_request(self, req)
  end)
  if not c then return nil, message, token end
  self._c = c
  self.port = c:port()
  M.listened[self] = true
  if o.backplane then
    local params, err = util.parse_redis_url(o.backplane)
    if not params then
      c:close(0)
      error("listen: option 'backplane': " .. err, 2)
    end
    params.prefix = o.backplane_prefix
    local on_event = o.on_backplane or function(state, detail)
      -- nothing goes silently: without a handler, say it in the log
      core.log(("backplane %s: %s (%s)"):format(state, detail, o.backplane))
    end
    assert(c:backplane(params, on_event))
  end
  return self
end

-- server:close([code [, reason]]) -> true: stop accepting; close every
-- connection with code (default 1001 "server closed"; 0 leaves them open).
function methods:close(code, reason)
  if code ~= nil and math.type(code) ~= "integer" then
    error("bad argument #1 to 'close' (integer close code expected, got " .. type(code) .. ")", 2)
  end
  if reason ~= nil and type(reason) ~= "string" then
    error("bad argument #2 to 'close' (string expected, got " .. type(reason) .. ")", 2)
  end
  self._c:close(code, reason)
  return true
end

-- server:broadcast(data [, kind [, except_ws | {except = ws, route = path}] ])
--   -> connections sent to. The frame is encoded once for all of them. Without
--   a route it reaches every open connection of the server, on every route.
function methods:broadcast(data, kind, opts)
  if type(data) ~= "string" then
    error("bad argument #1 to 'broadcast' (string expected, got " .. type(data) .. ")", 2)
  end
  if kind ~= nil and kind ~= "text" and kind ~= "binary" then
    error("bad argument #2 to 'broadcast' (\"text\" or \"binary\" expected, got " .. tostring(kind) .. ")", 2)
  end
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

-- server:publish(topic, data [, kind]) -> connections reached: every open
-- subscriber of topic in this process (ws:subscribe). The frame is encoded
-- once and shared by every queue that holds it.
function methods:publish(topic, data, kind) return self._c:publish(topic, data, kind) end

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
