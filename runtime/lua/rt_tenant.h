/* rt.tenant: the tenant lifecycle for platform endpoints, over provision.c,
 * migrate.c and seed.c (the same code paths as `runtime tenant|migrate|seed`).
 *
 *   create{code=, name=, isolation=, server=, domain=, subdomain=, force=,
 *          owner = {email=, password_hash=, username=, full_name=}} -> id
 *   set_status(code, "active" | "suspended" | "deleted")           -> true
 *   purge(code)                                                    -> true
 *   update(code, {name=, domain=, subdomain=, settings = json})    -> true
 *   migrate{tenant = code | all = true, cmd = "up"|"down"|"status", to=,
 *           steps=, dry_run=}                      -> report, exit status
 *   seed(code)                                  -> {applied=, skipped=}
 *
 * Failures return nil, message, kind ("conflict", "not_found", "failed").
 * They connect as the owner role (database.owner_url), so the server needs
 * it for these endpoints. create, purge, migrate and seed take long: they
 * raise unless the route runs on the admin lane (offload = "admin"). With
 * an owner, create also makes the tenant's first user (super_admin); if that
 * fails the tenant is purged. */
#ifndef RT_LUA_RT_TENANT_H
#define RT_LUA_RT_TENANT_H

#include <lua.h>

int luaopen_rt_tenant(lua_State *L);

#endif
