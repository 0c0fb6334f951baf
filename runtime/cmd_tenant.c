/* cmd_tenant: `runtime tenant` (see cmd_tenant.h). */
#include "cmd_tenant.h"

#include "cli.h"
#include "config.h"
#include "provision.h"
#include "sql.h"
#include "tenant.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: runtime tenant <command> [options]\n"
            "\n"
            "  create CODE [--name NAME] [--isolation shared|schema|database]\n"
            "              [--server NAME] [--domain HOST] [--subdomain NAME] [--force]\n"
            "      provision a tenant: directory row, storage, migrations, active;\n"
            "      a failure drops what was made and marks the tenant failed (retry\n"
            "      with the same command). --force re-provisions an existing tenant.\n"
            "  list [--json]          every tenant in the directory\n"
            "  show CODE [--json]     one tenant\n"
            "  suspend CODE | activate CODE | delete CODE (soft)\n"
            "  purge CODE             drop the tenant's storage and directory row\n"
            "  spares [--server NAME] [--drop]\n"
            "      make the pre-migrated storage new tenants take (tenancy.spare_schemas\n"
            "      spare schemas, the template database) on every server or one, and\n"
            "      drop what older migration files made; --drop drops all of it.\n"
            "\n"
            "Every form takes --config PATH. Isolation defaults to\n"
            "tenancy.default_isolation. Codes match ^[a-z][a-z0-9_]{1,39}$.\n");
}

/* What the command line asked for. */
struct args {
    const char *cmd;
    const char *config_file;
    const char *code;
    struct tenant_spec spec;
    bool json, force, drop;
};

/* Fills a from argv. Returns -1 when the command is to go on, else the exit
 * status (--help, a bad option). */
