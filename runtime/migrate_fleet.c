/* migrate_fleet: up and down over core, shared and the tenants, with the
 * tenants fanned out over worker threads; pre-made storage (see
 * migrate_fleet.h and docs/MIGRATIONS.md). */
#include "migrate_fleet.h"

#include "sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Tells the request's progress callback where the fleet is; failure: a
 * tenant that just failed, or NULL. Any thread. */
static void progress(struct engine *eng, double t0, bool final,
                     const struct report_target *failure)
{
    const struct migrate_request *req = eng->req;

    if (!req || !req->progress)
        return;
    struct migrate_progress p = {
        .done = atomic_load(&eng->done),
        .total = eng->nfleet,
        .failed = atomic_load(&eng->failed),
        .elapsed_ms = migrate_now_ms() - t0,
        .final = final,
        .failure = failure,
    };
    pthread_mutex_lock(&eng->cb_mu);
    req->progress(req->progress_ud, &p);
    pthread_mutex_unlock(&eng->cb_mu);
}

static void *fleet_worker(void *arg)
{
    struct worker *w = arg;
    struct engine *eng = w->eng;

    for (;;) {
        size_t i = atomic_fetch_add(&eng->next, 1);
        if (i >= eng->nfleet)
            break;
        struct report_target *r = &eng->fleet_results[i];
        migrate_target(w, eng->tenant_steps, &eng->fleet[i], eng->dir, eng->to, r);
        if (report_target_bad(r)) {
            atomic_fetch_add(&eng->failed, 1);
            progress(eng, eng->t0, false, r);
        }
        pthread_mutex_lock(&eng->done_mu);
        atomic_fetch_add(&eng->done, 1);
        pthread_cond_signal(&eng->done_cv);
        pthread_mutex_unlock(&eng->done_mu);
    }
    return NULL;
}

