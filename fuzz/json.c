/* Fuzz target: rt.json's decoder and encoder (lua/rt_json.c).
 *
 * Decodes the input with the raw decoder the runtime uses for request
 * bodies, json columns and tenant settings. A failure must be a clean
 * "rt.json.decode: ..." error. A value that decoded must encode, the
 * encoding must decode again to an equal value (same strings, numbers equal
 * as numbers, arrays still marked as arrays, same keys), and encoding that
 * value again must give text of the same length (the same members; object
 * members come in table order, which may differ between two equal tables). */
#include "lua/rt_json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *L;

/* Calls the registry function `name` on the value at idx. Stack: [...] ->
 * [..., result or error message]. Returns the lua_pcall status. */
static int call(const char *name, int idx)
{
    idx = lua_absindex(L, idx);
    lua_getfield(L, LUA_REGISTRYINDEX, name);
    lua_pushvalue(L, idx);
    return lua_pcall(L, 1, 1, 0);
}

static void fail(const char *what, const uint8_t *data, size_t size)
{
    fprintf(stderr, "fuzz/json: %s\ninput (%zu bytes): %.*s\n", what, size, (int)size,
            (const char *)data);
    abort();
}

/* Whether the values at a and b are the same JSON value. */
static int same(int a, int b, int depth)
{
    a = lua_absindex(L, a);
    b = lua_absindex(L, b);
    if (lua_type(L, a) != lua_type(L, b))
        return 0;
    if (lua_type(L, a) != LUA_TTABLE)
        return lua_rawequal(L, a, b); /* numbers by value, strings by bytes */
    if (depth > 200)
        return 0;
    luaL_checkstack(L, 6, "fuzz/json: too deep"); /* the C API does not check */
    int ma = lua_getmetatable(L, a), mb = lua_getmetatable(L, b);
    int marks = ma == mb && (!ma || lua_rawequal(L, -1, -2));
    lua_pop(L, ma + mb);
    if (!marks)
        return 0;
    /* Every key of a is in b with the same value, and b has no other key. */
    size_t na = 0, nb = 0;
    lua_pushnil(L);
    while (lua_next(L, a)) {
        na++;
        lua_pushvalue(L, -2);
        lua_rawget(L, b);
        int ok = same(-2, -1, depth + 1);
        lua_pop(L, 2);
        if (!ok) {
            lua_pop(L, 1);
            return 0;
        }
    }
    lua_pushnil(L);
    while (lua_next(L, b)) {
        nb++;
        lua_pop(L, 1);
    }
    return na == nb;
}

static int init(void)
{
    L = luaL_newstate();
    if (!L)
        abort();
    luaL_openlibs(L);
    /* The server's default depth (config json.max_depth). */
    lua_pushinteger(L, 64);
    lua_setfield(L, LUA_REGISTRYINDEX, "rt.json.max_depth");
    luaopen_rt_json(L);
    lua_pop(L, 1);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready)
        ready = init();

    lua_settop(L, 0);
    lua_pushlstring(L, (const char *)data, size); /* 1: input */
    if (call("rt.json.decode", 1) != LUA_OK) {    /* 2: value or error */
        const char *msg = lua_tostring(L, -1);
        if (!msg || strncmp(msg, "rt.json.decode: ", 16) != 0)
            fail(msg ? msg : "decode raised a non-string error", data, size);
        lua_settop(L, 0);
        return 0;
    }
    if (call("rt.json.encode", 2) != LUA_OK) /* 3: text */
        fail(lua_tostring(L, -1), data, size);
    if (call("rt.json.decode", 3) != LUA_OK) /* 4: value again */
        fail(lua_tostring(L, -1), data, size);
    if (!same(2, 4, 0))
        fail("decode(encode(x)) differs from x", data, size);
    if (call("rt.json.encode", 4) != LUA_OK) /* 5: text again */
        fail(lua_tostring(L, -1), data, size);
    if (lua_rawlen(L, 3) != lua_rawlen(L, 5))
        fail("encode(decode(encode(x))) differs from encode(x)", data, size);
    lua_settop(L, 0);
    return 0;
}
