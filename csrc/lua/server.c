/* SPDX-License-Identifier: MIT
 *
 * server.c -- the "luaws.server" userdata: a listening WebSocket server,
 * and the server side of a request head (on_request: upgrade or answer).
 *
 * The Lua layer (lua/luaws/server.lua) owns routing and app policy; this file
 * gives it a server that calls one function, on_request(req), for every
 * request head, plus the calls that must be fast in C: broadcast (one frame
 * header for every connection), stats and close. Its connections are
 * lua/conn.c's; it includes conn.h, never the other way.
 *
 * Lifetime: while it listens or has connections, the registry anchors the
 * server, because its connections point at its options.
 */
#include "lua/conn.h"

#include <stdlib.h>
#include <string.h>

#include "io/backplane.h"
#include "io/pubsub.h"
#include "io/server.h"
#include "io/tls.h"
#include "lua/open.h"
#include "proto/frame.h"
#include "proto/handshake.h"

/*
** An upgrade the policy answered from the path alone: server.lua's
** on_upgrade says so with its 7th result, for an exact route with nothing to
** negotiate, no upgrade hook and the server's compression. Upgrades to such a
** path then open without the call, until server:route() changes the routes
** (it calls forget_upgrades). any_origin: the answer holds whatever the
** Origin (every origin is allowed); else only for requests without one,
** which always pass the origin check. A few paths, short ones: a server has
** few WebSocket routes, and a miss costs no more than before.
*/
#define LSERVER_KNOWN_MAX 8
#define LSERVER_KNOWN_PATH_MAX 120

struct lserver_known {
    int handlers_ref;   /* the route's handlers (lserver_handlers_ref) */
    uint8_t len;
    uint8_t any_origin;
    char path[LSERVER_KNOWN_PATH_MAX];
};

struct lserver {
    struct server s;
    struct ws_trust trust;   /* trusted_proxies (s.opt.trust points here), nets malloc'd */
    int anchor;         /* registry ref while listening or with connections */
    struct backplane *bp;   /* its Redis backplane, or NULL */
    int bp_ref;         /* registry ref of the backplane's event function (or LUA_NOREF) */
    int nknown;
    struct lserver_known known[LSERVER_KNOWN_MAX];
};

/* Longest topic name: a name is a key, not a payload. */
#define LSERVER_TOPIC_MAX 1024

/* The server userdata's user values. */
enum {
    LSERVER_UV_ON_REQUEST = 1,   /* on_request(req) */
    LSERVER_UV_REFS,             /* {[handlers] = registry ref} */
    LSERVER_UV_ON_REFUSED,       /* on_refused(req, status), or nil */
    LSERVER_UV_STREAMS,          /* {[lightuserdata conn] = body function} while one streams */
    LSERVER_NUV = LSERVER_UV_STREAMS
};

/* A streamed HTTP body: at most this many pieces and bytes per turn of the
 * loop (one fast reader must not hold it), and no more pieces while this
 * much is queued. */
#define LSERVER_PULL_CALLS 64
#define LSERVER_PULL_BYTES (256 * 1024)
#define LSERVER_PULL_QUEUED (64 * 1024)

static struct lserver *lserver_check(lua_State *L, int i)
{
    return luaL_checkudata(L, i, LWS_SERVER_MT);
}

/* The struct conn a server connection starts as: our lconn. */
static struct conn *lserver_alloc(struct server *s)
{
    struct lconn *l = calloc(1, sizeof *l);
    (void)s;
    if (!l)
        return NULL;
    lws_conn_prepare(l);
    return &l->c;
}

/* The server of one of its connections (the group is the server's). */
static struct lserver *lserver_of(const struct conn *c)
{
    return (struct lserver *)((char *)c->group - offsetof(struct server, group));
}

/* Push user value uv of the server. */
static int lserver_push_uv(lua_State *L, struct lserver *ls, int uv)
{
    int t;
    lws_pushref(L, ls->anchor);
    t = lua_getiuservalue(L, -1, uv);
    lua_remove(L, -2);
    return t;
}

/* Push the server's on_request function. */
static void lserver_push_handler(lua_State *L, struct server *s)
{
    lserver_push_uv(L, (struct lserver *)s, LSERVER_UV_ON_REQUEST);
}

/* The registry ref for the handlers table at idx, one per table for the
 * server's life (routes share theirs). */
static int lserver_handlers_ref(lua_State *L, struct server *s, int idx)
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
    if (ls->s.closed && ls->s.group.nconns == 0 && ls->anchor != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, ls->anchor);
        ls->anchor = LUA_NOREF;
    }
}

/* ------------------------------------------------------------ hooks */

/* Tell the Lua layer a request was refused (on_refused(req, status)): the
 * request table at index req. */
static void lserver_refused(lua_State *L, struct lserver *ls, int req, int status)
{
    req = lua_absindex(L, req);
    if (lserver_push_uv(L, ls, LSERVER_UV_ON_REFUSED) != LUA_TFUNCTION) {
        lua_pop(L, 1);
        return;
    }
    lua_pushvalue(L, req);
    lua_pushinteger(L, status);
    lws_call(L, 2, 0, "reject handler");
}

/* The core refused a request by itself (400, 413, 431, ...): the request,
 * or only who sent it when the head did not parse. */
static void lserver_on_refused(struct conn *c, const struct ws_http_head *h, int status)
{
    lua_State *L = lws_main;
    int top = lua_gettop(L);
    if (h) {
        lws_push_request(L, c, h, ws_handshake_is_upgrade(h), NULL, 0);
    } else {
        static const struct ws_http_head none;
        struct ws_http_head empty = none;
        empty.method = empty.target = "";
        lws_push_request(L, c, &empty, 0, NULL, 0);   /* remote and port */
        lua_pushnil(L);
        lua_setfield(L, -2, "method");
        lua_pushnil(L);
        lua_setfield(L, -2, "target");
        lua_pushnil(L);
        lua_setfield(L, -2, "path");
        if (c->tp.not_tls == TRANSPORT_PLAIN_HTTP) {   /* http:// to the TLS port */
            lua_pushboolean(L, 1);
            lua_setfield(L, -2, "not_tls");
        }
    }
    lserver_refused(L, lserver_of(c), -1, status);
    lua_settop(L, top);
}

