-- spec/http_spec.lua -- the bounded HTTP/1.1 head parser (RFC 9112) behind the
-- opening handshake: valid heads with CRLF and bare LF, every prefix partial,
-- garbage refused, the 431 limits, header lookup, token lists, responses.
local core = require "luaws.core"
local helper = require "helper"   -- helper.fails: nil, a message, a token

local rep = string.rep

-- A string as a readable test name: controls and bytes above 0x7E escaped.
local function show(s)
  return '"' .. s:gsub("[%c\128-\255\\]", function(c) return ("\\x%02x"):format(c:byte()) end) .. '"'
end

local UPGRADE = "GET /chat HTTP/1.1\r\n" ..
  "Host: server.example.com\r\n" ..
  "Upgrade: websocket\r\n" ..
  "Connection: Upgrade\r\n" ..
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" ..
  "Origin: http://example.com\r\n" ..
  "Sec-WebSocket-Protocol: chat, superchat\r\n" ..
  "Sec-WebSocket-Version: 13\r\n" ..
  "\r\n"

local UPGRADE_HEADERS = {
  { "Host", "server.example.com" },
  { "Upgrade", "websocket" },
  { "Connection", "Upgrade" },
  { "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==" },
  { "Origin", "http://example.com" },
  { "Sec-WebSocket-Protocol", "chat, superchat" },
  { "Sec-WebSocket-Version", "13" },
}

