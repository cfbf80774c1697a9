-- SIGTERM at any moment: an echo server process (spec/support/grace_server.lua
-- under luaws.run{grace = G}) is sent SIGTERM at a random moment of mixed
-- traffic (spec/support/sigterm_traffic.py: handshakes in pieces, frames cut
-- off or stalled, fragmented messages with pings between the fragments, big
-- and small echoes, closes in flight, clients that never read, half-close,
-- clients that never answer the close), a fresh server each time. Each time
-- it must exit by itself with status 0 within G + 1 s, no client may ever
-- get an echo that differs from what it sent, and a client that reads may
-- miss the server's close frame (or see a frame cut) only if the grace ran
-- out and the server says it cut connections. Then: a second SIGTERM
-- during a shutdown that waits on a client ends the process at once, and so
-- does a SIGTERM while luaws.shutdown() runs.
--
-- The random delays come from a seeded RNG (LUAWS_SIGTERM_SEED repeats a
-- run); the seed is printed. Every process is stopped by its PID.
local h = require "helper"
local proc = require "support.proc"
local json = require "support.json"
local luaws, core = h.luaws, h.core

local RUNS = 100
local GRACE = 0.5      -- the servers' grace period in the 100 runs
local MAX_DELAY = 0.6  -- the SIGTERM comes 0..MAX_DELAY s after the traffic starts
local WAIT = 30        -- seconds any other wait may take

-- Start spec/support/grace_server.lua with ...; the process and its port.
local function start_server(...)
  local p = proc.spawn { "lua5.4", "spec/support/grace_server.lua", ... }
  local port = assert(p:wait_line("grace server listening on 127%.0%.0%.1:(%d+)", 15))
  return p, tonumber(port)
end

local function add(into, from)
  for k, v in pairs(from or {}) do into[k] = (into[k] or 0) + v end
end

