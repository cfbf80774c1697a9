-- SPDX-License-Identifier: MIT
--
-- luaws.server: luaws.listen{...} -- options and their defaults, routes
-- (WebSocket and plain HTTP, exact or patterns: luaws.routes), the origin
-- policy, subprotocol choice, the upgrade hook, HTTP handlers, static
-- files, and refusals made visible (the reject option, a log line).
--
-- The C core calls on_request(req) once per plain request (its body already
-- read into req.body) and on_upgrade(path, origin) once per upgrade request
-- (its table made only when needed), after it has answered what it decides by
-- itself (400 for a malformed request or framing, 405, 413, 426, 431, 501:
-- on_refused tells us). When on_upgrade says its answer depends on the path
-- alone, the core keeps it for that path and stops asking until route()
-- forgets it. Everything here is app policy, in the order a request meets it:
--   upgrade request:  WebSocket route? (404) -> origin allowed? (403) ->
--                     subprotocol -> the route's upgrade hook (false,
--                     status) -> 101
--   plain request:    HTTP route? (its handler; 405 with Allow for another
--                     method) -> a WebSocket route? (400) -> static file? -> 404
-- Every 4xx/5xx chosen here or by the core goes to the reject option, or
-- else is logged in one line (log_refusals).

local core = require "luaws.core"
local conn = require "luaws.conn"
local metrics = require "luaws.metrics"
local options = require "luaws.options"
local routes = require "luaws.routes"
local util = require "luaws.util"

local rawget, next = rawget, next

local M = {}

M.defaults = options.defaults

-- Is this Origin allowed? No Origin header (not a browser) always passes;
-- Origin is the browser's word, not authentication. The second result: is
-- every origin allowed?
local function origin_policy(allowed)
  local function any() return true end
  if allowed == nil or allowed == "*" then return any, true end
  if type(allowed) == "function" then return allowed, false end
  if type(allowed) == "string" then allowed = { allowed } end
  local set = {}
  for _, o in ipairs(allowed) do
    if o == "*" then return any, true end
    set[o:lower():gsub("/+$", "")] = true
  end
  return function(origin) return set[origin:lower()] == true end, false
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

-- Request tables (req, and a connection's fields) work these out on first
-- use: req.headers and a connection's origin (from the head's bytes the
-- core left in the table), req.args (the query), req.cookies (the Cookie
-- header), req.params (none: an exact route) and req.data (a table for the
-- app's state).
core.request_metatable {
  __index = function(t, k)
    local v
    if k == "headers" then
      v = core.request_headers(t)
    elseif k == "origin" then   -- a connection's fields (a request's is set when sent)
      local headers = t.headers
      v = headers and headers.origin
      if v == nil then return nil end
    elseif k == "args" then
      v = util.parse_query(rawget(t, "query"))
    elseif k == "cookies" then
      local headers = t.headers
      v = util.parse_cookies(headers and headers.cookie)
    elseif k == "params" or k == "data" then
      v = {}
    else
      return nil
    end
    rawset(t, k, v)
    return v
  end,
}

-- A refusal: the reject option hears of it, or else one log line.
local function refused(self, req, status)
  local o, reason = self.options, core.http_reason(status)
  if o.reject then
    local ok, err = xpcall(o.reject, debug.traceback, req, status, reason)
    if not ok then core.log("error in reject: " .. tostring(err)) end
  elseif o.log_refusals then
    core.log(("refused %s from %s: %d %s"):format(
      req.method and (req.method .. " " .. tostring(req.path))
        or (req.not_tls and "plain HTTP sent to the TLS port" or "a request that did not parse"),
      tostring(req.remote), status, reason))
  end
end

local function refuse(self, req, status, body, extra)
  refused(self, req, status)
  return text(status, body, extra)
end

