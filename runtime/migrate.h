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
 * The engine is migrate.c (this header: the entry point, status, resolve,
 * new), migrate_fleet.c (up and down, workers, pre-made storage) and
 * migrate_target.c (connections, ledgers, locks, one target's steps), each
 * using only the ones after it.
 *
 * Uses: migrate_fleet.c, migrate_target.c, migrate_request.h, report.c,
 * err.c, sql.c, config.c, steps.c (step files); migrations use dedicated connections
 * (db_connect), not the request pools. */
#ifndef RT_MIGRATE_H
#define RT_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "err.h"
#include "migrate_request.h"
#include "report.h"

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

/* migrate_storage, for spare.c, is in migrate_fleet.h. */

#endif
