/* scripts: the script set, its route views and its compile check (the
 * second of the Lua host's four modules; see luastate.h).
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
 * Uses: luastate.c, router.c, config.c, tenant.c (the code rule), lua/limits.c,
 * lane.c (route lanes), err.c. */
#ifndef RT_SCRIPTS_H
#define RT_SCRIPTS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "lane.h"
#include "luastate.h"
#include "router.h"

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

enum vm_file_kind { VM_FILE_API, VM_FILE_EVENTS };

/* One file of a set. */
struct vm_script_file {
    char *path;
    char *rel;  /* path under api/ or events/: what an override shadows */
    char *code; /* the tenant whose override this is; NULL: common */
    enum vm_file_kind kind;
    char *source;
    size_t len;
};

struct vm_scripts;
struct vm_view;

/* Reads and validates the scripts under scripts_dir: every *.lua under api/
 * (sorted by path) compiles and returns a valid route table, every file under
 * events/ returns a valid handler table, tenants/ holds only folders named by
 * a tenant code, and no view declares a route twice. Errors carry the file
 * (and line, for syntax errors). cfg (borrowed, must outlive the set)
 * configures rt.json, rt.auth and the limits. modules (borrowed, must
 * outlive the set: static lists) are the rt.* modules of the set's states,
 * the validating one and every worker's (luastate_opts.modules). Returns a
 * set holding one reference, or NULL with err filled. */
struct vm_scripts *vm_scripts_load(const char *scripts_dir, const struct config *cfg,
                                   const struct rt_module *const *modules,
                                   struct rt_err *err);
void vm_scripts_retain(struct vm_scripts *s);
/* Drops a reference; the last one frees the set. NULL is fine. */
void vm_scripts_release(struct vm_scripts *s);
size_t vm_scripts_file_count(const struct vm_scripts *s);
/* File i of the set (i < vm_scripts_file_count); borrowed from s. */
const struct vm_script_file *vm_scripts_file(const struct vm_scripts *s, size_t i);

/* What every state running s is built with (borrowed from s): the state
 * options, the limits (copied into each state's own struct limits), the
 * config and scripts.tenant_envs. */
const struct luastate_opts *vm_scripts_state_opts(const struct vm_scripts *s);
const struct limits *vm_scripts_limits(const struct vm_scripts *s);
const struct config *vm_scripts_config(const struct vm_scripts *s);
int vm_scripts_max_envs(const struct vm_scripts *s);

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
/* The file indexes of the view's event files, in order; *n their number.
 * Borrowed from the set. */
const int *vm_view_events(const struct vm_view *v, size_t *n);

/* Compiles, without running, every *.lua under scripts_dir except those in
 * migrations/ and seeds/ (which vm_steps_load checks): route files and the
 * modules they can require. Text only, in sorted order. report(ud, msg) is
 * called once per file that does not compile, with "file:line: message".
 * Returns the number of files compiled, or -1 with err filled when the
 * directory cannot be read. */
long vm_scripts_compile(const char *scripts_dir, void (*report)(void *ud, const char *msg),
                        void *ud, struct rt_err *err);

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

#endif
