-- SPDX-License-Identifier: MIT
-- examples/lib/json.lua, the chat example's JSON: the grammar of RFC 8259,
-- escapes and surrogate pairs, numbers, objects, the errors, and a
-- cross-check against Python's json module.
local common = require "examples.common"
local proc = require "support.proc"
local json = common.json()

describe("examples/lib/json.lua encode", function()
  it("writes objects with sorted keys and arrays in order", function()
    assert.equal('{"at":"t","from":"ada","text":"hi"}', json.encode { from = "ada", text = "hi", at = "t" })
    assert.equal('[1,"two",true,false,null,[null],{}]', json.encode { 1, "two", true, false, json.null, { json.null }, {} })
    assert.equal('{"a":{"b":[1,2,[3]]}}', json.encode { a = { b = { 1, 2, { 3 } } } })
    assert.equal("{}", json.encode {})
  end)

  it("escapes quote, backslash and control characters, and keeps UTF-8 as it is", function()
    assert.equal([["a\"b\\c/d"]], json.encode 'a"b\\c/d')
    assert.equal([["\b\f\n\r\t\u0000\u0001\u001f"]], json.encode "\b\f\n\r\t\0\1\31")
    assert.equal('"κόσμε 😀 \127"', json.encode "κόσμε 😀 \127")
  end)

  it("writes integers exactly and floats so that they read back the same", function()
    assert.equal("0", json.encode(0))
    assert.equal("-42", json.encode(-42))
    assert.equal("9223372036854775807", json.encode(math.maxinteger))
    assert.equal("2.5", json.encode(2.5))
    for _, x in ipairs { 0.1, 1 / 3, -1e-300, 1e300, 123456.789, 2 ^ 53 + 0.0 } do
      assert.equal(x, json.decode(json.encode(x)))
    end
  end)

  it("raises on what JSON cannot say", function()
    for what, v in pairs {
      NaN = 0 / 0, infinity = math.huge, ["a function"] = print, ["a non-string key"] = { [true] = 1 },
      ["a mixed table"] = { 1, 2, x = 3 }, ["a sparse array"] = { 1, nil, 3 },
      ["invalid UTF-8"] = "\xff", ["a lone surrogate in UTF-8"] = "\xed\xa0\x80",
    } do
      assert.has_error(function() json.encode(v) end, nil, what)
    end
    local cycle = {}
    cycle.self = cycle
    assert.has_error(function() json.encode(cycle) end, "json: cycle in table")
    local deep = {}
    for _ = 1, 70 do deep = { deep } end
    assert.has_error(function() json.encode(deep) end, "json: nested more than 64 levels")
  end)

  it("writes a shared (not cyclic) table twice", function()
    local t = { 1 }
    assert.equal('{"a":[1],"b":[1]}', json.encode { a = t, b = t })
  end)
end)

