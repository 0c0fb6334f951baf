/* Fuzz target: the route matcher (router.c) on URLs decoded the way the
 * server receives them.
 *
 * libmicrohttpd percent-decodes the path (MHD_http_unescape, its default)
 * before http.c copies it and matches it, so the input's last line is a raw
 * URL path that goes through the same decoding and then router_match. The
 * lines before it are extra routes ("<method byte><pattern>") added to a
 * fixed table like the one an application declares; a pattern router_add
 * accepts must also pass router_pattern_check and is itself matched as a
 * path.
 *
 * Each result is checked against a plain reading of the rules in router.h:
 * a match is a route of the method (or GET for HEAD) whose literal
 * segments equal the path's and that no other such route beats on literal
 * segments; parameters are the path's segments at the parameter positions;
 * 404 means no route has the path's shape; 405 lists every method that has
 * it. */
#include "router.h"

#include <microhttpd.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const methods[] = {"GET",   "HEAD",   "POST",   "PUT",
                                      "PATCH", "DELETE", "OPTIONS"};
#define NMETHODS (sizeof methods / sizeof methods[0])

static const struct {
    const char *method, *pattern;
} fixed[] = {
    {"GET", "/"},
    {"GET", "/docs"},
    {"POST", "/api/v1/auth/login"},
    {"GET", "/api/v1/users"},
    {"POST", "/api/v1/users"},
    {"GET", "/api/v1/users/me"},
    {"GET", "/api/v1/users/:id"},
    {"PATCH", "/api/v1/users/:id"},
    {"DELETE", "/api/v1/users/:id"},
    {"GET", "/api/v1/tenants/:tenant_id/users/:id"},
    {"PUT", "/api/v1/orgs/:org/members/:user"},
    {"OPTIONS", "/api/v1/orgs/:org/members/:user"},
    {"HEAD", "/api/v1/files/:name"},
    {"GET", "/a/:b/c/:d/e/:f/g/:h/i/:j/k/:l/m/:n/o/:p/q/:r/s/:t/u/:v/w/:x/y/:z/z/:zz"},
};
#define NFIXED   (sizeof fixed / sizeof fixed[0])
#define MAX_FUZZ 8

struct ref_route {
    const char *method;
    char *pattern;
    int nseg;
    char *seg[ROUTER_MAX_SEGMENTS]; /* into a copy of the pattern */
    size_t len[ROUTER_MAX_SEGMENTS];
    unsigned rank;
    char *copy;
};

static struct ref_route table[NFIXED + MAX_FUZZ];
static int ntable;

static void fail(const char *what, const char *path)
{
    fprintf(stderr, "fuzz/router: %s (path \"%s\")\n", what, path);
    for (int i = 0; i < ntable; i++)
        fprintf(stderr, "  route %d: %s %s\n", i, table[i].method, table[i].pattern);
    abort();
}

/* The segments of a path as router.h describes them: "/" has none, one
 * trailing slash is ignored, any other empty segment means no route can
 * match. Returns the count, or -1. */
static int split(const char *path, const char **seg, size_t *len)
{
    int n = 0;
    if (path[0] != '/')
        return -1;
    const char *p = path + 1;
    if (!*p)
        return 0;
    for (;;) {
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == 0)
            return -1;
        if (n == ROUTER_MAX_SEGMENTS)
            return -1;
        seg[n] = p;
        len[n++] = l;
        if (!e || !e[1])
            return n;
        p = e + 1;
    }
}

static void ref_add(const char *method, const char *pattern)
{
    struct ref_route *r = &table[ntable++];
    const char *seg[ROUTER_MAX_SEGMENTS];
    r->method = method;
    r->pattern = strdup(pattern);
    r->copy = strdup(pattern);
    r->nseg = split(r->copy, seg, r->len);
    r->rank = 0;
    for (int i = 0; i < r->nseg; i++) {
        r->seg[i] = (char *)seg[i];
        if (seg[i][0] != ':')
            r->rank |= 1u << (ROUTER_MAX_SEGMENTS - 1 - i);
    }
}

static bool ref_shape(const struct ref_route *r, int n, const char **seg, const size_t *len)
{
    if (r->nseg != n)
        return false;
    for (int i = 0; i < n; i++)
        if (r->seg[i][0] != ':' &&
            (r->len[i] != len[i] || memcmp(r->seg[i], seg[i], len[i])))
            return false;
    return true;
}

