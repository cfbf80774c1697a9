/* SPDX-License-Identifier: MIT
 *
 * lua_core.c -- luaopen_luaws_core: the luaws.core module table.
 * (Minimal for now: the codecs. The loop, server and connection bindings join
 * it as they land.)
 */
#include "lua_core.h"

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

LUAWS_EXPORT int luaopen_luaws_core(lua_State *L);

LUAWS_EXPORT int luaopen_luaws_core(lua_State *L)
{
    lua_newtable(L);
    lws_codec_open(L);
    return 1;
}
