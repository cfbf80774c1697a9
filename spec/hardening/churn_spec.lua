-- Connection churn against a server subprocess (spec/hardening/servers/
-- echo.lua): 10,000 connections abandoned at every stage of the handshake
-- (attack.py abandon), and 10,000 whole connect-handshake-close cycles from
-- 50 parallel clients (spec/hardening/tools/churn.c, built here with cc).
-- Afterwards the server's descriptors must be back at their baseline, its
-- RSS near it, every opened connection closed once, and it must serve.
local h = require "helper"
local proc = require "support.subproc"
local hard = require "support.hardening"
local core = h.core

local it_py = proc.have_python() and it or pending
local CHURN = "build/hardening/churn"

-- Build the churn tool (once per run); false, why if cc fails.
local built
local function build_churn()
  if built == nil then
    os.execute("mkdir -p build/hardening")
    local ok = os.execute("env -u LD_PRELOAD cc -O2 -std=c11 -Wall -Wextra -Werror -o " .. CHURN
      .. " spec/hardening/tools/churn.c 2>build/hardening/churn.log")
    built = ok == true
  end
  return built, proc.slurp("build/hardening/churn.log")
end

describe("connection churn", function()
  local srv, base_rss, base_fds
  local function start(opts)
    srv = hard.server(opts)
    assert(hard.fresh_echo(srv.probe))   -- one-time set-up goes into the baseline
    h.idle(0.2)
    base_rss, base_fds = hard.rss(srv.pid), hard.fds(srv.pid)
  end
  after_each(function()
    proc.cleanup()
    h.pump(function() return core.live() == 0 end, "the spec's clients to finish", 10)
  end)

  -- After the churn: descriptors back, RSS near the baseline, the core
  -- tracking no connection but the /ctl one asking, and a fresh echo.
  local function assert_recovered(what, rss_slack_kib)
    local fds = hard.settle(srv, base_fds, 10)
    local st = hard.ctl(srv)
    local rss = hard.rss(srv.pid)
    print(("# %s: fds %d -> %d, RSS %d -> %d KiB (%+d), server stats: accepted %d upgraded %d rejected %d, "
      .. "live %d, Lua heap %d KiB"):format(what, base_fds, fds, base_rss, rss, rss - base_rss, st.accepted,
      st.upgraded, st.rejected, st.live, st.lua_kib))
    assert.equal(base_fds, fds)
    assert.equal(1, st.live)            -- the /ctl connection that asked
    assert.equal(0, st.pending)
    hard.figure(rss - base_rss <= rss_slack_kib, ("RSS grew by %d KiB"):format(rss - base_rss))
    local c, e = hard.fresh_echo(srv.probe)
    assert(c, e)
    assert.is_true(hard.alive(srv))
    return st
  end

  it_py("recovers its descriptors and memory after 10,000 connections abandoned at every stage of the handshake", function()
    start {}
    local r = hard.report(hard.attack("abandon", srv.port, "--count", 10000, "--batch", 100), 120)
    local opened = r.kinds["head-rst"] + r.kinds["open-half-frame-rst"] + r.kinds["open-fin"]
    -- every connection that opened gets its close handler once, with 1006
    h.pump(function() return #hard.closes(srv) >= opened end, "the close handlers", 20)
    local closes = hard.closes(srv)
    print(("# abandon: %d connections in %.2f s (%s)"):format(r.count, r.seconds, hard.counts(r.kinds)))
    local st = assert_recovered("abandon", 4 * hard.MiB)
    assert.equal(10000, r.count)
    assert.is_true(st.accepted >= 10000)
    local other = {}
    for _, c in ipairs(closes) do if c ~= 1006 then other[#other + 1] = c end end
    assert.same({}, other)
  end)

  -- The machine is shared (2 cores; other engineers run load generators):
  -- the rate is the best of up to 8 runs of 10,000 cycles, the first that
  -- reaches 15,000/s ending it. Each run also measures what the server and
  -- the client used and what the rest of the machine took meanwhile (from
  -- /proc/stat). The wall-clock figure is checked when the best run had the
  -- machine to itself (others took under 0.2 of a core); when others took
  -- more throughout, what is checked is the cycles per CPU-second of the
  -- server, i.e. the rate it sustains with one core of its own. Under ASan
  -- the figures are reported, not checked: they are ASan's.
  it("runs 10,000 connect-handshake-close cycles from 50 parallel clients at 15,000 cycles/s or more, and recovers", function()
    local ok, log = build_churn()
    assert(ok, "cc failed to build the churn tool: " .. tostring(log))
    start {}
    local runs, total = {}, 0
    for i = 1, hard.sanitized and 2 or 8 do
      local busy0, cpu0 = hard.machine_busy(), hard.cpu(srv.pid)
      local p = proc.spawn({ CHURN, tostring(srv.port), "10000", "50", "/ws", "30" }, { unset = { "LD_PRELOAD" } })
      local r = hard.report(p, 60)
      local server_cpu = hard.cpu(srv.pid) - cpu0
      r.server_cpu = server_cpu
      r.others = math.max(0, hard.machine_busy() - busy0 - server_cpu - r.cpu) / r.seconds   -- in cores
      r.per_server_cpu = math.floor(r.ok / math.max(server_cpu, 0.01))
      assert.equal(0, r.errors, "churn run " .. i .. ": " .. tostring(r.first_error))
      assert.equal(10000, r.ok)
      runs[#runs + 1] = r
      total = total + r.ok
      if not hard.sanitized and r.rate >= 15000 then break end
    end
    h.pump(function() return #hard.closes(srv) >= total end, "the close handlers", 20)
    table.sort(runs, function(a, b) return a.rate > b.rate end)
    local best = runs[1]
    local desc = {}
    for _, r in ipairs(runs) do
      desc[#desc + 1] = ("%.0f/s (server %.2f s CPU = %d cycles per CPU-s, client %.2f s, others %.2f cores)")
        :format(r.rate, r.server_cpu, r.per_server_cpu, r.cpu, r.others)
    end
    print(("# churn: %d cycles; runs, best first: %s%s"):format(total, table.concat(desc, "; "),
      hard.sanitized and " (ASan build: reported, not checked)" or ""))
    local closes = hard.closes(srv)
    local other = {}
    for _, c in ipairs(closes) do if c ~= 1000 then other[#other + 1] = c end end
    assert.equal(total, #closes)   -- each opened, each closed once, with 1000
    assert.same({}, other)
    assert_recovered("churn", 4 * hard.MiB)
    if not hard.sanitized then
      if best.rate < 15000 and best.others >= 0.2 then
        print(("# churn: the machine was busy in every run (others took %.2f cores in the best): checking "
          .. "the server's cycles per CPU-second instead of the wall-clock rate"):format(best.others))
        local most = 0
        for _, r in ipairs(runs) do most = math.max(most, r.per_server_cpu) end
        assert.is_true(most >= 15000, ("at most %d cycles per server CPU-second"):format(most))
      else
        assert.is_true(best.rate >= 15000, "best run: " .. desc[1])
      end
    end
  end)
end)
