/* SPDX-License-Identifier: MIT
 *
 * core.c -- luaopen_luaws_core: the luaws.core module table. It only
 * registers the parts (lua/open.h); each part is one binding file.
 *
 * The module is the thin C half of luaws; lua/luaws.lua is what scripts use.
 * luaopen is idempotent: metatables are made once, and a second require (or
 * busted's insulation) gets the same loop.
 */
#include "lua/util.h"

#include "io/conn.h"
#include "io/loop.h"
#include "io/server.h"
#include "io/workers.h"
#include "lua/open.h"
#include "proto/handshake.h"

/* The sentinel's __gc: lua_close is collecting everything; the loop goes
 * last (the sentinel was made first, and Lua finalizes in reverse order). */
static int lcore_unload(lua_State *L)
{
    (void)L;
    workers_reset();
    server_reset();
    conn_zpool_free();
    lws_loop_close();
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
    lws_util_open(L);
    lws_loop_open(L);
    lws_codec_open(L);
    lws_conn_open(L);
    lws_client_open(L);
    lws_server_open(L);
    lws_timer_open(L);
    lws_workers_open(L);
    lua_pushliteral(L, "0.1.0");
    lua_setfield(L, -2, "version");
    return 1;
}
