/* tenant: directory rows and storage per isolation mode, the snapshot and
 * resolution (see tenant.h). */
#include "tenant.h"

#include "hash.h"
#include "sql.h"
#include "ticker.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

int tenant_row_create(PGconn *c, const struct tenant_spec *spec, long long *id,
                      struct rt_err *err)
{
    char store[64];

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
        sql_query(c,
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
        /* The code is taken by a tenant that did not fail: the same
         * refusal as a duplicate domain's, which the server reports. */
        PQclear(r);
        rt_err_set(err, "tenant '%s' already exists", spec->code);
        snprintf(err->sqlstate, sizeof err->sqlstate, "23505");
        return -1;
    }
    *id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return 0;
}

int tenant_set_status(PGconn *c, const char *code, const char *status, const char *reason,
                      struct rt_err *err)
{
    const char *v[] = {code, status, reason};
    PGresult *r = sql_query(c,
                            "UPDATE core.tenants SET status = $2, status_reason = $3, "
                            "deleted_at = CASE WHEN $2 = 'deleted' THEN now() END, "
                            "updated_at = now() WHERE code = $1",
                            3, v, err);
    if (!r)
        return -1;
    bool found = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    if (!found)
        return rt_err_set(err, "no tenant '%s'", code);
    return 0;
}

int tenant_row_delete(PGconn *c, const char *code, struct rt_err *err)
{
    const char *v[] = {code};
    return sql_run(c, "DELETE FROM core.tenants WHERE code = $1", 1, v, err);
}

