-- SPDX-License-Identifier: MIT
-- The example scripts, run as subprocesses and driven with luaws.connect:
-- examples/origin.lua (allowed_origins, a token in the upgrade hook),
-- examples/timeout.lua (idle_timeout, client pings), examples/chat.lua
-- (JSON broadcast, the periodic push) and examples/hostloop_cqueues.lua (luaws
-- inside a cqueues loop). Each does what its header says.
local h = require "helper"
local luaws = h.luaws
local common = require "examples.common"
local proc = require "support.proc"
local json = common.json()

-- GET path from the example with Python's urllib: status, content type, body.
local function http_get(port, path)
  local script = "import sys, urllib.request, urllib.error\n"
    .. "try:\n    r = urllib.request.urlopen(sys.argv[1], timeout=10)\n"
    .. "except urllib.error.HTTPError as e:\n    r = e\n"
    .. "sys.stdout.write('%d %s\\n' % (r.status, r.headers.get('Content-Type')))\n"
    .. "sys.stdout.write(r.read().decode('utf-8', 'replace'))\n"
  local out, code = proc.run({ proc.PYTHON, "-c", script, ("http://127.0.0.1:%d%s"):format(port, path) },
    { timeout = 20 })
  assert(code == 0, "python3 urllib failed: " .. out)
  local status, ctype, body = out:match("^(%d+) ([^\n]*)\n(.*)$")
  return tonumber(status), ctype, body
end

