/* spare: pre-migrated spare schemas and template databases (see spare.h). */
#include "spare.h"

#include "crypto.h"
#include "migrate_fleet.h"
#include "sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

/* First key of every spare lock ("rtsp"); the second is hashtext(name). */
#define LOCK_CLASS "1920234352"
#define TAKE_TRIES 3

/* Runs "<verb> <quoted name><tail>" (DDL takes no parameters). */
static int ddl(PGconn *c, const char *verb, const char *name, const char *tail,
               struct rt_err *err)
{
    char sql[512], qn[160];
    if (sql_ident(c, name, qn, sizeof qn, err) < 0)
        return -1;
    snprintf(sql, sizeof sql, "%s %s%s", verb, qn, tail ? tail : "");
    return sql_exec(c, sql, err);
}

/* Session lock on a name being made or dropped: taken (try) or released. */
static bool name_lock(PGconn *c, const char *name, bool take)
{
    struct rt_err err;
    const char *v[] = {name};
    PGresult *r =
        sql_query(c,
                  take ? "SELECT pg_try_advisory_lock(" LOCK_CLASS ", hashtext($1))"
                       : "SELECT pg_advisory_unlock(" LOCK_CLASS ", hashtext($1))",
                  1, v, &err);
    bool ok = r && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return ok;
}

static void rand_hex8(char out[9])
{
    unsigned char b[4] = {0};
    if (crypto_random(b, sizeof b) < 0) {
        /* Only uniqueness matters, and a clash fails cleanly (the name
         * exists); the clock is a fair fallback. */
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        uint32_t v = (uint32_t)t.tv_nsec ^ (uint32_t)getpid();
        memcpy(b, &v, sizeof b);
    }
    crypto_hex(b, sizeof b, out);
}

/* Returns 0, or -1 when the digest cannot be computed (out of memory). */
static int inst8(const char *directory_db, char out[9])
{
    char hex[CRYPTO_SHA256_HEX_LEN + 1];

    if (crypto_sha256_hex(directory_db, strlen(directory_db), hex) < 0)
        return -1;
    snprintf(out, 9, "%.8s", hex);
    return 0;
}

/* ---- spare schemas -------------------------------------------------------- */

enum take {
    TAKE_NONE,   /* no spare of fp left */
    TAKE_DONE,   /* renamed into place */
    TAKE_GONE,   /* the one locked was taken meanwhile: look again */
    TAKE_FAILED, /* err says why */
};

/* One attempt: a spare of fp, locked for this transaction, renamed. The
 * lock is taken on what the statement's snapshot saw; the second look (a
 * newer snapshot) tells whether a concurrent create renamed it before
 * releasing the lock. */
static enum take take_once(PGconn *c, const struct tenant_row *row, const char *fp,
                           struct rt_err *err)
{
    char like[64], name[SPARE_NAME_MAX];
    enum take out = TAKE_FAILED;

    snprintf(like, sizeof like, "rt\\_spare\\_%.12s\\_%%", fp);
    const char *v[] = {like};
    if (sql_exec(c, "BEGIN", err) < 0)
        return TAKE_FAILED;
    /* OFFSET 0 keeps the lock call from being evaluated before the name
     * filter: only a matching spare is ever locked. */
    PGresult *r =
        sql_query(c,
                  "SELECT nspname FROM (SELECT nspname FROM pg_namespace "
                  "WHERE nspname LIKE $1 OFFSET 0) s "
                  "WHERE pg_try_advisory_xact_lock(" LOCK_CLASS ", hashtext(nspname)) "
                  "LIMIT 1",
                  1, v, err);
    if (!r)
        goto done;
    out = PQntuples(r) == 1 ? TAKE_DONE : TAKE_NONE;
    if (out == TAKE_DONE)
        snprintf(name, sizeof name, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    if (out == TAKE_NONE)
        goto done;
    const char *w[] = {name};
    if (!(r = sql_query(c, "SELECT 1 FROM pg_namespace WHERE nspname = $1", 1, w, err))) {
        out = TAKE_FAILED;
        goto done;
    }
    out = PQntuples(r) == 1 ? TAKE_DONE : TAKE_GONE;
    PQclear(r);
    if (out == TAKE_DONE) {
        if (tenant_storage_create(c, row, name, err) < 0) {
            out = TAKE_FAILED;
        } else if (sql_exec(c, "COMMIT", err) < 0) {
            out = TAKE_FAILED;
        }
    }
done:
    if (PQtransactionStatus(c) != PQTRANS_IDLE)
        PQclear(PQexec(c, "ROLLBACK"));
    return out;
}

int spare_schema_take(PGconn *c, const struct tenant_row *row, const char *fp,
                      struct rt_err *err)
{
    memset(err, 0, sizeof *err);
    for (int i = 0; i < TAKE_TRIES; i++) {
        enum take t = take_once(c, row, fp, err);
        if (t != TAKE_GONE)
            return t == TAKE_DONE;
    }
    return 0;
}

/* Drops each listed name nobody holds the lock of; verb is "DROP SCHEMA IF
 * EXISTS" (with CASCADE) or "DROP DATABASE IF EXISTS". Returns the number
 * dropped, or -1 with err on the first failure. */
static int drop_unlocked(PGconn *c, PGresult *list, bool database, struct rt_err *err)
{
    int dropped = 0;
    for (int i = 0; i < PQntuples(list); i++) {
        const char *name = PQgetvalue(list, i, 0);
        if (!name_lock(c, name, true))
            continue; /* being made or taken */
        int rc = database ? ddl(c, "DROP DATABASE IF EXISTS", name, NULL, err)
                          : ddl(c, "DROP SCHEMA IF EXISTS", name, " CASCADE", err);
        (void)name_lock(c, name, false);
        if (rc < 0)
            return -1;
        dropped++;
    }
    return dropped;
}

/* Drops the names sql (one text column, parameters v) lists that nobody
 * holds the lock of: databases, or schemas with CASCADE. Returns the number
 * dropped, or -1 with err. */
static int drop_listed(PGconn *c, const char *sql, int n, const char *const *v,
                       bool database, struct rt_err *err)
{
    PGresult *r = sql_query(c, sql, n, v, err);
    if (!r)
        return -1;
    int dropped = drop_unlocked(c, r, database, err);
    PQclear(r);
    return dropped;
}

/* ALTER <kind> from RENAME TO to (kind: "SCHEMA" or "DATABASE"). */
static int rename_to(PGconn *c, const char *kind, const char *from, const char *to,
                     struct rt_err *err)
{
    char verb[32], tail[192], qt[160];
    if (sql_ident(c, to, qt, sizeof qt, err) < 0)
        return -1;
    snprintf(verb, sizeof verb, "ALTER %s", kind);
    snprintf(tail, sizeof tail, " RENAME TO %s", qt);
    return ddl(c, verb, from, tail, err);
}

/* Builds one spare schema: made under a name no create takes, migrated,
 * then renamed after the fingerprint it reached. */
static int build_schema(const struct config *cfg, PGconn *c, const char *server,
                        struct rt_err *err)
{
    char r8[9], build[SPARE_NAME_MAX], spare[SPARE_NAME_MAX], fp[65];
    int version, rc = -1;

