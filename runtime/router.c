/* router: route table and matching (see router.h). */
#include "router.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct segment {
    char *text; /* literal text, or the parameter name without ':' */
    size_t len;
    bool param;
};

struct route {
    char *method;
    char *pattern;
    char *source;
    int id;
    int nseg;
    unsigned rank; /* literal segments, first segment in the top bit */
    struct segment seg[ROUTER_MAX_SEGMENTS];
};

struct router {
    struct route *routes;
    size_t n, cap;
};

static const char *const methods[] = {"GET",   "HEAD",   "POST",   "PUT",
                                      "PATCH", "DELETE", "OPTIONS"};
#define NMETHODS (sizeof methods / sizeof methods[0])

struct router *router_new(void)
{
    return calloc(1, sizeof(struct router));
}

static void route_clear(struct route *rt)
{
    for (int i = 0; i < rt->nseg; i++)
        free(rt->seg[i].text);
    free(rt->method);
    free(rt->pattern);
    free(rt->source);
}

void router_free(struct router *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        route_clear(&r->routes[i]);
    free(r->routes);
    free(r);
}

size_t router_count(const struct router *r)
{
    return r->n;
}

static bool method_known(const char *m)
{
    for (size_t i = 0; i < NMETHODS; i++)
        if (strcmp(m, methods[i]) == 0)
            return true;
    return false;
}

static bool name_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
}

/* Splits a pattern into segments. With out == NULL it only validates. */
static int pattern_split(const char *pattern, struct route *out, struct rt_err *err)
{
    const char *p = pattern;
    int n = 0;

    if (!pattern || pattern[0] != '/') {
        rt_err_set(err, "route pattern '%s' must start with '/'", pattern ? pattern : "");
        return -1;
    }
    if (strcmp(pattern, "/") == 0)
        return 0;
    while (*p == '/') {
        const char *s = ++p;
        while (*p && *p != '/')
            p++;
        size_t len = (size_t)(p - s);
        bool param = len > 0 && s[0] == ':';
        if (len == 0) {
            rt_err_set(err, "route pattern '%s' has an empty segment", pattern);
            return -1;
        }
        if (n == ROUTER_MAX_SEGMENTS) {
            rt_err_set(err, "route pattern '%s' has more than %d segments", pattern,
                       ROUTER_MAX_SEGMENTS);
            return -1;
        }
        if (param) {
            if (len < 2 || !name_char(s[1], true)) {
                rt_err_set(err,
                           "route pattern '%s': parameter names start with a letter "
                           "or '_'",
                           pattern);
                return -1;
            }
            for (size_t i = 2; i < len; i++)
                if (!name_char(s[i], false)) {
                    rt_err_set(err, "route pattern '%s': bad character in parameter name",
                               pattern);
                    return -1;
                }
        } else {
            for (size_t i = 0; i < len; i++)
                if (s[i] == ':' || s[i] == '?' || s[i] == '#' ||
                    (unsigned char)s[i] <= ' ') {
                    rt_err_set(err, "route pattern '%s': bad character in segment",
                               pattern);
                    return -1;
                }
        }
        if (out) {
            struct segment *sg = &out->seg[n];
            sg->param = param;
            sg->len = param ? len - 1 : len;
            sg->text = strndup(param ? s + 1 : s, sg->len);
            if (!sg->text) {
                rt_err_set(err, "out of memory");
                out->nseg = n;
                return -1;
            }
            if (!param)
                out->rank |= 1u << (ROUTER_MAX_SEGMENTS - 1 - n);
            out->nseg = n + 1;
        }
        n++;
    }
    if (*p) { /* cannot happen: the loop only stops at NUL */
        rt_err_set(err, "route pattern '%s' is malformed", pattern);
        return -1;
    }
    if (out) {
        int nparams = 0;
        for (int i = 0; i < n; i++) {
            if (!out->seg[i].param)
                continue;
            if (++nparams > ROUTER_MAX_PARAMS) {
                rt_err_set(err, "route pattern '%s' has more than %d parameters", pattern,
                           ROUTER_MAX_PARAMS);
                return -1;
            }
            for (int j = 0; j < i; j++)
                if (out->seg[j].param && strcmp(out->seg[j].text, out->seg[i].text) == 0) {
                    rt_err_set(err, "route pattern '%s' repeats parameter ':%s'", pattern,
                               out->seg[i].text);
                    return -1;
                }
        }
    }
    return n;
}

int router_pattern_check(const char *pattern, struct rt_err *err)
{
    struct route tmp;
    memset(&tmp, 0, sizeof tmp);
    int rc = pattern_split(pattern, &tmp, err);
    for (int i = 0; i < tmp.nseg; i++)
        free(tmp.seg[i].text);
    return rc < 0 ? -1 : 0;
}

