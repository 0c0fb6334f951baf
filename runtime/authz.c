/* authz: the permission check before a handler (see authz.h). */
#include "authz.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

/* The permission set of a tenant user, read in the request's transaction
 * (the tenant's tables are in scope). */
static const char PERMS_SQL[] =
    "SELECT u.is_superuser OR coalesce(bool_or(r.code = 'super_admin'), false), "
    "coalesce(max(r.priority), 0), "
    "coalesce(string_agg(DISTINCT p.code, ',' ORDER BY p.code), '') "
    "FROM users u LEFT JOIN user_roles ur ON ur.user_id = u.id "
    "LEFT JOIN roles r ON r.id = ur.role_id "
    "LEFT JOIN role_permissions rp ON rp.role_id = r.id "
    "LEFT JOIN permissions p ON p.id = rp.permission_id "
    "WHERE u.id = $1::bigint AND u.deleted_at IS NULL AND u.status = 'active' "
    "GROUP BY u.id, u.is_superuser";

/* Loads the caller's permission set on a cache miss. Returns 1 (out filled;
 * out->codes is owned by *res), 0 when the user is gone or disabled, -1 on a
 * database failure (*failure set). */
static int load_perms(struct auth *auth, const struct crypto_jwt_claims *c,
                      struct db_pool *pool, struct db_conn **conn, const struct db_tx *tx,
                      struct auth_perms *out, PGresult **res, enum db_status *failure,
                      char *why, size_t whylen)
{
    struct db_error err;

    if (strcmp(c->scope, "core") == 0) {
        int rc = auth_core_perms(auth, c->sub, out, why, whylen);
        if (rc < 0)
            *failure = auth_db_failure(); /* 503/504 when the database is why */
        return rc;
    }
    if (!*c->sub || strspn(c->sub, "0123456789") != strlen(c->sub))
        return 0;
    const char *v[] = {c->sub};
    if (db_query(pool, conn, tx, PERMS_SQL, 1, v, res, &err) < 0) {
        *failure = err.status;
        snprintf(why, whylen, "%s", err.message);
        return -1;
    }
    if (PQntuples(*res) != 1)
        return 0;
    out->superuser = PQgetvalue(*res, 0, 0)[0] == 't';
    out->priority = atoi(PQgetvalue(*res, 0, 1));
    out->codes = PQgetvalue(*res, 0, 2);
    return 1;
}

enum authz_decision authz_check(struct auth *auth, const struct crypto_jwt_claims *claims,
                                const char *need, struct db_pool *pool,
                                struct db_conn **conn, const struct db_tx *tx,
                                enum db_status *failure, char *why, size_t whylen)
{
    bool allowed = false;

    if (!claims || !auth)
        return AUTHZ_NO_TOKEN;
    long long tid = strcmp(claims->scope, "core") == 0 ? 0 : claims->tid;
    if (!auth_perms_cached(auth, tid, claims->sub, need, &allowed)) {
        struct auth_perms p = {0};
        PGresult *res = NULL;
        int rc = load_perms(auth, claims, pool, conn, tx, &p, &res, failure, why, whylen);
        if (rc == 1) {
            auth_perms_store(auth, tid, claims->sub, &p);
            allowed = auth_perms_allow(&p, need);
        }
        PQclear(res);
        if (rc < 0)
            return AUTHZ_FAILED;
        if (rc == 0)
            return AUTHZ_INVALID;
    }
    return allowed ? AUTHZ_ALLOW : AUTHZ_FORBIDDEN;
}
