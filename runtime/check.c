/* check: `runtime check` and `runtime routes` (see check.h). */
#include "check.h"
#include "cli.h"

#include "auth.h"
#include "bindings.h"
#include "buf.h"
#include "config.h"
#include "lua/rt_tenant.h"
#include "scripts.h"
#include "steps.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The modules the server's states get (http.c), so that route files load
 * here as they do there; rt.tenant's engines are never called offline. */
static const struct rt_module tenant_module[] = {
    {"rt.tenant", luaopen_rt_tenant, NULL},
    {NULL, NULL, NULL},
};
static const struct rt_module *const modules[] = {bindings_common, tenant_module, NULL};

struct opts {
    const char *config;  /* NULL: $RUNTIME_CONFIG or ./config.lua */
    const char *scripts; /* NULL: scripts.dir from the config */
    bool json;
};

static void check_usage(FILE *out)
{
    fprintf(out, "usage: runtime check [--config PATH] [--scripts DIR] [--json]\n"
                 "\n"
                 "Compiles every script under the scripts directory, validates the\n"
                 "route tables of api/ and the migration and seed steps, and loads\n"
                 "the JWT keys the auth.jwt_* settings name, without a database.\n"
                 "Prints each problem as file:line: message; exits 1 when there is\n"
                 "one. --scripts overrides scripts.dir.\n");
}

static void routes_usage(FILE *out)
{
    fprintf(out, "usage: runtime routes [--config PATH] [--scripts DIR] [--json]\n"
                 "\n"
                 "Lists the routes of scripts/api: method, path, scope, permission\n"
                 "and source file, sorted by path. --scripts overrides scripts.dir.\n");
}

/* Parses the options, loads the config and resolves the scripts directory
 * into *dir (malloc'd). Returns -1 to go on, else the exit status (after
 * --help, bad usage or a config that cannot be read). */
static int start(int argc, char **argv, void (*usage)(FILE *), struct opts *o,
                 struct config **cfg, char **dir)
{
    struct rt_err cerr;

    enum { O_JSON = 256, O_CONFIG, O_SCRIPTS };
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"json", no_argument, NULL, O_JSON},
        {"config", required_argument, NULL, O_CONFIG},
        {"scripts", required_argument, NULL, O_SCRIPTS},
        {NULL, 0, NULL, 0},
    };
    const char *word;
    int ch;

    memset(o, 0, sizeof *o);
    cli_start();
    while ((ch = cli_next(argc, argv, "-:h", longopts, &word)) != -1) {
        switch (ch) {
        case 'h': usage(stdout); return 0;
        case O_JSON: o->json = true; break;
        case O_CONFIG: o->config = optarg; break;
        case O_SCRIPTS: o->scripts = optarg; break;
        default: /* a word, or a bad option: neither command takes words */
            return cli_bad(argv[0], word ? word : "?", usage);
        }
    }
    if (!(*cfg = config_load(o->config, &cerr))) {
        fprintf(stderr, "runtime %s: config: %s\n", argv[0], cerr.msg);
        return 1;
    }
    *dir = o->scripts ? strdup(o->scripts) : config_path(*cfg, (*cfg)->scripts_dir);
    if (!*dir) {
        fprintf(stderr, "runtime %s: out of memory\n", argv[0]);
        config_free(*cfg);
        return 1;
    }
    return -1;
}

/* ---- runtime check ------------------------------------------------------ */

struct problems {
    struct buf text; /* one line each */
    struct buf json; /* JSON array elements */
    int n;
};

/* Appends one problem, "file.lua:12: message" (file and line optional), as
 * a text line and as {"file", "line", "message"}. */
static void problem_line(struct problems *p, const char *msg, size_t len)
{
    const char *lua = NULL, *text = msg, *end = msg + len;
    long line = 0;

    for (const char *s = msg; s + 5 <= end; s++)
        if (memcmp(s, ".lua:", 5) == 0) {
            lua = s + 4;
            break;
        }
    if (lua) {
        char *after;
        text = lua + 1;
        line = strtol(text, &after, 10);
        if (after > text && after < end && *after == ':')
            text = after + 1;
        else
            line = 0;
        while (text < end && *text == ' ')
            text++;
    }
    buf_append(&p->text, msg, len);
    buf_putc(&p->text, '\n');
    buf_puts(&p->json, p->n ? ",{\"file\":" : "{\"file\":");
    if (lua)
        buf_json_str(&p->json, msg, (size_t)(lua - msg));
    else
        buf_puts(&p->json, "null");
    if (line > 0)
        buf_printf(&p->json, ",\"line\":%ld", line);
    else
        buf_puts(&p->json, ",\"line\":null");
    buf_puts(&p->json, ",\"message\":");
    buf_json_str(&p->json, text, (size_t)(end - text));
    buf_putc(&p->json, '}');
    p->n++;
}

