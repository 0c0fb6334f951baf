/* rt.events (see rt_events.h). */
#include "lua/rt_events.h"

#include "lua/keys.h"

#include <lauxlib.h>

static int l_emit(lua_State *L)
{
    luaL_checkstring(L, 1);
    lua_settop(L, 2);
    if (lua_getfield(L, LUA_REGISTRYINDEX, RT_KEY_EVENTS_HANDLERS) != LUA_TFUNCTION)
        return luaL_error(L, "rt.events.emit: not available here (only in requests)");
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);        /* 3: the handlers */
    lua_createtable(L, 0, 2); /* 4: the event */
    lua_pushvalue(L, 1);
    lua_setfield(L, 4, "name");
    lua_getfield(L, LUA_REGISTRYINDEX, RT_KEY_ENV_TENANT);
    lua_setfield(L, 4, "tenant");
    lua_Integer n = (lua_Integer)lua_rawlen(L, 3);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 3, i);
        lua_pushvalue(L, 2);
        lua_pushvalue(L, 4);
        lua_call(L, 2, 0);
    }
    lua_pushinteger(L, n);
    return 1;
}

int luaopen_rt_events(lua_State *L)
{
    static const luaL_Reg fns[] = {{"emit", l_emit}, {NULL, NULL}};

    luaL_newlib(L, fns);
    return 1;
}
