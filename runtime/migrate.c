/* migrate: the engine's entry point, status, resolve and new (see migrate.h
 * and docs/MIGRATIONS.md). */
#include "migrate.h"

#include "migrate_fleet.h"
#include "migrate_target.h"

#include "sql.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int migrate_tenant_head(const struct config *cfg, int *version, char fp[65],
                        struct rt_err *err)
{
    struct vm_steps *s = migrate_tenant_steps(cfg, err);
    if (!s)
        return -1;
    *version = (int)s->n;
    int rc = migrate_fingerprint(s, (int)s->n, fp);
    if (rc < 0)
        rt_err_set(err, "out of memory");
    vm_steps_free(s);
    return rc;
}

/* ---- new ---------------------------------------------------------------- */

static int cmd_new(struct engine *eng, const struct migrate_request *c)
{
    struct migrate_report *rep = eng->rep;
    char *dir = migrate_steps_dir(eng->cfg, c->core ? "core" : "tenant");
    struct rt_err verr;
    struct vm_steps *s = NULL;
    int rc = 1;

    rep->kind = REPORT_NEW;
    if (!c->name || !*c->name ||
        strspn(c->name, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(c->name)) {
        report_error(rep,
                     "runtime migrate new: NAME must be lower-case letters, digits and _");
        free(dir);
        return 2;
    }
    if (!dir) {
        report_error(rep, "runtime migrate new: out of memory");
        return 1;
    }
    s = vm_steps_load(dir, c->core ? "migrations/core" : "migrations/tenant",
                      VM_STEP_MIGRATION, &verr);
    if (!s) {
        report_error(rep, "runtime migrate new: fix the existing steps first: %s",
                     verr.msg);
        goto done;
    }
    mkdir(dir, 0755);
    size_t n = strlen(dir) + strlen(c->name) + 32;
    char *path = malloc(n);
    if (!path) {
        report_error(rep, "runtime migrate new: out of memory");
        goto done;
    }
    snprintf(path, n, "%s/%04zu_%s.lua", dir, s->n + 1, c->name);
    FILE *f = fopen(path, "wx");
    if (!f) {
        report_error(rep, "runtime migrate new: cannot create %s: %s", path,
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
    if (fclose(f) != 0) {
        report_error(rep, "runtime migrate new: cannot write %s: %s", path,
                     strerror(errno));
        free(path);
        goto done;
    }
    snprintf(rep->done, sizeof rep->done, "%s", path);
    rep->body = true;
    free(path);
    rc = 0;
done:
    vm_steps_free(s);
    free(dir);
    return rc;
}

/* ---- status ------------------------------------------------------------- */

/* The fleet summary: one query over the directory. Returns 0 or -1. */
static int status_fleet(struct engine *eng, PGconn *c, const char *head, const char *fp,
                        struct rt_err *err)
{
    struct migrate_report *rep = eng->rep;
    const char *v[] = {head, fp};
    PGresult *r =
        sql_query(c,
                  "SELECT schema_version, count(*), "
                  "count(*) FILTER (WHERE migration_status = 'failed'), "
                  "count(*) FILTER (WHERE migration_status = 'dirty'), "
                  "count(*) FILTER (WHERE migration_status = 'drift'), "
                  "count(*) FILTER (WHERE schema_version <> $1::int OR "
                  "fingerprint IS DISTINCT FROM $2 OR migration_status <> 'ok') "
                  "FROM core.tenants WHERE " TENANT_SCOPE " GROUP BY 1 ORDER BY 1",
                  2, v, err);
    if (!r)
        return -1;
    int n = PQntuples(r);
    rep->by_version = calloc(n ? (size_t)n : 1, sizeof *rep->by_version);
    if (!rep->by_version) {
        PQclear(r);
        return rt_err_set(err, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        long k = atol(PQgetvalue(r, i, 1));
        snprintf(rep->by_version[i].version, sizeof rep->by_version[i].version, "%s",
                 PQgetvalue(r, i, 0));
        rep->by_version[i].n = k;
        rep->fleet_total += k;
        rep->fleet_failed += atol(PQgetvalue(r, i, 2));
        rep->fleet_dirty += atol(PQgetvalue(r, i, 3));
        rep->fleet_drift += atol(PQgetvalue(r, i, 4));
        rep->fleet_pending += atol(PQgetvalue(r, i, 5));
    }
    rep->nby_version = (size_t)n;
    rep->fleet = REPORT_FLEET_READ;
    PQclear(r);
    return 0;
}

/* One tenant's ledger too (status --tenant), for the drift detail. */
static void status_tenant_ledger(struct worker *w, PGconn *c, const char *code,
                                 struct report_tenant *rt, const char *isolation)
{
    struct rt_err err;
    const char *cv[] = {code};
    PGresult *one = sql_query(
        c, "SELECT " TENANT_COLUMNS " FROM core.tenants WHERE code = $1", 1, cv, &err);
    if (one && PQntuples(one) == 1 && strcmp(isolation, "shared") != 0) {
        struct target tt;
        target_tenant(&tt, one, 0);
        migrate_ledger_status(w, &tt, w->eng->tenant_steps, &rt->ledger);
        rt->has_ledger = true;
    }
    PQclear(one);
}

/* The directory entries of one tenant (code) or of every tenant in scope.
 * Returns 0 or -1 (with the error reported). */
static int status_tenants(struct worker *w, PGconn *c, const char *code)
{
    struct migrate_report *rep = w->eng->rep;
    struct rt_err err;
    const char *v[] = {code};
    PGresult *r =
        sql_query(c,
                  code ? "SELECT code, schema_version, migration_status, "
                         "last_migration_error, isolation, status FROM core.tenants "
                         "WHERE code = $1"
                       : "SELECT code, schema_version, migration_status, "
                         "last_migration_error, isolation, status FROM core.tenants "
                         "WHERE " TENANT_SCOPE " ORDER BY code",
                  code ? 1 : 0, code ? v : NULL, &err);
    if (!r) {
        report_error(rep, "runtime migrate status: %s", err.msg);
        return -1;
    }
    int n = PQntuples(r);
    if (code && n == 0) {
        report_error(rep, "runtime migrate status: no tenant '%s'", code);
        PQclear(r);
        return -1;
    }
    rep->tenants = calloc(n ? (size_t)n : 1, sizeof *rep->tenants);
    if (!rep->tenants) {
        report_error(rep, "runtime migrate status: out of memory");
        PQclear(r);
        return -1;
    }
    rep->tenants_listed = true;
    for (int i = 0; i < n; i++) {
        struct report_tenant *t = &rep->tenants[rep->ntenants++];
        snprintf(t->code, sizeof t->code, "%s", PQgetvalue(r, i, 0));
        t->version = atoi(PQgetvalue(r, i, 1));
        snprintf(t->status, sizeof t->status, "%s", PQgetvalue(r, i, 2));
        if (!PQgetisnull(r, i, 3) && !(t->error = strdup(PQgetvalue(r, i, 3))))
            snprintf(t->status, sizeof t->status, "%s", "failed"); /* out of memory */
        if (code)
            status_tenant_ledger(w, c, code, t, PQgetvalue(r, i, 4));
    }
    PQclear(r);
    return 0;
}

static int cmd_status(struct engine *eng, const struct migrate_request *c)
{
    struct migrate_report *rep = eng->rep;
    struct worker w = {.eng = eng};
    struct target t;
    struct rt_err err;
    char fp[65], head[16];
    PGconn *main_c;
    bool dir_exists = false;
    int rc = 0;

    rep->kind = REPORT_STATUS;
    main_c = migrate_conn(&w, "main", "", &err);
    if (!main_c || migrate_directory_exists(main_c, &dir_exists, &err) < 0) {
        report_error(rep, "runtime migrate status: %s", err.msg);
        migrate_worker_close(&w);
        return 1;
    }
    if (migrate_fingerprint(eng->tenant_steps, (int)eng->tenant_steps->n, fp) < 0) {
        report_error(rep, "runtime migrate status: out of memory");
        migrate_worker_close(&w);
        return 1;
    }
    rep->body = true;
    rep->head = (int)eng->tenant_steps->n;
    snprintf(head, sizeof head, "%zu", eng->tenant_steps->n);
    target_core(&t);
    migrate_ledger_status(&w, &t, eng->core_steps, &rep->core);
    target_shared(&t);
    migrate_ledger_status(&w, &t, eng->tenant_steps, &rep->shared);

    if (!dir_exists) {
        rep->fleet = REPORT_FLEET_NONE;
    } else if (status_fleet(eng, main_c, head, fp, &err) < 0) {
        report_error(rep, "runtime migrate status: %s", err.msg);
        rc = 1;
        goto out;
    } else if (rep->fleet_failed || rep->fleet_dirty || rep->fleet_drift) {
        rc = 1;
    }
    if (dir_exists && (c->all || c->tenant) && status_tenants(&w, main_c, c->tenant) < 0)
        rc = 1;
out:
    migrate_worker_close(&w);
    return rc;
}

/* ---- resolve ------------------------------------------------------------ */

static int cmd_resolve(struct engine *eng, const struct migrate_request *c)
{
    struct migrate_report *rep = eng->rep;
    struct worker w = {.eng = eng};
    struct target t;
    struct rt_err err;
    char qschema[160], sql[512];
    PGconn *pc;
    int rc = 1;

    rep->kind = REPORT_RESOLVE;
    if (c->version < 1 || c->applied == c->rolled_back ||
        !(c->core || c->shared || c->tenant)) {
        report_error(rep, "usage: runtime migrate resolve (--core | --shared | --tenant "
                          "CODE) --version N (--applied | --rolled-back)");
        return 2;
    }
    if (c->core) {
        target_core(&t);
    } else if (c->shared) {
        target_shared(&t);
    } else {
        bool found = false;
        pc = migrate_conn(&w, "main", "", &err);
        PGresult *r = NULL;
        const char *v[] = {c->tenant};
        if (pc)
            r = sql_query(pc,
                          "SELECT " TENANT_COLUMNS ", status FROM core.tenants "
                          "WHERE code = $1",
                          1, v, &err);
        if (r && PQntuples(r) == 0)
            rt_err_set(&err, "no tenant '%s' in the directory", c->tenant);
        else if (r && strcmp(PQgetvalue(r, 0, 2), "shared") == 0)
            rt_err_set(&err,
                       "tenant '%s' is in shared mode: its tables are migrated with the "
                       "shared target (--shared)",
                       c->tenant);
        else if (r && (strcmp(PQgetvalue(r, 0, 6), "deleted") == 0 ||
                       strcmp(PQgetvalue(r, 0, 6), "failed") == 0))
            rt_err_set(&err, "tenant '%s' is %s", c->tenant, PQgetvalue(r, 0, 6));
        else if (r) {
            target_tenant(&t, r, 0);
            found = true;
        }
        PQclear(r);
        if (!found) {
            report_error(rep, "runtime migrate resolve: %s", err.msg);
            migrate_worker_close(&w);
            return 1;
        }
    }
    pc = migrate_conn(&w, t.server, t.dbname, &err);
    if (!pc || sql_ident(pc, t.schema, qschema, sizeof qschema, &err) < 0 ||
        migrate_lock(pc, &t, true, &err) < 0) {
        report_error(rep, "runtime migrate resolve: %s", err.msg);
        migrate_worker_close(&w);
        return 1;
    }
    snprintf(sql, sizeof sql,
             c->applied
                 ? "UPDATE %s.schema_migrations SET dirty = false WHERE version = %d "
                   "AND dirty"
                 : "DELETE FROM %s.schema_migrations WHERE version = %d AND dirty",
             qschema, c->version);
    PGresult *r = sql_query(pc, sql, 0, NULL, &err);
    if (!r) {
        report_error(rep, "runtime migrate resolve: %s", err.msg);
    } else if (strcmp(PQcmdTuples(r), "1") != 0) {
        report_error(rep, "runtime migrate resolve: %s has no dirty version %d", t.key,
                     c->version);
    } else {
        snprintf(rep->done, sizeof rep->done, "%s: version %d marked %s", t.key, c->version,
                 c->applied ? "applied" : "rolled back");
        rep->body = true;
        rc = 0;
        if (t.kind == TK_TENANT) {
            /* The next up re-reads the ledger; mark the entry for a visit. */
            const char *v[] = {t.code};
            if (sql_run(
                    pc,
                    "UPDATE core.tenants SET migration_status = 'failed' WHERE code = $1",
                    1, v, &err) < 0)
                report_error(rep, "runtime migrate resolve: %s", err.msg);
        }
    }
    PQclear(r);
    (void)migrate_lock(pc, &t, false, &err);
    migrate_worker_close(&w);
    return rc;
}

/* ---- entry -------------------------------------------------------------- */

static int run(struct engine *eng, const struct migrate_request *c)
{
    const struct config *cfg = eng->cfg;
    struct migrate_report *rep = eng->rep;
    struct rt_err verr;
    char *core_dir = migrate_steps_dir(cfg, "core");
    char *tenant_dir = migrate_steps_dir(cfg, "tenant");
    int rc = 1;

    if (!core_dir || !tenant_dir) {
        report_error(rep, "runtime migrate: out of memory");
        goto done;
    }
    if (strcmp(c->cmd, "new") == 0) {
        rc = cmd_new(eng, c);
        goto done;
    }
    if (strcmp(c->cmd, "up") != 0 && strcmp(c->cmd, "down") != 0 &&
        strcmp(c->cmd, "status") != 0 && strcmp(c->cmd, "resolve") != 0) {
        report_error(rep, "runtime migrate: unknown command '%s'", c->cmd);
        rc = 2;
        goto done;
    }
    /* Every file of both sets is validated before anything runs. */
    if (!(eng->core_steps =
              vm_steps_load(core_dir, "migrations/core", VM_STEP_MIGRATION, &verr)) ||
        !(eng->tenant_steps =
              vm_steps_load(tenant_dir, "migrations/tenant", VM_STEP_MIGRATION, &verr))) {
        report_error(rep, "runtime migrate: %s", verr.msg);
        goto done;
    }
    if (!cfg->database_owner_url[0]) {
        report_error(rep, "runtime migrate: database.owner_url is not set "
                          "(set RUNTIME_DATABASE_OWNER_URL; eval \"$(./dev env)\" does)");
        goto done;
    }
    if (strcmp(c->cmd, "status") == 0)
        rc = cmd_status(eng, c);
    else if (strcmp(c->cmd, "resolve") == 0)
        rc = cmd_resolve(eng, c);
    else
        rc = migrate_up_down(eng, c);
done:
    free(core_dir);
    free(tenant_dir);
    return rc;
}

/* The first failure as one line: the first failed target, else the first
 * error of the request. */
static void first_failure(const struct migrate_report *rep, struct rt_err *err)
{
    for (size_t i = 0; i < rep->ntargets; i++)
        if (report_target_bad(&rep->targets[i])) {
            rt_err_set(err, "%s: %s", rep->targets[i].key, rep->targets[i].error);
            return;
        }
    if (rep->errors)
        rt_err_set(err, "%.*s", (int)strcspn(rep->errors, "\n"), rep->errors);
    else
        rt_err_set(err, "migrations failed");
}

int migrate_run(const struct config *cfg, const struct migrate_request *c,
                struct migrate_report *rep, struct rt_err *err)
{
    struct migrate_report own;
    struct engine eng;

    if (!rep)
        rep = &own;
    memset(rep, 0, sizeof *rep);
    memset(&eng, 0, sizeof eng);
    pthread_mutex_init(&eng.cb_mu, NULL);
    pthread_mutex_init(&eng.done_mu, NULL);
    pthread_cond_init(&eng.done_cv, NULL);
    eng.cfg = cfg;
    eng.req = c;
    eng.rep = rep;
    eng.dry_run = c->dry_run;
    eng.accept_drift = c->accept_drift;
    int rc = run(&eng, c);
    rep->exit_status = rc;
    if (rc != 0)
        first_failure(rep, err);
    for (size_t i = 0; i < eng.nfleet && eng.fleet_results; i++)
        report_target_clear(&eng.fleet_results[i]);
    free(eng.fleet_results);
    free(eng.fleet);
    vm_steps_free(eng.core_steps);
    vm_steps_free(eng.tenant_steps);
    pthread_mutex_destroy(&eng.cb_mu);
    pthread_mutex_destroy(&eng.done_mu);
    pthread_cond_destroy(&eng.done_cv);
    if (rep == &own)
        report_free(&own);
    return rc;
}
