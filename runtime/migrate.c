/* migrate: ledgers, locks, steps per target, fleet fan-out, reports
 * (see migrate.h and docs/MIGRATIONS.md). */
#include "migrate.h"

#include "buf.h"
#include "crypto.h"
#include "log.h"
#include "lua/rt_migrate.h"
#include "tenant.h"
#include "steps.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#define LOCK_CLASS "1920232807" /* "rtmg": first key of every migration lock */
#define MAX_CONNS  8            /* cached connections per worker */
#define ERRLEN     1024

enum target_kind {
    TK_CORE,
    TK_SHARED,
    TK_TENANT,
    TK_STORAGE, /* pre-made tenant storage (spare.c): no tenant, no directory row */
};

struct target {
    enum target_kind kind;
    long long tenant_id;
    char code[48];
    char isolation[16];
    char server[64];
    char dbname[128]; /* "" for the main database */
    char schema[128];
    char key[192]; /* "core", "shared", "tenant:<code>", "storage:<server>/<db>/<schema>":
                      lock key and report name */
};

enum tstatus {
    TS_UP_TO_DATE,
    TS_OK,
    TS_FAILED,
    TS_DRIFT,
    TS_DIRTY,
};

static const char *const tstatus_names[] = {"up_to_date", "ok", "failed", "drift", "dirty"};

struct applied {
    int version;
    double ms;
};

struct result {
    enum tstatus status;
    int from, to;
    struct applied *applied; /* malloc'd, one per step run */
    int napplied;
    int failed_version;
    char error[ERRLEN];
    int ndrift;
    int drift[16];
    bool skipped_non_tx; /* dry run stopped at a step that needs no transaction */
    struct buf sql;      /* dry run: statements, as a JSON array body */
};

struct conn_entry {
    char server[64];
    char dbname[128];
    PGconn *pg;
};

struct engine;

struct worker {
    struct engine *eng;
    struct vm *vm; /* runs the steps of the set being applied */
    struct conn_entry conns[MAX_CONNS];
    int nconns;
    pthread_t thread;
};

enum direction {
    DIR_UP,
    DIR_DOWN,
};

struct engine {
    const struct config *cfg;
    struct vm_steps *core_steps;
    struct vm_steps *tenant_steps;
    bool dry_run;
    bool accept_drift;
    bool json;
    bool tty;               /* eng->err is a terminal: draw a progress bar */
    FILE *out;              /* reports (plain or JSON) */
    FILE *err;              /* failures and progress */
    pthread_mutex_t out_mu; /* one writer at a time on out and err */

    /* fleet */
    struct target *fleet;
    struct result *fleet_results;
    size_t nfleet;
    atomic_size_t next;
    atomic_size_t done;
    atomic_size_t failed;
    pthread_mutex_t done_mu; /* with done_cv: a worker finished a target */
    pthread_cond_t done_cv;
    int to;         /* requested version for the fleet (0: head) */
    int steps_back; /* down --steps N: N, else -1 */
    enum direction dir;
};

/* ---- small helpers ------------------------------------------------------ */

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void pg_error(PGconn *c, const PGresult *r, char *err)
{
    const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    snprintf(err, ERRLEN, "%s", m ? m : PQerrorMessage(c));
    size_t n = strlen(err);
    while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
        err[--n] = '\0';
}

/* Runs sql (several statements allowed). Returns 0 or -1 with err. */
static int x(PGconn *c, const char *sql, char *err)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
    if (rc < 0)
        pg_error(c, r, err);
    PQclear(r);
    return rc;
}

/* Runs one parameterised statement. Returns the result (caller clears) or
 * NULL with err. */
static PGresult *q(PGconn *c, const char *sql, int n, const char *const *vals, char *err)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, vals, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return r;
    pg_error(c, r, err);
    PQclear(r);
    return NULL;
}

static int q_ok(PGconn *c, const char *sql, int n, const char *const *vals, char *err)
{
    PGresult *r = q(c, sql, n, vals, err);
    PQclear(r);
    return r ? 0 : -1;
}

/* Quotes an identifier into out. Returns 0 or -1. */
static int quote_ident(PGconn *c, const char *name, char *out, size_t cap)
{
    char *s = PQescapeIdentifier(c, name, strlen(name));
    if (!s)
        return -1;
    int rc = strlen(s) < cap ? 0 : -1;
    if (rc == 0)
        strcpy(out, s);
    PQfreemem(s);
    return rc;
}

/* The worker's connection to (server, dbname), made once and reused across
 * the targets that live there. */
