/* vm: worker Lua states, the script set and request dispatch (see vm.h). */
#include "vm.h"

#include "crypto.h"
#include "errors.h"
#include "log.h"
#include "lua/limits.h"
#include "lua/rt_auth.h"
#include "lua/rt_db.h"
#include "lua/rt_events.h"
#include "lua/rt_migrate.h"
#include "lua/rt_json.h"
#include "lua/rt_log.h"
#include "lua/rt_tenant.h"
#include "tenant_engine.h"
#include "lua/sandbox.h"

#include <ctype.h>
#include <stdatomic.h>
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

enum file_kind { FILE_API, FILE_EVENTS };

struct script_file {
    char *path;
    char *rel;  /* path under api/ or events/: what an override shadows */
    char *code; /* the tenant whose override this is; NULL: common */
    enum file_kind kind;
    char *source;
    size_t len;
};

/* The routes and event files one tenant (or everyone) sees. */
struct vm_view {
    char *code; /* NULL: the common view */
    struct router *router;
    struct vm_route *routes;
    size_t nroutes;
    int *events; /* file indexes of the event files, in order */
    size_t nevents;
};

struct vm_scripts {
    atomic_int refs;
    const struct config *cfg; /* borrowed: for rt.auth */
    char *dir;                /* the scripts root, for require */
    struct script_file *files;
    size_t nfiles;
    struct vm_view *views; /* [0]: the common view; then overrides by code */
    size_t nviews;
    int json_max_depth;
    int max_envs;         /* scripts.tenant_envs */
    struct limits limits; /* the settings every worker state gets */
};

/* One environment in a worker's LRU list. */
struct env_slot {
    long long key; /* tenant id; 0: requests without a tenant */
    unsigned long long used;
};

struct vm {
    lua_State *L;               /* NULL after a failed rebuild */
    struct vm_scripts *scripts; /* retained; NULL for a steps vm */
    struct vm_board *board;     /* borrowed; NULL: no reload status */
    struct limits limits;       /* L's allocator and hook state */
    int prelude_ref;            /* {dispatch=, collect=, step_check=, ...} */
    int chunks_ref;             /* file index + 1 -> function(env) running the file */
    int envs_ref;               /* env key -> {env=, files=, events=} */
    int steps_ref;              /* version -> step table */
    struct env_slot *slots;     /* the environments alive in L */
    size_t nslots;
    unsigned long long tick;
    const struct vm_view *view; /* of the request running */
};

/* ---- the sandboxed state ---------------------------------------------- */

static int open_rt(lua_State *L)
{
    static const char *const subs[] = {"db",     "json",   "log", "auth",
                                       "tenant", "events", NULL};
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
    {"rt.events", luaopen_rt_events},
    {NULL, NULL},
};

struct state_opts {
    int json_max_depth;
    const char *root; /* scripts root for require; NULL: rt modules only */
    int prelude_ref;  /* out */
};

struct vm;
static void push_current_record(lua_State *L);
static void push_file(lua_State *L, struct vm *vm, int rec, int fi);
static void push_entry(lua_State *L, const struct vm_route *r);

static struct vm *vm_of(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "rt.vm");
    struct vm *vm = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return vm;
}

/* rt.routes(): the routes the request's tenant sees, in order:
 * { method, pattern, scope, permission, summary, description, body, tags,
 * offload, file } each. Runs every route file in the caller's environment. */
