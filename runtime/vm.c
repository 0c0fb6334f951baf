/* vm: worker Lua states, the script set and request dispatch (see vm.h). */
#include "vm.h"

#include "crypto.h"
#include "errors.h"
#include "log.h"
#include "lua/limits.h"
#include "lua/rt_auth.h"
#include "lua/rt_db.h"
#include "lua/rt_migrate.h"
#include "lua/rt_json.h"
#include "lua/rt_log.h"
#include "lua/rt_tenant.h"
#include "lua/sandbox.h"

#include <ctype.h>
#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "prelude.lua.h"

/* Loading a step file (its module-level code) may take this long; running a
 * step has no limits (the operator runs migrations and watches them). */
#define STEP_LOAD_TIME_MS 10000

struct script_file {
    char *path;
    char *source;
    size_t len;
};

struct vm_scripts {
    const struct config *cfg; /* borrowed: for rt.auth */
    char *dir;                /* the scripts root, for require */
    struct script_file *files;
    size_t nfiles;
    struct router *router;
    struct vm_route *routes;
    size_t nroutes;
    int json_max_depth;
    struct limits limits; /* the settings every worker state gets */
};

struct vm {
    lua_State *L;                     /* NULL after a failed rebuild */
    const struct vm_scripts *scripts; /* NULL for a steps vm */
    struct limits limits;             /* L's allocator and hook state */
    int prelude_ref;                  /* {dispatch=, collect=, step_check=} */
    int handlers_ref;                 /* route id + 1 -> handler function */
    int steps_ref;                    /* version -> step table */
};

/* ---- the sandboxed state ---------------------------------------------- */

static int open_rt(lua_State *L)
{
    static const char *const subs[] = {"db", "json", "log", "auth", "tenant", NULL};
    char name[16];

    lua_createtable(L, 0, 8);
    for (int i = 0; subs[i]; i++) {
        snprintf(name, sizeof name, "rt.%s", subs[i]);
        sandbox_push_module(L, name);
        lua_setfield(L, -2, subs[i]);
    }
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    return 1;
}

static const luaL_Reg rt_modules[] = {
    {"rt", open_rt},
    {"rt.db", luaopen_rt_db},
    {"rt.json", luaopen_rt_json},
    {"rt.log", luaopen_rt_log},
    {"rt.auth", luaopen_rt_auth},
    {"rt.tenant", luaopen_rt_tenant},
    {NULL, NULL},
};

struct state_opts {
    int json_max_depth;
    const char *root; /* scripts root for require; NULL: rt modules only */
    int prelude_ref;  /* out */
};

/* rt.routes(): the routes of the script set this state runs, in order:
 * { method, pattern, scope, permission, summary, description, body, tags,
 * offload, file } each. */
static int l_routes(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "rt.route_meta");
    lua_getfield(L, LUA_REGISTRYINDEX, "rt.scripts");
    const struct vm_scripts *s = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!s || !lua_istable(L, -1))
        return luaL_error(L, "rt.routes: not available here");
    lua_createtable(L, (int)s->nroutes, 0);
    for (size_t i = 0; i < s->nroutes; i++) {
        const struct vm_route *r = &s->routes[i];
        lua_createtable(L, 0, 10);
        lua_rawgeti(L, -3, (lua_Integer)i + 1);
        static const char *const copied[] = {"summary", "description", "body", "tags",
                                             NULL};
        for (int k = 0; copied[k]; k++) {
            lua_getfield(L, -1, copied[k]);
            lua_setfield(L, -3, copied[k]);
        }
        lua_pop(L, 1);
        lua_pushstring(L, r->method);
        lua_setfield(L, -2, "method");
        lua_pushstring(L, r->pattern);
        lua_setfield(L, -2, "pattern");
        lua_pushstring(L, r->scope);
        lua_setfield(L, -2, "scope");
        if (r->permission) {
            lua_pushstring(L, r->permission);
            lua_setfield(L, -2, "permission");
        }
        lua_pushboolean(L, r->offload);
        lua_setfield(L, -2, "offload");
        lua_pushstring(L, r->file);
        lua_setfield(L, -2, "file");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* Builds the sandbox and loads the prelude. Runs under lua_pcall so a
 * memory error cannot escape. Stack: [opts] -> []. */
static int state_init(lua_State *L)
{
    struct state_opts *o = lua_touserdata(L, 1);

    lua_settop(L, 0);
    lua_pushinteger(L, o->json_max_depth);
    lua_setfield(L, LUA_REGISTRYINDEX, "rt.json.max_depth");
    sandbox_open(L, rt_modules);
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
    lua_setfield(L, LUA_REGISTRYINDEX, "rt.traceback");
    lua_getfield(L, LUA_REGISTRYINDEX, "rt.json.encode");
    lua_getfield(L, LUA_REGISTRYINDEX, "rt.json.decode");
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "rt"); /* the table behind the scripts' read-only view */
    lua_remove(L, -2);
    lua_pushcfunction(L, l_routes);
    lua_setfield(L, -2, "routes");
    lua_call(L, 4, 1);
    o->prelude_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* Creates a sandboxed state allocating through lim (borrowed: it must
 * outlive the state). Fills o->prelude_ref. Returns NULL with err filled. */
static lua_State *state_new(struct state_opts *o, struct limits *lim, struct vm_error *err)
{
    lua_State *L = limits_newstate(lim);

    if (!L) {
        snprintf(err->msg, sizeof err->msg,
                 "cannot create a Lua state: out of memory (or scripts.memory_limit_mb "
                 "too small)");
        return NULL;
    }
    lua_pushcfunction(L, state_init);
    lua_pushlightuserdata(L, o);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        snprintf(err->msg, sizeof err->msg, "cannot set up a Lua state: %s",
                 lua_tostring(L, -1));
        lua_close(L);
        return NULL;
    }
    return L;
}

/* Loads and runs a script file's chunk. Stack: [] -> [result] on success,
 * [..., error] on failure. Returns a Lua status. */
