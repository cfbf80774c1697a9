-- SPDX-License-Identifier: MIT
-- spec/check_layers_spec.lua -- scripts/check-layers keeps the C core in its
-- three layers (lua -> io -> proto) and free of include cycles. Each case
-- builds a small csrc-like tree in a temporary directory (removed after),
-- plants one wrong include in an otherwise clean tree, and runs the script on
-- it with --root, under `timeout`. The last case runs it on the real csrc/.
local proc = require "support.proc"

local function repo_root()
  local src = debug.getinfo(1, "S").source
  src = src:sub(1, 1) == "@" and src:sub(2) or ""
  return src:match("^(.*)/spec/[^/]*$") or "."
end

local ROOT = repo_root()
local SCRIPT = ROOT .. "/scripts/check-layers"
local TIMEOUT = 30

-- A clean three-layer tree. Own-folder includes, `# include`, leading
-- whitespace and includes inside comments are all in it on purpose.
local CLEAN = {
  ["luaws.h"] = "#ifndef LUAWS_H\n#define LUAWS_H\n#include <stddef.h>\n#include <stdint.h>\n#endif\n",
  ["proto/frame.h"] = '#include "luaws.h"\n#include <stdint.h>\n',
  ["proto/frame.c"] = table.concat({
    '#include "proto/frame.h"',
    '#include "frame.h"                  /* own folder, bare name */',
    '  #  include "utf8.h"',
    "#include <string.h>",
    "#include <openssl/sha.h>",
    "#include <zlib.h>",
    "/* a comment that mentions",
    "#include <ev.h>",
    '   #include "io/conn.h" */',
    '// #include <lua.h>',
    'static const char *s = "/* not a comment */"; /* #include <sys/socket.h> */',
    "",
  }, "\n"),
  ["proto/utf8.h"] = '#include "luaws.h"\n',
  ["proto/utf8.c"] = '#include "proto/utf8.h"\n',
  ["io/conn.h"] = '#include <ev.h>\n#include <sys/socket.h>\n#include <netinet/in.h>\n#include "proto/frame.h"\n',
  ["io/conn.c"] = '#include "conn.h"\n#include "io/loop.h"\n#include <openssl/ssl.h>\n#include "luaws.h"\n',
  ["io/loop.h"] = "#include <ev.h>\n",
  ["io/loop.c"] = '#include "io/loop.h"\n#include "proto/utf8.h"\n',
  ["lua/util.h"] = "#include <lua.h>\n#include <lauxlib.h>\n",
  ["lua/core.c"] = '#include "lua/util.h"\n#include "io/conn.h"\n#include "proto/frame.h"\n#include <lualib.h>\n',
}

local dirs = {}

