/* provision: tenant lifecycle and `runtime tenant` (see provision.h). */
#include "provision.h"

#include "auth.h"
#include "log.h"
#include "migrate.h"
#include "seed.h"
#include "spare.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

/* An owner connection to server (the directory lives on "main"). */
PGconn *provision_connect(const struct config *cfg, const char *server,
                          struct tenant_error *err)
{
    const struct config_server *srv = config_server(cfg, server);
    if (!srv) {
        snprintf(err->msg, sizeof err->msg,
                 "unknown server '%.64s' (not in config servers)", server);
        return NULL;
    }
    if (!srv->owner_url[0]) {
        snprintf(err->msg, sizeof err->msg,
                 "database.owner_url is not set (set RUNTIME_DATABASE_OWNER_URL)");
        return NULL;
    }
    char why[400];
    PGconn *c = db_connect(srv->owner_url, NULL, "runtime-tenant",
                           cfg->database_connect_timeout, why, sizeof why);
    if (!c)
        snprintf(err->msg, sizeof err->msg, "cannot connect: %s", why);
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
                        struct tenant_error *err)
{
    char ids[24], ttl[24];
    snprintf(ids, sizeof ids, "%lld", id);
    snprintf(ttl, sizeof ttl, "%d", cfg->auth_token_ttl_s + 2 * cfg->auth_leeway_s);
    const char *v[] = {ids, ttl};
    PGresult *r = PQexecParams(c, AUTH_REVOKE_TENANT_SQL, 2, NULL, v, NULL, NULL, 0);
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_COMMAND_OK && !(st && strcmp(st, "42P01") == 0)) {
        snprintf(err->msg, sizeof err->msg, "cannot end the tenant's sessions: %s",
                 PQresultErrorMessage(r));
        rc = -1;
    }
    PQclear(r);
    return rc;
}

/* Runs the tenant's migrations (the shared target for a shared tenant).
 * On failure the first line of the engine's report is the reason. */
static int run_migrations(const struct config *cfg, const struct tenant_row *row,
                          struct tenant_error *err)
{
    struct migrate_request req = {.cmd = "up", .steps = -1, .jobs = 1, .version = -1};
    struct rt_err merr;

    if (strcmp(row->isolation, "shared") == 0)
        req.shared = true;
    else
        req.tenant = row->code;
    if (migrate_run(cfg, &req, NULL, &merr) == 0)
        return 0;
    snprintf(err->msg, sizeof err->msg, "migrations: %.1000s", merr.msg);
    return -1;
}

static int run_seeds(const struct config *cfg, const struct tenant_row *row,
                     struct tenant_error *err)
{
    struct seed_result res;
    if (seed_tenant(cfg, row, &res) == 0)
        return 0;
    snprintf(err->msg, sizeof err->msg, "seeds: %.1000s", res.error);
    return -1;
}

/* Makes the tenant's storage: pre-migrated when there is some made from the
 * current migration files (a spare schema, a template database), else
 * empty. c is on the directory's server, sc on the tenant's. Anything that
 * keeps the pre-made storage from being used falls back to empty storage;
 * the migrations that follow bring either to head. */
static int storage_make(const struct config *cfg, PGconn *c, PGconn *sc,
                        const struct tenant_row *row, struct tenant_error *err)
{
    bool schema = strcmp(row->isolation, "schema") == 0;
    bool database = strcmp(row->isolation, "database") == 0;
    char fp[65], tpl[SPARE_NAME_MAX];
    struct rt_err why;
    int version;

    if (!(schema && cfg->tenancy_spare_schemas > 0) &&
        !(database && cfg->tenancy_database_template))
        return tenant_storage_create(sc, row, NULL, err);
    /* A step file that does not load fails the migrations step below. */
    if (migrate_tenant_head(cfg, &version, fp, &why) == 0) {
        if (schema && spare_schema_take(sc, row, fp, &why) == 1)
            return 0;
        if (database && spare_template_find(sc, PQdb(c), fp, tpl) == 1 &&
            tenant_storage_create(sc, row, tpl, err) == 0)
            return 0;
    }
    return tenant_storage_create(sc, row, NULL, err);
}

