/* SPDX-License-Identifier: MIT
 *
 * conn.c -- connections as Lua sees them ("luaws.conn"), server side and
 * client side, and the hooks that carry their events into Lua handlers. How
 * a connection comes to be is its creator's: server.c (accept, on_request)
 * and client.c (connect); they include conn.h, this file includes neither.
 *
 * Memory: C owns every connection (struct lconn, malloc'd at accept or
 * connect, freed at release). Lua sees a small box userdata that points at
 * it, made the first time a script needs the connection (a handler runs,
 * server:connections(), a client's luaws.connect), and anchored in the
 * registry while the connection lives. An idle server connection whose route
 * has nothing to say to it therefore costs no Lua object at all, only its C
 * struct and its request head; the Lua heap (and the garbage collector's
 * slack on it) does not grow with idle connections.
 *
 * The box's user value is the fields table (path, headers, protocol, remote,
 * data, and whatever a script stores: ws.name = …), made on first write, or
 * on first read of ws.headers / ws.data; until then those fields are read
 * from the C side (the request head kept with the connection). At release
 * the table is made if a box exists, so a script holding ws after the close
 * still reads them; the box then points at nothing and its methods answer
 * nil, "closed".
 *
 * Handlers: the route's handlers table is shared by all its connections; the
 * server keeps one registry ref per handlers table (lua_server.c), and a
 * connection holds that number. A client's handlers are its own ref.
 *
 * Errors: misuse raises; I/O returns nil, token (see ws_strerror). A handler
 * that raises is logged with its traceback and its connection closed with
 * 1011; the others go on.
 */
#include "lua/conn.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/tls.h"
#include "lua/open.h"
#include "proto/frame.h"
#include "proto/http.h"
#include "proto/utf8.h"

/* The "luaws.conn" userdata. User value 1: the fields table, or nil; user
 * value 2: the coroutine that may park in its receive() (owner), or nil. */
struct lbox {
    struct lconn *l;            /* NULL once the connection was released */
    /* the coroutine style's message path (see lconn_receive below) */
    lua_State *receiver;        /* the coroutine parked in receive(), or NULL */
    lua_State *owner;           /* the coroutine that may park (user value 2) */
    uint8_t parkable;           /* 1 while its queue is empty and it is open */
    uint8_t in_receive;         /* the receiver parked in receive(), not a timed wait */
};

/* ------------------------------------------------------------ helpers */

/* Registry key (a light userdata) of the "luaws.conn" metatable: checking a
 * box against it costs a pointer lookup, where luaL_checkudata looks the
 * metatable up by name (a strcmp in Lua's string cache) on every call. */
static const char conn_mt_key = 'c';

/* That metatable's address in the state that opened the module last: one
 * pointer comparison on every method call. Another state's boxes (the
 * module opened in more than one) are told by the registry key. */
static const void *conn_mt;

static struct lbox *lconn_box(lua_State *L, int i)
{
    void *p = lua_touserdata(L, i);
    if (p && lua_getmetatable(L, i)) {
        int same = lua_topointer(L, -1) == conn_mt;
        if (!same) {
            lua_rawgetp(L, LUA_REGISTRYINDEX, &conn_mt_key);
            same = lua_rawequal(L, -1, -2);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        if (same)
            return p;
    }
    luaL_typeerror(L, i, LWS_CONN_MT);
    return NULL;
}

/* The live connection of the box at i, or NULL once it was released. */
static struct lconn *lconn_live(lua_State *L, int i)
{
    return lconn_box(L, i)->l;
}

/* Push the box of a live connection, making it on first use. */
void lws_conn_push(lua_State *L, struct conn *c)
{
    struct lconn *l = (struct lconn *)c;
    if (l->box) {
        lws_pushref(L, l->box_ref);
        return;
    }
    l->box = lua_newuserdatauv(L, sizeof *l->box, 2);
    memset(l->box, 0, sizeof *l->box);
    l->box->l = l;
    luaL_setmetatable(L, LWS_CONN_MT);
    lua_pushvalue(L, -1);
    l->box_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

#define lconn_push lws_conn_push

void lws_conn_prepare(struct lconn *l)
{
    l->box_ref = LUA_NOREF;
    l->handlers_ref = LUA_NOREF;
}

/*
** Start a call of handler `name` of c's route: push the traceback handler,
** the function and ws, in that order (no stack rotation on the message
** path). Returns the traceback handler's index for lconn_end, or 0 (nothing
** pushed) when the route has no such handler. The caller pushes the other
** arguments.
*/
static int lconn_begin(lua_State *L, struct conn *c, const char *name)
{
    struct lconn *l = (struct lconn *)c;
    int top = lua_gettop(L);
    if (l->handlers_ref == LUA_NOREF)
        return 0;
    lua_pushcfunction(L, lws_traceback);
    if (lws_pushref(L, l->handlers_ref) != LUA_TTABLE || lua_getfield(L, -1, name) != LUA_TFUNCTION) {
        lua_settop(L, top);
        return 0;
    }
    lua_replace(L, -2);   /* the function takes the table's slot */
    lconn_push(L, c);
    return top + 1;
}

/* Run the call lconn_begin started with the arguments pushed since. A
 * raising handler is logged; with close_on_error its connection is closed
 * with 1011. Leaves the stack as it was before lconn_begin. */
static void lconn_end(lua_State *L, struct conn *c, int msgh, const char *what, int close_on_error)
{
    if (lua_pcall(L, lua_gettop(L) - msgh - 1, 0, msgh) != LUA_OK) {
        lws_report(L, what);
        if (close_on_error)
            conn_close(c, 1011, "handler error", 13);
    }
    lua_settop(L, msgh - 1);
}

/* "ip" and port of the connection's client (kept from accept/connect, so
 * it still answers after the close), pushed as two values: the socket's
 * peer ("unix", 0 on a unix socket), or behind a trusted proxy or a PROXY
 * header the client they name (port 0 when they name none). */
static void lconn_push_peer(lua_State *L, const struct conn *c)
{
    char host[WS_ADDR_TEXT_MAX] = "?";
    struct ws_addr a;
    conn_client_addr(c, &a);
    if (a.family != WS_AF_NONE)
        ws_addr_format(&a, host, sizeof host);
    lua_pushstring(L, host);
    lua_pushinteger(L, a.port);
}

/* Push a table of a head's headers: lower-case names; repeated headers
 * joined with ", " (RFC 9110 §5.3). */
void lws_push_headers(lua_State *L, const struct ws_http_head *h)
{
    size_t i, j;
    lua_createtable(L, 0, (int)h->num_headers);
    for (i = 0; i < h->num_headers; i++) {
        char name[128];
        size_t n = h->headers[i].name_len < sizeof name ? h->headers[i].name_len : sizeof name;
        for (j = 0; j < n; j++) {
            char ch = h->headers[i].name[j];
            name[j] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
        }
        lua_pushlstring(L, name, n);
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) == LUA_TSTRING) {
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, h->headers[i].value, h->headers[i].value_len);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushlstring(L, h->headers[i].value, h->headers[i].value_len);
        }
        lua_rawset(L, -3);
    }
}

