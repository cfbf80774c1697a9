-- SPDX-License-Identifier: MIT
-- spec/support/json.lua: a small JSON decoder for the specs' subprocess output
-- (the conformance suite and the peer clients print one JSON object a line).
--
-- Decodes objects, arrays, strings (all escapes, \u surrogate pairs to UTF-8),
-- numbers, true, false; null becomes json.null. It does not encode, and it
-- is strict: trailing garbage or a bad escape is an error (nil, message), so
-- a garbled line from a subprocess cannot pass for a result.

local M = { null = setmetatable({}, { __tostring = function() return "null" end }) }

local byte, sub, find, char = string.byte, string.sub, string.find, string.char
local utf8_char, tonumber = utf8.char, tonumber

local ESCAPES = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local decode_value

local function skip(s, i)
  local _, e = find(s, "^[ \t\r\n]*", i)
  return e + 1
end

local function fail(s, i, what)
  error({ msg = string.format("json: %s at byte %d near %q", what, i, sub(s, i, i + 10)) }, 0)
end

local function decode_string(s, i) -- s[i] is the opening quote
  local out, j = {}, i + 1
  while true do
    local k = find(s, '["\\%c]', j)
    if not k then fail(s, i, "unterminated string") end
    out[#out + 1] = sub(s, j, k - 1)
    local c = sub(s, k, k)
    if c == '"' then return table.concat(out), k + 1 end
    if c ~= "\\" then fail(s, k, "control character in string") end
    local e = sub(s, k + 1, k + 1)
    if ESCAPES[e] then
      out[#out + 1] = ESCAPES[e]
      j = k + 2
    elseif e == "u" then
      local hex = sub(s, k + 2, k + 5)
      if not hex:match("^%x%x%x%x$") then fail(s, k, "bad \\u escape") end
      local cp = tonumber(hex, 16)
      j = k + 6
      if cp >= 0xD800 and cp <= 0xDBFF then
        local lo = sub(s, j, j + 5):match("^\\u(%x%x%x%x)$")
        lo = lo and tonumber(lo, 16)
        if lo and lo >= 0xDC00 and lo <= 0xDFFF then
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
          j = j + 6
        end
      end
      out[#out + 1] = utf8_char(cp)
    else
      fail(s, k, "bad escape")
    end
  end
end

local function decode_array(s, i)
  local arr, n = {}, 0
  i = skip(s, i + 1)
  if sub(s, i, i) == "]" then return arr, i + 1 end
  while true do
    local v
    v, i = decode_value(s, i)
    n = n + 1
    arr[n] = v
    i = skip(s, i)
    local c = sub(s, i, i)
    if c == "]" then return arr, i + 1 end
    if c ~= "," then fail(s, i, "expected ',' or ']'") end
    i = skip(s, i + 1)
  end
end

local function decode_object(s, i)
  local obj = {}
  i = skip(s, i + 1)
  if sub(s, i, i) == "}" then return obj, i + 1 end
  while true do
    if sub(s, i, i) ~= '"' then fail(s, i, "expected a key") end
    local k
    k, i = decode_string(s, i)
    i = skip(s, i)
    if sub(s, i, i) ~= ":" then fail(s, i, "expected ':'") end
    local v
    v, i = decode_value(s, skip(s, i + 1))
    obj[k] = v
    i = skip(s, i)
    local c = sub(s, i, i)
    if c == "}" then return obj, i + 1 end
    if c ~= "," then fail(s, i, "expected ',' or '}'") end
    i = skip(s, i + 1)
  end
end

function decode_value(s, i)
  i = skip(s, i)
  local c = byte(s, i)
  if c == 34 then return decode_string(s, i) end          -- "
  if c == 123 then return decode_object(s, i) end         -- {
  if c == 91 then return decode_array(s, i) end           -- [
  if sub(s, i, i + 3) == "true" then return true, i + 4 end
  if sub(s, i, i + 4) == "false" then return false, i + 5 end
  if sub(s, i, i + 3) == "null" then return M.null, i + 4 end
  local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", i)
  if num and num ~= "" and num ~= "-" then
    local v = tonumber(num)
    if v then return v, i + #num end
  end
  fail(s, i, "unexpected character")
end

--- Decode one JSON text. Returns the value, or nil, message.
-- Usage: local t, err = json.decode('{"id": "1.1.1"}')
function M.decode(s)
  local ok, v, i = pcall(decode_value, s, 1)
  if not ok then return nil, type(v) == "table" and v.msg or tostring(v) end
  if skip(s, i) <= #s then return nil, "json: trailing characters at byte " .. i end
  return v
end

--- Decode every non-empty line of text; lines that are not JSON objects are
-- returned separately so callers can show them.
-- Returns list of objects, list of other lines.
function M.decode_lines(text)
  local objs, others = {}, {}
  for line in (text or ""):gmatch("[^\n]+") do
    local v = line:match("^%s*{") and M.decode(line)
    if type(v) == "table" then objs[#objs + 1] = v else others[#others + 1] = line end
  end
  return objs, others
end

return M