-- The methods an HTTP route answers, for Allow (HEAD with GET).
local function allow(entry)
  local list = {}
  for m in pairs(entry) do list[#list + 1] = m end
  if entry.GET and not entry.HEAD then list[#list + 1] = "HEAD" end
  table.sort(list)
  return table.concat(list, ", ")
end

-- Headers luaws writes itself (the framing): a handler's are dropped.
local framing = { ["content-length"] = true, ["transfer-encoding"] = true, connection = true }

-- Run an HTTP handler: fn(req) -> status, body [, headers].
local function answer(req, fn)
  local ok, status, body, headers = xpcall(fn, debug.traceback, req)
  local what = ("http handler %s %s"):format(req.method, req.path)
  if not ok then
    core.log(("error in %s: %s"):format(what, tostring(status)))
    return text(500, "500 Internal Server Error\n")
  end
  local st, bt = math.tointeger(status), type(body)
  local bad
  if not st or st < 200 or st > 599 then
    bad = "a status " .. tostring(status) .. ", not an integer 200-599"
  elseif bt ~= "nil" and bt ~= "string" and bt ~= "number" and bt ~= "function" then
    bad = "a body that is a " .. bt .. ", not a string or a function"
  elseif headers ~= nil and type(headers) ~= "table" then
    bad = "headers that are a " .. type(headers) .. ", not a table"
  end
  if bad then
    core.log(("error in %s: it returned %s"):format(what, bad))
    return text(500, "500 Internal Server Error\n")
  end
  local h, typed = {}, false
  for k, v in pairs(headers or {}) do
    local name = type(k) == "string" and k:lower()
    if not framing[name] then h[k] = v end
    if name == "content-type" then typed = true end
  end
  if not typed then h["Content-Type"] = "text/plain; charset=utf-8" end
  if bt == "number" then body = tostring(body) end
  return false, st, h, body or ""
end

local methods = {}
local mt = { __index = methods, __name = "luaws.Server" }

function mt.__tostring(self)
  return ("luaws.Server{%s:%d}"):format(self.host, self.port)
end

--[[ server:route(path, handlers | fn) -> server
  path: exact ("/ws") or a pattern ("/chat/:room", "/files/*"; see
  luaws.routes): ws.params holds the parameters.
  handlers: { upgrade = function(req) ... end,   -- false, status to refuse
              open = function(ws) end, message = function(ws, msg, kind) end,
              close = function(ws, code, reason) end, drain = function(ws) end,
              ping = function(ws, payload) end, pong = function(ws, payload) end,
              fragment = function(ws, chunk, kind, fin) end,  -- frame by frame, in place of message
              protocols = {...},                 -- overrides the server's
              compression = false | true | {...} } -- overrides the server's (luaws.options)
  fn: coroutine style, fn(ws) runs as a coroutine for each connection and may
  wait in ws:receive() / ws:messages().
  ropts: { compression = ... }, the route's own compression (for a
  coroutine route too; the handlers' compression key says the same). ]]
function methods:route(path, handlers, ropts)
  if ropts ~= nil then
    if type(ropts) ~= "table" then
      error("bad argument #3 to 'route' (table expected, got " .. type(ropts) .. ")", 2)
    end
    for k in pairs(ropts) do
      if k ~= "compression" then error("route: unknown option '" .. tostring(k) .. "'", 2) end
    end
  end
  if type(handlers) == "function" then
    handlers = conn.coroutine_handlers(handlers)
  elseif type(handlers) ~= "table" then
    error("bad argument #2 to 'route' (table or function expected, got " .. type(handlers) .. ")", 2)
  else
    for k, v in pairs(handlers) do
      if k == "protocols" then
        if type(v) ~= "table" then error("route 'protocols' must be a table", 2) end
      elseif k == "compression" then
        self._zroute[handlers] = options.check_compression(v, "route", 2)
      elseif k ~= "upgrade" and k ~= "open" and k ~= "message" and k ~= "close" and k ~= "drain"
        and k ~= "ping" and k ~= "pong" and k ~= "fragment" then
        error("unknown handler '" .. tostring(k) .. "'", 2)
      elseif type(v) ~= "function" then
        error("handler '" .. k .. "' must be a function", 2)
      end
    end
  end
  if ropts and ropts.compression ~= nil then
    self._zroute[handlers] = options.check_compression(ropts.compression, "route", 2)
  end
  if self.options.access_log then   -- a new table: the route's compression follows it
    local z = self._zroute[handlers]
    handlers = self:_logged(handlers)
    self._zroute[handlers] = z
  end
  self._ws:add(path, handlers, "route", 2)
  self._c:forget_upgrades()
  return self
end

-- One access-log line: fields in order, as logfmt (key=value, values with
-- spaces or quotes quoted) or as a JSON object.
local function log_value(v)
  if type(v) == "number" then
    return math.type(v) == "integer" and tostring(v) or ("%.6f"):format(v)
  end
  return tostring(v)
end

local function access_line(style, ...)
  local out, fields = {}, table.pack(...)
  for i = 1, fields.n, 2 do
    local k, v = fields[i], fields[i + 1]
    if v ~= nil then
      local s = log_value(v)
      if style == "json" then
        out[#out + 1] = ("%q:%s"):format(k, (type(v) == "number" or type(v) == "boolean") and s
          or '"' .. s:gsub('[%c"\\]', function(ch) return ("\\u%04x"):format(ch:byte()) end) .. '"')
      else
        if s == "" or s:find('[%s"=]') then s = '"' .. s:gsub('[\\"]', "\\%0"):gsub("\n", "\\n") .. '"' end
        out[#out + 1] = k .. "=" .. s
      end
    end
  end
  return style == "json" and "{" .. table.concat(out, ",") .. "}" or table.concat(out, " ")
end

--[[ server:_logged(handlers) -> handlers
  The route's handlers with the access log (the access_log option) around
  open and close: one line per upgrade (remote, path, status 101, the
  handshake's duration) and one per close (remote, path, close code, the
  connection's duration, messages and bytes each way), through core.log.
  Made once per route, so connections share one table. ]]
function methods:_logged(handlers)
  local style = self.options.access_log == "json" and "json" or "logfmt"
  local born = setmetatable({}, { __mode = "k" })
  local open, close = handlers.open, handlers.close
  local wrapped = {}
  for k, v in pairs(handlers) do wrapped[k] = v end
  wrapped.open = function(ws)
    local st = ws:stats()
    born[ws] = core.now()
    core.log(access_line(style, "event", "upgrade", "remote", ws.remote, "path", ws.path,
      "status", 101, "duration", st and st.handshake_seconds, "secure", ws.secure))
    if open then return open(ws) end
  end
  wrapped.close = function(ws, code, reason, token)
    local st = ws:stats() or {}
    local t0 = born[ws]
    core.log(access_line(style, "event", "close", "remote", ws.remote, "path", ws.path, "code", code,
      "reason", reason ~= "" and reason or nil, "error", token,
      "duration", t0 and core.now() - t0, "messages_in", st.messages_in, "messages_out", st.messages_out,
      "bytes_in", st.bytes_in, "bytes_out", st.bytes_out))
    if close then return close(ws, code, reason, token) end
  end
  return wrapped
end


-- Add fn as the handler of method on path (see server:http), naming fname.
local function add_http(self, method, path, fn, fname)
  local n = fname == "http" and 1 or 0   -- server:http has the method first
  if fname == "http" and (type(method) ~= "string" or not method:match("^[%w!#$%%&'*+.^_`|~-]+$")) then
    error("bad argument #1 to 'http' (method name expected, got " .. type(method) .. ")", 3)
  end
  if type(fn) ~= "function" then
    error(("bad argument #%d to '%s' (function expected, got %s)"):format(n + 2, fname, type(fn)), 3)
  end
  local entry = type(path) == "string" and self._http:get(path)
  if not entry then entry = self._http:add(path, {}, fname, 3) end
  entry[method] = fn
end

--[[ server:http(method, path, fn) -> server
  Plain HTTP on the server's port: fn(req) answers method on path (exact or
  a pattern, as in route) and returns status, body [, headers]: body a
  string, or a function that gives the next piece each call and nil at the
  end (sent chunked; coroutine.wrap turns a function that yields pieces
  into one). req.body is the request body, req.params the path's
  parameters, req.args the query, req.cookies the cookies. HEAD is answered
  from GET; another method on the path gets 405 with Allow. Methods are
  case-sensitive ("GET"). An error raised in fn: 500, and the traceback
  logged. ]]
function methods:http(method, path, fn)
  add_http(self, method, path, fn, "http")   -- not a tail call: errors name the caller's line
  return self
end

-- server:get(path, fn) / server:post(path, fn): server:http("GET"|"POST", path, fn).
function methods:get(path, fn)
  add_http(self, "GET", path, fn, "get")
  return self
end

function methods:post(path, fn)
  add_http(self, "POST", path, fn, "post")
  return self
end

--[[ server:route_metrics([path]) -> server
  Serve the server's counters at path (default "/metrics") in the
  Prometheus text format 0.0.4 (luaws.metrics): a GET route like any
  other, so an upgrade hook, origin or TLS settings do not apply to it.
  Usage: server:route_metrics("/metrics") ]]
function methods:route_metrics(path)
  path = path or "/metrics"
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" then
    error("bad argument #1 to 'route_metrics' (a path beginning with / expected)", 2)
  end
  add_http(self, "GET", path, function()
    return 200, metrics.render(self), { ["Content-Type"] = metrics.CONTENT_TYPE }
  end, "route_metrics")
  return self
end

--[[ Answer an upgrade request (called by the C core with the path, its
  query left out, and the Origin header; see the file comment). Its request
  table is made only when something needs it (core.current_request, during
  this call only): a refusal, an upgrade hook, subprotocols, a pattern's
  params. Returns what on_request returns for an upgrade, the 5th value the
  request table when it becomes the connection's fields. ]]
local function on_upgrade(self, path, origin)
  -- an exact route without a call (this runs for every upgrade), and
  -- without the empty params table match gives one
  local route, params = self._ws.exact[path], nil
  if route == nil then route, params = self._ws:match(path) end
  if not route then return refuse(self, core.current_request(), 404, "404 Not Found\n") end
  if origin and not self._origin_ok(origin) then
    return refuse(self, core.current_request(), 403, "403 Forbidden: origin not allowed\n")
  end
  local ours = route.protocols or self.options.protocols
  if not (ours or params or route.upgrade) then
    -- the answer depends on the path alone: the core may keep it for this
    -- path (for every Origin when all are allowed, else for requests
    -- without one) until the routes change (route() forgets it)
    local z = self._zroute[route]
    return true, route, nil, nil, nil, z, z == nil and (self._origin_any and "any" or "bare") or nil
  end
  -- fields the core may not have set are read with rawget, which the
  -- request metatable's __index (a Lua call) skips
  local req = core.current_request()
  if params then req.params = params end
  if ours then
    req.protocol = pick_protocol(ours, req.headers["sec-websocket-protocol"])
  end
  if route.upgrade then
    local ok, status, body, headers = route.upgrade(req)
    if ok == false then
      status = math.tointeger(status) or 403
      if status < 400 or status > 599 then status = 403 end
      return refuse(self, req, status, body, headers)   -- e.g. WWW-Authenticate with a 401
    end
  end
  local p = rawget(req, "protocol")
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
  -- the request table becomes ws's fields when it holds what ws needs
  local keep = rawget(req, "data") ~= nil or (params ~= nil and next(params) ~= nil)
  return true, route, p, rawget(req, "response_headers"), keep and req or nil, self._zroute[route]
end

-- Answer a plain HTTP request (called by the C core; see the file comment).
local function on_request(self, req)
  local entry, params = self._http:match(req.path)
  if entry then
    local fn = entry[req.method] or (req.method == "HEAD" and entry.GET)
    if not fn then
      return refuse(self, req, 405, "405 Method Not Allowed\n", { Allow = allow(entry) })
    end
    req.params = params
    return answer(req, fn)
  end
  if self._ws:match(req.path) then
    return refuse(self, req, 400, "400 Bad Request: this path speaks WebSocket only\n")
  end
  if self.options.static then
    local status, headers, body = util.static(self.options.static, req)
    if status >= 400 then refused(self, req, status) end
    return false, status, headers, body
  end
  return refuse(self, req, 404, "404 Not Found\n")
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
    options = o, host = o.host, _ws = routes.new(), _http = routes.new(), _zroute = {},
  }, mt)
  self._origin_ok, self._origin_any = origin_policy(o.allowed_origins)
  local copts = options.core_options(o)
  copts.tls = o.tls
  copts.unix, copts.unix_mode = o.unix, o.unix_mode
  copts.trusted_proxies, copts.proxy_protocol = o.trusted_proxies, o.proxy_protocol
  copts.on_refused = function(req, status) refused(self, req, status) end
  -- a worker (luaws.run{workers}): the k-th listen adopts the sockets the
  -- master bound in its k-th listen, instead of binding
  copts.fds = core.worker_fds()
  local c, message, token = core.listen(o.host, math.floor(o.port), copts, function(req, path, origin)
    if req then return on_request(self, req) end
    return on_upgrade(self, path, origin)
  end)
  if not c then return nil, message, token end
  self._c = c
  self.port = c:port()
  self.unix = o.unix
  M.listened[self] = true
  if o.metrics then self:route_metrics(o.metrics) end
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
  self._closed = true
  return true
end

--[[ server:reload_tls([tls]) -> true | nil, message, "tls"
  Read the certificate files again: those of the tls option, or those of
  tls (a table of the same form, which then becomes server.options.tls).
  New handshakes get the new certificates; open connections keep their
  sessions. When a file cannot be read or a key does not match its
  certificate, nothing changes and the message says what failed. Raises for
  a server without tls, or a tls table of the wrong shape. luaws.run() calls
  it for every server on SIGHUP.
  Usage: assert(server:reload_tls()) ]]
function methods:reload_tls(tls)
  if not self.options.tls then error("reload_tls: the server does not speak TLS (no tls option)", 2) end
  if tls ~= nil then options.check_tls(tls, "reload_tls", 2) end
  local ok, message, token = self._c:reload_tls(tls or self.options.tls)
  if not ok then return nil, message, token end
  if tls ~= nil then self.options.tls = tls end
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
      handlers = self._ws:get(opts.route)
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
  if self.unix then   -- no URL scheme names a unix socket; this is the common spelling
    return ("%s+unix://%s:%s"):format(self.options.tls and "wss" or "ws", self.unix, path or "/")
  end
  local host = self.host
  if host == "*" or host == "0.0.0.0" or host == "::" then host = "127.0.0.1" end
  if host:find(":", 1, true) then host = "[" .. host .. "]" end
  return ("%s://%s:%d%s"):format(self.options.tls and "wss" or "ws", host, self.port, path or "/")
end

return M