static int l_routes(lua_State *L)
{
    struct vm *vm = vm_of(L);

    if (!vm || !vm->view)
        return luaL_error(L, "rt.routes: not available here");
    push_current_record(L);
    int rec = lua_gettop(L);
    const struct vm_view *v = vm->view;
    lua_createtable(L, (int)v->nroutes, 0);
    for (size_t i = 0; i < v->nroutes; i++) {
        const struct vm_route *r = &v->routes[i];
        lua_createtable(L, 0, 10);
        push_file(L, vm, rec, r->file_index);
        push_entry(L, r);
        static const char *const copied[] = {"summary", "description", "body", "tags",
                                             NULL};
        for (int k = 0; copied[k]; k++) {
            lua_getfield(L, -1, copied[k]);
            lua_setfield(L, -4, copied[k]);
        }
        lua_pop(L, 2);
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
        if (r->lane == LANE_ADMIN)
            lua_pushliteral(L, "admin");
        else
            lua_pushboolean(L, r->lane == LANE_OFFLOAD);
        lua_setfield(L, -2, "offload");
        lua_pushstring(L, r->file);
        lua_setfield(L, -2, "file");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* rt.scripts_status(): the admin view of the script set and its reloads:
 * { generation, loaded_at, files, routes, overrides = {codes},
 *   failures, last_error = {message, at} | nil,
 *   environments = {alive, limit} (this worker's) }. */
static int l_scripts_status(lua_State *L)
{
    struct vm *vm = vm_of(L);
    long generation = 0, failures = 0;
    long long loaded_at = 0, failed_at = 0;
    char error[sizeof vm->board->error] = "";

    /* Other tenants' override codes and load errors are the platform's. */
    if (rt_auth_confined(L))
        return luaL_error(L, "rt.scripts_status: not available to a tenant's override "
                             "scripts");
    if (!vm || !vm->scripts)
        return luaL_error(L, "rt.scripts_status: not available here");
    if (vm->board) {
        pthread_mutex_lock(&vm->board->mu);
        generation = vm->board->generation;
        loaded_at = vm->board->loaded_at;
        failures = vm->board->failures;
        failed_at = vm->board->failed_at;
        snprintf(error, sizeof error, "%s", vm->board->error);
        pthread_mutex_unlock(&vm->board->mu);
    }
    const struct vm_scripts *s = vm->scripts;
    lua_createtable(L, 0, 8);
    lua_pushinteger(L, generation);
    lua_setfield(L, -2, "generation");
    lua_pushinteger(L, loaded_at);
    lua_setfield(L, -2, "loaded_at");
    lua_pushinteger(L, (lua_Integer)s->nfiles);
    lua_setfield(L, -2, "files");
    lua_pushinteger(L, (lua_Integer)s->views[0].nroutes);
    lua_setfield(L, -2, "routes");
    lua_createtable(L, (int)s->nviews - 1, 0);
    for (size_t i = 1; i < s->nviews; i++) {
        lua_pushstring(L, s->views[i].code);
        lua_rawseti(L, -2, (lua_Integer)i);
    }
    luaL_setmetatable(L, RT_JSON_ARRAY_MT); /* [] when there are none */
    lua_setfield(L, -2, "overrides");
    lua_pushinteger(L, failures);
    lua_setfield(L, -2, "failures");
    if (*error) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, error);
        lua_setfield(L, -2, "message");
        lua_pushinteger(L, failed_at);
        lua_setfield(L, -2, "at");
        lua_setfield(L, -2, "last_error");
    }
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)vm->nslots);
    lua_setfield(L, -2, "alive");
    lua_pushinteger(L, s->max_envs);
    lua_setfield(L, -2, "limit");
    lua_setfield(L, -2, "environments");
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
    lua_pushcfunction(L, l_scripts_status);
    lua_setfield(L, -2, "scripts_status");
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

/* Whether file fi is part of view v: a common file not shadowed by one of
 * v's tenant, or one of v's own. */
static bool view_has(const struct vm_scripts *s, const struct vm_view *v, int fi)
{
    const struct script_file *f = &s->files[fi];

    if (f->code)
        return v->code && strcmp(f->code, v->code) == 0;
    if (!v->code)
        return true;
    for (size_t i = 0; i < s->nfiles; i++) {
        const struct script_file *o = &s->files[i];
        if (o->code && o->kind == f->kind && strcmp(o->code, v->code) == 0 &&
            strcmp(o->rel, f->rel) == 0)
            return false;
    }
    return true;
}

/* Fills out (room for s->nfiles) with the indexes of view v's files of one
 * kind, ordered by relative path: an override takes the place of the file
 * it shadows. Returns how many. */
static size_t view_files(const struct vm_scripts *s, const struct vm_view *v,
                         enum file_kind kind, int *out)
{
    size_t n = 0;

    for (size_t i = 0; i < s->nfiles; i++) {
        if (s->files[i].kind != kind || !view_has(s, v, (int)i))
            continue;
        size_t j = n++;
        for (; j > 0 && strcmp(s->files[out[j - 1]].rel, s->files[i].rel) > 0; j--)
            out[j] = out[j - 1];
        out[j] = (int)i;
    }
    return n;
}

/* Registers, in view v, the routes of file fi listed on the stack top (from
 * collect). Stack unchanged. */
static int register_routes(lua_State *L, struct vm_view *v, const struct vm_scripts *s,
                           int fi, struct vm_error *err)
{
    const char *file = s->files[fi].path;
    lua_Integer n = luaL_len(L, -1);
    struct vm_route *routes =
        realloc(v->routes, (v->nroutes + (size_t)n + 1) * sizeof *routes);

    if (!routes) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return -1;
    }
    v->routes = routes;
    for (lua_Integer i = 1; i <= n; i++) {
        struct router_error rerr;
        struct vm_route *r = &v->routes[v->nroutes];
        memset(r, 0, sizeof *r);
        lua_rawgeti(L, -1, i);
        lua_getfield(L, -1, "method");
        lua_getfield(L, -2, "pattern");
        lua_getfield(L, -3, "scope");
        lua_getfield(L, -4, "permission");
        lua_getfield(L, -5, "readonly");
        r->read_only = lua_toboolean(L, -1);
        lua_getfield(L, -6, "offload"); /* validated by the prelude */
        r->lane = lua_type(L, -1) == LUA_TSTRING ? LANE_ADMIN
                  : lua_toboolean(L, -1)         ? LANE_OFFLOAD
                                                 : LANE_HTTP;
        lua_getfield(L, -7, "unknown_tenant");
        r->unknown_tenant = lua_toboolean(L, -1);
        lua_pop(L, 3);
        r->method = strdup(lua_tostring(L, -4));
        r->pattern = strdup(lua_tostring(L, -3));
        r->scope = strdup(lua_tostring(L, -2));
        r->permission = opt_strdup(lua_tostring(L, -1));
        r->file = strdup(file);
        r->file_index = fi;
        r->pos = (int)i;
        lua_pop(L, 5);
        v->nroutes++;
        if (!r->method || !r->pattern || !r->scope || !r->file) {
            snprintf(err->msg, sizeof err->msg, "out of memory");
            return -1;
        }
        if (router_add(v->router, r->method, r->pattern, (int)v->nroutes - 1, file, &rerr) <
            0) {
            if (v->code)
                snprintf(err->msg, sizeof err->msg, "%s (routes of tenant %s): %s", file,
                         v->code, rerr.msg);
            else
                snprintf(err->msg, sizeof err->msg, "%s: %s", file, rerr.msg);
            return -1;
        }
    }
    return 0;
}

