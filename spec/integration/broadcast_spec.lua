-- server:broadcast, pushes from timers, and server:stats() counting exactly.
local h = require "helper"
local luaws, core = h.luaws, h.core

describe("broadcast and stats", function()
  local server, url, clients, timers, opened, closes
  before_each(function()
    clients, timers, opened, closes = {}, {}, {}, {}
  end)
  after_each(function()
    for _, t in ipairs(timers) do t:stop() end
    for _, ws in ipairs(clients) do
      ws:resume()
      if ws.state == "open" then ws:close() end
    end
    h.cleanup()
  end)

  local function start(opts, handlers)
    server = h.server(opts)
    handlers = handlers or {}
    handlers.open = handlers.open or function(ws) opened[#opened + 1] = ws end
    handlers.close = handlers.close or function(ws, code) closes[#closes + 1] = { ws, code } end
    server:route("/ws", handlers)
    url = server:url("/ws")
  end

  local function connect(n)
    local list = {}
    for i = 1, n do
      list[i] = assert(luaws.connect(url))
      clients[#clients + 1] = list[i]
    end
    h.pump(function() return server:stats().connections == #clients end, "the server to open every connection")
    return list
  end

  it("reaches every one of 10 clients, text and binary", function()
    start()
    local ws = connect(10)
    assert.equal(10, server:broadcast("hello, all"))
    assert.equal(10, server:broadcast("\0\1\2", "binary"))
    for i = 1, 10 do
      assert.same({ "hello, all", "text" }, { ws[i]:receive(5) })
      assert.same({ "\0\1\2", "binary" }, { ws[i]:receive(5) })
    end
  end)

  it("reaches one route's connections only when given {route = path}", function()
    start()
    local other_side = {}
    server:route("/other", { open = function(ws) other_side[#other_side + 1] = ws end })
    local ws = connect(3)
    local other = {}
    for i = 1, 2 do
      other[i] = assert(luaws.connect(server:url("/other")))
      clients[#clients + 1] = other[i]
    end
    h.pump(function() return #other_side == 2 end, "both /other connections open")
    assert.equal(3, server:broadcast("to /ws", "text", { route = "/ws" }))
    assert.equal(1, server:broadcast("to /other", "text", { route = "/other", except = other_side[1] }))
    for i = 1, 3 do
      assert.same({ "to /ws", "text" }, { ws[i]:receive(5) })
      h.fails("timeout", ws[i]:receive(0.1))   -- nothing meant for /other
    end
    -- other_side[1] is the server side of other[1] or other[2]: exactly one
    -- of the two clients gets the message, and neither gets the /ws one
    local got, deadline = {}, core.now() + 15
    repeat
      for i = 1, 2 do got[i] = got[i] or other[i]:receive(0.05) end
    until got[1] or got[2] or core.now() > deadline
    for i = 1, 2 do got[i] = got[i] or other[i]:receive(0.1) end
    assert.equal(1, (got[1] == "to /other" and 1 or 0) + (got[2] == "to /other" and 1 or 0))
    assert.is_nil(got[1] == "to /ws" or got[2] == "to /ws" or nil)
    assert.has_error(function() server:broadcast("x", "text", { route = "/nope" }) end)
  end)

  it("skips the connection given as except", function()
    local relayed = {}
    start({}, {
      message = function(ws, msg, kind) relayed[#relayed + 1] = server:broadcast(msg, kind, ws) end,
    })
    local ws = connect(10)
    assert(ws[3]:send("from 3"))
    for i = 1, 10 do
      if i ~= 3 then assert.same({ "from 3", "text" }, { ws[i]:receive(5) }) end
    end
    assert.same({ 9 }, relayed)
    h.fails("timeout", ws[3]:receive(0.3))
  end)

  it("skips connections that are closing or gone", function()
    start()
    local ws = connect(4)
    assert(ws[1]:close())
    h.pump(function() return #closes == 1 end, "the close")
    assert.equal(3, server:broadcast("to the rest"))
    for i = 2, 4 do assert.same({ "to the rest", "text" }, { ws[i]:receive(5) }) end
  end)

  it("pushes from a luaws.every timer to every open socket", function()
    start()
    local ws = connect(3)
    local n = 0
    timers[#timers + 1] = luaws.every(0.05, function()
      n = n + 1
      server:broadcast("tick " .. n)
    end)
    for i = 1, 3 do
      for k = 1, 3 do assert.same({ "tick " .. k, "text" }, { ws[i]:receive(5) }) end
    end
  end)

  it("closes a client over its backpressure cap with 1008 and stops counting it", function()
    start { max_backpressure = 64 * 1024, close_timeout = 0.5 }
    local slow, fast = table.unpack(connect(2))
    slow:pause()
    local fast_got = 0
    core.conn_handlers(fast, { message = function() fast_got = fast_got + 1 end })
    local chunk = ("x"):rep(16 * 1024)
    local counts, sent = {}, 0
    repeat   -- the kernel takes a few MiB before luaws queues anything
      sent = sent + 1
      counts[sent] = server:broadcast(chunk, "binary")
      core.step(0)
    until counts[sent] < 2 or sent >= 4096
    assert.equal(1, counts[sent], ("%d broadcasts of 16 KiB all reached both clients"):format(sent))
    h.pump(function() return #closes > 0 end, "the slow client's close", 15)
    assert.equal(1008, closes[1][2])
    assert.equal(1, server:broadcast(chunk, "binary"))
    h.pump(function() return fast_got == sent + 1 end, "every broadcast at the fast client")
  end)

  it("counts connections, messages and bytes in and out exactly", function()
    start({}, { message = function(ws, msg, kind) ws:send(msg, kind) end })
    local ws = connect(3)
    local st = server:stats()
    assert.same({ 3, 3, 3, 0, 0, 0, 0, 0 }, { st.connections, st.accepted, st.upgraded, st.rejected,
      st.messages_in, st.messages_out, st.bytes_in, st.bytes_out })

    assert(ws[1]:send("a"))
    assert(ws[2]:send("bb"))
    assert(ws[2]:send("ccc"))
    assert(ws[3]:send(("\0"):rep(1000), "binary"))
    assert(ws[3]:send(""))
    assert.equal("a", (ws[1]:receive(5)))
    assert.equal("bb", (ws[2]:receive(5)))
    assert.equal("ccc", (ws[2]:receive(5)))
    assert.equal(1000, #ws[3]:receive(5))
    assert.equal("", (ws[3]:receive(5)))
    st = server:stats()
    assert.same({ 5, 5, 1006, 1006 }, { st.messages_in, st.messages_out, st.bytes_in, st.bytes_out })

    assert.equal(3, server:broadcast("xyz"))
    for i = 1, 3 do assert.equal("xyz", (ws[i]:receive(5))) end
    st = server:stats()
    assert.same({ 5, 8, 1006, 1015 }, { st.messages_in, st.messages_out, st.bytes_in, st.bytes_out })

    -- control frames are not messages; a refused request is counted as such
    local pongs = 0
    core.conn_handlers(ws[1]).pong = function() pongs = pongs + 1 end
    assert(ws[1]:ping("are you there"))
    h.pump(function() return pongs == 1 end, "the pong")
    assert.is_nil((luaws.connect(server:url("/nowhere"))))
    assert(ws[2]:close(1000, "done"))
    h.pump(function() return server:stats().connections == 2 end, "the closed connection to go")
    st = server:stats()
    assert.same({ 2, 4, 3, 1, 5, 8, 1006, 1015 }, { st.connections, st.accepted, st.upgraded, st.rejected,
      st.messages_in, st.messages_out, st.bytes_in, st.bytes_out })

    -- and each connection counts its own
    local c1 = ws[1]:stats()
    assert.same({ 1, 2, 1, 4 }, { c1.messages_out, c1.messages_in, c1.bytes_out, c1.bytes_in })
  end)
end)
