/* tenant_engine: rt.tenant's engine, over provisioning, migrations and
 * seeds (the same code paths as `runtime tenant|migrate|seed`).
 *
 * http.c lists rt.tenant with &tenant_engine as its context, the Lua host
 * hands that down to the states it builds, and the binding finds it there
 * (sandbox_module_ctx), so it calls the engines without including them.
 *
 * Uses: tenant_ops.h, provision.c, migrate.c, seed.c, tenant.c, sql.c,
 * err.c. */
#ifndef RT_TENANT_ENGINE_H
#define RT_TENANT_ENGINE_H

#include "tenant_ops.h"

extern const struct rt_tenant_engine tenant_engine;

#endif
