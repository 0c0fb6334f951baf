/* tenant: the tenant directory (core.tenants) and tenant storage.
 *
 * Identifier rules, directory rows (create, read, status changes, delete) and
 * the storage of each isolation mode: a schema t_<code>, a database t_<code>,
 * or the tenant's rows in the shared tables. Every identifier that reaches
 * SQL is built from a validated code and quoted; nothing else is ever pasted
 * into SQL. Callers pass an owner-role connection (rt_owner).
 *
 * For the server: a snapshot of the directory (refcounted, swapped whole when
 * the directory changes, checked every refresh_ms by a background thread) and the
 * resolution of a request's tenant from its sources.
 *
 * The directory's writes and the storage functions report failure in a
 * struct rt_err (err.h): a duplicate code, domain or subdomain is
 * rt_err_duplicate(err) (SQLSTATE 23505). Uses: err.c, sql.c (the writes),
 * db.c (the server's reads), hash.h, ticker.c, libpq. */
#ifndef RT_TENANT_H
#define RT_TENANT_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "db.h"
#include "err.h"

#define TENANT_CODE_MAX 40

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
 * A duplicate (code, domain or subdomain) fills err with SQLSTATE 23505, so
 * rt_err_duplicate(err) holds. */
int tenant_row_create(PGconn *c, const struct tenant_spec *spec, long long *id,
                      struct rt_err *err) __attribute__((warn_unused_result));

/* Sets status (and status_reason; NULL clears it). Fails when no row has
 * that code. */
int tenant_set_status(PGconn *c, const char *code, const char *status, const char *reason,
                      struct rt_err *err) __attribute__((warn_unused_result));

/* Deletes the directory row. */
int tenant_row_delete(PGconn *c, const char *code, struct rt_err *err)
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
int tenant_row_get(PGconn *c, const char *code, struct tenant_row *row, struct rt_err *err);

/* Creates the tenant's storage: the schema, or the database (owned by the
 * connection's role, CONNECT for rt_app only); nothing for shared mode.
 * from (NULL: empty storage) names pre-migrated storage to take instead
 * (spare.h): a spare schema renamed into place, or a template database
 * cloned. from must be a name the runtime made, not client input. */
int tenant_storage_create(PGconn *c, const struct tenant_row *row, const char *from,
                          struct rt_err *err) __attribute__((warn_unused_result));

/* Drops the tenant's storage: the schema or database, or in shared mode the
 * tenant's rows in every shared table. Missing storage is not an error. */
int tenant_storage_drop(PGconn *c, const struct tenant_row *row, struct rt_err *err)
    __attribute__((warn_unused_result));

/* ---- the directory cache and resolution (server side) -------------------- */

enum tenant_status {
    TENANT_PROVISIONING,
    TENANT_ACTIVE,
    TENANT_SUSPENDED,
    TENANT_FAILED,
    TENANT_DELETED,
};

struct tenant_info {
    long long id;
    char code[TENANT_CODE_MAX + 1];
    char isolation[16];
    char server[64];
    char schema[64]; /* the search_path of its transactions */
    char dbname[64]; /* "" for the main database */
    char *name;
    char *domain;    /* NULL when none */
    char *subdomain; /* NULL when none */
    char *settings;  /* JSON text */
    enum tenant_status status;
};

struct tenant_snapshot;

/* Builds a snapshot from the rows of TENANT_SNAPSHOT_SQL (NULL: empty). */
#define TENANT_SNAPSHOT_SQL                                                         \
    "SELECT id, code, isolation, server, coalesce(schema_name, ''), "               \
    "coalesce(database_name, ''), name, domain, subdomain, settings::text, status " \
    "FROM core.tenants"
struct tenant_snapshot *tenant_snapshot_build(const PGresult *rows);
void tenant_snapshot_retain(struct tenant_snapshot *s);
void tenant_snapshot_release(struct tenant_snapshot *s);
size_t tenant_snapshot_count(const struct tenant_snapshot *s);

const struct tenant_info *tenant_by_code(const struct tenant_snapshot *s, const char *code);
const struct tenant_info *tenant_by_id(const struct tenant_snapshot *s, long long id);
const struct tenant_info *tenant_by_domain(const struct tenant_snapshot *s,
                                           const char *domain);
const struct tenant_info *tenant_by_subdomain(const struct tenant_snapshot *s,
                                              const char *sub);

/* Where a request's tenant may come from (each can be switched off). */
struct tenant_sources {
    bool path;               /* the route's :tenant_id parameter */
    bool header;             /* X-Tenant-Id: id or code */
    bool subdomain;          /* <subdomain>.<base_domain> in Host */
    bool domain;             /* a tenant's custom domain in Host */
    bool token;              /* the tid claim of a tenant token (checked by http.c) */
    const char *base_domain; /* "" or NULL: no subdomains */
};

/* Parses "path,header,subdomain,domain,token" (any subset). Returns -1 on an
 * unknown name. */
int tenant_sources_parse(const char *list, struct tenant_sources *out);

struct tenant_request {
    const char *path_param; /* NULL when the route has none */
    const char *header;     /* X-Tenant-Id, or NULL */
    const char *host;       /* Host, or NULL */
};

enum tenant_outcome {
    TENANT_RESOLVED,
    TENANT_NONE,      /* no source named a tenant */
    TENANT_INVALID,   /* 400: a malformed identifier */
    TENANT_CONFLICT,  /* 400: two sources disagree */
    TENANT_UNKNOWN,   /* 404 */
    TENANT_FORBIDDEN, /* 403: suspended */
};

/* Resolves req against the snapshot. Identifiers are checked before any
 * lookup; nothing here touches the database. *out is borrowed from s. *why
 * is a client-facing message for the non-resolved outcomes. */
enum tenant_outcome tenant_resolve(const struct tenant_snapshot *s,
                                   const struct tenant_sources *src,
                                   const struct tenant_request *req,
                                   const struct tenant_info **out, const char **why);

/* The server's view of the directory: the current snapshot, checked for
 * changes (a count and the latest updated_at) every refresh_ms by a thread of
 * its own, so no request waits for it. A directory that cannot be read
 * leaves the last snapshot in place. */
struct tenant_dir;

/* pool (borrowed) reads core.tenants as the request role. Loads once, then
 * starts the refresher; tenant_dir_free stops it. */
struct tenant_dir *tenant_dir_new(struct db_pool *pool, int refresh_ms);
void tenant_dir_free(struct tenant_dir *d);

/* The current snapshot, retained: the caller releases it. Never NULL unless
 * out of memory. */
struct tenant_snapshot *tenant_dir_snapshot(struct tenant_dir *d);

/* ---- the scope of a request's transactions ----------------------------- */

/* The per-transaction settings of a request of tenant t: search_path (its
 * schema) and app.tenant_id, set with set_config(..., true) inside every
 * transaction and never on the session, so a pooled connection carries
 * nothing to the next request. settings point into the struct itself: use
 * it where it was filled, never a copy. */
struct tenant_scope {
    struct db_setting settings[2];
    int nsettings;
    long long tenant_id; /* what the transaction is signed for (db_tx) */
    char search_path[80];
    char id[32];
};

/* Fills out for tenant t (borrowed; the schema name comes from a validated
 * code). */
void tenant_scope(const struct tenant_info *t, struct tenant_scope *out);

#endif
