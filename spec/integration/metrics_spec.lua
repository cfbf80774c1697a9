-- SPDX-License-Identifier: MIT
-- server:route_metrics / the metrics option: the page is scraped over HTTP
-- and read by a real Prometheus parser (Debian's python3-prometheus-client,
-- spec/support/scrape.py), and every counter says what the spec did:
-- connections, upgrades, refusals by status, messages and bytes both ways,
-- closes by code, the two histograms, PROXY errors, the send queue.
local h = require "helper"
local proc = require "support.proc"
local luaws = h.luaws
local cjson = require "cjson.safe"

local WAIT = 20
local have_parser = proc.have_python("prometheus_client")
local it_p = have_parser and it or pending

-- Scrape url; the parsed families by name.
local function scrape(url)
  local out, status = proc.run({ proc.PYTHON, "spec/support/scrape.py", url },
    { timeout = 60, merge = false, unset = { "LD_PRELOAD" } })
  assert(status == 0, "scrape.py failed: " .. tostring(out))
  local doc = assert(cjson.decode(out), out)
  return doc.families, doc.content_type
end

-- The value of the sample name{labels} in families (family fam).
local function value(families, fam, name, labels)
  local f = families[fam]
  assert(f, "no family " .. fam)
  for _, s in ipairs(f.samples) do
    if s[1] == name then
      local same = true
      for k, v in pairs(labels or {}) do
        if s[2][k] ~= v then same = false end
      end
      if same then return s[3] end
    end
  end
  error(("no sample %s%s in %s"):format(name, cjson.encode(labels or {}), fam))
end

