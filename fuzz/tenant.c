/* Fuzz target: tenant resolution (tenant_resolve and tenant_sources_parse
 * in tenant.c), the pure part of finding a request's tenant: the route's
 * :tenant_id, X-Tenant-Id and Host against a directory snapshot. The
 * snapshot is built from a PGresult made in memory (libpq can build one
 * without a server), so no database is involved.
 *
 * Input: a flags byte (which sources are on), then lines: path parameter,
 * X-Tenant-Id, Host, base domain, and optionally a sources list for
 * tenant_sources_parse. A missing line is an absent value.
 *
 * Checked: outcomes and their out/why contract; a resolved tenant is active
 * and is the one a path or header identifier names (by id or by code);
 * naming a tenant by its id instead of its code changes nothing; Host is
 * case-insensitive and its port is ignored. */
#include "tenant.h"

#include <libpq-fe.h>

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const rows[][11] = {
    /* id, code, isolation, server, schema, database, name, domain, subdomain,
     * settings, status */
    {"1", "acme", "shared", "main", "", "", "Acme", "acme.example.com", "acme", "{}",
     "active"},
    {"2", "globex", "schema", "main", "t_globex", "", "Globex", NULL, "globex", "{}",
     "active"},
    {"3", "initech", "database", "main", "", "t_initech", "Initech", "initech.io", NULL,
     "{}", "suspended"},
    {"4", "hooli", "shared", "main", "", "", "Hooli", NULL, "hooli", "{}", "provisioning"},
    {"5", "umbrella", "schema", "main", "t_umbrella", "", "Umbrella", "umbrella.test",
     "umb", "{}", "active"},
    {"123456789012345678", "big_id9", "shared", "main", "", "", "Big", "big.example.com",
     "big", "{\"a\":1}", "active"},
    {"7", "gone", "shared", "main", "", "", "Gone", "gone.example.com", "gone", "{}",
     "deleted"},
};
#define NROWS (sizeof rows / sizeof rows[0])

static const char *const bases[] = {"example.com", "", "rt.local", "localhost"};

static struct tenant_snapshot *snap;

static struct tenant_snapshot *build(void)
{
    PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    PGresAttDesc att[11];
    static const char *const names[] = {"id",        "code",     "isolation", "server",
                                        "schema",    "db",       "name",      "domain",
                                        "subdomain", "settings", "status"};
    if (!r)
        abort();
    memset(att, 0, sizeof att);
    for (int i = 0; i < 11; i++) {
        att[i].name = (char *)names[i];
        att[i].typid = 25; /* text */
        att[i].typlen = -1;
        att[i].atttypmod = -1;
    }
    if (!PQsetResultAttrs(r, 11, att))
        abort();
    for (int t = 0; t < (int)NROWS; t++)
        for (int c = 0; c < 11; c++)
            if (!PQsetvalue(r, t, c, (char *)rows[t][c],
                            rows[t][c] ? (int)strlen(rows[t][c]) : -1))
                abort();
    struct tenant_snapshot *s = tenant_snapshot_build(r);
    PQclear(r);
    if (!s || tenant_snapshot_count(s) != NROWS)
        abort();
    return s;
}

static void fail(const char *what)
{
    fprintf(stderr, "fuzz/tenant: %s\n", what);
    abort();
}

static enum tenant_outcome resolve(const struct tenant_sources *src,
                                   const struct tenant_request *req,
                                   const struct tenant_info **out)
{
    const char *why;
    enum tenant_outcome o = tenant_resolve(snap, src, req, out, &why);
    if ((o == TENANT_RESOLVED) != (*out != NULL))
        fail("out is set exactly when resolved");
    if ((o == TENANT_RESOLVED || o == TENANT_NONE) != (why == NULL))
        fail("why is set exactly when the outcome is an error");
    if (o == TENANT_RESOLVED && (*out)->status != TENANT_ACTIVE)
        fail("resolved a tenant that is not active");
    return o;
}

/* Whether v names t the way a path or header identifier does. */
static int names(const char *v, const struct tenant_info *t)
{
    char id[32];
    snprintf(id, sizeof id, "%lld", t->id);
    return strcmp(v, id) == 0 || strcmp(v, t->code) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!snap)
        snap = build();
    if (size < 1 || size > 2048)
        return 0;
    char *in = malloc(size), *line[5] = {0};
    if (!in)
        abort();
    memcpy(in, data + 1, size - 1);
    in[size - 1] = '\0';
    char *p = in;
    for (int i = 0; i < 5 && p; i++) {
        line[i] = p;
        p = strchr(p, '\n');
        if (p)
            *p++ = '\0';
    }

    struct tenant_sources src = {
        .path = data[0] & 1,
        .header = data[0] & 2,
        .subdomain = data[0] & 4,
        .domain = data[0] & 8,
        .token = data[0] & 16,
        .base_domain = line[3] && (data[0] & 32) ? line[3] : bases[(data[0] >> 6) & 3],
    };
    if (line[4]) {
        struct tenant_sources parsed = {.base_domain = src.base_domain};
        if (tenant_sources_parse(line[4], &parsed) == 0) {
            if (parsed.base_domain != src.base_domain)
                fail("tenant_sources_parse lost base_domain");
            src = parsed;
        }
    }
    struct tenant_request req = {.path_param = line[0], .header = line[1], .host = line[2]};
    const struct tenant_info *t;
    enum tenant_outcome o = resolve(&src, &req, &t);

    if (o == TENANT_RESOLVED) {
        if (src.path && req.path_param && !names(req.path_param, t))
            fail("resolved a tenant the path does not name");
        if (src.header && req.header && !names(req.header, t))
            fail("resolved a tenant the header does not name");
    }
    if (o == TENANT_NONE && ((src.path && req.path_param) || (src.header && req.header)))
        fail("an identifier named no tenant");

    /* The same tenant by id instead of by code: the same outcome. */
    if (src.header && req.header) {
        const struct tenant_info *byc = tenant_by_code(snap, req.header);
        if (byc) {
            char id[32];
            struct tenant_request r2 = req;
            const struct tenant_info *t2;
            snprintf(id, sizeof id, "%lld", byc->id);
            r2.header = id;
            if (resolve(&src, &r2, &t2) != o || t2 != t)
                fail("naming the tenant by id changed the outcome");
        }
    }

    /* Host upper-cased, and with a port when it has none: the same. */
    if (req.host && strlen(req.host) < 300) {
        char host[320];
        struct tenant_request r2 = req;
        const struct tenant_info *t2;
        size_t i = 0;
        for (; req.host[i]; i++)
            host[i] = (char)toupper((unsigned char)req.host[i]);
        host[i] = '\0';
        r2.host = host;
        if (resolve(&src, &r2, &t2) != o || t2 != t)
            fail("an upper-case Host changed the outcome");
        if (!strchr(req.host, ':') && *req.host) {
            snprintf(host, sizeof host, "%s:8080", req.host);
            if (resolve(&src, &r2, &t2) != o || t2 != t)
                fail("a port in Host changed the outcome");
        }
    }
    free(in);
    return 0;
}
