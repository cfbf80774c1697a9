-- SPDX-License-Identifier: MIT
-- What a request carries into the upgrade hook and the connection: req.data
-- (always a table, becomes ws.data), req.args / ws.args (the query parsed
-- and percent-decoded), req.cookies / ws.cookies (RFC 6265), with the raw
-- strings (req.query, req.headers.cookie) still there; the same for HTTP
-- handlers. Over loopback, with luaws's client and python3-websockets.
local h = require "helper"
local proc = require "support.proc"
local luaws = h.luaws

local has_websockets = proc.have_python("websockets")

describe("request fields", function()
  local server, seen, opened
  before_each(function()
    h.errors = {}
    seen, opened = {}, {}
    server = h.server { log_refusals = false }
  end)
  after_each(function()
    h.cleanup()
    proc.cleanup()
  end)

  local function route(path, handlers)
    local open = handlers.open
    handlers.open = function(ws)
      opened[#opened + 1] = ws
      if open then open(ws) end
    end
    server:route(path, handlers)
    return server:url(path)
  end

  local function connect(url, opts)
    local ws = assert(luaws.connect(url, opts))
    h.pump(function() return #opened > 0 end, "the server's open handler")
    return ws, opened[#opened]
  end

  describe("req.data", function()
    it("is a table in the upgrade hook: req.data.x = 1 works and becomes ws.data", function()
      local url = route("/ws", {
        upgrade = function(req)
          seen.type = type(req.data)
          req.data.user = "alice"
          req.data.n = 1
        end,
      })
      local ws, sws = connect(url)
      assert.equal("table", seen.type)
      assert.same({ user = "alice", n = 1 }, sws.data)
      assert.equal(0, #h.errors)
      ws:close()
    end)

    it("is an empty table on a connection whose hook stored nothing, and one per connection", function()
      local url = route("/ws", { upgrade = function() end })
      local a, sa = connect(url)
      local b = assert(luaws.connect(url))
      h.pump(function() return #opened == 2 end, "the second open")
      local sb = opened[2]
      assert.same({}, sa.data)
      sa.data.mine = true
      assert.is_nil(sb.data.mine)
      a:close()
      b:close()
    end)

    it("may still be replaced by a table of the hook's own", function()
      local mine = { role = "admin" }
      local url = route("/ws", { upgrade = function(req) req.data = mine end })
      local ws, sws = connect(url)
      assert.equal(mine, sws.data)
      ws:close()
    end)
  end)

  describe("req.args and ws.args", function()
    it("parse and percent-decode the query, '+' as a space, repeats as a list, bare names true", function()
      local url = route("/ws", {
        upgrade = function(req)
          seen.args, seen.query = req.args, req.query
        end,
      })
      local q = "name=bob&a=1&a=2&e=%20x&flag&sp=a+b&enc%5Bk%5D=%E2%82%AC&empty="
      local ws, sws = connect(url .. "?" .. q)
      local want = { name = "bob", a = { "1", "2" }, e = " x", flag = true, sp = "a b", ["enc[k]"] = "€", empty = "" }
      assert.same(want, seen.args)
      assert.equal(q, seen.query)                -- the raw string stays
      assert.same(want, sws.args)                -- and the connection has them too
      assert.equal(q, sws.query)
      ws:close()
    end)

    it("are an empty table without a query", function()
      local url = route("/ws", { upgrade = function(req) seen.args = req.args end })
      local ws, sws = connect(url)
      assert.same({}, seen.args)
      assert.same({}, sws.args)
      assert.is_nil(sws.query)
      ws:close()
    end)

    it("reach a connection whose route has no upgrade hook", function()
      local url = route("/ws", {})
      local ws, sws = connect(url .. "?room=7&x=%41")
      assert.same({ room = "7", x = "A" }, sws.args)
      ws:close()
    end)

    ;(has_websockets and it or pending)("are parsed for python3-websockets too", function()
      local url = route("/ws", { open = function(ws) ws:send(ws.args.name .. "|" .. ws.args.t) end })
      local out, status = proc.run({ proc.PYTHON, "-c", [[
import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1]) as ws:
        print(await ws.recv())
asyncio.run(main())
]], url .. "?name=J%C3%BCrgen&t=a+b" }, { timeout = 30, unset = { "LD_PRELOAD" } })
      assert.equal(0, status, out)
      assert.equal("Jürgen|a b\n", out)
    end)
  end)

  describe("req.cookies and ws.cookies", function()
    it("parse the Cookie header per RFC 6265, quotes removed, the raw header kept", function()
      local url = route("/ws", { upgrade = function(req) seen.cookies, seen.raw = req.cookies, req.headers.cookie end })
      local header = 'sid=abc123; theme="dark"; lang=en-GB; lang=fr; noval; =anon; sp = a b '
      local ws, sws = connect(url, { headers = { Cookie = header } })
      local want = { sid = "abc123", theme = "dark", lang = "en-GB", sp = "a b" }
      assert.same(want, seen.cookies)
      assert.equal(header:match("^(.-)%s*$"), seen.raw)
      assert.same(want, sws.cookies)
      assert.equal(seen.raw, sws.headers.cookie)
      ws:close()
    end)

    it("are an empty table without a Cookie header", function()
      local url = route("/ws", {})
      local ws, sws = connect(url)
      assert.same({}, sws.cookies)
      ws:close()
    end)
  end)

  -- The core leaves the head's bytes in the request table and builds
  -- req.headers on first use: the same table, however late it is asked for.
  describe("req.headers", function()
    local KEY = "dGhlIHNhbXBsZSBub25jZQ=="
    local function upgrade_head(extra)
      return "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        .. "Sec-WebSocket-Key: " .. KEY .. "\r\nSec-WebSocket-Version: 13\r\n" .. extra .. "\r\n"
    end

    it("has lower-case names and repeats joined, in the hook and from a req kept past it", function()
      local url = route("/ws", { upgrade = function(req) seen.req = req end })
      local r = proc.raw(server.port, upgrade_head("X-Two: a\r\nx-two: b\r\nX-One:  v  \r\n"))
      assert.equal(101, (proc.parse_response(r.response)))
      h.pump(function() return #opened > 0 end, "the server's open handler")
      -- asked for only now, long after the request's hook returned
      local hd = seen.req.headers
      assert.equal("a, b", hd["x-two"])
      assert.equal("v", hd["x-one"])
      assert.equal(KEY, hd["sec-websocket-key"])
      assert.equal("x", hd.host)
      assert.is_nil(hd["X-One"])
      assert.equal(hd, seen.req.headers)   -- made once
      assert.equal("a, b", opened[1].headers["x-two"])
      assert.is_truthy(url)
    end)

    it("joins repeated Origin headers for the origin policy, which refuses the pair", function()
      server = h.server { log_refusals = false, allowed_origins = { "https://a.example" } }
      route("/ws", {})
      local one = proc.raw(server.port, upgrade_head("Origin: https://a.example\r\n"))
      assert.equal(101, (proc.parse_response(one.response)))
      local two = proc.raw(server.port, upgrade_head("Origin: https://a.example\r\nOrigin: https://b.example\r\n"))
      assert.equal(403, (proc.parse_response(two.response)))
    end)

    it("joins 59 repeated Origin headers (the head's limit) for the policy and the hook", function()
      local many, want = {}, {}
      for i = 1, 59 do
        many[i] = ("Origin: https://o%d.example\r\n"):format(i)
        want[i] = ("https://o%d.example"):format(i)
      end
      route("/ws", { upgrade = function(req) seen.origin = req.origin end })
      local r = proc.raw(server.port, upgrade_head(table.concat(many)))
      assert.equal(101, (proc.parse_response(r.response)))
      assert.equal(table.concat(want, ", "), seen.origin)
      server = h.server { log_refusals = false, allowed_origins = { "https://o1.example" } }
      route("/ws", {})
      local refused = proc.raw(server.port, upgrade_head(table.concat(many)))
      assert.equal(403, (proc.parse_response(refused.response)))
    end)

    it("is made only while an upgrade is answered: core.current_request raises outside", function()
      local ok, err = pcall(h.core.current_request)
      assert.is_false(ok)
      assert.matches("current_request: no upgrade request is being answered", err, 1, true)
    end)

    it("reaches a connection whose route has no upgrade hook, and HTTP handlers", function()
      local url = route("/ws", {})
      local ws, sws = connect(url, { headers = { ["X-Trace"] = "t1" } })
      assert.equal("t1", sws.headers["x-trace"])
      ws:close()
      server:get("/h", function(req) seen.h = req.headers["x-trace"]; return 204 end)
      local r = proc.raw(server.port, "GET /h HTTP/1.1\r\nHost: x\r\nX-Trace: t2\r\nConnection: close\r\n\r\n")
      assert.equal(204, (proc.parse_response(r.response)))
      assert.equal("t2", seen.h)
    end)
  end)

  describe("in HTTP handlers", function()
    it("req.args, req.cookies, req.params, req.body and req.data are there", function()
      server:post("/items/:id", function(req)
        seen.req = { args = req.args, cookies = req.cookies, params = req.params, body = req.body,
          data = req.data, query = req.query, method = req.method, path = req.path }
        return 204
      end)
      local r = proc.raw(server.port, "POST /items/a%20b?x=1&x=2&y=%3D HTTP/1.1\r\nHost: x\r\n"
        .. "Cookie: k=v; q=\"w\"\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody")
      assert.equal(204, (proc.parse_response(r.response)))
      assert.same({
        args = { x = { "1", "2" }, y = "=" }, cookies = { k = "v", q = "w" }, params = { id = "a b" },
        body = "body", data = {}, query = "x=1&x=2&y=%3D", method = "POST", path = "/items/a%20b",
      }, seen.req)
    end)
  end)
end)
