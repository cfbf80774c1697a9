-- SPDX-License-Identifier: MIT
-- Plain HTTP on the WebSocket port (server:get/post/http): handlers and
-- their answers, request bodies (Content-Length, chunked), keep-alive,
-- pipelining, HEAD, 405, streamed bodies, errors in handlers, and what the
-- C core answers to hostile input. Over loopback, with raw TCP peers
-- (spec/support/rawtcp.py, rawsteps.py), Python's http.client and urllib,
-- and node's http where it fits.
local h = require "helper"
local proc = require "support.proc"
local luaws = h.luaws

local has_python = proc.have_python()
local it_py = has_python and it or pending
local _, node_status = proc.run({ "node", "--version" }, { timeout = 20 })
local it_node = node_status == 0 and it or pending

local function get(path, extra)
  return "GET " .. path .. " HTTP/1.1\r\nHost: 127.0.0.1\r\n" .. (extra or "") .. "\r\n"
end

local function post(path, body, extra)
  return "POST " .. path .. " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " .. #body .. "\r\n"
    .. (extra or "") .. "\r\n" .. body
end

-- Run a Python script (argv[1] is the port) to completion; its output.
local function python(port, script)
  local out, status, why = proc.run({ proc.PYTHON, "-c", script, tostring(port) },
    { timeout = 30, unset = { "LD_PRELOAD" } })
  assert(status == 0, (why or ("exit " .. tostring(status))) .. ":\n" .. out)
  return out
end

