/* dispatch: worker Lua states and request dispatch (the third of the Lua
 * host's four modules; see luastate.h).
 *
 * A worker (struct vm_worker) is one lua_State owned by one worker thread,
 * built for one script set (scripts.h) with the set's modules, the prelude,
 * rt.routes and rt.scripts_status. Scripts run in per-tenant environments
 * inside it (globals, module-level state and `require`d modules of one
 * tenant are invisible to another), created on a tenant's first request and
 * evicted least-recently-used beyond scripts.tenant_envs. A file is run in
 * an environment the first time one of its routes is called there.
 * vm_handle runs one request: checks the route's permission (authz.c),
 * builds `req`, calls the handler through the prelude, ends the request
 * transaction (commit on a normal return, rollback otherwise) and produces
 * the response.
 *
 * Uses: luastate.c, scripts.c, authz.c, tenant.c (tenant_scope), db.c,
 * log.c, errors.c, lua/sandbox.c (environments), lua/limits.c, lua/keys.h,
 * lua/rt_db.c and lua/rt_auth.c (binding a request to the state),
 * lua/rt_json.c, router.c, lane.c, auth.c, crypto.c, err.c. */
#ifndef RT_DISPATCH_H
#define RT_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "auth.h"
#include "crypto.h"
#include "db.h"
#include "lane.h"
#include "router.h"
#include "scripts.h"
#include "tenant.h"

struct vm_worker;

/* Creates a worker state running script set s (retained until
 * vm_worker_free). board (borrowed, may be NULL) backs rt.scripts_status().
 * NULL with err filled. */
struct vm_worker *vm_worker_new(struct vm_scripts *s, struct vm_board *board,
                                struct rt_err *err);
/* The set the worker runs; borrowed. */
const struct vm_scripts *vm_worker_scripts(const struct vm_worker *w);
/* NULL is fine. */
void vm_worker_free(struct vm_worker *w);

struct vm_kv {
    const char *key;
    const char *value;
    size_t value_len;
};

struct vm_request {
    const char *id; /* request id */
    const char *method;
    const char *path;
    const struct vm_view *view; /* borrowed: the routes match->route_id is from */
    const struct router_match *match;
    const struct vm_kv *query;
    int nquery;
    const struct vm_kv *headers; /* names in any case; req.headers is lower-case */
    int nheaders;
    const char *body; /* NULL when there is none */
    size_t body_len;
    struct db_pool *pool;                   /* borrowed: the tenant's database */
    const struct tenant_info *tenant;       /* borrowed; NULL: no tenant */
    bool tenant_unknown;                    /* one was named that cannot be used */
    const struct crypto_jwt_claims *claims; /* borrowed; NULL: no token */
    struct auth *auth;                      /* borrowed: sessions, permissions */
    enum lane lane; /* the route's: what rt.auth and rt.tenant allow */
};

struct vm_header {
    char *name;
    char *value;
};

struct vm_response {
    int status;
    char *body; /* malloc'd, owned by the response */
    size_t body_len;
    char *content_type;        /* malloc'd or NULL */
    struct vm_header *headers; /* malloc'd array, owned */
    int nheaders;
    bool retry_later; /* the database is unavailable: send Retry-After */
};

/* Runs req in worker w and fills resp, which the caller frees with
 * vm_response_free. A route that declares a permission is checked first
 * (403; 401 when the user is gone or disabled) against the user's cached
 * permission set, loaded in the request's transaction on a miss (authz.h).
 * Never fails: internal failures become a 5xx response (the detail is
 * logged with the request id, never sent). */
void vm_handle(struct vm_worker *w, const struct vm_request *req, struct vm_response *resp);
void vm_response_free(struct vm_response *resp);

/* Fills resp with the JSON error shape for status (a 503 gets Retry-After). */
void vm_response_error(struct vm_response *resp, int status, const char *code,
                       const char *message, const char *request_id);

#endif
