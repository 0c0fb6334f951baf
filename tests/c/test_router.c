/* Unit tests for router.c: patterns, params, precedence, 404/405, duplicates. */
#include "router.h"

#include "check.h"

static struct router *r;

static void add(const char *method, const char *pattern, int id)
{
    struct router_error err;
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
    struct router_error err;

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
    return check_done();
}
