/* migrate_fleet: up and down over core, shared and the tenants (the tenants
 * fanned out over worker threads), and pre-made storage for spare.c.
 *
 * Uses: migrate_target.c, report.c, err.c, sql.c, steps.c. */
#ifndef RT_MIGRATE_FLEET_H
#define RT_MIGRATE_FLEET_H

#include "err.h"
#include "migrate_target.h"

/* Runs up or down (c->cmd) for eng (migrate.c sets it up), filling
 * eng->rep. Returns the exit status. */
int migrate_up_down(struct engine *eng, const struct migrate_request *c);

/* Brings storage that belongs to no tenant yet (a spare schema, or the public
 * schema of a template database: see spare.h) to the head of the tenant
 * migrations, under the usual lock, ledger and per-step transactions. Steps
 * see m.target "tenant" without m.tenant and with an empty app.tenant_id, as
 * for the shared target; nothing is recorded in the directory. dbname NULL:
 * the database of the server's URL. On success *version and fp hold the
 * state reached. Returns 0, or -1 with err. Safe on any thread. */
int migrate_storage(const struct config *cfg, const char *server, const char *dbname,
                    const char *schema, int *version, char fp[65], struct rt_err *err);

#endif
