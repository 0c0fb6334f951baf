/* http: libmicrohttpd daemon, limits, per-request state (see http.h). */
#include "http.h"

#include "auth.h"
#include "bindings.h"
#include "buf.h"
#include "crypto.h"
#include "errors.h"
#include "lane.h"
#include "log.h"
#include "lua/rt_tenant.h"
#include "tenant_engine.h"
#include "pools.h"
#include "router.h"
#include "tenant.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

/* Bodies past max_body are read and dropped (so the client gets its 413)
 * up to this many bytes more; beyond that the connection is closed. */
#define DISCARD_LIMIT (8u << 20)

struct http_server {
    struct MHD_Daemon *d;
    const struct config *cfg;
    struct host *host;
    struct db_pool *pool;

    struct tenant_dir *dir;
    struct tenant_sources sources;
    struct auth *auth;

    /* The offload and admin lanes (indexed by enum lane; none for
     * LANE_HTTP): their routes run there while the connection is suspended. */
    struct lane_pool *lanes[LANE_ADMIN + 1];

    struct pools *pools; /* of tenants outside the main database */

    pthread_mutex_t mu; /* guards vms and inflight waits */
    pthread_cond_t idle;
    struct vm_worker **vms; /* one per worker thread that served a request */
    size_t nvms, capvms;
    atomic_int inflight;
};

/* Headers or query arguments; keys and values are borrowed from
 * libmicrohttpd and live as long as the request. */
struct kv_list {
    struct vm_kv *v;
    int n, cap;
};

enum request_kind {
    REQ_ROUTE,
    REQ_HEALTHZ,
    REQ_READYZ,
    REQ_TOO_LARGE, /* answered on the first callback */
    REQ_REFUSED,   /* refused before the body: the answer is ready */
};

struct request {
    struct http_server *srv;
    enum request_kind kind;
    char id[72];
    char *method;
    char *path;
    struct timespec start;
    struct vm_scripts *scripts; /* retained: the set this request runs */
    const struct vm_view *view; /* the routes match is from */
    struct router_match match;
    struct buf body;
    bool has_body;
    bool dropping; /* the body is read and thrown away */
    size_t discarded;
    int status;
    size_t bytes;
    struct tenant_snapshot *snap;     /* retained while the request lives */
    const struct tenant_info *tenant; /* borrowed from snap; NULL: none */
    bool tenant_unknown;              /* named, but unknown or unusable (see scripts.h) */
    struct crypto_jwt_claims claims;  /* valid when authenticated */
    bool authenticated;

    /* Requests on a lane: what the lane's thread needs, and its answer. */
    struct MHD_Connection *conn;
    struct vm_request vreq;
    struct kv_list headers, query;
    struct vm_response answer;
    bool answered; /* answer is ready: send it on the next callback */
    struct lane_item queued;
    const char *allow; /* REQ_REFUSED: the Allow header, or NULL (borrowed) */
};

static _Thread_local struct vm_worker *tls_vm;
static _Thread_local size_t tls_vm_slot; /* its index in the server's vms */
static _Thread_local uint64_t tls_rng[2];

/* ---- helpers ------------------------------------------------------------ */

static uint64_t rng_next(void)
{
    /* xorshift128+, seeded per thread from the kernel. Request ids need to
     * be unique, not secret. */
    if (!tls_rng[0] && !tls_rng[1]) {
        if (getrandom(tls_rng, sizeof tls_rng, 0) != sizeof tls_rng ||
            !(tls_rng[0] | tls_rng[1])) {
            tls_rng[0] = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&tls_rng;
            tls_rng[1] = 0x9e3779b97f4a7c15ULL;
        }
    }
    uint64_t s1 = tls_rng[0];
    const uint64_t s0 = tls_rng[1];
    tls_rng[0] = s0;
    s1 ^= s1 << 23;
    tls_rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return tls_rng[1] + s0;
}

/* Accepts a client's X-Request-Id (from a load balancer) when it is short and
 * plain; otherwise makes one. */
