-- SPDX-License-Identifier: MIT
--
-- spec/support/hostloop_signal.lua HOST: an echo server at /ws inside the
-- loop of HOST ("cqueues" or "luv"), with luaws's own SIGINT/SIGTERM
-- shutdown (grace 5 s) and no timer armed while it waits (no keep-alive
-- pings), so that only luaws.pollfd() turning readable can end a wait
-- before the 30 s guard. Run from the repository root; prints
--   luaws hostloop listening on http://127.0.0.1:PORT/
-- and, once a signal's shutdown has closed every connection,
--   stopped wakes N guarded false closes 1001,...
-- then exits 0 (1 if the guard ended the loop instead).

package.path = "spec/?.lua;lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath

local luaws = require "luaws"
local core = require "luaws.core"
local hostloop = require "support.hostloop"

local host = assert(arg[1], "usage: hostloop_signal.lua cqueues|luv")
local server = assert(luaws.listen { host = "127.0.0.1", port = 0, keep_alive_interval = 0 })
local closes = {}
server:route("/ws", {
  message = function(ws, msg, kind) ws:send(msg, kind) end,
  close = function(_, code) closes[#closes + 1] = code end,
})
core.watch_signals(true, 5)   -- what luaws.run() does; here the host runs the loop
print(("luaws hostloop listening on http://127.0.0.1:%s/"):format(server:url("/"):match(":(%d+)/")))
io.stdout:flush()

local wakes, guarded = hostloop.run(host, function()
  local st = server:stats()
  return #closes > 0 and st.connections + st.pending == 0
end, 30)
print(("stopped wakes %d guarded %s closes %s"):format(wakes, tostring(guarded), table.concat(closes, ",")))
io.stdout:flush()
os.exit(guarded and 1 or 0)
