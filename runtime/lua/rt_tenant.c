/* rt.tenant: the tenant lifecycle for platform endpoints (see rt_tenant.h).
 * A thin binding: it checks arguments, calls the engine it was handed, and
 * pushes the result. */
#include "lua/rt_tenant.h"

#include "lua/keys.h"
#include "lua/rt_auth.h"
#include "lua/sandbox.h"
#include "tenant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

/* The state's config and engine, after checking the caller may use fn. */
static const struct config *config_of(lua_State *L, const char *fn, bool slow,
                                      const struct rt_tenant_engine **eng)
{
    lua_getfield(L, LUA_REGISTRYINDEX, RT_KEY_CONFIG);
    const struct config *cfg = lua_touserdata(L, -1);
    lua_pop(L, 1);
    *eng = sandbox_module_ctx(L, "rt.tenant");
    if (!cfg || !*eng)
        luaL_error(L, "rt.tenant.%s: not available here", fn);
    /* The tenant lifecycle is the platform's: never a tenant's own code. */
    if (rt_auth_confined(L))
        luaL_error(L, "rt.tenant.%s: not available to a tenant's override scripts", fn);
    if (slow && rt_auth_lane(L) != LANE_ADMIN)
        luaL_error(L, "rt.tenant.%s: declare the route with offload = \"admin\"", fn);
    return cfg;
}

static const char *code_arg(lua_State *L, int i)
{
    const char *code = luaL_checkstring(L, i);
    if (!tenant_code_valid(code))
        luaL_argerror(L, i, "not a tenant code (^[a-z][a-z0-9_]{1,39}$)");
    return code;
}

/* nil, message, kind ("conflict", "not_found" or "failed") */
static int failed(lua_State *L, const struct rt_err *err)
{
    lua_pushnil(L);
    lua_pushstring(L, err->msg);
    lua_pushstring(L, rt_err_duplicate(err)                    ? "conflict"
                      : strncmp(err->msg, "no tenant", 9) == 0 ? "not_found"
                                                               : "failed");
    return 3;
}

static const char *opt_string(lua_State *L, int t, const char *name)
{
    lua_getfield(L, t, name);
    const char *v = lua_tostring(L, -1);
    lua_pop(L, 1); /* alive in the table */
    return v;
}

/* create{code=, name=, isolation=, server=, domain=, subdomain=, force=,
 *        owner={username=, email=, full_name=, password_hash=}} -> id */
static int l_create(lua_State *L)
{
    const struct rt_tenant_engine *eng;
    const struct config *cfg = config_of(L, "create", true, &eng);
    struct rt_tenant_create spec = {0};
    struct rt_tenant_owner owner = {0};
    struct rt_err err = {0};
    long long id = 0;

    luaL_checktype(L, 1, LUA_TTABLE);
    spec.tenant.code = opt_string(L, 1, "code");
    if (!spec.tenant.code || !tenant_code_valid(spec.tenant.code))
        return luaL_argerror(L, 1, "code must match ^[a-z][a-z0-9_]{1,39}$");
    spec.tenant.name = opt_string(L, 1, "name");
    spec.tenant.isolation = opt_string(L, 1, "isolation");
    if (!spec.tenant.isolation)
        spec.tenant.isolation = cfg->tenancy_default_isolation;
    spec.tenant.server = opt_string(L, 1, "server");
    spec.tenant.domain = opt_string(L, 1, "domain");
    spec.tenant.subdomain = opt_string(L, 1, "subdomain");
    lua_getfield(L, 1, "force");
    spec.force = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, 1, "owner") == LUA_TTABLE) {
        owner.email = opt_string(L, -1, "email");
        owner.username = opt_string(L, -1, "username");
        owner.full_name = opt_string(L, -1, "full_name");
        owner.password_hash = opt_string(L, -1, "password_hash");
        if (!owner.email || !owner.password_hash)
            return luaL_argerror(L, 1, "owner needs email and password_hash");
        if (!owner.username)
            owner.username = owner.email;
        if (!owner.full_name)
            owner.full_name = "";
        spec.owner = &owner;
    }
    if (eng->create(cfg, &spec, &id, &err) < 0)
        return failed(L, &err);
    lua_pushinteger(L, (lua_Integer)id);
    return 1;
}