describe("examples/lib/json.lua decode", function()
  it("reads the chat wire format", function()
    assert.same({ name = "ada", text = "hello" }, json.decode '{"name": "ada", "text": "hello"}')
    assert.same({ from = "server", text = "tick 1", at = "2024-05-01T12:00:00Z" },
      json.decode ' {"from":"server","text":"tick 1","at":"2024-05-01T12:00:00Z"}\r\n\t')
  end)

  it("reads every escape, \\u in either case, and surrogate pairs as UTF-8", function()
    assert.equal('"\\/\b\f\n\r\t', json.decode [["\"\\\/\b\f\n\r\t"]])
    assert.equal("é€", json.decode [["\u00e9\u20AC"]])
    assert.equal("\0", json.decode [["\u0000"]])
    assert.equal("😀", json.decode [["\ud83d\ude00"]])
    assert.equal("𝄞x", json.decode [["\uD834\uDD1Ex"]])
    assert.equal("\u{10FFFF}", json.decode [["\udbff\udfff"]])
    assert.equal("κόσμε", json.decode '"κόσμε"')
  end)

  it("refuses lone surrogates, bad escapes and raw control characters", function()
    for _, s in ipairs {
      [["\ud800"]], [["\ud800x"]], [["\ud800\u0041"]], [["\udc00"]], [["\ude00\ud83d"]],
      [["\u12"]], [["\u12g4"]], [["\x41"]], [["\'"]], '"a\nb"', '"a\0b"', '"\31"', '"abc', '"\\',
    } do
      local v, err = json.decode(s)
      assert.is_nil(v, s)
      assert.matches("^json: .* at byte %d+$", err)
    end
  end)

  it("reads numbers as the grammar says: integers stay integers", function()
    local cases = {
      ["0"] = 0, ["-0"] = 0, ["7"] = 7, ["-12"] = -12, ["1.5"] = 1.5, ["-0.25"] = -0.25,
      ["1e3"] = 1000.0, ["1E+2"] = 100.0, ["2.5e-1"] = 0.25, ["9007199254740993"] = 9007199254740993,
    }
    for text, want in pairs(cases) do
      local got = json.decode(text)
      assert.equal(want, got, text)
      assert.equal(math.type(want), math.type(got), text)
    end
    for _, bad in ipairs { "01", "-01", "00", "1.", ".5", "-", "+1", "1e", "1e+", "0x10", "1.5.2", "Infinity", "NaN", "--1" } do
      assert.is_nil((json.decode(bad)), bad)
    end
  end)

  it("reads literals, arrays and objects; null is json.null; the last duplicate key wins", function()
    assert.same({ true, false, json.null }, json.decode "[true,false,null]")
    assert.equal(json.null, json.decode " null ")
    assert.same({}, json.decode "[ ]")
    assert.same({}, json.decode "{ }")
    assert.same({ a = { 1, { b = "c" } } }, json.decode '{"a":[1,{"b":"c"}]}')
    assert.same({ k = 2 }, json.decode '{"k":1,"k":2}')
    assert.equal("null", tostring(json.null))
  end)

  it("refuses what is not exactly JSON", function()
    for _, bad in ipairs {
      "", " ", "[1,]", "[,1]", "[1 2]", '{"a":1,}', '{"a" 1}', "{a:1}", "{1:1}", "[1", '{"a":1',
      "tru", "nul", "True", "{}x", "[] []", "// c\n1", "'a'", "\xef\xbb\xbf1",
    } do
      local v, err = json.decode(bad)
      assert.is_nil(v, bad)
      assert.is_string(err)
    end
  end)

  it("accepts 64 levels of nesting and refuses 65 without running out of stack", function()
    assert.is_table(json.decode(("["):rep(64) .. ("]"):rep(64)))
    local v, err = json.decode(("["):rep(65) .. ("]"):rep(65))
    assert.is_nil(v)
    assert.matches("nested more than 64 levels", err)
    assert.is_nil((json.decode(("[{\"a\":"):rep(100000))))
  end)

  it("raises on a non-string argument (misuse), never on bad input", function()
    assert.has_error(function() json.decode(nil) end)
    assert.has_error(function() json.decode({}) end)
  end)
end)

describe("examples/lib/json.lua against Python's json module", function()
  local have_python = proc.have_python("json")

  -- Random strings over ASCII, controls, 2-, 3- and 4-byte characters.
  local function random_string(rng)
    local pool = { 0x00, 0x01, 0x1F, 0x22, 0x5C, 0x2F, 0x41, 0x7F, 0xE9, 0x3BA, 0x2028, 0xFFFD, 0xFFFF, 0x1F600, 0x10FFFF, 0xD7FF, 0xE000 }
    local t = {}
    for i = 1, rng(0, 12) do
      t[i] = utf8.char(rng(1, 3) == 1 and rng(0x20, 0x7E) or pool[rng(1, #pool)])
    end
    return table.concat(t)
  end

  ;(have_python and it or pending)("agrees both ways on 300 random strings and numbers", function()
    math.randomseed(20240501)
    local rng = math.random
    local values = {}
    for i = 1, 300 do
      values[i] = { s = random_string(rng), n = rng(1, 2) == 1 and rng(-1e9, 1e9) or (rng() - 0.5) * 10 ^ rng(-20, 20) }
    end
    local input = os.tmpname()
    local f = assert(io.open(input, "wb"))
    for _, v in ipairs(values) do f:write(json.encode(v), "\n") end
    f:close()
    -- Python reads our lines and writes them back ASCII-only (\uXXXX, surrogate pairs).
    local script = "import json,sys\nfor line in open(sys.argv[1], encoding='utf-8'):\n"
      .. "    print(json.dumps(json.loads(line), ensure_ascii=True, sort_keys=True))\n"
    local out, code = proc.run({ proc.PYTHON, "-c", script, input }, { timeout = 60 })
    os.remove(input)
    assert.equal(0, code, out)
    local i = 0
    for line in out:gmatch("[^\n]+") do
      i = i + 1
      local back = assert(json.decode(line))
      assert.equal(values[i].s, back.s)
      assert.equal(values[i].n, back.n)
      assert.equal(json.encode(values[i]), json.encode(back))
    end
    assert.equal(300, i)
  end)
end)
