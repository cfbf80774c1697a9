-- spec/utf8_spec.lua -- the incremental UTF-8 validator (RFC 3629, as RFC 6455
-- §8.1 requires for text): valid and invalid inputs from the boundary cases
-- of Markus Kuhn's stress test and the Autobahn 6.x cases, every split, and
-- fail-fast at the first bad byte.
local core = require "luaws.core"

local ACCEPT, REJECT = core.UTF8_ACCEPT, core.UTF8_REJECT
local char, rep = string.char, string.rep

local function hex(s)
  return (s:gsub(".", function(c) return ("%02x "):format(c:byte()) end))
end

-- State after feeding s in pieces ending at the positions in cuts.
local function feed_cut(s, cuts)
  local st, prev = ACCEPT, 0
  for _, c in ipairs(cuts) do
    st = core.utf8_feed(st, s:sub(prev + 1, c))
    prev = c
  end
  return core.utf8_feed(st, s:sub(prev + 1))
end

-- Whole, every split point, and one byte at a time.
local function every_cut(s)
  local ways, bytewise = { {} }, {}
  for i = 1, #s - 1 do
    ways[#ways + 1] = { i }
    bytewise[i] = i
  end
  ways[#ways + 1] = bytewise
  return ways
end

local valid = {
  { "the empty string", "" },
  { "ASCII", "Hello, world" },
  { "every ASCII byte", (function() local t = {} for i = 0, 127 do t[#t + 1] = char(i) end return table.concat(t) end)() },
  { "U+0080, the first 2-byte code point", "\xc2\x80" },
  { "U+07FF, the last 2-byte code point", "\xdf\xbf" },
  { "U+0800, the first 3-byte code point", "\xe0\xa0\x80" },
  { "U+D7FF, just below the surrogates", "\xed\x9f\xbf" },
  { "U+E000, just above the surrogates", "\xee\x80\x80" },
  { "U+FFFD, the replacement character", "\xef\xbf\xbd" },
  { "U+FFFE and U+FFFF, noncharacters that are still UTF-8", "\xef\xbf\xbe\xef\xbf\xbf" },
  { "U+10000, the first 4-byte code point", "\xf0\x90\x80\x80" },
  { "U+10FFFF, the last code point", "\xf4\x8f\xbf\xbf" },
  { "U+FDD0..U+FDEF noncharacters", "\u{FDD0}\u{FDEF}" },
  { "κόσμε (Autobahn 6.2)", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5" },
  { "Hello-µ@ßöäüàá-UTF-8!! (Autobahn 6.2)", "Hello-\u{b5}@\u{df}\u{f6}\u{e4}\u{fc}\u{e0}\u{e1}-UTF-8!!" },
  { "an emoji", "\u{1F600}" },
  { "a mixed string", "a\u{e9}b\u{20AC}c\u{10348}d\u{7FF}\u{800}\u{FFFF}\u{10000}" },
  { "U+0000 (NUL is a valid code point)", "\0" },
}
-- Multi-byte code points at every offset in long ASCII runs, so they start,
-- end and straddle the 8-byte words of the fast path.
for off = 0, 17 do
  for _, cp in ipairs { "\u{e9}", "\u{20AC}", "\u{1F600}" } do
    valid[#valid + 1] = { ("%d-byte code point after %d ASCII bytes"):format(#cp, off),
                          rep("x", off) .. cp .. rep("y", 24) .. cp }
  end
end
valid[#valid + 1] = { "a long mixed text", rep("ascii run of some length " .. "\u{3B1}\u{3B2}\u{3B3}" .. "0123456789abcdef\u{1F600}", 50) }

-- at: the 1-based position of the byte that makes the input invalid (the
-- validator must reject right there); nil for input that is only truncated.
local invalid = {
  { "overlong NUL in 2 bytes (C0 80)", "\xc0\x80", 1 },
  { "overlong U+007F in 2 bytes (C1 BF)", "\xc1\xbf", 1 },
  { "overlong NUL in 3 bytes (E0 80 80)", "\xe0\x80\x80", 2 },
  { "overlong U+07FF in 3 bytes (E0 9F BF)", "\xe0\x9f\xbf", 2 },
  { "overlong NUL in 4 bytes (F0 80 80 80)", "\xf0\x80\x80\x80", 2 },
  { "overlong U+FFFF in 4 bytes (F0 8F BF BF)", "\xf0\x8f\xbf\xbf", 2 },
  { "overlong slash in 2 bytes", "\xc0\xaf", 1 },
  { "overlong slash in 3 bytes", "\xe0\x80\xaf", 2 },
  { "overlong slash in 4 bytes", "\xf0\x80\x80\xaf", 2 },
  { "overlong slash in 5 bytes", "\xf8\x80\x80\x80\xaf", 1 },
  { "overlong slash in 6 bytes", "\xfc\x80\x80\x80\x80\xaf", 1 },
  { "the surrogate U+D800 (ED A0 80)", "\xed\xa0\x80", 2 },
  { "the surrogate U+DB7F (ED AD BF)", "\xed\xad\xbf", 2 },
  { "the surrogate U+DC00 (ED B0 80)", "\xed\xb0\x80", 2 },
  { "the surrogate U+DFFF (ED BF BF)", "\xed\xbf\xbf", 2 },
  { "a surrogate pair (ED A0 80 ED B0 80)", "\xed\xa0\x80\xed\xb0\x80", 2 },
  { "U+110000 (F4 90 80 80)", "\xf4\x90\x80\x80", 2 },
  { "U+1FFFFF (F7 BF BF BF)", "\xf7\xbf\xbf\xbf", 1 },
  { "the first 5-byte sequence", "\xf8\x88\x80\x80\x80", 1 },
  { "the first 6-byte sequence", "\xfc\x84\x80\x80\x80\x80", 1 },
  { "FE and FF", "\xfe\xfe\xff\xff", 1 },
  { "a lone continuation byte 80", "\x80", 1 },
  { "a lone continuation byte BF", "\xbf", 1 },
  { "a continuation after ASCII", "abc\x80", 4 },
  { "two continuation bytes", "\x80\xbf", 1 },
  { "a 2-byte lead before ASCII", "\xc2\x41", 2 },
  { "a 3-byte lead and one continuation before ASCII", "\xe1\x80\x41", 3 },
  { "a 4-byte lead and two continuations before ASCII", "\xf1\x80\x80\x41", 4 },
  { "a lead byte before another lead byte", "\xc2\xc2\x80", 2 },
  { "a lonely start character then space", "\xc0 \xc1 \xe0 ", 1 },
  { "κόσμε then U+110000 then text (Autobahn 6.4.1)",
    "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64\x69\x74\x65\x64", 13 },
  { "κόσμε then a surrogate then text (Autobahn 6.4.3)",
    "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64", 13 },
  { "a bad byte after 1000 ASCII bytes", rep("a", 1000) .. "\xff" .. rep("b", 10), 1001 },
  { "a bad byte after 1003 ASCII bytes", rep("a", 1003) .. "\x80" .. rep("b", 10), 1004 },
  { "a 2-byte sequence cut at the end", "\xc2", nil },
  { "a 3-byte sequence cut at the end", "\xe0\xa0", nil },
  { "a 4-byte sequence cut at the end", "\xf0\x90\x80", nil },
  { "text ending inside a code point", "κόσμ\xce", nil },
  { "ASCII ending in a lead byte", rep("a", 17) .. "\xf4", nil },
}
for b = 0xF5, 0xFF do
  invalid[#invalid + 1] = { ("the byte %02X"):format(b), "ok" .. char(b), 3 }
end

describe("luaws.core UTF-8 validator", function()
  for _, case in ipairs(valid) do
    local name, s = case[1], case[2]
    it("accepts " .. name .. " whole, at every split and byte by byte", function()
      assert.is_true(core.utf8_valid(s), hex(s))
      for _, cuts in ipairs(every_cut(s)) do
        assert.are.equal(ACCEPT, feed_cut(s, cuts))
      end
    end)
  end

  for _, case in ipairs(invalid) do
    local name, s, at = case[1], case[2], case[3]
    it("rejects " .. name .. " however it is split", function()
      assert.is_false(core.utf8_valid(s), hex(s))
      for _, cuts in ipairs(every_cut(s)) do
        local st = feed_cut(s, cuts)
        if at then
          assert.are.equal(REJECT, st)
        else
          assert.are_not.equal(ACCEPT, st)
          assert.are_not.equal(REJECT, st)   -- truncated: still waiting, not broken
        end
      end
    end)
    if at then
      it("rejects " .. name .. " at the first bad byte (fail fast)", function()
        local before = core.utf8_feed(ACCEPT, s:sub(1, at - 1))
        assert.are_not.equal(REJECT, before)
        assert.are.equal(REJECT, core.utf8_feed(before, s:sub(at, at)))
        -- and from the start in one call, with or without the rest
        assert.are.equal(REJECT, core.utf8_feed(ACCEPT, s:sub(1, at)))
        for i = 1, at - 1 do
          assert.are_not.equal(REJECT, core.utf8_feed(ACCEPT, s:sub(1, i)))
        end
      end)
    end
  end

  it("keeps REJECT sticky and treats unknown states as broken", function()
    assert.are.equal(REJECT, core.utf8_feed(REJECT, "plain ascii"))
    assert.are.equal(REJECT, core.utf8_feed(REJECT, ""))
    assert.are.equal(REJECT, core.utf8_feed(99, "a"))
  end)

  it("leaves the state alone on empty input", function()
    local st = core.utf8_feed(ACCEPT, "\xe2\x82")
    assert.are.equal(st, core.utf8_feed(st, ""))
    assert.are.equal(ACCEPT, core.utf8_feed(st, "\xac"))
  end)

  -- Lua 5.4's utf8.len (strict mode) rejects overlongs, surrogates and code
  -- points past U+10FFFF: an independent reference for exhaustive checks.
  local function reference(s) return utf8.len(s) ~= nil end

  it("agrees with utf8.len on every 1- and 2-byte string", function()
    for a = 0, 255 do
      local s1 = char(a)
      assert.are.equal(reference(s1), core.utf8_valid(s1), hex(s1))
      for b = 0, 255 do
        local s = char(a, b)
        if reference(s) ~= core.utf8_valid(s) then
          error("disagrees on " .. hex(s))
        end
      end
    end
  end)

  it("agrees with utf8.len on 3- and 4-byte strings over the interesting bytes", function()
    local tails = { 0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xe0, 0xf0, 0xff }
    for a = 0xc0, 0xff do
      for b = 0x00, 0xff do
        for _, c in ipairs(tails) do
          local s3 = char(a, b, c)
          if reference(s3) ~= core.utf8_valid(s3) then error("disagrees on " .. hex(s3)) end
          for _, d in ipairs(tails) do
            local s4 = s3 .. char(d)
            if reference(s4) ~= core.utf8_valid(s4) then error("disagrees on " .. hex(s4)) end
          end
        end
      end
    end
  end)

  it("agrees with utf8.len on every code point, encoded, after 0-7 ASCII bytes", function()
    for cp = 0, 0x10FFFF, 7 do
      local s = rep("a", cp % 8) .. utf8.char(cp) .. "z"
      if core.utf8_valid(s) ~= reference(s) then error(("disagrees on U+%04X"):format(cp)) end
    end
  end)

  it("raises on misuse", function()
    assert.has_error(function() core.utf8_valid(nil) end)
    assert.has_error(function() core.utf8_feed(-1, "") end)
    assert.has_error(function() core.utf8_feed("x", "") end)
  end)
end)
