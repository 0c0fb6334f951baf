/* migrate_target: the migration engine's bottom file: connections, ledgers,
 * locks and the steps of one target, and the types the engine's files share
 * (targets, workers, the run's state). Only migrate_fleet.c and migrate.c
 * include it.
 *
 * Uses: migrate_request.h, report.c, err.c, sql.c, steps.c (step files),
 * lua/rt_migrate.c (the `m` object), crypto.c (fingerprints), db.c (db_connect), config.c,
 * log.c, libpq. */
#ifndef RT_MIGRATE_TARGET_H
#define RT_MIGRATE_TARGET_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "config.h"
#include "err.h"
#include "migrate_request.h"
#include "report.h"
#include "steps.h"

#define MIGRATE_LOCK_CLASS "1920232807" /* "rtmg": first key of every migration lock */
#define MIGRATE_MAX_CONNS  8            /* cached connections per worker */

enum target_kind {
    TK_CORE,
    TK_SHARED,
    TK_TENANT,
    TK_STORAGE, /* pre-made tenant storage (spare.c): no tenant, no directory row */
};

struct target {
    enum target_kind kind;
    long long tenant_id;
    char code[48];
    char isolation[16];
    char server[64];
    char dbname[128]; /* "" for the main database */
    char schema[128];
    char key[192]; /* "core", "shared", "tenant:<code>", "storage:<server>/<db>/<schema>":
                      lock key and report name */
};

struct conn_entry {
    char server[64];
    char dbname[128];
    PGconn *pg;
};

struct engine;

/* One thread's connections and Lua state for running steps. */
struct worker {
    struct engine *eng;
    struct vm *vm; /* runs the steps of the set being applied */
    struct conn_entry conns[MIGRATE_MAX_CONNS];
    int nconns;
    pthread_t thread;
};

enum direction {
    DIR_UP,
    DIR_DOWN,
};

/* One migrate_run (or migrate_storage). */
struct engine {
    const struct config *cfg;
    const struct migrate_request *req; /* borrowed; NULL in migrate_storage */
    struct migrate_report *rep;        /* where the results go (never NULL) */
    struct vm_steps *core_steps;
    struct vm_steps *tenant_steps;
    bool dry_run;
    bool accept_drift;
    pthread_mutex_t cb_mu; /* one progress callback at a time */

    /* fleet */
    struct target *fleet;
    struct report_target *fleet_results; /* in rep->targets, after core and shared */
    size_t nfleet;
    atomic_size_t next;
    atomic_size_t done;
    atomic_size_t failed;
    pthread_mutex_t done_mu; /* with done_cv: a worker finished a target */
    pthread_cond_t done_cv;
    double t0;      /* when the fleet started (migrate_now_ms) */
    int to;         /* requested version for the fleet (0: head) */
    int steps_back; /* down --steps N: N, else -1 */
    enum direction dir;
};

/* ---- migrate_target.c ---- */
double migrate_now_ms(void);
PGconn *migrate_conn(struct worker *w, const char *server, const char *dbname,
                     struct rt_err *err);
void migrate_worker_close(struct worker *w);
int migrate_fingerprint(const struct vm_steps *s, int upto, char out[65]);
int migrate_directory_exists(PGconn *c, bool *exists, struct rt_err *err);
int migrate_lock(PGconn *c, const struct target *t, bool lock, struct rt_err *err);
void migrate_target(struct worker *w, const struct vm_steps *s, const struct target *t,
                    enum direction dir, int to, struct report_target *r);
void target_core(struct target *t);
void target_shared(struct target *t);
/* From a directory row: id, code, isolation, server, schema_name, database_name
 * (TENANT_COLUMNS). */
void target_tenant(struct target *t, PGresult *r, int row);

/* One ledger read for status (rl->error on failure). */
void migrate_ledger_status(struct worker *w, const struct target *t,
                           const struct vm_steps *s, struct report_ledger *rl);

#define TENANT_COLUMNS                                                   \
    "id, code, isolation, server, coalesce(schema_name, 't_' || code), " \
    "coalesce(database_name, 't_' || code)"
#define TENANT_SCOPE                                                             \
    "isolation IN ('schema', 'database') AND status IN ('active', 'suspended', " \
    "'provisioning')"

/* The step files of scripts/migrations/<which> (malloc'd; NULL out of
 * memory), and the tenant steps loaded (NULL with err). */
char *migrate_steps_dir(const struct config *cfg, const char *which);
struct vm_steps *migrate_tenant_steps(const struct config *cfg, struct rt_err *err);

#endif
