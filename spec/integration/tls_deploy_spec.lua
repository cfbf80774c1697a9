-- SPDX-License-Identifier: MIT
--
-- TLS as a deployment meets it: certificates reloaded while 100 wss
-- clients echo (server:reload_tls in this process, SIGHUP to
-- examples/echo.lua, SIGHUP to a master of workers), certificates chosen by
-- SNI, ALPN, client certificates accepted and refused, plain HTTP and
-- garbage sent to the TLS port, the handshake timeout before a ClientHello,
-- and the errors that name what failed.
--
-- Throwaway certificates are made with the openssl command at setup into a
-- temporary directory: a CA; two server certificates for 127.0.0.1 and
-- localhost (serials 101 and 102: before and after a reload); a.test and
-- *.b.test (for SNI); alice, a client certificate from the CA, and
-- mallory, a self-signed one. Keys are P-256 (fast to make). The peers are
-- our client and Python's ssl and websockets (proc.PYTHON), which report
-- the SHA-256 of the certificate they saw (getpeercert(binary_form=True)).
-- Nothing is timed: counts and fingerprints are asserted, waits are bounded.
local h = require "helper"
local proc = require "support.proc"
local luaws = h.luaws

local have_openssl = select(2, proc.run({ "openssl", "version" }, { timeout = 20 })) == 0
local have_python = proc.have_python("websockets")
local SANITIZED = (os.getenv("LUAWS_TEST_RUNENV") or "") ~= "" or (os.getenv("LD_PRELOAD") or ""):find("asan") ~= nil
local T = SANITIZED and 3 or 1   -- deadlines only

local dir = os.tmpname()
os.remove(dir)
local function f(name) return dir .. "/" .. name end
local fp = {}   -- certificate name -> SHA-256 of its DER, lower-case hex

-- ------------------------------------------------------------ certificates

local EC = { "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes" }