/* Runs an events file and validates what it returns, as one limited run.
 * Stack: [] -> [name -> handlers] on success, [] on failure (err filled). */
static int file_events(lua_State *L, int prelude_ref, const struct script_file *f,
                       struct vm_error *err)
{
    limits_begin(L);
    int rc = load_run(L, f->path, f->source, f->len);
    if (rc == LUA_OK) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, prelude_ref);
        lua_getfield(L, -1, "events_collect");
        lua_remove(L, -2);
        lua_pushstring(L, f->path);
        lua_pushvalue(L, -3);
        rc = lua_pcall(L, 2, 1, 0);
        if (rc == LUA_OK)
            lua_remove(L, -2);
    }
    return end_load(L, rc, f->path, err);
}

/* Validates every file and registers the routes of every view. Runs under
 * run_protected. */
static int validate_files(lua_State *L)
{
    struct load_ctx *ctx = lua_touserdata(L, 1);
    struct vm_scripts *s = ctx->target;

    lua_settop(L, 0);
    lua_createtable(L, (int)s->nfiles, 0); /* 1: file index + 1 -> route list */
    for (size_t i = 0; i < s->nfiles; i++) {
        const struct script_file *f = &s->files[i];
        int rc = f->kind == FILE_API ? file_routes(L, ctx->prelude_ref, f, ctx->err)
                                     : file_events(L, ctx->prelude_ref, f, ctx->err);
        if (rc < 0) {
            lua_pushinteger(L, -1);
            return 1;
        }
        lua_rawseti(L, 1, (lua_Integer)i + 1);
    }
    int *order = lua_newuserdatauv(L, (s->nfiles + 1) * sizeof *order, 0);
    for (size_t v = 0; v < s->nviews; v++) {
        struct vm_view *view = &s->views[v];
        size_t n = view_files(s, view, FILE_API, order);
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, 1, (lua_Integer)order[i] + 1);
            if (register_routes(L, view, s, order[i], ctx->err) < 0) {
                lua_pushinteger(L, -1);
                return 1;
            }
            lua_pop(L, 1);
        }
    }
    lua_pushinteger(L, 0);
    return 1;
}