/* report callback: msg may hold several problems, one per line. */
static void problem_add(void *ud, const char *msg)
{
    while (*msg) {
        size_t n = strcspn(msg, "\n");
        if (n > 0)
            problem_line(ud, msg, n);
        msg += n + (msg[n] == '\n');
    }
}

int check_main(int argc, char **argv)
{
    static const struct {
        const char *sub;
        enum vm_step_kind kind;
    } step_dirs[] = {
        {"migrations/core", VM_STEP_MIGRATION},
        {"migrations/tenant", VM_STEP_MIGRATION},
        {"seeds", VM_STEP_SEED},
    };
    struct opts o;
    struct problems p = {BUF_INIT, BUF_INIT, 0};
    struct rt_err err;
    size_t nroutes = 0, nsteps[3] = {0, 0, 0};
    struct config *cfg = NULL;
    char *dir = NULL;
    int rc = start(argc, argv, check_usage, &o, &cfg, &dir);

    if (rc >= 0)
        return rc;

    struct rt_err kerr;
    if (auth_check_keys(cfg, &kerr) < 0)
        problem_add(&p, kerr.msg);
    long nfiles = vm_scripts_compile(dir, problem_add, &p, &err);
    if (nfiles < 0)
        problem_add(&p, err.msg);
    if (p.n == 0) {
        /* Route tables only when everything compiles: vm_scripts_load would
         * report the first syntax error again. */
        struct vm_scripts *s = vm_scripts_load(dir, cfg, modules, &err);
        if (s)
            nroutes = vm_view_route_count(vm_scripts_view_at(s, 0));
        else
            problem_add(&p, err.msg);
        vm_scripts_release(s);
    }
    for (size_t i = 0; nfiles >= 0 && i < 3; i++) {
        size_t n = strlen(dir) + strlen(step_dirs[i].sub) + 2;
        char *path = malloc(n);
        if (!path) {
            problem_add(&p, "out of memory");
            break;
        }
        snprintf(path, n, "%s/%s", dir, step_dirs[i].sub);
        struct vm_steps *st = vm_steps_load(path, path, step_dirs[i].kind, &err);
        if (st)
            nsteps[i] = st->n;
        else
            problem_add(&p, err.msg);
        vm_steps_free(st);
        free(path);
    }

    if (o.json) {
        struct buf out = BUF_INIT;
        buf_printf(&out, "{\"ok\":%s,\"dir\":", p.n ? "false" : "true");
        buf_json_cstr(&out, dir);
        buf_printf(&out,
                   ",\"files\":%ld,\"routes\":%zu,\"migrations\":{\"core\":%zu,"
                   "\"tenant\":%zu},\"seeds\":%zu,\"problems\":[%s]}\n",
                   nfiles < 0 ? 0 : nfiles, nroutes, nsteps[0], nsteps[1], nsteps[2],
                   buf_cstr(&p.json));
        fputs(buf_cstr(&out), stdout);
        buf_free(&out);
    } else if (p.n) {
        fputs(buf_cstr(&p.text), stdout);
        printf("runtime check: %d problem%s in %s\n", p.n, p.n == 1 ? "" : "s", dir);
    } else {
        printf("runtime check: %s is valid: %ld script files, %zu routes, %zu core and %zu "
               "tenant migrations, %zu seeds\n",
               dir, nfiles, nroutes, nsteps[0], nsteps[1], nsteps[2]);
    }
    rc = p.n ? 1 : 0;
    buf_free(&p.text);
    buf_free(&p.json);
    free(dir);
    config_free(cfg);
    return rc;
}

/* ---- runtime routes ----------------------------------------------------- */

static const struct vm_view *sort_view; /* for cmp_route; qsort has no context */

static int cmp_route(const void *a, const void *b)
{
    const struct vm_route *x = vm_view_route(sort_view, *(const int *)a);
    const struct vm_route *y = vm_view_route(sort_view, *(const int *)b);
    int c = strcmp(x->pattern, y->pattern);
    return c ? c : strcmp(x->method, y->method);
}

