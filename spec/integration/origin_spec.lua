-- What a request meets before (or instead of) the upgrade: the origin
-- policy, the route's upgrade hook, subprotocol choice, the core's own HTTP
-- answers (400, 404, 426) and static files.
local h = require "helper"
local proc = require "support.proc"
local luaws = h.luaws

local it_py = proc.have_python() and it or pending   -- the raw HTTP peer is python3

local KEY = "dGhlIHNhbXBsZSBub25jZQ=="   -- RFC 6455 §1.3

-- A plain request asks to close after the answer (HTTP/1.1 keeps the
-- connection otherwise); an upgrade request has its own Connection header.
local function request(target, extra)
  extra = extra or ""
  if not extra:find("Connection:", 1, true) then extra = extra .. "Connection: close\r\n" end
  return "GET " .. target .. " HTTP/1.1\r\nHost: 127.0.0.1\r\n" .. extra .. "\r\n"
end

local function upgrade_request(target, version)
  return request(target, "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " .. KEY
    .. "\r\nSec-WebSocket-Version: " .. (version or "13") .. "\r\n")
end

-- Status, headers (lower-case names) and body of the server's answer.
local function http(port, req)
  local r = proc.raw(port, req, { timeout = 5 })
  assert.equal("eof", r.how)   -- the server closes after a plain answer
  return proc.parse_response(r.response)
end