int tenant_row_get(PGconn *c, const char *code, struct tenant_row *row, struct rt_err *err)
{
    const char *v[] = {code};
    memset(row, 0, sizeof *row);
    PGresult *r = sql_query(c,
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

int tenant_storage_create(PGconn *c, const struct tenant_row *row, const char *from,
                          struct rt_err *err)
{
    char q[96], qfrom[96], sql[512];

    if (from && sql_ident(c, from, qfrom, sizeof qfrom, err) < 0)
        return -1;
    if (strcmp(row->isolation, "schema") == 0) {
        if (sql_ident(c, row->schema_name, q, sizeof q, err) < 0)
            return -1;
        if (from)
            snprintf(sql, sizeof sql,
                     "ALTER SCHEMA %s RENAME TO %s; GRANT USAGE ON SCHEMA %s TO rt_app",
                     qfrom, q, q);
        else
            snprintf(sql, sizeof sql,
                     "CREATE SCHEMA %s; GRANT USAGE ON SCHEMA %s TO rt_app", q, q);
        return sql_exec(c, sql, err);
    }
    if (strcmp(row->isolation, "database") == 0) {
        if (sql_ident(c, row->database_name, q, sizeof q, err) < 0)
            return -1;
        /* CREATE DATABASE cannot run inside a transaction block: one
         * statement per call. A clone does not copy the template's
         * database-level privileges: they are set here either way. */
        snprintf(sql, sizeof sql, "CREATE DATABASE %s%s%s", q, from ? " TEMPLATE " : "",
                 from ? qfrom : "");
        if (sql_exec(c, sql, err) < 0)
            return -1;
        snprintf(sql, sizeof sql,
                 "REVOKE ALL ON DATABASE %s FROM PUBLIC; "
                 "GRANT CONNECT ON DATABASE %s TO rt_app",
                 q, q);
        if (sql_exec(c, sql, err) == 0)
            return 0;
        /* Not made, as far as the caller knows: leave nothing behind. */
        struct rt_err derr;
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", q);
        (void)sql_exec(c, sql, &derr);
        return -1;
    }
    return 0; /* shared: the rows live in the shared tables */
}

int tenant_storage_drop(PGconn *c, const struct tenant_row *row, struct rt_err *err)
{
    char q[96], sql[512];

    if (strcmp(row->isolation, "schema") == 0) {
        if (sql_ident(c, row->schema_name, q, sizeof q, err) < 0)
            return -1;
        snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", q);
        return sql_exec(c, sql, err);
    }
    if (strcmp(row->isolation, "database") == 0) {
        if (sql_ident(c, row->database_name, q, sizeof q, err) < 0)
            return -1;
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", q);
        return sql_exec(c, sql, err);
    }
    /* Shared mode: the tenant's rows in every shared table that has a
     * tenant_id, seen through its own RLS scope (the policies are FORCE'd,
     * so the owner is filtered too). Children are deleted through their
     * cascading foreign keys; the loop deletes until nothing is left. */
    char id[32];
    snprintf(id, sizeof id, "%lld", row->id);
    const char *v[] = {id};
    if (sql_exec(c, "BEGIN", err) < 0)
        return -1;
    PGresult *r =
        sql_query(c,
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
        if (!stmts) {
            rt_err_set(err, "out of memory");
            goto rollback;
        }
        int rc = sql_exec(c, stmts, err);
        free(stmts);
        if (rc < 0)
            goto rollback;
    } else {
        PQclear(r);
    }
    return sql_exec(c, "COMMIT", err);
rollback:;
    struct rt_err rerr;
    (void)sql_exec(c, "ROLLBACK", &rerr);
    return -1;
}

/* ---- the directory snapshot ---------------------------------------------- */

/* Open-addressing index from a key to a position in v. */
struct index {
    int *slot; /* -1: empty */
    size_t mask;
};

struct tenant_snapshot {
    _Atomic int refs;
    struct tenant_info *v;
    size_t n;
    struct index by_code, by_id, by_domain, by_sub;
};

static uint64_t hash_id(long long id)
{
    uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15ULL;
    return x ^ (x >> 29);
}

static int index_init(struct index *ix, size_t n)
{
    size_t cap = 16;
    while (cap < n * 2)
        cap *= 2;
    ix->slot = malloc(cap * sizeof *ix->slot);
    if (!ix->slot)
        return -1;
    for (size_t i = 0; i < cap; i++)
        ix->slot[i] = -1;
    ix->mask = cap - 1;
    return 0;
}

static void index_put(struct index *ix, uint64_t h, int pos)
{
    size_t i = h & ix->mask;
    while (ix->slot[i] >= 0)
        i = (i + 1) & ix->mask;
    ix->slot[i] = pos;
}

static const char *str_key(const struct tenant_info *t, int which)
{
    return which == 0 ? t->code : which == 1 ? t->domain : t->subdomain;
}

static const struct tenant_info *index_find_str(const struct tenant_snapshot *s,
                                                const struct index *ix, int which,
                                                const char *key)
{
    if (!s || !key)
        return NULL;
    for (size_t i = hash_str(key) & ix->mask; ix->slot[i] >= 0; i = (i + 1) & ix->mask) {
        const struct tenant_info *t = &s->v[ix->slot[i]];
        const char *k = str_key(t, which);
        if (k && strcmp(k, key) == 0)
            return t;
    }
    return NULL;
}

static char *dup_or_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : strdup(PQgetvalue(r, row, col));
}

static enum tenant_status status_parse(const char *s)
{
    if (strcmp(s, "active") == 0)
        return TENANT_ACTIVE;
    if (strcmp(s, "suspended") == 0)
        return TENANT_SUSPENDED;
    if (strcmp(s, "provisioning") == 0)
        return TENANT_PROVISIONING;
    if (strcmp(s, "deleted") == 0)
        return TENANT_DELETED;
    return TENANT_FAILED;
}

struct tenant_snapshot *tenant_snapshot_build(const PGresult *r)
{
    struct tenant_snapshot *s = calloc(1, sizeof *s);
    size_t n = r ? (size_t)PQntuples(r) : 0;

    if (!s)
        return NULL;
    s->refs = 1;
    s->v = calloc(n ? n : 1, sizeof *s->v);
    if (!s->v || index_init(&s->by_code, n) < 0 || index_init(&s->by_id, n) < 0 ||
        index_init(&s->by_domain, n) < 0 || index_init(&s->by_sub, n) < 0) {
        tenant_snapshot_release(s);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        struct tenant_info *t = &s->v[i];
        int row = (int)i;
        t->id = strtoll(PQgetvalue(r, row, 0), NULL, 10);
        snprintf(t->code, sizeof t->code, "%s", PQgetvalue(r, row, 1));
        snprintf(t->isolation, sizeof t->isolation, "%s", PQgetvalue(r, row, 2));
        snprintf(t->server, sizeof t->server, "%s", PQgetvalue(r, row, 3));
        if (strcmp(t->isolation, "shared") == 0) {
            strcpy(t->schema, "shared");
        } else if (strcmp(t->isolation, "database") == 0) {
            strcpy(t->schema, "public");
            snprintf(t->dbname, sizeof t->dbname, "%s", PQgetvalue(r, row, 5));
        } else {
            snprintf(t->schema, sizeof t->schema, "%s", PQgetvalue(r, row, 4));
        }
        t->name = dup_or_null(r, row, 6);
        t->domain = dup_or_null(r, row, 7);
        t->subdomain = dup_or_null(r, row, 8);
        t->settings = dup_or_null(r, row, 9);
        t->status = status_parse(PQgetvalue(r, row, 10));
        s->n = i + 1;
        index_put(&s->by_code, hash_str(t->code), row);
        index_put(&s->by_id, hash_id(t->id), row);
        if (t->domain)
            index_put(&s->by_domain, hash_str(t->domain), row);
        if (t->subdomain)
            index_put(&s->by_sub, hash_str(t->subdomain), row);
    }
    return s;
}

void tenant_snapshot_retain(struct tenant_snapshot *s)
{
    if (s)
        atomic_fetch_add(&s->refs, 1);
}

void tenant_snapshot_release(struct tenant_snapshot *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].name);
        free(s->v[i].domain);
        free(s->v[i].subdomain);
        free(s->v[i].settings);
    }
    free(s->v);
    free(s->by_code.slot);
    free(s->by_id.slot);
    free(s->by_domain.slot);
    free(s->by_sub.slot);
    free(s);
}