    rand_hex8(r8);
    snprintf(build, sizeof build, "rt_build_%s", r8);
    if (!name_lock(c, build, true)) {
        rt_err_set(err, "cannot lock %s", build);
        return -1;
    }
    if (ddl(c, "CREATE SCHEMA", build, NULL, err) < 0)
        goto unlock;
    if (migrate_storage(cfg, server, NULL, build, &version, fp, err) < 0) {
        struct rt_err derr;
        (void)ddl(c, "DROP SCHEMA IF EXISTS", build, " CASCADE", &derr);
        goto unlock;
    }
    snprintf(spare, sizeof spare, "rt_spare_%.12s_%s", fp, r8);
    rc = rename_to(c, "SCHEMA", build, spare, err);
unlock:
    (void)name_lock(c, build, false);
    return rc;
}

static int refill_schemas(const struct config *cfg, PGconn *c, const char *server,
                          const struct spare_want *want, int *made, struct rt_err *err)
{
    char like[64];
    snprintf(like, sizeof like, "rt\\_spare\\_%.12s\\_%%", want->fp);
    const char *v[] = {like};
    /* Stale spares (other fingerprints) and abandoned builds first. */
    if (drop_listed(c,
                    "SELECT nspname FROM pg_namespace WHERE (nspname LIKE 'rt\\_spare\\_%' "
                    "AND nspname NOT LIKE $1) OR nspname LIKE 'rt\\_build\\_%'",
                    1, v, false, err) < 0)
        return -1;
    PGresult *r =
        sql_query(c, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE $1", 1, v, err);
    if (!r)
        return -1;
    int have = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    for (; have < want->schemas; have++) {
        if (build_schema(cfg, c, server, err) < 0)
            return -1;
        (*made)++;
    }
    return 0;
}

/* ---- template databases --------------------------------------------------- */

/* Returns 0, or -1 as inst8. */
static int template_name(const char *directory_db, const char *fp, char out[SPARE_NAME_MAX])
{
    char inst[9];
    if (inst8(directory_db, inst) < 0)
        return -1;
    snprintf(out, SPARE_NAME_MAX, "rt_tpl_%s_%.12s", inst, fp);
    return 0;
}

/* LIKE patterns of the installation's templates and template builds.
 * Returns 0, or -1 as inst8. */
static int template_patterns(const char *directory_db, char like_tpl[64],
                             char like_build[64])
{
    char inst[9];
    if (inst8(directory_db, inst) < 0)
        return -1;
    snprintf(like_tpl, 64, "rt\\_tpl\\_%s\\_%%", inst);
    snprintf(like_build, 64, "rt\\_tplbuild\\_%s\\_%%", inst);
    return 0;
}

int spare_template_find(PGconn *c, const char *directory_db, const char *fp,
                        char out[SPARE_NAME_MAX])
{
    struct rt_err err;
    if (template_name(directory_db, fp, out) < 0)
        return -1;
    const char *v[] = {out};
    PGresult *r = sql_query(c, "SELECT 1 FROM pg_database WHERE datname = $1", 1, v, &err);
    if (!r)
        return -1;
    int found = PQntuples(r) == 1;
    PQclear(r);
    return found;
}

/* Builds the template database under a temporary name, migrates it (the
 * engine connects to it and disconnects), then renames it: a template is
 * only ever visible complete. Losing the race to a concurrent builder is not
 * an error. */
static int build_template(const struct config *cfg, PGconn *c, const char *server,
                          const struct spare_want *want, struct rt_err *err)
{
    char r8[9], inst[9], build[SPARE_NAME_MAX], tpl[SPARE_NAME_MAX], fp[65];
    int version, rc = -1;

    rand_hex8(r8);
    if (inst8(want->directory_db, inst) < 0) {
        rt_err_set(err, "out of memory");
        return -1;
    }
    snprintf(build, sizeof build, "rt_tplbuild_%s_%s", inst, r8);
    if (!name_lock(c, build, true)) {
        rt_err_set(err, "cannot lock %s", build);
        return -1;
    }
    if (ddl(c, "CREATE DATABASE", build, NULL, err) < 0)
        goto unlock;
    /* Nobody but its owner connects to a template: a connection would make
     * cloning it fail. */
    if (ddl(c, "REVOKE ALL ON DATABASE", build, " FROM PUBLIC", err) < 0 ||
        migrate_storage(cfg, server, build, "public", &version, fp, err) < 0)
        goto drop;
    if (template_name(want->directory_db, fp, tpl) < 0) {
        rt_err_set(err, "out of memory");
        goto drop;
    }
    if (rename_to(c, "DATABASE", build, tpl, err) == 0) {
        rc = 0;
        goto unlock;
    }
    if (spare_template_find(c, want->directory_db, fp, tpl) == 1)
        rc = 0; /* a concurrent build won */
drop:;
    struct rt_err derr;
    (void)ddl(c, "DROP DATABASE IF EXISTS", build, NULL, &derr);
unlock:
    (void)name_lock(c, build, false);
    return rc;
}

static int refill_template(const struct config *cfg, PGconn *c, const char *server,
                           const struct spare_want *want, int *made, struct rt_err *err)
{
    char tpl[SPARE_NAME_MAX], like_tpl[64], like_build[64];
    int found = spare_template_find(c, want->directory_db, want->fp, tpl);
    if (found < 0) {
        rt_err_set(err, "cannot look up the template database");
        return -1;
    }
    if (!found) {
        if (build_template(cfg, c, server, want, err) < 0)
            return -1;
        (*made)++;
    }
    if (template_patterns(want->directory_db, like_tpl, like_build) < 0) {
        rt_err_set(err, "out of memory");
        return -1;
    }
    const char *v[] = {like_tpl, tpl, like_build};
    int dropped = drop_listed(c,
                              "SELECT datname FROM pg_database WHERE (datname LIKE $1 AND "
                              "datname <> $2) OR datname LIKE $3",
                              3, v, true, err);
    return dropped < 0 ? -1 : 0;
}

int spare_refill(const struct config *cfg, PGconn *c, const char *server,
                 const struct spare_want *want, int *made, struct rt_err *err)
{
    struct rt_err terr;
    int rc = 0;

    *made = 0;
    err->msg[0] = '\0';
    /* One refill at a time per server, whichever process runs it (servers'
     * background refills, `runtime tenant create`): the second waits and
     * then counts what the first made, instead of both making the same
     * missing spares. Spare names are locked under hashtext(name) in the
     * same class; "refill" is no spare's name. */
    PGresult *r = sql_query(
        c, "SELECT pg_advisory_lock(" LOCK_CLASS ", hashtext('refill'))", 0, NULL, err);
    if (!r)
        return -1;
    PQclear(r);
    if (want->schemas > 0 && refill_schemas(cfg, c, server, want, made, err) < 0)
        rc = -1;
    if (want->template && refill_template(cfg, c, server, want, made, &terr) < 0) {
        if (rc == 0)
            *err = terr;
        rc = -1;
    }
    (void)sql_run(c, "SELECT pg_advisory_unlock(" LOCK_CLASS ", hashtext('refill'))", 0,
                  NULL, &terr);
    return rc;
}

int spare_drop_all(PGconn *c, const char *directory_db, struct rt_err *err)
{
    char like_tpl[64], like_build[64];
    int schemas = drop_listed(c,
                              "SELECT nspname FROM pg_namespace WHERE nspname LIKE "
                              "'rt\\_spare\\_%' OR nspname LIKE 'rt\\_build\\_%'",
                              0, NULL, false, err);
    if (schemas < 0)
        return -1;
    if (template_patterns(directory_db, like_tpl, like_build) < 0) {
        rt_err_set(err, "out of memory");
        return -1;
    }
    const char *v[] = {like_tpl, like_build};
    int dbs = drop_listed(c,
                          "SELECT datname FROM pg_database WHERE datname LIKE $1 OR "
                          "datname LIKE $2",
                          2, v, true, err);
    return dbs < 0 ? -1 : schemas + dbs;
}
