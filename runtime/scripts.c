/* scripts: the script set and its views (see scripts.h). */
#include "scripts.h"

#include "lua/limits.h"
#include "tenant.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <lua.h>

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
    struct vm_script_file *files;
    size_t nfiles;
    struct vm_view *views; /* [0]: the common view; then overrides by code */
    size_t nviews;
    int max_envs;              /* scripts.tenant_envs */
    struct limits limits;      /* the settings every worker state gets */
    struct luastate_opts opts; /* json depth, dir, the modules (borrowed) */
};

/* Loading and validating a set in its scratch state. */
struct load_ctx {
    struct vm_scripts *s;
    int prelude_ref;
    struct rt_err *err;
};

/* Runs a route file and validates what it returns, as one limited run (a
 * route table's __pairs is script code too).
 * Stack: [] -> [routes list] on success, [] on failure (err filled). */
static int file_routes(lua_State *L, int prelude_ref, const struct vm_script_file *f,
                       struct rt_err *err)
{
    limits_begin(L);
    int rc = luastate_load_run(L, f->path, f->source, f->len);
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
    return luastate_end_load(L, rc, f->path, err);
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
static int list_lua(const char *dir, struct path_list *out, struct rt_err *err)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int rc = 0;

    if (!d) {
        rt_err_set(err, "cannot open %s: %s", dir, strerror(errno));
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
                rt_err_set(err, "out of memory");
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
    const struct vm_script_file *f = &s->files[fi];

    if (f->code)
        return v->code && strcmp(f->code, v->code) == 0;
    if (!v->code)
        return true;
    for (size_t i = 0; i < s->nfiles; i++) {
        const struct vm_script_file *o = &s->files[i];
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
                         enum vm_file_kind kind, int *out)
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
                           int fi, struct rt_err *err)
{
    const char *file = s->files[fi].path;
    lua_Integer n = luaL_len(L, -1);
    struct vm_route *routes =
        realloc(v->routes, (v->nroutes + (size_t)n + 1) * sizeof *routes);

    if (!routes) {
        rt_err_set(err, "out of memory");
        return -1;
    }
    v->routes = routes;
    for (lua_Integer i = 1; i <= n; i++) {
        struct rt_err rerr;
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
            rt_err_set(err, "out of memory");
            return -1;
        }
        if (router_add(v->router, r->method, r->pattern, (int)v->nroutes - 1, file, &rerr) <
            0) {
            if (v->code)
                rt_err_set(err, "%s (routes of tenant %s): %s", file, v->code, rerr.msg);
            else
                rt_err_set(err, "%s: %s", file, rerr.msg);
            return -1;
        }
    }
    return 0;
}

/* Runs an events file and validates what it returns, as one limited run.
 * Stack: [] -> [name -> handlers] on success, [] on failure (err filled). */
static int file_events(lua_State *L, int prelude_ref, const struct vm_script_file *f,
                       struct rt_err *err)
{
    limits_begin(L);
    int rc = luastate_load_run(L, f->path, f->source, f->len);
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
    return luastate_end_load(L, rc, f->path, err);
}

/* Validates every file and registers the routes of every view. Runs under
 * luastate_protected. */
