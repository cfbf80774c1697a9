/* SPDX-License-Identifier: MIT
 *
 * codec.c -- the pure codecs on luaws.core: frames, masking, the frame
 * reader, UTF-8, HTTP heads and the handshake, callable without sockets.
 *
 * The specs drive the C codecs through these functions, and the Lua client
 * reuses them (as lua-http exports build_frame/read_frame). Each function
 * checks its arguments (misuse raises), makes one call into the codec, and
 * turns the result into Lua values; input that is merely bad returns
 * nil, token with the tokens of ws_strerror. Nothing here keeps state but
 * the "luaws.reader" userdata, which holds a struct ws_reader and no heap
 * memory (so it needs no __gc).
 *
 * It does not reassemble messages, answer control frames or do I/O: that is
 * the connection's job.
 */
#include <limits.h>
#include <string.h>

#include "lua/util.h"
#include "lua/open.h"
#include "proto/addr.h"
#include "proto/frame.h"
#include "proto/utf8.h"
#include "proto/http.h"
#include "proto/handshake.h"

#define READER_MT "luaws.reader"

/* Push a 64-bit length: an integer when it fits, a float beyond that. */
static void push_u64(lua_State *L, uint64_t v)
{
    if (v <= (uint64_t)LUA_MAXINTEGER)
        lua_pushinteger(L, (lua_Integer)v);
    else
        lua_pushnumber(L, (lua_Number)v);
}

/* An optional boolean argument: absent or nil gives def, another type raises. */
static int opt_boolean(lua_State *L, int i, int def)
{
    if (lua_isnoneornil(L, i))
        return def;
    luaL_checktype(L, i, LUA_TBOOLEAN);
    return lua_toboolean(L, i);
}

/* A 4-byte masking key argument, or NULL when absent/nil and optional. */
static const uint8_t *check_key(lua_State *L, int i, int optional)
{
    size_t len;
    const char *key;

    if (optional && lua_isnoneornil(L, i))
        return NULL;
    key = luaL_checklstring(L, i, &len);
    luaL_argcheck(L, len == 4, i, "masking key must be 4 bytes");
    return (const uint8_t *)key;
}

/*
** core.frame_encode(opcode, payload [, fin [, mask [, rsv]]]) -> frame
** [-0, +1, v]  The whole frame as a string: shortest-length header, then the
** payload, masked when a 4-byte key is given. fin defaults to true; rsv
** (0-7, default 0) sets RSV1-3 so specs can build frames a peer must refuse.
** Usage: local f = core.frame_encode(1, "Hello", true, "\x37\xfa\x21\x3d")
*/
static int lcodec_frame_encode(lua_State *L)
{
    lua_Integer opcode = luaL_checkinteger(L, 1);
    size_t plen;
    const char *payload = luaL_checklstring(L, 2, &plen);
    int fin = opt_boolean(L, 3, 1);
    const uint8_t *key = check_key(L, 4, 1);
    lua_Integer rsv = luaL_optinteger(L, 5, 0);
    uint8_t hdr[WS_MAX_HEADER];
    size_t hlen;
    luaL_Buffer b;
    uint8_t *out;

    luaL_argcheck(L, opcode >= 0 && opcode <= 15, 1, "opcode must be 0-15");
    luaL_argcheck(L, rsv >= 0 && rsv <= 7, 5, "rsv must be 0-7");
    hlen = ws_frame_header_encode(hdr, fin, (int)opcode, plen, key);
    hdr[0] |= (uint8_t)(rsv << 4);
    out = (uint8_t *)luaL_buffinitsize(L, &b, hlen + plen);
    memcpy(out, hdr, hlen);
    memcpy(out + hlen, payload, plen);
    if (key)
        ws_mask(out + hlen, plen, key, 0);
    luaL_pushresultsize(&b, hlen + plen);
    return 1;
}

