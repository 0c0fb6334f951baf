/* provision: the tenant lifecycle engine (see provision.h). */
#include "provision.h"

#include "auth.h"
#include "db.h"
#include "log.h"
#include "migrate.h"
#include "seed.h"
#include "spare.h"
#include "sql.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

/* An owner connection to server (the directory lives on "main"). */
PGconn *provision_connect(const struct config *cfg, const char *server, struct rt_err *err)
{
    const struct config_server *srv = config_server(cfg, server);
    if (!srv) {
        rt_err_set(err, "unknown server '%.64s' (not in config servers)", server);
        return NULL;
    }
    if (!srv->owner_url[0]) {
        rt_err_set(err, "database.owner_url is not set (set RUNTIME_DATABASE_OWNER_URL)");
        return NULL;
    }
    struct rt_err why;
    PGconn *c = db_connect(srv->owner_url, NULL, "runtime-tenant",
                           cfg->database_connect_timeout, &why);
    if (!c)
        rt_err_set(err, "cannot connect: %s", why.msg);
    return c;
}

/* Ends every session and token of tenant id (auth.h, auth_revoke_tenant):
 * before its storage is dropped, and again before recreated storage goes
 * live, so no token of the old storage's users names someone in the new
 * one. c is on the directory's server. Servers apply it within
 * auth.revocation_refresh_ms; the one that made the change at once. A
 * directory without the auth tables (core migrations not run) has no
 * sessions to end. */
static int end_sessions(const struct config *cfg, PGconn *c, long long id,
                        struct rt_err *err)
{
    char ids[24], ttl[24];
    struct rt_err e;
    snprintf(ids, sizeof ids, "%lld", id);
    snprintf(ttl, sizeof ttl, "%d", cfg->auth_token_ttl_s + 2 * cfg->auth_leeway_s);
    const char *v[] = {ids, ttl};
    if (sql_run(c, AUTH_REVOKE_TENANT_SQL, 2, v, &e) == 0 ||
        strcmp(e.sqlstate, "42P01") == 0) /* undefined_table */
        return 0;
    *err = e;
    return rt_err_prefix(err, "cannot end the tenant's sessions");
}

/* Runs the tenant's migrations (the shared target for a shared tenant).
 * On failure the engine's first failure is the reason. */
static int run_migrations(const struct config *cfg, const struct tenant_row *row,
                          struct rt_err *err)
{
    struct migrate_request req = {.cmd = "up", .steps = -1, .jobs = 1, .version = -1};
    struct rt_err merr;

    if (strcmp(row->isolation, "shared") == 0)
        req.shared = true;
    else
        req.tenant = row->code;
    if (migrate_run(cfg, &req, NULL, &merr) == 0)
        return 0;
    *err = merr;
    return rt_err_prefix(err, "migrations");
}

/* The fingerprint of the tenant migration files at head (what pre-made
 * storage must have been made from). */
static int tenant_head(const struct config *cfg, char fp[65], struct rt_err *err)
{
    int version;
    return migrate_tenant_head(cfg, &version, fp, err);
}

/* ---- provisioning ------------------------------------------------------------ */

static int run_seeds(const struct config *cfg, const struct tenant_row *row,
                     struct rt_err *err)
{
    struct seed_result res;
    int rc = seed_tenant(cfg, row, &res);
    if (rc < 0) {
        *err = res.err;
        rt_err_prefix(err, "seeds");
    }
    seed_result_free(&res);
    return rc;
}

/* Notes in res why pre-made storage was not used. */
static void fell_back(struct provision_result *res, const char *why)
{
    if (why[0] && !res->warning[0])
        snprintf(res->warning, sizeof res->warning, "pre-made storage not used: %.480s",
                 why);
}

/* Makes the tenant's storage: pre-migrated when there is some made from the
 * current migration files (a spare schema, a template database), else
 * empty. c is on the directory's server, sc on the tenant's. Anything that
 * keeps the pre-made storage from being used falls back to empty storage
 * (res->warning says why); the migrations that follow bring either to
 * head. */
static int storage_make(const struct config *cfg, PGconn *c, PGconn *sc,
                        const struct tenant_row *row, struct provision_result *res,
                        struct rt_err *err)
{
    bool schema = strcmp(row->isolation, "schema") == 0;
    bool database = strcmp(row->isolation, "database") == 0;
    char fp[65], tpl[SPARE_NAME_MAX];
    struct rt_err e = {{0}, {0}};

