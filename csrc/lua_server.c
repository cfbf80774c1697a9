/* SPDX-License-Identifier: MIT
 *
 * lua_server.c -- the "luaws.server" userdata: a listening WebSocket server.
 *
 * The Lua layer (lua/luaws/server.lua) owns routing and app policy; this file
 * gives it a server that calls one function, on_request(ws, req), for every
 * request head, plus the calls that must be fast in C: broadcast (one frame
 * header for every connection), stats and close.
 *
 * Lifetime: while it listens or has connections, the registry anchors the
 * server, because its connections point at its options.
 */
#include "lua_core.h"

#include <string.h>

#include "frame.h"
#include "loop.h"
#include "server.h"
#include "tls.h"

struct lserver {
    struct server s;
    int anchor;   /* registry ref while listening or with connections */
};

static struct lserver *lserver_check(lua_State *L, int i)
{
    return luaL_checkudata(L, i, LWS_SERVER_MT);
}

static struct conn *lserver_alloc(struct server *s)
{
    return lws_conn_new_server(lws_main, s);
}

void lws_server_push_handler(lua_State *L, struct server *s)
{
    struct lserver *ls = (struct lserver *)s;
    lws_pushref(L, ls->anchor);
    lua_getiuservalue(L, -1, 1);
    lua_remove(L, -2);
}

int lws_server_handlers_ref(lua_State *L, struct server *s, int idx)
{
    struct lserver *ls = (struct lserver *)s;
    int ref;
    idx = lua_absindex(L, idx);
    lws_pushref(L, ls->anchor);
    lua_getiuservalue(L, -1, 2);           /* {[handlers] = ref} */
    lua_pushvalue(L, idx);
    if (lua_rawget(L, -2) == LUA_TNUMBER) {
        ref = (int)lua_tointeger(L, -1);
        lua_pop(L, 3);
        return ref;
    }
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
    ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, idx);
    lua_pushinteger(L, ref);
    lua_rawset(L, -3);
    lua_pop(L, 2);
    return ref;
}

/* Drop the anchor once the server neither listens nor has a connection. */
static void lserver_maybe_release(lua_State *L, struct lserver *ls)
{
    if (ls->s.closed && ls->s.nconns == 0 && ls->anchor != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, ls->anchor);
        ls->anchor = LUA_NOREF;
    }
}

void lws_server_conn_released(lua_State *L, struct server *s)
{
    lserver_maybe_release(L, (struct lserver *)s);
}

