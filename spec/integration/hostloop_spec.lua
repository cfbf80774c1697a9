-- SPDX-License-Identifier: MIT
--
-- luaws inside another event loop (README "Loop"): the host waits on
-- luaws.pollfd() being readable for at most luaws.timeout() seconds, then
-- calls luaws.step(0). The drivers are spec/support/hostloop.lua's (cqueues:
-- the fd as a pollable in a coroutine; luv: uv.new_poll on the fd and a
-- uv timer re-armed from luaws.timeout() by a prepare handle), Debian's
-- lua-cqueues and lua-luv. Each host runs an echo server and its clients,
-- timers, a shutdown from host code and one from a signal, and what is
-- checked is what happened, with the number of times the host woke luaws:
-- a loop that polled would wake hundreds of times where these wake a few.
-- Round-trip times are reported as "# " lines, never checked (bar a sanity
-- bound far above the target).
local h = require "helper"
local proc = require "support.proc"
local hostloop = require "support.hostloop"
local luaws, core = h.luaws, h.core

local N = 200   -- messages per client

local function ms(s) return s and s * 1000 or 0 / 0 end

describe("luaws.pollfd / luaws.timeout", function()
  after_each(function()
    proc.cleanup()
    h.cleanup()
  end)

  it("gives one descriptor, the same every call", function()
    local fd = assert(luaws.pollfd())
    assert.is_true(math.type(fd) == "integer" and fd >= 0)
    assert.equal(fd, luaws.pollfd())
  end)

  it("answers the time to the earliest timer, 0 when one is due, and nil once none is armed", function()
    local before = luaws.timeout()   -- nil unless an earlier spec left a timer running
    local t0 = luaws.now()   -- wall time; the timers start no earlier than this
    luaws.step(0)   -- timers count from the loop's time (libev's ev_now): bring it to now
    local late = luaws.after(0.5, function() end)
    local soon = luaws.after(0.2, function() end)
    local t = luaws.timeout()
    -- the heap is probed to within 20 us, never early: up to that much late;
    -- and never less than what is left after the time that really passed
    -- (a loaded machine may stall this process for a while)
    local function within(want, what)
      local passed = luaws.now() - t0
      assert.is_true(t <= want + 1e-4 and t >= want - passed - 1e-3,
        ("%s: %s (%.3f s passed)"):format(what, tostring(t), passed))
    end
    within(0.2, "with timers at 0.2 and 0.5 s")
    soon:stop()
    t = luaws.timeout()
    within(0.5, "with the 0.2 s timer stopped")
    late:stop()
    if before == nil then assert.is_nil(luaws.timeout()) end
    local due = luaws.after(0, function() end)
    assert.equal(0, luaws.timeout(), "a timer already due")
    due:stop()
  end)

  it("raises when called from a luaws callback", function()
    local err
    luaws.after(0, function() err = select(2, pcall(luaws.timeout)) end)
    h.pump(function() return err end, "the timer")
    assert.matches("timeout: called from a luaws callback", err)
  end)

  it("answers 0 while a connection finished outside a step waits for its hook, and one step hands it over", function()
    if not proc.have_python() then return pending("no " .. proc.PYTHON) end
    local server = h.server { handshake_timeout = 30 }
    local empty = os.tmpname()
    local raw = proc.spawn({ proc.PYTHON, "spec/support/rawtcp.py", "127.0.0.1", tostring(server.port), empty, "20" },
      { unset = { "LD_PRELOAD" } })
    h.pump(function() return server:stats().pending == 1 end, "the raw connection in its handshake")
    server:close()   -- host code, not a callback: the handshake is cut, the connection queued to finish
    assert.equal(1, server:stats().pending, "not finished yet")
    assert.equal(0, luaws.timeout(), "work is pending: the host must not wait")
    luaws.step(0)
    assert.equal(0, server:stats().pending, "finished by the step")
    assert.is_truthy(raw:wait(10), "the raw peer saw the close")
    os.remove(empty)
  end)
end)

