/* rt.db: Lua binding for request database work (see rt_db.h). */
#include "lua/rt_db.h"

#include "lua/keys.h"
#include "lua/rt_json.h"
#include "sqlguard.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#define CTX_KEY    "rt.db.ctx"
#define RESULT_MT  "rt.db.result"
#define MAX_PARAMS 1000

/* A PGresult boxed in a userdata. The box is made empty before the query
 * runs and the result goes straight into it, so no error raised afterwards
 * (out of memory in the Lua state while converting rows, a json column that
 * does not decode) can leak it: the box's __gc (or __close) clears it. */
struct result_box {
    PGresult *res; /* owned; NULL: empty */
};

static int result_gc(lua_State *L)
{
    struct result_box *box = luaL_checkudata(L, 1, RESULT_MT);
    PQclear(box->res); /* PQclear(NULL) does nothing */
    box->res = NULL;
    return 0;
}

PGresult **rt_db_result_box(lua_State *L)
{
    struct result_box *box = lua_newuserdatauv(L, sizeof *box, 0);
    box->res = NULL;
    luaL_setmetatable(L, RESULT_MT);
    return &box->res;
}

void rt_db_bind(lua_State *L, struct rt_db_ctx *ctx)
{
    lua_pushlightuserdata(L, ctx);
    lua_setfield(L, LUA_REGISTRYINDEX, CTX_KEY);
}

void rt_db_note_failure(lua_State *L, enum db_status st)
{
    lua_getfield(L, LUA_REGISTRYINDEX, CTX_KEY);
    struct rt_db_ctx *ctx = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (ctx && st != DB_OK)
        ctx->failure = st;
}

static struct rt_db_ctx *ctx_get(lua_State *L, const char *fn)
{
    lua_getfield(L, LUA_REGISTRYINDEX, CTX_KEY);
    struct rt_db_ctx *ctx = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!ctx)
        luaL_error(L, "rt.db.%s: not available here (only while a request runs)", fn);
    return ctx;
}

static const char *kind_name(enum db_status st)
{
    switch (st) {
    case DB_ERR_STATEMENT_TIMEOUT: return "timeout";
    case DB_ERR_UNAVAILABLE: return "unavailable";
    case DB_ERR_POOL_TIMEOUT: return "pool_timeout";
    case DB_ERR_REFUSED: return "refused";
    default: return "query";
    }
}

/* Pushes nil, message, err_t. Stack: [] -> [nil, message, err_t]. Returns 3. */
static int push_error(lua_State *L, const struct db_error *err, const char *kind)
{
    lua_pushnil(L);
    lua_pushstring(L, err->message);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, err->message);
    lua_setfield(L, -2, "message");
    lua_pushstring(L, err->sqlstate);
    lua_setfield(L, -2, "sqlstate");
    lua_pushstring(L, err->status == DB_OK && kind ? kind : kind_name(err->status));
    lua_setfield(L, -2, "kind");
    return 3;
}

/* rt.db's own failures: the request's failure, then nil, message, err_t. */
static int push_failure(lua_State *L, struct rt_db_ctx *ctx, const struct db_error *err)
{
    ctx->failure = err->status;
    return push_error(L, err, NULL);
}

int rt_db_push_error(lua_State *L, const struct db_error *err, const char *kind)
{
    rt_db_note_failure(L, err->status);
    return push_error(L, err, kind);
}

/* Turns arguments first..top into text parameters in values[]. Numbers and
 * booleans are replaced on the stack by their text so the pointers stay
 * valid while the arguments are. */
void rt_db_params(lua_State *L, int first, int n, const char **values)
{
    for (int i = 0; i < n; i++) {
        int idx = first + i;
        char num[64];
        size_t len;

        switch (lua_type(L, idx)) {
        case LUA_TNIL: values[i] = NULL; break;
        case LUA_TLIGHTUSERDATA:
            if (lua_touserdata(L, idx) != NULL)
                luaL_argerror(L, idx, "unsupported parameter type (userdata)");
            values[i] = NULL; /* rt.null */
            break;
        case LUA_TBOOLEAN: values[i] = lua_toboolean(L, idx) ? "true" : "false"; break;
        case LUA_TNUMBER:
            if (lua_isinteger(L, idx)) {
                snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx));
            } else {
                double d = lua_tonumber(L, idx);
                if (!isfinite(d))
                    luaL_argerror(L, idx, "number is not finite");
                snprintf(num, sizeof num, "%.17g", d);
            }
            lua_pushstring(L, num);
            lua_replace(L, idx);
            values[i] = lua_tostring(L, idx);
            break;
        case LUA_TSTRING:
            values[i] = lua_tolstring(L, idx, &len);
            if (strlen(values[i]) != len)
                luaL_argerror(L, idx, "string contains a NUL byte");
            break;
        default:
            luaL_argerror(L, idx,
                          lua_pushfstring(L,
                                          "unsupported parameter type (%s); encode "
                                          "tables with rt.json.encode",
                                          luaL_typename(L, idx)));
        }
    }
}

