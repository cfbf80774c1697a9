-- SPDX-License-Identifier: MIT
--
-- Topics: ws:subscribe / ws:unsubscribe / ws:topics / ws:publish and
-- server:publish, over real loopback sockets. The subscribers are luaws
-- clients in this process (h.server), and python3-websockets and node ws
-- peers (spec/support/pubsub_peer.py, .js) where a foreign client fits.
--
-- What is checked: exact counts returned by publish, exact bytes and kinds
-- received, per-subscriber order across copied (< 512 bytes) and shared
-- frames, leaving topics at close (the topic freed with its last
-- subscriber), the two limits, argument errors, publishing from a timer and
-- a coroutine, two routes on one topic, 1 MiB frames held by paused
-- subscribers, and a subscriber that never reads (1008) while the others
-- get everything. Outcomes only; figures are printed as "# " lines.
--
-- Three tests came from defects these specs found and that are fixed: a
-- number taken as a topic name, a drain handler run inside a publish (its
-- own publish overtook the one under way), messages counted as sent when
-- the socket had failed.
local h = require "helper"
local proc = require "support.proc"
local json = require "support.json"
local luaws, core = h.luaws, h.core

local KiB, MiB = 1024, 1024 * 1024

local function show(s)
  if type(s) ~= "string" then return tostring(s) end
  if #s > 40 then return ("%d bytes %q..."):format(#s, s:sub(1, 24)) end
  return ("%q"):format(s)
end

-- The next message on a client is msg (of kind), within 30 s.
local function recv_is(ws, msg, kind, what)
  local got, k, tok = ws:receive(30)
  if got ~= msg or k ~= (kind or "text") then
    error(("%s: got %s (%s%s), expected %s (%s)"):format(what or "receive", show(got), tostring(k),
      tok and ", " .. tostring(tok) or "", show(msg), kind or "text"), 2)
  end
end

-- Nothing more has come to any of list (after the loop turned for a while).
local function none_left(list, seconds)
  h.idle(seconds or 0.2)
  for i, ws in ipairs(list) do
    local got, _, tok = ws:receive(0)
    if got ~= nil or tok ~= "timeout" then
      error(("client %d: expected nothing more, got %s (%s)"):format(i, show(got), tostring(tok)), 2)
    end
  end
end

local function sorted(t)
  table.sort(t)
  return t
end

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