/* Push a string of "Name: value\r\n" lines from a table {name = value} at
 * index i (nothing there: ""). Never raises (it runs inside loop hooks):
 * returns NULL, or the name of the first bad entry (a name that is not a
 * plain token, a value that is not a string or number or holds CR/LF), which
 * is left out. Header sets are small, so plain concatenation does. */
const char *lws_header_lines(lua_State *L, int i)
{
    const char *bad = NULL;
    int acc;
    i = lua_absindex(L, i);
    lua_pushliteral(L, "");
    acc = lua_gettop(L);
    if (!lua_istable(L, i))
        return NULL;
    lua_pushnil(L);
    while (lua_next(L, i)) {
        const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        const char *value = lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER
                                ? lua_tostring(L, -1) : NULL;
        if (!name || !value || !*name || strpbrk(name, "\r\n: \t") || strpbrk(value, "\r\n")) {
            if (!bad)
                bad = name ? name : "?";
        } else {
            lua_pushvalue(L, acc);
            lua_pushfstring(L, "%s: %s\r\n", name, value);
            lua_concat(L, 2);
            lua_replace(L, acc);
        }
        lua_pop(L, 1);
    }
    return bad;
}

void lws_push_tls(lua_State *L, const struct conn *c)
{
    struct tls_info ti;
    char buf[1024];
    int i, n;
    if (!c->tp.ssl) {
        lua_pushnil(L);
        return;
    }
    tls_get_info(c->tp.ssl, &ti);
    lua_createtable(L, 0, 10);
    if (ti.version) {
        lua_pushstring(L, ti.version);
        lua_setfield(L, -2, "protocol");
    }
    if (ti.cipher) {
        lua_pushstring(L, ti.cipher);
        lua_setfield(L, -2, "cipher");
    }
    if (ti.alpn && ti.alpn_len) {
        lua_pushlstring(L, (const char *)ti.alpn, ti.alpn_len);
        lua_setfield(L, -2, "alpn");
    }
    if (ti.server_name) {
        lua_pushstring(L, ti.server_name);
        lua_setfield(L, -2, "server_name");
    }
    if (!ti.peer)
        return;
    lua_pushboolean(L, ti.verified);
    lua_setfield(L, -2, "verified");
    {
        static const struct { int field; const char *name; } f[] = {
            { TLS_SUBJECT, "subject" }, { TLS_ISSUER, "issuer" }, { TLS_SERIAL, "serial" },
            { TLS_FINGERPRINT, "fingerprint" },
        };
        for (i = 0; i < (int)(sizeof f / sizeof f[0]); i++)
            if ((n = tls_peer_field(c->tp.ssl, f[i].field, 0, buf, sizeof buf)) >= 0) {
                lua_pushlstring(L, buf, (size_t)n);
                lua_setfield(L, -2, f[i].name);
            }
    }
    lua_newtable(L);
    for (i = 0; i < 256 && (n = tls_peer_field(c->tp.ssl, TLS_SAN, i, buf, sizeof buf)) >= 0; i++) {
        lua_pushlstring(L, buf, (size_t)n);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "san");
}

/* A request table's head bytes, for its headers on first use. */
static const char head_key = 'h';

int lws_push_header(lua_State *L, const struct ws_http_head *h, const char *name)
{
    const struct ws_http_header *hd = NULL;
    int found = 0;
    while ((hd = ws_http_header_next(h, name, hd)) != NULL) {
        /* joined as each repeat comes: a head may repeat a header far more
         * often than the C stack has free slots (LUA_MINSTACK) */
        if (found)
            lua_pushliteral(L, ", ");
        lua_pushlstring(L, hd->value, hd->value_len);
        if (found)
            lua_concat(L, 3);
        found = 1;
    }
    return found;
}

/* Push the request table of a parsed head: method, target, path, query,
 * headers (at once, or with the head's bytes on first use), origin,
 * upgrade, remote, port, secure, and tls on a TLS connection. */
void lws_push_request(lua_State *L, const struct conn *c, const struct ws_http_head *h, int upgrade,
                      const char *head, size_t head_len)
{
    int req;
    lua_createtable(L, 0, 10);
    req = lua_gettop(L);
    if (luaL_getmetatable(L, LWS_REQUEST_MT) == LUA_TTABLE)
        lua_setmetatable(L, req);   /* req.args, req.cookies, ... on first use */
    else
        lua_pop(L, 1);
    lua_pushlstring(L, h->method, h->method_len);
    lua_setfield(L, req, "method");
    lua_pushlstring(L, h->target, h->target_len);
    lua_setfield(L, req, "target");
    {
        const char *q = memchr(h->target, '?', h->target_len);
        size_t plen = q ? (size_t)(q - h->target) : h->target_len;
        lua_pushlstring(L, h->target, plen);
        lua_setfield(L, req, "path");
        if (q) {
            lua_pushlstring(L, q + 1, h->target_len - plen - 1);
            lua_setfield(L, req, "query");
        }
    }
    if (head) {
        /* the policy reads the origin of every upgrade; the headers table
         * (a third of a handshake's instructions) waits for a reader */
        if (lws_push_header(L, h, "origin"))
            lua_setfield(L, req, "origin");
        lua_pushlstring(L, head, head_len);
        lua_rawsetp(L, req, &head_key);
    } else {
        lws_push_headers(L, h);
        lua_getfield(L, -1, "origin");
        lua_setfield(L, req, "origin");
        lua_setfield(L, req, "headers");
    }
    lua_pushboolean(L, upgrade);
    lua_setfield(L, req, "upgrade");
    lconn_push_peer(L, c);
    lua_setfield(L, req, "port");
    lua_setfield(L, req, "remote");
    lua_pushboolean(L, conn_secure(c));
    lua_setfield(L, req, "secure");
    if (c->tp.ssl) {
        lws_push_tls(L, c);
        lua_setfield(L, req, "tls");
    }
}

/* core.request_headers(req) -> the headers table of a request table made
 * with its head's bytes (lws_push_request), or nil. [-0, +1, v] */
