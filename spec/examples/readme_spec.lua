-- SPDX-License-Identifier: MIT
-- The README's Lua snippets cannot drift: each one follows a marker
--   <!-- snippet: examples/tutorial/NN_name.lua -->
-- and must equal that file byte for byte; each file is then run as a
-- subprocess on port 0 and driven with luaws.connect to check that it does
-- what the README says it does. The defaults in the README's options table
-- are checked against luaws.defaults too.
local h = require "helper"
local luaws = h.luaws
local common = require "examples.common"
local proc = require "support.proc"

local ROOT = common.root()
local README = assert(proc.read_all(ROOT .. "/README.md"))

-- Every marker, in order: { path = ..., block = text between the fences or
-- nil when the marker is not followed at once by a ```lua fence }.
local function snippets(text)
  local out = {}
  for pos, path in text:gmatch("()<!%-%- snippet: (%S+) %-%->") do
    local block = text:match("^<!%-%- snippet: %S+ %-%->\n```lua\n(.-\n)```\n", pos)
    out[#out + 1] = { path = path, block = block }
  end
  return out
end

local function tutorial_files()
  local files = {}
  for name in proc.check({ "ls", ROOT .. "/examples/tutorial" }):gmatch("[^\n]+") do
    if name:match("%.lua$") then files[#files + 1] = "examples/tutorial/" .. name end
  end
  return files
end

describe("README snippets", function()
  local marked = snippets(README)

  it("mark the echo server, its client and the tutorial steps", function()
    local seen = {}
    for _, s in ipairs(marked) do seen[s.path] = true end
    for _, f in ipairs(tutorial_files()) do
      assert.is_true(seen[f] == true, f .. " is not in the README")
    end
    assert.is_true(#marked >= 7)
  end)

  for _, s in ipairs(marked) do
    it(s.path .. " is in the README byte for byte", function()
      assert.is_string(s.block, "the marker for " .. s.path .. " is not followed by a ```lua block")
      local file = proc.read_all(ROOT .. "/" .. s.path)
      assert.is_string(file, s.path .. " does not exist")
      assert.is_true(file == s.block, s.path .. " differs from its README block")
    end)
  end

  it("every ```lua block in the README is a marked snippet", function()
    local fences, marked_fences = 0, 0
    for _ in README:gmatch("\n```lua\n") do fences = fences + 1 end
    for _ in README:gmatch("%-%->\n```lua\n") do marked_fences = marked_fences + 1 end
    assert.equal(fences, marked_fences)
  end)
end)

describe("README options table", function()
  -- "`5000`" -> 5000, "`\"localhost\"`" -> "localhost", "`16 MiB`" -> 16 MiB,
  -- "`true`" -> true, "`nil` (all)" -> nil.
  local function value(cell)
    local v = cell:match("^`([^`]*)`")
    if not v or v == "nil" then return nil end
    if v == "true" or v == "false" then return v == "true" end
    local s = v:match('^"(.*)"$')
    if s then return s end
    local mib = v:match("^(%d+) MiB$")
    if mib then return tonumber(mib) * 1024 * 1024 end
    return assert(tonumber(v), "cannot read the default " .. cell)
  end

  it("lists every option of luaws.defaults with its default", function()
    local rows = {}
    local section = README:match("## Options of `luaws.listen{}`(.-)\n## ")
    assert.is_string(section)
    for name, default in section:gmatch("\n| `([%w_]+)` | ([^|]-) |") do rows[name] = default end
    for name, default in pairs(luaws.defaults) do
      assert.is_string(rows[name], "option " .. name .. " is not in the README table")
      assert.equal(default, value(rows[name]), "default of " .. name)
    end
    for name, cell in pairs(rows) do
      assert.equal(luaws.defaults[name], value(cell), "default of " .. name)
    end
  end)
end)

