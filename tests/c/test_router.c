/* Unit tests for router.c: patterns, params, precedence, 404/405, duplicates,
 * trailing slashes, HEAD, limits, and paths the router does not decode. */
#include "router.h"

#include "check.h"

static struct router *r;

static void add(const char *method, const char *pattern, int id)
{
    struct rt_err err;
    int rc = router_add(r, method, pattern, id, "test.lua", &err);
    if (rc != 0)
        fprintf(stderr, "router_add %s %s: %s\n", method, pattern, err.msg);
    CHECK(rc == 0);
}

static const char *param(const struct router_match *m, const char *name)
{
    static char out[128];
    for (int i = 0; i < m->nparams; i++)
        if (strcmp(m->params[i].name, name) == 0) {
            snprintf(out, sizeof out, "%.*s", (int)m->params[i].value_len,
                     m->params[i].value);
            return out;
        }
    return NULL;
}

static void test_match(void)
{
    struct router_match m;

    CHECK(router_match(r, "GET", "/api/v1/users", &m) == ROUTER_MATCH && m.route_id == 1);
    CHECK(router_match(r, "GET", "/api/v1/users/", &m) == ROUTER_MATCH && m.route_id == 1);
    CHECK(router_match(r, "GET", "/api/v1/users/42", &m) == ROUTER_MATCH &&
          m.route_id == 2);
    CHECK_STR(param(&m, "id"), "42");
    CHECK(router_match(r, "GET", "/api/v1/users/42/roles/7", &m) == ROUTER_MATCH &&
          m.route_id == 5);
    CHECK_STR(param(&m, "id"), "42");
    CHECK_STR(param(&m, "role_id"), "7");
    /* A literal segment beats a parameter in the same place. */
    CHECK(router_match(r, "GET", "/api/v1/users/me", &m) == ROUTER_MATCH &&
          m.route_id == 4);
    CHECK(m.nparams == 0);
    CHECK(router_match(r, "GET", "/", &m) == ROUTER_MATCH && m.route_id == 6);
    /* HEAD falls back to GET. */
    CHECK(router_match(r, "HEAD", "/api/v1/users/9", &m) == ROUTER_MATCH &&
          m.route_id == 2);
}

static void test_not_found_and_405(void)
{
    struct router_match m;

    CHECK(router_match(r, "GET", "/api/v1/nothing", &m) == ROUTER_NOT_FOUND);
    CHECK(router_match(r, "GET", "/api/v1//users", &m) == ROUTER_NOT_FOUND);
    CHECK(router_match(r, "GET", "/api/v1/users/1/2", &m) == ROUTER_NOT_FOUND);
    CHECK(router_match(r, "GET", "relative", &m) == ROUTER_NOT_FOUND);
    CHECK(router_match(r, "DELETE", "/api/v1/users", &m) == ROUTER_METHOD_NOT_ALLOWED);
    CHECK_STR(m.allow, "GET, HEAD, POST");
    CHECK(router_match(r, "PUT", "/api/v1/users/me", &m) == ROUTER_METHOD_NOT_ALLOWED);
    CHECK_STR(m.allow, "GET, HEAD, DELETE");
}

static void test_bad_and_duplicate(void)
{
    struct rt_err err;

    CHECK(router_add(r, "GET", "/api/v1/users/:key", 9, "other.lua", &err) != 0);
    CHECK(strstr(err.msg, "test.lua") && strstr(err.msg, "other.lua"));
    CHECK(router_add(r, "FETCH", "/x", 9, "x.lua", &err) != 0);
    CHECK(router_add(r, "GET", "x", 9, "x.lua", &err) != 0);
    CHECK(router_add(r, "GET", "/a//b", 9, "x.lua", &err) != 0);
    CHECK(router_add(r, "GET", "/a/:", 9, "x.lua", &err) != 0);
    CHECK(router_add(r, "GET", "/a/:1x", 9, "x.lua", &err) != 0);
    CHECK(router_add(r, "GET", "/a/:id/b/:id", 9, "x.lua", &err) != 0);
    CHECK(strstr(err.msg, "repeats"));
    CHECK(router_pattern_check("/ok/:fine_1", &err) == 0);
    CHECK(router_count(r) == 7);
}

