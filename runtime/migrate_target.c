/* migrate_target: connections, ledgers, locks and the steps of one target
 * (see migrate_target.h and docs/MIGRATIONS.md). */
#include "migrate_target.h"

#include "buf.h"
#include "crypto.h"
#include "db.h"
#include "log.h"
#include "lua/rt_migrate.h"
#include "sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- small helpers ------------------------------------------------------ */

double migrate_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* The worker's connection to (server, dbname), made once and reused across
 * the targets that live there. */
PGconn *migrate_conn(struct worker *w, const char *server, const char *dbname,
                     struct rt_err *err)
{
    struct conn_entry *e;

    const struct config_server *srv = config_server(w->eng->cfg, server);
    if (!srv) {
        rt_err_set(err, "unknown server '%s' (not in config servers)", server);
        return NULL;
    }
    for (int i = 0; i < w->nconns; i++) {
        e = &w->conns[i];
        if (strcmp(e->server, server) == 0 && strcmp(e->dbname, dbname) == 0) {
            if (PQstatus(e->pg) == CONNECTION_OK &&
                PQtransactionStatus(e->pg) == PQTRANS_IDLE)
                return e->pg;
            PQfinish(e->pg);
            w->conns[i] = w->conns[--w->nconns];
            break;
        }
    }
    if (w->nconns == MIGRATE_MAX_CONNS) {
        PQfinish(w->conns[0].pg);
        memmove(&w->conns[0], &w->conns[1], sizeof w->conns[0] * (MIGRATE_MAX_CONNS - 1));
        w->nconns--;
    }
    struct rt_err why;
    PGconn *pg = db_connect(srv->owner_url, dbname[0] ? dbname : NULL, "runtime-migrate",
                            w->eng->cfg->database_connect_timeout, &why);
    if (!pg) {
        rt_err_set(err, "cannot connect%s%s: %s", dbname[0] ? " to database " : "", dbname,
                   why.msg);
        return NULL;
    }
    char lt[32];
    snprintf(lt, sizeof lt, "%d", w->eng->cfg->migrate_lock_timeout_ms);
    const char *v[] = {lt};
    /* synchronous_commit off: a step and its ledger row still commit or not
     * together; a crash can only lose the last fraction of a second of
     * commits, which the next run applies again. It saves a WAL flush per
     * step, the main cost of migrating a large fleet. */
    if (sql_run(pg,
                "SELECT set_config('lock_timeout', $1, false), "
                "set_config('synchronous_commit', 'off', false)",
                1, v, err) < 0) {
        PQfinish(pg);
        return NULL;
    }
    e = &w->conns[w->nconns++];
    snprintf(e->server, sizeof e->server, "%s", server);
    snprintf(e->dbname, sizeof e->dbname, "%s", dbname);
    e->pg = pg;
    return pg;
}

void migrate_worker_close(struct worker *w)
{
    for (int i = 0; i < w->nconns; i++)
        PQfinish(w->conns[i].pg);
    w->nconns = 0;
    vm_free(w->vm);
    w->vm = NULL;
}

/* ---- step files --------------------------------------------------------- */

char *migrate_steps_dir(const struct config *cfg, const char *which)
{
    char *root = config_path(cfg, cfg->scripts_dir);
    if (!root)
        return NULL;
    size_t n = strlen(root) + strlen(which) + 16;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/migrations/%s", root, which);
    free(root);
    return p;
}

struct vm_steps *migrate_tenant_steps(const struct config *cfg, struct rt_err *err)
{
    struct rt_err verr;
    char *dir = migrate_steps_dir(cfg, "tenant");
    if (!dir) {
        rt_err_set(err, "out of memory");
        return NULL;
    }
    struct vm_steps *s = vm_steps_load(dir, "migrations/tenant", VM_STEP_MIGRATION, &verr);
    free(dir);
    if (!s)
        rt_err_set(err, "%s", verr.msg);
    return s;
}

/* ---- ledgers ------------------------------------------------------------ */

struct ledger {
    bool exists;
    int n; /* rows, by version 1..n (the engine never leaves gaps) */
    int max;
    char (*checksum)[65];
    bool *dirty;
};

