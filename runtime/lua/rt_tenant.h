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
 * first failure's message, and its report (a table: see docs/SCRIPTS.md).
 * They connect as the owner role (database.owner_url), so the server needs
 * it for these endpoints. create, purge, migrate and seed take long: they
 * raise unless the route runs on the admin lane (offload = "admin"). With
 * an owner, create also makes the tenant's first user (super_admin); if that
 * fails the tenant is purged.
 *
 * The binding does none of this itself: it calls a struct rt_tenant_engine
 * (implemented in the engines layer, tenant_engine.c) that the state's
 * builder hands down through the registry (RT_TENANT_ENGINE_KEY), so no
 * binding includes an engine.
 *
 * Uses: tenant_ops.h (the interface), report.h (the migration report),
 * tenant.c (codes), lua/rt_auth.c (lane, confinement). */
#ifndef RT_LUA_RT_TENANT_H
#define RT_LUA_RT_TENANT_H

#include <stdbool.h>

#include <lua.h>

#include "tenant_ops.h"

/* Registry field holding a light userdata: the const struct
 * rt_tenant_engine of the state (borrowed; outlives every state). */
#define RT_TENANT_ENGINE_KEY "rt.tenant.engine"

/* Stores e (borrowed) in L's registry for rt.tenant. */
void rt_tenant_set_engine(lua_State *L, const struct rt_tenant_engine *e);

/* Builds the rt.tenant table. Its functions raise "not available here"
 * when L's registry has no engine. */
int luaopen_rt_tenant(lua_State *L);

#endif
