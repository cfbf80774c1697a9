-- Backpressure (DESIGN "Data flow", send): a peer that does not read makes
-- the send queue grow (ws:buffered()); past max_backpressure the server
-- stops queueing, send returns nil, a message, "backpressure" and the connection is
-- closed with 1008; below it, the drain handler tells when the queue empties.
--
-- The kernel takes the first few MiB (about 3.9 MiB on a Linux loopback with
-- the default tcp_wmem) before anything waits in luaws's own queue, so the
-- servers here send up to MAX_SENDS x 16 KiB, not a fixed 100.
local h = require "helper"
local luaws, core = h.luaws, h.core

local KiB = 1024
local CHUNK = ("0123456789abcdef"):rep(KiB)   -- 16 KiB
local MAX_SENDS = 4096                         -- 64 MiB
local PER_TICK = 8

describe("backpressure", function()
  local server, url, clients, timers, closes, results, buffered, server_ws
  before_each(function()
    clients, timers, closes, results, buffered, server_ws = {}, {}, {}, {}, {}, nil
  end)
  after_each(function()
    for _, t in ipairs(timers) do t:stop() end
    for _, ws in ipairs(clients) do
      ws:resume()
      if ws.state == "open" then ws:close() end
    end
    h.cleanup()
  end)

  -- A server that, once a client opens, sends up to count 16 KiB messages
  -- from a timer (PER_TICK per tick), noting each send's result and the
  -- queue, until a send fails.
  local function start(opts, count, handlers)
    server = h.server(opts)
    handlers = handlers or {}
    handlers.open = function(ws)
      server_ws = ws
      local sent = 0
      timers[#timers + 1] = luaws.every(0.002, function(t)
        for _ = 1, PER_TICK do
          sent = sent + 1
          local ok, _, token = ws:send(CHUNK, "binary")
          results[#results + 1] = ok and "ok" or token
          buffered[#buffered + 1] = ws:buffered()
          if not ok or sent >= count then
            t:stop()
            return
          end
        end
      end)
    end
    handlers.close = function(_, code, reason) closes[#closes + 1] = { code, reason, at = core.now() } end
    server:route("/ws", handlers)
    url = server:url("/ws")
  end

  local function paused_client()
    local ws = assert(luaws.connect(url))
    ws:pause()
    clients[#clients + 1] = ws
    return ws
  end

  local function count(list, value)
    local n = 0
    for _, v in ipairs(list) do if v == value then n = n + 1 end end
    return n
  end

  it("fails a send with \"backpressure\" and closes with 1008 when a paused client lets 64 KiB pile up", function()
    start({ max_backpressure = 64 * KiB, close_timeout = 0.5 }, MAX_SENDS)
    paused_client()
    h.pump(function() return results[#results] == "backpressure" or #results >= MAX_SENDS end, "the sends", 10)
    assert.equal("backpressure", results[#results],
      ("%d sends of 16 KiB, all queued, the last queue %d bytes"):format(#results, buffered[#buffered] or -1))
    assert.equal(1, count(results, "backpressure"))
    -- the cap held: the queue never passed 64 KiB (plus the close frame)
    for i = 1, #buffered - 1 do assert.is_true(buffered[i] <= 64 * KiB) end
    -- the client still does not read: close_timeout ends it, still as 1008,
    -- and the reason says what the deadline left unsent (and whether it cut
    -- a frame, which server:stats() counts)
    h.pump(function() return #closes > 0 end, "the close handler", 15)
    assert.equal(1008, closes[1][1])
    assert.matches("^backpressure; .*%d+ bytes unsent$", closes[1][2])
    local cut = closes[1][2]:find("a frame cut mid-way", 1, true) and 1 or 0
    assert.equal(cut, server:stats().frames_cut)
  end)

  it("tells a client that resumes reading that it was closed with 1008", function()
    start({ max_backpressure = 64 * KiB, close_timeout = 5 }, MAX_SENDS)
    local ws = paused_client()
    h.pump(function() return results[#results] == "backpressure" or #results >= MAX_SENDS end, "the sends", 10)
    assert.equal("backpressure", results[#results])
    ws:resume()
    local got = 0
    while true do
      local msg = ws:receive(5)
      if not msg then break end
      assert.equal(#CHUNK, #msg)
      got = got + 1
    end
    assert.equal(count(results, "ok"), got)   -- everything queued before the cap arrives
    assert.equal(1008, (ws:close_status()))
    h.pump(function() return #closes > 0 end, "the close handler")
    assert.equal(1008, closes[1][1])
  end)

  it("refuses further sends once backpressure closed the connection", function()
    start({ max_backpressure = 64 * KiB, close_timeout = 0.5 }, MAX_SENDS)
    paused_client()
    h.pump(function() return results[#results] == "backpressure" or #results >= MAX_SENDS end, "the sends", 10)
    h.fails("closed", server_ws:send("more"))
  end)

  -- The cap is on bytes waiting in the queue ("send queue bytes before
  -- closing with 1008"): a message the socket takes at once never waits.
  it("sends one message larger than max_backpressure to a reading peer when nothing waits", function()
    local result
    server = h.server { max_backpressure = 64 * KiB }
    server:route("/ws", {
      message = function(ws) result = { ws:send(("b"):rep(100 * KiB), "binary") } end,
      close = function(_, code, reason) closes[#closes + 1] = { code, reason } end,
    })
    local ws = assert(luaws.connect(server:url("/ws")))
    clients[#clients + 1] = ws
    assert(ws:send("send me 100 KiB"))
    h.pump(function() return result ~= nil end, "the server's send")
    assert.same({ true }, result)
    local msg = ws:receive(5)
    assert.equal(100 * KiB, msg and #msg)
    assert.same({}, closes)
  end)

  it("lets ws:buffered() grow while the peer does not read, and fires drain once it resumes", function()
    local drains = {}
    start({ max_backpressure = 256 * 1024 * KiB }, MAX_SENDS, {
      drain = function(ws) drains[#drains + 1] = ws:buffered() end,
    })
    local ws = paused_client()
    h.pump(function() return (buffered[#buffered] or 0) > 256 * KiB or #results >= MAX_SENDS end,
      "the send queue to grow", 20)
    timers[1]:stop()
    local sent = #results
    assert.equal(sent, count(results, "ok"))
    assert.is_true(server_ws:buffered() > 0, "nothing waits in the send queue after " .. sent .. " sends")
    h.idle(0.2)
    assert.same({}, drains)   -- no drain while the client still does not read
    ws:resume()
    local got = 0
    for _ = 1, sent do
      local msg = ws:receive(10)
      if not msg then break end
      assert.equal(#CHUNK, #msg)
      got = got + 1
    end
    assert.equal(sent, got)
    h.pump(function() return #drains > 0 end, "the drain handler")
    assert.equal(0, drains[1])
    assert.equal(0, server_ws:buffered())
    assert.equal("open", server_ws.state)
    assert(server_ws:send("after the drain"))
    assert.same({ "after the drain", "text" }, { ws:receive(5) })
  end)
end)
