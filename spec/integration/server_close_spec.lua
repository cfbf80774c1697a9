-- SPDX-License-Identifier: MIT
-- RFC 6455 §7.1.1: once both close frames went through, the server closes
-- the TCP connection itself, at once. It does not wait for the client's
-- FIN: a client that keeps its socket open after the close handshake still
-- sees the close frame, then the end of the stream, and the server's close
-- handler runs with the client's code while the client holds on. The peer
-- is spec/support/rawsteps.py (raw bytes: it never closes before its hold
-- ends); the server runs in this process, close_timeout far above the wait.
local h = require "helper"
local proc = require "support.proc"

local has_python = proc.have_python()
local it_py = has_python and it or pending

local HOLD = 40   -- seconds the client keeps its socket open, not reading
local WAIT = 30   -- the bound on the server's close: far below HOLD and close_timeout

-- A client's masked close frame with code and an empty reason.
local function close_frame(code)
  local mask = "\1\2\3\4"
  local payload = string.pack(">I2", code)
  local masked = payload:gsub("()(.)", function(i, c) return string.char(c:byte() ~ mask:byte((i - 1) % 4 + 1)) end)
  return "\x88" .. string.char(0x80 | #payload) .. mask .. masked
end

describe("the server's end of a close handshake", function()
  after_each(function()
    proc.cleanup()
    h.cleanup()
  end)

  it_py("closes the socket at once when the client closed, while the client holds its end open", function()
    local server = h.server { close_timeout = 120 }
    local closed
    server:route("/ws", {
      message = function(ws, msg) ws:send(msg) end,
      close = function(_, code, reason, token) closed = { code, reason, token } end,
    })
    local steps = os.tmpname()
    local f = assert(io.open(steps, "wb"))
    local function send(bytes)
      f:write("send ", (bytes:gsub(".", function(c) return ("%02x"):format(c:byte()) end)), "\n")
    end
    send("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      .. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    f:write("sleep 0.5\n")
    send(close_frame(1000))
    f:write(("hold %d\n"):format(HOLD))
    f:close()
    local p = proc.spawn({ proc.PYTHON, "spec/support/rawsteps.py", "127.0.0.1", tostring(server.port), steps,
      tostring(HOLD + 20) }, { unset = { "LD_PRELOAD" } })
    h.pump(function() return closed ~= nil end, "the server's close handler while the client holds on", WAIT)
    assert.is_true(p:alive(), "the client is still holding its socket open")
    assert.same({ 1000, "" }, { closed[1], closed[2] })
    assert.is_nil(closed[3], "a clean close handshake: no error token")
    p:signal("KILL")
    p:wait(10)
    os.remove(steps)
  end)

  it_py("sends its close frame and then the end of the stream to that client", function()
    local server = h.server { close_timeout = 120 }
    server:route("/ws", { message = function(ws, msg) ws:send(msg) end })
    local r = proc.raw_steps(server.port, {
      { "send", "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        .. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" },
      { "sleep", 0.5 },
      { "send", close_frame(4001) },
    }, { timeout = WAIT })
    assert.equal("eof", r.how)
    local body = r.response:match("\r\n\r\n(.*)$")
    assert.equal("\x88\x02" .. string.pack(">I2", 4001), body, "the close frame echoed, then nothing")
  end)
end)
