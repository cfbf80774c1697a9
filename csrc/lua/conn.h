/* SPDX-License-Identifier: MIT
 *
 * conn.h -- what the server and client bindings take from the connection
 * binding (conn.c): the C side of a connection as Lua holds it, its box,
 * the request table, the options reader and the hooks every connection
 * shares. The arrows run server.c -> conn.c and client.c -> conn.c, never
 * back.
 */
#ifndef LUAWS_LUA_CONN_H
#define LUAWS_LUA_CONN_H

#include "io/conn.h"
#include "lua/util.h"

struct lbox;
struct pubsub_sub;

/* A connection as the bindings keep it: C memory (malloc'd at accept or
 * connect, freed at release), a box userdata made on demand. */
struct lconn {
    struct conn c;              /* first: a struct conn * is a struct lconn * */
    struct lbox *box;           /* the Lua userdata once made, else NULL */
    int box_ref;                /* its registry ref while the connection lives */
    int handlers_ref;           /* registry ref of the handlers table */
    uint8_t own_handlers;       /* 1 if handlers_ref is this connection's own */
    uint16_t method_len;        /* server: the request line's parts in head, */
    uint16_t target_len;        /* as the HTTP parser found them */
    uint16_t path_len;
    uint32_t head_len;          /* bytes at head */
    char *head;                 /* server: request head, a NUL, the subprotocol */
    struct pubsub_sub *subs;    /* server: the topics it subscribes to (lua/server.c) */
};

/* Set a fresh lconn's refs (the rest is zero). */
void lws_conn_prepare(struct lconn *l);

/* Push the box of a live connection, making it on first use. */
void lws_conn_push(lua_State *L, struct conn *c);

/* Make sure the box at index ud has its fields table, and push it. */
void lws_conn_fields(lua_State *L, int ud);

/* The live connection of the "luaws.conn" at idx (raises if it is not
 * one), or NULL if it was released. */
struct conn *lws_conn_check(lua_State *L, int idx);

/* The live connection of the box at idx, or raise with fname's name if it
 * was released (for methods that must not fail quietly). */
struct lconn *lws_conn_live(lua_State *L, int idx);

/* The registry ref of a connection's handlers table. */
int lws_conn_handlers_ref(const struct conn *c);

/* Keep the request head (and the chosen subprotocol) with the connection
 * for ws.path & co. 0 if out of memory. */
int lws_conn_keep_head(struct lconn *l, const struct ws_http_head *h, const char *head,
                       size_t head_len, const char *protocol, size_t plen);

/* Fill conn_options from the table at index i; fields that are missing
 * keep their value in *o. Raises on a wrong type. */
void lws_read_conn_options(lua_State *L, int i, struct conn_options *o);

/* Fill *z from the compression table at index i (options.lua's normalized
 * form: threshold, level, mem_level, server_/client_no_context_takeover,
 * server_/client_max_window_bits); false or nil: off. */
void lws_read_compression(lua_State *L, int i, struct conn_compression *z);

/* Push the request table of a parsed head: method, target, path, query,
 * headers, origin, upgrade, remote, port, and tls (lws_push_tls) on a TLS
 * connection. With the head's bytes (head, the head h was parsed from),
 * headers is made on first use (core.request_headers); without (NULL), at
 * once. */
void lws_push_request(lua_State *L, const struct conn *c, const struct ws_http_head *h, int upgrade,
                      const char *head, size_t head_len);

/* Push what the TLS session of c negotiated (ws.tls): {protocol, cipher,
 * alpn, server_name} and, when the peer presented a certificate, subject,
 * issuer, serial, fingerprint, san (a list), verified; nil for a plain
 * connection. */
void lws_push_tls(lua_State *L, const struct conn *c);

/* Push a table of a head's headers (lower-case names, repeats joined). */
void lws_push_headers(lua_State *L, const struct ws_http_head *h);

/* Push the value of the headers called name (any case) in h, repeats
 * joined with ", " as lws_push_headers does: 1, or 0 (nothing pushed) if
 * there is none. */
int lws_push_header(lua_State *L, const struct ws_http_head *h, const char *name);

/* Push a string of "Name: value\r\n" lines from a table at index i; never
 * raises. NULL, or the name of the first bad entry (left out). */
const char *lws_header_lines(lua_State *L, int i);

/* The hooks every connection shares: they call the route's (or client's)
 * handlers. The server and client bindings put them in their conn_hooks
 * beside their own on_request and release. */
void lws_conn_on_open(struct conn *c);
void lws_conn_on_message(struct conn *c, int opcode, const uint8_t *data, size_t len);
void lws_conn_on_fragment(struct conn *c, int opcode, const uint8_t *data, size_t len, int fin);
void lws_conn_on_control(struct conn *c, int opcode, const uint8_t *data, size_t len);
void lws_conn_on_drain(struct conn *c);
void lws_conn_on_close(struct conn *c, unsigned code, const char *reason, size_t len, int err);

/* Free a live connection quietly (lua_close, a collected server): no
 * hooks, its memory freed. */
void lws_conn_destroy(struct conn *c);

/* The connection finished: keep its fields for a box a script may hold,
 * then free its Lua side and its memory. */
void lws_conn_release(struct conn *c);

#endif
