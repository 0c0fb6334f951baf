/* sandbox: the script environment of a Lua state (see sandbox.h). */
#include "lua/sandbox.h"

#include "lua/keys.h"
#include "lua/limits.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <lualib.h>

#define BASE_KEY    "rt.sandbox.base"    /* the built-ins */
#define MARKS_KEY   "rt.sandbox.marks"   /* read-only view -> its name; env -> true */
#define MODULES_KEY "rt.sandbox.modules" /* rt module name -> its read-only view */
#define LIST_KEY    "rt.sandbox.list"    /* the luaL_Reg list of rt modules */
#define ROOT_KEY    "rt.sandbox.root"    /* where script modules are found */
#define ENV_MT_KEY  "rt.sandbox.env_mt"  /* the metatable of every environment */
#define CURRENT_KEY "rt.sandbox.current" /* the environment scripts run in now */
#define CACHES_KEY  "rt.sandbox.caches"  /* env -> its script modules (weak keys) */

/* Base functions scripts keep as they are. Left out on purpose: dofile,
 * loadfile (files), collectgarbage (stopping the collector), warn (stderr);
 * load, require, rawset, getmetatable, setmetatable, xpcall and print are
 * replaced below. */
static const char *const base_allowed[] = {
    "assert", "error",  "ipairs",   "next",     "pairs", "pcall",    "rawequal", "rawget",
    "rawlen", "select", "tonumber", "tostring", "type",  "_VERSION", NULL,
};

/* Libraries scripts see whole, as read-only views (string.dump removed). */
static const luaL_Reg libs_allowed[] = {
    {LUA_STRLIBNAME, luaopen_string},   {LUA_TABLIBNAME, luaopen_table},
    {LUA_MATHLIBNAME, luaopen_math},    {LUA_UTF8LIBNAME, luaopen_utf8},
    {LUA_COLIBNAME, luaopen_coroutine}, {NULL, NULL},
};

/* The clock functions of os; the rest (execute, getenv, exit, remove, ...)
 * is left out. */
static const char *const os_allowed[] = {"clock", "date", "difftime", "time", NULL};

/* Metamethods scripts cannot set. Lua runs them with hooks off, where no
 * limit can stop them: __gc from the collector, at any time, and __close of
 * a coroutine that a limit ended (coroutine.close, coroutine.wrap). */
static const char *const metamethods_denied[] = {"__gc", "__close", NULL};

static const char loading; /* require's cache value while a module loads */

/* ---- read-only views ---------------------------------------------------- */

static int readonly_newindex(lua_State *L)
{
    return luaL_error(L, "cannot modify '%s': shared library tables are read-only",
                      lua_tostring(L, lua_upvalueindex(1)));
}

/* The iterator pairs() gets for a view: next over the real table (upvalue 1),
 * which the script never sees. */
static int readonly_next(lua_State *L)
{
    lua_settop(L, 2);
    if (lua_next(L, lua_upvalueindex(1)))
        return 2;
    lua_pushnil(L);
    return 1;
}

