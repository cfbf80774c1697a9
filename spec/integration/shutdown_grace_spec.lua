-- SPDX-License-Identifier: MIT
-- luaws.shutdown(grace) in this process: the grace period bounds the
-- shutdown, connections still open when it runs out are cut and counted,
-- and a shutdown that has finished leaves the process able to shut down
-- again (a later signal or call is not swallowed). The signal side, in a
-- real process, is in integration/shutdown_spec and hardening/sigterm_spec.
local h = require "helper"
local luaws, core = h.luaws, h.core

describe("luaws.shutdown(grace)", function()
  local clients
  before_each(function() clients = {} end)
  after_each(function()
    for _, ws in ipairs(clients) do ws:resume() end
    h.cleanup()
  end)

  -- A server whose close handler records what it got; returns server, closes.
  local function server()
    local closes = {}
    local s = h.server()
    s:route("/ws", {
      message = function(ws, msg, kind) ws:send(msg, kind) end,
      close = function(_, code, reason) closes[#closes + 1] = { code, reason } end,
    })
    return s, closes
  end

  local function connect(s)
    local ws = assert(luaws.connect(s:url("/ws")))
    clients[#clients + 1] = ws
    return ws
  end

  it("with grace 0 cuts a client that does not answer the close at once, and counts it", function()
    local s, closes = server()
    local ws = connect(s)
    assert(ws:send("x"))
    assert.same({ "x", "text" }, { ws:receive(5) })
    ws:pause()   -- it will not answer the server's 1001
    luaws.shutdown(0)
    h.pump(function() return #closes == 1 end, "the close handler", 10)
    assert.same({ 1006, "shutdown" }, closes[1])
    assert.equal(1, s:stats().shutdown_cut)
  end)

  it("lets a client that answers within the grace close normally, and cuts none", function()
    local s, closes = server()
    local ws = connect(s)
    assert(ws:send("x"))
    assert.same({ "x", "text" }, { ws:receive(5) })
    luaws.shutdown(30)
    h.fails("closed", ws:receive(10))
    assert.same({ 1001, "server shutdown" }, { ws:close_status() })
    h.pump(function() return #closes == 1 end, "the close handler", 10)
    assert.equal(1001, closes[1][1])
    assert.equal(0, s:stats().shutdown_cut)
  end)

  it("can shut down again once a shutdown has finished (nothing later is swallowed)", function()
    local first = server()
    luaws.shutdown(30)   -- nothing open: finished on the next iteration
    h.idle(0.1)
    assert.equal(0, first:stats().shutdown_cut)
    local s, closes = server()
    local ws = connect(s)
    assert(ws:send("again"))
    assert.same({ "again", "text" }, { ws:receive(5) })
    luaws.shutdown(30)
    h.fails("closed", ws:receive(10))
    assert.equal(1001, (ws:close_status()))
    h.pump(function() return #closes == 1 end, "the close handler", 10)
  end)

  it("sends what was queued before the shutdown ahead of the 1001", function()
    local s = server()
    local ws = connect(s)
    local conns
    h.pump(function() conns = s:connections() return #conns == 1 end, "the connection", 10)
    for i = 1, 50 do assert(conns[1]:send(("m%d "):format(i) .. ("x"):rep(32 * 1024))) end
    luaws.shutdown(30)
    for i = 1, 50 do
      local msg = ws:receive(10)
      assert.equal(("m%d "):format(i), msg and msg:sub(1, #("m%d "):format(i)))
    end
    h.fails("closed", ws:receive(10))
    assert.equal(1001, (ws:close_status()))
  end)
end)

describe("luaws.run options", function()
  it("raises on a negative grace and on an unknown option, naming them", function()
    assert.has_error(function() luaws.run { grace = -1 } end, "run: option 'grace' must be a number of seconds >= 0")
    assert.has_error(function() luaws.run { grase = 1 } end, "run: unknown option 'grase'")
    assert.has_error(function() luaws.shutdown("soon") end,
      "bad argument #1 to 'shutdown' (number of seconds >= 0 expected)")
  end)

  it("server:stats() counts frames_cut and shutdown_cut, from 0", function()
    local s = h.server()
    local st = s:stats()
    assert.equal(0, st.frames_cut)
    assert.equal(0, st.shutdown_cut)
  end)
end)