static int lconn_request_headers(lua_State *L)
{
    struct ws_http_head h;
    size_t len;
    const char *head;
    luaL_checktype(L, 1, LUA_TTABLE);
    if (lua_rawgetp(L, 1, &head_key) != LUA_TSTRING)
        return 0;
    head = lua_tolstring(L, -1, &len);
    if (ws_http_parse_request(head, len, &h) <= 0)
        return 0;
    lws_push_headers(L, &h);
    return 1;
}

/* The protocol part of a kept head: after the NUL, or NULL if none. */
static const char *lconn_head_protocol(const struct lconn *l, size_t *len)
{
    const char *nul = l->head ? memchr(l->head, '\0', l->head_len) : NULL;
    if (!nul || nul + 1 >= l->head + l->head_len)
        return NULL;
    *len = (size_t)(l->head + l->head_len - nul - 1);
    return nul + 1;
}

/*
** Make sure the box at index ud has its fields table, and push it. A
** server connection's is a request table made from the kept head without
** parsing it again (it is made at the close of every connection a script
** holds, so that ws.path & co outlive the connection): the request line's
** parts from the offsets kept at accept, protocol, remote, port, secure,
** tls, and the head's bytes for headers and origin on first use (the
** request metatable; data, args, cookies, params too). A client's: remote,
** port, secure and an empty data table.
*/
void lws_conn_fields(lua_State *L, int ud)
{
    struct lbox *box = lua_touserdata(L, ud);
    const struct lconn *l = box->l;
    int t;
    ud = lua_absindex(L, ud);
    if (lua_getiuservalue(L, ud, 1) == LUA_TTABLE)
        return;
    lua_pop(L, 1);
    lua_createtable(L, 0, l && l->head ? 10 : 4);
    t = lua_gettop(L);
    if (l && l->head) {
        const char *s = l->head, *target = s + l->method_len + 1, *p;
        size_t plen;
        if (luaL_getmetatable(L, LWS_REQUEST_MT) == LUA_TTABLE)
            lua_setmetatable(L, t);
        else
            lua_pop(L, 1);
        lua_pushlstring(L, s, l->method_len);
        lua_setfield(L, t, "method");
        lua_pushlstring(L, target, l->target_len);
        lua_setfield(L, t, "target");
        lua_pushlstring(L, target, l->path_len);
        lua_setfield(L, t, "path");
        if (l->path_len < l->target_len) {
            lua_pushlstring(L, target + l->path_len + 1, (size_t)(l->target_len - l->path_len - 1));
            lua_setfield(L, t, "query");
        }
        if ((p = lconn_head_protocol(l, &plen)) != NULL) {
            lua_pushlstring(L, p, plen);
            lua_setfield(L, t, "protocol");
        }
        lua_pushstring(L, s);   /* the head, up to the NUL before the protocol */
        lua_rawsetp(L, t, &head_key);
    } else {
        lua_newtable(L);
        lua_setfield(L, t, "data");
    }
    if (l) {
        lconn_push_peer(L, &l->c);
        lua_setfield(L, t, "port");
        lua_setfield(L, t, "remote");
        lua_pushboolean(L, conn_secure(&l->c));
        lua_setfield(L, t, "secure");
        if (l->head && l->c.tp.ssl) {
            lws_push_tls(L, &l->c);
            lua_setfield(L, t, "tls");
        }
    }
    lua_pushvalue(L, t);
    lua_setiuservalue(L, ud, 1);
}

/* ------------------------------------------------------------ hooks */

void lws_conn_on_open(struct conn *c)
{
    lua_State *L = lws_main;
    int h = lconn_begin(L, c, "open");
    if (h)
        lconn_end(L, c, h, "open handler", 1);
}

/*
** The text message a message handler is running for: its bytes were checked
** as UTF-8 on the way in, so ws:send of that very string (an echo) skips the
** check. The string is kept on the stack below the call for as long as the
** pointer is set, so no other string can take its address meanwhile.
*/
static const char *checked_text;
static size_t checked_len;

/* Shorter texts are checked again: that costs less than keeping them. */
#define CHECKED_MIN 256

/* Push a data message's kind for Lua: "text" or "binary". */
static void lconn_push_kind(lua_State *L, int opcode)
{
    if (opcode == WS_OP_TEXT)
        lua_pushliteral(L, "text");
    else
        lua_pushliteral(L, "binary");
}

/*
** The coroutine style's message path (lua/luaws/conn.lua). ws:receive() and
** ws:messages() are C closures here. A coroutine luaws runs that received
** on a connection before (its owner, kept in the box's user value 2) and
** finds its queue empty (parkable) parks right here: it notes itself as
** the receiver and yields. The next message resumes it from
** lws_conn_on_message with (msg, kind): no handler call, no Lua queue, no
** Lua function on the way. Everything else, the first receive, a timeout,
** a queued message, a plain script, goes to conn.lua's receive_general.
** When that finds an empty queue with no deadline in a coroutine luaws
** runs, it answers the marker and the coroutine parks here all the same
** (and becomes the owner); a wait with a deadline parks through
** core.conn_await. A message for the Lua handlers (queued), or the close,
** makes the queue not parkable; the close resumes a parked receiver with
** nothing, and it asks receive_general what happened.
*/
static const char finish_key = 'f';   /* registry: conn.lua's finish(co, ok, err) */

/* Make L the owner of box b (at index 1): it may park from now on. */
static void lconn_own(lua_State *L, struct lbox *b)
{
    if (b->owner != L) {
        lua_pushthread(L);
        lua_setiuservalue(L, 1, 2);
        b->owner = L;
    }
}

/* lconn_receive's continuation context: 0 after a park, else the stack
 * index below receive_general's results. */
#define LCONN_PARKED 0

static int lconn_receive_k(lua_State *L, int status, lua_KContext ctx);

/* In a continuation after a park (the box at index 1): L runs again, so it
 * is no longer the receiver, whoever resumed it. */
static void lconn_unpark(lua_State *L)
{
    struct lbox *b = lua_touserdata(L, 1);
    if (b->receiver == L)
        b->receiver = NULL;
}

/* Park the coroutine L on the box at index 1 (upvalue 1: the marker it
 * yields): it returns the message that resumes it. */
static int lconn_park(lua_State *L, struct lbox *b)
{
    if (lua_isyieldable(L)) {   /* else lua_yieldk raises, and nothing was noted */
        if (b->receiver && b->receiver != L) {
            luaL_where(L, 2);
            lua_pushliteral(L, "another coroutine is already receiving on this connection");
            lua_concat(L, 2);
            return lua_error(L);
        }
        lconn_own(L, b);
        b->parkable = 1;
        b->receiver = L;
        b->in_receive = 1;
    }
    lua_settop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    return lua_yieldk(L, 1, LCONN_PARKED, lconn_receive_k);
}

