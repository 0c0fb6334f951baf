/* db: libpq pools, pipelined transaction opening, statement cache (see db.h). */
#include "db.h"

#include "crypto.h"
#include "hash.h"
#include "log.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STMT_SLOTS      2048 /* power of two; at most half are used */
#define DOWN_BACKOFF_MS 1000

struct stmt {
    char *sql; /* NULL: empty slot */
    uint64_t hash;
    int id;
};

/* A signed scope, "t:<id>.<tag>" or "core.<tag>" (see scope_value). */
#define SCOPE_KEY_LEN 32
#define SCOPE_MAX     (24 + 1 + CRYPTO_SHA256_HEX_LEN + 1)

struct db_conn {
    PGconn *pg;
    bool broken;
    /* The key this connection enrolled with rt_scope.enroll() when it was
     * opened; without one (a database without the walls) no scope is sent
     * and the policies that ask for one see nothing. */
    bool enrolled;
    unsigned char key[SCOPE_KEY_LEN];
    long long scope_tenant; /* the scope scope_value holds; -1: none yet */
    char scope_value[SCOPE_MAX];
    struct stmt *stmts; /* STMT_SLOTS entries, allocated on first use */
    int nstmts;
    int next_id; /* statement numbers 1, 2, ... never reused */
    /* Prepared statements are named "rt_<prefix>_<n>", the prefix random per
     * connection: a statement cannot replace one it cannot name, and the
     * request role cannot list them (scripts/sql/walls.sql). */
    char stmt_prefix[17];
    struct db_conn *next; /* idle list */
};

struct db_pool {
    char *conninfo;
    char *dbname; /* NULL: the database of conninfo */
    char *name;
    bool refuse_privileged;
    int max_size;
    int checkout_timeout_ms;
    int connect_timeout_s;
    char statement_timeout[16];

    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct db_conn *idle;
    int total; /* idle + checked out + connecting */
    struct timespec down_until;
    char down_msg[512];
};