/* Same shape: same length, literals equal, parameters in the same places. */
static bool same_shape(const struct route *a, const struct route *b)
{
    if (a->nseg != b->nseg || a->rank != b->rank)
        return false;
    for (int i = 0; i < a->nseg; i++)
        if (!a->seg[i].param && strcmp(a->seg[i].text, b->seg[i].text) != 0)
            return false;
    return true;
}

int router_add(struct router *r, const char *method, const char *pattern, int route_id,
               const char *source, struct rt_err *err)
{
    struct route rt;

    if (!method_known(method)) {
        rt_err_set(err,
                   "unknown HTTP method '%s' for route '%s' (expected GET, HEAD, "
                   "POST, PUT, PATCH, DELETE or OPTIONS)",
                   method, pattern);
        return -1;
    }
    memset(&rt, 0, sizeof rt);
    if (pattern_split(pattern, &rt, err) < 0) {
        route_clear(&rt);
        return -1;
    }
    for (size_t i = 0; i < r->n; i++) {
        const struct route *o = &r->routes[i];
        if (strcmp(o->method, method) == 0 && same_shape(o, &rt)) {
            rt_err_set(err, "duplicate route %s %s: declared in %s (as %s) and in %s",
                       method, pattern, o->source, o->pattern, source);
            route_clear(&rt);
            return -1;
        }
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        struct route *p = realloc(r->routes, cap * sizeof *p);
        if (!p) {
            rt_err_set(err, "out of memory");
            route_clear(&rt);
            return -1;
        }
        r->routes = p;
        r->cap = cap;
    }
    rt.method = strdup(method);
    rt.pattern = strdup(pattern);
    rt.source = strdup(source ? source : "?");
    rt.id = route_id;
    if (!rt.method || !rt.pattern || !rt.source) {
        rt_err_set(err, "out of memory");
        route_clear(&rt);
        return -1;
    }
    r->routes[r->n++] = rt;
    return 0;
}

struct span {
    const char *s;
    size_t len;
};

static bool shape_matches(const struct route *rt, const struct span *segs, int n)
{
    if (rt->nseg != n)
        return false;
    for (int i = 0; i < n; i++) {
        const struct segment *sg = &rt->seg[i];
        if (!sg->param &&
            (sg->len != segs[i].len || memcmp(sg->text, segs[i].s, sg->len) != 0))
            return false;
    }
    return true;
}

static void allow_add(char *allow, size_t cap, unsigned *seen, const char *m)
{
    for (size_t i = 0; i < NMETHODS; i++) {
        if (strcmp(methods[i], m) != 0 || (*seen & (1u << i)))
            continue;
        *seen |= 1u << i;
        size_t len = strlen(allow);
        snprintf(allow + len, cap - len, "%s%s", len ? ", " : "", m);
    }
}

enum router_result router_match(const struct router *r, const char *method,
                                const char *path, struct router_match *m)
{
    struct span segs[ROUTER_MAX_SEGMENTS];
    const struct route *best = NULL, *best_get = NULL;
    int n = 0;
    bool any = false;
    unsigned seen = 0;

    m->route_id = -1;
    m->nparams = 0;
    m->allow[0] = '\0';
    if (!path || path[0] != '/')
        return ROUTER_NOT_FOUND;
    for (const char *p = path; *p == '/';) {
        const char *s = ++p;
        while (*p && *p != '/')
            p++;
        size_t len = (size_t)(p - s);
        if (len == 0) {
            if (*p == '\0')
                break;               /* "/" itself or one trailing slash */
            return ROUTER_NOT_FOUND; /* "//" */
        }
        if (n == ROUTER_MAX_SEGMENTS)
            return ROUTER_NOT_FOUND;
        segs[n].s = s;
        segs[n].len = len;
        n++;
    }
    for (size_t i = 0; i < r->n; i++) {
        const struct route *rt = &r->routes[i];
        if (!shape_matches(rt, segs, n))
            continue;
        any = true;
        if (strcmp(rt->method, method) == 0) {
            if (!best || rt->rank > best->rank)
                best = rt;
        } else if (strcmp(rt->method, "GET") == 0 && strcmp(method, "HEAD") == 0) {
            if (!best_get || rt->rank > best_get->rank)
                best_get = rt;
        }
    }
    if (!best)
        best = best_get;
    if (!any)
        return ROUTER_NOT_FOUND;
    if (!best) {
        for (size_t i = 0; i < r->n; i++)
            if (shape_matches(&r->routes[i], segs, n)) {
                allow_add(m->allow, sizeof m->allow, &seen, r->routes[i].method);
                if (strcmp(r->routes[i].method, "GET") == 0)
                    allow_add(m->allow, sizeof m->allow, &seen, "HEAD");
            }
        return ROUTER_METHOD_NOT_ALLOWED;
    }
    m->route_id = best->id;
    for (int i = 0; i < n; i++) {
        if (!best->seg[i].param)
            continue;
        struct router_param *pp = &m->params[m->nparams++];
        pp->name = best->seg[i].text;
        pp->value = segs[i].s;
        pp->value_len = segs[i].len;
    }
    return ROUTER_MATCH;
}
