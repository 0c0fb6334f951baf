/* tenant: directory rows and storage per isolation mode (see tenant.h). */
#include "tenant.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool tenant_code_valid(const char *code)
{
    size_t n = code ? strlen(code) : 0;
    if (n < 2 || n > TENANT_CODE_MAX || !islower((unsigned char)code[0]))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(islower((unsigned char)code[i]) || isdigit((unsigned char)code[i]) ||
              code[i] == '_'))
            return false;
    return true;
}

bool tenant_host_valid(const char *host)
{
    size_t n = host ? strlen(host) : 0;
    if (n == 0 || n > 253 || host[0] == '.' || host[0] == '-' || host[n - 1] == '.' ||
        host[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)host[i]) || isdigit((unsigned char)host[i]) ||
              host[i] == '-' || host[i] == '.'))
            return false;
    return strstr(host, "..") == NULL;
}

bool tenant_isolation_valid(const char *isolation)
{
    return isolation &&
           (strcmp(isolation, "shared") == 0 || strcmp(isolation, "schema") == 0 ||
            strcmp(isolation, "database") == 0);
}

static void pg_err(PGconn *c, const PGresult *r, struct tenant_error *err)
{
    const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    snprintf(err->msg, sizeof err->msg, "%s", m ? m : PQerrorMessage(c));
    size_t n = strlen(err->msg);
    while (n && err->msg[n - 1] == '\n')
        err->msg[--n] = '\0';
    err->conflict = state && strcmp(state, "23505") == 0;
}

/* Runs one statement; returns its result (caller clears) or NULL. */
static PGresult *run(PGconn *c, const char *sql, int n, const char *const *v,
                     struct tenant_error *err)
{
    PGresult *r = n ? PQexecParams(c, sql, n, NULL, v, NULL, NULL, 0) : PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return r;
    pg_err(c, r, err);
    PQclear(r);
    return NULL;
}

static int run_ok(PGconn *c, const char *sql, int n, const char *const *v,
                  struct tenant_error *err)
{
    PGresult *r = run(c, sql, n, v, err);
    PQclear(r);
    return r ? 0 : -1;
}

int tenant_row_create(PGconn *c, const struct tenant_spec *spec, long long *id,
                      struct tenant_error *err)
{
    char store[64];

    memset(err, 0, sizeof *err);
    snprintf(store, sizeof store, "t_%s", spec->code);
    const char *v[] = {
        spec->code,
        spec->name ? spec->name : spec->code,
        spec->isolation,
        spec->server ? spec->server : "main",
        strcmp(spec->isolation, "schema") == 0 ? store : NULL,
        strcmp(spec->isolation, "database") == 0 ? store : NULL,
        spec->domain,
        spec->subdomain,
    };
    /* A row left 'failed' by an earlier attempt is taken over: provisioning
     * compensated for it, so a retry starts from clean storage. */
    PGresult *r =
        run(c,
            "INSERT INTO core.tenants (code, name, isolation, server, schema_name, "
            "database_name, domain, subdomain, status) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'provisioning') "
            "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, "
            "isolation = EXCLUDED.isolation, server = EXCLUDED.server, "
            "schema_name = EXCLUDED.schema_name, "
            "database_name = EXCLUDED.database_name, domain = EXCLUDED.domain, "
            "subdomain = EXCLUDED.subdomain, status = 'provisioning', "
            "status_reason = NULL, schema_version = 0, fingerprint = NULL, "
            "migration_status = 'ok', last_migration_error = NULL, "
            "deleted_at = NULL, updated_at = now() "
            "WHERE core.tenants.status = 'failed' RETURNING id",
            8, v, err);
    if (!r)
        return -1;
    if (PQntuples(r) == 0) {
        PQclear(r);
        err->conflict = true;
        snprintf(err->msg, sizeof err->msg, "tenant '%s' already exists", spec->code);
        return -1;
    }
    *id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return 0;
}

int tenant_set_status(PGconn *c, const char *code, const char *status, const char *reason,
                      struct tenant_error *err)
{
    const char *v[] = {code, status, reason};
    memset(err, 0, sizeof *err);
    PGresult *r = run(c,
                      "UPDATE core.tenants SET status = $2, status_reason = $3, "
                      "deleted_at = CASE WHEN $2 = 'deleted' THEN now() END, "
                      "updated_at = now() WHERE code = $1",
                      3, v, err);
    if (!r)
        return -1;
    bool found = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    if (!found) {
        snprintf(err->msg, sizeof err->msg, "no tenant '%s'", code);
        return -1;
    }
    return 0;
}

int tenant_row_delete(PGconn *c, const char *code, struct tenant_error *err)
{
    const char *v[] = {code};
    memset(err, 0, sizeof *err);
    return run_ok(c, "DELETE FROM core.tenants WHERE code = $1", 1, v, err);
}

