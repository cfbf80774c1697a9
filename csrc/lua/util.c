/* SPDX-License-Identifier: MIT
 *
 * util.c -- the bindings' leaf (see util.h): error returns, the callback
 * call with its traceback, and the error sink (core.on_error, core.log).
 */
#include "lua/util.h"

#include <stdarg.h>
#include <stdio.h>

#include "lua/open.h"

lua_State *lws_main;
int lws_in_loop;

/* Registry key of the error sink set with core.on_error. */
static const char on_error_key = 'e';

int lws_fail(lua_State *L, int code, const char *fmt, ...)
{
    lua_pushnil(L);
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        lua_pushvfstring(L, fmt, ap);
        va_end(ap);
    } else {
        lua_pushstring(L, ws_strmessage(code));
    }
    lua_pushstring(L, ws_strerror(code));
    return 3;
}

void lws_log(lua_State *L, const char *msg)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &on_error_key);
    if (lua_isfunction(L, -1)) {
        lua_pushstring(L, msg);
        if (lua_pcall(L, 1, 0, 0) == LUA_OK)
            return;
        fprintf(stderr, "luaws: error in on_error: %s\n", lua_tostring(L, -1));
    }
    lua_pop(L, 1);
    fprintf(stderr, "luaws: %s\n", msg);
    fflush(stderr);
}

int lws_traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg)
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

void lws_report(lua_State *L, const char *what)
{
    lua_pushfstring(L, "error in %s: %s", what, lua_tostring(L, -1));
    lws_log(L, lua_tostring(L, -1));
    lua_pop(L, 2);
}

int lws_call(lua_State *L, int nargs, int nresults, const char *what)
{
    int base = lua_gettop(L) - nargs;   /* the function's slot */
    int rc;
    lua_pushcfunction(L, lws_traceback);
    lua_insert(L, base);
    rc = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    if (rc == LUA_OK)
        return 1;
    lws_report(L, what);
    return 0;
}

/* core.on_error(fn|nil): where callback errors go (default: stderr).
 * [-0, +0, -] Usage: core.on_error(function(msg) ... end) */
static int lutil_on_error(lua_State *L)
{
    if (!lua_isnoneornil(L, 1))
        luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &on_error_key);
    return 0;
}

/* core.log(msg): write a line to the error sink (core.on_error or stderr). */
static int lutil_log(lua_State *L)
{
    lws_log(L, luaL_checkstring(L, 1));
    return 0;
}

/* core.in_loop() -> true while a luaws callback runs (the loop cannot be
 * turned from here, so nothing may wait). [-0, +1, -] */
static int lutil_in_loop(lua_State *L)
{
    lua_pushboolean(L, lws_in_loop);
    return 1;
}

void lws_util_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        { "on_error", lutil_on_error },
        { "log", lutil_log },
        { "in_loop", lutil_in_loop },
        { NULL, NULL }
    };
    luaL_setfuncs(L, funcs, 0);
}
