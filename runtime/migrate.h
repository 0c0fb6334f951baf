/* migrate: the migration engine.
 *
 * Discovers and validates step files (through vm.c), keeps a ledger per
 * target (core, shared, each schema or database tenant), locks each target
 * with a session advisory lock on its own connection, runs each step in its
 * own transaction together with its ledger row, mirrors every tenant's state
 * in the directory, and fans tenants out over worker threads. It prints
 * nothing: it fills a struct migrate_report (report.h), which the command
 * line (cmd_migrate.c) prints and rt.tenant hands to scripts. See
 * docs/MIGRATIONS.md for the behaviour and the command line.
 *
 * Uses: vm.c (steps, the `m` object), crypto.c (fingerprints), sql.c and
 * err.c (libpq helpers, errors), report.c, config.c, buf.c, log.c, tenant.c
 * (codes); migrations use dedicated connections (db_connect), not the
 * request pools. */
#ifndef RT_MIGRATE_H
#define RT_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "err.h"
#include "report.h"

/* Where a fleet run is, for a progress display. */
struct migrate_progress {
    size_t done, total, failed; /* tenants visited so far, to visit, failed */
    double elapsed_ms;
    bool final;                          /* the last call of the run */
    const struct report_target *failure; /* borrowed: a tenant that just failed */
};

/* One migration command, as the command line or the server asks for it. */
struct migrate_request {
    const char *cmd;    /* "up" (the default), "down", "status", "new", "resolve" */
    const char *tenant; /* one tenant by code, or NULL */
    bool core, shared, all;
    bool dry_run, accept_drift;
    bool applied, rolled_back; /* resolve */
    int to;                    /* --to VERSION (0: head for up) */
    bool to_set;
    int steps;        /* down --steps N, or -1 */
    int jobs;         /* parallel tenant workers, or -1 for migrate.jobs */
    int version;      /* resolve --version N, or -1 */
    const char *name; /* new NAME */
    /* Called while the tenants migrate, one call at a time but from any of
     * the engine's threads: after each failed tenant with its result, and
     * about every 200 ms and once at the end without one. May be NULL. */
    void (*progress)(void *ud, const struct migrate_progress *p);
    void *progress_ud;
};

/* Runs req with cfg (borrowed) and fills rep (may be NULL: the caller
 * wants only the outcome), which the caller frees with report_free. Returns
 * the exit status of `runtime migrate`: 0, 1 when a target failed, drifted
 * or is dirty (or the request could not run), 2 for a malformed request;
 * when nonzero, err (may be NULL) holds the first failure's one-line
 * reason. Distinct calls may run on distinct threads. */
int migrate_run(const struct config *cfg, const struct migrate_request *req,
                struct migrate_report *rep, struct rt_err *err);

/* The head of cfg's tenant migrations: the number of step files and the
 * fingerprint a target at head has (as recorded in the directory). Returns 0,
 * or -1 with err (a step file does not load). */
int migrate_tenant_head(const struct config *cfg, int *version, char fp[65],
                        struct rt_err *err);

/* Brings storage that belongs to no tenant yet (a spare schema, or the public
 * schema of a template database: see spare.h) to the head of the tenant
 * migrations, under the usual lock, ledger and per-step transactions. Steps
 * see m.target "tenant" without m.tenant and with an empty app.tenant_id, as
 * for the shared target; nothing is recorded in the directory. dbname NULL:
 * the database of the server's URL. On success *version and fp hold the
 * state reached. Returns 0, or -1 with err. Safe on any thread. */
int migrate_storage(const struct config *cfg, const char *server, const char *dbname,
                    const char *schema, int *version, char fp[65], struct rt_err *err);

#endif
