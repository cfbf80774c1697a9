/* SPDX-License-Identifier: MIT
 *
 * open.h -- the parts of the luaws.core module. Each adds its functions to
 * the module table on the stack top and creates its metatable if it does
 * not exist yet (busted's insulation and a second require run them again).
 * core.c calls them in order; nothing else does. [-0, +0, e]
 */
#ifndef LUAWS_LUA_OPEN_H
#define LUAWS_LUA_OPEN_H

#include <lua.h>

void lws_util_open(lua_State *L);    /* util.c: on_error, log */
void lws_loop_open(lua_State *L);    /* loop.c: run, step, stop, now, shutdown, ... */
void lws_codec_open(lua_State *L);   /* codec.c: the pure codecs */
void lws_conn_open(lua_State *L);    /* conn.c: "luaws.conn" */
void lws_client_open(lua_State *L);  /* client.c: connect */
void lws_server_open(lua_State *L);  /* server.c: "luaws.server", listen */
void lws_timer_open(lua_State *L);   /* timer.c: "luaws.timer" */
void lws_workers_open(lua_State *L); /* workers.c: worker_id, worker_start, workers_master, ... */

/* loop.c: stop the watchers it started for the script (SIGHUP), at
 * lua_close, before the loop goes. */
void lws_loop_close(void);

#endif