static void err_set(struct db_error *err, enum db_status st, const char *sqlstate,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void err_set(struct db_error *err, enum db_status st, const char *sqlstate,
                    const char *fmt, ...)
{
    va_list ap;

    err->status = st;
    snprintf(err->sqlstate, sizeof err->sqlstate, "%s", sqlstate ? sqlstate : "");
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    /* libpq messages end in a newline; the log and clients do not want it. */
    size_t n = strlen(err->message);
    while (n && (err->message[n - 1] == '\n' || err->message[n - 1] == ' '))
        err->message[--n] = '\0';
}

static void now_plus(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static bool ts_before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

struct db_pool *db_pool_new(const struct db_pool_options *opt)
{
    struct db_pool *p = calloc(1, sizeof *p);
    pthread_condattr_t ca;

    if (!p)
        return NULL;
    p->conninfo = strdup(opt->conninfo ? opt->conninfo : "");
    p->name = strdup(opt->name ? opt->name : "main");
    if (!p->conninfo || !p->name) {
        free(p->conninfo);
        free(p->name);
        free(p);
        return NULL;
    }
    p->dbname = opt->dbname ? strdup(opt->dbname) : NULL;
    p->refuse_privileged = opt->refuse_privileged;
    p->max_size = opt->max_size > 0 ? opt->max_size : 1;
    p->checkout_timeout_ms = opt->checkout_timeout_ms;
    p->connect_timeout_s = opt->connect_timeout_s > 0 ? opt->connect_timeout_s : 5;
    snprintf(p->statement_timeout, sizeof p->statement_timeout, "%d",
             opt->statement_timeout_ms);
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    return p;
}

static void conn_close(struct db_conn *c)
{
    if (!c)
        return;
    if (c->stmts) {
        for (int i = 0; i < STMT_SLOTS; i++)
            free(c->stmts[i].sql);
        free(c->stmts);
    }
    PQfinish(c->pg);
    free(c);
}

void db_pool_free(struct db_pool *p)
{
    if (!p)
        return;
    while (p->idle) {
        struct db_conn *c = p->idle;
        p->idle = c->next;
        conn_close(c);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->conninfo);
    free(p->dbname);
    free(p->name);
    free(p);
}

/* SQLSTATEs that mean the database (not the statement) is the problem: 503.
 * 08P01 (protocol_violation) is the exception in class 08: the server sends
 * it for a statement given more parameters than it uses, and the connection
 * goes on working, so it is the script's bug (500). Should a protocol
 * violation really break the connection, PQstatus says so and the failure
 * is still reported as unavailable. */
static bool sqlstate_unavailable(const char *s)
{
    return s && ((strncmp(s, "08", 2) == 0 && strcmp(s, "08P01") != 0) ||
                 strcmp(s, "57P01") == 0 || strcmp(s, "57P02") == 0 ||
                 strcmp(s, "57P03") == 0 || strcmp(s, "53300") == 0);
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

PGconn *db_connect(const char *conninfo, const char *dbname, const char *application,
                   int connect_timeout_s, struct rt_err *err)
{
    char timeout[16];
    /* The URL is expanded from the first dbname (expand_dbname = 1); a second
     * one (a tenant's database) overrides its database. */
    const char *keys[] = {"dbname", "application_name", "connect_timeout",
                          dbname ? "dbname" : NULL, NULL};
    const char *vals[] = {conninfo, application, timeout, dbname, NULL};

    snprintf(timeout, sizeof timeout, "%d", connect_timeout_s);
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        rt_err_set(err, "%s", pg ? PQerrorMessage(pg) : "out of memory");
        size_t n = err ? strlen(err->msg) : 0;
        while (n && (err->msg[n - 1] == '\n' || err->msg[n - 1] == ' '))
            err->msg[--n] = '\0';
        PQfinish(pg);
        return NULL;
    }
    PQsetNoticeProcessor(pg, ignore_notice, NULL);
    return pg;
}

/* What serving needs of the database (docs/SECURITY.md): a role that row-level
 * security applies to, that cannot create temporary objects or take session
 * advisory locks, and the rt_scope functions (scripts/sql/walls.sql). */
static const char walls_sql[] =
    "SELECT r.rolsuper OR r.rolbypassrls, "
    "has_database_privilege(current_database(), 'TEMPORARY'), "
    "has_function_privilege('pg_catalog.pg_advisory_lock(bigint)', 'EXECUTE'), "
    "to_regprocedure('rt_scope.enroll(text)') IS NOT NULL "
    "FROM pg_roles r WHERE r.rolname = current_user";

/* Checks the walls (refusing a pool that must have them) and enrolls the
 * connection's scope key. Before pipeline mode: plain round trips. */
static int conn_walls(struct db_pool *p, struct db_conn *c, struct db_error *err)
{
    PGresult *r = PQexec(c->pg, walls_sql);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    bool privileged = !ok || PQgetvalue(r, 0, 0)[0] != 'f';
    bool temp = !ok || PQgetvalue(r, 0, 1)[0] != 'f';
    bool locks = !ok || PQgetvalue(r, 0, 2)[0] != 'f';
    bool has_scope = ok && PQgetvalue(r, 0, 3)[0] == 't';
    PQclear(r);
    if (!ok) {
        err_set(err, DB_ERR_UNAVAILABLE, NULL, "cannot check the database role: %s",
                PQerrorMessage(c->pg));
        return -1;
    }
    if (p->refuse_privileged && (privileged || temp || locks || !has_scope)) {
        err_set(err, DB_ERR_REFUSED, NULL,
                "refusing to serve as database role '%s' in database '%s': %s (see "
                "docs/SECURITY.md; scripts/sql/walls.sql installs the walls)",
                PQuser(c->pg), PQdb(c->pg),
                privileged ? "it is a superuser or has BYPASSRLS, so row-level security "
                             "would not apply (use rt_app)"
                : temp     ? "it may create temporary tables"
                : locks    ? "it may take session-level advisory locks"
                           : "the database has no rt_scope functions");
        return -1;
    }
    c->scope_tenant = -1;
    if (!has_scope)
        return 0;
    char hex[2 * SCOPE_KEY_LEN + 1];
    if (crypto_random(c->key, sizeof c->key) < 0) {
        err_set(err, DB_ERR_UNAVAILABLE, NULL, "no random bytes for the scope key");
        return -1;
    }
    crypto_hex(c->key, sizeof c->key, hex);
    const char *v[] = {hex};
    r = PQexecParams(c->pg, "SELECT rt_scope.enroll($1)", 1, NULL, v, NULL, NULL, 0);
    c->enrolled = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
                  PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    OPENSSL_cleanse(hex, sizeof hex);
    if (!c->enrolled) {
        err_set(err, DB_ERR_UNAVAILABLE, NULL,
                "cannot enroll the connection's scope key: %s", PQerrorMessage(c->pg));
        return -1;
    }
    return 0;
}

/* The app.scope value for a transaction of tenant tid (0: core): the scope
 * and sha256(key || scope || key), which rt_scope.verified() recomputes.
 * NULL when the digest cannot be computed (out of memory); the cached value
 * is then left as it was. */
static const char *scope_value(struct db_conn *c, long long tid)
{
    if (c->scope_tenant == tid)
        return c->scope_value;
    char scope[24];
    unsigned char digest[CRYPTO_SHA256_LEN];
    int n = tid > 0 ? snprintf(scope, sizeof scope, "t:%lld", tid)
                    : snprintf(scope, sizeof scope, "core");
    struct crypto_sha256 h;
    crypto_sha256_init(&h);
    crypto_sha256_update(&h, c->key, sizeof c->key);
    crypto_sha256_update(&h, scope, (size_t)n);
    crypto_sha256_update(&h, c->key, sizeof c->key);
    if (crypto_sha256_final(&h, digest) < 0)
        return NULL;
    memcpy(c->scope_value, scope, (size_t)n);
    c->scope_value[n] = '.';
    crypto_hex(digest, sizeof digest, c->scope_value + n + 1);
    c->scope_tenant = tid;
    return c->scope_value;
}

static struct db_conn *conn_open(struct db_pool *p, struct db_error *err)
{
    struct rt_err why;
    struct db_conn *c = calloc(1, sizeof *c);

    if (!c) {
        err_set(err, DB_ERR_UNAVAILABLE, NULL, "out of memory");
        return NULL;
    }
    c->pg = db_connect(p->conninfo, p->dbname, "runtime", p->connect_timeout_s, &why);
    if (!c->pg) {
        err_set(err, DB_ERR_UNAVAILABLE, NULL, "cannot connect to %s: %s", p->name,
                why.msg);
        free(c);
        return NULL;
    }
    unsigned char prefix[(sizeof c->stmt_prefix - 1) / 2];
    if (crypto_random(prefix, sizeof prefix) < 0) {
        err_set(err, DB_ERR_UNAVAILABLE, NULL, "no random bytes for statement names");
        conn_close(c);
        return NULL;
    }
    crypto_hex(prefix, sizeof prefix, c->stmt_prefix);
    if (conn_walls(p, c, err) < 0) {
        conn_close(c);
        return NULL;
    }
    /* Pipeline mode for the connection's whole life: every round trip is
     * sent as a batch ending in a sync, so BEGIN, the scoping settings and
     * the first statement cost one round trip. */
    if (PQenterPipelineMode(c->pg) != 1) {
        err_set(err, DB_ERR_UNAVAILABLE, NULL, "cannot enter pipeline mode: %s",
                PQerrorMessage(c->pg));
        conn_close(c);
        return NULL;
    }
    return c;
}

int db_checkout(struct db_pool *p, struct db_conn **out, struct db_error *err)
{
    struct timespec deadline, now;

    *out = NULL;
    now_plus(&deadline, p->checkout_timeout_ms);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (p->idle) {
            struct db_conn *c = p->idle;
            p->idle = c->next;
            c->next = NULL;
            pthread_mutex_unlock(&p->mu);
            *out = c;
            return 0;
        }
        if (p->total < p->max_size) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (ts_before(&now, &p->down_until)) {
                err_set(err, DB_ERR_UNAVAILABLE, NULL, "%s", p->down_msg);
                pthread_mutex_unlock(&p->mu);
                return -1;
            }
            p->total++;
            pthread_mutex_unlock(&p->mu);
            struct db_conn *c = conn_open(p, err);
            if (c) {
                *out = c;
                return 0;
            }
            pthread_mutex_lock(&p->mu);
            p->total--;
            now_plus(&p->down_until, DOWN_BACKOFF_MS);
            snprintf(p->down_msg, sizeof p->down_msg, "%s", err->message);
            pthread_cond_signal(&p->cv);
            pthread_mutex_unlock(&p->mu);
            log_msg(LOG_LEVEL_WARN, NULL, "database pool %s: %s", p->name, err->message);
            return -1;
        }
        if (pthread_cond_timedwait(&p->cv, &p->mu, &deadline) == ETIMEDOUT) {
            pthread_mutex_unlock(&p->mu);
            err_set(err, DB_ERR_POOL_TIMEOUT, NULL,
                    "no connection to %s free within %d ms (pool size %d)", p->name,
                    p->checkout_timeout_ms, p->max_size);
            return -1;
        }
    }
}