/* Forget the body function of c, if it streamed one. */
static void lserver_stream_forget(lua_State *L, struct lserver *ls, struct conn *c)
{
    if (lserver_push_uv(L, ls, LSERVER_UV_STREAMS) == LUA_TTABLE) {
        lua_pushnil(L);
        lua_rawsetp(L, -2, c);
    }
    lua_pop(L, 1);
}

/*
** The queue of a streaming HTTP answer is low: call its body function for
** the next pieces (a bounded number per turn) until it returns nil, which
** ends the body. A function that raises or returns something else than a
** string is logged and the connection dropped: the status is long sent.
*/
static void lserver_pull(lua_State *L, struct conn *c)
{
    struct lserver *ls = lserver_of(c);
    int top = lua_gettop(L), fn, calls = 0;
    size_t sent = 0;
    if (lserver_push_uv(L, ls, LSERVER_UV_STREAMS) != LUA_TTABLE ||
        lua_rawgetp(L, -1, c) != LUA_TFUNCTION) {
        conn_respond_end(c);   /* nothing to call: the body is over */
        lua_settop(L, top);
        return;
    }
    fn = lua_gettop(L);
    while (conn_is_streaming(c) && calls++ < LSERVER_PULL_CALLS && sent < LSERVER_PULL_BYTES &&
           conn_buffered(c) < LSERVER_PULL_QUEUED) {
        size_t len;
        const char *piece;
        lua_pushvalue(L, fn);
        if (!lws_call(L, 0, 1, "http body function")) {
            lserver_stream_forget(L, ls, c);
            conn_abort(c, WS_EIO, "the body function raised an error");
            break;
        }
        if (lua_isnil(L, -1)) {
            lserver_stream_forget(L, ls, c);
            conn_respond_end(c);
            break;
        }
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pushfstring(L, "http body function returned a %s, not a string or nil",
                            luaL_typename(L, -1));
            lws_log(L, lua_tostring(L, -1));
            lserver_stream_forget(L, ls, c);
            conn_abort(c, WS_EIO, "the body function returned no string");
            break;
        }
        piece = lua_tolstring(L, -1, &len);
        conn_respond_chunk(c, piece, len);
        sent += len;
        lua_pop(L, 1);
    }
    lua_settop(L, top);
}

/* The queue drained: a streaming HTTP answer wants more, or an open
 * connection's drain handler runs. */
static void lserver_on_drain(struct conn *c)
{
    if (c->state == CONN_HANDSHAKE) {
        if (conn_is_streaming(c))
            lserver_pull(lws_main, c);
        return;
    }
    lws_conn_on_drain(c);
}

/*
** The upgrade request being answered, while on_request runs for it:
** core.current_request() makes its request table then (the policy asks for
** it only when it needs more than the path and the Origin).
*/
struct lserver_current {
    struct conn *c;
    const struct ws_http_head *h;
    const char *head;
    size_t head_len;
};
static struct lserver_current current;

/* core.current_request() -> the request table of the upgrade request being
 * answered (a new one each call); raises outside on_request. [-0, +1, v] */
static int lserver_current_request(lua_State *L)
{
    if (!current.c)
        return luaL_error(L, "current_request: no upgrade request is being answered");
    lws_push_request(L, current.c, current.h, 1, current.head, current.head_len);
    return 1;
}

/* The known answer for an upgrade to path[0..len), or NULL: ask the policy. */
static const struct lserver_known *lserver_known_find(const struct lserver *ls, const char *path,
                                                      size_t len, const struct ws_http_head *h)
{
    int i;
    for (i = 0; i < ls->nknown; i++) {
        const struct lserver_known *k = &ls->known[i];
        if (k->len == len && memcmp(k->path, path, len) == 0)
            return k->any_origin || !ws_http_known(h, WS_H_ORIGIN) ? k : NULL;
    }
    return NULL;
}

/* Remember the policy's answer for path (see struct lserver_known): scope
 * is its 7th result, "any" or "bare". Only while there is room. */
static void lserver_known_add(struct lserver *ls, const char *path, size_t len, int handlers_ref,
                              const char *scope)
{
    struct lserver_known *k;
    int i;
    if (len > LSERVER_KNOWN_PATH_MAX || ls->nknown == LSERVER_KNOWN_MAX)
        return;
    for (i = 0; i < ls->nknown; i++)
        if (ls->known[i].len == len && memcmp(ls->known[i].path, path, len) == 0)
            return;   /* known for requests without Origin; this one had one */
    k = &ls->known[ls->nknown++];
    k->handlers_ref = handlers_ref;
    k->len = (uint8_t)len;
    k->any_origin = strcmp(scope, "any") == 0;
    memcpy(k->path, path, len);
}

/*
** Open an accepted upgrade: keep the head for ws.path & co, answer 101 (with
** protocol, the extra header lines, and the route's compression from the
** table at zi, else the server's), and give the connection the handlers at
** index hi (ref: their registry ref, or LUA_NOREF to look it up). Returns
** that ref, or LUA_NOREF when it answered 500 or dropped the connection
** instead.
*/
static int lserver_open(lua_State *L, struct lserver *ls, struct conn *c,
                        const struct ws_http_head *h, const char *head, size_t head_len, int hi,
                        int ref, const char *protocol, const char *extra, size_t elen, int zi)
{
    struct lconn *l = (struct lconn *)c;
    struct conn_compression rz;
    int rc;
    if (!lws_conn_keep_head(l, h, head, head_len, protocol, protocol ? strlen(protocol) : 0)) {
        conn_abort(c, WS_ENOMEM, "out of memory");
        return LUA_NOREF;
    }
    if (zi)
        lws_read_compression(L, zi, &rz);
    rc = conn_accept(c, h, protocol, extra, elen, zi ? &rz : NULL);
    if (rc != WS_OK) {
        conn_respond(c, 500, NULL, 0, NULL, 0, 0);   /* refused once answered or finishing */
        return LUA_NOREF;
    }
    lua_getfield(L, hi, "drain");
    if (lua_isfunction(L, -1))
        conn_want_drain(c, 1);
    lua_getfield(L, hi, "fragment");
    if (lua_isfunction(L, -1))
        conn_want_fragments(c, 1);   /* frame by frame, before any frame arrives */
    lua_pop(L, 2);
    l->handlers_ref = ref != LUA_NOREF ? ref : lserver_handlers_ref(L, &ls->s, hi);
    return l->handlers_ref;
}

