-- SPDX-License-Identifier: MIT
--
-- spec/support/hostloop.lua: luaws driven from another event loop, the way
-- README's recipe says (wait for luaws.pollfd() readable, at most
-- luaws.timeout() seconds, then luaws.step(0)), for hostloop_spec and the
-- script it starts (hostloop_signal.lua).
--
--   local hostloop = require "support.hostloop"
--   local wakes, guarded = hostloop.run("cqueues", function() return done end, 10)
--   hostloop.run("luv", cond, 10, function(host)
--     host.after(0.1, function() luaws.shutdown(2) end)   -- host code, not a luaws callback
--   end)
--
-- run(name, done, guard [, beside]) turns the host's loop ("cqueues" or
-- "luv") until done() is true or guard seconds have passed, and returns the
-- number of times the host woke luaws (loop iterations) and whether the
-- guard ended it. beside(host), if given, runs first and may schedule host
-- code with host.after(seconds, fn): a cqueues coroutine or a luv timer,
-- outside every luaws callback, the way an application's own code calls
-- luaws between steps.

local luaws = require "luaws"

local M = {}

-- Is the host's Lua module installed? (Debian's lua-cqueues, lua-luv.)
function M.available(name)
  return (pcall(require, name == "luv" and "luv" or "cqueues"))
end

local drivers = {}

-- cqueues: one coroutine waits on the fd as a pollable, with luaws's
-- timeout, and steps luaws; host code beside it wakes it through a
-- condition after it called luaws (the wait was computed before).
function drivers.cqueues(done, guard, beside)
  local cqueues = require "cqueues"
  local condition = require "cqueues.condition"
  local cq = cqueues.new()
  local pollable = { pollfd = assert(luaws.pollfd()), events = "r" }
  local kick = condition.new()
  local deadline = luaws.now() + guard
  local wakes, guarded, over = 0, false, false
  cq:wrap(function()
    while not done() do
      local left = deadline - luaws.now()
      if left <= 0 then
        guarded = true
        break
      end
      local t = luaws.timeout()
      cqueues.poll(pollable, kick, t and math.min(t, left) or left)
      wakes = wakes + 1
      luaws.step(0)
    end
    over = true
  end)
  if beside then
    beside {
      after = function(seconds, fn)
        cq:wrap(function()
          cqueues.sleep(seconds)
          fn()
          kick:signal()
        end)
      end,
    }
  end
  -- The outermost loop: the cqueue itself, stepped until the driver ends.
  while not over do
    assert(cq:step(1))
    if luaws.now() > deadline + 5 then error("hostloop: the cqueues driver did not end") end
  end
  return wakes, guarded
end

-- luv: a poll handle on the fd and a timer that a prepare handle re-arms
-- from luaws.timeout() right before libuv blocks, every iteration; host
-- code needs no wake-up (the prepare sees what it did).
function drivers.luv(done, guard, beside)
  local uv = require "luv"
  local poll = uv.new_poll(assert(luaws.pollfd()))
  local timer, prepare, guard_timer = uv.new_timer(), uv.new_prepare(), uv.new_timer()
  local extra = {}
  local wakes, guarded = 0, false
  local function step()
    wakes = wakes + 1
    luaws.step(0)
    if done() then uv.stop() end
  end
  poll:start("r", step)
  prepare:start(function()
    local t = luaws.timeout()
    if t then
      uv.update_time()
      timer:start(math.ceil(t * 1000), 0, step)
    else
      timer:stop()
    end
  end)
  uv.update_time()   -- libuv's clock is the time of its last turn, maybe long ago: timers count from now
  guard_timer:start(math.floor(guard * 1000), 0, function()
    guarded = true
    uv.stop()
  end)
  if beside then
    beside {
      after = function(seconds, fn)
        local t = uv.new_timer()
        extra[#extra + 1] = t
        uv.update_time()
        t:start(math.floor(seconds * 1000), 0, function()
          fn()
          if done() then uv.stop() end
        end)
      end,
    }
  end
  if not done() then uv.run() end
  for _, h in ipairs { poll, timer, prepare, guard_timer, table.unpack(extra) } do h:close() end
  uv.run("nowait")   -- the close callbacks
  return wakes, guarded
end

function M.run(name, done, guard, beside)
  local d = assert(drivers[name], "hostloop: no driver for " .. tostring(name))
  return d(done, guard, beside)
end

-- p-th percentile (0..100) of a list of numbers (sorts a copy).
function M.percentile(list, p)
  local s = {}
  for i, v in ipairs(list) do s[i] = v end
  table.sort(s)
  if #s == 0 then return nil end
  return s[math.max(1, math.ceil(#s * p / 100))]
end

return M
