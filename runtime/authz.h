/* authz: authorization, the check before a route's handler runs.
 *
 * A route that declares a permission is open to a caller whose permission
 * set grants it. The set of a tenant user comes from the tenant's RBAC
 * tables (read in the request's own transaction, where the tenant's tables
 * are in scope), that of a platform (core) user from core.users (auth.c);
 * either is cached in auth.c's permission cache. This module decides; the
 * caller (dispatch.c) turns the decision into a response.
 *
 * Uses: auth.c (permission cache, core users), db.c, crypto.h (claims). */
#ifndef RT_AUTHZ_H
#define RT_AUTHZ_H

#include <stddef.h>

#include "auth.h"
#include "crypto.h"
#include "db.h"

enum authz_decision {
    AUTHZ_ALLOW,     /* the handler may run */
    AUTHZ_NO_TOKEN,  /* 401: the route needs a bearer token (or no auth state) */
    AUTHZ_INVALID,   /* 401: the token's user is gone or disabled */
    AUTHZ_FORBIDDEN, /* 403: the user lacks the permission */
    AUTHZ_FAILED,    /* the permission set could not be loaded (*failure, why) */
};

/* Decides whether the holder of claims (borrowed; NULL: no token) may run a
 * route that needs permission `need`. auth (borrowed; NULL: none) holds the
 * cache. On a cache miss a tenant user's set is read with db_query over
 * pool, *conn and tx: the request's transaction (opened if none is; *conn
 * checked out on first use, as db_query does). On AUTHZ_FAILED, *failure is
 * the database status behind it (for 503/504) and why the message for the
 * log. */
enum authz_decision authz_check(struct auth *auth, const struct crypto_jwt_claims *claims,
                                const char *need, struct db_pool *pool,
                                struct db_conn **conn, const struct db_tx *tx,
                                enum db_status *failure, char *why, size_t whylen)
    __attribute__((warn_unused_result));

#endif
