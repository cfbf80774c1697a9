-- bench/peers/resty_echo.lua -- the echo loop of bench/peers/resty_echo.conf:
-- lua-resty-websocket (Debian lua-nginx-websocket, module nginx.websocket.server)
-- in nginx's lua module, one request handler (coroutine) per connection.
-- Text and binary messages are echoed whole with their opcode; a message that
-- arrives in fragments (recv_frame's err "again" until the final frame) is
-- gathered and echoed as one frame; ping gets pong; close gets close.
local server = require "nginx.websocket.server"

local MAX = 64 * 1024 * 1024   -- per frame (max_payload_len) and per gathered message

local wb, err = server:new{ timeout = 600000, max_payload_len = MAX }
if not wb then
    ngx.log(ngx.ERR, "websocket handshake: ", err)
    return ngx.exit(400)
end

local parts, ptype, plen = nil, nil, 0

local function send(typ, data)
    local ok, e
    if typ == "text" then ok, e = wb:send_text(data) else ok, e = wb:send_binary(data) end
    return ok, e
end

while true do
    local data, typ, e = wb:recv_frame()
    if not data then
        if wb.fatal then return ngx.exit(444) end
        -- a read timeout: keep waiting
    elseif typ == "text" or typ == "binary" then
        if e == "again" then
            parts, ptype, plen = { data }, typ, #data
        elseif not send(typ, data) then
            return ngx.exit(444)
        end
    elseif typ == "continuation" then
        if not parts then                      -- no message to continue
            wb:send_close(1002, "continuation without a message")
            return ngx.exit(444)
        end
        parts[#parts + 1] = data
        plen = plen + #data
        if plen > MAX then
            wb:send_close(1009, "message too big")
            return ngx.exit(444)
        end
        if e ~= "again" then
            local msg = table.concat(parts)
            parts = nil
            if not send(ptype, msg) then return ngx.exit(444) end
        end
    elseif typ == "ping" then
        if not wb:send_pong(data) then return ngx.exit(444) end
    elseif typ == "close" then
        -- e is the peer's status code (nil when it sent none)
        wb:send_close(e and tonumber(e) or nil, "")
        return ngx.exit(ngx.OK)
    end
    -- pong: nothing to do
end