static void ledger_free(struct ledger *l)
{
    free(l->checksum);
    free(l->dirty);
    memset(l, 0, sizeof *l);
}

#define LEDGER_DDL                                      \
    "CREATE SCHEMA IF NOT EXISTS %s;"                   \
    "CREATE TABLE IF NOT EXISTS %s.schema_migrations (" \
    " version integer PRIMARY KEY,"                     \
    " name text NOT NULL,"                              \
    " checksum text NOT NULL,"                          \
    " applied_at timestamptz NOT NULL DEFAULT now(),"   \
    " duration_ms integer NOT NULL DEFAULT 0,"          \
    " dirty boolean NOT NULL DEFAULT false);"

static int ledger_ensure(PGconn *c, const char *qschema, struct rt_err *err)
{
    char sql[1024];
    snprintf(sql, sizeof sql, LEDGER_DDL, qschema, qschema);
    return sql_exec(c, sql, err);
}

/* Fills l from the rows of SELECT version, checksum, dirty ... ORDER BY
 * version. */
static int ledger_parse(PGresult *r, const char *qschema, struct ledger *l,
                        struct rt_err *err)
{
    int n = PQntuples(r);

    l->exists = true;
    l->max = n ? atoi(PQgetvalue(r, n - 1, 0)) : 0;
    l->checksum = calloc((size_t)l->max + 1, sizeof *l->checksum);
    l->dirty = calloc((size_t)l->max + 1, sizeof *l->dirty);
    if (!l->checksum || !l->dirty)
        return rt_err_set(err, "out of memory");
    for (int i = 0; i < n; i++) {
        int v = atoi(PQgetvalue(r, i, 0));
        if (v < 1 || v > l->max)
            continue;
        snprintf(l->checksum[v], 65, "%s", PQgetvalue(r, i, 1));
        l->dirty[v] = PQgetvalue(r, i, 2)[0] == 't';
    }
    l->n = n;
    if (n != l->max)
        return rt_err_set(err,
                          "ledger %s.schema_migrations has gaps (%d rows, max version %d)",
                          qschema, n, l->max);
    return 0;
}

#define LEDGER_SELECT \
    "SELECT version, checksum, dirty FROM %s.schema_migrations ORDER BY version"

static int ledger_read(PGconn *c, const char *qschema, struct ledger *l, struct rt_err *err)
{
    char reg[256], sql[512];
    PGresult *r;

    memset(l, 0, sizeof *l);
    snprintf(reg, sizeof reg, "%s.schema_migrations", qschema);
    const char *v[] = {reg};
    r = sql_query(c, "SELECT to_regclass($1) IS NOT NULL", 1, v, err);
    if (!r)
        return -1;
    bool exists = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!exists)
        return 0;
    snprintf(sql, sizeof sql, LEDGER_SELECT, qschema);
    r = sql_query(c, sql, 0, NULL, err);
    if (!r)
        return -1;
    int rc = ledger_parse(r, qschema, l, err);
    PQclear(r);
    return rc;
}

/* Takes the target's lock, creates the ledger if needed and reads it, in one
 * round trip. On failure the lock may or may not be held: unlock anyway. */
static int lock_and_read(PGconn *c, const char *key, const char *qschema, struct ledger *l,
                         struct rt_err *err)
{
    char sql[2048];
    char *lit = PQescapeLiteral(c, key, strlen(key));

    memset(l, 0, sizeof *l);
    if (!lit)
        return sql_error(c, NULL, err);
    snprintf(sql, sizeof sql,
             "SELECT pg_advisory_lock(" MIGRATE_LOCK_CLASS
             ", hashtext(%s));" LEDGER_DDL LEDGER_SELECT,
             lit, qschema, qschema, qschema);
    PQfreemem(lit);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        sql_error(c, r, err);
        PQclear(r);
        return -1;
    }
    int rc = ledger_parse(r, qschema, l, err);
    PQclear(r);
    return rc;
}

/* SHA-256 over "version:checksum\n" for versions 1..upto, as applied.
 * Returns 0, or -1 when the digest cannot be computed (out of memory). */