/*
** core.frame_header(bytes) -> {fin, rsv, opcode, masked, mask, len, size}
**                           | nil, "partial"
** [-0, +1|2, v]  Parses the header at the start of bytes without judging it;
** size is the header's length in bytes, mask is present only when masked.
** Usage: local h = assert(core.frame_header(frame)); print(h.opcode, h.len)
*/
static int lcodec_frame_header(lua_State *L)
{
    size_t n;
    const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 1, &n);
    struct ws_frame_header h;
    int size = ws_frame_header_parse(p, n, &h);

    if (size < 0)
        return lws_fail(L, size, "frame_header: %s", ws_strmessage(size));
    lua_createtable(L, 0, 7);
    lua_pushboolean(L, h.fin);
    lua_setfield(L, -2, "fin");
    lua_pushinteger(L, h.rsv);
    lua_setfield(L, -2, "rsv");
    lua_pushinteger(L, h.opcode);
    lua_setfield(L, -2, "opcode");
    lua_pushboolean(L, h.masked);
    lua_setfield(L, -2, "masked");
    if (h.masked) {
        lua_pushlstring(L, (const char *)h.mask, 4);
        lua_setfield(L, -2, "mask");
    }
    push_u64(L, h.len);
    lua_setfield(L, -2, "len");
    lua_pushinteger(L, size);
    lua_setfield(L, -2, "size");
    return 1;
}

/*
** core.mask(bytes, key [, offset]) -> bytes
** [-0, +1, v]  XOR with the 4-byte key starting at key position offset % 4
** (default 0); masking twice gives the input back.
** Usage: local clear = core.mask(masked, key)
*/
static int lcodec_mask(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    const uint8_t *key = check_key(L, 2, 0);
    lua_Integer offset = luaL_optinteger(L, 3, 0);
    luaL_Buffer b;
    uint8_t *out;

    luaL_argcheck(L, offset >= 0, 3, "offset must be >= 0");
    out = (uint8_t *)luaL_buffinitsize(L, &b, n);
    memcpy(out, s, n);
    ws_mask(out, n, key, (size_t)offset);
    luaL_pushresultsize(&b, n);
    return 1;
}

/*
** core.close_code_valid(code) -> boolean
** [-0, +1, v]  May a peer send this close code (RFC 6455 §7.4)?
** Usage: if not core.close_code_valid(code) then code = 1002 end
*/
static int lcodec_close_code_valid(lua_State *L)
{
    lua_Integer code = luaL_checkinteger(L, 1);

    lua_pushboolean(L, code >= 0 && code <= UINT_MAX && ws_close_code_valid((unsigned)code));
    return 1;
}

/*
** core.reader(expect_masked [, max_message]) -> reader
** [-0, +1, v]  A frame reader: expect_masked is true for a server reading a
** client, false for a client; max_message is the largest message in bytes,
** 0 or absent for no limit.
** Usage: local r = core.reader(true, 1 << 20)
*/
static int lcodec_reader(lua_State *L)
{
    struct ws_reader *r;
    lua_Integer max;

    luaL_checktype(L, 1, LUA_TBOOLEAN);
    max = luaL_optinteger(L, 2, 0);
    luaL_argcheck(L, max >= 0, 2, "max_message must be >= 0");
    r = lua_newuserdatauv(L, sizeof *r, 0);
    ws_reader_init(r, lua_toboolean(L, 1), (uint64_t)max);
    luaL_setmetatable(L, READER_MT);
    return 1;
}

static struct ws_reader *lreader_check(lua_State *L, int i)
{
    return luaL_checkudata(L, i, READER_MT);
}

/* Push one event as a table (see lreader_feed for the fields). */
static void push_event(lua_State *L, const struct ws_event *ev)
{
    static const char *const names[] = { "none", "data", "control", "error" };

    lua_createtable(L, 0, 5);
    lua_pushstring(L, names[ev->type]);
    lua_setfield(L, -2, "type");
    if (ev->type == WS_EV_ERROR) {
        lua_pushinteger(L, ev->close_code);
        lua_setfield(L, -2, "close_code");
        lua_pushstring(L, ev->reason);
        lua_setfield(L, -2, "reason");
        return;
    }
    lua_pushinteger(L, ev->opcode);
    lua_setfield(L, -2, "opcode");
    lua_pushlstring(L, (const char *)ev->data, ev->len);
    lua_setfield(L, -2, "data");
    if (ev->type == WS_EV_DATA) {
        lua_pushboolean(L, ev->fin);
        lua_setfield(L, -2, "fin");
        lua_pushboolean(L, ev->frame_end);
        lua_setfield(L, -2, "frame_end");
    } else if (ev->opcode == WS_OP_CLOSE) {
        lua_pushinteger(L, ev->close_code);
        lua_setfield(L, -2, "close_code");
    }
}

