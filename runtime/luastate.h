/* luastate: building a sandboxed Lua state (the first of the Lua host's four
 * modules: luastate, scripts, dispatch, steps).
 *
 * A state is the sandbox (lua/sandbox.c) over a limited allocator and hook
 * (lua/limits.c), the rt.* modules the caller hands in, the `rt` table that
 * gathers them, and the prelude (lua/prelude.lua, compiled into the binary).
 * The builder names no binding: which modules a state may load is the
 * caller's list, each entry with the context the module reaches its
 * outside world through (lua/module.h). The other three modules of the host
 * build their states here and share the helpers below for running a file
 * under the limits.
 *
 * Declared without Lua headers (lua_State is only named), so that headers
 * above (scripts.h, dispatch.h, steps.h) stay free of the Lua API.
 *
 * Failures fill a struct rt_err (err.h): a message with file and line where
 * there is one.
 *
 * Uses: lua/sandbox.c, lua/limits.c, lua/prelude.lua, lua/keys.h, err.c. */
#ifndef RT_LUASTATE_H
#define RT_LUASTATE_H

#include <stddef.h>

#include "err.h"
#include "lua/module.h"

struct lua_State;
struct limits;

struct luastate_opts {
    int json_max_depth; /* rt.json's nesting limit */
    const char *root;   /* scripts root for require; NULL: rt modules only */
    /* The rt.* modules the state may load: lists (each ending in an entry
     * with a NULL name), the array of them ending in NULL. Borrowed: they
     * must outlive the state. `require "rt"` gives a table of all of them
     * by short name ("rt.db" as rt.db) and rt.null. */
    const struct rt_module *const *modules;
};

/* Creates a sandboxed state allocating through lim (borrowed: it must
 * outlive the state) and loads the prelude; *prelude_ref is the registry
 * reference of the prelude's table {dispatch=, collect=, step_check=,
 * events_collect=}. Returns NULL with err filled. */
struct lua_State *luastate_new(const struct luastate_opts *o, struct limits *lim,
                               int *prelude_ref, struct rt_err *err);

/* Loads and runs a script file's chunk (text only, named "@path").
 * Stack: [] -> [result] on success, [..., error] on failure. Returns a Lua
 * status. */
int luastate_load_run(struct lua_State *L, const char *path, const char *src, size_t len);

/* Ends the limited run (limits_begin) around the loading of path. On
 * failure (rc not LUA_OK) fills err from the error on the stack top, naming
 * the limit when one was hit, and empties the stack. Returns 0 or -1. */
int luastate_end_load(struct lua_State *L, int rc, const char *path, struct rt_err *err);

/* Calls fn(L) under lua_pcall with ud as its one argument (a light
 * userdata); fn returns one integer, 0 or -1 (and then has filled err). A
 * Lua error (out of memory) is -1 too, with err filled. Stack unchanged. */
int luastate_protected(struct lua_State *L, int (*fn)(struct lua_State *L), void *ud,
                       struct rt_err *err);

/* Reads the file at path whole: *src is malloc'd (NUL-terminated; the
 * caller frees it), *len its length. Returns 0, or -1 with err filled and
 * *src NULL. */
int luastate_read_file(const char *path, char **src, size_t *len, struct rt_err *err);

#endif
