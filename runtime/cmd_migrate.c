/* cmd_migrate: `runtime migrate` (see cmd_migrate.h). */
#include "cmd_migrate.h"

#include "cli.h"

#include "config.h"
#include "migrate.h"
#include "tenant.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: runtime migrate [up|down|status|new|resolve] [options]\n"
        "\n"
        "  runtime migrate [--dry-run] [--jobs N] [--json]\n"
        "      bring everything to head: core, then shared, then every tenant\n"
        "  runtime migrate up [--core | --shared | --tenant CODE | --all] [--to VERSION]\n"
        "                     [--dry-run] [--jobs N] [--json] [--accept-drift]\n"
        "  runtime migrate down (--core | --shared | --tenant CODE)\n"
        "                       (--steps N | --to VERSION) [--dry-run] [--json]\n"
        "  runtime migrate status [--tenant CODE | --all] [--json]\n"
        "  runtime migrate new NAME [--core]\n"
        "  runtime migrate resolve (--core | --shared | --tenant CODE) --version N\n"
        "                          (--applied | --rolled-back)\n"
        "\n"
        "Steps live in scripts/migrations/core and scripts/migrations/tenant as\n"
        "NNNN_name.lua returning { up = fn, down = fn | false, transaction = bool }.\n"
        "Every file is validated before anything runs. Each target (core, shared,\n"
        "every schema or database tenant) has its own ledger and lock; each step\n"
        "runs in its own transaction. A failing tenant is recorded in the directory\n"
        "and the others go on; the exit status is 1 if any target failed, drifted\n"
        "or is dirty. --dry-run runs pending steps in a transaction that is rolled\n"
        "back and prints the statements. --jobs sets the parallel tenant workers\n"
        "(default migrate.jobs). --accept-drift records the new checksum of edited\n"
        "applied files. All forms take --config PATH. See docs/MIGRATIONS.md.\n");
}

static int parse_int(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > 1000000)
        return -1;
    *out = (int)v;
    return 0;
}

enum {
    OPT_CORE = 256,
    OPT_SHARED,
    OPT_ALL,
    OPT_DRY_RUN,
    OPT_JSON,
    OPT_ACCEPT_DRIFT,
    OPT_APPLIED,
    OPT_ROLLED_BACK,
    OPT_CONFIG,
    OPT_TENANT,
    OPT_TO,
    OPT_STEPS,
    OPT_JOBS,
    OPT_VERSION,
};

static int refuse(const char *word)
{
    fprintf(stderr, "runtime migrate: unknown or incomplete option '%s'\n",
            word ? word : "?");
    return -1;
}

/* Fills c, *config and *json from argv. Returns 0, 1 for --help (printed),
 * or -1 (the reason printed, usage not). */
static int parse(int argc, char **argv, struct migrate_request *c, const char **config,
                 bool *json)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {"core", no_argument, NULL, OPT_CORE},
        {"shared", no_argument, NULL, OPT_SHARED},
        {"all", no_argument, NULL, OPT_ALL},
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {"json", no_argument, NULL, OPT_JSON},
        {"accept-drift", no_argument, NULL, OPT_ACCEPT_DRIFT},
        {"applied", no_argument, NULL, OPT_APPLIED},
        {"rolled-back", no_argument, NULL, OPT_ROLLED_BACK},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"tenant", required_argument, NULL, OPT_TENANT},
        {"to", required_argument, NULL, OPT_TO},
        {"steps", required_argument, NULL, OPT_STEPS},
        {"jobs", required_argument, NULL, OPT_JOBS},
        {"version", required_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    const char *word;
    int o;

    memset(c, 0, sizeof *c);
    c->cmd = "up";
    c->jobs = -1;
    c->version = -1;
    c->steps = -1;
    bool have_cmd = false;
    cli_start();
    while ((o = cli_next(argc, argv, "-:h", opts, &word)) != -1) {
        int bad = 0;
        switch (o) {
        case 'h': usage(stdout); return 1;
        case OPT_CORE: c->core = true; break;
        case OPT_SHARED: c->shared = true; break;
        case OPT_ALL: c->all = true; break;
        case OPT_DRY_RUN: c->dry_run = true; break;
        case OPT_JSON: *json = true; break;
        case OPT_ACCEPT_DRIFT: c->accept_drift = true; break;
        case OPT_APPLIED: c->applied = true; break;
        case OPT_ROLLED_BACK: c->rolled_back = true; break;
        case OPT_CONFIG: *config = optarg; break;
        case OPT_TENANT: c->tenant = optarg; break;
        case OPT_TO:
            bad = parse_int(optarg, &c->to);
            c->to_set = true;
            break;
        case OPT_STEPS: bad = parse_int(optarg, &c->steps); break;
        case OPT_JOBS: bad = parse_int(optarg, &c->jobs) < 0 || c->jobs < 1 ? -1 : 0; break;
        case OPT_VERSION: bad = parse_int(optarg, &c->version); break;
        case 1:
            /* The first word is the command, wherever it stands; new takes
             * a NAME. */
            if (!have_cmd) {
                c->cmd = word;
                have_cmd = true;
                break;
            }
            if (strcmp(c->cmd, "new") == 0 && !c->name) {
                c->name = word;
                break;
            }
            return refuse(word); /* any other word */
        default: return refuse(word);
        }
        if (bad)
            return -1;
    }
    if (c->tenant && !tenant_code_valid(c->tenant)) {
        fprintf(stderr,
                "runtime migrate: '%s' is not a tenant code (^[a-z][a-z0-9_]{1,39}$)\n",
                c->tenant);
        return -1;
    }
    if ((c->core + c->shared + (c->tenant != NULL) + c->all) > 1) {
        fprintf(stderr,
                "runtime migrate: choose one of --core, --shared, --tenant, --all\n");
        return -1;
    }
    return 0;
}