/* out = a/b. Returns -1 when that does not fit. */
static int join_path(char *out, size_t cap, const char *a, const char *b)
{
    int n = snprintf(out, cap, "%s/%s", a, b);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* Appends the *.lua files under <root>/api or <root>/events (sorted by
 * path) to s. A missing folder adds nothing. */
static int add_files(struct vm_scripts *s, const char *root, enum file_kind kind,
                     const char *code, struct vm_error *err)
{
    struct path_list paths = {NULL, 0, 0};
    char dir[4096];
    struct stat st;
    int rc = 0;

    if (join_path(dir, sizeof dir, root, kind == FILE_API ? "api" : "events") < 0 ||
        stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return 0;
    if (list_lua(dir, &paths, err) < 0) {
        path_list_free(&paths);
        return -1;
    }
    if (paths.n > 1)
        qsort(paths.v, paths.n, sizeof *paths.v, cmp_str);
    struct script_file *files =
        realloc(s->files, (s->nfiles + paths.n + 1) * sizeof *files);
    if (!files) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        path_list_free(&paths);
        return -1;
    }
    s->files = files;
    for (size_t i = 0; i < paths.n && rc == 0; i++) {
        struct script_file *f = &s->files[s->nfiles++];
        memset(f, 0, sizeof *f);
        f->kind = kind;
        rc = read_file(paths.v[i], f, err);
        if (rc == 0) {
            f->rel = strdup(paths.v[i] + strlen(dir) + 1);
            f->code = opt_strdup(code);
            if (!f->rel || (code && !f->code)) {
                snprintf(err->msg, sizeof err->msg, "out of memory");
                rc = -1;
            }
        }
    }
    path_list_free(&paths);
    return rc;
}

/* Adds the override folders under <dir>/tenants: one view per tenant code,
 * its files appended to s. */
static int add_overrides(struct vm_scripts *s, struct vm_error *err)
{
    struct path_list codes = {NULL, 0, 0};
    char root[4096];
    struct dirent *e;
    struct stat st;
    int rc = 0;

    DIR *d = join_path(root, sizeof root, s->dir, "tenants") == 0 ? opendir(root) : NULL;
    if (!d)
        return 0; /* no overrides */
    while (rc == 0 && (e = readdir(d)) != NULL) {
        char sub[4096];
        if (e->d_name[0] == '.')
            continue;
        if (join_path(sub, sizeof sub, root, e->d_name) < 0 || stat(sub, &st) != 0 ||
            !S_ISDIR(st.st_mode))
            continue;
        if (!tenant_code_valid(e->d_name)) {
            snprintf(err->msg, sizeof err->msg,
                     "%.1900s: not a tenant code (override folders are named by tenant "
                     "code: ^[a-z][a-z0-9_]{1,39}$)",
                     sub);
            rc = -1;
        } else {
            char *c = strdup(e->d_name);
            if (!c || path_push(&codes, c) < 0) {
                snprintf(err->msg, sizeof err->msg, "out of memory");
                rc = -1;
            }
        }
    }
    closedir(d);
    if (codes.n > 1)
        qsort(codes.v, codes.n, sizeof *codes.v, cmp_str);
    struct vm_view *views =
        rc == 0 ? realloc(s->views, (1 + codes.n) * sizeof *views) : NULL;
    if (rc == 0 && !views) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        rc = -1;
    }
    if (views)
        s->views = views;
    for (size_t i = 0; rc == 0 && i < codes.n; i++) {
        char sub[4096];
        struct vm_view *v = &s->views[s->nviews++];
        memset(v, 0, sizeof *v);
        v->code = codes.v[i];
        codes.v[i] = NULL; /* the view owns it now */
        if (join_path(sub, sizeof sub, root, v->code) < 0 || !(v->router = router_new())) {
            snprintf(err->msg, sizeof err->msg, "out of memory");
            rc = -1;
        } else if (add_files(s, sub, FILE_API, v->code, err) < 0 ||
                   add_files(s, sub, FILE_EVENTS, v->code, err) < 0) {
            rc = -1;
        }
    }
    path_list_free(&codes);
    return rc;
}