static void request_id(struct MHD_Connection *c, char *out, size_t cap)
{
    const char *in = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
    if (in) {
        size_t n = 0;
        while (in[n] && n < 64 &&
               ((in[n] >= 'a' && in[n] <= 'z') || (in[n] >= 'A' && in[n] <= 'Z') ||
                (in[n] >= '0' && in[n] <= '9') || in[n] == '-' || in[n] == '_' ||
                in[n] == '.'))
            n++;
        if (n > 0 && in[n] == '\0') {
            snprintf(out, cap, "%s", in);
            return;
        }
    }
    snprintf(out, cap, "%016llx", (unsigned long long)rng_next());
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* This thread's state for script set `scripts`: made on the thread's first
 * request, and made again when a request runs another set than the state's
 * (after a reload; the old state goes, and with it its hold on its set). */
static struct vm_worker *worker_vm(struct http_server *s, struct vm_scripts *scripts,
                                   const char *rid)
{
    struct rt_err err;
    struct vm_worker *vm;

    if (tls_vm && vm_worker_scripts(tls_vm) == scripts)
        return tls_vm;
    vm = vm_worker_new(scripts, host_board(s->host), &err);
    if (!vm) {
        log_msg(LOG_LEVEL_ERROR, rid, "cannot create a worker Lua state: %s", err.msg);
        return NULL;
    }
    pthread_mutex_lock(&s->mu);
    if (tls_vm) {
        s->vms[tls_vm_slot] = vm;
        pthread_mutex_unlock(&s->mu);
        vm_worker_free(tls_vm);
        tls_vm = vm;
        return vm;
    }
    if (s->nvms == s->capvms) {
        size_t cap = s->capvms ? s->capvms * 2 : 8;
        struct vm_worker **v = realloc(s->vms, cap * sizeof *v);
        if (!v) {
            pthread_mutex_unlock(&s->mu);
            vm_worker_free(vm);
            return NULL;
        }
        s->vms = v;
        s->capvms = cap;
    }
    tls_vm_slot = s->nvms;
    s->vms[s->nvms++] = vm;
    pthread_mutex_unlock(&s->mu);
    tls_vm = vm;
    return vm;
}

/* ---- responses ---------------------------------------------------------- */

/* Queues resp (whose body this takes over) with the runtime's headers. */
static enum MHD_Result respond(struct MHD_Connection *c, struct request *r,
                               struct vm_response *vr, const char *allow)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    char retry[16];

    if (!vr->body) {
        vm_response_free(vr);
        return MHD_NO;
    }
    resp = MHD_create_response_from_buffer(vr->body_len, vr->body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        vm_response_free(vr);
        return MHD_NO;
    }
    vr->body = NULL; /* owned by resp now */
    if (vr->content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, vr->content_type);
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    for (int i = 0; i < vr->nheaders; i++)
        if (MHD_add_response_header(resp, vr->headers[i].name, vr->headers[i].value) !=
            MHD_YES)
            log_msg(LOG_LEVEL_WARN, r->id, "response header '%s' was refused",
                    vr->headers[i].name);
    if (allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    if (vr->retry_later) {
        snprintf(retry, sizeof retry, "%d", r->srv->cfg->database_retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, retry);
    }
    r->status = vr->status;
    r->bytes = vr->body_len;
    ret = MHD_queue_response(c, (unsigned)vr->status, resp);
    MHD_destroy_response(resp);
    vm_response_free(vr);
    return ret;
}

static enum MHD_Result send_error_code(struct MHD_Connection *c, struct request *r,
                                       int status, const char *code, const char *message,
                                       const char *allow)
{
    struct vm_response vr;
    memset(&vr, 0, sizeof vr);
    vm_response_error(&vr, status, code, message, r->id);
    return respond(c, r, &vr, allow);
}

static enum MHD_Result send_error(struct MHD_Connection *c, struct request *r, int status,
                                  const char *message, const char *allow)
{
    return send_error_code(c, r, status, NULL, message, allow);
}

static enum MHD_Result send_json(struct MHD_Connection *c, struct request *r, int status,
                                 const char *json)
{
    struct vm_response vr;
    memset(&vr, 0, sizeof vr);
    vr.status = status;
    vr.body = strdup(json);
    vr.body_len = vr.body ? strlen(json) : 0;
    vr.content_type = strdup("application/json");
    return respond(c, r, &vr, NULL);
}

/* True when the client waits for "100 Continue" before it sends its body. */
static bool expects_continue(struct MHD_Connection *c)
{
    const char *e = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
    return e && strcasecmp(e, "100-continue") == 0;
}

/* Refuses a request on its first callback, before the body is read.
 * libmicrohttpd sends "100 Continue" after the first callback unless a
 * response is queued by then, so a client that waits for it gets the final
 * status now instead (and does not send a body that would only be dropped;
 * the connection then closes). Any other client gets it on the last
 * callback, which keeps a keep-alive connection open. allow is borrowed and
 * must live as long as r. */
static enum MHD_Result refuse(struct MHD_Connection *c, struct request *r, int status,
                              const char *code, const char *message, const char *allow)
{
    r->kind = REQ_REFUSED;
    r->allow = allow;
    vm_response_error(&r->answer, status, code, message, r->id);
    if (expects_continue(c))
        return respond(c, r, &r->answer, allow);
    return MHD_YES;
}

/* The headers that name the tenant or the caller: given twice, the first
 * copy would win here while a proxy in front may have checked the other. */
static const char *const single_headers[] = {
    MHD_HTTP_HEADER_HOST,
    "X-Tenant-Id",
    MHD_HTTP_HEADER_AUTHORIZATION,
};
#define NSINGLE (sizeof single_headers / sizeof single_headers[0])

static enum MHD_Result count_single(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    int *counts = cls;
    (void)kind;
    (void)value;
    for (size_t i = 0; i < NSINGLE; i++)
        if (strcasecmp(key, single_headers[i]) == 0)
            counts[i]++;
    return MHD_YES;
}

/* The first of single_headers the request carries more than once, or NULL. */
static const char *duplicate_header(struct MHD_Connection *c)
{
    int counts[NSINGLE] = {0};

    MHD_get_connection_values(c, MHD_HEADER_KIND, count_single, counts);
    for (size_t i = 0; i < NSINGLE; i++)
        if (counts[i] > 1)
            return single_headers[i];
    return NULL;
}

/* ---- request collection ------------------------------------------------- */

static enum MHD_Result kv_collect(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    struct kv_list *l = cls;
    (void)kind;
    if (l->n < l->cap) {
        l->v[l->n].key = key;
        l->v[l->n].value = value;
        l->v[l->n].value_len = value ? strlen(value) : 0;
        l->n++;
    }
    return MHD_YES;
}

static int kv_fill(struct MHD_Connection *c, enum MHD_ValueKind kind, struct kv_list *l)
{
    int n = MHD_get_connection_values(c, kind, NULL, NULL);
    l->n = 0;
    l->cap = n;
    l->v = n > 0 ? calloc((size_t)n, sizeof *l->v) : NULL;
    if (n > 0 && !l->v)
        return -1;
    if (n > 0)
        MHD_get_connection_values(c, kind, kv_collect, l);
    return 0;
}

/* Resolves the request's tenant for a route of the given scope. Returns
 * true when the request may go on; otherwise an error response was queued
 * (or could not be) and *res is what to return to libmicrohttpd. */
static bool resolve_tenant(struct MHD_Connection *c, struct request *r,
                           const struct vm_route *route, enum MHD_Result *res)
{
    struct http_server *s = r->srv;
    char param[72];
    const char *why;
    struct tenant_request tr = {
        .path_param = NULL,
        .header = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Tenant-Id"),
        .host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST),
    };

    for (int i = 0; i < r->match.nparams; i++)
        if (strcmp(r->match.params[i].name, "tenant_id") == 0) {
            const struct router_param *pp = &r->match.params[i];
            /* Too long to be an id or a code: passed on as invalid. */
            snprintf(param, sizeof param, "%.*s",
                     pp->value_len < 64 ? (int)pp->value_len : 0, pp->value);
            tr.path_param = param;
        }
    if (!r->snap) /* taken on the first callback when there are overrides */
        r->snap = tenant_dir_snapshot(s->dir);
    if (!r->snap) {
        *res = refuse(c, r, 500, NULL, NULL, NULL);
        return false;
    }
    enum tenant_outcome got = tenant_resolve(r->snap, &s->sources, &tr, &r->tenant, &why);
    if ((got == TENANT_UNKNOWN || got == TENANT_FORBIDDEN) && route->unknown_tenant &&
        strcmp(route->scope, "public") == 0) {
        /* The handler answers as for a tenant that refuses, so an unknown
         * tenant looks like a known one to anonymous callers (scripts.h). */
        r->tenant = NULL;
        r->tenant_unknown = true;
        return true;
    }
    switch (got) {
    case TENANT_RESOLVED: return true;
    case TENANT_NONE:
        /* a tenant route may still get its tenant from the token */
        return true;
    case TENANT_INVALID:
        *res = refuse(c, r, 400, "invalid_tenant", why, NULL);
        return false;
    case TENANT_CONFLICT:
        *res = refuse(c, r, 400, "tenant_conflict", why, NULL);
        return false;
    case TENANT_UNKNOWN:
        *res = refuse(c, r, 404, "tenant_not_found", why, NULL);
        return false;
    case TENANT_FORBIDDEN:
        *res = refuse(c, r, 403, "tenant_suspended", why, NULL);
        return false;
    }
    *res = refuse(c, r, 500, NULL, NULL, NULL);
    return false;
}

