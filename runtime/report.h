/* report: what a migration run found and did, as plain data.
 *
 * The migration engine (migrate.c) fills a struct migrate_report and prints
 * nothing; its callers read it: the command line (cmd_migrate.c) prints it
 * as text or as the JSON of `runtime migrate --json`, rt.tenant builds a Lua
 * table of the same shape, provisioning only looks at the exit status. The
 * type lives below both so that the Lua binding never includes the engine.
 *
 * Uses: buf.c (report_json). Pure: no I/O. */
#ifndef RT_REPORT_H
#define RT_REPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

#define REPORT_DRIFT_MAX 16

/* What a report answers. */
enum report_kind {
    REPORT_RUN,     /* up or down */
    REPORT_STATUS,  /* status */
    REPORT_RESOLVE, /* resolve */
    REPORT_NEW,     /* new */
};

/* The outcome of one target of a run. */
enum report_outcome {
    REPORT_UP_TO_DATE,
    REPORT_OK,
    REPORT_FAILED,
    REPORT_DRIFT,
    REPORT_DIRTY,
};

/* "up_to_date", "ok", "failed", "drift", "dirty" */
const char *report_outcome_name(enum report_outcome o);

/* One step that ran (or, in a dry run, ran and was rolled back). */
struct report_step {
    int version;
    char name[128];
    double ms;
};

/* One statement a dry run would have run, with the step it came from. */
struct report_sql {
    int version;
    char name[128];
    char *sql; /* owned */
};

/* One target of a run: core, shared, tenant:<code> or storage:...  */
struct report_target {
    char key[192];
    enum report_outcome status;
    int from, to;
    struct report_step *applied; /* owned, napplied of them */
    int napplied;
    int failed_version;
    char error[1024]; /* "" unless the target failed, drifted or is dirty */
    int ndrift;
    int drift[REPORT_DRIFT_MAX];
    bool skipped_non_tx;    /* a dry run stopped at a step that needs no transaction */
    struct report_sql *sql; /* owned, nsql of them: dry runs only */
    int nsql;
};

/* Failed, drifted or dirty. */
bool report_target_bad(const struct report_target *t);

/* Appends a step run / a dry-run statement. Return 0, or -1 out of memory. */
int report_target_applied(struct report_target *t, int version, const char *name,
                          double ms);
int report_target_sql(struct report_target *t, int version, const char *name,
                      const char *sql);

/* Frees what t owns (not t) and clears it. */
void report_target_clear(struct report_target *t);

/* One ledger as status reads it. */
struct report_ledger {
    char error[1024]; /* "" when the ledger was read */
    int version;      /* the highest version applied */
    int head;         /* the number of step files */
    int ndrift;
    int drift[REPORT_DRIFT_MAX];
    bool dirty;
};

/* One tenant's directory entry, for status --all or --tenant. */
struct report_tenant {
    char code[48];
    int version;
    char status[16]; /* migration_status */
    char *error;     /* owned; NULL when the directory has none */
    bool has_ledger; /* --tenant of a schema or database tenant: its ledger too */
    struct report_ledger ledger;
};

/* The fleet summary of status: tenants per schema version. */
struct report_version_count {
    char version[16];
    long n;
};

enum report_fleet {
    REPORT_FLEET_UNREAD, /* reading it failed: see the errors */
    REPORT_FLEET_NONE,   /* no directory yet */
    REPORT_FLEET_READ,
};

struct migrate_report {
    enum report_kind kind;
    int exit_status; /* what migrate_run returned: 0, 1 or 2 */
    /* false: the run stopped before it had anything to report (only the
     * errors say what happened). */
    bool body;
    /* Failures of the request as a whole, one "runtime migrate: ..." line
     * each (as the command line prints them), NULL when none. Owned. */
    char *errors;

    /* REPORT_RUN */
    bool dry_run;
    double duration_ms;
    struct report_target *targets; /* owned: core, shared, then the tenants visited */
    size_t ntargets;
    bool fleet_asked; /* the tenants were in the request (the summary line) */
    size_t total;     /* tenants in scope */
    size_t visited;   /* tenants visited (the rest were up to date) */
    size_t migrated, failed;

    /* REPORT_STATUS */
    struct report_ledger core, shared;
    enum report_fleet fleet;
    struct report_version_count *by_version; /* owned */
    size_t nby_version;
    long fleet_total, fleet_pending, fleet_failed, fleet_dirty, fleet_drift;
    int head; /* tenant step files */
    bool tenants_listed;
    struct report_tenant *tenants; /* owned */
    size_t ntenants;

    /* REPORT_RESOLVE and REPORT_NEW: the line printed on success ("core:
     * version 3 marked applied", the path of the new file); "" otherwise. */
    char done[1024];
};

/* Appends one error line ("<fmt>\n") to rep->errors. Out of memory drops
 * the line. rep may be NULL. */
void report_error(struct migrate_report *rep, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Frees what rep owns (rep may be NULL) and clears it. */
void report_free(struct migrate_report *rep);

/* Appends the JSON document of `runtime migrate --json` for rep (a run or a
 * status with a body) to b, with a trailing newline. */
void report_json(struct buf *b, const struct migrate_report *rep);

#endif