static int fingerprint(const struct ledger *l, const struct vm_steps *s, int upto,
                       char out[65])
{
    struct crypto_sha256 c;
    unsigned char md[32];
    char line[96];

    crypto_sha256_init(&c);
    for (int v = 1; v <= upto; v++) {
        const char *sum =
            l && v <= l->max && l->checksum[v][0] ? l->checksum[v] : s->v[v - 1].checksum;
        int n = snprintf(line, sizeof line, "%d:%s\n", v, sum);
        crypto_sha256_update(&c, line, (size_t)n);
    }
    if (crypto_sha256_final(&c, md) < 0)
        return -1;
    crypto_hex(md, sizeof md, out);
    return 0;
}

int migrate_fingerprint(const struct vm_steps *s, int upto, char out[65])
{
    return fingerprint(NULL, s, upto, out);
}

/* ---- one target --------------------------------------------------------- */

struct echo {
    struct engine *eng;
    const struct target *t;
    const struct vm_step *step;
    struct report_target *r;
};

static void echo_sql(void *ud, const char *sql)
{
    struct echo *e = ud;

    if (!e->eng->dry_run)
        return;
    /* Out of memory loses the statement from the report, not the run. */
    (void)report_target_sql(e->r, e->step->version, e->step->name, sql);
}

int migrate_lock(PGconn *c, const struct target *t, bool lock, struct rt_err *err)
{
    const char *v[] = {t->key};
    if (sql_run(c,
                lock ? "SELECT pg_advisory_lock(" MIGRATE_LOCK_CLASS ", hashtext($1))"
                     : "SELECT pg_advisory_unlock(" MIGRATE_LOCK_CLASS ", hashtext($1))",
                1, v, err) == 0)
        return 0;
    if (lock)
        rt_err_prefix(err, "could not take the migration lock of %.190s", t->key);
    return -1;
}

/* BEGIN and the step's scoping, in one round trip. */
static int tx_begin(PGconn *c, const struct target *t, const char *qschema,
                    struct rt_err *err)
{
    char sql[768], id[32];
    snprintf(id, sizeof id, "%lld", t->kind == TK_TENANT ? t->tenant_id : 0LL);
    char *path = PQescapeLiteral(c, qschema, strlen(qschema));
    if (!path)
        return sql_error(c, NULL, err);
    snprintf(sql, sizeof sql,
             "BEGIN; SELECT set_config('search_path', %s, true), "
             "set_config('app.tenant_id', '%s', true)",
             path, t->kind == TK_TENANT ? id : "");
    PQfreemem(path);
    return sql_exec(c, sql, err);
}

/* Marks r failed with err's message. Returns -1. */
static int target_failed(struct report_target *r, const struct rt_err *err)
{
    r->status = REPORT_FAILED;
    /* report.h's error holds what rt_err held before it grew to 2048. */
    snprintf(r->error, sizeof r->error, "%.*s", (int)sizeof r->error - 1, err->msg);
    return -1;
}

static void step_failed(struct report_target *r, const struct vm_step *st, const char *msg)
{
    r->status = REPORT_FAILED;
    r->failed_version = st->version;
    snprintf(r->error, sizeof r->error, "%04d_%.64s: %.900s", st->version, st->name, msg);
}

static void mctx_init(struct rt_migrate_ctx *m, const struct target *t, struct echo *e,
                      PGconn *c)
{
    /* Pre-made storage becomes a tenant's: its steps see the tenant target,
     * without a tenant (as the shared target's do). */
    static const char *const kinds[] = {"core", "shared", "tenant", "tenant"};
    memset(m, 0, sizeof *m);
    m->conn = c;
    m->target = kinds[t->kind];
    m->schema = t->schema;
    m->dry_run = e->eng->dry_run;
    if (t->kind == TK_TENANT) {
        m->tenant_id = t->tenant_id;
        m->tenant_code = t->code;
        m->isolation = t->isolation;
    }
    m->echo = echo_sql;
    m->echo_ud = e;
}

/* Runs one step up or down inside the current transaction, or (a step that
 * declared transaction = false) on its own. */
static int run_step(struct worker *w, PGconn *c, const struct target *t,
                    const struct vm_step *st, bool up, struct report_target *r)
{
    struct rt_migrate_ctx m;
    struct echo e = {w->eng, t, st, r};
    struct rt_err verr;

    mctx_init(&m, t, &e, c);
    if (vm_run_step(w->vm, st->version, up ? "up" : "down", &m, &verr) < 0) {
        step_failed(r, st, verr.msg);
        return -1;
    }
    return 0;
}