static int parse(int argc, char **argv, struct args *a)
{
    enum {
        O_HELP = 256,
        O_JSON,
        O_FORCE,
        O_DROP,
        O_CONFIG,
        O_NAME,
        O_ISOLATION,
        O_SERVER,
        O_DOMAIN,
        O_SUBDOMAIN
    };
    static const struct option longopts[] = {
        {"help", no_argument, NULL, O_HELP},
        {"json", no_argument, NULL, O_JSON},
        {"force", no_argument, NULL, O_FORCE},
        {"drop", no_argument, NULL, O_DROP},
        {"config", required_argument, NULL, O_CONFIG},
        {"name", required_argument, NULL, O_NAME},
        {"isolation", required_argument, NULL, O_ISOLATION},
        {"server", required_argument, NULL, O_SERVER},
        {"domain", required_argument, NULL, O_DOMAIN},
        {"subdomain", required_argument, NULL, O_SUBDOMAIN},
        {NULL, 0, NULL, 0},
    };
    const char *word;
    int ch;

    /* argv[1] is the command; its options follow. */
    cli_start();
    while ((ch = cli_next(argc - 1, argv + 1, "-:", longopts, &word)) != -1) {
        switch (ch) {
        case O_HELP: usage(stdout); return 0;
        case O_JSON: a->json = true; break;
        case O_FORCE: a->force = true; break;
        case O_DROP: a->drop = true; break;
        case O_CONFIG: a->config_file = optarg; break;
        case O_NAME: a->spec.name = optarg; break;
        case O_ISOLATION: a->spec.isolation = optarg; break;
        case O_SERVER: a->spec.server = optarg; break;
        case O_DOMAIN: a->spec.domain = optarg; break;
        case O_SUBDOMAIN: a->spec.subdomain = optarg; break;
        case 1:
            if (!a->code) {
                a->code = word;
                break;
            }
            return cli_bad("tenant", word, usage);
        default: return cli_bad("tenant", word ? word : "?", usage);
        }
    }
    return -1;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int cmd_create(const struct config *cfg, struct args *a)
{
    struct provision_result res;
    struct rt_err err;
    double t0 = now_ms();

    a->spec.code = a->code;
    if (!a->spec.isolation)
        a->spec.isolation = cfg->tenancy_default_isolation;
    if (provision_tenant(cfg, &a->spec, a->force, &res, &err) < 0) {
        fprintf(stderr, "runtime tenant create: %s\n", err.msg);
        return 1;
    }
    if (a->json)
        printf("{\"id\":%lld,\"code\":\"%s\",\"isolation\":\"%s\",\"status\":"
               "\"active\",\"duration_ms\":%.1f}\n",
               res.id, a->code, a->spec.isolation, now_ms() - t0);
    else
        printf("tenant %s created (%s, id %lld) in %.0f ms\n", a->code, a->spec.isolation,
               res.id, now_ms() - t0);
    if (res.warning[0])
        fprintf(stderr, "runtime tenant create: warning: %s\n", res.warning);
    /* The next tenant's pre-made storage, after this one is reported: it is
     * not part of this tenant's creation. */
    fflush(stdout);
    if (provision_replenish(cfg, a->spec.server, a->spec.isolation, &err) < 0)
        fprintf(stderr, "runtime tenant create: warning: pre-made storage: %s\n", err.msg);
    return 0;
}

static int cmd_spares(const struct config *cfg, const char *server, bool drop)
{
    struct provision_spares_report rep;
    struct rt_err err;
    int rc = provision_spares(cfg, server, drop, &rep, &err);

    if (rc < 0) {
        fprintf(stderr, "runtime tenant spares: %s\n", err.msg);
        provision_spares_free(&rep);
        return 1;
    }
    for (size_t i = 0; i < rep.n; i++) {
        const struct provision_spares_server *s = &rep.servers[i];
        if (s->ok)
            printf("server %s: %d %s\n", s->name, s->count, drop ? "dropped" : "made");
        else
            fprintf(stderr, "runtime tenant spares: server %s: %s\n", s->name, s->err.msg);
    }
    if (rep.unknown_server)
        fprintf(stderr, "runtime tenant spares: unknown server '%s'\n", server);
    provision_spares_free(&rep);
    return rc == 0 ? 0 : 1;
}

/* Prints the JSON of one query returning a single json value. Returns 0, 1
 * on an error, 3 when the query found nothing. */
static int print_json(PGconn *c, const char *sql, int n, const char *const *v)
{
    struct rt_err err;
    PGresult *r = sql_query(c, sql, n, v, &err);
    int rc = 0;
    if (!r) {
        fprintf(stderr, "runtime tenant: %s\n", err.msg);
        return 1;
    }
    if (PQntuples(r) == 0 || PQgetisnull(r, 0, 0))
        rc = 3;
    else
        printf("%s\n", PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

#define TENANT_JSON_COLUMNS                                                              \
    "id, code, name, isolation, server, schema_name, database_name, domain, subdomain, " \
    "status, status_reason, settings, schema_version, migration_status, "                \
    "last_migration_error, migrated_at, created_at, updated_at, deleted_at"

static int cmd_list(PGconn *c, bool json)
{
    struct rt_err err;
    if (json) {
        int rc = print_json(c,
                            "SELECT coalesce(json_agg(t ORDER BY code), '[]') FROM "
                            "(SELECT " TENANT_JSON_COLUMNS " FROM core.tenants) t",
                            0, NULL);
        return rc == 3 ? 0 : rc;
    }
    PGresult *r = sql_query(c,
                            "SELECT code, isolation, status, schema_version, "
                            "coalesce(domain, ''), coalesce(subdomain, '') "
                            "FROM core.tenants ORDER BY code",
                            0, NULL, &err);
    if (!r) {
        fprintf(stderr, "runtime tenant: %s\n", err.msg);
        return 1;
    }
    printf("%-24s %-9s %-13s %7s  %s\n", "CODE", "ISOLATION", "STATUS", "VERSION",
           "DOMAIN");
    for (int i = 0; i < PQntuples(r); i++)
        printf("%-24s %-9s %-13s %7s  %s%s%s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
               PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4),
               *PQgetvalue(r, i, 5) ? " sub:" : "", PQgetvalue(r, i, 5));
    printf("%d tenant%s\n", PQntuples(r), PQntuples(r) == 1 ? "" : "s");
    PQclear(r);
    return 0;
}

static int cmd_show(PGconn *c, const char *code, bool json)
{
    const char *v[] = {code};
    int rc = print_json(
        c,
        json ? "SELECT row_to_json(t) FROM (SELECT " TENANT_JSON_COLUMNS
               " FROM core.tenants WHERE code = $1) t"
             : "SELECT jsonb_pretty(to_jsonb(t)) FROM (SELECT " TENANT_JSON_COLUMNS
               " FROM core.tenants WHERE code = $1) t",
        1, v);
    if (rc == 3) {
        fprintf(stderr, "runtime tenant: no tenant '%s'\n", code);
        return 1;
    }
    return rc;
}

/* suspend, activate, delete and purge. */
static int cmd_change(const struct config *cfg, const char *cmd, const char *code)
{
    struct rt_err err;
    if (strcmp(cmd, "purge") == 0) {
        if (provision_purge(cfg, code, &err) < 0) {
            fprintf(stderr, "runtime tenant purge: %s\n", err.msg);
            return 1;
        }
        printf("tenant %s purged\n", code);
        return 0;
    }
    const char *status = cmd[0] == 's' ? "suspended" : cmd[0] == 'a' ? "active" : "deleted";
    if (provision_set_status(cfg, code, status, &err) < 0) {
        fprintf(stderr, "runtime tenant %s: %s\n", cmd, err.msg);
        return 1;
    }
    printf("tenant %s %s\n", code, status);
    return 0;
}

int cmd_tenant_main(int argc, char **argv)
{
    struct args a = {.cmd = argc > 1 ? argv[1] : NULL};
    struct rt_err err;
    int rc;

    if (!a.cmd || strcmp(a.cmd, "--help") == 0 || strcmp(a.cmd, "-h") == 0) {
        usage(a.cmd ? stdout : stderr);
        return a.cmd ? 0 : 2;
    }
    if ((rc = parse(argc, argv, &a)) >= 0)
        return rc;
    bool needs_code = strcmp(a.cmd, "list") != 0 && strcmp(a.cmd, "spares") != 0;
    if (needs_code && (!a.code || !tenant_code_valid(a.code))) {
        fprintf(stderr, "runtime tenant %s: %s\n", a.cmd,
                a.code ? "not a tenant code (^[a-z][a-z0-9_]{1,39}$)" : "CODE is required");
        return 2;
    }
    struct config *cfg = config_load_cli(a.config_file);
    if (!cfg)
        return 1;
    rc = 1;
    if (strcmp(a.cmd, "create") == 0) {
        rc = cmd_create(cfg, &a);
    } else if (strcmp(a.cmd, "spares") == 0) {
        rc = cmd_spares(cfg, a.spec.server, a.drop);
    } else if (strcmp(a.cmd, "suspend") == 0 || strcmp(a.cmd, "activate") == 0 ||
               strcmp(a.cmd, "delete") == 0 || strcmp(a.cmd, "purge") == 0) {
        rc = cmd_change(cfg, a.cmd, a.code);
    } else if (strcmp(a.cmd, "list") == 0 || strcmp(a.cmd, "show") == 0) {
        PGconn *c = provision_connect(cfg, "main", &err);
        if (!c)
            fprintf(stderr, "runtime tenant: %s\n", err.msg);
        else if (a.cmd[0] == 'l')
            rc = cmd_list(c, a.json);
        else
            rc = cmd_show(c, a.code, a.json);
        PQfinish(c);
    } else {
        fprintf(stderr, "runtime tenant: unknown command '%s'\n", a.cmd);
        usage(stderr);
        rc = 2;
    }
    config_free(cfg);
    return rc;
}
