-- SPDX-License-Identifier: MIT
--
-- examples/lib/json.lua: a small, strict JSON (RFC 8259) encoder and decoder
-- for the examples (the chat room speaks JSON). Debian has no JSON library for
-- Lua 5.4 we can count on, so this one is kept short and tested in
-- spec/examples/json_spec.lua.
--
--   local json = require "json"
--   json.encode { from = "ada", text = "hi" }   --> {"from":"ada","text":"hi"}
--   json.decode '{"name":"ada","n":[1,2.5]}'     --> {name = "ada", n = {1, 2.5}}
--
-- Values: strings (UTF-8), numbers, booleans, json.null, and tables. A table
-- whose keys are exactly 1..n (n > 0) is an array; any other table is an
-- object and must have string keys (an empty table is {}). Objects are
-- written with their keys sorted, so the output is the same on every run.
--
-- decode(text) -> value | nil, error: bad input is data, not a bug, so it
-- answers nil and a message ("json: bad escape at byte 7"). It accepts
-- exactly RFC 8259 (no comments, no trailing commas, no NaN, no lone
-- surrogates), at most 64 levels deep; null becomes json.null; a duplicate
-- key keeps the last value; numbers without fraction or exponent that fit
-- become integers.
--
-- encode(value) -> text: a value JSON cannot say (a function, NaN, a cycle,
-- a string that is not UTF-8, a mixed table) is a bug in the caller, so it
-- raises. Strings are written as UTF-8 with only '"', '\' and control
-- characters escaped.
--
-- Not done: streaming, pretty printing, big numbers beyond a Lua float.

local M = {}

local byte, char, find, format, sub = string.byte, string.char, string.find, string.format, string.sub
local concat, sort = table.concat, table.sort
local utf8_char, utf8_len = utf8.char, utf8.len
local math_type, tonumber, type, pairs, ipairs = math.type, tonumber, type, pairs, ipairs

M.null = setmetatable({}, { __name = "json.null", __tostring = function() return "null" end })

local MAX_DEPTH = 64

------------------------------------------------------------------ encoding

local ESCAPE = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
for c = 0, 31 do
  local ch = char(c)
  ESCAPE[ch] = ESCAPE[ch] or format("\\u%04x", c)
end

local function encode_string(s)
  if not utf8_len(s) then error("json: string is not valid UTF-8", 0) end
  return '"' .. s:gsub('[%z\1-\31"\\]', ESCAPE) .. '"'
end

local encode_value

