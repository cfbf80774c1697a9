-- SPDX-License-Identifier: MIT
--
-- luaws.conn: what connections can do in Lua, on top of the C methods
-- (send, ping, close, buffered, pause, resume, stats): receive() and
-- messages(), the coroutine style, and the queue behind them.
--
-- Design: C calls the message handler once per message. For a coroutine
-- route or a client, that handler puts the message in a small
-- per-connection queue and wakes the coroutine waiting on it. receive()
-- takes from the queue; when it is empty it yields (inside a coroutine that
-- luaws runs) or turns the loop itself (in a plain script), until a message,
-- the close, or the deadline. receive() itself is C (csrc/lua/conn.c): a
-- coroutine that waits in it on an empty queue yields there, and the next
-- message resumes it from C directly, never queued, with no Lua on the
-- way; what that path does not cover comes here (receive_general). A queue
-- that fills up pauses reading from the socket, so a slow consumer pushes
-- back on its peer instead of growing.

local core = require "luaws.core"

local M = {}
local methods = core.conn_methods
local co_running, co_resume, co_status, co_yield = coroutine.running, coroutine.resume,
  coroutine.status, coroutine.yield
local now, step, conn_handlers, conn_busy = core.now, core.step, core.conn_handlers, core.conn_busy

-- Messages queued before reading is paused, and the level it resumes at.
local QUEUE_HIGH, QUEUE_LOW = 64, 16

-- Coroutines luaws runs (route handlers, luaws.spawn): only these may yield
-- in receive(); anything else waits by turning the loop.
local managed = setmetatable({}, { __mode = "k" })

-- Each connection's queue, kept beside it rather than in its fields (a write
-- to ws.x would make the connection's fields table; see csrc/lua_conn.c).
-- Weak keys: a queue goes with its connection's box.
local queues = setmetatable({}, { __mode = "k" })

local function queue_of(ws)
  local q = queues[ws]
  if not q then
    q = { first = 1, last = 0, kinds = {} }
    queues[ws] = q
  end
  return q
end

-- What wait() yields: a resume that gets it back knows the coroutine waits
-- again (the common case, one per message) without asking its status.
local WAITING = {}

-- After a resume of a coroutine luaws runs: report errors, close its
-- connection (1011) if it has one, and close it normally (1000) when the
-- handler returned.
local function finish(co, ok, err)
  local info = managed[co]
  if not ok then
    core.log("error in coroutine handler: " .. debug.traceback(co, tostring(err)))
    if type(info) == "userdata" and info.state == "open" then info:close(1011, "handler error") end
  elseif co_status(co) == "dead" and type(info) == "userdata" and info.state == "open" then
    info:close(1000)
  end
end

local function resume(co, ...)
  local ok, err = co_resume(co, ...)
  if err == WAITING and ok then return end
  finish(co, ok, err)
end
M.resume = resume

local function wake(q)
  local co = q.waiter
  if co then
    q.waiter = nil
    resume(co)
  end
end

-- Wake whoever waits on ws (client.lua: the handshake finished).
function M.wake(ws) wake(queue_of(ws)) end

-- The handlers behind receive(): queue messages, note the close.
local function on_message(ws, msg, kind)
  local q = queues[ws] or queue_of(ws)
  local last = q.last + 1
  q.last = last
  q[last] = msg
  q.kinds[last] = kind
  if last - q.first >= QUEUE_HIGH - 1 and not q.paused then
    q.paused = true
    ws:pause()
  end
  local co = q.waiter   -- wake(q), inline
  if co then
    q.waiter = nil
    resume(co)
  end
end

-- Without a queue nobody waits here and nothing is queued (C tells a
-- coroutine parked in receive() itself): a closed queue, one table with no
-- kinds (nothing will be queued), is all a later receive needs. (Asking
-- ws.state in receive_general instead made every coroutine's stack grow by
-- 40 slots, 640 B: a C call deeper than its first receive went.)
local function on_close(ws, code, reason)
  local q = queues[ws]
  if not q then
    queues[ws] = { first = 1, last = 0, closed = true, close_code = code, close_reason = reason }
    return
  end
  q.closed = true
  q.close_code, q.close_reason = code, reason
  wake(q)
end

-- The message for a receive on a closed connection: what closed it, in the
-- words C uses for a receive parked at the close.
local function closed_message(q)
  return core.closed_message(q.close_code, q.close_reason)
end

M.queue_handlers = { message = on_message, close = on_close }

-- Handlers for a coroutine route: fn(ws) runs as a coroutine from open.
function M.coroutine_handlers(fn)
  return {
    open = function(ws)
      local co = coroutine.create(fn)
      managed[co] = ws
      resume(co, ws)
    end,
    message = on_message,
    close = on_close,
  }
end

-- Run fn(...) as a coroutine on the loop, so it may wait in receive() and
-- luaws.connect() without blocking the loop.
function M.spawn(fn, ...)
  local co = coroutine.create(fn)
  managed[co] = true
  resume(co, ...)
  return co
end

local await   -- core.conn_await, made with receive below

-- Wait until ws's queue q has news or the deadline passes. Returns false on
-- timeout; and, when receiving, the message C handed over, if it did.
-- level: where an error points (the caller's caller's code).
local function wait(ws, q, deadline, receiving, level)
  local co = co_running()
  if managed[co] then
    if (q.waiter and q.waiter ~= co) or conn_busy(ws) then
      error("another coroutine is already receiving on this connection", level)
    end
    local timer
    if deadline then
      timer = core.timer(math.max(deadline - now(), 0), 0, function() wake(q) end)
    end
    q.waiter = co
    local msg, kind
    if receiving then msg, kind = await(ws) else co_yield(WAITING) end
    if q.waiter == co then q.waiter = nil end
    if timer then timer:stop() end
    if msg ~= nil then return true, msg, kind end
  else
    -- A plain script: turn the loop (this raises inside a callback, where
    -- blocking would stall every other connection).
    step(deadline and math.min(math.max(deadline - now(), 0), 0.05) or 0.05)
  end
  return not deadline or now() < deadline