int provision_tenant(const struct config *cfg, const struct tenant_spec *spec, bool force,
                     long long *id, struct tenant_error *err)
{
    struct tenant_row row;
    struct tenant_error derr;
    PGconn *c, *sc = NULL; /* the directory's server, the tenant's server */
    int rc = -1;

    memset(err, 0, sizeof *err);
    if (!tenant_code_valid(spec->code)) {
        snprintf(err->msg, sizeof err->msg,
                 "'%.60s' is not a tenant code (^[a-z][a-z0-9_]{1,39}$)", spec->code);
        return -1;
    }
    if (!tenant_isolation_valid(spec->isolation) ||
        (spec->domain && !tenant_host_valid(spec->domain)) ||
        (spec->subdomain && !tenant_host_valid(spec->subdomain))) {
        snprintf(err->msg, sizeof err->msg,
                 "isolation must be shared, schema or database; domains are lower-case "
                 "host names");
        return -1;
    }
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
            snprintf(err->msg, sizeof err->msg,
                     "tenant '%s' lives on server '%s': purge it to move it", spec->code,
                     row.server);
            goto done;
        }
        if (found &&
            (end_sessions(cfg, c, row.id, err) < 0 ||
             tenant_storage_drop(sc, &row, err) < 0 ||
             tenant_set_status(c, spec->code, "failed", "re-provisioning", err) < 0))
            goto done;
    }
    if (tenant_row_create(c, spec, id, err) < 0 ||
        tenant_row_get(c, spec->code, &row, err) < 1)
        goto done;
    /* Compensation undoes only what this attempt made: storage that could
     * not be created (it may exist already, and not be ours) is left alone. */
    bool made = storage_make(cfg, c, sc, &row, err) == 0;
    if (!made || run_migrations(cfg, &row, err) < 0 || run_seeds(cfg, &row, err) < 0 ||
        (force && end_sessions(cfg, c, row.id, err) < 0) ||
        tenant_set_status(c, spec->code, "active", NULL, err) < 0) {
        if (made && tenant_storage_drop(sc, &row, &derr) < 0)
            snprintf(err->msg + strlen(err->msg), sizeof err->msg - strlen(err->msg),
                     " (and dropping its storage failed: %.200s)", derr.msg);
        if (tenant_set_status(c, spec->code, "failed", err->msg, &derr) < 0)
            snprintf(err->msg + strlen(err->msg), sizeof err->msg - strlen(err->msg),
                     " (and marking it failed failed: %.200s)", derr.msg);
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
                     struct tenant_error *err)
{
    PGconn *sc = strcmp(server, "main") == 0 ? c : provision_connect(cfg, server, err);
    int rc = 0;

    if (!sc)
        return -1;
    struct rt_err serr;
    if (drop) {
        *count = spare_drop_all(sc, want->directory_db, &serr);
        rc = *count < 0 ? -1 : 0;
    } else {
        rc = spare_refill(cfg, sc, server, want, count, &serr);
    }
    if (rc < 0)
        snprintf(err->msg, sizeof err->msg, "%s", serr.msg);
    if (sc != c)
        PQfinish(sc);
    return rc;
}

/* What to keep pre-made for the next tenants of isolation (NULL: every
 * kind), at the head of the current migration files. */