/*
** A request head arrived: hand it to the server's on_request function,
**   on_request(req)                 a plain request (req.body holds its body)
**   on_request(false, path, origin) an upgrade (core.current_request makes
**                                    its table when the policy needs one)
** which answers
**   true, handlers [, protocol [, headers [, fields [, compression [, scope]]]]]
**     to accept the upgrade (fields: the request table, which becomes the
**     connection's fields: ws.data, ws.params; compression: the route's
**     own; scope: "any" or "bare" when the answer holds for the path alone,
**     see struct lserver_known), or
**   false, status [, headers [, body]]   for any other answer, body a
**     string, or a function returning the next piece or nil (streamed).
** An upgrade to a path with a kept answer opens without the call.
*/
static void lserver_on_request(struct conn *c, const struct ws_http_head *h, int upgrade,
                               const char *head, size_t head_len)
{
    lua_State *L = lws_main;
    struct lserver *ls = lserver_of(c);
    int top = lua_gettop(L), req, ok;
    const char *q = memchr(h->target, '?', h->target_len);
    size_t plen = q ? (size_t)(q - h->target) : h->target_len;   /* the path's */

    if (upgrade) {
        /* no request table: the policy reads the path and the origin */
        const struct lserver_known *k = lserver_known_find(ls, h->target, plen, h);
        struct lserver_current saved;
        if (k) {
            lws_pushref(L, k->handlers_ref);
            lserver_open(L, ls, c, h, head, head_len, top + 1, k->handlers_ref, NULL, "", 0, 0);
            lua_settop(L, top);
            return;
        }
        saved = current;   /* a hook may run the loop */
        lua_pushboolean(L, 0);
        req = lua_gettop(L);
        lserver_push_handler(L, &ls->s);
        lua_pushboolean(L, 0);
        lua_pushlstring(L, h->target, plen);
        if (!lws_push_header(L, h, "origin"))
            lua_pushnil(L);
        current.c = c;
        current.h = h;
        current.head = head;
        current.head_len = head_len;
        ok = lws_call(L, 3, 7, "on_request");
        current = saved;
        if (!ok) {
            lws_push_request(L, c, h, 1, head, head_len);   /* for the reject option */
            lua_replace(L, req);
        }
    } else {
        lws_push_request(L, c, h, 0, head, head_len);
        req = lua_gettop(L);
        {
            size_t blen;
            const uint8_t *body = conn_request_body(c, &blen);
            lua_pushlstring(L, body ? (const char *)body : "", blen);
            lua_setfield(L, req, "body");
        }
        lserver_push_handler(L, &ls->s);
        lua_pushvalue(L, req);
        ok = lws_call(L, 1, 7, "on_request");
    }
    if (!ok) {
        conn_respond(c, 500, "Content-Type: text/plain\r\n", 26, "500 Internal Server Error\n", 26, 0);
        lserver_refused(L, ls, req, 500);
        lua_settop(L, top);
        return;
    }
    /* results: ok at req+1, then handlers|status, protocol|headers, headers|body */
    if (lua_toboolean(L, req + 1) && upgrade) {
        const char *protocol = lua_tostring(L, req + 3);
        size_t elen;
        const char *extra;
        int ref;
        if (!lua_istable(L, req + 2)) {
            lws_log(L, "on_request accepted an upgrade without a handlers table");
            conn_respond(c, 500, NULL, 0, NULL, 0, 0);
            lua_settop(L, top);
            return;
        }
        if (lws_header_lines(L, req + 4))
            lws_log(L, "on_request: an invalid response header was left out");
        extra = lua_tolstring(L, -1, &elen);
        /* the route's own compression (options.lua normalized it), or the
         * server's */
        ref = lserver_open(L, ls, c, h, head, head_len, req + 2, LUA_NOREF, protocol, extra, elen,
                           lua_isnil(L, req + 6) ? 0 : req + 6);
        if (ref == LUA_NOREF) {
            lua_settop(L, top);
            return;
        }
        if (lua_type(L, req + 7) == LUA_TSTRING)
            lserver_known_add(ls, h->target, plen, ref, lua_tostring(L, req + 7));
        if (lua_istable(L, req + 5)) {
            /* the upgrade hook gave the connection its data, or the route
             * its params: keep the table */
            lua_pushnil(L);
            lua_setfield(L, req + 5, "upgrade");
            if (protocol) {
                lua_pushvalue(L, req + 3);
                lua_setfield(L, req + 5, "protocol");
            }
            lws_conn_push(L, c);
            lua_pushvalue(L, req + 5);
            lua_setiuservalue(L, -2, 1);
        }
        lua_settop(L, top);
        return;
    }
    {
        int status = (int)lua_tointeger(L, req + 2);
        int head_only = h->method_len == 4 && memcmp(h->method, "HEAD", 4) == 0;
        size_t blen = 0, elen;
        const char *body = lua_type(L, req + 4) == LUA_TFUNCTION ? NULL : lua_tolstring(L, req + 4, &blen);
        const char *extra;
        if (status < 200 || status > 599)
            status = 500;
        if (lws_header_lines(L, req + 3))
            lws_log(L, "on_request: an invalid response header was left out");
        extra = lua_tolstring(L, -1, &elen);
        if (lua_type(L, req + 4) == LUA_TFUNCTION && !upgrade) {
            /* a body in pieces: the function is called as the queue drains */
            if (conn_respond_start(c, status, extra, elen, head_only) == WS_OK && !head_only &&
                lserver_push_uv(L, ls, LSERVER_UV_STREAMS) == LUA_TTABLE) {
                lua_pushvalue(L, req + 4);
                lua_rawsetp(L, -2, c);
            }
        } else {
            conn_respond(c, status, extra, elen, body, body ? blen : 0, head_only);
        }
    }
    lua_settop(L, top);
}

/* A connection finished: its Lua side goes, then the server's anchor once
 * the server is closed and this was its last connection. */
static void lserver_release(struct conn *c)
{
    struct lserver *ls = lserver_of(c);
    pubsub_leave_all(&ls->s.ps, &((struct lconn *)c)->subs);
    /* before the address can be reused; only a connection that answered
     * plain HTTP (never upgraded) can have streamed */
    if (lws_main && ls->anchor != LUA_NOREF && c->opened_at == 0)
        lserver_stream_forget(lws_main, ls, c);
    lws_conn_release(c);
    lserver_maybe_release(lws_main, ls);
}

