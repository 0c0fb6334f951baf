/* seed: seed steps per tenant and `runtime seed` (see seed.h). */
#include "seed.h"

#include "db.h"
#include "lua/rt_migrate.h"
#include "steps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

struct seeder {
    const struct config *cfg;
    struct vm_steps *steps;
    struct vm *vm;
};

static int seeder_init(struct seeder *sd, const struct config *cfg, char *err, size_t len)
{
    struct vm_error verr;
    char *root = config_path(cfg, cfg->scripts_dir);
    char *dir = root ? malloc(strlen(root) + 8) : NULL;

    memset(sd, 0, sizeof *sd);
    sd->cfg = cfg;
    if (!dir) {
        free(root);
        snprintf(err, len, "out of memory");
        return -1;
    }
    sprintf(dir, "%s/seeds", root);
    free(root);
    sd->steps = vm_steps_load(dir, "seeds", VM_STEP_SEED, &verr);
    free(dir);
    if (!sd->steps || !(sd->vm = vm_new_steps(sd->steps, &verr))) {
        snprintf(err, len, "%.1000s", verr.msg);
        vm_steps_free(sd->steps);
        sd->steps = NULL;
        return -1;
    }
    return 0;
}

static void seeder_free(struct seeder *sd)
{
    vm_free(sd->vm);
    vm_steps_free(sd->steps);
}

static int x(PGconn *c, const char *sql, int n, const char *const *v, PGresult **keep,
             char *err, size_t len)
{
    PGresult *r = n ? PQexecParams(c, sql, n, NULL, v, NULL, NULL, 0) : PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        snprintf(err, len, "%s", m ? m : PQerrorMessage(c));
        PQclear(r);
        return -1;
    }
    if (keep)
        *keep = r;
    else
        PQclear(r);
    return 0;
}

/* BEGIN, scoped to the tenant. */
static int begin_scoped(PGconn *c, const char *schema, const char *id, char *err,
                        size_t len)
{
    char *q = PQescapeIdentifier(c, schema, strlen(schema));
    if (!q) {
        snprintf(err, len, "%s", PQerrorMessage(c));
        return -1;
    }
    const char *v[] = {q, id};
    int rc = x(c, "BEGIN", 0, NULL, NULL, err, len) == 0 &&
                     x(c,
                       "SELECT set_config('search_path', $1, true), "
                       "set_config('app.tenant_id', $2, true)",
                       2, v, NULL, err, len) == 0
                 ? 0
                 : -1;
    PQfreemem(q);
    return rc;
}

static int seed_one(struct seeder *sd, PGconn *c, const struct tenant_row *row,
                    struct seed_result *res)
{
    const char *schema = strcmp(row->isolation, "database") == 0 ? "public"
                         : strcmp(row->isolation, "shared") == 0 ? "shared"
                                                                 : row->schema_name;
    char id[32];
    PGresult *r = NULL;
    char(*applied)[65] = calloc(sd->steps->n + 1, sizeof *applied);

    snprintf(id, sizeof id, "%lld", row->id);
    if (!applied) {
        snprintf(res->error, sizeof res->error, "out of memory");
        return -1;
    }
    if (begin_scoped(c, schema, id, res->error, sizeof res->error) < 0 ||
        x(c, "SELECT version, checksum FROM seed_ledger", 0, NULL, &r, res->error,
          sizeof res->error) < 0 ||
        x(c, "COMMIT", 0, NULL, NULL, res->error, sizeof res->error) < 0)
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
        struct vm_error verr;
        char version[16];
        if (strcmp(applied[st->version], st->checksum) == 0) {
            res->skipped++;
            continue;
        }
        snprintf(version, sizeof version, "%d", st->version);
        const char *v[] = {version, st->name, st->checksum};
        if (begin_scoped(c, schema, id, res->error, sizeof res->error) < 0)
            goto fail;
        if (vm_run_step(sd->vm, st->version, "run", &m, &verr) < 0) {
            snprintf(res->error, sizeof res->error, "%04d_%.64s: %.900s", st->version,
                     st->name, verr.msg);
            goto fail;
        }
        if (x(c,
              "INSERT INTO seed_ledger (version, name, checksum) VALUES ($1, $2, $3) "
              "ON CONFLICT (tenant_id, version) DO UPDATE SET name = EXCLUDED.name, "
              "checksum = EXCLUDED.checksum, applied_at = now()",
              3, v, NULL, res->error, sizeof res->error) < 0 ||
            x(c, "COMMIT", 0, NULL, NULL, res->error, sizeof res->error) < 0)
            goto fail;
        res->applied++;
    }
    free(applied);
    return 0;
fail:
    PQclear(r);
    PQclear(PQexec(c, "ROLLBACK"));
    free(applied);
    return -1;
}

static PGconn *tenant_connect(const struct config *cfg, const struct tenant_row *row,
                              char *err, size_t len)
{
    const struct config_server *srv = config_server(cfg, row->server);
    bool own_db = strcmp(row->isolation, "database") == 0;
    char why[400];

    if (!srv) {
        snprintf(err, len, "unknown server '%s' (not in config servers)", row->server);
        return NULL;
    }
    PGconn *c = db_connect(srv->owner_url, own_db ? row->database_name : NULL,
                           "runtime-seed", cfg->database_connect_timeout, why, sizeof why);
    if (!c) {
        snprintf(err, len, "cannot connect: %s", why);
        return NULL;
    }
    /* Seeds are idempotent and their ledger commits with them: a crash can
     * only lose the last ones, which the next run applies again. */
    PQclear(PQexec(c, "SET synchronous_commit = off"));
    return c;
}

