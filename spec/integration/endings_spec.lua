-- Each way a conversation ends while data is still queued for a client that
-- reads: a TCP half-close after sending, a close frame right behind a
-- message, a close in the middle of a fragmented message, a shutdown by
-- SIGTERM with hundreds of echoes queued per client, a slow reader under and
-- over max_backpressure, and a restart on the same port. Nothing queued may
-- be lost or cut, and each ending must have its close code.
--
-- The peer is spec/support/ender.py (raw sockets, masked frames: it decides
-- what goes into one write and when its FIN goes out), run under Debian's
-- python3 without the sanitizer runtime; it compares every echo byte for
-- byte as it comes and prints one JSON line. Servers run in this process
-- (every wait here steps the loop) or, where a signal is needed, as a
-- process of their own stopped by its PID.
local h = require "helper"
local proc = require "support.proc"
local json = require "support.json"
local luaws, core = h.luaws, h.core

local KiB, MiB = 1024, 1024 * 1024
local WAIT = 60   -- seconds any one wait may take: outcomes are checked, never speed

-- Run spec/support/ender.py MODE PORT ARGS... (stepping the loop while it
-- runs) and return its last JSON line, decoded, and the process.
local function ender(mode, port, ...)
  local argv = { proc.PYTHON, "spec/support/ender.py", mode, tostring(port) }
  for _, a in ipairs { ... } do argv[#argv + 1] = tostring(a) end
  local p = proc.spawn(argv, { unset = { "LD_PRELOAD" } })
  local status = p:wait(WAIT)
  if not status then
    p:signal("KILL")
    error(("ender.py %s did not finish within %d s: %s"):format(mode, WAIT, p:stderr()), 2)
  end
  local objs = json.decode_lines(p:stdout())
  if status ~= 0 or #objs == 0 then
    error(("ender.py %s: exit %d: %s%s"):format(mode, status, p:stdout(), p:stderr()), 2)
  end
  return objs[#objs], p
end

-- What the spec's own servers send on request: the same bytes as
-- rawws.pattern(i, size): the index (4 bytes, big-endian), then bytes
-- 0..250 cycled from i % 251.
local CYCLE = {}
for b = 0, 250 do CYCLE[#CYCLE + 1] = string.char(b) end
CYCLE = table.concat(CYCLE)
local function pattern(i, size)
  local body = CYCLE:rep(size // 251 + 2)
  local off = i % 251
  return string.pack(">I4", i) .. body:sub(off + 1, off + size - 4)
end

-- The frames a client got, in order, run-length encoded: "data x10, close x1".
local function order_of(r)
  local parts = {}
  for _, o in ipairs(r.order) do parts[#parts + 1] = o[1] .. " x" .. math.floor(o[2]) end
  return table.concat(parts, ", ")
end

-- A clean ending as a client that reads sees it: n echoes intact and in
-- order, then one close frame with code, then EOF, nothing cut, nothing more.
local function assert_clean_end(r, n, code, what)
  what = (what or "") .. ("\n(got %s; then %s with %d bytes of a frame cut)"):format(order_of(r), r["end"], r.trailing)
  assert.same({}, r.bad_list, "echoes that differ from what was sent" .. what)
  assert.equal(0, r.bad, "bad echoes" .. what)
  assert.same({}, r.flaws, "frames that break RFC 6455" .. what)
  assert.equal(n, r.echoes, "echoes intact and in order" .. what)
  local close = r.close ~= json.null and r.close or nil
  assert.equal(code, close, "the server's close code (nil: no close frame)" .. what)
  assert.equal(0, r.after_close, "frames after the close frame" .. what)
  assert.equal("eof", r["end"], "how the stream ended" .. what)
  assert.equal(0, r.trailing, "bytes of a frame cut by the end" .. what)
end

describe("a conversation that ends with data queued", function()
  local server, closes, messages
  before_each(function()
    closes, messages = {}, {}
  end)
  after_each(function()
    proc.cleanup()
    h.cleanup()
  end)

  -- An echo server in this process (callback or coroutine style) that notes
  -- each message and the code its close handler gets. Its close_timeout is
  -- long: a close here must end by the exchange itself, never by a deadline
  -- that a slow machine could reach first.
  local function echo_server(style)
    server = h.server { close_timeout = WAIT }
    if style == "coroutine" then
      server:route("/ws", function(ws)
        for msg, kind in ws:messages() do
          messages[#messages + 1] = #msg
          ws:send(msg, kind)
        end
        closes[#closes + 1] = { ws:close_status() }
      end)
    else
      server:route("/ws", {
        message = function(ws, msg, kind)
          messages[#messages + 1] = #msg
          ws:send(msg, kind)
        end,
        close = function(_, code, reason) closes[#closes + 1] = { code, reason } end,
      })
    end
    return server
  end

  local function server_close()
    h.pump(function() return #closes > 0 end, "the server's close handler", WAIT)
    return closes[1]
  end

  describe("by a TCP half-close (FIN, no close frame) after sending", function()
    for _, case in ipairs {
      { "callback", 10, MiB, "1 MiB" },
      { "callback", 10, 16, "16 B" },
      { "coroutine", 10, MiB, "1 MiB" },
      { "coroutine", 10, 16, "16 B" },
    } do
      local style, count, size, label = case[1], case[2], case[3], case[4]
      it(("delivers all %d echoes of %s, then close 1000, then EOF, to a client that reads only after its FIN (%s route)")
        :format(count, label, style), function()
        local s = echo_server(style)
        local r = ender("halfclose", s.port, "/ws", count, size)
        assert_clean_end(r, count, 1000)
        assert.equal("data x" .. count .. ", close x1", order_of(r))
        assert.equal(1006, server_close()[1])
        assert.equal(count, #messages)
      end)
    end
  end)

  describe("by a close frame right behind a message", function()
    for _, case in ipairs {
      { "0", "both in one write" },
      { "1", "two writes" },
      { "fin", "both in one write, then the client's FIN" },
    } do
      local split, label = case[1], case[2]
      it(("echoes the message before answering the close with 1000 (%s)"):format(label), function()
        local s = echo_server("callback")
        local r = ender("msgclose", s.port, "/ws", split)
        assert_clean_end(r, 1, 1000)
        assert.equal("data x1, close x1", order_of(r))
        assert.equal("bye", r.reason)
        assert.same({ 1000, "bye" }, server_close())
      end)
    end
  end)

  describe("in the middle of a fragmented message", function()
    for _, case in ipairs {
      { "0", "a close frame, all in one write", { 1000, "bye" }, "bye" },
      { "1", "a close frame, in three writes", { 1000, "bye" }, "bye" },
      { "fin", "a close frame and the client's FIN", { 1000, "bye" }, "bye" },
      { "fin-only", "the client's FIN, no close frame", { 1006 }, "" },
    } do
      local split, label, handler, reason = case[1], case[2], case[3], case[4]
      it(("sends no part of the message and closes with 1000 on %s"):format(label), function()
        local s = echo_server("callback")
        local r = ender("fragclose", s.port, "/ws", split)
        assert.equal(0, r.data, "data frames: " .. order_of(r))
        assert_clean_end(r, 0, 1000)
        assert.equal("close x1", order_of(r))
        assert.equal(reason, r.reason)
        local c = server_close()
        assert.same(handler, { c[1], handler[2] and c[2] or nil })
        assert.same({}, messages)
      end)
    end
  end)

  describe("with a slow reader", function()
    -- A server in this process that, asked "send COUNT SIZE", queues COUNT
    -- binary messages (pattern) at once, until a send fails; then closes
    -- with 1000 "done" if every one was taken.
    local accepted, refused, peak
    local function sender(opts)
      accepted, refused, peak = nil, nil, 0
      server = h.server(opts)
      server:route("/ws", {
        message = function(ws, msg)
          local count, size = msg:match("^send (%d+) (%d+)$")
          count, size = assert(tonumber(count)), assert(tonumber(size))
          for i = 0, count - 1 do
            local ok, _, token = ws:send(pattern(i, size), "binary")
            if not ok then
              accepted, refused = i, token
              return
            end
            peak = math.max(peak, ws:buffered())
          end
          accepted = count
          ws:close(1000, "done")
        end,
        close = function(_, code, reason) closes[#closes + 1] = { code, reason } end,
      })
      return server
    end

    it("gets every message in order, then close 1000, when the queue stays under max_backpressure", function()
      -- 600 x 16 KiB = 9.6 MiB, under the default 16 MiB cap (the kernel
      -- takes a few MiB; the rest waits in the queue while the client reads
      -- 16 KiB, then sleeps 1 ms). close_timeout is long: the close frame
      -- waits behind the whole queue, and the spec must not race the reader.
      local s = sender { close_timeout = WAIT }
      local r = ender("slow", s.port, "/ws", 600, 16 * KiB, 16 * KiB, 0.001)
      assert.equal(600, accepted)
      assert_clean_end(r, 600, 1000)
      assert.equal("done", r.reason)
      assert.equal("data x600, close x1", order_of(r))
      assert.equal(1000, server_close()[1])   -- the client's answer: the code, no reason
      print(("# slow reader: 9.6 MiB in %.2f s; the server's queue peaked at %.1f MiB")
        :format(r.seconds, peak / MiB))
    end)

    it("gets 1008 past a small max_backpressure, after every message taken before, in order and intact", function()
      local s = sender { max_backpressure = 256 * KiB, close_timeout = WAIT }
      local r = ender("slow", s.port, "/ws", 4096, 16 * KiB, 16 * KiB, 0.001)
      assert.equal("backpressure", refused)
      assert.is_true(accepted > 0 and accepted < 4096)
      assert_clean_end(r, accepted, 1008)
      assert.equal(("data x%d, close x1"):format(accepted), order_of(r))
      assert.equal(1008, server_close()[1])
      print(("# slow reader past 256 KiB: %d of 4096 messages taken, then 1008"):format(accepted))
    end)
  end)
end)

describe("a server process that ends", function()
  local clients
  before_each(function() clients = {} end)
  after_each(function()
    proc.cleanup()
    for _, ws in ipairs(clients) do
      if ws.state ~= "closed" then ws:close() end
    end
    h.pump(function() return core.live() == 0 end, "the clients to finish", 10)
  end)

  --[[ flood(o) -> summary
    A grace_server.lua process (grace o.grace, o.close_timeout if given);
    o.clients raw clients each send o.count binary messages of o.size bytes
    without reading; once the server has echoed (queued) every one, SIGTERM,
    and the clients read, o.delay seconds later. Checks every client got all
    its echoes intact and in order, then 1001, then EOF, and the server
    exited 0 having cut nothing. ]]
  local function flood(o)
    local args = { "lua5.4", "spec/support/grace_server.lua", "--grace", tostring(o.grace) }
    if o.close_timeout then
      args[#args + 1] = "--close-timeout"
      args[#args + 1] = tostring(o.close_timeout)
    end
    local p = proc.spawn(args)
    local port = assert(p:wait_line("grace server listening on 127%.0%.0%.1:(%d+)", 15))
    local gofile = os.tmpname()
    os.remove(gofile)
    local t0 = core.now()
    local py = proc.spawn({ proc.PYTHON, "spec/support/ender.py", "flood", port, "/ws",
      tostring(o.clients), tostring(o.count), tostring(o.size), gofile, tostring(o.delay or 0) },
      { unset = { "LD_PRELOAD" } })
    local sent = py:wait_line('"phase": "(sent)"', 2 * WAIT)
    assert(sent, "the clients did not send everything: " .. py:stdout() .. py:stderr())
    -- The clients have written everything; wait until the server has read
    -- and echoed (queued) every message, so the SIGTERM finds them queued.
    local ctl = assert(luaws.connect(("ws://127.0.0.1:%s/ctl"):format(port)))
    clients[#clients + 1] = ctl
    local echoed
    local deadline = core.now() + 2 * WAIT
    repeat
      assert(ctl:send("stats"))
      local line = assert(ctl:receive(WAIT))
      echoed = tonumber(line:match("echoed=(%d+)"))
      if echoed < o.clients * o.count then h.idle(0.05) end
    until echoed >= o.clients * o.count or core.now() > deadline
    assert.equal(o.clients * o.count, echoed)
    assert(ctl:close())
    h.fails("closed", ctl:receive(WAIT))
    local queued_at = core.now()

    assert(p:signal("TERM"))
    local f = assert(io.open(gofile, "w"))
    f:close()
    local pstatus = p:wait(2 * WAIT)
    local exit_at = core.now()
    local pystatus = py:wait(2 * WAIT)
    os.remove(gofile)
    assert.equal(0, pystatus, "ender.py: " .. py:stderr())
    local objs = json.decode_lines(py:stdout())
    local r = objs[#objs]
    assert.equal("done", r.phase)
    assert.equal(o.clients, #r.clients)
    local bad = {}
    for k, c in ipairs(r.clients) do
      local ok = not c.error and c.bad == 0 and c.echoes == o.count and c.close == 1001
        and c["end"] == "eof" and c.trailing == 0 and c.after_close == 0 and #c.flaws == 0
      if not ok then
        bad[#bad + 1] = c.error and ("client %d: %s"):format(k - 1, c.error)
          or ("client %d: %d echoes intact, %d bad, close %s, %s with %d bytes of a frame cut (%s)")
            :format(k - 1, c.echoes, c.bad, tostring(c.close ~= json.null and c.close or nil), c["end"],
              c.trailing, order_of(c))
      end
    end
    assert.same({}, bad)
    assert(pstatus, "the server still runs " .. 2 * WAIT .. " s after SIGTERM")
    assert.equal(0, pstatus, "exit status; stderr: " .. p:stderr())
    -- nothing was cut at the end of the grace period, and no frame mid-way
    assert.matches("exit shutdown_cut=0 frames_cut=0 echoed=" .. o.clients * o.count, p:stdout(), 1, true)
    return { queued = queued_at - t0, exited = exit_at - queued_at, read = r.read_seconds }
  end

  it("on SIGTERM delivers all 200 queued 64 KiB echoes of each of 50 clients in order, then 1001, and exits 0", function()
    local t = flood { grace = 60, clients = 50, count = 200, size = 64 * KiB }
    print(("# SIGTERM with 50 x 200 x 64 KiB queued: sent and queued in %.1f s, server exited %.1f s after the signal, clients read in %.1f s")
      :format(t.queued, t.exited, t.read))
  end)

  it("on SIGTERM waits its grace period, not close_timeout, for clients that start reading late", function()
    -- close_timeout 1 s, grace 60 s: the clients start reading 3 s after
    -- the SIGTERM and must still get everything.
    local t = flood { grace = 60, close_timeout = 1, delay = 3, clients = 10, count = 100, size = 64 * KiB }
    print(("# SIGTERM, readers 3 s late: server exited %.1f s after the signal"):format(t.exited))
  end)

  it("restarts on the same port right after it exits, and serves an echo", function()
    local function start(port)
      local p = proc.spawn { "lua5.4", "examples/echo.lua", "--port", tostring(port), "--host", "127.0.0.1" }
      local got = assert(p:wait_line("luaws echo listening on http://127%.0%.0%.1:(%d+)/", 10))
      return p, tonumber(got)
    end
    local function echo(port, text)
      local ws = assert(luaws.connect(("ws://127.0.0.1:%d/ws"):format(port)))
      clients[#clients + 1] = ws
      assert(ws:send(text))
      assert.same({ text, "text" }, { ws:receive(10) })
      return ws
    end

    local p1, port = start(0)
    local ws = echo(port, "first life")
    assert(p1:signal("TERM"))
    h.fails("closed", ws:receive(10))
    assert.equal(1001, (ws:close_status()))
    local status = p1:wait(10)
    local exited = core.now()
    assert.equal(0, status, "first exit status; stderr: " .. p1:stderr())

    local p2, port2 = start(port)
    local listening = core.now()
    assert.equal(port, port2)
    local ws2 = echo(port, "second life")
    local echoed = core.now()
    assert(ws2:close())
    h.fails("closed", ws2:receive(10))
    assert(p2:signal("TERM"))
    assert.equal(0, p2:wait(10), "second exit status; stderr: " .. p2:stderr())
    print(("# restart on port %d: listening %.3f s after the first exit was seen, echo at %.3f s")
      :format(port, listening - exited, echoed - exited))
  end)
end)