static const struct conn_hooks lserver_hooks = {
    lserver_on_request, lws_conn_on_open, lws_conn_on_message, lws_conn_on_fragment,
    lws_conn_on_control, lserver_on_drain, lws_conn_on_close, lserver_release,
    lserver_on_refused
};

/* A string field k of the table at i, or NULL; raises if it is there and
 * not a string (the table keeps the string alive). */
static const char *lserver_tls_string(lua_State *L, int i, const char *k)
{
    const char *v = NULL;
    int t = lua_getfield(L, i, k);
    if (t == LUA_TSTRING)
        v = lua_tostring(L, -1);
    else if (t != LUA_TNIL)
        luaL_error(L, "tls: '%s' must be a string, got %s", k, luaL_typename(L, -1));
    lua_pop(L, 1);
    return v;
}

/* The names of one certificate table at i (server_name: a string or a list
 * of strings) into names[0..max); returns how many. */
static int lserver_tls_names(lua_State *L, int i, const char **names, int max)
{
    int n = 0, t = lua_getfield(L, i, "server_name");
    if (t == LUA_TSTRING) {
        names[n++] = lua_tostring(L, -1);
    } else if (t == LUA_TTABLE) {
        lua_Integer k, len = luaL_len(L, -1);
        for (k = 1; k <= len && n < max; k++, lua_pop(L, 1)) {
            if (lua_geti(L, -1, k) != LUA_TSTRING)
                luaL_error(L, "tls: server_name must be a string or a list of strings");
            names[n++] = lua_tostring(L, -1);
        }
    } else if (t != LUA_TNIL) {
        luaL_error(L, "tls: server_name must be a string or a list of strings");
    }
    lua_pop(L, 1);
    return n;
}

/* Most certificates, and names per certificate, one server takes. */
#define LSERVER_TLS_CERTS 256
#define LSERVER_TLS_NAMES 64

/*
** A server's TLS context set from the tls table at index i: one
** {certificate=, key= [, server_name=]} table, or a list of them (the first
** without server_name is the default), with ca= and verify_client= (true,
** "optional" or false) beside the list or in the one table. Reads the
** files now. NULL with err when one cannot be read or a key does not match;
** raises on a table of the wrong shape. The scratch memory is a userdata
** left on the stack (the caller's settop or return drops it).
*/
static struct ssl_ctx_st *lserver_tls(lua_State *L, int i, char *err, size_t errlen)
{
    struct tls_server_spec spec;
    struct tls_cert_spec *certs;
    const char **names;
    lua_Integer k, n;
    int one, vt, used = 0;
    i = lua_absindex(L, i);
    memset(&spec, 0, sizeof spec);
    one = lua_getfield(L, i, "certificate") != LUA_TNIL;
    lua_pop(L, 1);
    n = one ? 1 : luaL_len(L, i);
    if (n < 1)
        luaL_error(L, "tls: a table with certificate and key, or a list of them, expected");
    if (n > LSERVER_TLS_CERTS)
        luaL_error(L, "tls: at most %d certificates", LSERVER_TLS_CERTS);
    certs = lua_newuserdatauv(L, (size_t)n * sizeof *certs + (size_t)n * LSERVER_TLS_NAMES * sizeof *names, 0);
    names = (const char **)(certs + n);
    for (k = 0; k < n; k++) {
        int e = one ? i : lua_gettop(L) + 1;
        if (!one && lua_geti(L, i, k + 1) != LUA_TTABLE)
            luaL_error(L, "tls: entry %d is not a table", (int)(k + 1));
        certs[k].certificate = lserver_tls_string(L, e, "certificate");
        certs[k].key = lserver_tls_string(L, e, "key");
        if (!certs[k].certificate || !certs[k].key)
            luaL_error(L, "tls needs certificate and key (PEM file names)");
        certs[k].names = names + used;
        certs[k].nnames = lserver_tls_names(L, e, names + used, LSERVER_TLS_NAMES);
        used += certs[k].nnames;
        if (!one)
            lua_pop(L, 1);   /* the entry: the list keeps it */
    }
    spec.certs = certs;
    spec.ncerts = (int)n;
    spec.ca = lserver_tls_string(L, i, "ca");
    vt = lua_getfield(L, i, "verify_client");
    if (vt == LUA_TSTRING && strcmp(lua_tostring(L, -1), "optional") == 0)
        spec.verify_client = TLS_CLIENT_OPTIONAL;
    else if (vt == LUA_TBOOLEAN)
        spec.verify_client = lua_toboolean(L, -1) ? TLS_CLIENT_REQUIRED : TLS_CLIENT_NONE;
    else if (vt != LUA_TNIL)
        luaL_error(L, "tls: verify_client must be true, false or \"optional\"");
    lua_pop(L, 1);
    {
        struct ssl_ctx_st *ctx = tls_server_ctx(&spec, err, errlen);
        lua_pop(L, 1);   /* the scratch userdata */
        return ctx;
    }
}

/*
** server:reload_tls(tls) -> true | nil, message, token
** [-0, +1|3, e]  Read the certificates anew (tls as the listen option) and
** use them for every handshake from now on; open connections keep their
** sessions. When a file cannot be read or a key does not match, the old
** certificates stay: nil, message, "tls". Raises for a server without tls.
** Usage: assert(s:reload_tls(opts.tls))
*/
static int lserver_reload_tls(lua_State *L)
{
    struct lserver *ls = lserver_check(L, 1);
    struct ssl_ctx_st *ctx, *old;
    char err[512];
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!ls->s.tls)
        return luaL_error(L, "reload_tls: the server does not speak TLS (no tls option)");
    ctx = lserver_tls(L, 2, err, sizeof err);
    if (!ctx)
        return lws_fail(L, WS_ETLS, "reload_tls: %s", err);
    old = ls->s.tls;
    ls->s.tls = ctx;
    tls_ctx_free(old);   /* sessions made with it hold their own references */
    lua_pushboolean(L, 1);
    return 1;
}

/* core.tls_name_match(pattern, host) -> boolean: RFC 6125 §6.4 matching of
 * a certificate name, as SNI uses it (for specs). [-0, +1, v] */