static int load_run(lua_State *L, const char *path, const char *src, size_t len)
{
    char chunkname[1024];

    snprintf(chunkname, sizeof chunkname, "@%s", path);
    int rc = luaL_loadbufferx(L, src, len, chunkname, "t");
    return rc == LUA_OK ? lua_pcall(L, 0, 1, 0) : rc;
}

/* Ends the limited run around the loading of path. On failure (rc not
 * LUA_OK) fills err from the error on the stack top, naming the limit when
 * one was hit, and empties the stack. Returns 0 or -1. */
static int end_load(lua_State *L, int rc, const char *path, struct vm_error *err)
{
    enum limits_kind hit = limits_end(L);

    if (rc == LUA_OK)
        return 0;
    if (hit != LIMITS_NONE)
        snprintf(err->msg, sizeof err->msg, "%s: %s limit exceeded while loading: %s", path,
                 limits_kind_name(hit), lua_tostring(L, -1));
    else
        snprintf(err->msg, sizeof err->msg, "%s", lua_tostring(L, -1));
    lua_settop(L, 0);
    return -1;
}

/* Runs a route file and validates what it returns, as one limited run (a
 * route table's __pairs is script code too).
 * Stack: [] -> [routes list] on success, [] on failure (err filled). */
static int file_routes(lua_State *L, int prelude_ref, const struct script_file *f,
                       struct vm_error *err)
{
    limits_begin(L);
    int rc = load_run(L, f->path, f->source, f->len);
    if (rc == LUA_OK) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, prelude_ref);
        lua_getfield(L, -1, "collect");
        lua_remove(L, -2);
        lua_pushstring(L, f->path);
        lua_pushvalue(L, -3);
        rc = lua_pcall(L, 2, 1, 0);
        if (rc == LUA_OK)
            lua_remove(L, -2); /* the file's table */
    }
    return end_load(L, rc, f->path, err);
}

struct load_ctx {
    void *target; /* struct vm_scripts * or struct vm * */
    int prelude_ref;
    struct vm_error *err;
};

/* Calls fn(L) under lua_pcall with ctx as its one argument; fn returns one
 * integer, 0 or -1 (err filled). A Lua error (out of memory) is -1 too.
 * Stack unchanged. */
static int run_protected(lua_State *L, lua_CFunction fn, struct load_ctx *ctx)
{
    int rc = -1;

    lua_pushcfunction(L, fn);
    lua_pushlightuserdata(L, ctx);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK)
        snprintf(ctx->err->msg, sizeof ctx->err->msg, "cannot load the scripts: %s",
                 lua_tostring(L, -1));
    else
        rc = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return rc;
}

/* ---- the script set ----------------------------------------------------- */

static int read_file(const char *path, struct script_file *f, struct vm_error *err)
{
    FILE *fp = fopen(path, "rb");
    long size;

    if (!fp || fseek(fp, 0, SEEK_END) != 0 || (size = ftell(fp)) < 0 ||
        fseek(fp, 0, SEEK_SET) != 0) {
        snprintf(err->msg, sizeof err->msg, "cannot read %s: %s", path, strerror(errno));
        if (fp)
            fclose(fp);
        return -1;
    }
    f->source = malloc((size_t)size + 1);
    f->path = strdup(path);
    if (!f->source || !f->path || fread(f->source, 1, (size_t)size, fp) != (size_t)size) {
        snprintf(err->msg, sizeof err->msg, "cannot read %s", path);
        fclose(fp);
        return -1;
    }
    f->source[size] = '\0';
    f->len = (size_t)size;
    fclose(fp);
    return 0;
}

struct path_list {
    char **v;
    size_t n, cap;
};

static void path_list_free(struct path_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

static int path_push(struct path_list *l, char *p)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            free(p);
            return -1;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = p;
    return 0;
}

/* Collects *.lua under dir, recursively. */
static int list_lua(const char *dir, struct path_list *out, struct vm_error *err)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int rc = 0;

    if (!d) {
        snprintf(err->msg, sizeof err->msg, "cannot open %s: %s", dir, strerror(errno));
        return -1;
    }
    while (rc == 0 && (e = readdir(d)) != NULL) {
        struct stat st;
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.')
            continue; /* hidden files and editor droppings */
        char *p = malloc(strlen(dir) + n + 2);
        if (!p) {
            rc = -1;
            break;
        }
        sprintf(p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) != 0) {
            free(p);
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            rc = list_lua(p, out, err);
            free(p);
        } else if (S_ISREG(st.st_mode) && n > 4 && strcmp(e->d_name + n - 4, ".lua") == 0) {
            if (path_push(out, p) < 0) {
                snprintf(err->msg, sizeof err->msg, "out of memory");
                rc = -1;
            }
        } else {
            free(p);
        }
    }
    closedir(d);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *opt_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Registers the routes listed on the stack top (from collect) with the
 * router. Stack unchanged. */
static int register_routes(lua_State *L, struct vm_scripts *s, const char *file,
                           struct vm_error *err)
{
    lua_Integer n = luaL_len(L, -1);
    struct vm_route *routes =
        realloc(s->routes, (s->nroutes + (size_t)n + 1) * sizeof *routes);

