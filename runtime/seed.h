/* seed: the seeding engine (seed steps per tenant, and a tenant's owner).
 *
 * scripts/seeds/NNNN_name.lua files return { run = function(s) ... end }:
 * idempotent upserts of a tenant's defaults. They run per tenant, each in its
 * own transaction scoped to the tenant (search_path and app.tenant_id), as
 * the owner role. The tenant's seed_ledger (tenant migration 0002) records
 * each file's checksum, so an unchanged seed is skipped and a changed one is
 * applied again. `s` is the same object as a migration's `m`.
 *
 * An engine: it returns what happened (per tenant, per step) and prints
 * nothing; `runtime seed` (cmd_seed.c) and rt.tenant.seed are its callers.
 *
 * Uses: steps.c (step files), lua/rt_migrate.h (the step object), tenant.c (rows),
 * db.c (connections), sql.c, err.c, config.c. */
#ifndef RT_SEED_H
#define RT_SEED_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "err.h"
#include "tenant.h"

enum seed_outcome {
    SEED_NOT_RUN,   /* a step before it failed */
    SEED_APPLIED,   /* ran and was recorded in the ledger */
    SEED_UNCHANGED, /* skipped: same checksum as when it last ran */
    SEED_FAILED,    /* ran and failed: res->err says why */
};

struct seed_step_outcome {
    int version;
    char name[128]; /* the file's name part, truncated */
    enum seed_outcome outcome;
};

/* What seeding one tenant did. */
struct seed_result {
    int applied;
    int skipped; /* unchanged since they last ran */
    /* One entry per seed file, in version order; owned (seed_result_free).
     * NULL when the files could not be loaded. */
    struct seed_step_outcome *steps;
    size_t nsteps;
    struct rt_err err; /* msg "" when the tenant was seeded */
};

/* Frees res->steps (res may be NULL); res can be used again. */
void seed_result_free(struct seed_result *res);

/* Runs every seed for one tenant. res is filled either way (call
 * seed_result_free after). Returns 0, or -1 with res->err filled: a file that
 * does not load, a connection that fails, or the first step that fails (its
 * message starts "NNNN_name: "). */
int seed_tenant(const struct config *cfg, const struct tenant_row *row,
                struct seed_result *res);

/* One tenant of a seed_run. */
struct seed_tenant_outcome {
    char code[TENANT_CODE_MAX + 1];
    bool ok;
    struct seed_result res;
};

/* What seed_run did, tenant by tenant (in code order). */
struct seed_report {
    struct seed_tenant_outcome *tenants; /* owned: seed_report_free */
    size_t n;
    bool unknown; /* the one tenant asked for is not in the directory */
};

/* Frees the report's contents (rep may be NULL). */
void seed_report_free(struct seed_report *rep);

/* Seeds one tenant (code) or, with code NULL, every active, suspended or
 * provisioning tenant, loading the seed files once. rep is filled either way
 * (seed_report_free after). Returns 0 when every tenant was seeded; 1 when
 * some failed or the tenant asked for does not exist (rep says which); -1
 * with err filled when nothing could run (the files do not load, the
 * directory cannot be read). */
int seed_run(const struct config *cfg, const char *code, struct seed_report *rep,
             struct rt_err *err);

/* The first user of a new tenant (an organization's owner): a super_admin
 * in all_members, with a password hash made elsewhere. */
struct seed_owner {
    const char *username;
    const char *email;
    const char *full_name;
    const char *password_hash;
};

/* Inserts the owner into the tenant's users. Returns 0, or -1 with err
 * filled (rt_err_duplicate(err) for a username or email taken). */
int seed_owner(const struct config *cfg, const struct tenant_row *row,
               const struct seed_owner *o, struct rt_err *err);

#endif
