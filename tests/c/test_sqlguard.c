/* The SQL guard: every spelling of a refused statement reaches the same
 * parse node (issue: "a real SQL guard"). */
#include "sqlguard.h"

#include "check.h"

#include <pthread.h>
#include <stdlib.h>

static enum sqlguard_verdict req(const char *sql)
{
    struct sqlguard_result r;
    return sqlguard_check(sql, SQLGUARD_REQUEST, &r);
}

static enum sqlguard_verdict mig(const char *sql)
{
    struct sqlguard_result r;
    return sqlguard_check(sql, SQLGUARD_MIGRATION, &r);
}

static const char *reason(const char *sql, enum sqlguard_policy policy)
{
    static struct sqlguard_result r;
    sqlguard_check(sql, policy, &r);
    return r.reason;
}

static void allowed_requests(void)
{
    CHECK(req("SELECT 1") == SQLGUARD_OK);
    CHECK(req("select id, email from users where id = $1 and deleted_at is null") ==
          SQLGUARD_OK);
    CHECK(req("INSERT INTO boards (title) VALUES ($1) RETURNING id") == SQLGUARD_OK);
    CHECK(req("UPDATE users SET full_name = $2 WHERE id = $1") == SQLGUARD_OK);
    CHECK(req("DELETE FROM boards WHERE id = $1") == SQLGUARD_OK);
    CHECK(req("WITH d AS (DELETE FROM boards WHERE id = $1 RETURNING id) SELECT count(*) "
              "FROM d") == SQLGUARD_OK);
    CHECK(req("SELECT current_setting('app.tenant_id', true)") == SQLGUARD_OK);
    CHECK(req("SELECT pg_advisory_xact_lock(42)") == SQLGUARD_OK);
    CHECK(req("SELECT * FROM users FOR UPDATE") == SQLGUARD_OK);
    CHECK(req("  -- a comment\n SELECT 1 /* and another */ ;") == SQLGUARD_OK);
    /* a column named like a refused function is only a column */
    CHECK(req("SELECT set_config FROM t") == SQLGUARD_OK);
}

static void scope_changes(void)
{
    const char *attempts[] = {
        "SELECT set_config('app.tenant_id', $1, true)",
        "SELECT SET_CONFIG('app.tenant_id', '2', false)",
        "SELECT pg_catalog.set_config('search_path', 't_other', true)",
        "SELECT \"set_config\"('app.tenant_id', '2', true)",
        "SELECT U&\"set\\005fconfig\"('app.tenant_id', $1, true)",
        "SELECT U&\"!0073et_config\" UESCAPE '!' ('app.tenant_id', '2', true)",
        "SELECT * FROM set_config('app.tenant_id', '2', true)",
        "SELECT * FROM users WHERE id IN (SELECT 1 FROM set_config('a.b', 'c', false))",
        "WITH x AS (SELECT set_config('app.tenant_id', '2', true)) SELECT * FROM users",
        "INSERT INTO t (a) VALUES (set_config('app.tenant_id', '2', true))",
        "UPDATE t SET a = 1 WHERE set_config('app.tenant_id', '2', true) IS NOT NULL",
        "SELECT (SELECT (SELECT set_config('app.tenant_id', '2', true)))",
        "SELECT CASE WHEN true THEN set_config('x.y', '1', false) END",
        "SELECT * FROM ROWS FROM (set_config('app.tenant_id', '2', true))",
        "SELECT query_to_xml('select set_config(''app.tenant_id'',''2'',false)', true, "
        "true, "
        "'')",
    };
    for (size_t i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
        struct sqlguard_result r;
        enum sqlguard_verdict v = sqlguard_check(attempts[i], SQLGUARD_REQUEST, &r);
        CHECK(v == SQLGUARD_REFUSED);
        if (v != SQLGUARD_REFUSED)
            fprintf(stderr, "  not refused: %s\n", attempts[i]);
    }
    CHECK_STR(
        reason("SELECT U&\"set\\005fconfig\"('app.tenant_id', $1, true)", SQLGUARD_REQUEST),
        "set_config()");
}

