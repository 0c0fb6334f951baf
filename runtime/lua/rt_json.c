/* rt.json: lua-cjson, configured and wrapped (see rt_json.h). */
#include "lua/rt_json.h"

#include <lauxlib.h>
#include <lua-cjson.h>

/* Calls cjson's setting function `name` with one argument: an integer, or a
 * boolean when as_bool >= 0. Stack: [cjson] -> [cjson]. */
static void call_setting(lua_State *L, const char *name, lua_Integer a, int as_bool)
{
    lua_getfield(L, -1, name);
    if (as_bool >= 0)
        lua_pushboolean(L, as_bool);
    else
        lua_pushinteger(L, a);
    lua_call(L, 1, 0);
}

static int l_decode(lua_State *L)
{
    luaL_checkstring(L, 1);
    lua_settop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2; /* nil, message */
    }
    return 1;
}

int luaopen_rt_json(lua_State *L)
{
    lua_Integer depth = 64;

    if (lua_getfield(L, LUA_REGISTRYINDEX, "rt.json.max_depth") == LUA_TNUMBER)
        depth = lua_tointeger(L, -1);
    lua_pop(L, 1);

    luaopen_cjson(L); /* a fresh cjson instance with its own settings */
    call_setting(L, "encode_max_depth", depth, -1);
    call_setting(L, "decode_max_depth", depth, -1);
    call_setting(L, "encode_invalid_numbers", 0, 0);
    call_setting(L, "decode_invalid_numbers", 0, 0);
    /* Sparse arrays such as {[1000] = 1} are an error, not 999 nulls. */
    lua_getfield(L, -1, "encode_sparse_array");
    lua_pushboolean(L, 0);
    lua_pushinteger(L, 2);
    lua_pushinteger(L, 10);
    lua_call(L, 3, 0);

    lua_getfield(L, -1, "encode");
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "rt.json.encode");
    lua_getfield(L, -2, "decode");
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "rt.json.decode");

    /* Stack: cjson, encode, decode. */
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "encode");
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, l_decode, 1);
    lua_setfield(L, -2, "decode");
    lua_getfield(L, -4, "null");
    lua_setfield(L, -2, "null");
    lua_replace(L, -4);
    lua_pop(L, 2);
    return 1;
}