/* Lists each view's event files. */
static int index_events(struct vm_scripts *s, struct vm_error *err)
{
    for (size_t v = 0; v < s->nviews; v++) {
        struct vm_view *view = &s->views[v];
        if (!(view->events = calloc(s->nfiles + 1, sizeof *view->events))) {
            snprintf(err->msg, sizeof err->msg, "out of memory");
            return -1;
        }
        view->nevents = view_files(s, view, FILE_EVENTS, view->events);
    }
    return 0;
}

struct vm_scripts *vm_scripts_load(const char *scripts_dir, const struct config *cfg,
                                   struct vm_error *err)
{
    struct vm_scripts *s = calloc(1, sizeof *s);
    struct stat st;
    struct limits lim;
    lua_State *L = NULL;

    if (!s || !(s->dir = strdup(scripts_dir)) ||
        !(s->views = calloc(1, sizeof *s->views)) || !(s->views[0].router = router_new())) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        goto fail;
    }
    atomic_init(&s->refs, 1);
    s->nviews = 1;
    s->json_max_depth = cfg->json_max_depth;
    s->max_envs = cfg->scripts_tenant_envs;
    s->cfg = cfg;
    s->limits.memory_cap = (size_t)cfg->scripts_memory_limit_mb << 20;
    s->limits.max_instructions = cfg->scripts_instruction_limit;
    s->limits.time_ms = cfg->scripts_time_limit_ms;
    if (stat(scripts_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err->msg, sizeof err->msg, "scripts directory '%s' not found",
                 scripts_dir);
        goto fail;
    }
    if (add_files(s, scripts_dir, FILE_API, NULL, err) < 0 ||
        add_files(s, scripts_dir, FILE_EVENTS, NULL, err) < 0 ||
        add_overrides(s, err) < 0 || index_events(s, err) < 0)
        goto fail;
    /* Validated in a scratch state with the workers' limits. */
    lim = s->limits;
    struct state_opts o = {s->json_max_depth, s->dir, LUA_NOREF};
    if (!(L = state_new(&o, &lim, err)))
        goto fail;
    struct load_ctx ctx = {s, o.prelude_ref, err};
    if (run_protected(L, validate_files, &ctx) < 0)
        goto fail;
    lua_close(L);
    return s;
fail:
    if (L)
        lua_close(L);
    vm_scripts_release(s);
    return NULL;
}

void vm_scripts_retain(struct vm_scripts *s)
{
    atomic_fetch_add(&s->refs, 1);
}

void vm_scripts_release(struct vm_scripts *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (size_t i = 0; i < s->nfiles; i++) {
        free(s->files[i].path);
        free(s->files[i].rel);
        free(s->files[i].code);
        free(s->files[i].source);
    }
    free(s->files);
    free(s->dir);
    for (size_t v = 0; v < s->nviews; v++) {
        struct vm_view *view = &s->views[v];
        for (size_t i = 0; i < view->nroutes; i++) {
            struct vm_route *r = &view->routes[i];
            free(r->method);
            free(r->pattern);
            free(r->scope);
            free(r->permission);
            free(r->file);
        }
        free(view->routes);
        free(view->events);
        free(view->code);
        router_free(view->router);
    }
    free(s->views);
    free(s);
}

size_t vm_scripts_file_count(const struct vm_scripts *s)
{
    return s->nfiles;
}

static int cmp_view(const void *key, const void *elem)
{
    return strcmp(key, ((const struct vm_view *)elem)->code);
}

