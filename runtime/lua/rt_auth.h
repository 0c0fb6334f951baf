/* rt.auth: passwords, sessions and token state for scripts (over auth.c and
 * crypto.c). Misuse raises; a failure of the outside world (the database,
 * no randomness, no token keys) returns nil, message, err_t exactly as
 * rt.db does (rt_db_push_error; docs/SCRIPTS.md, "The rt modules: one
 * convention"), recording a database failure as the request's.
 *
 *   hash_password(pw)            -> argon2id PHC string       (offload routes)
 *   verify_password(pw, hash)    -> boolean; a nil hash costs the same (offload)
 *   password_problem(pw)         -> nil | what is wrong (length, ...)
 *   issue_token{sub=, scope=, tid=}  -> token, exp | nil, message, err_t
 *   login{sub=, scope=, tid=}    -> {access_token, refresh_token, token_type,
 *                                   expires_in} | nil, message, err_t
 *   refresh(token)               -> that table plus sub, scope, tid | nil (no
 *                                   such live token) | nil, message, err_t
 *   logout([refresh_token])      -> true | nil, message, err_t: revokes the
 *                                   caller's token (and that session)
 *   logout_others()              -> n | nil, message, err_t: ends the caller's
 *                                   other sessions
 *   revoke_user(user_id)         -> true | nil, message, err_t: every token of
 *                                   that user of the current tenant
 *   rbac_changed([user_id [, tenant_id]])  -> true | nil, message, err_t: drops
 *                                   cached permissions (nil: the whole tenant;
 *                                   tenant_id for platform requests)
 *                                   (both take effect when the request commits)
 *   revoke_tenant(tenant_id)     -> true | nil, message, err_t: every session
 *                                   and token of that tenant, at once (storage
 *                                   recreated or purged, tenant deleted)
 *   create_api_key(name, creator) -> key (shown once), id | nil, message, err_t
 *   revoke_api_key(id)           -> true | false (no such key) | nil, message, err_t
 *   config()                     -> password and lockout settings
 *
 * Available while a request runs: dispatch.c binds the request's auth service,
 * claims, tenant and lane with rt_auth_bind. In a tenant's override
 * environment every function acts for that tenant only (see rt_auth_bind). Password
 * functions raise unless the route runs on an offload lane (offload = true or "admin").
 *
 * Uses: auth.c, crypto.c, config.c, log.c, lua/rt_db.c (the failure
 * convention, and rt.db for the confined user check), lua/sandbox.c. */
#ifndef RT_LUA_RT_AUTH_H
#define RT_LUA_RT_AUTH_H

#include <stdbool.h>

#include <lua.h>

#include "auth.h"
#include "lane.h"

int luaopen_rt_auth(lua_State *L);

/* Binds the current request (a NULL: none). claims and a are borrowed for the
 * request's duration; tid is the resolved tenant (0: none).
 *
 * confined: the request runs in the environment of a tenant with override
 * scripts, where the tenant's own code runs and may have changed anything
 * the operator's code in that environment uses (module tables, globals). The
 * whole run is then held to what the tenant may do: tokens and sessions
 * (issue_token, login) only with scope "tenant", for tid itself, for an
 * active user of tid (checked in the request's transaction); refresh only of
 * tid's sessions; logout and logout_others only on a token of tid;
 * revoke_user and rbac_changed within tid; no platform API keys, no
 * rt.tenant, no rt.scripts_status. Misuse raises. */
void rt_auth_bind(lua_State *L, struct auth *a, const struct crypto_jwt_claims *claims,
                  long long tid, enum lane lane, bool confined);

/* Ends the request's pending revoke_user and rbac_changed calls: applied
 * when committed (failures are logged with request_id), dropped otherwise.
 * Allocates nothing; call after the transaction ends, before unbinding. */
void rt_auth_settle(lua_State *L, bool committed, const char *request_id);

/* The lane the current request runs on (raises outside a request). */
enum lane rt_auth_lane(lua_State *L);

/* Whether the current request is confined (see rt_auth_bind); false outside
 * a request. */
bool rt_auth_confined(lua_State *L);

#endif