/* Authenticates a non-public route's request (DESIGN.md section 3, step 4):
 * a bearer token verified with the pinned algorithm and the required claims
 * (any failure: one 401), the token's scope against the route's (403), and
 * for tenant tokens the tenant: the one resolved from the request must be the
 * token's (403); with none resolved, the token's tid names it. Returns true
 * when the request may go on; otherwise *res is what to return. */
static bool authenticate(struct MHD_Connection *c, struct request *r,
                         const struct vm_route *route, enum MHD_Result *res)
{
    struct http_server *s = r->srv;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    char why[160];

    if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
        *res = refuse(c, r, 401, NULL, "this route requires a bearer token", NULL);
        return false;
    }
    if (strncmp(h + 7, "rtk_", 4) == 0) {
        /* A platform API key: a core principal, checked live. */
        long long key = auth_api_key(s->auth, h + 7);
        if (key <= 0) {
            *res = refuse(c, r, 401, NULL, "invalid or expired token", NULL);
            return false;
        }
        memset(&r->claims, 0, sizeof r->claims);
        snprintf(r->claims.sub, sizeof r->claims.sub, "apikey:%lld", key);
        snprintf(r->claims.scope, sizeof r->claims.scope, "core");
    } else if (auth_verify_token(s->auth, h + 7, &r->claims, why, sizeof why) < 0) {
        log_msg(LOG_LEVEL_INFO, r->id, "bearer token refused: %s", why);
        *res = refuse(c, r, 401, NULL, "invalid or expired token", NULL);
        return false;
    } else if (auth_token_revoked(s->auth, &r->claims)) {
        log_msg(LOG_LEVEL_INFO, r->id, "bearer token refused: revoked");
        *res = refuse(c, r, 401, NULL, "invalid or expired token", NULL);
        return false;
    }
    bool tenant_token = strcmp(r->claims.scope, "tenant") == 0;
    if ((strcmp(route->scope, "core") == 0 && tenant_token) ||
        (strcmp(route->scope, "tenant") == 0 && !tenant_token)) {
        *res = refuse(c, r, 403, NULL,
                      tenant_token ? "this route needs a platform (core) token"
                                   : "this route needs a tenant token",
                      NULL);
        return false;
    }
    if (tenant_token && strcmp(route->scope, "core") != 0) {
        if (r->tenant && r->tenant->id != r->claims.tid) {
            *res = refuse(c, r, 403, NULL, "the token belongs to another tenant", NULL);
            return false;
        }
        if (!r->tenant && s->sources.token) {
            const struct tenant_info *t = tenant_by_id(r->snap, r->claims.tid);
            if (!t || (t->status != TENANT_ACTIVE && t->status != TENANT_SUSPENDED)) {
                *res = refuse(c, r, 401, NULL, "invalid or expired token", NULL);
                return false;
            }
            if (t->status == TENANT_SUSPENDED) {
                *res =
                    refuse(c, r, 403, "tenant_suspended", "this tenant is suspended", NULL);
                return false;
            }
            r->tenant = t;
        }
    }
    r->authenticated = true;
    return true;
}

