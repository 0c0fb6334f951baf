/* sql: libpq helpers of the admin paths (see sql.h). */
#include "sql.h"

#include <stdio.h>
#include <string.h>

int sql_error(PGconn *c, const PGresult *r, struct rt_err *err)
{
    if (!err)
        return -1;
    const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    snprintf(err->msg, sizeof err->msg, "%s",
             m   ? m
             : c ? PQerrorMessage(c)
                 : "no connection");
    size_t n = strlen(err->msg);
    while (n && (err->msg[n - 1] == '\n' || err->msg[n - 1] == ' '))
        err->msg[--n] = '\0';
    snprintf(err->sqlstate, sizeof err->sqlstate, "%s", st && strlen(st) == 5 ? st : "");
    return -1;
}

static bool result_ok(const PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

int sql_exec(PGconn *c, const char *sql, struct rt_err *err)
{
    PGresult *r = PQexec(c, sql);
    int rc = result_ok(r) ? 0 : sql_error(c, r, err);
    PQclear(r);
    return rc;
}

PGresult *sql_query(PGconn *c, const char *sql, int n, const char *const *vals,
                    struct rt_err *err)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, vals, NULL, NULL, 0);
    if (result_ok(r))
        return r;
    sql_error(c, r, err);
    PQclear(r);
    return NULL;
}

int sql_run(PGconn *c, const char *sql, int n, const char *const *vals, struct rt_err *err)
{
    PGresult *r = sql_query(c, sql, n, vals, err);
    PQclear(r);
    return r ? 0 : -1;
}

int sql_ident(PGconn *c, const char *name, char *out, size_t cap, struct rt_err *err)
{
    char *s = PQescapeIdentifier(c, name, strlen(name));
    if (!s) {
        sql_error(c, NULL, err);
        return rt_err_prefix(err, "cannot quote identifier '%s'", name);
    }
    size_t n = strlen(s);
    int rc = 0;
    if (n < cap)
        memcpy(out, s, n + 1);
    else
        rc = rt_err_set(err, "identifier '%s' is too long", name);
    PQfreemem(s);
    return rc;
}