static int spares_want(const struct config *cfg, PGconn *c, const char *isolation,
                       char fp[65], struct spare_want *want, struct tenant_error *err)
{
    int version;
    memset(want, 0, sizeof *want);
    struct rt_err herr;
    if (migrate_tenant_head(cfg, &version, fp, &herr) < 0) {
        snprintf(err->msg, sizeof err->msg, "%s", herr.msg);
        return -1;
    }
    want->fp = fp;
    want->directory_db = PQdb(c);
    if (!isolation || strcmp(isolation, "schema") == 0)
        want->schemas = cfg->tenancy_spare_schemas;
    if (!isolation || strcmp(isolation, "database") == 0)
        want->template = cfg->tenancy_database_template;
    return 0;
}

int provision_replenish(const struct config *cfg, const char *server, const char *isolation,
                        struct tenant_error *err)
{
    struct spare_want want;
    char fp[65];
    int made, rc = -1;

    memset(err, 0, sizeof *err);
    if (!(strcmp(isolation, "schema") == 0 && cfg->tenancy_spare_schemas > 0) &&
        !(strcmp(isolation, "database") == 0 && cfg->tenancy_database_template))
        return 0;
    PGconn *c = provision_connect(cfg, "main", err);
    if (c && spares_want(cfg, c, isolation, fp, &want, err) == 0)
        rc = spares_of(cfg, c, server ? server : "main", &want, false, &made, err);
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

        struct tenant_error err;
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

/* ---- the command line ---------------------------------------------------- */

int provision_set_status(const struct config *cfg, const char *code, const char *status,
                         struct tenant_error *err)
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
            snprintf(err->msg, sizeof err->msg, "no tenant '%s'", code);
        rc = found == 1 ? end_sessions(cfg, c, row.id, err) : -1;
    }
    if (rc == 0)
        rc = tenant_set_status(c, code, status, NULL, err);
    PQfinish(c);
    return rc;
}

int provision_purge(const struct config *cfg, const char *code, struct tenant_error *err)
{
    struct tenant_row row;
    PGconn *c = provision_connect(cfg, "main", err), *sc = NULL;
    int rc = -1;

    if (!c)
        return -1;
    int found = tenant_row_get(c, code, &row, err);
    if (found == 0)
        snprintf(err->msg, sizeof err->msg, "no tenant '%s'", code);
    if (found == 1 && end_sessions(cfg, c, row.id, err) == 0 &&
        (sc = provision_connect(cfg, row.server, err)) &&
        tenant_storage_drop(sc, &row, err) == 0 && tenant_row_delete(c, code, err) == 0)
        rc = 0;
    PQfinish(sc);
    PQfinish(c);
    return rc;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: runtime tenant <command> [options]\n"
            "\n"
            "  create CODE [--name NAME] [--isolation shared|schema|database]\n"
            "              [--server NAME] [--domain HOST] [--subdomain NAME] [--force]\n"
            "      provision a tenant: directory row, storage, migrations, active;\n"
            "      a failure drops what was made and marks the tenant failed (retry\n"
            "      with the same command). --force re-provisions an existing tenant.\n"
            "  list [--json]          every tenant in the directory\n"
            "  show CODE [--json]     one tenant\n"
            "  suspend CODE | activate CODE | delete CODE (soft)\n"
            "  purge CODE             drop the tenant's storage and directory row\n"
            "  spares [--server NAME] [--drop]\n"
            "      make the pre-migrated storage new tenants take (tenancy.spare_schemas\n"
            "      spare schemas, the template database) on every server or one, and\n"
            "      drop what older migration files made; --drop drops all of it.\n"
            "\n"
            "Every form takes --config PATH. Isolation defaults to\n"
            "tenancy.default_isolation. Codes match ^[a-z][a-z0-9_]{1,39}$.\n");
}

