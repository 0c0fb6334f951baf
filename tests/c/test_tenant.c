/* Unit tests for tenant.c's directory snapshot and request resolution,
 * without a database: the rows of TENANT_SNAPSHOT_SQL are built in memory
 * with libpq's PQmakeEmptyPGresult / PQsetResultAttrs / PQsetvalue, which
 * need no connection. */
#include "tenant.h"

#include <stdlib.h>

#include "check.h"

enum { COLS = 11 };

/* One row of TENANT_SNAPSHOT_SQL; NULL domain/subdomain/name/settings are
 * SQL NULLs. */
struct row {
    const char *id, *code, *isolation, *server, *schema_name, *database_name, *name,
        *domain, *subdomain, *settings, *status;
};

static PGresult *rows_new(const struct row *rows, int n)
{
    static const char *const names[COLS] = {
        "id",   "code",   "isolation", "server",   "schema_name", "database_name",
        "name", "domain", "subdomain", "settings", "status"};
    PGresAttDesc attrs[COLS];
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);

    if (!res)
        return NULL;
    for (int c = 0; c < COLS; c++) {
        attrs[c] = (PGresAttDesc){
            .name = (char *)names[c], .typid = 25, .typlen = -1, .atttypmod = -1};
    }
    if (!PQsetResultAttrs(res, COLS, attrs)) {
        PQclear(res);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        const char *v[COLS] = {rows[i].id,       rows[i].code,        rows[i].isolation,
                               rows[i].server,   rows[i].schema_name, rows[i].database_name,
                               rows[i].name,     rows[i].domain,      rows[i].subdomain,
                               rows[i].settings, rows[i].status};
        for (int c = 0; c < COLS; c++) {
            if (!PQsetvalue(res, i, c, (char *)v[c], v[c] ? (int)strlen(v[c]) : -1)) {
                PQclear(res);
                return NULL;
            }
        }
    }
    return res;
}

static const struct row ROWS[] = {
    {"1", "acme", "schema", "main", "t_acme", "", "Acme", "shop.acme.test", "acme", "{}",
     "active"},
    {"2", "globex", "shared", "main", "", "", "Globex", NULL, "globex", "{\"a\":1}",
     "active"},
    {"3", "initech", "database", "eu", "", "t_initech", NULL, NULL, NULL, NULL, "active"},
    {"4", "hooli", "schema", "main", "t_hooli", "", "Hooli", "hooli.test", "hooli", "{}",
     "suspended"},
    {"5", "newco", "schema", "main", "t_newco", "", "NewCo", NULL, "newco", "{}",
     "provisioning"},
    {"6", "oldco", "schema", "main", "t_oldco", "", "OldCo", NULL, NULL, "{}", "deleted"},
    {"7", "brokenco", "schema", "main", "t_brokenco", "", "Broken", NULL, NULL, "{}",
     "failed"},
};
#define NROWS ((int)(sizeof ROWS / sizeof ROWS[0]))

static struct tenant_snapshot *snap;
static struct tenant_sources all_sources;

static void test_snapshot(void)
{
    const struct tenant_info *t;

    CHECK(tenant_snapshot_count(snap) == (size_t)NROWS);

    t = tenant_by_code(snap, "acme");
    CHECK(t != NULL && t->id == 1);
    if (t) {
        CHECK_STR(t->schema, "t_acme");
        CHECK_STR(t->dbname, "");
        CHECK_STR(t->name, "Acme");
        CHECK_STR(t->domain, "shop.acme.test");
        CHECK(t->status == TENANT_ACTIVE);
    }
    /* Shared tenants live in the shared schema, database tenants in their
     * database's public schema; NULL columns stay NULL. */
    t = tenant_by_id(snap, 2);
    CHECK(t != NULL && t->schema[0] && strcmp(t->schema, "shared") == 0);
    CHECK(t != NULL && t->domain == NULL);
    t = tenant_by_code(snap, "initech");
    CHECK(t != NULL);
    if (t) {
        CHECK_STR(t->schema, "public");
        CHECK_STR(t->dbname, "t_initech");
        CHECK_STR(t->server, "eu");
        CHECK(t->name == NULL && t->subdomain == NULL && t->settings == NULL);
    }
    CHECK(tenant_by_domain(snap, "hooli.test") == tenant_by_id(snap, 4));
    CHECK(tenant_by_subdomain(snap, "globex") == tenant_by_id(snap, 2));
    CHECK(tenant_by_id(snap, 4)->status == TENANT_SUSPENDED);
    CHECK(tenant_by_id(snap, 5)->status == TENANT_PROVISIONING);
    CHECK(tenant_by_id(snap, 6)->status == TENANT_DELETED);
    CHECK(tenant_by_id(snap, 7)->status == TENANT_FAILED);

    CHECK(tenant_by_code(snap, "nobody") == NULL);
    CHECK(tenant_by_code(snap, NULL) == NULL);
    CHECK(tenant_by_id(snap, 99) == NULL);
    CHECK(tenant_by_domain(snap, "acme") == NULL); /* a subdomain is not a domain */
    CHECK(tenant_by_subdomain(snap, "initech") == NULL);
}