end

-- Wait once for news on ws (see wait); for client.lua's handshake.
function M.wait(ws, deadline) return wait(ws, queue_of(ws), deadline, false, 3) end

--[[ ws:receive([timeout]) -> message, kind | nil, error message, token
  Takes the next whole message ("text" or "binary"). timeout in seconds: 0
  returns at once, nil waits as long as the connection lives. Tokens (the
  third value): "timeout" (retryable), "closed" (sticky; the close code and
  reason are ws:close_status()). Inside a luaws coroutine it yields;
  elsewhere it runs the loop until done.
  Usage: local msg, kind = ws:receive(5) ]]
-- Take the first queued message (there is one), resuming reading once the
-- queue is down to QUEUE_LOW. An emptied queue starts again at index 1, so
-- its table never grows or rehashes however many messages pass.
local function take(ws, q)
  local first, last, kinds = q.first, q.last, q.kinds
  local msg, kind = q[first], kinds[first]
  q[first], kinds[first] = nil, nil
  if first == last then
    q.first, q.last = 1, 0
  else
    q.first = first + 1
  end
  if q.paused and last - first <= QUEUE_LOW then
    q.paused = false
    ws:resume()
  end
  return msg, kind
end

-- The general receive, for what the C one does not do itself: any
-- timeout, the first call on a connection, a queued message, a plain
-- script, a wake without a message. It is called from C (csrc/lua/conn.c,
-- lconn_receive), so the caller's code is at level 3. WAITING as its one
-- result tells C to park the coroutine (an empty queue, no deadline).
local function receive_general(self, timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0 or timeout ~= timeout) then
    error("bad argument #1 to 'receive' (number of seconds >= 0 expected, got " .. tostring(timeout) .. ")", 3)
  end
  -- the queue is made by the first message queued, the close, or a wait
  local q = queues[self]
  if q and q.first <= q.last then return take(self, q) end   -- on_message queued it: nothing to check
  do   -- the handlers are the queue's
    local h = conn_handlers(self)
    if h.message ~= on_message then
      if h.fragment then
        error("this connection hands its messages to its fragment handler, frame by frame; receive() is for coroutine routes and clients", 3)
      end
      if h.message then
        error("this connection hands its messages to its message handler; receive() is for coroutine routes and clients", 3)
      end
      conn_handlers(self, M.queue_handlers)
    end
  end
  local deadline = timeout and now() + timeout
  while true do
    if q then
      if q.first <= q.last then return take(self, q) end
      if q.closed then return nil, closed_message(q), "closed" end
    end
    if timeout == 0 then return nil, "receive: nothing has arrived", "timeout" end
    -- no deadline, in a coroutine luaws runs: C parks it in receive() itself
    if not deadline and not (q and q.waiter) and managed[co_running()] then return WAITING end
    q = q or queue_of(self)
    local ok, msg, kind = wait(self, q, deadline, true, 4)
    if msg ~= nil then return msg, kind end
    if not ok and q.first > q.last and not q.closed then
      return nil, ("receive: nothing arrived within %g s"):format(timeout), "timeout"
    end
  end
end

local receive_next
methods.receive, receive_next, await = core.conn_receivers(WAITING, receive_general, finish)

-- for msg, kind in ws:messages() do ... end: until the connection closes.
-- (The for loop calls receive_next(ws, its last message) itself.)
function methods:messages()
  return receive_next, self
end

-- ws:close_status() -> code, reason once the close completed (else nil).
function methods:close_status()
  local q = queues[self]
  if q and q.closed then return q.close_code, q.close_reason end
  if self.state == "closed" and self.close_code then return self.close_code, self.close_reason end
end

-- How long ws:close() waits by default for the close handshake to end.
local CLOSE_WAIT = 10

local c_close = methods.close

--[==[ ws:close([code [, reason [, timeout]]]) -> code, reason | true | nil, message, token
  Starts the close handshake (code default 1000). Where waiting is possible,
  in a coroutine luaws runs (a coroutine route, luaws.spawn) or in a plain
  script, it then waits for the handshake to end and returns the peer's code
  and reason (its close frame's, or 1006 if the TCP connection ended
  without one), or nil, message, "timeout" after timeout seconds (default
  10; the connection still closes, by close_timeout). Inside a callback it
  cannot wait: it returns true at once and the close handler tells the end.
  "closed" if it was closing already. Usage: local code = ws:close(1000, "bye", 5) ]==]
function methods:close(code, reason, timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0 or timeout ~= timeout) then
    error("bad argument #3 to 'close' (number of seconds >= 0 expected, got " .. tostring(timeout) .. ")", 2)
  end
  local ok, msg, token = c_close(self, code, reason)
  if not ok then return ok, msg, token end
  local co = co_running()
  if not managed[co] and core.in_loop() then return true end   -- a callback: no waiting here
  local deadline = now() + (timeout or CLOSE_WAIT)
  local q = queue_of(self)
  while self.state ~= "closed" do
    if now() >= deadline then
      return nil, ("close: the close handshake did not end within %g s"):format(timeout or CLOSE_WAIT), "timeout"
    end
    -- woken by the close when ws's messages come through its queue (a client,
    -- a coroutine route); otherwise looked at every 50 ms
    wait(self, q, math.min(deadline, now() + 0.05), false, 3)
  end
  return self:close_status()
end

return M