/* `runtime tenant spares`. */
static int cmd_spares(const struct config *cfg, PGconn *c, const char *server, bool drop)
{
    struct spare_want want;
    struct tenant_error err;
    char fp[65];
    int rc = 0;

    memset(&err, 0, sizeof err);
    memset(&want, 0, sizeof want);
    want.directory_db = PQdb(c); /* all --drop needs: it works with broken files */
    if (!drop && spares_want(cfg, c, NULL, fp, &want, &err) < 0) {
        fprintf(stderr, "runtime tenant spares: %s\n", err.msg);
        return 1;
    }
    for (int i = 0; i < cfg->nservers; i++) {
        const char *name = cfg->servers[i].name;
        int count = 0;
        if (server && strcmp(server, name) != 0)
            continue;
        if (spares_of(cfg, c, name, &want, drop, &count, &err) < 0) {
            fprintf(stderr, "runtime tenant spares: server %s: %s\n", name, err.msg);
            rc = 1;
        } else {
            printf("server %s: %d %s\n", name, count, drop ? "dropped" : "made");
        }
    }
    if (server && !config_server(cfg, server)) {
        fprintf(stderr, "runtime tenant spares: unknown server '%s'\n", server);
        rc = 1;
    }
    return rc;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* Prints the JSON of one query returning a single json value. */
static int print_json(PGconn *c, const char *sql, int n, const char *const *v)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, v, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "runtime tenant: %s", PQerrorMessage(c));
        rc = 1;
    } else if (PQntuples(r) == 0 || PQgetisnull(r, 0, 0)) {
        rc = 3; /* nothing */
    } else {
        printf("%s\n", PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    return rc;
}

#define TENANT_JSON_COLUMNS                                                              \
    "id, code, name, isolation, server, schema_name, database_name, domain, subdomain, " \
    "status, status_reason, settings, schema_version, migration_status, "                \
    "last_migration_error, migrated_at, created_at, updated_at, deleted_at"

static int cmd_list(PGconn *c, bool json)
{
    if (json) {
        int rc = print_json(c,
                            "SELECT coalesce(json_agg(t ORDER BY code), '[]') FROM "
                            "(SELECT " TENANT_JSON_COLUMNS " FROM core.tenants) t",
                            0, NULL);
        return rc == 3 ? 0 : rc;
    }
    PGresult *r = PQexec(c, "SELECT code, isolation, status, schema_version, "
                            "coalesce(domain, ''), coalesce(subdomain, '') "
                            "FROM core.tenants ORDER BY code");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "runtime tenant: %s", PQerrorMessage(c));
        PQclear(r);
        return 1;
    }
    printf("%-24s %-9s %-13s %7s  %s\n", "CODE", "ISOLATION", "STATUS", "VERSION",
           "DOMAIN");
    for (int i = 0; i < PQntuples(r); i++)
        printf("%-24s %-9s %-13s %7s  %s%s%s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
               PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4),
               *PQgetvalue(r, i, 5) ? " sub:" : "", PQgetvalue(r, i, 5));
    printf("%d tenant%s\n", PQntuples(r), PQntuples(r) == 1 ? "" : "s");
    PQclear(r);
    return 0;
}

static int cmd_show(PGconn *c, const char *code, bool json)
{
    const char *v[] = {code};
    int rc = print_json(
        c,
        json ? "SELECT row_to_json(t) FROM (SELECT " TENANT_JSON_COLUMNS
               " FROM core.tenants WHERE code = $1) t"
             : "SELECT jsonb_pretty(to_jsonb(t)) FROM (SELECT " TENANT_JSON_COLUMNS
               " FROM core.tenants WHERE code = $1) t",
        1, v);
    if (rc == 3) {
        fprintf(stderr, "runtime tenant: no tenant '%s'\n", code);
        return 1;
    }
    return rc;
}