int tenant_row_get(PGconn *c, const char *code, struct tenant_row *row,
                   struct tenant_error *err)
{
    const char *v[] = {code};
    memset(err, 0, sizeof *err);
    memset(row, 0, sizeof *row);
    PGresult *r = run(c,
                      "SELECT id, code, isolation, server, status, "
                      "coalesce(schema_name, ''), coalesce(database_name, '') "
                      "FROM core.tenants WHERE code = $1",
                      1, v, err);
    if (!r)
        return -1;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return 0;
    }
    row->id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    snprintf(row->code, sizeof row->code, "%s", PQgetvalue(r, 0, 1));
    snprintf(row->isolation, sizeof row->isolation, "%s", PQgetvalue(r, 0, 2));
    snprintf(row->server, sizeof row->server, "%s", PQgetvalue(r, 0, 3));
    snprintf(row->status, sizeof row->status, "%s", PQgetvalue(r, 0, 4));
    snprintf(row->schema_name, sizeof row->schema_name, "%s", PQgetvalue(r, 0, 5));
    snprintf(row->database_name, sizeof row->database_name, "%s", PQgetvalue(r, 0, 6));
    PQclear(r);
    return 1;
}

/* Writes the quoted identifier of name into out. */
static int ident(PGconn *c, const char *name, char *out, size_t cap,
                 struct tenant_error *err)
{
    char *q = PQescapeIdentifier(c, name, strlen(name));
    if (!q || strlen(q) >= cap) {
        PQfreemem(q);
        snprintf(err->msg, sizeof err->msg, "bad identifier");
        return -1;
    }
    strcpy(out, q);
    PQfreemem(q);
    return 0;
}

int tenant_storage_create(PGconn *c, const struct tenant_row *row, struct tenant_error *err)
{
    char q[96], sql[512];

    memset(err, 0, sizeof *err);
    if (strcmp(row->isolation, "schema") == 0) {
        if (ident(c, row->schema_name, q, sizeof q, err) < 0)
            return -1;
        snprintf(sql, sizeof sql, "CREATE SCHEMA %s; GRANT USAGE ON SCHEMA %s TO rt_app", q,
                 q);
        return run_ok(c, sql, 0, NULL, err);
    }
    if (strcmp(row->isolation, "database") == 0) {
        if (ident(c, row->database_name, q, sizeof q, err) < 0)
            return -1;
        /* CREATE DATABASE cannot run inside a transaction block: one
         * statement per call. */
        snprintf(sql, sizeof sql, "CREATE DATABASE %s", q);
        if (run_ok(c, sql, 0, NULL, err) < 0)
            return -1;
        snprintf(sql, sizeof sql,
                 "REVOKE ALL ON DATABASE %s FROM PUBLIC; "
                 "GRANT CONNECT, TEMPORARY ON DATABASE %s TO rt_app",
                 q, q);
        return run_ok(c, sql, 0, NULL, err);
    }
    return 0; /* shared: the rows live in the shared tables */
}

int tenant_storage_drop(PGconn *c, const struct tenant_row *row, struct tenant_error *err)
{
    char q[96], sql[512];

    memset(err, 0, sizeof *err);
    if (strcmp(row->isolation, "schema") == 0) {
        if (ident(c, row->schema_name, q, sizeof q, err) < 0)
            return -1;
        snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", q);
        return run_ok(c, sql, 0, NULL, err);
    }
    if (strcmp(row->isolation, "database") == 0) {
        if (ident(c, row->database_name, q, sizeof q, err) < 0)
            return -1;
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", q);
        return run_ok(c, sql, 0, NULL, err);
    }
    /* Shared mode: the tenant's rows in every shared table that has a
     * tenant_id, seen through its own RLS scope (the policies are FORCE'd,
     * so the owner is filtered too). Children are deleted through their
     * cascading foreign keys; the loop deletes until nothing is left. */
    char id[32];
    snprintf(id, sizeof id, "%lld", row->id);
    const char *v[] = {id};
    if (run_ok(c, "BEGIN", 0, NULL, err) < 0)
        return -1;
    PGresult *r =
        run(c,
            "SELECT set_config('app.tenant_id', $1, true), "
            "(SELECT string_agg(format('DELETE FROM shared.%I', table_name), '; ') "
            " FROM information_schema.columns "
            " WHERE table_schema = 'shared' AND column_name = 'tenant_id')",
            1, v, err);
    if (!r)
        goto rollback;
    if (!PQgetisnull(r, 0, 1)) {
        /* Every table once is enough: ON DELETE CASCADE covers the rest,
         * and RLS limits each DELETE to this tenant's rows. */
        char *stmts = strdup(PQgetvalue(r, 0, 1));
        PQclear(r);
        if (!stmts || run_ok(c, stmts, 0, NULL, err) < 0) {
            free(stmts);
            goto rollback;
        }
        free(stmts);
    } else {
        PQclear(r);
    }
    return run_ok(c, "COMMIT", 0, NULL, err);
rollback:
    PQclear(PQexec(c, "ROLLBACK"));
    return -1;
}