local function list(t)
  local keys, out = {}, {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do out[#out + 1] = ("%s=%d"):format(k, t[k]) end
  return table.concat(out, " ")
end

describe("SIGTERM", function()
  local clients
  before_each(function() clients = {} end)
  after_each(function()
    proc.cleanup()
    for _, ws in ipairs(clients) do
      ws:resume()
      if ws.state ~= "closed" then ws:close() end
    end
    h.pump(function() return core.live() == 0 end, "the clients to finish", 10)
  end)

  it(("at %d random moments of mixed traffic: each server exits by itself with status 0 within grace + 1 s")
    :format(RUNS), function()
    local seed = tonumber(os.getenv("LUAWS_SIGTERM_SEED")) or os.time()
    print(("# seed %d (LUAWS_SIGTERM_SEED=%d repeats this run)"):format(seed, seed))
    math.randomseed(seed)
    local outcomes, failures, worst = {}, {}, 0
    local totals = { scenarios = {}, closes = {}, errors = {}, cut_by = {}, echoes = 0, cut = 0,
      shutdown_cut = 0, frames_cut = 0 }
    local bad = {}
    for run = 1, RUNS do
      local delay = math.random() * MAX_DELAY
      local p, port = start_server("--grace", tostring(GRACE))
      local drv = proc.spawn({ proc.PYTHON, "spec/support/sigterm_traffic.py", tostring(port),
        tostring(seed % 100000 * 1000 + run), "20" }, { unset = { "LD_PRELOAD" } })
      h.idle(delay)
      local t0 = core.now()
      assert(p:signal("TERM"), "the server was gone before the SIGTERM: " .. p:stderr())
      local status = p:wait(GRACE + 10)
      local took = core.now() - t0
      local outcome
      if not status then
        outcome = "still running"
        p:signal("KILL")
        p:wait(5)
      elseif status ~= 0 then
        outcome = "status " .. status
      elseif took > GRACE + 1 then
        outcome = "late"
      else
        outcome = "ok"
      end
      outcomes[outcome] = (outcomes[outcome] or 0) + 1
      worst = math.max(worst, took)
      if outcome ~= "ok" then
        failures[#failures + 1] = ("run %d (delay %.3f s): %s after %.2f s; stderr: %s")
          :format(run, delay, outcome, took, p:stderr())
      end
      local cut, fcut = p:stdout():match("exit shutdown_cut=(%w+) frames_cut=(%w+)")
      cut, fcut = tonumber(cut) or 0, tonumber(fcut) or 0
      totals.shutdown_cut = totals.shutdown_cut + cut
      totals.frames_cut = totals.frames_cut + fcut

      local dstatus = drv:wait(WAIT)
      if not dstatus then drv:signal("KILL") drv:wait(5) end
      local objs = json.decode_lines(drv:stdout())
      local r = objs[#objs]
      if dstatus ~= 0 or not r or r.phase ~= "done" then
        bad[#bad + 1] = ("run %d: the traffic driver failed (exit %s): %s%s")
          :format(run, tostring(dstatus), drv:stdout(), drv:stderr())
      else
        if r.bad > 0 or r.stuck > 0 then
          bad[#bad + 1] = ("run %d: %d bad, %d stuck: %s"):format(run, r.bad, r.stuck, json.encode(r.bad_list))
        end
        -- Only a connection the grace period cut may end without a close
        -- frame for a client that reads (or inside a frame).
        if r.cut > cut then
          bad[#bad + 1] = ("run %d: %d reading clients got no close frame or a cut frame (%s), the server cut %d")
            :format(run, r.cut, json.encode(r.cut_by), cut)
        end
        add(totals.cut_by, r.cut_by)
        add(totals.scenarios, r.scenarios)
        add(totals.closes, r.closes)
        add(totals.errors, r.errors)
        totals.echoes = totals.echoes + r.echoes
        totals.cut = totals.cut + r.cut
      end
      p:remove_files()
      drv:remove_files()
    end
    print(("# outcomes: %s; slowest exit %.2f s after SIGTERM (grace %.1f s)"):format(list(outcomes), worst, GRACE))
    print(("# traffic: %s"):format(list(totals.scenarios)))
    print(("# %d echoes intact; close codes seen: %s; reading clients cut: %d (%s); server side: shutdown_cut %d, frames_cut %d")
      :format(totals.echoes, list(totals.closes), totals.cut, list(totals.cut_by), totals.shutdown_cut, totals.frames_cut))
    if next(totals.errors) then print("# client-side errors: " .. list(totals.errors)) end
    assert.same({}, failures)
    assert.equal(RUNS, outcomes.ok)
    assert.same({}, bad)
  end)

  -- A server whose close_timeout is longer than anything here, so that
  -- only the shutdown (its grace, or a signal that cuts it) can end a close.
  local function long_server(grace)
    return start_server("--grace", tostring(grace), "--close-timeout", "600")
  end

  -- A client that connected, got its echo, and then stops reading: the
  -- server's 1001 is never answered, so a shutdown waits on it.
  local function silent_client(port)
    local ws = assert(luaws.connect(("ws://127.0.0.1:%d/ws"):format(port)))
    clients[#clients + 1] = ws
    assert(ws:send("hold"))
    assert.same({ "hold", "text" }, { ws:receive(WAIT) })
    ws:pause()
    return ws
  end

  local function assert_cut_at_once(p, long_grace, after)
    local t0 = core.now()
    local status = p:wait(WAIT)
    local took = core.now() - t0
    assert(status, ("the server still runs %d s after the %s"):format(WAIT, after))
    assert.equal(0, status, "exit status; stderr: " .. p:stderr())
    assert.is_true(took < long_grace / 3, ("exited %.2f s after the %s (grace %d s)"):format(took, after, long_grace))
    assert.matches("shutdown: 1 connection was still open", p:stderr(), 1, true)
    assert.matches("exit shutdown_cut=1 ", p:stdout(), 1, true)
    return took
  end

  it("a second time, during a shutdown waiting on a client that never answers, ends the process at once", function()
    local LONG = 60
    local p, port = long_server(LONG)
    silent_client(port)
    assert(p:signal("TERM"))
    h.idle(0.5)
    assert.is_nil(p:status(), "the server exited without waiting for its client: " .. p:stderr())
    assert(p:signal("TERM"))
    local took = assert_cut_at_once(p, LONG, "second SIGTERM")
    print(("# second SIGTERM: exited %.3f s after it (grace %d s)"):format(took, LONG))
  end)

  it("while luaws.shutdown() waits on a client that never answers, ends the process at once", function()
    local LONG = 60
    local p, port = long_server(LONG)
    silent_client(port)
    local ctl = assert(luaws.connect(("ws://127.0.0.1:%d/ctl"):format(port)))
    clients[#clients + 1] = ctl
    assert(ctl:send("shutdown " .. LONG))
    h.fails("closed", ctl:receive(WAIT))
    assert.equal(1001, (ctl:close_status()))
    assert(p:wait_line("(shutdown started)", WAIT))
    h.idle(0.5)
    assert.is_nil(p:status(), "the server exited without waiting for its client: " .. p:stderr())
    assert(p:signal("TERM"))
    local took = assert_cut_at_once(p, LONG, "SIGTERM")
    print(("# SIGTERM during luaws.shutdown(%d): exited %.3f s after it"):format(LONG, took))
  end)
end)
