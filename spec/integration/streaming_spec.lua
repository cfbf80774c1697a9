-- SPDX-License-Identifier: MIT
-- Streaming, both ways (RFC 6455 §5.4), over loopback against our own client
-- and server, python3-websockets and node's ws:
--   - ws:send(chunk, kind, {fin = false}) sends a message in pieces: the
--     first frame has the kind, the rest are continuations, the send
--     without options (or fin = true) ends it; pings and closes still go
--     between pieces; a broadcast waits for the end; text is UTF-8-checked
--     as one stream;
--   - a route's fragment(ws, chunk, kind, fin) handler gets a message frame
--     by frame as it arrives, nothing reassembled: a 64 MiB upload leaves the
--     server's peak RSS a few MiB higher, while max_message_size (1009) and
--     UTF-8 (1007) still hold over the whole message.
local h = require "helper"
local proc = require "support.proc"
local json = require "support.json"
local luaws, core = h.luaws, h.core

local MASK = "\x37\xfa\x21\x3d"
local OP_CONT, OP_TEXT, OP_BINARY, OP_PING = 0, 1, 2, 9
local KiB, MiB = 1024, 1024 * 1024

local has_python = proc.have_python("websockets")
local node_ok = proc.have_node_ws()

-- Run a peer script (spec/peers/stream_peer.*) to its end; its JSON line.
local function peer(argv)
  local out, status, why = proc.run(argv, { timeout = 60, unset = { "LD_PRELOAD" } })
  assert(status == 0, ("%s: %s\n%s"):format(table.concat(argv, " "), why or ("exit " .. tostring(status)), out))
  local objs = json.decode_lines(out)
  return assert(objs[#objs], "no JSON line in: " .. out)
end

-- The message the server streams on "go": three pieces that cut the € (E2 82
-- AC) between them, and a ping between the first two.
local PIECES = { "Hello, \xe2", "\x82", "\xac world" }
local WHOLE = "Hello, € world"

local function stream_three(ws, kind)
  assert(ws:send(PIECES[1], kind, { fin = false }))
  assert(ws:ping("between"))
  assert(ws:send(PIECES[2], kind, { fin = false }))
  assert(ws:send(PIECES[3], kind))   -- no options: the last piece
end

describe("ws:send in pieces", function()
  local server, pongs, frames, closes
  before_each(function()
    pongs, frames, closes = {}, {}, {}
    server = h.server()
    server:route("/three", {
      message = function(ws, msg)
        stream_three(ws, msg == "go binary" and "binary" or "text")
      end,
      pong = function(_, payload) pongs[#pongs + 1] = payload end,
    })
    server:route("/frames", {   -- reports each frame it gets, and the whole message at its end
      fragment = function(ws, chunk, kind, fin)
        frames[#frames + 1] = { chunk, kind, fin }
        ws.data.parts = ws.data.parts or {}
        table.insert(ws.data.parts, chunk)
        if fin then
          assert(ws:send(table.concat(ws.data.parts), kind))
          ws.data.parts = nil
        end
      end,
      ping = function(_, payload) frames[#frames + 1] = { "ping", payload } end,
      close = function(_, code, reason, token) closes[#closes + 1] = { code, reason, token } end,
    })
  end)
  after_each(function()
    h.cleanup()
    proc.cleanup()
  end)

  it("sends a text message in 3 fragments that our client receives whole, the ping between answered", function()
    local ws = assert(luaws.connect(server:url("/three")))
    assert(ws:send("go"))
    assert.same({ WHOLE, "text" }, { ws:receive(5) })
    h.pump(function() return #pongs == 1 end, "the pong to the ping between fragments")
    assert.same({ "between" }, pongs)
    assert(ws:send("go binary"))
    assert.same({ WHOLE, "binary" }, { ws:receive(5) })
    ws:close()
  end)

  ;(has_python and it or pending)("puts on the wire: TEXT (no FIN), PING, CONT (no FIN), CONT (FIN)", function()
    local r = peer { proc.PYTHON, "spec/peers/stream_peer.py", "frames", server:url("/three") }
    for _, f in ipairs(r.frames) do f.data = f.data:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end) end
    assert.same({
      { op = OP_TEXT, fin = false, data = PIECES[1] },
      { op = OP_PING, fin = true, data = "between" },
      { op = OP_CONT, fin = false, data = PIECES[2] },
      { op = OP_CONT, fin = true, data = PIECES[3] },
    }, r.frames)
    h.pump(function() return #pongs == 1 end, "the raw peer's pong")
  end)

  ;(has_python and it or pending)("sends 3 fragments that python3-websockets receives as one message", function()
    local r = peer { proc.PYTHON, "spec/peers/stream_peer.py", "whole", server:url("/three") }
    assert.same({ kind = "text", data = WHOLE }, r)
    h.pump(function() return #pongs == 1 end, "python's pong to the ping between fragments")
  end)

  ;(node_ok and it or pending)("sends 3 fragments that node's ws receives as one message", function()
    local r = peer { "node", "spec/peers/stream_peer.js", "whole", server:url("/three") }
    assert.same({ kind = "text", data = WHOLE }, r)
    h.pump(function() return #pongs == 1 end, "node's pong to the ping between fragments")
  end)

  it("sends masked fragments from our client that a fragment route gets frame by frame", function()
    local ws = assert(luaws.connect(server:url("/frames")))
    assert(ws:send("alpha", "binary", { fin = false }))
    assert(ws:ping("p"))
    assert(ws:send("", "binary", { fin = false }))          -- an empty fragment: legal, not reported
    assert(ws:send("beta", "binary", { fin = false }))
    assert(ws:send("gamma", "binary", { fin = true }))
    assert.same({ "alphabetagamma", "binary" }, { ws:receive(5) })
    assert.same({ { "alpha", "binary", false }, { "ping", "p" }, { "beta", "binary", false },
                  { "gamma", "binary", true } }, frames)
    ws:close()
  end)

  ;(has_python and it or pending)("gets python3-websockets' fragmented message frame by frame", function()
    local r = peer { proc.PYTHON, "spec/peers/stream_peer.py", "send", server:url("/frames") }
    assert.same({ reply = "Hello, fragmented world €" }, r)
    -- one call per frame; websockets 10.4 ends an iterable with an empty final frame
    local chunks = {}
    for i, f in ipairs(frames) do
      assert.same({ "text", i == #frames }, { f[2], f[3] })
      if f[1] ~= "" then chunks[#chunks + 1] = f[1] end
    end
    assert.same({ "Hello, ", "fragmented ", "world €" }, chunks)
  end)

  ;(node_ok and it or pending)("gets node's fragments frame by frame and answers its ping between them", function()
    local r = peer { "node", "spec/peers/stream_peer.js", "send", server:url("/frames") }
    assert.same({ reply = "Hello, fragmented world €", pong = "between" }, r)
    assert.same({ { "Hello, ", "text", false }, { "ping", "between" }, { "fragmented ", "text", false },
                  { "world €", "text", true } }, frames)
  end)

  ;(has_python and it or pending)("sends our client's fragments, masked, to a python3-websockets server", function()
    local p = proc.spawn({ proc.PYTHON, "spec/support/standin_echo.py", "--port", "0", "--host", "127.0.0.1" },
      { unset = { "LD_PRELOAD" } })
    local port = assert(p:wait_line("listening on http://[^:]+:(%d+)/", 10))
    local ws = assert(luaws.connect(("ws://127.0.0.1:%d/ws"):format(port)))
    for i, piece in ipairs(PIECES) do assert(ws:send(piece, "text", { fin = i == #PIECES })) end
    assert.same({ WHOLE, "text" }, { ws:receive(5) })
    ws:close()
    h.pump(function() return ws.state == "closed" end, "the close")
    assert(p:stop())
  end)

  it("raises for a piece of another kind, and for bad options", function()
    local ws = assert(luaws.connect(server:url("/frames")))
    assert(ws:send("a", "text", { fin = false }))
    assert.has_error(function() ws:send("b", "binary") end,
      "bad argument #2 to 'send' (a fragmented text message is being sent: its pieces must be text)")
    assert.has_error(function() ws:send("b", "binary", { fin = false }) end,
      "bad argument #2 to 'send' (a fragmented text message is being sent: its pieces must be text)")
    assert.has_error(function() ws:send("b", "text", { fin = "no" }) end,
      "bad argument #3 to 'send' (send option 'fin' must be a boolean)")
    assert.has_error(function() ws:send("b", "text", { final = true }) end,
      "bad argument #3 to 'send' (unknown send option 'final')")
    assert.has_error(function() ws:send("b", "text", "fin") end)
    assert(ws:send("b", "text", { fin = true }))
    assert.same({ "ab", "text" }, { ws:receive(5) })
    assert(ws:send("c", "binary"))   -- a new message may be of any kind
    assert.same({ "c", "binary" }, { ws:receive(5) })
    ws:close()
  end)

  it("holds a broadcast or publish back until the fragmented message ends", function()
    local got = {}
    server:route("/hold", {
      open = function(ws) assert(ws:subscribe("news")) end,
      message = function(ws)
        assert(ws:send(("a"):rep(3000), "text", { fin = false }))
        assert.equal(1, server:broadcast("tick"))                 -- small: copied, parked
        assert.equal(1, server:publish("news", ("n"):rep(5000)))  -- large: a shared block, parked
        assert(ws:send("b", "text", { fin = false }))
        assert(ws:send("c"))
      end,
    })
    local ws = assert(luaws.connect(server:url("/hold")))
    assert(ws:send("go"))
    for i = 1, 3 do got[i] = ws:receive(5) end
    assert.same({ ("a"):rep(3000) .. "bc", "tick", ("n"):rep(5000) }, got)
    assert(server:broadcast("after"))
    assert.equal("after", ws:receive(5))
    ws:close()
  end)

  it("lets a close go between fragments: the message never ends, the close handshake does", function()
    local closed
    server:route("/cut", {
      message = function(ws)
        assert(ws:send("half", "text", { fin = false }))
        assert(ws:close(4000, "cut"))
        h.fails("closed", ws:send("rest"))
      end,
      close = function(_, code) closed = code end,
    })
    local ws = assert(luaws.connect(server:url("/cut")))
    assert(ws:send("go"))
    h.fails("closed", ws:receive(5))
    assert.equal(4000, (ws:close_status()))
    h.pump(function() return closed ~= nil end, "the server's close handler")
    assert.equal(4000, closed)
  end)

  it("counts a message sent in pieces once", function()
    local ws = assert(luaws.connect(server:url("/frames")))
    for i = 1, 4 do assert(ws:send("x", "text", { fin = i == 4 })) end
    ws:receive(5)
    assert.same({ 1, 4 }, { ws:stats().messages_out, ws:stats().bytes_out })
    local s = server:connections()[1]:stats()
    assert.same({ 1, 4, 1, 4 }, { s.messages_in, s.bytes_in, s.messages_out, s.bytes_out })
    ws:close()
  end)
end)

describe("a route's fragment handler", function()
  local server, frames, messages, closes
  before_each(function()
    frames, messages, closes = {}, {}, {}
    server = h.server { max_message_size = 10000 }
    server:route("/f", {
      fragment = function(_, chunk, kind, fin) frames[#frames + 1] = { chunk, kind, fin } end,
      message = function(_, msg) messages[#messages + 1] = msg end,   -- never called: fragment has them
      close = function(_, code, reason, token) closes[#closes + 1] = { code, reason, token } end,
    })
  end)
  after_each(function()
    h.cleanup()
    proc.cleanup()
  end)

  -- Masked frames, sent raw from our client.
  local function raw(ws, ...)
    local t = {}
    for i, f in ipairs { ... } do t[i] = core.frame_encode(f[1], f[2], f[3], MASK) end
    assert(core.send_raw(ws, table.concat(t)))
  end

  it("gets each frame once it is complete, several in one read or one across many", function()
    local ws = assert(luaws.connect(server:url("/f")))
    local big = ("0123456789"):rep(900)   -- 9000 bytes: many reads of 4096
    raw(ws, { OP_TEXT, "one", false }, { OP_CONT, "two", false }, { OP_CONT, "three", true },
      { OP_BINARY, big, true }, { OP_TEXT, "", true })
    h.pump(function() return #frames == 5 end, "five frames")
    assert.same({ { "one", "text", false }, { "two", "text", false }, { "three", "text", true },
                  { big, "binary", true }, { "", "text", true } }, frames)
    assert.same({}, messages)
    ws:close()
  end)

  it("enforces max_message_size over the whole message (1009), after the frames that fit", function()
    local ws = assert(luaws.connect(server:url("/f")))
    local k4 = ("x"):rep(4000)
    assert(ws:send(k4, "binary", { fin = false }))
    assert(ws:send(k4, "binary", { fin = false }))   -- 8000 so far: fits in 10000
    assert(ws:send(k4, "binary", { fin = false }))   -- 12000: over, at this frame's header
    h.fails("closed", ws:receive(5))
    assert.equal(1009, (ws:close_status()))
    h.pump(function() return #closes == 1 end, "the close handler")
    assert.same({ 1009, "message too big", "too big" }, closes[1])
    assert.same({ { k4, "binary", false }, { k4, "binary", false } }, frames)
  end)

  it("validates UTF-8 across frames: a character split between frames passes, a broken one is 1007", function()
    local ws = assert(luaws.connect(server:url("/f")))
    raw(ws, { OP_TEXT, "a\xf0\x9f", false }, { OP_CONT, "\x98\x80b", true })   -- 😀 cut in two
    h.pump(function() return #frames == 2 end, "two frames")
    assert.same({ { "a\xf0\x9f", "text", false }, { "\x98\x80b", "text", true } }, frames)
    raw(ws, { OP_TEXT, "c\xf0\x9f", false }, { OP_CONT, "\x41", true })         -- F0 9F 41: not UTF-8
    h.fails("closed", ws:receive(5))
    assert.equal(1007, (ws:close_status()))
    h.pump(function() return #closes == 1 end, "the close handler")
    assert.same({ 1007, "invalid utf8", "utf8" }, closes[1])
    assert.same({ "c\xf0\x9f", "text", false }, frames[3])   -- frames before the bad byte came through
    assert.equal(3, #frames)
  end)

  it("fails a text message that ends inside a character (1007)", function()
    local ws = assert(luaws.connect(server:url("/f")))
    raw(ws, { OP_TEXT, "d\xe2\x82", false }, { OP_CONT, "", true })
    h.fails("closed", ws:receive(5))
    assert.equal(1007, (ws:close_status()))
    assert.same({ { "d\xe2\x82", "text", false } }, frames)
  end)

  it("is called with 1011 for the connection when it raises", function()
    server:route("/raise", { fragment = function() error("boom") end,
      close = function(_, code) closes[#closes + 1] = { code } end })
    local ws = assert(luaws.connect(server:url("/raise")))
    assert(ws:send("x"))
    h.fails("closed", ws:receive(5))
    assert.equal(1011, (ws:close_status()))
    assert.matches("boom", h.errors[#h.errors])
    table.remove(h.errors)
  end)

  it("leaves receive() to coroutine routes: it raises on a fragment route", function()
    local err
    server:route("/recv", {
      open = function(ws) err = select(2, pcall(ws.receive, ws, 0)) end,
      fragment = function() end,
    })
    local ws = assert(luaws.connect(server:url("/recv")))
    h.pump(function() return err ~= nil end, "the open handler")
    assert.matches("fragment handler", err)
    ws:close()
  end)

  it("leaves coroutine routes and clients their whole messages", function()
    server:route("/co", function(ws)
      for msg, kind in ws:messages() do assert(ws:send(msg, kind)) end
    end)
    local ws = assert(luaws.connect(server:url("/co")))
    assert(ws:send("x", "text", { fin = false }))
    assert(ws:send("y", "text", { fin = false }))
    assert(ws:send("z"))
    assert.same({ "xyz", "text" }, { ws:receive(5) })
    ws:close()
  end)

  it("raises at route() when it is not a function", function()
    assert.has_error(function() server:route("/bad", { fragment = true }) end, "handler 'fragment' must be a function")
  end)
end)

describe("a 64 MiB upload through a fragment handler", function()
  after_each(proc.cleanup)

  -- As spec/support/fragment_server.lua folds its chunks.
  local function fold(sum, chunk)
    local n = #chunk
    for i = 1, n, 4099 do sum = (sum * 31 + chunk:byte(i)) % 2147483647 end
    if n > 0 then sum = (sum * 31 + chunk:byte(n)) % 2147483647 end
    return sum
  end

  -- Upload total bytes to path in frames of frame bytes (a fragmented
  -- message, paced by what our client has queued); the server's numbers.
  local function upload(port, path, total, frame)
    local ws = assert(luaws.connect(("ws://127.0.0.1:%d%s"):format(port, path)))
    local start = assert(ws:receive(10))
    local rss0, hwm0 = start:match("^start (%d+) (%d+)$")
    local parts = {}
    for i = 0, 255 do parts[#parts + 1] = string.char(i):rep(frame // 256) end
    local piece = table.concat(parts)
    local n, sum = total // frame, 0
    for i = 1, n do
      assert(ws:send(piece, "binary", { fin = i == n }))
      sum = fold(sum, piece)
      h.pump(function() return ws:buffered() <= 2 * MiB end, "our client's queue to drain", 60)
    end
    local done = assert(ws:receive(120))
    ws:close()
    local bytes, frames, got_sum, rss, hwm = done:match("^done (%d+) (%d+) (%d+) (%d+) (%d+)$")
    return { bytes = tonumber(bytes), frames = tonumber(frames), sum = tonumber(got_sum), expected_sum = sum,
             grew = (tonumber(hwm) - tonumber(hwm0)) * KiB, rss0 = tonumber(rss0) * KiB }
  end

  -- A server in its own process (its memory is its own). ASan keeps freed
  -- memory in quarantine (256 MiB by default), which would count here as if
  -- it were held: a small quarantine keeps the measure about the code.
  local function start_server()
    local env = proc.luaws_env()
    local asan = os.getenv("ASAN_OPTIONS")
    if asan then env.ASAN_OPTIONS = asan .. ":quarantine_size_mb=8" end
    local p = proc.spawn({ "lua5.4", "spec/support/fragment_server.lua" }, { env = env })
    return p, tonumber(assert(p:wait_line("listening on http://[^:]+:(%d+)/", 10)))
  end

  it("keeps the server's peak RSS far below the message: it is never held whole", function()
    local p, port = start_server()
    local r = upload(port, "/up", 64 * MiB, 1 * MiB)
    assert.equal(64 * MiB, r.bytes)
    assert.equal(64, r.frames)
    assert.equal(r.expected_sum, r.sum)   -- every frame, in order
    -- Held whole it would need 64 MiB for the reassembly and 64 more for the
    -- Lua string; frame by frame it needs about one frame at a time.
    assert.is_true(r.grew < 24 * MiB, ("the peak RSS grew by %.1f MiB"):format(r.grew / MiB))
    assert(p:stop())
  end)

  it("needs more than the message when the same upload goes to a message handler (the control)", function()
    local p, port = start_server()
    local r = upload(port, "/whole", 64 * MiB, 1 * MiB)
    assert.equal(64 * MiB, r.bytes)
    assert.is_true(r.grew > 64 * MiB, ("the peak RSS grew by only %.1f MiB"):format(r.grew / MiB))
    assert(p:stop())
  end)
end)
