-- SPDX-License-Identifier: MIT
-- The close handler's 4th argument: nil after a close handshake, else the
-- token of what ended the connection, so a script never reads it out of the
-- reason text.
local h = require "helper"
local proc = require "support.proc"
local luaws, core = h.luaws, h.core

describe("close(ws, code, reason, token)", function()
  local closes, server
  before_each(function()
    closes = {}
    server = h.server { idle_timeout = 0.5 }
    server:route("/ws", {
      message = function(ws, msg) if msg == "bye" then ws:close(1000, "done") end end,
      close = function(_, code, reason, token) closes[#closes + 1] = { code = code, reason = reason, token = token } end,
    })
  end)
  after_each(function()
    h.cleanup()
    proc.cleanup()
  end)

  it("is nil after a close handshake, either side first", function()
    local a = assert(luaws.connect(server:url("/ws")))
    assert(a:close(1000, "client"))
    local b = assert(luaws.connect(server:url("/ws")))
    assert(b:send("bye"))
    h.pump(function() return #closes == 2 end, "two close handlers", 20)
    for _, c in ipairs(closes) do
      assert.equal(1000, c.code)
      assert.is_nil(c.token)
    end
  end)

  it("is \"timeout\" after the idle timeout", function()
    local ws = assert(luaws.connect(server:url("/ws")))
    ws:pause()   -- neither reads nor answers: the server's idle timer ends it
    h.pump(function() return #closes == 1 end, "the close handler", 20)
    assert.same({ 1006, "timeout", "timeout" }, { closes[1].code, closes[1].reason, closes[1].token })
    ws:resume()
  end)

  it("is \"closed\" when the TCP connection ends without a close frame", function()
    local port = server.port
    local r = proc.raw(port, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      .. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", { timeout = 0.2 })
    assert.equal(101, (proc.parse_response(r.response)))
    h.pump(function() return #closes == 1 end, "the close handler", 20)
    assert.equal(1006, closes[1].code)
    assert.equal("closed", closes[1].token)
  end)

  it("reaches luaws.connect as its token when the connect is refused (no reason is read)", function()
    local ws, msg, token = luaws.connect("ws://127.0.0.1:1/ws")
    assert.is_nil(ws)
    assert.equal("refused", token)
    assert.matches("connection refused", msg, 1, true)
    h.pump(function() return core.live() == 0 end, "the refused connection to finish", 20)
  end)
end)