static int ledger_write(PGconn *c, const char *qschema, const struct vm_step *st, double ms,
                        const char *tail, struct rt_err *err)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO %s.schema_migrations (version, name, checksum, duration_ms) "
             "VALUES (%d, '%s', '%s', %d)%s",
             qschema, st->version, st->name, st->checksum, (int)ms, tail);
    return sql_exec(c, sql, err);
}

int migrate_directory_exists(PGconn *c, bool *exists, struct rt_err *err)
{
    PGresult *r =
        sql_query(c, "SELECT to_regclass('core.tenants') IS NOT NULL", 0, NULL, err);
    if (!r)
        return -1;
    *exists = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return 0;
}

static void directory_update(struct worker *w, const struct target *t,
                             const struct report_target *r, const char *fp)
{
    struct rt_err err;
    char id[32], version[16];
    PGconn *c;
    bool exists = false;

    if (t->kind == TK_CORE || t->kind == TK_STORAGE || w->eng->dry_run)
        return;
    c = migrate_conn(w, "main", "", &err);
    if (!c || (t->kind == TK_SHARED && migrate_directory_exists(c, &exists, &err) < 0)) {
        log_msg(LOG_LEVEL_ERROR, NULL, "%s: cannot record the result in the directory: %s",
                t->key, err.msg);
        return;
    }
    if (t->kind == TK_SHARED && !exists)
        return;
    snprintf(id, sizeof id, "%lld", t->tenant_id);
    snprintf(version, sizeof version, "%d", r->to);
    const char *status =
        r->status == REPORT_UP_TO_DATE ? "ok" : report_outcome_name(r->status);
    const char *v[] = {id,
                       version,
                       fp,
                       status,
                       r->napplied ? "true" : "false",
                       r->error[0] ? r->error : NULL};
    /* The shared target's state is every shared tenant's; only rows that
     * differ are touched, so a steady fleet is not rewritten. */
    if (sql_run(c,
                t->kind == TK_SHARED
                    ? "UPDATE core.tenants SET schema_version = $2, fingerprint = $3, "
                      "migration_status = $4, "
                      "migrated_at = CASE WHEN $5::bool THEN now() ELSE migrated_at END, "
                      "last_migration_error = $6, last_migration_at = now(), "
                      "updated_at = now() "
                      "WHERE isolation = 'shared' AND $1::bigint = 0 AND "
                      "(schema_version, fingerprint, migration_status) IS DISTINCT FROM "
                      "($2::int, $3, $4)"
                    : "UPDATE core.tenants SET schema_version = $2, fingerprint = $3, "
                      "migration_status = $4, "
                      "migrated_at = CASE WHEN $5::bool OR (migrated_at IS NULL AND "
                      "$2::int > 0) THEN now() ELSE migrated_at END, "
                      "last_migration_error = $6, last_migration_at = now(), "
                      "updated_at = now() WHERE id = $1",
                6, v, &err) < 0)
        log_msg(LOG_LEVEL_ERROR, NULL, "%s: cannot record the result in the directory: %s",
                t->key, err.msg);
}

/* Checks the ledger against the files: dirty rows, applied files that are
 * gone, drift. Returns 0 when the target may be migrated. */
