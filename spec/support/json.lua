-- SPDX-License-Identifier: MIT
-- spec/support/json.lua: JSON for the specs' subprocess output (the
-- conformance suite and the peer clients print one JSON object a line).
--
-- The codec is Debian's lua-cjson (what the chat example uses), in its safe
-- form: a garbled line from a subprocess decodes to nil and cannot pass for a
-- result. This module adds decode_lines.

local json = require "cjson.safe"

local M = { decode = json.decode, encode = json.encode, null = json.null }

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