static void session_state(void)
{
    CHECK(req("SET search_path TO public") == SQLGUARD_REFUSED);
    CHECK(req("set local search_path = t_other") == SQLGUARD_REFUSED);
    CHECK(req("RESET ROLE") == SQLGUARD_REFUSED);
    CHECK_STR(reason("RESET ALL", SQLGUARD_REQUEST), "RESET");
    CHECK(req("BEGIN") == SQLGUARD_REFUSED);
    CHECK_STR(reason("/* x */ commit", SQLGUARD_REQUEST), "COMMIT");
    CHECK(req("SAVEPOINT a") == SQLGUARD_REFUSED);
    CHECK(req("PREPARE TRANSACTION 'x'") == SQLGUARD_REFUSED);
    CHECK(req("DISCARD ALL") == SQLGUARD_REFUSED);
    CHECK(req("LISTEN chan") == SQLGUARD_REFUSED);
    CHECK(req("NOTIFY chan") == SQLGUARD_REFUSED);
    CHECK(req("SELECT pg_notify('chan', 'x')") == SQLGUARD_REFUSED);
    CHECK(req("CREATE TEMP TABLE boards (id int)") == SQLGUARD_REFUSED);
    CHECK(req("CREATE TEMPORARY TABLE x AS SELECT 1") == SQLGUARD_REFUSED);
    CHECK_STR(reason("SELECT 1 INTO TEMP boards", SQLGUARD_REQUEST), "SELECT INTO");
    CHECK(req("SELECT pg_advisory_lock(1)") == SQLGUARD_REFUSED);
    CHECK(req("SELECT pg_catalog.pg_try_advisory_lock_shared(1, 2)") == SQLGUARD_REFUSED);
    CHECK(req("SELECT lo_from_bytea(0, 'x')") == SQLGUARD_REFUSED);
    CHECK(req("SELECT lastval()") == SQLGUARD_REFUSED);
    CHECK(req("SELECT setval('users_id_seq', 1)") == SQLGUARD_REFUSED);
    CHECK(req("SELECT pg_terminate_backend(1)") == SQLGUARD_REFUSED);
    CHECK(req("PREPARE p AS SELECT 1") == SQLGUARD_REFUSED);
    CHECK(req("EXECUTE p") == SQLGUARD_REFUSED);
    CHECK(req("DEALLOCATE ALL") == SQLGUARD_REFUSED);
    CHECK(req("DECLARE c CURSOR WITH HOLD FOR SELECT 1") == SQLGUARD_REFUSED);
    CHECK(req("COPY users TO STDOUT") == SQLGUARD_REFUSED);
    CHECK(req("DO $$ BEGIN PERFORM 1; END $$") == SQLGUARD_REFUSED);
    CHECK(req("EXPLAIN ANALYZE SELECT 1") == SQLGUARD_REFUSED);
    CHECK(req("SHOW search_path") == SQLGUARD_REFUSED);
    CHECK(req("DROP TABLE users") == SQLGUARD_REFUSED);
    /* SQL text run by a function, and set_config by a view's rule */
    CHECK(req("SELECT * FROM ts_stat('SELECT "
              "to_tsvector(set_config(''a.b'',''c'',false))')") == SQLGUARD_REFUSED);
    CHECK(req("SELECT ts_rewrite('a'::tsquery, 'SELECT ''a''::tsquery, ''b''::tsquery')") ==
          SQLGUARD_REFUSED);
    CHECK(req("SELECT table_to_xml('users', true, true, '')") == SQLGUARD_REFUSED);
    CHECK(req("SELECT Schema_To_XmlSchema('public', true, true, '')") == SQLGUARD_REFUSED);
    CHECK(req("UPDATE pg_settings SET setting = '0' WHERE name = 'statement_timeout'") ==
          SQLGUARD_REFUSED);
    CHECK_STR(reason("UPDATE pg_catalog.\"pg_settings\" SET setting = 'on' "
                     "WHERE name = 'default_transaction_read_only'",
                     SQLGUARD_REQUEST),
              "pg_settings");
    CHECK(req("WITH s AS (UPDATE pg_settings SET setting = 'x' RETURNING 1) SELECT * FROM "
              "s") == SQLGUARD_REFUSED);
}

