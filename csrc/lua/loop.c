/* SPDX-License-Identifier: MIT
 *
 * loop.c -- the loop as Lua sees it: core.run, step, stop, now, shutdown,
 * watch_signals (SIGINT/SIGTERM: shutdown; SIGHUP: a function of the
 * script's), live, and for a host loop pollfd and timeout. Thin: each is
 * one call into io/.
 */
#include "lua/util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "io/conn.h"
#include "io/loop.h"
#include "io/server.h"
#include "lua/open.h"

static struct ev_loop *lloop_get(lua_State *L)
{
    struct ev_loop *loop = loop_get();
    if (!loop)
        luaL_error(L, "luaws: libev could not start its loop");
    if (lws_in_loop)
        luaL_error(L, "luaws: the loop is already running (step/run called from a callback)");
    return loop;
}

/* After a run that a shutdown ended: say how many connections its grace
 * period cut, if any. */
static void lloop_report_cut(lua_State *L)
{
    size_t cut = server_shutdown_cut();
    if (cut > 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "shutdown: %zu connection%s still open when the grace period ran out, cut",
                 cut, cut == 1 ? " was" : "s were");
        lws_log(L, msg);
    }
}

/* core.run(): run the loop until nothing is left to watch, core.stop() or a
 * finished shutdown. [-0, +1, e] Usage: core.run() */
static int lloop_run(lua_State *L)
{
    struct ev_loop *loop = lloop_get(L);
    lws_in_loop = 1;
    ev_run(loop, 0);
    loop_run_hooks();
    lws_in_loop = 0;
    lloop_report_cut(L);
    lua_pushboolean(L, 1);
    return 1;
}

static void lloop_step_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

/* core.step([timeout]): one loop iteration, waiting at most timeout seconds
 * (0 = do not wait; default 0) for something to happen. The before-block
 * hooks run before and after it, so what it ended is finished on return.
 * [-0, +1, e] Usage: core.step(0.01) */
static int lloop_step(lua_State *L)
{
    struct ev_loop *loop = lloop_get(L);
    double timeout = luaL_optnumber(L, 1, 0);
    ev_timer t;
    lws_in_loop = 1;
    loop_run_hooks();
    if (timeout > 0) {
        ev_timer_init(&t, lloop_step_timeout, timeout, 0.);
        ev_timer_start(loop, &t);
        ev_run(loop, EVRUN_ONCE);
        ev_timer_stop(loop, &t);
    } else {
        ev_run(loop, EVRUN_NOWAIT);
    }
    loop_run_hooks();
    lws_in_loop = 0;
    lua_pushboolean(L, 1);
    return 1;
}

/* Set up the host-loop fd; on failure push nil, message, token (an fd the
 * system cannot give) or raise (a backend without one). Returns the fd, or
 * -1 with the 3 results pushed. */
static int lloop_pollfd_or_fail(lua_State *L, const char *who)
{
    int fd = loop_pollfd();
    if (fd == LOOP_ENOFD)
        luaL_error(L, "%s: libev's loop runs on its %s backend, which has no descriptor to poll (epoll or kqueue is needed; is LIBEV_FLAGS set?)",
                   who, loop_backend_name());
    if (fd < 0)
        lws_fail(L, WS_EIO, "%s: %s", who, strerror(errno));
    return fd;
}

/* core.pollfd() -> fd | nil, message, token: the one descriptor a host
 * loop waits on (readable) before calling core.step(0); the same every
 * call. [-0, +1|3, e] Usage: local fd = assert(core.pollfd()) */
static int lloop_pollfd(lua_State *L)
{
    int fd = lloop_pollfd_or_fail(L, "pollfd");
    if (fd < 0)
        return 3;
    lua_pushinteger(L, fd);
    return 1;
}

/* core.timeout() -> seconds | nil | nil, message, token: how long the host
 * may wait on pollfd before core.step(0): until the earliest timer (0 when
 * work is pending), nil when no timer is armed. Raises inside a callback.
 * [-0, +1|3, e] Usage: poll(fd, core.timeout()) */
static int lloop_timeout(lua_State *L)
{
    double t;
    if (lws_in_loop)
        return luaL_error(L, "timeout: called from a luaws callback (the loop is running; ask before the host waits)");
    if (lloop_pollfd_or_fail(L, "timeout") < 0)
        return 3;
    t = loop_timeout();
    if (t < 0)
        lua_pushnil(L);
    else
        lua_pushnumber(L, t);
    return 1;
}

/* core.stop(): make core.run() return after the current callback.
 * [-0, +0, -] */
static int lloop_stop(lua_State *L)
{
    (void)L;
    ev_break(loop_get(), EVBREAK_ALL);
    return 0;
}

/* core.now() -> seconds (wall clock, sub-millisecond). [-0, +1, -] */
static int lloop_now(lua_State *L)
{
    lua_pushnumber(L, ev_time());
    return 1;
}

/* core.shutdown([grace=5]): stop accepting, close every connection with
 * 1001, and let core.run() return once they are gone; after grace seconds
 * the rest are cut. [-0, +0, -] */
static int lloop_shutdown(lua_State *L)
{
    server_shutdown(luaL_optnumber(L, 1, 5));
    return 0;
}

/* SIGHUP, when a script asked for it (luaws.run: reload the servers' TLS
 * certificates): its watcher and the registry ref of the function. */
static ev_signal hup_watcher;
static int hup_ref = LUA_NOREF;

static void lloop_hup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    if (!lws_main || hup_ref == LUA_NOREF)
        return;
    lws_pushref(lws_main, hup_ref);
    lws_call(lws_main, 0, 0, "SIGHUP handler");
}

/* Stop watching SIGHUP (idempotent). */
static void lloop_hup_stop(lua_State *L)
{
    if (ev_is_active(&hup_watcher)) {
        ev_ref(loop_get());
        loop_signal_stop(&hup_watcher);
    }
    if (hup_ref != LUA_NOREF && L)
        luaL_unref(L, LUA_REGISTRYINDEX, hup_ref);
    hup_ref = LUA_NOREF;
}

void lws_loop_close(void)
{
    lloop_hup_stop(NULL);   /* the registry goes with the state */
}

/* core.watch_signals(on [, grace [, on_hup]]): SIGINT/SIGTERM start
 * core.shutdown(grace); given a function, SIGHUP calls it (luaws.run
 * reloads TLS certificates with it). on = false stops both. A signal alone
 * keeps no loop running. [-0, +0, v] */
static int lloop_watch_signals(lua_State *L)
{
    int on = lua_toboolean(L, 1);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TFUNCTION);
    server_watch_signals(on, luaL_optnumber(L, 2, 5));
    lloop_hup_stop(L);
    if (on && lua_isfunction(L, 3)) {
        lua_pushvalue(L, 3);
        hup_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        ev_signal_init(&hup_watcher, lloop_hup_cb, SIGHUP);
        loop_signal_start(&hup_watcher);   /* not ev_signal_start: see io/loop.h */
        ev_unref(loop_get());
    }
    return 0;
}

/* core.live() -> number of connections the loop has not finished. */
static int lloop_live(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)conn_live());
    return 1;
}

void lws_loop_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        { "run", lloop_run },
        { "step", lloop_step },
        { "stop", lloop_stop },
        { "now", lloop_now },
        { "shutdown", lloop_shutdown },
        { "watch_signals", lloop_watch_signals },
        { "live", lloop_live },
        { "pollfd", lloop_pollfd },
        { "timeout", lloop_timeout },
        { NULL, NULL }
    };
    luaL_setfuncs(L, funcs, 0);
}
