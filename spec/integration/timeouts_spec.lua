-- The connection timers (DESIGN "timers"): idle_timeout, keep-alive pings
-- and their pong timeout, handshake_timeout, close_timeout. Short timeouts,
-- generous upper bounds: a loaded machine may be late, never early. A timer
-- is checked not to fire before its time (lower bounds, measured from before
-- the timer can have started) and to fire within LATE seconds of it; the
-- time it took is reported (# lines). A timer that must not fire is given a
-- margin of a second or more, not a few hundred ms a busy machine can eat.
local h = require "helper"
local proc = require "support.proc"
local luaws, core = h.luaws, h.core

local LATE = 10   -- seconds a timer may be late on a loaded machine
local WAIT = LATE + 5   -- bound on each wait

describe("connection timers", function()
  local server, url, closed, clients, timers
  local function start(opts)
    closed = nil
    server = h.server(opts)
    server:route("/ws", {
      message = function() end,
      close = function(_, code, reason) closed = { code, reason, at = core.now() } end,
    })
    url = server:url("/ws")
  end
  local function connect(opts)
    local ws = assert(luaws.connect(url, opts))
    clients[#clients + 1] = ws
    return ws
  end
  before_each(function() clients, timers = {}, {} end)
  after_each(function()
    for _, t in ipairs(timers) do t:stop() end
    for _, ws in ipairs(clients) do
      ws:resume()
      if ws.state == "open" then ws:close() end
    end
    h.cleanup()
    proc.cleanup()
  end)

  describe("idle_timeout", function()
    it("closes a silent client and reports 1006 \"timeout\" to the close handler", function()
      start { idle_timeout = 0.5 }
      local t0 = core.now()
      local ws = connect()
      h.pump(function() return closed ~= nil end, "the idle timeout", WAIT)
      local took = closed.at - t0
      print(("# idle_timeout 0.5 s: closed after %.3f s"):format(took))
      assert.same({ 1006, "timeout" }, { closed[1], closed[2] })
      assert.is_true(took >= 0.45, ("closed after %.3f s, before idle_timeout"):format(took))
      assert.is_true(took <= 0.5 + LATE, ("closed after %.3f s"):format(took))
      -- the client is told (1001 "timeout") and the TCP connection ends
      h.pump(function() return ws.state == "closed" end, "the client to see the close", WAIT)
      assert.same({ 1001, "timeout" }, { ws:close_status() })
    end)

    it("ends a coroutine route's messages() and reports 1006 \"timeout\" in close_status", function()
      local status
      server = h.server { idle_timeout = 0.3 }
      server:route("/ws", function(ws)
        for msg in ws:messages() do ws:send(msg) end
        status = { ws:close_status() }
      end)
      url = server:url("/ws")
      local ws = connect()
      assert(ws:send("one"))
      assert.equal("one", (ws:receive(5)))
      h.pump(function() return status ~= nil end, "the coroutine to finish", WAIT)
      assert.same({ 1006, "timeout" }, status)
    end)

    it("keeps a client open past twice idle_timeout while it sends something every 0.1 s", function()
      start { idle_timeout = 1 }
      local ws = connect()
      timers[#timers + 1] = luaws.every(0.1, function() ws:send("still here") end)
      h.idle(2.2)
      assert.is_nil(closed)
      assert.equal("open", ws.state)
    end)

    it("counts pongs as traffic: a silent client that answers pings stays open", function()
      start { idle_timeout = 1, keep_alive_interval = 0.1 }
      local ws = connect()
      h.idle(2.2)
      assert.is_nil(closed)
      assert.equal("open", ws.state)
    end)
  end)

  describe("keep-alive", function()
    it("pings every keep_alive_interval and stays open while the client answers", function()
      local INTERVAL = 0.3
      start { keep_alive_interval = INTERVAL, keep_alive_timeout = 0.5 }
      local t0 = core.now()   -- before the server's ping timer can start
      local ws = connect()
      local pings = {}
      core.conn_handlers(ws).ping = function(_, payload) pings[#pings + 1] = { core.now(), payload } end
      h.pump(function() return #pings >= 4 end, "four pings", 4 * INTERVAL + WAIT)
      local at = {}
      for i, p in ipairs(pings) do at[i] = ("%.3f"):format(p[1] - t0) end
      print(("# keep_alive_interval %.1f s: pings at %s s"):format(INTERVAL, table.concat(at, ", ")))
      -- not faster than the interval: the fourth no earlier than 4 intervals in
      assert.is_true(pings[4][1] - t0 >= 4 * INTERVAL - 0.05, ("the fourth ping came at %s s"):format(at[4]))
      assert.is_nil(closed)
      assert.equal("open", ws.state)
    end)

    it("sends no pings when keep_alive_interval is 0", function()
      start { keep_alive_interval = 0 }
      local ws = connect()
      local pings = 0
      core.conn_handlers(ws).ping = function() pings = pings + 1 end
      h.idle(0.8)
      assert.equal(0, pings)
      assert.equal("open", ws.state)
    end)

    -- ws:pause() stops our client reading: it never sees the ping, so it
    -- never answers.
    for _, case in ipairs {
      { interval = 0.3, timeout = 0.2 },
      { interval = 0.3, timeout = 0.5 },   -- DESIGN: "ping every X s and give up after 2·X"
      { interval = 0.2, timeout = 0.4 },
    } do
      it(("closes a client that does not answer pings with 1006 \"timeout\" (interval %.1f s, timeout %.1f s)")
        :format(case.interval, case.timeout), function()
        start { keep_alive_interval = case.interval, keep_alive_timeout = case.timeout }
        local t0 = core.now()   -- before the server's ping timer can start
        local ws = connect()
        ws:pause()
        local bound = case.interval + case.timeout + LATE
        local ok = pcall(h.pump, function() return closed ~= nil end, "the pong timeout", bound + 5)
        assert.is_true(ok, ("still open %.1f s after it stopped reading: a ping every %.1f s, each pong due %.1f s after it")
          :format(bound + 5, case.interval, case.timeout))
        local took = closed.at - t0
        print(("# keep-alive %.1f s + %.1f s: closed after %.3f s"):format(case.interval, case.timeout, took))
        assert.same({ 1006, "timeout" }, { closed[1], closed[2] })
        assert.is_true(took >= case.interval + case.timeout - 0.05, ("closed after %.3f s"):format(took))
        assert.is_true(took <= bound, ("closed after %.3f s"):format(took))
      end)
    end
  end)

  describe("handshake_timeout", function()
    local it_py = proc.have_python() and it or pending   -- the raw TCP peer is python3

    it_py("drops a TCP connection that never sends a request", function()
      start { handshake_timeout = 0.5 }
      local r = proc.raw(server.port, nil, { timeout = WAIT })
      print(("# handshake_timeout 0.5 s, nothing sent: %s after %.3f s"):format(r.how, r.elapsed))
      assert.equal("eof", r.how)
      assert.equal("", r.response)
      assert.is_true(r.elapsed >= 0.45 and r.elapsed <= 0.5 + LATE, ("dropped after %.3f s"):format(r.elapsed))
      assert.is_nil(closed)   -- it never opened: no close handler
      assert.equal(1, server:stats().accepted)
      assert.equal(0, server:stats().upgraded)
    end)

    it_py("drops a connection whose request head never ends", function()
      start { handshake_timeout = 0.5 }
      local r = proc.raw(server.port, "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n",
        { timeout = WAIT })
      print(("# handshake_timeout 0.5 s, half a head: %s after %.3f s"):format(r.how, r.elapsed))
      assert.equal("eof", r.how)
      assert.is_true(r.elapsed >= 0.45 and r.elapsed <= 0.5 + LATE, ("dropped after %.3f s"):format(r.elapsed))
    end)

    it_py("makes luaws.connect give up with \"timeout\" on a server that never answers", function()
      local silent = proc.spawn({ proc.PYTHON, "-c", table.concat({
        "import socket, time",
        "s = socket.socket()",
        "s.bind(('127.0.0.1', 0))",
        "s.listen(1)",
        "print(s.getsockname()[1], flush=True)",
        "c, _ = s.accept()",
        "time.sleep(30)",
      }, "\n") }, { unset = { "LD_PRELOAD" } })
      local port = assert(silent:wait_line("^(%d+)$", 10), "the silent server did not start")
      local t0 = core.now()
      local got = table.pack(luaws.connect(("ws://127.0.0.1:%s/ws"):format(port), { timeout = 0.5 }))
      local took = core.now() - t0
      print(("# connect timeout 0.5 s: gave up after %.3f s"):format(took))
      h.fails("timeout", table.unpack(got, 1, got.n))
      assert.is_true(took >= 0.45 and took <= 0.5 + LATE, ("gave up after %.3f s"):format(took))
    end)

    it("no longer applies once the connection is open", function()
      start { handshake_timeout = 0.3 }
      local ws = connect()
      h.idle(0.8)
      assert.equal("open", ws.state)
      assert.is_nil(closed)
      assert(ws:send("hello"))
      ws:close()
      h.pump(function() return closed ~= nil end, "the close")
      assert.equal(1000, closed[1])
    end)
  end)

  describe("close_timeout", function()
    it("finishes a server-initiated close the client never answers, as 1006", function()
      local server_ws
      closed = nil
      server = h.server { close_timeout = 0.5 }
      server:route("/ws", {
        open = function(ws) server_ws = ws end,
        close = function(_, code, reason) closed = { code, reason, at = core.now() } end,
      })
      url = server:url("/ws")
      local ws = connect()
      ws:pause()
      h.pump(function() return server_ws ~= nil end, "the open handler")
      local t0 = core.now()
      assert(server_ws:close(1000, "go"))
      h.pump(function() return closed ~= nil end, "the close timeout", WAIT)
      local took = closed.at - t0
      print(("# close_timeout 0.5 s: finished after %.3f s"):format(took))
      assert.equal(1006, closed[1])
      assert.is_true(took >= 0.45 and took <= 0.5 + LATE, ("finished after %.3f s"):format(took))
    end)
  end)
end)