    if (!routes) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return -1;
    }
    s->routes = routes;
    for (lua_Integer i = 1; i <= n; i++) {
        struct router_error rerr;
        struct vm_route *r = &s->routes[s->nroutes];
        lua_rawgeti(L, -1, i);
        lua_getfield(L, -1, "method");
        lua_getfield(L, -2, "pattern");
        lua_getfield(L, -3, "scope");
        lua_getfield(L, -4, "permission");
        lua_getfield(L, -5, "readonly");
        r->read_only = lua_toboolean(L, -1);
        lua_getfield(L, -6, "offload");
        r->offload = lua_toboolean(L, -1);
        lua_pop(L, 2);
        r->method = strdup(lua_tostring(L, -4));
        r->pattern = strdup(lua_tostring(L, -3));
        r->scope = strdup(lua_tostring(L, -2));
        r->permission = opt_strdup(lua_tostring(L, -1));
        r->file = strdup(file);
        lua_pop(L, 5);
        s->nroutes++;
        if (!r->method || !r->pattern || !r->scope || !r->file) {
            snprintf(err->msg, sizeof err->msg, "out of memory");
            return -1;
        }
        if (router_add(s->router, r->method, r->pattern, (int)s->nroutes - 1, file, &rerr) <
            0) {
            snprintf(err->msg, sizeof err->msg, "%s: %s", file, rerr.msg);
            return -1;
        }
    }
    return 0;
}

/* Validates every route file and registers its routes. Runs under
 * run_protected. */
static int validate_routes(lua_State *L)
{
    struct load_ctx *ctx = lua_touserdata(L, 1);
    struct vm_scripts *s = ctx->target;

    lua_settop(L, 0);
    for (size_t i = 0; i < s->nfiles; i++) {
        if (file_routes(L, ctx->prelude_ref, &s->files[i], ctx->err) < 0 ||
            register_routes(L, s, s->files[i].path, ctx->err) < 0) {
            lua_pushinteger(L, -1);
            return 1;
        }
        lua_settop(L, 0);
    }
    lua_pushinteger(L, 0);
    return 1;
}

struct vm_scripts *vm_scripts_load(const char *scripts_dir, const struct config *cfg,
                                   struct vm_error *err)
{
    struct vm_scripts *s = calloc(1, sizeof *s);
    struct path_list paths = {NULL, 0, 0};
    struct stat st;
    struct limits lim;
    lua_State *L = NULL;
    char *api = NULL;

    if (!s || !(s->router = router_new()) || !(s->dir = strdup(scripts_dir))) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        goto fail;
    }
    s->json_max_depth = cfg->json_max_depth;
    s->cfg = cfg;
    s->limits.memory_cap = (size_t)cfg->scripts_memory_limit_mb << 20;
    s->limits.max_instructions = cfg->scripts_instruction_limit;
    s->limits.time_ms = cfg->scripts_time_limit_ms;
    if (stat(scripts_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err->msg, sizeof err->msg, "scripts directory '%s' not found",
                 scripts_dir);
        goto fail;
    }
    api = malloc(strlen(scripts_dir) + 5);
    if (!api) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        goto fail;
    }
    sprintf(api, "%s/api", scripts_dir);
    if (stat(api, &st) == 0 && list_lua(api, &paths, err) < 0)
        goto fail;
    if (paths.n > 1)
        qsort(paths.v, paths.n, sizeof *paths.v, cmp_str);
    s->files = calloc(paths.n ? paths.n : 1, sizeof *s->files);
    if (!s->files) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < paths.n; i++) {
        s->nfiles++;
        if (read_file(paths.v[i], &s->files[i], err) < 0)
            goto fail;
    }
    /* Validated in a scratch state with the workers' limits. */
    lim = s->limits;
    struct state_opts o = {s->json_max_depth, s->dir, LUA_NOREF};
    if (!(L = state_new(&o, &lim, err)))
        goto fail;
    struct load_ctx ctx = {s, o.prelude_ref, err};
    if (run_protected(L, validate_routes, &ctx) < 0)
        goto fail;
    goto done;
fail:
    vm_scripts_free(s);
    s = NULL;
done:
    if (L)
        lua_close(L);
    path_list_free(&paths);
    free(api);
    return s;
}

void vm_scripts_free(struct vm_scripts *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nfiles; i++) {
        free(s->files[i].path);
        free(s->files[i].source);
    }
    free(s->files);
    free(s->dir);
    for (size_t i = 0; i < s->nroutes; i++) {
        struct vm_route *r = &s->routes[i];
        free(r->method);
        free(r->pattern);
        free(r->scope);
        free(r->permission);
        free(r->file);
    }
    free(s->routes);
    router_free(s->router);
    free(s);
}

const struct router *vm_scripts_router(const struct vm_scripts *s)
{
    return s->router;
}

const struct vm_route *vm_scripts_route(const struct vm_scripts *s, int id)
{
    return id >= 0 && (size_t)id < s->nroutes ? &s->routes[id] : NULL;
}

size_t vm_scripts_file_count(const struct vm_scripts *s)
{
    return s->nfiles;
}

size_t vm_scripts_route_count(const struct vm_scripts *s)
{
    return s->nroutes;
}

/* Whether path is dir/<sub>/... */
static bool path_under(const char *path, const char *dir, const char *sub)
{
    size_t n = strlen(dir), m = strlen(sub);
    return strncmp(path, dir, n) == 0 && path[n] == '/' &&
           strncmp(path + n + 1, sub, m) == 0 && path[n + 1 + m] == '/';
}

long vm_scripts_compile(const char *scripts_dir, void (*report)(void *ud, const char *msg),
                        void *ud, struct vm_error *err)
{
    struct path_list paths = {NULL, 0, 0};
    struct limits lim = {0};
    lua_State *L = NULL;
    long n = -1;

    if (list_lua(scripts_dir, &paths, err) < 0)
        goto done;
    if (!(L = limits_newstate(&lim))) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        goto done;
    }
    if (paths.n > 1)
        qsort(paths.v, paths.n, sizeof *paths.v, cmp_str);
    n = 0;
    for (size_t i = 0; i < paths.n; i++) {
        if (path_under(paths.v[i], scripts_dir, "migrations") ||
            path_under(paths.v[i], scripts_dir, "seeds"))
            continue;
        n++;
        if (luaL_loadfilex(L, paths.v[i], "t") != LUA_OK)
            report(ud, lua_tostring(L, -1));
        lua_settop(L, 0);
    }
done:
    if (L)
        lua_close(L);
    path_list_free(&paths);
    return n;
}

