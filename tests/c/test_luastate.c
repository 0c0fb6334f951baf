/* Unit tests for luastate.c and the sandbox's module list: a state gets the
 * rt.* modules its caller hands in, and nothing else, and each module finds
 * the context it was handed (sandbox_module_ctx). */
#include "luastate.h"

#include "lua/limits.h"
#include "lua/sandbox.h"

#include "check.h"

#include <lauxlib.h>
#include <lua.h>

static int marker;

/* rt.fake: { ctx_ok = whether it found its context } */
static int open_fake(lua_State *L)
{
    lua_createtable(L, 0, 1);
    lua_pushboolean(L, sandbox_module_ctx(L, "rt.fake") == &marker);
    lua_setfield(L, -2, "ctx_ok");
    return 1;
}

static int open_bare(lua_State *L)
{
    lua_createtable(L, 0, 1);
    lua_pushboolean(L, sandbox_module_ctx(L, "rt.bare") == NULL);
    lua_setfield(L, -2, "no_ctx");
    return 1;
}

static const struct rt_module fake[] = {
    {"rt.fake", open_fake, &marker},
    {NULL, NULL, NULL},
};
static const struct rt_module bare[] = {
    {"rt.bare", open_bare, NULL},
    {NULL, NULL, NULL},
};

/* Runs chunk in L; returns its result as a string, or the error. */
static const char *run(lua_State *L, const char *chunk)
{
    lua_settop(L, 0);
    limits_begin(L);
    int rc = luastate_load_run(L, "test", chunk, strlen(chunk));
    limits_end(L);
    (void)rc;
    return lua_tostring(L, -1);
}

int main(void)
{
    static const struct rt_module *const lists[] = {fake, bare, NULL};
    struct luastate_opts o = {64, NULL, lists};
    struct limits lim = {.time_ms = 1000};
    struct rt_err err;
    int prelude_ref = -1;

    lua_State *L = luastate_new(&o, &lim, &prelude_ref, &err);
    CHECK(L != NULL);
    if (!L) {
        fprintf(stderr, "%s\n", err.msg);
        return check_done();
    }
    CHECK(prelude_ref > 0);
    CHECK_STR(run(L, "return tostring(require('rt.fake').ctx_ok)"), "true");
    CHECK_STR(run(L, "return tostring(require('rt').bare.no_ctx)"), "true");
    CHECK_STR(
        run(L, "local rt = require 'rt'; return tostring(rt.fake == require 'rt.fake')"),
        "true");
    /* A module that is not in the list is not there, and the message names
     * those that are. */
    const char *msg = run(L, "return require 'rt.db'");
    CHECK(msg && strstr(msg, "module 'rt.db' not found: the rt modules are rt, rt.fake, "
                             "rt.bare") != NULL);
    CHECK_STR(run(L, "return tostring(require('rt').db)"), "nil");
    lua_close(L);
    return check_done();
}
