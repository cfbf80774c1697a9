-- SPDX-License-Identifier: MIT
-- RFC 6455 conformance of the server under test, through the raw-socket suite
-- in spec/conformance/suite.py (one `it` per suite case).
--
-- The server is started once, the whole suite runs against it while busted
-- collects this describe block, and the server is stopped by PID before the
-- `it` blocks report. That is how each case becomes its own `it`: busted
-- needs them at collection time. NON-STRICT cases pass with a "# NON-STRICT"
-- note; FAILED cases fail with the suite's detail. If the server cannot
-- start, a single `it` fails and says why.
--
-- Server: `lua5.4 examples/echo.lua --port 0 --host 127.0.0.1`, or the command
-- in LUAWS_CONFORMANCE_SERVER (spec/support/sut.lua).

local proc = require("support.proc")
local json = require("support.json")
local sut = require("support.sut")

local MIN_CASES = 200
local SUITE_TIMEOUT = 240   -- seconds; the suite bounds itself well below this

describe("RFC 6455 conformance", function()
  local server, start_err = sut.start(10)
  local results, stray, code, out = {}, {}, nil, ""
  if server then
    out, code = proc.run({ proc.PYTHON, "spec/conformance/suite.py", server.url },
                         { cwd = sut.root(), timeout = SUITE_TIMEOUT })
    results, stray = json.decode_lines(out)
  end
  local stopped, stop_err = sut.stop(server)

  teardown(function()
    -- Already stopped above; this only matters if collection was interrupted.
    if server then sut.stop(server, 2) end
  end)

  if not server then
    it("starts the server under test", function()
      error(start_err, 0)
    end)
    return
  end

  local counts = { OK = 0, ["NON-STRICT"] = 0, FAILED = 0 }
  for _, r in ipairs(results) do
    counts[r.result] = (counts[r.result] or 0) + 1
    it(tostring(r.id) .. " " .. tostring(r.desc), function()
      if r.result == "FAILED" then
        error(r.detail, 0)
      elseif r.result == "NON-STRICT" then
        print("# NON-STRICT " .. r.id .. ": " .. r.detail)
      elseif r.result ~= "OK" then
        error("unknown verdict " .. tostring(r.result) .. ": " .. tostring(r.detail), 0)
      end
    end)
  end

  it("ran at least " .. MIN_CASES .. " cases, and suite.py exited 0", function()
    print(string.format("# conformance of `%s`: %d OK, %d NON-STRICT, %d FAILED",
                        server.cmd, counts.OK, counts["NON-STRICT"], counts.FAILED))
    assert(code == 0, "suite.py exited with " .. tostring(code) .. ": " .. table.concat(stray, "\n"):sub(1, 2000))
    assert(#results >= MIN_CASES, string.format("only %d cases reported; other output: %s",
                                                #results, table.concat(stray, "\n"):sub(1, 2000)))
  end)

  it("the server exits on SIGTERM to its PID", function()
    assert(stopped, stop_err)
    assert.is_false(server.proc:alive())
  end)
end)