/* receive_general's results above base: returned, or, when it answered
 * the marker alone (an empty queue, no deadline, a coroutine luaws runs),
 * a park right here, in the caller's own frame. */
static int lconn_receive_done(lua_State *L, int base)
{
    if (lua_gettop(L) == base + 1 && lua_rawequal(L, -1, lua_upvalueindex(1)))
        return lconn_park(L, lua_touserdata(L, 1));
    return lua_gettop(L) - base;
}

/* Call receive_general (upvalue 2) with ws [, timeout] (nargs 0 or 1). */
static int lconn_receive_general(lua_State *L, int nargs)
{
    int base;
    lua_settop(L, 1 + nargs);
    base = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(2));
    for (int i = 1; i <= base; i++)
        lua_pushvalue(L, i);
    lua_callk(L, base, LUA_MULTRET, base, lconn_receive_k);
    return lconn_receive_done(L, base);
}

/* After a park: ws, then what the resume passed: the message, or nothing
 * (woken by the close: receive_general says what happened). After a yield
 * inside receive_general: its results above ctx. */
static int lconn_receive_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    if (ctx != LCONN_PARKED)
        return lconn_receive_done(L, (int)ctx);
    lconn_unpark(L);
    if (lua_gettop(L) > 1)
        return lua_gettop(L) - 1;
    return lconn_receive_general(L, 0);
}

/* ws:receive([timeout]) (upvalue 3 true) and the iterator of ws:messages()
 * (upvalue 3 false: its second argument is the loop's last message). */
static int lconn_receive(lua_State *L)
{
    struct lbox *b = lconn_box(L, 1);
    int timed = lua_toboolean(L, lua_upvalueindex(3)) && !lua_isnoneornil(L, 2);
    if (!timed && b->l && b->parkable && b->owner == L && lua_isyieldable(L))
        return lconn_park(L, b);
    return lconn_receive_general(L, timed);
}

/* After core.conn_await yielded: ws, then what the resume passed. */
static int lconn_await_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    lconn_unpark(L);
    return lua_gettop(L) - 1;
}

/* core.conn_await(ws): receive_general's wait with a deadline on an empty
 * queue, in a coroutine luaws runs; it makes the caller ws's owner.
 * Returns msg, kind when a message resumed it, nothing when something else
 * (the deadline's timer, the close) did. */
static int lconn_await(lua_State *L)
{
    struct lbox *b = lconn_box(L, 1);
    lua_settop(L, 1);
    if (b->l && lua_isyieldable(L)) {
        lconn_own(L, b);
        b->receiver = L;
        b->parkable = 1;
        b->in_receive = 0;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    return lua_yieldk(L, 1, 0, lconn_await_k);
}

/* core.conn_busy(ws) -> true if another coroutine is parked receiving on
 * ws (so the caller may not wait on it). */
static int lconn_busy(lua_State *L)
{
    struct lbox *b = lconn_box(L, 1);
    lua_pushboolean(L, b->l && b->receiver && b->receiver != L);
    return 1;
}

/* core.conn_receivers(marker, receive_general, finish) -> receive, next,
 * await: marker is what a park yields, finish(co, ok, err) runs when a
 * coroutine resumed from here returned or raised. */
static int lconn_receivers(lua_State *L)
{
    luaL_checkany(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    lua_settop(L, 3);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &finish_key);
    for (int timed = 1; timed >= 0; timed--) {
        lua_pushvalue(L, 1);
        lua_pushvalue(L, 2);
        lua_pushboolean(L, timed);
        lua_pushcclosure(L, lconn_receive, 3);
    }
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, lconn_await, 1);
    return 3;
}

/* Resume l's receiver with the nargs values on L's top (moved), and see to
 * what follows if it returned or raised (conn.lua's finish). */
static void lconn_wake(lua_State *L, struct lbox *b, int nargs)
{
    lua_State *co = b->receiver;
    int nres, st;
    b->receiver = NULL;
    lua_xmove(L, co, nargs);
    st = lua_resume(co, L, nargs, &nres);
    if (st == LUA_YIELD) {
        lua_pop(co, nres);
    } else {
        int top = lua_gettop(L);
        lua_pushcfunction(L, lws_traceback);
        lua_rawgetp(L, LUA_REGISTRYINDEX, &finish_key);
        lua_pushthread(co);
        lua_xmove(co, L, 1);
        lua_pushboolean(L, st == LUA_OK);
        if (st == LUA_OK)
            lua_pushnil(L);
        else
            lua_xmove(co, L, 1);   /* the error */
        if (lua_pcall(L, 3, 0, top + 1) != LUA_OK)
            lws_report(L, "coroutine handler");
        lua_settop(L, top);
    }
}

/* Hand the message to l's receiver. Its text is anchored on L's stack
 * meanwhile, so it can be the checked text of an echo. */
static void lconn_hand_over(lua_State *L, struct lconn *l, int opcode, const uint8_t *data, size_t len)
{
    const char *prev = checked_text;
    size_t prev_len = checked_len;
    if (!lua_checkstack(l->box->receiver, 3)) {
        conn_close(&l->c, 1011, "handler error", 13);
        return;
    }
    lua_pushlstring(L, (const char *)data, len);   /* the one copy into Lua */
    lua_pushvalue(L, -1);
    lconn_push_kind(L, opcode);
    if (opcode == WS_OP_TEXT && len >= CHECKED_MIN) {
        checked_text = lua_tostring(L, -2);
        checked_len = len;
    }
    lconn_wake(L, l->box, 2);
    checked_text = prev;
    checked_len = prev_len;
    lua_pop(L, 1);
}

void lws_conn_on_message(struct conn *c, int opcode, const uint8_t *data, size_t len)
{
    lua_State *L = lws_main;
    const char *prev = checked_text;
    size_t prev_len = checked_len;
    int keep = opcode == WS_OP_TEXT && len >= CHECKED_MIN;
    int h;
    struct lbox *b = ((struct lconn *)c)->box;
    if (b) {
        if (b->receiver) {
            lconn_hand_over(L, (struct lconn *)c, opcode, data, len);
            return;
        }
        b->parkable = 0;   /* the message goes to the handler: the queue's, if any */
    }
    if (keep)
        lua_pushlstring(L, (const char *)data, len);   /* the one copy; kept below the call */
    if (!(h = lconn_begin(L, c, "message"))) {
        if (keep)
            lua_pop(L, 1);
        return;
    }
    if (keep) {
        lua_pushvalue(L, h - 1);
        checked_text = lua_tostring(L, h - 1);
        checked_len = len;
    } else {
        lua_pushlstring(L, (const char *)data, len);   /* the one copy into Lua */
    }
    lconn_push_kind(L, opcode);
    lconn_end(L, c, h, "message handler", 1);
    if (keep) {
        checked_text = prev;   /* a handler may run the loop: messages nest */
        checked_len = prev_len;
        lua_pop(L, 1);
    }
}

