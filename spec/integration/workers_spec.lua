-- SPDX-License-Identifier: MIT
--
-- luaws.run{workers = N}: a master process and N workers on one port
-- (csrc/io/workers.c). The server is spec/support/workers_server.lua, run
-- as a subprocess; every connection is first told "hello ID PID TAG" by the
-- worker that serves it, so the spec knows which process it talks to.
-- Outcomes are asserted (ids, echoes, close codes, exit statuses, which
-- processes are left); times are only reported ("# " lines) and bounded
-- generously. Every process is stopped by its PID, never by name: the
-- master by support.proc, the workers by the PIDs they reported
-- themselves (and only after /proc says the PID still runs this script).
local h = require "helper"
local proc = require "support.proc"
local conn = require "luaws.conn"
local luaws, core = h.luaws, h.core

local SCRIPT = "spec/support/workers_server.lua"
local GRACE = 2   -- the workers' shutdown grace (run{grace})
-- Deadlines only (never asserted as speed): an ASan build starts and runs slower.
local SANITIZED = (os.getenv("LUAWS_TEST_RUNENV") or "") ~= "" or (os.getenv("LD_PRELOAD") or ""):find("asan") ~= nil
local T = SANITIZED and 3 or 1

-- ---------------------------------------------------------------- processes

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Is pid a live (not zombie) process running this spec's server script?
local function ours(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  local state = stat and stat:match("^%d+ %b() (%a)")
  if not state or state == "Z" or state == "X" then return false end
  return ((read_file("/proc/" .. pid .. "/cmdline") or ""):find("workers_server.lua", 1, true)) ~= nil
end

local function signal(pid, sig)
  if ours(pid) then os.execute(("kill -%s %d 2>/dev/null"):format(sig, pid)) end
end

local function step_until(cond, timeout)
  local deadline = core.now() + timeout
  while not cond() do
    if core.now() > deadline then return false end
    core.step(0.01)
  end
  return true
end

-- ---------------------------------------------------------------- per test

local master          -- the subprocess
local seen = {}       -- worker PIDs learned this test
local clients = {}    -- every client connection made this test

-- Start the script; wait until the master and its n workers say they listen.
local function start(n, ...)
  local p = proc.spawn { "lua5.4", SCRIPT, "--port", "0", "--workers", tostring(n), "--grace", tostring(GRACE), ... }
  master = p
  local port, why = p:wait_line("listening on 127%.0%.0%.1:(%d+) pid %d+ worker master", 20 * T)
  assert(port, ("%s did not start (%s): %s%s"):format(SCRIPT, tostring(why), p:stdout(), p:stderr()))
  local up = step_until(function()
    local k = 0
    for _ in p:stdout():gmatch("listening on [^\n]* worker %d+\n") do k = k + 1 end
    return k >= n or p:status()
  end, 20 * T)
  assert(up and not p:status(), "the workers did not start: " .. p:stdout() .. p:stderr())
  return p, "ws://127.0.0.1:" .. port
end

-- Connect to path (default /ws) and read the hello: {ws, id, pid, tag} or
-- nil, message, token.
local function connect(url, path)
  local ws, msg, token = luaws.connect(url .. (path or "/ws"), { timeout = 10 * T })
  if not ws then return nil, msg, token end
  clients[#clients + 1] = ws
  local hello, err, tok = ws:receive(10 * T)
  if not hello then return nil, "no hello: " .. tostring(err), tok end
  local id, pid, tag = hello:match("^hello (%d+) (%d+) (%S+)$")
  if not id then return nil, "unexpected hello: " .. hello, "hello" end
  local info = { ws = ws, id = tonumber(id), pid = tonumber(pid), tag = tag }
  seen[info.pid] = true
  return info
end

-- Connect (one at a time, 10 ms apart) until cond(info) is true, for at
-- most 20 s (and 2000 connections). A connection cond does not keep
-- (returns "close") is closed at once.
local function connect_until(url, path, cond, what)
  local deadline = core.now() + 20 * T
  for _ = 1, 2000 do
    local info, msg = connect(url, path)
    assert(info, msg)
    local verdict = cond(info)
    if verdict == "close" then
      info.ws:close()
    elseif verdict then
      return info
    end
    if core.now() > deadline then break end
    h.idle(0.01)
  end
  error(("gave up waiting for %s; the master said:\n%s"):format(what, master and master:stderr() or ""), 2)
end

-- A cond result: keep (true) or close.
local function closer(keep) return keep and true or "close" end

local function echo(ws, msg)
  local ok, err = ws:send(msg)
  if not ok then return false, err end
  local got, e = ws:receive(10 * T)
  if got ~= msg then return false, got or e end
  return true
end

-- Yield a luaws coroutine for s seconds.
local function sleep(s)
  local co = coroutine.running()
  luaws.after(s, function() conn.resume(co) end)
  coroutine.yield()
end

-- The master's stderr holds no sanitizer report and no worker death but
-- those expected (patterns), each exactly once.
local function assert_deaths(p, expected)
  local log = p:stderr()
  assert.is_nil(log:find("AddressSanitizer", 1, true), log)
  assert.is_nil(log:find("runtime error:", 1, true), log)
  local unexpected = {}
  for line in log:gmatch("[^\n]+") do
    if line:find("killed by signal", 1, true) or line:find("exited with status [1-9]") then
      local ok = false
      for _, pat in ipairs(expected or {}) do ok = ok or line:find(pat) ~= nil end
      if not ok then unexpected[#unexpected + 1] = line end
    end
  end
  assert.same({}, unexpected, "unexpected worker deaths")
end

describe("luaws.run{workers = N}", function()
  local nerrors
  before_each(function() nerrors = #h.errors end)
  after_each(function()
    -- the master first, gracefully (it stops its workers), then SIGKILL by
    -- PID whatever is left: the master, and every worker PID it or a
    -- worker reported
    if master and not master:status() then
      master:signal("TERM")
      master:wait((GRACE + 10) * T)
    end
    local log = master and master:stderr() or ""
    for pid in log:gmatch("pids? ([%d ]+)") do
      for one in pid:gmatch("%d+") do seen[tonumber(one)] = true end
    end
    proc.cleanup()
    for pid in pairs(seen) do signal(pid, "KILL") end
    for _, ws in ipairs(clients) do
      if ws.state == "open" then ws:close() end
      ws:resume()
    end
    h.pump(function() return core.live() == 0 end, "the clients to finish", 15 * T)
    master, seen, clients = nil, {}, {}
  end)

  it("serves one port from 2 workers: 40 clients see both worker ids, each echo works", function()
    local _, url = start(2)
    local count, list, order = {}, {}, {}
    for i = 1, 40 do
      local info = assert(connect(url))
      list[i] = info
      count[info.id] = (count[info.id] or 0) + 1
      order[i] = info.id
    end
    for i, info in ipairs(list) do
      assert(echo(info.ws, ("echo %d from worker %d"):format(i, info.id)))
    end
    print(("# 40 connections: %d on worker 1, %d on worker 2 (in order: %s)"):format(count[1] or 0, count[2] or 0,
      table.concat(order)))
    assert.is_truthy(count[1], "no connection reached worker 1")
    assert.is_truthy(count[2], "no connection reached worker 2")
    assert.same({ 1, 2 }, (function() local k = {}; for id in pairs(count) do k[#k + 1] = id end; table.sort(k); return k end)())
    assert_deaths(master)
    assert.equal(nerrors, #h.errors)
  end)

  it("restarts a worker killed with SIGKILL; its clients reconnect, the other worker's clients never notice", function()
    local p, url = start(2)
    local by = { {}, {} }
    connect_until(url, "/ws", function(info)
      table.insert(by[info.id], info)
      return #by[1] >= 3 and #by[2] >= 3
    end, "3 clients on each worker")
    local victim = by[1][1].pid
    assert.is_true(ours(victim))
    h.idle(1.1)   -- a worker that has lived a second is started again at once (no back-off)
    local t0 = core.now()
    signal(victim, "KILL")
    for _, c in ipairs(by[1]) do
      local msg, _, token = c.ws:receive(10 * T)
      assert.is_nil(msg)
      assert.equal("closed", token)
    end
    local new = connect_until(url, "/ws", function(info) return closer(info.id == 1 and info.pid ~= victim) end,
      "a new worker 1")
    local took = core.now() - t0
    print(("# a new worker 1 (pid %d) answered %.3f s after the SIGKILL of pid %d"):format(new.pid, took, victim))
    assert.is_true(took < 10, ("the restart took %.1f s"):format(took))
    assert.is_false(ours(victim))
    for i = 1, #by[1] do   -- its clients come back (to whichever worker)
      local c = assert(connect(url))
      assert(echo(c.ws, "back " .. i))
    end
    for _, c in ipairs(by[2]) do
      assert.equal("open", c.ws.state)
      assert(echo(c.ws, "still here"))
    end
    assert.matches("worker 1 %(pid " .. victim .. "%) was killed by signal 9", p:stderr())
    assert.matches("worker 1 started again %(pid " .. new.pid .. "%)", p:stderr())
    assert_deaths(p, { "worker 1 %(pid " .. victim .. "%) was killed by signal 9" })
    assert.equal(nerrors, #h.errors)
  end)

  it("delivers a publish on one worker to the subscribers on both", function()
    local _, url = start(2)
    local subs, pubs = {}, {}
    connect_until(url, "/sub?topic=news", function(info)
      if subs[info.id] then return "close" end
      subs[info.id] = info
      return subs[1] and subs[2]
    end, "a subscriber on each worker")
    connect_until(url, "/ws", function(info)
      if pubs[info.id] then return "close" end
      pubs[info.id] = info
      return pubs[1] and pubs[2]
    end, "a publisher on each worker")
    for id = 1, 2 do
      assert(pubs[id].ws:send("!publish news from-worker-" .. id))
      local answer = pubs[id].ws:receive(10 * T)
      assert.matches("^published %d+$", answer)
      for sid = 1, 2 do
        assert.same({ "from-worker-" .. id, "text" }, { subs[sid].ws:receive(10 * T) },
          ("the subscriber on worker %d, a publish on worker %d"):format(sid, id))
      end
    end
    for sid = 1, 2 do   -- each got each publish once
      local msg, _, token = subs[sid].ws:receive(0.5)
      assert.is_nil(msg)
      assert.equal("timeout", token)
    end
    assert_deaths(master)
    assert.equal(nerrors, #h.errors)
  end)

  it("reloads on SIGHUP while 200 clients echo: no connect fails, every open client gets 1001 or keeps working, "
    .. "new connections land on new workers", function()
    local tagfile = os.tmpname()
    local function tag(s) local f = assert(io.open(tagfile, "w")); f:write(s, "\n"); f:close() end
    tag("v1")
    local RELOAD_GRACE = 2
    local p, url = start(2, "--reload-grace", tostring(RELOAD_GRACE), "--tag", tagfile)
    local N = 200
    local stop = false
    local old = {}        -- the N echo clients: {pid, tag, code, working, echoes}
    local failures = {}   -- connects that failed, echoes that went wrong
    local opened, ended = 0, 0

    for i = 1, N do
      luaws.spawn(function()
        local ws, msg, token = luaws.connect(url .. "/ws", { timeout = 10 * T })
        if not ws then
          failures[#failures + 1] = "echo client connect: " .. tostring(msg) .. " " .. tostring(token)
          ended = ended + 1
          return
        end
        clients[#clients + 1] = ws
        local hello = ws:receive(10 * T)
        local pid, t = (hello or ""):match("^hello %d+ (%d+) (%S+)$")
        local me = { pid = tonumber(pid), tag = t, echoes = 0 }
        old[i] = me
        if pid then seen[me.pid] = true end
        opened = opened + 1
        local n = 0
        while not stop do
          n = n + 1
          local m = ("client %d message %d"):format(i, n)
          ws:send(m)
          local got, _, tok = ws:receive(10 * T)
          if got == nil and tok == "closed" then break end
          if got ~= m then
            failures[#failures + 1] = ("client %d: sent %q, got %s (%s)"):format(i, m, tostring(got), tostring(tok))
            break
          end
          me.echoes = me.echoes + 1
          local extra, _, t2 = ws:receive(0.02)   -- a pause, unless the close comes
          if t2 == "closed" then break end
          if extra ~= nil then failures[#failures + 1] = ("client %d: unexpected %q"):format(i, extra) break end
        end
        if ws.state == "closed" or ws:close_status() then
          me.code = ws:close_status()
        else
          me.working = true
        end
        ended = ended + 1
      end)
    end

    -- a stream of new connections throughout: each says hello, echoes once, closes
    local fresh, connector_done = {}, false
    luaws.spawn(function()
      while not stop do
        local rec = { t = core.now() }
        local ws, msg, token = luaws.connect(url .. "/ws", { timeout = 10 * T })
        if not ws then
          rec.err = tostring(msg) .. " (" .. tostring(token) .. ")"
        else
          clients[#clients + 1] = ws
          local hello, e = ws:receive(10 * T)
          local pid, t = (hello or ""):match("^hello %d+ (%d+) (%S+)$")
          if not pid then
            rec.err = "no hello: " .. tostring(hello or e)
          else
            rec.pid, rec.tag, rec.answered = tonumber(pid), t, core.now()
            seen[rec.pid] = true
            local ok, why = echo(ws, "fresh")
            if not ok then rec.err = "echo: " .. tostring(why) end
          end
          ws:close()
        end
        fresh[#fresh + 1] = rec
        sleep(0.02)
      end
      connector_done = true
    end)

    h.pump(function() return opened + #failures >= N end, "the 200 echo clients to connect", 30 * T)
    assert.same({}, failures)
    local old_pids, nold = {}, 0
    for _, me in pairs(old) do
      if not old_pids[me.pid] then nold = nold + 1 end
      old_pids[me.pid] = true
    end
    h.pump(function() return #fresh >= 5 end, "the first new connections", 10 * T)

    tag("v2")   -- the new workers read the script (and this file) again
    local t_hup = core.now()
    assert(p:signal("HUP"))
    h.pump(function() return ended >= N end, "every echo client to be closed by its draining worker",
      (RELOAD_GRACE + GRACE + 30) * T)
    local t_closed = core.now()
    local k = #fresh
    h.pump(function() return #fresh >= k + 20 end, "20 more connections after the reload", 30 * T)
    stop = true
    h.pump(function() return connector_done end, "the connector to stop", 15 * T)

    for _, rec in ipairs(fresh) do
      if rec.err then failures[#failures + 1] = ("connect at %+.2f s: %s"):format(rec.t - t_hup, rec.err) end
    end
    assert.same({}, failures, "a connect attempt or an echo failed")
    local codes, echoes = {}, 0
    for i = 1, N do
      local me = old[i]
      echoes = echoes + me.echoes
      assert.is_true(me.working or me.code == 1001,
        ("echo client %d ended with %s"):format(i, tostring(me.code)))
      codes[tostring(me.code or "open")] = (codes[tostring(me.code or "open")] or 0) + 1
    end
    local first_new, after, new_pids = nil, 0, {}
    for _, rec in ipairs(fresh) do
      if not first_new and rec.pid and not old_pids[rec.pid] then first_new = rec.answered - t_hup end
      if rec.t > t_closed then
        after = after + 1
        assert.is_nil(old_pids[rec.pid], "a connection after the reload reached an old worker, pid " .. rec.pid)
        assert.equal("v2", rec.tag)
        new_pids[rec.pid] = true
      end
    end
    assert.is_true(step_until(function()
      for pid in pairs(old_pids) do if ours(pid) then return false end end
      return true
    end, 10 * T), "an old worker is still running")
    local n_new = 0
    for _ in pairs(new_pids) do n_new = n_new + 1 end
    local c = {}
    for code, n in pairs(codes) do c[#c + 1] = code .. " x" .. n end
    table.sort(c)
    print(("# reload: %d connects during and after it, 0 failed; first answer from a new worker %.3f s after SIGHUP; "
      .. "the %d echo clients (%d echoes, on %d old workers) ended %.2f s after SIGHUP (reload_grace %d s): %s; "
      .. "%d connects after that, all on %d new worker(s)")
      :format(#fresh, first_new or -1, N, echoes, nold, t_closed - t_hup, RELOAD_GRACE, table.concat(c, ", "),
        after, n_new))
    os.remove(tagfile)
    assert_deaths(p)
    assert.equal(nerrors, #h.errors)
  end)

  it("on SIGTERM closes every client with 1001, stops every worker and exits with status 0", function()
    local p, url = start(2)
    local list, ids = {}, {}
    connect_until(url, "/ws", function(info)
      list[#list + 1] = info
      ids[info.id] = true
      return #list >= 10 and ids[1] and ids[2]
    end, "clients on both workers")
    local pids = {}
    for _, info in ipairs(list) do pids[info.pid] = true end
    local t0 = core.now()
    assert(p:signal("TERM"))
    for _, info in ipairs(list) do
      local msg, _, token = info.ws:receive((GRACE + 10) * T)
      assert.is_nil(msg)
      assert.equal("closed", token)
      assert.equal(1001, (info.ws:close_status()))
    end
    local status = p:wait((GRACE + 15) * T)
    local took = core.now() - t0
    assert.equal(0, status, "the master's exit status; stderr: " .. p:stderr())
    for pid in pairs(pids) do
      assert.is_false(ours(pid), "worker pid " .. pid .. " is still running")
      assert.matches("exit pid " .. pid .. " worker %d", p:stdout())
    end
    assert.matches("exit pid %d+ worker master", p:stdout())
    print(("# SIGTERM: every client had 1001 and the master exited (status 0) %.3f s later"):format(took))
    assert_deaths(p)
    assert.equal(nerrors, #h.errors)
  end)

  it("loses only one worker's connections to os.exit(3) in a handler, and restarts that worker", function()
    local p, url = start(2)
    local by = { {}, {} }
    connect_until(url, "/ws", function(info)
      table.insert(by[info.id], info)
      return #by[1] >= 3 and #by[2] >= 3
    end, "3 clients on each worker")
    local victim = by[2][1].pid
    h.idle(1.1)   -- past the first second: no back-off
    local t0 = core.now()
    assert(by[2][1].ws:send("!exit 3"))
    for _, c in ipairs(by[2]) do
      local msg, _, token = c.ws:receive(10 * T)
      assert.is_nil(msg)
      assert.equal("closed", token)
    end
    for _, c in ipairs(by[1]) do
      assert.equal("open", c.ws.state)
      assert(echo(c.ws, "unaffected"))
    end
    local new = connect_until(url, "/ws", function(info) return closer(info.id == 2 and info.pid ~= victim) end,
      "a new worker 2")
    print(("# after os.exit(3) in worker 2 (pid %d), a new worker 2 (pid %d) answered %.3f s later")
      :format(victim, new.pid, core.now() - t0))
    assert(echo(new.ws, "hello again"))
    assert.matches("worker 2 %(pid " .. victim .. "%) exited with status 3", p:stderr())
    assert_deaths(p, { "worker 2 %(pid " .. victim .. "%) exited with status 3" })
    assert.equal(nerrors, #h.errors)
  end)
end)
