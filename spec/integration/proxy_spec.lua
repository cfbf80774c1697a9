-- SPDX-License-Identifier: MIT
-- Behind a proxy, without the proxy: listen{unix = path} (its mode, a stale
-- file, a live one, removal at close), trusted_proxies (X-Forwarded-For,
-- Forwarded, X-Forwarded-Proto: believed from a trusted peer only, the
-- rightmost untrusted hop), proxy_protocol (PROXY v1 and v2 headers, good
-- and bad, bounded by the handshake timeout), and the access log.
-- spec/integration/deploy_spec.lua puts a real nginx in front.
local h = require "helper"
local proc = require "support.proc"
local luaws = h.luaws

local WAIT = 20
local have_py = proc.have_python("websockets")
local it_py = have_py and it or pending

-- A server that answers each message with "REMOTE PORT SECURE MSG", and
-- keeps the request fields its upgrade hook saw.
local function who_server(opts)
  local seen = {}
  local s = h.server(opts)
  s:route("/who", {
    upgrade = function(req) seen[#seen + 1] = { remote = req.remote, port = req.port, secure = req.secure } end,
    message = function(ws, msg) ws:send(("%s %d %s %s"):format(ws.remote, ws.port, tostring(ws.secure), msg)) end,
  })
  return s, seen
end

-- Our client's answer to "hello" on server s.
local function ask(s, headers)
  local ws = assert(luaws.connect(s:url("/who"), { headers = headers }))
  assert(ws:send("hello"))
  local msg = assert(ws:receive(WAIT))
  ws:close()
  return msg
end

local function mode_of(path)
  local out = assert(io.popen("stat -c %a '" .. path .. "' 2>/dev/null")):read("a")
  return out:match("%d+")
end

local function exists(path) return os.execute("test -e '" .. path .. "'") == true end

describe("listen{unix = path}", function()
  local dir
  before_each(function() dir = proc.tmpdir() end)
  after_each(function()
    proc.cleanup()
    h.cleanup()
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it_py("serves WebSocket on a unix socket with the mode asked, ws.remote is \"unix\", and close removes the file", function()
    local path = dir .. "/app.sock"
    local s = who_server { unix = path, unix_mode = "0660" }
    assert.equal(path, s.unix)
    assert.equal(0, s.port)
    assert.equal("660", mode_of(path))
    assert.equal("unix 0 false hello", proc.proxied_reply("ws://localhost/who", { "--unix", path }))
    s:close()
    assert.is_false(exists(path))
  end)

  it("replaces a stale socket file that nobody listens on", function()
    local path = dir .. "/stale.sock"
    -- a socket bound and abandoned without unlink, as a crash leaves it
    assert(proc.run({ proc.PYTHON, "-c", ("import socket; s = socket.socket(socket.AF_UNIX); s.bind(%q)"):format(path) },
      { timeout = 20, unset = { "LD_PRELOAD" } }))
    assert.is_true(exists(path))
    local s = h.server { unix = path }
    assert.equal(path, s.unix)
  end)

  it("refuses a path where a server listens: address already in use, and the first keeps serving", function()
    local path = dir .. "/busy.sock"
    h.server { unix = path }
    h.fails_with("io", "address already in use", luaws.listen { unix = path })
    assert.is_true(exists(path))
  end)

  it("leaves a file that is not a socket alone", function()
    local path = dir .. "/file"
    local f = assert(io.open(path, "w"))
    f:write("data")
    f:close()
    h.fails_with("io", "not a socket", luaws.listen { unix = path })
    assert.equal("data", proc.read_all(path))
  end)

  it_py("with luaws.run{workers = 2}: the master binds the socket, the workers serve it, and it is removed when the master exits", function()
    local path = dir .. "/workers.sock"
    local script = dir .. "/server.lua"
    local f = assert(io.open(script, "w"))
    f:write(([[
local luaws = require "luaws"
local s = assert(luaws.listen { unix = %q, unix_mode = "0600" })
s:route("/who", { message = function(ws, msg) ws:send(ws.remote .. " " .. msg) end })
io.stdout:setvbuf("line")
print("listening")
luaws.run { workers = 2 }
]]):format(path))
    f:close()
    local p = proc.spawn({ "lua5.4", script }, { env = proc.luaws_env(), merge = true })
    assert(p:wait_line("2 workers started", WAIT), p:stdout())
    proc.wait_until(function()   -- each worker says so once it serves
      local n = 0
      for _ in p:stdout():gmatch("listening\n") do n = n + 1 end
      return n == 3
    end, WAIT)
    for _ = 1, 4 do
      assert.equal("unix hello", proc.proxied_reply("ws://localhost/who", { "--unix", path }))
    end
    assert.equal("600", mode_of(path))
    assert.is_true(p:stop(20))
    assert.is_false(exists(path))
  end)

  it("checks its options: unix_mode needs unix, and is octal text or a number up to 0777", function()
    assert.error_matches(function() luaws.listen { unix_mode = "0660" } end, "set 'unix' too")
    assert.error_matches(function() luaws.listen { unix = dir .. "/x", unix_mode = "0999" } end, "unix_mode")
    assert.error_matches(function() luaws.listen { unix = dir .. "/x", unix_mode = 4096 } end, "unix_mode")
  end)
end)

describe("trusted_proxies", function()
  after_each(function()
    proc.cleanup()
    h.cleanup()
  end)

  it("from a trusted peer: the rightmost untrusted X-Forwarded-For hop is ws.remote, X-Forwarded-Proto sets ws.secure", function()
    local s, seen = who_server { trusted_proxies = { "127.0.0.1", "10.0.0.0/8" } }
    local got = ask(s, { ["X-Forwarded-For"] = "6.6.6.6, 198.51.100.7, 10.1.2.3", ["X-Forwarded-Proto"] = "https" })
    assert.equal("198.51.100.7 0 true hello", got)
    assert.same({ remote = "198.51.100.7", port = 0, secure = true }, seen[1])
  end)

  it("reads RFC 7239 Forwarded (for= with a port, proto=) when there is no X-Forwarded-For", function()
    local s = who_server { trusted_proxies = { "127.0.0.1" } }
    assert.equal("2001:db8:cafe::17 4711 true hello",
      ask(s, { Forwarded = 'for="[2001:db8:cafe::17]:4711";proto=https' }))
  end)

  it("from a peer that is not trusted, the headers are ignored: ws.remote is the socket's peer", function()
    local s, seen = who_server { trusted_proxies = { "10.0.0.0/8" } }
    local got = ask(s, { ["X-Forwarded-For"] = "6.6.6.6", ["X-Forwarded-Proto"] = "https" })
    assert.truthy(got:match("^127%.0%.0%.1 %d+ false hello$"), got)
    assert.equal("127.0.0.1", seen[1].remote)
    assert.is_false(seen[1].secure)
  end)

  ;(h.has_ipv6() and it or pending)("trusts an IPv6 peer by address (::1)", function()
    local s = who_server { host = "::1", trusted_proxies = { "::1" } }
    assert.equal("198.51.100.8 0 false hello", ask(s, { ["X-Forwarded-For"] = "198.51.100.8" }))
  end)

  it("without trusted_proxies nobody is believed", function()
    local s = who_server {}
    assert.truthy(ask(s, { ["X-Forwarded-For"] = "6.6.6.6" }):match("^127%.0%.0%.1 "))
  end)

  it("ends the walk at an entry that is no address: what is left of it cannot be believed", function()
    local s = who_server { trusted_proxies = { "127.0.0.1", "10.0.0.0/8" } }
    assert.equal("10.0.0.9 0 false hello", ask(s, { ["X-Forwarded-For"] = "6.6.6.6, unknown, 10.0.0.9" }))
  end)

  it("refuses an entry that is no address or range, naming it", function()
    assert.error_matches(function() luaws.listen { trusted_proxies = { "127.0.0.1", "10.0.0.0/33" } } end,
      "trusted_proxies' entry 2")
    assert.error_matches(function() luaws.listen { trusted_proxies = { "localhost" } } end, "not an address")
  end)
end)

-- A PROXY v2 header: command (0x20 LOCAL, 0x21 PROXY), family byte, block.
local SIG = "\r\n\r\n\0\r\nQUIT\n"
local function v2(cmd, fam, block) return SIG .. string.char(cmd, fam) .. string.pack(">I2", #block) .. block end
local function tcp4(a, b, sport, dport)
  local function ip(s) return string.char(s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")) end
  return ip(a) .. ip(b) .. string.pack(">I2I2", sport, dport)
end

local UPGRADE = "GET /who HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
  .. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

describe("proxy_protocol = true", function()
  after_each(function()
    proc.cleanup()
    h.cleanup()
  end)

  local cases = {
    { "v1 TCP4", "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n", "192.0.2.1", 56324, false },
    { "v1 TCP6", "PROXY TCP6 2001:db8::1 2001:db8::2 4711 443\r\n", "2001:db8::1", 4711, false },
    { "v1 UNKNOWN (the socket's address stands)", "PROXY UNKNOWN\r\n", "127.0.0.1", nil, false },
    { "v2 PROXY TCP4", v2(0x21, 0x11, tcp4("203.0.113.5", "10.0.0.1", 40000, 443)), "203.0.113.5", 40000, false },
    { "v2 PROXY TCP4 with the SSL TLV (the client spoke TLS to the balancer)",
      v2(0x21, 0x11, tcp4("203.0.113.6", "10.0.0.1", 40001, 443) .. "\x20\0\5\1\0\0\0\0"), "203.0.113.6", 40001, true },
    { "v2 LOCAL (a health check: the socket's address stands)", v2(0x20, 0x00, ""), "127.0.0.1", nil, false },
  }
  for _, c in ipairs(cases) do
    it(("accepts a %s header before the upgrade request"):format(c[1]), function()
      local s, seen = who_server { proxy_protocol = true }
      local r = proc.raw(s.port, c[2] .. UPGRADE, { head = true, timeout = WAIT })
      assert.truthy(r.response:match("^HTTP/1%.1 101 "), r.response)
      assert.equal(c[3], seen[1].remote)
      if c[4] then assert.equal(c[4], seen[1].port) end
      assert.equal(c[5], seen[1].secure)
    end)
  end

  it("serves plain HTTP after the header, and several requests on the one connection keep its client", function()
    local s = h.server { proxy_protocol = true }
    s:get("/ip", function(req) return 200, req.remote end)
    local r = proc.raw(s.port, "PROXY TCP4 192.0.2.9 10.0.0.1 1000 80\r\n"
      .. "GET /ip HTTP/1.1\r\nHost: x\r\n\r\nGET /ip HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", { timeout = WAIT })
    local answers = proc.parse_responses(r.response)
    assert.equal(2, #answers)
    assert.equal("192.0.2.9", answers[1].body)
    assert.equal("192.0.2.9", answers[2].body)
  end)

  it("a trusted balancer's client can itself be a trusted proxy whose X-Forwarded-For counts", function()
    local s, seen = who_server { proxy_protocol = true, trusted_proxies = { "10.0.0.0/8" } }
    local r = proc.raw(s.port, "PROXY TCP4 10.0.0.7 10.0.0.1 1000 80\r\n"
      .. UPGRADE:gsub("\r\n\r\n$", "\r\nX-Forwarded-For: 198.51.100.20\r\n\r\n"), { head = true, timeout = WAIT })
    assert.truthy(r.response:match("^HTTP/1%.1 101 "), r.response)
    assert.equal("198.51.100.20", seen[1].remote)
  end)

  local bad = {
    { "no header at all (an HTTP request)", UPGRADE },
    { "a v1 line with two spaces", "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n" .. UPGRADE },
    { "a v1 line with the wrong family", "PROXY TCP4 ::1 ::1 1 2\r\n" .. UPGRADE },
    { "a v1 line over 107 bytes", "PROXY UNKNOWN " .. string.rep("x", 100) .. "\r\n" .. UPGRADE },
    { "a v2 header of version 1", SIG .. "\x11\x11\0\12" .. tcp4("1.2.3.4", "5.6.7.8", 1, 2) .. UPGRADE },
    { "a v2 header for UDP", v2(0x21, 0x12, tcp4("1.2.3.4", "5.6.7.8", 1, 2)) .. UPGRADE },
    { "a v2 header whose TLVs overrun it", v2(0x21, 0x11, tcp4("1.2.3.4", "5.6.7.8", 1, 2) .. "\x20\0\9\1") .. UPGRADE },
  }
  for _, c in ipairs(bad) do
    it(("closes the connection without an answer, and counts it, on %s"):format(c[1]), function()
      local s, seen = who_server { proxy_protocol = true }
      local r = proc.raw(s.port, c[2], { timeout = WAIT })
      assert.equal("", r.response)
      assert.are_not.equal("timeout", r.how)
      assert.equal(0, #seen)
      assert.equal(1, s._c:metrics().proxy_errors)
    end)
  end

  it("a header that never finishes is ended by handshake_timeout, not kept forever", function()
    local s, seen = who_server { proxy_protocol = true, handshake_timeout = 0.5 }
    local r = proc.raw(s.port, "PROXY TCP4 192.0.2.1 198.51", { timeout = WAIT })
    assert.equal("eof", r.how)
    assert.equal("", r.response)
    assert.equal(0, #seen)
  end)

  it("does not go with tls (yet): the option says so", function()
    assert.error_matches(function()
      luaws.listen { proxy_protocol = true, tls = { certificate = "c.pem", key = "k.pem" } }
    end, "proxy_protocol' does not go with 'tls'")
  end)
end)

describe("access_log", function()
  after_each(function()
    proc.cleanup()
    h.cleanup()
  end)

  local function lines(event)
    local out = {}
    for _, e in ipairs(h.errors) do
      if e:find("event=" .. event, 1, true) or e:find('"event":"' .. event .. '"', 1, true) then out[#out + 1] = e end
    end
    return out
  end

  it("is off by default", function()
    h.errors = {}
    local s = who_server {}
    ask(s)
    h.idle(0.2)
    assert.equal(0, #lines("upgrade") + #lines("close"))
  end)

  it("logs one logfmt line per upgrade and per close: remote, path, status / code, duration, bytes", function()
    h.errors = {}
    local s = who_server { access_log = true, trusted_proxies = { "127.0.0.1" } }
    ask(s, { ["X-Forwarded-For"] = "192.0.2.44" })
    h.pump(function() return #lines("close") == 1 end, "the close line", WAIT)
    local up, down = lines("upgrade"), lines("close")
    assert.equal(1, #up)
    assert.truthy(up[1]:match("remote=192%.0%.2%.44 path=/who status=101 duration=[%d.]+"), up[1])
    assert.truthy(down[1]:match("remote=192%.0%.2%.44 path=/who code=1000 .*duration=[%d.]+"), down[1])
    assert.truthy(down[1]:match("messages_in=1 messages_out=1 bytes_in=5 bytes_out=%d+"), down[1])
  end)

  it("writes JSON objects with access_log = \"json\"", function()
    h.errors = {}
    local s = who_server { access_log = "json" }
    ask(s)
    h.pump(function() return #lines("close") == 1 end, "the close line", WAIT)
    local cjson = require "cjson.safe"
    local rec = cjson.decode(lines("close")[1]:match("{.*}"))
    assert.equal("close", rec.event)
    assert.equal("/who", rec.path)
    assert.equal(1000, rec.code)
    assert.equal(5, rec.bytes_in)
    local up = cjson.decode(lines("upgrade")[1]:match("{.*}"))
    assert.equal(101, up.status)
    assert.equal(false, up.secure)
  end)
end)