/*
** core.listen(host, port, opts, on_request) -> server | nil, token, detail
** [-0, +1|3, e]  host "*" or nil: every address. opts: the conn options
** (see conn.h) plus max_connections, backlog and tls. on_request(req)
** answers each request head (see lua_conn.c).
** Usage: local s = core.listen("127.0.0.1", 0, {}, function(req) ... end)
*/
static int lserver_listen(lua_State *L)
{
    const char *host = luaL_optstring(L, 1, NULL);
    lua_Integer port = luaL_checkinteger(L, 2);
    struct lserver *ls;
    lua_Integer backlog = 511, maxc = 0;
    char err[256];
    int rc;
    luaL_checktype(L, 3, LUA_TTABLE);
    luaL_checktype(L, 4, LUA_TFUNCTION);
    luaL_argcheck(L, port >= 0 && port <= 65535, 2, "port out of range");
    ls = lua_newuserdatauv(L, sizeof *ls, 2);
    memset(ls, 0, sizeof *ls);
    ls->anchor = LUA_NOREF;
    ls->s.closed = 1;
    luaL_setmetatable(L, LWS_SERVER_MT);
    ls->s.opt.keep_alive_interval = 120;
    ls->s.opt.handshake_timeout = 10;
    ls->s.opt.close_timeout = 5;
    ls->s.opt.max_message_size = 16u << 20;
    ls->s.opt.max_backpressure = 16u << 20;
    ls->s.opt.receive_buffer_size = 4096;
    lws_read_conn_options(L, 3, &ls->s.opt);
    if (lua_getfield(L, 3, "max_connections") != LUA_TNIL)
        maxc = luaL_checkinteger(L, -1);
    if (lua_getfield(L, 3, "backlog") != LUA_TNIL)
        backlog = luaL_checkinteger(L, -1);
    lua_pop(L, 2);
    ls->s.max_connections = maxc > 0 ? (size_t)maxc : 0;
    if (lua_getfield(L, 3, "tls") == LUA_TTABLE) {
        const char *cert, *key;
        lua_getfield(L, -1, "certificate");
        lua_getfield(L, -2, "key");
        cert = lua_tostring(L, -2);
        key = lua_tostring(L, -1);
        luaL_argcheck(L, cert && key, 3, "tls needs certificate and key (PEM file names)");
        ls->s.tls = tls_server_ctx(cert, key, err, sizeof err);
        if (!ls->s.tls)
            return lws_fail(L, WS_ETLS, err);
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
    ls->s.hooks = &lws_conn_hooks;
    ls->s.alloc = lserver_alloc;
    lua_pushvalue(L, 4);
    lua_setiuservalue(L, -2, 1);
    lua_newtable(L);
    lua_setiuservalue(L, -2, 2);
    rc = server_listen(&ls->s, host, (int)port, (int)backlog, err, sizeof err);
    if (rc != WS_OK)
        return lws_fail(L, rc, err);
    lua_pushvalue(L, -1);
    ls->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
}

/* server:port() -> the bound port. [-0, +1, v] */
static int lserver_port(lua_State *L)
{
    lua_pushinteger(L, lserver_check(L, 1)->s.port);
    return 1;
}

/* server:close([code [, reason]]): stop accepting; with a code (default
 * 1001) also close every connection. [-0, +0, v] */
static int lserver_close(lua_State *L)
{
    struct lserver *ls = lserver_check(L, 1);
    lua_Integer code = luaL_optinteger(L, 2, 1001);
    const char *reason = luaL_optstring(L, 3, "server closed");
    luaL_argcheck(L, code == 0 || ws_close_code_valid((unsigned)code), 2, "invalid close code");
    server_close(&ls->s, (unsigned)code, reason, 0);
    lserver_maybe_release(L, ls);
    return 0;
}

/*
** server:broadcast(data [, kind [, except [, handlers]]]) -> number sent to
** [-0, +1, v]  One frame header for all open connections (but except), or,
** given a route's handlers table, for that route's connections only.
** Connections over their backpressure cap are closed with 1008 and not
** counted. Usage: server:broadcast("tick")
*/
static int lserver_broadcast(lua_State *L)
{
    static const char *const kinds[] = { "text", "binary", NULL };
    struct lserver *ls = lserver_check(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    int kind = luaL_checkoption(L, 3, "text", kinds);
    const struct conn *except = lua_isnoneornil(L, 4) ? NULL : lws_conn_check(L, 4);
    int route = LUA_NOREF;
    uint8_t hdr[WS_MAX_HEADER];
    size_t hlen = ws_frame_header_encode(hdr, 1, kind ? WS_OP_BINARY : WS_OP_TEXT, len, NULL);
    struct conn *c, *next;
    lua_Integer n = 0;
    if (!lua_isnoneornil(L, 5)) {
        luaL_checktype(L, 5, LUA_TTABLE);
        route = lws_server_handlers_ref(L, &ls->s, 5);
    }
    for (c = ls->s.conns; c; c = next) {
        next = c->next;   /* a failing send only queues the finish; the list holds */
        if (c == except || c->state != CONN_OPEN)
            continue;
        if (route != LUA_NOREF && lws_conn_handlers_ref(c) != route)
            continue;   /* only the connections whose handlers are the route's */
        if (conn_send_preframed(c, hdr, hlen, data, len) == WS_OK)
            n++;
    }
    lua_pushinteger(L, n);
    return 1;
}

/* server:stats() -> {connections, pending, accepted, upgraded, rejected,
 * messages_in, messages_out, bytes_in, bytes_out, frames_cut, shutdown_cut}.
 * [-0, +1, v] */
static int lserver_stats(lua_State *L)
{
    struct lserver *ls = lserver_check(L, 1);
    const struct server_stats *st = &ls->s.stats;
    lua_createtable(L, 0, 11);
#define FIELD(name, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, -2, name))
    FIELD("connections", ls->s.nopen);
    FIELD("pending", ls->s.nconns - ls->s.nopen);
    FIELD("accepted", st->accepted);
    FIELD("upgraded", st->upgraded);
    FIELD("rejected", st->rejected);
    FIELD("messages_in", st->msgs_in);
    FIELD("messages_out", st->msgs_out);
    FIELD("bytes_in", st->bytes_in);
    FIELD("bytes_out", st->bytes_out);
    FIELD("frames_cut", st->frames_cut);
    FIELD("shutdown_cut", st->shutdown_cut);
#undef FIELD
    return 1;
}

/* server:connections() -> array of the open connections. [-0, +1, v] */
static int lserver_connections(lua_State *L)
{
    struct lserver *ls = lserver_check(L, 1);
    struct conn *c;
    lua_Integer i = 0;
    lua_createtable(L, (int)ls->s.nopen, 0);
    for (c = ls->s.conns; c; c = c->next) {
        if (c->state != CONN_OPEN)
            continue;
        lws_conn_push(L, c);
        lua_rawseti(L, -2, ++i);
    }
    return 1;
}

static int lserver_tostring(lua_State *L)
{
    struct lserver *ls = lserver_check(L, 1);
    lua_pushfstring(L, "luaws.server{port=%d; %s; %d open}", ls->s.port,
                    ls->s.closed ? "closed" : "listening", (int)ls->s.nopen);
    return 1;
}

/* __gc: reached when not anchored (closed, no connection), or at lua_close,
 * when connections may still be live: free them quietly, and the handlers
 * refs with them. */
static int lserver_gc(lua_State *L)
{
    struct lserver *ls = lserver_check(L, 1);
    server_close(&ls->s, 0, NULL, 0);
    while (ls->s.conns)
        lws_conn_destroy(ls->s.conns);   /* unlinks itself from the list */
    loop_server_remove(&ls->s);
    if (lua_getiuservalue(L, 1, 2) == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            luaL_unref(L, LUA_REGISTRYINDEX, (int)lua_tointeger(L, -1));
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    if (ls->s.tls) {
        tls_ctx_free(ls->s.tls);
        ls->s.tls = NULL;
    }
    return 0;
}

static const luaL_Reg lserver_methods[] = {
    { "port", lserver_port },
    { "close", lserver_close },
    { "broadcast", lserver_broadcast },
    { "stats", lserver_stats },
    { "connections", lserver_connections },
    { NULL, NULL }
};

void lws_server_open(lua_State *L)
{
    if (luaL_newmetatable(L, LWS_SERVER_MT)) {
        luaL_newlib(L, lserver_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, lserver_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushcfunction(L, lserver_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, lserver_listen);
    lua_setfield(L, -2, "listen");
}
