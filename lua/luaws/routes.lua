-- SPDX-License-Identifier: MIT
--
-- luaws.routes: the one path matcher behind server:route (WebSocket) and
-- server:get/post/http (plain HTTP).
--
-- A route is an exact path ("/ws") or a pattern:
--   /chat/:room         ":name" is one whole segment, at least one byte, no "/"
--   /files/*            a trailing "*" segment: the rest of the path (maybe "")
-- Parameters come back percent-decoded in params (params.room, params["*"]).
-- Matching is on the path as the client sent it (no query), case-sensitive,
-- byte for byte (RFC 3986 §6.2.2.1: only scheme and host are
-- case-insensitive). Exact routes win; then the pattern with the longest
-- literal prefix (the bytes before its first parameter); on a tie, the one
-- with more literal bytes in all, then one without "*", then the first added.
-- A pattern that can never match raises at add(): not starting with "/",
-- ":" without a name, a name twice, "*" anywhere but as the last segment.
--
-- No I/O, no state but the routes.

local M = {}

local methods = {}
local mt = { __index = methods, __name = "luaws.routes" }

local function percent_decode(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end
M.percent_decode = percent_decode

local function pattern_escape(s)
  return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

--[[ compile(path) -> spec | nil (an exact path) | raises
  spec: { path, lua = "^...$" Lua pattern, names = {...}, prefix = n,
  literal = n, star = bool }. ]]
local function compile(path, fname, level)
  level = level + 1
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" then
    error(("bad argument #1 to '%s' (path starting with / expected, got %s)")
      :format(fname, type(path) == "string" and ("%q"):format(path) or type(path)), level)
  end
  if not path:find("[:*]") then return nil end
  local parts, names, seen = { "^" }, {}, {}
  local prefix, literal, star = nil, 0, false
  local segs = {}
  for seg in (path:sub(2) .. "/"):gmatch("([^/]*)/") do segs[#segs + 1] = seg end
  local offset = 1   -- bytes of literal path before the current segment (the leading "/")
  for i, seg in ipairs(segs) do
    parts[#parts + 1] = "/"
    local bad = ("%s: pattern %q "):format(fname, path)
    if seg == "*" then
      if i ~= #segs then error(bad .. "can never match: '*' only as the last segment", level) end
      parts[#parts + 1] = "(.*)"
      names[#names + 1] = "*"
      star = true
      prefix = prefix or offset
    elseif seg:sub(1, 1) == ":" then
      local name = seg:sub(2)
      if name == "" then error(bad .. "can never match: ':' without a name", level) end
      if not name:match("^[%a_][%w_]*$") then
        error(bad .. ("has a bad parameter name %q (letters, digits, _)"):format(name), level)
      end
      if seen[name] then error(bad .. ("can never match: ':%s' twice"):format(name), level) end
      seen[name] = true
      names[#names + 1] = name
      parts[#parts + 1] = "([^/]+)"
      prefix = prefix or offset
    elseif seg:find("*", 1, true) then
      error(bad .. "can never match: '*' only as a whole last segment (/files/*)", level)
    else
      parts[#parts + 1] = pattern_escape(seg)
      literal = literal + #seg + 1
    end
    offset = offset + #seg + 1
  end
  parts[#parts + 1] = "$"
  return { path = path, lua = table.concat(parts), names = names, prefix = prefix or offset,
           literal = literal, star = star }
end

-- Does spec a go before spec b (see the file comment)?
local function before(a, b)
  if a.prefix ~= b.prefix then return a.prefix > b.prefix end
  if a.literal ~= b.literal then return a.literal > b.literal end
  if a.star ~= b.star then return not a.star end
  return a.order < b.order
end

-- routes.new() -> an empty set of routes.
function M.new()
  return setmetatable({ exact = {}, patterns = {}, n = 0 }, mt)
end

--[[ routes:add(path, value [, fname, level]) -> value
  Adds (or replaces) the route path. Raises, naming fname (default
  "route"), when path is not a path or a pattern that can never match. ]]
function methods:add(path, value, fname, level)
  local spec = compile(path, fname or "route", (level or 1) + 1)
  if not spec then
    self.exact[path] = value
    return value
  end
  for _, p in ipairs(self.patterns) do
    if p.path == path then
      p.value = value
      return value
    end
  end
  self.n = self.n + 1
  spec.order, spec.value = self.n, value
  local list = self.patterns
  list[#list + 1] = spec
  table.sort(list, before)
  return value
end

-- routes:get(path) -> the value added under exactly this path or pattern.
function methods:get(path)
  local v = self.exact[path]
  if v ~= nil then return v end
  for _, p in ipairs(self.patterns) do
    if p.path == path then return p.value end
  end
end

--[[ routes:match(path) -> value, params | nil
  params: the pattern's parameters, percent-decoded (an exact route: {}). ]]
function methods:match(path)
  local v = self.exact[path]
  if v ~= nil then return v, {} end
  for _, p in ipairs(self.patterns) do
    local caps = { path:match(p.lua) }
    if caps[1] ~= nil then
      local params = {}
      for i, name in ipairs(p.names) do params[name] = percent_decode(caps[i]) end
      return p.value, params
    end
  end
end

-- routes:values() -> a list of every value (exact routes first).
function methods:values()
  local out = {}
  for _, v in pairs(self.exact) do out[#out + 1] = v end
  for _, p in ipairs(self.patterns) do out[#out + 1] = p.value end
  return out
end

return M