/* ---- worker states ------------------------------------------------------ */

/* Runs every route file in the worker state and keeps the handlers. Runs
 * under run_protected. */
static int keep_handlers(lua_State *L)
{
    struct load_ctx *ctx = lua_touserdata(L, 1);
    struct vm *vm = ctx->target;
    const struct vm_scripts *s = vm->scripts;
    size_t id = 0;

    lua_settop(L, 0);
    lua_pushlightuserdata(L, (void *)s->cfg);
    lua_setfield(L, LUA_REGISTRYINDEX, "rt.config");
    lua_pushlightuserdata(L, (void *)s);
    lua_setfield(L, LUA_REGISTRYINDEX, "rt.scripts");
    lua_createtable(L, (int)s->nroutes, 0);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "rt.route_meta");
    lua_createtable(L, (int)s->nroutes, 0);
    for (size_t i = 0; i < s->nfiles; i++) {
        if (file_routes(L, vm->prelude_ref, &s->files[i], ctx->err) < 0) {
            lua_pushinteger(L, -1);
            return 1;
        }
        lua_Integer n = luaL_len(L, -1);
        for (lua_Integer j = 1; j <= n; j++, id++) {
            lua_rawgeti(L, -1, j);
            lua_getfield(L, -1, "method");
            lua_getfield(L, -2, "pattern");
            const struct vm_route *r = vm_scripts_route(s, (int)id);
            if (!r || strcmp(r->method, lua_tostring(L, -2)) != 0 ||
                strcmp(r->pattern, lua_tostring(L, -1)) != 0) {
                snprintf(ctx->err->msg, sizeof ctx->err->msg,
                         "%s: the route table differs from the one validated at "
                         "load (module code must not depend on when it runs)",
                         s->files[i].path);
                lua_pushinteger(L, -1);
                return 1;
            }
            lua_pop(L, 2);
            lua_getfield(L, -1, "handler");
            lua_rawseti(L, -4, (lua_Integer)id + 1);
            lua_rawseti(L, -4, (lua_Integer)id + 1); /* the entry: route metadata */
        }
        lua_pop(L, 1);
    }
    vm->handlers_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1); /* the metadata table */
    lua_pushinteger(L, 0);
    return 1;
}

/* Builds vm->L for vm->scripts: sandbox, prelude and the handler of every
 * route. Returns 0, or -1 with err filled and vm->L NULL. */
static int vm_build(struct vm *vm, struct vm_error *err)
{
    const struct vm_scripts *s = vm->scripts;
    struct state_opts o = {s->json_max_depth, s->dir, LUA_NOREF};

    vm->limits = s->limits;
    if (!(vm->L = state_new(&o, &vm->limits, err)))
        return -1;
    vm->prelude_ref = o.prelude_ref;
    struct load_ctx ctx = {vm, o.prelude_ref, err};
    if (run_protected(vm->L, keep_handlers, &ctx) < 0) {
        lua_close(vm->L);
        vm->L = NULL;
        return -1;
    }
    return 0;
}

struct vm *vm_new(const struct vm_scripts *s, struct vm_error *err)
{
    struct vm *vm = calloc(1, sizeof *vm);

    if (!vm) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return NULL;
    }
    vm->scripts = s;
    if (vm_build(vm, err) < 0) {
        free(vm);
        return NULL;
    }
    return vm;
}

void vm_free(struct vm *vm)
{
    if (!vm)
        return;
    if (vm->L)
        lua_close(vm->L);
    free(vm);
}

/* ---- one request ------------------------------------------------------- */

/* Sets t[key] = value, joining repeated keys with ", " as HTTP allows.
 * Stack: [t] -> [t]. */
static void set_joined(lua_State *L, const char *key, size_t keylen, const char *value,
                       size_t len)
{
    lua_pushlstring(L, key, keylen);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) == LUA_TSTRING) {
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, value, len);
        lua_concat(L, 3);
    } else {
        lua_pop(L, 1);
        lua_pushlstring(L, value, len);
    }
    lua_rawset(L, -3);
}

static size_t value_len(const struct vm_kv *kv)
{
    return kv->value ? kv->value_len : 0;
}

/* Binds the request's database context, builds `req` and calls the
 * prelude's dispatch. Runs under lua_pcall.
 * Stack: [vm, req, db ctx lightuserdata] -> dispatch's results. */