describe("topics", function()
  local server, clients, sides, closes, timers, errors0
  before_each(function()
    clients, sides, closes, timers = {}, {}, {}, {}
    errors0 = #h.errors
  end)

  -- No callback raised since this test began (h.errors holds every spec's).
  local function no_new_errors()
    assert.same({}, { table.unpack(h.errors, errors0 + 1) })
  end
  after_each(function()
    for _, t in ipairs(timers) do t:stop() end
    for _, ws in ipairs(clients) do
      if ws.state == "open" then
        ws:resume()
        ws:close()
      end
    end
    proc.cleanup()
    h.cleanup()
  end)

  -- A server whose /ws route subscribes each connection, at open, to every
  -- topic=NAME of its query; sides[] are the server sides in open order,
  -- closes[] what the close handler saw. handlers: more of the route's.
  local function start(opts, handlers)
    server = h.server(opts)
    handlers = handlers or {}
    local open, close = handlers.open, handlers.close
    handlers.open = function(ws)
      sides[#sides + 1] = ws
      for t in (ws.query or ""):gmatch("topic=([^&]+)") do assert(ws:subscribe(t)) end
      if open then open(ws) end
    end
    handlers.close = function(ws, code, reason)
      closes[#closes + 1] = { ws = ws, code = code, reason = reason }
      if close then close(ws, code, reason) end
    end
    server:route("/ws", handlers)
    return server
  end

  -- n clients of /ws (or path) with query; one at a time, each waiting for
  -- its server side, so that side[i] is the server side of list[i].
  local function connect(n, query, path, opts)
    local list, side = {}, {}
    for i = 1, n do
      local want = #sides + 1
      local ws = assert(luaws.connect(server:url((path or "/ws") .. (query and ("?" .. query) or "")), opts))
      clients[#clients + 1] = ws
      h.pump(function() return #sides >= want end, "the server side of connection " .. i)
      list[i], side[i] = ws, sides[want]
    end
    return list, side
  end

  -- Fill the sockets of paused clients (their server sides in side) with
  -- 1 MiB publishes to topic until every one of them has bytes waiting in
  -- its luaws queue (the kernel takes a few MiB first). readers read each.
  -- Returns the messages published.
  local function fill(topic, side, readers, count)
    local msgs = {}
    local function held()
      for _, s in ipairs(side) do if s:buffered() == 0 then return false end end
      return true
    end
    repeat
      local k = #msgs + 1
      msgs[k] = ("fill %03d|"):format(k) .. string.char(65 + k % 26):rep(MiB - 9)
      assert.equal(count, server:publish(topic, msgs[k], "binary"))
      for i, ws in ipairs(readers) do recv_is(ws, msgs[k], "binary", "reader " .. i .. " fill " .. k) end
    until held() or k >= 32
    assert.is_true(held(), "32 MiB published and some paused subscriber's queue is still empty")
    return msgs
  end

  describe("subscribe and publish", function()
    it("sends text and binary to every subscriber, exact counts and bytes, and nothing to others", function()
      start()
      local subs = connect(10, "topic=news")
      local others = connect(2, "topic=other")
      local all_bytes = {}
      for b = 0, 255 do all_bytes[#all_bytes + 1] = string.char(b) end
      local binary = table.concat(all_bytes):rep(4)   -- 1 KiB: a shared frame
      local sent = {
        { "hello, subscribers", "text" },
        { binary, "binary" },
        { "", "text" },
        { "", "binary" },
        { "κόσμε 🙂", "text" },
        { ("x"):rep(70000), "text" },   -- a 64-bit length header
      }
      for _, m in ipairs(sent) do assert.equal(10, server:publish("news", m[1], m[2])) end
      assert.equal(0, server:publish("nobody", "to no one"))
      assert.equal(0, server:publish("News", "topics are case-sensitive bytes"))
      for i, ws in ipairs(subs) do
        for j, m in ipairs(sent) do recv_is(ws, m[1], m[2], ("subscriber %d message %d"):format(i, j)) end
      end
      none_left(subs)
      none_left(others, 0)
      assert.equal(2, server:publish("other", "now you"))
      for _, ws in ipairs(others) do recv_is(ws, "now you") end
      none_left(subs, 0)
      no_new_errors()
    end)

    it("ws:publish reaches every subscriber but the sender, subscribed or not", function()
      local relayed = {}
      start({}, {
        message = function(ws, msg, kind) relayed[#relayed + 1] = ws:publish("room", msg, kind) end,
      })
      local ws = connect(5, "topic=room")
      local outsider = connect(1)[1]   -- not subscribed
      assert(ws[3]:send("from 3"))
      for i = 1, 5 do
        if i ~= 3 then recv_is(ws[i], "from 3", "text", "subscriber " .. i) end
      end
      assert(outsider:send("\0\1\2 from outside", "binary"))
      for i = 1, 5 do recv_is(ws[i], "\0\1\2 from outside", "binary", "subscriber " .. i) end
      assert.same({ 4, 5 }, relayed)
      none_left(ws)
      none_left({ outsider }, 0)
      -- a ws that publishes to a topic nobody else has
      assert.equal(0, sides[1]:publish("empty", "x"))
    end)

    it("unsubscribe stops delivery; subscribing twice delivers once", function()
      start()
      local ws, side = connect(1, "topic=a&topic=b")
      local c, s = ws[1], side[1]
      assert.same({ "a", "b" }, sorted(s:topics()))
      assert.is_true(s:subscribe("b"))   -- again: fine, still one subscription
      assert.same({ "a", "b" }, sorted(s:topics()))
      assert.equal(1, server:publish("b", "once"))
      recv_is(c, "once")
      none_left({ c })
      assert.is_true(s:unsubscribe("a"))
      assert.is_false(s:unsubscribe("a"))
      assert.is_false(s:unsubscribe("never subscribed"))
      assert.same({ "b" }, s:topics())
      assert.equal(0, server:publish("a", "not for you"))
      assert.equal(1, server:publish("b", "still b"))
      recv_is(c, "still b")
      assert.is_true(s:unsubscribe("b"))
      assert.same({}, s:topics())
      assert.equal(0, server:publish("b", "gone"))
      none_left({ c })
      -- and back
      assert.is_true(s:subscribe("a"))
      assert.equal(1, server:publish("a", "back"))
      recv_is(c, "back")
    end)

    it("topics() lists every topic byte for byte, 1 to 1024 bytes", function()
      start()
      local ws, side = connect(1)
      local names = { "plain", "with space", "\0binary\255", ("x"):rep(1024), "ümlaut", "a", "A" }
      for _, n in ipairs(names) do assert.is_true(side[1]:subscribe(n)) end
      assert.same(sorted({ table.unpack(names) }), sorted(side[1]:topics()))
      assert.equal(1, server:publish("\0binary\255", "nul and 255"))
      assert.equal(1, server:publish(("x"):rep(1024), "long name"))
      assert.equal(0, server:publish(("x"):rep(1023), "not that one"))
      recv_is(ws[1], "nul and 255")
      recv_is(ws[1], "long name")
      none_left(ws)
    end)
  end)

  describe("leaving", function()
    it("a connection leaves its topics when it closes, however it closes", function()
      start()
      local ws, side = connect(4, "topic=t")
      assert(side[4]:subscribe("solo"))
      assert.equal(4, server:publish("t", "all four"))
      for i = 1, 4 do recv_is(ws[i], "all four") end

      assert(ws[1]:close(1000, "bye"))   -- the client closes
      h.pump(function() return #closes == 1 end, "the first close")
      assert.equal(3, server:publish("t", "three"))
      assert.same({}, side[1]:topics())
      assert.is_false(side[1]:unsubscribe("t"))
      local ok, msg, tok = side[1]:subscribe("t")
      assert.same({ nil, "closed" }, { ok, tok }, msg)

      assert(side[4]:close(4000, "server says go"))   -- the server closes: out of the count at once
      assert.equal(0, server:publish("solo", "closing"))
      assert.equal(2, server:publish("t", "two"))
      ok, msg, tok = side[4]:subscribe("new")
      assert.same({ nil, "closed" }, { ok, tok }, msg)
      h.pump(function() return #closes == 2 end, "the second close")
      assert.equal(0, server:publish("solo", "its only subscriber is gone"))
      assert.same({}, side[4]:topics())

      -- the peer vanishes without a close frame: a raw socket that reads 101 and leaves
      local port = server.port
      local req = ("GET /ws?topic=t HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
        .. "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        :format(port)
      local r = proc.raw(port, req, { head = true, timeout = 5 })
      assert.truthy(r.response:find("^HTTP/1.1 101"))
      h.pump(function() return #closes == 3 end, "the vanished peer's close")
      assert.equal(1006, closes[3].code)
      assert.equal(2, server:publish("t", "the two left"))
      for i = 2, 3 do
        for _, m in ipairs { "three", "two", "the two left" } do recv_is(ws[i], m, "text", "client " .. i) end
      end
      none_left({ ws[2], ws[3] })
    end)

    it("frees a topic with its last subscriber: max_topics counts live topics only", function()
      start { max_topics = 2 }
      local ws, side = connect(3)
      local a, b, c = side[1], side[2], side[3]
      assert.is_true(a:subscribe("t1"))
      assert.is_true(a:subscribe("t2"))
      assert.is_true(b:subscribe("t1"))   -- an existing topic: no new one
      local ok, msg, tok = b:subscribe("t3")
      assert.is_nil(ok)
      assert.equal("limit", tok)
      assert.equal("subscribe: max_topics (2) reached", msg)
      assert.is_true(a:unsubscribe("t2"))   -- t2 had one subscriber: freed
      assert.is_true(b:subscribe("t3"))
      assert.equal("limit", select(3, c:subscribe("t4")))
      assert(ws[1]:close())   -- a leaves t1, which b still has: still 2 topics
      h.pump(function() return #closes == 1 end, "a's close")
      assert.equal("limit", select(3, c:subscribe("t4")))
      assert(ws[2]:close())   -- b leaves t1 and t3: both freed
      h.pump(function() return #closes == 2 end, "b's close")
      assert.is_true(c:subscribe("t4"))
      assert.is_true(c:subscribe("t5"))
      assert.equal("limit", select(3, c:subscribe("t6")))
      assert.equal(0, server:publish("t1", "gone"))
      assert.equal(1, server:publish("t5", "here"))
      recv_is(ws[3], "here")
    end)
  end)

  describe("limits", function()
    it("max_topics_per_connection: nil, a message naming it, \"limit\"; per connection", function()
      start { max_topics_per_connection = 3 }
      local ws, side = connect(2)
      for _, t in ipairs { "a", "b", "c" } do assert.is_true(side[1]:subscribe(t)) end
      local ok, msg, tok = side[1]:subscribe("d")
      assert.same({ nil, "subscribe: max_topics_per_connection (3) reached", "limit" }, { ok, msg, tok })
      assert.is_true(side[1]:subscribe("a"))   -- one it has: not a new subscription
      for _, t in ipairs { "a", "b", "d" } do assert.is_true(side[2]:subscribe(t)) end   -- its own three
      assert.is_true(side[1]:unsubscribe("c"))
      assert.is_true(side[1]:subscribe("d"))
      assert.same({ "a", "b", "d" }, sorted(side[1]:topics()))
      assert.equal(2, server:publish("d", "both"))
      for i = 1, 2 do recv_is(ws[i], "both") end
    end)

    it("defaults: 64 topics per connection and 100,000 topics per server", function()
      assert.equal(64, luaws.defaults.max_topics_per_connection)
      assert.equal(100000, luaws.defaults.max_topics)
      start()
      local _, side = connect(1)
      for i = 1, 64 do assert.is_true(side[1]:subscribe("t" .. i)) end
      local ok, msg, tok = side[1]:subscribe("t65")
      assert.same({ nil, "subscribe: max_topics_per_connection (64) reached", "limit" }, { ok, msg, tok })
      h.cleanup()

      sides, closes = {}, {}
      start { max_topics_per_connection = 1000 }
      local ws
      ws, side = connect(101)
      for i = 1, 100 do
        local s = side[i]
        for j = 1, 1000 do
          if not s:subscribe(("t%d.%d"):format(i, j)) then error(("subscribe %d.%d failed"):format(i, j)) end
        end
      end
      ok, msg, tok = side[101]:subscribe("one more")
      assert.same({ nil, "subscribe: max_topics (100000) reached", "limit" }, { ok, msg, tok })
      assert.is_true(side[101]:subscribe("t7.7"))   -- an existing topic
      assert.equal(2, server:publish("t7.7", "two of us"))
      recv_is(ws[7], "two of us")
      recv_is(ws[101], "two of us")
      assert(ws[50]:close())   -- frees its 1000 topics
      h.pump(function() return #closes == 1 end, "the close")
      assert.is_true(side[101]:subscribe("one more"))
      assert.equal(0, server:publish("t50.1", "gone"))
    end)

    it("options: a negative limit or a non-number is refused by listen", function()
      assert.has_error(function() luaws.listen { port = 0, max_topics = -1 } end)
      assert.has_error(function() luaws.listen { port = 0, max_topics_per_connection = "many" } end)
    end)
  end)

  describe("arguments", function()
    it("a topic must be a string of 1 to 1024 bytes; errors name the method", function()
      start()
      local _, side = connect(1)
      local s = side[1]
      for _, bad in ipairs { { nil, "nil" }, { {}, "table" }, { true, "boolean" }, { "", "" }, { ("x"):rep(1025), "" } } do
        local v = bad[1]
        for _, m in ipairs {
          { "subscribe", function() return s:subscribe(v) end },
          { "unsubscribe", function() return s:unsubscribe(v) end },
          { "publish", function() return s:publish(v, "data") end },
          { "publish", function() return server:publish(v, "data") end },
        } do
          local ok, err = pcall(m[2])
          assert.is_false(ok, m[1] .. " took " .. show(v))
          assert.truthy(tostring(err):find("'" .. m[1] .. "'", 1, true), err)
          if bad[2] ~= "" then assert.truthy(tostring(err):find(bad[2], 1, true), err) end
        end
      end
      assert.is_true(s:subscribe(("x"):rep(1024)))
      for _, f in ipairs {
        function() return server:publish("t") end,                    -- no data
        function() return server:publish("t", {}) end,
        function() return server:publish("t", "x", "bogus") end,      -- not a kind
        function() return s:publish("t") end,
        function() return s:publish("t", "x", "utf8") end,
      } do
        local ok, err = pcall(f)
        assert.is_false(ok)
        assert.truthy(tostring(err):find("'publish'", 1, true), err)
      end
      no_new_errors()
    end)

    it("a client connection has no topics: subscribe and publish raise", function()
      start()
      local ws = connect(1)[1]
      local ok, err = pcall(ws.subscribe, ws, "t")
      assert.is_false(ok)
      assert.truthy(tostring(err):find("subscribe", 1, true), err)
      ok, err = pcall(ws.publish, ws, "t", "x")
      assert.is_false(ok)
      assert.truthy(tostring(err):find("publish", 1, true), err)
      for _, m in ipairs { "topics", "unsubscribe" } do
        ok, err = pcall(ws[m], ws, "t")
        assert.is_false(ok)
        assert.truthy(tostring(err):find(m, 1, true), err)
      end
    end)
  end)

  describe("publishing from outside a handler", function()
    it("from a luaws.every timer and from a luaws.spawn coroutine", function()
      start()
      server:route("/echo", { message = function(ws, msg, kind) ws:send(msg, kind) end })
      local ws = connect(3, "topic=ticks")
      local counts = {}
      timers[#timers + 1] = luaws.every(0.05, function(t)
        counts[#counts + 1] = server:publish("ticks", "tick " .. #counts + 1)
        if #counts == 3 then t:stop() end
      end)
      for i = 1, 3 do
        for k = 1, 3 do recv_is(ws[i], "tick " .. k, "text", "client " .. i) end
      end
      assert.same({ 3, 3, 3 }, counts)

      local result, err
      luaws.spawn(function()
        local ok, e = pcall(function()   -- pcall is yieldable in Lua 5.4
          local c = assert(luaws.connect(server:url("/echo")))   -- yields: this is a coroutine
          assert(c:send("ping"))
          local m = assert(c:receive(5))                          -- yields
          result = server:publish("ticks", "the coroutine got " .. m, "binary")
          c:close()
        end)
        if not ok then err = e end
      end)
      h.pump(function() return result ~= nil or err ~= nil end, "the coroutine's publish")
      assert.is_nil(err)
      assert.equal(3, result)
      for i = 1, 3 do recv_is(ws[i], "the coroutine got ping", "binary") end
      none_left(ws)
    end)

    it("one topic with subscribers on two routes, one of them a coroutine route", function()
      local relayed = {}
      start()
      local co_sides = {}
      server:route("/co", function(ws)
        co_sides[#co_sides + 1] = ws
        assert(ws:subscribe("shared"))
        for msg, kind in ws:messages() do
          relayed[#relayed + 1] = ws:publish("shared", "co says " .. msg, kind)
        end
      end)
      local a = connect(2, "topic=shared")
      local co = {}
      for i = 1, 2 do
        co[i] = assert(luaws.connect(server:url("/co")))
        clients[#clients + 1] = co[i]
        h.pump(function() return #co_sides == i end, "the coroutine route's connection")
      end
      assert.equal(4, server:publish("shared", "to both routes"))
      for _, ws in ipairs { a[1], a[2], co[1], co[2] } do recv_is(ws, "to both routes") end
      assert(co[1]:send("hi"))
      for _, ws in ipairs { a[1], a[2], co[2] } do recv_is(ws, "co says hi") end
      assert.same({ 3 }, relayed)
      none_left({ a[1], a[2], co[1], co[2] })
      assert.equal(2, server:broadcast("only /ws", "text", { route = "/ws" }))   -- routes still apart
      for _, ws in ipairs(a) do recv_is(ws, "only /ws") end
      none_left(co, 0)
    end)
  end)

  describe("shared frames and slow subscribers", function()
    it("1 MiB publishes to 200 subscribers, 100 paused: readers get each intact, the paused ones all once they read", function()
      start()
      local ws, side = connect(200, "topic=big")
      local readers, paused, paused_sides = {}, {}, {}
      for i = 1, 100 do readers[i] = ws[i] end
      for i = 101, 200 do
        assert(ws[i]:pause())
        paused[#paused + 1], paused_sides[#paused_sides + 1] = ws[i], side[i]
      end
      local msgs = fill("big", paused_sides, readers, 200)
      -- one more: each of the 100 paused queues now holds this whole frame,
      -- one shared block, besides what it held before
      local k = #msgs + 1
      msgs[k] = ("last %03d|"):format(k) .. ("Z"):rep(MiB - 9)
      assert.equal(200, server:publish("big", msgs[k], "binary"))
      local queued = 0
      for _, s in ipairs(paused_sides) do queued = queued + s:buffered() end
      print(("# %d publishes of 1 MiB to 200 subscribers; the 100 paused queues hold %.1f MiB"):format(k, queued / MiB))
      assert.is_true(queued >= 100 * MiB, ("the paused queues hold %d bytes"):format(queued))
      for i, c in ipairs(readers) do recv_is(c, msgs[k], "binary", "reader " .. i) end
      none_left(readers)
      for _, c in ipairs(paused) do assert(c:resume()) end
      for i, c in ipairs(paused) do
        for j = 1, k do recv_is(c, msgs[j], "binary", ("paused %d message %d"):format(i, j)) end
      end
      none_left(paused)
      for _, s in ipairs(side) do assert.equal(0, s:buffered()) end
      assert.same({}, closes)
      no_new_errors()
    end)

    it("keeps each subscriber's order across copied and shared frames, sends and broadcasts, inside and outside the read path", function()
      local ops
      start({}, { message = function(_, msg) if msg == "go" then ops("handler") end end })
      local ws, side = connect(4, "topic=mix")
      assert(ws[3]:pause())
      assert(ws[4]:pause())
      local fills = fill("mix", { side[3], side[4] }, { ws[1], ws[2] }, 4)
      -- header + payload below 512 bytes is copied into a queue, from 512 on
      -- it is shared; lengths around the header sizes (2, 4, 10 bytes)
      local sizes = { 0, 1, 100, 125, 126, 505, 506, 507, 508, 509, 510, 600, 2047, 2048, 4096,
        65535, 65536, 100000, 300, MiB, 1, 511, 512, 70000, 10 }
      local expected = {}
      function ops(tag)
        for i, n in ipairs(sizes) do
          local kind = i % 2 == 0 and "binary" or "text"
          local body = (("%s %02d|"):format(tag, i) .. ("abcdefghij"):rep(n // 10 + 1)):sub(1, n)
          assert.equal(4, server:publish("mix", body, kind))
          expected[#expected + 1] = { body, kind }
          if i % 4 == 0 then
            local b = ("%s broadcast %d"):format(tag, i)
            assert.equal(4, server:broadcast(b))
            expected[#expected + 1] = { b, "text" }
          end
          if i % 5 == 0 then
            local s = ("%s send %d "):format(tag, i) .. ("s"):rep(i * 100)
            for j = 1, 4 do assert(side[j]:send(s, "binary")) end
            expected[#expected + 1] = { s, "binary" }
          end
        end
      end
      ops("outside")
      local per = #expected
      assert(ws[1]:send("go"))   -- the same again from ws[1]'s message handler, where its sends are corked
      h.pump(function() return #expected == 2 * per end, "the message handler's publishes")
      for i = 1, 2 do
        for j, m in ipairs(expected) do recv_is(ws[i], m[1], m[2], ("reader %d message %d"):format(i, j)) end
      end
      for i = 3, 4 do
        assert.is_true(side[i]:buffered() > MiB)
        assert(ws[i]:resume())
        for j, m in ipairs(fills) do recv_is(ws[i], m, "binary", ("paused %d fill %d"):format(i, j)) end
        for j, m in ipairs(expected) do recv_is(ws[i], m[1], m[2], ("paused %d message %d"):format(i, j)) end
      end
      none_left(ws)
      no_new_errors()
    end)

    it("closes a subscriber that never reads with 1008 past max_backpressure; the others get every message", function()
      start { max_backpressure = 64 * KiB, close_timeout = 30 }
      local ws, side = connect(4, "topic=feed")
      local slow = ws[4]
      assert(slow:pause())
      local msgs, got, bad = {}, { 0, 0, 0 }, {}
      for i = 1, 3 do
        core.conn_handlers(ws[i], { message = function(_, msg, kind)
          got[i] = got[i] + 1
          if msg ~= msgs[got[i]] or kind ~= "binary" then
            bad[#bad + 1] = ("reader %d message %d: %s"):format(i, got[i], show(msg))
          end
        end })
      end
      local counts = {}
      local function publish()
        local k = #msgs + 1
        msgs[k] = ("%06d|"):format(k) .. string.char(65 + k % 26):rep(16 * KiB - 7)
        counts[k] = server:publish("feed", msgs[k], "binary")
        core.step(0)
      end
      repeat publish() until counts[#counts] < 4 or #counts >= 4096   -- the kernel takes some MiB first
      local cut = #counts
      assert.equal(3, counts[cut], ("%d publishes of 16 KiB all reached the one that does not read"):format(cut))
      for _ = 1, 50 do publish() end
      local tally = {}
      for k, n in ipairs(counts) do tally[#tally + 1] = (k < cut and n == 4 or k >= cut and n == 3) and "." or n end
      assert.equal(("."):rep(#counts), table.concat(tally))
      assert.equal("closing", side[4].state)
      h.pump(function() return got[1] == #msgs and got[2] == #msgs and got[3] == #msgs end,
        "every message at the three readers", 60)
      assert.same({}, bad)
      print(("# the subscriber that did not read was refused at publish %d of %d (16 KiB each)"):format(cut, #msgs))
      -- it reads now: everything that was accepted for it, in order, then the 1008
      assert(slow:resume())
      for k = 1, cut - 1 do recv_is(slow, msgs[k], "binary", "the slow one, message " .. k) end
      local m, _, tok = slow:receive(10)
      assert.same({ nil, "closed" }, { m, tok })
      assert.same({ 1008, "backpressure" }, { slow:close_status() })
      h.pump(function() return #closes == 1 end, "the server's close handler")
      assert.equal(side[4], closes[1].ws)
      assert.equal(1008, closes[1].code)
      for i = 1, 3 do assert.equal("open", ws[i].state) end
    end)

    it("takes a message larger than max_backpressure for a subscriber whose queue is empty, as ws:send does", function()
      start { max_backpressure = 64 * KiB }
      local ws, side = connect(3, "topic=large")
      local big = ("L"):rep(MiB)
      for i = 1, 3 do assert.equal(0, side[i]:buffered()) end
      assert.equal(3, server:publish("large", big, "binary"))
      for i = 1, 3 do recv_is(ws[i], big, "binary", "client " .. i) end
      assert.same({}, closes)
    end)

    local have_openssl = proc.have_command("openssl")
    local it_ssl = have_openssl and it or pending
    it_ssl("over wss:// (no writev): order and bytes across copied and shared frames to a paused subscriber", function()
      local dir = os.tmpname()
      os.remove(dir)
      local cert, key = dir .. "/cert.pem", dir .. "/key.pem"
      assert(sh("mkdir -p " .. dir))
      assert(sh(("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
        .. "-addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s >/dev/null 2>&1"):format(key, cert)))
      local ok, err = pcall(function()
        start { tls = { certificate = cert, key = key } }
        local ws, side = connect(3, "topic=tls", nil, { tls = { ca = cert } })
        assert(ws[3]:pause())
        local fills = fill("tls", { side[3] }, { ws[1], ws[2] }, 3)
        local expected = {}
        for i, n in ipairs { 10, 600, 509, 510, 100000, 0, MiB, 3, 2048 } do
          local body = (("tls %02d|"):format(i) .. ("0123456789"):rep(n // 10 + 1)):sub(1, n)
          assert.equal(3, server:publish("tls", body, "binary"))
          expected[#expected + 1] = body
        end
        for i = 1, 2 do for j, m in ipairs(expected) do recv_is(ws[i], m, "binary", ("reader %d message %d"):format(i, j)) end end
        assert(ws[3]:resume())
        for j, m in ipairs(fills) do recv_is(ws[3], m, "binary", "paused fill " .. j) end
        for j, m in ipairs(expected) do recv_is(ws[3], m, "binary", "paused message " .. j) end
        none_left(ws)
      end)
      sh("rm -rf " .. dir)
      assert(ok, err)
    end)
  end)

  describe("foreign subscribers", function()
    local function have_python_websockets()
      return proc.have_python() and sh(proc.PYTHON .. " -c 'import websockets' >/dev/null 2>&1")
    end

    -- A peer (argv, its name) and a luaws client subscribe to "peers";
    -- what the peer sends is relayed with ws:publish (not back to it).
    local function peer_case(argv, name)
      local relayed = {}
      start({}, { message = function(ws, msg, kind) relayed[#relayed + 1] = ws:publish("peers", msg, kind) end })
      local mine = connect(1, "topic=peers")[1]
      local p = proc.spawn(argv(server:url("/ws?topic=peers"), name), { unset = { "LD_PRELOAD" } })
      h.pump(function() return #sides == 2 end, "the peer's connection", 20)
      local peer_side = sides[2]
      local pattern = {}
      for i = 0, MiB - 1 do pattern[#pattern + 1] = string.char(i % 251) end
      pattern = table.concat(pattern)
      local all = {}
      for b = 0, 255 do all[#all + 1] = string.char(b) end
      all = table.concat(all)
      local function pub(msg, kind)
        assert.equal(2, server:publish("peers", msg, kind))
        recv_is(mine, msg, kind)
      end
      pub("κόσμε 🙂", "text")
      pub(all, "binary")
      pub(pattern, "binary")
      pub("", "text")
      pub(("y"):rep(600), "text")
      pub("say:" .. name, "text")
      recv_is(mine, "hello from " .. name, "text")   -- relayed by ws:publish: to us, not back to it
      assert.same({ 1 }, relayed)
      pub("bye", "text")
      h.pump(function() return #closes == 1 end, "the peer's close", 20)
      assert.equal(peer_side, closes[1].ws)
      assert.equal(1000, closes[1].code)
      assert.equal(1, server:publish("peers", "after"))
      recv_is(mine, "after")
      assert.equal(0, p:wait(20), p:stderr())
      local lines, others = json.decode_lines(p:stdout())
      assert.same({}, others)
      local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end
      local function msg(kind, s)
        if #s <= 64 then return { event = "message", kind = kind, len = #s, hex = hex(s), pattern = json.null } end
        return { event = "message", kind = kind, len = #s, hex = json.null, pattern = kind == "binary" and s == pattern }
      end
      local want = {
        { event = "open" },
        msg("text", "κόσμε 🙂"), msg("binary", all), msg("binary", pattern), msg("text", ""),
        msg("text", ("y"):rep(600)), msg("text", "say:" .. name), msg("text", "bye"),
        { event = "close", code = 1000 },
      }
      assert.same(want, lines)
    end

    local it_py = have_python_websockets() and it or pending
    it_py("a python3-websockets subscriber gets every publish, byte for byte, and its own messages go to the others only", function()
      peer_case(function(url, name) return { proc.PYTHON, "spec/support/pubsub_peer.py", url, name } end, "python")
    end)

    local it_node = proc.have_node_ws() and it or pending
    it_node("a node ws subscriber gets every publish, byte for byte, and its own messages go to the others only", function()
      peer_case(function(url, name) return { "node", "spec/support/pubsub_peer.js", url, name } end, "node")
    end)
  end)

  describe("publishing while a drain handler runs", function()
    -- Three subscribers X, D, Y (subscribed in that order: a publish walks
    -- Y, D, X). D's socket is filled until its luaws queue holds bytes; then
    -- D's client reads, and its message handler (in this process) publishes
    -- "A" before the server's write watcher has run: the publish's flush
    -- empties D's queue and D's drain handler runs inside the publish.
    -- on_drain(ws) is what that drain handler does. Returns what X, Y and D
    -- received after the fill, whether the drain ran inside the publish,
    -- A's count and the results of on_drain.
    local function provoke(on_drain)
      local inside, drained_inside, result = false, false, nil
      local dside
      start({}, {
        drain = function(ws)
          if inside and ws == dside and not drained_inside then
            drained_inside = true
            result = { on_drain(ws) }
          end
        end,
      })
      local x = connect(1, "topic=order")
      local d, ds = connect(1, "topic=order&topic=fill")
      local y = connect(1, "topic=order")
      dside = ds[1]
      x, d, y = x[1], d[1], y[1]
      assert(d:pause())
      local k = 0
      repeat
        k = k + 1
        assert.equal(1, server:publish("fill", ("%04d|"):format(k) .. ("f"):rep(64 * KiB), "binary"))
      until dside:buffered() > 0 or k >= 1024
      assert.is_true(dside:buffered() > 0)
      local got = { x = {}, y = {}, d = {} }
      local a_count
      for name, c in pairs { x = x, y = y } do
        core.conn_handlers(c, { message = function(_, msg) got[name][#got[name] + 1] = msg end })
      end
      local fills = 0
      core.conn_handlers(d, { message = function(_, msg)
        if msg:sub(5, 5) == "|" and #msg > 64 * KiB then
          fills = fills + 1
          if fills == 1 then
            inside = true
            a_count = server:publish("order", "A")
            inside = false
          end
        else
          got.d[#got.d + 1] = msg
        end
      end })
      assert(d:resume())
      h.pump(function() return fills == k and a_count ~= nil end, "D reads its fill")
      h.idle(0.3)
      return got, drained_inside, a_count, result
    end

    it("a drain handler that unsubscribes during the publish: the walk goes on, the counts are right", function()
      local got, drained_inside, a_count, result = provoke(function(ws)
        return ws:unsubscribe("order"), server:publish("order", "B")
      end)
      print(("# drain handler ran inside the publish: %s"):format(tostring(drained_inside)))
      assert.equal(3, a_count)
      if drained_inside then
        assert.same({ true, 2 }, result)   -- D is out: B reaches X and Y
        assert.same({ "A" }, got.d)
        assert.equal(2, server:publish("order", "C"))
      end
      no_new_errors()
    end)

    it("never runs a drain handler inside a publish, so one published from it cannot overtake the publish under way", function()
      -- Before the fix the drain ran inside the publish and its own publish
      -- reached the subscribers after D before the outer one: X got B, A.
      local got, drained_inside = provoke(function() return server:publish("order", "B") end)
      print(("# drain handler ran inside the publish: %s; X got %s, Y got %s"):format(tostring(drained_inside),
        table.concat(got.x, ","), table.concat(got.y, ",")))
      assert.is_false(drained_inside)
      assert.same({ "A" }, got.y)
      assert.same({ "A" }, got.d)
      assert.same({ "A" }, got.x)
    end)
  end)

  describe("stats", function()
    it("server:stats() and ws:stats() count each message publish delivered, once", function()
      start()
      local ws, side = connect(3, "topic=s")
      local st0 = server:stats()
      assert.equal(3, server:publish("s", "abc"))
      assert.equal(3, server:publish("s", ("b"):rep(1000), "binary"))
      assert.equal(2, side[1]:publish("s", "xy"))
      for i = 1, 3 do
        recv_is(ws[i], "abc")
        recv_is(ws[i], ("b"):rep(1000), "binary")
        if i ~= 1 then recv_is(ws[i], "xy") end
      end
      local st = server:stats()
      assert.same({ 8, 3 * 3 + 3 * 1000 + 2 * 2 }, { st.messages_out - st0.messages_out, st.bytes_out - st0.bytes_out })
      assert.same({ 2, 1003 }, { side[1]:stats().messages_out, side[1]:stats().bytes_out })
      assert.same({ 3, 1005 }, { side[2]:stats().messages_out, side[2]:stats().bytes_out })
    end)

    it("counts no message for a subscriber whose socket failed, as ws:send does", function()
      -- Two subscribers whose peers left after the 101; their server sides
      -- are paused, so the server has not read the EOF: the first publish
      -- goes into the kernel (whose peer answers with a reset), a later one
      -- fails on the socket (a fan-out is written once at the end of its loop
      -- turn: a turn passes between publishes), and publish does not count
      -- the sends to a connection that has failed. stats() agree.
      start({}, { open = function(ws) assert(ws:pause()) end })
      local req = ("GET /ws?topic=gone HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        .. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
      for _ = 1, 2 do
        local r = proc.raw(server.port, req, { head = true, timeout = 5 })
        assert.truthy(r.response:find("^HTTP/1.1 101"))
      end
      h.pump(function() return #sides == 2 end, "both server sides")
      h.idle(0.2)
      local st0 = server:stats()
      local reached, counts = 0, {}
      for i = 1, 4 do
        counts[i] = server:publish("gone", "message " .. i)
        reached = reached + counts[i]
        h.idle(0.1)   -- the turn's write, and the reset it meets
      end
      local st = server:stats()
      print(("# publish returned %s; stats().messages_out grew by %d"):format(table.concat(counts, ","),
        st.messages_out - st0.messages_out))
      assert.is_true(reached < 8, "every publish reached both: the sockets did not fail")
      -- got: 4 more messages_out (2 for the failed sends) with publish counting 2
      assert.equal(reached, st.messages_out - st0.messages_out)
    end)
  end)

  describe("topic names", function()
    it("a number is not a topic name: subscribe, unsubscribe and publish raise", function()
      start()
      local _, side = connect(1)
      local s = side[1]
      local ok, err = pcall(s.subscribe, s, 42)
      -- got: true, and s:topics() is { "42" } (lua_tolstring turned the
      -- argument into a string before the type check ran)
      assert.is_false(ok, "ws:subscribe(42) returned " .. tostring(err) .. "; topics: " .. table.concat(s:topics(), ","))
      assert.truthy(tostring(err):find("bad argument #1 to 'subscribe' (topic name expected, got number)", 1, true), err)
      assert.is_false((pcall(server.publish, server, 42, "x")))
      assert.is_false((pcall(s.publish, s, 42, "x")))
      assert.is_false((pcall(s.unsubscribe, s, 42)))
    end)
  end)
end)
