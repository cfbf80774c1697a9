-- A Lua callback that raises (DESIGN "Errors"): it is logged with its
-- traceback, its connection is closed with 1011, and the server carries on.
local h = require "helper"
local luaws = h.luaws

local function assert_echoes(ws)
  assert(ws:send("still there?"))
  assert.same({ "still there?", "text" }, { ws:receive(5) })
end

local function assert_closed_with(ws, code)
  h.fails("closed", ws:receive(5))
  assert.equal(code, (ws:close_status()))
end

-- The one logged error whose text has every needle in it.
local function assert_logged(...)
  local needles = { ... }
  h.pump(function() return #h.errors > 0 end, "the error log")
  for _, e in ipairs(h.errors) do
    local all = true
    for _, n in ipairs(needles) do
      if not e:find(n, 1, true) then all = false end
    end
    if all then return e end
  end
  error("no logged error has " .. table.concat(needles, ", ") .. " in:\n" .. table.concat(h.errors, "\n---\n"), 2)
end

describe("a handler that raises", function()
  local server, url, closes
  before_each(function()
    h.errors = {}
    closes = {}
    server = h.server()
  end)
  after_each(h.cleanup)

  local function route(handlers)
    handlers.close = handlers.close or function(_, code, reason) closes[#closes + 1] = { code, reason } end
    server:route("/ws", handlers)
    url = server:url("/ws")
  end

  it("in message: closes that connection with 1011, logs a traceback, and others still echo", function()
    route { message = function(ws, msg, kind)
      if msg == "boom" then error("message handler exploded") end
      ws:send(msg, kind)
    end }
    local bystander = assert(luaws.connect(url))
    local ws = assert(luaws.connect(url))
    assert(ws:send("boom"))
    assert_closed_with(ws, 1011)
    local log = assert_logged("message handler exploded", "stack traceback")
    assert.matches("errors_spec.lua", log, 1, true)
    h.pump(function() return #closes > 0 end, "the close handler")
    assert.equal(1011, closes[1][1])
    assert_echoes(bystander)
    assert_echoes(assert(luaws.connect(url)))   -- and new connections are served
    assert.equal(1, #h.errors)
  end)

  it("in message with a non-string error value: still 1011 and a log line", function()
    route { message = function() error({ code = 42 }) end }
    local ws = assert(luaws.connect(url))
    assert(ws:send("x"))
    assert_closed_with(ws, 1011)
    assert_logged("message handler", "table")
  end)

  it("in open: closes the connection with 1011", function()
    route {
      open = function() error("open handler exploded") end,
      message = function(ws, msg) ws:send(msg) end,
    }
    local ws = assert(luaws.connect(url))
    assert_closed_with(ws, 1011)
    assert_logged("open handler exploded", "stack traceback")
    h.pump(function() return #closes > 0 end, "the close handler")
    assert.equal(1011, closes[1][1])
  end)

  it("in ping: closes the connection with 1011", function()
    route {
      ping = function() error("ping handler exploded") end,
      message = function(ws, msg) ws:send(msg) end,
    }
    local ws = assert(luaws.connect(url))
    assert(ws:ping("hi"))
    assert_closed_with(ws, 1011)
    assert_logged("ping handler exploded")
  end)

  it("in close: is logged and the server carries on", function()
    route {
      message = function(ws, msg) ws:send(msg) end,
      close = function() error("close handler exploded") end,
    }
    local ws = assert(luaws.connect(url))
    assert(ws:close(1000))
    assert_closed_with(ws, 1000)
    assert_logged("close handler exploded")
    assert_echoes(assert(luaws.connect(url)))
  end)

  it("in the upgrade hook: answers 500 and opens nothing", function()
    local opened = false
    route {
      upgrade = function() error("upgrade hook exploded") end,
      open = function() opened = true end,
    }
    h.fails_with("handshake", "500", luaws.connect(url))
    assert_logged("upgrade hook exploded")
    assert.is_false(opened)
  end)

  describe("in a coroutine route", function()
    it("after a receive: closes with 1011 and logs the traceback", function()
      server:route("/ws", function(ws)
        local msg = ws:receive()
        ws:send("got " .. msg)
        error("coroutine exploded on " .. msg)
      end)
      url = server:url("/ws")
      local ws = assert(luaws.connect(url))
      assert(ws:send("first"))
      assert.same({ "got first", "text" }, { ws:receive(5) })
      assert_closed_with(ws, 1011)
      assert_logged("coroutine exploded on first", "stack traceback")
    end)

    it("before its first receive: closes with 1011", function()
      server:route("/ws", function() error("coroutine exploded at once") end)
      url = server:url("/ws")
      local ws = assert(luaws.connect(url))
      assert_closed_with(ws, 1011)
      assert_logged("coroutine exploded at once")
    end)

    it("leaves the server serving other connections", function()
      server:route("/ws", function(ws)
        for msg in ws:messages() do
          if msg == "boom" then error("boom") end
          ws:send(msg)
        end
      end)
      url = server:url("/ws")
      local bystander = assert(luaws.connect(url))
      local ws = assert(luaws.connect(url))
      assert(ws:send("boom"))
      assert_closed_with(ws, 1011)
      assert_echoes(bystander)
      assert_echoes(assert(luaws.connect(url)))
    end)
  end)

  it("in a repeating timer: is logged and the timer keeps ticking", function()
    route { message = function(ws, msg) ws:send(msg) end }
    local ticks = 0
    local t = luaws.every(0.05, function()
      ticks = ticks + 1
      error("tick " .. ticks .. " exploded")
    end)
    local ok, err = pcall(h.pump, function() return ticks >= 3 end, "three ticks", 15)
    t:stop()
    assert(ok, err)
    assert_logged("tick 1 exploded")
    assert_logged("tick 3 exploded")
    assert_echoes(assert(luaws.connect(url)))
  end)
end)
