/* migrate: the migration engine and `runtime migrate`.
 *
 * Discovers and validates step files (through vm.c), keeps a ledger per
 * target (core, shared, each schema or database tenant), locks each target
 * with a session advisory lock on its own connection, runs each step in its
 * own transaction together with its ledger row, mirrors every tenant's state
 * in the directory, and fans tenants out over worker threads. See
 * docs/MIGRATIONS.md for the behaviour and the command line.
 *
 * Uses: vm.c (steps, the `m` object), crypto.c (fingerprints), config.c,
 * buf.c, log.c; libpq directly (migrations use dedicated connections, not the
 * request pools). */
#ifndef RT_MIGRATE_H
#define RT_MIGRATE_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"

/* One migration command, as the command line or the server asks for it. */
struct migrate_request {
    const char *cmd;    /* "up" (the default), "down", "status", "new", "resolve" */
    const char *tenant; /* one tenant by code, or NULL */
    bool core, shared, all;
    bool dry_run, json, accept_drift;
    bool applied, rolled_back; /* resolve */
    int to;                    /* --to VERSION (0: head for up) */
    bool to_set;
    int steps;        /* down --steps N, or -1 */
    int jobs;         /* parallel tenant workers, or -1 for migrate.jobs */
    int version;      /* resolve --version N, or -1 */
    const char *name; /* new NAME */
};

/* Runs req with cfg (borrowed). Reports go to out (one JSON document with
 * req->json), failures and progress to err (a progress bar when err is a
 * terminal). Returns the exit status: 0, 1 when a target failed, drifted or
 * is dirty (or the request could not run), 2 for a malformed request.
 * Distinct calls may run on distinct threads. */
int migrate_run(const struct config *cfg, const struct migrate_request *req, FILE *out,
                FILE *err);

/* `runtime migrate ...`: argv[0] is "migrate". Returns the exit status. */
int migrate_main(int argc, char **argv);

#endif
