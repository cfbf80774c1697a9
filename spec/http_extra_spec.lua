-- SPDX-License-Identifier: MIT
--
-- spec/http_extra_spec.lua -- what spec/http_spec.lua leaves out of
-- csrc/http.c: the reason phrase of every status ws_http_reason knows,
-- checked against RFC 9110 §15 (the static file server answers 206, 307,
-- 308, 416 and the like), and the statuses next to them that it must not
-- invent a phrase for.
local core = require "luaws.core"

-- RFC 9110 §15, for the statuses http.c lists.
local RFC9110 = {
  [100] = "Continue", [101] = "Switching Protocols",
  [200] = "OK", [204] = "No Content", [206] = "Partial Content",
  [301] = "Moved Permanently", [302] = "Found", [304] = "Not Modified",
  [307] = "Temporary Redirect", [308] = "Permanent Redirect",
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [408] = "Request Timeout", [413] = "Content Too Large",
  [414] = "URI Too Long", [416] = "Range Not Satisfiable", [426] = "Upgrade Required",
  [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [500] = "Internal Server Error", [501] = "Not Implemented", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [505] = "HTTP Version Not Supported",
}

describe("luaws.core http_reason against RFC 9110 §15", function()
  local statuses = {}
  for s in pairs(RFC9110) do statuses[#statuses + 1] = s end
  table.sort(statuses)
  for _, s in ipairs(statuses) do
    it(("names %d %q"):format(s, RFC9110[s]), function()
      assert.are.equal(RFC9110[s], core.http_reason(s))
    end)
  end

  it("gives no phrase for a status it does not list, 0 through 999", function()
    for s = 0, 999 do
      if not RFC9110[s] then assert.are.equal("", core.http_reason(s), s) end
    end
  end)

  it("gives no phrase outside 0-999", function()
    for _, s in ipairs { -1, 1000, 1101, math.maxinteger, math.mininteger } do
      assert.are.equal("", core.http_reason(s), s)
    end
  end)
end)
