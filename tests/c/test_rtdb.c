/* Unit tests for lua/rt_db.c's result box: a PGresult is made only once its
 * box exists, so no out-of-memory error in the Lua state, wherever it
 * strikes, leaks one. Results are made without a server
 * (PQmakeEmptyPGresult) on a connection object that never connected, whose
 * libpq event procedure counts the results made and cleared. */
#include "lua/rt_db.h"

#include "check.h"

#include <stdlib.h>

#include <lauxlib.h>
#include <libpq-events.h>

static int made, cleared;

static int count_results(PGEventId id, void *info, void *arg)
{
    (void)info;
    (void)arg;
    if (id == PGEVT_RESULTCREATE)
        made++;
    else if (id == PGEVT_RESULTDESTROY)
        cleared++;
    return 1;
}

/* Allocations the Lua state may still make; -1: any. */
static long budget = -1;

static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (ptr == NULL || nsize > osize) {
        if (budget == 0)
            return NULL;
        if (budget > 0)
            budget--;
    }
    return realloc(ptr, nsize);
}

static PGconn *conn; /* never connected: carries the event procedure */

/* A result of one int4 column "n" and three rows, as a query would give. */
static PGresult *make_result(void)
{
    /* libpq's setters take char * (and copy): writable copies here. */
    char name[] = "n", v1[] = "1", v2[] = "2", v3[] = "3";
    PGresAttDesc col = {.name = name, .typid = 23, .typlen = 4, .atttypmod = -1};
    PGresult *r = PQmakeEmptyPGresult(conn, PGRES_TUPLES_OK);

    if (!r)
        return NULL;
    if (!PQsetResultAttrs(r, 1, &col) || !PQsetvalue(r, 0, 0, v1, 1) ||
        !PQsetvalue(r, 1, 0, v2, 1) || !PQsetvalue(r, 2, 0, v3, 1) ||
        !PQfireResultCreateEvents(conn, r)) {
        PQclear(r);
        return NULL;
    }
    return r;
}

/* What rt.db does for a query: the box, then the result into it, then the
 * rows. Stack: [] -> [rows]. */
static int l_query(lua_State *L)
{
    PGresult **slot = rt_db_result_box(L);
    *slot = make_result();
    if (!*slot)
        return luaL_error(L, "cannot make a result");
    rt_db_push_result(L, RT_DB_ROWS);
    return 1;
}

/* Runs l_query with every allocation budget from 0 up to one that lets it
 * finish: each time, the results cleared (at once or by the collector)
 * match the results made. */
static void test_no_leak_under_memory_errors(void)
{
    lua_State *L = lua_newstate(limited_alloc, NULL);
    int failed_holding = 0, succeeded = 0;

    luaL_requiref(L, "rt.db", luaopen_rt_db, 0);
    lua_pop(L, 1);
    for (long k = 0; k < 200 && !succeeded; k++) {
        int before = made;
        lua_pushcfunction(L, l_query);
        budget = k;
        int rc = lua_pcall(L, 0, 1, 0);
        budget = -1;
        if (rc == LUA_OK) {
            succeeded = 1;
            CHECK(lua_rawlen(L, -1) == 3);
            lua_rawgeti(L, -1, 3);
            lua_getfield(L, -1, "n");
            CHECK(lua_tointeger(L, -1) == 3);
        } else {
            failed_holding += made > before; /* the memory ran out with a result made */
            CHECK(rc == LUA_ERRMEM);
        }
        lua_settop(L, 0);
        lua_gc(L, LUA_GCCOLLECT);
        CHECK(made == cleared);
    }
    CHECK(succeeded);
    CHECK(failed_holding > 0);
    CHECK(made > 0);
    lua_close(L);
    CHECK(made == cleared);
}

int main(void)
{
    conn = PQconnectStart("host=/nonexistent port=1 connect_timeout=1");
    CHECK(conn != NULL);
    CHECK(PQregisterEventProc(conn, count_results, "test_rtdb", NULL) == 1);
    test_no_leak_under_memory_errors();
    PQfinish(conn);
    return check_done();
}
