/* sandbox: what a script can reach in a Lua state (DESIGN.md section 4).
 *
 * The sandbox is data (the lists at the top of sandbox.c): an allow-list of
 * base functions and libraries; everything else (io, os.execute, os.getenv,
 * debug, package, dofile, loadfile, collectgarbage, warn, string.dump) is
 * simply never put where a script can see it. After sandbox_open:
 *
 *   - the built-ins live in a hidden table: the allow-listed base functions,
 *     a text-only `load` whose chunks run in the current environment unless
 *     given one, a `require` limited to rt.* and files under the scripts root, a `rawset`
 * that respects the rules below, `print` (which is rt.log.info), and read-only views of
 * string, table, math, utf8, coroutine and os (time, clock, date, difftime);
 *   - the state's global table (the _ENV of every chunk loaded afterwards) is
 *     empty but for _G; reads fall through to the built-ins, and reading a
 *     name that is neither a global nor a built-in raises "undefined global
 *     'x'". Assigning a new global works; assigning a built-in's name raises;
 *   - shared tables (the libraries, rt.* modules) are read-only views: a
 *     script cannot change string.format for the others, not with rawset,
 *     setmetatable or through the string metatable (getmetatable("") is
 *     false; its __index is the read-only string view);
 *   - string.rep checks its result against the memory limit (limits.h)
 *     before it copies anything;
 *   - setmetatable refuses __gc and __close, and coroutine.close and
 *     coroutine.wrap never close a coroutine that a limit ended (Lua left
 *     hooks off in it: its __close handlers would run unbounded).
 *
 * Uses: limits.c, lua/module.h, lua/keys.h, Lua. */
#ifndef RT_LUA_SANDBOX_H
#define RT_LUA_SANDBOX_H

#include <lauxlib.h>
#include <lua.h>

#include "lua/module.h"

/* Opens the allowed standard libraries and turns L's globals into the script
 * environment described above. modules lists the rt.* modules `require` may
 * load ({name, open, ctx} entries ending in one whose name is NULL); it is
 * borrowed and must outlive the state. Each module's ctx is kept for
 * sandbox_module_ctx before any module opens. Call once, on a fresh state,
 * under lua_pcall (raises on memory errors). Stack unchanged. */
void sandbox_open(lua_State *L, const struct rt_module *modules);

/* The ctx of rt module `name` as given in sandbox_open's list (NULL when it
 * had none, or when name is not listed): how a binding reaches what it was
 * handed, from its luaopen_ function or any of its functions. Allocates
 * nothing; stack unchanged. */
void *sandbox_module_ctx(lua_State *L, const char *name);

/* Lets `require "a.b"` load <dir>/a/b.lua (compiled text-only, run once per
 * state, in the script environment; its result is cached). Without it,
 * require knows the rt.* modules only. dir is copied. Raises on memory
 * errors. */
void sandbox_set_root(lua_State *L, const char *dir);

/* Pushes a new script environment: an empty global table with the rules
 * above (strict reads, built-ins not assignable) and _G naming itself. Each
 * environment has its own cache of script modules. Raises on memory errors.
 * Stack: [] -> [env]. */
void sandbox_new_env(lua_State *L);

/* Makes the environment at idx the one `require` loads script modules into
 * (and caches them for); idx 0 goes back to the state's globals. Allocates
 * nothing. */
void sandbox_use_env(lua_State *L, int idx);

/* Pushes the table of built-ins, for trusted code such as the prelude (as its
 * _ENV, so that nothing a script does to its globals reaches it).
 * Stack: [] -> [built-ins]. */
void sandbox_push_base(lua_State *L);

/* Pushes the read-only view of rt module `name` (opening it on first use),
 * as `require` returns it. Raises when name is not in the module list.
 * Stack: [] -> [module]. */
void sandbox_push_module(lua_State *L, const char *name);

#endif