    res->storage = schema || database ? PROVISION_STORAGE_EMPTY : PROVISION_STORAGE_SHARED;
    if (!(schema && cfg->tenancy_spare_schemas > 0) &&
        !(database && cfg->tenancy_database_template))
        return tenant_storage_create(sc, row, NULL, err);
    /* A step file that does not load fails the migrations step below. */
    if (tenant_head(cfg, fp, &e) == 0) {
        if (schema && spare_schema_take(sc, row, fp, &e) == 1) {
            res->storage = PROVISION_STORAGE_SPARE;
            return 0;
        }
        if (database && spare_template_find(sc, PQdb(c), fp, tpl) == 1) {
            if (tenant_storage_create(sc, row, tpl, &e) == 0) {
                res->storage = PROVISION_STORAGE_TEMPLATE;
                return 0;
            }
        }
    }
    fell_back(res, e.msg);
    return tenant_storage_create(sc, row, NULL, err);
}

/* Appends " (and <what> failed: <why>)" to err's message. */
static void also_failed(struct rt_err *err, const char *what, const struct rt_err *e)
{
    size_t n = strlen(err->msg);
    snprintf(err->msg + n, sizeof err->msg - n, " (and %s failed: %.200s)", what, e->msg);
}

int provision_tenant(const struct config *cfg, const struct tenant_spec *spec, bool force,
                     struct provision_result *res, struct rt_err *err)
{
    struct tenant_row row;
    struct rt_err derr;
    PGconn *c, *sc = NULL; /* the directory's server, the tenant's server */
    int rc = -1;

    memset(res, 0, sizeof *res);
    memset(err, 0, sizeof *err);
    if (!tenant_code_valid(spec->code))
        return rt_err_set(err, "'%.60s' is not a tenant code (^[a-z][a-z0-9_]{1,39}$)",
                          spec->code);
    if (!tenant_isolation_valid(spec->isolation) ||
        (spec->domain && !tenant_host_valid(spec->domain)) ||
        (spec->subdomain && !tenant_host_valid(spec->subdomain)))
        return rt_err_set(err, "isolation must be shared, schema or database; domains are "
                               "lower-case host names");
    const char *server = spec->server ? spec->server : "main";
    if (!(c = provision_connect(cfg, "main", err)))
        return -1;
    /* The tenant's server is usually the directory's: one connection. */
    if (strcmp(server, "main") == 0)
        sc = c;
    else if (!(sc = provision_connect(cfg, server, err)))
        goto done;
    if (force) {
        /* Re-provision: the old storage goes first, then the row is taken
         * over as after a failure. */
        int found = tenant_row_get(c, spec->code, &row, err);
        if (found < 0)
            goto done;
        if (found && strcmp(row.server, server) != 0) {
            rt_err_set(err, "tenant '%s' lives on server '%s': purge it to move it",
                       spec->code, row.server);
            goto done;
        }
        if (found &&
            (end_sessions(cfg, c, row.id, err) < 0 ||
             tenant_storage_drop(sc, &row, err) < 0 ||
             tenant_set_status(c, spec->code, "failed", "re-provisioning", err) < 0))
            goto done;
    }
    if (tenant_row_create(c, spec, &res->id, err) < 0)
        goto done;
    int found = tenant_row_get(c, spec->code, &row, err);
    if (found < 1) {
        if (found == 0) /* deleted by hand in between */
            rt_err_set(err, "no tenant '%s'", spec->code);
        goto done;
    }
    /* Compensation undoes only what this attempt made: storage that could
     * not be created (it may exist already, and not be ours) is left alone. */
    bool made = storage_make(cfg, c, sc, &row, res, err) == 0;
    if (!made || run_migrations(cfg, &row, err) < 0 || run_seeds(cfg, &row, err) < 0 ||
        (force && end_sessions(cfg, c, row.id, err) < 0) ||
        tenant_set_status(c, spec->code, "active", NULL, err) < 0) {
        if (made && tenant_storage_drop(sc, &row, &derr) < 0)
            also_failed(err, "dropping its storage", &derr);
        if (tenant_set_status(c, spec->code, "failed", err->msg, &derr) < 0)
            also_failed(err, "marking it failed", &derr);
        goto done;
    }
    rc = 0;
done:
    if (sc != c)
        PQfinish(sc);
    PQfinish(c);
    return rc;
}

