-- Graceful shutdown of a real server process (examples/echo.lua under
-- luaws.run()): SIGTERM/SIGINT close every connection with 1001, refuse new
-- ones, and the process exits by itself with status 0, at the latest once
-- the grace period (5 s) is over. Every process is started and stopped by
-- its PID. How long the exit took is reported; what is checked is that it
-- came by itself, within LATE seconds of the grace period (a loaded machine
-- is slow, not that slow).
local h = require "helper"
local proc = require "support.proc"
local luaws, core = h.luaws, h.core

local GRACE, LATE = 5, 10

-- Start the echo example on a free port; returns the process and its ws:// URL.
local function start_echo(...)
  local p = proc.spawn { "lua5.4", "examples/echo.lua", "--port", "0", "--host", "127.0.0.1", ... }
  local port = assert(p:wait_line("luaws echo listening on http://127%.0%.0%.1:(%d+)/", 10))
  return p, ("ws://127.0.0.1:%s/ws"):format(port)
end

-- The process exits with status 0 within GRACE + LATE seconds of now.
local function assert_exits_cleanly(p)
  local t0 = core.now()
  local status = p:wait(GRACE + LATE)
  local took = core.now() - t0
  print(("# the server exited %.2f s after the wait for it began (grace %d s): reported, not checked"):format(took, GRACE))
  assert(status, ("the server still runs %.1f s later"):format(GRACE + LATE))
  assert.equal(0, status, "exit status; stderr: " .. p:stderr())
end

describe("graceful shutdown of examples/echo.lua", function()
  local clients
  before_each(function() clients = {} end)
  after_each(function()
    proc.cleanup()
    for _, ws in ipairs(clients) do ws:resume() end
    h.pump(function() return core.live() == 0 end, "the clients to finish", 10)
  end)

  local function connect(url)
    local ws = assert(luaws.connect(url))
    clients[#clients + 1] = ws
    return ws
  end

  for _, case in ipairs {
    { "TERM" }, { "INT" }, { "TERM", "--coroutine" },
  } do
    local sig, flag = case[1], case[2]
    it(("closes a connected client with 1001 on SIG%s and exits with status 0%s")
      :format(sig, flag and " (" .. flag .. ")" or ""), function()
      local p, url = start_echo(flag)
      local ws = connect(url)
      assert(ws:send("before"))
      assert.same({ "before", "text" }, { ws:receive(5) })
      assert(p:signal(sig))
      h.fails("closed", ws:receive(GRACE + LATE))
      assert.equal(1001, (ws:close_status()))
      assert_exits_cleanly(p)
    end)
  end

  it("refuses new connections after SIGTERM while it waits for its clients", function()
    local p, url = start_echo()
    local ws = connect(url)
    assert(ws:send("hold"))
    assert.same({ "hold", "text" }, { ws:receive(5) })
    ws:pause()   -- do not answer the server's close yet: it must wait for us
    assert(p:signal("TERM"))
    h.idle(0.5)
    assert.is_nil(p:status(), "the server exited without waiting for its client")
    h.fails("refused", luaws.connect(url, { timeout = 2 }))
    assert.is_nil(p:status())
    ws:resume()
    h.fails("closed", ws:receive(GRACE + LATE))
    assert.equal(1001, (ws:close_status()))
    assert_exits_cleanly(p)
  end)

  it("exits within the grace period when a client never answers the close", function()
    local p, url = start_echo()
    local ws = connect(url)
    assert(ws:send("hold"))
    assert.same({ "hold", "text" }, { ws:receive(5) })
    ws:pause()
    assert(p:signal("TERM"))
    assert_exits_cleanly(p)
  end)

  ;(proc.have_python() and it or pending)("closes a python3-websockets client with 1001 on SIGTERM", function()
    local p, url = start_echo()
    local py = proc.spawn({ proc.PYTHON, "spec/support/wsclient.py", url, "20" }, { unset = { "LD_PRELOAD" } })
    local ready = py:wait_line("(ready)", 10)
    assert(ready, "the python client did not connect: " .. py:stdout() .. py:stderr())
    assert.matches("echo hello", py:stdout(), 1, true)
    assert(p:signal("TERM"))
    assert.equal(0, py:wait(GRACE + LATE), py:stderr())
    assert.matches("closed 1001", py:stdout(), 1, true)
    assert_exits_cleanly(p)
  end)
end)

describe("server:close()", function()
  local server, url, closes
  before_each(function()
    closes = {}
    server = h.server()
    server:route("/ws", {
      message = function(ws, msg, kind) ws:send(msg, kind) end,
      close = function(_, code, reason) closes[#closes + 1] = { code, reason } end,
    })
    url = server:url("/ws")
  end)
  after_each(h.cleanup)

  it("closes every connection with 1001 \"server closed\" and refuses new ones", function()
    local a, b = assert(luaws.connect(url)), assert(luaws.connect(url))
    server:close()
    for _, ws in ipairs { a, b } do
      h.fails("closed", ws:receive(5))
      assert.same({ 1001, "server closed" }, { ws:close_status() })
    end
    h.pump(function() return #closes == 2 end, "both close handlers")
    assert.same({ 1001, 1001 }, { closes[1][1], closes[2][1] })
    h.fails("refused", luaws.connect(url, { timeout = 2 }))
  end)

  it("closes with the code and reason it is given", function()
    local ws = assert(luaws.connect(url))
    server:close(4500, "maintenance")
    h.fails("closed", ws:receive(5))
    assert.same({ 4500, "maintenance" }, { ws:close_status() })
  end)

  it("with code 0 stops accepting but leaves open connections open", function()
    local ws = assert(luaws.connect(url))
    server:close(0)
    assert.is_nil((luaws.connect(url, { timeout = 2 })))
    assert(ws:send("still here"))
    assert.same({ "still here", "text" }, { ws:receive(5) })
    assert(ws:close())
    h.fails("closed", ws:receive(5))
  end)
end)
