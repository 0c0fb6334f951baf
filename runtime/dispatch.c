/* dispatch: worker states and request dispatch (see dispatch.h). */
#include "dispatch.h"

#include "authz.h"
#include "errors.h"
#include "log.h"
#include "lua/keys.h"
#include "lua/limits.h"
#include "lua/rt_auth.h"
#include "lua/rt_db.h"
#include "lua/rt_json.h"
#include "lua/sandbox.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

/* One environment in a worker's LRU list. */
struct env_slot {
    long long key; /* tenant id; 0: requests without a tenant */
    unsigned long long used;
};

struct vm_worker {
    lua_State *L;               /* NULL after a failed rebuild */
    struct vm_scripts *scripts; /* retained */
    struct vm_board *board;     /* borrowed; NULL: no reload status */
    struct limits limits;       /* L's allocator and hook state */
    int prelude_ref;            /* {dispatch=, collect=, step_check=, ...} */
    int chunks_ref;             /* file index + 1 -> function(env) running the file */
    int envs_ref;               /* env key -> {env=, files=, events=} */
    struct env_slot *slots;     /* the environments alive in L */
    size_t nslots;
    unsigned long long tick;
    const struct vm_view *view; /* of the request running */
};

static void push_current_record(lua_State *L);
static void push_file(lua_State *L, struct vm_worker *vm, int rec, int fi);
static void push_entry(lua_State *L, const struct vm_route *r);

static struct vm_worker *vm_of(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, RT_KEY_VM);
    struct vm_worker *vm = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return vm;
}

/* rt.routes(): the routes the request's tenant sees, in order:
 * { method, pattern, scope, permission, summary, description, body, tags,
 * offload, file } each. Runs every route file in the caller's environment. */