/* set_status(code, "active" | "suspended" | "deleted") -> true */
static int l_set_status(lua_State *L)
{
    const struct rt_tenant_engine *eng;
    const struct config *cfg = config_of(L, "set_status", false, &eng);
    const char *code = code_arg(L, 1);
    static const char *const statuses[] = {"active", "suspended", "deleted", NULL};
    const char *status = statuses[luaL_checkoption(L, 2, NULL, statuses)];
    struct rt_err err = {0};

    if (eng->set_status(cfg, code, status, &err) < 0)
        return failed(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

/* purge(code) -> true: storage dropped, directory row deleted */
static int l_purge(lua_State *L)
{
    const struct rt_tenant_engine *eng;
    const struct config *cfg = config_of(L, "purge", true, &eng);
    const char *code = code_arg(L, 1);
    struct rt_err err = {0};

    if (eng->purge(cfg, code, &err) < 0)
        return failed(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

/* update(code, {name=, domain=, subdomain=, settings=<JSON text>}) -> true.
 * Fields left out are kept; rt.null clears domain or subdomain. */
static int l_update(lua_State *L)
{
    const struct rt_tenant_engine *eng;
    const struct config *cfg = config_of(L, "update", false, &eng);
    const char *code = code_arg(L, 1);
    static const char *const names[] = {"name", "domain", "subdomain", "settings"};
    struct rt_tenant_update u = {0};
    struct rt_err err = {0};

    luaL_checktype(L, 2, LUA_TTABLE);
    for (int i = 0; i < 4; i++) {
        int t = lua_getfield(L, 2, names[i]);
        if (t != LUA_TNIL && t != LUA_TSTRING && t != LUA_TLIGHTUSERDATA)
            return luaL_argerror(L, 2, "fields must be strings (or rt.null)");
        u.set[i] = t != LUA_TNIL;
        u.value[i] = t == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        lua_pop(L, 1); /* alive in the table */
    }
    if (eng->update(cfg, code, &u, &err) < 0)
        return failed(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- the migration report as a table ------------------------------------------
 * The shape is the JSON document of `runtime migrate --json` (report.c). */

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

/* Stack: t -> t (t.k = {v[0], ...}). */
static void set_ints(lua_State *L, const char *k, const int *v, int n)
{
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushinteger(L, v[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, k);
}

/* Stack: t -> t (t.k = {from + 1, ..., head}). */
static void set_range(lua_State *L, const char *k, int from, int head)
{
    lua_createtable(L, head > from ? head - from : 0, 0);
    for (int v = from + 1; v <= head; v++) {
        lua_pushinteger(L, v);
        lua_rawseti(L, -2, v - from);
    }
    lua_setfield(L, -2, k);
}

static void push_target(lua_State *L, const struct report_target *t)
{
    lua_createtable(L, 0, 8);
    lua_pushstring(L, t->key);
    lua_setfield(L, -2, "target");
    set_int(L, "from", t->from);
    set_int(L, "to", t->to);
    lua_pushstring(L, report_outcome_name(t->status));
    lua_setfield(L, -2, "status");
    lua_createtable(L, t->napplied, 0);
    for (int i = 0; i < t->napplied; i++) {
        lua_createtable(L, 0, 3);
        set_int(L, "version", t->applied[i].version);
        lua_pushstring(L, t->applied[i].name);
        lua_setfield(L, -2, "name");
        /* one decimal, as `runtime migrate --json` prints it */
        lua_pushnumber(L, floor(t->applied[i].ms * 10 + 0.5) / 10);
        lua_setfield(L, -2, "duration_ms");
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "applied");
    if (t->ndrift)
        set_ints(L, "drift", t->drift, t->ndrift);
    if (t->nsql) {
        lua_createtable(L, t->nsql, 0);
        for (int i = 0; i < t->nsql; i++) {
            lua_pushstring(L, t->sql[i].sql);
            lua_rawseti(L, -2, i + 1);
        }
        lua_setfield(L, -2, "statements");
    }
    if (t->skipped_non_tx) {
        lua_pushliteral(L, "skipped: a step with transaction = false cannot be dry-run");
        lua_setfield(L, -2, "note");
    }
    if (t->error[0]) {
        lua_pushstring(L, t->error);
        lua_setfield(L, -2, "error");
    }
}

/* Stack: t -> t (the fields of a run). */
static void push_run(lua_State *L, const struct migrate_report *rep)
{
    lua_pushboolean(L, rep->exit_status == 0);
    lua_setfield(L, -2, "ok");
    lua_pushboolean(L, rep->dry_run);
    lua_setfield(L, -2, "dry_run");
    set_int(L, "duration_ms", (lua_Integer)(rep->duration_ms + 0.5));
    lua_createtable(L, (int)rep->ntargets, 0);
    for (size_t i = 0; i < rep->ntargets; i++) {
        push_target(L, &rep->targets[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "targets");
    lua_createtable(L, 0, 5);
    set_int(L, "total", (lua_Integer)rep->total);
    set_int(L, "visited", (lua_Integer)rep->visited);
    set_int(L, "migrated", (lua_Integer)rep->migrated);
    set_int(L, "failed", (lua_Integer)rep->failed);
    set_int(L, "up_to_date", (lua_Integer)(rep->total - rep->migrated - rep->failed));
    lua_setfield(L, -2, "fleet");
    lua_newtable(L);
    lua_Integer n = 0;
    for (size_t i = 0; i < rep->ntargets; i++) {
        const struct report_target *t = &rep->targets[i];
        if (!report_target_bad(t))
            continue;
        lua_createtable(L, 0, 3);
        lua_pushstring(L, t->key);
        lua_setfield(L, -2, "target");
        set_int(L, "version", t->failed_version);
        lua_pushstring(L, t->error);
        lua_setfield(L, -2, "error");
        lua_rawseti(L, -2, ++n);
    }
    lua_setfield(L, -2, "failures");
}

/* Stack: t -> t (t.k = the ledger's fields). */
static void set_ledger(lua_State *L, const char *k, const struct report_ledger *l)
{
    lua_createtable(L, 0, 5);
    if (l->error[0]) {
        lua_pushstring(L, l->error);
        lua_setfield(L, -2, "error");
    } else {
        set_int(L, "version", l->version);
        set_int(L, "head", l->head);
        set_range(L, "pending", l->version, l->head);
        set_ints(L, "drift", l->drift, l->ndrift);
        lua_pushboolean(L, l->dirty);
        lua_setfield(L, -2, "dirty");
    }
    lua_setfield(L, -2, k);
}

/* Stack: t -> t (the fields of a status). */
static void push_status(lua_State *L, const struct migrate_report *rep)
{
    set_ledger(L, "core", &rep->core);
    set_ledger(L, "shared", &rep->shared);
    if (rep->fleet == REPORT_FLEET_NONE) {
        lua_pushlightuserdata(L, NULL); /* rt.null, as JSON's null decodes */
        lua_setfield(L, -2, "fleet");
    } else if (rep->fleet == REPORT_FLEET_READ) {
        lua_createtable(L, 0, 7);
        lua_createtable(L, 0, (int)rep->nby_version);
        for (size_t i = 0; i < rep->nby_version; i++) {
            lua_pushinteger(L, rep->by_version[i].n);
            lua_setfield(L, -2, rep->by_version[i].version);
        }
        lua_setfield(L, -2, "by_version");
        set_int(L, "total", rep->fleet_total);
        set_int(L, "head", rep->head);
        set_int(L, "pending", rep->fleet_pending);
        set_int(L, "failed", rep->fleet_failed);
        set_int(L, "dirty", rep->fleet_dirty);
        set_int(L, "drift", rep->fleet_drift);
        lua_setfield(L, -2, "fleet");
    }
    if (!rep->tenants_listed)
        return;
    lua_createtable(L, (int)rep->ntenants, 0);
    for (size_t i = 0; i < rep->ntenants; i++) {
        const struct report_tenant *t = &rep->tenants[i];
        lua_createtable(L, 0, 8);
        lua_pushstring(L, t->code);
        lua_setfield(L, -2, "code");
        set_int(L, "version", t->version);
        lua_pushstring(L, t->status);
        lua_setfield(L, -2, "status");
        if (t->error)
            lua_pushstring(L, t->error);
        else
            lua_pushlightuserdata(L, NULL); /* rt.null */
        lua_setfield(L, -2, "error");
        set_range(L, "pending", t->version, rep->head);
        if (t->has_ledger && t->ledger.error[0]) {
            lua_pushstring(L, t->ledger.error);
            lua_setfield(L, -2, "ledger_error");
        } else if (t->has_ledger) {
            set_int(L, "ledger_version", t->ledger.version);
            set_ints(L, "drift", t->ledger.drift, t->ledger.ndrift);
            lua_pushboolean(L, t->ledger.dirty);
            lua_setfield(L, -2, "dirty");
        }
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "tenants");
}

/* Pushes the report as a table; rep->errors as its `errors` field. */
static void push_report(lua_State *L, const struct migrate_report *rep)
{
    lua_newtable(L);
    if (rep->body && rep->kind == REPORT_RUN)
        push_run(L, rep);
    else if (rep->body && rep->kind == REPORT_STATUS)
        push_status(L, rep);
    if (rep->errors) {
        lua_pushstring(L, rep->errors);
        lua_setfield(L, -2, "errors");
    }
}

#define REPORT_MT "rt.tenant.report"

/* The report lives in a userdata whose __gc frees it, so a Lua error while
 * its table is built (out of memory) leaks nothing. */
static int report_gc(lua_State *L)
{
    report_free(luaL_checkudata(L, 1, REPORT_MT));
    return 0;
}

/* migrate{tenant=code | all=true, cmd="up"|"down"|"status", to=, steps=,
 *         dry_run=} -> report, or nil, message, report when the migration
 * failed (a target failed, drifted or is dirty, or the request could not
 * run). The report has the shape of `runtime migrate --json`, plus
 * `errors`: the request's failures, one line each. */
static int l_migrate(lua_State *L)
{
    const struct rt_tenant_engine *eng;
    const struct config *cfg = config_of(L, "migrate", true, &eng);
    struct rt_tenant_migrate args = {.cmd = "up", .steps = -1};
    struct rt_err err = {0};

    luaL_checktype(L, 1, LUA_TTABLE);
    const char *cmd = opt_string(L, 1, "cmd");
    if (cmd) {
        if (strcmp(cmd, "up") != 0 && strcmp(cmd, "down") != 0 &&
            strcmp(cmd, "status") != 0)
            return luaL_argerror(L, 1, "cmd must be up, down or status");
        args.cmd = cmd;
    }
    args.tenant = opt_string(L, 1, "tenant");
    if (args.tenant && !tenant_code_valid(args.tenant))
        return luaL_argerror(L, 1, "tenant must be a tenant code");
    lua_getfield(L, 1, "all");
    args.all = lua_toboolean(L, -1);
    lua_getfield(L, 1, "dry_run");
    args.dry_run = lua_toboolean(L, -1);
    lua_getfield(L, 1, "to");
    if (lua_isinteger(L, -1)) {
        args.to = (int)lua_tointeger(L, -1);
        args.to_set = true;
    }
    lua_getfield(L, 1, "steps");
    if (lua_isinteger(L, -1))
        args.steps = (int)lua_tointeger(L, -1);
    lua_pop(L, 4);
    if (!args.tenant && !args.all)
        return luaL_argerror(L, 1, "name a tenant or all = true");

    struct migrate_report *rep = lua_newuserdatauv(L, sizeof *rep, 0);
    memset(rep, 0, sizeof *rep);
    if (luaL_newmetatable(L, REPORT_MT)) {
        lua_pushcfunction(L, report_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    int rc = eng->migrate(cfg, &args, rep, &err); /* no Lua call inside */
    if (rc == 0) {
        push_report(L, rep);
        report_free(rep);
        return 1;
    }
    lua_pushnil(L);
    lua_pushstring(L, err.msg);
    push_report(L, rep);
    report_free(rep);
    lua_pushinteger(L, rc);
    return 4;
}

/* seed(code) -> {applied=, skipped=} */
static int l_seed(lua_State *L)
{
    const struct rt_tenant_engine *eng;
    const struct config *cfg = config_of(L, "seed", true, &eng);
    const char *code = code_arg(L, 1);
    struct rt_err err = {0};
    int applied = 0, skipped = 0;

    if (eng->seed(cfg, code, &applied, &skipped, &err) < 0)
        return failed(L, &err);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, applied);
    lua_setfield(L, -2, "applied");
    lua_pushinteger(L, skipped);
    lua_setfield(L, -2, "skipped");
    return 1;
}

int luaopen_rt_tenant(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"create", l_create}, {"set_status", l_set_status}, {"purge", l_purge},
        {"update", l_update}, {"migrate", l_migrate},       {"seed", l_seed},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    return 1;
}