describe("before the upgrade", function()
  local server, opened
  local function start(opts, handlers)
    opened = {}
    server = h.server(opts)
    handlers = handlers or {}
    local user_open = handlers.open
    handlers.open = function(ws)
      opened[#opened + 1] = ws
      if user_open then user_open(ws) end
    end
    handlers.message = handlers.message or function(ws, msg, kind) ws:send(msg, kind) end
    server:route("/ws", handlers)
    return server:url("/ws")
  end
  after_each(function()
    h.cleanup()
    proc.cleanup()
  end)

  local function assert_echoes(ws)
    assert(ws:send("ping?"))
    assert.same({ "ping?", "text" }, { ws:receive(5) })
    ws:close()
  end

  describe("allowed_origins as a list", function()
    local url
    before_each(function() url = start { allowed_origins = { "https://client.com" } } end)

    it("opens for a listed Origin", function()
      assert_echoes(assert(luaws.connect(url, { origin = "https://client.com" })))
    end)

    it("compares origins without regard to case", function()
      assert_echoes(assert(luaws.connect(url, { origin = "HTTPS://Client.COM" })))
    end)

    it("opens for a request without an Origin header (not a browser)", function()
      assert_echoes(assert(luaws.connect(url)))
    end)

    for _, origin in ipairs { "https://evil.com", "http://client.com", "https://client.com.evil.com",
      "https://client.com:8443", "null" } do
      it(("refuses Origin %s with 403 and never opens"):format(origin), function()
        h.fails_with("handshake", "403", luaws.connect(url, { origin = origin }))
        assert.equal(0, #opened)
        assert.equal(1, server:stats().rejected)
      end)
    end
  end)

  it("calls allowed_origins as a function with the Origin, and obeys it", function()
    local seen = {}
    local url = start { allowed_origins = function(origin)
      seen[#seen + 1] = origin
      return origin:match("^https://[%w.]+%.example%.org$") ~= nil
    end }
    assert_echoes(assert(luaws.connect(url, { origin = "https://app.example.org" })))
    h.fails_with("handshake", "403", luaws.connect(url, { origin = "https://example.org.evil.com" }))
    assert_echoes(assert(luaws.connect(url)))   -- no Origin: not asked
    assert.same({ "https://app.example.org", "https://example.org.evil.com" }, seen)
  end)

  -- The core keeps an answer that depends on the path alone (an exact
  -- route, nothing to negotiate) and stops asking the policy for that path:
  -- what it kept must never let through what the policy would refuse.
  describe("an answer kept for a path", function()
    it("still refuses an Origin not on the list after opens without one", function()
      local url = start { allowed_origins = { "https://client.com" } }
      for _ = 1, 3 do assert_echoes(assert(luaws.connect(url))) end
      h.fails_with("handshake", "403", luaws.connect(url, { origin = "https://evil.com" }))
      assert_echoes(assert(luaws.connect(url, { origin = "https://client.com" })))
      h.fails_with("handshake", "403", luaws.connect(url, { origin = "https://evil.com" }))
      assert_echoes(assert(luaws.connect(url)))
      assert.equal(5, #opened)
      assert.equal(2, server:stats().rejected)
    end)

    it("still asks allowed_origins (a function) about every Origin", function()
      local seen = {}
      local url = start { allowed_origins = function(origin)
        seen[#seen + 1] = origin
        return origin == "https://ok.example"
      end }
      assert_echoes(assert(luaws.connect(url)))
      assert_echoes(assert(luaws.connect(url)))
      assert_echoes(assert(luaws.connect(url, { origin = "https://ok.example" })))
      h.fails_with("handshake", "403", luaws.connect(url, { origin = "https://no.example" }))
      assert_echoes(assert(luaws.connect(url, { origin = "https://ok.example" })))
      assert.same({ "https://ok.example", "https://no.example", "https://ok.example" }, seen)
    end)

    it("follows route() when it replaces the path's handlers", function()
      local url = start()
      for _ = 1, 2 do assert_echoes(assert(luaws.connect(url))) end
      server:route("/ws", { message = function(ws, msg) ws:send("B:" .. msg) end })
      local ws = assert(luaws.connect(url))
      assert(ws:send("x"))
      assert.same({ "B:x", "text" }, { ws:receive(5) })
      ws:close()
      server:route("/ws", { upgrade = function() return false, 401 end })
      h.fails_with("handshake", "401", luaws.connect(url))
      server:route("/ws", { protocols = { "chat" }, message = function(ws) ws:send(ws.protocol or "none") end })
      ws = assert(luaws.connect(url, { protocols = { "chat" } }))
      assert.equal("chat", ws.protocol)
      assert(ws:send("x"))
      assert.same({ "chat", "text" }, { ws:receive(5) })
      ws:close()
    end)

    it("keeps answers per path, with the query left out", function()
      local url = start()
      local paths = {}
      for i = 1, 12 do   -- more paths than the core keeps: the rest are asked each time
        local p = "/p" .. i
        server:route(p, { open = function(ws) paths[#paths + 1] = ws.path end,
          message = function(ws, msg) ws:send(ws.path .. " " .. msg) end })
      end
      for round = 1, 2 do
        for i = 1, 12 do
          local ws = assert(luaws.connect(url:gsub("/ws$", "/p" .. i) .. "?r=" .. round))
          assert(ws:send("m"))
          assert.same({ "/p" .. i .. " m", "text" }, { ws:receive(5) })
          ws:close()
        end
      end
      assert.equal(24, #paths)
      h.fails_with("handshake", "404", luaws.connect((url:gsub("/ws$", "/p13"))))
    end)
  end)

  describe("the route's upgrade hook", function()
    local url, reqs
    before_each(function()
      reqs = {}
      url = start({}, {
        upgrade = function(req)
          reqs[#reqs + 1] = req
          if req.headers["x-token"] ~= "s3cret" then return false, 401 end
        end,
      })
    end)

    it("refuses with the status it returns (401)", function()
      h.fails_with("handshake", "401", luaws.connect(url, { headers = { ["X-Token"] = "wrong" } }))
      assert.equal(0, #opened)
    end)

    it_py("refuses with the body and headers it returns (WWW-Authenticate on a 401)", function()
      server:route("/auth", {
        upgrade = function() return false, 401, "token needed\n", { ["WWW-Authenticate"] = 'Bearer realm="ws"' } end,
      })
      local st, headers, body = http(server.port, upgrade_request("/auth"))
      assert.equal(401, st)
      assert.equal('Bearer realm="ws"', headers["www-authenticate"])
      assert.equal("token needed\n", body)
    end)

    it("hands req.data from the upgrade hook to the connection as ws.data", function()
      local seen
      server:route("/who", {
        upgrade = function(req) req.data = { user = req.headers["x-user"] } end,
        message = function(ws, msg) seen = { ws.data.user, ws.path, msg } end,
      })
      local ws = assert(luaws.connect(server:url("/who"), { headers = { ["X-User"] = "alice" } }))
      assert(ws:send("hi"))
      h.pump(function() return seen ~= nil end, "the message handler")
      assert.same({ "alice", "/who", "hi" }, seen)
      ws:close()
    end)

    it("lets the upgrade through when it returns nothing, and sees the request", function()
      local ws = assert(luaws.connect(url .. "?room=7", { headers = { ["X-Token"] = "s3cret" },
        origin = "https://client.com" }))
      assert_echoes(ws)
      local req = reqs[1]
      assert.equal("/ws", req.path)
      assert.equal("room=7", req.query)
      assert.equal("https://client.com", req.origin)
      assert.equal("127.0.0.1", req.remote)
      assert.equal("s3cret", req.headers["x-token"])
    end)
  end)

  describe("subprotocols", function()
    local url
    before_each(function() url = start { protocols = { "chat.v2", "chat.v1" } } end)

    it("picks the server's first choice among those offered, on both sides", function()
      local ws = assert(luaws.connect(url, { protocols = { "chat.v1", "chat.v2" } }))
      assert.equal("chat.v2", ws.protocol)
      h.pump(function() return #opened == 1 end, "the open handler")
      assert.equal("chat.v2", opened[1].protocol)
      assert_echoes(ws)
    end)

    it("picks the one protocol in common", function()
      local ws = assert(luaws.connect(url, { protocols = { "mqtt", "chat.v1" } }))
      assert.equal("chat.v1", ws.protocol)
      h.pump(function() return #opened == 1 end, "the open handler")
      assert.equal("chat.v1", opened[1].protocol)
    end)

    it("opens without a protocol when none is in common", function()
      local ws = assert(luaws.connect(url, { protocols = { "mqtt", "stomp" } }))
      assert.is_nil(ws.protocol)
      h.pump(function() return #opened == 1 end, "the open handler")
      assert.is_nil(opened[1].protocol)
      assert_echoes(ws)
    end)

    it("lets the upgrade hook choose the protocol", function()
      server:route("/pick", {
        upgrade = function(req) req.protocol = "chat.v1" end,
        message = function(ws, m) ws:send(m) end,
      })
      local ws = assert(luaws.connect(server:url("/pick"), { protocols = { "chat.v2", "chat.v1" } }))
      assert.equal("chat.v1", ws.protocol)
      assert_echoes(ws)
    end)

    -- RFC 6455 §4.2.2: the server may only choose a protocol the client
    -- offered; a hook that picks another is a bug, answered with 500.
    it("refuses (500) an upgrade hook that picks a protocol the client did not offer", function()
      h.errors = {}
      server:route("/rogue", {
        upgrade = function(req) req.protocol = "rogue.v9" end,
        open = function(ws) opened[#opened + 1] = ws end,
      })
      h.fails_with("handshake", "500", luaws.connect(server:url("/rogue"), { protocols = { "chat.v1" } }))
      assert.truthy(table.concat(h.errors, "\n"):find("did not offer", 1, true))
    end)

    -- RFC 6455 §4.1, the client's checks of the answer, item 6: a
    -- subprotocol "that was not present in the client's handshake" MUST
    -- fail the connection. Our server never sends one, so a raw server does.
    for _, offered in ipairs { { "chat.v1" }, false } do
      it_py(("makes our client fail a 101 that names a protocol it did not offer (offered: %s)")
        :format(offered and table.concat(offered, ", ") or "none"), function()
        local rogue = proc.spawn({ proc.PYTHON, "-c", [[
import base64, hashlib, socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print("port", s.getsockname()[1], flush=True)
s.settimeout(10)
c, _ = s.accept(); c.settimeout(5)
head = b""
while b"\r\n\r\n" not in head:
    head += c.recv(4096)
key = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key:")][0]
acc = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Accept: " + acc + b"\r\nSec-WebSocket-Protocol: rogue.v9\r\n\r\n")
try:
    c.recv(4096)
except Exception:
    pass
]] }, { unset = { "LD_PRELOAD" } })
        local port = assert(rogue:wait_line("port (%d+)", 10))
        local got = table.pack(luaws.connect(("ws://127.0.0.1:%s/x"):format(port),
          { protocols = offered or nil, timeout = 5 }))
        assert.is_nil(got[1], "connected with protocol " .. tostring(got[1] and got[1].protocol))
        h.fails_with("handshake", "rogue.v9", table.unpack(got, 1, got.n))
        rogue:signal("KILL")
        rogue:wait(5)
      end)
    end

    it("lets a route's protocols override the server's", function()
      server:route("/v1", { protocols = { "chat.v1" }, message = function(ws, m) ws:send(m) end })
      local ws = assert(luaws.connect(server:url("/v1"), { protocols = { "chat.v2", "chat.v1" } }))
      assert.equal("chat.v1", ws.protocol)
      assert_echoes(ws)
    end)
  end)

  it("answers 503 past max_connections, and serves again once one leaves", function()
    local url = start { max_connections = 2 }
    local a = assert(luaws.connect(url))
    local b = assert(luaws.connect(url))
    h.fails_with("handshake", "503", luaws.connect(url))
    assert(a:close())
    h.fails("closed", a:receive(5))
    h.pump(function() return server:stats().connections == 1 end, "the first connection to go")
    assert_echoes(assert(luaws.connect(url)))
    assert_echoes(b)
  end)

  describe("plain HTTP", function()
    local port
    before_each(function()
      start()
      port = server.port
    end)

    it("refuses an upgrade to an unknown path with 404", function()
      h.fails_with("handshake", "404", luaws.connect(server:url("/nowhere")))
    end)

    it_py("answers a plain GET to a WebSocket route with 400", function()
      local status = http(port, request("/ws"))
      assert.equal(400, status)
    end)

    it_py("answers a plain GET to an unknown path with 404", function()
      local status = http(port, request("/missing.html"))
      assert.equal(404, status)
    end)

    it_py("answers a wrong Sec-WebSocket-Version with 426 and the version it speaks", function()
      local status, headers = http(port, upgrade_request("/ws", "8"))
      assert.equal(426, status)
      assert.equal("13", headers["sec-websocket-version"])
      assert.equal(0, #opened)
    end)

    it_py("answers a good handshake with 101 and the RFC 6455 accept key", function()
      local r = proc.raw(port, upgrade_request("/ws"), { timeout = 15, head = true })
      local status, headers = proc.parse_response(r.response)
      assert.equal(101, status)
      assert.equal("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", headers["sec-websocket-accept"])
    end)
  end)

  describe("static files", function()
    local root, port
    before_each(function()
      root = os.tmpname()
      os.remove(root)
      proc.check { "mkdir", "-p", root .. "/public/sub" }
      local function write(path, body)
        local f = assert(io.open(root .. path, "wb"))
        f:write(body)
        f:close()
      end
      write("/public/index.html", "<h1>home</h1>")
      write("/public/app.css", "body{}")
      write("/public/sub/page.js", "let x = 1")
      write("/secret.txt", "TOP SECRET")
      start { static = root .. "/public" }
      port = server.port
    end)
    after_each(function() proc.check { "rm", "-rf", root } end)

    for _, case in ipairs {
      { "/index.html", "text/html", "<h1>home</h1>" },
      { "/", "text/html", "<h1>home</h1>" },
      { "/app.css", "text/css", "body{}" },
      { "/sub/page.js", "text/javascript", "let x = 1" },
    } do
      local target, ctype, body = case[1], case[2], case[3]
      it_py(("serves %s with 200 and Content-Type %s"):format(target, ctype), function()
        local status, headers, got = http(port, request(target))
        assert.equal(200, status)
        assert.matches(ctype, headers["content-type"], 1, true)
        assert.equal(tostring(#body), headers["content-length"])
        assert.equal(body, got)
      end)
    end

    it_py("ignores the query string when it looks for the file", function()
      local status, _, got = http(port, request("/app.css?v=2"))
      assert.equal(200, status)
      assert.equal("body{}", got)
    end)

    -- RFC 9110 §8.6: a Content-Length in an answer to HEAD must be the
    -- length a GET would have sent.
    it_py("answers HEAD with the headers of GET and no body", function()
      local r = proc.raw(port, "HEAD /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        { timeout = 5 })
      local status, headers, got = proc.parse_response(r.response)
      assert.equal(200, status)
      assert.matches("text/html", headers["content-type"], 1, true)
      assert.equal("", got)
      if headers["content-length"] then
        assert.equal(tostring(#"<h1>home</h1>"), headers["content-length"])
      end
    end)

    it_py("answers other methods with 405 and Allow", function()
      local status, headers = http(port, "POST /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
        .. "Connection: close\r\n\r\n")
      assert.equal(405, status)
      assert.matches("GET", headers["allow"], 1, true)
    end)

    it_py("still routes WebSocket upgrades beside static files", function()
      assert_echoes(assert(luaws.connect(server:url("/ws"))))
    end)

    for _, target in ipairs {
      "/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E%2Fsecret.txt",
      "/sub/%2e%2e/%2e%2e/secret.txt", "/..%2fsecret.txt", "/..\\secret.txt", "/%5c..%5csecret.txt",
      "/./../secret.txt", "/sub/..%00/secret.txt",
    } do
      it_py(("never serves a file outside the root for %s"):format(target), function()
        local r = proc.raw(port, request(target), { timeout = 5 })
        local status = proc.parse_response(r.response)
        assert.is_true(status == 400 or status == 404, "status " .. tostring(status))
        assert.is_nil(r.response:find("TOP SECRET", 1, true))
      end)
    end
  end)
end)