static int lserver_tls_name_match(lua_State *L)
{
    lua_pushboolean(L, tls_name_match(luaL_checkstring(L, 1), luaL_checkstring(L, 2)));
    return 1;
}

/*
** The listen options behind a proxy from the table at i: trusted_proxies
** (a list of addresses, CIDR ranges and "unix", checked by options.lua; an
** entry that does not parse raises) and proxy_protocol.
*/
static void lserver_read_trust(lua_State *L, int i, struct lserver *ls)
{
    lua_Integer k, n;
    ls->s.opt.proxy_protocol = lua_getfield(L, i, "proxy_protocol") == LUA_TBOOLEAN && lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, i, "trusted_proxies") != LUA_TTABLE) {
        lua_pop(L, 1);
        return;
    }
    n = luaL_len(L, -1);
    if (n > 0 && n < 65536) {
        struct ws_cidr *nets = calloc((size_t)n, sizeof *nets);
        if (!nets)
            luaL_error(L, "listen: out of memory");
        ls->trust.nets = nets;
        for (k = 1; k <= n; k++, lua_pop(L, 1)) {
            size_t len;
            const char *e;
            lua_geti(L, -1, k);
            e = lua_tolstring(L, -1, &len);
            if (e && strcmp(e, "unix") == 0)
                ls->trust.unix_peers = 1;
            else if (e && ws_cidr_parse(e, len, &nets[ls->trust.n]))
                ls->trust.n++;
            else
                luaL_error(L, "listen: option 'trusted_proxies': %s is not an address, a CIDR range or \"unix\"",
                           e ? e : luaL_typename(L, -1));
        }
    }
    lua_pop(L, 1);
    ls->s.opt.trust = &ls->trust;
}