int provision_main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;
    const char *config_file = NULL, *code = NULL;
    struct tenant_spec spec = {0};
    struct tenant_error err;
    bool json = false, force = false, drop = false;
    int rc = 1;

    if (!cmd || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(cmd ? stdout : stderr);
        return cmd ? 0 : 2;
    }
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--force") == 0) {
            force = true;
        } else if (strcmp(a, "--drop") == 0) {
            drop = true;
        } else if (next && strcmp(a, "--config") == 0) {
            config_file = argv[++i];
        } else if (next && strcmp(a, "--name") == 0) {
            spec.name = argv[++i];
        } else if (next && strcmp(a, "--isolation") == 0) {
            spec.isolation = argv[++i];
        } else if (next && strcmp(a, "--server") == 0) {
            spec.server = argv[++i];
        } else if (next && strcmp(a, "--domain") == 0) {
            spec.domain = argv[++i];
        } else if (next && strcmp(a, "--subdomain") == 0) {
            spec.subdomain = argv[++i];
        } else if (a[0] != '-' && !code) {
            code = a;
        } else {
            fprintf(stderr, "runtime tenant: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    bool needs_code = strcmp(cmd, "list") != 0 && strcmp(cmd, "spares") != 0;
    if (needs_code && (!code || !tenant_code_valid(code))) {
        fprintf(stderr, "runtime tenant %s: %s\n", cmd,
                code ? "not a tenant code (^[a-z][a-z0-9_]{1,39}$)" : "CODE is required");
        return 2;
    }
    struct config *cfg = config_load_cli(config_file);
    if (!cfg)
        return 1;
    if (strcmp(cmd, "create") == 0) {
        long long id = 0;
        double t0 = now_ms();
        spec.code = code;
        if (!spec.isolation)
            spec.isolation = cfg->tenancy_default_isolation;
        if (provision_tenant(cfg, &spec, force, &id, &err) < 0) {
            fprintf(stderr, "runtime tenant create: %s\n", err.msg);
            rc = 1;
        } else {
            if (json)
                printf("{\"id\":%lld,\"code\":\"%s\",\"isolation\":\"%s\",\"status\":"
                       "\"active\",\"duration_ms\":%.1f}\n",
                       id, code, spec.isolation, now_ms() - t0);
            else
                printf("tenant %s created (%s, id %lld) in %.0f ms\n", code, spec.isolation,
                       id, now_ms() - t0);
            rc = 0;
            /* The next tenant's pre-made storage, after this one is
             * reported: it is not part of this tenant's creation. */
            if (provision_replenish(cfg, spec.server, spec.isolation, &err) < 0)
                fprintf(stderr, "runtime tenant create: warning: pre-made storage: %s\n",
                        err.msg);
        }
        goto out;
    }
    PGconn *c = provision_connect(cfg, "main", &err);
    if (!c) {
        fprintf(stderr, "runtime tenant: %s\n", err.msg);
        goto out;
    }
    if (strcmp(cmd, "list") == 0) {
        rc = cmd_list(c, json);
    } else if (strcmp(cmd, "spares") == 0) {
        rc = cmd_spares(cfg, c, spec.server, drop);
    } else if (strcmp(cmd, "show") == 0) {
        rc = cmd_show(c, code, json);
    } else if (strcmp(cmd, "suspend") == 0 || strcmp(cmd, "activate") == 0 ||
               strcmp(cmd, "delete") == 0) {
        const char *status = cmd[0] == 's'   ? "suspended"
                             : cmd[0] == 'a' ? "active"
                                             : "deleted";
        rc = provision_set_status(cfg, code, status, &err) < 0 ? 1 : 0;
        if (rc)
            fprintf(stderr, "runtime tenant %s: %s\n", cmd, err.msg);
        else
            printf("tenant %s %s\n", code, status);
    } else if (strcmp(cmd, "purge") == 0) {
        rc = provision_purge(cfg, code, &err) < 0 ? 1 : 0;
        if (rc)
            fprintf(stderr, "runtime tenant purge: %s\n", err.msg);
        else
            printf("tenant %s purged\n", code);
    } else {
        fprintf(stderr, "runtime tenant: unknown command '%s'\n", cmd);
        usage(stderr);
        rc = 2;
    }
    PQfinish(c);
out:
    config_free(cfg);
    return rc;
}
