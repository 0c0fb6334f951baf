/* rt.json: JSON encoder, lua-cjson decoder (see rt_json.h). */
#include "lua/rt_json.h"

#include "buf.h"
#include "lua/limits.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua-cjson.h>

#define ENCODER_MT "rt.json.encoder"

/* How often (in values) the encoder checks the request's limits: its output
 * lives outside the Lua state until the end, and a wide shared structure can
 * take long without a single Lua instruction. */
#define CHECK_EVERY 1024

/* The encoder's state lives in a userdata so that an error raised halfway
 * (bad value, too deep, a limit) still frees the output buffer when the
 * userdata is collected. */
struct encoder {
    struct buf b;
    int max;            /* deepest nesting */
    unsigned count;     /* values encoded */
    const void *path[]; /* the tables being encoded, outermost first */
};

static int encoder_gc(lua_State *L)
{
    struct encoder *e = luaL_checkudata(L, 1, ENCODER_MT);
    buf_free(&e->b);
    return 0;
}

static void encode_value(lua_State *L, struct encoder *e, int idx, int depth);

static void encode_number(lua_State *L, struct buf *b, int idx)
{
    char num[32];

    if (lua_isinteger(L, idx)) {
        buf_printf(b, "%lld", (long long)lua_tointeger(L, idx));
        return;
    }
    double d = lua_tonumber(L, idx);
    if (!isfinite(d))
        luaL_error(L, "rt.json.encode: cannot encode NaN or infinity");
    /* The shortest of 15..17 significant digits that reads back exactly. */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(num, sizeof num, "%.*g", prec, d);
        if (prec == 17 || strtod(num, NULL) == d)
            break;
    }
    buf_puts(b, num);
}

/* Number of elements if the table at idx is an array (keys exactly 1..n),
 * else -1. */
static lua_Integer array_length(lua_State *L, int idx)
{
    lua_Integer count = 0, max = 0;

    if (lua_getmetatable(L, idx)) {
        luaL_getmetatable(L, RT_JSON_ARRAY_MT);
        int marked = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (marked)
            return (lua_Integer)lua_rawlen(L, idx);
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
            lua_pop(L, 1);
            return -1;
        }
        lua_Integer k = lua_tointeger(L, -1);
        if (k > max)
            max = k;
        count++;
    }
    return count > 0 && count == max ? count : -1;
}

static void encode_table(lua_State *L, struct encoder *e, int idx, int depth)
{
    struct buf *b = &e->b;
    const void *self = lua_topointer(L, idx);

    if (depth > e->max)
        luaL_error(L, "rt.json.encode: nesting deeper than %d", e->max);
    for (int i = 0; i < depth - 1; i++)
        if (e->path[i] == self)
            luaL_error(L, "rt.json.encode: a table contains itself (a cycle)");
    e->path[depth - 1] = self;
    luaL_checkstack(L, 6, "rt.json.encode: too deep");
    lua_Integer n = array_length(L, idx);
    if (n >= 0) {
        buf_putc(b, '[');
        for (lua_Integer i = 1; i <= n; i++) {
            if (i > 1)
                buf_putc(b, ',');
            lua_rawgeti(L, idx, i);
            encode_value(L, e, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
        }
        buf_putc(b, ']');
        return;
    }
    bool first = true;
    buf_putc(b, '{');
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (!first)
            buf_putc(b, ',');
        first = false;
        if (lua_type(L, -2) == LUA_TSTRING) {
            size_t len;
            const char *k = lua_tolstring(L, -2, &len);
            buf_json_str(b, k, len);
        } else if (lua_isinteger(L, -2)) {
            buf_printf(b, "\"%lld\"", (long long)lua_tointeger(L, -2));
        } else {
            luaL_error(L, "rt.json.encode: cannot encode a table key of type %s",
                       luaL_typename(L, -2));
        }
        buf_putc(b, ':');
        encode_value(L, e, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    buf_putc(b, '}');
}

static void encode_value(lua_State *L, struct encoder *e, int idx, int depth)
{
    struct buf *b = &e->b;
    size_t len;
    const char *s;

    if (++e->count % CHECK_EVERY == 0)
        limits_check(L, b->len, "rt.json.encode");
    switch (lua_type(L, idx)) {
    case LUA_TNIL: buf_puts(b, "null"); break;
    case LUA_TBOOLEAN: buf_puts(b, lua_toboolean(L, idx) ? "true" : "false"); break;
    case LUA_TNUMBER: encode_number(L, b, idx); break;
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);
        buf_json_str(b, s, len);
        break;
    case LUA_TTABLE: encode_table(L, e, idx, depth); break;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            buf_puts(b, "null");
            break;
        }
        /* fall through */
    default: luaL_error(L, "rt.json.encode: cannot encode a %s", luaL_typename(L, idx));
    }
    if (b->failed)
        luaL_error(L, "rt.json.encode: out of memory");
}

static int l_encode(lua_State *L)
{
    int max = (int)lua_tointeger(L, lua_upvalueindex(1));

    luaL_checkany(L, 1);
    lua_settop(L, 1);
    struct encoder *e =
        lua_newuserdatauv(L, sizeof *e + (size_t)max * sizeof e->path[0], 0);
    e->b = (struct buf)BUF_INIT;
    e->max = max;
    e->count = 0;
    luaL_setmetatable(L, ENCODER_MT);
    encode_value(L, e, 1, 1);
    lua_pushlstring(L, buf_cstr(&e->b), e->b.len);
    buf_free(&e->b);
    return 1;
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

static int l_array(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_setmetatable(L, RT_JSON_ARRAY_MT);
    return 1;
}

/* Calls cjson's setting function `name` with one integer argument.
 * Stack: [cjson] -> [cjson]. */
static void cjson_setting(lua_State *L, const char *name, lua_Integer v)
{
    lua_getfield(L, -1, name);
    lua_pushinteger(L, v);
    lua_call(L, 1, 0);
}

int luaopen_rt_json(lua_State *L)
{
    lua_Integer depth = 64;

    if (lua_getfield(L, LUA_REGISTRYINDEX, "rt.json.max_depth") == LUA_TNUMBER)
        depth = lua_tointeger(L, -1);
    lua_pop(L, 1);

    if (luaL_newmetatable(L, ENCODER_MT)) {
        lua_pushcfunction(L, encoder_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    /* Shared by every array (rt.db row lists too): hidden from getmetatable,
     * so no script can give them all a __gc or an __index. */
    if (luaL_newmetatable(L, RT_JSON_ARRAY_MT)) {
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);

    lua_createtable(L, 0, 4);
    lua_pushinteger(L, depth);
    lua_pushcclosure(L, l_encode, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "rt.json.encode");
    lua_setfield(L, -2, "encode");

    luaopen_cjson(L); /* a fresh cjson instance with its own settings */
    cjson_setting(L, "decode_max_depth", depth);
    lua_getfield(L, -1, "decode_invalid_numbers");
    lua_pushboolean(L, 0);
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "decode");
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "rt.json.decode");
    lua_pushcclosure(L, l_decode, 1);
    lua_setfield(L, -3, "decode");
    lua_getfield(L, -1, "null");
    lua_setfield(L, -3, "null");
    lua_pop(L, 1); /* cjson */

    lua_pushcfunction(L, l_array);
    lua_setfield(L, -2, "array");
    return 1;
}
