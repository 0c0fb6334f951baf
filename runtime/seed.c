/* seed: the seeding engine (see seed.h). */
#include "seed.h"

#include "db.h"
#include "lua/rt_migrate.h"
#include "sql.h"
#include "steps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

/* The seed files, loaded once and run for one tenant or many. */
struct seeder {
    const struct config *cfg; /* borrowed */
    struct vm_steps *steps;
    struct vm *vm;
};

static int seeder_init(struct seeder *sd, const struct config *cfg, struct rt_err *err)
{
    struct rt_err verr;
    char *root = config_path(cfg, cfg->scripts_dir);
    char *dir = root ? malloc(strlen(root) + 8) : NULL;

    memset(sd, 0, sizeof *sd);
    sd->cfg = cfg;
    if (!dir) {
        free(root);
        return rt_err_set(err, "out of memory");
    }
    sprintf(dir, "%s/seeds", root);
    free(root);
    sd->steps = vm_steps_load(dir, "seeds", VM_STEP_SEED, &verr);
    free(dir);
    if (!sd->steps || !(sd->vm = vm_new_steps(sd->steps, &verr))) {
        vm_steps_free(sd->steps);
        sd->steps = NULL;
        return rt_err_set(err, "%.1000s", verr.msg);
    }
    return 0;
}

static void seeder_free(struct seeder *sd)
{
    vm_free(sd->vm);
    vm_steps_free(sd->steps);
}

/* The schema a tenant's transactions use. */
static const char *tenant_schema(const struct tenant_row *row)
{
    return strcmp(row->isolation, "database") == 0 ? "public"
           : strcmp(row->isolation, "shared") == 0 ? "shared"
                                                   : row->schema_name;
}

/* BEGIN, scoped to the tenant. */
static int begin_scoped(PGconn *c, const char *schema, const char *id, struct rt_err *err)
{
    char q[96];
    if (sql_ident(c, schema, q, sizeof q, err) < 0)
        return -1;
    const char *v[] = {q, id};
    if (sql_exec(c, "BEGIN", err) < 0 ||
        sql_run(c,
                "SELECT set_config('search_path', $1, true), "
                "set_config('app.tenant_id', $2, true)",
                2, v, err) < 0)
        return -1;
    return 0;
}

/* Ends a failed transaction; err keeps the reason it failed. */
static void rollback(PGconn *c)
{
    struct rt_err rerr;
    (void)sql_exec(c, "ROLLBACK", &rerr);
}

/* Makes res->steps: one entry per file, not run yet. */
static int outcomes_init(const struct seeder *sd, struct seed_result *res)
{
    res->steps = calloc(sd->steps->n ? sd->steps->n : 1, sizeof *res->steps);
    if (!res->steps)
        return rt_err_set(&res->err, "out of memory");
    res->nsteps = sd->steps->n;
    for (size_t i = 0; i < sd->steps->n; i++) {
        res->steps[i].version = sd->steps->v[i].version;
        snprintf(res->steps[i].name, sizeof res->steps[i].name, "%s", sd->steps->v[i].name);
    }
    return 0;
}

static int seed_one(struct seeder *sd, PGconn *c, const struct tenant_row *row,
                    struct seed_result *res)
{
    const char *schema = tenant_schema(row);
    char id[32];
    PGresult *r = NULL;
    char(*applied)[65] = calloc(sd->steps->n + 1, sizeof *applied);

    snprintf(id, sizeof id, "%lld", row->id);
    if (!applied)
        return rt_err_set(&res->err, "out of memory");
    if (begin_scoped(c, schema, id, &res->err) < 0 ||
        !(r = sql_query(c, "SELECT version, checksum FROM seed_ledger", 0, NULL,
                        &res->err)) ||
        sql_exec(c, "COMMIT", &res->err) < 0)
        goto fail;
    for (int i = 0; i < PQntuples(r); i++) {
        int v = atoi(PQgetvalue(r, i, 0));
        if (v >= 1 && (size_t)v <= sd->steps->n)
            snprintf(applied[v], 65, "%s", PQgetvalue(r, i, 1));
    }
    PQclear(r);
    r = NULL;
    for (size_t i = 0; i < sd->steps->n; i++) {
        const struct vm_step *st = &sd->steps->v[i];
        struct rt_migrate_ctx m = {.conn = c,
                                   .target = "tenant",
                                   .schema = schema,
                                   .tenant_id = row->id,
                                   .tenant_code = row->code,
                                   .isolation = row->isolation};
        struct rt_err verr;
        char version[16];
        if (strcmp(applied[st->version], st->checksum) == 0) {
            res->steps[i].outcome = SEED_UNCHANGED;
            res->skipped++;
            continue;
        }
        res->steps[i].outcome = SEED_FAILED; /* until it is recorded */
        snprintf(version, sizeof version, "%d", st->version);
        const char *v[] = {version, st->name, st->checksum};
        if (begin_scoped(c, schema, id, &res->err) < 0)
            goto fail;
        if (vm_run_step(sd->vm, st->version, "run", &m, &verr) < 0) {
            rt_err_set(&res->err, "%04d_%.64s: %.900s", st->version, st->name, verr.msg);
            goto fail;
        }
        if (sql_run(c,
                    "INSERT INTO seed_ledger (version, name, checksum) VALUES ($1, $2, $3) "
                    "ON CONFLICT (tenant_id, version) DO UPDATE SET name = EXCLUDED.name, "
                    "checksum = EXCLUDED.checksum, applied_at = now()",
                    3, v, &res->err) < 0 ||
            sql_exec(c, "COMMIT", &res->err) < 0)
            goto fail;
        res->steps[i].outcome = SEED_APPLIED;
        res->applied++;
    }
    free(applied);
    return 0;
fail:
    PQclear(r);
    rollback(c);
    free(applied);
    return -1;
}