local function openssl(args)
  local argv = { "openssl" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return proc.check(argv, { timeout = 60 })
end

local function cat(...)
  local out = {}
  for _, t in ipairs { ... } do for _, v in ipairs(t) do out[#out + 1] = v end end
  return out
end

-- A certificate name.pem (and name-key.pem) signed by the CA.
local function leaf(name, subj, san, eku, serial)
  openssl(cat({ "req" }, EC, { "-subj", subj, "-keyout", f(name .. "-key.pem"), "-out", f(name .. ".csr") }))
  local ext = assert(io.open(f(name .. ".ext"), "w"))
  ext:write(("subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=CA:FALSE\n"):format(san, eku))
  ext:close()
  openssl { "x509", "-req", "-in", f(name .. ".csr"), "-CA", f("ca.pem"), "-CAkey", f("ca-key.pem"),
    "-set_serial", tostring(serial), "-days", "2", "-extfile", f(name .. ".ext"), "-out", f(name .. ".pem") }
end

local function fingerprint(name)
  local out = openssl { "x509", "-in", f(name .. ".pem"), "-noout", "-fingerprint", "-sha256" }
  return (assert(out:match("=([%x:]+)"), out):gsub(":", ""):lower())
end

local function make_certs()
  proc.check { "mkdir", "-p", dir }
  openssl(cat({ "req", "-x509" }, EC, { "-days", "2", "-subj", "/CN=luaws test CA",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    "-keyout", f("ca-key.pem"), "-out", f("ca.pem") }))
  leaf("one", "/CN=127.0.0.1", "IP:127.0.0.1,DNS:localhost", "serverAuth", 101)
  leaf("two", "/CN=127.0.0.1", "IP:127.0.0.1,DNS:localhost", "serverAuth", 102)
  leaf("a", "/CN=a.test", "DNS:a.test", "serverAuth", 201)
  leaf("b", "/CN=b.test", "DNS:*.b.test", "serverAuth", 202)
  leaf("alice", "/O=luaws tests/CN=alice", "email:alice@example.test", "clientAuth", 301)
  openssl(cat({ "req", "-x509" }, EC, { "-days", "2", "-subj", "/CN=mallory",
    "-keyout", f("mallory-key.pem"), "-out", f("mallory.pem") }))
  for _, n in ipairs { "one", "two", "a", "b", "alice", "mallory" } do fp[n] = fingerprint(n) end
end

local function cert(name, extra)
  local t = { certificate = f(name .. ".pem"), key = f(name .. "-key.pem") }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

local function copy(from, to) proc.check { "cp", f(from), f(to) } end

-- ------------------------------------------------------------ Python peers

-- n wss clients echo in rounds (each sends "round i", waits for it back)
-- until the file FLAG exists, then three rounds more; then one new
-- connection. Prints "ready" after its first round, then "old FP" (the
-- certificate the n connections saw; one line per distinct one), "new FP",
-- "echoed N", "dropped N" (a connection whose send, receive or echo failed).
local ECHO_PEER = [[
import asyncio, hashlib, os, ssl, sys, websockets
port, cafile, flag, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
ctx = ssl.create_default_context(cafile=cafile)
url = "wss://127.0.0.1:%d/ws" % port
def fp(ws):
    return hashlib.sha256(ws.transport.get_extra_info("ssl_object").getpeercert(binary_form=True)).hexdigest()
async def main():
    conns = []
    for _ in range(n):
        conns.append(await websockets.connect(url, ssl=ctx, compression=None, open_timeout=60,
                                              ping_interval=None, close_timeout=10))
    old = sorted({fp(c) for c in conns})
    bad = set()
    echoed = 0
    async def one(i, c, r):
        nonlocal echoed
        msg = "round %d from %d" % (r, i)
        try:
            await c.send(msg)
            got = await asyncio.wait_for(c.recv(), 60)
            if got == msg:
                echoed += 1
            else:
                bad.add(i)
        except Exception as e:
            print("conn %d: %r" % (i, e), flush=True)
            bad.add(i)
    r, after = 0, None
    while after is None or after < 3:
        await asyncio.gather(*(one(i, c, r) for i, c in enumerate(conns) if i not in bad))
        if r == 0:
            print("ready", flush=True)
        r += 1
        if after is not None:
            after += 1
        elif os.path.exists(flag):
            after = 0
        elif r > 100000:
            break
        else:
            await asyncio.sleep(0.01)
    fresh = await websockets.connect(url, ssl=ctx, compression=None, open_timeout=60)
    await fresh.send("fresh")
    assert await asyncio.wait_for(fresh.recv(), 60) == "fresh"
    new = fp(fresh)
    await fresh.close()
    for i, c in enumerate(conns):
        if i not in bad:
            await c.close()
    for o in old:
        print("old", o)
    print("new", new)
    print("rounds", r)
    print("echoed", echoed)
    print("dropped", len(bad), flush=True)
asyncio.run(main())
]]

-- For each name (or "-" for none): a TLS connection that sends it by SNI
-- and offers ALPN h2 and http/1.1; prints "NAME FP ALPN VERSION".
local SNI_PEER = [[
import hashlib, socket, ssl, sys
port = int(sys.argv[1])
for name in sys.argv[2:]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname=None if name == "-" else name) as s:
            der = s.getpeercert(binary_form=True)
            print(name, hashlib.sha256(der).hexdigest(), s.selected_alpn_protocol(), s.version(), flush=True)
]]

-- wss://127.0.0.1:PORT/ws with SNI NAME, verifying against CA, presenting
-- CERT/KEY ("-": none); prints the echo of "hello" or "error: ...".
local CLIENT_CERT_PEER = [[
import asyncio, ssl, sys, websockets
port, name, cafile, certfile, keyfile = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=cafile)
if certfile != "-":
    ctx.load_cert_chain(certfile, keyfile)
async def main():
    try:
        async with websockets.connect("wss://127.0.0.1:%d/ws" % port, ssl=ctx, server_hostname=name,
                                      compression=None, open_timeout=30) as ws:
            await ws.send("hello")
            print("echo", await asyncio.wait_for(ws.recv(), 30), flush=True)
    except Exception as e:
        print("error:", type(e).__name__, e, flush=True)
asyncio.run(main())
]]

local function write(path, text)
  local out = assert(io.open(path, "w"))
  out:write(text)
  out:close()
  return path
end

