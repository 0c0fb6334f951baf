/* sql: the admin paths' one way to talk to PostgreSQL through libpq.
 *
 * The migration engine, seeding, provisioning, spares and the directory's
 * writes run statements on connections of their own (not the request pools
 * of db.c). They all use these helpers, so a refusal always reaches the
 * caller the same way: a struct rt_err with the server's primary message
 * and its SQLSTATE. Identifiers (schema, database, role names) are quoted
 * by sql_ident alone.
 *
 * Uses: err.h, libpq. */
#ifndef RT_SQL_H
#define RT_SQL_H

#include <stddef.h>

#include <libpq-fe.h>

#include "err.h"

/* Runs sql, which may hold several statements and no parameters. Returns 0,
 * or -1 with err filled. */
int sql_exec(PGconn *c, const char *sql, struct rt_err *err);

/* Runs one statement with text parameters vals[0..n-1] (NULL = SQL NULL).
 * Returns the result, which the caller PQclear()s, or NULL with err
 * filled. */
PGresult *sql_query(PGconn *c, const char *sql, int n, const char *const *vals,
                    struct rt_err *err);

/* sql_query for statements whose rows are not wanted. Returns 0 or -1. */
int sql_run(PGconn *c, const char *sql, int n, const char *const *vals, struct rt_err *err);

/* Quotes name as an SQL identifier into out (cap bytes, quotes included).
 * Returns 0, or -1 with err filled when libpq refuses it or it is too long. */
int sql_ident(PGconn *c, const char *name, char *out, size_t cap, struct rt_err *err);

/* Fills err from a failed result r (may be NULL) or, without one, from the
 * connection's message. Returns -1. */
int sql_error(PGconn *c, const PGresult *r, struct rt_err *err);

#endif