static int ledger_check(struct engine *eng, PGconn *c, const char *qschema,
                        const struct vm_steps *s, struct ledger *l, struct report_target *r)
{
    for (int v = 1; v <= l->max; v++) {
        if (l->dirty[v]) {
            r->status = REPORT_DIRTY;
            r->failed_version = v;
            snprintf(r->error, sizeof r->error,
                     "version %d is dirty: a step that runs outside a transaction failed "
                     "half-way; check its effects, then run: runtime migrate resolve "
                     "--version %d --applied|--rolled-back",
                     v, v);
            return -1;
        }
        if ((size_t)v > s->n) {
            r->status = REPORT_FAILED;
            r->failed_version = v;
            snprintf(r->error, sizeof r->error,
                     "version %d is applied but its file is gone (files end at %zu)", v,
                     s->n);
            return -1;
        }
        if (strcmp(l->checksum[v], s->v[v - 1].checksum) != 0 && r->ndrift < 16)
            r->drift[r->ndrift++] = v;
    }
    if (!r->ndrift)
        return 0;
    if (!eng->accept_drift) {
        struct buf b = BUF_INIT;
        for (int i = 0; i < r->ndrift; i++)
            buf_printf(&b, "%s%04d_%s", i ? ", " : "", r->drift[i],
                       s->v[r->drift[i] - 1].name);
        r->status = REPORT_DRIFT;
        r->failed_version = r->drift[0];
        snprintf(r->error, sizeof r->error,
                 "drift: %s changed after being applied (restore the file, or run up "
                 "--accept-drift to record the new content)",
                 buf_cstr(&b));
        buf_free(&b);
        return -1;
    }
    if (eng->dry_run)
        return 0;
    for (int i = 0; i < r->ndrift; i++) {
        char sql[512];
        const struct vm_step *st = &s->v[r->drift[i] - 1];
        snprintf(sql, sizeof sql,
                 "UPDATE %s.schema_migrations SET checksum = '%s' WHERE version = %d",
                 qschema, st->checksum, st->version);
        struct rt_err err;
        if (sql_exec(c, sql, &err) < 0)
            return target_failed(r, &err);
        snprintf(l->checksum[st->version], 65, "%s", st->checksum);
    }
    return 0;
}

/* Runs a step that declared transaction = false, up or down. The ledger row
 * is marked dirty first (written for up, flagged for down): if the step dies
 * half-way, the target says so until an operator resolves it. */
static int run_outside_tx(struct worker *w, PGconn *c, const struct target *t,
                          const char *qschema, const struct vm_step *st, bool up,
                          struct report_target *r)
{
    struct rt_err err;
    char sql[512];
    double t0 = migrate_now_ms();

    if (up)
        snprintf(sql, sizeof sql,
                 "INSERT INTO %s.schema_migrations (version, name, checksum, dirty) "
                 "VALUES (%d, '%s', '%s', true)",
                 qschema, st->version, st->name, st->checksum);
    else
        snprintf(sql, sizeof sql,
                 "UPDATE %s.schema_migrations SET dirty = true WHERE version = %d", qschema,
                 st->version);
    if (sql_exec(c, sql, &err) < 0) {
        step_failed(r, st, err.msg);
        return -1;
    }
    snprintf(sql, sizeof sql, "SELECT set_config('search_path', '%s', false)", qschema);
    if (sql_exec(c, sql, &err) < 0 || run_step(w, c, t, st, up, r) < 0) {
        if (!r->error[0])
            step_failed(r, st, err.msg);
        r->status = REPORT_DIRTY;
        (void)sql_exec(c, "RESET search_path", &err);
        return -1;
    }
    if (up)
        snprintf(sql, sizeof sql,
                 "RESET search_path; UPDATE %s.schema_migrations SET dirty = false, "
                 "duration_ms = %d WHERE version = %d",
                 qschema, (int)(migrate_now_ms() - t0), st->version);
    else
        snprintf(sql, sizeof sql,
                 "RESET search_path; DELETE FROM %s.schema_migrations WHERE version = %d",
                 qschema, st->version);
    if (sql_exec(c, sql, &err) < 0) {
        step_failed(r, st, err.msg);
        r->status = REPORT_DIRTY;
        return -1;
    }
    return 0;
}

