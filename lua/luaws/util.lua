-- SPDX-License-Identifier: MIT
--
-- luaws.util: small pure helpers (no I/O but reading static files):
-- ws:// URL parsing, token lists, static file answers.

local M = {}

-- parse_url("ws://host:port/path?q") -> {scheme, host, port, path} | nil, err
-- IPv6 literals go in brackets: ws://[::1]:5000/ws.
function M.parse_url(url)
  if type(url) ~= "string" then return nil, "url must be a string" end
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "not a ws:// or wss:// URL" end
  scheme = scheme:lower()
  if scheme ~= "ws" and scheme ~= "wss" then return nil, "scheme must be ws or wss" end
  local authority, path = rest:match("^([^/?#]*)(.*)$")
  local host, port = authority:match("^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]+):?(%d*)$") end
  if not host or host == "" then return nil, "no host in URL" end
  port = tonumber(port) or (scheme == "wss" and 443 or 80)
  if port < 1 or port > 65535 then return nil, "port out of range" end
  path = path:gsub("#.*$", "")
  if path == "" then path = "/" elseif path:sub(1, 1) == "?" then path = "/" .. path end
  return { scheme = scheme, host = host, port = port, path = path }
end

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

--[[ parse_redis_url(url) -> {host, port, path, username, password, db} | nil, err
  redis://[[user]:password@]host[:port][/db], rediss is not supported;
  unix:///path/to/redis.sock[?db=N&password=P] (or redis+unix://). ]]
function M.parse_redis_url(url)
  if type(url) ~= "string" then return nil, "not a string" end
  local query
  url, query = url:match("^([^?#]*)%??([^#]*)")
  local q = {}
  for k, v in (query or ""):gmatch("([^&=]+)=?([^&]*)") do q[k] = unescape(v) end
  local path = url:match("^unix://(/.+)$") or url:match("^redis%+unix://(/.+)$")
  if path then
    local db = tonumber(q.db or "0")
    if not db or db ~= math.floor(db) or db < 0 then return nil, "db must be a number" end
    return { path = path, password = q.password, username = q.user, db = db }
  end
  local rest = url:match("^redis://(.*)$")
  if not rest then return nil, "expected redis://host:port[/db] or unix:///path" end
  local userinfo, hostport = rest:match("^(.*)@([^@]*)$")
  if not userinfo then hostport = rest end
  local username, password
  if userinfo then
    username, password = userinfo:match("^([^:]*):(.*)$")
    if not username then password = userinfo end
    if username == "" then username = nil end
    username, password = username and unescape(username), password and unescape(password)
  end
  local hp, db = hostport:match("^([^/]*)/?(%d*)$")
  if not hp then return nil, "bad host or db in " .. url end
  local host, port = hp:match("^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = hp:match("^([^:]*):?(%d*)$") end
  if not host or host == "" then host = "127.0.0.1" end
  port = tonumber(port) or 6379
  if port < 1 or port > 65535 then return nil, "port out of range" end
  return { host = host, port = port, username = username, password = password or q.password,
           db = tonumber(db) or tonumber(q.db or "0") or 0 }
end

-- Elements of a comma-separated header value, trimmed, in order.
function M.tokens(value)
  local out = {}
  if value then
    for item in value:gmatch("[^,]+") do
      item = item:match("^%s*(.-)%s*$")
      if item ~= "" then out[#out + 1] = item end
    end
  end
  return out
end

--[[ parse_query(query) -> args
  "name=bob&a=1&a=2&e=%20x&flag" -> {name = "bob", a = {"1", "2"}, e = " x",
  flag = true}: names and values percent-decoded, "+" as a space
  (application/x-www-form-urlencoded), a name given twice gives a list in
  order, a name without "=" is true, empty pieces are skipped. A bad escape
  stays as it is. nil gives {}. ]]
function M.parse_query(query)
  local args = {}
  if type(query) ~= "string" then return args end
  local function decode(s)
    return (s:gsub("%+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
  end
  for piece in query:gmatch("[^&]+") do
    local name, value = piece:match("^([^=]*)=(.*)$")
    if name then value = decode(value) else name, value = piece, true end
    name = decode(name)
    local old = args[name]
    if old == nil then
      args[name] = value
    elseif type(old) == "table" then
      old[#old + 1] = value
    else
      args[name] = { old, value }
    end
  end
  return args
end

--[[ parse_cookies(header) -> cookies
  The Cookie header (RFC 6265 §4.2.1: "name=value; name2=value2") as
  {name = value}: the whitespace around each pair, name and value is
  dropped, a value in double quotes loses them (§4.1.1), a pair without
  "=" or with an empty name is skipped, and the first of a name wins (the
  user agent sends the most specific first, §5.4). Values are not decoded:
  RFC 6265 gives them no encoding. nil gives {}. ]]
function M.parse_cookies(header)
  local cookies = {}
  if type(header) ~= "string" then return cookies end
  for pair in header:gmatch("[^;]+") do
    local name, value = pair:match("^%s*([^=]-)%s*=%s*(.-)%s*$")
    if name and name ~= "" then
      value = value:match('^"(.*)"$') or value
      if cookies[name] == nil then cookies[name] = value end
    end
  end
  return cookies
end

local mime = {
  html = "text/html; charset=utf-8", htm = "text/html; charset=utf-8",
  css = "text/css; charset=utf-8", js = "text/javascript; charset=utf-8",
  mjs = "text/javascript; charset=utf-8", json = "application/json",
  txt = "text/plain; charset=utf-8", svg = "image/svg+xml", png = "image/png",
  jpg = "image/jpeg", jpeg = "image/jpeg", gif = "image/gif", ico = "image/x-icon",
  webp = "image/webp", wasm = "application/wasm", map = "application/json",
}
M.mime = mime

local function percent_decode(s)
  local bad = false
  s = s:gsub("%%(%x?%x?)", function(h)
    if #h ~= 2 then bad = true return "" end
    return string.char(tonumber(h, 16))
  end)
  if bad then return nil end
  return s
end

local function text(status, body)
  return status, { ["Content-Type"] = "text/plain; charset=utf-8" }, body
end

-- static(root, req) -> status, headers, body for a GET/HEAD of a file under
-- root. Paths with "..", NUL, backslashes or bad escapes are refused (400);
-- "/" and directories serve index.html.
function M.static(root, req)
  if req.method ~= "GET" and req.method ~= "HEAD" then
    local st, h, b = text(405, "405 Method Not Allowed\n")
    h.Allow = "GET, HEAD"
    return st, h, b
  end
  local path = percent_decode(req.path)
  if not path or path:find("%z") or path:find("\\", 1, true) or path:sub(1, 1) ~= "/" then
    return text(400, "400 Bad Request\n")
  end
  for seg in path:gmatch("[^/]+") do
    if seg == ".." or seg == "." then return text(400, "400 Bad Request\n") end
  end
  if path:sub(-1) == "/" then path = path .. "index.html" end
  local function slurp(p)
    local f = io.open(root .. p, "rb")
    if not f then return nil end
    local body = f:read("a")   -- nil for a directory (EISDIR)
    f:close()
    return body
  end
  local body = slurp(path)
  if not body then   -- a directory named without its slash: serve its index
    body = slurp(path .. "/index.html")
    if body then path = path .. "/index.html" end
  end
  if not body then return text(404, "404 Not Found\n") end
  local ext = path:match("%.([%w]+)$")
  local headers = {
    ["Content-Type"] = mime[ext and ext:lower() or ""] or "application/octet-stream",
    ["Cache-Control"] = "no-cache",
    ["X-Content-Type-Options"] = "nosniff",
  }
  return 200, headers, body
end

return M