-- Every client a test opens is closed after it.
local clients = {}
local function connect(url, opts)
  local ws, message, token = luaws.connect(url, opts)
  if ws then clients[#clients + 1] = ws end
  return ws, message, token
end

local function finish()
  for i = #clients, 1, -1 do
    if clients[i].state == "open" then clients[i]:close() end
    clients[i] = nil
  end
  local ok, err = pcall(h.cleanup)   -- waits until our connections are gone
  common.stop_all()                  -- raises if an example died or ignored SIGTERM
  assert(ok, err)
end

describe("examples/origin.lua", function()
  after_each(finish)

  it("prints its listening line and serves the echo page", function()
    local ex = common.start("examples/origin.lua")
    assert.equal("origin", ex.name)
    local status, ctype, body = http_get(ex.port, "/")
    assert.equal(200, status)
    assert.equal("text/html; charset=utf-8", ctype)
    assert.matches("<title>luaws · WebSocket echo</title>", body, 1, true)
  end)

  it("lets https://client.com (and no Origin at all) in by default and answers 403 to others", function()
    local ex = common.start("examples/origin.lua")
    for _, origin in ipairs { "https://client.com", false } do
      local ws = assert(connect(ex:url("/ws"), { origin = origin or nil }))
      assert(ws:send("from " .. tostring(origin)))
      assert.same({ "from " .. tostring(origin), "text" }, { ws:receive(5) })
      ws:close()
    end
    for _, origin in ipairs { "https://evil.example", "http://client.com", "https://client.com:8443",
      "https://client.com.evil.example", "null" } do
      h.fails_with("handshake", "403 Forbidden", connect(ex:url("/ws"), { origin = origin }))
    end
  end)

  it("takes --allow-origin, repeatable, in place of the default", function()
    local ex = common.start("examples/origin.lua",
      { "--allow-origin", "http://client.test:8080", "--allow-origin", "https://b.example" })
    for _, origin in ipairs { "http://client.test:8080", "https://b.example" } do
      local ws = assert(connect(ex:url("/ws"), { origin = origin }))
      assert(ws:send("x"))
      assert.equal("x", (ws:receive(5)))
      ws:close()
    end
    for _, origin in ipairs { "https://client.com", "http://client.test:8081", "http://other.test:8080" } do
      h.fails_with("handshake", "403 Forbidden", connect(ex:url("/ws"), { origin = origin }))
    end
  end)

  it("refuses /private with 401 without the token, and accepts it in the query or a Bearer header", function()
    local ex = common.start("examples/origin.lua", { "--token", "t0ken" })
    h.fails_with("handshake", "401 Unauthorized", connect(ex:url("/private")))
    h.fails_with("handshake", "401 Unauthorized", connect(ex:url("/private?token=s3cret")))
    h.fails_with("handshake", "401 Unauthorized",
      connect(ex:url("/private"), { headers = { Authorization = "Bearer wrong" } }))
    ex:wait_output("^origin: refused 127%.0%.0%.1 on /private: no valid token$", "the refusal in the log")
    for _, how in ipairs {
      { ex:url("/private?token=t0ken") },
      { ex:url("/private?a=1&token=t0ken&b=2") },
      { ex:url("/private"), { headers = { Authorization = "Bearer t0ken" } } },
    } do
      local ws = assert(connect(how[1], how[2]))
      assert(ws:send("secret echo"))
      assert.equal("secret echo", (ws:receive(5)))
      ws:close()
    end
  end)

  it("checks the origin before the token: a right token from a refused origin gets 403", function()
    local ex = common.start("examples/origin.lua")
    h.fails_with("handshake", "403 Forbidden",
      connect(ex:url("/private?token=s3cret"), { origin = "https://evil.example" }))
    local ws = assert(connect(ex:url("/private?token=s3cret"), { origin = "https://client.com" }))
    ws:close()
  end)
end)

describe("examples/timeout.lua", function()
  after_each(finish)

  -- X = 1 s: the pings below come every 0.2 s, so a second and more of
  -- delay on a busy machine still leaves the client well inside 2·X.
  it("keeps a client that pings every X s and closes one silent for 2·X s (1006 timeout in the log)", function()
    local ex = common.start("examples/timeout.lua", { "--interval", "1" })
    assert.equal("timeout", ex.name)
    local ws = assert(connect(ex:url("/ws")))
    ex:wait_output("client 127%.0%.0%.1:%d+ connected", "the connect log")
    -- ping every 0.2 s for 2.5 s: longer than 2·X, and still open
    local pinger = luaws.every(0.2, function() ws:ping() end)
    h.idle(2.5)
    pinger:stop()
    assert.equal("open", ws.state)
    assert(ws:send("still here"))
    assert.equal("still here", (ws:receive(5)))
    -- then silence: the server gives up after 2 s and tells us 1001 (not
    -- before 1 s, for sure; the time is reported)
    local t0 = luaws.now()
    h.fails("closed", ws:receive(15))
    local waited = luaws.now() - t0
    print(("# examples/timeout.lua --interval 1: closed after %.2f s of silence"):format(waited))
    assert.same({ 1001, "timeout" }, { ws:close_status() })
    assert.is_true(waited > 1, "closed after " .. waited .. " s of silence")
    ex:wait_output('disconnected %(silent for 2 s%) after [%d.]+ s: code 1006, reason "timeout"$',
      "the timeout in the log")
  end)

  it("logs a normal close as closed, with the client's code", function()
    local ex = common.start("examples/timeout.lua", { "--interval", "5" })
    local ws = assert(connect(ex:url("/ws")))
    assert(ws:close(1000, "bye"))
    h.fails("closed", ws:receive(5))
    ex:wait_output('disconnected %(closed%) after [%d.]+ s: code 1000, reason "bye"$', "the close in the log")
  end)

  -- X = 1 s: each ping is due a whole second before the server would give up.
  it("has a client mode that pings N times, then goes silent and sees the server close", function()
    local ex = common.start("examples/timeout.lua", { "--interval", "1" })
    local client = common.spawn("examples/timeout.lua",
      { "--client", ex:url("/ws"), "--interval", "1", "--pings", "2" })
    client.may_exit = true
    client:wait_output("^client: the server closed the connection: 1001 timeout$", "the client's last line", 30)
    assert.is_number(client:wait(15), "the client exits")
    local out = client:output()
    assert.matches("client: ping 1\nclient: ping 2\nclient: silent from now on\n", out, 1, true)
    assert.is_nil(out:find("ping 3", 1, true))
    ex:wait_output('disconnected %(silent for 2 s%).*code 1006, reason "timeout"$', "the server's log")
  end)
end)

describe("examples/chat.lua", function()
  after_each(finish)

  -- The next message on ws that is not a tick, decoded.
  local function next_chat(ws)
    while true do
      local msg, kind = ws:receive(5)
      assert(msg, "no chat message: " .. tostring(kind))
      assert.equal("text", kind)
      local m = assert(json.decode(msg))
      if m.from ~= "server" then return m, msg end
    end
  end

  local ISO = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$"

  it("serves the chat page", function()
    local ex = common.start("examples/chat.lua", { "--tick", "60" })
    assert.equal("chat", ex.name)
    local status, ctype, body = http_get(ex.port, "/")
    assert.equal(200, status)
    assert.equal("text/html; charset=utf-8", ctype)
    assert.matches("chat.js", body, 1, true)
    assert.equal(200, (http_get(ex.port, "/chat.js")))
  end)

  it("sends what one client says to both, as JSON with from, text and an ISO time", function()
    local ex = common.start("examples/chat.lua", { "--tick", "60" })
    local alice = assert(connect(ex:url("/chat")))
    local bob = assert(connect(ex:url("/chat")))
    local text = 'hi bob: "quotes", \\ back\\slash, new\nline, tab\t, κόσμε, 😀, <i>markup</i>'
    assert(alice:send(json.encode { name = "alice", text = text }))
    for _, ws in ipairs { alice, bob } do
      local m, raw = next_chat(ws)
      assert.equal("alice", m.from)
      assert.equal(text, m.text)
      assert.matches(ISO, m.at)
      assert.is_nil(raw:find("\n", 1, true), "a newline travels escaped")
    end
    -- surrogate pairs written by a browser's JSON.stringify arrive as UTF-8
    assert(bob:send('{"name":"bob","text":"\\ud83d\\ude00 \\u00e9"}'))
    for _, ws in ipairs { alice, bob } do
      assert.same("😀 é", next_chat(ws).text)
    end
  end)

  it("pushes {from: server, text: tick N} every --tick seconds", function()
    local ex = common.start("examples/chat.lua", { "--tick", "0.3" })
    local ws = assert(connect(ex:url("/chat")))
    local seen = {}
    while #seen < 2 do
      local msg = assert(ws:receive(5))
      local m = assert(json.decode(msg))
      assert.equal("server", m.from)
      assert.matches(ISO, m.at)
      seen[#seen + 1] = tonumber(m.text:match("^tick (%d+)$"))
    end
    assert.is_true(seen[2] == seen[1] + 1, "ticks count up")
  end)

  it("shows a missing, blank or 'server' name as anonymous and cuts long names to 40 characters", function()
    local ex = common.start("examples/chat.lua", { "--tick", "60" })
    local ws = assert(connect(ex:url("/chat")))
    local cases = {
      { { text = "a" }, "anonymous" },
      { { name = "  ", text = "b" }, "anonymous" },
      { { name = " Server ", text = "c" }, "anonymous" },
      { { name = 42, text = "d" }, "anonymous" },
      { { name = "  ada  ", text = "e" }, "ada" },
      { { name = ("λ"):rep(50), text = "f" }, ("λ"):rep(40) },
    }
    for _, c in ipairs(cases) do
      assert(ws:send(json.encode(c[1])))
      assert.equal(c[2], next_chat(ws).from)
    end
  end)

  it("drops what is not {name, text} JSON, logs it, and keeps the connection", function()
    local ex = common.start("examples/chat.lua", { "--tick", "60" })
    local ws = assert(connect(ex:url("/chat")))
    for _, junk in ipairs { "not json", '{"name":"x"}', '{"text":5}', "[1,2]", '"text"' } do
      assert(ws:send(junk))
    end
    assert(ws:send("\0\1", "binary"))
    assert(ws:send(json.encode { name = "ok", text = "after the junk" }))
    local m = next_chat(ws)
    assert.equal("after the junk", m.text)   -- nothing came before it
    assert.equal("open", ws.state)
    ex:wait_output("^chat: dropped a message from 127%.0%.0%.1", "the log of a dropped message")
    local _, n = ex:output():gsub("chat: dropped", "")
    assert.equal(6, n)
  end)
end)

describe("examples/hostloop_cqueues.lua", function()
  after_each(finish)

  local has_cqueues = pcall(require, "cqueues")

  ;(has_cqueues and it or pending)("echoes inside a cqueues loop and shuts down on the host's SIGTERM: 1001, then exit 0", function()
    local ex = common.start("examples/hostloop_cqueues.lua")
    assert.equal("hostloop_cqueues", ex.name)
    ex.may_exit = true   -- SIGTERM ends it by itself
    local ws = assert(connect(ex:url("/ws")))
    for i = 1, 20 do
      assert(ws:send("m" .. i))
      assert.equal("m" .. i, (ws:receive(5)))
    end
    assert.is_true(ex:signal("TERM"))
    h.fails("closed", ws:receive(10))
    assert.same({ 1001, "server shutdown" }, { ws:close_status() })
    assert.equal(0, ex:wait(10), ex:output())
    assert.matches("shutting down: connections get 1001\nbye\n", ex:output(), 1, true)
  end)
end)