static void apply_steps_up(struct worker *w, PGconn *c, const struct target *t,
                           const char *qschema, const struct vm_steps *s, struct ledger *l,
                           int target_version, struct report_target *r)
{
    struct engine *eng = w->eng;
    struct rt_err err;

    if (eng->dry_run) {
        if (tx_begin(c, t, qschema, &err) < 0 ||
            (!l->exists && ledger_ensure(c, qschema, &err) < 0)) {
            target_failed(r, &err);
            return;
        }
    }
    for (int v = r->from + 1; v <= target_version; v++) {
        const struct vm_step *st = &s->v[v - 1];
        double t0 = migrate_now_ms();
        if (!st->transactional) {
            if (eng->dry_run) {
                r->skipped_non_tx = true;
                break;
            }
            if (run_outside_tx(w, c, t, qschema, st, true, r) < 0)
                return;
        } else {
            if (!eng->dry_run && tx_begin(c, t, qschema, &err) < 0) {
                step_failed(r, st, err.msg);
                return;
            }
            if (run_step(w, c, t, st, true, r) < 0) {
                (void)sql_exec(c, "ROLLBACK", &err);
                return;
            }
            if (ledger_write(c, qschema, st, migrate_now_ms() - t0,
                             eng->dry_run ? "" : "; COMMIT", &err) < 0) {
                step_failed(r, st, err.msg);
                (void)sql_exec(c, "ROLLBACK", &err);
                return;
            }
        }
        (void)report_target_applied(r, v, st->name, migrate_now_ms() - t0);
        r->to = v;
    }
    if (eng->dry_run)
        (void)sql_exec(c, "ROLLBACK", &err);
}

static void apply_steps_down(struct worker *w, PGconn *c, const struct target *t,
                             const char *qschema, const struct vm_steps *s,
                             int target_version, struct report_target *r)
{
    struct engine *eng = w->eng;
    struct rt_err err;
    char sql[512];

    if (eng->dry_run && tx_begin(c, t, qschema, &err) < 0) {
        target_failed(r, &err);
        return;
    }
    for (int v = r->from; v > target_version; v--) {
        const struct vm_step *st = &s->v[v - 1];
        double t0 = migrate_now_ms();
        if (!st->has_down) {
            step_failed(r, st, "this step cannot be undone (down = false)");
            break;
        }
        if (!st->transactional) {
            if (eng->dry_run) {
                r->skipped_non_tx = true;
                break;
            }
            if (run_outside_tx(w, c, t, qschema, st, false, r) < 0)
                return;
            (void)report_target_applied(r, v, st->name, migrate_now_ms() - t0);
            r->to = v - 1;
            continue;
        }
        if (!eng->dry_run && tx_begin(c, t, qschema, &err) < 0) {
            step_failed(r, st, err.msg);
            break;
        }
        if (run_step(w, c, t, st, false, r) < 0) {
            (void)sql_exec(c, "ROLLBACK", &err);
            return;
        }
        snprintf(sql, sizeof sql, "DELETE FROM %s.schema_migrations WHERE version = %d%s",
                 qschema, v, eng->dry_run ? "" : "; COMMIT");
        if (sql_exec(c, sql, &err) < 0) {
            step_failed(r, st, err.msg);
            (void)sql_exec(c, "ROLLBACK", &err);
            return;
        }
        (void)report_target_applied(r, v, st->name, migrate_now_ms() - t0);
        r->to = v - 1;
    }
    if (eng->dry_run)
        (void)sql_exec(c, "ROLLBACK", &err);
}

/* Brings one target to `to` (0: head) in direction dir. Fills r. */
void migrate_target(struct worker *w, const struct vm_steps *s, const struct target *t,
                    enum direction dir, int to, struct report_target *r)
{
    struct engine *eng = w->eng;
    struct ledger l;
    struct rt_err err;
    char qschema[160], fp[65];
    PGconn *c;
    bool locked = false;

