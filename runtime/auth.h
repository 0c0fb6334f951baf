/* auth: the token state every request shares (DESIGN.md section 3).
 *
 * - Access tokens: short-lived JWTs (crypto.c) with a fresh jti.
 * - Refresh tokens: opaque random strings, stored as SHA-256 digests in
 *   core.refresh_tokens. Each use rotates it; a second use of a spent one
 *   means it was stolen, and the whole family (one login) is revoked along
 *   with the access tokens issued from it.
 * - Revocations (core.revocations): a jti, every token of a user issued up
 *   to a moment (disabled or deleted users, logout everywhere), or every
 *   token of a tenant issued up to a moment (its storage recreated or
 *   purged, the tenant deleted: user ids restart with new storage). The
 *   server keeps the live rows in memory, reloaded every
 *   auth.revocation_refresh_ms, so a revocation made by any replica takes
 *   effect within that interval without a query per request; one made by
 *   this process takes effect at once.
 * - Platform API keys ("rtk_<prefix>_<secret>"), stored as SHA-256 digests
 *   (the secret is 256 random bits, so a fast hash is enough); live keys are
 *   kept in memory the same way.
 * - The permission cache per (tenant, user): what a user may do, loaded on
 *   first use by the caller and dropped when roles change (an 'rbac' row,
 *   seen by every replica on its next reload) or after
 *   auth.permission_cache_s.
 *
 * All database work uses a small pool of auth's own on the main database, so
 * it never competes with (or deadlocks against) request connections. No Lua.
 * Thread-safe.
 *
 * This header is the module's one public face. The module is auth.c
 * (shared plumbing, token keys, verification), auth_perms.c, auth_revoke.c,
 * auth_keys.c (API keys), auth_session.c and auth_module.c (auth_new,
 * auth_free), sharing the private auth_int.h.
 *
 * Uses: config.c, crypto.c, db.c (auth's own pool), err.c, log.c, ticker.c. */
#ifndef RT_AUTH_H
#define RT_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "crypto.h"
#include "db.h"
#include "err.h"

struct auth;

/* Builds the token keys from the auth.jwt_* settings (reading the key files
 * of RS256/ES256), connects a pool to database.url and loads the state; cfg
 * is borrowed and must outlive a. With poll set, a background thread reloads
 * the state. A bad key setting (unknown algorithm, missing, unreadable or
 * ill-typed key file, a private key that does not match the public key of
 * auth.jwt_kid) fails with err naming the setting. */
struct auth *auth_new(const struct config *cfg, bool poll, struct rt_err *err);
void auth_free(struct auth *a);

/* Loads the token keys the auth.jwt_* settings name, as auth_new does, and
 * drops them: 0, or -1 with the problem in err (for `runtime check`). */
int auth_check_keys(const struct config *cfg, struct rt_err *err);

/* Re-reads revocations and API keys now (the background thread does this
 * every auth.revocation_refresh_ms). */
void auth_reload(struct auth *a);

/* The database status behind the last -1 an auth call returned on this
 * thread (DB_ERR_UNAVAILABLE, DB_ERR_POOL_TIMEOUT, ...), or DB_OK when it
 * failed for another reason; read right after the failing call, like errno.
 * Reading it resets it. Callers map it to 503/504 like a failed rt.db call.
 * (Calls that fill a struct db_error carry the same status in it.) */
enum db_status auth_db_failure(void);

/* ---- the request path ------------------------------------------------- */

/* Verifies a bearer token with the configured algorithm and keys (the kid
 * in its header picks the key) and the required claims (crypto.h). Returns 0
 * with out filled, or -1 with why (for the log only). Tokens verified before
 * are remembered by their exact text: only their time checks run again. */
int auth_verify_token(struct auth *a, const char *token, struct crypto_jwt_claims *out,
                      char *why, size_t why_len);

/* True when the token was revoked (its jti, or its user up to its iat). */
bool auth_token_revoked(struct auth *a, const struct crypto_jwt_claims *c);

/* Checks a platform API key. Returns its id (> 0), or 0 when the key is
 * unknown or revoked, or cannot be checked (out of memory; logged). */
long long auth_api_key(struct auth *a, const char *key);

/* ---- sessions ----------------------------------------------------------- */

/* The calls below that take a struct db_error fill it on -1: status is the
 * database's (DB_ERR_UNAVAILABLE, ...) with its sqlstate and message when a
 * statement failed, or DB_OK with a message when something else did (no
 * token keys, no randomness, out of memory). */

#define AUTH_REFRESH_LEN 69 /* "rtr_" + 64 hex digits + NUL */

struct auth_session {
    char *access; /* malloc'd JWT; freed by auth_session_clear */
    char refresh[AUTH_REFRESH_LEN];
    struct crypto_jwt_claims claims; /* of the access token */
};

void auth_session_clear(struct auth_session *s);

/* Signs an access token for (scope, tid, sub) into out->access without a
 * refresh token; sid (NULL: none) names the session (refresh-token family)
 * it belongs to. Returns 0 or -1 (err filled). */
