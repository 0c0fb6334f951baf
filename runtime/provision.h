/* provision: the tenant lifecycle and `runtime tenant`.
 *
 * One code path for the command line and (later) the HTTP API: directory row
 * (status provisioning) -> storage (schema or database; nothing for shared)
 * -> tenant migrations -> seeds -> active. Any failure compensates: the
 * storage is dropped and the row marked failed with the reason, so a retry
 * starts clean.
 *
 * It sits above migrate.c (it runs the tenant's migrations through
 * migrate_run), which is why it is not part of tenant.c: DESIGN.md puts
 * tenant.c below migrate.c. Uses: tenant.c, migrate.c, seed.c, config.c. */
#ifndef RT_PROVISION_H
#define RT_PROVISION_H

#include <stdbool.h>

#include <libpq-fe.h>

#include "config.h"
#include "tenant.h"

/* Provisions spec. With force, an existing tenant's storage is dropped and
 * built again (re-provision). Returns 0, or -1 with err (err->conflict for a
 * duplicate). *id is the tenant's id on success. */
int provision_tenant(const struct config *cfg, const struct tenant_spec *spec, bool force,
                     long long *id, struct tenant_error *err);

/* An owner-role connection to server ("main" holds the directory). Returns
 * NULL with err filled when the server is unknown, database.owner_url is not
 * set or the connection fails. */
PGconn *provision_connect(const struct config *cfg, const char *server,
                          struct tenant_error *err);

/* Sets a tenant's status (active, suspended, deleted). Returns 0 or -1. */
int provision_set_status(const struct config *cfg, const char *code, const char *status,
                         struct tenant_error *err);

/* Drops a tenant's storage and its directory row. Returns 0 or -1. */
int provision_purge(const struct config *cfg, const char *code, struct tenant_error *err);

/* Tops up the pre-migrated storage (spare.h) that the next tenant of this
 * isolation on server (NULL: main) will take: spare schemas up to
 * tenancy.spare_schemas, the template database; drops what older migration
 * files made. Call it after provision_tenant returned (the HTTP API: in the
 * background); it takes about as long as creating a tenant did without it.
 * Returns 0, or -1 with err; the tenants are not affected either way. */
int provision_replenish(const struct config *cfg, const char *server, const char *isolation,
                        struct tenant_error *err);

/* provision_replenish for server (NULL: main) and isolation on a background
 * thread, so the HTTP request that created a tenant does not wait for it.
 * At most one refill runs at a time; asking while one runs queues one more
 * for that server and isolation (asking again does not queue it twice).
 * Failures are logged. cfg is borrowed until provision_background_stop. */
void provision_replenish_later(const struct config *cfg, const char *server,
                               const char *isolation);

/* Waits for a background refill in progress, drops queued ones, and refuses
 * new ones. Call before cfg is freed (server shutdown). */
void provision_background_stop(void);

/* `runtime tenant ...`: argv[0] is "tenant". Returns the exit status. */
int provision_main(int argc, char **argv);

#endif
