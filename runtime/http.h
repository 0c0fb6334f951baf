/* http: the libmicrohttpd daemon and the request path.
 *
 * Thread-pool mode with internal epoll: each worker thread owns one vm
 * (created on its first request, made again after a script reload) and runs
 * handlers to completion. Each request holds the script set that was current
 * when it arrived (host.c) and runs on it to the end. Limits come
 * from config: body size (413), connection memory (libmicrohttpd answers 414
 * or 431 itself), connection timeout, connection limit and per-IP limit.
 * Routing happens on the first callback, before the body is read and before
 * any database work: 404, 405 with Allow, 413 from Content-Length.
 * Every response carries X-Request-Id; one access-log line per request.
 *
 * Uses: host.c, dispatch.c, bindings.c, lua/rt_tenant.c and tenant_engine.c
 * (rt.tenant and its context, handed to the Lua host), tenant.c (resolution),
 * auth.c (tokens, revocations), crypto.c, pools.c, lane.c, router.c, db.c,
 * errors.c, err.c, buf.c, log.c, config.c. */
#ifndef RT_HTTP_H
#define RT_HTTP_H

#include <stddef.h>

#include "config.h"
#include "db.h"
#include "host.h"
#include "dispatch.h"

struct http_server;

/* The rt.* modules of the server's states, for host_start (static lists;
 * rt.tenant among them). */
const struct rt_module *const *http_modules(void);

/* Starts serving. cfg, host and pool are borrowed and must outlive the
 * server. Returns NULL with err filled when the daemon cannot start. */
struct http_server *http_start(const struct config *cfg, struct host *host,
                               struct db_pool *pool, struct rt_err *err);

/* Graceful stop: stops accepting, gives in-flight requests up to
 * cfg->http_shutdown_grace seconds to finish, then stops the daemon and frees
 * the worker states. s may be NULL. */
void http_stop(struct http_server *s);

#endif
