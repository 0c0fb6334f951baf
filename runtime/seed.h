/* seed: seed steps and `runtime seed`.
 *
 * scripts/seeds/NNNN_name.lua files return { run = function(s) ... end }:
 * idempotent upserts of a tenant's defaults. They run per tenant, each in its
 * own transaction scoped to the tenant (search_path and app.tenant_id), as
 * the owner role. The tenant's seed_ledger (tenant migration 0002) records
 * each file's checksum, so an unchanged seed is skipped and a changed one is
 * applied again. `s` is the same object as a migration's `m`.
 *
 * Uses: vm.c (steps), tenant.c (rows), config.c; libpq directly. */
#ifndef RT_SEED_H
#define RT_SEED_H

#include "config.h"
#include "tenant.h"

struct seed_result {
    int applied;
    int skipped; /* unchanged since they last ran */
    char error[1024];
};

/* Runs every seed for one tenant. Returns 0, or -1 with res->error. */
int seed_tenant(const struct config *cfg, const struct tenant_row *row,
                struct seed_result *res);

/* The first user of a new tenant (an organization's owner): a super_admin
 * in all_members, with a password hash made elsewhere. */
struct seed_owner {
    const char *username;
    const char *email;
    const char *full_name;
    const char *password_hash;
};

/* Inserts the owner into the tenant's users. Returns 0 or -1 (err). */
int seed_owner(const struct config *cfg, const struct tenant_row *row,
               const struct seed_owner *o, char *err, size_t len);

/* `runtime seed ...`: argv[0] is "seed". Returns the exit status. */
int seed_main(int argc, char **argv);

#endif
