/* steps: migration and seed step files and the states that run them (the
 * fourth of the Lua host's four modules; see luastate.h).
 *
 * A step set (struct vm_steps) is the files NNNN_name.lua of one folder
 * (migrations/core, migrations/tenant, seeds), validated in a scratch state
 * with their checksums. A step state (struct vm) holds every step table of
 * a set; vm_run_step calls one of their functions with an `m` object
 * (lua/rt_migrate.c). Step states get the rt.* modules of bindings.h, not
 * those a server's caller adds (rt.tenant), and no rt.routes or
 * rt.scripts_status.
 *
 * Uses: luastate.c, bindings.c, crypto.c (checksums), lua/rt_migrate.c,
 * lua/limits.c, err.c. */
#ifndef RT_STEPS_H
#define RT_STEPS_H

#include <stdbool.h>
#include <stddef.h>

#include "luastate.h"

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
                               struct rt_err *err);
void vm_steps_free(struct vm_steps *s);

struct vm;

/* Creates a state that runs the steps of s (borrowed: s must outlive it). */
struct vm *vm_new_steps(const struct vm_steps *s, struct rt_err *err);
/* NULL is fine. */
void vm_free(struct vm *vm);

/* Runs function fn ("up", "down" or "run") of step `version` with an `m`
 * object for ctx. Returns 0, or -1 with the error (file:line: message). */
int vm_run_step(struct vm *vm, int version, const char *fn, struct rt_migrate_ctx *ctx,
                struct rt_err *err);

#endif
