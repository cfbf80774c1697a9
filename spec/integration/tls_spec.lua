-- wss:// over loopback: a throwaway self-signed certificate for 127.0.0.1,
-- made with the openssl command at test time; our client and Python's
-- websockets client as peers.
local h = require "helper"
local luaws = h.luaws

local dir = os.tmpname()
os.remove(dir)
local cert, key = dir .. "/cert.pem", dir .. "/key.pem"

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

local have_openssl = sh("command -v openssl >/dev/null 2>&1")
local have_python = sh("/usr/bin/python3 -c 'import websockets' >/dev/null 2>&1")

describe("TLS (wss://)", function()
  setup(function()
    if not have_openssl then return end
    assert(sh("mkdir -p " .. dir))
    assert(sh(("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
      .. "-addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s >/dev/null 2>&1"):format(key, cert)),
      "openssl could not make a certificate")
  end)
  teardown(function() sh("rm -rf " .. dir) end)
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
    assert.same({ nil, "closed" }, { ws:receive(5) })
    assert.equal(1000, (ws:close_status()))
  end)

  it_ssl("refuses a server whose certificate the client cannot verify", function()
    local s = h.echo_server { tls = { certificate = cert, key = key } }
    local ws, token, detail = luaws.connect(s:url("/ws"))   -- system store: no such CA
    assert.is_nil(ws)
    assert.equal("tls", token)
    assert.truthy(detail:find("certificate", 1, true), detail)
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
    local ws, token = luaws.connect(("ws://127.0.0.1:%d/ws"):format(s.port), { timeout = 3 })
    assert.is_nil(ws)
    assert.is_truthy(token)
    local ok = assert(luaws.connect(s:url("/ws"), { tls = { ca = cert } }))
    ok:close()
  end)

  it_ssl("returns nil, 'tls' for a missing certificate file", function()
    local s, token, detail = luaws.listen { host = "127.0.0.1", port = 0,
      tls = { certificate = dir .. "/nope.pem", key = key } }
    assert.is_nil(s)
    assert.equal("tls", token)
    assert.is_string(detail)
  end)

  ;(have_openssl and have_python and it or pending)("echoes to Python's websockets client over wss://", function()
    local s = h.echo_server { tls = { certificate = cert, key = key } }
    local out = os.tmpname()
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
    local f = assert(io.open(out .. ".py", "w")); f:write(script); f:close()
    local done_file = out .. ".done"
    assert(sh(("(timeout 20 /usr/bin/python3 %s.py > %s 2>&1; echo $? > %s) &"):format(out, out, done_file)))
    h.pump(function()
      local d = io.open(done_file)
      if d then d:close() return true end
    end, "the python client", 20)
    local r = io.open(out):read("a")
    os.remove(out); os.remove(out .. ".py"); os.remove(done_file)
    assert.equal("from python 25600\n", r)
  end)
end)
