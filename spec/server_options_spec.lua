-- luaws.listen{} options: defaults, validation (misuse raises), and what a
-- bad listen returns (nil, message, token).
local h = require "helper"
local luaws = h.luaws

describe("luaws.listen options", function()
  after_each(h.cleanup)

  it("has the documented defaults", function()
    local d = luaws.defaults
    assert.equal(120, d.keep_alive_interval)
    assert.is_nil(d.keep_alive_timeout)
    assert.equal(4096, d.receive_buffer_size)
    assert.is_nil(d.allowed_origins)
    assert.equal(16 * 1024 * 1024, d.max_message_size)
    assert.is_nil(d.idle_timeout)
    assert.is_nil(d.protocols)
    assert.equal(16 * 1024 * 1024, d.max_backpressure)
    assert.equal(10, d.handshake_timeout)
    assert.equal(5, d.close_timeout)
  end)

  it("fills every default into server.options", function()
    local s = h.server()
    assert.equal(120, s.options.keep_alive_interval)
    assert.equal(4096, s.options.receive_buffer_size)
    assert.equal("127.0.0.1", s.host)
    assert.is_true(s.port > 0)
  end)

  local bad = {
    { { nope = 1 }, "listen: unknown option 'nope'" },
    { { port = "80" }, "listen: option 'port' must be a number, got string" },
    { { keep_alive_interval = -1 }, "listen: option 'keep_alive_interval' must not be negative" },
    { { receive_buffer_size = 10 }, "listen: option 'receive_buffer_size' must be at least 256" },
    { { max_message_size = 0 }, "listen: option 'max_message_size' must be at least 1" },
    { { allowed_origins = 5 }, "listen: option 'allowed_origins'" },
    { { protocols = "chat" }, "listen: option 'protocols' must be a table, got string" },
    { { port = 70000 }, "listen: option 'port' must be an integer 0-65535" },
  }
  for _, case in ipairs(bad) do
    local opts, msg = case[1], case[2]
    local k = next(opts)
    it("raises on a bad option " .. k .. "=" .. tostring(opts[k]), function()
      opts.host, opts.port = "127.0.0.1", opts.port or 0
      local ok, err = pcall(luaws.listen, opts)
      assert.is_false(ok)
      assert.truthy(err:find(msg, 1, true), err)
    end)
  end

  it("raises when the options are not a table", function()
    assert.has_error(function() luaws.listen("port=1") end)
  end)

  it("returns nil, a message and 'io' when the port is taken", function()
    local s = h.server()
    h.fails_with("io", "in use", luaws.listen { host = "127.0.0.1", port = s.port })
  end)

  it("returns nil, a message and 'resolve' for a host name that does not resolve", function()
    h.fails("resolve", luaws.listen { host = "no-such-host.invalid", port = 0 })
  end)

  it("raises on a route that is not a path or has a bad handler", function()
    local s = h.server()
    assert.has_error(function() s:route("ws", {}) end)
    assert.has_error(function() s:route("/ws", 5) end)
    assert.has_error(function() s:route("/ws", { mesage = function() end }) end)
    assert.has_error(function() s:route("/ws", { message = "echo" }) end)
  end)

  it("raises on misuse of ws methods", function()
    local s = h.echo_server()
    local ws = assert(luaws.connect(s:url("/ws")))
    assert.has_error(function() ws:send({}) end)
    assert.has_error(function() ws:send("x", "utf8") end)
    assert.has_error(function() ws:ping(string.rep("x", 126)) end)
    assert.has_error(function() ws:close(1005) end)
    assert.has_error(function() ws:close(1000, string.rep("r", 124)) end)
    ws:close()
  end)
end)