static int run_request(lua_State *L)
{
    struct vm *vm = lua_touserdata(L, 1);
    const struct vm_request *req = lua_touserdata(L, 2);
    const struct router_match *m = req->match;
    char lower[256];

    rt_db_bind(L, lua_touserdata(L, 3));
    lua_pushstring(L, req->id);
    lua_setfield(L, LUA_REGISTRYINDEX, "rt.request_id");
    rt_auth_bind(L, req->auth, req->claims, req->tenant ? req->tenant->id : 0,
                 req->offloaded);
    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->prelude_ref);
    lua_getfield(L, -1, "dispatch");
    lua_remove(L, -2);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->handlers_ref);
    lua_rawgeti(L, -1, m->route_id + 1);
    lua_remove(L, -2);

    lua_createtable(L, 0, 12);
    lua_pushstring(L, req->method);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, req->path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, req->id);
    lua_setfield(L, -2, "id");
    if (req->body) {
        lua_pushlstring(L, req->body, req->body_len);
        lua_setfield(L, -2, "body");
    }

    lua_createtable(L, 0, m->nparams);
    for (int i = 0; i < m->nparams; i++) {
        lua_pushlstring(L, m->params[i].value, m->params[i].value_len);
        lua_setfield(L, -2, m->params[i].name);
    }
    lua_setfield(L, -2, "params");

    lua_createtable(L, 0, req->nquery);
    for (int i = 0; i < req->nquery; i++)
        set_joined(L, req->query[i].key, strlen(req->query[i].key),
                   req->query[i].value ? req->query[i].value : "",
                   value_len(&req->query[i]));
    lua_setfield(L, -2, "query");

    lua_createtable(L, 0, req->nheaders);
    for (int i = 0; i < req->nheaders; i++) {
        size_t n = strlen(req->headers[i].key);
        if (n >= sizeof lower)
            continue; /* no header name is that long */
        for (size_t j = 0; j < n; j++)
            lower[j] = (char)tolower((unsigned char)req->headers[i].key[j]);
        set_joined(L, lower, n, req->headers[i].value ? req->headers[i].value : "",
                   value_len(&req->headers[i]));
    }
    lua_setfield(L, -2, "headers");

    if (req->claims) {
        const struct crypto_jwt_claims *c = req->claims;
        lua_createtable(L, 0, 4);
        lua_pushstring(L, c->sub);
        lua_setfield(L, -2, "id");
        lua_pushstring(L, c->scope);
        lua_setfield(L, -2, "scope");
        if (c->tid) {
            lua_pushinteger(L, (lua_Integer)c->tid);
            lua_setfield(L, -2, "tid");
        }
        lua_pushstring(L, c->jti);
        lua_setfield(L, -2, "jti");
        lua_setfield(L, -2, "user");
    }
    if (req->tenant) {
        const struct tenant_info *t = req->tenant;
        lua_createtable(L, 0, 5);
        lua_pushinteger(L, (lua_Integer)t->id);
        lua_setfield(L, -2, "id");
        lua_pushstring(L, t->code);
        lua_setfield(L, -2, "code");
        lua_pushstring(L, t->name ? t->name : t->code);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, t->isolation);
        lua_setfield(L, -2, "isolation");
        lua_getfield(L, LUA_REGISTRYINDEX, "rt.json.decode");
        lua_pushstring(L, t->settings ? t->settings : "{}");
        lua_call(L, 1, 1);
        lua_setfield(L, -2, "settings");
        lua_setfield(L, -2, "tenant");
    }

    lua_call(L, 2, LUA_MULTRET);
    return lua_gettop(L);
}

static char *dup_lua(lua_State *L, int idx, size_t *len)
{
    size_t n = 0;
    const char *s = lua_tolstring(L, idx, &n);
    char *p;

    if (!s)
        return NULL;
    p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    if (len)
        *len = p ? n : 0;
    return p;
}

void vm_response_error(struct vm_response *resp, int status, const char *code,
                       const char *message, const char *request_id)
{
    vm_response_free(resp);
    resp->status = status;
    resp->body = errors_body(status, code, message, request_id, &resp->body_len);
    resp->content_type = strdup("application/json");
    /* The runtime answers 503 only while the database is unreachable. */
    resp->retry_later = status == 503;
}

void vm_response_free(struct vm_response *resp)
{
    free(resp->body);
    free(resp->content_type);
    for (int i = 0; i < resp->nheaders; i++) {
        free(resp->headers[i].name);
        free(resp->headers[i].value);
    }
    free(resp->headers);
    memset(resp, 0, sizeof *resp);
}

/* Copies "ok" results (status, body, content type, flat headers) at base. */
static int take_response(lua_State *L, int base, struct vm_response *resp)
{
    resp->status = (int)lua_tointeger(L, base);
    resp->body = dup_lua(L, base + 1, &resp->body_len);
    if (!resp->body)
        return -1;
    if (lua_isstring(L, base + 2) && !(resp->content_type = dup_lua(L, base + 2, NULL)))
        return -1;
    int n = (int)lua_rawlen(L, base + 3) / 2;
    if (n > 0) {
        resp->headers = calloc((size_t)n, sizeof *resp->headers);
        if (!resp->headers)
            return -1;
        for (int i = 0; i < n; i++) {
            lua_rawgeti(L, base + 3, 2 * i + 1);
            lua_rawgeti(L, base + 3, 2 * i + 2);
            resp->headers[i].name = dup_lua(L, -2, NULL);
            resp->headers[i].value = dup_lua(L, -1, NULL);
            resp->nheaders = i + 1;
            lua_pop(L, 2);
            if (!resp->headers[i].name || !resp->headers[i].value)
                return -1;
        }
    }
    return 0;
}

/* The status for a failed request, from the last database failure. */
static int failure_status(const struct rt_db_ctx *ctx)
{
    switch (ctx->failure) {
    case DB_ERR_UNAVAILABLE: return 503;
    case DB_ERR_POOL_TIMEOUT:
    case DB_ERR_STATEMENT_TIMEOUT: return 504;
    default: return 500;
    }
}

/* The permission set of a tenant user, read in the request's transaction
 * (the tenant's tables are in scope). */
static const char PERMS_SQL[] =
    "SELECT u.is_superuser OR coalesce(bool_or(r.code = 'super_admin'), false), "
    "coalesce(max(r.priority), 0), "
    "coalesce(string_agg(DISTINCT p.code, ',' ORDER BY p.code), '') "
    "FROM users u LEFT JOIN user_roles ur ON ur.user_id = u.id "
    "LEFT JOIN roles r ON r.id = ur.role_id "
    "LEFT JOIN role_permissions rp ON rp.role_id = r.id "
    "LEFT JOIN permissions p ON p.id = rp.permission_id "
    "WHERE u.id = $1::bigint AND u.deleted_at IS NULL AND u.status = 'active' "
    "GROUP BY u.id, u.is_superuser";

/* Loads the caller's permission set on a cache miss. Returns 1 (out filled;
 * out->codes is owned by res), 0 when the user is gone or disabled, -1 on a
 * database failure (ctx->failure set). */
static int load_perms(const struct vm_request *req, struct rt_db_ctx *ctx,
                      struct auth_perms *out, PGresult **res, char *why, size_t whylen)
{
    const struct crypto_jwt_claims *c = req->claims;
    struct db_error err;

