-- Echo over the IPv6 loopback, where the machine has one.
local h = require "helper"
local luaws = h.luaws

local it6 = h.has_ipv6() and it or pending

describe("IPv6 loopback", function()
  local server, remote
  before_each(function()
    remote = nil
    if not h.has_ipv6() then return end
    server = h.server { host = "::1" }
    server:route("/ws", {
      open = function(ws) remote = ws.remote end,
      message = function(ws, msg, kind) ws:send(msg, kind) end,
    })
  end)
  after_each(h.cleanup)

  it6("listens on [::1] and names it so in its URL", function()
    assert.is_true(server.port > 0)
    assert.equal(("ws://[::1]:%d/ws"):format(server.port), server:url("/ws"))
  end)

  it6("echoes text and binary over [::1] and sees the peer as ::1", function()
    local ws = assert(luaws.connect(server:url("/ws")))
    assert(ws:send("over v6"))
    assert.same({ "over v6", "text" }, { ws:receive(5) })
    assert(ws:send(("\0\255"):rep(40000), "binary"))
    assert.same({ ("\0\255"):rep(40000), "binary" }, { ws:receive(5) })
    assert.equal("::1", remote)
    assert(ws:close())
    h.fails("closed", ws:receive(5))
    assert.equal(1000, (ws:close_status()))
  end)

  it6("does not answer on 127.0.0.1 when bound to ::1 only", function()
    h.fails("refused", luaws.connect(("ws://127.0.0.1:%d/ws"):format(server.port), { timeout = 2 }))
  end)
end)
