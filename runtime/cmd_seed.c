/* cmd_seed: `runtime seed` (see cmd_seed.h). */
#include "cmd_seed.h"

#include "cli.h"
#include "config.h"
#include "seed.h"
#include "tenant.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

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

static void print_report(const struct seed_report *rep, const char *code, bool json, int rc)
{
    if (rep->unknown)
        fprintf(stderr, "runtime seed: no tenant '%s'\n", code);
    if (json)
        printf("{\"tenants\":[");
    for (size_t i = 0; i < rep->n; i++) {
        const struct seed_tenant_outcome *t = &rep->tenants[i];
        if (json)
            printf("%s{\"code\":\"%s\",\"applied\":%d,\"skipped\":%d,\"ok\":%s}",
                   i ? "," : "", t->code, t->res.applied, t->res.skipped,
                   t->ok ? "true" : "false");
        else if (!t->ok)
            fprintf(stderr, "tenant %s: %s\n", t->code, t->res.err.msg);
        else
            printf("tenant %s: %d applied, %d unchanged\n", t->code, t->res.applied,
                   t->res.skipped);
    }
    if (json)
        printf("],\"ok\":%s}\n", rc == 0 ? "true" : "false");
}

int cmd_seed_main(int argc, char **argv)
{
    enum { O_ALL = 256, O_JSON, O_TENANT, O_CONFIG, O_HELP = 'h' };
    static const struct option longopts[] = {
        {"help", no_argument, NULL, O_HELP},
        {"all", no_argument, NULL, O_ALL},
        {"json", no_argument, NULL, O_JSON},
        {"tenant", required_argument, NULL, O_TENANT},
        {"config", required_argument, NULL, O_CONFIG},
        {NULL, 0, NULL, 0},
    };
    const char *config_file = NULL, *code = NULL, *word;
    bool all = false, json = false;
    int ch;

    cli_start();
    while ((ch = cli_next(argc, argv, "-:h", longopts, &word)) != -1) {
        switch (ch) {
        case O_HELP: usage(stdout); return 0;
        case O_ALL: all = true; break;
        case O_JSON: json = true; break;
        case O_TENANT: code = optarg; break;
        case O_CONFIG: config_file = optarg; break;
        default: /* a word, or a bad option: seed takes no words */
            return cli_bad("seed", word ? word : "?", usage);
        }
    }
    if (all == (code != NULL) || (code && !tenant_code_valid(code))) {
        usage(stderr);
        return 2;
    }
    struct config *cfg = config_load_cli(config_file);
    if (!cfg)
        return 1;
    struct seed_report rep;
    struct rt_err err;
    int rc = seed_run(cfg, code, &rep, &err);
    if (rc < 0)
        fprintf(stderr, "runtime seed: %s\n", err.msg);
    else
        print_report(&rep, code, json, rc);
    seed_report_free(&rep);
    config_free(cfg);
    return rc == 0 ? 0 : 1;
}