/* Refills (or with drop, drops) the pre-made storage of one server. c is
 * on the directory's server. Returns 0, or -1 with err. */
static int spares_of(const struct config *cfg, PGconn *c, const char *server,
                     const struct spare_want *want, bool drop, int *count,
                     struct rt_err *err)
{
    PGconn *sc = strcmp(server, "main") == 0 ? c : provision_connect(cfg, server, err);
    int rc = 0;

    if (!sc)
        return -1;
    if (drop) {
        *count = spare_drop_all(sc, want->directory_db, err);
        rc = *count < 0 ? -1 : 0;
    } else {
        rc = spare_refill(cfg, sc, server, want, count, err);
    }
    if (sc != c)
        PQfinish(sc);
    return rc;
}

/* What to keep pre-made for the next tenants of isolation (NULL: every
 * kind), at the head of the current migration files. */
static int spares_want(const struct config *cfg, PGconn *c, const char *isolation,
                       char fp[65], struct spare_want *want, struct rt_err *err)
{
    memset(want, 0, sizeof *want);
    if (tenant_head(cfg, fp, err) < 0)
        return -1;
    want->fp = fp;
    want->directory_db = PQdb(c);
    if (!isolation || strcmp(isolation, "schema") == 0)
        want->schemas = cfg->tenancy_spare_schemas;
    if (!isolation || strcmp(isolation, "database") == 0)
        want->template = cfg->tenancy_database_template;
    return 0;
}

int provision_replenish(const struct config *cfg, const char *server, const char *isolation,
                        struct rt_err *err)
{
    struct spare_want want;
    char fp[65];
    int made, rc = -1;

    if (!(strcmp(isolation, "schema") == 0 && cfg->tenancy_spare_schemas > 0) &&
        !(strcmp(isolation, "database") == 0 && cfg->tenancy_database_template))
        return 0;
    PGconn *c = provision_connect(cfg, "main", err);
    if (c && spares_want(cfg, c, isolation, fp, &want, err) == 0)
        rc = spares_of(cfg, c, server ? server : "main", &want, false, &made, err);
    PQfinish(c);
    return rc;
}

void provision_spares_free(struct provision_spares_report *rep)
{
    if (!rep)
        return;
    free(rep->servers);
    memset(rep, 0, sizeof *rep);
}

int provision_spares(const struct config *cfg, const char *server, bool drop,
                     struct provision_spares_report *rep, struct rt_err *err)
{
    struct spare_want want;
    char fp[65];
    int rc = -1;

    memset(rep, 0, sizeof *rep);
    PGconn *c = provision_connect(cfg, "main", err);
    if (!c)
        return -1;
    memset(&want, 0, sizeof want);
    want.directory_db = PQdb(c); /* all --drop needs: it works with broken files */
    if (!drop && spares_want(cfg, c, NULL, fp, &want, err) < 0)
        goto done;
    rep->servers =
        calloc(cfg->nservers > 0 ? (size_t)cfg->nservers : 1, sizeof *rep->servers);
    if (!rep->servers) {
        rt_err_set(err, "out of memory");
        goto done;
    }
    rc = 0;
    for (int i = 0; i < cfg->nservers; i++) {
        const char *name = cfg->servers[i].name;
        if (server && strcmp(server, name) != 0)
            continue;
        struct provision_spares_server *s = &rep->servers[rep->n++];
        snprintf(s->name, sizeof s->name, "%s", name);
        s->ok = spares_of(cfg, c, name, &want, drop, &s->count, &s->err) == 0;
        if (!s->ok)
            rc = 1;
    }
    if (server && !config_server(cfg, server)) {
        rep->unknown_server = true;
        rc = 1;
    }
done:
    PQfinish(c);
    return rc;
}

/* ---- replenishing in the background ----------------------------------------- */

/* The HTTP API's refills: one worker thread at most, started when there is
 * work and gone when there is none; requests that come while it runs are
 * queued (once per server and isolation) and run after, so two refills
 * never run at once in this process (spare_refill's advisory lock keeps
 * them apart across processes). Process-wide, like the server it serves. */
#define BG_MAX 32