describe("metrics", function()
  after_each(function()
    proc.cleanup()
    h.cleanup()
  end)

  it_p("counts what happened, in the Prometheus text format a real parser reads", function()
    local s = h.server { metrics = "/metrics" }
    s:route("/echo", { message = function(ws, msg, kind) ws:send(msg, kind) end })
    s:route("/locked", { upgrade = function() return false, 403 end })
    -- three connections, two messages each (5 and 1000 bytes), echoed
    local clients = {}
    for i = 1, 3 do
      local ws = assert(luaws.connect(s:url("/echo")))
      for _, m in ipairs { "hello", string.rep("x", 1000) } do
        assert(ws:send(m))
        assert.equal(m, ws:receive(WAIT))
      end
      clients[i] = ws
    end
    -- refused: a route that does not exist (404) and an upgrade hook (403)
    h.fails("handshake", luaws.connect(s:url("/nowhere")))
    h.fails("handshake", luaws.connect(s:url("/locked")))
    -- closes: 1000, 1000 and 4001
    clients[1]:close(1000)
    clients[2]:close(1000)
    clients[3]:close(4001, "bye")
    h.pump(function() return s:stats().connections == 0 end, "the closes", WAIT)
    h.pump(function()
      local c = s._c:metrics().closes
      return (c[1000] or 0) + (c[4001] or 0) == 3
    end, "the closes counted", WAIT)

    local f, ctype = scrape(("http://127.0.0.1:%d/metrics"):format(s.port))
    assert.equal("text/plain; version=0.0.4; charset=utf-8", ctype)
    assert.equal(0, value(f, "luaws_connections_open", "luaws_connections_open"))
    assert.equal("gauge", f.luaws_connections_open.type)
    -- 3 upgraded + 2 refused + the scrape itself
    assert.equal(6, value(f, "luaws_connections_accepted", "luaws_connections_accepted_total"))
    assert.equal("counter", f.luaws_connections_accepted.type)
    assert.equal(3, value(f, "luaws_upgrades", "luaws_upgrades_total"))
    assert.equal(1, value(f, "luaws_handshakes_rejected", "luaws_handshakes_rejected_total", { status = "404" }))
    assert.equal(1, value(f, "luaws_handshakes_rejected", "luaws_handshakes_rejected_total", { status = "403" }))
    assert.equal(0, value(f, "luaws_handshakes_rejected", "luaws_handshakes_rejected_total", { status = "other" }))
    assert.equal(6, value(f, "luaws_messages_received", "luaws_messages_received_total"))
    assert.equal(6, value(f, "luaws_messages_sent", "luaws_messages_sent_total"))
    assert.equal(3 * 1005, value(f, "luaws_bytes_received", "luaws_bytes_received_total"))
    assert.equal(3 * 1005, value(f, "luaws_bytes_sent", "luaws_bytes_sent_total"))
    assert.equal(2, value(f, "luaws_closes", "luaws_closes_total", { code = "1000" }))
    assert.equal(1, value(f, "luaws_closes", "luaws_closes_total", { code = "4001" }))
    assert.equal(0, value(f, "luaws_send_queue_bytes", "luaws_send_queue_bytes"))
    assert.equal(0, value(f, "luaws_tls_handshakes", "luaws_tls_handshakes_total", { result = "ok" }))
    assert.equal(0, value(f, "luaws_proxy_protocol_errors", "luaws_proxy_protocol_errors_total"))
    for _, hist in ipairs { "luaws_handshake_duration_seconds", "luaws_close_duration_seconds" } do
      assert.equal("histogram", f[hist].type)
      assert.equal(3, value(f, hist, hist .. "_count"))
      assert.equal(3, value(f, hist, hist .. "_bucket", { le = "+Inf" }))
      assert.is_true(value(f, hist, hist .. "_sum") >= 0)
      -- buckets are cumulative: never fewer below a larger bound
      local last = 0
      for _, sm in ipairs(f[hist].samples) do
        if sm[1] == hist .. "_bucket" then
          assert.is_true(sm[3] >= last)
          last = sm[3]
        end
      end
    end
    assert.is_nil(f.luaws_backplane_up)   -- no backplane, no backplane series
  end)

  it_p("server:route_metrics(path) serves the same page at a path of one's choosing; open connections and queued bytes show", function()
    local s = h.server {}
    s:route_metrics("/internal/metrics")
    s:route("/echo", { message = function(ws, msg) ws:send(msg) end })
    local a = assert(luaws.connect(s:url("/echo")))
    local b = assert(luaws.connect(s:url("/echo")))
    h.pump(function() return s:stats().connections == 2 end, "two open", WAIT)
    local f = scrape(("http://127.0.0.1:%d/internal/metrics"):format(s.port))
    assert.equal(2, value(f, "luaws_connections_open", "luaws_connections_open"))
    assert.equal(2, value(f, "luaws_upgrades", "luaws_upgrades_total"))
    a:close()
    b:close()
  end)

  it_p("counts bad PROXY headers", function()
    local s = h.server { metrics = "/metrics", proxy_protocol = true }
    proc.raw(s.port, "HELLO\r\n\r\n", { timeout = WAIT })
    -- the scrape itself must come with a PROXY header: fetch it raw
    local r = proc.raw(s.port, "PROXY TCP4 127.0.0.1 127.0.0.1 1 2\r\nGET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      { timeout = WAIT })
    local status, _, body = proc.parse_response(r.response)
    assert.equal(200, status)
    assert.truthy(body:match("\nluaws_proxy_protocol_errors_total 1\n"), body)
  end)

  ;((have_parser and proc.have_command("openssl")) and it or pending)(
    "counts TLS handshakes that came through, and those that failed (plain HTTP, garbage) with the 400 under its status", function()
    local dir = os.tmpname()
    os.remove(dir)
    proc.check { "mkdir", "-p", dir }
    local cert, key = dir .. "/cert.pem", dir .. "/key.pem"
    proc.check({ "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
      "-keyout", key, "-out", cert }, { timeout = 60 })
    local s = h.server { tls = { certificate = cert, key = key }, metrics = "/metrics" }
    s:route("/echo", { message = function(ws, msg) ws:send(msg) end })
    for _ = 1, 2 do
      local ws = assert(luaws.connect(s:url("/echo"), { tls = { verify = false } }))
      assert(ws:send("x"))
      assert.equal("x", ws:receive(WAIT))
      ws:close()
    end
    local plain = proc.raw(s.port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", { timeout = WAIT })
    assert.truthy(plain.response:match("^HTTP/1%.1 400 "), plain.response)
    proc.raw(s.port, string.rep("\0", 64), { timeout = WAIT })
    h.pump(function() return s._c:metrics().tls_failed == 2 end, "the failed handshakes counted", WAIT)
    local m = s._c:metrics()
    assert.equal(2, m.tls_handshakes)
    assert.equal(1, m.refused[400])
    -- the page itself, over https, read by the parser: the metrics fetch is
    -- one more handshake; python's urllib would verify, so read it raw
    local text = require("luaws.metrics").render(s)
    local tmp = dir .. "/page.txt"
    local f = assert(io.open(tmp, "w"))
    f:write(text)
    f:close()
    local out, status = proc.run({ proc.PYTHON, "-c", "import sys, json\n"
      .. "from prometheus_client.parser import text_string_to_metric_families as p\n"
      .. "print(json.dumps({s.name + repr(sorted(s.labels.items())): s.value for f in p(open(sys.argv[1]).read()) for s in f.samples}))",
      tmp }, { timeout = 60, merge = false, unset = { "LD_PRELOAD" } })
    assert.equal(0, status, out)
    local v = assert(cjson.decode(out))
    assert.equal(2, v["luaws_tls_handshakes_total[('result', 'ok')]"])
    assert.equal(2, v["luaws_tls_handshakes_total[('result', 'failed')]"])
    assert.equal(1, v["luaws_handshakes_rejected_total[('status', '400')]"])
    proc.run { "rm", "-rf", dir }
  end)

  it("refuses a metrics path that is no path", function()
    assert.error_matches(function() luaws.listen { metrics = "metrics" } end, "'metrics' must be a path")
    local s = h.server {}
    assert.error_matches(function() s:route_metrics("x") end, "route_metrics")
  end)
end)