/* ---- the lanes ------------------------------------------------------------ */

/* Runs a prepared request on this thread's state into r->answer. */
static void handle(struct request *r)
{
    struct vm_worker *vm = worker_vm(r->srv, r->scripts, r->id);
    if (vm)
        vm_handle(vm, &r->vreq, &r->answer); /* checks its connection back in */
    else
        vm_response_error(&r->answer, 500, NULL, NULL, r->id);
    pools_put(r->srv->pools, r->vreq.pool);
    r->answered = true;
}

/* A lane thread's work: the answer goes out on the callback after the
 * resume. */
static void run_queued(struct lane_item *item, void *arg)
{
    struct request *r = (struct request *)((char *)item - offsetof(struct request, queued));

    (void)arg;
    handle(r);
    MHD_resume_connection(r->conn);
}

/* Tenant resolution, then authentication, for a route of the given scope
 * (DESIGN.md section 3): public and any routes take a tenant when one is
 * named, tenant routes need one, core routes ignore tenant sources. Returns
 * true when the request may go on; otherwise *res is what to return. */
static bool admit(struct MHD_Connection *c, struct request *r, const struct vm_route *route,
                  enum MHD_Result *res)
{
    if (strcmp(route->scope, "core") != 0 && !resolve_tenant(c, r, route, res))
        return false;
    if (strcmp(route->scope, "public") != 0 && !authenticate(c, r, route, res))
        return false;
    if (strcmp(route->scope, "tenant") == 0 && !r->tenant) {
        *res = refuse(c, r, 400, "tenant_required",
                      "this route needs a tenant (X-Tenant-Id or a tenant token)", NULL);
        return false;
    }
    return true;
}

