-- SPDX-License-Identifier: MIT
--
-- spec/helper.lua: shared by every spec (busted loads it first, see .busted).
-- Real sockets on 127.0.0.1, port 0; every wait bounded.
--
--   local h = require "helper"
--   local server = h.server { idle_timeout = 1 }     -- closed after each test
--   h.pump(function() return done end, "the echo")   -- steps the loop, bounded
--   h.fails("closed", ws:receive(5))                 -- nil, a message, "closed"

local M = {}

M.TIMEOUT = tonumber(os.getenv("LUAWS_TEST_TIMEOUT")) or 10

local ok, luaws = pcall(require, "luaws")
if not ok then error("cannot load luaws (run `make` first): " .. tostring(luaws)) end
M.luaws = luaws
M.core = require "luaws.core"

-- Callback errors are part of what specs check: collect them, and still
-- show them (a spec that expects none asserts #h.errors == 0).
M.errors = {}
M.core.on_error(function(msg)
  M.errors[#M.errors + 1] = msg
  if os.getenv("LUAWS_TEST_VERBOSE") then io.stderr:write(msg, "\n") end
end)

-- Step the loop until cond() is true; error with what after timeout seconds.
function M.pump(cond, what, timeout)
  local deadline = M.core.now() + (timeout or M.TIMEOUT)
  while not cond() do
    if M.core.now() > deadline then
      error(("timed out after %.1f s waiting for %s"):format(timeout or M.TIMEOUT, what or "a condition"), 2)
    end
    M.core.step(0.01)
  end
end

-- Step the loop for seconds (to see that something does NOT happen).
function M.idle(seconds)
  local deadline = M.core.now() + seconds
  while M.core.now() < deadline do M.core.step(0.01) end
end

local function show(t)
  local parts = {}
  for i = 1, t.n do parts[i] = type(t[i]) == "string" and ("%q"):format(t[i]) or tostring(t[i]) end
  return "(" .. table.concat(parts, ", ") .. ")"
end

-- The message of an I/O failure (nil, a non-empty message, token), or
-- nil and what is wrong with got.
local function failure(token, got)
  if got.n ~= 3 or got[1] ~= nil or type(got[2]) ~= "string" or got[2] == "" or got[3] ~= token then
    return nil, ("expected (nil, a message, %q), got %s"):format(token, show(got))
  end
  return got[2]
end

--[[ fails(token, ...) -> message
  Checks that ... is an I/O failure as luaws returns it: exactly nil, a
  message (a non-empty string, for people), then token (compared exactly);
  returns the message. Raises at the caller otherwise.
  Usage: h.fails("closed", ws:receive(5)) ]]
function M.fails(token, ...)
  local msg, why = failure(token, table.pack(...))
  if not msg then error(why, 2) end
  return msg
end

--[[ fails_with(token, text, ...) -> message
  fails(token, ...), and the message contains text (plain).
  Usage: h.fails_with("handshake", "404 Not Found", luaws.connect(url)) ]]
function M.fails_with(token, text, ...)
  local msg, why = failure(token, table.pack(...))
  if msg and not msg:find(text, 1, true) then
    msg, why = nil, ("expected a message with %q, got %q"):format(text, msg)
  end
  if not msg then error(why, 2) end
  return msg
end

local servers = {}

-- A server on 127.0.0.1, port 0 (merged with opts); closed by M.cleanup.
function M.server(opts)
  local o = { host = "127.0.0.1", port = 0 }
  for k, v in pairs(opts or {}) do o[k] = v end
  local s = assert(luaws.listen(o))
  servers[#servers + 1] = s
  return s
end

-- An echo server at /ws (callback style), for client-side specs.
function M.echo_server(opts)
  local s = M.server(opts)
  s:route("/ws", { message = function(ws, msg, kind) ws:send(msg, kind) end })
  return s
end

-- Close every server made by M.server and wait until their connections are
-- gone, so one spec's sockets never reach the next.
function M.cleanup()
  for i = #servers, 1, -1 do
    servers[i]:close()
    servers[i] = nil
  end
  M.pump(function() return M.core.live() == 0 end, "every connection to finish", 10)
end

-- Has this machine an IPv6 loopback?
function M.has_ipv6()
  local f = io.open("/proc/net/if_inet6")
  if not f then return false end
  local s = f:read("a")
  f:close()
  return s:find("00000000000000000000000000000001", 1, true) ~= nil
end

return M