static int readonly_pairs(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

/* Records what the table at idx is for safe_rawset. Stack: [value] -> []. */
static void mark(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_getfield(L, LUA_REGISTRYINDEX, MARKS_KEY);
    lua_pushvalue(L, idx);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    lua_pop(L, 2);
}

/* Pushes a read-only view of the table at idx, called name in errors.
 * Stack: [] -> [view]. */
static void push_readonly(lua_State *L, int idx, const char *name)
{
    idx = lua_absindex(L, idx);
    lua_createtable(L, 0, 0);
    lua_createtable(L, 0, 4);
    lua_pushvalue(L, idx);
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, name);
    lua_pushcclosure(L, readonly_newindex, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushvalue(L, idx);
    lua_pushcclosure(L, readonly_next, 1);
    lua_pushcclosure(L, readonly_pairs, 1);
    lua_setfield(L, -2, "__pairs");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_pushstring(L, name);
    mark(L, -2);
}

/* ---- globals ------------------------------------------------------------- */

/* Whether the value at idx names a built-in. Stack unchanged. */
static bool is_builtin(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_getfield(L, LUA_REGISTRYINDEX, BASE_KEY);
    lua_pushvalue(L, idx);
    bool found = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
    return found;
}

/* __index of the built-ins: the name is nowhere. */
static int undefined_global(lua_State *L)
{
    return luaL_error(L, "undefined global '%s'", luaL_tolstring(L, 2, NULL));
}

/* __newindex of a script environment: new globals are fine, built-ins are
 * not theirs to replace. */
static int env_newindex(lua_State *L)
{
    if (is_builtin(L, 2))
        return luaL_error(L, "cannot assign to built-in global '%s'",
                          luaL_tolstring(L, 2, NULL));
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 0;
}

/* rawset for scripts: the same rules as assignment for views and
 * environments. */
static int safe_rawset(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    lua_settop(L, 3);
    lua_getfield(L, LUA_REGISTRYINDEX, MARKS_KEY);
    lua_pushvalue(L, 1);
    switch (lua_rawget(L, -2)) {
    case LUA_TSTRING:
        return luaL_error(L, "cannot modify '%s': shared library tables are read-only",
                          lua_tostring(L, -1));
    case LUA_TBOOLEAN:
        if (is_builtin(L, 2))
            return luaL_error(L, "cannot assign to built-in global '%s'",
                              luaL_tolstring(L, 2, NULL));
        break;
    default: break;
    }
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 1;
}

/* ---- replaced functions -------------------------------------------------- */

static void push_current_env(lua_State *L);

/* load() for scripts: text chunks only, never bytecode. A chunk loaded
 * without an env runs in the environment scripts run in now (the tenant's),
 * never in the state's global table: Lua's default would be that table,
 * which every tenant on this worker state would share. Upvalue 1: the
 * library's load. */
static int safe_load(lua_State *L)
{
    int n = lua_gettop(L);

    lua_settop(L, 4);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushliteral(L, "t");
    /* An env that was passed is used as passed: load(s, name, mode, nil)
     * gives the chunk a nil _ENV, as in Lua. */
    if (n >= 4)
        lua_pushvalue(L, 4);
    else
        push_current_env(L);
    lua_call(L, 4, LUA_MULTRET);
    return lua_gettop(L) - 4;
}

/* Returns what a lua_callk'd function left on the stack. */
static int call_results(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    return lua_gettop(L);
}

/* Calls the function in upvalue 1 (the library's own, which a wrapper
 * guards) with the arguments on the stack; returns its one result. */
static int call_upvalue(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* xpcall's message handler, wrapped (upvalue 1: the script's handler). Lua
 * runs a message handler before unwinding, and after an error raised by the
 * limits hook it runs it with hooks off: a handler that loops could then
 * never be stopped. So once the run has hit a limit the handler is skipped
 * and the error passes through unchanged. */
static int guarded_handler(lua_State *L)
{
    if (limits_exceeded(L))
        return 1;
    return call_upvalue(L);
}

/* xpcall(f, msgh, ...) with a guarded handler. Upvalue 1: the library's
 * xpcall. Calls it with a continuation, so coroutines can still yield
 * across it. */
static int safe_xpcall(lua_State *L)
{
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, guarded_handler, 1);
    lua_replace(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_callk(L, lua_gettop(L) - 1, LUA_MULTRET, 0, call_results);
    return lua_gettop(L);
}

/* setmetatable without the metamethods in metamethods_denied. Upvalue 1:
 * the library's setmetatable. */
static int safe_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE)
        for (int i = 0; metamethods_denied[i]; i++) {
            lua_pushstring(L, metamethods_denied[i]);
            if (lua_rawget(L, 2) != LUA_TNIL)
                return luaL_error(L,
                                  "setmetatable: %s metamethods are not allowed in scripts",
                                  metamethods_denied[i]);
            lua_pop(L, 1);
        }
    lua_settop(L, 2);
    return call_upvalue(L);
}

/* getmetatable that never hands out the runtime's metatables: every userdata
 * is the runtime's (scripts cannot make one), and a script that changed its
 * metatable (adding __gc, say) would change it for every object of the kind.
 * Runtime tables that carry a metatable set __metatable themselves.
 * Upvalue 1: the library's getmetatable. */
static int safe_getmetatable(lua_State *L)
{
    luaL_checkany(L, 1);
    if (lua_type(L, 1) == LUA_TUSERDATA) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_settop(L, 1);
    return call_upvalue(L);
}

/* string.rep whose result is measured against the memory limit before the
 * one long copy no hook can interrupt. Upvalue 1: the library's rep. */