/* The route's file relative to the scripts directory. */
static const char *rel_file(const char *file, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(file, dir, n) == 0 && file[n] == '/' ? file + n + 1 : file;
}

/* Appends view v's routes, sorted by path: a table, or a JSON array. */
static int print_view(struct buf *out, const struct vm_view *v, const char *dir, bool json)
{
    size_t n = vm_view_route_count(v);
    int *order = malloc((n ? n : 1) * sizeof *order);
    int w[4] = {6, 4, 5, 10}; /* METHOD, PATH, SCOPE, PERMISSION */

    if (!order)
        return -1;
    for (size_t i = 0; i < n; i++)
        order[i] = (int)i;
    sort_view = v;
    if (n > 1)
        qsort(order, n, sizeof *order, cmp_route);
    for (size_t i = 0; i < n; i++) {
        const struct vm_route *r = vm_view_route(v, order[i]);
        const char *col[4] = {r->method, r->pattern, r->scope,
                              r->permission ? r->permission : "-"};
        for (int k = 0; k < 4; k++)
            w[k] = (int)strlen(col[k]) > w[k] ? (int)strlen(col[k]) : w[k];
    }
    if (!json)
        buf_printf(out, "%-*s  %-*s  %-*s  %-*s  %s\n", w[0], "METHOD", w[1], "PATH", w[2],
                   "SCOPE", w[3], "PERMISSION", "FILE");
    else
        buf_putc(out, '[');
    for (size_t i = 0; i < n; i++) {
        const struct vm_route *r = vm_view_route(v, order[i]);
        const char *file = rel_file(r->file, dir);
        if (!json) {
            buf_printf(out, "%-*s  %-*s  %-*s  %-*s  %s\n", w[0], r->method, w[1],
                       r->pattern, w[2], r->scope, w[3],
                       r->permission ? r->permission : "-", file);
            continue;
        }
        buf_puts(out, i ? ",{\"method\":" : "{\"method\":");
        buf_json_cstr(out, r->method);
        buf_puts(out, ",\"path\":");
        buf_json_cstr(out, r->pattern);
        buf_puts(out, ",\"scope\":");
        buf_json_cstr(out, r->scope);
        buf_puts(out, ",\"permission\":");
        buf_json_cstr(out, r->permission);
        buf_puts(out, ",\"file\":");
        buf_json_cstr(out, file);
        buf_putc(out, '}');
    }
    if (json)
        buf_putc(out, ']');
    free(order);
    return 0;
}

/* The common routes, then those of each tenant with overrides (in JSON:
 * {"routes": [...], "tenants": {"code": [...]}}). */
static int print_routes(const struct vm_scripts *s, const char *dir, bool json)
{
    struct buf out = BUF_INIT;
    int rc = 0;

    if (json)
        buf_puts(&out, "{\"routes\":");
    rc = print_view(&out, vm_scripts_view_at(s, 0), dir, json);
    if (json)
        buf_puts(&out, ",\"tenants\":{");
    for (size_t i = 1; rc == 0 && vm_scripts_view_at(s, i); i++) {
        const struct vm_view *v = vm_scripts_view_at(s, i);
        if (json) {
            if (i > 1)
                buf_putc(&out, ',');
            buf_json_cstr(&out, vm_view_code(v));
            buf_putc(&out, ':');
        } else {
            buf_printf(&out, "\nroutes of tenant %s (with tenants/%s overrides):\n",
                       vm_view_code(v), vm_view_code(v));
        }
        rc = print_view(&out, v, dir, json);
    }
    if (json)
        buf_puts(&out, "}}\n");
    if (rc == 0 && !out.failed)
        fputs(buf_cstr(&out), stdout);
    buf_free(&out);
    return rc == 0 && !out.failed ? 0 : -1;
}

int routes_main(int argc, char **argv)
{
    struct opts o;
    struct rt_err err;
    struct config *cfg = NULL;
    char *dir = NULL;
    int rc = start(argc, argv, routes_usage, &o, &cfg, &dir);

    if (rc >= 0)
        return rc;
    struct vm_scripts *s = vm_scripts_load(dir, cfg, modules, &err);
    rc = 1;
    if (!s)
        fprintf(stderr, "runtime routes: %s\n", err.msg);
    else if (print_routes(s, dir, o.json) < 0)
        fprintf(stderr, "runtime routes: out of memory\n");
    else
        rc = 0;
    vm_scripts_release(s);
    free(dir);
    config_free(cfg);
    return rc;
}