local function python(script, args, opts)
  local argv = { proc.PYTHON, "-c", script }
  for _, a in ipairs(args) do argv[#argv + 1] = tostring(a) end
  return proc.spawn(argv, { unset = { "LD_PRELOAD" }, merge = opts and opts.merge })
end

-- The lines "key value" of a peer's output.
local function report(out)
  local r = { old = {} }
  for k, v in out:gmatch("(%a+) ([^\n]*)") do
    if k == "old" then r.old[#r.old + 1] = v else r[k] = r[k] or v end
  end
  return r
end

-- Start ECHO_PEER against port; call reload() once it is ready; then let it
-- finish; its report.
local function echo_through_reload(port, n, reload)
  local flag = f("flag-" .. port)
  os.remove(flag)
  local p = python(ECHO_PEER, { port, f("ca.pem"), flag, n })
  assert(p:wait_line("^ready$", 120 * T))
  reload()
  write(flag, "go\n")
  local status = p:wait(120 * T)
  assert.equal(0, status, p:stdout() .. p:stderr())
  return report(p:stdout()), p:stdout()
end

describe("TLS in deployment", function()
  setup(function() if have_openssl then make_certs() end end)
  teardown(function() proc.run { "rm", "-rf", dir } end)
  after_each(function()
    proc.cleanup()
    h.cleanup()
  end)

  local it_ssl = have_openssl and it or pending
  local it_py = (have_openssl and have_python) and it or pending

  -- ---------------------------------------------------------- reload

  describe("certificate reload", function()
    it_ssl("server:reload_tls() while 100 of our wss clients echo: none drops, new handshakes get the new certificate", function()
      local s = h.echo_server { tls = cert("one") }
      local N, ROUNDS, AT = 100, 6, 3
      local clients, closed = {}, 0
      for i = 1, N do
        clients[i] = assert(luaws.connect(s:url("/ws"), { tls = { ca = f("ca.pem") }, timeout = 30 * T }))
        assert.equal(fp.one, clients[i].tls.fingerprint)
      end
      local echoed = 0
      for r = 1, ROUNDS do
        for i, ws in ipairs(clients) do assert(ws:send(("round %d from %d"):format(r, i))) end
        if r == AT then
          -- while the round's messages are on the way
          assert(s:reload_tls { certificate = f("two.pem"), key = f("two-key.pem") })
        end
        for i, ws in ipairs(clients) do
          local got, err = ws:receive(30 * T)
          if got == ("round %d from %d"):format(r, i) then echoed = echoed + 1 else closed = closed + 1 print(err) end
        end
      end
      print(("# reload_tls with %d open wss connections: %d dropped, %d of %d echoes"):format(N, closed, echoed, N * ROUNDS))
      assert.equal(0, closed)
      assert.equal(N * ROUNDS, echoed)
      for _, ws in ipairs(clients) do
        assert.equal(fp.one, ws.tls.fingerprint)   -- an open session keeps its certificate
        assert.equal("open", ws.state)
      end
      local fresh = assert(luaws.connect(s:url("/ws"), { tls = { ca = f("ca.pem") } }))
      assert.equal(fp.two, fresh.tls.fingerprint)
      assert.equal("66", fresh.tls.serial)   -- 102
      fresh:close()
      for _, ws in ipairs(clients) do ws:close() end
    end)

    it_py("server:reload_tls() while 100 Python wss clients echo: none drops, a new handshake sees the new certificate", function()
      local s = h.echo_server { tls = cert("one") }
      local r, out = echo_through_reload(s.port, 100, function()
        assert(s:reload_tls { certificate = f("two.pem"), key = f("two-key.pem") })
      end)
      print(("# reload_tls with 100 open Python wss connections: %s dropped, %s echoes in %s rounds"):format(
        r.dropped, r.echoed, r.rounds))
      assert.equal("0", r.dropped, out)
      assert.same({ fp.one }, r.old)
      assert.equal(fp.two, r.new)
      assert.equal(100 * tonumber(r.rounds), tonumber(r.echoed))
    end)

    it_py("SIGHUP to examples/echo.lua reads the files again while 100 Python wss clients echo: none drops", function()
      copy("one.pem", "live.pem")
      copy("one-key.pem", "live-key.pem")
      local srv = proc.spawn({ "lua5.4", "examples/echo.lua", "--host", "127.0.0.1", "--port", "0",
        "--tls-cert", f("live.pem"), "--tls-key", f("live-key.pem") }, { env = proc.luaws_env(), merge = true })
      local port = tonumber(assert(srv:wait_line("listening on https://127%.0%.0%.1:(%d+)/", 30 * T)))
      local r, out = echo_through_reload(port, 100, function()
        copy("two.pem", "live.pem")
        copy("two-key.pem", "live-key.pem")
        assert(srv:signal("HUP"))
        assert(srv:wait_line("SIGHUP: tls certificates reloaded for (127%.0%.0%.1:%d+)", 30 * T))
      end)
      print(("# SIGHUP with 100 open Python wss connections: %s dropped, %s echoes in %s rounds"):format(
        r.dropped, r.echoed, r.rounds))
      assert.equal("0", r.dropped, out)
      assert.same({ fp.one }, r.old)
      assert.equal(fp.two, r.new)
      -- a reload that cannot read its files keeps the old certificates
      os.remove(f("live-key.pem"))
      assert(srv:signal("HUP"))
      assert(srv:wait_line("SIGHUP: reload_tls: cannot read key .-live%-key%.pem: No such file or directory %(127%.0%.0%.1:%d+ keeps its certificates%)", 30 * T))
      local p = python(SNI_PEER, { port, "-" })
      assert.equal(0, p:wait(60 * T), p:stdout() .. p:stderr())
      assert.equal(fp.two, p:stdout():match("^%- (%x+)"))
      assert(srv:signal("TERM"))
      assert.equal(0, srv:wait(30 * T), srv:stdout())
    end)

    it_py("with workers, SIGHUP's new workers read the new certificate while the old ones keep their 100 wss clients echoing", function()
      copy("one.pem", "live.pem")
      copy("one-key.pem", "live-key.pem")
      local script = write(f("workers_tls.lua"), ([[
local luaws = require "luaws"
local s = assert(luaws.listen { host = "127.0.0.1", port = 0,
  tls = { certificate = %q, key = %q } })
s:route("/ws", { message = function(ws, msg, kind) ws:send(msg, kind) end })
if not luaws.worker_id() then print("workers listening on " .. s.port) io.stdout:flush() end
luaws.run { workers = 2, reload_grace = 600, grace = 2 }
]]):format(f("live.pem"), f("live-key.pem")))
      local master = proc.spawn({ "lua5.4", script }, { env = proc.luaws_env(), merge = true })
      local port = tonumber(assert(master:wait_line("workers listening on (%d+)", 30 * T)))
      local r, out = echo_through_reload(port, 100, function()
        copy("two.pem", "live.pem")
        copy("two-key.pem", "live-key.pem")
        assert(master:signal("HUP"))
        -- each old worker drains once its successor has run the script again
        assert(proc.wait_until(function()
          local _, n = master:stdout():gsub("drains: replaced by pid", "")
          return n >= 2
        end, 60 * T), master:stdout())
      end)
      print(("# SIGHUP to a master of 2 workers with 100 open Python wss connections: %s dropped, %s echoes in %s rounds"):format(
        r.dropped, r.echoed, r.rounds))
      assert.equal("0", r.dropped, out)
      assert.same({ fp.one }, r.old)
      assert.equal(fp.two, r.new)
      assert(master:signal("TERM"))
      assert.equal(0, master:wait(60 * T), master:stdout())
    end)

    it_ssl("reload_tls refuses files it cannot use, names them, and keeps the old certificate", function()
      local s = h.echo_server { tls = cert("one") }
      h.fails_with("tls", "cannot read certificate " .. f("nope.pem") .. ": No such file or directory",
        s:reload_tls { certificate = f("nope.pem"), key = f("two-key.pem") })
      h.fails_with("tls", "key " .. f("a-key.pem") .. " does not match certificate " .. f("two.pem"),
        s:reload_tls { certificate = f("two.pem"), key = f("a-key.pem") })
      h.fails_with("tls", "cannot load certificate " .. f("two.ext"),
        s:reload_tls { certificate = f("two.ext"), key = f("two-key.pem") })
      local ws = assert(luaws.connect(s:url("/ws"), { tls = { ca = f("ca.pem") } }))
      assert.equal(fp.one, ws.tls.fingerprint)
      ws:close()
      -- with no argument it reads the files of its tls option again
      copy("one.pem", "again.pem")
      copy("one-key.pem", "again-key.pem")
      local s2 = h.echo_server { tls = cert("again") }
      copy("two.pem", "again.pem")
      copy("two-key.pem", "again-key.pem")
      assert(s2:reload_tls())
      ws = assert(luaws.connect(s2:url("/ws"), { tls = { ca = f("ca.pem") } }))
      assert.equal(fp.two, ws.tls.fingerprint)
      ws:close()
      assert.has_error(function() h.echo_server {}:reload_tls(cert("two")) end,
        "reload_tls: the server does not speak TLS (no tls option)")
    end)
  end)

  -- ---------------------------------------------------------- SNI, ALPN

  describe("SNI", function()
    it_py("picks the certificate for the name asked for, a wildcard for one label, the default for the rest", function()
      local s = h.echo_server { tls = {
        cert("a", { server_name = "a.test" }),
        cert("one"),                              -- the default: the first without server_name
        cert("b"),                                -- no server_name: the names in it (*.b.test)
      } }
      local p = python(SNI_PEER, { s.port, "a.test", "A.TEST", "x.b.test", "b.test", "y.x.b.test", "unknown.test", "-" })
      assert.equal(0, p:wait(60 * T), p:stdout() .. p:stderr())
      local got = {}
      for name, hex, alpn, version in p:stdout():gmatch("(%S+) (%x+) (%S+) (%S+)\n") do
        got[name] = hex
        assert.equal("http/1.1", alpn)   -- ALPN: HTTP/1.1, not h2
        assert.truthy(version:match("^TLSv1%.[23]$"))
      end
      assert.same({ ["a.test"] = fp.a, ["A.TEST"] = fp.a, ["x.b.test"] = fp.b, ["b.test"] = fp.one,
        ["y.x.b.test"] = fp.one, ["unknown.test"] = fp.one, ["-"] = fp.one }, got)
    end)

    it_py("ws.tls.server_name is the name the client asked for", function()
      local s = h.server { tls = { cert("a", { server_name = "a.test" }), cert("one") } }
      local seen
      s:route("/ws", { open = function(ws) seen = ws.tls end, message = function(ws, m) ws:send(m) end })
      local p = python(CLIENT_CERT_PEER, { s.port, "a.test", f("ca.pem"), "-", "-" })
      assert.equal(0, p:wait(60 * T), p:stdout())
      assert.equal("echo hello\n", p:stdout())
      assert.equal("a.test", seen.server_name)
      assert.is_nil(seen.subject)
    end)

    it_ssl("our client offers ALPN http/1.1 and sees what was negotiated", function()
      local s = h.server { tls = cert("one") }
      local seen
      s:route("/ws", { open = function(ws) seen = ws.tls end })
      local ws = assert(luaws.connect(s:url("/ws"), { tls = { ca = f("ca.pem") } }))
      h.pump(function() return seen end, "the server's open")
      assert.equal("http/1.1", seen.alpn)
      assert.equal("http/1.1", ws.tls.alpn)
      assert.equal(seen.cipher, ws.tls.cipher)
      assert.equal(seen.protocol, ws.tls.protocol)
      assert.truthy(ws.tls.protocol:match("^TLSv1%.[23]$"))
      assert.equal("CN=127.0.0.1", ws.tls.subject)
      assert.equal("CN=luaws test CA", ws.tls.issuer)
      assert.same({ "IP:127.0.0.1", "DNS:localhost" }, ws.tls.san)
      assert.is_true(ws.tls.verified)
      ws:close()
    end)
  end)

  -- ---------------------------------------------------------- client certificates

  describe("client certificates", function()
    local function mtls_server(verify)
      local s = h.server { tls = { cert("one"), ca = f("ca.pem"), verify_client = verify } }
      local seen = {}
      s:route("/ws", { open = function(ws) seen[#seen + 1] = ws.tls end,
        message = function(ws, m) ws:send(ws.tls.subject or "no certificate") end })
      return s, seen
    end

    it_ssl("verify_client = true: one from the CA is accepted, its subject in ws.tls; a self-signed one and none are refused", function()
      local s, seen = mtls_server(true)
      local ws = assert(luaws.connect(s:url("/ws"), { tls = { ca = f("ca.pem"),
        certificate = f("alice.pem"), key = f("alice-key.pem") } }))
      assert(ws:send("who am I"))
      assert.equal("CN=alice,O=luaws tests", (ws:receive(10)))
      local t = seen[1]
      assert.equal("CN=alice,O=luaws tests", t.subject)
      assert.equal("CN=luaws test CA", t.issuer)
      assert.equal("012D", t.serial)   -- 301
      assert.equal(fp.alice, t.fingerprint)
      assert.same({ "email:alice@example.test" }, t.san)
      assert.is_true(t.verified)
      ws:close()
      -- TLS 1.3: the client learns of the refusal from the server's alert
      h.fails_with("tls", "tls: 127.0.0.1 refused the handshake: tlsv1 alert unknown ca",
        luaws.connect(s:url("/ws"), { tls = { ca = f("ca.pem"), certificate = f("mallory.pem"),
          key = f("mallory-key.pem") }, timeout = 10 * T }))
      h.fails_with("tls", "refused the handshake",
        luaws.connect(s:url("/ws"), { tls = { ca = f("ca.pem") }, timeout = 10 * T }))
      assert.equal(1, #seen)   -- neither opened
    end)

    it_py("verify_client = true with Python's client: alice is accepted, mallory refused", function()
      local s, seen = mtls_server(true)
      local p = python(CLIENT_CERT_PEER, { s.port, "127.0.0.1", f("ca.pem"), f("alice.pem"), f("alice-key.pem") })
      assert.equal(0, p:wait(60 * T), p:stdout())
      assert.equal("echo CN=alice,O=luaws tests\n", p:stdout())
      p = python(CLIENT_CERT_PEER, { s.port, "127.0.0.1", f("ca.pem"), f("mallory.pem"), f("mallory-key.pem") })
      assert.equal(0, p:wait(60 * T), p:stdout())
      assert.truthy(p:stdout():find("^error:"), p:stdout())
      assert.equal(1, #seen)
    end)

    it_ssl("verify_client = \"optional\": none is fine, an invalid one is still refused", function()
      local s, seen = mtls_server("optional")
      local ws = assert(luaws.connect(s:url("/ws"), { tls = { ca = f("ca.pem") } }))
      assert(ws:send("who am I"))
      assert.equal("no certificate", (ws:receive(10)))
      assert.is_nil(seen[1].subject)
      ws:close()
      h.fails_with("tls", "refused the handshake",
        luaws.connect(s:url("/ws"), { tls = { ca = f("ca.pem"), certificate = f("mallory.pem"),
          key = f("mallory-key.pem") }, timeout = 10 * T }))
    end)

    it_ssl("a client whose certificate files are wrong is told which", function()
      h.fails_with("tls", "cannot read certificate " .. f("nope.pem"),
        luaws.connect("wss://127.0.0.1:1/ws", { tls = { certificate = f("nope.pem"), key = f("alice-key.pem") } }))
      h.fails_with("tls", "key " .. f("mallory-key.pem") .. " does not match certificate " .. f("alice.pem"),
        luaws.connect("wss://127.0.0.1:1/ws", { tls = { certificate = f("alice.pem"), key = f("mallory-key.pem") } }))
      assert.has_error(function() luaws.connect("wss://127.0.0.1:1/ws", { tls = { certificate = f("alice.pem") } }) end,
        "connect: option 'tls' needs certificate and key together")
    end)
  end)

  -- ---------------------------------------------------------- what is not TLS

  describe("not TLS", function()
    it_ssl("plain HTTP to the TLS port gets a plain-text 400 that says so; the server keeps serving", function()
      local s = h.echo_server { tls = cert("one") }
      local r = proc.raw(s.port, "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\r\n", { timeout = 10 * T })
      assert.equal("eof", r.how)
      local status, headers, body = proc.parse_response(r.response)
      assert.equal(400, status)
      assert.equal("text/plain; charset=utf-8", headers["content-type"])
      assert.equal("400 Bad Request: The plain HTTP request was sent to HTTPS port\n", body)
      assert.equal("close", headers.connection)
      assert.equal(1, s:stats().rejected)
      local ws = assert(luaws.connect(s:url("/ws"), { tls = { ca = f("ca.pem") } }))
      assert(ws:send("still here"))
      assert.equal("still here", (ws:receive(10)))
      ws:close()
    end)

    it_ssl("garbage ends with a clean close (no reset), and so does a broken ClientHello after its alert", function()
      local s = h.echo_server { tls = cert("one") }
      local r = proc.raw(s.port, "\0\1\2\3 not TLS at all\r\n" .. string.rep("\255", 3000), { timeout = 10 * T })
      assert.equal("eof", r.how)
      assert.equal("", r.response)
      r = proc.raw(s.port, "\22\3\1\0\5hello, not a ClientHello", { timeout = 10 * T })
      assert.equal("eof", r.how)
      assert.equal("\21", r.response:sub(1, 1))   -- a TLS alert record first
      local ws = assert(luaws.connect(s:url("/ws"), { tls = { ca = f("ca.pem") } }))
      ws:close()
    end)

    it_ssl("the handshake timeout covers the TLS handshake: a connection that never sends a ClientHello is closed", function()
      local s = h.echo_server { tls = cert("one"), handshake_timeout = 1 }
      local r = proc.raw(s.port, nil, { timeout = 20 * T })
      assert.equal("eof", r.how)
      assert.equal("", r.response)
      assert.is_true(r.elapsed >= 0.9)   -- not before the timeout (a lower bound only)
      -- half a ClientHello, then nothing
      r = proc.raw(s.port, "\22\3\1\2\0\1\0\1\252\3\3", { timeout = 20 * T })
      assert.equal("eof", r.how)
      assert.is_true(r.elapsed >= 0.9)
      assert.equal(0, h.core.live())
    end)
  end)

  -- ---------------------------------------------------------- errors

  describe("errors", function()
    it_ssl("listen names the file it cannot read or parse, and a key that does not match", function()
      local function listen(tls) return luaws.listen { host = "127.0.0.1", port = 0, tls = tls } end
      h.fails_with("tls", "tls: cannot read certificate " .. f("nope.pem") .. ": No such file or directory",
        listen { certificate = f("nope.pem"), key = f("one-key.pem") })
      h.fails_with("tls", "tls: cannot read key " .. f("nope-key.pem"),
        listen { certificate = f("one.pem"), key = f("nope-key.pem") })
      h.fails_with("tls", "tls: cannot load certificate " .. f("one.ext"),
        listen { certificate = f("one.ext"), key = f("one-key.pem") })
      h.fails_with("tls", "tls: key " .. f("a-key.pem") .. " does not match certificate " .. f("one.pem"),
        listen { certificate = f("one.pem"), key = f("a-key.pem") })
      h.fails_with("tls", "tls: cannot read certificate " .. f("nope.pem"),
        listen { cert("one"), cert("nope", { server_name = "x.test" }) })
      h.fails_with("tls", "tls: cannot read CA file " .. f("nope-ca.pem"),
        listen { cert("one"), ca = f("nope-ca.pem"), verify_client = true })
    end)

    it_ssl("listen raises on a tls table of the wrong shape", function()
      local function listen(tls) return function() luaws.listen { host = "127.0.0.1", port = 0, tls = tls } end end
      assert.has_error(listen { certificate = f("one.pem") }, "listen: option 'tls' needs certificate and key (PEM file names)")
      assert.has_error(listen { cert("one"), { certificate = f("a.pem"), key = f("a-key.pem"), ca = "x" } },
        "listen: option 'tls' entry 2 has an unknown field 'ca' (it goes beside the list)")
      assert.has_error(listen { cert("one", { server_name = "a.*.test" }) })
      assert.has_error(listen { cert("one"), verify_client = true },
        "listen: option 'tls' verify_client needs ca (a PEM file of the CAs client certificates must chain to)")
      assert.has_error(listen { cert("one"), ca = f("ca.pem"), verify_client = "maybe" },
        "listen: option 'tls' verify_client must be true, false or \"optional\"")
    end)

    it_ssl("a client names the host and the reason it refused the server's certificate", function()
      local s = h.echo_server { tls = cert("a") }   -- a.test only
      h.fails_with("tls", "tls: certificate verify failed for 127.0.0.1: IP address mismatch",
        luaws.connect(s:url("/ws"), { tls = { ca = f("ca.pem") } }))
      h.fails_with("tls", "tls: certificate verify failed for localhost: hostname mismatch",
        luaws.connect(("wss://localhost:%d/ws"):format(s.port), { tls = { ca = f("ca.pem") } }))
      local s2 = h.echo_server { tls = cert("mallory") }
      h.fails_with("tls", "tls: certificate verify failed for 127.0.0.1: self-signed certificate",
        luaws.connect(s2:url("/ws"), { tls = { ca = f("ca.pem") } }))
    end)
  end)
end)
