-- SPDX-License-Identifier: MIT
-- The C unit harness of the pure codecs (ctest/codec_test.c, built by
-- `make test` with ASan+UBSan): the buffer contract and reads past the end
-- of the input against a guard page, which no Lua binding can show.
local proc = require "support.proc"

describe("ctest/codec_test.c", function()
  it("passes every check, with no sanitizer report", function()
    local exe = "build/ctest/codec_test"
    local f = io.open(exe)
    assert(f, exe .. " is missing: run `make test` (or `make test-c`)")
    f:close()
    -- the sanitizer runtime is the harness's own: none preloaded for it
    local out, code, why = proc.run({ exe }, { unset = { "LD_PRELOAD" }, timeout = 60 })
    print("# " .. (out:match("(%d+ passed, %d+ failed)") or out:sub(1, 200)))
    assert(code == 0, ("%s: %s"):format(why or ("exit " .. tostring(code)), out:sub(1, 2000)))
    assert.matches("%d+ passed, 0 failed", out)
  end)
end)