static void test_empty_snapshot(void)
{
    struct tenant_snapshot *empty = tenant_snapshot_build(NULL);
    struct tenant_request req = {.header = "acme"};
    const struct tenant_info *t;
    const char *why;

    CHECK(empty != NULL);
    CHECK(tenant_snapshot_count(empty) == 0);
    CHECK(tenant_by_code(empty, "acme") == NULL);
    CHECK(tenant_by_id(empty, 1) == NULL);
    CHECK(tenant_resolve(empty, &all_sources, &req, &t, &why) == TENANT_UNKNOWN);
    tenant_snapshot_release(empty);
    /* NULL snapshots are empty too. */
    CHECK(tenant_snapshot_count(NULL) == 0);
    CHECK(tenant_by_code(NULL, "acme") == NULL);
}

/* A directory large enough that the hash indexes have collisions. */
static void test_many(void)
{
    enum { N = 2000 };
    struct row *rows = calloc(N, sizeof *rows);
    char(*text)[3][16] = calloc(N, sizeof *text); /* id, code, subdomain */
    struct tenant_snapshot *big = NULL;
    int found = 0;

    CHECK(rows && text);
    for (int i = 0; rows && text && i < N; i++) {
        snprintf(text[i][0], sizeof text[i][0], "%d", 1000 + i * 7);
        snprintf(text[i][1], sizeof text[i][1], "t%d", i);
        snprintf(text[i][2], sizeof text[i][2], "s%d", i);
        rows[i] = (struct row){text[i][0], text[i][1], "schema",   "main", text[i][1], "",
                               NULL,       NULL,       text[i][2], "{}",   "active"};
    }
    if (rows && text) {
        PGresult *res = rows_new(rows, N);
        CHECK(res != NULL);
        big = res ? tenant_snapshot_build(res) : NULL;
        PQclear(res);
    }
    CHECK(big != NULL && tenant_snapshot_count(big) == N);
    for (int i = 0; big && i < N; i++) {
        const struct tenant_info *t = tenant_by_code(big, text[i][1]);
        found += t != NULL && t == tenant_by_id(big, 1000 + i * 7) &&
                 t == tenant_by_subdomain(big, text[i][2]) &&
                 strcmp(t->code, text[i][1]) == 0;
    }
    CHECK(found == N);
    CHECK(big == NULL || tenant_by_id(big, 1001) == NULL);
    tenant_snapshot_release(big);
    free(rows);
    free(text);
}

static void test_sources_parse(void)
{
    struct tenant_sources s = {.base_domain = "example.com"};

    CHECK(tenant_sources_parse("header, subdomain", &s) == 0);
    CHECK(s.header && s.subdomain && !s.path && !s.domain && !s.token);
    CHECK_STR(s.base_domain, "example.com"); /* kept */
    CHECK(tenant_sources_parse("path,header,subdomain,domain,token", &s) == 0);
    CHECK(s.path && s.header && s.subdomain && s.domain && s.token);
    CHECK(tenant_sources_parse("", &s) == 0);
    CHECK(!s.path && !s.header && !s.subdomain && !s.domain && !s.token);
    CHECK(tenant_sources_parse("header,cookie", &s) == -1);
    CHECK(tenant_sources_parse("headers", &s) == -1);
}