size_t tenant_snapshot_count(const struct tenant_snapshot *s)
{
    return s ? s->n : 0;
}

const struct tenant_info *tenant_by_code(const struct tenant_snapshot *s, const char *code)
{
    return s ? index_find_str(s, &s->by_code, 0, code) : NULL;
}

const struct tenant_info *tenant_by_domain(const struct tenant_snapshot *s,
                                           const char *domain)
{
    return s ? index_find_str(s, &s->by_domain, 1, domain) : NULL;
}

const struct tenant_info *tenant_by_subdomain(const struct tenant_snapshot *s,
                                              const char *sub)
{
    return s ? index_find_str(s, &s->by_sub, 2, sub) : NULL;
}

const struct tenant_info *tenant_by_id(const struct tenant_snapshot *s, long long id)
{
    if (!s)
        return NULL;
    for (size_t i = hash_id(id) & s->by_id.mask; s->by_id.slot[i] >= 0;
         i = (i + 1) & s->by_id.mask)
        if (s->v[s->by_id.slot[i]].id == id)
            return &s->v[s->by_id.slot[i]];
    return NULL;
}

/* ---- resolution ------------------------------------------------------------ */

int tenant_sources_parse(const char *list, struct tenant_sources *out)
{
    const char *base = out->base_domain;
    memset(out, 0, sizeof *out);
    out->base_domain = base;
    for (const char *p = list; p && *p;) {
        size_t n = strcspn(p, ", ");
        if (n == 4 && strncmp(p, "path", 4) == 0)
            out->path = true;
        else if (n == 6 && strncmp(p, "header", 6) == 0)
            out->header = true;
        else if (n == 9 && strncmp(p, "subdomain", 9) == 0)
            out->subdomain = true;
        else if (n == 6 && strncmp(p, "domain", 6) == 0)
            out->domain = true;
        else if (n == 5 && strncmp(p, "token", 5) == 0)
            out->token = true;
        else if (n > 0)
            return -1;
        p += n;
        p += strspn(p, ", ");
    }
    return 0;
}

