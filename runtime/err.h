/* err: the one error value of the runtime's admin and start-up paths.
 *
 * A function that can fail takes a `struct rt_err *err` last and, on
 * failure, fills it and returns -1 (or NULL); on success it leaves err
 * alone. msg is one line a person can act on, without a trailing newline.
 * sqlstate is the PostgreSQL SQLSTATE when the database refused ("" when
 * the failure was not the database's), so callers can tell a duplicate
 * (23505) from the rest without parsing messages. msg is as long as the
 * Lua host's script load errors need (a file, a line and a traceback).
 *
 * The request path keeps its own richer struct db_error (db.h): it carries
 * the status a handler maps to HTTP. Pure: no I/O.
 *
 * Uses: nothing of the runtime. */
#ifndef RT_ERR_H
#define RT_ERR_H

#include <stdbool.h>
#include <string.h>

struct rt_err {
    char msg[2048];
    char sqlstate[6];
};

/* Fills err (may be NULL) from a printf format; clears sqlstate. Returns -1,
 * so `return rt_err_set(err, ...);` reads as the failure it is. */
int rt_err_set(struct rt_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Puts "prefix: " before err's message (for context on the way up).
 * Returns -1. */
int rt_err_prefix(struct rt_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* True when err holds a duplicate-key refusal (SQLSTATE 23505). */
static inline bool rt_err_duplicate(const struct rt_err *err)
{
    return strcmp(err->sqlstate, "23505") == 0;
}

#endif