const struct vm_view *vm_scripts_view(const struct vm_scripts *s, const char *code)
{
    const struct vm_view *v = NULL;

    if (code && s->nviews > 1)
        v = bsearch(code, s->views + 1, s->nviews - 1, sizeof *s->views, cmp_view);
    return v ? v : &s->views[0];
}

const struct vm_view *vm_scripts_view_at(const struct vm_scripts *s, size_t i)
{
    return i < s->nviews ? &s->views[i] : NULL;
}

const char *vm_view_code(const struct vm_view *v)
{
    return v->code;
}

const struct router *vm_view_router(const struct vm_view *v)
{
    return v->router;
}

const struct vm_route *vm_view_route(const struct vm_view *v, int id)
{
    return id >= 0 && (size_t)id < v->nroutes ? &v->routes[id] : NULL;
}

size_t vm_view_route_count(const struct vm_view *v)
{
    return v->nroutes;
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

/* What a route file is compiled behind, so one compiled chunk can run in any
 * environment (its functions capture the _ENV local of their run). Same
 * line, so line numbers stay the file's. */
static const char ENV_PREFIX[] = "local _ENV = ...; ";

/* Pushes the record of the environment of the request running. Raises
 * outside a request. Stack: [] -> [record]. */
static void push_current_record(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, "rt.env.record") != LUA_TTABLE)
        luaL_error(L, "not available outside a request");
}

/* Pushes file fi compiled as a function of its environment, compiling it on
 * first use in this state. Stack: [] -> [function]. */
static void push_chunk(lua_State *L, struct vm *vm, int fi)
{
    const struct script_file *f = &vm->scripts->files[fi];

    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->chunks_ref);
    if (lua_rawgeti(L, -1, fi + 1) == LUA_TFUNCTION) {
        lua_remove(L, -2);
        return;
    }
    lua_pop(L, 1);
    const char *name = lua_pushfstring(L, "@%s", f->path);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, ENV_PREFIX, sizeof ENV_PREFIX - 1);
    luaL_addlstring(&b, f->source, f->len);
    luaL_pushresult(&b);
    size_t n;
    const char *src = lua_tolstring(L, -1, &n);
    if (luaL_loadbufferx(L, src, n, name, "t") != LUA_OK)
        lua_error(L);
    lua_replace(L, -3); /* over the name */
    lua_pop(L, 1);      /* the source */
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, fi + 1);
    lua_remove(L, -2);
}

/* Pushes file fi as run in the environment of the record at rec: its route
 * list (api files) or its name -> handlers table (events files), running it
 * there on first use. Raises what the file raises. Stack: [] -> [table]. */
static void push_file(lua_State *L, struct vm *vm, int rec, int fi)
{
    const struct script_file *f = &vm->scripts->files[fi];

    rec = lua_absindex(L, rec);
    lua_getfield(L, rec, "files");
    if (lua_rawgeti(L, -1, fi + 1) != LUA_TNIL) {
        lua_remove(L, -2);
        return;
    }
    lua_pop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->prelude_ref);
    lua_getfield(L, -1, f->kind == FILE_API ? "collect" : "events_collect");
    lua_remove(L, -2);
    lua_pushstring(L, f->path);
    push_chunk(L, vm, fi);
    lua_getfield(L, rec, "env");
    lua_call(L, 1, 1);
    lua_call(L, 2, 1);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, fi + 1);
    lua_remove(L, -2);
}

/* Pushes route r's entry from its file's route list on the stack top;
 * raises when the file returned another table in this environment than the
 * one validated at load. Stack: [list] -> [list, entry]. */
static void push_entry(lua_State *L, const struct vm_route *r)
{
    if (lua_rawgeti(L, -1, r->pos) == LUA_TTABLE) {
        lua_getfield(L, -1, "method");
        lua_getfield(L, -2, "pattern");
        bool same = lua_isstring(L, -2) && lua_isstring(L, -1) &&
                    strcmp(r->method, lua_tostring(L, -2)) == 0 &&
                    strcmp(r->pattern, lua_tostring(L, -1)) == 0;
        lua_pop(L, 2);
        if (same)
            return;
    }
    luaL_error(L,
               "%s: the route table differs from the one validated at load (module code "
               "must not depend on when or where it runs)",
               r->file);
}

