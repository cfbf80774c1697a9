-- SPDX-License-Identifier: MIT
--
-- luaws: a WebSocket server (and client) for Lua 5.4 with a C core.
--
-- This is the module scripts use. It re-exports the pieces:
--   luaws.listen{...}            a server (lua/luaws/server.lua)
--   luaws.connect(url, opts)     a client (lua/luaws/client.lua)
--   luaws.run() / step(t) / stop() / shutdown(grace)   the loop
--   luaws.pollfd() / timeout()                          inside a host's loop
--   luaws.after(t, fn) / every(t, fn)                   timers
--   luaws.run{workers = N} / luaws.worker_id()          one process per CPU
-- The C core (luaws.core) does bytes, sockets and time; this layer does
-- options, routes and the coroutine style. See README.md.

local core = require "luaws.core"
local server = require "luaws.server"
local client = require "luaws.client"
local options = require "luaws.options"
require "luaws.conn"   -- adds receive/messages to every connection

local M = {
  version = core.version,
  listen = server.listen,
  connect = client.connect,
  defaults = server.defaults,
}

-- SIGHUP in a single process: every listening server with tls reads its
-- certificate files again (server:reload_tls), one log line each; one that
-- fails keeps its old certificates. nil when no server has tls, so that
-- SIGHUP keeps its default meaning for a plain server.
local function tls_reloader()
  local any = false
  for s in pairs(server.listened) do
    if s.options.tls and not s._closed then any = true end
  end
  if not any then return nil end
  return function()
    for s in pairs(server.listened) do
      if s.options.tls and not s._closed then
        local ok, message = s:reload_tls()
        local where = ("%s:%d"):format(s.host, s.port)
        core.log(ok and ("SIGHUP: tls certificates reloaded for %s"):format(where)
          or ("SIGHUP: %s (%s keeps its certificates)"):format(message, where))
      end
    end
  end
end

--[[ luaws.run([opts]) -> true
  Run the loop until luaws.stop(), or until a shutdown (SIGINT/SIGTERM,
  luaws.shutdown) has closed every connection with 1001 after what was
  queued for it, or its grace period has passed and cut the rest.
  opts.grace: seconds a signal's shutdown waits for clients to read what is
  queued and answer the close (default 5); a second signal during it cuts at
  once. opts.signals = false leaves SIGINT/SIGTERM to the host program.
  opts.workers = N | "auto": this process becomes the master of N worker
  processes that each run this script and serve every route on the sockets
  listened so far (csrc/io/workers.c); it returns once SIGTERM/SIGINT has
  stopped them all. opts.reload_grace: seconds an old worker serves after a
  SIGHUP reload (default 30). In a worker, run() serves (and relays
  publishes to the other workers) whatever opts says. Without workers,
  SIGHUP reloads the TLS certificates of every server with tls
  (server:reload_tls), and keeps its default action when none has tls.
  With workers, SIGHUP to the master is the reload above: the new workers
  run the script again, whose luaws.listen reads the certificate files, and
  the old ones serve their open connections for reload_grace seconds; a
  SIGHUP sent to one worker reloads that worker's certificates in place. ]]
function M.run(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("bad argument #1 to 'run' (table expected, got " .. type(opts) .. ")", 2) end
  for k, v in pairs(opts) do
    if k == "grace" then
      if type(v) ~= "number" or v < 0 or v ~= v then error("run: option 'grace' must be a number of seconds >= 0", 2) end
    elseif k ~= "signals" and k ~= "workers" and k ~= "reload_grace" then
      error("run: unknown option '" .. tostring(k) .. "'", 2)
    end
  end
  local workers, reload_grace = options.check_workers(opts, "run", 2)
  local grace = opts.grace or 5
  if core.worker_id() then
    -- started by a master: serve, with the relay; a SIGTERM is the master's
    local skip = {}   -- servers with a backplane: it reaches every worker already
    for s in pairs(server.listened) do
      if s.options.backplane ~= nil and s._c then skip[#skip + 1] = s._c end
    end
    local ok, message, token = core.worker_start(grace, reload_grace, skip)
    if not ok then return nil, message, token end
    core.watch_signals(true, grace, tls_reloader())   -- SIGHUP to one worker: its certificates only
    return core.run()
  end
  if workers then
    if opts.signals == false then
      error("run: option 'signals' cannot be false with 'workers' (the master takes SIGTERM, SIGINT and SIGHUP)", 2)
    end
    return core.workers_master(workers == "auto" and core.online_cpus() or math.floor(workers), grace, reload_grace)
  end
  if opts.signals ~= false then core.watch_signals(true, grace, tls_reloader()) end
  return core.run()
end

-- luaws.worker_id() -> this worker's number (1..N) under run{workers = N},
-- nil in the master and in a process without workers.
M.worker_id = core.worker_id

-- One loop iteration, waiting at most timeout seconds (default 0).
-- For a host program that has its own loop, and for tests.
function M.step(timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0 or timeout ~= timeout) then
    error("bad argument #1 to 'step' (number of seconds >= 0 expected, got " .. tostring(timeout) .. ")", 2)
  end
  return core.step(timeout)
end

--[[ luaws.pollfd() -> fd | nil, message, token
  The one file descriptor a host event loop (cqueues, luv, a select loop)
  waits on: it turns readable when luaws has I/O on any of its sockets, or a
  signal it watches arrived. Same fd every call. Raises when libev runs on a
  backend without such an fd (select, poll: LIBEV_FLAGS).

  luaws.timeout() -> seconds | nil
  How long the host may wait on the fd: seconds until luaws's next timer,
  0 when work is pending (connections to finish, events queued), nil when no
  timer is armed. Call it right before each wait: it also brings the fd up
  to date with sockets started since the last step (by luaws or by the
  host's own calls). Raises when called from a luaws callback.

  The host loop: wait for fd readable (at most luaws.timeout() seconds),
  then luaws.step(0); again. See examples/hostloop_cqueues.lua. ]]
M.pollfd = core.pollfd
M.timeout = core.timeout

M.stop = core.stop
M.now = core.now
M.on_error = core.on_error
M.spawn = require("luaws.conn").spawn

-- Graceful stop from a script: close every connection with 1001 after what
-- is queued for it and let luaws.run() return once they are gone; after
-- grace seconds (default 5; 0: at once) the rest are cut.
function M.shutdown(grace)
  if grace ~= nil and (type(grace) ~= "number" or grace < 0 or grace ~= grace) then
    error("bad argument #1 to 'shutdown' (number of seconds >= 0 expected)", 2)
  end
  core.shutdown(grace or 5)
end

local function check_timer(name, seconds, fn, positive)
  if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 or (positive and seconds == 0) then
    error(("bad argument #1 to '%s' (%s number of seconds expected, got %s)")
      :format(name, positive and "positive" or "non-negative", tostring(seconds)), 3)
  end
  if type(fn) ~= "function" then
    error(("bad argument #2 to '%s' (function expected, got %s)"):format(name, type(fn)), 3)
  end
end

-- Call fn(timer) once after seconds. Returns the timer (timer:stop()).
function M.after(seconds, fn)
  check_timer("after", seconds, fn, false)
  return core.timer(seconds, 0, fn)
end

-- Call fn(timer) every seconds, first after seconds. timer:stop() ends it.
function M.every(seconds, fn)
  check_timer("every", seconds, fn, true)
  return core.timer(seconds, seconds, fn)
end

return M
