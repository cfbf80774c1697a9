-- spec/frame_spec.lua -- RFC 6455 §5 framing through luaws.core: the §5.7
-- examples byte for byte, every length form, masking, and the incremental
-- reader fed at every split point, with every protocol error it must report.
local core = require "luaws.core"
local helper = require "helper"   -- helper.fails: nil, a message, a token

local char, rep = string.char, string.rep

local OP = { cont = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10 }
local KEY = "\x37\xfa\x21\x3d"     -- the masking key of the RFC 6455 §5.7 examples

-- Bytes of a string as hex, for readable failures.
local function hex(s)
  return (s:gsub(".", function(c) return ("%02x "):format(c:byte()) end))
end

-- A deterministic pseudo-random string (no math.random state shared between specs).
local function noise(n, seed)
  local t, x = {}, seed or 1
  for i = 1, n do
    x = (x * 1103515245 + 12345) % 2147483648
    t[i] = char(x >> 16 & 0xff)
  end
  return table.concat(t)
end

-- Masked frame as a client sends it (what a server reads).
local function cframe(op, payload, fin, rsv)
  return core.frame_encode(op, payload, fin, KEY, rsv)
end

-- Close payload: 2-byte code + reason.
local function close_payload(code, reason)
  return char(code >> 8, code & 0xff) .. (reason or "")
end

