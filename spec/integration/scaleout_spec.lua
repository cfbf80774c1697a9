-- SPDX-License-Identifier: MIT
-- docs/scale-out.md for real: docs/scale-out/nginx.conf started with
-- Debian's nginx in front of two examples/chat.lua servers that share a
-- redis-server, all on free loopback ports; a line typed at one server
-- reaches a client that came in through nginx and one on the other server.
-- Also: the nginx block the document shows is the file's, line for line.
local h = require "helper"
local proc = require "support.proc"
local redis = require "support.redis"
local luaws = h.luaws
local cjson = require "cjson.safe"

local WAIT = 20
local have_nginx = proc.have_command("nginx")
local it_all = (have_nginx and redis.available()) and it or pending

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

describe("docs/scale-out.md", function()
  local r, dir
  after_each(function()
    proc.cleanup()   -- first: clients of a killed subprocess then see their EOF
    h.cleanup()
    if r then r:stop() end
    r = nil
    if dir then os.execute("rm -rf '" .. dir .. "'") end
    dir = nil
  end)

  it("shows the nginx configuration of docs/scale-out/nginx.conf, line for line", function()
    local doc, conf = read("docs/scale-out.md"), read("docs/scale-out/nginx.conf")
    local block = doc:match("<!%-%- file: docs/scale%-out/nginx%.conf %-%->\n```nginx\n(.-)```")
    assert(block, "the document has no nginx block marked with its file")
    -- every line of the block, in order, among the file's lines (the file adds
    -- its comments and the top-level settings a runnable file needs)
    local lines = {}
    for line in conf:gmatch("[^\n]+") do
      local l = line:gsub("#.*$", ""):match("^%s*(.-)%s*$")
      if l ~= "" then lines[#lines + 1] = l end
    end
    local at = 1
    for line in block:gmatch("[^\n]+") do
      local l = line:match("^%s*(.-)%s*$")
      if l ~= "" then
        while at <= #lines and lines[at] ~= l do at = at + 1 end
        assert(at <= #lines, "not in docs/scale-out/nginx.conf (in this order): " .. l)
        at = at + 1
      end
    end
  end)

  it_all("two chat servers behind nginx, joined by Redis: a line typed at one reaches a client through nginx and one on the other", function()
    r = assert(redis.start())
    local ports = {}
    for i = 1, 2 do
      local p = proc.spawn { "lua5.4", "examples/chat.lua", "--port", "0", "--host", "127.0.0.1",
        "--tick", "3600", "--redis", r.url }
      ports[i] = assert(p:wait_line("luaws chat listening on http://127%.0%.0%.1:(%d+)/", WAIT))
    end
    -- the very file, with this run's ports
    local front = proc.free_port()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p '" .. dir .. "'"))
    local conf = read("docs/scale-out/nginx.conf")
      :gsub("127%.0%.0%.1:5001", "127.0.0.1:" .. ports[1])
      :gsub("127%.0%.0%.1:5002", "127.0.0.1:" .. ports[2])
      :gsub("127%.0%.0%.1:8080", "127.0.0.1:" .. front)
    local f = assert(io.open(dir .. "/nginx.conf", "wb"))
    f:write(conf)
    f:close()
    local ngx = proc.spawn { "nginx", "-p", dir, "-c", dir .. "/nginx.conf" }
    -- nginx prints nothing when it starts: wait until it answers
    local via = nil
    proc.wait_until(function()
      via = luaws.connect(("ws://127.0.0.1:%d/ws"):format(front), { timeout = 2 })
      return via ~= nil or not ngx:alive()
    end, WAIT)
    assert(via, "nginx did not proxy a WebSocket: " .. ngx:stdout() .. ngx:stderr()
      .. (proc.read_all(dir .. "/error.log") or ""))
    local a = assert(luaws.connect(("ws://127.0.0.1:%s/ws"):format(ports[1])))
    local b = assert(luaws.connect(("ws://127.0.0.1:%s/ws"):format(ports[2])))
    h.pump(function() return r:cli("PUBSUB", "NUMSUB", "luaws:room"):match("(%d+)$") == "2" end,
      "both servers subscribed", WAIT)
    for _, sender in ipairs { a, b, via } do
      local text = "a line / with \"quotes\" and é"
      assert(sender:send(cjson.encode { name = "x", text = text }))
      for _, ws in ipairs { a, b, via } do
        local msg = ws:receive(WAIT)
        assert(msg, "a client got nothing")
        assert.equal(text, (cjson.decode(msg) or {}).text, msg)
      end
    end
    ngx:stop(5)
  end)
end)