static void check(const struct router *rt, const char *method, const char *path)
{
    struct router_match m;
    const char *seg[ROUTER_MAX_SEGMENTS];
    size_t len[ROUTER_MAX_SEGMENTS];
    enum router_result res = router_match(rt, method, path, &m);
    int n = split(path, seg, len), best = -1, best_get = -1;
    bool any = false;

    for (int i = 0; n >= 0 && i < ntable; i++) {
        if (!ref_shape(&table[i], n, seg, len))
            continue;
        any = true;
        if (strcmp(table[i].method, method) == 0) {
            if (best < 0 || table[i].rank > table[best].rank)
                best = i;
        } else if (strcmp(table[i].method, "GET") == 0 && strcmp(method, "HEAD") == 0) {
            if (best_get < 0 || table[i].rank > table[best_get].rank)
                best_get = i;
        }
    }
    if (best < 0)
        best = best_get;

    if (!any) {
        if (res != ROUTER_NOT_FOUND)
            fail("a path of no route's shape was not 404", path);
        return;
    }
    if (best < 0) {
        if (res != ROUTER_METHOD_NOT_ALLOWED)
            fail("expected 405", path);
        for (int i = 0; i < ntable; i++)
            if (ref_shape(&table[i], n, seg, len) && !strstr(m.allow, table[i].method))
                fail("405 Allow misses a method", path);
        return;
    }
    if (res != ROUTER_MATCH || m.route_id != best)
        fail("matched the wrong route", path);
    int np = 0;
    for (int i = 0; i < n; i++) {
        if (table[best].seg[i][0] != ':')
            continue;
        const struct router_param *p = &m.params[np++];
        if (np > m.nparams || strlen(p->name) != table[best].len[i] - 1 ||
            memcmp(p->name, table[best].seg[i] + 1, table[best].len[i] - 1) ||
            p->value != seg[i] || p->value_len != len[i] || p->value_len == 0 ||
            memchr(p->value, '/', p->value_len))
            fail("wrong parameter", path);
    }
    if (np != m.nparams)
        fail("wrong parameter count", path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct router *rt = router_new();
    struct rt_err err;
    char *in = malloc(size + 1);

    if (!rt || !in)
        abort();
    memcpy(in, data, size);
    in[size] = '\0';
    ntable = 0;
    for (size_t i = 0; i < NFIXED; i++) {
        if (router_add(rt, fixed[i].method, fixed[i].pattern, ntable, "fixed", &err) < 0)
            fail(err.msg, fixed[i].pattern);
        ref_add(fixed[i].method, fixed[i].pattern);
    }

    /* Every line but the last: a route. */
    char *line = in, *nl;
    while ((nl = strchr(line, '\n')) != NULL) {
        *nl = '\0';
        if (*line && ntable < (int)(NFIXED + MAX_FUZZ)) {
            const char *method = methods[(unsigned char)line[0] % NMETHODS];
            const char *pattern = line + 1;
            struct rt_err err2;
            int ok = router_pattern_check(pattern, &err2) == 0;
            if (router_add(rt, method, pattern, ntable, "fuzz", &err) == 0) {
                if (!ok)
                    fail("router_add took a pattern router_pattern_check refuses", pattern);
                ref_add(method, pattern);
            } else if (ok && !strstr(err.msg, "duplicate route")) {
                fail("router_add refused a pattern router_pattern_check takes", pattern);
            }
        }
        line = nl + 1;
    }
    if ((size_t)ntable != router_count(rt))
        fail("route count", "");

    /* The last line: a raw path, decoded as libmicrohttpd does; its first
     * byte picks the method. http.c copies the decoded path with strdup, so
     * a %00 ends it there. */
    const char *method = methods[(unsigned char)line[0] % NMETHODS];
    char *path = line[0] ? line + 1 : line;
    size_t raw = strlen(path);
    size_t dec = MHD_http_unescape(path);
    if (dec > raw || strlen(path) > dec)
        fail("decoding grew the path", path);
    check(rt, method, path);
    for (int i = NFIXED; i < ntable; i++)
        check(rt, table[i].method, table[i].pattern);

    for (int i = 0; i < ntable; i++) {
        free(table[i].pattern);
        free(table[i].copy);
    }
    router_free(rt);
    free(in);
    return 0;
}
