-- Connections are C memory; Lua gets a box only when a script needs the ws.
-- What a script holds must keep working after the close, and connections
-- nobody looks at must not leave Lua objects behind.
local h = require "helper"
local luaws = h.luaws

describe("connection lifetime", function()
  after_each(h.cleanup)

  it("keeps path, query, protocol, remote and data readable after the close, and refuses I/O", function()
    local kept
    local s = h.server { protocols = { "p1" } }
    s:route("/ws", {
      open = function(ws) ws.data.n = 1; ws.tag = "mine"; kept = ws end,
    })
    local c = assert(luaws.connect(s:url("/ws?room=5"), { protocols = { "p1" } }))
    h.pump(function() return kept ~= nil end, "the open handler")
    c:close()
    h.pump(function() return kept.state == "closed" end, "the server side to close")
    collectgarbage()
    assert.equal("/ws", kept.path)
    assert.equal("room=5", kept.query)
    assert.equal("p1", kept.protocol)
    assert.equal("127.0.0.1", kept.remote)
    assert.is_number(kept.port)
    assert.equal(1, kept.data.n)
    assert.equal("mine", kept.tag)
    assert.equal("127.0.0.1:" .. s.port, kept.headers.host)
    h.fails("closed", kept:send("late"))
    h.fails("closed", kept:close())
    h.fails("closed", kept:stats())
    assert.equal(0, kept:buffered())
    assert.truthy(tostring(kept):find("closed", 1, true))
  end)

  it("makes the fields of a connection first touched after its close from the kept head", function()
    local kept
    local s = h.server { protocols = { "p1" } }
    s:route("/ws", { open = function(ws) kept = ws end })   -- holds the box, reads nothing
    local c = assert(luaws.connect(s:url("/ws?room=7"), { protocols = { "p1" },
      headers = { Origin = "https://o.example", ["X-Two"] = "a" } }))
    h.pump(function() return kept ~= nil end, "the open handler")
    c:close(4001, "bye")
    h.pump(function() return kept.state == "closed" end, "the server side to close")
    collectgarbage()
    assert.equal("GET", kept.method)
    assert.equal("/ws", kept.path)
    assert.equal("/ws?room=7", kept.target)
    assert.equal("room=7", kept.query)
    assert.same({ room = "7" }, kept.args)
    assert.equal("p1", kept.protocol)
    assert.equal("https://o.example", kept.origin)
    assert.equal("a", kept.headers["x-two"])
    assert.equal("127.0.0.1", kept.remote)
    assert.is_false(kept.secure)
    assert.same({}, kept.data)
    assert.is_nil(kept.upgrade)
    assert.same({ 4001, "bye" }, { kept:close_status() })
  end)

  it("reads the fields of a connection that never had a handler", function()
    local s = h.server()
    local seen = {}
    s:route("/quiet", {})   -- no handlers at all: no Lua object until asked for
    for i = 1, 3 do assert(luaws.connect(s:url("/quiet?i=" .. i))) end
    h.pump(function() return #s:connections() == 3 end, "three open connections")
    for _, ws in ipairs(s:connections()) do seen[#seen + 1] = ws.query end
    table.sort(seen)
    assert.same({ "i=1", "i=2", "i=3" }, seen)
  end)

  it("gives back the Lua memory of 300 connections once they close", function()
    local s = h.server()
    s:route("/ws", {})
    collectgarbage()
    local before = collectgarbage("count")
    local clients = {}
    for i = 1, 300 do clients[i] = assert(luaws.connect(s:url("/ws"))) end
    h.pump(function() return s:stats().connections == 300 end, "300 open connections")
    for i = 1, 300 do clients[i]:close(); clients[i] = nil end
    h.pump(function() return s:stats().connections == 0 end, "every connection to close")
    collectgarbage(); collectgarbage()
    -- the clients' own boxes are garbage now too; allow some slack for the
    -- loop's bookkeeping, not 300 connections' worth (each box with its
    -- fields table is over 1 KiB)
    assert.is_true(collectgarbage("count") - before < 100, ("%.0f KiB left"):format(collectgarbage("count") - before))
  end)
end)