/* Pushes one field converted by its type OID. */
static void push_value(lua_State *L, const PGresult *res, int row, int col)
{
    const char *v = PQgetvalue(res, row, col);
    int len = PQgetlength(res, row, col);

    switch (PQftype(res, col)) {
    case 16: /* bool */ lua_pushboolean(L, v[0] == 't'); return;
    case 20: /* int8 */
    case 21: /* int2 */
    case 23: /* int4 */
    case 26: /* oid */ lua_pushinteger(L, (lua_Integer)strtoll(v, NULL, 10)); return;
    case 700: /* float4 */
    case 701: /* float8 */ lua_pushnumber(L, strtod(v, NULL)); return;
    case 114:  /* json */
    case 3802: /* jsonb */
        if (lua_getfield(L, LUA_REGISTRYINDEX, RT_KEY_JSON_DECODE) == LUA_TFUNCTION) {
            lua_pushlstring(L, v, (size_t)len);
            lua_call(L, 1, 1);
            return;
        }
        lua_pop(L, 1);
        break;
    default: break;
    }
    /* numeric stays text so no precision is lost; everything else is text. */
    lua_pushlstring(L, v, (size_t)len);
}

/* Pushes row `row` as a table. The column names are at names..names+ncols-1. */
static void push_row(lua_State *L, const PGresult *res, int row, int names)
{
    int ncols = PQnfields(res);

    lua_createtable(L, 0, ncols);
    for (int c = 0; c < ncols; c++) {
        lua_pushvalue(L, names + c);
        if (PQgetisnull(res, row, c))
            lua_pushlightuserdata(L, NULL);
        else
            push_value(L, res, row, c);
        lua_rawset(L, -3);
    }
}

void rt_db_push_result(lua_State *L, enum rt_db_shape shape)
{
    struct result_box *box = luaL_checkudata(L, -1, RESULT_MT);
    PGresult *res = box->res;
    int box_idx = lua_gettop(L);
    int nrows = PQntuples(res), ncols = PQnfields(res);

    if (shape == RT_DB_COUNT) {
        const char *t = PQcmdTuples(res);
        lua_pushinteger(L, *t ? (lua_Integer)strtoll(t, NULL, 10) : nrows);
    } else if (shape == RT_DB_ONE && nrows == 0) {
        lua_pushnil(L);
    } else {
        luaL_checkstack(L, ncols + 4, "too many columns");
        int names = lua_gettop(L) + 1;
        for (int c = 0; c < ncols; c++)
            lua_pushstring(L, PQfname(res, c));
        if (shape == RT_DB_ONE) {
            push_row(L, res, 0, names);
        } else {
            lua_createtable(L, nrows, 0);
            /* Marked as an array so no rows encode as [] in JSON. */
            luaL_setmetatable(L, RT_JSON_ARRAY_MT);
            for (int r = 0; r < nrows; r++) {
                push_row(L, res, r, names);
                lua_rawseti(L, -2, r + 1);
            }
        }
        lua_replace(L, names);
        lua_settop(L, names);
    }
    PQclear(box->res);
    box->res = NULL;
    lua_remove(L, box_idx);
}

