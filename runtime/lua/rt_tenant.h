/* rt.tenant: the tenant lifecycle for platform endpoints.
 *
 *   create{code=, name=, isolation=, server=, domain=, subdomain=, force=,
 *          owner = {email=, password_hash=, username=, full_name=}} -> id
 *   set_status(code, "active" | "suspended" | "deleted")           -> true
 *   purge(code)                                                    -> true
 *   update(code, {name=, domain=, subdomain=, settings = json})    -> true
 *   migrate{tenant = code | all = true, cmd = "up"|"down"|"status", to=,
 *           steps=, dry_run=}                                      -> report
 *   seed(code)                                  -> {applied=, skipped=}
 *
 * Misuse raises. A failure returns nil, message, kind ("conflict",
 * "not_found", "failed"); a migration that ran but failed returns nil, the
 * first failure's message, its report (a table: see docs/SCRIPTS.md) and the
 * exit status of `runtime migrate` (1 failed, 2 a request it refused).
 * They connect as the owner role (database.owner_url), so the server needs
 * it for these endpoints. create, purge, migrate and seed take long: they
 * raise unless the route runs on the admin lane (offload = "admin"). With
 * an owner, create also makes the tenant's first user (super_admin); if that
 * fails the tenant is purged.
 *
 * The binding does none of this itself: it calls a struct rt_tenant_engine
 * (implemented in the engines layer, tenant_engine.c) that the state's
 * builder hands down as the module's context (struct rt_module's ctx, read
 * with sandbox_module_ctx), so no binding includes an engine. A state built
 * without one (runtime check) raises "not available here".
 *
 * Uses: tenant_ops.h (the interface), report.h (the migration report),
 * tenant.c (codes), lua/rt_auth.c (lane, confinement), lua/sandbox.c (the
 * module's context). */
#ifndef RT_LUA_RT_TENANT_H
#define RT_LUA_RT_TENANT_H

#include "tenant_ops.h"

struct lua_State;

/* Builds the rt.tenant table (a lua_CFunction: it needs no Lua header here,
 * so the callers that list it, http.c and check.c, see none). */
int luaopen_rt_tenant(struct lua_State *L);

#endif
