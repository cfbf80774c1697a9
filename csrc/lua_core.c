/* SPDX-License-Identifier: MIT
 *
 * lua_core.c -- luaopen_luaws_core: the luaws.core module table, the loop
 * functions (run, step, stop, now, shutdown) and the one way callbacks are
 * called (lws_call: pcall with a traceback, errors logged, never lost).
 *
 * The module is the thin C half of luaws; lua/luaws.lua is what scripts use.
 * luaopen is idempotent: metatables are made once, and a second require (or
 * busted's insulation) gets the same loop.
 */
#include "lua_core.h"

#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "handshake.h"
#include "loop.h"

lua_State *lws_main;
int lws_in_loop;

/* Registry key of the error sink set with core.on_error. */
static const char on_error_key = 'e';

int lws_fail(lua_State *L, int code, const char *detail)
{
    lua_pushnil(L);
    lua_pushstring(L, ws_strerror(code));
    if (detail) {
        lua_pushstring(L, detail);
        return 3;
    }
    return 2;
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
static int lcore_on_error(lua_State *L)
{
    if (!lua_isnoneornil(L, 1))
        luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &on_error_key);
    return 0;
}

static struct ev_loop *lcore_loop(lua_State *L)
{
    struct ev_loop *loop = loop_get();
    if (!loop)
        luaL_error(L, "luaws: libev could not start its loop");
    if (lws_in_loop)
        luaL_error(L, "luaws: the loop is already running (step/run called from a callback)");
    return loop;
}

/* core.run(): run the loop until nothing is left to watch, core.stop() or a
 * finished shutdown. [-0, +1, e] Usage: core.run() */
static int lcore_run(lua_State *L)
{
    struct ev_loop *loop = lcore_loop(L);
    lws_in_loop = 1;
    ev_run(loop, 0);
    loop_pending_run();
    lws_in_loop = 0;
    if (loop_shutdown_cut > 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "shutdown: %zu connection%s still open when the grace period ran out, cut",
                 loop_shutdown_cut, loop_shutdown_cut == 1 ? " was" : "s were");
        lws_log(L, msg);
        loop_shutdown_cut = 0;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static void lcore_step_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

/* core.step([timeout]): one loop iteration, waiting at most timeout seconds
 * (0 = do not wait; default 0) for something to happen.
 * [-0, +1, e] Usage: core.step(0.01) */
static int lcore_step(lua_State *L)
{
    struct ev_loop *loop = lcore_loop(L);
    double timeout = luaL_optnumber(L, 1, 0);
    ev_timer t;
    lws_in_loop = 1;
    loop_pending_run();
    if (timeout > 0) {
        ev_timer_init(&t, lcore_step_timeout, timeout, 0.);
        ev_timer_start(loop, &t);
        ev_run(loop, EVRUN_ONCE);
        ev_timer_stop(loop, &t);
    } else {
        ev_run(loop, EVRUN_NOWAIT);
    }
    loop_pending_run();
    lws_in_loop = 0;
    lua_pushboolean(L, 1);
    return 1;
}

/* core.stop(): make core.run() return after the current callback.
 * [-0, +0, -] */
static int lcore_stop(lua_State *L)
{
    (void)L;
    ev_break(loop_get(), EVBREAK_ALL);
    return 0;
}

/* core.now() -> seconds (wall clock, sub-millisecond). [-0, +1, -] */
static int lcore_now(lua_State *L)
{
    lua_pushnumber(L, ev_time());
    return 1;
}

/* core.shutdown([grace=5]): stop accepting, close every connection with
 * 1001, and let core.run() return once they are gone or grace seconds have
 * passed. [-0, +0, -] */
static int lcore_shutdown(lua_State *L)
{
    loop_shutdown(luaL_optnumber(L, 1, 5));
    return 0;
}

/* core.watch_signals(on [, grace]): SIGINT/SIGTERM start core.shutdown(grace).
 * [-0, +0, -] */
static int lcore_watch_signals(lua_State *L)
{
    loop_watch_signals(lua_toboolean(L, 1), luaL_optnumber(L, 2, 5));
    return 0;
}

/* core.log(msg): write a line to the error sink (core.on_error or stderr). */
static int lcore_log(lua_State *L)
{
    lws_log(L, luaL_checkstring(L, 1));
    return 0;
}

/* core.live() -> number of connections the loop has not finished. */
static int lcore_live(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)loop_live_conns);
    return 1;
}

static const luaL_Reg core_funcs[] = {
    { "run", lcore_run },
    { "step", lcore_step },
    { "stop", lcore_stop },
    { "now", lcore_now },
    { "shutdown", lcore_shutdown },
    { "watch_signals", lcore_watch_signals },
    { "live", lcore_live },
    { "on_error", lcore_on_error },
    { "log", lcore_log },
    { NULL, NULL }
};

/* The sentinel's __gc: lua_close is collecting everything; the loop goes
 * last (the sentinel was made first, and Lua finalizes in reverse order). */
static int lcore_unload(lua_State *L)
{
    (void)L;
    loop_free();
    lws_main = NULL;
    return 0;
}

/* Registry key of the sentinel, made once per Lua state. */
static const char sentinel_key = 's';

LUAWS_EXPORT int luaopen_luaws_core(lua_State *L);

LUAWS_EXPORT int luaopen_luaws_core(lua_State *L)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    lws_main = lua_tothread(L, -1);
    lua_pop(L, 1);
    if (!loop_get())
        return luaL_error(L, "luaws: libev could not start its loop");
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &sentinel_key) == LUA_TNIL) {
        /* Load OpenSSL's SHA-1 now (provider, code pages) rather than in
         * the first handshake, which would otherwise pay for it. */
        char accept[WS_ACCEPT_LEN + 1];
        ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, accept);
        lua_newuserdatauv(L, 1, 0);
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, lcore_unload);
        lua_setfield(L, -2, "__gc");
        lua_setmetatable(L, -2);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &sentinel_key);
    }
    lua_pop(L, 1);
    lua_newtable(L);
    luaL_setfuncs(L, core_funcs, 0);
    lws_codec_open(L);
    lws_conn_open(L);
    lws_server_open(L);
    lws_timer_open(L);
    lua_pushliteral(L, "0.1.0");
    lua_setfield(L, -2, "version");
    return 1;
}