for _, host in ipairs { "cqueues", "luv" } do
  local available = hostloop.available(host)

  describe("luaws inside a " .. host .. " loop", function()
    local run = function(...) return hostloop.run(host, ...) end

    after_each(function()
      proc.cleanup()   -- first: a peer process that still runs holds a connection h.cleanup waits for
      h.cleanup()
    end)

    local function maybe(name, fn)
      return (available and it or pending)(name, fn)
    end

    maybe("echoes " .. N .. " messages each for a luaws client and a Python client, woken by readiness", function()
      local have_py = proc.have_python("websockets")
      local server = h.server()
      local closes = 0
      server:route("/ws", {
        message = function(ws, msg, kind) ws:send(msg, kind) end,
        close = function() closes = closes + 1 end,
      })
      local rtt, got, client_done, client_err = {}, 0, false, nil
      luaws.spawn(function()
        local ws, err = luaws.connect(server:url("/ws"))
        if not ws then client_err, client_done = err, true return end
        for i = 1, N do
          local t0 = core.now()
          ws:send("lua " .. i)
          local msg = ws:receive(10)
          if msg ~= "lua " .. i then client_err = "echo " .. tostring(msg) break end
          rtt[#rtt + 1] = core.now() - t0
          got = got + 1
        end
        ws:close()
        client_done = true
      end)
      local py = have_py and proc.spawn({ proc.PYTHON, "spec/support/hostloop_echo.py", server:url("/ws"), tostring(N) },
        { unset = { "LD_PRELOAD" } })
      local want_closes = have_py and 2 or 1
      local wakes, guarded = run(function()
        return client_done and (closes >= want_closes or (py and py:status() ~= nil and closes >= 1))
      end, 30)
      assert.is_false(guarded, "the loop ended by the guard")
      assert.is_nil(client_err)
      assert.equal(N, got)
      local events = server:stats().messages_in + got   -- messages this process received
      assert.is_true(wakes <= 2 * events + 20, ("%d wakes for %d messages received"):format(wakes, events))
      local p50, p99 = hostloop.percentile(rtt, 50), hostloop.percentile(rtt, 99)
      print(("# %s: luaws client echo p50 %.3f ms, p99 %.3f ms; %d wakes for %d messages received")
        :format(host, ms(p50), ms(p99), wakes, events))
      assert.is_true(p50 < 0.05, "sanity: p50 " .. ms(p50) .. " ms")
      if not have_py then return pending("python3-websockets: the Python client") end
      assert.equal(0, py:wait(15), py:stdout() .. py:stderr())
      local n, pp50, pp99 = py:stdout():match("done (%d+) ([%d.]+) ([%d.]+)")
      assert.equal(tostring(N), n, py:stdout())
      assert.matches("closed 1000", py:stdout())
      assert.equal(2 * N, server:stats().messages_in)
      print(("# %s: python client echo p50 %s ms, p99 %s ms (its own clock)"):format(host, pp50, pp99))
    end)

    maybe("fires luaws.after and luaws.every on time, waking only for them", function()
      luaws.step(0)   -- timers count from the loop's time (libev's ev_now): bring it to now
      local t0 = core.now()
      local once, ticks = nil, {}
      luaws.after(0.3, function() once = core.now() - t0 end)
      luaws.every(0.1, function(t)
        ticks[#ticks + 1] = core.now() - t0
        if #ticks == 3 then t:stop() end
      end)
      local wakes, guarded = run(function() return once and #ticks == 3 end, 10)
      assert.is_false(guarded)
      assert.is_true(once >= 0.3, "after(0.3) fired at " .. once)
      for i, at in ipairs(ticks) do assert.is_true(at >= 0.1 * i - 1e-3, ("tick %d at %.4f"):format(i, at)) end
      assert.is_true(once < 0.3 + 0.5, "sanity: after(0.3) fired at " .. once)
      -- 4 firings over 0.3 s: a loop that polled every millisecond would wake ~300 times
      assert.is_true(wakes <= 12, wakes .. " wakes for 4 timer firings")
      print(("# %s: after(0.3) fired %.2f ms late, every(0.1) %.2f/%.2f/%.2f ms late; %d wakes")
        :format(host, ms(once - 0.3), ms(ticks[1] - 0.1), ms(ticks[2] - 0.2), ms(ticks[3] - 0.3), wakes))
    end)

    maybe("shuts a server down from host code: clients get 1001, and the loop sees the connections go", function()
      local have_py = proc.have_python("websockets")
      local server = h.server()
      server:route("/ws", { message = function(ws, msg, kind) ws:send(msg, kind) end })
      local code, ready
      luaws.spawn(function()
        local ws = assert(luaws.connect(server:url("/ws")))
        ready = true
        local msg, _, token = ws:receive(20)
        assert(msg == nil and token == "closed")
        code = ws:close_status()
      end)
      local py = have_py and proc.spawn({ proc.PYTHON, "spec/support/wsclient.py", server:url("/ws"), "20" },
        { unset = { "LD_PRELOAD" } })
      local want = have_py and 2 or 1
      -- done() is asked when the host wakes luaws: it must depend on what luaws sees
      local _, guarded = run(function()
        return ready and server:stats().connections == want and server:stats().messages_in >= want - 1
      end, 20)
      assert.is_false(guarded, "both clients connected")
      local wakes
      wakes, guarded = run(function()
        local st = server:stats()
        return code and st.connections + st.pending == 0
      end, 20, function(hst)
        hst.after(0.05, function() luaws.shutdown(5) end)   -- from the host's code, between steps
      end)
      assert.is_false(guarded, "the shutdown finished within the guard")
      assert.equal(1001, code)
      assert.equal(0, server:stats().shutdown_cut)
      assert.is_true(wakes <= 20, wakes .. " wakes")
      if not have_py then return pending("python3-websockets: the Python client") end
      assert.equal(0, py:wait(10))
      assert.matches("closed 1001", py:stdout())
    end)

    maybe("wakes for a signal luaws watches (SIGTERM's shutdown) with no timer armed", function()
      local p = proc.spawn({ "lua5.4", "spec/support/hostloop_signal.lua", host }, { env = proc.luaws_env() })
      local port = assert(p:wait_line("luaws hostloop listening on http://127%.0%.0%.1:(%d+)/", 10))
      local ws = assert(luaws.connect(("ws://127.0.0.1:%s/ws"):format(port), { timeout = 10 }))
      assert(ws:send("hi"))
      assert.equal("hi", ws:receive(10))
      assert.is_true(p:signal("TERM"))
      -- its loop waits with no timeout; the guard is 30 s: only the fd ends the wait
      local msg, _, token = ws:receive(20)
      assert.is_nil(msg)
      assert.equal("closed", token)
      assert.equal(1001, (ws:close_status()))
      assert.equal(0, p:wait(20), p:stdout() .. p:stderr())
      local wakes = p:stdout():match("stopped wakes (%d+) guarded false closes 1001")
      assert.is_truthy(wakes, p:stdout())
      print(("# %s: the signal's shutdown took %s wakes"):format(host, wakes))
    end)
  end)
end
