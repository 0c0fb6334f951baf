/* tenant_engine: rt.tenant's engine (see tenant_engine.h). */
#include "tenant_engine.h"

#include "migrate.h"
#include "provision.h"
#include "seed.h"
#include "sql.h"
#include "tenant.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* The directory row of code: 1, 0 (err says "no tenant"), or -1. */
static int row_of(const struct config *cfg, const char *code, struct tenant_row *row,
                  struct rt_err *err)
{
    PGconn *c = provision_connect(cfg, "main", err);
    int found = c ? tenant_row_get(c, code, row, err) : -1;
    PQfinish(c);
    if (found == 0)
        rt_err_set(err, "no tenant '%s'", code);
    return found;
}

static int te_create(const struct config *cfg, const struct rt_tenant_create *s,
                     long long *id, struct rt_err *err)
{
    struct provision_result res;

    if (provision_tenant(cfg, &s->tenant, s->force, &res, err) < 0)
        return -1;
    *id = res.id;
    if (s->owner) {
        struct seed_owner owner = {.username = s->owner->username,
                                   .email = s->owner->email,
                                   .full_name = s->owner->full_name,
                                   .password_hash = s->owner->password_hash};
        struct tenant_row row;
        int found = row_of(cfg, s->tenant.code, &row, err);
        if (found == 0)
            rt_err_set(err, "tenant '%s' was gone before its first user was made",
                       s->tenant.code);
        if (found != 1 || seed_owner(cfg, &row, &owner, err) < 0) {
            /* No tenant without its owner: undo the whole creation. A
             * refused owner is a failure, not a conflict of the tenant's. */
            err->sqlstate[0] = '\0';
            struct rt_err perr;
            if (provision_purge(cfg, s->tenant.code, &perr) < 0) {
                size_t n = strlen(err->msg);
                snprintf(err->msg + n, sizeof err->msg - n,
                         "; and purging it failed: %.200s", perr.msg);
            }
            return -1;
        }
    }
    /* The next tenant's pre-made storage, without holding up this answer. */
    provision_replenish_later(cfg, s->tenant.server, s->tenant.isolation);
    return 0;
}

static int te_set_status(const struct config *cfg, const char *code, const char *status,
                         struct rt_err *err)
{
    return provision_set_status(cfg, code, status, err);
}

static int te_purge(const struct config *cfg, const char *code, struct rt_err *err)
{
    return provision_purge(cfg, code, err);
}

static int te_update(const struct config *cfg, const char *code,
                     const struct rt_tenant_update *u, struct rt_err *err)
{
    const char *v[9] = {code};

    for (int i = 0; i < 4; i++) {
        v[1 + 2 * i] = u->set[i] ? "t" : "f";
        v[2 + 2 * i] = u->value[i];
    }
    PGconn *c = provision_connect(cfg, "main", err);
    if (!c)
        return -1;
    PGresult *r = sql_query(
        c,
        "UPDATE core.tenants SET "
        "name = CASE WHEN $2 THEN coalesce($3, name) ELSE name END, "
        "domain = CASE WHEN $4 THEN $5 ELSE domain END, "
        "subdomain = CASE WHEN $6 THEN $7 ELSE subdomain END, "
        "settings = CASE WHEN $8 THEN coalesce($9::jsonb, settings) ELSE settings END, "
        "updated_at = now() WHERE code = $1 AND status <> 'deleted'",
        9, v, err);
    int rc = 0;
    if (!r) {
        if (rt_err_duplicate(err))
            snprintf(err->msg, sizeof err->msg, "domain or subdomain is already taken");
        rc = -1;
    } else if (strcmp(PQcmdTuples(r), "1") != 0) {
        rc = rt_err_set(err, "no tenant '%s'", code);
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}

static int te_migrate(const struct config *cfg, const struct rt_tenant_migrate *a,
                      struct migrate_report *rep, struct rt_err *err)
{
    struct migrate_request req = {.cmd = a->cmd ? a->cmd : "up",
                                  .tenant = a->tenant,
                                  .all = a->all,
                                  .dry_run = a->dry_run,
                                  .to = a->to,
                                  .to_set = a->to_set,
                                  .steps = a->steps,
                                  .jobs = -1,
                                  .version = -1};
    return migrate_run(cfg, &req, rep, err);
}

static int te_seed(const struct config *cfg, const char *code, int *applied, int *skipped,
                   struct rt_err *err)
{
    struct tenant_row row;
    struct seed_result res;

    if (row_of(cfg, code, &row, err) != 1)
        return -1;
    int rc = seed_tenant(cfg, &row, &res);
    if (rc < 0)
        *err = res.err;
    *applied = res.applied;
    *skipped = res.skipped;
    seed_result_free(&res);
    return rc < 0 ? -1 : 0;
}

const struct rt_tenant_engine tenant_engine = {
    .create = te_create,
    .set_status = te_set_status,
    .purge = te_purge,
    .update = te_update,
    .migrate = te_migrate,
    .seed = te_seed,
};