/* Matches the request against view v. Returns its route, or NULL when v has
 * none (*res then holds the 404 or 405 sent). */
static const struct vm_route *rematch(struct MHD_Connection *c, struct request *r,
                                      const struct vm_view *v, enum MHD_Result *res)
{
    r->view = v;
    switch (router_match(vm_view_router(v), r->method, r->path, &r->match)) {
    case ROUTER_NOT_FOUND:
        *res = refuse(c, r, 404, NULL, "no route for this path", NULL);
        break;
    case ROUTER_METHOD_NOT_ALLOWED:
        *res = refuse(c, r, 405, NULL, "method not allowed for this path", r->match.allow);
        break;
    case ROUTER_MATCH: return vm_view_route(v, r->match.route_id);
    }
    return NULL;
}

/* Admits a matched route's request on its first callback, before the body
 * is read (DESIGN.md section 3, steps 3 and 4): tenant resolution and
 * authentication, then the route of the tenant's own view when it has
 * overrides. Returns true when the request may go on; otherwise the refusal
 * is in r (refuse()) and *res is what to return. */
static bool admit_route(struct MHD_Connection *c, struct request *r, enum MHD_Result *res)
{
    const struct vm_route *route = vm_view_route(r->view, r->match.route_id);

    if (!admit(c, r, route, res))
        return false;
    /* A tenant with overrides named only by the path or the token: its own
     * routes decide (once; a route of another scope is admitted again). */
    const struct vm_view *v =
        vm_scripts_view(r->scripts, r->tenant ? r->tenant->code : NULL);
    if (v != r->view) {
        const struct vm_route *other = rematch(c, r, v, res);
        if (!other)
            return false;
        if (strcmp(other->scope, route->scope) != 0) {
            tenant_snapshot_release(r->snap);
            r->snap = NULL;
            r->tenant = NULL;
            r->authenticated = false;
            if (!admit(c, r, other, res))
                return false;
            if (vm_scripts_view(r->scripts, r->tenant ? r->tenant->code : NULL) != v) {
                *res = refuse(c, r, 404, NULL, "no route for this path", NULL);
                return false;
            }
        }
    }
    return true;
}

