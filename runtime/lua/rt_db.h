/* rt.db: the Lua binding over db.c for request handlers.
 *
 *   db.query(sql, ...)      -> rows (array of tables)      | nil, msg, err_t
 *   db.query_one(sql, ...)  -> row or nil (no row)          | nil, msg, err_t
 *   db.exec(sql, ...)       -> number of rows affected      | nil, msg, err_t
 *   db.transaction(fn)      -> fn's results, inside a savepoint
 *   db.null                 -> SQL NULL (the same value as rt.null)
 *
 * Parameters are $1..$n only; nil and db.null are NULL. err_t carries
 * `sqlstate`, `message` and `kind` ("query", "timeout", "unavailable",
 * "pool_timeout", "refused"). Statements that would escape the request
 * transaction are refused with an error. The binding finds its request
 * through the lua_State's registry (rt_db_bind), never a C global. The
 * failure half of that convention is shared with the other bindings
 * (rt_db_push_error).
 *
 * Uses: db.c, sqlguard.c, lua/rt_json.c (the array marker, json columns). */
#ifndef RT_LUA_RT_DB_H
#define RT_LUA_RT_DB_H

#include <stdbool.h>

#include <lua.h>

#include "db.h"

/* One request's database state. Owned by the caller (dispatch.c), lives for one
 * request. */
struct rt_db_ctx {
    struct db_pool *pool;   /* borrowed */
    struct db_conn *conn;   /* checked out on first use */
    struct db_tx tx;        /* how the transaction is opened */
    enum db_status failure; /* last failure, for the HTTP status */
    int savepoint_depth;
};

int luaopen_rt_db(lua_State *L);

enum rt_db_shape {
    RT_DB_ROWS,  /* array of row tables (marked as a JSON array) */
    RT_DB_ONE,   /* the first row, or nil */
    RT_DB_COUNT, /* the affected row count */
};

/* Pushes an empty result box and returns its slot: run the query straight
 * into it (*slot = PQexec(...), or db_query(..., slot, ...)), so that an
 * error raised from then on, out of memory included, still frees the result
 * (the box's __gc and __close clear it; an empty box is fine). The box is
 * made before the result exists: making it after would leak the result if
 * the allocation raised. Stack: [] -> [box]. */
PGresult **rt_db_result_box(lua_State *L);

/* Replaces the box on top of the stack (rt_db_result_box, filled) with its
 * result converted to shape, and clears the result. Stack: [box] -> [value]. */
void rt_db_push_result(lua_State *L, enum rt_db_shape shape);

/* Converts arguments first..first+n-1 into text parameters for libpq
 * (NULL for nil and rt.null). Raises on unsupported types. The pointers stay
 * valid while the arguments stay on the stack. */
void rt_db_params(lua_State *L, int first, int n, const char **values);

/* Makes ctx the current request of L (NULL: none; rt.db then raises). */
void rt_db_bind(lua_State *L, struct rt_db_ctx *ctx);

/* Records a database failure met outside rt.db (rt.auth's calls on auth's
 * own pool) as the request's, so a failed request answers 503 or 504 like
 * one whose rt.db call failed. DB_OK, or no request bound: nothing. */
void rt_db_note_failure(lua_State *L, enum db_status st);

/* The failure half of the convention every rt.* function follows (misuse
 * raises; a failure of the outside world returns nil, message, err_t):
 * pushes nil, err->message and err_t = {message, sqlstate, kind}, where kind
 * names a database failure by err->status as rt.db does ("query",
 * "timeout", "unavailable", "pool_timeout", "refused"), or is `kind` when
 * err->status is DB_OK (a failure that is not the database's). Records
 * err->status as the request's failure (rt_db_note_failure), so a handler
 * that passes the nil on or raises answers 503/504 when the database was
 * why. Stack: [] -> [nil, message, err_t]. Returns 3. */
int rt_db_push_error(lua_State *L, const struct db_error *err, const char *kind);

/* Ends the request's transaction (COMMIT when commit is set, else ROLLBACK)
 * and returns the connection to its pool. Returns -1 with err filled when
 * the COMMIT failed (the transaction was rolled back). Does not touch Lua. */
int rt_db_finish(struct rt_db_ctx *ctx, bool commit, struct db_error *err);

#endif