/* Closes every idle connection: after one was found broken, the others
 * (made before the same outage) most likely are too. */
static void pool_drop_idle(struct db_pool *p)
{
    struct db_conn *list;

    pthread_mutex_lock(&p->mu);
    list = p->idle;
    p->idle = NULL;
    for (struct db_conn *c = list; c; c = c->next)
        p->total--;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    while (list) {
        struct db_conn *c = list;
        list = c->next;
        conn_close(c);
    }
}

/* One batch: commands sent, then a sync. Results are read in order. */
struct batch {
    int ncmds;
    int want;       /* index of the command whose result is kept, or -1 */
    PGresult *kept; /* result of command `want` */
    int failed_cmd; /* first command that failed, or -1 */
    struct db_error *err;
};

static int batch_read(struct db_conn *c, struct batch *b)
{
    b->kept = NULL;
    b->failed_cmd = -1;
    for (int i = 0; i < b->ncmds; i++) {
        PGresult *r;
        while ((r = PQgetResult(c->pg)) != NULL) {
            ExecStatusType st = PQresultStatus(r);
            if (st == PGRES_FATAL_ERROR && b->failed_cmd < 0) {
                const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
                const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
                enum db_status kind = DB_ERR_QUERY;
                if (state && strcmp(state, "57014") == 0)
                    kind = DB_ERR_STATEMENT_TIMEOUT;
                else if (sqlstate_unavailable(state) || PQstatus(c->pg) == CONNECTION_BAD)
                    kind = DB_ERR_UNAVAILABLE;
                /* A prepared statement of ours is gone (DEALLOCATE): the
                 * cache no longer tells the truth; never reuse it. */
                if (state && strcmp(state, "26000") == 0)
                    c->broken = true;
                err_set(b->err, kind, state, "%s", msg ? msg : PQerrorMessage(c->pg));
                b->failed_cmd = i;
            }
            if (i == b->want && !b->kept &&
                (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK))
                b->kept = r;
            else
                PQclear(r);
        }
        if (PQstatus(c->pg) == CONNECTION_BAD)
            break;
    }
    if (PQstatus(c->pg) != CONNECTION_BAD) {
        PGresult *r = PQgetResult(c->pg);
        if (r && PQresultStatus(r) != PGRES_PIPELINE_SYNC)
            c->broken = true; /* protocol out of step: never reuse */
        PQclear(r);
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        c->broken = true;
        if (b->failed_cmd < 0 || b->err->status != DB_ERR_UNAVAILABLE) {
            err_set(b->err, DB_ERR_UNAVAILABLE, NULL, "connection lost: %s",
                    PQerrorMessage(c->pg));
            if (b->failed_cmd < 0)
                b->failed_cmd = 0;
        }
    }
    if (b->failed_cmd >= 0) {
        PQclear(b->kept);
        b->kept = NULL;
        return -1;
    }
    return 0;
}