-- The clean tree with changes (path -> text, or false to leave it out),
-- written to a new temporary directory; returns the directory.
local function tree(changes)
  local dir = os.tmpname()
  os.remove(dir)
  proc.check { "mkdir", "-p", dir }
  dirs[#dirs + 1] = dir
  local files = {}
  for path, text in pairs(CLEAN) do files[path] = text end
  for path, text in pairs(changes or {}) do files[path] = text or nil end
  for path, text in pairs(files) do
    local sub = path:match("^(.*)/[^/]*$")
    if sub then proc.check { "mkdir", "-p", dir .. "/" .. sub } end
    local f = assert(io.open(dir .. "/" .. path, "wb"))
    f:write(text)
    f:close()
  end
  return dir
end

-- Run the script (bounded); returns its output and exit status.
local function check(dir)
  return proc.run({ SCRIPT, "--root", dir }, { timeout = TIMEOUT })
end

-- Assert a failing run whose output has each of the given plain strings.
local function fails_with(out, code, ...)
  assert.equal(1, code, out)
  for _, want in ipairs { ... } do
    assert.truthy(out:find(want, 1, true), ("expected %q in:\n%s"):format(want, out))
  end
end

describe("scripts/check-layers", function()
  after_each(function()
    for _, dir in ipairs(dirs) do
      assert(dir:match("^/tmp/lua_%w+$"), "refusing to remove " .. dir)
      proc.check { "rm", "-rf", dir }
    end
    dirs = {}
  end)

  it("passes a clean three-layer tree, comments and own-folder includes included", function()
    local out, code = check(tree())
    assert.equal(0, code, out)
    assert.truthy(out:find("check-layers: 11 files, 7 modules, 0 violations, 0 cycles\n", 1, true), out)
  end)

  describe("reports a layer rule broken by one include", function()
    it("when a proto/ file includes <ev.h>", function()
      local out, code = check(tree { ["proto/utf8.c"] = '#include "proto/utf8.h"\n#include <ev.h>\n' })
      fails_with(out, code, "check-layers: proto/utf8.c:2: proto/ file includes <ev.h> (libev)\n",
        "1 violations, 0 cycles")
    end)

    it("when a proto/ file includes <sys/socket.h>", function()
      local out, code = check(tree { ["proto/utf8.c"] = '#include "proto/utf8.h"\n#include <sys/socket.h>\n' })
      fails_with(out, code, "check-layers: proto/utf8.c:2: proto/ file includes <sys/socket.h> (sockets/network)\n",
        "1 violations, 0 cycles")
    end)

    it("when a proto/ file includes \"io/conn.h\"", function()
      local out, code = check(tree { ["proto/base64.c"] = '#include "luaws.h"\n#include "io/conn.h"\n' })
      fails_with(out, code, 'check-layers: proto/base64.c:2: proto/ file includes "io/conn.h" (io/ is above proto/)\n',
        "1 violations, 0 cycles")
    end)

    it("when a proto/ file includes <lua.h>", function()
      local out, code = check(tree { ["proto/utf8.c"] = '#include "proto/utf8.h"\n#include <lua.h>\n' })
      fails_with(out, code, "check-layers: proto/utf8.c:2: proto/ file includes <lua.h> (Lua)\n",
        "1 violations, 0 cycles")
    end)

    it("when an io/ file includes <lauxlib.h>", function()
      local out, code = check(tree { ["io/loop.c"] = '#include "io/loop.h"\n\n#include <lauxlib.h>\n' })
      fails_with(out, code, "check-layers: io/loop.c:3: io/ file includes <lauxlib.h> (Lua)\n",
        "1 violations, 0 cycles")
    end)

    it("when an io/ file includes \"lua/util.h\"", function()
      local out, code = check(tree { ["io/loop.c"] = '#include "io/loop.h"\n#include "lua/util.h"\n' })
      fails_with(out, code, 'check-layers: io/loop.c:2: io/ file includes "lua/util.h" (lua/ is above io/)\n',
        "1 violations, 0 cycles")
    end)

    it("when a quoted include names no file", function()
      local out, code = check(tree { ["io/loop.c"] = '#include "io/loop.h"\n#include "io/nothere.h"\n' })
      fails_with(out, code, 'check-layers: io/loop.c:2: unresolved include "io/nothere.h"',
        "1 violations, 0 cycles")
    end)

    it("when a file sits directly in the root beside luaws.h", function()
      local out, code = check(tree { ["stray.c"] = '#include "luaws.h"\n' })
      fails_with(out, code, "check-layers: stray.c:1: file outside a layer folder", "1 violations, 0 cycles")
    end)

    it("when the include is written `  #  include` and sits after a closed comment", function()
      local out, code = check(tree { ["proto/utf8.c"] = '/* one\n   two */ #include "proto/utf8.h"\n  #  include <ev.h>\n' })
      fails_with(out, code, "check-layers: proto/utf8.c:3: proto/ file includes <ev.h> (libev)\n",
        "1 violations, 0 cycles")
    end)
  end)

  describe("reports an include cycle", function()
    it("between two modules, naming both and the lines that tie them", function()
      local out, code = check(tree {
        ["io/a.h"] = "", ["io/a.c"] = '#include "io/b.h"\n',
        ["io/b.h"] = "", ["io/b.c"] = '#include <stdio.h>\n#include "io/a.h"\n',
      })
      fails_with(out, code,
        'check-layers: cycle: io/a -> io/b -> io/a (io/a.c:1 includes "io/b.h"; io/b.c:2 includes "io/a.h")\n',
        "0 violations, 1 cycles")
    end)

    it("around three modules, in order", function()
      local out, code = check(tree {
        ["io/a.h"] = '#include "b.h"\n', ["io/b.h"] = '#include "io/c.h"\n', ["io/c.h"] = '#include "io/a.h"\n',
      })
      fails_with(out, code,
        'check-layers: cycle: io/a -> io/b -> io/c -> io/a (io/a.h:1 includes "b.h"; '
          .. 'io/b.h:1 includes "io/c.h"; io/c.h:1 includes "io/a.h")\n',
        "0 violations, 1 cycles")
    end)
  end)

  it("refuses an unknown argument or a missing root with status 2", function()
    local out, code = proc.run({ SCRIPT, "--frobnicate" }, { timeout = TIMEOUT })
    assert.equal(2, code, out)
    assert.truthy(out:find("usage: scripts/check-layers [--root DIR]", 1, true), out)
    out, code = proc.run({ SCRIPT, "--root", "/nonexistent/csrc" }, { timeout = TIMEOUT })
    assert.equal(2, code, out)
  end)

  local split = select(2, proc.run { "test", "-d", ROOT .. "/csrc/proto" }) == 0
  if split then
    it("passes the real csrc/ when run with no arguments", function()
      local out, code = proc.run({ "scripts/check-layers" }, { cwd = ROOT, timeout = TIMEOUT })
      assert.equal(0, code, out)
      assert.truthy(out:find(" 0 violations, 0 cycles\n", 1, true), out)
    end)
  else
    pending("passes the real csrc/ when run with no arguments (csrc/ is not split into proto/, io/, lua/ yet)")
  end
end)
