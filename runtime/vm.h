/* vm: Lua states for request handling and the script set they run.
 *
 * A script set (struct vm_scripts) is what was read from the scripts
 * directory at one moment: the sources of api/ (route files), events/ (event
 * handler files) and of each tenant's override folder tenants/<code>/api and
 * tenants/<code>/events, validated once in a scratch state. It is then
 * immutable, shared by all workers and refcounted: a reload makes a new set,
 * and the old one lives until the last request and state using it let go.
 *
 * A set has one route view (struct vm_view) for everyone and one per tenant
 * with overrides: the tenant's files shadow those of api/ and events/ with
 * the same relative path and add the others. Each view has its own router.
 *
 * A vm is one lua_State owned by one worker thread: the sandboxed standard
 * libraries, the rt.* modules and the prelude. Scripts run in per-tenant
 * environments inside it (globals, module-level state and `require`d modules
 * of one tenant are invisible to another), created on a tenant's first
 * request and evicted least-recently-used beyond scripts.tenant_envs. A file
 * is run in an environment the first time one of its routes is called there.
 * vm_handle runs one request: builds `req`, calls the handler through the
 * prelude, ends the request transaction (commit on a normal return, rollback
 * otherwise) and produces the response.
 *
 * Uses: router.c, db.c, log.c, errors.c, lua/ bindings. */
#ifndef RT_VM_H
#define RT_VM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "auth.h"
#include "config.h"
#include "crypto.h"
#include "db.h"
#include "lane.h"
#include "router.h"
#include "tenant.h"

struct vm_error {
    char msg[2048];
};

struct vm_route {
    char *method;
    char *pattern;
    char *file;          /* path, for messages and `runtime routes` */
    char *scope;         /* public, core, tenant, any */
    char *permission;    /* NULL when none */
    bool read_only;      /* runs in a READ ONLY transaction (GET/HEAD by default) */
    enum lane lane;      /* where the handler runs (the route's offload) */
    bool unknown_tenant; /* see below */
    int file_index;      /* the file in the set that declares it */
    int pos;             /* its position (1-based) in that file's route list */
};
/* unknown_tenant: a public route that answers a request naming an unknown
 * or unusable (suspended, deleted) tenant as it answers a tenant that
 * refuses, rather than 404/403 before it runs, so anonymous callers cannot
 * tell which tenants exist. Its handler sees req.tenant_unknown = true and
 * no req.tenant: it must not fall back to the platform (core) scope. */

struct vm_scripts;
struct vm_view;

/* Reads and validates the scripts under scripts_dir: every *.lua under api/
 * (sorted by path) compiles and returns a valid route table, every file under
 * events/ returns a valid handler table, tenants/ holds only folders named by
 * a tenant code, and no view declares a route twice. Errors carry the file
 * (and line, for syntax errors). cfg (borrowed, must outlive the set)
 * configures rt.json, rt.auth and the limits. Returns a set holding one
 * reference, or NULL with err filled. */
struct vm_scripts *vm_scripts_load(const char *scripts_dir, const struct config *cfg,
                                   struct vm_error *err);
void vm_scripts_retain(struct vm_scripts *s);
/* Drops a reference; the last one frees the set. NULL is fine. */
void vm_scripts_release(struct vm_scripts *s);
size_t vm_scripts_file_count(const struct vm_scripts *s);

/* The view of tenant `code` (NULL: no tenant): its override view, else the
 * common one. Never NULL; borrowed from s. */
const struct vm_view *vm_scripts_view(const struct vm_scripts *s, const char *code);
/* Views by index: 0 is the common one, then one per tenant with overrides
 * (sorted by code). NULL past the end. */
const struct vm_view *vm_scripts_view_at(const struct vm_scripts *s, size_t i);
/* The tenant code of an override view; NULL for the common one. */
const char *vm_view_code(const struct vm_view *v);
const struct router *vm_view_router(const struct vm_view *v);
/* Route metadata by route id; borrowed from the set. */
const struct vm_route *vm_view_route(const struct vm_view *v, int id);
size_t vm_view_route_count(const struct vm_view *v);

