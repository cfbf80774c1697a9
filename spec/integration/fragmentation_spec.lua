-- Fragmented messages (RFC 6455 §5.4) sent by a client frame by frame with
-- core.send_raw: the server reassembles them and hands its message handler one
-- message; control frames may come between fragments; a continuation with
-- no message started is a protocol error (1002).
local h = require "helper"
local luaws, core = h.luaws, h.core
local conn = require "luaws.conn"

local MASK = "\x37\xfa\x21\x3d"
local OP_CONT, OP_TEXT, OP_BINARY, OP_PING = 0, 1, 2, 9

-- Split s into n pieces of nearly equal length (the last takes the rest).
local function split(s, n)
  local size = #s // n
  local parts = {}
  for i = 1, n - 1 do parts[i] = s:sub((i - 1) * size + 1, i * size) end
  parts[n] = s:sub((n - 1) * size + 1)
  return parts
end

-- Masked frames for a message in pieces: the first with opcode, the rest
-- continuations, FIN on the last.
local function fragments(opcode, pieces)
  local frames = {}
  for i, piece in ipairs(pieces) do
    frames[i] = core.frame_encode(i == 1 and opcode or OP_CONT, piece, i == #pieces, MASK)
  end
  return frames
end

describe("fragmented messages", function()
  local server, url, got, closed
  before_each(function()
    got, closed = {}, nil
    server = h.server()
    server:route("/ws", {
      message = function(ws, msg, kind)
        got[#got + 1] = { msg, kind }
        ws:send(msg, kind)
      end,
      close = function(_, code, reason) closed = { code, reason } end,
    })
    url = server:url("/ws")
  end)
  after_each(h.cleanup)

  for _, case in ipairs {
    { "text", OP_TEXT, 2, "Hello, fragmented world" },
    { "text", OP_TEXT, 50, ("héllo wörld ✓ "):rep(20) },
    { "binary", OP_BINARY, 2, "\0\1\2\3\255\254\253" },
    { "binary", OP_BINARY, 50, ("\0\255\128\1"):rep(100) },
  } do
    local kind, opcode, n, msg = case[1], case[2], case[3], case[4]
    it(("hands the message handler one %s message sent in %d fragments"):format(kind, n), function()
      local ws = assert(luaws.connect(url))
      for _, frame in ipairs(fragments(opcode, split(msg, n))) do
        assert(core.send_raw(ws, frame))
        core.step(0)   -- let some fragments arrive in reads of their own
      end
      assert.same({ msg, kind }, { ws:receive(5) })
      assert.same({ { msg, kind } }, got)
      ws:close()
    end)
  end

  it("accepts a text message whose fragments split UTF-8 characters", function()
    local ws = assert(luaws.connect(url))
    local msg = "€€€"   -- 3 bytes each: cut inside every character
    local pieces = {}
    for i = 1, #msg do pieces[i] = msg:sub(i, i) end
    for _, frame in ipairs(fragments(OP_TEXT, pieces)) do assert(core.send_raw(ws, frame)) end
    assert.same({ msg, "text" }, { ws:receive(5) })
    ws:close()
  end)

  it("accepts empty fragments, first, middle and last", function()
    local ws = assert(luaws.connect(url))
    for _, frame in ipairs(fragments(OP_TEXT, { "", "ab", "", "cd", "" })) do assert(core.send_raw(ws, frame)) end
    assert.same({ "abcd", "text" }, { ws:receive(5) })
    assert.same({ { "abcd", "text" } }, got)
    ws:close()
  end)

  it("answers a ping between fragments with its pong before the message's echo", function()
    local ws = assert(luaws.connect(url))
    local events = {}
    core.conn_handlers(ws, {
      message = function(_, msg) events[#events + 1] = "message:" .. msg end,
      pong = function(_, payload) events[#events + 1] = "pong:" .. payload end,
      close = conn.queue_handlers.close,
    })
    local frames = fragments(OP_TEXT, { "frag", "ment", "ed" })
    assert(core.send_raw(ws, frames[1]))
    assert(core.send_raw(ws, core.frame_encode(OP_PING, "p1", true, MASK)))
    assert(core.send_raw(ws, frames[2]))
    assert(core.send_raw(ws, core.frame_encode(OP_PING, "p2", true, MASK)))
    assert(core.send_raw(ws, frames[3]))
    h.pump(function() return #events >= 3 end, "two pongs and the echo")
    assert.same({ "pong:p1", "pong:p2", "message:fragmented" }, events)
    assert.same({ { "fragmented", "text" } }, got)
    ws:close()
  end)

  it("reassembles a 3 MiB binary message sent in 48 fragments", function()
    local ws = assert(luaws.connect(url))
    local chunk = {}
    for i = 0, 255 do chunk[#chunk + 1] = string.char(i) end
    local msg = table.concat(chunk):rep(3 * 1024 * 1024 // 256)
    assert.equal(3 * 1024 * 1024, #msg)
    for _, frame in ipairs(fragments(OP_BINARY, split(msg, 48))) do assert(core.send_raw(ws, frame)) end
    local echo, kind = ws:receive(20)
    assert.equal("binary", kind)
    assert.equal(#msg, #echo)
    assert.is_true(echo == msg)
    assert.equal(1, #got)
    assert.is_true(got[1][1] == msg)
    ws:close()
  end)

  it("keeps two fragmented messages in a row apart", function()
    local ws = assert(luaws.connect(url))
    for _, frame in ipairs(fragments(OP_TEXT, { "one", "-", "1" })) do assert(core.send_raw(ws, frame)) end
    for _, frame in ipairs(fragments(OP_BINARY, { "two", "-", "2" })) do assert(core.send_raw(ws, frame)) end
    assert.same({ "one-1", "text" }, { ws:receive(5) })
    assert.same({ "two-2", "binary" }, { ws:receive(5) })
    assert.same({ { "one-1", "text" }, { "two-2", "binary" } }, got)
    ws:close()
  end)

  it("closes with 1002 on a continuation frame with no message started", function()
    local ws = assert(luaws.connect(url))
    assert(core.send_raw(ws, core.frame_encode(OP_CONT, "orphan", true, MASK)))
    h.fails("closed", ws:receive(5))
    assert.equal(1002, (ws:close_status()))
    h.pump(function() return closed ~= nil end, "the server's close handler")
    assert.equal(1002, closed[1])
    assert.same({}, got)
  end)

  it("closes with 1002 on a new data frame inside a fragmented message", function()
    local ws = assert(luaws.connect(url))
    assert(core.send_raw(ws, core.frame_encode(OP_TEXT, "start", false, MASK)))
    assert(core.send_raw(ws, core.frame_encode(OP_TEXT, "again", true, MASK)))
    h.fails("closed", ws:receive(5))
    assert.equal(1002, (ws:close_status()))
    h.pump(function() return closed ~= nil end, "the server's close handler")
    assert.equal(1002, closed[1])
    assert.same({}, got)
  end)

  it("closes with 1002 on a fragmented ping", function()
    local ws = assert(luaws.connect(url))
    assert(core.send_raw(ws, core.frame_encode(OP_PING, "pi", false, MASK)))
    h.fails("closed", ws:receive(5))
    assert.equal(1002, (ws:close_status()))
    h.pump(function() return closed ~= nil end, "the server's close handler")
    assert.equal(1002, closed[1])
  end)
end)
