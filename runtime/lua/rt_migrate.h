/* The `m` object handed to migration steps: SQL on the migrating
 * connection, and what the step runs against.
 *
 *   m:exec(sql, ...)   -> affected rows; raises on failure
 *   m:query(sql, ...)  -> rows; raises on failure
 *   m.target, m.schema, m.tenant, m.dry_run
 *
 * Without parameters m:exec uses the simple protocol, so one string may hold
 * several statements. Transaction control is refused: the engine owns the
 * transaction.
 *
 * Uses: db.c, sqlguard.c (the migration policy), lua/rt_db.c. */
#ifndef RT_LUA_RT_MIGRATE_H
#define RT_LUA_RT_MIGRATE_H

#include <stdbool.h>

#include <libpq-fe.h>

/* Named, not included: the engines fill a struct rt_migrate_ctx without
 * seeing the Lua API. */
struct lua_State;

struct rt_migrate_ctx {
    PGconn *conn;            /* borrowed */
    const char *target;      /* "core", "shared", "tenant" */
    const char *schema;      /* unquoted */
    long long tenant_id;     /* 0 unless target is "tenant" */
    const char *tenant_code; /* NULL unless target is "tenant" */
    const char *isolation;   /* NULL unless target is "tenant" */
    bool dry_run;
    /* Called with each statement before it runs (dry runs print them). */
    void (*echo)(void *ud, const char *sql);
    void *echo_ud;
};

/* Pushes a new `m` object for ctx. ctx is borrowed until rt_migrate_close. */
void rt_migrate_push(struct lua_State *L, struct rt_migrate_ctx *ctx);

/* Detaches the `m` object at idx from its ctx: a script that kept it gets an
 * error if it uses it after its step. */
void rt_migrate_close(struct lua_State *L, int idx);

#endif
