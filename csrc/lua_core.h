/* SPDX-License-Identifier: MIT
 *
 * lua_core.h -- what the lua_*.c binding files share. Only these files
 * include lua.h; the core below them does not.
 */
#ifndef LUAWS_LUA_CORE_H
#define LUAWS_LUA_CORE_H

#include <lua.h>
#include <lauxlib.h>
#include "luaws.h"

#define LWS_CONN_MT "luaws.conn"
#define LWS_SERVER_MT "luaws.server"
#define LWS_TIMER_MT "luaws.timer"

struct conn;
struct server;

/* The main Lua state: every callback from the loop runs on it. */
extern lua_State *lws_main;

/* Push nil, ws_strerror(code) and, when detail is not NULL, detail.
 * Returns the number of values pushed, for `return lws_fail(L, rc, NULL);`. */
int lws_fail(lua_State *L, int code, const char *detail);

/* Call the function below nargs arguments on the stack with a traceback
 * handler, like lua_pcall. On error the message and traceback are logged
 * (through the handler set with core.on_error, else to stderr) with what
 * saying which callback it was; the stack then holds nothing of the call.
 * Returns 1 on success (nresults pushed), 0 on error (nothing pushed). */
int lws_call(lua_State *L, int nargs, int nresults, const char *what);

/* The message handler lws_call uses (error + traceback), for callers that
 * push it themselves below the function, and the report of an error on the
 * stack top (logged as "error in <what>: …", popped). */
int lws_traceback(lua_State *L);
void lws_report(lua_State *L, const char *what);

/* Log a line through the same sink as callback errors. */
void lws_log(lua_State *L, const char *msg);

/* Registry ref helpers: push the value of ref. */
#define lws_pushref(L, ref) lua_rawgeti((L), LUA_REGISTRYINDEX, (ref))

/* Module parts: each adds its functions to the table on the stack top and
 * creates its metatable if it does not exist yet. [-0, +0, e] */
void lws_codec_open(lua_State *L);   /* lua_codec.c */
void lws_conn_open(lua_State *L);    /* lua_conn.c */
void lws_server_open(lua_State *L);  /* lua_server.c */
void lws_timer_open(lua_State *L);   /* lua_timer.c */

/* lua_conn.c: the hooks that carry connection events into Lua. */
struct conn_hooks;
extern const struct conn_hooks lws_conn_hooks;

/* lua_conn.c: push the userdata of a live connection. */
void lws_conn_push(lua_State *L, struct conn *c);

/* lua_conn.c: allocate a server connection (C memory; lua_conn.c frees it
 * at release). NULL if out of memory. */
struct conn *lws_conn_new_server(lua_State *L, struct server *s);

/* lua_conn.c: free a live connection quietly (lua_close): no hooks. */
void lws_conn_destroy(struct conn *c);

/* lua_conn.c: the live connection of the "luaws.conn" at idx (raises if it
 * is not one), or NULL if it was released. */
struct conn *lws_conn_check(lua_State *L, int idx);

/* lua_conn.c: the registry ref of a connection's handlers table. */
int lws_conn_handlers_ref(const struct conn *c);

/* lua_conn.c: fill conn_options from the table at index i; fields that are
 * missing keep their value in *o. Raises on a wrong type. */
struct conn_options;
void lws_read_conn_options(lua_State *L, int i, struct conn_options *o);

/* lua_server.c: a connection of the server ended; drop the server's anchor
 * once it is closed and has no connection left. */
void lws_server_conn_released(lua_State *L, struct server *s);

/* lua_server.c: push the server's on_request function. */
void lws_server_push_handler(lua_State *L, struct server *s);

/* lua_server.c: the registry ref for the handlers table at idx, one per
 * table for the server's life (routes share theirs). */
int lws_server_handlers_ref(lua_State *L, struct server *s, int idx);

/* 1 while a loop callback runs (core.step/run must not nest). */
extern int lws_in_loop;

#endif
