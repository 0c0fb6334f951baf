/* rt.log: Lua binding over log.c (see rt_log.h). */
#include "lua/rt_log.h"

#include "log.h"
#include "lua/keys.h"

#include <lauxlib.h>

static int emit(lua_State *L, enum log_level level)
{
    int n = lua_gettop(L);
    luaL_Buffer b;

    if (!log_enabled(level))
        return 0;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
        if (i < n)
            luaL_addchar(&b, ' ');
    }
    luaL_pushresult(&b);
    lua_getfield(L, LUA_REGISTRYINDEX, RT_KEY_REQUEST_ID);
    log_msg(level, lua_tostring(L, -1), "%s", lua_tostring(L, -2));
    return 0;
}

static int l_debug(lua_State *L)
{
    return emit(L, LOG_LEVEL_DEBUG);
}

static int l_info(lua_State *L)
{
    return emit(L, LOG_LEVEL_INFO);
}

static int l_warn(lua_State *L)
{
    return emit(L, LOG_LEVEL_WARN);
}

static int l_error(lua_State *L)
{
    return emit(L, LOG_LEVEL_ERROR);
}

int luaopen_rt_log(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"debug", l_debug}, {"info", l_info}, {"warn", l_warn},
        {"error", l_error}, {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    return 1;
}