/* Migrates every tenant in eng->fleet with `jobs` workers. */
static int fleet_run(struct engine *eng, int jobs, struct rt_err *err)
{
    size_t n = eng->nfleet;
    int nw = jobs < (int)n ? jobs : (int)n;
    struct worker *ws;
    double last;

    eng->t0 = last = migrate_now_ms();
    eng->fleet_results = calloc(n ? n : 1, sizeof *eng->fleet_results);
    ws = calloc((size_t)(nw > 0 ? nw : 1), sizeof *ws);
    if (!eng->fleet_results || !ws) {
        free(ws);
        return rt_err_set(err, "out of memory");
    }
    int started = 0;
    for (int i = 0; i < nw; i++) {
        struct rt_err verr;
        ws[i].eng = eng;
        ws[i].vm = vm_new_steps(eng->tenant_steps, &verr);
        if (!ws[i].vm) {
            rt_err_set(err, "%s", verr.msg);
            break;
        }
        if (pthread_create(&ws[i].thread, NULL, fleet_worker, &ws[i]) != 0) {
            vm_free(ws[i].vm);
            ws[i].vm = NULL;
            rt_err_set(err, "cannot start a worker thread");
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
        double t = migrate_now_ms();
        if (t - last >= 200) {
            pthread_mutex_unlock(&eng->done_mu);
            progress(eng, eng->t0, false, NULL);
            pthread_mutex_lock(&eng->done_mu);
            last = t;
        }
    }
    pthread_mutex_unlock(&eng->done_mu);
    for (int i = 0; i < started; i++) {
        pthread_join(ws[i].thread, NULL);
        migrate_worker_close(&ws[i]);
    }
    free(ws);
    if (n > 0)
        progress(eng, eng->t0, true, NULL);
    return 0;
}

/* Selects the tenants to visit: all in scope (code given), or those whose
 * directory entry is not at (version, fingerprint) or not ok. */
static int fleet_select(struct engine *eng, PGconn *c, const char *code, int version,
                        const char *fp, size_t *total, struct rt_err *err)
{
    PGresult *r;
    char vs[16];

    snprintf(vs, sizeof vs, "%d", version);
    if (code) {
        const char *v[] = {code};
        r = sql_query(c,
                      "SELECT " TENANT_COLUMNS ", status FROM core.tenants WHERE code = $1",
                      1, v, err);
        if (!r)
            return -1;
        if (PQntuples(r) == 0) {
            PQclear(r);
            return rt_err_set(err, "no tenant '%s' in the directory", code);
        }
        if (strcmp(PQgetvalue(r, 0, 2), "shared") == 0) {
            PQclear(r);
            return rt_err_set(err,
                              "tenant '%s' is in shared mode: its tables are migrated with "
                              "the shared target (--shared)",
                              code);
        }
        const char *st = PQgetvalue(r, 0, 6);
        if (strcmp(st, "deleted") == 0 || strcmp(st, "failed") == 0) {
            rt_err_set(err, "tenant '%s' is %s", code, st);
            PQclear(r);
            return -1;
        }
        *total = 1;
    } else {
        const char *v[] = {vs, fp};
        r = sql_query(c,
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
            PGresult *cnt = sql_query(
                c, "SELECT count(*) FROM core.tenants WHERE " TENANT_SCOPE, 0, NULL, err);
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
        return rt_err_set(err, "out of memory");
    }
    for (size_t i = 0; i < eng->nfleet; i++)
        target_tenant(&eng->fleet[i], r, (int)i);
    PQclear(r);
    return 0;
}

/* ---- up and down ------------------------------------------------------------ */

/* Moves core, shared and the visited tenants' results into rep->targets, in
 * that order. Returns 0, or -1 out of memory (the results are freed). */
static int report_targets(struct engine *eng, struct report_target *core,
                          struct report_target *shared)
{
    struct migrate_report *rep = eng->rep;
    size_t nfleet = eng->fleet_results ? eng->nfleet : 0;
    size_t n = (core ? 1 : 0) + (shared ? 1 : 0) + nfleet;
    struct report_target *all = calloc(n ? n : 1, sizeof *all);
    int rc = all ? 0 : -1;
    size_t k = 0;

    if (core && all)
        all[k++] = *core;
    else if (core)
        report_target_clear(core);
    if (shared && all)
        all[k++] = *shared;
    else if (shared)
        report_target_clear(shared);
    for (size_t i = 0; i < nfleet; i++) {
        struct report_target *r = &eng->fleet_results[i];
        if (report_target_bad(r))
            rep->failed++;
        else if (r->napplied)
            rep->migrated++;
        if (all)
            all[k++] = *r;
        else
            report_target_clear(r);
    }
    free(eng->fleet_results);
    eng->fleet_results = NULL;
    rep->targets = all;
    rep->ntargets = all ? k : 0;
    rep->visited = eng->nfleet;
    return rc;
}

int migrate_up_down(struct engine *eng, const struct migrate_request *c)
{
    struct migrate_report *rep = eng->rep;
    struct worker w0 = {.eng = eng};
    struct target tcore, tshared;
    struct report_target rcore, rshared;
    struct rt_err err;
    double t0 = migrate_now_ms();
    bool down = strcmp(c->cmd, "down") == 0;
    bool do_core = c->core || (!c->shared && !c->tenant && !down);
    bool do_shared = c->shared || (!c->core && !c->tenant && !down);
    bool do_fleet = c->tenant || (!c->core && !c->shared && !down);
    bool shared_ran = false;
    int rc = 0;
    size_t total = 0;

    memset(&rcore, 0, sizeof rcore);
    memset(&rshared, 0, sizeof rshared);
    rep->kind = REPORT_RUN;
    rep->dry_run = eng->dry_run;
    eng->dir = down ? DIR_DOWN : DIR_UP;
    eng->steps_back = down ? c->steps : -1;
    if (down) {
        if (!(c->core || c->shared || c->tenant) || (c->steps < 0) == !c->to_set) {
            report_error(rep, "usage: runtime migrate down (--core | --shared | --tenant "
                              "CODE) (--steps N | --to VERSION) [--dry-run]");
            return 2;
        }
    }
    target_core(&tcore);
    target_shared(&tshared);
    if (do_core) {
        struct rt_err verr;
        int to = c->core ? c->to : 0;
        w0.vm = vm_new_steps(eng->core_steps, &verr);
        if (!w0.vm) {
            report_error(rep, "runtime migrate: %s", verr.msg);
            return 1;
        }
        migrate_target(&w0, eng->core_steps, &tcore, eng->dir, to, &rcore);
        vm_free(w0.vm);
        w0.vm = NULL;
        if (report_target_bad(&rcore))
            rc = 1;
    }
    /* A failed core stops here (the directory may be unusable); the shared
     * target and the tenants are independent of each other. */
    bool core_ok = rc == 0;
    if (core_ok && (do_shared || do_fleet)) {
        struct rt_err verr;
        w0.vm = vm_new_steps(eng->tenant_steps, &verr);
        if (!w0.vm) {
            report_error(rep, "runtime migrate: %s", verr.msg);
            migrate_worker_close(&w0);
            report_target_clear(&rcore);
            return 1;
        }
    }
    if (core_ok && do_shared) {
        int to = c->core ? 0 : c->to;
        migrate_target(&w0, eng->tenant_steps, &tshared, eng->dir, to, &rshared);
        shared_ran = true;
        if (report_target_bad(&rshared))
            rc = 1;
    }
    if (core_ok && do_fleet) {
        bool dir_exists = false;
        char fp[65];
        PGconn *pc = migrate_conn(&w0, "main", "", &err);
        if (!pc || migrate_directory_exists(pc, &dir_exists, &err) < 0) {
            report_error(rep, "runtime migrate: %s", err.msg);
            rc = 1;
            goto report;
        }
        if (!dir_exists) {
            if (c->tenant) {
                report_error(rep, "runtime migrate: no tenant directory yet (run: runtime "
                                  "migrate up --core)");
                rc = 1;
            }
            goto report;
        }
        int to = c->core ? 0 : c->to;
        int version =
            to > 0 && (size_t)to < eng->tenant_steps->n ? to : (int)eng->tenant_steps->n;
        if (migrate_fingerprint(eng->tenant_steps, version, fp) < 0) {
            report_error(rep, "runtime migrate: out of memory");
            rc = 1;
            goto report;
        }
        if (fleet_select(eng, pc, c->tenant, version, fp, &total, &err) < 0) {
            report_error(rep, "runtime migrate: %s", err.msg);
            rc = 1;
            goto report;
        }
        eng->to = to;
        migrate_worker_close(&w0); /* the fleet workers make their own */
        if (fleet_run(eng, c->jobs > 0 ? c->jobs : eng->cfg->migrate_jobs, &err) < 0) {
            report_error(rep, "runtime migrate: %s", err.msg);
            rc = 1;
        }
        for (size_t i = 0; i < eng->nfleet && eng->fleet_results; i++)
            if (report_target_bad(&eng->fleet_results[i]))
                rc = 1;
    }
report:
    migrate_worker_close(&w0);
    rep->body = true;
    rep->fleet_asked = do_fleet;
    rep->total = total;
    if (report_targets(eng, do_core ? &rcore : NULL, shared_ran ? &rshared : NULL) < 0) {
        report_error(rep, "runtime migrate: out of memory");
        rc = 1;
    }
    if (!do_core)
        report_target_clear(&rcore);
    if (!shared_ran)
        report_target_clear(&rshared);
    rep->duration_ms = migrate_now_ms() - t0;
    return rc;
}

/* ---- pre-made storage (spare.c) ------------------------------------------- */

int migrate_storage(const struct config *cfg, const char *server, const char *dbname,
                    const char *schema, int *version, char fp[65], struct rt_err *err)
{
    struct migrate_report rep;
    struct engine eng;
    struct worker w = {.eng = &eng};
    struct target t;
    struct report_target r;
    struct rt_err verr;
    int rc = -1;

    memset(&rep, 0, sizeof rep);
    memset(&eng, 0, sizeof eng);
    memset(&t, 0, sizeof t);
    memset(&r, 0, sizeof r);
    pthread_mutex_init(&eng.cb_mu, NULL);
    eng.cfg = cfg;
    eng.rep = &rep; /* unused: no dry run, no fleet */
    t.kind = TK_STORAGE;
    snprintf(t.server, sizeof t.server, "%s", server);
    snprintf(t.dbname, sizeof t.dbname, "%s", dbname ? dbname : "");
    snprintf(t.schema, sizeof t.schema, "%s", schema);
    snprintf(t.key, sizeof t.key, "storage:%s/%s/%s", server, t.dbname, schema);
    if (!(eng.tenant_steps = migrate_tenant_steps(cfg, err)))
        goto done;
    if (!(w.vm = vm_new_steps(eng.tenant_steps, &verr))) {
        rt_err_set(err, "%s", verr.msg);
        goto done;
    }
    migrate_target(&w, eng.tenant_steps, &t, DIR_UP, 0, &r);
    if (report_target_bad(&r)) {
        rt_err_set(err, "%s", r.error);
        goto done;
    }
    /* The ledger matches the files (migrate_target refuses drift), so the
     * fingerprint of the files up to the version reached is the ledger's. */
    *version = r.to;
    if (migrate_fingerprint(eng.tenant_steps, r.to, fp) < 0) {
        rt_err_set(err, "out of memory");
        goto done;
    }
    rc = 0;
done:
    report_target_clear(&r);
    migrate_worker_close(&w);
    vm_steps_free(eng.tenant_steps);
    pthread_mutex_destroy(&eng.cb_mu);
    report_free(&rep);
    return rc;
}
