/* The `m` object for migration steps (see rt_migrate.h). */
#include "lua/rt_migrate.h"

#include "db.h"
#include "lua/rt_db.h"
#include "sqlguard.h"

#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#define HANDLE_MT "rt.migrate.handle"

struct handle {
    struct rt_migrate_ctx *ctx; /* NULL once the step is over */
};

static struct rt_migrate_ctx *ctx_of(lua_State *L, const char *fn)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    struct handle *h = lua_touserdata(L, lua_upvalueindex(1));
    if (!h || !h->ctx)
        luaL_error(L, "m:%s: this m object belongs to a step that has finished", fn);
    return h->ctx;
}

static int run(lua_State *L, const char *fn, enum rt_db_shape shape)
{
    struct rt_migrate_ctx *ctx = ctx_of(L, fn);
    const char *sql = luaL_checkstring(L, 2);
    int n = lua_gettop(L) - 2;
    const char *small[16], **values = small;
    char msg[1024];
    struct sqlguard_result guard;

    switch (sqlguard_check(sql, SQLGUARD_MIGRATION, &guard)) {
    case SQLGUARD_OK: break;
    case SQLGUARD_REFUSED:
        return luaL_error(L,
                          "m:%s: %s is not allowed: the engine owns the transaction and "
                          "the connection (docs/SECURITY.md)",
                          fn, guard.reason);
    case SQLGUARD_SYNTAX:
        return luaL_error(L, "m:%s: %s (SQLSTATE 42601)", fn, guard.reason);
    }
    if (n > 16)
        values = lua_newuserdatauv(L, sizeof *values * (size_t)n, 0);
    rt_db_params(L, 3, n, values);
    if (ctx->echo)
        ctx->echo(ctx->echo_ud, sql);
    PGresult **slot = rt_db_result_box(L); /* before the result exists */
    if (n == 0 && shape == RT_DB_COUNT)
        *slot = PQexec(ctx->conn, sql);
    else
        *slot = PQexecParams(ctx->conn, sql, n, NULL, values, NULL, NULL, 0);
    PGresult *res = *slot;
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        snprintf(msg, sizeof msg, "%s%s%s%s", primary ? primary : PQerrorMessage(ctx->conn),
                 state ? " (SQLSTATE " : "", state ? state : "", state ? ")" : "");
        PQclear(res);
        *slot = NULL;
        return luaL_error(L, "m:%s: %s", fn, msg);
    }
    rt_db_push_result(L, shape);
    return 1;
}

static int l_exec(lua_State *L)
{
    return run(L, "exec", RT_DB_COUNT);
}

static int l_query(lua_State *L)
{
    return run(L, "query", RT_DB_ROWS);
}

void rt_migrate_push(lua_State *L, struct rt_migrate_ctx *ctx)
{
    if (luaL_newmetatable(L, HANDLE_MT)) {
        lua_pushliteral(L, "rt.migrate.handle");
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);

    lua_createtable(L, 0, 8);
    struct handle *h = lua_newuserdatauv(L, sizeof *h, 0);
    h->ctx = ctx;
    luaL_setmetatable(L, HANDLE_MT);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "_handle");
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, l_exec, 1);
    lua_setfield(L, -3, "exec");
    lua_pushcclosure(L, l_query, 1);
    lua_setfield(L, -2, "query");

    lua_pushstring(L, ctx->target);
    lua_setfield(L, -2, "target");
    lua_pushstring(L, ctx->schema);
    lua_setfield(L, -2, "schema");
    lua_pushboolean(L, ctx->dry_run);
    lua_setfield(L, -2, "dry_run");
    if (ctx->tenant_code) {
        lua_createtable(L, 0, 3);
        lua_pushinteger(L, (lua_Integer)ctx->tenant_id);
        lua_setfield(L, -2, "id");
        lua_pushstring(L, ctx->tenant_code);
        lua_setfield(L, -2, "code");
        lua_pushstring(L, ctx->isolation);
        lua_setfield(L, -2, "isolation");
        lua_setfield(L, -2, "tenant");
    }
}

void rt_migrate_close(lua_State *L, int idx)
{
    if (lua_getfield(L, idx, "_handle") == LUA_TUSERDATA) {
        struct handle *h = luaL_testudata(L, -1, HANDLE_MT);
        if (h)
            h->ctx = NULL;
    }
    lua_pop(L, 1);
}
