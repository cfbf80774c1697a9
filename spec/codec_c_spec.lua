-- SPDX-License-Identifier: MIT
-- The C unit harness of the pure codecs (ctest/codec_test.c, built by
-- `make test` with ASan+UBSan): the buffer contract and reads past the end
-- of the input against a guard page, which no Lua binding can show.
local proc = require "support.proc"

describe("ctest/codec_test.c", function()
  -- twice: as built, and without the AVX2 paths (LUAWS_NO_AVX2), so the
  -- SSE2 and word loops they stand in for are checked on this CPU too
  for _, exe in ipairs { "build/ctest/codec_test", "build/ctest/codec_test_noavx2" } do
  it("passes every check, with no sanitizer report (" .. exe .. ")", function()
    local f = io.open(exe)
    assert(f, exe .. " is missing: run `make test` (or `make test-c`)")
    f:close()
    -- the sanitizer runtime is the harness's own: none preloaded for it
    local out, code, why = proc.run({ exe }, { unset = { "LD_PRELOAD" }, timeout = 60 })
    print("# " .. (out:match("(%d+ passed, %d+ failed)") or out:sub(1, 200)))
    assert(code == 0, ("%s: %s"):format(why or ("exit " .. tostring(code)), out:sub(1, 2000)))
    assert.matches("%d+ passed, 0 failed", out)
  end)
  end
end)
