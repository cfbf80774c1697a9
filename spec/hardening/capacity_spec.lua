-- Running out of room, against a server subprocess (spec/hardening/servers/
-- echo.lua): a connection storm past max_connections (503 for the storm,
-- nothing for the connections already open), and a server out of file
-- descriptors (ulimit -n 64: accept fails with EMFILE), which must keep
-- serving what it has, not spin, and accept again once descriptors free up.
local h = require "helper"
local proc = require "support.proc"
local hard = require "support.hardening"
local luaws, core = h.luaws, h.core

local it_py = proc.have_python() and it or pending

describe("capacity", function()
  local clients
  before_each(function() clients = {} end)
  after_each(function()
    for _, ws in ipairs(clients) do
      if ws.state == "open" then ws:close() end
    end
    proc.cleanup()
    h.pump(function() return core.live() == 0 end, "the spec's clients to finish", 10)
  end)

  it_py("answers a storm of 2,000 handshakes past max_connections with 503, and the 50 open connections keep their echo", function()
    local MAX = 50
    local srv = hard.server { max_connections = MAX }
    for i = 1, MAX do clients[i] = assert(luaws.connect(srv.url)) end
    local atk = hard.attack("storm", srv.port, "--count", 2000, "--batch", 100)
    -- every open client echoes, round after round, while the storm runs
    local rounds, worst = 0, 0
    while atk:status() == nil do
      for _, ws in ipairs(clients) do worst = math.max(worst, (assert(hard.echo_on(ws)))) end
      rounds = rounds + 1
    end
    local r = hard.report(atk, 60)
    print(("# storm: %d handshakes in %.2f s past max_connections %d: %s; %d rounds of echo on the %d open "
      .. "connections meanwhile, worst %.2f ms (reported, not checked)"):format(r.count, r.seconds, MAX, hard.counts(r.status), rounds,
      MAX, worst * 1e3))
    assert.same({ ["503"] = 2000 }, r.status)
    -- each round began while the storm ran: how many fit in it is a matter of speed
    assert.is_true(rounds >= 1, "no round of echo during the storm")
    for _, ws in ipairs(clients) do
      assert.equal("open", ws.state)
      assert(hard.echo_on(ws))
    end
    assert.same({}, hard.closes(srv))   -- not one of them was closed
    -- one leaves: a new one gets in
    clients[1]:close()
    h.fails("closed", clients[1]:receive(5))
    h.pump(function() return #hard.closes(srv) == 1 end, "the close handler")
    local ws = assert(luaws.connect(srv.url))
    clients[#clients + 1] = ws
    assert(hard.echo_on(ws))
  end)

  -- Descriptors of the server at the start: stdin, stdout, stderr, the
  -- epoll fd, the signal pipe(s), the listening socket(s): about 8, so
  -- about 56 connections fit under ulimit -n 64.
  local function emfile_case(script)
    local srv = hard.server({}, { nofile = 64, script = script })
    local port2 = script and tonumber(srv.proc:stdout():match("and 127%.0%.0%.1:(%d+)"))
    -- a handshake unanswered for 1 s (--step) counts as a miss, 5 in a row as
    -- the limit: a slow server must not look like one out of descriptors
    local atk = hard.attack("emfile", srv.port, "--port2", port2 or 0, "--free", 20, "--hold", 1, "--wait", 10,
      "--step", 1)
    assert(atk:wait_line("(at%-limit)", 60), "the attacker did not reach the limit: " .. atk:stderr())
    local fds_at_limit = hard.fds(srv.pid, 64)
    local cpu0, t0 = hard.cpu(srv.pid), core.now()
    h.idle(0.8)   -- the attacker holds for 1 s: is the server spinning on accept?
    local cpu = (hard.cpu(srv.pid) - cpu0) / (core.now() - t0)
    local r = hard.report(atk, 60)
    local alive = hard.alive(srv)
    print(("# EMFILE%s: %d connections opened, %d left waiting; descriptors below 64 in use at the limit: %d; CPU at the limit %.0f%%; "
      .. "echo on %d of %d; after freeing 20: %d of the waiting answered within %.2f s, echo on %d of %d; "
      .. "fresh handshakes %s; server %s%s"):format(script and " (two servers)" or "", r.opened, r.pending,
      fds_at_limit, cpu * 100, r.echo_at_limit, r.opened, r.pending_answered, r.pending_answered_after,
      r.echo_after, r.held_after, hard.counts(r.fresh), alive and "alive" or "gone, status "
      .. tostring(srv.proc:status()), alive and "" or (": " .. srv.proc:stderr():sub(1, 200))))
    return srv, r, fds_at_limit, cpu, alive
  end

  it_py("keeps serving at EMFILE (ulimit -n 64), does not spin, and accepts again once descriptors free up", function()
    local srv, r, fds_at_limit, cpu, alive = emfile_case(nil)
    assert.is_true(alive, "the server died: " .. srv.proc:stderr())
    assert.is_true(r.opened >= 40 and r.pending >= 1, "opened " .. r.opened .. ", waiting " .. r.pending)
    assert.equal(64, fds_at_limit)
    assert.equal(r.opened, r.echo_at_limit)        -- the open ones keep working
    assert.is_true(cpu <= 0.2, ("the server used %.0f%% CPU while out of descriptors"):format(cpu * 100))
    assert.equal(r.pending, r.pending_answered)    -- the waiting ones are accepted once fds free up
    assert.equal(r.held_after, r.echo_after)
    assert.same({ [tostring(srv.port)] = true }, r.fresh)
  end)

  it_py("keeps two servers in one process alive when both run out of descriptors, and both accept again", function()
    local srv, r, _, _, alive = emfile_case("spec/hardening/servers/two.lua")
    assert.is_true(alive, "the process died: status " .. tostring(srv.proc:status()) .. ": " .. srv.proc:stderr())
    assert.equal(r.opened, r.echo_at_limit)
    assert.equal(r.pending, r.pending_answered)
    for port, ok in pairs(r.fresh) do assert.equal(true, ok, "port " .. port) end
  end)
end)