/* Resolves and returns the outcome; *code gets the tenant's code or "". */
static enum tenant_outcome resolve(const struct tenant_sources *src, const char *path_param,
                                   const char *header, const char *host, const char **code,
                                   const char **why)
{
    struct tenant_request req = {.path_param = path_param, .header = header, .host = host};
    static const struct tenant_info sentinel;
    const struct tenant_info *t = &sentinel; /* tenant_resolve must overwrite it */
    enum tenant_outcome o = tenant_resolve(snap, src, &req, &t, why);
    CHECK((o == TENANT_RESOLVED) == (t != NULL));
    *code = t ? t->code : "";
    return o;
}

static void test_resolve_ident(void)
{
    const char *code, *why;

    CHECK(resolve(&all_sources, NULL, "acme", NULL, &code, &why) == TENANT_RESOLVED);
    CHECK_STR(code, "acme");
    CHECK(why == NULL);
    CHECK(resolve(&all_sources, NULL, "2", NULL, &code, &why) == TENANT_RESOLVED);
    CHECK_STR(code, "globex");
    CHECK(resolve(&all_sources, "3", NULL, NULL, &code, &why) == TENANT_RESOLVED);
    CHECK_STR(code, "initech");
    /* Ids are digits without a sign or a leading zero, at most 18 of them;
     * codes follow tenant_code_valid. Anything else is refused before any
     * lookup. */
    static const char *const bad[] = {"0", "01",      "-1", "1.0", "Acme",
                                      "a", "acme-co", "",   " 1",  "1234567890123456789"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(resolve(&all_sources, NULL, bad[i], NULL, &code, &why) == TENANT_INVALID);
        CHECK_STR(why, "invalid X-Tenant-Id (a tenant id or code)");
    }
    CHECK(resolve(&all_sources, "x y", NULL, NULL, &code, &why) == TENANT_INVALID);
    CHECK_STR(why, "invalid tenant identifier in the path");
    CHECK(resolve(&all_sources, NULL, "nobody", NULL, &code, &why) == TENANT_UNKNOWN);
    CHECK_STR(why, "unknown tenant");
    CHECK(resolve(&all_sources, NULL, "99", NULL, &code, &why) == TENANT_UNKNOWN);
    CHECK(resolve(&all_sources, NULL, NULL, NULL, &code, &why) == TENANT_NONE);
    CHECK(why == NULL);
}

static void test_resolve_sources_agree(void)
{
    const char *code, *why;
    struct tenant_sources header_only = {.header = true, .base_domain = "example.com"};

    CHECK(resolve(&all_sources, "1", "acme", "acme.example.com", &code, &why) ==
          TENANT_RESOLVED);
    CHECK_STR(code, "acme");
    CHECK(resolve(&all_sources, "1", "globex", NULL, &code, &why) == TENANT_CONFLICT);
    CHECK_STR(why, "the request names two different tenants");
    CHECK(resolve(&all_sources, NULL, "acme", "globex.example.com", &code, &why) ==
          TENANT_CONFLICT);
    CHECK(resolve(&all_sources, NULL, "acme", "hooli.test", &code, &why) ==
          TENANT_CONFLICT);
    /* A source that is switched off is not read at all. */
    CHECK(resolve(&header_only, "2", "acme", "globex.example.com", &code, &why) ==
          TENANT_RESOLVED);
    CHECK_STR(code, "acme");
    CHECK(resolve(&header_only, "2", NULL, "globex.example.com", &code, &why) ==
          TENANT_NONE);
    /* An unknown name in any source is 404 even when another one resolves. */
    CHECK(resolve(&all_sources, NULL, "acme", "nobody.example.com", &code, &why) ==
          TENANT_UNKNOWN);
}

