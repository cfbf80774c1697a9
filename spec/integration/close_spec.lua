-- The close handshake (RFC 6455 §5.5.1, §7) over loopback: who starts it,
-- which code each side sees, what a protocol error or a limit reports, and
-- that the server closes the TCP connection once the exchange is done.
local h = require "helper"
local luaws, core = h.luaws, h.core

local MASK = "\x01\x02\x03\x04"

-- close_timeout, on both sides, for the specs that check that the TCP
-- connection ends with the exchange and not with a timer: far above the
-- bound on their wait (a loaded machine may be slow; not that slow).
local CLOSE_TIMEOUT, WAIT = 60, 30

describe("close handshake", function()
  local server, url, closes, messages
  local function start(opts)
    closes, messages = {}, {}
    local o = { max_message_size = 1000 }
    for k, v in pairs(opts or {}) do o[k] = v end
    server = h.server(o)
    server:route("/ws", {
      message = function(ws, msg, kind)
        messages[#messages + 1] = msg
        if msg == "close me" then
          assert(ws:close(4000, "bye"))
        else
          ws:send(msg, kind)
        end
      end,
      close = function(ws, code, reason)
        closes[#closes + 1] = { code, reason, send = table.pack(ws:send("too late")) }
      end,
    })
    url = server:url("/ws")
  end
  before_each(function() start() end)
  after_each(h.cleanup)

  local function server_close()
    h.pump(function() return #closes > 0 end, "the server's close handler")
    return closes[1]
  end

  it("delivers a server-initiated close code and reason to the client", function()
    local ws = assert(luaws.connect(url))
    assert(ws:send("close me"))
    h.fails("closed", ws:receive(5))
    assert.same({ 4000, "bye" }, { ws:close_status() })
    local c = server_close()
    assert.equal(4000, c[1])   -- the client echoed it
    assert.equal(1, #closes)
  end)

  it("refuses to send on the server side once its close has started", function()
    local result
    server:route("/ws", {
      open = function(ws)
        ws:close(4001, "now")
        result = table.pack(ws:send("after close"))
      end,
    })
    local ws = assert(luaws.connect(url))
    h.fails("closed", table.unpack(result, 1, result.n))
    h.fails("closed", ws:receive(5))
    assert.same({ 4001, "now" }, { ws:close_status() })
  end)

  -- RFC 6455 §5.5.1: the reason is UTF-8. ws:close documents "reason at
  -- most 123 bytes of UTF-8", and misuse raises (DESIGN "Errors").
  it("raises on a close reason that is not UTF-8 and puts no close frame on the wire", function()
    local result
    server:route("/ws", {
      open = function(ws) result = { pcall(ws.close, ws, 4000, "bad \xff\xfe") } end,
      message = function(ws, msg) ws:send(msg) end,
    })
    local ws = assert(luaws.connect(url))
    h.pump(function() return result ~= nil end, "the open handler")
    assert.is_false(result[1], "ws:close accepted a reason that is not UTF-8")
    assert(ws:send("still open?"))
    assert.same({ "still open?", "text" }, { ws:receive(5) })
    ws:close()
  end)

  it("echoes the client's close code and reports it with its reason to the server", function()
    local ws = assert(luaws.connect(url))
    assert(ws:close(4321, "client leaving"))
    h.fails("closed", ws:receive(5))
    assert.equal(4321, (ws:close_status()))
    assert.same({ 4321, "client leaving" }, { server_close()[1], server_close()[2] })
  end)

  it("answers a close frame without a code with an empty close, reported as 1005", function()
    local ws = assert(luaws.connect(url))
    assert(core.send_raw(ws, core.frame_encode(8, "", true, MASK)))
    h.fails("closed", ws:receive(5))
    assert.equal(1005, (ws:close_status()))
    assert.equal(1005, server_close()[1])
  end)

  it("reports a send after the close handshake as nil, \"closed\" on both sides", function()
    local ws = assert(luaws.connect(url))
    assert(ws:close())
    h.fails("closed", ws:send("x"))
    h.fails("closed", ws:receive(5))
    h.fails("closed", ws:send("x"))
    local send = server_close().send
    h.fails("closed", table.unpack(send, 1, send.n))
  end)

  it("reports a second close as nil, \"closed\"", function()
    local ws = assert(luaws.connect(url))
    assert(ws:close(1000))
    h.fails("closed", ws:close(1000))
  end)

  it("lets the server close the TCP connection first, well within close_timeout", function()
    local ws = assert(luaws.connect(url, { close_timeout = CLOSE_TIMEOUT }))
    local t0 = core.now()
    assert(ws:close(1000))
    h.pump(function() return ws.state == "closed" end, "the client to see the end of TCP", WAIT)
    print(("# client-initiated close: TCP ended after %.3f s (close_timeout %d s)"):format(core.now() - t0, CLOSE_TIMEOUT))
    assert.is_true(core.now() - t0 < CLOSE_TIMEOUT)
    server_close()
  end)

  it("shuts the TCP connection after a server-initiated close, well within close_timeout", function()
    start { close_timeout = CLOSE_TIMEOUT }
    local ws = assert(luaws.connect(url, { close_timeout = CLOSE_TIMEOUT }))
    local t0 = core.now()
    assert(ws:send("close me"))
    h.pump(function() return ws.state == "closed" end, "the client to see the end of TCP", WAIT)
    print(("# server-initiated close: TCP ended after %.3f s (close_timeout %d s)"):format(core.now() - t0, CLOSE_TIMEOUT))
    assert.is_true(core.now() - t0 < CLOSE_TIMEOUT)
    assert.equal(4000, (ws:close_status()))
    server_close()
  end)

  -- RFC 6455 §1.4: "after receiving a control frame indicating the
  -- connection should be closed, a peer discards any further data received."
  it("discards data frames that follow the client's close frame", function()
    local ws = assert(luaws.connect(url))
    assert(core.send_raw(ws, core.frame_encode(8, "\x03\xe8done", true, MASK)
      .. core.frame_encode(1, "after the close", true, MASK)))
    h.fails("closed", ws:receive(5))
    assert.same({ 1000, "done" }, { server_close()[1], server_close()[2] })
    assert.same({}, messages)
  end)

  it("answers a ping of 125 bytes, the most a control frame holds, with the same payload", function()
    local ws = assert(luaws.connect(url))
    local pongs = {}
    core.conn_handlers(ws).pong = function(_, payload) pongs[#pongs + 1] = payload end
    local payload = ("0123456789"):rep(13):sub(1, 125)
    assert(core.send_raw(ws, core.frame_encode(9, payload, true, MASK)))
    h.pump(function() return #pongs > 0 end, "the pong")
    assert.same({ payload }, pongs)
    assert.equal("open", ws.state)
    ws:close()
  end)

  describe("fails the connection on a protocol error", function()
    for _, case in ipairs {
      { "an unmasked frame", 1002, core.frame_encode(1, "plain", true) },
      { "an RSV1 bit with no extension", 1002, core.frame_encode(1, "x", true, MASK, 4) },
      { "an RSV3 bit with no extension", 1002, core.frame_encode(2, "x", true, MASK, 1) },
      { "reserved data opcode 3", 1002, core.frame_encode(3, "x", true, MASK) },
      { "reserved control opcode 0xB", 1002, core.frame_encode(11, "x", true, MASK) },
      { "a ping with a 126-byte payload", 1002, core.frame_encode(9, ("p"):rep(126), true, MASK) },
      { "a 64-bit length with its top bit set", 1002, "\x82\xff\x80\0\0\0\0\0\0\1" .. MASK .. "x" },
      { "a text message that is not UTF-8", 1007, core.frame_encode(1, "ok \xff\xfe", true, MASK) },
      { "a fragmented text message that turns invalid", 1007,
        core.frame_encode(1, "fine ", false, MASK) .. core.frame_encode(0, "\xc0\xaf", true, MASK) },
      { "a close frame with code 1005", 1002, core.frame_encode(8, "\x03\xed", true, MASK) },
      { "a close frame with code 999", 1002, core.frame_encode(8, "\x03\xe7", true, MASK) },
      { "a close frame with a 1-byte payload", 1002, core.frame_encode(8, "\x03", true, MASK) },
      { "a close reason that is not UTF-8", 1007, core.frame_encode(8, "\x03\xe8\xff", true, MASK) },
    } do
      local what, code, bytes = case[1], case[2], case[3]
      it(("with %d on %s, reported to both sides"):format(code, what), function()
        local ws = assert(luaws.connect(url))
        assert(core.send_raw(ws, bytes))
        h.fails("closed", ws:receive(5))
        assert.equal(code, (ws:close_status()))
        assert.equal(code, server_close()[1])
        assert.same({}, messages)
      end)
    end
  end)

  describe("on the client side, fails the connection", function()
    for _, case in ipairs {
      { "a masked frame from the server", 1002, core.frame_encode(1, "masked", true, MASK) },
      { "an RSV2 bit from the server", 1002, core.frame_encode(1, "x", true, nil, 2) },
      { "invalid UTF-8 from the server", 1007, core.frame_encode(1, "\xed\xa0\x80", true) },
    } do
      local what, code, bytes = case[1], case[2], case[3]
      it(("with %d on %s, reported to both sides"):format(code, what), function()
        server:route("/ws", {
          open = function(ws) assert(core.send_raw(ws, bytes)) end,
          close = function(_, c, reason) closes[#closes + 1] = { c, reason } end,
        })
        local ws = assert(luaws.connect(url))
        h.fails("closed", ws:receive(5))
        assert.equal(code, (ws:close_status()))
        assert.equal(code, server_close()[1])
      end)
    end
  end)

  describe("enforces max_message_size", function()
    it("with 1009 on one frame over the limit, and never calls the message handler", function()
      local ws = assert(luaws.connect(url))
      assert(ws:send(("x"):rep(1000)))   -- at the limit: fine
      assert.equal(1000, #ws:receive(5))
      assert(ws:send(("x"):rep(1001)))
      h.fails("closed", ws:receive(5))
      assert.equal(1009, (ws:close_status()))
      assert.equal(1009, server_close()[1])
      assert.same({ ("x"):rep(1000) }, messages)
    end)

    it("accepts fragments that add up to exactly the limit", function()
      local ws = assert(luaws.connect(url))
      assert(core.send_raw(ws, core.frame_encode(2, ("y"):rep(500), false, MASK)))
      assert(core.send_raw(ws, core.frame_encode(0, ("y"):rep(500), true, MASK)))
      assert.same({ ("y"):rep(1000), "binary" }, { ws:receive(5) })
      ws:close()
    end)

    it("with 1009 on fragments that add up past the limit", function()
      local ws = assert(luaws.connect(url))
      assert(core.send_raw(ws, core.frame_encode(2, ("y"):rep(600), false, MASK)))
      assert(core.send_raw(ws, core.frame_encode(0, ("y"):rep(600), true, MASK)))
      h.fails("closed", ws:receive(5))
      assert.equal(1009, (ws:close_status()))
      assert.equal(1009, server_close()[1])
      assert.same({}, messages)
    end)

    it("on the client too: a client with max_message_size fails a bigger message with 1009", function()
      local ws = assert(luaws.connect(url, { max_message_size = 100 }))
      assert(ws:send(("z"):rep(101)))
      h.fails("closed", ws:receive(5))
      assert.equal(1009, (ws:close_status()))
      assert.equal(1009, server_close()[1])
    end)
  end)
end)
