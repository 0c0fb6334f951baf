/* Unit tests for lua/limits.c: the allocator's cap, the instruction budget
 * and the deadline, each ending a run that pcall/xpcall try to keep alive,
 * and the state staying usable afterwards. (This test includes the Lua
 * headers: it drives a lua/ unit directly.) */
#include "lua/limits.h"
#include "lua/sandbox.h"

#include "check.h"

#include <lauxlib.h>
#include <lualib.h>

static const struct rt_module no_modules[] = {{NULL, NULL, NULL}};

/* Runs chunk as one limited run; returns what it hit and whether it failed. */
static enum limits_kind run(lua_State *L, const char *chunk, int *status)
{
    limits_begin(L);
    *status = luaL_loadstring(L, chunk);
    if (*status == LUA_OK)
        *status = lua_pcall(L, 0, 0, 0);
    enum limits_kind hit = limits_end(L);
    lua_settop(L, 0);
    return hit;
}

static int open_sandbox(lua_State *L)
{
    sandbox_open(L, no_modules);
    return 0;
}

static lua_State *new_state(struct limits *lim)
{
    lua_State *L = limits_newstate(lim);
    if (L) {
        lua_pushcfunction(L, open_sandbox);
        CHECK(lua_pcall(L, 0, 0, 0) == LUA_OK);
    }
    return L;
}

static void test_memory_cap(void)
{
    struct limits lim = {.memory_cap = 4u << 20};
    lua_State *L = new_state(&lim);
    int status;

    CHECK(L != NULL);
    if (!L)
        return;
    CHECK(lim.used > 0 && lim.used < lim.memory_cap);
    CHECK(run(L, "local t = {} for i = 1, 1e8 do t[i] = {i} end", &status) ==
          LIMITS_MEMORY);
    CHECK(status != LUA_OK);
    CHECK(lim.used <= lim.memory_cap);
    /* Caught by pcall: the run still ends, and says why. */
    CHECK(run(L,
              "pcall(function() local s = 'x' while true do s = s .. s end end) "
              "local n = 0 while true do n = n + 1 end",
              &status) == LIMITS_MEMORY);
    CHECK(status != LUA_OK);
    /* string.rep is refused before it allocates. */
    CHECK(run(L, "return ('x'):rep(1e9)", &status) == LIMITS_MEMORY);
    CHECK(strstr(lim.where, "string.rep: memory limit exceeded") != NULL);
    /* Garbage that a collection frees is not a limit. */
    CHECK(run(L, "for i = 1, 200 do local s = ('x'):rep(100000) .. i end", &status) ==
          LIMITS_NONE);
    CHECK(status == LUA_OK);
    lua_close(L);
    CHECK(lim.used == 0);

    struct limits tiny = {.memory_cap = 1024};
    CHECK(limits_newstate(&tiny) == NULL);
}

static void test_instructions(void)
{
    struct limits lim = {.max_instructions = 200000};
    lua_State *L = new_state(&lim);
    int status;

    CHECK(L != NULL);
    if (!L)
        return;
    CHECK(run(L, "while true do end", &status) == LIMITS_INSTRUCTIONS);
    CHECK(strstr(lim.where, "instruction limit exceeded") != NULL);
    CHECK(run(L, "while true do pcall(function() while true do end end) end", &status) ==
          LIMITS_INSTRUCTIONS);
    CHECK(run(L,
              "while true do xpcall(function() while true do end end, "
              "function() while true do end end) end",
              &status) == LIMITS_INSTRUCTIONS);
    CHECK(run(L,
              "while true do coroutine.resume(coroutine.create(function() "
              "while true do end end)) end",
              &status) == LIMITS_INSTRUCTIONS);
    CHECK(status != LUA_OK);
    /* Each run has its own budget, and the state works afterwards. */
    CHECK(run(L, "local n = 0 for i = 1, 10000 do n = n + i end", &status) == LIMITS_NONE);
    CHECK(status == LUA_OK);
    /* Outside a run there is no budget. */
    CHECK(luaL_dostring(L, "local n = 0 for i = 1, 1e6 do n = n + i end") == LUA_OK);
    lua_close(L);
}

static void test_deadline(void)
{
    struct limits lim = {.time_ms = 50};
    lua_State *L = new_state(&lim);
    int status;

    CHECK(L != NULL);
    if (!L)
        return;
    CHECK(run(L, "while true do end", &status) == LIMITS_TIME);
    CHECK(status != LUA_OK);
    CHECK(run(L, "return 1", &status) == LIMITS_NONE);
    lua_close(L);
}

static void test_finalizers_refused(void)
{
    struct limits lim = {0};
    lua_State *L = new_state(&lim);
    int status;

    CHECK(L != NULL);
    if (!L)
        return;
    run(L, "setmetatable({}, { __gc = function() end })", &status);
    CHECK(status != LUA_OK);
    run(L, "setmetatable({}, { __close = function() end })", &status);
    CHECK(status != LUA_OK);
    run(L, "setmetatable({}, { __index = {} })", &status);
    CHECK(status == LUA_OK);
    lua_close(L);
}

int main(void)
{
    test_memory_cap();
    test_instructions();
    test_deadline();
    test_finalizers_refused();
    return check_done();
}
