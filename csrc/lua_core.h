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

/* Push nil, ws_strerror(code) and, when detail is not NULL, detail.
 * Returns the number of values pushed, for `return lws_fail(L, rc, NULL);`. */
int lws_fail(lua_State *L, int code, const char *detail);

/* Add the pure codec functions (frame, utf8, http, handshake) to the table on
 * the top of the stack. [-0, +0, e] (lua_codec.c) */
void lws_codec_open(lua_State *L);

#endif
