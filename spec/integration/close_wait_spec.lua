-- SPDX-License-Identifier: MIT
-- ws:close(code, reason [, timeout]) waits for the close handshake where
-- waiting is possible (a plain script, luaws.spawn, a coroutine route) and
-- returns the peer's code and reason; inside a callback it returns at once.
local h = require "helper"
local luaws = h.luaws

describe("ws:close that waits", function()
  after_each(h.cleanup)

  it("returns the server's code and reason in a plain script, and the state is closed", function()
    local s = h.echo_server()
    local ws = assert(luaws.connect(s:url("/ws")))
    assert.same({ 1000, "bye" }, { ws:close(1000, "bye") })
    assert.equal("closed", ws.state)
    assert.same({ 1000, "bye" }, { ws:close_status() })
    h.fails("closed", ws:close())   -- once is enough
  end)

  it("waits in a luaws.spawn coroutine while the loop serves others", function()
    local s = h.echo_server()
    local other = assert(luaws.connect(s:url("/ws")))
    local result, echoed
    luaws.spawn(function()
      local ws = assert(luaws.connect(s:url("/ws")))
      result = { ws:close(4001, "from a coroutine", 10) }
    end)
    assert(other:send("meanwhile"))
    echoed = { other:receive(10) }
    h.pump(function() return result ~= nil end, "the spawned close to return", 20)
    assert.same({ 4001, "from a coroutine" }, result)
    assert.same({ "meanwhile", "text" }, echoed)
  end)

  it("waits in a coroutine route for the client's answer", function()
    local s = h.server()
    local got
    s:route("/ws", function(ws)
      assert(ws:receive(10))
      got = { ws:close(4002, "server side", 10) }
    end)
    local ws = assert(luaws.connect(s:url("/ws")))
    assert(ws:send("go"))
    h.fails("closed", ws:receive(10))
    h.pump(function() return got ~= nil end, "the route's close to return", 20)
    assert.same({ 4002, "server side" }, got)   -- the client echoed the code and reason
  end)

  it("gives up with nil, message, \"timeout\" when the peer does not answer in time", function()
    local s = h.server()
    local got
    s:route("/ws", function(ws)
      assert(ws:receive(10))
      got = { ws:close(1000, "x", 0.3) }
    end)
    local ws = assert(luaws.connect(s:url("/ws")))
    assert(ws:send("go"))
    h.pump(function() return s:stats().messages_in == 1 end, "the message", 20)
    assert(ws:pause())   -- the client reads nothing more: no answer to the close
    h.pump(function() return got ~= nil end, "the route's close to give up", 20)
    assert.is_nil(got[1])
    assert.equal("timeout", got[3])
    assert.matches("did not end within 0.3 s", got[2], 1, true)
    assert(ws:resume())
  end)

  it("returns true at once inside a callback, where it cannot wait", function()
    local s = h.server()
    local got
    s:route("/ws", { message = function(ws) got = { ws:close(1000, "cb") } end })
    local ws = assert(luaws.connect(s:url("/ws")))
    assert(ws:send("x"))
    h.pump(function() return got ~= nil end, "the handler", 20)
    assert.same({ true }, got)
    h.fails("closed", ws:receive(10))
    assert.same({ 1000, "cb" }, { ws:close_status() })
  end)

  it("waits for a callback route's connection closed from a coroutine (no message queue)", function()
    local s = h.server()
    local conns = {}
    s:route("/ws", { open = function(ws) conns[#conns + 1] = ws end })
    local client = assert(luaws.connect(s:url("/ws")))
    h.pump(function() return #conns == 1 end, "the server side", 20)
    local result
    luaws.spawn(function() result = { conns[1]:close(4003, "polled", 10) } end)
    h.pump(function() return result ~= nil end, "the close to return", 20)
    assert.same({ 4003, "polled" }, result)
    h.fails("closed", client:receive(10))
  end)
end)