describe("README tutorial files, run", function()
  local clients = {}
  local function connect(url, opts)
    local ws, message, token = luaws.connect(url, opts)
    if ws then clients[#clients + 1] = ws end
    return ws, message, token
  end

  after_each(function()
    for i = #clients, 1, -1 do
      if clients[i].state == "open" then clients[i]:close() end
      clients[i] = nil
    end
    local ok, err = pcall(h.cleanup)
    common.stop_all()
    assert(ok, err)
  end)

  local function echoes(ws)
    assert(ws:send("héllo"))
    assert.same({ "héllo", "text" }, { ws:receive(5) })
    assert(ws:send("\0\1\255", "binary"))
    assert.same({ "\0\1\255", "binary" }, { ws:receive(5) })
  end

  describe("00_echo_server.lua (An echo server)", function()
    local script = "examples/tutorial/00_echo_server.lua"

    it("echoes on /ws with callbacks and on /echo as a coroutine, and logs open and close", function()
      local ex = common.start(script)
      assert.equal("echo", ex.name)
      local ws = assert(connect(ex:url("/ws")))
      echoes(ws)
      ex:wait_output("^open from 127%.0%.0%.1$", "the open log")
      assert(ws:close(1000, "bye"))
      h.fails("closed", ws:receive(5))
      ex:wait_output("^closed\t1000\tbye$", "the close log")
      local co = assert(connect(ex:url("/echo")))
      echoes(co)
      co:close()
    end)

    it("lets http://localhost:5000 (and scripts) in and answers 403 to other origins", function()
      local ex = common.start(script)
      assert(connect(ex:url("/ws"), { origin = "http://localhost:5000" })):close()
      assert(connect(ex:url("/ws"))):close()
      h.fails_with("handshake", "403 Forbidden", connect(ex:url("/ws"), { origin = "http://evil.example" }))
    end)

    it("answers the README's client: it prints hello and text", function()
      local ex = common.start(script)
      local out, code = common.run("examples/tutorial/00_echo_client.lua", { ex:url("/ws") }, 20)
      assert.equal(0, code, out)
      assert.equal("hello\ttext\n", out)
      ex:wait_output("^closed\t1000\tdone$", "the client's close in the log")
    end)

    it("on SIGTERM closes every connection with 1001 and exits", function()
      local ex = common.start(script)
      local ws = assert(connect(ex:url("/ws")))
      echoes(ws)
      assert.is_true(ex:signal("TERM"))
      h.fails("closed", ws:receive(5))
      assert.equal(1001, (ws:close_status()))
      assert.is_number(ex:wait(15), "the server exits")
      ex.may_exit = true
    end)
  end)

  describe("01_configure.lua", function()
    local script = "examples/tutorial/01_configure.lua"

    it("accepts /ws (open sends a welcome) and answers 404 elsewhere", function()
      local ex = common.start(script)
      assert.equal("configure", ex.name)
      local ws = assert(connect(ex:url("/ws")))
      assert.same({ "welcome, 127.0.0.1", "text" }, { ws:receive(5) })
      h.fails_with("handshake", "404 Not Found", connect(ex:url("/other")))
    end)

    it("closes with 1009 on a message over max_message_size (64 KiB), not at it", function()
      local ex = common.start(script)
      local ws = assert(connect(ex:url("/ws")))
      assert(ws:receive(5))
      assert(ws:send(("x"):rep(64 * 1024)))
      h.idle(0.2)
      assert.equal("open", ws.state)
      assert(ws:send(("x"):rep(64 * 1024 + 1)))
      h.fails("closed", ws:receive(5))
      assert.equal(1009, (ws:close_status()))
    end)

    it("raises on a misspelt option, as the comment says", function()
      assert.has_error(function() luaws.listen { max_mesage_size = 1 } end, "listen: unknown option 'max_mesage_size'")
    end)
  end)

  describe("02_echo_callbacks.lua", function()
    it("echoes text as text and binary as binary, and counts the messages in ws.data", function()
      local ex = common.start("examples/tutorial/02_echo_callbacks.lua")
      assert.equal("callbacks", ex.name)
      local ws = assert(connect(ex:url("/ws")))
      echoes(ws)
      assert(ws:send(""))
      assert.same({ "", "text" }, { ws:receive(5) })
      assert(ws:close(1000, "bye"))
      h.fails("closed", ws:receive(5))
      ex:wait_output("^127%.0%.0%.1 sent 3 messages, then closed: 1000 bye$", "the close log")
    end)
  end)

  describe("03_echo_coroutine.lua", function()
    it("asks a name, greets, then echoes, one coroutine per connection", function()
      local ex = common.start("examples/tutorial/03_echo_coroutine.lua")
      assert.equal("coroutine", ex.name)
      local a = assert(connect(ex:url("/ws")))
      local b = assert(connect(ex:url("/ws")))
      assert.equal("what is your name?", (a:receive(5)))
      assert.equal("what is your name?", (b:receive(5)))
      assert(b:send("bob"))                       -- b answers first: a's coroutine still waits
      assert.equal("hello, bob", (b:receive(5)))
      assert(a:send("ada"))
      assert.equal("hello, ada", (a:receive(5)))
      echoes(a)
      echoes(b)
      assert(a:close(1000))
      h.fails("closed", a:receive(5))
      assert.equal(1000, (a:close_status()))
      echoes(b)
    end)

    it("ends the coroutine quietly when the client leaves before naming itself", function()
      local ex = common.start("examples/tutorial/03_echo_coroutine.lua")
      local ws = assert(connect(ex:url("/ws")))
      assert(ws:receive(5))
      assert(ws:close(1000, "no name"))
      h.fails("closed", ws:receive(5))
      assert.equal(1000, (ws:close_status()))
      local again = assert(connect(ex:url("/ws")))   -- the server carries on
      assert.equal("what is your name?", (again:receive(5)))
      assert.is_nil(ex:output():find("error", 1, true), "no handler error logged")
    end)
  end)

  describe("04_disconnects.lua", function()
    local script = "examples/tutorial/04_disconnects.lua"

    -- X = 1 s: a ping every second, idle_timeout 2 s, so each pong is due a
    -- second before the server would give up, however busy the machine.
    it("keeps a quiet client that answers the pings (a running luaws client)", function()
      local ex = common.start(script, { "--interval", "1" })
      assert.equal("disconnects", ex.name)
      local ws = assert(connect(ex:url("/ws")))
      ex:wait_output("^127%.0%.0%.1 connected$", "the connect log")
      h.idle(3)                                   -- longer than idle_timeout, saying nothing
      assert.equal("open", ws.state)
      echoes(ws)
      assert.is_nil(ex:output():find("disconnected", 1, true))
    end)

    it("notices a client that went silent via idle_timeout: 1006 timeout in the close handler", function()
      local ex = common.start(script, { "--interval", "0.2" })
      local ws = assert(connect(ex:url("/ws")))
      ex:wait_output("^127%.0%.0%.1 connected$", "the connect log")
      proc.sleep(1.0)                             -- frozen: no pong, nothing at all
      ex:wait_output("^127%.0%.0%.1 disconnected: 1006 timeout$", "the timeout in the log")
      h.fails("closed", ws:receive(5))
      assert.equal(1001, (ws:close_status()))     -- what the server told the client
    end)

    it("reports the client's own close code", function()
      local ex = common.start(script, { "--interval", "5" })
      local ws = assert(connect(ex:url("/ws")))
      assert(ws:close(4000, "see you"))
      h.fails("closed", ws:receive(5))
      ex:wait_output("^127%.0%.0%.1 disconnected: 4000 see you$", "the close in the log")
    end)
  end)

  describe("06_rooms.lua", function()
    local script = "examples/tutorial/06_rooms.lua"

    it("keeps each room to itself, with the name from the query, decoded", function()
      local ex = common.start(script)
      assert.equal("rooms", ex.name)
      local ada = assert(connect(ex:url("/chat/lobby?name=ada")))
      assert.equal("ada joined lobby", (ada:receive(5)))
      local bob = assert(connect(ex:url("/chat/lobby?name=J%C3%BCrgen+B")))
      assert.equal("Jürgen B joined lobby", (bob:receive(5)))
      assert.equal("Jürgen B joined lobby", (ada:receive(5)))
      local cy = assert(connect(ex:url("/chat/games?name=cy")))
      assert.equal("cy joined games", (cy:receive(5)))
      assert(ada:send("hi all"))
      assert.equal("ada: hi all", (ada:receive(5)))
      assert.equal("ada: hi all", (bob:receive(5)))
      assert(cy:send("gg"))
      assert.equal("cy: gg", (cy:receive(5)))
      h.fails("timeout", bob:receive(0.2))            -- the lobby heard nothing of games
      assert(bob:close())
      assert.equal("Jürgen B left", (ada:receive(5)))
    end)

    it("refuses a client without ?name= with 400, and other paths with 404", function()
      local ex = common.start(script)
      h.fails_with("handshake", "400", connect(ex:url("/chat/lobby")))
      h.fails_with("handshake", "404", connect(ex:url("/chat/")))
      h.fails_with("handshake", "404", connect(ex:url("/Chat/lobby?name=x")))
      ex:wait_output("refused GET /chat/lobby from 127%.0%.0%.1: 400 Bad Request", "the refusal's log line")
    end)

    ;(proc.have_python() and it or pending)("answers GET /health over plain HTTP, keeping the connection", function()
      local ex = common.start(script)
      local ws = assert(connect(ex:url("/chat/lobby?name=ada")))
      assert(ws:receive(5))
      local r = proc.raw(ex.port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        .. "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      local list = proc.parse_responses(r.response)
      assert.equal(2, #list)
      assert.equal(200, list[1].status)
      assert.equal("ok, 1 connected\n", list[1].body)
      assert.equal("ok, 1 connected\n", list[2].body)
    end)
  end)

  describe("05_origins.lua", function()
    it("lets https://client.com and scripts in, answers 403 to other pages before the hook", function()
      local ex = common.start("examples/tutorial/05_origins.lua")
      assert.equal("origins", ex.name)
      echoes(assert(connect(ex:url("/ws"), { origin = "https://client.com" })))
      ex:wait_output("^upgrade from https://client%.com$", "the hook's log")
      echoes(assert(connect(ex:url("/ws"))))
      ex:wait_output("^upgrade from no origin$", "the hook's log")
      h.fails_with("handshake", "403 Forbidden", connect(ex:url("/ws"), { origin = "https://evil.example" }))
      h.fails_with("handshake", "403 Forbidden", connect(ex:url("/ws"), { origin = "http://client.com" }))
      assert.is_nil(ex:output():find("upgrade from https://evil", 1, true), "the hook never saw the refused origin")
    end)
  end)

  -- Certificates for 07_tls.lua, made with the openssl command: a CA that
  -- signs a.example, *.b.example, the default (127.0.0.1) and a client's.
  local function tls_certs()
    local dir = os.tmpname()
    os.remove(dir)
    proc.check { "mkdir", "-p", dir }
    local EC = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    local function sh(cmd) proc.check({ "sh", "-c", cmd }, { timeout = 60, cwd = dir }) end
    sh("openssl req -x509 " .. EC .. " -days 2 -subj '/CN=tutorial CA' -addext basicConstraints=critical,CA:TRUE"
      .. " -keyout clients-ca-key.pem -out clients-ca.pem 2>/dev/null")
    local serial = 10
    local function leaf(name, cn, san)
      serial = serial + 1
      sh(("openssl req %s -subj '/CN=%s' -keyout %s-key.pem -out %s.csr 2>/dev/null && printf 'subjectAltName=%s\n' > %s.ext"
        .. " && openssl x509 -req -in %s.csr -CA clients-ca.pem -CAkey clients-ca-key.pem -set_serial %d -days 2"
        .. " -extfile %s.ext -out %s.pem 2>/dev/null"):format(EC, cn, name, name, san, name, name, serial, name, name))
    end
    leaf("a", "a.example", "DNS:a.example")
    leaf("wild", "b.example", "DNS:*.b.example")
    leaf("default", "127.0.0.1", "IP:127.0.0.1")
    leaf("next", "127.0.0.1", "IP:127.0.0.1")
    leaf("alice", "alice", "email:alice@example.test")
    return dir
  end

  ;(select(2, proc.run({ "openssl", "version" }, { timeout = 20 })) == 0 and describe or pending)("07_tls.lua", function()
    local script, dir = "examples/tutorial/07_tls.lua", nil
    setup(function() dir = tls_certs() end)
    teardown(function() if dir then proc.run { "rm", "-rf", dir } end end)

    local function start()
      local ex = common.spawn(script, { "--port", "0", "--host", "127.0.0.1", "--certs", dir })
      ex.port = tonumber(ex:wait_output("^luaws tls listening on https://127%.0%.0%.1:(%d+)/$", "the listening line", 20))
      return ex
    end
    local function peer(ex, name)   -- the subject of the certificate sent for SNI name
      local out = proc.run({ "openssl", "s_client", "-connect", "127.0.0.1:" .. ex.port, "-servername", name, "-brief" },
        { timeout = 30, unset = { "LD_PRELOAD" } })
      return out:match("Peer certificate: ([^\n]*)")
    end

    it("greets a client by its certificate's subject, and one without as a stranger", function()
      local ex = start()
      local url = ("wss://127.0.0.1:%d/ws"):format(ex.port)
      local ws = assert(connect(url, { tls = { ca = dir .. "/clients-ca.pem",
        certificate = dir .. "/alice.pem", key = dir .. "/alice-key.pem" } }))
      assert.truthy((ws:receive(10)):match("^hello CN=alice over TLSv1%.[23]$"))
      echoes(ws)
      ws = assert(connect(url, { tls = { ca = dir .. "/clients-ca.pem" } }))
      assert.truthy((ws:receive(10)):match("^hello stranger over TLSv1%.[23]$"))
    end)

    it("sends the certificate of the name asked for, the default for others", function()
      local ex = start()
      assert.equal("CN = a.example", peer(ex, "a.example"))
      assert.equal("CN = b.example", peer(ex, "x.b.example"))
      assert.equal("CN = 127.0.0.1", peer(ex, "other.example"))
    end)

    it("reads the files again on SIGHUP; open connections keep theirs", function()
      proc.check { "cp", dir .. "/default.pem", dir .. "/default-was.pem" }
      proc.check { "cp", dir .. "/default-key.pem", dir .. "/default-was-key.pem" }
      local ex = start()
      local url = ("wss://127.0.0.1:%d/ws"):format(ex.port)
      local old = assert(connect(url, { tls = { ca = dir .. "/clients-ca.pem" } }))
      assert(old:receive(10))
      assert.equal("0D", old.tls.serial)
      proc.check { "cp", dir .. "/next.pem", dir .. "/default.pem" }
      proc.check { "cp", dir .. "/next-key.pem", dir .. "/default-key.pem" }
      assert(ex:signal("HUP"))
      ex:wait_output("SIGHUP: tls certificates reloaded for 127%.0%.0%.1:%d+", "the reload's log line", 20)
      local new = assert(connect(url, { tls = { ca = dir .. "/clients-ca.pem" } }))
      assert(new:receive(10))
      assert.equal("0E", new.tls.serial)
      echoes(old)
      assert.equal("0D", old.tls.serial)
      proc.check { "cp", dir .. "/default-was.pem", dir .. "/default.pem" }
      proc.check { "cp", dir .. "/default-was-key.pem", dir .. "/default-key.pem" }
    end)
  end)
end)
