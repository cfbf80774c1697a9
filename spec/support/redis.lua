-- SPDX-License-Identifier: MIT
-- spec/support/redis.lua: a real redis-server (Debian's) for the specs that
-- need one, on a free loopback port, started here and stopped by PID.
--
--   local redis = require "support.redis"
--   local r = assert(redis.start())        -- r.port, r.url ("redis://127.0.0.1:P")
--   r:cli("PUBSUB", "NUMSUB", "luaws:room")  -- redis-cli's output
--   r:kill()  r:restart()  r:stop()
local proc = require "support.proc"

local M = {}

local R = {}
R.__index = R

-- Is redis-server there?
function M.available()
  local _, code = proc.run({ "redis-server", "--version" }, { timeout = 10 })
  return code == 0
end

-- A port nothing listens on now (tried by binding with luaws if loaded).
local function free_port()
  local core = package.loaded["luaws.core"]
  for _ = 1, 50 do
    local port = 20000 + math.random(0, 30000)
    if not core then return port end
    local luaws = require "luaws"
    local s = luaws.listen { host = "127.0.0.1", port = port }
    if s then
      s:close(0)
      return port
    end
  end
end

local function launch(self)
  local argv = { "redis-server", "--port", tostring(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no" }
  for _, a in ipairs(self.args) do argv[#argv + 1] = a end
  self.proc = proc.spawn(argv)
  local ok = self.proc:wait_line("Ready to accept connections", 20)
  if not ok then
    local out = self.proc:stdout() .. self.proc:stderr()
    self.proc:stop(2)
    return nil, "redis-server did not start: " .. out:sub(1, 2000)
  end
  return self
end

--[[ start([args]) -> redis | nil, why
  args: more redis-server arguments ({"--requirepass", "pw"}, {"--unixsocket", path}). ]]
function M.start(args)
  local self = setmetatable({ args = args or {} }, R)
  for _ = 1, 5 do
    self.port = free_port()
    self.url = "redis://127.0.0.1:" .. self.port
    local ok, why = launch(self)
    if ok then return self end
    self.why = why
  end
  return nil, self.why
end

-- redis-cli's answer to a command (stdout, trimmed).
function R:cli(...)
  local argv = { "redis-cli", "-p", tostring(self.port) }
  for i, a in ipairs(self.args) do
    if self.args[i - 1] == "--requirepass" then
      argv[#argv + 1] = "--no-auth-warning"
      argv[#argv + 1] = "-a"
      argv[#argv + 1] = a
    end
  end
  for _, a in ipairs { ... } do argv[#argv + 1] = tostring(a) end
  local out = proc.run(argv, { timeout = 10 })
  return (out:gsub("%s+$", ""))
end

-- SIGKILL it (an outage), and wait until it is gone.
function R:kill()
  self.proc:signal("KILL")
  self.proc:wait(10)
end

-- Start it again on the same port.
function R:restart()
  return launch(self)
end

function R:stop()
  if self.proc then self.proc:stop(5) end
end

return M