-- A request with n headers "X-<i>: <value>".
local function with_headers(n, value)
  local t = { "GET / HTTP/1.1\r\n" }
  for i = 1, n do t[#t + 1] = ("X-%d: %s\r\n"):format(i, value or "v") end
  t[#t + 1] = "\r\n"
  return table.concat(t)
end

-- A complete request head of exactly size bytes.
local function head_of_size(size)
  local fixed = #"GET / HTTP/1.1\r\nX-Pad: \r\n\r\n"
  return "GET / HTTP/1.1\r\nX-Pad: " .. rep("p", size - fixed) .. "\r\n\r\n"
end

describe("luaws.core HTTP request parser", function()
  local valid = {
    { "a WebSocket upgrade with CRLF line ends", UPGRADE,
      { method = "GET", target = "/chat", minor_version = 1, headers = UPGRADE_HEADERS } },
    { "the same upgrade with bare LF line ends", (UPGRADE:gsub("\r\n", "\n")),
      { method = "GET", target = "/chat", minor_version = 1, headers = UPGRADE_HEADERS } },
    { "mixed CRLF and LF", "GET / HTTP/1.1\nHost: a\r\nX: y\n\r\n",
      { method = "GET", target = "/", minor_version = 1, headers = { { "Host", "a" }, { "X", "y" } } } },
    { "HTTP/1.0 with no headers", "GET / HTTP/1.0\r\n\r\n",
      { method = "GET", target = "/", minor_version = 0, headers = {} } },
    { "whitespace around values, and an empty value", "GET / HTTP/1.1\r\nA:   a b \t\r\nB:\r\nC:\t \r\n\r\n",
      { method = "GET", target = "/", minor_version = 1,
        headers = { { "A", "a b" }, { "B", "" }, { "C", "" } } } },
    { "other methods and targets", "M-SEARCH http://host:80/a/b?q=1&r=%20#f HTTP/1.1\r\nX!#$%&'*+-.^_`|~9: v\r\n\r\n",
      { method = "M-SEARCH", target = "http://host:80/a/b?q=1&r=%20#f", minor_version = 1,
        headers = { { "X!#$%&'*+-.^_`|~9", "v" } } } },
    { "an asterisk target", "OPTIONS * HTTP/1.1\r\n\r\n",
      { method = "OPTIONS", target = "*", minor_version = 1, headers = {} } },
    { "obs-text and tabs in a value", "GET / HTTP/1.1\r\nX: caf\xc3\xa9\tbar\r\n\r\n",
      { method = "GET", target = "/", minor_version = 1, headers = { { "X", "caf\xc3\xa9\tbar" } } } },
  }
  for _, case in ipairs(valid) do
    local name, req, expected = case[1], case[2], case[3]
    it("parses " .. name, function()
      expected.size = #req
      assert.are.same(expected, core.http_parse_request(req))
    end)
    it("says partial for every prefix of " .. name, function()
      for i = 0, #req - 1 do
        helper.fails_with("partial", "http_parse_request: ", core.http_parse_request(req:sub(1, i)))
      end
    end)
  end

  it("stops at the blank line and leaves what follows", function()
    local res = assert(core.http_parse_request(UPGRADE .. "\x81\x85junk after the head"))
    assert.are.equal(#UPGRADE, res.size)
    res = assert(core.http_parse_request("GET / HTTP/1.1\n\nGET / HTTP/1.1\n\n"))
    assert.are.equal(16, res.size)
  end)

  local bad = {
    { "a NUL before the method", "\0GET / HTTP/1.1\r\n\r\n" },
    { "a NUL in a header value", "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n" },
    { "a NUL in the target", "GET /\0 HTTP/1.1\r\n\r\n" },
    { "an empty method", " / HTTP/1.1\r\n\r\n" },
    { "an empty target", "GET  HTTP/1.1\r\n\r\n" },
    { "a method with a non-token character", "G(T / HTTP/1.1\r\n\r\n" },
    { "a control character in the target", "GET /\x01 HTTP/1.1\r\n\r\n" },
    { "DEL in the target", "GET /\x7f HTTP/1.1\r\n\r\n" },
    { "a tab in the request line", "GET\t/ HTTP/1.1\r\n\r\n" },
    { "HTTP/2.0", "GET / HTTP/2.0\r\n\r\n" },
    { "HTTP/1.x", "GET / HTTP/1.x\r\n\r\n" },
    { "a lowercase version", "GET / http/1.1\r\n\r\n" },
    { "no version", "GET /\r\n\r\n" },
    { "a space after the version", "GET / HTTP/1.1 \r\n\r\n" },
    { "a bare CR ending the request line", "GET / HTTP/1.1\rHost: x\r\n\r\n" },
    { "whitespace before the colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n" },
    { "a space inside a header name", "GET / HTTP/1.1\r\nHo st: x\r\n\r\n" },
    { "an empty header name", "GET / HTTP/1.1\r\n: x\r\n\r\n" },
    { "a header line without a colon", "GET / HTTP/1.1\r\nHost\r\n\r\n" },
    { "obs-fold continuation", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n" },
    { "a tab-folded continuation", "GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n" },
    { "whitespace before the first header", "GET / HTTP/1.1\r\n Host: x\r\n\r\n" },
    { "a bare CR inside a value", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n" },
    { "a control character in a value", "GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n" },
    { "DEL in a value", "GET / HTTP/1.1\r\nX: a\x7fb\r\n\r\n" },
    { "a CR not followed by LF at the end", "GET / HTTP/1.1\r\n\rX" },
    { "a TLS ClientHello sent to a plain port (incomplete)", "\x16\x03\x01\x02\x00\x01\x00" },
    { "binary garbage after a good request line (incomplete)", "GET / HTTP/1.1\r\n\x80\x81" },
    { "a WebSocket frame instead of a request", "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58" },
  }
  for _, case in ipairs(bad) do
    it("refuses " .. case[1] .. " as a bad request", function()
      helper.fails_with("bad request", "http_parse_request: ", core.http_parse_request(case[2]))
    end)
  end

  describe("limits", function()
    it("accepts 64 headers", function()
      local res = assert(core.http_parse_request(with_headers(64)))
      assert.are.equal(64, #res.headers)
      assert.are.same({ "X-64", "v" }, res.headers[64])
    end)

    it("refuses 65 headers as headers too large", function()
      helper.fails("headers too large", core.http_parse_request(with_headers(65)))
    end)

    it("refuses the 65th header as soon as its line starts", function()
      local req = with_headers(65)
      local cut = req:find("X-65", 1, true)
      helper.fails("partial", core.http_parse_request(req:sub(1, cut - 1)))
      helper.fails("headers too large", core.http_parse_request(req:sub(1, cut)))
    end)

    it("accepts a head of exactly 8192 bytes", function()
      local req = head_of_size(8192)
      assert.are.equal(8192, #req)
      assert.are.equal(8192, assert(core.http_parse_request(req)).size)
      assert.are.equal(8192, assert(core.http_parse_request(req .. "body")).size)
    end)

    it("refuses a complete head of 8193 bytes as headers too large", function()
      local req = head_of_size(8193)
      assert.are.equal(8193, #req)
      helper.fails("headers too large", core.http_parse_request(req))
      helper.fails("headers too large", core.http_parse_request(head_of_size(20000)))
    end)

    it("waits up to 8192 bytes of an unfinished head, then says headers too large", function()
      local req = "GET / HTTP/1.1\r\nX-Long: " .. rep("a", 9000)
      helper.fails("partial", core.http_parse_request(req:sub(1, 8192)))
      helper.fails("headers too large", core.http_parse_request(req:sub(1, 8193)))
      helper.fails("headers too large", core.http_parse_request(req))
    end)

    it("refuses a head that is only long header lines as headers too large", function()
      local req = with_headers(40, rep("v", 300))
      assert.is_true(#req > 8192)
      helper.fails("headers too large", core.http_parse_request(req))
    end)

    it("reports garbage inside the limit as a bad request even past it", function()
      local req = "GET / HTTP/1.1\r\nX: \1" .. rep("a", 9000)
      helper.fails("bad request", core.http_parse_request(req))
    end)
  end)

  describe("header lookup", function()
    for _, name in ipairs { "Host", "host", "HOST", "hOsT" } do
      it("finds Host when asked for " .. name, function()
        assert.are.equal("server.example.com", core.http_header(UPGRADE, name))
      end)
    end
    it("finds Sec-WebSocket-Key whatever the case", function()
      assert.are.equal("dGhlIHNhbXBsZSBub25jZQ==", core.http_header(UPGRADE, "sec-websocket-key"))
      assert.are.equal("13", core.http_header(UPGRADE, "SEC-WEBSOCKET-VERSION"))
    end)
    it("returns nil for a missing header and for a prefix of a name", function()
      assert.is_nil(core.http_header(UPGRADE, "Cookie"))
      assert.is_nil(core.http_header(UPGRADE, "Hos"))
      assert.is_nil(core.http_header(UPGRADE, "Hostx"))
    end)
    it("returns the first of repeated headers", function()
      assert.are.equal("1", core.http_header("GET / HTTP/1.1\r\nX: 1\r\nx: 2\r\n\r\n", "X"))
    end)
    it("returns nil and the token when the head does not parse", function()
      helper.fails_with("partial", "http_header: ", core.http_header("GET / HTTP/1.1\r\n", "Host"))
    end)
  end)

  describe("token lists", function()
    local yes = {
      { "keep-alive, Upgrade", "upgrade" }, { "keep-alive,Upgrade", "upgrade" }, { "Upgrade", "upgrade" },
      { "UPGRADE", "upgrade" }, { "  upgrade  ", "upgrade" }, { ",, upgrade ,,", "upgrade" },
      { "a,\tupgrade\t,b", "upgrade" }, { "Upgrade, keep-alive", "upgrade" }, { "websocket", "WebSocket" },
    }
    local no = {
      { "keep-alive", "upgrade" }, { "", "upgrade" }, { "upgrade2", "upgrade" }, { "x-upgrade", "upgrade" },
      { "up grade", "upgrade" }, { "upgrade;q=1", "upgrade" }, { ",,,", "upgrade" }, { "upgrade", "" },
    }
    for _, c in ipairs(yes) do
      it(("finds %q in %q"):format(c[2], c[1]), function()
        assert.is_true(core.http_has_token(c[1], c[2]))
      end)
    end
    for _, c in ipairs(no) do
      it(("does not find %q in %q"):format(c[2], c[1]), function()
        assert.is_false(core.http_has_token(c[1], c[2]))
      end)
    end
  end)
end)

describe("luaws.core HTTP response parser", function()
  local RESPONSE = "HTTP/1.1 101 Switching Protocols\r\n" ..
    "Upgrade: websocket\r\n" ..
    "Connection: Upgrade\r\n" ..
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" ..
    "\r\n"

  it("parses a 101 Switching Protocols", function()
    assert.are.same({
      status = 101, reason = "Switching Protocols", minor_version = 1, size = #RESPONSE,
      headers = { { "Upgrade", "websocket" }, { "Connection", "Upgrade" },
                  { "Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" } },
    }, core.http_parse_response(RESPONSE .. "\x81\x02hi"))
  end)

  it("says partial for every prefix of a response", function()
    for i = 0, #RESPONSE - 1 do
      helper.fails("partial", core.http_parse_response(RESPONSE:sub(1, i)))
    end
  end)

  it("accepts an empty reason, with or without the space, and bare LF", function()
    assert.are.same({ status = 101, reason = "", minor_version = 1, headers = {}, size = 17 },
      core.http_parse_response("HTTP/1.1 101 \r\n\r\n"))
    assert.are.same({ status = 400, reason = "", minor_version = 0, headers = {}, size = 14 },
      core.http_parse_response("HTTP/1.0 400\n\n"))
    assert.are.same({ status = 404, reason = "Not Found", minor_version = 1, headers = { { "A", "b" } }, size = 29 },
      core.http_parse_response("HTTP/1.1 404 Not Found\nA: b\n\n"))
  end)

  for _, res in ipairs {
    "HTTP/1.1 1O1 Switching\r\n\r\n", "HTTP/1.1 10 x\r\n\r\n", "HTTP/2 101 x\r\n\r\n",
    "HTTP/1.1  101 x\r\n\r\n", "HTTP/1.1 1011 x\r\n\r\n", "HTTP/1.1 101 a\1b\r\n\r\n",
    "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 101 x\r\nBad Header: y\r\n\r\n",
  } do
    it("refuses the response " .. show(res) .. " as bad", function()
      helper.fails("bad request", core.http_parse_response(res))
    end)
  end
end)

describe("luaws.core reason phrases and result tokens", function()
  local phrases = {
    [101] = "Switching Protocols", [200] = "OK", [400] = "Bad Request", [403] = "Forbidden",
    [404] = "Not Found", [405] = "Method Not Allowed", [426] = "Upgrade Required",
    [431] = "Request Header Fields Too Large", [500] = "Internal Server Error", [503] = "Service Unavailable",
  }
  for status, phrase in pairs(phrases) do
    it(("names status %d %q"):format(status, phrase), function()
      assert.are.equal(phrase, core.http_reason(status))
    end)
  end
  it("has a phrase for every status the server may send", function()
    for _, s in ipairs { 100, 101, 200, 204, 301, 302, 304, 400, 401, 403, 404, 405, 408, 413, 414, 426,
                         431, 500, 501, 503 } do
      assert.are_not.equal("", core.http_reason(s), s)
    end
  end)
  it("gives an empty phrase for an unknown status", function()
    assert.are.equal("", core.http_reason(299))
    assert.are.equal("", core.http_reason(-1))
  end)

  local tokens = {
    [0] = "ok", [-1] = "partial", [-2] = "closed", [-3] = "timeout", [-4] = "too big", [-5] = "protocol",
    [-6] = "utf8", [-7] = "out of memory", [-8] = "tls", [-9] = "io", [-10] = "backpressure",
    [-11] = "again", [-12] = "bad request", [-13] = "handshake", [-14] = "resolve", [-15] = "refused",
    [-16] = "headers too large", [-17] = "limit",
  }
  for code = -17, 0 do
    it(("maps result %d to %q"):format(code, tokens[code]), function()
      assert.are.equal(tokens[code], core.strerror(code))
    end)
  end
  it("maps unknown results to unknown error", function()
    assert.are.equal("unknown error", core.strerror(-18))
    assert.are.equal("unknown error", core.strerror(5))
    assert.are.equal("unknown error", core.strerror(1 << 40))
  end)
end)
