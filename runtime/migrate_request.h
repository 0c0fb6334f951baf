/* migrate_request: what a caller asks of the migration engine (migrate.h).
 *
 * Plain data, below every file of the engine, so that they all read the
 * request without including the engine's entry point.
 *
 * Uses: report.h (a failed target, in progress calls). */
#ifndef RT_MIGRATE_REQUEST_H
#define RT_MIGRATE_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

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

#endif
