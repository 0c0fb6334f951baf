/* tenant_ops: the interface through which rt.tenant reaches the engines.
 *
 * rt.tenant (lua/rt_tenant.c) is a thin binding; provisioning, migrations
 * and seeds sit above it. It calls them through a struct rt_tenant_engine,
 * implemented in the engines layer (tenant_engine.c) and handed down to the
 * Lua state, so the call goes down a pointer and no file includes one
 * above it. Pure declarations: no Lua, no libpq.
 *
 * Uses: config.h, err.h, report.h. */
#ifndef RT_TENANT_OPS_H
#define RT_TENANT_OPS_H

#include <stdbool.h>

#include "config.h"
#include "err.h"
#include "report.h"
#include "tenant.h"

struct rt_tenant_owner {
    const char *email, *username, *full_name, *password_hash;
};

/* create's arguments; strings borrowed for the call. */
struct rt_tenant_create {
    struct tenant_spec tenant; /* code, name, isolation, server, domains */
    bool force;
    const struct rt_tenant_owner *owner; /* NULL: no first user */
};

/* update's fields: set[i] false keeps the field; value NULL with set clears
 * it (domain, subdomain) or keeps it (name, settings). */
enum { RT_TENANT_NAME, RT_TENANT_DOMAIN, RT_TENANT_SUBDOMAIN, RT_TENANT_SETTINGS };
struct rt_tenant_update {
    bool set[4];
    const char *value[4];
};

/* migrate's arguments. */
struct rt_tenant_migrate {
    const char *cmd;    /* "up", "down" or "status" */
    const char *tenant; /* NULL with all */
    bool all, dry_run;
    int to;
    bool to_set;
    int steps; /* -1: none */
};

/* What rt.tenant calls. Each returns 0, or -1 with err (a duplicate code,
 * domain or subdomain as SQLSTATE 23505; a missing tenant as "no tenant
 * ..."), except migrate, which returns the migration's exit status (0, 1,
 * 2) and fills rep (freed by the caller with report_free) and, when
 * nonzero, err. */
struct rt_tenant_engine {
    int (*create)(const struct config *cfg, const struct rt_tenant_create *spec,
                  long long *id, struct rt_err *err);
    int (*set_status)(const struct config *cfg, const char *code, const char *status,
                      struct rt_err *err);
    int (*purge)(const struct config *cfg, const char *code, struct rt_err *err);
    int (*update)(const struct config *cfg, const char *code,
                  const struct rt_tenant_update *u, struct rt_err *err);
    int (*migrate)(const struct config *cfg, const struct rt_tenant_migrate *args,
                   struct migrate_report *rep, struct rt_err *err);
    int (*seed)(const struct config *cfg, const char *code, int *applied, int *skipped,
                struct rt_err *err);
};

#endif