    if (strcmp(c->scope, "core") == 0)
        return auth_core_perms(req->auth, c->sub, out, why, whylen);
    if (!*c->sub || strspn(c->sub, "0123456789") != strlen(c->sub))
        return 0;
    const char *v[] = {c->sub};
    if (db_query(ctx->pool, &ctx->conn, &ctx->tx, PERMS_SQL, 1, v, res, &err) < 0) {
        ctx->failure = err.status;
        snprintf(why, whylen, "%s", err.message);
        return -1;
    }
    if (PQntuples(*res) != 1)
        return 0;
    out->superuser = PQgetvalue(*res, 0, 0)[0] == 't';
    out->priority = atoi(PQgetvalue(*res, 0, 1));
    out->codes = PQgetvalue(*res, 0, 2);
    return 1;
}

/* Enforces the route's permission before its handler runs. Returns 0 when
 * the request may go on; otherwise resp holds the answer. */
static int authorize(const struct vm_request *req, const struct vm_route *route,
                     struct rt_db_ctx *ctx, struct vm_response *resp)
{
    const struct crypto_jwt_claims *c = req->claims;
    bool allowed = false;

    if (!route->permission)
        return 0;
    if (!c || !req->auth) {
        vm_response_error(resp, 401, NULL, "this route requires a bearer token", req->id);
        return -1;
    }
    long long tid = strcmp(c->scope, "core") == 0 ? 0 : c->tid;
    if (!auth_perms_cached(req->auth, tid, c->sub, route->permission, &allowed)) {
        struct auth_perms p = {0};
        PGresult *res = NULL;
        char why[512] = "";
        int rc = load_perms(req, ctx, &p, &res, why, sizeof why);
        if (rc == 1) {
            auth_perms_store(req->auth, tid, c->sub, &p);
            allowed = auth_perms_allow(&p, route->permission);
        }
        PQclear(res);
        if (rc < 0) {
            log_msg(LOG_LEVEL_ERROR, req->id, "loading permissions: %s", why);
            vm_response_error(resp, failure_status(ctx), NULL, NULL, req->id);
            return -1;
        }
        if (rc == 0) {
            vm_response_error(resp, 401, NULL, "invalid or expired token", req->id);
            return -1;
        }
    }
    if (!allowed) {
        char msg[160];
        snprintf(msg, sizeof msg, "this route needs the permission %s", route->permission);
        vm_response_error(resp, 403, "forbidden", msg, req->id);
        return -1;
    }
    return 0;
}

/* The setting behind limit k, for the log: "scripts.memory_limit_mb = 64". */
static void limit_setting(const struct limits *lim, enum limits_kind k, char *out,
                          size_t cap)
{
    switch (k) {
    case LIMITS_INSTRUCTIONS:
        snprintf(out, cap, "scripts.instruction_limit = %lld", lim->max_instructions);
        break;
    case LIMITS_MEMORY:
        snprintf(out, cap, "scripts.memory_limit_mb = %zu", lim->memory_cap >> 20);
        break;
    case LIMITS_TIME: snprintf(out, cap, "scripts.time_limit_ms = %d", lim->time_ms); break;
    default: snprintf(out, cap, "no limit"); break;
    }
}

/* Replaces the worker's state with a fresh one: after a memory blow-up the
 * old one may hold (in module-level tables) what made it full. */
static void vm_rebuild(struct vm *vm, const char *request_id)
{
    struct vm_error err;

    lua_close(vm->L);
    vm->L = NULL;
    if (vm_build(vm, &err) < 0)
        log_msg(LOG_LEVEL_ERROR, request_id, "cannot rebuild the worker's Lua state: %s",
                err.msg);
    else
        log_msg(LOG_LEVEL_WARN, request_id, "the worker's Lua state was rebuilt");
}