/* The cache slot for sql: its entry if prepared, else the empty slot where
 * it would go. NULL when the cache cannot take more. */
static struct stmt *stmt_slot(struct db_conn *c, const char *sql, uint64_t h)
{
    if (!c->stmts) {
        c->stmts = calloc(STMT_SLOTS, sizeof *c->stmts);
        if (!c->stmts)
            return NULL;
    }
    for (size_t i = h & (STMT_SLOTS - 1);; i = (i + 1) & (STMT_SLOTS - 1)) {
        struct stmt *s = &c->stmts[i];
        if (!s->sql)
            return c->nstmts < STMT_SLOTS / 2 ? s : NULL;
        if (s->hash == h && strcmp(s->sql, sql) == 0)
            return s;
    }
}

/* Queues sql with its parameters: prepared and cached when possible.
 * Returns the number of commands queued (1 or 2), or -1 if sending failed.
 * *newslot is set when a PREPARE was queued and must be recorded on success. */
static int send_statement(struct db_conn *c, const char *sql, int nparams,
                          const char *const *values, struct stmt **newslot, int *newid)
{
    uint64_t h = hash_str(sql);
    struct stmt *s = stmt_slot(c, sql, h);
    char name[48];

    *newslot = NULL;
    if (!s)
        return PQsendQueryParams(c->pg, sql, nparams, NULL, values, NULL, NULL, 0) ? 1 : -1;
    if (s->sql) {
        snprintf(name, sizeof name, "rt_%s_%d", c->stmt_prefix, s->id);
        return PQsendQueryPrepared(c->pg, name, nparams, values, NULL, NULL, 0) ? 1 : -1;
    }
    *newid = ++c->next_id;
    snprintf(name, sizeof name, "rt_%s_%d", c->stmt_prefix, *newid);
    if (!PQsendPrepare(c->pg, name, sql, 0, NULL))
        return -1;
    if (!PQsendQueryPrepared(c->pg, name, nparams, values, NULL, NULL, 0))
        return -1;
    *newslot = s;
    return 2;
}

