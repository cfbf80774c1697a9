/* SPDX-License-Identifier: MIT
 *
 * workers.c -- the workers as Lua sees them: core.worker_id, worker_fds,
 * worker_start, workers_master, online_cpus. Thin: each is one call into
 * io/workers.c, which holds the design. lua/luaws.lua decides which to call
 * (luaws.run{workers = N}), lua/luaws/server.lua hands worker_fds to
 * core.listen.
 */
#include "lua/util.h"

#include "io/server.h"
#include "io/workers.h"
#include "lua/open.h"

/* core.worker_id() -> 1..N in a worker, nil elsewhere. [-0, +1, -] */
static int lworkers_id(lua_State *L)
{
    int id = workers_id();
    if (id > 0)
        lua_pushinteger(L, id);
    else
        lua_pushnil(L);
    return 1;
}

/* core.worker_fds() -> {fd, ...} | nil: the listening sockets the master
 * handed over for the next luaws.listen (each call takes the next entry;
 * {} for a server the master had closed); nil when not a worker or past
 * the master's servers. [-0, +1, m] Usage: copts.fds = core.worker_fds() */
static int lworkers_fds(lua_State *L)
{
    int fds[SERVER_MAX_LISTEN], n = workers_next_fds(fds, SERVER_MAX_LISTEN), i;
    if (n < 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, n, 0);
    for (i = 0; i < n; i++) {
        lua_pushinteger(L, fds[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* core.worker_start(grace, reload_grace [, {server, ...}]) -> true | nil,
 * message, token: in a worker, start the relay (every server's publishes
 * reach the other workers, but those of the servers listed, which have a
 * backplane), the drain on SIGUSR2, and say "ready" to the master. Does
 * nothing elsewhere. [-0, +1|3, e] */
static int lworkers_start(lua_State *L)
{
    double grace = luaL_checknumber(L, 1), reload_grace = luaL_checknumber(L, 2);
    struct server *skip[64];
    int nskip = 0, rc;
    char err[160];
    if (!lua_isnoneornil(L, 3)) {
        lua_Integer i, len;
        luaL_checktype(L, 3, LUA_TTABLE);
        len = luaL_len(L, 3);
        for (i = 1; i <= len && nskip < (int)(sizeof skip / sizeof skip[0]); i++) {
            lua_geti(L, 3, i);
            /* a "luaws.server" userdata begins with its struct server */
            skip[nskip++] = luaL_checkudata(L, -1, LWS_SERVER_MT);
            lua_pop(L, 1);
        }
    }
    rc = workers_worker_start(grace, reload_grace, skip, nskip, err, sizeof err);
    if (rc != WS_OK)
        return lws_fail(L, rc, "%s", err);
    lua_pushboolean(L, 1);
    return 1;
}

/*
** core.workers_master(n, grace, reload_grace) -> true | nil, message, token
** [-0, +1|3, e]  The script's process becomes the master of n workers and
** returns once SIGTERM/SIGINT has stopped them all. Runs no Lua meanwhile.
** Usage: core.workers_master(4, 5, 30)
*/
static int lworkers_master(lua_State *L)
{
    struct workers_config cfg;
    lua_Integer n = luaL_checkinteger(L, 1);
    char err[256];
    int rc;
    luaL_argcheck(L, n >= 1 && n <= WORKERS_MAX, 1, "workers out of range");
    if (lws_in_loop)
        return luaL_error(L, "luaws: run{workers} called from a callback");
    cfg.n = (int)n;
    cfg.grace = luaL_checknumber(L, 2);
    cfg.reload_grace = luaL_checknumber(L, 3);
    rc = workers_master_run(&cfg, err, sizeof err);
    if (rc != WS_OK)
        return lws_fail(L, rc, "%s", err);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.online_cpus() -> n >= 1. [-0, +1, -] */
static int lworkers_cpus(lua_State *L)
{
    lua_pushinteger(L, workers_online_cpus());
    return 1;
}

void lws_workers_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        { "worker_id", lworkers_id },
        { "worker_fds", lworkers_fds },
        { "worker_start", lworkers_start },
        { "workers_master", lworkers_master },
        { "online_cpus", lworkers_cpus },
        { NULL, NULL }
    };
    workers_env_init();
    luaL_setfuncs(L, funcs, 0);
}
