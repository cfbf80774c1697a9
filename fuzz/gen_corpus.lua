-- SPDX-License-Identifier: MIT
--
-- fuzz/gen_corpus.lua -- writes the seed corpora fuzz/corpus/{frame,http,utf8,chunked,pmd,proxy,forwarded}/
-- (plain Lua 5.4, no luaws needed), so every seed is reviewable here and the
-- files can be made again:   lua5.4 fuzz/gen_corpus.lua
--
-- Seeds follow each target's input format (see the file comment of each
-- fuzz/*_fuzz.c): frame seeds start with the mode/limit/split bytes, utf8
-- seeds with the split bytes, http seeds are the head alone, chunked seeds
-- start with the split/limit byte, pmd seeds with the mode and parameter
-- bytes, proxy seeds are a connection's first bytes, forwarded seeds a
-- peer byte and header lines. libFuzzer never
-- writes here: `make fuzz` runs on a copy in build/fuzz/corpus/.

local char, rep, pack = string.char, string.rep, string.pack

local root = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local written, cleared = 0, {}

-- Write one seed; the first seed of a target starts its directory afresh.
local function write(target, name, bytes)
  local dir = root .. "/corpus/" .. target
  if not cleared[target] then
    assert(os.execute("rm -rf '" .. dir .. "' && mkdir -p '" .. dir .. "'"))
    cleared[target] = true
  end
  local f = assert(io.open(dir .. "/" .. name, "wb"))
  f:write(bytes)
  f:close()
  written = written + 1
end

---------------------------------------------------------------------------
-- frame: [mode byte][max_message bytes][split bytes][stream]
---------------------------------------------------------------------------

local KEY = "\x37\xfa\x21\x3d"   -- the masking key of the RFC 6455 §5.7 examples
local OP = { cont = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10 }

local function xor(payload, key)
  local out = {}
  for i = 1, #payload do
    out[i] = char(payload:byte(i) ~ key:byte((i - 1) % 4 + 1))
  end
  return table.concat(out)
end

-- One frame. o.fin (default true), o.key (masks), o.rsv, o.len (a length
-- field that differs from #payload: a lying or truncated frame).
local function frame(op, payload, o)
  o = o or {}
  local fin = o.fin == nil or o.fin
  local b0 = (fin and 0x80 or 0) | ((o.rsv or 0) << 4) | op
  local len = o.len or #payload
  local mbit = o.key and 0x80 or 0
  local hdr
  if math.ult(len, 126) then          -- unsigned: len may have its top bit set
    hdr = char(b0, mbit | len)
  elseif math.ult(len, 0x10000) then
    hdr = char(b0, mbit | 126) .. pack(">I2", len)
  else
    hdr = char(b0, mbit | 127) .. pack(">I8", len)
  end
  if o.key then return hdr .. o.key .. xor(payload, o.key) end
  return hdr .. payload
end

local function close_payload(code, reason)
  return pack(">I2", code) .. (reason or "")
end

-- The fuzz input: masked (server reading a client), max (nil: none),
-- splits (list of chunk lengths, at most 15), the stream.
local function frame_seed(masked, max, splits, stream)
  splits = splits or {}
  assert(#splits <= 15)
  local mode, maxb = 0, ""
  if max then
    if max < 256 then mode, maxb = 1, char(max)
    elseif max < 65536 then mode, maxb = 2, pack(">I2", max)
    else mode, maxb = 3, pack(">I8", max) end
  end
  local b0 = (masked and 1 or 0) | (mode << 1) | (#splits << 3)
  return char(b0) .. maxb .. char(table.unpack(splits)) .. stream
end

-- Server side (masked frames) and client side (unmasked) of the same frames.
local function both(name, build, max, splits)
  write("frame", "server-" .. name, frame_seed(true, max, splits, build(KEY)))
  write("frame", "client-" .. name, frame_seed(false, max, splits, build(nil)))
end

-- RFC 6455 §5.7, byte for byte.
write("frame", "rfc5.7-unmasked-text", frame_seed(false, nil, nil, "\x81\x05\x48\x65\x6c\x6c\x6f"))
write("frame", "rfc5.7-masked-text",
  frame_seed(true, nil, nil, "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"))
write("frame", "rfc5.7-fragmented-text",
  frame_seed(false, nil, { 3 }, "\x01\x03\x48\x65\x6c" .. "\x80\x02\x6c\x6f"))
write("frame", "rfc5.7-unmasked-ping", frame_seed(false, nil, nil, "\x89\x05\x48\x65\x6c\x6c\x6f"))
write("frame", "rfc5.7-masked-pong",
  frame_seed(true, nil, { 1 }, "\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"))
write("frame", "rfc5.7-256-binary", frame_seed(false, nil, { 2, 100 }, "\x82\x7e\x01\x00" .. rep("\0", 256)))
-- The 64 KiB example's header (64-bit length) with the payload cut short.
write("frame", "rfc5.7-64k-binary-head",
  frame_seed(false, nil, { 5 }, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00" .. rep("\0", 32)))

-- Valid streams, each in both directions.
both("text-hello", function(k) return frame(OP.text, "Hello", { key = k }) end)
both("binary-all-bytes", function(k)
  local t = {}
  for i = 0, 255 do t[#t + 1] = char(i) end
  return frame(OP.binary, table.concat(t), { key = k })
end, nil, { 7, 1, 200 })
both("fragmented-with-ping", function(k)
  return frame(OP.text, "frag", { key = k, fin = false })
      .. frame(OP.ping, "are you there", { key = k })
      .. frame(OP.cont, "ment", { key = k, fin = false })
      .. frame(OP.cont, "ed", { key = k })
end, nil, { 1 })
both("utf8-split-across-fragments", function(k)
  local s = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"   -- κόσμε
  return frame(OP.text, s:sub(1, 3), { key = k, fin = false })
      .. frame(OP.cont, s:sub(4, 8), { key = k, fin = false })
      .. frame(OP.cont, s:sub(9), { key = k })
end, nil, { 2, 0, 3 })
both("four-byte-utf8", function(k)
  return frame(OP.text, "\xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf", { key = k })
end)
both("empty-frames", function(k)
  return frame(OP.text, "", { key = k })
      .. frame(OP.binary, "", { key = k, fin = false })
      .. frame(OP.cont, "", { key = k, fin = false })
      .. frame(OP.cont, "", { key = k })
      .. frame(OP.ping, "", { key = k })
      .. frame(OP.pong, "", { key = k })
end, nil, { 0, 1 })
both("many-messages", function(k)
  local t = {}
  for i = 1, 6 do t[#t + 1] = frame(i % 2 == 0 and OP.binary or OP.text, rep("m", i * 3), { key = k }) end
  return table.concat(t)
end, nil, { 3, 5, 7 })
both("control-125", function(k) return frame(OP.ping, rep("p", 125), { key = k }) end, nil, { 2 })
both("text-126", function(k) return frame(OP.text, rep("t", 126), { key = k }) end, nil, { 4, 1 })
both("max-exact", function(k)
  return frame(OP.text, "abcde", { key = k, fin = false }) .. frame(OP.cont, "fghij", { key = k })
end, 10)

-- Close frames.
both("close-empty", function(k) return frame(OP.close, "", { key = k }) end)
both("close-1000", function(k) return frame(OP.close, close_payload(1000), { key = k }) end)
both("close-1001-reason", function(k) return frame(OP.close, close_payload(1001, "going away"), { key = k }) end, nil, { 3 })
both("close-utf8-reason", function(k)
  return frame(OP.close, close_payload(4000, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"), { key = k })
end)
both("close-3000-max-reason", function(k) return frame(OP.close, close_payload(3000, rep("r", 123)), { key = k }) end)
both("close-one-byte", function(k) return frame(OP.close, "\x03", { key = k }) end)
both("close-1005", function(k) return frame(OP.close, close_payload(1005), { key = k }) end)
both("close-1004", function(k) return frame(OP.close, close_payload(1004), { key = k }) end)
both("close-999", function(k) return frame(OP.close, close_payload(999), { key = k }) end)
both("close-5000", function(k) return frame(OP.close, close_payload(5000), { key = k }) end)
both("close-bad-utf8-reason", function(k) return frame(OP.close, close_payload(1000, "ok\xff"), { key = k }) end)

-- Protocol errors, in the order frame.h lists them.
both("rsv1", function(k) return frame(OP.text, "x", { key = k, rsv = 4 }) end)
both("rsv3", function(k) return frame(OP.binary, "x", { key = k, rsv = 1 }) end)
both("opcode-3", function(k) return frame(3, "x", { key = k }) end)
both("opcode-b", function(k) return frame(0xB, "x", { key = k }) end)
both("control-fragmented", function(k) return frame(OP.ping, "x", { key = k, fin = false }) end)
both("control-126", function(k) return frame(OP.ping, rep("x", 126), { key = k }) end)
both("continuation-first", function(k) return frame(OP.cont, "x", { key = k }) end)
both("text-inside-fragmented", function(k)
  return frame(OP.text, "a", { key = k, fin = false }) .. frame(OP.text, "b", { key = k })
end)
both("length-top-bit", function(k)
  return frame(OP.binary, "", { key = k, len = 0x8000000000000000 })
end)
both("length-huge", function(k) return frame(OP.binary, "", { key = k, len = 0x7FFFFFFFFFFFFFFF }) end, 1000)
both("too-big-single", function(k) return frame(OP.text, rep("a", 11), { key = k }) end, 10)
both("too-big-fragments", function(k)
  return frame(OP.binary, rep("a", 200), { key = k, fin = false }) .. frame(OP.cont, rep("b", 100), { key = k })
end, 256)
both("max-in-8-bytes", function(k) return frame(OP.binary, rep("a", 300), { key = k }) end, 0x10000)
both("invalid-utf8", function(k) return frame(OP.text, "\xce\xba\xff", { key = k }) end)
both("utf8-surrogate", function(k) return frame(OP.text, "\xed\xa0\x80", { key = k }) end, nil, { 1 })
both("utf8-truncated-at-fin", function(k) return frame(OP.text, "ab\xe2\x82", { key = k }) end)
both("utf8-bad-in-continuation", function(k)
  return frame(OP.text, "ok", { key = k, fin = false }) .. frame(OP.cont, "\xc0\xaf", { key = k })
end)
write("frame", "server-unmasked", frame_seed(true, nil, nil, frame(OP.text, "Hello")))
write("frame", "client-masked", frame_seed(false, nil, nil, frame(OP.text, "Hello", { key = KEY })))

-- Round-trip mode (bit 7): the bytes after the first choose frames.
write("frame", "roundtrip-server-small", "\x81" .. "\x00\x05\x01" .. "\x08\x40\x03" .. "\x05\x10" .. "\x07\x11")
write("frame", "roundtrip-client-small", "\x80" .. "\x00\x05\x01" .. "\x08\x40\x03" .. "\x06\x10" .. "\x07\x04")
write("frame", "roundtrip-126-boundary", "\x83" .. "\x10\x05\x03" .. "\x18\x06\x02" .. "\x10\x00\x00")
write("frame", "roundtrip-64k-boundary", "\x81" .. "\x28\x05\x01" .. "\x20\x0b\x03")
write("frame", "roundtrip-max-exact", "\x83" .. "\x30\xff\x03" .. "\x00\x7d\x00" .. "\x07\x7b")
write("frame", "roundtrip-fragmented-text", "\x85" .. "\x30\x40\x03" .. "\x00\x33\x02" .. "\x05\x7d")

---------------------------------------------------------------------------
-- http: the head alone, parsed as a request and as a response
---------------------------------------------------------------------------

local function crlf(lines) return table.concat(lines, "\r\n") .. "\r\n\r\n" end

local RFC_REQUEST = crlf {                 -- RFC 6455 §1.2
  "GET /chat HTTP/1.1",
  "Host: server.example.com",
  "Upgrade: websocket",
  "Connection: Upgrade",
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
  "Origin: http://example.com",
  "Sec-WebSocket-Protocol: chat, superchat",
  "Sec-WebSocket-Version: 13",
}
local function upgrade(over)
  local h = {
    { "GET", "/ws", "HTTP/1.1" },
    { "Host", "localhost:5000" },
    { "Upgrade", "websocket" },
    { "Connection", "Upgrade" },
    { "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==" },
    { "Sec-WebSocket-Version", "13" },
  }
  for k, v in pairs(over or {}) do h[k] = v end
  local lines = { table.concat(h[1], " ") }
  for i = 2, #h do
    if h[i] then lines[#lines + 1] = h[i][1] .. ": " .. h[i][2] end
  end
  return crlf(lines)
end

write("http", "rfc6455-1.2-request", RFC_REQUEST)
write("http", "rfc6455-1.2-request-body-after", RFC_REQUEST .. "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58")
write("http", "rfc6455-1.2-request-partial", RFC_REQUEST:sub(1, 80))
write("http", "upgrade-minimal", upgrade())
write("http", "upgrade-bare-lf", upgrade():gsub("\r\n", "\n"))
write("http", "upgrade-lowercase", (upgrade():gsub("Upgrade: websocket", "upgrade: WebSocket")
  :gsub("Connection: Upgrade", "connection: keep-alive, Upgrade")))
write("http", "upgrade-token-list", upgrade { [4] = { "Connection", " , keep-alive ,\tupgrade\t," } })
write("http", "upgrade-version-12", upgrade { [6] = { "Sec-WebSocket-Version", "12" } })
write("http", "upgrade-version-missing", upgrade { [6] = false })
write("http", "upgrade-key-short", upgrade { [5] = { "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=" } })
write("http", "upgrade-key-no-pad", upgrade { [5] = { "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQab" } })
write("http", "upgrade-key-bad-char", upgrade { [5] = { "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZ!==" } })
write("http", "upgrade-post", upgrade { [1] = { "POST", "/ws", "HTTP/1.1" } })
write("http", "upgrade-http10", upgrade { [1] = { "GET", "/ws", "HTTP/1.0" } })
write("http", "upgrade-no-host", upgrade { [2] = false })
write("http", "upgrade-h2c", upgrade { [3] = { "Upgrade", "h2c" } })
write("http", "upgrade-no-connection", upgrade { [4] = false })
write("http", "upgrade-absolute-target", upgrade { [1] = { "GET", "http://localhost:5000/ws?x=1", "HTTP/1.1" } })
write("http", "upgrade-high-bytes-target", upgrade { [1] = { "GET", "/\xc3\xa9t\xc3\xa9", "HTTP/1.1" } })
write("http", "upgrade-long-key-value", upgrade { [2] = { "Host", rep("h", 300) } })
write("http", "plain-get", crlf { "GET /index.html HTTP/1.1", "Host: a" })
write("http", "header-tab-value", crlf { "GET / HTTP/1.1", "Host:\t a b \t", "X-Empty:", "X-Sp:   " })
write("http", "header-obs-fold", crlf { "GET / HTTP/1.1", "Host: a", " folded" })
write("http", "header-space-before-colon", crlf { "GET / HTTP/1.1", "Host : a" })
write("http", "header-nul", "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n")
write("http", "header-del", "GET / HTTP/1.1\r\nHost: a\x7fb\r\n\r\n")
write("http", "header-lone-cr", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n")
write("http", "header-no-colon", crlf { "GET / HTTP/1.1", "Host" })
write("http", "request-line-lowercase-version", crlf { "GET / http/1.1", "Host: a" })
write("http", "request-line-http2", crlf { "GET / HTTP/2.0", "Host: a" })
write("http", "request-line-double-space", crlf { "GET  / HTTP/1.1", "Host: a" })
write("http", "request-line-leading-crlf", "\r\n" .. crlf { "GET / HTTP/1.1", "Host: a" })
write("http", "empty-line-only", "\r\n")
do
  local t = { "GET / HTTP/1.1" }
  for i = 1, 64 do t[#t + 1] = ("X-%d: v"):format(i) end
  write("http", "headers-64", crlf(t))
  t[#t + 1] = "X-65: v"
  write("http", "headers-65", crlf(t))
  write("http", "head-too-long", crlf { "GET / HTTP/1.1", "X-Big: " .. rep("b", 8200) })
  write("http", "head-8192-exact", crlf { "GET / HTTP/1.1", "X-Big: " .. rep("b", 8192 - 27) })
end
write("http", "response-rfc6455-1.3", crlf {
  "HTTP/1.1 101 Switching Protocols",
  "Upgrade: websocket",
  "Connection: Upgrade",
  "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
  "Sec-WebSocket-Protocol: chat",
})
write("http", "response-no-reason", "HTTP/1.1 200\r\n\r\n")
write("http", "response-empty-reason", "HTTP/1.1 204 \r\n\r\n")
write("http", "response-426", crlf { "HTTP/1.1 426 Upgrade Required", "Sec-WebSocket-Version: 13" })
write("http", "response-bad-status", "HTTP/1.1 2x0 OK\r\n\r\n")
write("http", "response-bare-lf", "HTTP/1.0 404 Not Found\nContent-Length: 0\n\n")

---------------------------------------------------------------------------
-- utf8: [split count][split bytes][text]
---------------------------------------------------------------------------

local function utf8_seed(splits, text)
  splits = splits or {}
  return char(#splits) .. char(table.unpack(splits)) .. text
end

local cases = {
  { "empty", "" },
  { "ascii", "Hello, world" },
  { "ascii-long", rep("abcdefgh", 5) .. "!" },
  { "kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5" },
  { "first-of-each-length", "\x00\xc2\x80\xe0\xa0\x80\xf0\x90\x80\x80" },
  { "last-of-each-length", "\x7f\xdf\xbf\xef\xbf\xbf\xf4\x8f\xbf\xbf" },
  { "around-surrogates", "\xed\x9f\xbf\xee\x80\x80" },
  { "surrogate-high", "\xed\xa0\x80" },
  { "surrogate-low", "\xed\xbf\xbf" },
  { "above-10ffff", "\xf4\x90\x80\x80" },
  { "f5-lead", "\xf5\x80\x80\x80" },
  { "ff", "a\xff" },
  { "overlong-c0", "\xc0\xaf" },
  { "overlong-c1", "\xc1\xbf" },
  { "overlong-e0", "\xe0\x80\xaf" },
  { "overlong-e0-9f", "\xe0\x9f\xbf" },
  { "overlong-f0", "\xf0\x80\x80\xaf" },
  { "overlong-f0-8f", "\xf0\x8f\xbf\xbf" },
  { "stray-continuation", "ab\x80cd" },
  { "continuations-all", "\x80\x8f\x90\x9f\xa0\xbf" },
  { "truncated-2", "ab\xc3" },
  { "truncated-3", "ab\xe2\x82" },
  { "truncated-4", "ab\xf0\x9f\x98" },
  { "lead-then-ascii", "\xe2a\x82\xac" },
  { "lead-then-lead", "\xc3\xc3\xa9" },
  { "ascii-then-multibyte-at-7", "1234567\xc3\xa9" },
  { "ascii-then-multibyte-at-8", "12345678\xe2\x82\xac" },
  { "ascii-then-bad-at-9", "123456789\xfe" },
  { "emoji", "\xf0\x9f\x98\x80\xf0\x9f\x91\x8d" },
  { "mixed", "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z" },
}
for _, c in ipairs(cases) do
  write("utf8", c[1], utf8_seed(nil, c[2]))
end
write("utf8", "kosme-bytewise", utf8_seed({ 1 }, cases[4][2]))
write("utf8", "mixed-split-2-3", utf8_seed({ 2, 3 }, cases[30][2]))
write("utf8", "emoji-split-mid", utf8_seed({ 3, 0, 1 }, cases[29][2]))
write("utf8", "surrogate-split", utf8_seed({ 1, 1 }, "ok\xed\xa0\x80"))
write("utf8", "long-ascii-split-9", utf8_seed({ 9 }, rep("x", 30) .. "\xe2\x82\xac" .. rep("y", 20)))
write("utf8", "truncated-split", utf8_seed({ 4 }, "abc\xf0\x9f\x98"))

---------------------------------------------------------------------------
-- chunked: [S | 16 if limited][limit byte][S split bytes][body]
---------------------------------------------------------------------------

local function chunked_seed(splits, limit, body)
  splits = splits or {}
  local head = char(#splits | (limit and 16 or 0)) .. (limit and char(limit) or "")
  local cuts = {}
  for i, n in ipairs(splits) do cuts[i] = char(n) end
  return head .. table.concat(cuts) .. body
end

local chunked = {
  { "rfc9112-example", "4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\n" },
  { "empty", "0\r\n\r\n" },
  { "zeros", "000\r\n\r\n" },
  { "extensions", "3;a=1;b=\"x y\"\r\nabc\r\n0;last\r\n\r\n" },
  { "bws-before-ext", "3 \t;x\r\nabc\r\n0\r\n\r\n" },
  { "trailers", "1\r\nz\r\n0\r\nX-Sum: 1\r\nX-Other: two\r\n\r\n" },
  { "uppercase-hex", "A\r\n0123456789\r\n0\r\n\r\n" },
  { "next-request-after", "2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n" },
  { "partial-size", "1f" },
  { "partial-data", "10\r\nabc" },
  { "bad-hex", "zz\r\nhello\r\n0\r\n\r\n" },
  { "bare-lf", "5\nhello\r\n0\r\n\r\n" },
  { "no-crlf-after-data", "5\r\nhelloX\r\n0\r\n\r\n" },
  { "space-inside-size", "1 2\r\nab\r\n" },
  { "overflow", "10000000000000000\r\n" },
  { "max-u64-ish", "ffffffffffffffff\r\n" },
  { "control-in-ext", "1;\1\r\na\r\n0\r\n\r\n" },
  { "obs-fold-trailer", "0\r\nX: 1\r\n folded\r\n\r\n" },
  { "long-ext", "1;" .. rep("e", 1100) .. "\r\na\r\n0\r\n\r\n" },
  { "long-trailers", "0\r\n" .. rep("X-Pad: " .. rep("p", 90) .. "\r\n", 100) .. "\r\n" },
}
for _, c in ipairs(chunked) do
  write("chunked", c[1], chunked_seed(nil, nil, c[2]))
end
write("chunked", "example-bytewise", chunked_seed({ 1 }, nil, chunked[1][2]))
write("chunked", "example-split-3-0-7", chunked_seed({ 3, 0, 7 }, nil, chunked[1][2]))
write("chunked", "limit-exact", chunked_seed(nil, 0, "1\r\nx\r\n0\r\n\r\n"))             -- max 1
write("chunked", "limit-over", chunked_seed(nil, 0, "2\r\nxy\r\n0\r\n\r\n"))
write("chunked", "limit-over-later", chunked_seed({ 5 }, 1, "50\r\n" .. rep("a", 80) .. "\r\n30\r\n"))
write("chunked", "a-request", "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
write("chunked", "a-request-both", "POST /x HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")
write("chunked", "a-request-lengths", "POST /x HTTP/1.1\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\n")
write("chunked", "a-request-gzip", "POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n")

---------------------------------------------------------------------------
-- pmd: [mode: 0 negotiate, 1 inflate, 2 round trip][parameters][rest]
-- (fuzz/pmd_fuzz.c). Negotiation: the rest is header values split at "\n".
-- Inflate: [S][S split bytes: length | 0x80 to end a message][data].
---------------------------------------------------------------------------

local function policy(snct, cnct, sbits, cbits)
  return char((snct and 1 or 0) | (cnct and 2 or 0) | ((sbits - 8) << 2) | ((cbits - 8) << 5))
end
local P15 = policy(false, false, 15, 15)
local offers = {
  { "plain", "permessage-deflate" },
  { "browser", "permessage-deflate; client_max_window_bits" },
  { "python", "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12" },
  { "both-nct", "permessage-deflate; server_no_context_takeover; client_no_context_takeover" },
  { "several", "x-webkit-deflate-frame, permessage-deflate; foo=1, permessage-deflate; server_max_window_bits=10" },
  { "headers", "foo; bar=\"baz\"\npermessage-deflate; client_max_window_bits=9\npermessage-deflate" },
  { "quoted", "permessage-deflate; server_max_window_bits=\"1\\1\"" },
  { "bits-8", "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8" },
  { "bad-bits", "permessage-deflate; server_max_window_bits=16, permessage-deflate; client_max_window_bits=08" },
  { "repeated", "permessage-deflate; server_no_context_takeover; server_no_context_takeover" },
  { "value-on-flag", "permessage-deflate; client_no_context_takeover=1" },
  { "unterminated", "permessage-deflate; server_max_window_bits=\"10" },
  { "empty-elements", " , ,permessage-deflate ,, " },
  { "trailing-semicolon", "permessage-deflate;" },
  { "many-params", "permessage-deflate" .. rep("; a", 12) },
  { "answer-full", "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
      .. "server_max_window_bits=9; client_max_window_bits=10" },
}
for _, o in ipairs(offers) do
  write("pmd", "negotiate-" .. o[1], "\0" .. P15 .. o[2])
end
write("pmd", "negotiate-policy-nct-9-10", "\0" .. policy(true, true, 9, 10) .. "permessage-deflate; client_max_window_bits")
write("pmd", "negotiate-policy-8", "\0" .. policy(false, true, 8, 8) .. "permessage-deflate")

-- Inflate seeds: RFC 7692 §7.2.3's examples byte for byte, stored blocks.
local function params(bits, nc, limit) return char((bits - 8) | (nc and 8 or 0) | (limit << 4)) end
local function stored(data, final)   -- one stored block (BFINAL as told), byte-aligned
  return char(final and 1 or 0) .. pack("<I2", #data) .. pack("<I2", (~#data) & 0xffff) .. data
end
local hello = "\xf2\x48\xcd\xc9\xc9\x07\x00"            -- §7.2.3.1
local hello_again = "\xf2\x00\x11\x00\x00"                -- §7.2.3.2, over the same window
local hello_final = "\xf3\x48\xcd\xc9\xc9\x07\x00\x00"     -- §7.2.3.4, BFINAL set
local function inflate_seed(p, splits, data)
  return "\1" .. p .. char(#splits) .. (#splits > 0 and char(table.unpack(splits)) or "") .. data
end
write("pmd", "inflate-hello", inflate_seed(params(15, false, 0), {}, hello))
write("pmd", "inflate-hello-twice", inflate_seed(params(15, false, 0), { 0x80 | #hello }, hello .. hello_again))
write("pmd", "inflate-hello-nct", inflate_seed(params(15, true, 0), { 0x80 | #hello }, hello .. hello))
write("pmd", "inflate-hello-fragments", inflate_seed(params(15, false, 0), { 3, 0, 0x80 | 4 }, hello .. hello_again))
write("pmd", "inflate-bfinal", inflate_seed(params(15, false, 0), { 0x80 | #hello_final }, hello_final .. hello_again))
write("pmd", "inflate-stored", inflate_seed(params(9, false, 0), {}, stored("Hello") .. stored("", false)))
write("pmd", "inflate-stored-limit", inflate_seed(params(15, false, 2), {}, stored(rep("x", 1001))))
write("pmd", "inflate-limit-1", inflate_seed(params(8, false, 1), {}, hello))
write("pmd", "inflate-empty", inflate_seed(params(15, false, 0), {}, "\0"))
write("pmd", "inflate-reserved-block", inflate_seed(params(15, false, 0), {}, "\x07\xff"))
write("pmd", "inflate-stored-bad-nlen", inflate_seed(params(15, false, 0), {}, "\0\5\0\5\0Hello"))
-- messages already on a block boundary before the tail: empty ones between
-- others, and one that kept its own 00 00 ff ff tail
write("pmd", "inflate-empty-payload", inflate_seed(params(15, false, 0), { 0x80, 0x80 | #hello }, hello .. hello_again))
write("pmd", "inflate-empty-payload-nct", inflate_seed(params(10, true, 0), { 0x80, 0x80 | #hello }, hello .. hello))
write("pmd", "inflate-kept-tail", inflate_seed(params(15, false, 0), { 0x80 | (#hello + 4) },
  hello .. "\0\0\xff\xff" .. hello_again))
write("pmd", "inflate-every-window", inflate_seed(params(12, true, 3), { 0x80 | 10 }, stored("0123") .. stored("abcdef")))

-- Round trips: text to compress, cut into messages.
local json = rep('{"id":12345,"name":"alpha","tags":["x","y"],"ok":true}', 6)
write("pmd", "roundtrip-json", "\2" .. char(0x40 | 7) .. "\0" .. json)
write("pmd", "roundtrip-json-nct-fragments", "\2" .. char(0x80 | 8 | 3) .. "\3" .. char(20, 0x80 | 50, 0x80) .. json)
write("pmd", "roundtrip-bits8-level9", "\2" .. char(0xc0) .. "\2" .. char(0x80 | 100, 0x80 | 7) .. json)
write("pmd", "roundtrip-stored", "\2" .. char(0x00 | 7) .. "\1" .. char(0x80 | 33) .. json)
write("pmd", "roundtrip-empty-messages", "\2" .. char(0x47) .. "\2" .. char(0x80, 0x80 | 1) .. "ab")

---------------------------------------------------------------------------
-- proxy: the first bytes of a connection (a PROXY header, then whatever)
---------------------------------------------------------------------------

local V2 = "\r\n\r\n\0\r\nQUIT\n"
local function v2(ver_cmd, fam, block) return V2 .. char(ver_cmd, fam) .. pack(">I2", #block) .. block end
local tcp4 = char(192, 0, 2, 1, 198, 51, 100, 2) .. pack(">I2I2", 56324, 443)
local tcp6 = rep("\0", 15) .. "\1" .. "\32\1\13\184" .. rep("\0", 11) .. "\2" .. pack(">I2I2", 12345, 80)
local unix_block = ("/tmp/client.sock" .. rep("\0", 92)) .. ("/run/app.sock" .. rep("\0", 95))
for _, c in ipairs {
  { "v1-tcp4", "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n" },
  { "v1-tcp6", "PROXY TCP6 2001:db8::1 ::1 1 65535\r\n" },
  { "v1-unknown", "PROXY UNKNOWN\r\n" },
  { "v1-unknown-rest", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n" },
  { "v1-107", "PROXY UNKNOWN " .. rep("x", 91) .. "\r\n" },
  { "v1-108", "PROXY UNKNOWN " .. rep("x", 92) .. "\r\n" },
  { "v1-bare-lf", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n" },
  { "v1-two-spaces", "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n" },
  { "v1-family-mismatch", "PROXY TCP4 ::1 ::1 1 2\r\n" },
  { "v1-port-big", "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n" },
  { "v1-partial", "PROXY TCP4 1.2.3" },
  { "http-instead", "GET / HTTP/1.1\r\nHost: h\r\n\r\n" },
  { "v2-tcp4", v2(0x21, 0x11, tcp4) .. "GET / HTTP/1.1\r\n" },
  { "v2-tcp6", v2(0x21, 0x21, tcp6) },
  { "v2-unix", v2(0x21, 0x31, unix_block) },
  { "v2-local", v2(0x20, 0x00, "") },
  { "v2-local-block", v2(0x20, 0x11, tcp4) },
  { "v2-unspec", v2(0x21, 0x00, "") },
  { "v2-ssl-tlv", v2(0x21, 0x11, tcp4 .. "\x20\0\5\1\0\0\0\0" .. "\xea\0\7\1vpce-1") },
  { "v2-noop-tlv", v2(0x21, 0x11, tcp4 .. "\4\0\3pad") },
  { "v2-tlv-overrun", v2(0x21, 0x11, tcp4 .. "\x20\0\9\1\0") },
  { "v2-udp", v2(0x21, 0x12, tcp4) },
  { "v2-version1", v2(0x11, 0x11, tcp4) },
  { "v2-short-block", v2(0x21, 0x21, tcp4) },
  { "v2-huge-length", V2 .. "\x21\x11\xff\xff" .. tcp4 },
  { "v2-partial", V2:sub(1, 9) },
  -- the text codecs read the same bytes
  { "ip4", "192.0.2.1" }, { "ip6", "2001:db8::1" }, { "ip6-mapped", "::ffff:10.1.2.3" },
  { "cidr4", "10.0.0.0/8" }, { "cidr6", "2001:db8::ff/120" }, { "addr-port", "[2001:db8::7]:4711" },
} do
  write("proxy", c[1], c[2])
end

---------------------------------------------------------------------------
-- forwarded: [peer byte][header lines] (peer: 0 127.0.0.1, 1 unix, 2 an
-- untrusted 192.0.2.1, 3 ::1)
---------------------------------------------------------------------------

for _, c in ipairs {
  { "xff", 0, "X-Forwarded-For: 203.0.113.7\r\n" },
  { "xff-spoof-left", 0, "X-Forwarded-For: 1.1.1.1, 203.0.113.7\r\n" },
  { "xff-chain", 1, "X-Forwarded-For: 203.0.113.7, 10.0.0.5\r\nX-Forwarded-Proto: https\r\n" },
  { "xff-all-trusted", 3, "X-Forwarded-For: 10.0.0.6,10.0.0.5\r\n" },
  { "xff-unknown", 0, "X-Forwarded-For: 203.0.113.7, unknown\r\n" },
  { "xff-two-lines", 0, "X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 203.0.113.7\r\n" },
  { "xff-v6-port", 1, "X-Forwarded-For: [2001:db8::7]:4711, ::ffff:10.1.1.1\r\n" },
  { "xff-untrusted-peer", 2, "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n" },
  { "xff-empty", 0, "X-Forwarded-For: , ,\r\n" },
  { "forwarded", 0, "Forwarded: for=192.0.2.60;proto=https;by=203.0.113.43\r\n" },
  { "forwarded-v6", 0, "Forwarded: for=\"[2001:db8:cafe::17]:4711\"\r\n" },
  { "forwarded-list", 1, "Forwarded: for=198.51.100.1, for=192.0.2.43;proto=http\r\n" },
  { "forwarded-ows", 0, "Forwarded: For=192.0.2.43; Proto=HTTPS, for=10.0.0.1\r\n" },
  { "forwarded-obfuscated", 0, "Forwarded: for=_hidden, for=10.0.0.1\r\n" },
  { "forwarded-escape", 0, "Forwarded: for=\"\\[::1]\"\r\n" },
  { "forwarded-unclosed", 0, "Forwarded: for=\"192.0.2.1\r\n" },
  { "both", 0, "Forwarded: for=192.0.2.1\r\nX-Forwarded-For: 203.0.113.7\r\n" },
  { "many-hops", 0, "X-Forwarded-For: 203.0.113.1" .. rep(", 10.0.0.9", 40) .. "\r\n" },
} do
  write("forwarded", c[1], char(c[2]) .. c[3])
end

print(("gen_corpus: wrote %d seeds under %s/corpus/"):format(written, root))
