-- spec/handshake_spec.lua -- the RFC 6455 opening handshake: the §4.2.1
-- checks on an upgrade request with the status each failure answers, the
-- Sec-WebSocket-Accept computation (§4.2.2, §1.3 sample) and client keys.
local core = require "luaws.core"
local helper = require "helper"   -- helper.fails: nil, a message, a token
local proc = require "support.proc"

local rep = string.rep

-- The request headers of a valid upgrade; a case overrides some of them
-- (false removes one).
local BASE = {
  { "Host", "server.example.com" },
  { "Upgrade", "websocket" },
  { "Connection", "Upgrade" },
  { "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==" },
  { "Sec-WebSocket-Version", "13" },
}

local function request(over, request_line)
  over = over or {}
  local t = { request_line or "GET /chat HTTP/1.1", "\r\n" }
  local seen = {}
  for _, h in ipairs(BASE) do
    local v = over[h[1]]
    seen[h[1]] = true
    if v == nil then v = h[2] end
    if v then t[#t + 1] = h[1] .. ": " .. v .. "\r\n" end
  end
  for name, v in pairs(over) do
    if not seen[name] and v then t[#t + 1] = name .. ": " .. v .. "\r\n" end
  end
  t[#t + 1] = "\r\n"
  return table.concat(t)
end

describe("luaws.core accept key", function()
  it("computes the RFC 6455 §1.3 sample", function()
    assert.are.equal("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", core.accept_key("dGhlIHNhbXBsZSBub25jZQ=="))
  end)

  it("computes the accept value of the MDN example key", function()
    assert.are.equal("HSmrc0sMlYUkAGmm5OPpG2HaGWk=", core.accept_key("x3JJHMbDL1EzLkh9GBhXDw=="))
  end)

  local has_openssl = select(2, proc.run({ "openssl", "version" }, { timeout = 20 })) == 0
  -- The same value the openssl command computes, for any key length (the
  -- long ones take the streaming path).
  local function openssl_accept(key)
    local input = os.tmpname()
    local f = assert(io.open(input, "wb"))
    f:write(key, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
    f:close()
    local digest = os.tmpname()
    proc.check({ "openssl", "dgst", "-sha1", "-binary", "-out", digest, input }, { timeout = 20 })
    local out = proc.check({ "openssl", "base64", "-in", digest }, { timeout = 20 })
    os.remove(input)
    os.remove(digest)
    return out:match("^(%S+)")
  end
  for _, len in ipairs { 0, 1, 24, 127, 128, 129, 500 } do
    (has_openssl and it or pending)(("agrees with openssl for a key of %d bytes"):format(len), function()
      local key = rep("k", len)
      assert.are.equal(openssl_accept(key), core.accept_key(key))
    end)
  end

  it("makes 24-character client keys that pass the server's check and differ", function()
    local a, b = assert(core.client_key()), assert(core.client_key())
    assert.are.equal(24, #a)
    assert.matches("^[A-Za-z0-9+/]+==$", a)
    assert.are_not.equal(a, b)
    assert.are.equal(0, core.handshake_check(request { ["Sec-WebSocket-Key"] = a }))
    assert.are.equal(28, #core.accept_key(a))
  end)
end)

describe("luaws.core handshake check", function()
  it("accepts the RFC 6455 §1.3 sample request", function()
    assert.are.equal(0, core.handshake_check(request()))
  end)

  local accepted = {
    { "Connection: keep-alive, Upgrade", { Connection = "keep-alive, Upgrade" } },
    { "Connection: upgrade in lower case", { Connection = "upgrade" } },
    { "Upgrade: WebSocket", { Upgrade = "WebSocket" } },
    { "Upgrade: websocket among other protocols", { Upgrade = "h2c, websocket" } },
    { "extra headers such as Origin", { Origin = "http://example.com", ["Sec-WebSocket-Protocol"] = "chat" } },
  }
  for _, case in ipairs(accepted) do
    it("accepts " .. case[1], function()
      assert.are.equal(0, core.handshake_check(request(case[2])))
    end)
  end

  it("accepts header names in any case", function()
    local req = request():gsub("[%w-]+:", string.lower)
    assert.are.equal(0, core.handshake_check(req))
    req = request():gsub("[%w-]+:", string.upper)
    assert.are.equal(0, core.handshake_check(req))
  end)

  it("accepts HTTP/1.2 as 'HTTP/1.1 or later'", function()
    assert.are.equal(0, core.handshake_check(request(nil, "GET /chat HTTP/1.2")))
  end)

  local rejected = {
    { 405, "POST", request(nil, "POST /chat HTTP/1.1") },
    { 405, "a lower-case get (methods are case-sensitive)", request(nil, "get /chat HTTP/1.1") },
    { 405, "HEAD", request(nil, "HEAD /chat HTTP/1.1") },
    { 405, "POST even when everything else is wrong too", "POST / HTTP/1.0\r\n\r\n" },
    { 400, "HTTP/1.0", request(nil, "GET /chat HTTP/1.0") },
    { 400, "a request without Host", request { Host = false } },
    { 400, "a request without Upgrade", request { Upgrade = false } },
    { 400, "Upgrade: h2c", request { Upgrade = "h2c" } },
    { 400, "Upgrade: websockets", request { Upgrade = "websockets" } },
    { 400, "a request without Connection", request { Connection = false } },
    { 400, "Connection: keep-alive only", request { Connection = "keep-alive" } },
    { 400, "Connection: close", request { Connection = "close" } },
    { 426, "Sec-WebSocket-Version: 8", request { ["Sec-WebSocket-Version"] = "8" } },
    { 426, "a request without Sec-WebSocket-Version", request { ["Sec-WebSocket-Version"] = false } },
    { 426, "Sec-WebSocket-Version: 013", request { ["Sec-WebSocket-Version"] = "013" } },
    { 426, "Sec-WebSocket-Version: 13, 8", request { ["Sec-WebSocket-Version"] = "13, 8" } },
    { 426, "an empty Sec-WebSocket-Version", request { ["Sec-WebSocket-Version"] = "" } },
    { 400, "a request without Sec-WebSocket-Key", request { ["Sec-WebSocket-Key"] = false } },
    { 400, "an empty key", request { ["Sec-WebSocket-Key"] = "" } },
    { 400, "a key of 23 characters", request { ["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZSBub25jZQ=" } },
    { 400, "a key of 25 characters", request { ["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZSBub25jZQ===" } },
    { 400, "a key with a character outside base64", request { ["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZSBub25jZ!==" } },
    { 400, "a key with a padding character inside", request { ["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZ=Bub25jZQ==" } },
    { 400, "a key decoding to 15 bytes", request { ["Sec-WebSocket-Key"] = "AAAAAAAAAAAAAAAAAAAA" } },
    { 400, "a key decoding to 17 bytes", request { ["Sec-WebSocket-Key"] = "AAAAAAAAAAAAAAAAAAAAAAA=" } },
    { 400, "a key decoding to 18 bytes", request { ["Sec-WebSocket-Key"] = "AAAAAAAAAAAAAAAAAAAAAAAA" } },
    { 400, "a URL-safe base64 key", request { ["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZ-Bub25jZQ==" } },
  }
  for _, case in ipairs(rejected) do
    local status, name, req = case[1], case[2], case[3]
    it(("answers %d to %s, with a reason"):format(status, name), function()
      local got, why = core.handshake_check(req)
      assert.are.equal(status, got)
      assert.is_string(why)
      assert.is_true(#why > 0)
    end)
  end

  it("checks in RFC order: HTTP version before Host, Upgrade before Connection, version before key", function()
    local _, why = core.handshake_check("GET / HTTP/1.0\r\n\r\n")
    assert.are.equal("HTTP/1.1 required", why)
    assert.are.equal(400, core.handshake_check(request { Upgrade = false, Connection = false }))
    local st
    st, why = core.handshake_check(request { Upgrade = false, Connection = false })
    assert.are.equal("Upgrade is not websocket", why)
    st, why = core.handshake_check(request { ["Sec-WebSocket-Version"] = "7", ["Sec-WebSocket-Key"] = "x" })
    assert.are.equal(426, st)
    assert.are.equal("unsupported version", why)
  end)

  it("returns nil, a message and the parser's token for a head that does not parse", function()
    helper.fails_with("partial", "handshake_check: ", core.handshake_check("GET / HTTP/1.1\r\nHost: x\r\n"))
    helper.fails_with("bad request", "handshake_check: ", core.handshake_check("GET / HTTP/1.1\r\nHost : x\r\n\r\n"))
    helper.fails_with("headers too large", "handshake_check: ", core.handshake_check("GET / HTTP/1.1\r\nX: " .. rep("a", 9000)))
  end)
end)

describe("luaws.core is_upgrade", function()
  local cases = {
    { true, "a WebSocket upgrade", request() },
    { true, "Upgrade: WebSocket", request { Upgrade = "WebSocket" } },
    { true, "a list holding websocket", request { Upgrade = "h2c, websocket" } },
    { true, "a bad upgrade that still asks for websocket", request({ Host = false }, "POST / HTTP/1.0") },
    { false, "a plain GET", "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n" },
    { false, "Upgrade: h2c", request { Upgrade = "h2c" } },
    { false, "Connection: Upgrade without Upgrade", request { Upgrade = false } },
  }
  for _, case in ipairs(cases) do
    it(("says %s for %s"):format(case[1], case[2]), function()
      assert.are.equal(case[1], core.handshake_is_upgrade(case[3]))
    end)
  end
end)