static int validate_files(lua_State *L)
{
    struct load_ctx *ctx = lua_touserdata(L, 1);
    struct vm_scripts *s = ctx->s;

    lua_settop(L, 0);
    lua_createtable(L, (int)s->nfiles, 0); /* 1: file index + 1 -> route list */
    for (size_t i = 0; i < s->nfiles; i++) {
        const struct vm_script_file *f = &s->files[i];
        int rc = f->kind == VM_FILE_API ? file_routes(L, ctx->prelude_ref, f, ctx->err)
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
        size_t n = view_files(s, view, VM_FILE_API, order);
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
static int add_files(struct vm_scripts *s, const char *root, enum vm_file_kind kind,
                     const char *code, struct rt_err *err)
{
    struct path_list paths = {NULL, 0, 0};
    char dir[4096];
    struct stat st;
    int rc = 0;

    if (join_path(dir, sizeof dir, root, kind == VM_FILE_API ? "api" : "events") < 0 ||
        stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return 0;
    if (list_lua(dir, &paths, err) < 0) {
        path_list_free(&paths);
        return -1;
    }
    if (paths.n > 1)
        qsort(paths.v, paths.n, sizeof *paths.v, cmp_str);
    struct vm_script_file *files =
        realloc(s->files, (s->nfiles + paths.n + 1) * sizeof *files);
    if (!files) {
        rt_err_set(err, "out of memory");
        path_list_free(&paths);
        return -1;
    }
    s->files = files;
    for (size_t i = 0; i < paths.n && rc == 0; i++) {
        struct vm_script_file *f = &s->files[s->nfiles++];
        memset(f, 0, sizeof *f);
        f->kind = kind;
        rc = luastate_read_file(paths.v[i], &f->source, &f->len, err);
        if (rc == 0) {
            f->path = strdup(paths.v[i]);
            f->rel = strdup(paths.v[i] + strlen(dir) + 1);
            f->code = opt_strdup(code);
            if (!f->path || !f->rel || (code && !f->code)) {
                rt_err_set(err, "out of memory");
                rc = -1;
            }
        }
    }
    path_list_free(&paths);
    return rc;
}

/* Adds the override folders under <dir>/tenants: one view per tenant code,
 * its files appended to s. */
static int add_overrides(struct vm_scripts *s, struct rt_err *err)
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
            rt_err_set(err,
                       "%.1900s: not a tenant code (override folders are named by tenant "
                       "code: ^[a-z][a-z0-9_]{1,39}$)",
                       sub);
            rc = -1;
        } else {
            char *c = strdup(e->d_name);
            if (!c || path_push(&codes, c) < 0) {
                rt_err_set(err, "out of memory");
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
        rt_err_set(err, "out of memory");
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
            rt_err_set(err, "out of memory");
            rc = -1;
        } else if (add_files(s, sub, VM_FILE_API, v->code, err) < 0 ||
                   add_files(s, sub, VM_FILE_EVENTS, v->code, err) < 0) {
            rc = -1;
        }
    }
    path_list_free(&codes);
    return rc;
}

/* Lists each view's event files. */
static int index_events(struct vm_scripts *s, struct rt_err *err)
{
    for (size_t v = 0; v < s->nviews; v++) {
        struct vm_view *view = &s->views[v];
        if (!(view->events = calloc(s->nfiles + 1, sizeof *view->events))) {
            rt_err_set(err, "out of memory");
            return -1;
        }
        view->nevents = view_files(s, view, VM_FILE_EVENTS, view->events);
    }
    return 0;
}

struct vm_scripts *vm_scripts_load(const char *scripts_dir, const struct config *cfg,
                                   const struct rt_module *const *modules,
                                   struct rt_err *err)
{
    struct vm_scripts *s = calloc(1, sizeof *s);
    struct stat st;
    struct limits lim;
    lua_State *L = NULL;

    if (!s || !(s->dir = strdup(scripts_dir)) ||
        !(s->views = calloc(1, sizeof *s->views)) || !(s->views[0].router = router_new())) {
        rt_err_set(err, "out of memory");
        goto fail;
    }
    atomic_init(&s->refs, 1);
    s->nviews = 1;
    s->opts = (struct luastate_opts){cfg->json_max_depth, s->dir, modules};
    s->max_envs = cfg->scripts_tenant_envs;
    s->cfg = cfg;
    s->limits.memory_cap = (size_t)cfg->scripts_memory_limit_mb << 20;
    s->limits.max_instructions = cfg->scripts_instruction_limit;
    s->limits.time_ms = cfg->scripts_time_limit_ms;
    if (stat(scripts_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        rt_err_set(err, "scripts directory '%s' not found", scripts_dir);
        goto fail;
    }
    if (add_files(s, scripts_dir, VM_FILE_API, NULL, err) < 0 ||
        add_files(s, scripts_dir, VM_FILE_EVENTS, NULL, err) < 0 ||
        add_overrides(s, err) < 0 || index_events(s, err) < 0)
        goto fail;
    /* Validated in a scratch state with the workers' limits. */
    lim = s->limits;
    int prelude_ref;
    if (!(L = luastate_new(&s->opts, &lim, &prelude_ref, err)))
        goto fail;
    struct load_ctx ctx = {s, prelude_ref, err};
    if (luastate_protected(L, validate_files, &ctx, err) < 0)
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

const int *vm_view_events(const struct vm_view *v, size_t *n)
{
    *n = v->nevents;
    return v->events;
}

const struct vm_script_file *vm_scripts_file(const struct vm_scripts *s, size_t i)
{
    return &s->files[i];
}

const struct luastate_opts *vm_scripts_state_opts(const struct vm_scripts *s)
{
    return &s->opts;
}

const struct limits *vm_scripts_limits(const struct vm_scripts *s)
{
    return &s->limits;
}

const struct config *vm_scripts_config(const struct vm_scripts *s)
{
    return s->cfg;
}

int vm_scripts_max_envs(const struct vm_scripts *s)
{
    return s->max_envs;
}

/* Whether path is dir/<sub>/... */
static bool path_under(const char *path, const char *dir, const char *sub)
{
    size_t n = strlen(dir), m = strlen(sub);
    return strncmp(path, dir, n) == 0 && path[n] == '/' &&
           strncmp(path + n + 1, sub, m) == 0 && path[n + 1 + m] == '/';
}

long vm_scripts_compile(const char *scripts_dir, void (*report)(void *ud, const char *msg),
                        void *ud, struct rt_err *err)
{
    struct path_list paths = {NULL, 0, 0};
    struct limits lim = {0};
    lua_State *L = NULL;
    long n = -1;

    if (list_lua(scripts_dir, &paths, err) < 0)
        goto done;
    if (!(L = limits_newstate(&lim))) {
        rt_err_set(err, "out of memory");
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
