/* rt.tenant: the tenant lifecycle for platform endpoints (see rt_tenant.h). */
#include "lua/rt_tenant.h"

#include "db.h"
#include "lua/rt_auth.h"
#include "migrate.h"
#include "provision.h"
#include "seed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

static const struct config *config_of(lua_State *L, const char *fn, bool slow)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "rt.config");
    const struct config *cfg = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!cfg)
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
    const struct config *cfg = config_of(L, "create", true);
    struct tenant_spec spec = {0};
    struct rt_err err = {{0}, {0}};
    struct provision_result res;

    luaL_checktype(L, 1, LUA_TTABLE);
    spec.code = opt_string(L, 1, "code");
    if (!spec.code || !tenant_code_valid(spec.code))
        return luaL_argerror(L, 1, "code must match ^[a-z][a-z0-9_]{1,39}$");
    spec.name = opt_string(L, 1, "name");
    spec.isolation = opt_string(L, 1, "isolation");
    if (!spec.isolation)
        spec.isolation = cfg->tenancy_default_isolation;
    spec.server = opt_string(L, 1, "server");
    spec.domain = opt_string(L, 1, "domain");
    spec.subdomain = opt_string(L, 1, "subdomain");
    lua_getfield(L, 1, "force");
    bool force = lua_toboolean(L, -1);
    lua_pop(L, 1);

    struct seed_owner owner = {0};
    bool has_owner = lua_getfield(L, 1, "owner") == LUA_TTABLE;
    if (has_owner) {
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
    }
    if (provision_tenant(cfg, &spec, force, &res, &err) < 0)
        return failed(L, &err);
    if (has_owner) {
        struct tenant_row row;
        PGconn *c = provision_connect(cfg, "main", &err);
        int found = c ? tenant_row_get(c, spec.code, &row, &err) : -1;
        PQfinish(c);
        if (found != 1 || seed_owner(cfg, &row, &owner, &err) < 0) {
            /* No tenant without its owner: undo the whole creation. A
             * refused owner is a failure, not a conflict of the tenant's. */
            err.sqlstate[0] = '\0';
            struct rt_err perr;
            if (provision_purge(cfg, spec.code, &perr) < 0)
                snprintf(err.msg + strlen(err.msg), sizeof err.msg - strlen(err.msg),
                         "; and purging it failed: %.200s", perr.msg);
            return failed(L, &err);
        }
    }
    /* The next tenant's pre-made storage, without holding up this answer. */
    provision_replenish_later(cfg, spec.server, spec.isolation);
    lua_pushinteger(L, (lua_Integer)res.id);
    return 1;
}

