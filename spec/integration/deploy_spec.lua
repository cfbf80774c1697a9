-- SPDX-License-Identifier: MIT
-- docs/deploy.md for real. Each configuration block of the document is its
-- file under docs/deploy/, byte for byte; the nginx files are started with
-- Debian's nginx (free loopback ports, paths of this run) in front of a
-- luaws server: the echo works through nginx on TCP, on a unix socket and
-- with TLS at nginx; ws.remote is the client (a python3-websockets client
-- from 127.0.0.2) only when nginx is trusted; a spoofed X-Forwarded-For is
-- ignored, from a peer that is not trusted and through nginx alike; the
-- Prometheus target of prometheus.yml is scraped through nginx and read by
-- the Prometheus parser. The systemd unit passes systemd-analyze verify and
-- its command line starts; the kernel settings name keys this kernel has.
local h = require "helper"
local proc = require "support.proc"
local luaws = h.luaws
local cjson = require "cjson.safe"

local WAIT = 20
local have_nginx = proc.have_command("nginx")
local have_ws = proc.have_python("websockets")
local have_parser = proc.have_python("prometheus_client")
local have_yaml = proc.have_python("yaml")
local have_openssl = proc.have_command("openssl")
local have_analyze = proc.have_command("systemd-analyze")
local it_ngx = (have_nginx and have_ws) and it or pending
local is_root = (io.popen("id -u"):read("l")) == "0"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- s with every plain occurrence of from replaced; errors when there is none
-- (the file changed and this spec no longer tests it).
local function replace(s, from, to)
  local i = s:find(from, 1, true)
  assert(i, "not in the file: " .. from)
  local out, at = {}, 1
  while i do
    out[#out + 1] = s:sub(at, i - 1) .. to
    at = i + #from
    i = s:find(from, at, true)
  end
  out[#out + 1] = s:sub(at)
  return table.concat(out)
end

-- A luaws server answering "REMOTE PORT SECURE MSG" at /who, echoing at /echo.
local function who_server(opts)
  local s = h.server(opts)
  s:route("/who", {
    message = function(ws, msg) ws:send(("%s %d %s %s"):format(ws.remote, ws.port, tostring(ws.secure), msg)) end,
  })
  s:route("/echo", { message = function(ws, msg, kind) ws:send(msg, kind) end })
  return s
end

-- Start docs/deploy/<name> with nginx: subs are {from, to} pairs (plain
-- text), then the logs and temp files go to dir; -g gives daemon off, the
-- PID file (and user root when we are root, so that its workers may
-- connect to a socket of mode 0660 made by us). Waits until url answers a
-- WebSocket (copts: luaws.connect options). Returns the process.
local function start_nginx(name, subs, dir, url, copts)
  local conf = read("docs/deploy/" .. name)
  for _, s in ipairs(subs) do conf = replace(conf, s[1], s[2]) end
  conf = replace(conf, "http {\n", ("http {\n    access_log %s/access.log;\n    client_body_temp_path %s/body;\n"
    .. "    proxy_temp_path %s/proxy;\n    fastcgi_temp_path %s/fastcgi;\n    uwsgi_temp_path %s/uwsgi;\n"
    .. "    scgi_temp_path %s/scgi;\n"):format(dir, dir, dir, dir, dir, dir))
  conf = replace(conf, "worker_processes auto;", "worker_processes 1;")   -- a shared 2-core machine
  write(dir .. "/nginx.conf", conf)
  local g = ("daemon off; pid %s/nginx.pid;%s"):format(dir, is_root and " user root;" or "")
  local ngx = proc.spawn { "nginx", "-p", dir, "-c", dir .. "/nginx.conf", "-e", dir .. "/error.log", "-g", g }
  local ws
  proc.wait_until(function()
    ws = luaws.connect(url, copts or { timeout = 2 })
    return ws ~= nil or not ngx:alive()
  end, WAIT)
  assert(ws, "nginx did not proxy a WebSocket: " .. ngx:stdout() .. ngx:stderr()
    .. (proc.read_all(dir .. "/error.log") or ""))
  ws:close()
  return ngx
end

-- Our client's answer to msg at url.
local function ask(url, msg, copts)
  local ws = assert(luaws.connect(url, copts))
  assert(ws:send(msg))
  local got = assert(ws:receive(WAIT))
  ws:close()
  return got
end

describe("docs/deploy.md", function()
  local dir
  before_each(function() dir = proc.tmpdir() end)
  after_each(function()
    proc.cleanup()   -- nginx first: its connections then end
    h.cleanup()
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("shows each file of docs/deploy/ whole, byte for byte, and no config block that is not one", function()
    local doc = read("docs/deploy.md")
    local shown = {}
    for path, block in doc:gmatch("<!%-%- file: (%S+) %-%->\n```%w*\n(.-)```\n") do
      assert.is_true(read(path) == block, path .. " differs from its block in docs/deploy.md")
      shown[path] = true
    end
    for name in proc.check({ "ls", "docs/deploy" }):gmatch("[^\n]+") do
      assert.is_true(shown["docs/deploy/" .. name] == true, "docs/deploy/" .. name .. " is not in docs/deploy.md")
    end
    local fences, marked = 0, 0
    for _ in doc:gmatch("\n```%w+\n") do fences = fences + 1 end
    for _ in doc:gmatch("%-%->\n```%w+\n") do marked = marked + 1 end
    assert.equal(fences, marked)
  end)

  it_ngx("nginx.conf: the echo works through nginx; ws.remote is the client when nginx is trusted, a spoofed X-Forwarded-For is ignored; Prometheus scrapes through it", function()
    local s = who_server { trusted_proxies = { "127.0.0.1" }, metrics = "/metrics" }
    local front = proc.free_port()
    local via = ("ws://127.0.0.1:%d"):format(front)
    local ngx = start_nginx("nginx.conf", { { "listen 80;", "listen 127.0.0.1:" .. front .. ";" },
      { "server 127.0.0.1:5000;", "server 127.0.0.1:" .. s.port .. ";" } }, dir, via .. "/echo")
    -- a client on 127.0.0.2, through nginx on 127.0.0.1: luaws sees nginx's
    -- socket, and believes its X-Forwarded-For
    assert.equal("127.0.0.2 0 false hello", proc.proxied_reply(via .. "/who", { "--from", "127.0.0.2" }))
    -- what the client writes itself stays left of what nginx appends
    assert.equal("127.0.0.2 0 false hello",
      proc.proxied_reply(via .. "/who", { "--from", "127.0.0.2", "--header", "X-Forwarded-For: 6.6.6.6" }))
    -- straight to luaws from an untrusted peer: the header counts for nothing
    local direct = proc.proxied_reply(("ws://127.0.0.1:%d/who"):format(s.port),
      { "--from", "127.0.0.2", "--header", "X-Forwarded-For: 6.6.6.6", "--header", "X-Forwarded-Proto: https" })
    assert.truthy(direct:match("^127%.0%.0%.2 %d+ false hello$"), direct)
    -- a message bigger than nginx's buffers, both ways
    local big = string.rep("0123456789abcdef", 8192)
    assert.equal(big, ask(via .. "/echo", big))

    -- prometheus.yml's target, this run's port in place of 80
    if have_yaml and have_parser then
      local out = proc.check({ proc.PYTHON, "-c",
        "import json, sys, yaml; print(json.dumps(yaml.safe_load(open('docs/deploy/prometheus.yml'))))" },
        { unset = { "LD_PRELOAD" } })
      local y = assert(cjson.decode(out))
      local job = y.scrape_configs[1]
      local target = job.static_configs[1].targets[1]
      assert.equal("127.0.0.1:80", target)
      local url = "http://" .. target:gsub(":80$", ":" .. front) .. job.metrics_path
      local text, status = proc.run({ proc.PYTHON, "spec/support/scrape.py", url },
        { timeout = 60, merge = false, unset = { "LD_PRELOAD" } })
      assert.equal(0, status, text)
      local f = assert(cjson.decode(text)).families
      local upgrades
      for _, sm in ipairs(f.luaws_upgrades.samples) do upgrades = sm[3] end
      assert.equal(5, upgrades)   -- start_nginx's probe, three through nginx, one direct
    end
    assert.is_true(ngx:stop(5))
  end)

  it_ngx("nginx.conf: behind nginx that is not trusted, ws.remote is nginx", function()
    local s = who_server { trusted_proxies = { "10.0.0.0/8" } }
    local front = proc.free_port()
    local via = ("ws://127.0.0.1:%d"):format(front)
    local ngx = start_nginx("nginx.conf", { { "listen 80;", "listen 127.0.0.1:" .. front .. ";" },
      { "server 127.0.0.1:5000;", "server 127.0.0.1:" .. s.port .. ";" } }, dir, via .. "/echo")
    local got = proc.proxied_reply(via .. "/who", { "--from", "127.0.0.2", "--header", "X-Forwarded-Proto: https" })
    assert.truthy(got:match("^127%.0%.0%.1 %d+ false hello$"), got)
    assert.is_true(ngx:stop(5))
  end)

  it_ngx("nginx-unix.conf: the echo works through nginx on a unix socket of mode 0660; trusting \"unix\" makes ws.remote the client", function()
    local path = dir .. "/luaws.sock"
    local s = who_server { unix = path, unix_mode = "0660", trusted_proxies = { "unix" } }
    local front = proc.free_port()
    local via = ("ws://127.0.0.1:%d"):format(front)
    local ngx = start_nginx("nginx-unix.conf", { { "listen 80;", "listen 127.0.0.1:" .. front .. ";" },
      { "unix:/run/luaws/luaws.sock;", "unix:" .. path .. ";" } }, dir, via .. "/echo")
    assert.equal("127.0.0.2 0 false hello", proc.proxied_reply(via .. "/who", { "--from", "127.0.0.2" }))
    assert.equal("127.0.0.2 0 false hello",
      proc.proxied_reply(via .. "/who", { "--from", "127.0.0.2", "--header", "X-Forwarded-For: 6.6.6.6" }))
    local big = string.rep("x", 200000)
    assert.equal(big, ask(via .. "/echo", big))
    assert.is_true(ngx:stop(5))
    s:close()
    assert.is_false(os.execute("test -e '" .. path .. "'") == true)
  end)

  it_ngx("nginx-unix.conf: without \"unix\" in trusted_proxies, ws.remote is \"unix\"", function()
    local path = dir .. "/luaws.sock"
    who_server { unix = path, unix_mode = "0660" }
    local front = proc.free_port()
    local via = ("ws://127.0.0.1:%d"):format(front)
    local ngx = start_nginx("nginx-unix.conf", { { "listen 80;", "listen 127.0.0.1:" .. front .. ";" },
      { "unix:/run/luaws/luaws.sock;", "unix:" .. path .. ";" } }, dir, via .. "/echo")
    assert.equal("unix 0 false hello", proc.proxied_reply(via .. "/who", { "--from", "127.0.0.2" }))
    assert.is_true(ngx:stop(5))
  end)

  ;((have_nginx and have_openssl) and it or pending)("nginx-tls.conf: wss:// at nginx, plain HTTP to luaws, and ws.secure says the client came over TLS", function()
    local cert, key = dir .. "/fullchain.pem", dir .. "/privkey.pem"
    assert(proc.run({ "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
      "-keyout", key, "-out", cert }, { timeout = 60 }))
    local s = who_server { trusted_proxies = { "127.0.0.1" } }
    local front = proc.free_port()
    local via = ("wss://127.0.0.1:%d"):format(front)
    local copts = { timeout = 2, tls = { verify = false } }
    local ngx = start_nginx("nginx-tls.conf", { { "listen 443 ssl;", "listen 127.0.0.1:" .. front .. " ssl;" },
      { "server 127.0.0.1:5000;", "server 127.0.0.1:" .. s.port .. ";" },
      { "/etc/ssl/luaws/fullchain.pem", cert }, { "/etc/ssl/luaws/privkey.pem", key } }, dir, via .. "/echo", copts)
    assert.equal("127.0.0.1 0 true hello", ask(via .. "/who", "hello", { tls = { verify = false } }))
    -- the same server, straight: not secure
    assert.truthy(ask(s:url("/who"), "hello"):match("^127%.0%.0%.1 %d+ false hello$"))
    assert.is_true(ngx:stop(5))
  end)

  ;(have_analyze and it or pending)("luaws.service passes systemd-analyze verify, and its command line starts the echo", function()
    local unit = read("docs/deploy/luaws.service")
    write(dir .. "/luaws.service", unit)
    local out, status = proc.run({ "systemd-analyze", "verify", dir .. "/luaws.service" }, { timeout = 60 })
    assert.equal(0, status, out)
    assert.equal("", out)
    assert.truthy(unit:match("\nLimitNOFILE=%d+\n"))
    -- ExecStart's arguments, with this checkout and a socket of this run
    local args = assert(unit:match("\nExecStart=/usr/bin/lua5%.4 /opt/luaws/examples/echo%.lua ([^\n]+)\n"))
    local argv = { "lua5.4", "examples/echo.lua" }
    for a in args:gmatch("%S+") do argv[#argv + 1] = (a:gsub("^/run/luaws/", dir .. "/")) end
    local p = proc.spawn(argv, { env = proc.luaws_env() })
    assert(p:wait_line("^luaws echo listening on unix:" .. dir:gsub("%p", "%%%0") .. "/luaws%.sock$", WAIT),
      p:stdout() .. p:stderr())
    assert.is_true(p:stop(10))
    assert.is_false(os.execute("test -e '" .. dir .. "/luaws.sock'") == true)   -- removed at exit
  end)

  it("sysctl-luaws.conf names keys this kernel has; limits-luaws.conf has the limits.d form", function()
    local n = 0
    for line in read("docs/deploy/sysctl-luaws.conf"):gmatch("[^\n]+") do
      if not line:match("^%s*#") and line:match("%S") then
        local key, value = line:match("^([%w_.%-]+) = (.+)$")
        assert(key, "not key = value: " .. line)
        assert.truthy(value:match("^[%d ]+$"), line)
        assert(proc.read_all("/proc/sys/" .. key:gsub("%.", "/")), "no /proc/sys entry for " .. key)
        n = n + 1
      end
    end
    assert.is_true(n >= 6)
    for line in read("docs/deploy/limits-luaws.conf"):gmatch("[^\n]+") do
      if not line:match("^%s*#") and line:match("%S") then
        local domain, kind, item, value = line:match("^(%S+)%s+(%S+)%s+(%S+)%s+(%S+)$")
        assert(domain, "not four fields: " .. line)
        assert.truthy(kind == "soft" or kind == "hard", line)
        assert.equal("nofile", item)
        assert.truthy(tonumber(value), line)
      end
    end
  end)
end)
