-- Echo over loopback with our own client: callback and coroutine routes.
local h = require "helper"
local luaws = h.luaws

describe("echo over loopback", function()
  after_each(h.cleanup)

  for _, style in ipairs { "callback", "coroutine" } do
    describe("(" .. style .. " route)", function()
      local server, url
      before_each(function()
        server = h.server()
        if style == "callback" then
          server:route("/ws", { message = function(ws, msg, kind) ws:send(msg, kind) end })
        else
          server:route("/ws", function(ws)
            for msg, kind in ws:messages() do ws:send(msg, kind) end
          end)
        end
        url = server:url("/ws")
      end)

      it("echoes text and binary messages with their kind", function()
        local ws = assert(luaws.connect(url))
        assert(ws:send("héllo"))
        assert.same({ "héllo", "text" }, { ws:receive(5) })
        assert(ws:send("\0\1\2\255", "binary"))
        assert.same({ "\0\1\2\255", "binary" }, { ws:receive(5) })
        assert(ws:send(""))
        assert.same({ "", "text" }, { ws:receive(5) })
        ws:close()
      end)

      it("echoes messages of every length class intact", function()
        local ws = assert(luaws.connect(url))
        for _, n in ipairs { 1, 125, 126, 127, 65535, 65536, 1024 * 1024 + 3 } do
          local msg = string.rep("abcdefg", n // 7 + 1):sub(1, n)
          assert(ws:send(msg, "binary"))
          local got = ws:receive(10)
          assert.equal(n, #got)
          assert.is_true(got == msg)
        end
        ws:close()
      end)

      it("keeps 500 pipelined messages in order", function()
        local ws = assert(luaws.connect(url))
        for i = 1, 500 do assert(ws:send("m" .. i)) end
        for i = 1, 500 do assert.equal("m" .. i, (ws:receive(5))) end
        ws:close()
      end)

      it("completes the close handshake and reports 1000 to both sides", function()
        local server_close
        if style == "callback" then
          server:route("/ws", {
            message = function(ws, msg, kind) ws:send(msg, kind) end,
            close = function(_, code, reason) server_close = { code, reason } end,
          })
        else
          server:route("/ws", function(ws)
            for msg, kind in ws:messages() do ws:send(msg, kind) end
            server_close = { ws:close_status() }
          end)
        end
        local ws = assert(luaws.connect(url))
        assert(ws:close(1000, "bye"))
        h.fails("closed", ws:receive(5))
        assert.same({ 1000, "bye" }, { ws:close_status() })
        h.pump(function() return server_close ~= nil end, "the server's close handler")
        assert.same({ 1000, "bye" }, server_close)
      end)
    end)
  end
end)