/* set_status(code, "active" | "suspended" | "deleted") -> true */
static int l_set_status(lua_State *L)
{
    const struct config *cfg = config_of(L, "set_status", false);
    const char *code = code_arg(L, 1);
    static const char *const statuses[] = {"active", "suspended", "deleted", NULL};
    const char *status = statuses[luaL_checkoption(L, 2, NULL, statuses)];
    struct rt_err err = {{0}, {0}};

    if (provision_set_status(cfg, code, status, &err) < 0)
        return failed(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

/* purge(code) -> true: storage dropped, directory row deleted */
static int l_purge(lua_State *L)
{
    const struct config *cfg = config_of(L, "purge", true);
    const char *code = code_arg(L, 1);
    struct rt_err err = {{0}, {0}};

    if (provision_purge(cfg, code, &err) < 0)
        return failed(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

/* update(code, {name=, domain=, subdomain=, settings=<JSON text>}) -> true.
 * Fields left out are kept; rt.null clears domain or subdomain. */
static int l_update(lua_State *L)
{
    const struct config *cfg = config_of(L, "update", false);
    const char *code = code_arg(L, 1);
    static const char *const names[] = {"name", "domain", "subdomain", "settings"};
    const char *v[9] = {code};
    struct rt_err err = {{0}, {0}};

    luaL_checktype(L, 2, LUA_TTABLE);
    for (int i = 0; i < 4; i++) {
        int t = lua_getfield(L, 2, names[i]);
        v[1 + 2 * i] = t == LUA_TNIL ? "f" : "t";                     /* set? */
        v[2 + 2 * i] = t == LUA_TSTRING ? lua_tostring(L, -1) : NULL; /* value */
        if (t != LUA_TNIL && t != LUA_TSTRING && t != LUA_TLIGHTUSERDATA)
            return luaL_argerror(L, 2, "fields must be strings (or rt.null)");
        lua_pop(L, 1);
    }
    PGconn *c = provision_connect(cfg, "main", &err);
    if (!c)
        return failed(L, &err);
    PGresult *r = PQexecParams(
        c,
        "UPDATE core.tenants SET "
        "name = CASE WHEN $2 THEN coalesce($3, name) ELSE name END, "
        "domain = CASE WHEN $4 THEN $5 ELSE domain END, "
        "subdomain = CASE WHEN $6 THEN $7 ELSE subdomain END, "
        "settings = CASE WHEN $8 THEN coalesce($9::jsonb, settings) ELSE settings END, "
        "updated_at = now() WHERE code = $1 AND status <> 'deleted'",
        9, NULL, v, NULL, NULL, 0);
    int rc = 1;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        snprintf(err.sqlstate, sizeof err.sqlstate, "%s", st ? st : "");
        snprintf(err.msg, sizeof err.msg, "%s",
                 rt_err_duplicate(&err) ? "domain or subdomain is already taken"
                                        : PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
        rc = -1;
    } else if (strcmp(PQcmdTuples(r), "1") != 0) {
        snprintf(err.msg, sizeof err.msg, "no tenant '%s'", code);
        rc = -1;
    }
    PQclear(r);
    PQfinish(c);
    if (rc < 0)
        return failed(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

/* migrate{tenant=code | all=true, cmd="up"|"down"|"status", to=, steps=,
 *         dry_run=} -> report (the JSON report of `runtime migrate --json`,
 * decoded), exit status */
static int l_migrate(lua_State *L)
{
    const struct config *cfg = config_of(L, "migrate", true);
    struct migrate_request req = {
        .cmd = "up", .steps = -1, .jobs = -1, .version = -1, .json = true};

    luaL_checktype(L, 1, LUA_TTABLE);
    const char *cmd = opt_string(L, 1, "cmd");
    if (cmd) {
        if (strcmp(cmd, "up") != 0 && strcmp(cmd, "down") != 0 &&
            strcmp(cmd, "status") != 0)
            return luaL_argerror(L, 1, "cmd must be up, down or status");
        req.cmd = cmd;
    }
    req.tenant = opt_string(L, 1, "tenant");
    if (req.tenant && !tenant_code_valid(req.tenant))
        return luaL_argerror(L, 1, "tenant must be a tenant code");
    lua_getfield(L, 1, "all");
    req.all = lua_toboolean(L, -1);
    lua_getfield(L, 1, "dry_run");
    req.dry_run = lua_toboolean(L, -1);
    lua_getfield(L, 1, "to");
    if (lua_isinteger(L, -1)) {
        req.to = (int)lua_tointeger(L, -1);
        req.to_set = true;
    }
    lua_getfield(L, 1, "steps");
    if (lua_isinteger(L, -1))
        req.steps = (int)lua_tointeger(L, -1);
    lua_pop(L, 4);
    if (!req.tenant && !req.all)
        return luaL_argerror(L, 1, "name a tenant or all = true");

    char *text = NULL, *errs = NULL;
    size_t len = 0, errlen = 0;
    FILE *out = open_memstream(&text, &len), *err = open_memstream(&errs, &errlen);
    int rc = 1;
    if (out && err)
        rc = migrate_run(cfg, &req, out, err);
    if (out)
        fclose(out);
    if (err)
        fclose(err);
    lua_getfield(L, LUA_REGISTRYINDEX, "rt.json.decode");
    lua_pushstring(L, text && *text ? text : "{}");
    free(text);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_pop(L, 1);
        lua_newtable(L);
    }
    if (errs && *errs) {
        lua_pushstring(L, errs);
        lua_setfield(L, -2, "errors");
    }
    free(errs);
    lua_pushinteger(L, rc);
    return 2;
}

/* seed(code) -> {applied=, skipped=} */
static int l_seed(lua_State *L)
{
    const struct config *cfg = config_of(L, "seed", true);
    const char *code = code_arg(L, 1);
    struct rt_err err = {{0}, {0}};
    struct tenant_row row;
    struct seed_result res;

    PGconn *c = provision_connect(cfg, "main", &err);
    int found = c ? tenant_row_get(c, code, &row, &err) : -1;
    PQfinish(c);
    if (found == 0)
        snprintf(err.msg, sizeof err.msg, "no tenant '%s'", code);
    if (found != 1)
        return failed(L, &err);
    if (seed_tenant(cfg, &row, &res) < 0) {
        err = res.err;
        seed_result_free(&res);
        return failed(L, &err);
    }
    seed_result_free(&res);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, res.applied);
    lua_setfield(L, -2, "applied");
    lua_pushinteger(L, res.skipped);
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
