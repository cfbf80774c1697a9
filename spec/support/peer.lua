-- SPDX-License-Identifier: MIT
-- spec/support/peer.lua: run a peer client script against the server under
-- test and turn its JSON lines into `it` blocks.
--
-- A peer client (spec/peers/*_client.*) prints one line per check,
-- {"name": ..., "ok": true|false, "detail": ...}. The spec lists the check
-- names it expects, so a check the client never reported fails instead of
-- vanishing. When the peer is missing the whole spec is `pending`, never
-- passed.
--
-- busted puts describe/it/pending/teardown/assert in the spec file's
-- environment, not in _G, so the spec passes its _ENV along.
--
-- Usage (inside a spec file):
--   require("support.peer").describe(_ENV, {
--     title = "python3-websockets client", available = function() return ok, why end,
--     command = function(url) return { proc.PYTHON, "spec/peers/python_client.py", url } end,
--     checks = require("support.peer").CHECKS,
--   })

local proc = require("support.proc")
local json = require("support.json")
local sut = require("support.sut")

local M = {}

-- The scenario every peer client runs (spec/peers/*_client.*), in order.
M.CHECKS = {
  "text echo",
  "binary echo",
  "empty text echo",
  "empty binary echo",
  "1 MiB binary echo",
  "fragmented text message echoed whole",
  "100 messages echoed in order",
  "ping answered by a pong",
  "close 1000 with a reason: the server closes with 1000",
  "close 4001: the server echoes 4001",
}

local CLIENT_TIMEOUT = 120   -- seconds for the whole client run

function M.describe(env, opts)
  local describe, it, pending, teardown, assert = env.describe, env.it, env.pending, env.teardown, env.assert
  describe(opts.title .. " against the server under test", function()
    local ok, why = opts.available()
    if not ok then
      pending(opts.title .. " skipped: " .. why)
      return
    end

    local server, start_err = sut.start(10)
    local results, stray, out, code = {}, {}, "", nil
    if server then
      out, code = proc.run(opts.command(server.url), { cwd = sut.root(), timeout = CLIENT_TIMEOUT })
      results, stray = json.decode_lines(out)
    end
    local stopped, stop_err = sut.stop(server)

    teardown(function()
      if server then sut.stop(server, 2) end
    end)

    if not server then
      it("starts the server under test", function() error(start_err, 0) end)
      return
    end

    local by_name = {}
    for _, r in ipairs(results) do by_name[r.name] = r end
    local context = "client exit " .. tostring(code) .. "; other output: " .. table.concat(stray, "\n"):sub(1, 1500)

    for _, name in ipairs(opts.checks) do
      it(name, function()
        local r = by_name[name]
        assert(r, "the client reported no result for this check (" .. context .. ")")
        assert(r.ok == true, tostring(r.detail))
      end)
    end

    it("the client ran to completion and reported only known checks", function()
      assert(code == 0, context)
      local known = {}
      for _, name in ipairs(opts.checks) do known[name] = true end
      for _, r in ipairs(results) do
        assert(known[r.name], "unexpected check from the client: " .. tostring(r.name))
      end
    end)

    it("the server exits on SIGTERM to its PID", function()
      assert(stopped, stop_err)
      assert.is_false(server.proc:alive())
    end)
  end)
end

return M