/* Pushes the record of environment `key` (a tenant id; 0: no tenant),
 * making it on first use: {env = globals, files = file index + 1 -> table,
 * events = name -> handlers}. Past scripts.tenant_envs environments the
 * least recently used one is dropped (the collector frees it).
 * Stack: [] -> [record]. */
static void push_record(lua_State *L, struct vm *vm, long long key)
{
    size_t cap = vm->scripts->max_envs > 0 ? (size_t)vm->scripts->max_envs : 1, i = 0;

    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->envs_ref);
    while (i < vm->nslots && vm->slots[i].key != key)
        i++;
    if (i == vm->nslots) {
        if (vm->nslots < cap) {
            vm->nslots++;
        } else {
            i = 0;
            for (size_t j = 1; j < vm->nslots; j++)
                if (vm->slots[j].used < vm->slots[i].used)
                    i = j;
            lua_pushnil(L);
            lua_rawseti(L, -2, (lua_Integer)vm->slots[i].key);
        }
        vm->slots[i].key = key;
    }
    vm->slots[i].used = ++vm->tick;
    if (lua_rawgeti(L, -1, (lua_Integer)key) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 3);
        sandbox_new_env(L);
        lua_setfield(L, -2, "env");
        lua_newtable(L);
        lua_setfield(L, -2, "files");
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, (lua_Integer)key);
    }
    lua_remove(L, -2);
}

/* The "rt.events.handlers" function rt.events.emit calls: name -> the list
 * of handlers for it in the current environment, from the event files of
 * the request's view (run there on first use, merged in file order). */
static int l_event_handlers(lua_State *L)
{
    struct vm *vm = vm_of(L);

    luaL_checkstring(L, 1);
    lua_settop(L, 1);
    push_current_record(L); /* 2 */
    if (lua_getfield(L, 2, "events") != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L); /* 3: name -> handlers */
        for (size_t i = 0; i < vm->view->nevents; i++) {
            push_file(L, vm, 2, vm->view->events[i]);
            lua_pushnil(L);
            while (lua_next(L, -2)) { /* name, list */
                lua_pushvalue(L, -2);
                if (lua_rawget(L, 3) != LUA_TTABLE) {
                    lua_pop(L, 1);
                    lua_newtable(L);
                    lua_pushvalue(L, -3);
                    lua_pushvalue(L, -2);
                    lua_rawset(L, 3);
                }
                lua_Integer n = (lua_Integer)lua_rawlen(L, -2),
                            at = (lua_Integer)lua_rawlen(L, -1);
                for (lua_Integer j = 1; j <= n; j++) {
                    lua_rawgeti(L, -2, j);
                    lua_rawseti(L, -2, ++at);
                }
                lua_pop(L, 2);
            }
            lua_pop(L, 1);
        }
        lua_pushvalue(L, 3);
        lua_setfield(L, 2, "events");
    }
    lua_pushvalue(L, 1);
    if (lua_rawget(L, 3) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
    }
    return 1;
}

/* Sets up a new worker state's registry. Runs under run_protected. */
static int setup_worker(lua_State *L)
{
    struct load_ctx *ctx = lua_touserdata(L, 1);
    struct vm *vm = ctx->target;

    lua_settop(L, 0);
    lua_pushlightuserdata(L, (void *)vm->scripts->cfg);
    lua_setfield(L, LUA_REGISTRYINDEX, "rt.config");
    /* Until the state builder takes its modules from http.c: rt.tenant's
     * engine, handed down (an include of the engines layer, to go). */
    rt_tenant_set_engine(L, &tenant_engine);
    lua_pushlightuserdata(L, vm);
    lua_setfield(L, LUA_REGISTRYINDEX, "rt.vm");
    lua_newtable(L);
    vm->chunks_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    vm->envs_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushcfunction(L, l_event_handlers);
    lua_setfield(L, LUA_REGISTRYINDEX, "rt.events.handlers");
    lua_pushinteger(L, 0);
    return 1;
}

/* Builds vm->L for vm->scripts: sandbox, prelude, no environment yet.
 * Returns 0, or -1 with err filled and vm->L NULL. */
