-- SPDX-License-Identifier: MIT
-- ws:send checks that text is UTF-8 (RFC 6455 §8.1) before anything goes
-- out: text that is not returns nil, message, "utf8" and sends nothing, so
-- the peer never fails the connection with 1007 over it. The check follows
-- a fragmented message across its pieces. check_send_utf8 = false (listen
-- and connect) trusts the caller: the text goes out unchecked, as before,
-- and a peer that checks closes with 1007. Over loopback, against our own
-- client and server, python3-websockets and node's ws.
local h = require "helper"
local proc = require "support.proc"
local json = require "support.json"
local luaws, core = h.luaws, h.core

local has_python = proc.have_python("websockets")
local node_ok = proc.have_node_ws()

-- Run a peer script (spec/peers/stream_peer.*) to its end; its JSON line.
local function peer(argv)
  local out, status, why = proc.run(argv, { timeout = 60, unset = { "LD_PRELOAD" } })
  assert(status == 0, ("%s: %s\n%s"):format(table.concat(argv, " "), why or ("exit " .. tostring(status)), out))
  local objs = json.decode_lines(out)
  return assert(objs[#objs], "no JSON line in: " .. out)
end

-- Strings that are not UTF-8, and why (RFC 3629 §4).
local INVALID = {
  { "a byte that never occurs (FF)", "ab\xffcd" },
  { "a stray continuation byte", "\x80" },
  { "an overlong encoding of '/'", "\xc0\xaf" },
  { "an overlong three-byte form", "\xe0\x80\xaf" },
  { "a UTF-16 surrogate (U+D800)", "a\xed\xa0\x80" },
  { "a code point above U+10FFFF", "\xf4\x90\x80\x80" },
  { "a message that ends inside a character", "caf\xc3" },
  { "an invalid byte after 20 KiB of ASCII", ("x"):rep(20480) .. "\xfe" },
}

describe("ws:send and UTF-8", function()
  local server, got, closes
  before_each(function()
    got, closes = {}, {}
    server = h.server()
    server:route("/ws", {
      message = function(ws, msg, kind)
        got[#got + 1] = { msg, kind }
        if msg == "send bad" then
          ws.data.result = table.pack(ws:send("\xff\xfe"))
          assert(ws:send("after"))
        end
      end,
      close = function(_, code, reason, token) closes[#closes + 1] = { code, reason, token } end,
    })
  end)
  after_each(function()
    h.cleanup()
    proc.cleanup()
  end)

  for _, case in ipairs(INVALID) do
    it("refuses " .. case[1] .. " with nil, message, \"utf8\" and sends nothing", function()
      local ws = assert(luaws.connect(server:url("/ws")))
      local msg = h.fails("utf8", ws:send(case[2]))
      assert.matches("^send: ", msg)
      assert.matches("UTF-8", msg, 1, true)
      assert(ws:send("next"))   -- the connection is fine, and nothing went before this
      h.pump(function() return #got == 1 end, "the next message")
      assert.same({ { "next", "text" } }, got)
      assert.equal("open", ws.state)
      ws:close()
      h.pump(function() return #closes == 1 end, "the close")
      assert.equal(1000, closes[1][1])
    end)
  end

  it("says when a message ends inside a character", function()
    local ws = assert(luaws.connect(server:url("/ws")))
    h.fails_with("utf8", "ends inside a character", ws:send("caf\xc3"))
    h.fails_with("utf8", "not valid UTF-8", ws:send("\xff"))
    ws:close()
  end)

  it("sends the same bytes as binary, unchecked", function()
    local ws = assert(luaws.connect(server:url("/ws")))
    assert(ws:send("\xff\xfe", "binary"))
    h.pump(function() return #got == 1 end, "the binary message")
    assert.same({ { "\xff\xfe", "binary" } }, got)
    ws:close()
  end)

  it("sends valid text of every length of sequence", function()
    local ws = assert(luaws.connect(server:url("/ws")))
    local text = "a é € 😀 " .. ("κόσμε"):rep(3000)
    assert(ws:send(text))
    assert(ws:send(""))
    h.pump(function() return #got == 2 end, "two messages")
    assert.same({ { text, "text" }, { "", "text" } }, got)
    ws:close()
  end)

  it("refuses it on the server side too, where a handler sends", function()
    local ws = assert(luaws.connect(server:url("/ws")))
    assert(ws:send("send bad"))
    assert.same({ "after", "text" }, { ws:receive(5) })   -- nothing came before it
    local sc = server:connections()[1]
    local r = sc.data.result
    assert.equal(3, r.n)
    h.fails("utf8", table.unpack(r, 1, r.n))
    ws:close()
  end)

  -- A text message sent back from its own handler is not checked twice
  -- (csrc/lua/conn.c, checked_text): only that very string is trusted, so
  -- another string of the same length, even one made where the message was
  -- once the message is gone, is checked as ever.
  it("echoes a long text from its handler unchecked, and still checks every other string", function()
    local s2 = h.server()
    local results = {}
    s2:route("/ws", { message = function(ws, msg)
      local n = #msg
      results[#results + 1] = table.pack(ws:send(msg))                        -- the echo
      results[#results + 1] = table.pack(ws:send(("\xff"):rep(n)))            -- same length, not UTF-8
      msg = nil   -- luacheck: ignore (the message gone, its memory free for another string)
      collectgarbage()
      collectgarbage()
      results[#results + 1] = table.pack(ws:send(("\xfe"):rep(n - 1) .. "a"))
      results[#results + 1] = table.pack(ws:send(("é"):rep(n // 2)))
    end })
    local ws = assert(luaws.connect(s2:url("/ws")))
    local text = ("κόσμε "):rep(200)   -- 2,400 bytes: past the size where the echo is trusted
    assert(ws:send(text))
    assert.same({ text, "text" }, { ws:receive(5) })
    local rest = ws:receive(5)
    assert.equal(("é"):rep(#text // 2), rest)
    assert.is_true(results[1][1])
    h.fails("utf8", table.unpack(results[2], 1, results[2].n))
    h.fails("utf8", table.unpack(results[3], 1, results[3].n))
    assert.is_true(results[4][1])
    ws:close()
  end)

  it("checks a fragmented message across its pieces: a character may be split, not broken", function()
    local ws = assert(luaws.connect(server:url("/ws")))
    assert(ws:send("price: \xe2", "text", { fin = false }))    -- € is E2 82 AC
    assert(ws:send("\x82", "text", { fin = false }))
    h.fails("utf8", ws:send("\x28", "text", { fin = false }))  -- E2 82 28 is not UTF-8: refused, not sent
    h.fails_with("utf8", "inside a character", ws:send(""))    -- ending now would cut the €
    assert(ws:send("\xac!"))                                   -- the rest of it, and the end
    h.pump(function() return #got == 1 end, "the message")
    assert.same({ { "price: €!", "text" } }, got)
    assert.equal("open", ws.state)
    ws:close()
  end)

  it("reaches the close handler as the token \"utf8\" when the peer's text is not UTF-8", function()
    local ws = assert(luaws.connect(server:url("/ws"), { check_send_utf8 = false }))
    assert(ws:send("\xed\xa0\x80"))   -- sent as it is: the server fails the connection
    h.fails("closed", ws:receive(5))
    assert.equal(1007, (ws:close_status()))
    h.pump(function() return #closes == 1 end, "the close handler")
    assert.same({ 1007, "invalid utf8", "utf8" }, closes[1])
  end)

  it("raises on a check_send_utf8 that is not a boolean", function()
    assert.has_error(function() luaws.listen { port = 0, check_send_utf8 = "no" } end,
      "listen: option 'check_send_utf8' must be a boolean, got string")
    assert.has_error(function() luaws.connect(server:url("/ws"), { check_send_utf8 = 0 }) end,
      "connect: option 'check_send_utf8' must be a boolean, got number")
    assert.is_true(luaws.defaults.check_send_utf8)
  end)
end)

describe("check_send_utf8 = false", function()
  local server, closes
  before_each(function()
    closes = {}
    server = h.server { check_send_utf8 = false }
    server:route("/ws", {
      message = function(ws) assert(ws:send("ok \xff")) end,   -- true: trusted, sent as it is
      close = function(_, code, reason, token) closes[#closes + 1] = { code, reason, token } end,
    })
  end)
  after_each(function()
    h.cleanup()
    proc.cleanup()
  end)

  it("sends invalid text as before, and our client fails the connection with 1007", function()
    local ws = assert(luaws.connect(server:url("/ws")))
    assert(ws:send("go"))
    h.fails("closed", ws:receive(5))
    assert.equal(1007, (ws:close_status()))
    h.pump(function() return #closes == 1 end, "the server's close handler")
    assert.equal(1007, closes[1][1])
    assert.equal(0, #h.errors)   -- the handler's send returned true: no assert raised
  end)

  it("leaves the check on for a client that does not turn it off", function()
    local ws = assert(luaws.connect(server:url("/ws")))
    h.fails("utf8", ws:send("\xff"))
    ws:close()
  end)

  ;(has_python and it or pending)("sends invalid text that python3-websockets refuses with 1007", function()
    local r = peer { proc.PYTHON, "spec/peers/stream_peer.py", "closed", server:url("/ws") }
    assert.equal(1007, r.sent)   -- the close frame websockets sent
    h.pump(function() return #closes == 1 end, "the server's close handler")
    assert.equal(1007, closes[1][1])
  end)

  ;(node_ok and it or pending)("sends invalid text that node's ws refuses with 1007", function()
    local r = peer { "node", "spec/peers/stream_peer.js", "closed", server:url("/ws") }
    assert.matches("UTF-8", r.error, 1, true)   -- ws refused the frame and sent 1007 (it reports 1006 itself)
    h.pump(function() return #closes == 1 end, "the server's close handler")
    assert.equal(1007, closes[1][1])
  end)
end)
