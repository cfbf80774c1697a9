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
local util = require "luaws.util"

local M = {}

local known = {
  headers = true, protocols = true, origin = true, timeout = true,
  max_message_size = true, receive_buffer_size = true, close_timeout = true,
  keep_alive_interval = true, keep_alive_timeout = true, idle_timeout = true,
  max_backpressure = true, tls = true,
}

--[[ luaws.connect(url [, opts]) -> ws | nil, token, detail
  url: ws://host[:port]/path or wss://…. opts: headers (table), protocols
  (list), origin, timeout (handshake, default 10 s), tls ({verify = true,
  ca = "ca.pem"}) for wss://, max_message_size, and the
  connection timers of luaws.listen. Tokens: "refused", "resolve",
  "handshake" (detail says why: "403 Forbidden", …), "timeout".
  Usage: local ws = assert(luaws.connect("ws://127.0.0.1:5000/ws")) ]]
function M.connect(url, opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("bad argument #2 to 'connect' (table expected)", 2) end
  for k in pairs(opts) do
    if not known[k] then error("unknown option '" .. tostring(k) .. "'", 2) end
  end
  local u, err = util.parse_url(url)
  if not u then error("bad argument #1 to 'connect' (" .. err .. ")", 2) end
  if opts.tls ~= nil and type(opts.tls) ~= "table" then error("option 'tls' must be a table", 2) end

  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  if opts.origin then headers.Origin = opts.origin end
  if opts.protocols then headers["Sec-WebSocket-Protocol"] = table.concat(opts.protocols, ", ") end

  local copts = {
    handshake_timeout = opts.timeout or 10,
    max_message_size = opts.max_message_size, receive_buffer_size = opts.receive_buffer_size,
    close_timeout = opts.close_timeout, keep_alive_interval = opts.keep_alive_interval,
    keep_alive_timeout = opts.keep_alive_timeout, idle_timeout = opts.idle_timeout,
    max_backpressure = opts.max_backpressure,
    -- wss://: verify the server against the system store, or opts.tls.ca;
    -- opts.tls.verify = false accepts any certificate (tests, self-signed)
    tls = u.scheme == "wss" and (opts.tls or {}) or nil,
  }
  local state = {}
  local offered = {}
  for _, p in ipairs(opts.protocols or {}) do offered[p] = true end
  local handlers = {
    open = function(ws)
      -- RFC 6455 §4.1: a subprotocol we did not offer fails the connection
      local p = ws.protocol
      if p and not offered[p] then
        state.done, state.reason = true, "handshake: server chose subprotocol " .. p .. ", not offered"
        ws:close(1002, "unexpected subprotocol")
      else
        state.open = true
      end
      conn.wake(ws)
    end,
    message = conn.queue_handlers.message,
    close = function(ws, code, reason)
      if not state.done then state.code, state.reason = code, reason end
      state.done = true
      conn.queue_handlers.close(ws, code, reason)
    end,
  }
  local ws, token, detail = core.connect(u.host, u.port, u.path, handlers, copts, headers)
  if not ws then return nil, token, detail end

  -- wait for the 101 (or the failure), yielding or turning the loop
  while not state.open and not state.done do conn.wait(ws) end
  if state.open then return ws end
  local reason = state.reason or ""
  if reason == "refused" then return nil, "refused", reason end
  if reason == "timeout" then return nil, "timeout", reason end
  if reason:find("^tls") or reason:find("SSL") then return nil, "tls", reason end
  return nil, "handshake", (reason:gsub("^handshake: ", ""))
end

return M