static int vm_build(struct vm *vm, struct vm_error *err)
{
    const struct vm_scripts *s = vm->scripts;
    struct state_opts o = {s->json_max_depth, s->dir, LUA_NOREF};

    vm->limits = s->limits;
    vm->nslots = 0;
    if (!(vm->L = state_new(&o, &vm->limits, err)))
        return -1;
    vm->prelude_ref = o.prelude_ref;
    struct load_ctx ctx = {vm, o.prelude_ref, err};
    if (run_protected(vm->L, setup_worker, &ctx) < 0) {
        lua_close(vm->L);
        vm->L = NULL;
        return -1;
    }
    return 0;
}

struct vm *vm_new(struct vm_scripts *s, struct vm_board *board, struct vm_error *err)
{
    struct vm *vm = calloc(1, sizeof *vm);
    size_t cap = s->max_envs > 0 ? (size_t)s->max_envs : 1;

    if (!vm || !(vm->slots = calloc(cap, sizeof *vm->slots))) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        free(vm);
        return NULL;
    }
    vm_scripts_retain(s);
    vm->scripts = s;
    vm->board = board;
    if (vm_build(vm, err) < 0) {
        vm_free(vm);
        return NULL;
    }
    return vm;
}

const struct vm_scripts *vm_scripts_of(const struct vm *vm)
{
    return vm->scripts;
}

void vm_free(struct vm *vm)
{
    if (!vm)
        return;
    if (vm->L)
        lua_close(vm->L);
    vm_scripts_release(vm->scripts);
    free(vm->slots);
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
    /* A tenant with overrides has its own view, and only its requests run
     * in its environment: all code there is held to what that tenant may
     * do (rt_auth_bind). */
    rt_auth_bind(L, req->auth, req->claims, req->tenant ? req->tenant->id : 0, req->lane,
                 vm_view_code(req->view) != NULL);
    lua_settop(L, 0);
    /* The tenant's environment: its record is what rt.routes and
     * rt.events find, its globals are what require loads modules into. */
    push_record(L, vm, req->tenant ? req->tenant->id : 0);
    lua_pushvalue(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "rt.env.record");
    lua_getfield(L, 1, "env");
    sandbox_use_env(L, -1);
    lua_pop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->prelude_ref);
    lua_getfield(L, -1, "dispatch");
    lua_remove(L, -2);
    const struct vm_route *route = vm_view_route(vm->view, m->route_id);
    push_file(L, vm, 1, route->file_index);
    push_entry(L, route);
    lua_getfield(L, -1, "handler");
    lua_replace(L, 3);
    lua_settop(L, 3);
    lua_remove(L, 1); /* the results are what is left: dispatch, handler, req */

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
    if (req->tenant_unknown) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "tenant_unknown");
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
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, "rt.env.tenant"); /* for rt.events */
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

    if (strcmp(c->scope, "core") == 0) {
        int rc = auth_core_perms(req->auth, c->sub, out, why, whylen);
        if (rc < 0)
            ctx->failure = auth_db_failure(); /* 503/504 when the database is why */
        return rc;
    }
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
    const struct vm_route *route = vm_view_route(req->view, req->match->route_id);
    struct rt_db_ctx ctx = {req->pool, NULL, {NULL, 0, route->read_only, 0}, DB_OK, 0};
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
        ctx.tx.tenant_id = req->tenant->id;
    }
    lua_State *L = vm->L;
    struct db_error dberr;
    const char *kind = "error";
    int status;

    vm->view = req->view;

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
    rt_auth_settle(L, ok && !tx_failed && rc == 0, req->id);

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
    rt_auth_bind(L, NULL, NULL, 0, LANE_HTTP, false);
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "rt.request_id");
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "rt.env.record");
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "rt.env.tenant");
    sandbox_use_env(L, 0);
    vm->view = NULL;
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

int vm_step_name_parse(const char *base, int *version, char **name)
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
        if (vm_step_name_parse(e->d_name, &st->version, &st->name) < 0) {
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
        struct script_file f = {0};
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
            if (crypto_sha256_hex(st->source, st->len, st->checksum) < 0)
                err_add(err, &nerr, "%s: cannot compute its checksum (out of memory)",
                        st->path);
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
