/* SPDX-License-Identifier: MIT
 *
 * util.h -- the leaf every binding file uses: the main Lua state, the one
 * way callbacks are called (lws_call: pcall with a traceback, errors
 * logged, never lost), the error sink, and how I/O errors are returned.
 * It includes nothing of the bindings; they include it.
 */
#ifndef LUAWS_LUA_UTIL_H
#define LUAWS_LUA_UTIL_H

#include <lua.h>
#include <lauxlib.h>
#include "luaws.h"

#define LWS_CONN_MT "luaws.conn"
#define LWS_SERVER_MT "luaws.server"
#define LWS_TIMER_MT "luaws.timer"
/* Registry field: the metatable of request tables (set by the Lua layer). */
#define LWS_REQUEST_MT "luaws.request"

/* The main Lua state: every callback from the loop runs on it. */
extern lua_State *lws_main;

/* 1 while a loop callback runs (core.step/run must not nest). */
extern int lws_in_loop;

/* An I/O failure the luv way: push nil, a whole human message (fmt and its
 * arguments, as lua_pushfstring takes them; NULL: ws_strmessage(code)),
 * then the short stable token ws_strerror(code) that scripts compare.
 * Returns 3, for `return lws_fail(L, rc, "send: %s", ws_strmessage(rc));`.
 * assert(f()) then shows the message. */
int lws_fail(lua_State *L, int code, const char *fmt, ...);

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

#endif