/*
** core.listen(host, port, opts, on_request) -> server | nil, message, token
** [-0, +1|3, e]  host "*" or nil: every address. opts: the conn options
** (see conn.h) plus max_connections, backlog, tls, max_body_size (a plain
** request's body; default 1 MiB), on_refused(req, status) (told of every
** request the core refused by itself) and fds (a worker's inherited
** listening sockets, adopted instead of binding). on_request(req) answers
** each request head (see lserver_on_request).
** Usage: local s = core.listen("127.0.0.1", 0, {}, function(req) ... end)
*/
static int lserver_listen(lua_State *L)
{
    const char *host = luaL_optstring(L, 1, NULL);
    lua_Integer port = luaL_checkinteger(L, 2);
    struct lserver *ls;
    lua_Integer backlog, maxc = 0;
    char err[512];
    int rc;
    luaL_checktype(L, 3, LUA_TTABLE);
    luaL_checktype(L, 4, LUA_TFUNCTION);
    luaL_argcheck(L, port >= 0 && port <= 65535, 2, "port out of range");
    ls = lua_newuserdatauv(L, sizeof *ls, LSERVER_NUV);
    memset(ls, 0, sizeof *ls);
    ls->anchor = LUA_NOREF;
    ls->bp_ref = LUA_NOREF;
    ls->s.closed = 1;
    luaL_setmetatable(L, LWS_SERVER_MT);
    lws_read_conn_options(L, 3, &ls->s.opt);   /* the defaults are lua/luaws/options.lua's */
    if (lua_getfield(L, 3, "max_connections") != LUA_TNIL)
        maxc = luaL_checkinteger(L, -1);
    {
        lua_Integer mt = 0, mpc = 0;
        if (lua_getfield(L, 3, "max_topics") != LUA_TNIL)
            mt = luaL_checkinteger(L, -1);
        if (lua_getfield(L, 3, "max_topics_per_connection") != LUA_TNIL)
            mpc = luaL_checkinteger(L, -1);
        lua_pop(L, 2);
        pubsub_init(&ls->s.ps, mt > 0 ? (size_t)mt : 0, mpc > 0 ? (size_t)mpc : 0);
    }
    if (lua_getfield(L, 3, "max_body_size") != LUA_TNIL) {
        lua_Integer mb = luaL_checkinteger(L, -1);
        ls->s.opt.max_body_size = mb > 0 ? (size_t)mb : 0;
    } else {
        ls->s.opt.max_body_size = 1024 * 1024;
    }
    lua_pop(L, 1);
    lua_getfield(L, 3, "backlog");   /* options.lua always gives it */
    backlog = luaL_checkinteger(L, -1);
    lua_pop(L, 2);
    lserver_read_trust(L, 3, ls);
    ls->s.max_connections = maxc > 0 ? (size_t)maxc : 0;
    if (lua_getfield(L, 3, "tls") == LUA_TTABLE) {
        ls->s.tls = lserver_tls(L, lua_gettop(L), err, sizeof err);
        if (!ls->s.tls)
            return lws_fail(L, WS_ETLS, "tls: %s", err);
    }
    lua_pop(L, 1);
    ls->s.hooks = &lserver_hooks;
    ls->s.alloc = lserver_alloc;
    lua_pushvalue(L, 4);
    lua_setiuservalue(L, -2, LSERVER_UV_ON_REQUEST);
    lua_newtable(L);
    lua_setiuservalue(L, -2, LSERVER_UV_REFS);
    if (lua_getfield(L, 3, "on_refused") == LUA_TFUNCTION)
        lua_setiuservalue(L, -2, LSERVER_UV_ON_REFUSED);
    else
        lua_pop(L, 1);
    lua_newtable(L);
    lua_setiuservalue(L, -2, LSERVER_UV_STREAMS);
    if (lua_getfield(L, 3, "fds") == LUA_TTABLE) {
        /* a worker: adopt the sockets its master bound (io/workers.h) */
        int fds[SERVER_MAX_LISTEN], n = 0;
        lua_Integer i, len = luaL_len(L, -1);
        for (i = 1; i <= len && n < SERVER_MAX_LISTEN; i++, lua_pop(L, 1)) {
            lua_geti(L, -1, i);
            fds[n++] = (int)luaL_checkinteger(L, -1);
        }
        lua_pop(L, 1);
        rc = server_adopt(&ls->s, fds, n, err, sizeof err);
    } else if (lua_getfield(L, 3, "unix") == LUA_TSTRING) {
        const char *path = lua_tostring(L, -1);
        lua_Integer mode = 0;
        if (lua_getfield(L, 3, "unix_mode") != LUA_TNIL)
            mode = luaL_checkinteger(L, -1);
        rc = server_listen_unix(&ls->s, path, (int)mode, (int)backlog, err, sizeof err);
        lua_pop(L, 3);
    } else {
        lua_pop(L, 2);
        rc = server_listen(&ls->s, host, (int)port, (int)backlog, err, sizeof err);
    }
    if (rc != WS_OK)
        return lws_fail(L, rc, "listen %s", err);
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

/* server:forget_upgrades(): the routes changed; ask the policy again for
 * every path (struct lserver_known). [-0, +0, -] */
static int lserver_forget_upgrades(lua_State *L)
{
    lserver_check(L, 1)->nknown = 0;
    return 0;
}

/* server:close([code [, reason]]) -> true: stop accepting; with a code
 * (default 1001) also close every connection. [-0, +1, v] */
static int lserver_close(lua_State *L)
{
    struct lserver *ls = lserver_check(L, 1);
    lua_Integer code = luaL_optinteger(L, 2, 1001);
    const char *reason = luaL_optstring(L, 3, "server closed");
    luaL_argcheck(L, code == 0 || ws_close_code_valid((unsigned)code), 2, "invalid close code");
    server_close(&ls->s, (unsigned)code, reason);
    lserver_maybe_release(L, ls);
    lua_pushboolean(L, 1);
    return 1;
}

/* "text" (default) or "binary" at index i, as an opcode. */
static int lserver_kind(lua_State *L, int i)
{
    static const char *const kinds[] = { "text", "binary", NULL };
    return luaL_checkoption(L, i, "text", kinds) ? WS_OP_BINARY : WS_OP_TEXT;
}

/*
** server:broadcast(data [, kind [, except [, handlers]]]) -> number sent to
** [-0, +1, v]  One message for all open connections (but except), or,
** given a route's handlers table, for that route's connections only; the
** bytes go straight to each socket, or one shared block is referenced by
** every queue that must hold them. Connections over their backpressure cap
** are closed with 1008 and not counted. Usage: server:broadcast("tick")
*/
static int lserver_broadcast(lua_State *L)
{
    struct lserver *ls = lserver_check(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    int op = lserver_kind(L, 3);
    const struct conn *except = lua_isnoneornil(L, 4) ? NULL : lws_conn_check(L, 4);
    int route = LUA_NOREF;
    struct conn_fanout f;
    struct conn *c, *next;
    lua_Integer n = 0;
    if (!lua_isnoneornil(L, 5)) {
        luaL_checktype(L, 5, LUA_TTABLE);
        route = lserver_handlers_ref(L, &ls->s, 5);
    }
    conn_fanout_start(&f, op, data, len);
    for (c = ls->s.group.conns; c; c = next) {
        next = c->next;   /* a failing send only queues the finish; the list holds */
        if (c == except || c->state != CONN_OPEN)
            continue;
        if (route != LUA_NOREF && lws_conn_handlers_ref(c) != route)
            continue;   /* only the connections whose handlers are the route's */
        if (conn_fanout_send(c, &f) == WS_OK)
            n++;
    }
    conn_fanout_end(&f);
    lua_pushinteger(L, n);
    return 1;
}

/* A topic name at index i: a non-empty string of at most LSERVER_TOPIC_MAX
 * bytes (raises otherwise, naming fname). */
static const char *lserver_topic(lua_State *L, int i, size_t *len, const char *fname)
{
    const char *t;
    if (lua_type(L, i) != LUA_TSTRING)   /* before lua_tolstring, which turns numbers into strings */
        luaL_error(L, "bad argument #%d to '%s' (topic name expected, got %s)", i - 1, fname,
                   luaL_typename(L, i));
    t = lua_tolstring(L, i, len);
    if (*len == 0 || *len > LSERVER_TOPIC_MAX)
        luaL_error(L, "bad argument #%d to '%s' (a topic name has 1 to %d bytes)", i - 1, fname,
                   LSERVER_TOPIC_MAX);
    return t;
}

/*
** server:publish(topic, data [, kind]) -> connections reached
** [-0, +1, v]  The message to every open subscriber of topic in this
** process; the frame is encoded once and shared. Usage:
** server:publish("room:1", json)
*/
static int lserver_publish(lua_State *L)
{
    struct lserver *ls = lserver_check(L, 1);
    size_t tlen, len;
    const char *topic = lserver_topic(L, 2, &tlen, "publish");
    const char *data = luaL_checklstring(L, 3, &len);
    int op = lserver_kind(L, 4);
    lua_pushinteger(L, (lua_Integer)pubsub_publish_all(&ls->s.ps, topic, tlen, op, data, len, NULL));
    return 1;
}

/* The server of a server connection, or raise: a client has no topics. */
static struct lserver *lserver_of_ws(lua_State *L, struct lconn *l, const char *fname)
{
    if (conn_is_client(&l->c))
        luaL_error(L, "%s: only a server's connections have topics", fname);
    return lserver_of(&l->c);
}

/*
** ws:subscribe(topic) -> true | nil, message, token
** [-0, +1|3, v]  From now on ws gets what is published to topic (server
** connections only). "limit" past max_topics_per_connection or
** max_topics; "closed" once the connection is closing.
*/
static int lserver_ws_subscribe(lua_State *L)
{
    struct lconn *l = lws_conn_live(L, 1);
    size_t tlen;
    const char *topic = lserver_topic(L, 2, &tlen, "subscribe");
    const char *why = NULL;
    struct lserver *ls;
    int rc;
    if (l && conn_is_client(&l->c))
        lserver_of_ws(L, l, "subscribe");   /* raises: a client has no topics */
    if (!l || l->c.state != CONN_OPEN)
        return lws_fail(L, WS_ECLOSED, "subscribe: the connection is closed");
    ls = lserver_of_ws(L, l, "subscribe");
    rc = pubsub_subscribe(&ls->s.ps, &l->subs, &l->c, topic, tlen, &why);
    if (rc == WS_ELIMIT)
        return lws_fail(L, rc, "subscribe: %s (%d) reached", why,
                        (int)(strcmp(why, "max_topics") == 0 ? ls->s.ps.max_topics : ls->s.ps.max_per_conn));
    if (rc != WS_OK)
        return lws_fail(L, rc, "subscribe: %s", ws_strmessage(rc));
    lua_pushboolean(L, 1);
    return 1;
}

/* ws:unsubscribe(topic) -> true if it was subscribed, else false. [-0, +1, v] */
static int lserver_ws_unsubscribe(lua_State *L)
{
    struct lconn *l = lws_conn_live(L, 1);
    size_t tlen;
    const char *topic = lserver_topic(L, 2, &tlen, "unsubscribe");
    if (l)
        lserver_of_ws(L, l, "unsubscribe");   /* raises for a client */
    if (!l) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_pushboolean(L, pubsub_unsubscribe(&lserver_of(&l->c)->s.ps, &l->subs, topic, tlen));
    return 1;
}

/* ws:topics() -> array of the topics ws subscribes to. [-0, +1, v] */
static int lserver_ws_topics(lua_State *L)
{
    struct lconn *l = lws_conn_live(L, 1);
    const struct pubsub_sub *s;
    lua_Integer i = 0;
    if (l)
        lserver_of_ws(L, l, "topics");   /* raises for a client */
    lua_newtable(L);
    for (s = l ? l->subs : NULL; s; s = s->cnext) {
        size_t len;
        const char *name = pubsub_topic_name(s, &len);
        lua_pushlstring(L, name, len);
        lua_rawseti(L, -2, ++i);
    }
    return 1;
}

/*
** ws:publish(topic, data [, kind]) -> connections reached
** [-0, +1, v]  As server:publish, to every subscriber but ws itself.
*/
static int lserver_ws_publish(lua_State *L)
{
    struct lconn *l = lws_conn_live(L, 1);
    size_t tlen, len;
    const char *topic = lserver_topic(L, 2, &tlen, "publish");
    const char *data = luaL_checklstring(L, 3, &len);
    int op = lserver_kind(L, 4);
    if (!l)
        return lws_fail(L, WS_ECLOSED, "publish: the connection is closed");
    lua_pushinteger(L, (lua_Integer)pubsub_publish_all(&lserver_of_ws(L, l, "publish")->s.ps, topic,
                                                       tlen, op, data, len, &l->c));
    return 1;
}

/* server:stats() -> {connections, pending, accepted, upgraded, rejected,
 * messages_in, messages_out, bytes_in, bytes_out, frames_cut, shutdown_cut,
 * wire_bytes_in, wire_bytes_out, compressions, decompressions,
 * zlib_streams, zlib_streams_idle (the process's pool, shared by servers)}.
 * [-0, +1, v] */
static int lserver_stats(lua_State *L)
{
    struct lserver *ls = lserver_check(L, 1);
    const struct conn_stats *st = &ls->s.group.stats;
    lua_createtable(L, 0, 17);
#define FIELD(name, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, -2, name))
    FIELD("connections", ls->s.group.nopen);
    FIELD("pending", ls->s.group.nconns - ls->s.group.nopen);
    FIELD("accepted", st->accepted);
    FIELD("upgraded", st->upgraded);
    FIELD("rejected", st->rejected);
    FIELD("messages_in", st->msgs_in);
    FIELD("messages_out", st->msgs_out);
    FIELD("bytes_in", st->bytes_in);
    FIELD("bytes_out", st->bytes_out);
    FIELD("frames_cut", st->frames_cut);
    FIELD("shutdown_cut", st->shutdown_cut);
    FIELD("wire_bytes_in", st->wire_bytes_in);
    FIELD("wire_bytes_out", st->wire_bytes_out);
    FIELD("compressions", st->compressions);
    FIELD("decompressions", st->decompressions);
    {
        size_t idle, live = conn_zstreams(&idle, NULL);
        FIELD("zlib_streams", live);        /* the process's pool: every server's */
        FIELD("zlib_streams_idle", idle);
    }
    if (ls->bp) {
        const struct backplane_stats *b = backplane_stats(ls->bp);
        FIELD("backplane_published", b->published);
        FIELD("backplane_received", b->received);
        FIELD("backplane_dropped", b->dropped);
        FIELD("backplane_failed", b->failed);
        FIELD("backplane_reconnects", b->reconnects);
        lua_pushboolean(L, b->up);
        lua_setfield(L, -2, "backplane_up");
    }
#undef FIELD
    return 1;
}

/* A histogram's buckets as {le = {...}, counts = {...} (cumulative), count, sum}. */
static void lserver_push_hist(lua_State *L, const struct metrics_hist *h, const double *le)
{
    uint64_t run = 0;
    int i;
    lua_createtable(L, 0, 4);
    lua_createtable(L, METRICS_BUCKETS, 0);
    for (i = 0; i < METRICS_BUCKETS; i++) {
        lua_pushnumber(L, le[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "le");
    lua_createtable(L, METRICS_BUCKETS, 0);
    for (i = 0; i < METRICS_BUCKETS; i++) {
        run += h->bucket[i];
        lua_pushinteger(L, (lua_Integer)run);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "counts");
    lua_pushinteger(L, (lua_Integer)h->count);
    lua_setfield(L, -2, "count");
    lua_pushnumber(L, h->sum);
    lua_setfield(L, -2, "sum");
}

/* {[key] = n} of a counted table (keys[i], 0 the last: "other"); only
 * what is not 0, but "other" always. */
static void lserver_push_counts(lua_State *L, const uint64_t *n, const int *keys, int len)
{
    int i;
    lua_createtable(L, 0, 4);
    for (i = 0; i < len; i++) {
        if (keys[i] == 0) {
            lua_pushinteger(L, (lua_Integer)n[i]);
            lua_setfield(L, -2, "other");
        } else if (n[i]) {
            lua_pushinteger(L, (lua_Integer)n[i]);
            lua_rawseti(L, -2, keys[i]);
        }
    }
}

/*
** server:metrics() -> {refused = {[status] = n, other = n}, closes =
** {[code] = n, other = n}, handshake = hist, close = hist, proxy_errors,
** tls_handshakes, tls_failed, send_queue_bytes}
** [-0, +1, -]  What io/metrics.h counts, for lua/luaws/metrics.lua to
** format; send_queue_bytes is summed over the open connections now.
*/
static int lserver_metrics(lua_State *L)
{
    struct lserver *ls = lserver_check(L, 1);
    const struct metrics *m = &ls->s.group.stats.m;
    const struct conn *c;
    uint64_t queued = 0;
    for (c = ls->s.group.conns; c; c = c->next)
        queued += conn_buffered(c);
    lua_createtable(L, 0, 8);
    lserver_push_counts(L, m->refused, metrics_status, METRICS_STATUSES);
    lua_setfield(L, -2, "refused");
    lserver_push_counts(L, m->closes, metrics_code, METRICS_CODES);
    lua_setfield(L, -2, "closes");
    lserver_push_hist(L, &m->handshake, metrics_handshake_le);
    lua_setfield(L, -2, "handshake");
    lserver_push_hist(L, &m->close, metrics_close_le);
    lua_setfield(L, -2, "close");
#define FIELD(name, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, -2, name))
    FIELD("proxy_errors", m->proxy_errors);
    FIELD("tls_handshakes", m->tls_handshakes);
    FIELD("tls_failed", m->tls_failed);
    FIELD("send_queue_bytes", queued);
#undef FIELD
    return 1;
}

/* The backplane went up or down: tell the script's function. */
static void lserver_bp_event(struct backplane *bp, int up, const char *detail, void *arg)
{
    lua_State *L = lws_main;
    struct lserver *ls = arg;
    (void)bp;
    if (!L || ls->bp_ref == LUA_NOREF)
        return;
    lws_pushref(L, ls->bp_ref);
    lua_pushstring(L, up ? "up" : "down");
    lua_pushstring(L, detail ? detail : "");
    lws_call(L, 2, 0, "backplane handler");
}

/* A string field of table i, or NULL. */
static const char *lserver_sfield(lua_State *L, int i, const char *k)
{
    const char *v;
    lua_getfield(L, i, k);
    v = lua_tostring(L, -1);
    lua_pop(L, 1);   /* the table keeps the string alive */
    return v;
}

/*
** server:backplane(params, on_event) -> true | nil, message, token
** [-0, +1|3, v]  Join the server's topics to Redis (see io/backplane.h).
** params: {host, port, path, password, username, db, prefix, max_pending}
** (the Lua layer parses the URL); on_event(state, detail): "up"/"down".
*/
static int lserver_backplane(lua_State *L)
{
    struct lserver *ls = lserver_check(L, 1);
    struct backplane_params p;
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    if (ls->bp)
        return luaL_error(L, "backplane: the server has one already");
    memset(&p, 0, sizeof p);
    p.host = lserver_sfield(L, 2, "host");
    p.path = lserver_sfield(L, 2, "path");
    p.password = lserver_sfield(L, 2, "password");
    p.username = lserver_sfield(L, 2, "username");
    p.prefix = lserver_sfield(L, 2, "prefix");
    lua_getfield(L, 2, "port");
    p.port = (int)luaL_optinteger(L, -1, 6379);
    lua_getfield(L, 2, "db");
    p.db = (int)luaL_optinteger(L, -1, 0);
    lua_getfield(L, 2, "max_pending");
    p.max_pending = (size_t)luaL_optinteger(L, -1, 0);
    lua_pop(L, 3);
    lua_pushvalue(L, 3);
    ls->bp_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    ls->bp = backplane_start(&ls->s.ps, &p, lserver_bp_event, ls);
    if (!ls->bp)
        return lws_fail(L, WS_ENOMEM, "backplane: out of memory");
    lua_pushboolean(L, 1);
    return 1;
}

/* server:connections() -> array of the open connections. [-0, +1, v] */
static int lserver_connections(lua_State *L)
{
    struct lserver *ls = lserver_check(L, 1);
    struct conn *c;
    lua_Integer i = 0;
    lua_createtable(L, (int)ls->s.group.nopen, 0);
    for (c = ls->s.group.conns; c; c = c->next) {
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
                    ls->s.closed ? "closed" : "listening", (int)ls->s.group.nopen);
    return 1;
}

/* __gc: reached when not anchored (closed, no connection), or at lua_close,
 * when connections may still be live: free them quietly, and the handlers
 * refs with them. */
static int lserver_gc(lua_State *L)
{
    struct lserver *ls = lserver_check(L, 1);
    server_close(&ls->s, 0, NULL);
    while (ls->s.group.conns)
        lws_conn_destroy(ls->s.group.conns);   /* unlinks itself from the list */
    server_forget(&ls->s);
    backplane_stop(ls->bp);
    ls->bp = NULL;
    if (ls->bp_ref != LUA_NOREF && lws_main) {
        luaL_unref(L, LUA_REGISTRYINDEX, ls->bp_ref);
        ls->bp_ref = LUA_NOREF;
    }
    pubsub_free(&ls->s.ps);
    free((void *)ls->trust.nets);
    ls->trust.nets = NULL;
    ls->trust.n = 0;
    if (lua_getiuservalue(L, 1, LSERVER_UV_REFS) == LUA_TTABLE) {
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

/* core.request_metatable(mt): the metatable of every request table (req in
 * on_request, a connection's fields), where the Lua layer works out
 * req.args and the like on first use. [-0, +0, v] */
static int lserver_request_metatable(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, LWS_REQUEST_MT);
    return 0;
}

static const luaL_Reg lserver_methods[] = {
    { "port", lserver_port },
    { "close", lserver_close },
    { "broadcast", lserver_broadcast },
    { "publish", lserver_publish },
    { "backplane", lserver_backplane },
    { "stats", lserver_stats },
    { "metrics", lserver_metrics },
    { "connections", lserver_connections },
    { "reload_tls", lserver_reload_tls },
    { "forget_upgrades", lserver_forget_upgrades },
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
    /* the topic methods of a server's connections: they need the server,
     * which lua/conn.c must not know, so they are added here */
    if (lua_getfield(L, -1, "conn_methods") == LUA_TTABLE) {
        static const luaL_Reg ws_methods[] = {
            { "subscribe", lserver_ws_subscribe },
            { "unsubscribe", lserver_ws_unsubscribe },
            { "topics", lserver_ws_topics },
            { "publish", lserver_ws_publish },
            { NULL, NULL }
        };
        luaL_setfuncs(L, ws_methods, 0);
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, lserver_listen);
    lua_setfield(L, -2, "listen");
    lua_pushcfunction(L, lserver_request_metatable);
    lua_setfield(L, -2, "request_metatable");
    lua_pushcfunction(L, lserver_current_request);
    lua_setfield(L, -2, "current_request");
    lua_pushcfunction(L, lserver_tls_name_match);
    lua_setfield(L, -2, "tls_name_match");
}
