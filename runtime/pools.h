/* pools: the server's connection pools for tenants outside the main database.
 *
 * A database-mode tenant, or a tenant on another server, is served from a
 * pool per (server, database), made on the tenant's first request. A pool no
 * request has used for database.idle_pool_ms is closed with its connections
 * by a background thread, and made again on the tenant's next request: a
 * server that has served thousands of tenant databases does not keep a
 * connection to each. Requests hold a reference while they use a pool, so a
 * pool is never closed under a request.
 *
 * Uses: db.c, config.c, log.c, tenant.h (tenant_info). */
#ifndef RT_POOLS_H
#define RT_POOLS_H

#include <stddef.h>

#include "config.h"
#include "db.h"
#include "tenant.h"

struct pools;

/* cfg and main (the pool of the main database, never closed here) are
 * borrowed and must outlive the set. Starts the closing thread when
 * database.idle_pool_ms > 0. Returns NULL when out of memory. */
struct pools *pools_new(const struct config *cfg, struct db_pool *main);

/* Stops the thread and closes every pool; no reference may be held. NULL is
 * fine. */
void pools_free(struct pools *ps);

/* The pool of t's (server, database), made on first use, with a reference
 * the caller gives back with pools_put when it has checked in every
 * connection. t NULL or in the main database: the main pool. NULL when t's
 * server is not configured or out of memory. Only tenants from the directory
 * get here, so a bogus identifier never makes a pool. */
struct db_pool *pools_get(struct pools *ps, const struct tenant_info *t);

/* Gives back the reference of pools_get. p may be the main pool or NULL. */
void pools_put(struct pools *ps, struct db_pool *p);

/* The number of open tenant pools (the main pool not counted). */
size_t pools_count(struct pools *ps);

#endif