static int l_routes(lua_State *L)
{
    struct vm_worker *vm = vm_of(L);

    if (!vm || !vm->view)
        return luaL_error(L, "rt.routes: not available here");
    push_current_record(L);
    int rec = lua_gettop(L);
    const struct vm_view *v = vm->view;
    size_t n = vm_view_route_count(v);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        const struct vm_route *r = vm_view_route(v, (int)i);
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
    struct vm_worker *vm = vm_of(L);
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
    lua_pushinteger(L, (lua_Integer)vm_scripts_file_count(s));
    lua_setfield(L, -2, "files");
    lua_pushinteger(L, (lua_Integer)vm_view_route_count(vm_scripts_view_at(s, 0)));
    lua_setfield(L, -2, "routes");
    lua_createtable(L, 0, 0);
    for (size_t i = 1; vm_scripts_view_at(s, i); i++) {
        lua_pushstring(L, vm_view_code(vm_scripts_view_at(s, i)));
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
    lua_pushinteger(L, vm_scripts_max_envs(s));
    lua_setfield(L, -2, "limit");
    lua_setfield(L, -2, "environments");
    return 1;
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
    if (lua_getfield(L, LUA_REGISTRYINDEX, RT_KEY_ENV_RECORD) != LUA_TTABLE)
        luaL_error(L, "not available outside a request");
}

/* Pushes file fi compiled as a function of its environment, compiling it on
 * first use in this state. Stack: [] -> [function]. */
static void push_chunk(lua_State *L, struct vm_worker *vm, int fi)
{
    const struct vm_script_file *f = vm_scripts_file(vm->scripts, (size_t)fi);

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
static void push_file(lua_State *L, struct vm_worker *vm, int rec, int fi)
{
    const struct vm_script_file *f = vm_scripts_file(vm->scripts, (size_t)fi);

    rec = lua_absindex(L, rec);
    lua_getfield(L, rec, "files");
    if (lua_rawgeti(L, -1, fi + 1) != LUA_TNIL) {
        lua_remove(L, -2);
        return;
    }
    lua_pop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->prelude_ref);
    lua_getfield(L, -1, f->kind == VM_FILE_API ? "collect" : "events_collect");
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
static void push_record(lua_State *L, struct vm_worker *vm, long long key)
{
    int max_envs = vm_scripts_max_envs(vm->scripts);
    size_t cap = max_envs > 0 ? (size_t)max_envs : 1, i = 0;

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

/* The RT_KEY_EVENTS_HANDLERS function rt.events.emit calls: name -> the list
 * of handlers for it in the current environment, from the event files of
 * the request's view (run there on first use, merged in file order). */
static int l_event_handlers(lua_State *L)
{
    struct vm_worker *vm = vm_of(L);

    luaL_checkstring(L, 1);
    lua_settop(L, 1);
    push_current_record(L); /* 2 */
    if (lua_getfield(L, 2, "events") != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L); /* 3: name -> handlers */
        size_t nevents;
        const int *events = vm_view_events(vm->view, &nevents);
        for (size_t i = 0; i < nevents; i++) {
            push_file(L, vm, 2, events[i]);
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

/* Sets up a new worker state's registry and adds rt.routes and
 * rt.scripts_status to the rt table. Runs under luastate_protected. */
static int setup_worker(lua_State *L)
{
    struct vm_worker *vm = lua_touserdata(L, 1);

    lua_settop(L, 0);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "rt"); /* the table behind the scripts' read-only view */
    lua_pushcfunction(L, l_routes);
    lua_setfield(L, -2, "routes");
    lua_pushcfunction(L, l_scripts_status);
    lua_setfield(L, -2, "scripts_status");
    lua_settop(L, 0);
    lua_pushlightuserdata(L, (void *)vm_scripts_config(vm->scripts));
    lua_setfield(L, LUA_REGISTRYINDEX, RT_KEY_CONFIG);
    lua_pushlightuserdata(L, vm);
    lua_setfield(L, LUA_REGISTRYINDEX, RT_KEY_VM);
    lua_newtable(L);
    vm->chunks_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    vm->envs_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushcfunction(L, l_event_handlers);
    lua_setfield(L, LUA_REGISTRYINDEX, RT_KEY_EVENTS_HANDLERS);
    lua_pushinteger(L, 0);
    return 1;
}

/* Builds vm->L for vm->scripts: sandbox, prelude, no environment yet.
 * Returns 0, or -1 with err filled and vm->L NULL. */
static int vm_build(struct vm_worker *vm, struct rt_err *err)
{
    const struct vm_scripts *s = vm->scripts;

    vm->limits = *vm_scripts_limits(s);
    vm->nslots = 0;
    if (!(vm->L =
              luastate_new(vm_scripts_state_opts(s), &vm->limits, &vm->prelude_ref, err)))
        return -1;
    if (luastate_protected(vm->L, setup_worker, vm, err) < 0) {
        lua_close(vm->L);
        vm->L = NULL;
        return -1;
    }
    return 0;
}

struct vm_worker *vm_worker_new(struct vm_scripts *s, struct vm_board *board,
                                struct rt_err *err)
{
    struct vm_worker *vm = calloc(1, sizeof *vm);
    int max_envs = vm_scripts_max_envs(s);
    size_t cap = max_envs > 0 ? (size_t)max_envs : 1;

    if (!vm || !(vm->slots = calloc(cap, sizeof *vm->slots))) {
        rt_err_set(err, "out of memory");
        free(vm);
        return NULL;
    }
    vm_scripts_retain(s);
    vm->scripts = s;
    vm->board = board;
    if (vm_build(vm, err) < 0) {
        vm_worker_free(vm);
        return NULL;
    }
    return vm;
}

const struct vm_scripts *vm_worker_scripts(const struct vm_worker *vm)
{
    return vm->scripts;
}

void vm_worker_free(struct vm_worker *vm)
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
    struct vm_worker *vm = lua_touserdata(L, 1);
    const struct vm_request *req = lua_touserdata(L, 2);
    const struct router_match *m = req->match;
    char lower[256];

    rt_db_bind(L, lua_touserdata(L, 3));
    lua_pushstring(L, req->id);
    lua_setfield(L, LUA_REGISTRYINDEX, RT_KEY_REQUEST_ID);
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
    lua_setfield(L, LUA_REGISTRYINDEX, RT_KEY_ENV_RECORD);
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
        lua_getfield(L, LUA_REGISTRYINDEX, RT_KEY_JSON_DECODE);
        lua_pushstring(L, t->settings ? t->settings : "{}");
        lua_call(L, 1, 1);
        lua_setfield(L, -2, "settings");
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, RT_KEY_ENV_TENANT); /* for rt.events */
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

/* Enforces the route's permission before its handler runs (authz.h).
 * Returns 0 when the request may go on; otherwise resp holds the answer. */
static int authorize(const struct vm_request *req, const struct vm_route *route,
                     struct rt_db_ctx *ctx, struct vm_response *resp)
{
    char why[512] = "", msg[160];

    if (!route->permission)
        return 0;
    switch (authz_check(req->auth, req->claims, route->permission, ctx->pool, &ctx->conn,
                        &ctx->tx, &ctx->failure, why, sizeof why)) {
    case AUTHZ_ALLOW: return 0;
    case AUTHZ_NO_TOKEN:
        vm_response_error(resp, 401, NULL, "this route requires a bearer token", req->id);
        return -1;
    case AUTHZ_INVALID:
        vm_response_error(resp, 401, NULL, "invalid or expired token", req->id);
        return -1;
    case AUTHZ_FORBIDDEN:
        snprintf(msg, sizeof msg, "this route needs the permission %s", route->permission);
        vm_response_error(resp, 403, "forbidden", msg, req->id);
        return -1;
    case AUTHZ_FAILED: break;
    }
    log_msg(LOG_LEVEL_ERROR, req->id, "loading permissions: %s", why);
    vm_response_error(resp, failure_status(ctx), NULL, NULL, req->id);
    return -1;
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
static void vm_rebuild(struct vm_worker *vm, const char *request_id)
{
    struct rt_err err;

    lua_close(vm->L);
    vm->L = NULL;
    if (vm_build(vm, &err) < 0)
        log_msg(LOG_LEVEL_ERROR, request_id, "cannot rebuild the worker's Lua state: %s",
                err.msg);
    else
        log_msg(LOG_LEVEL_WARN, request_id, "the worker's Lua state was rebuilt");
}

void vm_handle(struct vm_worker *vm, const struct vm_request *req, struct vm_response *resp)
{
    const struct vm_route *route = vm_view_route(req->view, req->match->route_id);
    struct rt_db_ctx ctx = {req->pool, NULL, {NULL, 0, route->read_only, 0}, DB_OK, 0};
    struct tenant_scope scope;

    memset(resp, 0, sizeof *resp);
    if (!vm->L) {
        struct rt_err err;
        if (vm_build(vm, &err) < 0) {
            log_msg(LOG_LEVEL_ERROR, req->id, "no Lua state for this worker: %s", err.msg);
            vm_response_error(resp, 500, NULL, NULL, req->id);
            return;
        }
    }
    if (req->tenant) {
        tenant_scope(req->tenant, &scope);
        ctx.tx.settings = scope.settings;
        ctx.tx.nsettings = scope.nsettings;
        ctx.tx.tenant_id = scope.tenant_id;
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
    lua_setfield(L, LUA_REGISTRYINDEX, RT_KEY_REQUEST_ID);
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, RT_KEY_ENV_RECORD);
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, RT_KEY_ENV_TENANT);
    sandbox_use_env(L, 0);
    vm->view = NULL;
    if (hit == LIMITS_MEMORY || status == LUA_ERRMEM)
        vm_rebuild(vm, req->id);
}