local function encode_table(t, out, depth, seen)
  if seen[t] then error("json: cycle in table", 0) end
  if depth > MAX_DEPTH then error("json: nested more than " .. MAX_DEPTH .. " levels", 0) end
  seen[t] = true
  local n, count = #t, 0
  for _ in pairs(t) do count = count + 1 end
  if n > 0 and n == count then
    out[#out + 1] = "["
    for i = 1, n do
      if i > 1 then out[#out + 1] = "," end
      encode_value(t[i], out, depth + 1, seen)
    end
    out[#out + 1] = "]"
  else
    local keys = {}
    for k in pairs(t) do
      if type(k) ~= "string" then error("json: object key must be a string, got " .. type(k), 0) end
      keys[#keys + 1] = k
    end
    sort(keys)
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
      if i > 1 then out[#out + 1] = "," end
      out[#out + 1] = encode_string(k)
      out[#out + 1] = ":"
      encode_value(t[k], out, depth + 1, seen)
    end
    out[#out + 1] = "}"
  end
  seen[t] = nil
end

function encode_value(v, out, depth, seen)
  local t = type(v)
  if t == "string" then
    out[#out + 1] = encode_string(v)
  elseif t == "number" then
    if math_type(v) == "integer" then
      out[#out + 1] = format("%d", v)
    elseif v ~= v or v == math.huge or v == -math.huge then
      error("json: cannot encode " .. tostring(v), 0)
    else
      local text = format("%.14g", v)                  -- short when it reads back exactly
      if tonumber(text) ~= v then text = format("%.17g", v) end
      out[#out + 1] = text
    end
  elseif t == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif v == M.null then
    out[#out + 1] = "null"
  elseif t == "table" then
    encode_table(v, out, depth, seen)
  else
    error("json: cannot encode a " .. t, 0)
  end
end

--- encode(value) -> JSON text. Raises on a value JSON cannot say.
function M.encode(value)
  local out = {}
  encode_value(value, out, 1, {})
  return concat(out)
end

------------------------------------------------------------------ decoding

local UNESCAPE = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

-- Decoding errors travel as a table so that decode() can tell them from bugs.
local function fail(s, i, what)
  error({ format("json: %s at byte %d", what, i) }, 0)
end

local function skip(s, i)
  return (find(s, "[^ \t\r\n]", i)) or #s + 1
end

local function hex4(s, i)
  local h = sub(s, i, i + 3)
  if not find(h, "^%x%x%x%x$") then fail(s, i - 2, "bad \\u escape") end
  return tonumber(h, 16)
end

-- s[i] is the opening quote. Returns the string and the index after it.
local function decode_string(s, i)
  local out, j = {}, i + 1
  while true do
    local k = find(s, '[%z\1-\31"\\]', j)
    if not k then fail(s, i, "unterminated string") end
    out[#out + 1] = sub(s, j, k - 1)
    local c = sub(s, k, k)
    if c == '"' then return concat(out), k + 1 end
    if c ~= "\\" then fail(s, k, "control character in string") end
    local e = sub(s, k + 1, k + 1)
    if UNESCAPE[e] then
      out[#out + 1] = UNESCAPE[e]
      j = k + 2
    elseif e == "u" then
      local cp = hex4(s, k + 2)
      j = k + 6
      if cp >= 0xD800 and cp <= 0xDBFF then          -- a high surrogate: its pair must follow
        if sub(s, j, j + 1) ~= "\\u" then fail(s, k, "lone surrogate") end
        local lo = hex4(s, j + 2)
        if lo < 0xDC00 or lo > 0xDFFF then fail(s, k, "lone surrogate") end
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
        j = j + 6
      elseif cp >= 0xDC00 and cp <= 0xDFFF then
        fail(s, k, "lone surrogate")
      end
      out[#out + 1] = utf8_char(cp)
    else
      fail(s, k, "bad escape")
    end
  end
end

local decode_value

local function decode_number(s, i)
  local _, e, digits = find(s, "^-?(%d+)", i)
  if not e or (#digits > 1 and sub(digits, 1, 1) == "0") then
    fail(s, i, "bad number")   -- no digits, or a leading zero ("01", "-01")
  end
  local float = false
  if sub(s, e + 1, e + 1) == "." then
    local _, f = find(s, "^%.%d+", e + 1)
    if not f then fail(s, e + 1, "bad number") end
    e, float = f, true
  end
  if find(s, "^[eE]", e + 1) then
    local _, x = find(s, "^[eE][+-]?%d+", e + 1)
    if not x then fail(s, e + 1, "bad number") end
    e, float = x, true
  end
  local n = tonumber(sub(s, i, e))
  if float then n = n + 0.0 end   -- "1.0" and "1e2" stay floats
  return n, e + 1
end

local function decode_array(s, i, depth)
  local arr, n = {}, 0
  i = skip(s, i + 1)
  if sub(s, i, i) == "]" then return arr, i + 1 end
  while true do
    local v
    v, i = decode_value(s, i, depth + 1)
    n = n + 1
    arr[n] = v
    i = skip(s, i)
    local c = sub(s, i, i)
    if c == "]" then return arr, i + 1 end
    if c ~= "," then fail(s, i, "expected ',' or ']'") end
    i = skip(s, i + 1)
  end
end

local function decode_object(s, i, depth)
  local obj = {}
  i = skip(s, i + 1)
  if sub(s, i, i) == "}" then return obj, i + 1 end
  while true do
    if sub(s, i, i) ~= '"' then fail(s, i, "expected a string key") end
    local k
    k, i = decode_string(s, i)
    i = skip(s, i)
    if sub(s, i, i) ~= ":" then fail(s, i, "expected ':'") end
    obj[k], i = decode_value(s, skip(s, i + 1), depth + 1)
    i = skip(s, i)
    local c = sub(s, i, i)
    if c == "}" then return obj, i + 1 end
    if c ~= "," then fail(s, i, "expected ',' or '}'") end
    i = skip(s, i + 1)
  end
end

local LITERALS = { t = { "true", true }, f = { "false", false }, n = { "null", M.null } }

function decode_value(s, i, depth)
  if depth > MAX_DEPTH then fail(s, i, "nested more than " .. MAX_DEPTH .. " levels") end
  local c = sub(s, i, i)
  if c == '"' then return decode_string(s, i) end
  if c == "{" then return decode_object(s, i, depth) end
  if c == "[" then return decode_array(s, i, depth) end
  if c == "-" or find(c, "^%d") then return decode_number(s, i) end
  local lit = LITERALS[c]
  if lit and sub(s, i, i + #lit[1] - 1) == lit[1] then return lit[2], i + #lit[1] end
  fail(s, i, c == "" and "unexpected end" or "unexpected character")
end

--- decode(text) -> value | nil, message. Raises only if text is not a string.
function M.decode(s)
  if type(s) ~= "string" then error("bad argument #1 to 'decode' (string expected, got " .. type(s) .. ")", 2) end
  local ok, v, i = pcall(decode_value, s, skip(s, 1), 1)
  if not ok then
    if type(v) == "table" then return nil, v[1] end
    error(v, 0)
  end
  i = skip(s, i)
  if i <= #s then return nil, format("json: trailing characters at byte %d", i) end
  return v
end

return M