void vm_handle(struct vm *vm, const struct vm_request *req, struct vm_response *resp)
{
    const struct vm_route *route = vm_scripts_route(vm->scripts, req->match->route_id);
    struct rt_db_ctx ctx = {req->pool, NULL, {NULL, 0, route->read_only}, DB_OK, 0};
    struct db_setting scope[2];
    char search_path[80], tenant_id[32];

    memset(resp, 0, sizeof *resp);
    if (!vm->L) {
        struct vm_error err;
        if (vm_build(vm, &err) < 0) {
            log_msg(LOG_LEVEL_ERROR, req->id, "no Lua state for this worker: %s", err.msg);
            vm_response_error(resp, 500, NULL, NULL, req->id);
            return;
        }
    }
    if (req->tenant) {
        /* Set inside every transaction (set_config(..., true)), never on the
         * session, so a pooled connection carries nothing to the next
         * request. The schema name comes from a validated code. */
        snprintf(search_path, sizeof search_path, "\"%s\"", req->tenant->schema);
        snprintf(tenant_id, sizeof tenant_id, "%lld", req->tenant->id);
        scope[0] = (struct db_setting){"search_path", search_path};
        scope[1] = (struct db_setting){"app.tenant_id", tenant_id};
        ctx.tx.settings = scope;
        ctx.tx.nsettings = 2;
    }
    lua_State *L = vm->L;
    struct db_error dberr;
    const char *kind = "error";
    int status;

    if (authorize(req, route, &ctx, resp) < 0) {
        (void)rt_db_finish(&ctx, false, &dberr);
        return;
    }
    lua_settop(L, 0);
    lua_pushcfunction(L, run_request);
    lua_pushlightuserdata(L, vm);
    lua_pushlightuserdata(L, (void *)req);
    lua_pushlightuserdata(L, &ctx);
    limits_begin(L);
    status = lua_pcall(L, 3, LUA_MULTRET, 0);
    enum limits_kind hit = limits_end(L);
    if (hit == LIMITS_NONE && status == LUA_OK && lua_type(L, 1) == LUA_TSTRING)
        kind = lua_tostring(L, 1);

    bool ok = strcmp(kind, "ok") == 0;
    bool tx_failed = db_transaction_failed(ctx.conn);
    int rc = rt_db_finish(&ctx, ok && !tx_failed, &dberr);

    if (ok && rc == 0 && !(tx_failed && lua_tointeger(L, 2) < 400)) {
        if (take_response(L, 2, resp) < 0)
            vm_response_error(resp, 500, NULL, NULL, req->id);
    } else if (ok && rc < 0) {
        log_msg(LOG_LEVEL_ERROR, req->id, "%s %s (%s): commit failed: %s", route->method,
                route->pattern, route->file, dberr.message);
        vm_response_error(resp, failure_status(&ctx), NULL, NULL, req->id);
    } else if (ok) {
        log_msg(LOG_LEVEL_ERROR, req->id,
                "%s %s (%s): handler returned status %d after a failed statement; "
                "the transaction was rolled back",
                route->method, route->pattern, route->file, (int)lua_tointeger(L, 2));
        vm_response_error(resp, 500, NULL, NULL, req->id);
    } else if (strcmp(kind, "http_error") == 0) {
        resp->status = (int)lua_tointeger(L, 2);
        resp->body = dup_lua(L, 3, &resp->body_len);
        resp->content_type = strdup("application/json");
        if (!resp->body || !resp->content_type)
            vm_response_error(resp, 500, NULL, NULL, req->id);
    } else {
        /* A limit is a script failure like any other (500), never a reason
         * to blame the database; the log names the limit and its setting. */
        const char *detail = status == LUA_OK ? lua_tostring(L, 2) : lua_tostring(L, -1);
        char what[512], setting[64];
        if (hit != LIMITS_NONE)
            detail = vm->limits.where[0] ? vm->limits.where
                                         : "the script caught the error and went on; the "
                                           "request fails all the same";
        limit_setting(&vm->limits, hit, setting, sizeof setting);
        if (hit != LIMITS_NONE)
            snprintf(what, sizeof what, "%s %s (%s): %s limit exceeded (%s)", route->method,
                     route->pattern, route->file, limits_kind_name(hit), setting);
        else
            snprintf(what, sizeof what, "%s %s (%s): %s", route->method, route->pattern,
                     route->file, status != LUA_OK ? "runtime error" : kind);
        log_msg_detail(LOG_LEVEL_ERROR, req->id, what, "detail", detail ? detail : "?");
        vm_response_error(resp, hit != LIMITS_NONE ? 500 : failure_status(&ctx), NULL, NULL,
                          req->id);
    }
    lua_settop(L, 0);
    rt_db_bind(L, NULL);
    rt_auth_bind(L, NULL, NULL, 0, false);
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "rt.request_id");
    if (hit == LIMITS_MEMORY || status == LUA_ERRMEM)
        vm_rebuild(vm, req->id);
}

/* ---- step files ---------------------------------------------------------- */

void vm_steps_free(struct vm_steps *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].name);
        free(s->v[i].path);
        free(s->v[i].source);
    }
    free(s->v);
    free(s);
}

/* Parses "NNNN_name.lua": 4+ digits, '_', [a-z0-9_]+. */
static int step_name_parse(const char *base, int *version, char **name)
{
    size_t n = strlen(base), i = 0;
    long v = 0;

    if (n < 9 || strcmp(base + n - 4, ".lua") != 0)
        return -1;
    while (i < n && isdigit((unsigned char)base[i])) {
        v = v * 10 + (base[i] - '0');
        if (v > 999999)
            return -1;
        i++;
    }
    if (i < 4 || base[i] != '_' || i + 1 >= n - 4)
        return -1;
    for (size_t j = i + 1; j < n - 4; j++)
        if (!(islower((unsigned char)base[j]) || isdigit((unsigned char)base[j]) ||
              base[j] == '_'))
            return -1;
    *version = (int)v;
    *name = strndup(base + i + 1, n - 4 - i - 1);
    return *name ? 0 : -1;
}