/*
** reader:feed(bytes) -> { event, ... }
** [-0, +1, v]  Runs the reader over all of bytes (the loop of frame.h) and
** returns the events in order, each a table:
**   {type="data", opcode=1|2, fin=bool, frame_end=bool, data=chunk}
**   {type="control", opcode=8|9|10, data=payload (close: the reason),
**    close_code=n (close only; 1005 when the frame had no payload)}
**   {type="error", close_code=n, reason=text}   -- always last; sticky
** Usage: for _, ev in ipairs(r:feed(bytes)) do ... end
*/
static int lreader_feed(lua_State *L)
{
    struct ws_reader *r = lreader_check(L, 1);
    size_t n, off = 0;
    const char *s = luaL_checklstring(L, 2, &n);
    uint8_t *buf = lua_newuserdatauv(L, n > 0 ? n : 1, 0);   /* writable copy: payload is unmasked in place */
    lua_Integer k = 0;
    struct ws_event ev;

    memcpy(buf, s, n);
    lua_newtable(L);
    for (;;) {
        size_t used = ws_reader_feed(r, buf + off, n - off, &ev);
        off += used;
        if (ev.type == WS_EV_NONE)
            break;
        if (used == 0 && ev.type != WS_EV_ERROR)   /* frame.h promises progress */
            return luaL_error(L, "luaws.reader made no progress (bug)");
        push_event(L, &ev);
        lua_rawseti(L, -2, ++k);
        if (ev.type == WS_EV_ERROR)
            break;
    }
    return 1;
}

/*
** reader:in_message() -> boolean
** [-0, +1, v]  True while a data message has started and not ended.
** Usage: if r:in_message() then ... end
*/
static int lreader_in_message(lua_State *L)
{
    lua_pushboolean(L, ws_reader_in_message(lreader_check(L, 1)));
    return 1;
}

/* __tostring: the type and the address, like the built-in types. */
static int lreader_tostring(lua_State *L)
{
    lua_pushfstring(L, READER_MT ": %p", (void *)lreader_check(L, 1));
    return 1;
}

/*
** core.utf8_valid(bytes) -> boolean
** [-0, +1, v]  Is bytes complete, valid UTF-8 (RFC 3629)?
** Usage: assert(core.utf8_valid("κόσμε"))
*/
static int lcodec_utf8_valid(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);

    lua_pushboolean(L, ws_utf8_valid((const uint8_t *)s, n));
    return 1;
}

/*
** core.utf8_feed(state, bytes) -> state
** [-0, +1, v]  One step of the incremental validator: core.UTF8_ACCEPT (0)
** at a boundary, core.UTF8_REJECT (1) once invalid, anything else inside a
** sequence. Start from core.UTF8_ACCEPT.
** Usage: local st = core.utf8_feed(core.utf8_feed(0, a), b)
*/
static int lcodec_utf8_feed(lua_State *L)
{
    lua_Integer state = luaL_checkinteger(L, 1);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);

    luaL_argcheck(L, state >= 0 && state <= UINT32_MAX, 1, "not a validator state");
    lua_pushinteger(L, ws_utf8_feed((uint32_t)state, (const uint8_t *)s, n));
    return 1;
}

