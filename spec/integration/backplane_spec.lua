-- SPDX-License-Identifier: MIT
-- The Redis backplane (listen{backplane = "redis://..."}) against a real
-- redis-server started here: topics joined across servers and processes,
-- each message delivered once, subscriptions counted in Redis, an outage
-- survived and counted, logins and unix sockets.
local h = require "helper"
local proc = require "support.proc"
local redis = require "support.redis"
local luaws = h.luaws
local cjson = require "cjson.safe"

local it_redis = redis.available() and it or pending
local WAIT = 20   -- seconds: a bound on waits, far above what a loaded machine needs

-- A server on the backplane whose /ws subscribes every connection to
-- "room"; events records what on_backplane heard.
local function server(url, events, extra)
  local o = { backplane = url, on_backplane = function(state, detail) events[#events + 1] = { state, detail } end }
  for k, v in pairs(extra or {}) do o[k] = v end
  local s = h.server(o)
  s:route("/ws", {
    open = function(ws) assert(ws:subscribe("room")) end,
    message = function(ws, msg, kind) ws:publish("room", msg, kind) end,
  })
  return s
end

local function up(s) return s:stats().backplane_up end

describe("Redis backplane", function()
  local r
  after_each(function()
    proc.cleanup()   -- first: clients of a killed subprocess then see their EOF
    h.cleanup()
    if r then r:stop() end
    r = nil
  end)

  it_redis("delivers a publish on one server to the subscribers of another, once each", function()
    r = assert(redis.start())
    local ea, eb = {}, {}
    local a, b = server(r.url, ea), server(r.url, eb)
    h.pump(function() return up(a) and up(b) end, "both backplanes up", WAIT)
    assert.same({ "up", "connected" }, ea[1])
    local ca = assert(luaws.connect(a:url("/ws")))
    local cb1, cb2 = assert(luaws.connect(b:url("/ws"))), assert(luaws.connect(b:url("/ws")))
    -- each process subscribes to the channel once, however many local subscribers
    h.pump(function() return r:cli("PUBSUB", "NUMSUB", "luaws:room"):match("(%d+)$") == "2" end,
      "two subscriptions in Redis", WAIT)
    assert(ca:send("from a"))
    assert.same({ "from a", "text" }, { cb1:receive(WAIT) })
    assert.same({ "from a", "text" }, { cb2:receive(WAIT) })
    assert.equal(1, a:publish("room", "server a", "binary"))   -- ca, locally
    assert.same({ "server a", "binary" }, { ca:receive(WAIT) })
    assert.same({ "server a", "binary" }, { cb1:receive(WAIT) })
    assert.same({ "server a", "binary" }, { cb2:receive(WAIT) })
    -- nothing twice: the sender's own server did not echo its ws:publish to it
    -- (ws:publish leaves ws out), nor did Redis give a server its own publish back
    h.idle(0.5)
    h.fails("timeout", ca:receive(0))
    h.fails("timeout", cb1:receive(0))
    h.fails("timeout", cb2:receive(0))
    local st = a:stats()
    assert.equal(2, st.backplane_published)
    assert.equal(0, st.backplane_dropped)
    assert.equal(0, b:stats().backplane_published)
    assert.equal(2, b:stats().backplane_received)
    -- the last local subscriber leaves: the process unsubscribes
    ca:close()
    h.pump(function() return r:cli("PUBSUB", "NUMSUB", "luaws:room"):match("(%d+)$") == "1" end,
      "one subscription left in Redis", WAIT)
  end)

  it_redis("keeps serving local traffic through an outage, counts what it could not publish, and comes back", function()
    r = assert(redis.start())
    local ea, eb = {}, {}
    local a, b = server(r.url, ea), server(r.url, eb)
    h.pump(function() return up(a) and up(b) end, "both backplanes up", WAIT)
    local a1, a2 = assert(luaws.connect(a:url("/ws"))), assert(luaws.connect(a:url("/ws")))
    local cb = assert(luaws.connect(b:url("/ws")))
    h.pump(function() return r:cli("PUBSUB", "NUMSUB", "luaws:room"):match("(%d+)$") == "2" end,
      "two subscriptions in Redis", WAIT)
    r:kill()
    h.pump(function() return not up(a) and not up(b) end, "both backplanes down", WAIT)
    assert.equal("down", ea[#ea][1])
    -- local delivery goes on; what could not cross is counted, not lost silently
    assert(a1:send("during the outage"))
    assert.same({ "during the outage", "text" }, { a2:receive(WAIT) })
    assert.equal(2, a:publish("room", "also local"))
    assert.same({ "also local", "text" }, { a1:receive(WAIT) })
    assert.same({ "also local", "text" }, { a2:receive(WAIT) })
    local dropped = a:stats().backplane_dropped
    assert.is_true(dropped >= 2, "dropped " .. dropped)
    h.fails("timeout", cb:receive(0.2))
    print(("# outage: %d publishes counted as dropped"):format(dropped))
    -- Redis again, same port: the servers reconnect by themselves and subscribe again
    assert(r:restart())
    h.pump(function() return up(a) and up(b) end, "both backplanes up again", 2 * WAIT)
    assert.same("up", ea[#ea][1])
    assert.is_true(a:stats().backplane_reconnects >= 1)
    h.pump(function() return r:cli("PUBSUB", "NUMSUB", "luaws:room"):match("(%d+)$") == "2" end,
      "the subscriptions back in Redis", WAIT)
    assert(a1:send("after"))
    assert.same({ "after", "text" }, { cb:receive(WAIT) })
    assert.same({ "after", "text" }, { a2:receive(WAIT) })
  end)

  it_redis("logs in with the password in the URL, and reports a wrong one", function()
    r = assert(redis.start { "--requirepass", "s3cret" })
    local good, bad = {}, {}
    local a = server(("redis://:s3cret@127.0.0.1:%d"):format(r.port), good)
    local b = server(("redis://:wrong@127.0.0.1:%d"):format(r.port), bad)
    h.pump(function() return up(a) end, "the backplane with the right password up", WAIT)
    h.pump(function() return #bad > 0 end, "the wrong password reported", WAIT)
    assert.equal("down", bad[1][1])
    assert.matches("WRONGPASS", bad[1][2], 1, true)
    assert.is_false(up(b))
    b:publish("room", "x")
    assert.is_true(b:stats().backplane_dropped >= 1)
  end)

  it_redis("speaks to Redis over a unix socket, with the db in the URL", function()
    local sock = os.tmpname() .. ".redis.sock"
    r = assert(redis.start { "--unixsocket", sock, "--unixsocketperm", "700" })
    local ea, eb = {}, {}
    local a = server("unix://" .. sock .. "?db=3", ea)
    local b = server("redis://127.0.0.1:" .. r.port .. "/3", eb)
    h.pump(function() return up(a) and up(b) end, "both backplanes up", WAIT)
    local cb = assert(luaws.connect(b:url("/ws")))
    h.pump(function() return r:cli("PUBSUB", "NUMSUB", "luaws:room"):match("(%d+)$") == "1" end,
      "b's subscription in Redis", WAIT)
    assert.equal(0, a:publish("room", "over the socket"))
    assert.same({ "over the socket", "text" }, { cb:receive(WAIT) })
    os.remove(sock)
  end)

  it("refuses a backplane URL it cannot read, naming listen", function()
    assert.has_error(function() luaws.listen { host = "127.0.0.1", port = 0, backplane = "http://x" } end,
      "listen: option 'backplane': expected redis://host:port[/db] or unix:///path")
  end)

  it_redis("with workers and Redis (chat.lua --workers 2 --redis), a line reaches every client once: Redis carries it, the relay does not", function()
    r = assert(redis.start())
    local p = proc.spawn({ "lua5.4", "examples/chat.lua", "--port", "0", "--host", "127.0.0.1",
      "--tick", "3600", "--workers", "2", "--redis", r.url })
    local port = assert(p:wait_line("luaws chat listening on http://127%.0%.0%.1:(%d+)/", WAIT))
    local url = ("ws://127.0.0.1:%s/ws"):format(port)
    -- the master prints the line, then each worker as it reaches luaws.run:
    -- connect once both take connections, or one alone would take them all
    assert(proc.wait_until(function()
      local _, n = p:stdout():gsub("luaws chat listening on", "")
      return n >= 3
    end, WAIT), "the workers did not start: " .. p:stdout() .. p:stderr())
    local clients = {}
    for i = 1, 12 do clients[i] = assert(luaws.connect(url)) end
    -- both workers hold clients and each subscribed once (the master never accepts)
    h.pump(function() return r:cli("PUBSUB", "NUMSUB", "luaws:room"):match("(%d+)$") == "2" end,
      "two worker processes subscribed", WAIT)
    assert(clients[1]:send(cjson.encode { name = "w", text = "once each" }))
    for i = 1, 12 do
      local msg = clients[i]:receive(WAIT)
      assert(msg, "client " .. i .. " got nothing")
      assert.equal("once each", (cjson.decode(msg) or {}).text)
    end
    h.idle(0.5)
    for i = 1, 12 do h.fails("timeout", clients[i]:receive(0)) end   -- not twice
    p:stop(15)
  end)

  it_redis("joins three chat servers (examples/chat.lua --redis): a line typed at one reaches the clients of all", function()
    r = assert(redis.start())
    local urls = {}
    for i = 1, 3 do
      local p = proc.spawn({ "lua5.4", "examples/chat.lua", "--port", "0", "--host", "127.0.0.1",
        "--tick", "3600", "--redis", r.url })
      local port = assert(p:wait_line("luaws chat listening on http://127%.0%.0%.1:(%d+)/", WAIT))
      urls[i] = ("ws://127.0.0.1:%s/ws"):format(port)
    end
    local clients = {}
    for i = 1, 3 do clients[i] = { assert(luaws.connect(urls[i])), assert(luaws.connect(urls[i])) } end
    -- a server subscribes once its first client opens; wait for all three in Redis
    h.pump(function() return r:cli("PUBSUB", "NUMSUB", "luaws:room"):match("(%d+)$") == "3" end,
      "three servers subscribed", WAIT)
    for from = 1, 3 do
      local text = ("héllo from server %d / \"quoted\""):format(from)
      assert(clients[from][1]:send(cjson.encode { name = "n" .. from, text = text }))
      for i = 1, 3 do
        for j = 1, 2 do
          local msg = clients[i][j]:receive(WAIT)
          assert(msg, ("client %d.%d got nothing for server %d's line"):format(i, j, from))
          local decoded = cjson.decode(msg)
          assert.equal(text, decoded and decoded.text, msg)
        end
      end
    end
  end)
end)