static int safe_rep(lua_State *L)
{
    size_t len, seplen;
    luaL_checklstring(L, 1, &len);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &seplen);

    if (n > 0) {
        size_t total = SIZE_MAX;
        if ((lua_Unsigned)n <= SIZE_MAX / (len + seplen + 1))
            total = (len + seplen) * (size_t)n;
        limits_check(L, total, "string.rep");
    }
    return call_upvalue(L);
}

static int l_print(lua_State *L)
{
    int n = lua_gettop(L);

    sandbox_push_module(L, "rt.log");
    lua_getfield(L, -1, "info");
    lua_insert(L, 1);
    lua_pop(L, 1);
    lua_call(L, n, 0);
    return 0;
}

/* ---- coroutines that a limit ended ---------------------------------------- */

/* Lua leaves hooks off in a coroutine that the limits hook ended (see
 * limits_thread_ended): the __close handlers of its pending to-be-closed
 * variables would run there with no limit to stop them. setmetatable cannot
 * keep __close out (a script adds it to the metatable afterwards), so the two
 * library functions that close a dead coroutine's variables skip such a
 * coroutine: its variables are never closed. Every other coroutine is closed
 * as in Lua. */

static const char ended_message[] =
    "cannot close a coroutine that a limit ended (its to-be-closed variables stay open)";

/* coroutine.close(co) that skips a coroutine a limit ended: false and a
 * message. Upvalue 1: the library's close. */
static int safe_close(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);

    luaL_argexpected(L, co, 1, "coroutine");
    if (limits_thread_ended(co)) {
        lua_pushboolean(L, 0);
        lua_pushstring(L, ended_message);
        return 2;
    }
    lua_settop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* The function coroutine.wrap returns, as in Lua's lcorolib.c but for the
 * closing: after an error it closes the coroutine's variables unless a limit
 * ended it. Upvalue 1: the coroutine. */
static int wrapped_resume(lua_State *L)
{
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int narg = lua_gettop(L), nres;

    if (!lua_checkstack(co, narg))
        return luaL_error(L, "too many arguments to resume");
    lua_xmove(L, co, narg);
    int status = lua_resume(co, L, narg, &nres);
    if (status == LUA_OK || status == LUA_YIELD) {
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            return luaL_error(L, "too many results to resume");
        }
        lua_xmove(co, L, nres);
        return nres;
    }
    int stat = lua_status(co);
    if (stat != LUA_OK && stat != LUA_YIELD && !limits_thread_ended(co))
        stat = lua_resetthread(co); /* closes its variables; leaves the error */
    lua_xmove(co, L, 1);
    if (stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    return lua_error(L);
}

/* coroutine.wrap(f) with wrapped_resume. */
static int safe_wrap(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushcclosure(L, wrapped_resume, 1);
    return 1;
}

/* ---- require ------------------------------------------------------------- */

static int module_not_found(lua_State *L, const char *name, const struct rt_module *list)
{
    luaL_Buffer b;

    luaL_buffinit(L, &b);
    for (const struct rt_module *m = list; m && m->name; m++) {
        luaL_addstring(&b, m == list ? "" : ", ");
        luaL_addstring(&b, m->name);
    }
    luaL_pushresult(&b);
    return luaL_error(L, "module '%s' not found: the rt modules are %s", name,
                      lua_tostring(L, -1));
}

void sandbox_push_module(lua_State *L, const char *name)
{
    lua_getfield(L, LUA_REGISTRYINDEX, MODULES_KEY);
    if (lua_getfield(L, -1, name) != LUA_TNIL) {
        lua_remove(L, -2);
        return;
    }
    lua_pop(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, LIST_KEY);
    const struct rt_module *list = lua_touserdata(L, -1), *m = list;
    lua_pop(L, 1);
    while (m && m->name && strcmp(m->name, name) != 0)
        m++;
    if (!m || !m->name) {
        module_not_found(L, name, list);
        return;
    }
    luaL_requiref(L, name, m->open, 0);
    if (lua_istable(L, -1)) {
        push_readonly(L, -1, name);
        lua_remove(L, -2);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, name);
    lua_remove(L, -2);
}

/* A module name is dotted words of letters, digits and _: nothing else can
 * reach a path outside the root ("..", "/", absolute paths). */
