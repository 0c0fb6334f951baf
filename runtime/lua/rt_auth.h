/* rt.auth: passwords, sessions and token state for scripts (over auth.c and
 * crypto.c).
 *
 *   hash_password(pw)            -> argon2id PHC string       (offload routes)
 *   verify_password(pw, hash)    -> boolean; a nil hash costs the same (offload)
 *   password_problem(pw)         -> nil | what is wrong (length, ...)
 *   issue_token{sub=, scope=, tid=}  -> token, exp | nil, message
 *   login{sub=, scope=, tid=}    -> {access_token, refresh_token, token_type, expires_in}
 *   refresh(token)               -> that table plus sub, scope, tid | nil
 *   logout([refresh_token])      revokes the caller's token (and that session)
 *   logout_others()              -> n: ends the caller's other sessions
 *   revoke_user(user_id)         every token of that user of the current tenant
 *   rbac_changed([user_id [, tenant_id]])  drops cached permissions (nil: the
 *                                whole tenant; tenant_id for platform requests)
 *                                (both take effect when the request commits)
 *   revoke_tenant(tenant_id)     every session and token of that tenant, at once
 *                                (storage recreated or purged, tenant deleted)
 *   create_api_key(name, creator) -> key (shown once), id
 *   revoke_api_key(id)           -> boolean
 *   config()                     -> password and lockout settings
 *
 * Available while a request runs: dispatch.c binds the request's auth service,
 * claims, tenant and lane with rt_auth_bind. In a tenant's override
 * environment every function acts for that tenant only (see rt_auth_bind). Password
 * functions raise unless the route runs on an offload lane (offload = true or "admin"). */
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