/* A router of its own for each case below, so their routes do not mix. */
static struct router *router_of(const char *const *routes, size_t n)
{
    struct router *rr = router_new();
    struct rt_err err;
    CHECK(rr != NULL);
    for (size_t i = 0; rr && i < n; i += 2) {
        int rc = router_add(rr, routes[i], routes[i + 1], (int)(i / 2) + 1, "t.lua", &err);
        if (rc != 0)
            fprintf(stderr, "router_add %s %s: %s\n", routes[i], routes[i + 1], err.msg);
        CHECK(rc == 0);
    }
    return rr;
}

/* The earliest literal segment decides between two parameter routes, in
 * whichever order they were added. */
static void test_most_specific(void)
{
    static const char *const a[] = {"GET", "/a/:x/c", "GET", "/a/b/:y", "GET", "/a/:x/:y"};
    static const char *const b[] = {"GET", "/a/:x/:y", "GET", "/a/b/:y", "GET", "/a/:x/c"};
    struct router_match m;
    struct router *ra = router_of(a, 6), *rb = router_of(b, 6);

    CHECK(router_match(ra, "GET", "/a/b/c", &m) == ROUTER_MATCH && m.route_id == 2);
    CHECK_STR(param(&m, "y"), "c");
    CHECK(router_match(rb, "GET", "/a/b/c", &m) == ROUTER_MATCH && m.route_id == 2);
    CHECK(router_match(ra, "GET", "/a/z/c", &m) == ROUTER_MATCH && m.route_id == 1);
    CHECK_STR(param(&m, "x"), "z");
    CHECK(router_match(rb, "GET", "/a/z/c", &m) == ROUTER_MATCH && m.route_id == 3);
    CHECK(router_match(ra, "GET", "/a/z/q", &m) == ROUTER_MATCH && m.route_id == 3);
    CHECK(m.nparams == 2);
    CHECK_STR(param(&m, "x"), "z");
    CHECK_STR(param(&m, "y"), "q");
    /* Segment counts must agree: no prefix matches, no optional segments. */
    CHECK(router_match(ra, "GET", "/a/b", &m) == ROUTER_NOT_FOUND);
    CHECK(router_match(ra, "GET", "/a/b/c/d", &m) == ROUTER_NOT_FOUND);
    router_free(ra);
    router_free(rb);
}

/* One trailing slash is ignored; anything more is a different path. */
static void test_trailing_slash(void)
{
    static const char *const routes[] = {"GET", "/", "GET", "/x/:id"};
    struct router_match m;
    struct router *rr = router_of(routes, 4);

    CHECK(router_match(rr, "GET", "/x/5/", &m) == ROUTER_MATCH && m.route_id == 2);
    CHECK_STR(param(&m, "id"), "5"); /* the slash is not part of the value */
    CHECK(router_match(rr, "GET", "/x/5//", &m) == ROUTER_NOT_FOUND);
    CHECK(router_match(rr, "GET", "/x//", &m) == ROUTER_NOT_FOUND);
    CHECK(router_match(rr, "GET", "/x/", &m) == ROUTER_NOT_FOUND); /* no empty :id */
    CHECK(router_match(rr, "GET", "//", &m) == ROUTER_NOT_FOUND);
    CHECK(router_match(rr, "GET", "/", &m) == ROUTER_MATCH && m.route_id == 1);
    CHECK(router_match(rr, "GET", "", &m) == ROUTER_NOT_FOUND);
    CHECK(router_match(rr, "GET", NULL, &m) == ROUTER_NOT_FOUND);
    router_free(rr);
}

/* Methods match exactly; HEAD falls back to GET only, and an explicit HEAD
 * route wins; 405 lists what the path takes. */