static struct {
    pthread_mutex_t mu; /* guards everything below */
    const struct config *cfg;
    bool running, joinable, stopping;
    pthread_t thread;
    struct bg_job {
        char server[32];
        char isolation[16];
    } jobs[BG_MAX];
    int njobs;
} bg = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void *bg_main(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&bg.mu);
        if (bg.njobs == 0 || bg.stopping) {
            bg.running = false;
            pthread_mutex_unlock(&bg.mu);
            return NULL;
        }
        struct bg_job job = bg.jobs[0];
        memmove(&bg.jobs[0], &bg.jobs[1], sizeof bg.jobs[0] * (size_t)--bg.njobs);
        const struct config *cfg = bg.cfg;
        pthread_mutex_unlock(&bg.mu);

        struct rt_err err;
        if (provision_replenish(cfg, job.server, job.isolation, &err) < 0)
            log_msg(LOG_LEVEL_WARN, NULL, "pre-made %s storage on server %s: %s",
                    job.isolation, job.server, err.msg);
    }
}

void provision_replenish_later(const struct config *cfg, const char *server,
                               const char *isolation)
{
    if (!server)
        server = "main";
    if (!(strcmp(isolation, "schema") == 0 && cfg->tenancy_spare_schemas > 0) &&
        !(strcmp(isolation, "database") == 0 && cfg->tenancy_database_template))
        return;
    if (strlen(server) >= sizeof bg.jobs[0].server ||
        strlen(isolation) >= sizeof bg.jobs[0].isolation)
        return;
    pthread_mutex_lock(&bg.mu);
    bool queued = bg.stopping;
    for (int i = 0; i < bg.njobs && !queued; i++)
        queued = strcmp(bg.jobs[i].server, server) == 0 &&
                 strcmp(bg.jobs[i].isolation, isolation) == 0;
    if (!queued && bg.njobs < BG_MAX) {
        struct bg_job *j = &bg.jobs[bg.njobs++];
        snprintf(j->server, sizeof j->server, "%s", server);
        snprintf(j->isolation, sizeof j->isolation, "%s", isolation);
    }
    bg.cfg = cfg;
    if (!bg.running && !bg.stopping && bg.njobs > 0) {
        /* The last worker has ended (or is about to return): reap it. */
        if (bg.joinable)
            pthread_join(bg.thread, NULL);
        bg.joinable = pthread_create(&bg.thread, NULL, bg_main, NULL) == 0;
        bg.running = bg.joinable;
        if (!bg.running) {
            bg.njobs = 0;
            log_msg(LOG_LEVEL_WARN, NULL, "pre-made storage: cannot start a thread");
        }
    }
    pthread_mutex_unlock(&bg.mu);
}

void provision_background_stop(void)
{
    pthread_mutex_lock(&bg.mu);
    bg.stopping = true;
    bg.njobs = 0;
    bool join = bg.joinable;
    bg.joinable = false;
    pthread_t t = bg.thread;
    pthread_mutex_unlock(&bg.mu);
    if (join)
        pthread_join(t, NULL);
}

/* ---- status changes and purges --------------------------------------------- */

int provision_set_status(const struct config *cfg, const char *code, const char *status,
                         struct rt_err *err)
{
    PGconn *c = provision_connect(cfg, "main", err);
    if (!c)
        return -1;
    struct tenant_row row;
    int rc = 0;
    /* A deleted tenant's sessions end; activating it again does not bring
     * them back. */
    if (strcmp(status, "deleted") == 0) {
        int found = tenant_row_get(c, code, &row, err);
        if (found == 0)
            rt_err_set(err, "no tenant '%s'", code);
        rc = found == 1 ? end_sessions(cfg, c, row.id, err) : -1;
    }
    if (rc == 0)
        rc = tenant_set_status(c, code, status, NULL, err);
    PQfinish(c);
    return rc;
}

int provision_purge(const struct config *cfg, const char *code, struct rt_err *err)
{
    struct tenant_row row;
    PGconn *c = provision_connect(cfg, "main", err), *sc = NULL;
    int rc = -1;

    if (!c)
        return -1;
    int found = tenant_row_get(c, code, &row, err);
    if (found == 0)
        rt_err_set(err, "no tenant '%s'", code);
    if (found == 1 && end_sessions(cfg, c, row.id, err) == 0 &&
        (sc = provision_connect(cfg, row.server, err)) &&
        tenant_storage_drop(sc, &row, err) == 0 && tenant_row_delete(c, code, err) == 0)
        rc = 0;
    PQfinish(sc);
    PQfinish(c);
    return rc;
}