-- Feed stream to a fresh reader in pieces ending at the positions in cuts and
-- return what came out, as messages: reassembled data messages
-- {op=, data=}, control frames {op=, data=, code=}, and the first error
-- {error=code, reason=}. Checks on the way that chunks of one message share
-- its opcode, and that nothing follows an error.
local function run(stream, cuts, expect_masked, max)
  local r = core.reader(expect_masked, max)
  local out, parts, msg_op, failed = {}, {}, nil, false
  local function take(events)
    for i, ev in ipairs(events) do
      assert(not failed, "event after an error")
      if ev.type == "data" then
        assert(msg_op == nil or msg_op == ev.opcode, "opcode changed inside a message")
        msg_op = ev.opcode
        parts[#parts + 1] = ev.data
        if ev.fin then
          out[#out + 1] = { op = ev.opcode, data = table.concat(parts) }
          parts, msg_op = {}, nil
        end
      elseif ev.type == "control" then
        out[#out + 1] = { op = ev.opcode, data = ev.data, code = ev.close_code }
      else
        assert(ev.type == "error", "unknown event type " .. tostring(ev.type))
        assert(i == #events, "error is not the last event")
        out[#out + 1] = { error = ev.close_code, reason = ev.reason }
        failed = true
      end
    end
  end
  local prev = 0
  for _, c in ipairs(cuts or {}) do
    if not failed then take(r:feed(stream:sub(prev + 1, c))) end
    prev = c
  end
  if not failed then take(r:feed(stream:sub(prev + 1))) end
  return out, r
end

-- Every way to cut stream that the specs try: whole, at each single split
-- point (sampled for long streams), one byte at a time, and at every pair of
-- split points for short streams.
local function splits(stream)
  local n, ways = #stream, { {} }
  local step = n > 600 and 97 or 1
  for i = 1, n - 1, step do ways[#ways + 1] = { i } end
  if step > 1 then   -- around the headers, where the interesting cuts are
    for i = 1, math.min(n - 1, 20) do ways[#ways + 1] = { i } end
    for i = math.max(1, n - 20), n - 1 do ways[#ways + 1] = { i } end
  end
  local bytewise = {}
  for i = 1, n - 1 do bytewise[i] = i end
  ways[#ways + 1] = bytewise
  if n <= 40 then
    for i = 1, n - 1 do
      for j = i + 1, n - 1 do ways[#ways + 1] = { i, j } end
    end
  end
  return ways
end

-- Assert that stream gives `expected` however it is cut.
local function same_at_every_split(stream, expected, expect_masked, max)
  for _, cuts in ipairs(splits(stream)) do
    local got = run(stream, cuts, expect_masked, max)
    assert.are.same(expected, got, "cut at {" .. table.concat(cuts, ",", 1, math.min(#cuts, 8)) .. "}")
  end
end

-- The first error stream gives, whatever the cut (messages before it may be
-- reported or not when they fail fast, so only the error is compared).
local function error_at_every_split(stream, code, reason, expect_masked, max)
  for _, cuts in ipairs(splits(stream)) do
    local got = run(stream, cuts, expect_masked, max)
    assert.are.same({ error = code, reason = reason }, got[#got],
      "cut at {" .. table.concat(cuts, ",", 1, math.min(#cuts, 8)) .. "}")
  end
end

describe("luaws.core frame encoder", function()
  -- RFC 6455 §5.7, byte for byte.
  local rfc = {
    { "a single-frame unmasked text message",
      core.frame_encode(OP.text, "Hello"),
      "\x81\x05\x48\x65\x6c\x6c\x6f" },
    { "a single-frame masked text message",
      core.frame_encode(OP.text, "Hello", true, KEY),
      "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58" },
    { "a fragmented unmasked text message",
      core.frame_encode(OP.text, "Hel", false) .. core.frame_encode(OP.cont, "lo"),
      "\x01\x03\x48\x65\x6c" .. "\x80\x02\x6c\x6f" },
    { "an unmasked ping",
      core.frame_encode(OP.ping, "Hello"),
      "\x89\x05\x48\x65\x6c\x6c\x6f" },
    { "a masked pong",
      core.frame_encode(OP.pong, "Hello", true, KEY),
      "\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58" },
    { "256 bytes of binary data with a 16-bit length",
      core.frame_encode(OP.binary, rep("\0", 256)),
      "\x82\x7e\x01\x00" .. rep("\0", 256) },
    { "64 KiB of binary data with a 64-bit length",
      core.frame_encode(OP.binary, rep("\0", 65536)),
      "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00" .. rep("\0", 65536) },
  }
  for _, case in ipairs(rfc) do
    it("encodes the RFC 6455 §5.7 example: " .. case[1], function()
      assert.are.equal(hex(case[3]:sub(1, 40)), hex(case[2]:sub(1, 40)))
      assert.are.equal(#case[3], #case[2])
      assert.is_true(case[3] == case[2])
    end)
  end

  -- Every length class, with the header the shortest form gives (§5.2).
  local lengths = {
    { 0, "\x82\x00" }, { 1, "\x82\x01" }, { 125, "\x82\x7d" },
    { 126, "\x82\x7e\x00\x7e" }, { 127, "\x82\x7e\x00\x7f" },
    { 65535, "\x82\x7e\xff\xff" },
    { 65536, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00" },
    { (1 << 20) + 3, "\x82\x7f\x00\x00\x00\x00\x00\x10\x00\x03" },
  }
  for _, case in ipairs(lengths) do
    local len, header = case[1], case[2]
    it(("uses the shortest length form for %d bytes and parses it back"):format(len), function()
      local payload = noise(len, len + 1)
      local plain = core.frame_encode(OP.binary, payload)
      assert.are.equal(hex(header), hex(plain:sub(1, #header)))
      assert.are.equal(#header + len, #plain)
      local h = assert(core.frame_header(plain))
      assert.are.same({ fin = true, rsv = 0, opcode = 2, masked = false, len = len, size = #header }, h)

      local masked = core.frame_encode(OP.binary, payload, true, KEY)
      h = assert(core.frame_header(masked))
      assert.are.same({ fin = true, rsv = 0, opcode = 2, masked = true, mask = KEY,
                        len = len, size = #header + 4 }, h)
      assert.are.equal(#header + 4 + len, #masked)
      assert.is_true(core.mask(masked:sub(h.size + 1), KEY) == payload)
    end)
  end

  it("sets FIN, RSV and opcode bits where §5.2 puts them", function()
    assert.are.equal("\x0a\x00", core.frame_encode(0xA, "", false))
    assert.are.equal("\xf2\x00", core.frame_encode(2, "", true, nil, 7))
    assert.are.equal("\xc1\x00", core.frame_encode(1, "", true, nil, 4))
    assert.are.same({ fin = false, rsv = 5, opcode = 0xF, masked = false, len = 0, size = 2 },
      core.frame_header("\x5f\x00"))
  end)

  it("parses a header announcing 2^40 bytes without its payload", function()
    local h = assert(core.frame_header("\x82\x7f\x00\x00\x01\x00\x00\x00\x00\x00"))
    assert.are.equal(1 << 40, h.len)
    assert.are.equal(10, h.size)
  end)

  it("says partial for every header that is cut short", function()
    local headers = {
      "\x81\x85" .. KEY,
      "\x82\x7e\x01\x00",
      "\x82\xfe\x01\x00" .. KEY,
      "\x82\xff\x00\x00\x00\x00\x00\x01\x00\x00" .. KEY,
    }
    for _, hdr in ipairs(headers) do
      for i = 0, #hdr - 1 do
        helper.fails_with("partial", "frame_header: ", core.frame_header(hdr:sub(1, i)))
      end
      assert.are.equal(#hdr, core.frame_header(hdr).size)
    end
  end)

  it("raises on misuse", function()
    assert.has_error(function() core.frame_encode(16, "") end)
    assert.has_error(function() core.frame_encode(1, "", true, "abc") end)
    assert.has_error(function() core.frame_encode(1, "", true, nil, 8) end)
    assert.has_error(function() core.frame_encode(1, "", "yes") end)
    assert.has_error(function() core.mask("x", "toolong") end)
    assert.has_error(function() core.reader("server") end)
  end)
end)

describe("luaws.core mask", function()
  -- The byte-at-a-time definition of §5.3.
  local function reference(s, key, offset)
    local out = {}
    for i = 1, #s do
      local k = key:byte((i - 1 + offset) % 4 + 1)
      out[i] = char(s:byte(i) ~ k)
    end
    return table.concat(out)
  end

  it("matches the byte-at-a-time reference for offsets 0-3 and lengths 0-40", function()
    local key = "\x01\x82\x43\xf4"
    for offset = 0, 3 do
      for len = 0, 40 do
        local s = noise(len, len * 7 + offset)
        assert.are.equal(hex(reference(s, key, offset)), hex(core.mask(s, key, offset)),
          ("offset %d, length %d"):format(offset, len))
      end
    end
  end)

  it("matches the reference for long inputs and offsets past 3", function()
    local key = "\xde\xad\xbe\xef"
    for _, len in ipairs { 63, 64, 65, 1000, 4099 } do
      for _, offset in ipairs { 0, 1, 2, 3, 4, 5, 1001 } do
        local s = noise(len, len + offset)
        assert.is_true(reference(s, key, offset) == core.mask(s, key, offset))
      end
    end
  end)

  it("masks frame payloads at unaligned addresses like the reference", function()
    -- The payload follows a 6-, 8- or 14-byte header, so the word loop starts
    -- after a few single bytes.
    for _, len in ipairs { 0, 1, 7, 8, 9, 15, 16, 17, 40, 125, 126, 300, 65536 } do
      local s = noise(len, len)
      local f = core.frame_encode(OP.binary, s, true, KEY)
      local h = core.frame_header(f)
      assert.is_true(reference(s, KEY, 0) == f:sub(h.size + 1), "length " .. len)
    end
  end)

  it("is its own inverse", function()
    local s = noise(1000, 3)
    assert.is_true(core.mask(core.mask(s, KEY, 2), KEY, 2) == s)
  end)
end)

describe("luaws.core close codes", function()
  local valid = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                  3000, 3001, 3999, 4000, 4001, 4999 }
  local invalid = { 0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535, 65536, -1 }
  for _, code in ipairs(valid) do
    it(("accepts close code %d"):format(code), function()
      assert.is_true(core.close_code_valid(code))
    end)
  end
  for _, code in ipairs(invalid) do
    it(("refuses close code %d"):format(code), function()
      assert.is_false(core.close_code_valid(code))
    end)
  end
end)

describe("luaws.core frame reader", function()
  -- Streams that must read the same however they are cut: the §5.7 examples
  -- (a client reads unmasked frames, a server masked ones) and more.
  local cases = {
    { "a single-frame unmasked text message (client)", false,
      "\x81\x05Hello", { { op = 1, data = "Hello" } } },
    { "a single-frame masked text message (server)", true,
      "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", { { op = 1, data = "Hello" } } },
    { "a fragmented unmasked text message", false,
      "\x01\x03Hel\x80\x02lo", { { op = 1, data = "Hello" } } },
    { "an unmasked ping", false,
      "\x89\x05Hello", { { op = 9, data = "Hello" } } },
    { "a masked pong", true,
      "\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", { { op = 10, data = "Hello" } } },
    { "256 bytes of binary data", false,
      "\x82\x7e\x01\x00" .. noise(256, 5), { { op = 2, data = noise(256, 5) } } },
    { "64 KiB of binary data", false,
      "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00" .. noise(65536, 6), { { op = 2, data = noise(65536, 6) } } },
    { "64 KiB of masked binary data", true,
      cframe(OP.binary, noise(65536, 7)), { { op = 2, data = noise(65536, 7) } } },
    { "an empty text message", true,
      cframe(OP.text, ""), { { op = 1, data = "" } } },
    { "an empty binary message followed by another", true,
      cframe(OP.binary, "") .. cframe(OP.binary, "x"), { { op = 2, data = "" }, { op = 2, data = "x" } } },
    { "a message whose fragments are all empty", true,
      cframe(OP.text, "", false) .. cframe(OP.cont, "", false) .. cframe(OP.cont, ""),
      { { op = 1, data = "" } } },
    { "a message ending in an empty fragment", true,
      cframe(OP.binary, "ab", false) .. cframe(OP.cont, "cd", false) .. cframe(OP.cont, ""),
      { { op = 2, data = "abcd" } } },
    { "control frames between fragments", true,
      cframe(OP.text, "Hel", false) .. cframe(OP.ping, "p1") .. cframe(OP.pong, "")
        .. cframe(OP.cont, "l", false) .. cframe(OP.ping, rep("x", 125)) .. cframe(OP.cont, "o"),
      { { op = 9, data = "p1" }, { op = 10, data = "" }, { op = 9, data = rep("x", 125) },
        { op = 1, data = "Hello" } } },
    { "a close between fragments", true,
      cframe(OP.binary, "a", false) .. cframe(OP.close, close_payload(1000, "bye")),
      { { op = 8, data = "bye", code = 1000 } } },
    { "a code point split across fragments", true,
      cframe(OP.text, "κό\xcf", false) .. cframe(OP.cont, "\x83", false) .. cframe(OP.cont, "με"),
      { { op = 1, data = "κόσμε" } } },
    { "messages of several sizes back to back", true,
      cframe(OP.text, rep("a", 125)) .. cframe(OP.binary, noise(126, 1)) .. cframe(OP.text, rep("b", 300))
        .. cframe(OP.close, ""),
      { { op = 1, data = rep("a", 125) }, { op = 2, data = noise(126, 1) }, { op = 1, data = rep("b", 300) },
        { op = 8, data = "", code = 1005 } } },
  }
  for _, case in ipairs(cases) do
    local name, masked, stream, expected = case[1], case[2], case[3], case[4]
    it("reads " .. name .. " the same at every split point and byte by byte", function()
      same_at_every_split(stream, expected, masked)
    end)
  end

  it("reads a masked fragmented 4-byte code point and a UTF-8 text", function()
    local s = cframe(OP.text, "\xf0\x9f", false) .. cframe(OP.cont, "\x98", false)
      .. cframe(OP.cont, "\x80!") .. cframe(OP.text, "κόσμε")
    same_at_every_split(s, { { op = 1, data = "\u{1F600}!" }, { op = 1, data = "κόσμε" } }, true)
  end)

  it("reports an empty final frame as a data event of length 0 with fin", function()
    local r = core.reader(true)
    local evs = r:feed(cframe(OP.binary, "ab", false) .. cframe(OP.cont, ""))
    assert.are.same({
      { type = "data", opcode = 2, fin = false, frame_end = true, data = "ab" },
      { type = "data", opcode = 2, fin = true, frame_end = true, data = "" },
    }, evs)
    assert.are.same({ { type = "data", opcode = 1, fin = true, frame_end = true, data = "" } }, r:feed(cframe(OP.text, "")))
  end)

  it("reports no event for an empty non-final fragment", function()
    local r = core.reader(true)
    assert.are.same({}, r:feed(cframe(OP.text, "", false)))
    assert.is_true(r:in_message())
    assert.are.same({ { type = "data", opcode = 1, fin = true, frame_end = true, data = "x" } }, r:feed(cframe(OP.cont, "x")))
  end)

  it("hands out continuation chunks under the message's opcode with fin on the last", function()
    local r = core.reader(true)
    local s = cframe(OP.binary, "abc", false) .. cframe(OP.cont, "def")
    local evs = {}
    for i = 1, #s do
      for _, ev in ipairs(r:feed(s:sub(i, i))) do evs[#evs + 1] = ev end
    end
    local data = {}
    for i, ev in ipairs(evs) do
      assert.are.equal("data", ev.type)
      assert.are.equal(2, ev.opcode)
      assert.are.equal(i == #evs, ev.fin)
      data[#data + 1] = ev.data
    end
    assert.are.equal("abcdef", table.concat(data))
  end)

  it("marks the chunk that ends each frame, however the stream is cut", function()
    local s = cframe(OP.text, "ab€", false) .. cframe(OP.ping, "p") .. cframe(OP.cont, "", false)
      .. cframe(OP.cont, "cde") .. cframe(OP.binary, "z")
    for _, cuts in ipairs { {}, { 3 }, { 5 }, { 9, 20 } } do
      local r, frames, cur, prev = core.reader(true), {}, {}, 0
      cuts[#cuts + 1] = #s
      for _, c in ipairs(cuts) do
        for _, ev in ipairs(r:feed(s:sub(prev + 1, c))) do
          if ev.type == "data" then
            cur[#cur + 1] = ev.data
            if ev.frame_end then
              frames[#frames + 1] = { table.concat(cur), ev.opcode, ev.fin }
              cur = {}
            end
          end
        end
        prev = c
      end
      assert.are.same({ { "ab€", 1, false }, { "cde", 1, true }, { "z", 2, true } }, frames)
    end
    -- one byte at a time: every chunk but a frame's last has frame_end false
    local r, ends = core.reader(true), 0
    for i = 1, #s do
      for _, ev in ipairs(r:feed(s:sub(i, i))) do
        if ev.type == "data" and ev.frame_end then ends = ends + 1 end
      end
    end
    assert.are.equal(3, ends)
  end)

  it("knows when a data message is open", function()
    local r = core.reader(true)
    assert.is_false(r:in_message())
    r:feed(cframe(OP.text, "a", false))
    assert.is_true(r:in_message())
    r:feed(cframe(OP.ping, ""))
    assert.is_true(r:in_message())
    r:feed(cframe(OP.cont, "b"))
    assert.is_false(r:in_message())
  end)

  it("reports a control frame split across feeds once, when complete", function()
    local r = core.reader(true)
    local f = cframe(OP.ping, "0123456789")
    assert.are.same({}, r:feed(f:sub(1, 9)))
    assert.are.same({ { type = "control", opcode = 9, data = "0123456789" } }, r:feed(f:sub(10)))
  end)

  it("has a name and a string form", function()
    local r = core.reader(false)
    assert.matches("^luaws.reader: ", tostring(r))
    assert.has_error(function() r.feed(nil, "") end, "bad argument #1 to 'feed' (luaws.reader expected, got nil)")
  end)

  describe("close frames", function()
    local valid = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                    3000, 3999, 4000, 4999 }
    for _, code in ipairs(valid) do
      it(("accepts code %d with and without a reason"):format(code), function()
        same_at_every_split(cframe(OP.close, close_payload(code)), { { op = 8, data = "", code = code } }, true)
        same_at_every_split(cframe(OP.close, close_payload(code, "κόσμε")),
          { { op = 8, data = "κόσμε", code = code } }, true)
      end)
    end
    local invalid = { 0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535 }
    for _, code in ipairs(invalid) do
      it(("closes with 1002 on code %d"):format(code), function()
        error_at_every_split(cframe(OP.close, close_payload(code, "x")), 1002, "invalid close code", true)
      end)
    end
    it("reports 1005 and an empty reason for a close without payload", function()
      same_at_every_split(cframe(OP.close, ""), { { op = 8, data = "", code = 1005 } }, true)
    end)
    it("closes with 1002 on a 1-byte close payload", function()
      error_at_every_split(cframe(OP.close, "\x03"), 1002, "invalid close payload", true)
    end)
    it("closes with 1007 on a close reason that is not UTF-8", function()
      error_at_every_split(cframe(OP.close, close_payload(1000, "ok\xff")), 1007, "invalid utf8", true)
      error_at_every_split(cframe(OP.close, close_payload(1000, "\xce")), 1007, "invalid utf8", true)
      error_at_every_split(cframe(OP.close, close_payload(1000, "\xed\xa0\x80")), 1007, "invalid utf8", true)
    end)
    it("accepts a 123-byte reason, the most a control frame holds", function()
      local reason = rep("r", 123)
      same_at_every_split(cframe(OP.close, close_payload(1001, reason)), { { op = 8, data = reason, code = 1001 } }, true)
    end)
  end)

  describe("protocol errors", function()
    local top_bit = "\x82\xff\x80\x00\x00\x00\x00\x00\x00\x00" .. KEY
    local errors = {
      { "RSV1 set", cframe(OP.text, "x", true, 4), 1002, "reserved bits set" },
      { "RSV2 set", cframe(OP.binary, "x", true, 2), 1002, "reserved bits set" },
      { "RSV3 set", cframe(OP.ping, "", true, 1), 1002, "reserved bits set" },
      { "RSV set on a continuation", cframe(OP.text, "a", false) .. cframe(OP.cont, "b", true, 1), 1002,
        "reserved bits set" },
      { "a control frame that is not final", cframe(OP.ping, "x", false), 1002, "control frame fragmented" },
      { "a close that is not final", cframe(OP.close, "", false), 1002, "control frame fragmented" },
      { "a ping of 126 bytes", cframe(OP.ping, rep("x", 126)), 1002, "control frame too long" },
      { "a close of 126 bytes", cframe(OP.close, close_payload(1000, rep("x", 124))), 1002, "control frame too long" },
      { "a pong with a 64-bit length", "\x8a\xff\x00\x00\x00\x00\x00\x00\x00\x01" .. KEY .. "x", 1002,
        "control frame too long" },
      { "a 64-bit length with the top bit set", top_bit, 1002, "length too large" },
      { "a continuation with no message", cframe(OP.cont, "x"), 1002, "unexpected continuation" },
      { "a continuation after a finished message", cframe(OP.text, "a") .. cframe(OP.cont, "b"), 1002,
        "unexpected continuation" },
      { "a text frame inside a fragmented message", cframe(OP.text, "a", false) .. cframe(OP.text, "b"), 1002,
        "expected continuation" },
      { "a binary frame inside a fragmented text message",
        cframe(OP.text, "a", false) .. cframe(OP.ping, "") .. cframe(OP.binary, "b"), 1002, "expected continuation" },
      { "invalid UTF-8 in a text frame", cframe(OP.text, "ab\xffcd"), 1007, "invalid utf8" },
      { "a surrogate in a text frame", cframe(OP.text, "a\xed\xa0\x80"), 1007, "invalid utf8" },
      { "a text message ending inside a code point", cframe(OP.text, "a\xce"), 1007, "invalid utf8" },
      { "a fragmented text message ending inside a code point",
        cframe(OP.text, "\xf0\x9f", false) .. cframe(OP.cont, "\x98"), 1007, "invalid utf8" },
      { "a text message ending in an empty fragment inside a code point",
        cframe(OP.text, "\xe2\x82", false) .. cframe(OP.cont, ""), 1007, "invalid utf8" },
      { "invalid UTF-8 in a continuation", cframe(OP.text, "ok", false) .. cframe(OP.cont, "\xc0\x80"), 1007,
        "invalid utf8" },
    }
    for i = 3, 7 do
      errors[#errors + 1] = { ("reserved opcode 0x%X"):format(i), cframe(i, ""), 1002, "reserved opcode" }
    end
    for i = 0xB, 0xF do
      errors[#errors + 1] = { ("reserved opcode 0x%X"):format(i), cframe(i, ""), 1002, "reserved opcode" }
    end
    for _, case in ipairs(errors) do
      it(("closes with %d on %s"):format(case[3], case[1]), function()
        error_at_every_split(case[2], case[3], case[4], true)
      end)
    end

    it("closes with 1002 when a server reads an unmasked frame", function()
      error_at_every_split(core.frame_encode(OP.text, "Hello"), 1002, "frame not masked", true)
      error_at_every_split(core.frame_encode(OP.ping, ""), 1002, "frame not masked", true)
    end)

    it("closes with 1002 when a client reads a masked frame", function()
      error_at_every_split(cframe(OP.text, "Hello"), 1002, "frame masked", false)
      error_at_every_split(cframe(OP.close, ""), 1002, "frame masked", false)
    end)

    it("fails fast on invalid UTF-8 in the middle of a large frame", function()
      local r = core.reader(true)
      local f = cframe(OP.text, rep("a", 4096) .. "\xff" .. rep("b", 1 << 20))
      local evs = r:feed(f:sub(1, 6 + 2 + 4096 + 1 + 10))  -- header (64-bit form), 4096 good bytes, the bad one
      assert.are.same({ type = "error", close_code = 1007, reason = "invalid utf8" }, evs[#evs])
    end)

    it("keeps reporting the same error after one (sticky)", function()
      local r = core.reader(true)
      local evs = r:feed(cframe(OP.cont, "x"))
      local err = { type = "error", close_code = 1002, reason = "unexpected continuation" }
      assert.are.same({ err }, evs)
      assert.are.same({ err }, r:feed(cframe(OP.text, "fine")))
      assert.are.same({ err }, r:feed(""))
    end)

    it("reports the messages before an error, then the error", function()
      local got = run(cframe(OP.text, "one") .. cframe(OP.ping, "p") .. cframe(OP.binary, "x", true, 4)
        .. cframe(OP.text, "never"), nil, true)
      assert.are.same({ { op = 1, data = "one" }, { op = 9, data = "p" },
                        { error = 1002, reason = "reserved bits set" } }, got)
    end)
  end)

  describe("max_message", function()
    it("closes with 1009 at the header of a frame announcing 2^62 bytes", function()
      local hdr = "\x82\xff\x40\x00\x00\x00\x00\x00\x00\x00" .. KEY
      local r = core.reader(true, 1 << 20)
      assert.are.same({}, r:feed(hdr:sub(1, 9)))   -- length not complete yet
      assert.are.same({ { type = "error", close_code = 1009, reason = "message too big" } }, r:feed(hdr:sub(10, 10)))
      error_at_every_split(hdr, 1009, "message too big", true, 1 << 20)
    end)

    it("waits for the payload of a 2^62-byte frame when there is no limit", function()
      local r = core.reader(true, 0)
      assert.are.same({}, r:feed("\x82\xff\x40\x00\x00\x00\x00\x00\x00\x00" .. KEY))
      assert.are.same({ { type = "data", opcode = 2, fin = false, frame_end = false, data = "\0\0\0" } }, r:feed(KEY:sub(1, 3)))
    end)

    it("closes with 1009 at the header of a frame one byte over the limit", function()
      local r = core.reader(true, 100)
      assert.are.same({ { type = "error", close_code = 1009, reason = "message too big" } },
        r:feed(cframe(OP.binary, rep("x", 101)):sub(1, 2)))
      error_at_every_split(cframe(OP.text, rep("x", 101)), 1009, "message too big", true, 100)
      error_at_every_split(cframe(OP.text, rep("x", 300)), 1009, "message too big", true, 200)
    end)

    it("accepts a message of exactly the limit", function()
      same_at_every_split(cframe(OP.text, rep("x", 100)), { { op = 1, data = rep("x", 100) } }, true, 100)
    end)

    it("counts the fragments of a message together, and control frames not at all", function()
      local s = cframe(OP.binary, rep("a", 60), false) .. cframe(OP.ping, rep("p", 100)) .. cframe(OP.cont, rep("b", 40))
      same_at_every_split(s, { { op = 9, data = rep("p", 100) }, { op = 2, data = rep("a", 60) .. rep("b", 40) } },
        true, 100)
      local over = cframe(OP.binary, rep("a", 60), false) .. cframe(OP.cont, rep("b", 41))
      error_at_every_split(over, 1009, "message too big", true, 100)
      local r = core.reader(true, 100)
      local evs = r:feed(cframe(OP.binary, rep("a", 60), false) .. cframe(OP.cont, rep("b", 41)):sub(1, 2))
      assert.are.same({ type = "error", close_code = 1009, reason = "message too big" }, evs[#evs])
    end)

    it("starts counting again with each message", function()
      local s = cframe(OP.binary, rep("a", 100)) .. cframe(OP.binary, rep("b", 100))
      same_at_every_split(s, { { op = 2, data = rep("a", 100) }, { op = 2, data = rep("b", 100) } }, true, 100)
    end)

    it("closes with 1002, not 1009, on a length with the top bit set", function()
      local r = core.reader(true, 100)
      assert.are.same({ { type = "error", close_code = 1002, reason = "length too large" } },
        r:feed("\x82\xff\x80\x00\x00\x00\x00\x00\x00\x00"))
    end)
  end)
end)
