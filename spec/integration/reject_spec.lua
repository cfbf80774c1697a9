-- SPDX-License-Identifier: MIT
-- Refusals made visible: the reject option of luaws.listen is called for
-- every request luaws answers with 4xx/5xx by itself (the C core's 400,
-- 405, 413, 426, 431, 501; the Lua layer's 403, 404, 400, 405; an upgrade
-- hook's refusal; 500 when the hook raised), and by default each is one log
-- line, which log_refusals = false silences. Over loopback, with luaws's
-- client and raw TCP peers.
local h = require "helper"
local proc = require "support.proc"
local luaws = h.luaws

local it_py = proc.have_python() and it or pending

local KEY = "dGhlIHNhbXBsZSBub25jZQ=="

local function upgrade(path, extra, method, version)
  return (method or "GET") .. " " .. path .. " HTTP/" .. (version or "1.1") .. "\r\nHost: 127.0.0.1\r\n"
    .. "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " .. KEY .. "\r\n"
    .. (extra or "Sec-WebSocket-Version: 13\r\n") .. "\r\n"
end

describe("refusals", function()
  local server, calls
  local function start(opts)
    calls = {}
    local o = { allowed_origins = { "https://ok.example" } }
    for k, v in pairs(opts or {}) do o[k] = v end
    server = h.server(o)
    server:route("/ws", {
      upgrade = function(req)
        if req.headers["x-token"] == "bad" then return false, 401, "no\n" end
        if req.headers["x-token"] == "boom" then error("hook exploded") end
      end,
      message = function(ws, msg) ws:send(msg) end,
    })
    server:post("/form", function(req) return 200, req.body end)
    server:get("/teapot", function() return 418, "I'm a teapot\n" end)
    return server
  end
  local function rejecting(extra)
    local o = { reject = function(req, status, reason)
      calls[#calls + 1] = { method = req.method, path = req.path, remote = req.remote, status = status,
        reason = reason, upgrade = req.upgrade }
    end, max_body_size = 10 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return start(o)
  end
  before_each(function() h.errors = {} end)
  after_each(function()
    h.cleanup()
    proc.cleanup()
  end)

  describe("the reject option", function()
    for _, case in ipairs {
      { "an upgrade to a path with no route (Lua: 404)", upgrade("/nope"), 404, "GET", "/nope" },
      { "an Origin not allowed (Lua: 403)", upgrade("/ws", "Sec-WebSocket-Version: 13\r\nOrigin: https://evil.example\r\n"),
        403, "GET", "/ws" },
      { "an upgrade hook's refusal (401)", upgrade("/ws", "Sec-WebSocket-Version: 13\r\nX-Token: bad\r\n"), 401, "GET", "/ws" },
      { "an upgrade hook that raised (500)", upgrade("/ws", "Sec-WebSocket-Version: 13\r\nX-Token: boom\r\n"), 500,
        "GET", "/ws" },
      { "a plain GET of a WebSocket route (Lua: 400)", "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400,
        "GET", "/ws" },
      { "a plain GET of no route (Lua: 404)", "GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404, "GET", "/x" },
      { "a method the path has no handler for (Lua: 405)", "GET /form HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        405, "GET", "/form" },
      { "a bad Sec-WebSocket-Version (C: 426)", upgrade("/ws", "Sec-WebSocket-Version: 8\r\n"), 426, "GET", "/ws" },
      { "an upgrade that is not GET (C: 405)", upgrade("/ws", nil, "POST"), 405, "POST", "/ws" },
      { "an upgrade without a key (C: 400)", "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        .. "Sec-WebSocket-Version: 13\r\n\r\n", 400, "GET", "/ws" },
      { "a head over 8 KiB (C: 431, nothing parsed)", "GET /ws HTTP/1.1\r\nX: " .. ("a"):rep(9000) .. "\r\n\r\n", 431 },
      { "a malformed request line (C: 400, nothing parsed)", "GARBAGE\r\n\r\n", 400 },
      { "a body over max_body_size (C: 413)", "POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n", 413,
        "POST", "/form" },
      { "Content-Length with Transfer-Encoding (C: 400)", "POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
        .. "Transfer-Encoding: chunked\r\n\r\n", 400, "POST", "/form" },
      { "a transfer coding it does not know (C: 501)", "POST /form HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: br, chunked\r\n\r\n",
        501, "POST", "/form" },
    } do
      local what, bytes, status, method, path = case[1], case[2], case[3], case[4], case[5]
      it_py(("is called for %s with (req, status, reason)"):format(what), function()
        rejecting()
        local r = proc.raw(server.port, bytes)
        assert.equal(status, (proc.parse_response(r.response)))
        h.pump(function() return #calls > 0 end, "the reject call")
        assert.equal(1, #calls)
        local c = calls[1]
        assert.equal(status, c.status)
        assert.equal(h.core.http_reason(status), c.reason)
        assert.equal(method, c.method)
        assert.equal(path, c.path)
        assert.equal("127.0.0.1", c.remote)
        local logged = table.concat(h.errors, "\n")
        assert.is_nil(logged:find("refused", 1, true), "no log line when reject is given")
      end)
    end

    it("is called for the luaws client's refused handshake and sees the upgrade request", function()
      rejecting()
      h.fails_with("handshake", "404", luaws.connect(server:url("/missing?x=1")))
      h.pump(function() return #calls > 0 end, "the reject call")
      assert.same({ method = "GET", path = "/missing", remote = "127.0.0.1", status = 404, reason = "Not Found",
        upgrade = true }, calls[1])
    end)

    it_py("is not called for answers that are not refusals: 101, 200, a handler's own 418", function()
      rejecting()
      assert(luaws.connect(server:url("/ws"))):close()
      local r = proc.raw(server.port, "POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
        .. "GET /teapot HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      local list = proc.parse_responses(r.response)
      assert.same({ 200, 418 }, { list[1].status, list[2].status })
      h.idle(0.1)
      assert.equal(0, #calls)
    end)

    it("may raise: the error is logged and the server carries on", function()
      start { reject = function() error("reject exploded") end }
      h.fails_with("handshake", "404", luaws.connect(server:url("/missing")))
      h.pump(function() return #h.errors > 0 end, "the logged error")
      assert.matches("error in reject", h.errors[1], 1, true)
      assert.matches("reject exploded", h.errors[1], 1, true)
      local ws = assert(luaws.connect(server:url("/ws")))
      assert(ws:send("still"))
      assert.equal("still", (ws:receive(5)))
      ws:close()
    end)
  end)

  describe("the log line", function()
    it("says what was refused, from whom, and the status, once per refusal", function()
      start()
      h.fails_with("handshake", "404", luaws.connect(server:url("/x?secret=1")))
      h.fails_with("handshake", "403", luaws.connect(server:url("/ws"), { origin = "https://evil.example" }))
      h.pump(function() return #h.errors >= 2 end, "two log lines")
      assert.same({ "refused GET /x from 127.0.0.1: 404 Not Found",
        "refused GET /ws from 127.0.0.1: 403 Forbidden" }, h.errors)
    end)

    it_py("names a request that did not parse as such", function()
      start()
      proc.raw(server.port, "NOT HTTP\r\n\r\n")
      h.pump(function() return #h.errors >= 1 end, "the log line")
      assert.same({ "refused a request that did not parse from 127.0.0.1: 400 Bad Request" }, h.errors)
    end)

    it("is silenced by log_refusals = false", function()
      start { log_refusals = false }
      h.fails_with("handshake", "404", luaws.connect(server:url("/x")))
      h.idle(0.1)
      assert.equal(0, #h.errors)
    end)

    it("goes to stderr with a luaws: prefix when no on_error sink is set", function()
      local out, status = proc.run({ "lua5.4", "-e", [[
local luaws = require "luaws"
local s = assert(luaws.listen { host = "127.0.0.1", port = 0 })
s:route("/ws", {})
local _, msg = luaws.connect(s:url("/x"))
luaws.step(0.05)
s:close()
]] }, { timeout = 30, env = proc.luaws_env() })
      assert.equal(0, status, out)
      assert.matches("luaws: refused GET /x from 127.0.0.1: 404 Not Found\n", out, 1, true)
    end)
  end)
end)