/* ---- progress ------------------------------------------------------------- */

struct progress_state {
    bool tty;
    double last_ms; /* when the last non-terminal line was printed */
};

static void on_progress(void *ud, const struct migrate_progress *p)
{
    struct progress_state *st = ud;
    double secs = p->elapsed_ms / 1000.0;
    double rate = secs > 0 ? (double)p->done / secs : 0;
    double eta = rate > 0 ? (double)(p->total - p->done) / rate : 0;

    if (p->failure) {
        /* On a terminal the failures are listed at the end, under the bar. */
        if (!st->tty)
            fprintf(stderr, "%s: %s\n", p->failure->key, p->failure->error);
        return;
    }
    if (st->tty) {
        int width = 30, fill = p->total ? (int)(width * p->done / p->total) : width;
        fprintf(stderr, "\r[%.*s%*s] %zu/%zu tenants  %zu failed  %.1f/s  ETA %.0fs ", fill,
                "##############################", width - fill, "", p->done, p->total,
                p->failed, rate, eta);
        if (p->final)
            fputc('\n', stderr);
    } else {
        if (p->final ? p->elapsed_ms < 2000 : p->elapsed_ms - st->last_ms < 2000)
            return;
        st->last_ms = p->elapsed_ms;
        fprintf(stderr, "tenants: %zu/%zu done, %zu failed, %.1f/s\n", p->done, p->total,
                p->failed, rate);
    }
    fflush(stderr);
}

/* ---- printing ------------------------------------------------------------- */

static bool is_tenant(const struct report_target *t)
{
    return strncmp(t->key, "tenant:", 7) == 0;
}

static void print_target(const struct report_target *t, bool dry_run, FILE *out, FILE *err)
{
    double ms = 0;
    for (int i = 0; i < t->napplied; i++)
        ms += t->applied[i].ms;
    if (report_target_bad(t))
        fprintf(err, "%s: %s\n", t->key, t->error);
    else if (t->status == REPORT_UP_TO_DATE)
        fprintf(out, "%s: at version %d, nothing to do\n", t->key, t->to);
    else
        fprintf(out, "%s: %d -> %d (%d step%s, %.0f ms)%s%s\n", t->key, t->from, t->to,
                t->napplied, t->napplied == 1 ? "" : "s", ms,
                dry_run ? ", dry run: rolled back" : "",
                t->skipped_non_tx ? "; stopped at a step that cannot run in a transaction"
                                  : "");
}

