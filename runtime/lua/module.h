/* module: one rt.* module a Lua state may load, as the code that builds a
 * state hands it in (luastate.h, sandbox.h).
 *
 * It needs no Lua header (lua_State is only named), so the callers above
 * the Lua host (http.c, check.c) can write their module lists without
 * seeing the Lua API.
 *
 * Uses: nothing. */
#ifndef RT_LUA_MODULE_H
#define RT_LUA_MODULE_H

struct lua_State;

struct rt_module {
    const char *name;                 /* "rt.db": what require names */
    int (*open)(struct lua_State *L); /* its luaopen_ function (a lua_CFunction) */
    void *ctx; /* borrowed, may be NULL: what the module reaches outside Lua
                * through (sandbox_module_ctx); must outlive the state */
};

/* A module list ends with an entry whose name is NULL. */

#endif