    memset(&l, 0, sizeof l);
    snprintf(r->key, sizeof r->key, "%s", t->key);
    r->status = REPORT_FAILED;
    c = migrate_conn(w, t->server, t->dbname, &err);
    if (!c) {
        target_failed(r, &err);
        goto record;
    }
    if (sql_ident(c, t->schema, qschema, sizeof qschema, &err) < 0) {
        snprintf(r->error, sizeof r->error, "bad schema name");
        goto record;
    }
    if (!eng->dry_run && dir == DIR_UP) {
        locked = true; /* maybe: unlocking a lock not held is harmless */
        if (lock_and_read(c, t->key, qschema, &l, &err) < 0) {
            target_failed(r, &err);
            goto done;
        }
    } else {
        if (migrate_lock(c, t, true, &err) < 0) {
            target_failed(r, &err);
            goto record;
        }
        locked = true;
        if (ledger_read(c, qschema, &l, &err) < 0) {
            target_failed(r, &err);
            goto done;
        }
    }
    r->from = r->to = l.max;
    if (dir == DIR_DOWN && eng->steps_back >= 0)
        to = l.max > eng->steps_back ? l.max - eng->steps_back : 0;
    if (ledger_check(eng, c, qschema, s, &l, r) < 0)
        goto done;
    r->status = REPORT_OK;
    if (dir == DIR_UP) {
        int target_version = to > 0 && (size_t)to < s->n ? to : (int)s->n;
        if (l.max >= target_version)
            r->status = REPORT_UP_TO_DATE;
        else
            apply_steps_up(w, c, t, qschema, s, &l, target_version, r);
    } else {
        if (l.max <= to)
            r->status = REPORT_UP_TO_DATE;
        else
            apply_steps_down(w, c, t, qschema, s, to, r);
    }
done:
    if (locked) {
        if (PQtransactionStatus(c) != PQTRANS_IDLE)
            (void)sql_exec(c, "ROLLBACK", &err);
        (void)migrate_lock(c, t, false, &err);
    }
record:
    if (r->status == REPORT_FAILED && !r->error[0])
        snprintf(r->error, sizeof r->error, "failed");
    if (!eng->dry_run && t->kind != TK_CORE && t->kind != TK_STORAGE) {
        /* After a failure the ledger holds what committed before it. */
        if (fingerprint(&l, s, r->to, fp) == 0)
            directory_update(w, t, r, fp);
        else
            log_msg(LOG_LEVEL_ERROR, NULL,
                    "%s: cannot record the result in the directory: out of memory", t->key);
    }
    ledger_free(&l);
}

/* ---- targets ------------------------------------------------------------ */

void target_core(struct target *t)
{
    memset(t, 0, sizeof *t);
    t->kind = TK_CORE;
    strcpy(t->server, "main");
    strcpy(t->schema, "core");
    strcpy(t->key, "core");
}

void target_shared(struct target *t)
{
    memset(t, 0, sizeof *t);
    t->kind = TK_SHARED;
    strcpy(t->server, "main");
    strcpy(t->schema, "shared");
    strcpy(t->key, "shared");
}

void target_tenant(struct target *t, PGresult *r, int row)
{
    memset(t, 0, sizeof *t);
    t->kind = TK_TENANT;
    t->tenant_id = strtoll(PQgetvalue(r, row, 0), NULL, 10);
    snprintf(t->code, sizeof t->code, "%s", PQgetvalue(r, row, 1));
    snprintf(t->isolation, sizeof t->isolation, "%s", PQgetvalue(r, row, 2));
    snprintf(t->server, sizeof t->server, "%s", PQgetvalue(r, row, 3));
    if (strcmp(t->isolation, "database") == 0) {
        snprintf(t->dbname, sizeof t->dbname, "%s", PQgetvalue(r, row, 5));
        strcpy(t->schema, "public");
    } else {
        snprintf(t->schema, sizeof t->schema, "%s", PQgetvalue(r, row, 4));
    }
    snprintf(t->key, sizeof t->key, "tenant:%s", t->code);
}

void migrate_ledger_status(struct worker *w, const struct target *t,
                           const struct vm_steps *s, struct report_ledger *rl)
{
    struct rt_err err;
    char qschema[160];
    struct ledger l;
    PGconn *c = migrate_conn(w, t->server, t->dbname, &err);

    memset(rl, 0, sizeof *rl);
    memset(&l, 0, sizeof l);
    rl->head = (int)s->n;
    if (!c || sql_ident(c, t->schema, qschema, sizeof qschema, &err) < 0 ||
        ledger_read(c, qschema, &l, &err) < 0) {
        snprintf(rl->error, sizeof rl->error, "%.*s", (int)sizeof rl->error - 1, err.msg);
        ledger_free(&l);
        return;
    }
    rl->version = l.max;
    for (int v = 1; v <= l.max; v++) {
        if (l.dirty[v])
            rl->dirty = true;
        if ((size_t)v <= s->n && strcmp(l.checksum[v], s->v[v - 1].checksum) != 0 &&
            rl->ndrift < REPORT_DRIFT_MAX)
            rl->drift[rl->ndrift++] = v;
    }
    ledger_free(&l);
}