static void stmt_record(struct db_conn *c, struct stmt *slot, const char *sql, int id)
{
    slot->sql = strdup(sql);
    if (!slot->sql)
        return; /* not cached; the next use prepares under a new name */
    slot->hash = hash_str(sql);
    slot->id = id;
    c->nstmts++;
}

static const char settings_sql[][160] = {
    "SELECT set_config($1, $2, true)",
    "SELECT set_config($1, $2, true), set_config($3, $4, true)",
    "SELECT set_config($1, $2, true), set_config($3, $4, true), set_config($5, $6, true)",
    "SELECT set_config($1, $2, true), set_config($3, $4, true), set_config($5, $6, true), "
    "set_config($7, $8, true)",
    "SELECT set_config($1, $2, true), set_config($3, $4, true), set_config($5, $6, true), "
    "set_config($7, $8, true), set_config($9, $10, true)",
};
/* statement_timeout, transaction_read_only, app.scope, two of the caller's */
#define MAX_SETTINGS 5

/* libpq tracks the server's transaction state from every ReadyForQuery, so
 * it is right after ROLLBACK TO SAVEPOINT as well as after errors. */
static bool conn_in_tx(const struct db_conn *c)
{
    PGTransactionStatusType st = PQtransactionStatus(c->pg);
    return st == PQTRANS_INTRANS || st == PQTRANS_INERROR;
}

static int query_once(struct db_pool *p, struct db_conn *c, const struct db_tx *tx,
                      const char *sql, int nparams, const char *const *values,
                      PGresult **res, struct db_error *err)
{
    struct batch b = {0, -1, NULL, -1, err};
    struct stmt *slot = NULL, *set_slot = NULL;
    int id = 0, set_id = 0, n;
    int begin_cmds = 0;
    const char *set_sql = NULL;

    /* A read-only request runs each statement as its own implicit transaction
     * (everything up to the Sync): one round trip, as `pgbench -S` does. Under
     * READ COMMITTED every statement takes its own snapshot anyway. */
    bool autocommit = tx && tx->read_only && !conn_in_tx(c);
    bool opening = !autocommit && !conn_in_tx(c);
    if (opening || autocommit) {
        const char *sv[2 * MAX_SETTINGS];
        int ns = 0;
        sv[ns++] = "statement_timeout";
        sv[ns++] = p->statement_timeout;
        if (autocommit) {
            sv[ns++] = "transaction_read_only";
            sv[ns++] = "on";
        }
        if (c->enrolled) {
            /* Nothing is sent yet: the connection stays usable. */
            const char *scope = scope_value(c, tx ? tx->tenant_id : 0);
            if (!scope) {
                err_set(err, DB_ERR_UNAVAILABLE, NULL, "out of memory (scope digest)");
                return -1;
            }
            sv[ns++] = "app.scope";
            sv[ns++] = scope;
        }
        for (int i = 0; tx && i < tx->nsettings && ns < 2 * MAX_SETTINGS; i++) {
            sv[ns++] = tx->settings[i].name;
            sv[ns++] = tx->settings[i].value;
        }
        if (opening && !PQsendQueryParams(c->pg, "BEGIN", 0, NULL, NULL, NULL, NULL, 0))
            goto send_failed;
        set_sql = settings_sql[ns / 2 - 1];
        n = send_statement(c, set_sql, ns, sv, &set_slot, &set_id);
        if (n < 0)
            goto send_failed;
        begin_cmds = (opening ? 1 : 0) + n;
    }
    n = send_statement(c, sql, nparams, values, &slot, &id);
    if (n < 0 || !PQpipelineSync(c->pg))
        goto send_failed;
    b.ncmds = begin_cmds + n;
    b.want = b.ncmds - 1;
    int rc = batch_read(c, &b);
    /* A PREPARE is recorded once it went through: commands after it ran. */
    int set_prepare = opening ? 1 : 0;
    if (set_slot && (b.failed_cmd < 0 || b.failed_cmd > set_prepare))
        stmt_record(c, set_slot, set_sql, set_id);
    if (slot && (b.failed_cmd < 0 || b.failed_cmd > begin_cmds))
        stmt_record(c, slot, sql, id);
    if (rc < 0)
        return -1;
    *res = b.kept;
    return 0;

send_failed:
    c->broken = PQstatus(c->pg) == CONNECTION_BAD;
    err_set(err, c->broken ? DB_ERR_UNAVAILABLE : DB_ERR_QUERY, NULL,
            "cannot send statement: %s", PQerrorMessage(c->pg));
    /* Whatever was queued is unreadable now: this connection is done. */
    c->broken = true;
    return -1;
}