static void test_resolve_host(void)
{
    const char *code, *why;
    struct tenant_sources domain_only = {.domain = true, .base_domain = "example.com"};
    struct tenant_sources no_base = {.subdomain = true, .domain = true};

    CHECK(resolve(&all_sources, NULL, NULL, "acme.example.com", &code, &why) ==
          TENANT_RESOLVED);
    CHECK_STR(code, "acme");
    /* The port is cut off and the host compared in lower case. */
    CHECK(resolve(&all_sources, NULL, NULL, "GLOBEX.Example.COM:8080", &code, &why) ==
          TENANT_RESOLVED);
    CHECK_STR(code, "globex");
    CHECK(resolve(&all_sources, NULL, NULL, "shop.acme.test", &code, &why) ==
          TENANT_RESOLVED);
    CHECK_STR(code, "acme");
    CHECK(resolve(&all_sources, NULL, NULL, "a.b.example.com", &code, &why) ==
          TENANT_INVALID);
    CHECK_STR(why, "invalid subdomain");
    CHECK(resolve(&all_sources, NULL, NULL, "nobody.example.com", &code, &why) ==
          TENANT_UNKNOWN);
    /* The platform's own names, and hosts that are no tenant's domain, name
     * no tenant. */
    static const char *const none[] = {"example.com",
                                       "example.com:443",
                                       "localhost:8080",
                                       "127.0.0.1",
                                       "[::1]:8080",
                                       "api.other.test",
                                       "",
                                       "example.com."};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        enum tenant_outcome o = resolve(&all_sources, NULL, NULL, none[i], &code, &why);
        if (i == sizeof none / sizeof none[0] - 1)
            CHECK(o == TENANT_INVALID); /* a trailing dot is not a valid host */
        else
            CHECK(o == TENANT_NONE);
    }
    CHECK(resolve(&all_sources, NULL, NULL, "bad_host!", &code, &why) == TENANT_INVALID);
    CHECK_STR(why, "invalid Host");
    char long_host[300];
    memset(long_host, 'a', sizeof long_host - 1);
    long_host[sizeof long_host - 1] = '\0';
    CHECK(resolve(&all_sources, NULL, NULL, long_host, &code, &why) == TENANT_INVALID);
    /* Without subdomains a tenant's subdomain is just another host. */
    CHECK(resolve(&domain_only, NULL, NULL, "acme.example.com", &code, &why) ==
          TENANT_NONE);
    CHECK(resolve(&domain_only, NULL, NULL, "hooli.test", &code, &why) == TENANT_FORBIDDEN);
    CHECK(resolve(&no_base, NULL, NULL, "acme.example.com", &code, &why) == TENANT_NONE);
    CHECK(resolve(&no_base, NULL, NULL, "shop.acme.test", &code, &why) == TENANT_RESOLVED);
}

static void test_resolve_status(void)
{
    const char *code, *why;

    CHECK(resolve(&all_sources, NULL, "hooli", NULL, &code, &why) == TENANT_FORBIDDEN);
    CHECK_STR(why, "this tenant is suspended");
    CHECK(resolve(&all_sources, NULL, NULL, "hooli.example.com", &code, &why) ==
          TENANT_FORBIDDEN);
    /* Tenants being made, deleted or failed look like unknown ones. */
    static const char *const hidden[] = {"newco", "oldco", "brokenco", "5", "6", "7"};
    for (size_t i = 0; i < sizeof hidden / sizeof hidden[0]; i++) {
        CHECK(resolve(&all_sources, NULL, hidden[i], NULL, &code, &why) == TENANT_UNKNOWN);
        CHECK_STR(why, "unknown tenant");
    }
    CHECK(resolve(&all_sources, NULL, NULL, "newco.example.com", &code, &why) ==
          TENANT_UNKNOWN);
}

int main(void)
{
    PGresult *res = rows_new(ROWS, NROWS);

    CHECK(res != NULL);
    snap = res ? tenant_snapshot_build(res) : NULL;
    PQclear(res); /* the snapshot copies what it keeps */
    CHECK(snap != NULL);
    if (!snap)
        return check_done();
    all_sources.base_domain = "example.com";
    CHECK(tenant_sources_parse("path,header,subdomain,domain,token", &all_sources) == 0);

    test_snapshot();
    test_empty_snapshot();
    test_many();
    test_sources_parse();
    test_resolve_ident();
    test_resolve_sources_agree();
    test_resolve_host();
    test_resolve_status();

    /* A retained snapshot outlives the first release. */
    tenant_snapshot_retain(snap);
    tenant_snapshot_release(snap);
    CHECK(tenant_by_code(snap, "acme") != NULL);
    tenant_snapshot_release(snap);
    return check_done();
}