static int seed_with(struct seeder *sd, const struct tenant_row *row,
                     struct seed_result *res)
{
    PGconn *c = tenant_connect(sd->cfg, row, res->error, sizeof res->error);
    if (!c)
        return -1;
    int rc = seed_one(sd, c, row, res);
    PQfinish(c);
    return rc;
}

int seed_tenant(const struct config *cfg, const struct tenant_row *row,
                struct seed_result *res)
{
    struct seeder sd;

    memset(res, 0, sizeof *res);
    if (seeder_init(&sd, cfg, res->error, sizeof res->error) < 0)
        return -1;
    int rc = seed_with(&sd, row, res);
    seeder_free(&sd);
    return rc;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: runtime seed (--tenant CODE | --all) [--json] [--config PATH]\n"
            "\n"
            "Runs scripts/seeds/NNNN_name.lua for a tenant or for every active,\n"
            "suspended or provisioning tenant. A seed whose file is unchanged since it\n"
            "last ran for that tenant is skipped; a changed one runs again (seeds are\n"
            "idempotent upserts). Exit status 1 if any tenant failed.\n");
}

int seed_main(int argc, char **argv)
{
    const char *config_file = NULL, *code = NULL;
    bool all = false, json = false;
    struct seeder sd;
    char err[1024];
    int rc = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--all") == 0) {
            all = true;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (next && strcmp(a, "--tenant") == 0) {
            code = argv[++i];
        } else if (next && strcmp(a, "--config") == 0) {
            config_file = argv[++i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (all == (code != NULL) || (code && !tenant_code_valid(code))) {
        usage(stderr);
        return 2;
    }
    struct config *cfg = config_load_cli(config_file);
    if (!cfg)
        return 1;
    if (seeder_init(&sd, cfg, err, sizeof err) < 0) {
        fprintf(stderr, "runtime seed: %s\n", err);
        config_free(cfg);
        return 1;
    }
    PGconn *c = db_connect(cfg->database_owner_url, NULL, "runtime-seed",
                           cfg->database_connect_timeout, err, sizeof err);
    PGresult *r = NULL;
    const char *v[] = {code};
    if (!c ||
        x(c,
          code ? "SELECT code FROM core.tenants WHERE code = $1"
               : "SELECT code FROM core.tenants WHERE status IN ('active', 'suspended', "
                 "'provisioning') ORDER BY code",
          code ? 1 : 0, code ? v : NULL, &r, err, sizeof err) < 0) {
        fprintf(stderr, "runtime seed: %s\n", err);
        rc = 1;
        goto done;
    }
    if (code && PQntuples(r) == 0) {
        fprintf(stderr, "runtime seed: no tenant '%s'\n", code);
        rc = 1;
    }
    if (json)
        printf("{\"tenants\":[");
    for (int i = 0; i < PQntuples(r); i++) {
        struct tenant_row row;
        struct tenant_error terr;
        struct seed_result res;
        memset(&res, 0, sizeof res);
        if (tenant_row_get(c, PQgetvalue(r, i, 0), &row, &terr) < 1)
            snprintf(res.error, sizeof res.error, "%s", terr.msg);
        else
            (void)seed_with(&sd, &row, &res);
        if (res.error[0])
            rc = 1;
        if (json) {
            printf("%s{\"code\":\"%s\",\"applied\":%d,\"skipped\":%d,\"ok\":%s}",
                   i ? "," : "", PQgetvalue(r, i, 0), res.applied, res.skipped,
                   res.error[0] ? "false" : "true");
        } else if (res.error[0]) {
            fprintf(stderr, "tenant %s: %s\n", PQgetvalue(r, i, 0), res.error);
        } else {
            printf("tenant %s: %d applied, %d unchanged\n", PQgetvalue(r, i, 0),
                   res.applied, res.skipped);
        }
    }
    if (json)
        printf("],\"ok\":%s}\n", rc == 0 ? "true" : "false");
done:
    PQclear(r);
    PQfinish(c);
    seeder_free(&sd);
    config_free(cfg);
    return rc;
}

int seed_owner(const struct config *cfg, const struct tenant_row *row,
               const struct seed_owner *o, char *err, size_t len)
{
    const char *schema = strcmp(row->isolation, "database") == 0 ? "public"
                         : strcmp(row->isolation, "shared") == 0 ? "shared"
                                                                 : row->schema_name;
    char id[32];
    PGresult *r = NULL;
    PGconn *c = tenant_connect(cfg, row, err, len);

    if (!c)
        return -1;
    snprintf(id, sizeof id, "%lld", row->id);
    const char *v[] = {o->username, o->email, o->password_hash, o->full_name};
    int rc = -1;
    if (begin_scoped(c, schema, id, err, len) == 0 &&
        x(c,
          "INSERT INTO users (username, email, password_hash, full_name, email_verified) "
          "VALUES ($1, lower($2), $3, $4, true) RETURNING id::text",
          4, v, &r, err, len) == 0) {
        const char *uid[] = {PQgetvalue(r, 0, 0)};
        if (x(c,
              "INSERT INTO user_roles (user_id, role_id) "
              "SELECT $1::bigint, id FROM roles WHERE code = 'super_admin'",
              1, uid, NULL, err, len) == 0 &&
            x(c,
              "INSERT INTO user_group_members (user_id, group_id) "
              "SELECT $1::bigint, id FROM user_groups WHERE code = 'all_members'",
              1, uid, NULL, err, len) == 0 &&
            x(c, "COMMIT", 0, NULL, NULL, err, len) == 0)
            rc = 0;
    }
    PQclear(r);
    if (rc < 0)
        PQclear(PQexec(c, "ROLLBACK"));
    PQfinish(c);
    return rc;
}