/* Push { {name, value}, ... } for the parsed headers. */
static void push_headers(lua_State *L, const struct ws_http_head *h)
{
    lua_createtable(L, (int)h->num_headers, 0);
    for (size_t i = 0; i < h->num_headers; i++) {
        const struct ws_http_header *hd = &h->headers[i];
        lua_createtable(L, 2, 0);
        lua_pushlstring(L, hd->name, hd->name_len);
        lua_rawseti(L, -2, 1);
        lua_pushlstring(L, hd->value, hd->value_len);
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

/*
** core.http_parse_request(bytes) -> {method, target, minor_version,
**     headers = { {name, value}, ... }, size}
**   | nil, "partial" | "bad request" | "headers too large"
** [-0, +1|2, v]  size is the length of the head through its blank line;
** bytes after it are not looked at.
** Usage: local req, err = core.http_parse_request(buf)
*/
static int lcodec_http_parse_request(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    struct ws_http_head h;
    int rc = ws_http_parse_request(s, n, &h);

    if (rc < 0)
        return lws_fail(L, rc, "http_parse_request: %s", ws_strmessage(rc));
    lua_createtable(L, 0, 5);
    lua_pushlstring(L, h.method, h.method_len);
    lua_setfield(L, -2, "method");
    lua_pushlstring(L, h.target, h.target_len);
    lua_setfield(L, -2, "target");
    lua_pushinteger(L, h.minor_version);
    lua_setfield(L, -2, "minor_version");
    push_headers(L, &h);
    lua_setfield(L, -2, "headers");
    lua_pushinteger(L, rc);
    lua_setfield(L, -2, "size");
    return 1;
}

/*
** core.http_parse_response(bytes) -> {status, reason, minor_version,
**     headers = { {name, value}, ... }, size} | nil, token
** [-0, +1|2, v]  Same tokens as http_parse_request.
** Usage: local res = assert(core.http_parse_response(buf)); assert(res.status == 101)
*/
static int lcodec_http_parse_response(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    struct ws_http_head h;
    int rc = ws_http_parse_response(s, n, &h);

    if (rc < 0)
        return lws_fail(L, rc, "http_parse_response: %s", ws_strmessage(rc));
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, h.status);
    lua_setfield(L, -2, "status");
    lua_pushlstring(L, h.reason ? h.reason : "", h.reason_len);
    lua_setfield(L, -2, "reason");
    lua_pushinteger(L, h.minor_version);
    lua_setfield(L, -2, "minor_version");
    push_headers(L, &h);
    lua_setfield(L, -2, "headers");
    lua_pushinteger(L, rc);
    lua_setfield(L, -2, "size");
    return 1;
}

/*
** core.http_header(request, name) -> value | nil  (nil, token if request
** does not parse)
** [-0, +1|2, v]  The first header called name, case-insensitively.
** Usage: local host = core.http_header(buf, "host")
*/
static int lcodec_http_header(lua_State *L)
{
    size_t n, vlen;
    const char *s = luaL_checklstring(L, 1, &n);
    const char *name = luaL_checkstring(L, 2);
    struct ws_http_head h;
    int rc = ws_http_parse_request(s, n, &h);
    const char *v;

    if (rc < 0)
        return lws_fail(L, rc, "http_header: %s", ws_strmessage(rc));
    v = ws_http_header(&h, name, &vlen);
    if (v == NULL)
        lua_pushnil(L);
    else
        lua_pushlstring(L, v, vlen);
    return 1;
}

/*
** core.http_has_token(list, token) -> boolean
** [-0, +1, v]  Does the comma-separated header value hold token
** (case-insensitive, whitespace around elements ignored)?
** Usage: core.http_has_token("keep-alive, Upgrade", "upgrade") --> true
*/
static int lcodec_http_has_token(lua_State *L)
{
    size_t n;
    const char *list = luaL_checklstring(L, 1, &n);
    const char *token = luaL_checkstring(L, 2);

    lua_pushboolean(L, ws_http_has_token(list, n, token));
    return 1;
}

/*
** core.http_reason(status) -> phrase
** [-0, +1, v]  "Bad Request" for 400; "" for a status it does not know.
** Usage: local line = ("HTTP/1.1 %d %s\r\n"):format(st, core.http_reason(st))
*/
static int lcodec_http_reason(lua_State *L)
{
    lua_Integer status = luaL_checkinteger(L, 1);

    lua_pushstring(L, status >= 0 && status <= 999 ? ws_http_reason((int)status) : "");
    return 1;
}

/*
** core.handshake_check(request) -> 0 | status, why  |  nil, token
** [-0, +1|2, v]  Parses the request head, then runs the RFC 6455 §4.2.1
** checks: 0 when it is a valid upgrade, else the status to answer (400, 405,
** 426) and a short reason. A head that does not parse gives nil and the
** parser's token ("partial", "bad request", "headers too large").
** Usage: local status, why = core.handshake_check(buf)
*/
static int lcodec_handshake_check(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    struct ws_http_head h;
    int rc = ws_http_parse_request(s, n, &h);
    const char *why = NULL;
    int status;

    if (rc < 0)
        return lws_fail(L, rc, "handshake_check: %s", ws_strmessage(rc));
    status = ws_handshake_check(&h, &why);
    lua_pushinteger(L, status);
    if (why == NULL)
        return 1;
    lua_pushstring(L, why);
    return 2;
}

/*
** core.handshake_is_upgrade(request) -> boolean | nil, token
** [-0, +1|2, v]  Does the request ask for a WebSocket upgrade at all?
** Usage: if core.handshake_is_upgrade(buf) then ... end
*/
static int lcodec_handshake_is_upgrade(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    struct ws_http_head h;
    int rc = ws_http_parse_request(s, n, &h);

    if (rc < 0)
        return lws_fail(L, rc, "handshake_is_upgrade: %s", ws_strmessage(rc));
    lua_pushboolean(L, ws_handshake_is_upgrade(&h));
    return 1;
}

/*
** core.accept_key(key) -> accept | nil, "tls"
** [-0, +1|2, v]  Sec-WebSocket-Accept for a Sec-WebSocket-Key (§4.2.2).
** Usage: core.accept_key("dGhlIHNhbXBsZSBub25jZQ==") --> "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
*/
static int lcodec_accept_key(lua_State *L)
{
    size_t n;
    const char *key = luaL_checklstring(L, 1, &n);
    char out[WS_ACCEPT_LEN + 1];
    int rc = ws_accept_key(key, n, out);

    if (rc != WS_OK)
        return lws_fail(L, rc, "accept_key: %s", ws_strmessage(rc));
    lua_pushlstring(L, out, WS_ACCEPT_LEN);
    return 1;
}

/*
** core.client_key() -> key | nil, "tls"
** [-0, +1|2, v]  A fresh Sec-WebSocket-Key (base64 of 16 random bytes, §4.1).
** Usage: local key = assert(core.client_key())
*/
static int lcodec_client_key(lua_State *L)
{
    char out[WS_KEY_LEN + 1];
    int rc = ws_client_key(out);

    if (rc != WS_OK)
        return lws_fail(L, rc, "client_key: %s", ws_strmessage(rc));
    lua_pushlstring(L, out, WS_KEY_LEN);
    return 1;
}

/*
** core.strerror(code) -> token
** [-0, +1, v]  The token for a WS_* result code ("closed", "partial", ...).
** Usage: core.strerror(-2) --> "closed"
*/
static int lcodec_strerror(lua_State *L)
{
    lua_Integer code = luaL_checkinteger(L, 1);

    lua_pushstring(L, code >= INT_MIN && code <= INT_MAX ? ws_strerror((int)code) : "unknown error");
    return 1;
}

/* core.cidr(s) -> "10.0.0.0/8" | nil: an address or CIDR range in its
 * one written form (proto/addr.h), as trusted_proxies reads it (options.lua
 * checks the option with it). [-0, +1, v] */
static int lcodec_cidr(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    struct ws_cidr c;
    char out[WS_ADDR_TEXT_MAX + 8];
    if (!ws_cidr_parse(s, len, &c)) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushlstring(L, out, ws_cidr_format(&c, out, sizeof out));
    return 1;
}

static const luaL_Reg codec_funcs[] = {
    { "cidr", lcodec_cidr },
    { "frame_encode", lcodec_frame_encode },
    { "frame_header", lcodec_frame_header },
    { "mask", lcodec_mask },
    { "close_code_valid", lcodec_close_code_valid },
    { "reader", lcodec_reader },
    { "utf8_valid", lcodec_utf8_valid },
    { "utf8_feed", lcodec_utf8_feed },
    { "http_parse_request", lcodec_http_parse_request },
    { "http_parse_response", lcodec_http_parse_response },
    { "http_header", lcodec_http_header },
    { "http_has_token", lcodec_http_has_token },
    { "http_reason", lcodec_http_reason },
    { "handshake_check", lcodec_handshake_check },
    { "handshake_is_upgrade", lcodec_handshake_is_upgrade },
    { "accept_key", lcodec_accept_key },
    { "client_key", lcodec_client_key },
    { "strerror", lcodec_strerror },
    { NULL, NULL }
};

static const luaL_Reg reader_methods[] = {
    { "feed", lreader_feed },
    { "in_message", lreader_in_message },
    { NULL, NULL }
};

/*
** See lua_core.h. The reader metatable is made once per state (a second
** require, or busted's insulation, finds it in the registry).
*/
void lws_codec_open(lua_State *L)
{
    luaL_setfuncs(L, codec_funcs, 0);
    lua_pushinteger(L, WS_UTF8_ACCEPT);
    lua_setfield(L, -2, "UTF8_ACCEPT");
    lua_pushinteger(L, WS_UTF8_REJECT);
    lua_setfield(L, -2, "UTF8_REJECT");
    if (luaL_newmetatable(L, READER_MT)) {
        luaL_newlib(L, reader_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, lreader_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
}
