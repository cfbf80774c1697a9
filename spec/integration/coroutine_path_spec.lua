-- SPDX-License-Identifier: MIT
-- The coroutine style's message path (csrc/lua/conn.c, lconn_receive): a
-- coroutine that received on a connection before parks in C when its queue
-- is empty, and the next message resumes it from C, never queued. These
-- specs take that path past its first message (the first receive goes
-- through lua/luaws/conn.lua's receive_general) and check what it must keep:
-- order with messages queued meanwhile, the close, a timeout in between,
-- a raising or returning handler, a second receiver, the checked-text
-- echo, and the coroutine's life when only its connection holds it.
-- Server and client run in this process over loopback; every wait steps
-- the loop, with generous bounds.
local h = require "helper"
local luaws = h.luaws

local WAIT = 30   -- seconds any one receive may take: outcomes are checked, never speed

-- Send msg on ws and return what comes back (a plain-script client).
local function roundtrip(ws, msg, kind)
  assert(ws:send(msg, kind))
  return ws:receive(WAIT)
end

describe("the coroutine message path", function()
  local server, url
  before_each(function()
    server = h.server()
    url = nil
  end)
  after_each(h.cleanup)

  local function route(fn)
    server:route("/ws", fn)
    url = server:url("/ws")
  end

  it("echoes 300 messages, text and binary, one at a time, each with its kind", function()
    route(function(ws) for msg, kind in ws:messages() do ws:send(msg, kind) end end)
    local ws = assert(luaws.connect(url))
    for i = 1, 300 do
      local kind = i % 2 == 0 and "binary" or "text"
      local msg = ("m%d-"):format(i) .. ("x"):rep(i)
      assert.same({ msg, kind }, { roundtrip(ws, msg, kind) })
    end
    ws:close()
  end)

  it("ends messages() with the peer's close code and reason while parked", function()
    local status
    route(function(ws)
      for msg in ws:messages() do ws:send(msg) end
      status = { ws:close_status() }
    end)
    local ws = assert(luaws.connect(url))
    for i = 1, 5 do assert.equal("e" .. i, (roundtrip(ws, "e" .. i))) end
    assert(ws:close(4000, "bye"))
    h.pump(function() return status ~= nil end, "the route's loop to end")
    assert.same({ 4000, "bye" }, status)
  end)

  it("returns nil, a message and \"closed\" from a parked ws:receive() when the peer closes", function()
    local got
    route(function(ws)
      for _ = 1, 3 do ws:send((ws:receive())) end
      got = table.pack(ws:receive())
    end)
    local ws = assert(luaws.connect(url))
    for i = 1, 3 do assert.equal("r" .. i, (roundtrip(ws, "r" .. i))) end
    assert(ws:close(1000))
    h.pump(function() return got ~= nil end, "the parked receive to return")
    assert.is_nil(got[1])
    assert.matches("closed %(1000", got[2])
    assert.equal("closed", got[3])
  end)

  -- C answers the parked receive itself at the close; receive_general
  -- answers every later call: the same words from both
  it("says what closed it in the same words from the parked receive and from a later one", function()
    local got
    route(function(ws)
      ws:send((ws:receive()))
      got = { table.pack(ws:receive()), table.pack(ws:receive()) }
    end)
    local ws = assert(luaws.connect(url))
    assert.equal("q", (roundtrip(ws, "q")))
    assert(ws:close(4002, "gone away"))
    h.pump(function() return got ~= nil end, "both receives to return")
    for _, r in ipairs(got) do
      assert.same({ n = 3, nil, "receive: the connection is closed (4002 gone away)", "closed" }, r)
    end
    got = nil
    local ws2 = assert(luaws.connect(url))
    assert.equal("q", (roundtrip(ws2, "q")))
    assert(ws2:close(1000))
    h.pump(function() return got ~= nil end, "both receives to return")
    for _, r in ipairs(got) do
      assert.same({ n = 3, nil, "receive: the connection is closed (1000)", "closed" }, r)
    end
  end)

  it("returns the close from a receive with a timeout that waits when the peer closes", function()
    local got
    route(function(ws)
      ws:send((ws:receive()))
      got = table.pack(ws:receive(30))
    end)
    local ws = assert(luaws.connect(url))
    assert.equal("t", (roundtrip(ws, "t")))
    assert(ws:close(4003, "late"))
    h.pump(function() return got ~= nil end, "the timed receive to return")
    assert.same({ n = 3, nil, "receive: the connection is closed (4003 late)", "closed" }, got)
  end)

  it("closes with 1000 when the handler returns after messages handed to it", function()
    route(function(ws)
      for _ = 1, 4 do ws:send((ws:receive())) end
    end)
    local ws = assert(luaws.connect(url))
    for i = 1, 4 do assert.equal("n" .. i, (roundtrip(ws, "n" .. i))) end
    local msg, err, token = ws:receive(WAIT)
    assert.is_nil(msg, "no fifth echo")
    assert.equal("closed", token, err)
    assert.equal(1000, (ws:close_status()))
  end)

  it("closes only that connection with 1011 and logs when the handler raises on its fifth message", function()
    h.errors = {}
    route(function(ws)
      for msg in ws:messages() do
        if msg == "boom" then error("exploded on the fifth message") end
        ws:send(msg)
      end
    end)
    local bystander = assert(luaws.connect(url))
    local ws = assert(luaws.connect(url))
    for i = 1, 4 do assert.equal("b" .. i, (roundtrip(ws, "b" .. i))) end
    assert(ws:send("boom"))
    local msg, _, token = ws:receive(WAIT)
    assert.is_nil(msg)
    assert.equal("closed", token)
    assert.equal(1011, (ws:close_status()))
    local logged = table.concat(h.errors, "\n")
    assert.matches("exploded on the fifth message", logged)
    assert.matches("stack traceback", logged)
    assert.equal("still here", (roundtrip(bystander, "still here")))
    bystander:close()
  end)

  it("goes on after a receive that timed out between handed-over messages", function()
    route(function(ws)
      ws:send((ws:receive()))
      ws:send((ws:receive()))
      local r = table.pack(ws:receive(0.05))
      ws:send(r[3] or "a message?")
      for msg in ws:messages() do ws:send(msg) end
    end)
    local ws = assert(luaws.connect(url))
    assert.equal("t1", (roundtrip(ws, "t1")))
    assert.equal("t2", (roundtrip(ws, "t2")))
    assert.equal("timeout", (ws:receive(WAIT)))
    for i = 3, 6 do assert.equal("t" .. i, (roundtrip(ws, "t" .. i))) end
    ws:close()
  end)

  it("refuses a second coroutine that receives on a connection parked in receive", function()
    local held, second
    route(function(ws)
      held = ws
      for msg in ws:messages() do ws:send(msg) end
    end)
    local ws = assert(luaws.connect(url))
    assert.equal("p1", (roundtrip(ws, "p1")))
    assert.equal("p2", (roundtrip(ws, "p2")))   -- the route's coroutine is parked now
    luaws.spawn(function() second = table.pack(pcall(held.receive, held)) end)
    h.pump(function() return second ~= nil end, "the second receiver to be refused")
    assert.is_false(second[1])
    assert.matches("another coroutine is already receiving on this connection", second[2])
    assert.equal("p3", (roundtrip(ws, "p3")))
    ws:close()
  end)

  it("keeps a parked coroutine that only its connection holds through full collections", function()
    route(function(ws) for msg in ws:messages() do ws:send(msg) end end)
    local ws = assert(luaws.connect(url))
    for i = 1, 3 do assert.equal("g" .. i, (roundtrip(ws, "g" .. i))) end
    collectgarbage("collect")
    collectgarbage("collect")
    for i = 4, 6 do assert.equal("g" .. i, (roundtrip(ws, "g" .. i))) end
    ws:close()
  end)

  it("trusts only the handed-over text itself: another string of its length is checked", function()
    local results = {}
    route(function(ws)
      for msg in ws:messages() do
        results[#results + 1] = table.pack(ws:send(msg))
        results[#results + 1] = table.pack(ws:send(("\xff"):rep(#msg)))
      end
    end)
    local ws = assert(luaws.connect(url))
    local text = ("κόσμε "):rep(100)   -- 1,200 bytes: long enough to be trusted
    for _ = 1, 3 do assert.equal(text, (roundtrip(ws, text))) end
    h.pump(function() return #results == 6 end, "the three sends after each echo")
    for i = 1, 6, 2 do
      assert.is_true(results[i][1])
      h.fails("utf8", table.unpack(results[i + 1], 1, results[i + 1].n))
    end
    ws:close()
  end)

  describe("in a client coroutine (luaws.spawn)", function()
    -- The server sends n numbered messages at once on "burst n" (and a
    -- word on the other connection once sent); it echoes anything else.
    local conns
    before_each(function()
      conns = {}
      server:route("/ws", {
        open = function(ws) conns[#conns + 1] = ws end,
        message = function(ws, msg)
          local n = tonumber(msg:match("^burst (%d+)$"))
          if not n then ws:send(msg) return end
          for i = 1, n do ws:send("n" .. i) end
          for _, other in ipairs(conns) do
            if other ~= ws then other:send("sent") end
          end
        end,
      })
      url = server:url("/ws")
    end)

    it("takes messages queued while it waited elsewhere in order, then parks again", function()
      local got, failure
      luaws.spawn(function()
        local ok, err = pcall(function()
          local a = assert(luaws.connect(url))
          local b = assert(luaws.connect(url))
          local seen = {}
          for i = 1, 3 do assert(a:send("x" .. i)); seen[#seen + 1] = a:receive(WAIT) end
          assert(a:send("burst 40"))
          seen[#seen + 1] = b:receive(WAIT)   -- "sent": a's 40 went out meanwhile
          for _ = 1, 40 do seen[#seen + 1] = a:receive(WAIT) end
          for i = 4, 6 do assert(a:send("x" .. i)); seen[#seen + 1] = a:receive(WAIT) end
          a:close()
          b:close()
          got = seen
        end)
        if not ok then failure = err end
      end)
      h.pump(function() return got ~= nil or failure ~= nil end, "the client coroutine", 2 * WAIT)
      assert.is_nil(failure)
      local want = { "x1", "x2", "x3", "sent" }
      for i = 1, 40 do want[#want + 1] = "n" .. i end
      for i = 4, 6 do want[#want + 1] = "x" .. i end
      assert.same(want, got)
    end)
  end)
end)
