-- SPDX-License-Identifier: MIT
-- Route patterns (luaws.routes), for WebSocket routes and HTTP handlers
-- alike: ":name" segments and a trailing "*", parameters percent-decoded in
-- req.params / ws.params, exact routes before patterns, then the longest
-- literal prefix, case-sensitive, and patterns that can never match refused
-- at route(). The matcher alone, then over loopback with luaws's client,
-- python3-websockets and raw HTTP.
local h = require "helper"
local proc = require "support.proc"
local routes = require "luaws.routes"
local luaws = h.luaws

local has_websockets = proc.have_python("websockets")

describe("luaws.routes", function()
  local r
  before_each(function() r = routes.new() end)

  it("matches exact paths, ':name' segments and a trailing '*'", function()
    r:add("/ws", "exact")
    r:add("/chat/:room", "room")
    r:add("/chat/:room/log/:day", "log")
    r:add("/files/*", "files")
    assert.same({ "exact", {} }, { r:match("/ws") })
    assert.same({ "room", { room = "lobby" } }, { r:match("/chat/lobby") })
    assert.same({ "log", { room = "a", day = "2024-01-02" } }, { r:match("/chat/a/log/2024-01-02") })
    assert.same({ "files", { ["*"] = "a/b/c.txt" } }, { r:match("/files/a/b/c.txt") })
    assert.same({ "files", { ["*"] = "" } }, { r:match("/files/") })
    for _, miss in ipairs { "/files", "/chat", "/chat/", "/chat/a/b", "/ws/", "/chat/a/log/" } do
      assert.is_nil(r:match(miss), miss)
    end
  end)

  it("percent-decodes parameters after matching (so %2F stays in its segment)", function()
    r:add("/u/:name", "u")
    r:add("/f/*", "f")
    assert.same({ "u", { name = "a/b c" } }, { r:match("/u/a%2Fb%20c") })
    assert.same({ "f", { ["*"] = "x y/z" } }, { r:match("/f/x%20y/z") })
    assert.same({ "u", { name = "100%" } }, { r:match("/u/100%") })   -- a bad escape stays
  end)

  it("prefers an exact route, then the longest literal prefix, then no '*', then the first added", function()
    r:add("/a/*", "star")
    r:add("/a/:x", "param")
    r:add("/a/b/:y", "longer")
    r:add("/a/b/c", "exact")
    r:add("/:any/b/c", "short")
    assert.equal("exact", (r:match("/a/b/c")))
    assert.equal("longer", (r:match("/a/b/d")))
    assert.equal("param", (r:match("/a/z")))
    assert.equal("star", (r:match("/a/z/q")))
    assert.equal("short", (r:match("/q/b/c")))
    r:add("/t/:one", "first")
    r:add("/t/:two", "second")
    assert.equal("first", (r:match("/t/x")))
  end)

  it("is case-sensitive", function()
    r:add("/Chat/:room", "upper")
    r:add("/exact", "exact")
    assert.equal("upper", (r:match("/Chat/x")))
    assert.is_nil(r:match("/chat/x"))
    assert.is_nil(r:match("/EXACT"))
  end)

  it("takes the pattern's magic characters literally", function()
    r:add("/a.b/:x", "dot")
    r:add("/p%q/(x)/:y", "magic")
    assert.equal("dot", (r:match("/a.b/1")))
    assert.is_nil(r:match("/aXb/1"))
    assert.equal("magic", (r:match("/p%q/(x)/1")))
  end)

  it("replaces a route added twice", function()
    r:add("/x/:id", 1)
    r:add("/x/:id", 2)
    assert.equal(2, (r:match("/x/7")))
    assert.equal(1, #r.patterns)
  end)
end)

describe("route patterns on a server", function()
  local server, url
  before_each(function()
    h.errors = {}
    server = h.server { log_refusals = false }
  end)
  after_each(function()
    h.cleanup()
    proc.cleanup()
  end)

  for _, case in ipairs {
    { "/a/:", "':' without a name" },
    { "/a/*/b", "'*' only as the last segment" },
    { "/a/:x/:x", "':x' twice" },
    { "chat/:room", "path starting with /" },
    { "/a/b*", "'*' only as a whole last segment" },
    { "/a/:na-me", "bad parameter name" },
  } do
    it(("refuses %q at route(), naming it"):format(case[1]), function()
      local ok, err = pcall(function() server:route(case[1], {}) end)
      assert.is_false(ok)
      assert.matches("route", err, 1, true)
      assert.matches(case[2], err, 1, true)
      assert.matches("routes_spec.lua", err, 1, true)   -- raised at the caller's line
      ok, err = pcall(function() server:get(case[1], function() end) end)
      assert.is_false(ok)
      assert.matches("'?get'?[:%s(]", err)
      assert.matches("routes_spec.lua", err, 1, true)
    end)
  end

  it("hands a WebSocket route's parameters to the hook (req.params) and the connection (ws.params)", function()
    local in_hook
    server:route("/chat/:room", {
      upgrade = function(req) in_hook = req.params.room end,
      open = function(ws) ws:send(ws.params.room) end,
    })
    local ws = assert(luaws.connect(server:url("/chat/caf%C3%A9")))
    assert.same({ "café", "text" }, { ws:receive(5) })
    assert.equal("café", in_hook)
    ws:close()
  end)

  it("gives an exact route's connection empty params", function()
    server:route("/ws", { open = function(ws) ws:send(tostring(next(ws.params))) end })
    local ws = assert(luaws.connect(server:url("/ws")))
    assert.same({ "nil", "text" }, { ws:receive(5) })
    ws:close()
  end)

  it("routes WebSocket upgrades: exact first, then the longest prefix; others get 404", function()
    local function named(name)
      return { open = function(ws) ws:send(name .. ":" .. (ws.params["*"] or ws.params.room or "")) end }
    end
    server:route("/chat/lobby", named("exact"))
    server:route("/chat/:room", named("room"))
    server:route("/chat/*", named("star"))
    server:route("/*", named("all"))
    for path, want in pairs {
      ["/chat/lobby"] = "exact:", ["/chat/games"] = "room:games", ["/chat/a/b"] = "star:a/b", ["/x"] = "all:x",
    } do
      local ws = assert(luaws.connect(server:url(path)))
      assert.equal(want, (ws:receive(5)), path)
      ws:close()
    end
    local only = h.server { log_refusals = false }
    only:route("/chat/:room", named("room"))
    h.fails_with("handshake", "404", luaws.connect(only:url("/Chat/x")))   -- case-sensitive
    h.fails_with("handshake", "404", luaws.connect(only:url("/chat/")))
  end)

  it("lets broadcast name a pattern route", function()
    server:route("/room/:id", { open = function() end })
    local a = assert(luaws.connect(server:url("/room/1")))
    local b = assert(luaws.connect(server:url("/room/2")))
    h.pump(function() return server:stats().connections == 2 end, "both connections")
    assert.equal(2, server:broadcast("hi", "text", { route = "/room/:id" }))
    assert.equal("hi", (a:receive(5)))
    assert.equal("hi", (b:receive(5)))
    a:close()
    b:close()
  end)

  ;(has_websockets and it or pending)("serves python3-websockets on a pattern route", function()
    server:route("/echo/:tag", { message = function(ws, msg) ws:send(ws.params.tag .. ":" .. msg) end })
    url = server:url("/echo/p%20y")
    local out, status = proc.run({ proc.PYTHON, "-c", [[
import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1]) as ws:
        await ws.send("hello")
        print(await ws.recv())
asyncio.run(main())
]], url }, { timeout = 30, unset = { "LD_PRELOAD" } })
    assert.equal(0, status, out)
    assert.equal("p y:hello\n", out)
  end)

  ;(proc.have_python() and it or pending)("uses the same matcher for HTTP handlers", function()
    server:get("/users/:id", function(req) return 200, "user " .. req.params.id end)
    server:get("/users/me", function() return 200, "me" end)
    server:get("/static/*", function(req) return 200, "file " .. req.params["*"] end)
    server:route("/users/:id/live", { open = function() end })
    local reqs = {}
    for _, p in ipairs { "/users/42", "/users/me", "/static/css/a.css", "/Users/42", "/users/42/live" } do
      reqs[#reqs + 1] = "GET " .. p .. " HTTP/1.1\r\nHost: x\r\n\r\n"
    end
    reqs[#reqs + 1] = "GET /users/x%20y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    local r = proc.raw(server.port, table.concat(reqs))
    local list = proc.parse_responses(r.response)
    local got = {}
    for i, resp in ipairs(list) do got[i] = resp.status .. " " .. resp.body:gsub("\n$", "") end
    assert.same({ "200 user 42", "200 me", "200 file css/a.css", "404 404 Not Found",
      "400 400 Bad Request: this path speaks WebSocket only", "200 user x y" }, got)
  end)
end)