static bool module_name_valid(const char *s)
{
    bool empty = true;

    for (; *s; s++) {
        if (*s == '.') {
            if (empty)
                return false;
            empty = true;
        } else if (isalnum((unsigned char)*s) || *s == '_') {
            empty = false;
        } else {
            return false;
        }
    }
    return !empty;
}

/* Pushes the environment scripts run in now: the last sandbox_use_env, else
 * the state's globals. Stack: [] -> [env]. */
static void push_current_env(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, CURRENT_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    }
}

/* Loads the script module `name` from the root into environment env.
 * Stack: [cache] -> [cache, value]. */
static void load_script_module(lua_State *L, const char *name, int env)
{
    int cache = lua_gettop(L);

    if (!module_name_valid(name))
        luaL_error(L,
                   "require: bad module name '%s': use dotted names under the scripts "
                   "directory, such as \"lib.util\" for lib/util.lua",
                   name);
    if (lua_getfield(L, LUA_REGISTRYINDEX, ROOT_KEY) != LUA_TSTRING)
        luaL_error(L,
                   "require: module '%s' not found: only rt modules can be required here",
                   name);
    const char *file = luaL_gsub(L, name, ".", "/");
    const char *path = lua_pushfstring(L, "%s/%s.lua", lua_tostring(L, -2), file);
    int rc = luaL_loadfilex(L, path, "t");
    if (rc == LUA_ERRFILE)
        luaL_error(L, "require: module '%s' not found: not an rt module and no file %s",
                   name, path);
    if (rc != LUA_OK)
        lua_error(L);
    lua_pushvalue(L, env); /* a fresh closure: its _ENV is its own */
    lua_setupvalue(L, -2, 1);
    lua_replace(L, cache + 1);
    lua_settop(L, cache + 1);

    /* Marked while it runs, so a cycle is an error, not a stack overflow. */
    lua_pushlightuserdata(L, (void *)&loading);
    lua_setfield(L, cache, name);
    if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
        lua_pushnil(L);
        lua_setfield(L, cache, name);
        lua_error(L);
    }
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, cache, name);
}

/* require(name) for scripts: rt modules and files under the scripts root. */
static int safe_require(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);

    lua_settop(L, 1);
    if (strcmp(name, "rt") == 0 || strncmp(name, "rt.", 3) == 0) {
        sandbox_push_module(L, name);
        return 1;
    }
    /* Script modules are cached per environment: one tenant's module state
     * is not another's. */
    push_current_env(L);
    int env = lua_gettop(L);
    lua_getfield(L, LUA_REGISTRYINDEX, CACHES_KEY);
    lua_pushvalue(L, env);
    if (lua_rawget(L, -2) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, env);
        lua_pushvalue(L, -2);
        lua_rawset(L, -4);
    }
    lua_remove(L, -2);
    if (lua_getfield(L, -1, name) != LUA_TNIL) {
        if (lua_touserdata(L, -1) == &loading)
            return luaL_error(L, "require: module '%s' requires itself (a cycle)", name);
        return 1;
    }
    lua_pop(L, 1);
    load_script_module(L, name, env);
    return 1;
}

void sandbox_set_root(lua_State *L, const char *dir)
{
    lua_pushstring(L, dir);
    lua_setfield(L, LUA_REGISTRYINDEX, ROOT_KEY);
}

void sandbox_new_env(lua_State *L)
{
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, LUA_GNAME);
    lua_getfield(L, LUA_REGISTRYINDEX, ENV_MT_KEY);
    lua_setmetatable(L, -2);
    lua_pushboolean(L, 1);
    mark(L, -2);
}

void sandbox_use_env(lua_State *L, int idx)
{
    if (idx)
        lua_pushvalue(L, idx);
    else
        lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, CURRENT_KEY);
}

void sandbox_push_base(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, BASE_KEY);
}

/* ---- building it --------------------------------------------------------- */

/* Opens a library and sets a read-only view of it in the built-ins.
 * Stack: [base] -> [base]. */