static void test_methods(void)
{
    static const char *const routes[] = {"POST", "/p",  "GET",    "/g",  "HEAD",
                                         "/g",   "PUT", "/g/:id", "GET", "/g/:id"};
    struct router_match m;
    struct router *rr = router_of(routes, 10);

    CHECK(router_match(rr, "HEAD", "/p", &m) == ROUTER_METHOD_NOT_ALLOWED);
    CHECK_STR(m.allow, "POST");
    CHECK(m.route_id == -1);
    CHECK(router_match(rr, "HEAD", "/g", &m) == ROUTER_MATCH && m.route_id == 3);
    CHECK(router_match(rr, "GET", "/g", &m) == ROUTER_MATCH && m.route_id == 2);
    CHECK(router_match(rr, "HEAD", "/g/1", &m) == ROUTER_MATCH && m.route_id == 5);
    CHECK(router_match(rr, "get", "/g", &m) == ROUTER_METHOD_NOT_ALLOWED);
    CHECK(router_match(rr, "DELETE", "/g", &m) == ROUTER_METHOD_NOT_ALLOWED);
    CHECK_STR(m.allow, "GET, HEAD");
    CHECK(router_match(rr, "DELETE", "/g/1", &m) == ROUTER_METHOD_NOT_ALLOWED);
    CHECK_STR(m.allow, "PUT, GET, HEAD");
    router_free(rr);
}

/* The router matches the path as given: decoding percent-escapes and
 * cutting the query string are the caller's work. */
static void test_not_decoded(void)
{
    static const char *const routes[] = {"GET", "/files/:name", "GET", "/users"};
    struct router_match m;
    struct router *rr = router_of(routes, 4);

    CHECK(router_match(rr, "GET", "/files/a%2Fb", &m) == ROUTER_MATCH);
    CHECK_STR(param(&m, "name"), "a%2Fb");
    CHECK(router_match(rr, "GET", "/files/v1.2:3 x", &m) == ROUTER_MATCH);
    CHECK_STR(param(&m, "name"), "v1.2:3 x");
    CHECK(router_match(rr, "GET", "/user%73", &m) == ROUTER_NOT_FOUND);
    CHECK(router_match(rr, "GET", "/users?x=1", &m) == ROUTER_NOT_FOUND);
    CHECK(router_match(rr, "GET", "/USERS", &m) == ROUTER_NOT_FOUND);
    router_free(rr);
}

/* At most ROUTER_MAX_SEGMENTS segments and ROUTER_MAX_PARAMS parameters. */
static void test_limits(void)
{
    char pattern[512] = "", path[512] = "";
    struct rt_err err;
    struct router_match m;
    struct router *rr = router_new();

    for (int i = 0; i < ROUTER_MAX_SEGMENTS; i++) {
        strcat(pattern, "/s");
        strcat(path, "/s");
    }
    CHECK(router_add(rr, "GET", pattern, 1, "t.lua", &err) == 0);
    CHECK(router_match(rr, "GET", path, &m) == ROUTER_MATCH && m.route_id == 1);
    strcat(pattern, "/s");
    strcat(path, "/s");
    CHECK(router_add(rr, "GET", pattern, 2, "t.lua", &err) != 0);
    CHECK(strstr(err.msg, "segments") != NULL);
    CHECK(router_match(rr, "GET", path, &m) == ROUTER_NOT_FOUND);

    pattern[0] = '\0';
    for (int i = 0; i <= ROUTER_MAX_PARAMS; i++)
        snprintf(pattern + strlen(pattern), sizeof pattern - strlen(pattern), "/:p%d", i);
    CHECK(router_add(rr, "GET", pattern, 3, "t.lua", &err) != 0);
    CHECK(strstr(err.msg, "parameters") != NULL);
    CHECK(router_count(rr) == 1);
    router_free(rr);
}

int main(void)
{
    r = router_new();
    add("GET", "/api/v1/users", 1);
    add("POST", "/api/v1/users", 3);
    add("GET", "/api/v1/users/:id", 2);
    add("DELETE", "/api/v1/users/:id", 7);
    add("GET", "/api/v1/users/me", 4);
    add("GET", "/api/v1/users/:id/roles/:role_id", 5);
    add("GET", "/", 6);
    test_match();
    test_not_found_and_405();
    test_bad_and_duplicate();
    router_free(r);
    test_most_specific();
    test_trailing_slash();
    test_methods();
    test_not_decoded();
    test_limits();
    return check_done();
}