/* Compiles, without running, every *.lua under scripts_dir except those in
 * migrations/ and seeds/ (which vm_steps_load checks): route files and the
 * modules they can require. Text only, in sorted order. report(ud, msg) is
 * called once per file that does not compile, with "file:line: message".
 * Returns the number of files compiled, or -1 with err filled when the
 * directory cannot be read. */
long vm_scripts_compile(const char *scripts_dir, void (*report)(void *ud, const char *msg),
                        void *ud, struct vm_error *err);

/* What rt.scripts_status() shows (the admin view of reloads): written by
 * the script host, read by requests, both under mu. */
struct vm_board {
    pthread_mutex_t mu;
    long generation;     /* loads that succeeded, the first one included */
    long long loaded_at; /* unix time of the set in use */
    long failures;       /* reloads that failed */
    long long failed_at; /* unix time of the last failure; 0: none */
    char error[2048];    /* its message ("file:line: message"); "" once fixed */
};

struct vm;

/* Creates a state running script set s (retained until vm_free). board
 * (borrowed, may be NULL) backs rt.scripts_status(). */
struct vm *vm_new(struct vm_scripts *s, struct vm_board *board, struct vm_error *err);
/* The set the state runs; borrowed. */
const struct vm_scripts *vm_scripts_of(const struct vm *vm);
void vm_free(struct vm *vm);

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

/* Runs req in vm and fills resp, which the caller frees with
 * vm_response_free. A route that declares a permission is checked first
 * (403; 401 when the user is gone or disabled) against the user's cached
 * permission set, loaded in the request's transaction on a miss. Never fails: internal
 * failures become a 5xx response (the detail is logged with the request id, never sent). */
void vm_handle(struct vm *vm, const struct vm_request *req, struct vm_response *resp);
void vm_response_free(struct vm_response *resp);

/* Fills resp with the JSON error shape for status (a 503 gets Retry-After). */
void vm_response_error(struct vm_response *resp, int status, const char *code,
                       const char *message, const char *request_id);

/* ---- step files (migrations) ------------------------------------------ */

struct rt_migrate_ctx;

struct vm_step {
    int version;
    char *name; /* "add_user_phone" */
    char *path; /* label/NNNN_name.lua, for messages */
    char *source;
    size_t len;
    char checksum[65]; /* SHA-256 of the file, hex */
    bool has_down;
    bool transactional;
};

struct vm_steps {
    struct vm_step *v; /* v[i].version == i + 1 */
    size_t n;
};

enum vm_step_kind {
    VM_STEP_MIGRATION, /* { up = fn, down = fn | false, transaction = bool } */
    VM_STEP_SEED,      /* { run = fn } */
};

/* Parses a step file name "NNNN_name.lua": four or more digits (a version
 * below 1000000), '_', then [a-z0-9_]+. Returns 0 with *name malloc'd (the
 * caller frees it), or -1 for any other name. */
int vm_step_name_parse(const char *base, int *version, char **name);

/* Reads and validates dir/NNNN_name.lua: names, no gaps or duplicates, each
 * compiles, runs and returns a valid step table. A missing dir is an empty
 * set. Non-.lua files are ignored. Files are named label/NNNN_name.lua in
 * messages and tracebacks. Returns NULL with err filled with every problem
 * found (one per line, with file and line). */
struct vm_steps *vm_steps_load(const char *dir, const char *label, enum vm_step_kind kind,
                               struct vm_error *err);
void vm_steps_free(struct vm_steps *s);

/* Creates a state that runs the steps of s (borrowed: s must outlive it). */
struct vm *vm_new_steps(const struct vm_steps *s, struct vm_error *err);

/* Runs function fn ("up", "down" or "run") of step `version` with an `m`
 * object for ctx. Returns 0, or -1 with the error (file:line: message). */
int vm_run_step(struct vm *vm, int version, const char *fn, struct rt_migrate_ctx *ctx,
                struct vm_error *err);

#endif