static enum MHD_Result run_route(struct MHD_Connection *c, struct request *r)
{
    struct http_server *s = r->srv;
    const struct vm_route *route = vm_view_route(r->view, r->match.route_id);
    struct db_pool *pool = pools_get(s->pools, r->tenant);
    if (!pool)
        return send_error(c, r, 500, NULL, NULL);
    if (kv_fill(c, MHD_HEADER_KIND, &r->headers) < 0 ||
        kv_fill(c, MHD_GET_ARGUMENT_KIND, &r->query) < 0) {
        pools_put(s->pools, pool);
        return send_error(c, r, 500, NULL, NULL);
    }
    r->vreq = (struct vm_request){
        .id = r->id,
        .method = r->method,
        .path = r->path,
        .view = r->view,
        .match = &r->match,
        .query = r->query.v,
        .nquery = r->query.n,
        .headers = r->headers.v,
        .nheaders = r->headers.n,
        .body = r->has_body ? buf_cstr(&r->body) : NULL,
        .body_len = r->has_body ? r->body.len : 0,
        .pool = pool,
        .tenant = r->tenant,
        .tenant_unknown = r->tenant_unknown,
        .claims = r->authenticated ? &r->claims : NULL,
        .auth = s->auth,
        .lane = route->lane,
    };
    if (route->lane == LANE_HTTP) {
        handle(r);
        return respond(c, r, &r->answer, NULL);
    }
    /* Suspended before it is queued, so the lane can never resume it first. */
    r->conn = c;
    MHD_suspend_connection(c);
    if (!lane_pool_push(s->lanes[route->lane], &r->queued)) {
        pools_put(s->pools, pool);
        vm_response_error(&r->answer, 503, NULL, NULL, r->id);
        r->answered = true;
        MHD_resume_connection(c);
    }
    return MHD_YES;
}

static enum MHD_Result run_builtin(struct MHD_Connection *c, struct request *r)
{
    struct db_error err;

    if (r->kind == REQ_HEALTHZ)
        return send_json(c, r, 200, "{\"status\":\"ok\"}");
    if (db_ping(r->srv->pool, &err) == 0)
        return send_json(c, r, 200, "{\"status\":\"ready\"}");
    log_msg(LOG_LEVEL_WARN, r->id, "readyz: %s", err.message);
    struct vm_response vr;
    memset(&vr, 0, sizeof vr);
    vm_response_error(&vr, 503, NULL, NULL, r->id);
    return respond(c, r, &vr, NULL);
}

/* ---- libmicrohttpd callbacks -------------------------------------------- */

static struct request *request_new(struct http_server *s, struct MHD_Connection *c,
                                   const char *url, const char *method)
{
    struct request *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->srv = s;
    r->method = strdup(method);
    r->path = strdup(url);
    if (!r->method || !r->path) {
        free(r->method);
        free(r->path);
        free(r);
        return NULL;
    }
    clock_gettime(CLOCK_MONOTONIC, &r->start);
    request_id(c, r->id, sizeof r->id);
    atomic_fetch_add(&s->inflight, 1);
    return r;
}

/* The view to route with before the tenant is resolved: with tenant
 * overrides, that of the tenant the request names by header or host (the
 * directory snapshot it takes is the request's from then on). */
static const struct vm_view *hinted_view(struct MHD_Connection *c, struct request *r)
{
    const struct tenant_info *t = NULL;
    const char *why;

    if (!vm_scripts_view_at(r->scripts, 1))
        return vm_scripts_view(r->scripts, NULL); /* no overrides */
    struct tenant_request tr = {
        .path_param = NULL,
        .header = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Tenant-Id"),
        .host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST),
    };
    r->snap = tenant_dir_snapshot(r->srv->dir);
    if (r->snap &&
        tenant_resolve(r->snap, &r->srv->sources, &tr, &t, &why) != TENANT_RESOLVED)
        t = NULL;
    return vm_scripts_view(r->scripts, t ? t->code : NULL);
}

/* Everything that can be decided from the request line and headers is
 * decided here, before the body is read or any database work: malformed
 * selector headers, 404/405, 413 by Content-Length, tenant resolution and
 * authentication. Refusals go out through refuse(). */
static enum MHD_Result on_first_call(struct MHD_Connection *c, struct request *r)
{
    struct http_server *s = r->srv;
    const char *cl, *dup;
    enum MHD_Result res;
    bool builtin = strcmp(r->path, "/healthz") == 0 || strcmp(r->path, "/readyz") == 0;

