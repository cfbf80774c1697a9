/* SPDX-License-Identifier: MIT
 *
 * client.c -- core.connect: a client connection ("luaws.conn" too), and the
 * client side of the handshake as Lua sees it (the 101's protocol, status
 * and headers). The socket work is io/client.c's; the connection is
 * lua/conn.c's.
 */
#include "lua/conn.h"

#include <stdlib.h>
#include <string.h>

#include "io/client.h"
#include "io/tls.h"
#include "lua/open.h"

/* A client owns its options; a server's connections share the server's. */
struct lclient {
    struct lconn l;
    struct conn_options opt;
};

/* The server's valid 101 arrived: note its protocol, status, headers and
 * TLS session in the connection's fields, just before open. */
static void lclient_on_response(struct conn *c, const struct ws_http_head *h, int upgrade,
                                const char *head, size_t head_len)
{
    lua_State *L = lws_main;
    int top = lua_gettop(L);
    const char *p;
    size_t plen;
    (void)upgrade;
    (void)head;
    (void)head_len;
    lws_conn_push(L, c);
    lws_conn_fields(L, lua_gettop(L));
    lws_push_headers(L, h);
    lua_setfield(L, -2, "headers");
    lua_pushinteger(L, h->status);
    lua_setfield(L, -2, "status");
    if ((p = ws_http_known_value(h, WS_H_SEC_WEBSOCKET_PROTOCOL, &plen)) != NULL) {
        lua_pushlstring(L, p, plen);
        lua_setfield(L, -2, "protocol");
    }
    if (c->tp.ssl) {   /* ws.tls: the server's certificate, what was negotiated */
        lws_push_tls(L, c);
        lua_setfield(L, -2, "tls");
    }
    lua_settop(L, top);
}

static const struct conn_hooks lclient_hooks = {
    lclient_on_response, lws_conn_on_open, lws_conn_on_message, lws_conn_on_fragment,
    lws_conn_on_control, lws_conn_on_drain, lws_conn_on_close, lws_conn_release,
    NULL   /* on_refused: a server's */
};

/*
** core.connect(host, port, path, handlers [, opts [, headers]]) -> ws | nil, message, token
** [-0, +1|3, e]  A client connection, connecting in the background: its
** handlers get open, message, close like a server's. opts: the conn options
** (handshake_timeout, max_message_size, …) and tls.
** Usage: local ws = core.connect("127.0.0.1", 5000, "/ws", handlers)
*/
static int lclient_connect(lua_State *L)
{
    const char *host = luaL_checkstring(L, 1);
    lua_Integer port = luaL_checkinteger(L, 2);
    const char *path = luaL_checkstring(L, 3);
    struct client_params p;
    struct ssl_ctx_st *tls_ctx = NULL;
    struct lclient *cl;
    char err[256];
    const char *bad;
    int rc, started;

    /* everything that may raise comes before the socket exists */
    luaL_checktype(L, 4, LUA_TTABLE);
    luaL_argcheck(L, port >= 1 && port <= 65535, 2, "port out of range");
    luaL_argcheck(L, path[0] == '/' && !strpbrk(path, " \r\n") && strlen(path) < 700, 3,
                  "path must start with / and have no spaces");
    luaL_argcheck(L, strlen(host) < 256 && !strpbrk(host, " \r\n/"), 1, "invalid host");
    cl = calloc(1, sizeof *cl);
    if (!cl)
        return lws_fail(L, WS_ENOMEM, "connect %s:%d: out of memory", host, (int)port);
    /* the defaults are lua/luaws/options.lua's: the Lua layer passes them all */
    if (!lua_isnoneornil(L, 5)) {
        luaL_checktype(L, 5, LUA_TTABLE);
        lws_read_conn_options(L, 5, &cl->opt);   /* may raise: nothing is open yet */
    }
    if (!lua_isnoneornil(L, 6))
        luaL_checktype(L, 6, LUA_TTABLE);
    bad = lws_header_lines(L, 6);   /* pushes the lines */
    if (bad) {
        free(cl);
        return luaL_error(L, "invalid header %s", bad);
    }
    if (!lua_isnoneornil(L, 5) && lua_getfield(L, 5, "tls") == LUA_TTABLE) {
        /* tls = {verify = true, ca = "ca.pem", certificate =, key =} for wss:// */
        lua_getfield(L, -1, "verify");
        lua_getfield(L, -2, "ca");
        lua_getfield(L, -3, "certificate");
        lua_getfield(L, -4, "key");
        tls_ctx = tls_client_ctx(lua_isnil(L, -4) || lua_toboolean(L, -4), lua_tostring(L, -3),
                                 lua_tostring(L, -2), lua_tostring(L, -1), err, sizeof err);
        lua_pop(L, 5);
        if (!tls_ctx) {
            free(cl);
            return lws_fail(L, WS_ETLS, "tls: %s", err);
        }
    } else if (!lua_isnoneornil(L, 5)) {
        lua_pop(L, 1);
    }
    lws_conn_prepare(&cl->l);
    p.host = host;
    p.port = (int)port;
    p.path = path;
    p.extra = lua_tolstring(L, -1, &p.extra_len);
    p.tls = tls_ctx;
    p.hooks = &lclient_hooks;
    p.opt = &cl->opt;
    rc = client_connect(&cl->l.c, &p, &started, err, sizeof err);
    tls_ctx_free(tls_ctx);   /* a session holds its own reference */
    if (!started) {
        free(cl);
        return lws_fail(L, rc, rc == WS_ETLS ? "tls: %s" : "connect %s:%d: %s",
                        rc == WS_ETLS ? err : host, (int)port, err);
    }
    lua_pushvalue(L, 4);
    cl->l.handlers_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    cl->l.own_handlers = 1;
    if (rc != WS_OK)   /* aborted: its release frees it */
        return lws_fail(L, rc, "connect %s:%d: %s", host, (int)port, err);
    lws_conn_push(L, &cl->l.c);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, host);
    lua_setfield(L, -2, "remote");
    lua_pushinteger(L, port);
    lua_setfield(L, -2, "port");
    lua_newtable(L);
    lua_setfield(L, -2, "data");
    lua_setiuservalue(L, -2, 1);
    return 1;
}

void lws_client_open(lua_State *L)
{
    lua_pushcfunction(L, lclient_connect);
    lua_setfield(L, -2, "connect");
}