static PGconn *conn_get(struct worker *w, const char *server, const char *dbname, char *err)
{
    struct conn_entry *e;

    const struct config_server *srv = config_server(w->eng->cfg, server);
    if (!srv) {
        snprintf(err, ERRLEN, "unknown server '%s' (not in config servers)", server);
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
    if (w->nconns == MAX_CONNS) {
        PQfinish(w->conns[0].pg);
        memmove(&w->conns[0], &w->conns[1], sizeof w->conns[0] * (MAX_CONNS - 1));
        w->nconns--;
    }
    char why[400];
    PGconn *pg = db_connect(srv->owner_url, dbname[0] ? dbname : NULL, "runtime-migrate",
                            w->eng->cfg->database_connect_timeout, why, sizeof why);
    if (!pg) {
        snprintf(err, ERRLEN, "cannot connect%s%s: %s", dbname[0] ? " to database " : "",
                 dbname, why);
        return NULL;
    }
    char lt[32];
    snprintf(lt, sizeof lt, "%d", w->eng->cfg->migrate_lock_timeout_ms);
    const char *v[] = {lt};
    /* synchronous_commit off: a step and its ledger row still commit or not
     * together; a crash can only lose the last fraction of a second of
     * commits, which the next run applies again. It saves a WAL flush per
     * step, the main cost of migrating a large fleet. */
    if (q_ok(pg,
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

static void worker_close(struct worker *w)
{
    for (int i = 0; i < w->nconns; i++)
        PQfinish(w->conns[i].pg);
    w->nconns = 0;
    vm_free(w->vm);
    w->vm = NULL;
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

static int ledger_ensure(PGconn *c, const char *qschema, char *err)
{
    char sql[1024];
    snprintf(sql, sizeof sql, LEDGER_DDL, qschema, qschema);
    return x(c, sql, err);
}

/* Fills l from the rows of SELECT version, checksum, dirty ... ORDER BY
 * version. */
static int ledger_parse(PGresult *r, const char *qschema, struct ledger *l, char *err)
{
    int n = PQntuples(r);

    l->exists = true;
    l->max = n ? atoi(PQgetvalue(r, n - 1, 0)) : 0;
    l->checksum = calloc((size_t)l->max + 1, sizeof *l->checksum);
    l->dirty = calloc((size_t)l->max + 1, sizeof *l->dirty);
    if (!l->checksum || !l->dirty) {
        snprintf(err, ERRLEN, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        int v = atoi(PQgetvalue(r, i, 0));
        if (v < 1 || v > l->max)
            continue;
        snprintf(l->checksum[v], 65, "%s", PQgetvalue(r, i, 1));
        l->dirty[v] = PQgetvalue(r, i, 2)[0] == 't';
    }
    l->n = n;
    if (n != l->max) {
        snprintf(err, ERRLEN,
                 "ledger %s.schema_migrations has gaps (%d rows, max version %d)", qschema,
                 n, l->max);
        return -1;
    }
    return 0;
}

#define LEDGER_SELECT \
    "SELECT version, checksum, dirty FROM %s.schema_migrations ORDER BY version"

static int ledger_read(PGconn *c, const char *qschema, struct ledger *l, char *err)
{
    char reg[256], sql[512];
    PGresult *r;

    memset(l, 0, sizeof *l);
    snprintf(reg, sizeof reg, "%s.schema_migrations", qschema);
    const char *v[] = {reg};
    r = q(c, "SELECT to_regclass($1) IS NOT NULL", 1, v, err);
    if (!r)
        return -1;
    bool exists = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!exists)
        return 0;
    snprintf(sql, sizeof sql, LEDGER_SELECT, qschema);
    r = q(c, sql, 0, NULL, err);
    if (!r)
        return -1;
    int rc = ledger_parse(r, qschema, l, err);
    PQclear(r);
    return rc;
}

/* Takes the target's lock, creates the ledger if needed and reads it, in one
 * round trip. On failure the lock may or may not be held: unlock anyway. */
static int lock_and_read(PGconn *c, const char *key, const char *qschema, struct ledger *l,
                         char *err)
{
    char sql[2048];
    char *lit = PQescapeLiteral(c, key, strlen(key));

    memset(l, 0, sizeof *l);
    if (!lit) {
        pg_error(c, NULL, err);
        return -1;
    }
    snprintf(sql, sizeof sql,
             "SELECT pg_advisory_lock(" LOCK_CLASS
             ", hashtext(%s));" LEDGER_DDL LEDGER_SELECT,
             lit, qschema, qschema, qschema);
    PQfreemem(lit);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_error(c, r, err);
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

/* ---- one target --------------------------------------------------------- */

struct echo {
    struct engine *eng;
    const struct target *t;
    const struct vm_step *step;
    struct result *r;
};

static void echo_sql(void *ud, const char *sql)
{
    struct echo *e = ud;

    if (!e->eng->dry_run)
        return;
    if (e->eng->json) {
        if (e->r->sql.len)
            buf_putc(&e->r->sql, ',');
        buf_json_cstr(&e->r->sql, sql);
        return;
    }
    pthread_mutex_lock(&e->eng->out_mu);
    fprintf(e->eng->out, "-- [%s] %04d_%s\n%s;\n", e->t->key, e->step->version,
            e->step->name, sql);
    pthread_mutex_unlock(&e->eng->out_mu);
}

static int lock_target(PGconn *c, const struct target *t, bool lock, char *err)
{
    const char *v[] = {t->key};
    if (q_ok(c,
             lock ? "SELECT pg_advisory_lock(" LOCK_CLASS ", hashtext($1))"
                  : "SELECT pg_advisory_unlock(" LOCK_CLASS ", hashtext($1))",
             1, v, err) == 0)
        return 0;
    if (lock) {
        char cause[ERRLEN];
        snprintf(cause, sizeof cause, "%s", err);
        snprintf(err, ERRLEN, "could not take the migration lock of %.190s: %.780s", t->key,
                 cause);
    }
    return -1;
}

/* BEGIN and the step's scoping, in one round trip. */
static int tx_begin(PGconn *c, const struct target *t, const char *qschema, char *err)
{
    char sql[768], id[32];
    snprintf(id, sizeof id, "%lld", t->kind == TK_TENANT ? t->tenant_id : 0LL);
    char *path = PQescapeLiteral(c, qschema, strlen(qschema));
    if (!path) {
        pg_error(c, NULL, err);
        return -1;
    }
    snprintf(sql, sizeof sql,
             "BEGIN; SELECT set_config('search_path', %s, true), "
             "set_config('app.tenant_id', '%s', true)",
             path, t->kind == TK_TENANT ? id : "");
    PQfreemem(path);
    return x(c, sql, err);
}

static void result_applied(struct result *r, int version, double ms)
{
    struct applied *a = realloc(r->applied, sizeof *a * (size_t)(r->napplied + 1));
    if (!a)
        return;
    r->applied = a;
    a[r->napplied].version = version;
    a[r->napplied].ms = ms;
    r->napplied++;
}

static void step_failed(struct result *r, const struct vm_step *st, const char *msg)
{
    r->status = TS_FAILED;
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
                    const struct vm_step *st, bool up, struct result *r)
{
    struct rt_migrate_ctx m;
    struct echo e = {w->eng, t, st, r};
    struct vm_error verr;

    mctx_init(&m, t, &e, c);
    if (vm_run_step(w->vm, st->version, up ? "up" : "down", &m, &verr) < 0) {
        step_failed(r, st, verr.msg);
        return -1;
    }
    return 0;
}

static int ledger_write(PGconn *c, const char *qschema, const struct vm_step *st, double ms,
                        const char *tail, char *err)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO %s.schema_migrations (version, name, checksum, duration_ms) "
             "VALUES (%d, '%s', '%s', %d)%s",
             qschema, st->version, st->name, st->checksum, (int)ms, tail);
    return x(c, sql, err);
}

static int directory_exists(PGconn *c, bool *exists, char *err)
{
    PGresult *r = q(c, "SELECT to_regclass('core.tenants') IS NOT NULL", 0, NULL, err);
    if (!r)
        return -1;
    *exists = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return 0;
}

static void directory_update(struct worker *w, const struct target *t,
                             const struct result *r, const char *fp)
{
    char err[ERRLEN], id[32], version[16];
    PGconn *c;

    bool exists = false;

    if (t->kind == TK_CORE || t->kind == TK_STORAGE || w->eng->dry_run)
        return;
    c = conn_get(w, "main", "", err);
    if (!c || (t->kind == TK_SHARED && directory_exists(c, &exists, err) < 0)) {
        log_msg(LOG_LEVEL_ERROR, NULL, "%s: cannot record the result in the directory: %s",
                t->key, err);
        return;
    }
    if (t->kind == TK_SHARED && !exists)
        return;
    snprintf(id, sizeof id, "%lld", t->tenant_id);
    snprintf(version, sizeof version, "%d", r->to);
    const char *status = r->status == TS_UP_TO_DATE ? "ok" : tstatus_names[r->status];
    const char *v[] = {id,
                       version,
                       fp,
                       status,
                       r->napplied ? "true" : "false",
                       r->error[0] ? r->error : NULL};
    /* The shared target's state is every shared tenant's; only rows that
     * differ are touched, so a steady fleet is not rewritten. */
    if (q_ok(c,
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
             6, v, err) < 0)
        log_msg(LOG_LEVEL_ERROR, NULL, "%s: cannot record the result in the directory: %s",
                t->key, err);
}

/* Checks the ledger against the files: dirty rows, applied files that are
 * gone, drift. Returns 0 when the target may be migrated. */
static int ledger_check(struct engine *eng, PGconn *c, const char *qschema,
                        const struct vm_steps *s, struct ledger *l, struct result *r)
{
    for (int v = 1; v <= l->max; v++) {
        if (l->dirty[v]) {
            r->status = TS_DIRTY;
            r->failed_version = v;
            snprintf(r->error, sizeof r->error,
                     "version %d is dirty: a step that runs outside a transaction failed "
                     "half-way; check its effects, then run: runtime migrate resolve "
                     "--version %d --applied|--rolled-back",
                     v, v);
            return -1;
        }
        if ((size_t)v > s->n) {
            r->status = TS_FAILED;
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
        r->status = TS_DRIFT;
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
        if (x(c, sql, r->error) < 0) {
            r->status = TS_FAILED;
            return -1;
        }
        snprintf(l->checksum[st->version], 65, "%s", st->checksum);
    }
    return 0;
}

/* Runs a step that declared transaction = false, up or down. The ledger row
 * is marked dirty first (written for up, flagged for down): if the step dies
 * half-way, the target says so until an operator resolves it. */
static int run_outside_tx(struct worker *w, PGconn *c, const struct target *t,
                          const char *qschema, const struct vm_step *st, bool up,
                          struct result *r)
{
    char err[ERRLEN], sql[512];
    double t0 = now_ms();

    if (up)
        snprintf(sql, sizeof sql,
                 "INSERT INTO %s.schema_migrations (version, name, checksum, dirty) "
                 "VALUES (%d, '%s', '%s', true)",
                 qschema, st->version, st->name, st->checksum);
    else
        snprintf(sql, sizeof sql,
                 "UPDATE %s.schema_migrations SET dirty = true WHERE version = %d", qschema,
                 st->version);
    if (x(c, sql, err) < 0) {
        step_failed(r, st, err);
        return -1;
    }
    snprintf(sql, sizeof sql, "SELECT set_config('search_path', '%s', false)", qschema);
    if (x(c, sql, err) < 0 || run_step(w, c, t, st, up, r) < 0) {
        if (!r->error[0])
            step_failed(r, st, err);
        r->status = TS_DIRTY;
        (void)x(c, "RESET search_path", err);
        return -1;
    }
    if (up)
        snprintf(sql, sizeof sql,
                 "RESET search_path; UPDATE %s.schema_migrations SET dirty = false, "
                 "duration_ms = %d WHERE version = %d",
                 qschema, (int)(now_ms() - t0), st->version);
    else
        snprintf(sql, sizeof sql,
                 "RESET search_path; DELETE FROM %s.schema_migrations WHERE version = %d",
                 qschema, st->version);
    if (x(c, sql, err) < 0) {
        step_failed(r, st, err);
        r->status = TS_DIRTY;
        return -1;
    }
    return 0;
}

static void apply_steps_up(struct worker *w, PGconn *c, const struct target *t,
                           const char *qschema, const struct vm_steps *s, struct ledger *l,
                           int target_version, struct result *r)
{
    struct engine *eng = w->eng;
    char err[ERRLEN];

    if (eng->dry_run) {
        if (tx_begin(c, t, qschema, r->error) < 0 ||
            (!l->exists && ledger_ensure(c, qschema, r->error) < 0)) {
            r->status = TS_FAILED;
            return;
        }
    }
    for (int v = r->from + 1; v <= target_version; v++) {
        const struct vm_step *st = &s->v[v - 1];
        double t0 = now_ms();
        if (!st->transactional) {
            if (eng->dry_run) {
                r->skipped_non_tx = true;
                break;
            }
            if (run_outside_tx(w, c, t, qschema, st, true, r) < 0)
                return;
        } else {
            if (!eng->dry_run && tx_begin(c, t, qschema, err) < 0) {
                step_failed(r, st, err);
                return;
            }
            if (run_step(w, c, t, st, true, r) < 0) {
                (void)x(c, "ROLLBACK", err);
                return;
            }
            if (ledger_write(c, qschema, st, now_ms() - t0, eng->dry_run ? "" : "; COMMIT",
                             err) < 0) {
                step_failed(r, st, err);
                (void)x(c, "ROLLBACK", err);
                return;
            }
        }
        result_applied(r, v, now_ms() - t0);
        r->to = v;
    }
    if (eng->dry_run)
        (void)x(c, "ROLLBACK", err);
}

static void apply_steps_down(struct worker *w, PGconn *c, const struct target *t,
                             const char *qschema, const struct vm_steps *s,
                             int target_version, struct result *r)
{
    struct engine *eng = w->eng;
    char err[ERRLEN], sql[512];

    if (eng->dry_run && tx_begin(c, t, qschema, r->error) < 0) {
        r->status = TS_FAILED;
        return;
    }
    for (int v = r->from; v > target_version; v--) {
        const struct vm_step *st = &s->v[v - 1];
        double t0 = now_ms();
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
            result_applied(r, v, now_ms() - t0);
            r->to = v - 1;
            continue;
        }
        if (!eng->dry_run && tx_begin(c, t, qschema, err) < 0) {
            step_failed(r, st, err);
            break;
        }
        if (run_step(w, c, t, st, false, r) < 0) {
            (void)x(c, "ROLLBACK", err);
            return;
        }
        snprintf(sql, sizeof sql, "DELETE FROM %s.schema_migrations WHERE version = %d%s",
                 qschema, v, eng->dry_run ? "" : "; COMMIT");
        if (x(c, sql, err) < 0) {
            step_failed(r, st, err);
            (void)x(c, "ROLLBACK", err);
            return;
        }
        result_applied(r, v, now_ms() - t0);
        r->to = v - 1;
    }
    if (eng->dry_run)
        (void)x(c, "ROLLBACK", err);
}

/* Brings one target to `to` (0: head) in direction dir. Fills r. */
static void migrate_target(struct worker *w, const struct vm_steps *s,
                           const struct target *t, enum direction dir, int to,
                           struct result *r)
{
    struct engine *eng = w->eng;
    struct ledger l;
    char qschema[160], fp[65];
    PGconn *c;
    bool locked = false;

    memset(&l, 0, sizeof l);
    r->status = TS_FAILED;
    c = conn_get(w, t->server, t->dbname, r->error);
    if (!c)
        goto record;
    if (quote_ident(c, t->schema, qschema, sizeof qschema) < 0) {
        snprintf(r->error, sizeof r->error, "bad schema name");
        goto record;
    }
    if (!eng->dry_run && dir == DIR_UP) {
        locked = true; /* maybe: unlocking a lock not held is harmless */
        if (lock_and_read(c, t->key, qschema, &l, r->error) < 0)
            goto done;
    } else {
        if (lock_target(c, t, true, r->error) < 0)
            goto record;
        locked = true;
        if (ledger_read(c, qschema, &l, r->error) < 0)
            goto done;
    }
    r->from = r->to = l.max;
    if (dir == DIR_DOWN && eng->steps_back >= 0)
        to = l.max > eng->steps_back ? l.max - eng->steps_back : 0;
    if (ledger_check(eng, c, qschema, s, &l, r) < 0)
        goto done;
    r->status = TS_OK;
    if (dir == DIR_UP) {
        int target_version = to > 0 && (size_t)to < s->n ? to : (int)s->n;
        if (l.max >= target_version)
            r->status = TS_UP_TO_DATE;
        else
            apply_steps_up(w, c, t, qschema, s, &l, target_version, r);
    } else {
        if (l.max <= to)
            r->status = TS_UP_TO_DATE;
        else
            apply_steps_down(w, c, t, qschema, s, to, r);
    }
done:
    if (locked) {
        char err[ERRLEN];
        if (PQtransactionStatus(c) != PQTRANS_IDLE)
            (void)x(c, "ROLLBACK", err);
        (void)lock_target(c, t, false, err);
    }
record:
    if (r->status == TS_FAILED && !r->error[0])
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

/* ---- fleet -------------------------------------------------------------- */

static void target_core(struct target *t)
{
    memset(t, 0, sizeof *t);
    t->kind = TK_CORE;
    strcpy(t->server, "main");
    strcpy(t->schema, "core");
    strcpy(t->key, "core");
}

static void target_shared(struct target *t)
{
    memset(t, 0, sizeof *t);
    t->kind = TK_SHARED;
    strcpy(t->server, "main");
    strcpy(t->schema, "shared");
    strcpy(t->key, "shared");
}

/* Fills a tenant target from a directory row:
 * id, code, isolation, server, schema_name, database_name. */
static void target_tenant(struct target *t, PGresult *r, int row)
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

#define TENANT_COLUMNS                                                   \
    "id, code, isolation, server, coalesce(schema_name, 't_' || code), " \
    "coalesce(database_name, 't_' || code)"
#define TENANT_SCOPE                                                             \
    "isolation IN ('schema', 'database') AND status IN ('active', 'suspended', " \
    "'provisioning')"

static void *fleet_worker(void *arg)
{
    struct worker *w = arg;
    struct engine *eng = w->eng;

    for (;;) {
        size_t i = atomic_fetch_add(&eng->next, 1);
        if (i >= eng->nfleet)
            break;
        struct result *r = &eng->fleet_results[i];
        migrate_target(w, eng->tenant_steps, &eng->fleet[i], eng->dir, eng->to, r);
        if (r->status == TS_FAILED || r->status == TS_DRIFT || r->status == TS_DIRTY) {
            atomic_fetch_add(&eng->failed, 1);
            if (!eng->json && !eng->tty) {
                pthread_mutex_lock(&eng->out_mu);
                fprintf(eng->err, "%s: %s\n", eng->fleet[i].key, r->error);
                pthread_mutex_unlock(&eng->out_mu);
            }
        }
        pthread_mutex_lock(&eng->done_mu);
        atomic_fetch_add(&eng->done, 1);
        pthread_cond_signal(&eng->done_cv);
        pthread_mutex_unlock(&eng->done_mu);
    }
    return NULL;
}

static void progress(struct engine *eng, double t0, bool final)
{
    size_t done = atomic_load(&eng->done), failed = atomic_load(&eng->failed);
    double secs = (now_ms() - t0) / 1000.0;
    double rate = secs > 0 ? (double)done / secs : 0;
    double eta = rate > 0 ? (double)(eng->nfleet - done) / rate : 0;

    if (eng->json)
        return;
    if (eng->tty) {
        int width = 30, fill = eng->nfleet ? (int)(width * done / eng->nfleet) : width;
        fprintf(eng->err, "\r[%.*s%*s] %zu/%zu tenants  %zu failed  %.1f/s  ETA %.0fs ",
                fill, "##############################", width - fill, "", done, eng->nfleet,
                failed, rate, eta);
        if (final)
            fputc('\n', eng->err);
    } else {
        fprintf(eng->err, "tenants: %zu/%zu done, %zu failed, %.1f/s\n", done, eng->nfleet,
                failed, rate);
    }
    fflush(eng->err);
}

/* Migrates every tenant in eng->fleet with `jobs` workers. */
static int fleet_run(struct engine *eng, int jobs, char *err)
{
    size_t n = eng->nfleet;
    int nw = jobs < (int)n ? jobs : (int)n;
    struct worker *ws;
    double t0 = now_ms(), last = t0;

    eng->fleet_results = calloc(n ? n : 1, sizeof *eng->fleet_results);
    ws = calloc((size_t)(nw > 0 ? nw : 1), sizeof *ws);
    if (!eng->fleet_results || !ws) {
        free(ws);
        snprintf(err, ERRLEN, "out of memory");
        return -1;
    }
    int started = 0;
    for (int i = 0; i < nw; i++) {
        struct vm_error verr;
        ws[i].eng = eng;
        ws[i].vm = vm_new_steps(eng->tenant_steps, &verr);
        if (!ws[i].vm) {
            snprintf(err, ERRLEN, "%.1000s", verr.msg);
            break;
        }
        if (pthread_create(&ws[i].thread, NULL, fleet_worker, &ws[i]) != 0) {
            vm_free(ws[i].vm);
            ws[i].vm = NULL;
            snprintf(err, ERRLEN, "cannot start a worker thread");
            break;
        }
        started++;
    }
    if (started == 0 && n > 0) {
        free(ws);
        return -1;
    }
    /* Woken by each finished target (a single tenant must not wait out a
     * polling interval), and at least every 200 ms for the progress line. */
    pthread_mutex_lock(&eng->done_mu);
    while (atomic_load(&eng->done) < n) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 200L * 1000 * 1000;
        if (until.tv_nsec >= 1000L * 1000 * 1000) {
            until.tv_sec++;
            until.tv_nsec -= 1000L * 1000 * 1000;
        }
        (void)pthread_cond_timedwait(&eng->done_cv, &eng->done_mu, &until);
        double t = now_ms();
        if (t - last >= (eng->tty ? 200 : 2000)) {
            pthread_mutex_unlock(&eng->done_mu);
            progress(eng, t0, false);
            pthread_mutex_lock(&eng->done_mu);
            last = t;
        }
    }
    pthread_mutex_unlock(&eng->done_mu);
    for (int i = 0; i < started; i++) {
        pthread_join(ws[i].thread, NULL);
        worker_close(&ws[i]);
    }
    free(ws);
    if (n > 0 && (eng->tty || now_ms() - t0 >= 2000))
        progress(eng, t0, true);
    return 0;
}

/* Selects the tenants to visit: all in scope (code given), or those whose
 * directory entry is not at (version, fingerprint) or not ok. */
static int fleet_select(struct engine *eng, PGconn *c, const char *code, int version,
                        const char *fp, size_t *total, char *err)
{
    PGresult *r;
    char vs[16];

    snprintf(vs, sizeof vs, "%d", version);
    if (code) {
        const char *v[] = {code};
        r = q(c, "SELECT " TENANT_COLUMNS ", status FROM core.tenants WHERE code = $1", 1,
              v, err);
        if (!r)
            return -1;
        if (PQntuples(r) == 0) {
            snprintf(err, ERRLEN, "no tenant '%s' in the directory", code);
            PQclear(r);
            return -1;
        }
        if (strcmp(PQgetvalue(r, 0, 2), "shared") == 0) {
            snprintf(err, ERRLEN,
                     "tenant '%s' is in shared mode: its tables are migrated with the "
                     "shared target (--shared)",
                     code);
            PQclear(r);
            return -1;
        }
        const char *st = PQgetvalue(r, 0, 6);
        if (strcmp(st, "deleted") == 0 || strcmp(st, "failed") == 0) {
            snprintf(err, ERRLEN, "tenant '%s' is %s", code, st);
            PQclear(r);
            return -1;
        }
        *total = 1;
    } else {
        const char *v[] = {vs, fp};
        r = q(c,
              "SELECT " TENANT_COLUMNS
              ", (SELECT count(*) FROM core.tenants WHERE " TENANT_SCOPE
              ") FROM core.tenants WHERE " TENANT_SCOPE
              " AND (schema_version <> $1::int OR fingerprint IS DISTINCT FROM $2 "
              "OR migration_status <> 'ok') ORDER BY id",
              2, v, err);
        if (!r)
            return -1;
        if (PQntuples(r) > 0)
            *total = strtoull(PQgetvalue(r, 0, 6), NULL, 10);
        else {
            PGresult *cnt =
                q(c, "SELECT count(*) FROM core.tenants WHERE " TENANT_SCOPE, 0, NULL, err);
            if (!cnt) {
                PQclear(r);
                return -1;
            }
            *total = strtoull(PQgetvalue(cnt, 0, 0), NULL, 10);
            PQclear(cnt);
        }
    }
    eng->nfleet = (size_t)PQntuples(r);
    eng->fleet = calloc(eng->nfleet ? eng->nfleet : 1, sizeof *eng->fleet);
    if (!eng->fleet) {
        PQclear(r);
        snprintf(err, ERRLEN, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < eng->nfleet; i++)
        target_tenant(&eng->fleet[i], r, (int)i);
    PQclear(r);
    return 0;
}

/* ---- reports ------------------------------------------------------------ */

static bool result_bad(const struct result *r)
{
    return r->status == TS_FAILED || r->status == TS_DRIFT || r->status == TS_DIRTY;
}

static void json_result(struct buf *b, const struct target *t, const struct result *r,
                        const struct vm_steps *s)
{
    buf_puts(b, "{\"target\":");
    buf_json_cstr(b, t->key);
    buf_printf(b, ",\"from\":%d,\"to\":%d,\"status\":\"%s\"", r->from, r->to,
               tstatus_names[r->status]);
    buf_puts(b, ",\"applied\":[");
    for (int i = 0; i < r->napplied; i++) {
        const struct vm_step *st = &s->v[r->applied[i].version - 1];
        buf_printf(b, "%s{\"version\":%d,\"name\":", i ? "," : "", st->version);
        buf_json_cstr(b, st->name);
        buf_printf(b, ",\"duration_ms\":%.1f}", r->applied[i].ms);
    }
    buf_putc(b, ']');
    if (r->ndrift) {
        buf_puts(b, ",\"drift\":[");
        for (int i = 0; i < r->ndrift; i++)
            buf_printf(b, "%s%d", i ? "," : "", r->drift[i]);
        buf_putc(b, ']');
    }
    if (r->sql.len) {
        buf_puts(b, ",\"statements\":[");
        buf_append(b, r->sql.data, r->sql.len);
        buf_putc(b, ']');
    }
    if (r->skipped_non_tx)
        buf_puts(b, ",\"note\":\"skipped: a step with transaction = false cannot be "
                    "dry-run\"");
    if (r->error[0]) {
        buf_puts(b, ",\"error\":");
        buf_json_cstr(b, r->error);
    }
    buf_putc(b, '}');
}

static void json_failure(struct buf *b, const struct target *t, const struct result *r,
                         bool *first)
{
    buf_puts(b, *first ? "{\"target\":" : ",{\"target\":");
    buf_json_cstr(b, t->key);
    buf_printf(b, ",\"version\":%d,\"error\":", r->failed_version);
    buf_json_cstr(b, r->error);
    buf_putc(b, '}');
    *first = false;
}

static void plain_result(struct engine *eng, const struct target *t, const struct result *r,
                         const struct vm_steps *s)
{
    double ms = 0;
    for (int i = 0; i < r->napplied; i++)
        ms += r->applied[i].ms;
    if (result_bad(r))
        fprintf(eng->err, "%s: %s\n", t->key, r->error);
    else if (r->status == TS_UP_TO_DATE)
        fprintf(eng->out, "%s: at version %d, nothing to do\n", t->key, r->to);
    else
        fprintf(eng->out, "%s: %d -> %d (%d step%s, %.0f ms)%s%s\n", t->key, r->from, r->to,
                r->napplied, r->napplied == 1 ? "" : "s", ms,
                eng->dry_run ? ", dry run: rolled back" : "",
                r->skipped_non_tx ? "; stopped at a step that cannot run in a transaction"
                                  : "");
    (void)s;
}

static void result_free(struct result *r)
{
    free(r->applied);
    buf_free(&r->sql);
}

/* ---- commands ----------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: runtime migrate [up|down|status|new|resolve] [options]\n"
        "\n"
        "  runtime migrate [--dry-run] [--jobs N] [--json]\n"
        "      bring everything to head: core, then shared, then every tenant\n"
        "  runtime migrate up [--core | --shared | --tenant CODE | --all] [--to VERSION]\n"
        "                     [--dry-run] [--jobs N] [--json] [--accept-drift]\n"
        "  runtime migrate down (--core | --shared | --tenant CODE)\n"
        "                       (--steps N | --to VERSION) [--dry-run] [--json]\n"
        "  runtime migrate status [--tenant CODE | --all] [--json]\n"
        "  runtime migrate new NAME [--core]\n"
        "  runtime migrate resolve (--core | --shared | --tenant CODE) --version N\n"
        "                          (--applied | --rolled-back)\n"
        "\n"
        "Steps live in scripts/migrations/core and scripts/migrations/tenant as\n"
        "NNNN_name.lua returning { up = fn, down = fn | false, transaction = bool }.\n"
        "Every file is validated before anything runs. Each target (core, shared,\n"
        "every schema or database tenant) has its own ledger and lock; each step\n"
        "runs in its own transaction. A failing tenant is recorded in the directory\n"
        "and the others go on; the exit status is 1 if any target failed, drifted\n"
        "or is dirty. --dry-run runs pending steps in a transaction that is rolled\n"
        "back and prints the statements. --jobs sets the parallel tenant workers\n"
        "(default migrate.jobs). --accept-drift records the new checksum of edited\n"
        "applied files. All forms take --config PATH. See docs/MIGRATIONS.md.\n");
}

static int parse_int(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > 1000000)
        return -1;
    *out = (int)v;
    return 0;
}

static int cli_parse(int argc, char **argv, struct migrate_request *c, const char **config)
{
    int i = 1;

    memset(c, 0, sizeof *c);
    c->cmd = "up";
    c->jobs = -1;
    c->version = -1;
    c->steps = -1;
    bool have_cmd = false;
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "--core") == 0) {
            c->core = true;
        } else if (strcmp(a, "--shared") == 0) {
            c->shared = true;
        } else if (strcmp(a, "--all") == 0) {
            c->all = true;
        } else if (strcmp(a, "--dry-run") == 0) {
            c->dry_run = true;
        } else if (strcmp(a, "--json") == 0) {
            c->json = true;
        } else if (strcmp(a, "--accept-drift") == 0) {
            c->accept_drift = true;
        } else if (strcmp(a, "--applied") == 0) {
            c->applied = true;
        } else if (strcmp(a, "--rolled-back") == 0) {
            c->rolled_back = true;
        } else if (next && strcmp(a, "--config") == 0) {
            *config = argv[++i];
        } else if (next && strcmp(a, "--tenant") == 0) {
            c->tenant = argv[++i];
        } else if (next && strcmp(a, "--to") == 0) {
            if (parse_int(argv[++i], &c->to) < 0)
                return -1;
            c->to_set = true;
        } else if (next && strcmp(a, "--steps") == 0) {
            if (parse_int(argv[++i], &c->steps) < 0)
                return -1;
        } else if (next && strcmp(a, "--jobs") == 0) {
            if (parse_int(argv[++i], &c->jobs) < 0 || c->jobs < 1)
                return -1;
        } else if (next && strcmp(a, "--version") == 0) {
            if (parse_int(argv[++i], &c->version) < 0)
                return -1;
        } else if (a[0] != '-' && !have_cmd) {
            c->cmd = a; /* the first word is the command, wherever it stands */
            have_cmd = true;
        } else if (a[0] != '-' && strcmp(c->cmd, "new") == 0 && !c->name) {
            c->name = a;
        } else {
            fprintf(stderr, "runtime migrate: unknown or incomplete option '%s'\n", a);
            return -1;
        }
    }
    if (c->tenant && !tenant_code_valid(c->tenant)) {
        fprintf(stderr,
                "runtime migrate: '%s' is not a tenant code (^[a-z][a-z0-9_]{1,39}$)\n",
                c->tenant);
        return -1;
    }
    if ((c->core + c->shared + (c->tenant != NULL) + c->all) > 1) {
        fprintf(stderr,
                "runtime migrate: choose one of --core, --shared, --tenant, --all\n");
        return -1;
    }
    return 0;
}

static char *steps_dir(const struct config *cfg, const char *which)
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

static int cmd_new(struct engine *eng, const struct migrate_request *c)
{
    char *dir = steps_dir(eng->cfg, c->core ? "core" : "tenant");
    struct vm_error verr;
    struct vm_steps *s = NULL;
    int rc = 1;

    if (!c->name || !*c->name ||
        strspn(c->name, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(c->name)) {
        fprintf(eng->err,
                "runtime migrate new: NAME must be lower-case letters, digits and _\n");
        free(dir);
        return 2;
    }
    if (!dir)
        return 1;
    s = vm_steps_load(dir, c->core ? "migrations/core" : "migrations/tenant",
                      VM_STEP_MIGRATION, &verr);
    if (!s) {
        fprintf(eng->err, "runtime migrate new: fix the existing steps first: %s\n",
                verr.msg);
        goto done;
    }
    mkdir(dir, 0755);
    size_t n = strlen(dir) + strlen(c->name) + 32;
    char *path = malloc(n);
    if (!path)
        goto done;
    snprintf(path, n, "%s/%04zu_%s.lua", dir, s->n + 1, c->name);
    FILE *f = fopen(path, "wx");
    if (!f) {
        fprintf(eng->err, "runtime migrate new: cannot create %s: %s\n", path,
                strerror(errno));
        free(path);
        goto done;
    }
    fprintf(f,
            "-- %04zu_%s: say what this step changes and why.\n"
            "return {\n"
            "  up = function(m)\n"
            "    m:exec [[\n"
            "    ]]\n"
            "  end,\n"
            "  down = function(m)\n"
            "    m:exec [[\n"
            "    ]]\n"
            "  end,\n"
            "}\n",
            s->n + 1, c->name);
    fclose(f);
    fprintf(eng->out, "%s\n", path);
    free(path);
    rc = 0;
done:
    vm_steps_free(s);
    free(dir);
    return rc;
}

/* Reads one target's ledger for status: a JSON object, or with `inline_json`
 * its fields (",\"drift\":[...]...") for the caller's open object, or a line. */
static void status_target(struct worker *w, const struct target *t,
                          const struct vm_steps *s, struct buf *json, bool as_json,
                          bool inline_json)
{
    struct engine *eng = w->eng;
    char err[ERRLEN], qschema[160];
    struct ledger l;
    PGconn *c = conn_get(w, t->server, t->dbname, err);

    memset(&l, 0, sizeof l);
    if (!c || quote_ident(c, t->schema, qschema, sizeof qschema) < 0 ||
        ledger_read(c, qschema, &l, err) < 0) {
        if (as_json) {
            buf_puts(json, inline_json ? ",\"ledger_error\":" : "{\"error\":");
            buf_json_cstr(json, err);
            if (!inline_json)
                buf_putc(json, '}');
        } else {
            fprintf(eng->out, "%-8s error: %s\n", t->key, err);
        }
        ledger_free(&l);
        return;
    }
    int drift[16], nd = 0;
    bool dirty = false;
    for (int v = 1; v <= l.max; v++) {
        if (l.dirty[v])
            dirty = true;
        if ((size_t)v <= s->n && strcmp(l.checksum[v], s->v[v - 1].checksum) != 0 &&
            nd < 16)
            drift[nd++] = v;
    }
    if (as_json && inline_json) {
        buf_printf(json, ",\"ledger_version\":%d,\"drift\":[", l.max);
        for (int i = 0; i < nd; i++)
            buf_printf(json, "%s%d", i ? "," : "", drift[i]);
        buf_printf(json, "],\"dirty\":%s", dirty ? "true" : "false");
    } else if (as_json) {
        buf_printf(json, "{\"version\":%d,\"head\":%zu,\"pending\":[", l.max, s->n);
        for (size_t v = (size_t)l.max + 1; v <= s->n; v++)
            buf_printf(json, "%s%zu", v > (size_t)l.max + 1 ? "," : "", v);
        buf_puts(json, "],\"drift\":[");
        for (int i = 0; i < nd; i++)
            buf_printf(json, "%s%d", i ? "," : "", drift[i]);
        buf_printf(json, "],\"dirty\":%s}", dirty ? "true" : "false");
    } else {
        fprintf(eng->out, "%-8s version %d of %zu", t->key, l.max, s->n);
        if ((size_t)l.max < s->n)
            fprintf(eng->out, ", pending %zu", s->n - (size_t)l.max);
        for (int i = 0; i < nd; i++)
            fprintf(eng->out, "%s%04d", i ? " " : ", drift: ", drift[i]);
        fprintf(eng->out, "%s\n", dirty ? ", DIRTY" : "");
    }
    ledger_free(&l);
}

static int cmd_status(struct engine *eng, const struct migrate_request *c)
{
    struct worker w = {.eng = eng};
    struct target t;
    struct buf json = BUF_INIT;
    char err[ERRLEN], fp[65], head[16];
    PGconn *main_c;
    bool dir_exists = false;
    int rc = 0;

    main_c = conn_get(&w, "main", "", err);
    if (!main_c) {
        fprintf(eng->err, "runtime migrate status: %s\n", err);
        return 1;
    }
    if (directory_exists(main_c, &dir_exists, err) < 0) {
        fprintf(eng->err, "runtime migrate status: %s\n", err);
        worker_close(&w);
        return 1;
    }
    if (fingerprint(NULL, eng->tenant_steps, (int)eng->tenant_steps->n, fp) < 0) {
        fprintf(eng->err, "runtime migrate status: out of memory\n");
        worker_close(&w);
        return 1;
    }
    snprintf(head, sizeof head, "%zu", eng->tenant_steps->n);
    if (c->json)
        buf_puts(&json, "{\"core\":");
    target_core(&t);
    status_target(&w, &t, eng->core_steps, &json, c->json, false);
    if (c->json)
        buf_puts(&json, ",\"shared\":");
    target_shared(&t);
    status_target(&w, &t, eng->tenant_steps, &json, c->json, false);

    if (!dir_exists) {
        if (c->json)
            buf_puts(&json, ",\"fleet\":null");
        else
            fprintf(eng->out,
                    "tenants  no directory yet (run: runtime migrate up --core)\n");
    } else {
        /* The fleet summary is one query over the directory. */
        const char *v[] = {head, fp};
        PGresult *r =
            q(main_c,
              "SELECT schema_version, count(*), "
              "count(*) FILTER (WHERE migration_status = 'failed'), "
              "count(*) FILTER (WHERE migration_status = 'dirty'), "
              "count(*) FILTER (WHERE migration_status = 'drift'), "
              "count(*) FILTER (WHERE schema_version <> $1::int OR fingerprint IS "
              "DISTINCT FROM $2 OR migration_status <> 'ok') "
              "FROM core.tenants WHERE " TENANT_SCOPE " GROUP BY 1 ORDER BY 1",
              2, v, err);
        if (!r) {
            fprintf(eng->err, "runtime migrate status: %s\n", err);
            rc = 1;
            goto out;
        }
        long total = 0, failed = 0, dirty = 0, drift = 0, pending = 0;
        if (c->json)
            buf_puts(&json, ",\"fleet\":{\"by_version\":{");
        for (int i = 0; i < PQntuples(r); i++) {
            long n = atol(PQgetvalue(r, i, 1));
            total += n;
            failed += atol(PQgetvalue(r, i, 2));
            dirty += atol(PQgetvalue(r, i, 3));
            drift += atol(PQgetvalue(r, i, 4));
            pending += atol(PQgetvalue(r, i, 5));
            if (c->json)
                buf_printf(&json, "%s\"%s\":%ld", i ? "," : "", PQgetvalue(r, i, 0), n);
        }
        PQclear(r);
        if (c->json)
            buf_printf(&json,
                       "},\"total\":%ld,\"head\":%zu,\"pending\":%ld,\"failed\":%ld,"
                       "\"dirty\":%ld,\"drift\":%ld}",
                       total, eng->tenant_steps->n, pending, failed, dirty, drift);
        else
            fprintf(
                eng->out,
                "tenants  %ld in scope, head %zu: %ld pending, %ld failed, %ld dirty, %ld "
                "drift\n",
                total, eng->tenant_steps->n, pending, failed, dirty, drift);
        if (failed || dirty || drift)
            rc = 1;
    }
    if (dir_exists && (c->all || c->tenant)) {
        const char *v[] = {c->tenant};
        PGresult *r =
            q(main_c,
              c->tenant ? "SELECT code, schema_version, migration_status, "
                          "last_migration_error, isolation, status FROM core.tenants "
                          "WHERE code = $1"
                        : "SELECT code, schema_version, migration_status, "
                          "last_migration_error, isolation, status FROM core.tenants "
                          "WHERE " TENANT_SCOPE " ORDER BY code",
              c->tenant ? 1 : 0, c->tenant ? v : NULL, err);
        if (!r) {
            fprintf(eng->err, "runtime migrate status: %s\n", err);
            rc = 1;
            goto out;
        }
        if (c->tenant && PQntuples(r) == 0) {
            fprintf(eng->err, "runtime migrate status: no tenant '%s'\n", c->tenant);
            PQclear(r);
            rc = 1;
            goto out;
        }
        if (c->json)
            buf_puts(&json, ",\"tenants\":[");
        for (int i = 0; i < PQntuples(r); i++) {
            int version = atoi(PQgetvalue(r, i, 1));
            if (c->json) {
                buf_puts(&json, i ? ",{\"code\":" : "{\"code\":");
                buf_json_cstr(&json, PQgetvalue(r, i, 0));
                buf_printf(&json, ",\"version\":%d,\"status\":", version);
                buf_json_cstr(&json, PQgetvalue(r, i, 2));
                buf_puts(&json, ",\"error\":");
                buf_json_cstr(&json, PQgetisnull(r, i, 3) ? NULL : PQgetvalue(r, i, 3));
                buf_puts(&json, ",\"pending\":[");
                for (size_t v2 = (size_t)version + 1; v2 <= eng->tenant_steps->n; v2++)
                    buf_printf(&json, "%s%zu", v2 > (size_t)version + 1 ? "," : "", v2);
                buf_putc(&json, ']');
            } else {
                fprintf(eng->out, "  %-24s version %d of %zu  %s%s%s\n",
                        PQgetvalue(r, i, 0), version, eng->tenant_steps->n,
                        PQgetvalue(r, i, 2), PQgetisnull(r, i, 3) ? "" : ": ",
                        PQgetisnull(r, i, 3) ? "" : PQgetvalue(r, i, 3));
            }
            if (c->tenant) {
                /* One tenant: read its ledger too, for drift detail. */
                PGresult *one = NULL;
                const char *cv[] = {c->tenant};
                one =
                    q(main_c, "SELECT " TENANT_COLUMNS " FROM core.tenants WHERE code = $1",
                      1, cv, err);
                if (one && PQntuples(one) == 1 &&
                    strcmp(PQgetvalue(r, i, 4), "shared") != 0) {
                    struct target tt;
                    target_tenant(&tt, one, 0);
                    if (!c->json)
                        fprintf(eng->out, "  ");
                    status_target(&w, &tt, eng->tenant_steps, &json, c->json, true);
                }
                PQclear(one);
            }
            if (c->json)
                buf_putc(&json, '}');
        }
        PQclear(r);
        if (c->json)
            buf_putc(&json, ']');
    }
out:
    if (c->json) {
        buf_puts(&json, "}\n");
        fputs(buf_cstr(&json), eng->out);
    }
    buf_free(&json);
    worker_close(&w);
    return rc;
}

static int cmd_resolve(struct engine *eng, const struct migrate_request *c)
{
    struct worker w = {.eng = eng};
    struct target t;
    char err[ERRLEN], qschema[160], sql[512];
    PGconn *pc;
    int rc = 1;

    if (c->version < 1 || c->applied == c->rolled_back ||
        !(c->core || c->shared || c->tenant)) {
        fprintf(eng->err,
                "usage: runtime migrate resolve (--core | --shared | --tenant CODE) "
                "--version N (--applied | --rolled-back)\n");
        return 2;
    }
    if (c->core) {
        target_core(&t);
    } else if (c->shared) {
        target_shared(&t);
    } else {
        pc = conn_get(&w, "main", "", err);
        if (!pc || fleet_select(eng, pc, c->tenant, 0, "", &(size_t){0}, err) < 0) {
            fprintf(eng->err, "runtime migrate resolve: %s\n", err);
            worker_close(&w);
            return 1;
        }
        t = eng->fleet[0];
    }
    pc = conn_get(&w, t.server, t.dbname, err);
    if (!pc || quote_ident(pc, t.schema, qschema, sizeof qschema) < 0 ||
        lock_target(pc, &t, true, err) < 0) {
        fprintf(eng->err, "runtime migrate resolve: %s\n", err);
        worker_close(&w);
        return 1;
    }
    snprintf(sql, sizeof sql,
             c->applied
                 ? "UPDATE %s.schema_migrations SET dirty = false WHERE version = %d "
                   "AND dirty"
                 : "DELETE FROM %s.schema_migrations WHERE version = %d AND dirty",
             qschema, c->version);
    PGresult *r = PQexec(pc, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        pg_error(pc, r, err);
        fprintf(eng->err, "runtime migrate resolve: %s\n", err);
    } else if (strcmp(PQcmdTuples(r), "1") != 0) {
        fprintf(eng->err, "runtime migrate resolve: %s has no dirty version %d\n", t.key,
                c->version);
    } else {
        fprintf(eng->out, "%s: version %d marked %s\n", t.key, c->version,
                c->applied ? "applied" : "rolled back");
        rc = 0;
        if (t.kind == TK_TENANT) {
            /* The next up re-reads the ledger; mark the entry for a visit. */
            const char *v[] = {t.code};
            if (q_ok(pc,
                     "UPDATE core.tenants SET migration_status = 'failed' WHERE code = $1",
                     1, v, err) < 0)
                fprintf(eng->err, "runtime migrate resolve: %s\n", err);
        }
    }
    PQclear(r);
    (void)lock_target(pc, &t, false, err);
    worker_close(&w);
    return rc;
}

static int cmd_up_down(struct engine *eng, const struct migrate_request *c)
{
    struct worker w0 = {.eng = eng};
    struct buf json = BUF_INIT;
    struct target tcore, tshared;
    struct result rcore, rshared;
    char err[ERRLEN];
    double t0 = now_ms();
    bool down = strcmp(c->cmd, "down") == 0;
    bool do_core = c->core || (!c->shared && !c->tenant && !down);
    bool do_shared = c->shared || (!c->core && !c->tenant && !down);
    bool do_fleet = c->tenant || (!c->core && !c->shared && !down);
    bool shared_ran = false;
    int rc = 0;
    size_t total = 0;

    memset(&rcore, 0, sizeof rcore);
    memset(&rshared, 0, sizeof rshared);
    eng->dir = down ? DIR_DOWN : DIR_UP;
    eng->steps_back = down ? c->steps : -1;
    if (down) {
        if (!(c->core || c->shared || c->tenant) || (c->steps < 0) == !c->to_set) {
            fprintf(eng->err,
                    "usage: runtime migrate down (--core | --shared | --tenant CODE) "
                    "(--steps N | --to VERSION) [--dry-run]\n");
            return 2;
        }
    }
    target_core(&tcore);
    target_shared(&tshared);
    if (do_core) {
        struct vm_error verr;
        int to = c->core ? c->to : 0;
        w0.vm = vm_new_steps(eng->core_steps, &verr);
        if (!w0.vm) {
            fprintf(eng->err, "runtime migrate: %s\n", verr.msg);
            return 1;
        }
        migrate_target(&w0, eng->core_steps, &tcore, eng->dir, to, &rcore);
        vm_free(w0.vm);
        w0.vm = NULL;
        if (result_bad(&rcore))
            rc = 1;
    }
    /* A failed core stops here (the directory may be unusable); the shared
     * target and the tenants are independent of each other. */
    bool core_ok = rc == 0;
    if (core_ok && (do_shared || do_fleet)) {
        struct vm_error verr;
        w0.vm = vm_new_steps(eng->tenant_steps, &verr);
        if (!w0.vm) {
            fprintf(eng->err, "runtime migrate: %s\n", verr.msg);
            worker_close(&w0);
            return 1;
        }
    }
    if (core_ok && do_shared) {
        int to = c->core ? 0 : c->to;
        migrate_target(&w0, eng->tenant_steps, &tshared, eng->dir, to, &rshared);
        shared_ran = true;
        if (result_bad(&rshared))
            rc = 1;
    }
    if (core_ok && do_fleet) {
        bool dir_exists = false;
        char fp[65];
        PGconn *pc = conn_get(&w0, "main", "", err);
        if (!pc || directory_exists(pc, &dir_exists, err) < 0) {
            fprintf(eng->err, "runtime migrate: %s\n", err);
            rc = 1;
            goto report;
        }
        if (!dir_exists) {
            if (c->tenant) {
                fprintf(eng->err, "runtime migrate: no tenant directory yet (run: runtime "
                                  "migrate up --core)\n");
                rc = 1;
            }
            goto report;
        }
        int to = c->core ? 0 : c->to;
        int version =
            to > 0 && (size_t)to < eng->tenant_steps->n ? to : (int)eng->tenant_steps->n;
        if (fingerprint(NULL, eng->tenant_steps, version, fp) < 0) {
            fprintf(eng->err, "runtime migrate: out of memory\n");
            rc = 1;
            goto report;
        }
        if (fleet_select(eng, pc, c->tenant, version, fp, &total, err) < 0) {
            fprintf(eng->err, "runtime migrate: %s\n", err);
            rc = 1;
            goto report;
        }
        eng->to = to;
        worker_close(&w0); /* the fleet workers make their own */
        if (fleet_run(eng, c->jobs > 0 ? c->jobs : eng->cfg->migrate_jobs, err) < 0) {
            fprintf(eng->err, "runtime migrate: %s\n", err);
            rc = 1;
        }
        for (size_t i = 0; i < eng->nfleet; i++)
            if (result_bad(&eng->fleet_results[i]))
                rc = 1;
    }
report:
    worker_close(&w0);
    if (eng->json) {
        size_t migrated = 0, failed = 0;
        bool first = true;
        buf_printf(&json, "{\"ok\":%s,\"dry_run\":%s,\"duration_ms\":%.0f,\"targets\":[",
                   rc == 0 ? "true" : "false", eng->dry_run ? "true" : "false",
                   now_ms() - t0);
        if (do_core) {
            json_result(&json, &tcore, &rcore, eng->core_steps);
            first = false;
        }
        if (shared_ran) {
            if (!first)
                buf_putc(&json, ',');
            json_result(&json, &tshared, &rshared, eng->tenant_steps);
            first = false;
        }
        for (size_t i = 0; i < eng->nfleet && eng->fleet_results; i++) {
            const struct result *r = &eng->fleet_results[i];
            if (result_bad(r))
                failed++;
            else if (r->napplied)
                migrated++;
            if (!first)
                buf_putc(&json, ',');
            json_result(&json, &eng->fleet[i], r, eng->tenant_steps);
            first = false;
        }
        buf_printf(
            &json,
            "],\"fleet\":{\"total\":%zu,\"visited\":%zu,\"migrated\":%zu,\"failed\":%zu,"
            "\"up_to_date\":%zu},\"failures\":[",
            total, eng->nfleet, migrated, failed, total - migrated - failed);
        first = true;
        if (do_core && result_bad(&rcore))
            json_failure(&json, &tcore, &rcore, &first);
        if (shared_ran && result_bad(&rshared))
            json_failure(&json, &tshared, &rshared, &first);
        for (size_t i = 0; i < eng->nfleet && eng->fleet_results; i++)
            if (result_bad(&eng->fleet_results[i]))
                json_failure(&json, &eng->fleet[i], &eng->fleet_results[i], &first);
        buf_puts(&json, "]}\n");
        fputs(buf_cstr(&json), eng->out);
        buf_free(&json);
    } else {
        if (do_core)
            plain_result(eng, &tcore, &rcore, eng->core_steps);
        if (shared_ran)
            plain_result(eng, &tshared, &rshared, eng->tenant_steps);
        if (do_fleet) {
            size_t migrated = 0, failed = 0;
            for (size_t i = 0; i < eng->nfleet && eng->fleet_results; i++) {
                const struct result *r = &eng->fleet_results[i];
                if (result_bad(r))
                    failed++;
                else if (r->napplied)
                    migrated++;
                if (eng->nfleet <= 20 && !result_bad(r))
                    plain_result(eng, &eng->fleet[i], r, eng->tenant_steps);
            }
            fprintf(eng->out,
                    "tenants: %zu in scope, %zu visited, %zu %s, %zu failed (%.0f ms)\n",
                    total, eng->nfleet, migrated, eng->dry_run ? "dry-run" : "migrated",
                    failed, now_ms() - t0);
            if (failed && eng->tty) { /* otherwise printed as they happened */
                fprintf(eng->err, "failed tenants:\n");
                for (size_t i = 0; i < eng->nfleet; i++)
                    if (result_bad(&eng->fleet_results[i]))
                        fprintf(eng->err, "  %s: %s\n", eng->fleet[i].key,
                                eng->fleet_results[i].error);
            }
        }
    }
    result_free(&rcore);
    result_free(&rshared);
    return rc;
}

int migrate_run(const struct config *cfg, const struct migrate_request *c, FILE *out,
                FILE *err)
{
    struct engine eng;
    struct vm_error verr;
    char *core_dir = NULL, *tenant_dir = NULL;
    int rc = 1;

    memset(&eng, 0, sizeof eng);
    pthread_mutex_init(&eng.out_mu, NULL);
    pthread_mutex_init(&eng.done_mu, NULL);
    pthread_cond_init(&eng.done_cv, NULL);
    eng.cfg = cfg;
    eng.out = out;
    eng.err = err;
    eng.dry_run = c->dry_run;
    eng.accept_drift = c->accept_drift;
    eng.json = c->json;
    eng.tty = isatty(fileno(err)) && !c->json;
    core_dir = steps_dir(cfg, "core");
    tenant_dir = steps_dir(cfg, "tenant");
    if (!core_dir || !tenant_dir)
        goto done;
    if (strcmp(c->cmd, "new") == 0) {
        rc = cmd_new(&eng, c);
        goto done;
    }
    if (strcmp(c->cmd, "up") != 0 && strcmp(c->cmd, "down") != 0 &&
        strcmp(c->cmd, "status") != 0 && strcmp(c->cmd, "resolve") != 0) {
        fprintf(err, "runtime migrate: unknown command '%s'\n", c->cmd);
        rc = 2;
        goto done;
    }
    /* Every file of both sets is validated before anything runs. */
    if (!(eng.core_steps =
              vm_steps_load(core_dir, "migrations/core", VM_STEP_MIGRATION, &verr)) ||
        !(eng.tenant_steps =
              vm_steps_load(tenant_dir, "migrations/tenant", VM_STEP_MIGRATION, &verr))) {
        fprintf(err, "runtime migrate: %s\n", verr.msg);
        goto done;
    }
    if (!cfg->database_owner_url[0]) {
        fprintf(err, "runtime migrate: database.owner_url is not set "
                     "(set RUNTIME_DATABASE_OWNER_URL; eval \"$(./dev env)\" does)\n");
        goto done;
    }
    if (strcmp(c->cmd, "status") == 0)
        rc = cmd_status(&eng, c);
    else if (strcmp(c->cmd, "resolve") == 0)
        rc = cmd_resolve(&eng, c);
    else
        rc = cmd_up_down(&eng, c);
done:
    for (size_t i = 0; i < eng.nfleet && eng.fleet_results; i++)
        result_free(&eng.fleet_results[i]);
    free(eng.fleet_results);
    free(eng.fleet);
    vm_steps_free(eng.core_steps);
    vm_steps_free(eng.tenant_steps);
    free(core_dir);
    free(tenant_dir);
    pthread_mutex_destroy(&eng.out_mu);
    pthread_mutex_destroy(&eng.done_mu);
    pthread_cond_destroy(&eng.done_cv);
    return rc;
}

int migrate_main(int argc, char **argv)
{
    struct migrate_request c;
    const char *config_file = NULL;

    if (cli_parse(argc, argv, &c, &config_file) < 0) {
        usage(stderr);
        return 2;
    }
    struct config *cfg = config_load_cli(config_file);
    if (!cfg)
        return 1;
    int rc = migrate_run(cfg, &c, stdout, stderr);
    if (rc == 2 && strcmp(c.cmd, "new") != 0)
        usage(stderr);
    config_free(cfg);
    return rc;
}

/* ---- pre-made storage (spare.c) ------------------------------------------- */

/* Loads the tenant steps of cfg. Returns NULL with err. */
static struct vm_steps *tenant_steps_load(const struct config *cfg, char *err,
                                          size_t errlen)
{
    struct vm_error verr;
    char *dir = steps_dir(cfg, "tenant");
    if (!dir) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    struct vm_steps *s = vm_steps_load(dir, "migrations/tenant", VM_STEP_MIGRATION, &verr);
    free(dir);
    if (!s)
        snprintf(err, errlen, "%s", verr.msg);
    return s;
}

int migrate_tenant_head(const struct config *cfg, int *version, char fp[65], char *err,
                        size_t errlen)
{
    struct vm_steps *s = tenant_steps_load(cfg, err, errlen);
    if (!s)
        return -1;
    *version = (int)s->n;
    int rc = fingerprint(NULL, s, (int)s->n, fp);
    if (rc < 0)
        snprintf(err, errlen, "out of memory");
    vm_steps_free(s);
    return rc;
}

int migrate_storage(const struct config *cfg, const char *server, const char *dbname,
                    const char *schema, int *version, char fp[65], char *err, size_t errlen)
{
    struct engine eng;
    struct worker w = {.eng = &eng};
    struct target t;
    struct result r;
    struct vm_error verr;
    int rc = -1;

    memset(&eng, 0, sizeof eng);
    memset(&t, 0, sizeof t);
    memset(&r, 0, sizeof r);
    pthread_mutex_init(&eng.out_mu, NULL);
    eng.cfg = cfg;
    eng.out = eng.err = stderr; /* unused: no dry run, no fleet */
    t.kind = TK_STORAGE;
    snprintf(t.server, sizeof t.server, "%s", server);
    snprintf(t.dbname, sizeof t.dbname, "%s", dbname ? dbname : "");
    snprintf(t.schema, sizeof t.schema, "%s", schema);
    snprintf(t.key, sizeof t.key, "storage:%s/%s/%s", server, t.dbname, schema);
    if (!(eng.tenant_steps = tenant_steps_load(cfg, err, errlen)))
        goto done;
    if (!(w.vm = vm_new_steps(eng.tenant_steps, &verr))) {
        snprintf(err, errlen, "%s", verr.msg);
        goto done;
    }
    migrate_target(&w, eng.tenant_steps, &t, DIR_UP, 0, &r);
    if (result_bad(&r)) {
        snprintf(err, errlen, "%s", r.error);
        goto done;
    }
    /* The ledger matches the files (migrate_target refuses drift), so the
     * fingerprint of the files up to the version reached is the ledger's. */
    *version = r.to;
    if (fingerprint(NULL, eng.tenant_steps, r.to, fp) < 0) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    rc = 0;
done:
    result_free(&r);
    worker_close(&w);
    vm_steps_free(eng.tenant_steps);
    pthread_mutex_destroy(&eng.out_mu);
    return rc;
}
