/* SPDX-License-Identifier: MIT
 *
 * timer.c -- the "luaws.timer" userdata: a libev timer whose callback is
 * a Lua function (luaws.after, luaws.every).
 *
 * The callback is the userdata's user value. While the timer is active the
 * registry holds the userdata, so a script may drop it and still be called;
 * a stopped (or spent one-shot) timer is an ordinary collectable value.
 * A callback that raises is logged and the timer goes on (a repeating one
 * keeps repeating): a bug in one tick must not stop a server's heartbeat.
 */
#include "lua/util.h"
#include "lua/open.h"

#include <ev.h>
#include <stddef.h>
#include <string.h>

#include "io/loop.h"

struct ltimer {
    ev_timer w;
    int ref;   /* registry ref while active */
};

static struct ltimer *ltimer_check(lua_State *L, int i)
{
    return luaL_checkudata(L, i, LWS_TIMER_MT);
}

static void ltimer_anchor(lua_State *L, struct ltimer *t, int idx)
{
    if (t->ref == LUA_NOREF) {
        lua_pushvalue(L, idx);
        t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
}

static void ltimer_unanchor(lua_State *L, struct ltimer *t)
{
    if (t->ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, t->ref);
        t->ref = LUA_NOREF;
    }
}

static void ltimer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct ltimer *t = (struct ltimer *)((char *)w - offsetof(struct ltimer, w));
    lua_State *L = lws_main;
    int top = lua_gettop(L);
    (void)loop;
    (void)revents;
    lws_pushref(L, t->ref);           /* keep it alive through the call */
    if (!ev_is_active(w))
        ltimer_unanchor(L, t);        /* a spent one-shot is collectable after this */
    lua_getiuservalue(L, -1, 1);
    lua_pushvalue(L, -2);
    lws_call(L, 1, 0, "timer callback");
    lua_settop(L, top);
}

/*
** core.timer(after, every, fn) -> timer
** [-0, +1, e]  Call fn(timer) after `after` seconds, then every `every`
** seconds if every > 0. Usage: local t = core.timer(1, 1, function(t) ... end)
*/
static int ltimer_new(lua_State *L)
{
    double after = luaL_checknumber(L, 1);
    double every = luaL_checknumber(L, 2);
    struct ltimer *t;
    luaL_argcheck(L, after >= 0, 1, "must not be negative");
    luaL_argcheck(L, every >= 0, 2, "must not be negative");
    luaL_checktype(L, 3, LUA_TFUNCTION);
    t = lua_newuserdatauv(L, sizeof *t, 1);
    memset(t, 0, sizeof *t);
    t->ref = LUA_NOREF;
    luaL_setmetatable(L, LWS_TIMER_MT);
    lua_pushvalue(L, 3);
    lua_setiuservalue(L, -2, 1);
    ev_timer_init(&t->w, ltimer_cb, after, every);
    ev_timer_start(loop_get(), &t->w);
    ltimer_anchor(L, t, -1);
    return 1;
}

/* timer:stop(): no more calls. [-0, +0, v] */
static int ltimer_stop(lua_State *L)
{
    struct ltimer *t = ltimer_check(L, 1);
    ev_timer_stop(loop_get(), &t->w);
    ltimer_unanchor(L, t);
    return 0;
}

/* timer:again([after [, every]]): restart the countdown (libev
 * ev_timer_again semantics for repeating timers). [-0, +0, v] */
static int ltimer_again(lua_State *L)
{
    struct ltimer *t = ltimer_check(L, 1);
    struct ev_loop *loop = loop_get();
    double after = luaL_optnumber(L, 2, t->w.at > 0 ? t->w.repeat : 0);
    double every = luaL_optnumber(L, 3, t->w.repeat);
    ev_timer_stop(loop, &t->w);
    ev_timer_set(&t->w, after > 0 ? after : every, every);
    ev_timer_start(loop, &t->w);
    ltimer_anchor(L, t, 1);
    return 0;
}

/* timer:active() -> boolean */
static int ltimer_active(lua_State *L)
{
    lua_pushboolean(L, ev_is_active(&ltimer_check(L, 1)->w));
    return 1;
}

static int ltimer_gc(lua_State *L)
{
    struct ltimer *t = ltimer_check(L, 1);
    ev_timer_stop(loop_get(), &t->w);
    return 0;
}

static const luaL_Reg ltimer_methods[] = {
    { "stop", ltimer_stop },
    { "again", ltimer_again },
    { "active", ltimer_active },
    { NULL, NULL }
};

void lws_timer_open(lua_State *L)
{
    if (luaL_newmetatable(L, LWS_TIMER_MT)) {
        luaL_newlib(L, ltimer_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, ltimer_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, ltimer_new);
    lua_setfield(L, -2, "timer");
}
