/* tenant: the tenant directory (core.tenants) and tenant storage.
 *
 * Identifier rules, directory rows (create, read, status changes, delete) and
 * the storage of each isolation mode: a schema t_<code>, a database t_<code>,
 * or the tenant's rows in the shared tables. Every identifier that reaches
 * SQL is built from a validated code and quoted; nothing else is ever pasted
 * into SQL. Callers pass an owner-role connection (rt_owner).
 *
 * The server-side directory cache and tenant resolution arrive with the rest
 * of the tenancy issue. Uses: libpq, buf.c. */
#ifndef RT_TENANT_H
#define RT_TENANT_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#define TENANT_CODE_MAX 40

struct tenant_error {
    char msg[1024];
    bool conflict; /* a duplicate code, domain or subdomain */
};

/* ^[a-z][a-z0-9_]{1,39}$ (DESIGN.md section 2). */
bool tenant_code_valid(const char *code);

/* A domain or subdomain: lower-case letters, digits, '-' and '.', at most
 * 253 characters, no leading or trailing dot or dash. */
bool tenant_host_valid(const char *host);

bool tenant_isolation_valid(const char *isolation);

struct tenant_spec {
    const char *code;
    const char *name;      /* NULL: the code */
    const char *isolation; /* shared, schema or database */
    const char *server;    /* NULL: main */
    const char *domain;    /* NULL: none */
    const char *subdomain; /* NULL: none */
};

/* Inserts the directory row with status 'provisioning' and returns its id.
 * A row of the same code whose provisioning failed is taken over (retry).
 * Duplicates set err->conflict. */
int tenant_row_create(PGconn *c, const struct tenant_spec *spec, long long *id,
                      struct tenant_error *err) __attribute__((warn_unused_result));

/* Sets status (and status_reason; NULL clears it). Fails when no row has
 * that code. */
int tenant_set_status(PGconn *c, const char *code, const char *status, const char *reason,
                      struct tenant_error *err) __attribute__((warn_unused_result));

/* Deletes the directory row. */
int tenant_row_delete(PGconn *c, const char *code, struct tenant_error *err)
    __attribute__((warn_unused_result));

/* What tenant_storage_* need to know about a row. */
struct tenant_row {
    long long id;
    char code[TENANT_CODE_MAX + 1];
    char isolation[16];
    char server[64];
    char status[16];
    char schema_name[64];
    char database_name[64];
};

/* Reads the row of code; returns 1 when found, 0 when not, -1 on error. */
int tenant_row_get(PGconn *c, const char *code, struct tenant_row *row,
                   struct tenant_error *err);

/* Creates the tenant's storage: the schema, or the database (owned by the
 * connection's role, CONNECT for rt_app only); nothing for shared mode. */
int tenant_storage_create(PGconn *c, const struct tenant_row *row, struct tenant_error *err)
    __attribute__((warn_unused_result));

/* Drops the tenant's storage: the schema or database, or in shared mode the
 * tenant's rows in every shared table. Missing storage is not an error. */
int tenant_storage_drop(PGconn *c, const struct tenant_row *row, struct tenant_error *err)
    __attribute__((warn_unused_result));

#endif