static void shapes(void)
{
    CHECK_STR(reason("SELECT 1; SELECT 2", SQLGUARD_REQUEST), "2 statements in one call");
    CHECK(req("SELECT 1; SET search_path TO x") == SQLGUARD_REFUSED);
    CHECK(req("") == SQLGUARD_REFUSED);
    CHECK(req("-- nothing") == SQLGUARD_REFUSED);
    CHECK(req("SELEC 1") == SQLGUARD_SYNTAX);
    CHECK(req("SELECT 'unterminated") == SQLGUARD_SYNTAX);
    CHECK(strstr(reason("SELECT * FORM users", SQLGUARD_REQUEST), "syntax error") != NULL);
    /* deep nesting is either refused or a parse error, never a crash */
    size_t depth = 5000;
    char *deep = malloc(depth * 3 + 16);
    if (deep) {
        char *p = deep;
        p += sprintf(p, "SELECT ");
        for (size_t i = 0; i < depth; i++)
            *p++ = '-', *p++ = '(';
        *p++ = '1';
        for (size_t i = 0; i < depth; i++)
            *p++ = ')';
        *p = '\0';
        CHECK(req(deep) != SQLGUARD_OK);
        free(deep);
    }
}

static void migrations(void)
{
    CHECK(mig("CREATE TABLE a (id bigint); CREATE INDEX ON a (id)") == SQLGUARD_OK);
    CHECK(mig("ALTER TABLE users ADD COLUMN phone text") == SQLGUARD_OK);
    CHECK(mig("-- nothing yet") == SQLGUARD_OK); /* what `migrate new` writes */
    CHECK(mig("SET LOCAL lock_timeout = '1s'") == SQLGUARD_OK);
    CHECK(mig("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1'") == SQLGUARD_OK);
    CHECK_STR(reason("BEGIN", SQLGUARD_MIGRATION), "BEGIN");
    CHECK_STR(reason("CREATE TABLE a (id int); COMMIT", SQLGUARD_MIGRATION), "COMMIT");
    CHECK_STR(reason("SET search_path TO x", SQLGUARD_MIGRATION), "SET without LOCAL");
    CHECK(mig("CREATE TEMP TABLE t (id int)") == SQLGUARD_REFUSED);
    CHECK(mig("SELECT set_config('search_path', 'x', false)") == SQLGUARD_REFUSED);
    CHECK(mig("SELECT pg_advisory_lock(1)") == SQLGUARD_REFUSED);
    CHECK(mig("LISTEN x") == SQLGUARD_REFUSED);
    CHECK(mig("DISCARD TEMP") == SQLGUARD_REFUSED);
}

/* The verdict cache is shared by threads: same answers from many at once. */
static void *hammer(void *arg)
{
    (void)arg;
    long bad = 0;
    for (int i = 0; i < 2000; i++) {
        char sql[64];
        snprintf(sql, sizeof sql, "SELECT %d", i % 50);
        if (req(sql) != SQLGUARD_OK)
            bad++;
        if (req("SELECT set_config('a.b', 'c', true)") != SQLGUARD_REFUSED)
            bad++;
    }
    return (void *)bad;
}

static void threads(void)
{
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer, NULL);
    for (int i = 0; i < 4; i++) {
        void *bad;
        pthread_join(t[i], &bad);
        CHECK(bad == NULL);
    }
}

int main(void)
{
    CHECK(!sqlguard_disabled());
    allowed_requests();
    scope_changes();
    session_state();
    shapes();
    migrations();
    threads();
    return check_done();
}
