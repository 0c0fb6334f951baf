/* router: method + path to route id, with :params. Pure: no I/O, no Lua.
 *
 * Patterns are absolute paths whose segments are literals or `:name`
 * parameters ("/api/v1/users/:id"). A literal segment beats a parameter at
 * the same position, so "/tenants/code" wins over "/tenants/:id". One trailing
 * slash on a request path is ignored. HEAD is served by a GET route when no
 * HEAD route exists. The router is built once and then only read, so it can
 * be shared by every worker thread without locks.
 *
 * Uses: err.c. */
#ifndef RT_ROUTER_H
#define RT_ROUTER_H

#include <stddef.h>

#include "err.h"

#define ROUTER_MAX_PARAMS   16
#define ROUTER_MAX_SEGMENTS 32

struct router;

enum router_result {
    ROUTER_MATCH,
    ROUTER_NOT_FOUND,
    ROUTER_METHOD_NOT_ALLOWED,
};

struct router_param {
    const char *name;  /* borrowed from the router */
    const char *value; /* borrowed from the matched path, not NUL-terminated */
    size_t value_len;
};

struct router_match {
    int route_id;
    int nparams;
    struct router_param params[ROUTER_MAX_PARAMS];
    char allow[96]; /* for 405: "GET, HEAD, POST" */
};

struct router *router_new(void);
void router_free(struct router *r);

/* Checks a pattern's shape; fills err and returns -1 if it is invalid. */
int router_pattern_check(const char *pattern, struct rt_err *err);

/* Adds a route. method is upper case (GET, POST, PUT, PATCH, DELETE, HEAD,
 * OPTIONS). source names the file that declared it; both strings are copied.
 * Fails (-1, err filled) on a bad method or pattern, or when the same method
 * and pattern shape was already added: the message names both sources. */
int router_add(struct router *r, const char *method, const char *pattern, int route_id,
               const char *source, struct rt_err *err) __attribute__((warn_unused_result));

/* Matches path (no query string). On ROUTER_MATCH, m->params point into path,
 * which must outlive their use. On ROUTER_METHOD_NOT_ALLOWED, m->allow lists
 * the methods the path accepts. */
enum router_result router_match(const struct router *r, const char *method,
                                const char *path, struct router_match *m);

/* Number of routes added. */
size_t router_count(const struct router *r);

#endif