/* An id (digits, no sign, at most 18) or a code; anything else is invalid. */
static const struct tenant_info *by_ident(const struct tenant_snapshot *s, const char *v,
                                          bool *valid)
{
    size_t n = strlen(v);
    *valid = true;
    if (n > 0 && n <= 18 && strspn(v, "0123456789") == n && v[0] != '0')
        return tenant_by_id(s, strtoll(v, NULL, 10));
    if (tenant_code_valid(v))
        return tenant_by_code(s, v);
    *valid = false;
    return NULL;
}

static bool host_is_address(const char *host)
{
    return strcmp(host, "localhost") == 0 || strspn(host, "0123456789.") == strlen(host) ||
           host[0] == '[';
}

enum tenant_outcome tenant_resolve(const struct tenant_snapshot *s,
                                   const struct tenant_sources *src,
                                   const struct tenant_request *req,
                                   const struct tenant_info **out, const char **why)
{
    const struct tenant_info *found = NULL;
    bool named = false, valid;
    char host[256];

    *out = NULL;
    *why = NULL;
    /* Each source that names a tenant must name a valid, known one, and all
     * must agree. */
#define CONSIDER(t)                                           \
    do {                                                      \
        const struct tenant_info *t_ = (t);                   \
        if (!t_) {                                            \
            *why = "unknown tenant";                          \
            return TENANT_UNKNOWN;                            \
        }                                                     \
        if (found && found != t_) {                           \
            *why = "the request names two different tenants"; \
            return TENANT_CONFLICT;                           \
        }                                                     \
        found = t_;                                           \
        named = true;                                         \
    } while (0)

    if (src->path && req->path_param) {
        const struct tenant_info *t = by_ident(s, req->path_param, &valid);
        if (!valid) {
            *why = "invalid tenant identifier in the path";
            return TENANT_INVALID;
        }
        CONSIDER(t);
    }
    if (src->header && req->header) {
        const struct tenant_info *t = by_ident(s, req->header, &valid);
        if (!valid) {
            *why = "invalid X-Tenant-Id (a tenant id or code)";
            return TENANT_INVALID;
        }
        CONSIDER(t);
    }
    if ((src->subdomain || src->domain) && req->host && *req->host) {
        size_t n = strcspn(req->host, ":");
        if (n >= sizeof host) {
            *why = "invalid Host";
            return TENANT_INVALID;
        }
        for (size_t i = 0; i < n; i++)
            host[i] = (char)tolower((unsigned char)req->host[i]);
        host[n] = '\0';
        const char *base = src->base_domain ? src->base_domain : "";
        size_t bl = strlen(base);
        if (!host_is_address(host) && strcmp(host, base) != 0) {
            if (!tenant_host_valid(host)) {
                *why = "invalid Host";
                return TENANT_INVALID;
            }
            if (src->subdomain && bl && n > bl + 1 && host[n - bl - 1] == '.' &&
                strcmp(host + n - bl, base) == 0) {
                host[n - bl - 1] = '\0';
                if (strchr(host, '.')) {
                    *why = "invalid subdomain";
                    return TENANT_INVALID;
                }
                CONSIDER(tenant_by_subdomain(s, host));
            } else if (src->domain && tenant_by_domain(s, host)) {
                /* A Host that is no tenant's domain names no tenant: it may
                 * be the platform's own host name. */
                CONSIDER(tenant_by_domain(s, host));
            }
        }
    }
#undef CONSIDER
    if (!named)
        return TENANT_NONE;
    if (found->status == TENANT_SUSPENDED) {
        *why = "this tenant is suspended";
        return TENANT_FORBIDDEN;
    }
    if (found->status != TENANT_ACTIVE) {
        *why = "unknown tenant";
        return TENANT_UNKNOWN;
    }
    *out = found;
    return TENANT_RESOLVED;
}

/* ---- the server's directory ------------------------------------------------ */

struct tenant_dir {
    struct db_pool *pool;
    pthread_mutex_t mu; /* guards cur */
    struct ticker *ticker;
    struct tenant_snapshot *cur;
    char stamp[128];
};

