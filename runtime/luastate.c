/* luastate: building a sandboxed Lua state (see luastate.h). */
#include "luastate.h"

#include "lua/keys.h"
#include "lua/limits.h"
#include "lua/sandbox.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "prelude.lua.h"

/* Userdata: the state's module list, flattened ("rt" first), which the
 * sandbox keeps a pointer to; anchored here for the state's life. */
#define MODULES_KEY "rt.luastate.modules"

/* require "rt": one table of every rt.* module of the list by its short
 * name, and rt.null. */
static int open_rt(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, MODULES_KEY);
    const struct rt_module *list = lua_touserdata(L, -1);
    lua_pop(L, 1);

    lua_createtable(L, 0, 8);
    for (const struct rt_module *m = list; m && m->name; m++) {
        if (strncmp(m->name, "rt.", 3) != 0)
            continue;
        sandbox_push_module(L, m->name);
        lua_setfield(L, -2, m->name + 3);
    }
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    return 1;
}

/* Copies the caller's lists into one, "rt" first, kept in the registry.
 * Raises on memory errors. Stack: [] -> []. Returns the list. */
static const struct rt_module *flatten(lua_State *L, const struct rt_module *const *lists)
{
    size_t n = 1;

    for (size_t i = 0; lists && lists[i]; i++)
        for (const struct rt_module *m = lists[i]; m->name; m++)
            n++;
    struct rt_module *all = lua_newuserdatauv(L, (n + 1) * sizeof *all, 0);
    all[0] = (struct rt_module){"rt", open_rt, NULL};
    n = 1;
    for (size_t i = 0; lists && lists[i]; i++)
        for (const struct rt_module *m = lists[i]; m->name; m++)
            all[n++] = *m;
    all[n] = (struct rt_module){NULL, NULL, NULL};
    lua_setfield(L, LUA_REGISTRYINDEX, MODULES_KEY);
    return all;
}

struct init_args {
    const struct luastate_opts *o;
    int prelude_ref; /* out */
};

/* Builds the sandbox and loads the prelude. Runs under lua_pcall so a
 * memory error cannot escape. Stack: [args] -> []. */
static int state_init(lua_State *L)
{
    struct init_args *a = lua_touserdata(L, 1);
    const struct luastate_opts *o = a->o;

    lua_settop(L, 0);
    lua_pushinteger(L, o->json_max_depth);
    lua_setfield(L, LUA_REGISTRYINDEX, RT_KEY_JSON_MAX_DEPTH);
    sandbox_open(L, flatten(L, o->modules));
    if (o->root)
        sandbox_set_root(L, o->root);
    sandbox_push_module(L, "rt"); /* opens rt.json: the prelude needs it */
    lua_pop(L, 1);

    /* The prelude runs in the built-ins, not in the scripts' globals, and
     * gets debug.traceback without the debug library being reachable. */
    if (luaL_loadbufferx(L, rt_prelude_lua, sizeof rt_prelude_lua, "=prelude", "t") !=
        LUA_OK)
        return lua_error(L);
    sandbox_push_base(L);
    lua_setupvalue(L, -2, 1);
    luaopen_debug(L);
    lua_getfield(L, -1, "traceback");
    lua_replace(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, RT_KEY_TRACEBACK);
    lua_getfield(L, LUA_REGISTRYINDEX, RT_KEY_JSON_ENCODE);
    lua_getfield(L, LUA_REGISTRYINDEX, RT_KEY_JSON_DECODE);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "rt"); /* the table behind the scripts' read-only view */
    lua_remove(L, -2);
    lua_call(L, 4, 1);
    a->prelude_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

lua_State *luastate_new(const struct luastate_opts *o, struct limits *lim, int *prelude_ref,
                        struct rt_err *err)
{
    lua_State *L = limits_newstate(lim);
    struct init_args a = {o, LUA_NOREF};

    if (!L) {
        rt_err_set(err,
                   "cannot create a Lua state: out of memory (or scripts.memory_limit_mb "
                   "too small)");
        return NULL;
    }
    lua_pushcfunction(L, state_init);
    lua_pushlightuserdata(L, &a);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        rt_err_set(err, "cannot set up a Lua state: %s", lua_tostring(L, -1));
        lua_close(L);
        return NULL;
    }
    *prelude_ref = a.prelude_ref;
    return L;
}

int luastate_load_run(lua_State *L, const char *path, const char *src, size_t len)
{
    char chunkname[1024];

    snprintf(chunkname, sizeof chunkname, "@%s", path);
    int rc = luaL_loadbufferx(L, src, len, chunkname, "t");
    return rc == LUA_OK ? lua_pcall(L, 0, 1, 0) : rc;
}

int luastate_end_load(lua_State *L, int rc, const char *path, struct rt_err *err)
{
    enum limits_kind hit = limits_end(L);

    if (rc == LUA_OK)
        return 0;
    if (hit != LIMITS_NONE)
        rt_err_set(err, "%s: %s limit exceeded while loading: %s", path,
                   limits_kind_name(hit), lua_tostring(L, -1));
    else
        rt_err_set(err, "%s", lua_tostring(L, -1));
    lua_settop(L, 0);
    return -1;
}

int luastate_protected(lua_State *L, lua_CFunction fn, void *ud, struct rt_err *err)
{
    int rc = -1;

    lua_pushcfunction(L, fn);
    lua_pushlightuserdata(L, ud);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK)
        rt_err_set(err, "cannot load the scripts: %s", lua_tostring(L, -1));
    else
        rc = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return rc;
}

int luastate_read_file(const char *path, char **src, size_t *len, struct rt_err *err)
{
    FILE *fp = fopen(path, "rb");
    long size;

    *src = NULL;
    if (!fp || fseek(fp, 0, SEEK_END) != 0 || (size = ftell(fp)) < 0 ||
        fseek(fp, 0, SEEK_SET) != 0) {
        rt_err_set(err, "cannot read %s: %s", path, strerror(errno));
        if (fp)
            fclose(fp);
        return -1;
    }
    char *p = malloc((size_t)size + 1);
    if (!p || fread(p, 1, (size_t)size, fp) != (size_t)size) {
        rt_err_set(err, "cannot read %s", path);
        free(p);
        fclose(fp);
        return -1;
    }
    p[size] = '\0';
    fclose(fp);
    *src = p;
    *len = (size_t)size;
    return 0;
}
