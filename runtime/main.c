/* main: subcommand dispatch, start-up and shutdown order, signals.
 *
 * Start-up: config -> log level -> scripts (routes validated) -> database
 * pool (connects lazily) -> HTTP. Shutdown on SIGTERM/SIGINT runs it in
 * reverse after in-flight requests finish. */
#include "check.h"
#include "cli.h"
#include "cmd_migrate.h"
#include "cmd_seed.h"
#include "cmd_tenant.h"
#include "cmd_user.h"
#include "config.h"
#include "db.h"
#include "http.h"
#include "log.h"
#include "provision.h"
#include "scripts.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: runtime <command> [options]\n"
        "\n"
        "commands:\n"
        "  serve [--config PATH]   serve the HTTP API from scripts/api\n"
        "  migrate [...]           apply migration steps (runtime migrate --help)\n"
        "  tenant [...]            provision and manage tenants (runtime tenant --help)\n"
        "  seed [...]              run seeds (runtime seed --help)\n"
        "  user create EMAIL       create a platform user (runtime user --help)\n"
        "  check [--json]          validate every script without a database\n"
        "  routes [--json]         list the routes of scripts/api\n"
        "  version                 print the version\n"
        "  help                    show this help\n"
        "\n"
        "The config file defaults to $RUNTIME_CONFIG, else ./config.lua.\n"
        "Every config key can be overridden by RUNTIME_<SECTION>_<KEY>,\n"
        "for example RUNTIME_DATABASE_URL or RUNTIME_HTTP_PORT.\n");
}

static void serve_usage(FILE *out)
{
    fprintf(out, "usage: runtime serve [--config PATH]\n"
                 "\n"
                 "Serves GET /healthz, GET /readyz and the routes of scripts/api on\n"
                 "http.host:http.port until SIGTERM or SIGINT; in-flight requests\n"
                 "get http.shutdown_grace seconds to finish.\n");
}

static int cmd_serve(int argc, char **argv)
{
    const char *cfg_file = NULL;
    struct rt_err verr;
    struct config *cfg = NULL;
    struct host *host = NULL;
    struct db_pool *pool = NULL;
    struct http_server *srv = NULL;
    char *scripts_dir = NULL;
    struct rt_err herr;
    sigset_t sigs;
    int sig, rc = 1;

    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"config", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    const char *word;
    int ch;

    cli_start();
    while ((ch = cli_next(argc, argv, "-:h", longopts, &word)) != -1) {
        switch (ch) {
        case 'h': serve_usage(stdout); return 0;
        case 'c': cfg_file = optarg; break;
        default: return cli_bad("serve", word ? word : "?", serve_usage);
        }
    }

    cfg = config_load_cli(cfg_file);
    if (!cfg)
        return 1;
    int level = log_level_parse(cfg->log_level);
    if (level < 0) {
        fprintf(stderr, "runtime: config: log.level must be debug, info, warn or error\n");
        goto done;
    }
    log_set_level((enum log_level)level);
    if (!cfg->database_url[0]) {
        fprintf(stderr, "runtime: config: database.url is not set "
                        "(set RUNTIME_DATABASE_URL, or run ./dev up)\n");
        goto done;
    }
    scripts_dir = config_path(cfg, cfg->scripts_dir);
    if (!scripts_dir) {
        fprintf(stderr, "runtime: out of memory\n");
        goto done;
    }
    host = host_start(cfg, scripts_dir, http_modules(), &verr);
    if (!host) {
        fprintf(stderr, "runtime: scripts: %s\n", verr.msg);
        goto done;
    }
    struct db_pool_options po = {
        .conninfo = cfg->database_url,
        .name = "main",
        .max_size = cfg->database_pool_size,
        .checkout_timeout_ms = cfg->database_checkout_timeout_ms,
        .connect_timeout_s = cfg->database_connect_timeout,
        .statement_timeout_ms = cfg->database_statement_timeout_ms,
        .refuse_privileged = true,
    };
    pool = db_pool_new(&po);
    if (!pool) {
        fprintf(stderr, "runtime: out of memory\n");
        goto done;
    }
    /* A superuser or BYPASSRLS role would make row-level security silently
     * not apply: refuse to start. An unreachable database is not fatal
     * (/readyz says so, and the pool reconnects). */
    struct db_error dberr;
    if (db_ping(pool, &dberr) < 0) {
        if (dberr.status == DB_ERR_REFUSED) {
            fprintf(stderr, "runtime: %s\n", dberr.message);
            goto done;
        }
        log_msg(LOG_LEVEL_WARN, NULL, "database not reachable at start-up: %s",
                dberr.message);
    }

    /* Signals are taken synchronously by this thread; every thread started
     * from here on inherits the mask. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    srv = http_start(cfg, host, pool, &herr);
    if (!srv) {
        fprintf(stderr, "runtime: http: %s\n", herr.msg);
        goto done;
    }
    struct vm_scripts *scripts = host_acquire(host);
    log_msg(LOG_LEVEL_INFO, NULL,
            "listening on http://%s:%d (%d threads, %zu script files, %zu routes%s)",
            cfg->http_host, cfg->http_port, cfg->http_threads,
            vm_scripts_file_count(scripts),
            vm_view_route_count(vm_scripts_view_at(scripts, 0)),
            cfg->scripts_reload ? ", reloading on change" : "");
    vm_scripts_release(scripts);
    if (sigwait(&sigs, &sig) != 0)
        sig = SIGTERM;
    log_msg(LOG_LEVEL_INFO, NULL, "%s received: finishing in-flight requests",
            sig == SIGINT ? "SIGINT" : "SIGTERM");
    http_stop(srv);
    log_msg(LOG_LEVEL_INFO, NULL, "stopped");
    rc = 0;
done:
    provision_background_stop(); /* a refill of pre-made storage uses cfg */
    db_pool_free(pool);
    host_stop(host);
    free(scripts_dir);
    config_free(cfg);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "migrate") == 0)
        return cmd_migrate(argc - 1, argv + 1);
    if (strcmp(cmd, "tenant") == 0)
        return cmd_tenant_main(argc - 1, argv + 1);
    if (strcmp(cmd, "seed") == 0)
        return cmd_seed_main(argc - 1, argv + 1);
    if (strcmp(cmd, "user") == 0)
        return cmd_user_main(argc - 1, argv + 1);
    if (strcmp(cmd, "check") == 0)
        return check_main(argc - 1, argv + 1);
    if (strcmp(cmd, "routes") == 0)
        return routes_main(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("runtime %s\n", RT_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "runtime: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
