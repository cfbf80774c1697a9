-- SPDX-License-Identifier: MIT
--
-- luaws.client: luaws.connect(url, opts), a WebSocket client on the same C
-- core (it masks its frames, checks the server's 101 and accept key).
--
-- In a plain script connect() and receive() block, turning the loop while
-- they wait; inside a coroutine that luaws runs (a coroutine route,
-- luaws.spawn) they yield instead, so the loop never blocks.

local core = require "luaws.core"
local conn = require "luaws.conn"
local options = require "luaws.options"
local util = require "luaws.util"

local M = {}

-- What ended a handshake, by the token the C core reports (close handlers
-- get it as their 4th argument): the token luaws.connect returns.
local failure_token = {
  refused = "refused", timeout = "timeout", tls = "tls", resolve = "resolve", io = "io",
  handshake = "handshake", closed = "handshake", protocol = "handshake",
}

--[[ luaws.connect(url [, opts]) -> ws | nil, message, token
  url: ws://host[:port]/path or wss://…. opts: headers (table), protocols
  (list), origin, timeout (the handshake's, default handshake_timeout, 10 s),
  tls ({verify = true, ca = "ca.pem", certificate = "me.pem", key =
  "me-key.pem"}: the CA the server's certificate must chain to, and the
  client certificate to present when asked) for wss://, and the connection
  options of luaws.listen (luaws.defaults). The message says what failed,
  whole ("connect ws://127.0.0.1:8080/ws: handshake: 404 Not Found"); the
  token is one of "refused", "resolve", "handshake", "timeout", "tls", "io".
  Usage: local ws = assert(luaws.connect("ws://127.0.0.1:5000/ws")) ]]
function M.connect(url, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'connect' (table expected, got " .. type(opts) .. ")", 2)
  end
  local o = options.check(opts or {}, "connect", "connect", 2)
  local u, err = util.parse_url(url)
  if not u then error("bad argument #1 to 'connect' (" .. err .. ")", 2) end

  local headers = {}
  for k, v in pairs(o.headers or {}) do headers[k] = v end
  if o.origin then headers.Origin = o.origin end
  if o.protocols then headers["Sec-WebSocket-Protocol"] = table.concat(o.protocols, ", ") end

  local copts = options.core_options(o)
  -- wss://: verify the server against the system store, or o.tls.ca;
  -- o.tls.verify = false accepts any certificate (tests, self-signed)
  copts.tls = u.scheme == "wss" and (o.tls or {}) or nil
  local state = {}
  local offered = {}
  for _, p in ipairs(o.protocols or {}) do offered[p] = true end
  local handlers = {
    open = function(ws)
      -- RFC 6455 §4.1: a subprotocol we did not offer fails the connection
      local p = ws.protocol
      if p and not offered[p] then
        state.done, state.reason, state.token = true, "handshake: server chose subprotocol " .. p .. ", not offered", "handshake"
        ws:close(1002, "unexpected subprotocol")
      else
        state.open = true
      end
      conn.wake(ws)
    end,
    message = conn.queue_handlers.message,
    close = function(ws, code, reason, token)
      if not state.done then state.code, state.reason, state.token = code, reason, token end
      state.done = true
      conn.queue_handlers.close(ws, code, reason, token)
    end,
  }
  local ws, message, token = core.connect(u.host, u.port, u.path, handlers, copts, headers)
  if not ws then return nil, message, token end

  -- wait for the 101 (or the failure), yielding or turning the loop
  while not state.open and not state.done do conn.wait(ws) end
  if state.open then return ws end
  local why = state.reason ~= "" and state.reason or tostring(state.token or "closed")
  if state.token == "refused" then why = "connection refused" end
  if state.token == "timeout" then why = ("handshake timed out after %g s"):format(copts.handshake_timeout) end
  return nil, ("connect %s: %s"):format(url, why), failure_token[state.token] or "handshake"
end

return M