int auth_issue_access(struct auth *a, const char *scope, long long tid, const char *sub,
                      const char *sid, struct auth_session *out, struct db_error *err);

/* Starts a session (a login): an access token and a new refresh token
 * family; the access tokens of a session carry its family as their sid
 * claim. Returns 0 or -1 (err filled). */
int auth_session_start(struct auth *a, const char *scope, long long tid, const char *sub,
                       struct auth_session *out, struct db_error *err);

/* Spends refresh token `refresh` and issues the next pair of its family.
 * only_tid >= 0 accepts only tokens of that tenant (0: core); any other is
 * treated as unknown and left as it is. Returns 1 (out filled), 0 when the
 * token is unknown, spent, revoked or expired (a spent one revokes its
 * family), or -1 (err filled). */
int auth_session_refresh(struct auth *a, const char *refresh, long long only_tid,
                         struct auth_session *out, struct db_error *err);

/* Logout: revokes the access token who and, when refresh is given and
 * belongs to the same user, its family. Returns 0 or -1. */
int auth_session_end(struct auth *a, const struct crypto_jwt_claims *who,
                     const char *refresh, struct db_error *err);

/* "Log out everywhere else": ends every session of who's user but who's own
 * (its sid; for a token without one, the session that issued its jti):
 * their refresh tokens and the access tokens issued from them. Tokens of no
 * session (auth_issue_access without sid) are not touched. Returns the
 * number of sessions ended (those that still had a usable refresh token),
 * or -1 (err filled). */
int auth_session_end_others(struct auth *a, const struct crypto_jwt_claims *who,
                            struct db_error *err);

/* Revokes every token and session of user sub of tenant tid (0: core)
 * issued until now. Returns 0 or -1. */
int auth_revoke_user(struct auth *a, long long tid, const char *sub, struct db_error *err);

/* How long an 'rbac' row (a permission change) lives in core.revocations:
 * every reload in that time drops the cache entries it names. */
#define AUTH_RBAC_ROW_S "10"

/* Ends every session and token of tenant tid: its refresh tokens, and every
 * access token issued up to now (a 'tenant' row), and drops its cached
 * permission sets here and, through an 'rbac' row, on every replica. For
 * when its storage is recreated or purged, or it is deleted: user ids
 * restart with new storage, so an old token would name someone else.
 * Returns 0 or -1. */
int auth_revoke_tenant(struct auth *a, long long tid, struct db_error *err);

/* The statement behind auth_revoke_tenant, for code with a connection of its
 * own to the main database (provision.c, before it drops a tenant's
 * storage): $1 the tenant id, $2 how long the cut-off lives in seconds (the
 * token lifetime plus twice the leeway). */
#define AUTH_REVOKE_TENANT_SQL                                                \
    "WITH s AS (UPDATE core.refresh_tokens SET revoked_at = now() "           \
    "WHERE tenant_id = $1::bigint AND revoked_at IS NULL) "                   \
    "INSERT INTO core.revocations (kind, tenant_id, expires_at) "             \
    "VALUES ('tenant', $1::bigint, now() + make_interval(secs => $2::int)), " \
    "('rbac', $1::bigint, now() + interval '" AUTH_RBAC_ROW_S " seconds')"

/* ---- API keys --------------------------------------------------------------- */

/* Makes a key named name for core user creator (0: none); the key is written
 * to key (shown once, never stored). Returns its id, or -1. */
long long auth_api_key_create(struct auth *a, const char *name, long long creator,
                              char key[96], struct db_error *err);
/* Revokes key id. Returns 1, 0 when there is no such live key, or -1. */
int auth_api_key_revoke(struct auth *a, long long id, struct db_error *err);

/* ---- permissions ------------------------------------------------------------ */

/* What a user may do: superusers anything; otherwise the permission codes
 * ("user_read"), where resource_manage implies every action on resource. */
struct auth_perms {
    bool superuser;
    int priority;      /* highest role priority (0: none) */
    const char *codes; /* comma-separated, sorted */
};

/* True when perms grant permission need. Pure. */
bool auth_perms_allow(const struct auth_perms *p, const char *need);

/* Looks (tid, sub) up in the cache. Returns 1 with *allowed set, or 0 on a
 * miss. */
int auth_perms_cached(struct auth *a, long long tid, const char *sub, const char *need,
                      bool *allowed);
/* Caches the permissions of (tid, sub). */
void auth_perms_store(struct auth *a, long long tid, const char *sub,
                      const struct auth_perms *p);
/* Loads a core (platform) user's permissions from core.users: a superuser
 * has all, others none. Returns 1, 0 when the user is missing or disabled,
 * or -1. Not cached; callers store it. */
int auth_core_perms(struct auth *a, const char *sub, struct auth_perms *out, char *err,
                    size_t errlen);
/* Roles or permissions of user sub of tenant tid (NULL: any user) changed:
 * drops the cache entries here and tells other replicas. Returns 0 or -1. */
int auth_rbac_changed(struct auth *a, long long tid, const char *sub, struct db_error *err);

#endif