/* fragment(ws, chunk, kind, fin): one data frame of a message, for a route
 * with a fragment handler (conn_want_fragments). */
void lws_conn_on_fragment(struct conn *c, int opcode, const uint8_t *data, size_t len, int fin)
{
    lua_State *L = lws_main;
    int h = lconn_begin(L, c, "fragment");
    if (!h)
        return;
    lua_pushlstring(L, (const char *)data, len);   /* one frame: its one copy into Lua */
    lconn_push_kind(L, opcode);
    lua_pushboolean(L, fin);
    lconn_end(L, c, h, "fragment handler", 1);
}

void lws_conn_on_control(struct conn *c, int opcode, const uint8_t *data, size_t len)
{
    lua_State *L = lws_main;
    int h = lconn_begin(L, c, opcode == WS_OP_PING ? "ping" : "pong");
    if (!h)
        return;
    lua_pushlstring(L, (const char *)data, len);
    lconn_end(L, c, h, opcode == WS_OP_PING ? "ping handler" : "pong handler", 1);
}

void lws_conn_on_drain(struct conn *c)
{
    lua_State *L = lws_main;
    int h = lconn_begin(L, c, "drain");
    if (h)
        lconn_end(L, c, h, "drain handler", 1);
}

/* Push what a receive on a closed connection says: "receive: the
 * connection is closed (code reason)", without the parentheses when code is
 * negative (none known). The one wording for C's wake of a parked receive
 * and conn.lua's receive_general (core.closed_message). */
static void lconn_push_closed(lua_State *L, int code, const char *reason, size_t len)
{
    if (code < 0) {
        lua_pushliteral(L, "receive: the connection is closed");
        return;
    }
    lua_pushfstring(L, "receive: the connection is closed (%d", code);
    if (len) {
        lua_pushliteral(L, " ");
        lua_pushlstring(L, reason, len);
        lua_concat(L, 3);
    }
    lua_pushliteral(L, ")");
    lua_concat(L, 2);
}

/* core.closed_message([code [, reason]]) -> the words of lconn_push_closed.
 * [-0, +1, v] */
static int lconn_closed_message(lua_State *L)
{
    size_t len = 0;
    const char *reason = luaL_optlstring(L, 2, "", &len);
    lconn_push_closed(L, lua_isnoneornil(L, 1) ? -1 : (int)luaL_checkinteger(L, 1), reason, len);
    return 1;
}

/* close(ws, code, reason, token): token is nil after a close handshake, else
 * what ended the connection ("timeout", "io", "tls", "refused", ...). */
void lws_conn_on_close(struct conn *c, unsigned code, const char *reason, size_t len, int err)
{
    lua_State *L = lws_main;
    struct lconn *l = (struct lconn *)c;
    int h;
    if (l->box) {
        /* a script holds ws: keep how it ended, for ws:close_status() and a
         * ws:close() that waits (lua/luaws/conn.lua) */
        int top = lua_gettop(L);
        lws_pushref(L, l->box_ref);
        lws_conn_fields(L, top + 1);
        lua_pushinteger(L, code);
        lua_setfield(L, -2, "close_code");
        lua_pushlstring(L, reason, len);
        lua_setfield(L, -2, "close_reason");
        lua_settop(L, top);
    }
    if (l->box)
        l->box->parkable = 0;
    h = lconn_begin(L, c, "close");
    if (h) {
        lua_pushinteger(L, code);
        lua_pushlstring(L, reason, len);
        if (err)
            lua_pushstring(L, ws_strerror(err));
        else
            lua_pushnil(L);
        lconn_end(L, c, h, "close handler", 0);
    }
    if (l->box && l->box->receiver) {
        if (l->box->in_receive) {
            /* parked in receive() or messages(): every message went to it
             * straight, so nothing is queued, and it returns what closed
             * the connection, as receive_general would */
            lua_pushnil(L);
            lconn_push_closed(L, (int)code, reason, len);
            lua_pushliteral(L, "closed");
            lconn_wake(L, l->box, 3);
        } else {
            lconn_wake(L, l->box, 0);   /* a timed wait: receive_general says what closed */
        }
    }
}

/* Free a connection's Lua-side things and its memory (no hooks). */
static void lconn_free(lua_State *L, struct lconn *l)
{
    if (l->box) {
        l->box->l = NULL;
        if (L)
            luaL_unref(L, LUA_REGISTRYINDEX, l->box_ref);
    }
    if (l->own_handlers && L)
        luaL_unref(L, LUA_REGISTRYINDEX, l->handlers_ref);
    free(l->head);
    free(l);
}

void lws_conn_release(struct conn *c)
{
    lua_State *L = lws_main;
    struct lconn *l = (struct lconn *)c;
    if (l->box) {
        lws_pushref(L, l->box_ref);
        lws_conn_fields(L, lua_gettop(L));
        lua_pop(L, 2);
    }
    lconn_free(L, l);
}

int lws_conn_keep_head(struct lconn *l, const struct ws_http_head *h, const char *head,
                       size_t head_len, const char *protocol, size_t plen)
{
    const char *q = memchr(h->target, '?', h->target_len);
    l->head = malloc(head_len + 1 + plen);
    if (!l->head)
        return 0;
    memcpy(l->head, head, head_len);
    l->head[head_len] = '\0';
    if (plen)
        memcpy(l->head + head_len + 1, protocol, plen);
    l->head_len = (uint32_t)(head_len + 1 + plen);
    /* the request line's parts, as the parser found them (the head limit
     * keeps them far below 64 KiB): ws.path & co read them from here */
    l->method_len = (uint16_t)h->method_len;
    l->target_len = (uint16_t)h->target_len;
    l->path_len = (uint16_t)(q ? (size_t)(q - h->target) : h->target_len);
    return 1;
}

/* ------------------------------------------------------------ creation */

struct lconn *lws_conn_live(lua_State *L, int idx)
{
    return lconn_live(L, idx);
}

struct conn *lws_conn_check(lua_State *L, int idx)
{
    struct lconn *l = lconn_live(L, idx);
    return l ? &l->c : NULL;
}

int lws_conn_handlers_ref(const struct conn *c)
{
    return ((const struct lconn *)c)->handlers_ref;
}

void lws_conn_destroy(struct conn *c)
{
    conn_destroy(c);
    lconn_free(NULL, (struct lconn *)c);
}