static void print_run(const struct migrate_report *rep, bool tty, FILE *out, FILE *err)
{
    for (size_t i = 0; i < rep->ntargets; i++) {
        const struct report_target *t = &rep->targets[i];
        for (int k = 0; k < t->nsql; k++)
            fprintf(out, "-- [%s] %04d_%s\n%s;\n", t->key, t->sql[k].version,
                    t->sql[k].name, t->sql[k].sql);
    }
    for (size_t i = 0; i < rep->ntargets; i++) {
        const struct report_target *t = &rep->targets[i];
        if (!is_tenant(t))
            print_target(t, rep->dry_run, out, err);
        else if (rep->visited <= 20 && !report_target_bad(t))
            print_target(t, rep->dry_run, out, err);
    }
    if (!rep->fleet_asked)
        return;
    fprintf(out, "tenants: %zu in scope, %zu visited, %zu %s, %zu failed (%.0f ms)\n",
            rep->total, rep->visited, rep->migrated, rep->dry_run ? "dry-run" : "migrated",
            rep->failed, rep->duration_ms);
    if (rep->failed && tty) { /* otherwise printed as they happened */
        fprintf(err, "failed tenants:\n");
        for (size_t i = 0; i < rep->ntargets; i++)
            if (is_tenant(&rep->targets[i]) && report_target_bad(&rep->targets[i]))
                fprintf(err, "  %s: %s\n", rep->targets[i].key, rep->targets[i].error);
    }
}

static void print_ledger(const char *key, const struct report_ledger *l, FILE *out)
{
    if (l->error[0]) {
        fprintf(out, "%-8s error: %s\n", key, l->error);
        return;
    }
    fprintf(out, "%-8s version %d of %d", key, l->version, l->head);
    if (l->version < l->head)
        fprintf(out, ", pending %d", l->head - l->version);
    for (int i = 0; i < l->ndrift; i++)
        fprintf(out, "%s%04d", i ? " " : ", drift: ", l->drift[i]);
    fprintf(out, "%s\n", l->dirty ? ", DIRTY" : "");
}

static void print_status(const struct migrate_report *rep, FILE *out)
{
    print_ledger("core", &rep->core, out);
    print_ledger("shared", &rep->shared, out);
    if (rep->fleet == REPORT_FLEET_NONE)
        fprintf(out, "tenants  no directory yet (run: runtime migrate up --core)\n");
    else if (rep->fleet == REPORT_FLEET_READ)
        fprintf(out,
                "tenants  %ld in scope, head %d: %ld pending, %ld failed, %ld dirty, %ld "
                "drift\n",
                rep->fleet_total, rep->head, rep->fleet_pending, rep->fleet_failed,
                rep->fleet_dirty, rep->fleet_drift);
    for (size_t i = 0; i < rep->ntenants; i++) {
        const struct report_tenant *t = &rep->tenants[i];
        fprintf(out, "  %-24s version %d of %d  %s%s%s\n", t->code, t->version, rep->head,
                t->status, t->error ? ": " : "", t->error ? t->error : "");
        if (t->has_ledger) {
            char key[64];
            snprintf(key, sizeof key, "tenant:%s", t->code);
            fprintf(out, "  ");
            print_ledger(key, &t->ledger, out);
        }
    }
}

void cmd_migrate_print(const struct migrate_report *rep, bool json, bool tty, FILE *out,
                       FILE *err)
{
    if (rep->errors)
        fputs(rep->errors, err);
    if (!rep->body)
        return;
    if (json && (rep->kind == REPORT_RUN || rep->kind == REPORT_STATUS)) {
        struct buf b = BUF_INIT;
        report_json(&b, rep);
        fputs(buf_cstr(&b), out);
        buf_free(&b);
        return;
    }
    switch (rep->kind) {
    case REPORT_RUN: print_run(rep, tty, out, err); break;
    case REPORT_STATUS: print_status(rep, out); break;
    case REPORT_RESOLVE:
    case REPORT_NEW: fprintf(out, "%s\n", rep->done); break;
    }
}

int cmd_migrate(int argc, char **argv)
{
    struct migrate_request c;
    struct migrate_report rep;
    struct progress_state ps = {0};
    const char *config_file = NULL;
    bool json = false;

    int p = parse(argc, argv, &c, &config_file, &json);
    if (p != 0) {
        if (p < 0)
            usage(stderr);
        return p < 0 ? 2 : 0;
    }
    struct config *cfg = config_load_cli(config_file);
    if (!cfg)
        return 1;
    ps.tty = isatty(fileno(stderr)) && !json;
    if (!json) {
        c.progress = on_progress;
        c.progress_ud = &ps;
    }
    int rc = migrate_run(cfg, &c, &rep, NULL);
    cmd_migrate_print(&rep, json, ps.tty, stdout, stderr);
    if (rc == 2 && strcmp(c.cmd, "new") != 0)
        usage(stderr);
    report_free(&rep);
    config_free(cfg);
    return rc;
}