int db_query(struct db_pool *p, struct db_conn **conn, const struct db_tx *tx,
             const char *sql, int nparams, const char *const *values, PGresult **res,
             struct db_error *err)
{
    *res = NULL;
    if (tx && tx->nsettings > MAX_SETTINGS - 3) {
        err_set(err, DB_ERR_REFUSED, NULL, "too many transaction settings");
        return -1;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        bool fresh = *conn == NULL;
        if (fresh && db_checkout(p, conn, err) < 0)
            return -1;
        struct db_conn *c = *conn;
        bool opening = !conn_in_tx(c);
        if (query_once(p, c, tx, sql, nparams, values, res, err) == 0)
            return 0;
        /* A pooled connection that died while idle (database restart) is
         * replaced once: nothing of this transaction reached the server. */
        if (!(c->broken && opening && attempt == 0))
            return -1;
        log_msg(LOG_LEVEL_WARN, NULL, "database pool %s: dropping broken connections (%s)",
                p->name, err->message);
        db_checkin(p, c);
        *conn = NULL;
        pool_drop_idle(p);
    }
    return -1;
}

bool db_in_transaction(const struct db_conn *conn)
{
    return conn && !conn->broken && conn_in_tx(conn);
}

bool db_transaction_failed(const struct db_conn *conn)
{
    return conn && !conn->broken && PQtransactionStatus(conn->pg) == PQTRANS_INERROR;
}

static int simple_batch(struct db_conn *c, const char *sql, PGresult **keep,
                        struct db_error *err)
{
    struct batch b = {1, keep ? 0 : -1, NULL, -1, err};

    if (c->broken) {
        err_set(err, DB_ERR_UNAVAILABLE, NULL, "connection lost");
        return -1;
    }
    if (!PQsendQueryParams(c->pg, sql, 0, NULL, NULL, NULL, NULL, 0) ||
        !PQpipelineSync(c->pg)) {
        c->broken = true;
        err_set(err, DB_ERR_UNAVAILABLE, NULL, "cannot send: %s", PQerrorMessage(c->pg));
        return -1;
    }
    int rc = batch_read(c, &b);
    if (keep)
        *keep = b.kept;
    return rc;
}

int db_end(struct db_conn *c, bool commit, struct db_error *err)
{
    PGresult *r = NULL;
    int rc;

    if (!db_in_transaction(c))
        return 0;
    bool was_failed = db_transaction_failed(c);
    rc = simple_batch(c, commit && !was_failed ? "COMMIT" : "ROLLBACK", &r, err);
    if (rc == 0 && commit && was_failed) {
        err_set(err, DB_ERR_QUERY, "25P02",
                "the transaction had failed and was rolled back");
        rc = -1;
    }
    PQclear(r);
    if (rc < 0 && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        c->broken = true;
    return rc;
}

void db_checkin(struct db_pool *p, struct db_conn *c)
{
    struct db_error err;

    if (!c)
        return;
    if (db_in_transaction(c) && db_end(c, false, &err) < 0)
        c->broken = true;
    if (c->broken || PQstatus(c->pg) != CONNECTION_OK ||
        PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        conn_close(c);
        pthread_mutex_lock(&p->mu);
        p->total--;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
        return;
    }
    pthread_mutex_lock(&p->mu);
    c->next = p->idle;
    p->idle = c;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

int db_ping(struct db_pool *p, struct db_error *err)
{
    struct db_conn *c = NULL;
    PGresult *r = NULL;
    int rc = db_query(p, &c, NULL, "SELECT 1", 0, NULL, &r, err);

    PQclear(r);
    if (c && db_end(c, false, err) < 0)
        rc = -1;
    db_checkin(p, c);
    return rc;
}