    if ((dup = duplicate_header(c)) != NULL) {
        char msg[96];
        snprintf(msg, sizeof msg, "the %s header is given more than once", dup);
        return refuse(c, r, 400, "duplicate_header", msg, NULL);
    }
    if (builtin) {
        if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0)
            return refuse(c, r, 405, NULL, "use GET", "GET, HEAD");
        r->kind = strcmp(r->path, "/healthz") == 0 ? REQ_HEALTHZ : REQ_READYZ;
        return MHD_YES;
    }
    r->scripts = host_acquire(s->host);
    r->view = hinted_view(c, r);
    switch (router_match(vm_view_router(r->view), r->method, r->path, &r->match)) {
    case ROUTER_NOT_FOUND: return refuse(c, r, 404, NULL, "no route for this path", NULL);
    case ROUTER_METHOD_NOT_ALLOWED:
        return refuse(c, r, 405, NULL, "method not allowed for this path", r->match.allow);
    case ROUTER_MATCH: break;
    }
    /* A body known to be too large is refused before it is read; the
     * connection then closes, which is what such a client needs. */
    cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > (unsigned long long)s->cfg->http_max_body) {
        r->kind = REQ_TOO_LARGE;
        return send_error(c, r, 413, "request body too large", NULL);
    }
    if (!admit_route(c, r, &res))
        return res;
    return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
    struct http_server *s = cls;
    struct request *r = *con_cls;
    (void)version;

    if (!r) {
        r = request_new(s, c, url, method);
        if (!r)
            return MHD_NO;
        *con_cls = r;
        return on_first_call(c, r);
    }
    if (r->status) {
        *upload_data_size = 0; /* answered already; drop what is left */
        return MHD_YES;
    }
    if (r->answered) /* back from a lane */
        return respond(c, r, &r->answer, NULL);
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        /* Bodies of requests that will not run a handler are dropped, and so
         * is one that grows past max_body (a chunked one: 413 at the end). */
        if (!r->dropping &&
            (r->kind != REQ_ROUTE || r->body.len + n > (size_t)s->cfg->http_max_body)) {
            r->dropping = true;
            buf_free(&r->body);
        }
        if (r->dropping) {
            r->discarded += n;
            return r->discarded > DISCARD_LIMIT ? MHD_NO : MHD_YES;
        }
        buf_append(&r->body, upload_data, n);
        r->has_body = true;
        return r->body.failed ? MHD_NO : MHD_YES;
    }
    switch (r->kind) {
    case REQ_REFUSED: return respond(c, r, &r->answer, r->allow);
    case REQ_HEALTHZ:
    case REQ_READYZ: return run_builtin(c, r);
    case REQ_ROUTE:
    case REQ_TOO_LARGE: break;
    }
    if (r->dropping)
        return send_error(c, r, 413, "request body too large", NULL);
    return run_route(c, r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct request *r = *con_cls;
    (void)c;

    if (!r)
        return;
    *con_cls = NULL;
    if (s->cfg->log_access) {
        struct log_access a = {
            .request_id = r->id,
            .method = r->method,
            .path = r->path,
            .tenant = r->tenant ? r->tenant->code : NULL,
            .status = r->status,
            .duration_ms = ms_since(&r->start),
            .bytes = r->bytes,
        };
        log_access(&a);
    }
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && r->status)
        log_msg(LOG_LEVEL_DEBUG, r->id, "request ended early (code %d)", (int)toe);
    buf_free(&r->body);
    free(r->headers.v);
    free(r->query.v);
    vm_response_free(&r->answer);
    tenant_snapshot_release(r->snap);
    vm_scripts_release(r->scripts);
    free(r->method);
    free(r->path);
    free(r);
    if (atomic_fetch_sub(&s->inflight, 1) == 1) {
        pthread_mutex_lock(&s->mu);
        pthread_cond_broadcast(&s->idle);
        pthread_mutex_unlock(&s->mu);
    }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct buf b = BUF_INIT;
    (void)cls;
    buf_vprintf(&b, fmt, ap);
    while (b.len && b.data[b.len - 1] == '\n')
        b.data[--b.len] = '\0';
    log_msg(LOG_LEVEL_WARN, NULL, "libmicrohttpd: %s", buf_cstr(&b));
    buf_free(&b);
}

/* ---- start and stop ----------------------------------------------------- */

/* The server's rt.* modules: the common bindings and rt.tenant, which
 * reaches the engines (provisioning, migrations, seeds). */
static const struct rt_module server_modules[] = {
    {"rt.tenant", luaopen_rt_tenant, (void *)&tenant_engine},
    {NULL, NULL, NULL},
};
static const struct rt_module *const modules[] = {bindings_common, server_modules, NULL};

