/* Unit tests for pools.c: a tenant pool is made on first use and shared, is
 * closed once unused for database.idle_pool_ms, and never while a request
 * holds it. No database is needed: a pool connects on its first checkout. */
#include "pools.h"

#include "check.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[] = "/tmp/rt_test_pools_XXXXXX";

static struct config *load(const char *text)
{
    struct rt_err err;
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return config_load(path, &err);
}

static struct tenant_info tenant(const char *code, const char *dbname)
{
    struct tenant_info t;
    memset(&t, 0, sizeof t);
    snprintf(t.code, sizeof t.code, "%s", code);
    snprintf(t.server, sizeof t.server, "main");
    snprintf(t.dbname, sizeof t.dbname, "%s", dbname);
    return t;
}

static void test_made_once_and_closed_when_idle(void)
{
    struct config *cfg =
        load("return { database = { url = 'postgresql://x@127.0.0.1:1/db', "
             "idle_pool_ms = 40 } }");
    CHECK(cfg != NULL);
    if (!cfg)
        return;
    struct db_pool *main = db_pool_new(&(struct db_pool_options){.conninfo = "x"});
    struct pools *ps = pools_new(cfg, main);
    struct tenant_info a = tenant("a", "t_a"), b = tenant("b", "t_b"), s = tenant("s", "");

    CHECK(pools_get(ps, &s) == main); /* the main database: the main pool */
    CHECK(pools_get(ps, NULL) == main);
    struct db_pool *pa = pools_get(ps, &a);
    CHECK(pa != NULL && pa != main);
    CHECK(pools_get(ps, &a) == pa); /* shared by a second request */
    struct db_pool *pb = pools_get(ps, &b);
    CHECK(pools_count(ps) == 2);
    pools_put(ps, pb);
    pools_put(ps, pa);
    usleep(200 * 1000);
    /* b is unused and closed; a is still held by one request */
    CHECK(pools_count(ps) == 1);
    pools_put(ps, pa);
    usleep(200 * 1000);
    CHECK(pools_count(ps) == 0);
    /* and made again on the tenant's next request */
    pa = pools_get(ps, &a);
    CHECK(pa != NULL);
    CHECK(pools_count(ps) == 1);
    pools_put(ps, pa);
    pools_free(ps);
    db_pool_free(main);
    config_free(cfg);
}

static void test_never_closed_with_zero(void)
{
    struct config *cfg = load("return { database = { idle_pool_ms = 0 } }");
    CHECK(cfg != NULL);
    if (!cfg)
        return;
    struct pools *ps = pools_new(cfg, NULL);
    struct tenant_info a = tenant("a", "t_a");
    pools_put(ps, pools_get(ps, &a));
    usleep(50 * 1000);
    CHECK(pools_count(ps) == 1);
    pools_free(ps);
    config_free(cfg);
}

int main(void)
{
    int fd = mkstemp(path);
    if (fd < 0)
        return 1;
    close(fd);
    test_made_once_and_closed_when_idle();
    test_never_closed_with_zero();
    unlink(path);
    return check_done();
}