/* An owner connection to the tenant's storage (its database in database
 * mode). Returns NULL with err filled. */
static PGconn *tenant_connect(const struct config *cfg, const struct tenant_row *row,
                              struct rt_err *err)
{
    const struct config_server *srv = config_server(cfg, row->server);
    bool own_db = strcmp(row->isolation, "database") == 0;
    struct rt_err why;

    if (!srv) {
        rt_err_set(err, "unknown server '%s' (not in config servers)", row->server);
        return NULL;
    }
    PGconn *c = db_connect(srv->owner_url, own_db ? row->database_name : NULL,
                           "runtime-seed", cfg->database_connect_timeout, &why);
    if (!c) {
        rt_err_set(err, "cannot connect: %s", why.msg);
        return NULL;
    }
    /* Seeds are idempotent and their ledger commits with them: a crash can
     * only lose the last ones, which the next run applies again. A refusal
     * only costs that speed. */
    struct rt_err serr;
    (void)sql_exec(c, "SET synchronous_commit = off", &serr);
    return c;
}

static int seed_with(struct seeder *sd, const struct tenant_row *row,
                     struct seed_result *res)
{
    if (outcomes_init(sd, res) < 0)
        return -1;
    PGconn *c = tenant_connect(sd->cfg, row, &res->err);
    if (!c)
        return -1;
    int rc = seed_one(sd, c, row, res);
    PQfinish(c);
    return rc;
}

void seed_result_free(struct seed_result *res)
{
    if (!res)
        return;
    free(res->steps);
    res->steps = NULL;
    res->nsteps = 0;
}

int seed_tenant(const struct config *cfg, const struct tenant_row *row,
                struct seed_result *res)
{
    struct seeder sd;

    memset(res, 0, sizeof *res);
    if (seeder_init(&sd, cfg, &res->err) < 0)
        return -1;
    int rc = seed_with(&sd, row, res);
    seeder_free(&sd);
    return rc;
}

void seed_report_free(struct seed_report *rep)
{
    if (!rep)
        return;
    for (size_t i = 0; i < rep->n; i++)
        seed_result_free(&rep->tenants[i].res);
    free(rep->tenants);
    memset(rep, 0, sizeof *rep);
}

int seed_run(const struct config *cfg, const char *code, struct seed_report *rep,
             struct rt_err *err)
{
    struct seeder sd;
    struct rt_err why;
    PGresult *r = NULL;
    int rc = -1;

    memset(rep, 0, sizeof *rep);
    if (seeder_init(&sd, cfg, err) < 0)
        return -1;
    PGconn *c = db_connect(cfg->database_owner_url, NULL, "runtime-seed",
                           cfg->database_connect_timeout, &why);
    const char *v[] = {code};
    if (!c) {
        rt_err_set(err, "%s", why.msg);
        goto done;
    }
    r = sql_query(c,
                  code ? "SELECT code FROM core.tenants WHERE code = $1"
                       : "SELECT code FROM core.tenants WHERE status IN ('active', "
                         "'suspended', 'provisioning') ORDER BY code",
                  code ? 1 : 0, code ? v : NULL, err);
    if (!r)
        goto done;
    size_t n = (size_t)PQntuples(r);
    rep->tenants = calloc(n ? n : 1, sizeof *rep->tenants);
    if (!rep->tenants) {
        rt_err_set(err, "out of memory");
        goto done;
    }
    rc = 0;
    rep->unknown = code && n == 0;
    if (rep->unknown)
        rc = 1;
    for (size_t i = 0; i < n; i++) {
        struct seed_tenant_outcome *t = &rep->tenants[i];
        struct tenant_row row;
        snprintf(t->code, sizeof t->code, "%s", PQgetvalue(r, (int)i, 0));
        rep->n = i + 1;
        int found = tenant_row_get(c, t->code, &row, &t->res.err);
        if (found == 0)
            rt_err_set(&t->res.err, "no tenant '%s'", t->code);
        t->ok = found == 1 && seed_with(&sd, &row, &t->res) == 0;
        if (!t->ok)
            rc = 1;
    }
done:
    PQclear(r);
    PQfinish(c);
    seeder_free(&sd);
    return rc;
}

int seed_owner(const struct config *cfg, const struct tenant_row *row,
               const struct seed_owner *o, struct rt_err *err)
{
    char id[32];
    PGresult *r = NULL;
    PGconn *c = tenant_connect(cfg, row, err);

    if (!c)
        return -1;
    snprintf(id, sizeof id, "%lld", row->id);
    const char *v[] = {o->username, o->email, o->password_hash, o->full_name};
    int rc = -1;
    if (begin_scoped(c, tenant_schema(row), id, err) == 0 &&
        (r = sql_query(c,
                       "INSERT INTO users (username, email, password_hash, full_name, "
                       "email_verified) VALUES ($1, lower($2), $3, $4, true) "
                       "RETURNING id::text",
                       4, v, err))) {
        const char *uid[] = {PQgetvalue(r, 0, 0)};
        if (sql_run(c,
                    "INSERT INTO user_roles (user_id, role_id) "
                    "SELECT $1::bigint, id FROM roles WHERE code = 'super_admin'",
                    1, uid, err) == 0 &&
            sql_run(c,
                    "INSERT INTO user_group_members (user_id, group_id) "
                    "SELECT $1::bigint, id FROM user_groups WHERE code = 'all_members'",
                    1, uid, err) == 0 &&
            sql_exec(c, "COMMIT", err) == 0)
            rc = 0;
    }
    PQclear(r);
    if (rc < 0)
        rollback(c);
    PQfinish(c);
    return rc;
}