static int cmp_step(const void *a, const void *b)
{
    const struct vm_step *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

/* Runs a step file's chunk in L. Stack: [] -> [step table], or [] on failure. */
static int step_table(lua_State *L, const struct vm_step *st, struct vm_error *err)
{
    limits_begin(L);
    return end_load(L, load_run(L, st->path, st->source, st->len), st->path, err);
}

/* Appends one problem to err (one per line). */
static void err_add(struct vm_error *err, int *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void err_add(struct vm_error *err, int *n, const char *fmt, ...)
{
    size_t len = *n ? strlen(err->msg) : 0;
    va_list ap;

    if (len + 2 >= sizeof err->msg)
        return;
    if (*n)
        err->msg[len++] = '\n';
    va_start(ap, fmt);
    vsnprintf(err->msg + len, sizeof err->msg - len, fmt, ap);
    va_end(ap);
    (*n)++;
}

/* Validates every step in a scratch state; records has_down/transactional.
 * Returns the number of problems added to err. */
static int steps_check(struct vm_steps *s, enum vm_step_kind kind, struct vm_error *err,
                       int nerr)
{
    struct vm_error one;
    struct limits lim = {.time_ms = STEP_LOAD_TIME_MS};
    struct state_opts o = {64, NULL, LUA_NOREF};
    lua_State *L = state_new(&o, &lim, &one);

    if (!L) {
        err_add(err, &nerr, "%s", one.msg);
        return nerr;
    }
    for (size_t i = 0; i < s->n; i++) {
        struct vm_step *st = &s->v[i];
        if (!st->source)
            continue; /* unreadable: reported already */
        if (step_table(L, st, &one) < 0) {
            err_add(err, &nerr, "%s", one.msg);
            continue;
        }
        lua_rawgeti(L, LUA_REGISTRYINDEX, o.prelude_ref);
        lua_getfield(L, -1, "step_check");
        lua_pushstring(L, st->path);
        lua_pushvalue(L, -4);
        lua_pushstring(L, kind == VM_STEP_SEED ? "seed" : "migration");
        limits_begin(L);
        int rc = lua_pcall(L, 3, 2, 0);
        limits_end(L);
        if (rc != LUA_OK) {
            err_add(err, &nerr, "%s", lua_tostring(L, -1));
        } else {
            st->has_down = lua_toboolean(L, -2);
            st->transactional = lua_toboolean(L, -1);
        }
        lua_settop(L, 0);
    }
    lua_close(L);
    return nerr;
}

struct vm_steps *vm_steps_load(const char *dir, const char *label, enum vm_step_kind kind,
                               struct vm_error *err)
{
    struct vm_steps *s = calloc(1, sizeof *s);
    DIR *d;
    struct dirent *e;
    size_t cap = 0;
    int nerr = 0;

    err->msg[0] = '\0';
    if (!s) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return NULL;
    }
    d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return s; /* no steps yet */
        snprintf(err->msg, sizeof err->msg, "cannot open %s: %s", dir, strerror(errno));
        free(s);
        return NULL;
    }
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || n < 4 || strcmp(e->d_name + n - 4, ".lua") != 0)
            continue;
        if (s->n == cap) {
            cap = cap ? cap * 2 : 16;
            struct vm_step *v = realloc(s->v, cap * sizeof *v);
            if (!v) {
                closedir(d);
                snprintf(err->msg, sizeof err->msg, "out of memory");
                vm_steps_free(s);
                return NULL;
            }
            s->v = v;
        }
        struct vm_step *st = &s->v[s->n];
        memset(st, 0, sizeof *st);
        st->path = malloc(strlen(label) + n + 2);
        if (!st->path) {
            closedir(d);
            snprintf(err->msg, sizeof err->msg, "out of memory");
            vm_steps_free(s);
            return NULL;
        }
        sprintf(st->path, "%s/%s", label, e->d_name);
        if (step_name_parse(e->d_name, &st->version, &st->name) < 0) {
            err_add(err, &nerr,
                    "%s: step files are named NNNN_name.lua (a version of four or more "
                    "digits, then lower-case letters, digits and _)",
                    st->path);
            free(st->path);
            continue;
        }
        s->n++;
    }
    closedir(d);
    if (s->n > 1) /* qsort's array must not be NULL, even for no elements */
        qsort(s->v, s->n, sizeof *s->v, cmp_step);
    for (size_t i = 0; i < s->n; i++) {
        struct vm_step *st = &s->v[i];
        if (i > 0 && st->version == s->v[i - 1].version)
            err_add(err, &nerr, "%s: duplicate version %04d (also %s)", st->path,
                    st->version, s->v[i - 1].path);
        else if (st->version != (i > 0 ? s->v[i - 1].version + 1 : 1))
            err_add(err, &nerr,
                    "%s: versions must run 1, 2, 3, ... without gaps; expected %04d here",
                    st->path, i > 0 ? s->v[i - 1].version + 1 : 1);
        /* Read from the real directory; st->path is the label. */
        const char *base = strrchr(st->path, '/') + 1;
        char *real = malloc(strlen(dir) + strlen(base) + 2);
        struct script_file f = {NULL, NULL, 0};
        struct vm_error one;
        if (!real) {
            err_add(err, &nerr, "out of memory");
            continue;
        }
        sprintf(real, "%s/%s", dir, base);
        if (read_file(real, &f, &one) < 0) {
            err_add(err, &nerr, "%s", one.msg);
            free(f.source);
        } else {
            st->source = f.source;
            st->len = f.len;
            crypto_sha256_hex(st->source, st->len, st->checksum);
        }
        free(f.path);
        free(real);
    }
    nerr = steps_check(s, kind, err, nerr);
    if (nerr > 0) {
        vm_steps_free(s);
        return NULL;
    }
    return s;
}

struct vm *vm_new_steps(const struct vm_steps *s, struct vm_error *err)
{
    struct vm *vm = calloc(1, sizeof *vm);

    if (!vm) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return NULL;
    }
    struct state_opts o = {64, NULL, LUA_NOREF};
    vm->limits = (struct limits){.time_ms = STEP_LOAD_TIME_MS};
    if (!(vm->L = state_new(&o, &vm->limits, err))) {
        free(vm);
        return NULL;
    }
    vm->prelude_ref = o.prelude_ref;
    lua_State *L = vm->L;
    lua_createtable(L, (int)s->n, 0);
    for (size_t i = 0; i < s->n; i++) {
        if (step_table(L, &s->v[i], err) < 0) {
            vm_free(vm);
            return NULL;
        }
        lua_rawseti(L, -2, s->v[i].version);
    }
    vm->steps_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return vm;
}

int vm_run_step(struct vm *vm, int version, const char *fn, struct rt_migrate_ctx *ctx,
                struct vm_error *err)
{
    lua_State *L = vm->L;
    int rc = 0;

    lua_settop(L, 0);
    lua_getfield(L, LUA_REGISTRYINDEX, "rt.traceback");
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->steps_ref);
    if (lua_rawgeti(L, -1, version) != LUA_TTABLE ||
        lua_getfield(L, -1, fn) != LUA_TFUNCTION) {
        snprintf(err->msg, sizeof err->msg, "step %04d has no %s function", version, fn);
        lua_settop(L, 0);
        return -1;
    }
    rt_migrate_push(L, ctx); /* stack: traceback, steps, step, fn, m */
    lua_pushvalue(L, -1);
    lua_insert(L, 3); /* keep m below the call to detach it afterwards */
    if (lua_pcall(L, 1, 0, 1) != LUA_OK) {
        /* The first line is the message; the traceback is for the log. */
        const char *msg = lua_tostring(L, -1);
        snprintf(err->msg, sizeof err->msg, "%s",
                 msg ? msg : "error object is not a string");
        char *nl = strstr(err->msg, "\nstack traceback:");
        if (nl)
            *nl = '\0';
        rc = -1;
    }
    rt_migrate_close(L, 3);
    lua_settop(L, 0);
    lua_gc(L, LUA_GCSTEP, 0);
    return rc;
}
