-- SPDX-License-Identifier: MIT
-- luahttp_echo.lua -- lua-http's WebSocket server as a benchmark peer.
--
-- Usage: lua5.1 bench/peers/luahttp_echo.lua PORT
--
-- Debian's lua-http (0.4) runs only on lua5.1 here: its pure-Lua dependencies
-- (lpeg-patterns, basexx, fifo, compat53, bit32) are packaged for 5.1/5.2 only,
-- and there is no lua5.2 interpreter besides (bench/NOTES.md has the details).
-- One cqueues coroutine per connection: receive a message, send it back with
-- the same opcode. Plain TCP (tls = false) on 127.0.0.1:PORT, path /ws.
local http_server = require "http.server"
local http_headers = require "http.headers"
local websocket = require "http.websocket"

local port = tonumber(arg[1])
if not port then
	io.stderr:write("usage: lua5.1 luahttp_echo.lua PORT\n")
	os.exit(2)
end

local function reply(stream, status)
	local h = http_headers.new()
	h:append(":status", status)
	stream:write_headers(h, true)
end

local function onstream(_, stream)
	local headers = assert(stream:get_headers())
	if headers:get(":path") ~= "/ws" then
		return reply(stream, "404")
	end
	local ws = websocket.new_from_stream(stream, headers)
	if not ws then
		return reply(stream, "400")
	end
	assert(ws:accept())
	while true do
		local data, kind = ws:receive()
		if data == nil then break end
		local ok = ws:send(data, kind)
		if not ok then break end
	end
	ws:close()
end

local server = assert(http_server.listen {
	host = "127.0.0.1",
	port = port,
	tls = false,
	onstream = onstream,
	-- A benchmark's reset connection is not worth a traceback.
	onerror = function(_, context, op, err)
		io.stderr:write(string.format("luahttp_echo: %s on %s: %s\n", tostring(op), tostring(context), tostring(err)))
	end,
})
assert(server:listen())
io.stdout:write(string.format("lua-http echo listening on ws://127.0.0.1:%d/ws\n", port))
io.stdout:flush()
assert(server:loop())
