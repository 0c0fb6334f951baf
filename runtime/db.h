/* db: libpq connection pools and request transactions.
 *
 * A pool serves one (server, database). Connections are made on demand up to
 * a bound, kept in pipeline mode, and reused; a request checks one out, runs
 * its statements in one transaction, and checks it back in. The transaction
 * is opened together with the first statement in a single round trip:
 * BEGIN, the per-transaction settings (set_config(..., true): never cached,
 * never session-level) and the statement are pipelined. A read-only request
 * sends no BEGIN/COMMIT: each statement goes with its settings in one
 * implicit transaction. Statements are prepared once per connection and
 * cached by their text.
 *
 * When the server cannot be reached the pool is marked down for a second so
 * requests fail fast (503) instead of each waiting for a connect timeout; the
 * next checkout after that tries again, so the pool recovers by itself.
 * Broken connections are discarded at check-in. Thread-safe.
 *
 * Uses: crypto.c (scope keys and tags), log.c, err.c (db_connect), hash.h,
 * libpq. */
#ifndef RT_DB_H
#define RT_DB_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "err.h"

enum db_status {
    DB_OK,
    DB_ERR_QUERY,        /* the statement failed (see sqlstate) */
    DB_ERR_REFUSED,      /* refused before reaching the server */
    DB_ERR_POOL_TIMEOUT, /* no connection free in time */
    DB_ERR_UNAVAILABLE,  /* cannot connect, or the connection broke */
    DB_ERR_STATEMENT_TIMEOUT,
};

struct db_error {
    enum db_status status;
    char sqlstate[6]; /* "" when there is none */
    char message[512];
};

struct db_pool_options {
    const char *conninfo; /* libpq URL or key=value string; copied */
    const char *dbname;   /* overrides the database of conninfo; NULL: none */
    const char *name;     /* for logs: "main" or "main/t_acme"; copied */
    int max_size;
    int checkout_timeout_ms;
    int connect_timeout_s;
    int statement_timeout_ms; /* set per transaction; 0 = none */
    /* Refuse connections whose role is a superuser or has BYPASSRLS (row-level
     * security would silently not apply to them), may create temporary
     * objects or take session advisory locks, or whose database lacks the
     * rt_scope functions (docs/SECURITY.md). Every pool enrolls a scope key
     * where the database has them. */
    bool refuse_privileged;
};

struct db_pool;
struct db_conn;

/* A plain connection (no pool): conninfo is a URL or key=value string,
 * dbname (NULL: none) overrides its database without any string pasting,
 * application names it in pg_stat_activity, connect_timeout_s (>= 1) bounds
 * the wait. Server notices are dropped. Returns NULL with a
 * one-line message in err on failure (sqlstate ""). */
PGconn *db_connect(const char *conninfo, const char *dbname, const char *application,
                   int connect_timeout_s, struct rt_err *err);

struct db_pool *db_pool_new(const struct db_pool_options *opt);
/* Closes every idle connection. All connections must be checked in. */
void db_pool_free(struct db_pool *p);

/* Takes a connection out of the pool, connecting if none is idle and the
 * bound allows. Fails with DB_ERR_POOL_TIMEOUT or DB_ERR_UNAVAILABLE. */
int db_checkout(struct db_pool *p, struct db_conn **out, struct db_error *err)
    __attribute__((warn_unused_result));

/* Returns a connection. One still inside a transaction is rolled back first;
 * a broken one is closed. conn may be NULL. */
void db_checkin(struct db_pool *p, struct db_conn *conn);

/* A per-transaction setting applied with set_config(name, value, true). */
struct db_setting {
    const char *name;
    const char *value;
};

/* How a request transaction is opened. */
struct db_tx {
    const struct db_setting *settings; /* borrowed; at most 2 */
    int nsettings;
    /* Read-only: no BEGIN/COMMIT; each statement runs as its own implicit
     * transaction with transaction_read_only on, in one round trip. */
    bool read_only;
    /* The scope the transaction is signed for (app.scope, checked by the
     * database's rt_scope functions): a tenant id, or 0 for the core. */
    long long tenant_id;
};

/* Runs one statement in the connection's transaction, opening it (with the
 * pool's statement_timeout and tx's settings) if none is open; *conn is
 * checked out first when NULL. values are text parameters ($1..$n), NULL for
 * SQL NULL. On success *res is set and the caller owns it (PQclear). When no
 * transaction was open yet, a broken pooled connection is replaced by a
 * fresh one once, so a database restart costs no request. */
int db_query(struct db_pool *p, struct db_conn **conn, const struct db_tx *tx,
             const char *sql, int nparams, const char *const *values, PGresult **res,
             struct db_error *err) __attribute__((warn_unused_result));

/* True when a transaction is open on the connection. */
bool db_in_transaction(const struct db_conn *conn);

/* True when the open transaction has failed (only ROLLBACK can follow). */
bool db_transaction_failed(const struct db_conn *conn);

/* Ends the transaction: COMMIT or ROLLBACK. A COMMIT of a failed transaction
 * rolls back and reports DB_ERR_QUERY. No-op without a transaction. */
int db_end(struct db_conn *conn, bool commit, struct db_error *err)
    __attribute__((warn_unused_result));

/* Checks the database answers (SELECT 1 on a pooled connection). */
int db_ping(struct db_pool *p, struct db_error *err) __attribute__((warn_unused_result));

#endif
