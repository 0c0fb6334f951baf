/* provision: the tenant lifecycle engine.
 *
 * One code path for the command line (cmd_tenant.c) and the HTTP API
 * (rt.tenant): directory row (status provisioning) -> storage (schema or
 * database; nothing for shared) -> tenant migrations -> seeds -> active. Any
 * failure compensates: the storage is dropped and the row marked failed with
 * the reason, so a retry starts clean. It returns what it did and prints
 * nothing; failures come back in a struct rt_err (err.h).
 *
 * It sits above migrate.c (it runs the tenant's migrations through
 * migrate_run), which is why it is not part of tenant.c: DESIGN.md puts
 * tenant.c below migrate.c. Uses: tenant.c, migrate.c, seed.c, spare.c,
 * auth.h (the revocation statement), db.c (connections), sql.c, err.c,
 * log.c (the background refill), config.c. */
#ifndef RT_PROVISION_H
#define RT_PROVISION_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "config.h"
#include "err.h"
#include "tenant.h"

/* Where a new tenant's storage came from. */
enum provision_storage {
    PROVISION_STORAGE_SHARED,   /* none: its rows live in the shared tables */
    PROVISION_STORAGE_EMPTY,    /* an empty schema or database, migrated in place */
    PROVISION_STORAGE_SPARE,    /* a pre-migrated spare schema, renamed into place */
    PROVISION_STORAGE_TEMPLATE, /* a clone of the pre-migrated template database */
};

/* What provision_tenant did. */
struct provision_result {
    long long id; /* the tenant's id in the directory */
    enum provision_storage storage;
    /* Why pre-made storage that existed was not used and empty storage was
     * made instead ("" when nothing fell back); the tenant is fine either
     * way. */
    char warning[512];
};

/* Provisions spec. With force, an existing tenant's storage is dropped and
 * built again (re-provision). Returns 0 with *res filled, or -1 with err
 * (rt_err_duplicate(err) for a duplicate code, domain or subdomain). */
int provision_tenant(const struct config *cfg, const struct tenant_spec *spec, bool force,
                     struct provision_result *res, struct rt_err *err);

/* An owner-role connection to server ("main" holds the directory). Returns
 * NULL with err filled when the server is unknown, database.owner_url is not
 * set or the connection fails. */
PGconn *provision_connect(const struct config *cfg, const char *server, struct rt_err *err);

/* Sets a tenant's status (active, suspended, deleted); deleting it ends its
 * sessions. Returns 0, or -1 with err ("no tenant '<code>'" when there is
 * none). */
int provision_set_status(const struct config *cfg, const char *code, const char *status,
                         struct rt_err *err);

/* Ends the tenant's sessions, drops its storage and its directory row.
 * Returns 0, or -1 with err ("no tenant '<code>'" when there is none). */
int provision_purge(const struct config *cfg, const char *code, struct rt_err *err);

/* Tops up the pre-migrated storage (spare.h) that the next tenant of this
 * isolation on server (NULL: main) will take: spare schemas up to
 * tenancy.spare_schemas, the template database; drops what older migration
 * files made. Call it after provision_tenant returned (the HTTP API: in the
 * background); it takes about as long as creating a tenant did without it.
 * Returns 0, or -1 with err; the tenants are not affected either way. */
int provision_replenish(const struct config *cfg, const char *server, const char *isolation,
                        struct rt_err *err);

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

/* One server's part of provision_spares. */
struct provision_spares_server {
    char name[64];
    bool ok;
    int count;         /* made, or with drop dropped */
    struct rt_err err; /* when !ok */
};

struct provision_spares_report {
    struct provision_spares_server *servers; /* owned: provision_spares_free */
    size_t n;
    bool unknown_server; /* the server asked for is not in the config */
};

void provision_spares_free(struct provision_spares_report *rep);

/* Makes the pre-made storage of every server, or of server (NULL: all), and
 * drops what older migration files made; with drop, drops all of this
 * installation's instead. rep is filled either way (provision_spares_free
 * after). Returns 0 when every server was done; 1 when one failed or server
 * is unknown (rep says which); -1 with err when nothing could be done (no
 * directory connection, migration files that do not load). */
int provision_spares(const struct config *cfg, const char *server, bool drop,
                     struct provision_spares_report *rep, struct rt_err *err);

#endif