const struct rt_module *const *http_modules(void)
{
    return modules;
}

struct http_server *http_start(const struct config *cfg, struct host *host,
                               struct db_pool *pool, struct rt_err *err)
{
    struct http_server *s = calloc(1, sizeof *s);
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    struct sockaddr *addr;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_SUSPEND_RESUME;
    pthread_condattr_t ca;

    if (!s) {
        rt_err_set(err, "out of memory");
        return NULL;
    }
    s->cfg = cfg;
    s->host = host;
    s->pool = pool;
    pthread_mutex_init(&s->mu, NULL);
    s->sources.base_domain = cfg->tenancy_base_domain;
    if (tenant_sources_parse(cfg->tenancy_sources, &s->sources) < 0) {
        rt_err_set(err, "tenancy.sources: unknown source in '%s'", cfg->tenancy_sources);
        http_stop(s);
        return NULL;
    }
    s->dir = tenant_dir_new(pool, cfg->tenancy_refresh_ms);
    s->pools = pools_new(cfg, pool);
    if (!s->dir || !s->pools) {
        rt_err_set(err, "out of memory");
        http_stop(s);
        return NULL;
    }
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->idle, &ca);
    pthread_condattr_destroy(&ca);
    if (!(s->auth = auth_new(cfg, true, err))) {
        http_stop(s);
        return NULL;
    }
    int noffload = cfg->http_offload_threads;
    if (noffload == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        noffload = cpus >= 4 ? (int)(cpus / 2) : 1;
    }
    /* Hashing is all CPU: it yields to every other thread. Admin work mostly
     * waits on PostgreSQL while holding its locks, so it is not starved. */
    if (!(s->lanes[LANE_OFFLOAD] = lane_pool_start(
              "offload", noffload, cfg->http_offload_queue, true, run_queued, NULL, err)) ||
        !(s->lanes[LANE_ADMIN] =
              lane_pool_start("admin", cfg->http_admin_threads, cfg->http_offload_queue,
                              false, run_queued, NULL, err))) {
        http_stop(s);
        return NULL;
    }

    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    if (inet_pton(AF_INET, cfg->http_host, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)cfg->http_port);
        addr = (struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, cfg->http_host, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)cfg->http_port);
        addr = (struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        rt_err_set(err, "http.host '%s' is not an IP address", cfg->http_host);
        http_stop(s);
        return NULL;
    }

    s->d = MHD_start_daemon(
        flags, (uint16_t)cfg->http_port, NULL, NULL, on_access, s,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, /* must come first */
        MHD_OPTION_SOCK_ADDR, addr, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)cfg->http_threads, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)cfg->http_connection_limit, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)cfg->http_per_ip_connection_limit, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)cfg->http_connection_timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)cfg->http_connection_memory_limit, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_END);
    if (!s->d) {
        rt_err_set(err, "cannot listen on %s:%d (in use, or not allowed)", cfg->http_host,
                   cfg->http_port);
        http_stop(s);
        return NULL;
    }
    return s;
}

void http_stop(struct http_server *s)
{
    if (!s)
        return;
    if (s->d) {
        MHD_socket fd = MHD_quiesce_daemon(s->d);
        if (fd != MHD_INVALID_SOCKET)
            close(fd);
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += s->cfg->http_shutdown_grace;
        pthread_mutex_lock(&s->mu);
        while (atomic_load(&s->inflight) > 0 &&
               pthread_cond_timedwait(&s->idle, &s->mu, &deadline) != ETIMEDOUT)
            ;
        int left = atomic_load(&s->inflight);
        pthread_mutex_unlock(&s->mu);
        if (left > 0)
            log_msg(LOG_LEVEL_WARN, NULL, "shutdown grace over with %d requests in flight",
                    left);
    }
    /* The lanes finish what is queued (resuming every suspended connection)
     * before the daemon stops. */
    for (int i = 0; i <= LANE_ADMIN; i++)
        lane_pool_stop(s->lanes[i]);
    if (s->d)
        MHD_stop_daemon(s->d);
    for (size_t i = 0; i < s->nvms; i++)
        vm_worker_free(s->vms[i]);
    free(s->vms);
    pools_free(s->pools);
    tenant_dir_free(s->dir);
    auth_free(s->auth);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