describe("plain HTTP", function()
  local server, port
  before_each(function()
    h.errors = {}
    server = h.server { handshake_timeout = 2, max_body_size = 1024, log_refusals = false }
    port = server.port
    server:get("/hello", function(req)
      return 200, "hello " .. (req.args.name or "you") .. "\n", { ["X-Served-By"] = "luaws" }
    end)
    server:post("/echo", function(req) return 200, req.body, { ["Content-Type"] = "application/octet-stream" } end)
    server:http("PUT", "/echo", function(req) return 201, "put " .. #req.body .. "\n" end)
    server:get("/n/:n", function(req) return 200, "n=" .. req.params.n .. "\n" end)
    server:get("/big", function() return 200, ("0123456789abcdef"):rep(8 * 1024) end)   -- 128 KiB
    server:get("/stream", function(req)
      local i, n = 0, tonumber(req.args.n) or 3
      return 200, function()
        i = i + 1
        if i <= n then return ("piece %d\n"):format(i) end
      end
    end)
    server:get("/boom", function() error("the handler exploded") end)
    server:get("/nocontent", function() return 204 end)
    server:route("/ws", { message = function(ws, msg, kind) ws:send(msg, kind) end })
  end)
  after_each(function()
    h.cleanup()
    proc.cleanup()
  end)

  describe("handlers", function()
    it_py("answer GET with the status, body and headers they return (Python's urllib)", function()
      local out = python(port, [[
import sys, urllib.request
r = urllib.request.urlopen("http://127.0.0.1:%s/hello?name=ada%%20b" % sys.argv[1], timeout=10)
print(r.status, r.headers["X-Served-By"], r.headers["Content-Type"], repr(r.read().decode()))
]])
      assert.equal("200 luaws text/plain; charset=utf-8 'hello ada b\\n'\n", out)
    end)

    it_py("get the request body of a POST and the path's parameters", function()
      local r = proc.raw(port, post("/echo", "some \0 bytes", "Connection: close\r\n"))
      local st, headers, body = proc.parse_response(r.response)
      assert.equal(200, st)
      assert.equal("some \0 bytes", body)
      assert.equal("application/octet-stream", headers["content-type"])
      r = proc.raw(port, get("/n/a%2Fb", "Connection: close\r\n"))
      assert.equal("n=a/b\n", select(3, proc.parse_response(r.response)))
    end)

    it_py("answer HEAD from the GET handler: the GET's Content-Length, no body", function()
      local r = proc.raw(port, "HEAD /big HTTP/1.1\r\nHost: x\r\n\r\n" .. get("/hello", "Connection: close\r\n"))
      assert.equal("eof", r.how)
      local head, rest = r.response:match("^(.-\r\n\r\n)(.*)$")
      local st, headers = proc.parse_response(head)
      assert.equal(200, st)
      assert.equal(tostring(128 * 1024), headers["content-length"])
      -- no body came: the next bytes are the second answer, whole
      assert.equal("hello you\n", select(3, proc.parse_response(rest)))
    end)

    it_py("answer 405 with Allow to another method on a path that has handlers", function()
      local r = proc.raw(port, "DELETE /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      local st, headers = proc.parse_response(r.response)
      assert.equal(405, st)
      assert.equal("POST, PUT", headers["allow"])
      r = proc.raw(port, post("/hello", "", "Connection: close\r\n"))
      st, headers = proc.parse_response(r.response)
      assert.equal(405, st)
      assert.equal("GET, HEAD", headers["allow"])
    end)

    it_py("send no Content-Length and no body with a 204", function()
      local r = proc.raw(port, get("/nocontent", "Connection: close\r\n"))
      assert.equal("HTTP/1.1 204 No Content\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
        r.response)
    end)

    it_py("answer 500 to an error raised in a handler, log its traceback, and serve the next", function()
      local r = proc.raw(port, get("/boom") .. get("/hello", "Connection: close\r\n"))
      local list = proc.parse_responses(r.response)
      assert.equal(500, list[1].status)
      assert.equal(200, list[2].status)
      local log = table.concat(h.errors, "\n")
      assert.matches("error in http handler GET /boom", log, 1, true)
      assert.matches("the handler exploded", log, 1, true)
      assert.matches("stack traceback", log, 1, true)
    end)

    it("raise at registration on a bad method, path or handler, naming the function", function()
      assert.has_error(function() server:get("/x") end, "bad argument #2 to 'get' (function expected, got nil)")
      assert.has_error(function() server:post("x", print) end)
      assert.has_error(function() server:http("G ET", "/x", print) end,
        "bad argument #1 to 'http' (method name expected, got string)")
      assert.has_error(function() server:get("/a/:", print) end)
    end)
  end)

  describe("keep-alive and pipelining", function()
    it_py("serves several requests on one connection (Python's http.client)", function()
      local out = python(port, [[
import sys, http.client
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
for path in ("/hello?name=1", "/n/2", "/hello?name=3"):
    c.request("GET", path)
    r = c.getresponse()
    print(r.status, r.read().decode().strip())
c.request("POST", "/echo", body=b"x" * 1000)
r = c.getresponse()
print(r.status, len(r.read()))
c.request("GET", "/stream?n=4")
r = c.getresponse()
print(r.status, r.headers["Transfer-Encoding"], r.read().decode().count("piece"))
c.close()
]])
      assert.equal("200 hello 1\n200 n=2\n200 hello 3\n200 1000\n200 chunked 4\n", out)
      assert.equal(1, server:stats().accepted)   -- one TCP connection for all five
    end)

    it_node("serves node's http client with a keep-alive agent on one socket", function()
      local out, status = proc.run({ "node", "-e", [[
const http = require("http");
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const port = process.argv[1];
let sockets = new Set(), got = [];
function one(i) {
  return new Promise((ok, fail) => {
    http.get({ host: "127.0.0.1", port, path: "/n/" + i, agent }, (res) => {
      sockets.add(res.socket);
      let b = ""; res.on("data", (d) => b += d); res.on("end", () => { got.push(b.trim()); ok(); });
    }).on("error", fail);
  });
}
(async () => { for (let i = 1; i <= 3; i++) await one(i); console.log(got.join(",") + " sockets=" + sockets.size); agent.destroy(); })()
  .catch((e) => { console.log("error " + e.message); process.exit(1); });
]], tostring(port) }, { timeout = 30, unset = { "LD_PRELOAD" } })
      assert.equal(0, status, out)
      assert.equal("n=1,n=2,n=3 sockets=1\n", out)
      assert.equal(1, server:stats().accepted)
    end)

    it_py("answers requests pipelined in one write in order, with bodies between them", function()
      local r = proc.raw(port, get("/n/1") .. post("/echo", "two") .. get("/n/3")
        .. "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nfour\r\n0\r\n\r\n"
        .. get("/n/5", "Connection: close\r\n"))
      assert.equal("eof", r.how)
      local list = proc.parse_responses(r.response)
      local bodies = {}
      for i, resp in ipairs(list) do bodies[i] = resp.body end
      assert.same({ "n=1\n", "two", "n=3\n", "four", "n=5\n" }, bodies)
      assert.equal("close", list[5].headers["connection"])
    end)

    it_py("answers nothing after a request with Connection: close", function()
      local r = proc.raw(port, get("/n/1", "Connection: close\r\n") .. get("/n/2") .. get("/n/3"))
      assert.equal("eof", r.how)
      local list = proc.parse_responses(r.response)
      assert.equal(1, #list)
      assert.equal("n=1\n", list[1].body)
    end)

    it_py("closes after an HTTP/1.0 request without keep-alive, keeps one with it", function()
      local r = proc.raw(port, "GET /n/1 HTTP/1.0\r\n\r\nGET /n/2 HTTP/1.0\r\n\r\n")
      assert.equal("eof", r.how)
      assert.equal(1, #proc.parse_responses(r.response))
      r = proc.raw(port, "GET /n/1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /n/2 HTTP/1.0\r\n\r\n")
      assert.equal("eof", r.how)
      local list = proc.parse_responses(r.response)
      assert.equal(2, #list)
      assert.equal("keep-alive", list[1].headers["connection"])
      assert.equal("close", list[2].headers["connection"])
    end)

    it_py("streams a body to HTTP/1.0 delimited by the close", function()
      local r = proc.raw(port, "GET /stream?n=2 HTTP/1.0\r\n\r\n")
      assert.equal("eof", r.how)
      local st, headers, body = proc.parse_response(r.response)
      assert.equal(200, st)
      assert.is_nil(headers["transfer-encoding"])
      assert.equal("piece 1\npiece 2\n", body)
    end)

    it_py("answers 50 pipelined requests for 128 KiB each, in order, to a client that reads", function()
      local reqs = {}
      for i = 1, 50 do reqs[i] = get(i % 2 == 0 and "/big" or "/n/" .. i) end
      reqs[#reqs + 1] = get("/n/end", "Connection: close\r\n")
      local r = proc.raw(port, table.concat(reqs), { timeout = 20 })
      assert.equal("eof", r.how)
      local list = proc.parse_responses(r.response)
      assert.equal(51, #list)
      for i = 1, 50 do
        if i % 2 == 0 then assert.equal(128 * 1024, #list[i].body) else assert.equal("n=" .. i .. "\n", list[i].body) end
      end
      assert.equal("n=end\n", list[51].body)
    end)

    it_py("streams a 2 MiB body in pieces to a client that reads, whole and in order", function()
      local piece = ("x"):rep(16 * 1024 - 1) .. "\n"
      server:get("/long", function()
        local i = 0
        return 200, function()
          i = i + 1
          if i <= 128 then return piece end
        end
      end)
      local out = python(port, [[
import sys, http.client, hashlib
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=20)
c.request("GET", "/long")
r = c.getresponse()
b = r.read()
c.request("GET", "/n/after")
r2 = c.getresponse()
print(r.status, len(b), b.count(b"\n"), r2.read().decode().strip())
]])
      assert.equal("200 2097152 128 n=after\n", out)
    end)

    it_py("drops a keep-alive connection idle for handshake_timeout", function()
      local r = proc.raw(port, get("/n/1"), { timeout = 8 })
      assert.equal("eof", r.how)
      assert.is_true(r.elapsed >= 2, ("closed after %.3f s"):format(r.elapsed))
      assert.equal("n=1\n", proc.parse_responses(r.response)[1].body)
    end)

    it_py("sends 100 Continue to a client that asks before its body", function()
      local r = proc.raw_steps(port, {
        { "send", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n" },
        { "sleep", 0.3 },
        { "send", "hello" },
      })
      assert.equal("eof", r.how)
      local list = proc.parse_responses(r.response)
      assert.equal(100, list[1].status)
      assert.equal(200, list[2].status)
      assert.equal("hello", list[2].body)
    end)

    it_py("reads a chunked body whose pieces arrive in many writes", function()
      local r = proc.raw_steps(port, {
        { "send", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" },
        { "sleep", 0.05 }, { "send", "3\r" }, { "sleep", 0.05 }, { "send", "\nab" }, { "sleep", 0.05 },
        { "send", "c\r\na;name=value" }, { "sleep", 0.05 }, { "send", "\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n" },
        { "sleep", 0.05 }, { "send", "\r\n" },
      })
      assert.equal("eof", r.how)
      local st, _, body = proc.parse_response(r.response)
      assert.equal(200, st)
      assert.equal("abc0123456789", body)
    end)
  end)

  describe("over TLS", function()
    local have_openssl = select(2, proc.run({ "openssl", "version" }, { timeout = 20 })) == 0
    ;((have_openssl and has_python) and it or pending)("keeps an https:// connection for several requests, one streamed", function()
      local dir = os.tmpname()
      os.remove(dir)
      proc.check { "mkdir", "-p", dir }
      proc.check({ "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
        "-keyout", dir .. "/key.pem", "-out", dir .. "/cert.pem" }, { timeout = 60 })
      local s = h.server { tls = { certificate = dir .. "/cert.pem", key = dir .. "/key.pem" } }
      s:get("/n/:n", function(req) return 200, "n=" .. req.params.n end)
      s:get("/long", function()
        local i = 0
        return 200, function()
          i = i + 1
          if i <= 64 then return ("z"):rep(16 * 1024) end
        end
      end)
      local out = python(s.port, [[
import sys, http.client, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
c = http.client.HTTPSConnection("127.0.0.1", int(sys.argv[1]), context=ctx, timeout=10)
for p in ("/n/1", "/long", "/n/2"):
    c.request("GET", p); r = c.getresponse(); print(r.status, len(r.read()))
]])
      proc.check { "rm", "-rf", dir }
      assert.equal("200 3\n200 1048576\n200 3\n", out)
      assert.equal(1, s:stats().accepted)
    end)
  end)

  describe("beside WebSocket routes and static files", function()
    it_py("still answers 400 to a plain GET of a WebSocket route, and upgrades it", function()
      local r = proc.raw(port, get("/ws", "Connection: close\r\n"))
      assert.equal(400, (proc.parse_response(r.response)))
      local ws = assert(luaws.connect(server:url("/ws")))
      assert(ws:send("hi"))
      assert.same({ "hi", "text" }, { ws:receive(5) })
      ws:close()
    end)

    it_py("upgrades a connection after plain requests on it (a browser's keep-alive)", function()
      local r = proc.raw(port, get("/n/1") .. "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        .. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", { timeout = 3 })
      local list = proc.parse_responses(r.response)
      assert.equal(200, list[1].status)
      assert.equal(101, list[2].status)
      assert.equal("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", list[2].headers["sec-websocket-accept"])
    end)

    it_py("serves static files where no handler matches, keeping the connection", function()
      local root = os.tmpname()
      os.remove(root)
      proc.check { "mkdir", "-p", root }
      local f = assert(io.open(root .. "/page.html", "wb"))
      f:write("<p>static</p>")
      f:close()
      local s = h.server { static = root, log_refusals = false }
      s:get("/api", function() return 200, "api" end)
      local r = proc.raw(s.port, get("/page.html") .. get("/api") .. get("/missing", "Connection: close\r\n"))
      proc.check { "rm", "-rf", root }
      local list = proc.parse_responses(r.response)
      assert.same({ 200, 200, 404 }, { list[1].status, list[2].status, list[3].status })
      assert.same({ "<p>static</p>", "api" }, { list[1].body, list[2].body })
    end)
  end)

  describe("hostile input", function()
    -- Each case: what the peer sends, the status of the last answer, and
    -- whether the connection is then closed by the server.
    for _, case in ipairs {
      { "a body over max_body_size, said by Content-Length: 413",
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n" .. ("y"):rep(1025), 413 },
      { "a chunked body that grows over max_body_size: 413",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n" .. ("y"):rep(1024)
          .. "\r\n1\r\ny\r\n0\r\n\r\n", 413 },
      { "a chunk size past max_body_size, before its data: 413",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffff\r\n", 413 },
      { "Content-Length and Transfer-Encoding both (RFC 9112 §6.1): 400",
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400 },
      { "two Content-Lengths that differ: 400",
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400 },
      { "a Content-Length that is not a number: 400",
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5x\r\n\r\nhello", 400 },
      { "a bad chunk size: 400",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400 },
      { "chunk data without its CRLF: 400",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX0\r\n\r\n", 400 },
      { "a chunk size line with a bare LF: 400",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400 },
      { "a transfer coding other than chunked: 501",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501 },
      { "chunked not the last coding: 400",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400 },
      { "Transfer-Encoding in HTTP/1.0: 400",
        "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400 },
      { "a body longer than announced: its rest read as the next head, 400",
        post("/echo", "hello") .. "EXTRA BYTES\r\n\r\n", 400 },
      { "a malformed head after a good request: 400",
        get("/n/1") .. "GET /n/2 HTTP/1.1\r\nBad Header\r\n\r\n", 400 },
      { "a head over 8 KiB after a good request: 431",
        get("/n/1") .. "GET /n/2 HTTP/1.1\r\nX: " .. ("a"):rep(9000) .. "\r\n\r\n", 431 },
      { "an upgrade request with a body: 400",
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
          .. "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 3\r\n\r\nabc", 400 },
    } do
      local what, bytes, status = case[1], case[2], case[3]
      it_py(("answers %s, then closes"):format(what), function()
        local r = proc.raw(port, bytes, { timeout = 8 })
        assert.is_true(r.how == "eof" or r.how == "reset", "the server closed: " .. r.how)
        local list = proc.parse_responses(r.response)
        assert.is_true(#list >= 1, "an answer: " .. r.response)
        assert.equal(status, list[#list].status)
        assert.equal("close", list[#list].headers["connection"])
        for i = 1, #list - 1 do assert.equal(200, list[i].status) end
      end)
    end

    it_py("drops a slowloris body (a byte at a time) at handshake_timeout, unanswered", function()
      local steps = { { "send", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" } }
      for _ = 1, 60 do
        steps[#steps + 1] = { "sleep", 0.1 }
        steps[#steps + 1] = { "send", "z" }
      end
      local r = proc.raw_steps(port, steps, { timeout = 10 })
      assert.is_true(r.how == "eof" or r.how == "broken" or r.how == "reset", r.how)
      assert.equal("", r.response)
      assert.is_true(r.elapsed >= 2 and r.elapsed < 8, ("dropped after %.3f s"):format(r.elapsed))
    end)

    it_py("drops a chunked body that stalls, at handshake_timeout", function()
      local r = proc.raw(port, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc", { timeout = 8 })
      assert.equal("eof", r.how)
      assert.equal("", r.response)
      assert.is_true(r.elapsed >= 2, ("dropped after %.3f s"):format(r.elapsed))
    end)

    it_py("stops reading pipelined requests while a client does not read its answers, then answers them all", function()
      -- 100 requests for 128 KiB each in one write, and nothing read for a
      -- second: the server answers until its queue passes 64 KiB, then
      -- leaves the rest unread (in the socket, not in memory) until it drains.
      local reqs = {}
      for i = 1, 100 do reqs[i] = get(i == 100 and "/n/last" or "/big", i == 100 and "Connection: close\r\n" or nil) end
      local r = proc.raw_steps(port, { { "send", table.concat(reqs) }, { "hold", 1 } }, { timeout = 20 })
      assert.equal("eof", r.how)
      local list = proc.parse_responses(r.response)
      assert.equal(100, #list)
      for i = 1, 99 do assert.equal(128 * 1024, #list[i].body) end
      assert.equal("n=last\n", list[100].body)
    end)
  end)
end)