/* The stamp of the directory: it changes with every committed change of a
 * row (core migration 0004 raises a row's revision on each change), in
 * whatever order concurrent transactions commit, which max(updated_at) did
 * not. Summing hashes needs no sort, and a delete plus an insert cannot
 * cancel out the way a plain sum of revisions could. */
#define DIR_STAMP_SQL                                                                \
    "SELECT count(*)::text || '/' || coalesce(sum(hashtextextended(id::text || '.' " \
    "|| revision::text, 0)::numeric), 0)::text FROM core.tenants"
/* Before that migration: the old stamp, so a server started ahead of
 * `runtime migrate` still follows the directory. */
#define DIR_STAMP_SQL_OLD                                                  \
    "SELECT count(*)::text || '/' || coalesce(max(updated_at)::text, '') " \
    "FROM core.tenants"

/* Reads the stamp and, when it changed, the whole directory. */
static void dir_refresh(struct tenant_dir *d)
{
    static const struct db_tx ro = {NULL, 0, true, 0};
    struct db_conn *c = NULL;
    struct db_error err;
    PGresult *r = NULL;

    if (db_query(d->pool, &c, &ro, DIR_STAMP_SQL, 0, NULL, &r, &err) < 0 &&
        (strcmp(err.sqlstate, "42703") != 0 || /* undefined_column: no revision yet */
         db_query(d->pool, &c, &ro, DIR_STAMP_SQL_OLD, 0, NULL, &r, &err) < 0))
        goto done; /* not migrated yet, or unreachable: keep what we have */
    const char *stamp = PQgetvalue(r, 0, 0);
    if (strcmp(stamp, d->stamp) != 0) {
        char next[128];
        snprintf(next, sizeof next, "%s", stamp);
        PQclear(r);
        r = NULL;
        if (db_query(d->pool, &c, &ro, TENANT_SNAPSHOT_SQL, 0, NULL, &r, &err) == 0) {
            struct tenant_snapshot *s = tenant_snapshot_build(r);
            if (s) {
                pthread_mutex_lock(&d->mu);
                struct tenant_snapshot *old = d->cur;
                d->cur = s;
                pthread_mutex_unlock(&d->mu);
                tenant_snapshot_release(old);
                snprintf(d->stamp, sizeof d->stamp, "%s", next);
            }
        }
    }
done:
    PQclear(r);
    db_checkin(d->pool, c);
}

/* The refresher: the ticker checks the directory every refresh_ms, so a
 * request never waits for it. */
static void dir_tick(void *arg)
{
    dir_refresh(arg);
}

struct tenant_dir *tenant_dir_new(struct db_pool *pool, int refresh_ms)
{
    struct tenant_dir *d = calloc(1, sizeof *d);

    if (!d)
        return NULL;
    d->pool = pool;
    pthread_mutex_init(&d->mu, NULL);
    d->cur = tenant_snapshot_build(NULL);
    if (!d->cur) {
        tenant_dir_free(d);
        return NULL;
    }
    dir_refresh(d);
    if (!(d->ticker = ticker_start(refresh_ms, dir_tick, d))) {
        tenant_dir_free(d);
        return NULL;
    }
    return d;
}

void tenant_dir_free(struct tenant_dir *d)
{
    if (!d)
        return;
    ticker_stop(d->ticker);
    tenant_snapshot_release(d->cur);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

struct tenant_snapshot *tenant_dir_snapshot(struct tenant_dir *d)
{
    pthread_mutex_lock(&d->mu);
    struct tenant_snapshot *s = d->cur;
    tenant_snapshot_retain(s);
    pthread_mutex_unlock(&d->mu);
    return s;
}

/* ---- the scope of a request's transactions ----------------------------- */

void tenant_scope(const struct tenant_info *t, struct tenant_scope *out)
{
    snprintf(out->search_path, sizeof out->search_path, "\"%s\"", t->schema);
    snprintf(out->id, sizeof out->id, "%lld", t->id);
    out->settings[0] = (struct db_setting){"search_path", out->search_path};
    out->settings[1] = (struct db_setting){"app.tenant_id", out->id};
    out->nsettings = 2;
    out->tenant_id = t->id;
}