/* Read a number option from table t (index i) into *dst if present. */
static void opt_number(lua_State *L, int i, const char *name, double *dst)
{
    if (lua_getfield(L, i, name) != LUA_TNIL)
        *dst = luaL_checknumber(L, -1);
    lua_pop(L, 1);
}

static void opt_size(lua_State *L, int i, const char *name, size_t *dst)
{
    if (lua_getfield(L, i, name) != LUA_TNIL) {
        lua_Integer v = luaL_checkinteger(L, -1);
        if (v < 0)
            luaL_error(L, "option %s must not be negative", name);
        *dst = (size_t)v;
    }
    lua_pop(L, 1);
}

/* An integer field of the table at i, clamped to lo..hi (options.lua
 * checked it; this keeps the C side safe from a table made by hand). */
static int opt_int(lua_State *L, int i, const char *name, int dflt, int lo, int hi)
{
    lua_Integer v = dflt;
    if (lua_getfield(L, i, name) != LUA_TNIL)
        v = luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    return (int)(v < lo ? lo : v > hi ? hi : v);
}

static int opt_bool(lua_State *L, int i, const char *name)
{
    int v = lua_getfield(L, i, name) != LUA_TNIL && lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

void lws_read_compression(lua_State *L, int i, struct conn_compression *z)
{
    memset(z, 0, sizeof *z);
    if (!lua_istable(L, i))
        return;   /* false or nil: off */
    i = lua_absindex(L, i);
    z->enabled = 1;
    z->threshold = (uint32_t)opt_int(L, i, "threshold", 128, 0, INT32_MAX);
    z->level = (uint8_t)opt_int(L, i, "level", 3, 0, 9);
    z->mem_level = (uint8_t)opt_int(L, i, "mem_level", 8, 1, 9);
    z->cfg.server_no_context_takeover = (uint8_t)opt_bool(L, i, "server_no_context_takeover");
    z->cfg.client_no_context_takeover = (uint8_t)opt_bool(L, i, "client_no_context_takeover");
    z->cfg.server_max_window_bits = (uint8_t)opt_int(L, i, "server_max_window_bits", 15, 8, 15);
    z->cfg.client_max_window_bits = (uint8_t)opt_int(L, i, "client_max_window_bits", 15, 8, 15);
}

void lws_read_conn_options(lua_State *L, int i, struct conn_options *o)
{
    opt_number(L, i, "keep_alive_interval", &o->keep_alive_interval);
    opt_number(L, i, "keep_alive_timeout", &o->keep_alive_timeout);
    opt_number(L, i, "idle_timeout", &o->idle_timeout);
    opt_number(L, i, "handshake_timeout", &o->handshake_timeout);
    opt_number(L, i, "close_timeout", &o->close_timeout);
    opt_size(L, i, "max_message_size", &o->max_message_size);
    opt_size(L, i, "max_backpressure", &o->max_backpressure);
    opt_size(L, i, "receive_buffer_size", &o->receive_buffer_size);
    if (lua_getfield(L, i, "check_send_utf8") != LUA_TNIL) {
        luaL_checktype(L, -1, LUA_TBOOLEAN);
        o->trust_send_utf8 = !lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    if (lua_getfield(L, i, "compression") != LUA_TNIL)
        lws_read_compression(L, -1, &o->compression);
    lua_pop(L, 1);
    /* The Lua layer refuses less than 256 (options.lua); this is the read
     * path's own floor (a frame header must fit), not a policy. */
    if (o->receive_buffer_size < 256)
        o->receive_buffer_size = 256;
}


/* ------------------------------------------------------------ methods */

/* The send options table at index i ({fin = bool}; raises on anything
 * else): the value of fin, true when absent. */
static int lconn_send_fin(lua_State *L, int i)
{
    int fin = 1;
    luaL_checktype(L, i, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, i)) {
        if (lua_type(L, -2) != LUA_TSTRING || strcmp(lua_tostring(L, -2), "fin") != 0)
            return luaL_argerror(L, i, lua_pushfstring(L, "unknown send option '%s'",
                                                       luaL_tolstring(L, -2, NULL)));
        if (!lua_isboolean(L, -1))
            return luaL_argerror(L, i, "send option 'fin' must be a boolean");
        fin = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    return fin;
}

/*
** ws:send(data [, "text"|"binary" [, {fin = false}]]) -> true | nil, message, token
** [-0, +1|3, v]  Queue a message (default text). With {fin = false} data is
** the first or a further fragment of a message sent in pieces (RFC 6455
** §5.4); the next send without it (or with fin = true) is the last piece.
** The pieces of one message must be of one kind (else raises); pings and
** closes may go between them. Tokens: "utf8" for text that is not UTF-8
** (nothing sent; unless check_send_utf8 = false), "closed" once the close
** handshake started, "backpressure" when the peer does not read (the
** connection is then closed with 1008). Usage: ws:send("hi")
*/
static int lconn_send(lua_State *L)
{
    struct lconn *l = lconn_live(L, 1);
    size_t len, klen;
    const char *data = luaL_checklstring(L, 2, &len);
    int op = WS_OP_TEXT, fin = 1, open, rc;
    if (!lua_isnoneornil(L, 3)) {   /* luaL_checkoption's strcmp loop, unrolled */
        const char *k = luaL_checklstring(L, 3, &klen);
        if (klen == 6 && memcmp(k, "binary", 6) == 0)
            op = WS_OP_BINARY;
        else if (!(klen == 4 && memcmp(k, "text", 4) == 0))
            return luaL_argerror(L, 3, lua_pushfstring(L, "invalid option '%s'", k));
    }
    if (!lua_isnoneornil(L, 4))
        fin = lconn_send_fin(L, 4);
    open = l ? conn_sending(&l->c) : 0;
    if (open && open != op)
        return luaL_argerror(L, 3, open == WS_OP_TEXT
                             ? "a fragmented text message is being sent: its pieces must be text"
                             : "a fragmented binary message is being sent: its pieces must be binary");
    if (!l)
        rc = WS_ECLOSED;
    else if (data == checked_text && len == checked_len && op == WS_OP_TEXT && fin && !open)
        rc = conn_send_checked(&l->c, data, len);   /* the message being handled, sent back */
    else
        rc = conn_send_part(&l->c, op, data, len, fin);
    if (rc == WS_EUTF8 && fin &&
        ws_utf8_feed(open ? l->c.send_utf8 : WS_UTF8_ACCEPT, (const uint8_t *)data, len) != WS_UTF8_REJECT)
        return lws_fail(L, rc, "send: text that is not valid UTF-8 (the message ends inside a character)");
    if (rc != WS_OK)
        return lws_fail(L, rc, "send: %s", ws_strmessage(rc));
    lua_pushboolean(L, 1);
    return 1;
}

/* ws:ping([payload]) / ws:pong([payload]) -> true | nil, message, token
 * [-0, +1|3, v]  payload at most 125 bytes (else raises). */
static int lconn_control(lua_State *L, int opcode)
{
    struct lconn *l = lconn_live(L, 1);
    size_t len = 0;
    const char *data = luaL_optlstring(L, 2, "", &len);
    int rc;
    luaL_argcheck(L, len <= WS_MAX_CONTROL_PAYLOAD, 2, "control payload over 125 bytes");
    rc = l ? conn_send(&l->c, opcode, data, len) : WS_ECLOSED;
    if (rc != WS_OK)
        return lws_fail(L, rc, "%s: %s", opcode == WS_OP_PING ? "ping" : "pong", ws_strmessage(rc));
    lua_pushboolean(L, 1);
    return 1;
}

static int lconn_ping(lua_State *L) { return lconn_control(L, WS_OP_PING); }
static int lconn_pong(lua_State *L) { return lconn_control(L, WS_OP_PONG); }

/*
** ws:close([code [, reason]]) -> true | nil, message, "closed"
** [-0, +1|3, v]  Start the close handshake. code: 1000 (default) or another
** code a peer may send (1000-1003, 1007-1014, 3000-4999); reason at most 123
** bytes of UTF-8. The close handler runs once the handshake completes.
*/
static int lconn_close(lua_State *L)
{
    struct lconn *l = lconn_live(L, 1);
    lua_Integer code = luaL_optinteger(L, 2, 1000);
    size_t len = 0;
    const char *reason = luaL_optlstring(L, 3, "", &len);
    int rc;
    luaL_argcheck(L, code >= 0 && code <= 65535 && ws_close_code_valid((unsigned)code), 2,
                  "not a close code an endpoint may send");
    luaL_argcheck(L, len <= 123, 3, "reason over 123 bytes");
    luaL_argcheck(L, ws_utf8_valid((const uint8_t *)reason, len), 3,
                  "reason is not UTF-8 (RFC 6455 §5.5.1)");
    rc = l ? conn_close(&l->c, (unsigned)code, reason, len) : WS_ECLOSED;
    if (rc != WS_OK)
        return lws_fail(L, rc, "close: %s", rc == WS_ECLOSED ? "the connection is already closing or closed"
                                                            : ws_strmessage(rc));
    lua_pushboolean(L, 1);
    return 1;
}

/* core.send_raw(ws, bytes) -> true | nil, message, token
 * [-0, +1|3, v]  Queue bytes as they are, already framed (a client must mask
 * them itself: core.frame_encode). For tests that play a broken peer; not a
 * method of ws, so no script meets it by accident.
 * Usage: core.send_raw(ws, core.frame_encode(1, "Hel", false, "abcd")) */
static int lconn_send_raw(lua_State *L)
{
    struct lconn *l = lconn_live(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    int rc = l ? conn_send_raw(&l->c, data, len) : WS_ECLOSED;
    if (rc != WS_OK)
        return lws_fail(L, rc, "send_raw: %s", ws_strmessage(rc));
    lua_pushboolean(L, 1);
    return 1;
}

/* ws:buffered() -> bytes waiting in the send queue (0 once closed). */
static int lconn_buffered(lua_State *L)
{
    struct lconn *l = lconn_live(L, 1);
    lua_pushinteger(L, l ? (lua_Integer)conn_buffered(&l->c) : 0);
    return 1;
}

/* ws:pause() / ws:resume() -> true | nil, message, "closed"
 * [-0, +1|3, v]  Stop / restart reading from the peer (the send side goes
 * on). "closed" once the connection was released. */
static int lconn_pause(lua_State *L)
{
    struct lconn *l = lconn_live(L, 1);
    if (!l)
        return lws_fail(L, WS_ECLOSED, "pause: the connection is closed");
    conn_pause(&l->c);
    lua_pushboolean(L, 1);
    return 1;
}

static int lconn_resume(lua_State *L)
{
    struct lconn *l = lconn_live(L, 1);
    if (!l)
        return lws_fail(L, WS_ECLOSED, "resume: the connection is closed");
    conn_resume(&l->c);
    lua_pushboolean(L, 1);
    return 1;
}

/* ws:stats() -> {messages_in, messages_out, bytes_in, bytes_out,
 * wire_bytes_in, wire_bytes_out, compressions, decompressions,
 * compression_bytes [, handshake_seconds: accept to 101, on a server
 * connection]} | nil, message, "closed" once the connection was
 * released. bytes_* are message bytes (inflated), wire_bytes_* the data
 * frames' payload bytes as they crossed the wire (compressed where they
 * were); compression_bytes what its compression holds of its own between
 * messages (its state and saved windows; zlib streams are the pool's).
 * [-0, +1|3, -]  Usage: local st = ws:stats() */
static int lconn_stats(lua_State *L)
{
    struct lconn *l = lconn_live(L, 1);
    struct conn_zstats zs;
    if (!l)
        return lws_fail(L, WS_ECLOSED, "stats: the connection is closed");
    conn_zstats(&l->c, &zs);
    lua_createtable(L, 0, 10);
#define FIELD(name, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, -2, name))
    FIELD("messages_in", l->c.msgs_in);
    FIELD("messages_out", l->c.msgs_out);
    FIELD("bytes_in", l->c.bytes_in);
    FIELD("bytes_out", l->c.bytes_out);
    FIELD("wire_bytes_in", zs.wire_in);
    FIELD("wire_bytes_out", zs.wire_out);
    FIELD("compressions", zs.compressions);
    FIELD("decompressions", zs.decompressions);
    FIELD("compression_bytes", conn_compression_held(&l->c));
#undef FIELD
    if (l->c.born > 0 && l->c.opened_at > 0) {   /* a server connection that upgraded */
        lua_pushnumber(L, l->c.opened_at - l->c.born);
        lua_setfield(L, -2, "handshake_seconds");
    }
    return 1;
}

/* ws.compression: what permessage-deflate agreed, as a new table, or nil
 * (not negotiated, or the connection was released). */
static void lconn_push_compression(lua_State *L, const struct lconn *l)
{
    const struct ws_pmd_params *a = l ? conn_compression(&l->c) : NULL;
    if (!a) {
        lua_pushnil(L);
        return;
    }
    lua_createtable(L, 0, 4);
    lua_pushboolean(L, a->server_no_context_takeover);
    lua_setfield(L, -2, "server_no_context_takeover");
    lua_pushboolean(L, a->client_no_context_takeover);
    lua_setfield(L, -2, "client_no_context_takeover");
    lua_pushinteger(L, a->server_max_window_bits);
    lua_setfield(L, -2, "server_max_window_bits");
    lua_pushinteger(L, a->client_max_window_bits);
    lua_setfield(L, -2, "client_max_window_bits");
}

/* core.conn_handlers(ws [, t]) -> the handlers table; with t, this
 * connection's own from now on (the Lua layer uses this for clients and
 * receive(); internal, so not a method of ws). */
static int lconn_handlers(lua_State *L)
{
    struct lconn *l = lconn_live(L, 1);
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        if (!l)
            return 0;
        if (l->own_handlers)
            luaL_unref(L, LUA_REGISTRYINDEX, l->handlers_ref);
        lua_pushvalue(L, 2);
        l->handlers_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        l->own_handlers = 1;
        if (l->box) {   /* messages go to these from now on */
            l->box->receiver = NULL;
            l->box->parkable = 0;
        }
    }
    if (!l || l->handlers_ref == LUA_NOREF)
        lua_newtable(L);
    else
        lws_pushref(L, l->handlers_ref);
    return 1;
}

/* A field of a connection with no fields table yet, read from the C side;
 * 0 if it needs the table (headers, origin, data). */
static int lconn_c_field(lua_State *L, const struct lconn *l, const char *k)
{
    const char *s = l->head, *target, *p;
    size_t plen;
    if (strcmp(k, "remote") == 0 || strcmp(k, "port") == 0) {
        lconn_push_peer(L, &l->c);
        if (k[0] == 'r')
            lua_pop(L, 1);
        return 1;
    }
    if (strcmp(k, "secure") == 0) {
        lua_pushboolean(L, conn_secure(&l->c));
        return 1;
    }
    if (strcmp(k, "protocol") == 0) {
        if ((p = lconn_head_protocol(l, &plen)) != NULL)
            lua_pushlstring(L, p, plen);
        else
            lua_pushnil(L);
        return 1;
    }
    if (strcmp(k, "headers") == 0 || strcmp(k, "origin") == 0 || strcmp(k, "data") == 0 ||
        strcmp(k, "args") == 0 || strcmp(k, "cookies") == 0 || strcmp(k, "params") == 0 ||
        strcmp(k, "tls") == 0)
        return 0;   /* tables, or worth caching: make the fields table */
    if (!s) {
        lua_pushnil(L);
        return 1;
    }
    /* the request line's parts, kept at accept (lws_conn_keep_head): the
     * request-target starts one space after the method */
    target = s + l->method_len + 1;
    if (strcmp(k, "method") == 0)
        lua_pushlstring(L, s, l->method_len);
    else if (strcmp(k, "target") == 0)
        lua_pushlstring(L, target, l->target_len);
    else if (strcmp(k, "path") == 0)
        lua_pushlstring(L, target, l->path_len);
    else if (strcmp(k, "query") == 0 && l->path_len < l->target_len)
        lua_pushlstring(L, target + l->path_len + 1, (size_t)(l->target_len - l->path_len - 1));
    else
        lua_pushnil(L);   /* nothing was ever stored under any other key */
    return 1;
}

/* __index: methods, then "state", then the fields. */
static int lconn_index(lua_State *L)
{
    struct lbox *box;
    const char *k;
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
        return 1;   /* a method (ws:send): nothing of the object is read, so no check */
    lua_pop(L, 1);
    box = lconn_box(L, 1);
    k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
    if (k && strcmp(k, "state") == 0) {
        lua_pushstring(L, box->l ? conn_state_name(&box->l->c) : "closed");
        return 1;
    }
    if (k && strcmp(k, "compression") == 0) {
        lconn_push_compression(L, box->l);
        return 1;
    }
    if (lua_getiuservalue(L, 1, 1) != LUA_TTABLE) {
        lua_pop(L, 1);
        if (k && box->l && lconn_c_field(L, box->l, k))
            return 1;
        lws_conn_fields(L, 1);
    }
    lua_pushvalue(L, 2);
    lua_gettable(L, -2);
    return 1;
}

/* __newindex: stores into the fields table (ws.name = "x"). */
static int lconn_newindex(lua_State *L)
{
    lconn_box(L, 1);
    lws_conn_fields(L, 1);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_settable(L, -3);
    return 0;
}

static int lconn_tostring(lua_State *L)
{
    struct lbox *box = lconn_box(L, 1);
    const struct lconn *l = box->l;
    lua_pushfstring(L, "luaws.conn{%s; %s} (%p)",
                    l ? (conn_is_client(&l->c) ? "client" : "server") : "released",
                    l ? conn_state_name(&l->c) : "closed", (void *)box);
    return 1;
}

/* __gc: a live connection anchors its box, so a box with a connection is
 * collected only at lua_close: then free the connection quietly (no hooks
 * into a state that is going away). */
static int lconn_gc(lua_State *L)
{
    struct lbox *box = lconn_box(L, 1);
    struct lconn *l = box->l;
    if (l) {
        box->l = NULL;
        l->box = NULL;
        lws_conn_destroy(&l->c);
    }
    return 0;
}

static const luaL_Reg lconn_methods[] = {
    { "send", lconn_send },
    { "ping", lconn_ping },
    { "pong", lconn_pong },
    { "close", lconn_close },
    { "buffered", lconn_buffered },
    { "pause", lconn_pause },
    { "resume", lconn_resume },
    { "stats", lconn_stats },
    { NULL, NULL }
};

void lws_conn_open(lua_State *L)
{
    if (luaL_newmetatable(L, LWS_CONN_MT)) {
        lua_newtable(L);
        luaL_setfuncs(L, lconn_methods, 0);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, "methods");
        lua_pushcclosure(L, lconn_index, 1);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, lconn_newindex);
        lua_setfield(L, -2, "__newindex");
        lua_pushcfunction(L, lconn_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushcfunction(L, lconn_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &conn_mt_key);
    }
    conn_mt = lua_topointer(L, -1);
    lua_getfield(L, -1, "methods");
    lua_setfield(L, -3, "conn_methods");
    lua_pop(L, 1);
    lua_pushcfunction(L, lconn_send_raw);
    lua_setfield(L, -2, "send_raw");
    lua_pushcfunction(L, lconn_handlers);
    lua_setfield(L, -2, "conn_handlers");
    lua_pushcfunction(L, lconn_receivers);
    lua_setfield(L, -2, "conn_receivers");
    lua_pushcfunction(L, lconn_busy);
    lua_setfield(L, -2, "conn_busy");
    lua_pushcfunction(L, lconn_request_headers);
    lua_setfield(L, -2, "request_headers");
    lua_pushcfunction(L, lconn_closed_message);
    lua_setfield(L, -2, "closed_message");
}