static void add_library(lua_State *L, const luaL_Reg *lib)
{
    luaL_requiref(L, lib->name, lib->func, 0);
    if (strcmp(lib->name, LUA_STRLIBNAME) == 0) {
        lua_pushnil(L);
        lua_setfield(L, -2, "dump");
        lua_getfield(L, -1, "rep");
        lua_pushcclosure(L, safe_rep, 1);
        lua_setfield(L, -2, "rep");
    }
    if (strcmp(lib->name, LUA_COLIBNAME) == 0) {
        lua_getfield(L, -1, "close");
        lua_pushcclosure(L, safe_close, 1);
        lua_setfield(L, -2, "close");
        lua_pushcfunction(L, safe_wrap);
        lua_setfield(L, -2, "wrap");
    }
    push_readonly(L, -1, lib->name);
    if (strcmp(lib->name, LUA_STRLIBNAME) == 0) {
        /* Method calls on strings go through the view too; the metatable
         * itself is hidden from getmetatable. */
        lua_pushliteral(L, "");
        lua_getmetatable(L, -1);
        lua_pushvalue(L, -3);
        lua_setfield(L, -2, "__index");
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
        lua_pop(L, 2);
    }
    lua_setfield(L, -3, lib->name);
    lua_pop(L, 1);
}

void *sandbox_module_ctx(lua_State *L, const char *name)
{
    void *ctx = NULL;

    if (lua_getfield(L, LUA_REGISTRYINDEX, RT_KEY_MODULE_CTX) == LUA_TTABLE) {
        lua_getfield(L, -1, name);
        ctx = lua_touserdata(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return ctx;
}

void sandbox_open(lua_State *L, const struct rt_module *modules)
{
    int top = lua_gettop(L);

    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, MARKS_KEY);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, MODULES_KEY);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, CACHES_KEY);
    lua_pushlightuserdata(L, (void *)modules);
    lua_setfield(L, LUA_REGISTRYINDEX, LIST_KEY);
    lua_newtable(L);
    for (const struct rt_module *m = modules; m && m->name; m++) {
        if (m->ctx) {
            lua_pushlightuserdata(L, m->ctx);
            lua_setfield(L, -2, m->name);
        }
    }
    lua_setfield(L, LUA_REGISTRYINDEX, RT_KEY_MODULE_CTX);

    luaL_requiref(L, LUA_GNAME, luaopen_base, 0); /* the global table */
    int env = lua_gettop(L);
    lua_newtable(L);
    int base = lua_gettop(L);
    for (int i = 0; base_allowed[i]; i++) {
        lua_getfield(L, env, base_allowed[i]);
        lua_setfield(L, base, base_allowed[i]);
    }
    lua_getfield(L, env, "load");
    lua_pushcclosure(L, safe_load, 1);
    lua_setfield(L, base, "load");
    lua_getfield(L, env, "xpcall");
    lua_pushcclosure(L, safe_xpcall, 1);
    lua_setfield(L, base, "xpcall");
    lua_getfield(L, env, "setmetatable");
    lua_pushcclosure(L, safe_setmetatable, 1);
    lua_setfield(L, base, "setmetatable");
    lua_getfield(L, env, "getmetatable");
    lua_pushcclosure(L, safe_getmetatable, 1);
    lua_setfield(L, base, "getmetatable");
    lua_pushcfunction(L, safe_require);
    lua_setfield(L, base, "require");
    lua_pushcfunction(L, safe_rawset);
    lua_setfield(L, base, "rawset");
    lua_pushcfunction(L, l_print);
    lua_setfield(L, base, "print");

    for (const luaL_Reg *lib = libs_allowed; lib->name; lib++)
        add_library(L, lib);
    luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0);
    lua_createtable(L, 0, 4);
    for (int i = 0; os_allowed[i]; i++) {
        lua_getfield(L, -2, os_allowed[i]);
        lua_setfield(L, -2, os_allowed[i]);
    }
    push_readonly(L, -1, LUA_OSLIBNAME);
    lua_setfield(L, base, LUA_OSLIBNAME);
    lua_pop(L, 2);

    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, undefined_global);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, base);
    lua_pushvalue(L, base);
    lua_setfield(L, LUA_REGISTRYINDEX, BASE_KEY);

    /* Empty the global table (clearing fields during a traversal is allowed)
     * and make it the script environment. */
    lua_pushnil(L);
    while (lua_next(L, env)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_rawset(L, env);
    }
    lua_pushvalue(L, env);
    lua_setfield(L, env, LUA_GNAME);
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, base);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, env_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, ENV_MT_KEY);
    lua_setmetatable(L, env);
    lua_pushboolean(L, 1);
    mark(L, env);
    lua_settop(L, top);
}