static int statement(lua_State *L, const char *fn, enum rt_db_shape shape)
{
    struct rt_db_ctx *ctx = ctx_get(L, fn);
    const char *sql = luaL_checkstring(L, 1);
    int n = lua_gettop(L) - 1;
    const char *small[16], **values = small;
    struct db_error err;
    struct sqlguard_result guard;

    switch (sqlguard_check(sql, SQLGUARD_REQUEST, &guard)) {
    case SQLGUARD_OK: break;
    case SQLGUARD_REFUSED:
        return luaL_error(L,
                          "rt.db.%s: %s is not allowed in a request statement: the runtime "
                          "owns the request's transaction and its scope (docs/SECURITY.md)",
                          fn, guard.reason);
    case SQLGUARD_SYNTAX:
        /* What PostgreSQL would answer, without the round trip. */
        err = (struct db_error){.status = DB_ERR_QUERY, .sqlstate = "42601"};
        snprintf(err.message, sizeof err.message, "%s", guard.reason);
        return push_failure(L, ctx, &err);
    }
    if (n > MAX_PARAMS)
        return luaL_error(L, "rt.db.%s: too many parameters (%d)", fn, n);
    if (n > 16)
        values = lua_newuserdatauv(L, sizeof *values * (size_t)n, 0);
    rt_db_params(L, 2, n, values);
    PGresult **res = rt_db_result_box(L); /* before the result exists */
    if (db_query(ctx->pool, &ctx->conn, &ctx->tx, sql, n, values, res, &err) < 0) {
        PQclear(*res);
        *res = NULL;
        return push_failure(L, ctx, &err);
    }
    rt_db_push_result(L, shape);
    return 1;
}

static int l_query(lua_State *L)
{
    return statement(L, "query", RT_DB_ROWS);
}

static int l_query_one(lua_State *L)
{
    return statement(L, "query_one", RT_DB_ONE);
}

static int l_exec(lua_State *L)
{
    return statement(L, "exec", RT_DB_COUNT);
}

/* Runs one of the binding's own statements; 0 or -1 with err filled. */
static int run_internal(struct rt_db_ctx *ctx, const char *sql, struct db_error *err)
{
    PGresult *res = NULL;
    int rc = db_query(ctx->pool, &ctx->conn, &ctx->tx, sql, 0, NULL, &res, err);
    PQclear(res);
    return rc;
}

/* db.transaction(fn): fn runs inside a savepoint of the request transaction.
 * A normal return releases it; `nil, err` or an error rolls back to it (the
 * error is raised again). Returns fn's results. */
static int l_transaction(lua_State *L)
{
    struct rt_db_ctx *ctx = ctx_get(L, "transaction");
    struct db_error err;
    char sql[64];

    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    if (ctx->tx.read_only) {
        /* A read-only request has nothing to undo and no transaction block
         * for a savepoint: fn just runs. */
        lua_call(L, 0, LUA_MULTRET);
        return lua_gettop(L);
    }
    int depth = ++ctx->savepoint_depth;
    snprintf(sql, sizeof sql, "SAVEPOINT rt_sp_%d", depth);
    if (run_internal(ctx, sql, &err) < 0) {
        ctx->savepoint_depth--;
        return push_failure(L, ctx, &err);
    }
    int status = lua_pcall(L, 0, LUA_MULTRET, 0);
    int nres = lua_gettop(L);
    bool keep = status == LUA_OK && nres >= 1 && lua_toboolean(L, 1);
    snprintf(sql, sizeof sql, "%s rt_sp_%d",
             keep ? "RELEASE SAVEPOINT" : "ROLLBACK TO SAVEPOINT", depth);
    ctx->savepoint_depth--;
    if (run_internal(ctx, sql, &err) < 0 && status == LUA_OK) {
        lua_settop(L, 0);
        return push_failure(L, ctx, &err);
    }
    if (status != LUA_OK)
        return lua_error(L); /* the error value is on top */
    return nres;
}

int luaopen_rt_db(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"query", l_query}, {"query_one", l_query_one},
        {"exec", l_exec},   {"transaction", l_transaction},
        {NULL, NULL},
    };

    if (luaL_newmetatable(L, RESULT_MT)) {
        lua_pushcfunction(L, result_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, result_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    return 1;
}

int rt_db_finish(struct rt_db_ctx *ctx, bool commit, struct db_error *err)
{
    int rc = 0;

    if (!ctx->conn)
        return 0;
    if (db_end(ctx->conn, commit, err) < 0) {
        ctx->failure = err->status;
        rc = -1;
    }
    db_checkin(ctx->pool, ctx->conn);
    ctx->conn = NULL;
    ctx->savepoint_depth = 0;
    return rc;
}
