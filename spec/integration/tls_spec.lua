-- wss:// over loopback: a throwaway self-signed certificate for 127.0.0.1,
-- made with the openssl command at test time; our client and Python's
-- websockets client as peers.
local h = require "helper"
local proc = require "support.proc"
local luaws = h.luaws

local dir = os.tmpname()
os.remove(dir)
local cert, key = dir .. "/cert.pem", dir .. "/key.pem"

local have_openssl = select(2, proc.run({ "openssl", "version" }, { timeout = 20 })) == 0
local have_python = proc.have_python("websockets")

describe("TLS (wss://)", function()
  setup(function()
    if not have_openssl then return end
    proc.check { "mkdir", "-p", dir }
    proc.check({ "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
      "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert }, { timeout = 60 })
  end)
  teardown(function() proc.run { "rm", "-rf", dir } end)
  after_each(h.cleanup)

  local it_ssl = have_openssl and it or pending

  it_ssl("echoes over wss:// with the certificate verified against its CA", function()
    local s = h.echo_server { tls = { certificate = cert, key = key } }
    assert.truthy(s:url("/ws"):find("^wss://"))
    local ws = assert(luaws.connect(s:url("/ws"), { tls = { ca = cert } }))
    for _, n in ipairs { 0, 1, 125, 70000, 1024 * 1024 } do
      local msg = string.rep("t", n)
      assert(ws:send(msg, "binary"))
      local got = ws:receive(10)
      assert.equal(n, #got)
    end
    assert(ws:close(1000, "tls done"))
    h.fails("closed", ws:receive(5))
    assert.equal(1000, (ws:close_status()))
  end)

  it_ssl("refuses a server whose certificate the client cannot verify", function()
    local s = h.echo_server { tls = { certificate = cert, key = key } }
    h.fails_with("tls", "certificate", luaws.connect(s:url("/ws")))   -- system store: no such CA
  end)

  it_ssl("connects without verification when asked to", function()
    local s = h.echo_server { tls = { certificate = cert, key = key } }
    local ws = assert(luaws.connect(s:url("/ws"), { tls = { verify = false } }))
    assert(ws:send("plain text over tls"))
    assert.equal("plain text over tls", (ws:receive(5)))
    ws:close()
  end)

  it_ssl("drops a plain-TCP client that speaks no TLS, and keeps serving", function()
    local s = h.echo_server { tls = { certificate = cert, key = key } }
    local got = table.pack(luaws.connect(("ws://127.0.0.1:%d/ws"):format(s.port), { timeout = 3 }))
    assert.is_string(got[3], "no token")   -- whichever it is: nil, a message, a token
    h.fails(got[3], table.unpack(got, 1, got.n))
    local ok = assert(luaws.connect(s:url("/ws"), { tls = { ca = cert } }))
    ok:close()
  end)

  it_ssl("returns nil, 'tls' for a missing certificate file", function()
    h.fails_with("tls", dir .. "/nope.pem", luaws.listen { host = "127.0.0.1", port = 0,
      tls = { certificate = dir .. "/nope.pem", key = key } })
  end)

  ;(have_openssl and have_python and it or pending)("echoes to Python's websockets client over wss://", function()
    local s = h.echo_server { tls = { certificate = cert, key = key } }
    local script = ([[
import asyncio, ssl, websockets
async def main():
    ctx = ssl.create_default_context(cafile=%q)
    async with websockets.connect("wss://127.0.0.1:%d/ws", ssl=ctx, compression=None) as ws:
        await ws.send("from python")
        got = await asyncio.wait_for(ws.recv(), 5)
        await ws.send(bytes(range(256)) * 100)
        got2 = await asyncio.wait_for(ws.recv(), 5)
        print(got, len(got2))
asyncio.run(main())
]]):format(cert, s.port)
    -- proc.run steps the loop while the client runs: the server is in this process
    local out, code, why = proc.run({ proc.PYTHON, "-c", script }, { timeout = 20, unset = { "LD_PRELOAD" } })
    assert.equal(0, code, why or out)
    assert.equal("from python 25600\n", out)
  end)

  -- Records the socket refused are held by the session and go out, in
  -- order, before anything newer (csrc/io/tls.c, "the write side"): a peer
  -- that stops reading while megabytes pile up gets every byte once it
  -- reads again, then the close, in both directions.
  local function numbered(i)
    local n = ({ 3, 16384, 16388, 70000, 125 })[i % 5 + 1]
    return ("%06d"):format(i) .. string.rep(string.char(65 + i % 26), n - 6)
  end

  -- Receive numbered(1) .. numbered(n) on ws, in order and whole (what: the
  -- word for them in a failure).
  local function receive_numbered(ws, n, what)
    for i = 1, n do
      local msg = ws:receive(10)
      assert(msg, ("%s %d of %d missing"):format(what, i, n))
      assert(msg == numbered(i), ("%s %d: %d bytes, %q..."):format(what, i, #msg, msg:sub(1, 6)))
    end
  end

  it_ssl("holds what a full socket refused and sends it in order once the client reads again", function()
    local s = h.server { tls = { certificate = cert, key = key }, max_backpressure = 64 * 1024 * 1024 }
    local N, sent, held = 400, 0, 0
    s:route("/ws", { open = function(ws)
      for i = 1, N do assert(ws:send(numbered(i), "binary")); sent = sent + 1 end
      held = ws:buffered()
      ws:close(1000, "all sent")
    end })
    local ws = assert(luaws.connect(s:url("/ws"), { tls = { ca = cert } }))
    ws:pause()
    h.pump(function() return sent == N end, "the sends")
    h.idle(0.2)
    ws:resume()
    receive_numbered(ws, N, "message")
    h.fails("closed", ws:receive(5))
    assert.equal(1000, (ws:close_status()))
    assert.is_true(held > 1024 * 1024, "the queue held " .. held .. " bytes")
    print(("# %d messages (%d bytes queued at the end) over wss to a paused client: all in order, then 1000")
      :format(N, held))
  end)

  it_ssl("holds what a full socket refused on the client side and the server echoes it all in order", function()
    local s = h.server { tls = { certificate = cert, key = key }, max_backpressure = 64 * 1024 * 1024 }
    local peer
    s:route("/ws", {
      open = function(ws) peer = ws; ws:pause() end,
      message = function(ws, msg, kind) ws:send(msg, kind) end,
    })
    local ws = assert(luaws.connect(s:url("/ws"), { tls = { ca = cert }, max_backpressure = 64 * 1024 * 1024 }))
    h.pump(function() return peer ~= nil end, "the server's open")
    local N = 400
    for i = 1, N do assert(ws:send(numbered(i), "binary")) end
    h.idle(0.2)
    assert.is_true(ws:buffered() > 0, "the client queued nothing")
    peer:resume()
    receive_numbered(ws, N, "echo")
    assert(ws:close(1000, "done"))
    assert.equal(1000, (ws:close_status()))
  end)
end)
