/* steps: step files and step states (see steps.h). */
#include "steps.h"

#include "bindings.h"
#include "crypto.h"
#include "lua/keys.h"
#include "lua/limits.h"
#include "lua/rt_migrate.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

/* Loading a step file (its module-level code) may take this long; running a
 * step has no limits (the operator runs migrations and watches them). */
#define STEP_LOAD_TIME_MS 10000

/* The modules of every step state and scratch state (bindings.h). */
static const struct rt_module *const step_modules[] = {bindings_common, NULL};
static const struct luastate_opts step_opts = {64, NULL, step_modules};

struct vm {
    lua_State *L;
    struct limits limits; /* L's allocator and hook state */
    int prelude_ref;      /* the prelude's table (step_check) */
    int steps_ref;        /* version -> step table */
};

void vm_steps_free(struct vm_steps *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].name);
        free(s->v[i].path);
        free(s->v[i].source);
    }
    free(s->v);
    free(s);
}

int vm_step_name_parse(const char *base, int *version, char **name)
{
    size_t n = strlen(base), i = 0;
    long v = 0;

    if (n < 9 || strcmp(base + n - 4, ".lua") != 0)
        return -1;
    while (i < n && isdigit((unsigned char)base[i])) {
        v = v * 10 + (base[i] - '0');
        if (v > 999999)
            return -1;
        i++;
    }
    if (i < 4 || base[i] != '_' || i + 1 >= n - 4)
        return -1;
    for (size_t j = i + 1; j < n - 4; j++)
        if (!(islower((unsigned char)base[j]) || isdigit((unsigned char)base[j]) ||
              base[j] == '_'))
            return -1;
    *version = (int)v;
    *name = strndup(base + i + 1, n - 4 - i - 1);
    return *name ? 0 : -1;
}

static int cmp_step(const void *a, const void *b)
{
    const struct vm_step *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

/* Runs a step file's chunk in L. Stack: [] -> [step table], or [] on failure. */
static int step_table(lua_State *L, const struct vm_step *st, struct rt_err *err)
{
    limits_begin(L);
    return luastate_end_load(L, luastate_load_run(L, st->path, st->source, st->len),
                             st->path, err);
}

/* Appends one problem to err (one per line). */
static void err_add(struct rt_err *err, int *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void err_add(struct rt_err *err, int *n, const char *fmt, ...)
{
    size_t len = *n ? strlen(err->msg) : 0;
    va_list ap;

    if (len + 2 >= sizeof err->msg)
        return;
    if (*n)
        err->msg[len++] = '\n';
    va_start(ap, fmt);
    vsnprintf(err->msg + len, sizeof err->msg - len, fmt, ap);
    va_end(ap);
    (*n)++;
}

/* Validates every step in a scratch state; records has_down/transactional.
 * Returns the number of problems added to err. */
static int steps_check(struct vm_steps *s, enum vm_step_kind kind, struct rt_err *err,
                       int nerr)
{
    struct rt_err one;
    struct limits lim = {.time_ms = STEP_LOAD_TIME_MS};
    int prelude_ref;
    lua_State *L = luastate_new(&step_opts, &lim, &prelude_ref, &one);

    if (!L) {
        err_add(err, &nerr, "%s", one.msg);
        return nerr;
    }
    for (size_t i = 0; i < s->n; i++) {
        struct vm_step *st = &s->v[i];
        if (!st->source)
            continue; /* unreadable: reported already */
        if (step_table(L, st, &one) < 0) {
            err_add(err, &nerr, "%s", one.msg);
            continue;
        }
        lua_rawgeti(L, LUA_REGISTRYINDEX, prelude_ref);
        lua_getfield(L, -1, "step_check");
        lua_pushstring(L, st->path);
        lua_pushvalue(L, -4);
        lua_pushstring(L, kind == VM_STEP_SEED ? "seed" : "migration");
        limits_begin(L);
        int rc = lua_pcall(L, 3, 2, 0);
        limits_end(L);
        if (rc != LUA_OK) {
            err_add(err, &nerr, "%s", lua_tostring(L, -1));
        } else {
            st->has_down = lua_toboolean(L, -2);
            st->transactional = lua_toboolean(L, -1);
        }
        lua_settop(L, 0);
    }
    lua_close(L);
    return nerr;
}

struct vm_steps *vm_steps_load(const char *dir, const char *label, enum vm_step_kind kind,
                               struct rt_err *err)
{
    struct vm_steps *s = calloc(1, sizeof *s);
    DIR *d;
    struct dirent *e;
    size_t cap = 0;
    int nerr = 0;

    err->msg[0] = '\0';
    if (!s) {
        rt_err_set(err, "out of memory");
        return NULL;
    }
    d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return s; /* no steps yet */
        rt_err_set(err, "cannot open %s: %s", dir, strerror(errno));
        free(s);
        return NULL;
    }
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || n < 4 || strcmp(e->d_name + n - 4, ".lua") != 0)
            continue;
        if (s->n == cap) {
            cap = cap ? cap * 2 : 16;
            struct vm_step *v = realloc(s->v, cap * sizeof *v);
            if (!v) {
                closedir(d);
                rt_err_set(err, "out of memory");
                vm_steps_free(s);
                return NULL;
            }
            s->v = v;
        }
        struct vm_step *st = &s->v[s->n];
        memset(st, 0, sizeof *st);
        st->path = malloc(strlen(label) + n + 2);
        if (!st->path) {
            closedir(d);
            rt_err_set(err, "out of memory");
            vm_steps_free(s);
            return NULL;
        }
        sprintf(st->path, "%s/%s", label, e->d_name);
        if (vm_step_name_parse(e->d_name, &st->version, &st->name) < 0) {
            err_add(err, &nerr,
                    "%s: step files are named NNNN_name.lua (a version of four or more "
                    "digits, then lower-case letters, digits and _)",
                    st->path);
            free(st->path);
            continue;
        }
        s->n++;
    }
    closedir(d);
    if (s->n > 1) /* qsort's array must not be NULL, even for no elements */
        qsort(s->v, s->n, sizeof *s->v, cmp_step);
    for (size_t i = 0; i < s->n; i++) {
        struct vm_step *st = &s->v[i];
        if (i > 0 && st->version == s->v[i - 1].version)
            err_add(err, &nerr, "%s: duplicate version %04d (also %s)", st->path,
                    st->version, s->v[i - 1].path);
        else if (st->version != (i > 0 ? s->v[i - 1].version + 1 : 1))
            err_add(err, &nerr,
                    "%s: versions must run 1, 2, 3, ... without gaps; expected %04d here",
                    st->path, i > 0 ? s->v[i - 1].version + 1 : 1);
        /* Read from the real directory; st->path is the label. */
        const char *base = strrchr(st->path, '/') + 1;
        char *real = malloc(strlen(dir) + strlen(base) + 2);
        struct rt_err one;
        if (!real) {
            err_add(err, &nerr, "out of memory");
            continue;
        }
        sprintf(real, "%s/%s", dir, base);
        if (luastate_read_file(real, &st->source, &st->len, &one) < 0) {
            err_add(err, &nerr, "%s", one.msg);
        } else {
            if (crypto_sha256_hex(st->source, st->len, st->checksum) < 0)
                err_add(err, &nerr, "%s: cannot compute its checksum (out of memory)",
                        st->path);
        }
        free(real);
    }
    nerr = steps_check(s, kind, err, nerr);
    if (nerr > 0) {
        vm_steps_free(s);
        return NULL;
    }
    return s;
}

struct vm *vm_new_steps(const struct vm_steps *s, struct rt_err *err)
{
    struct vm *vm = calloc(1, sizeof *vm);

    if (!vm) {
        rt_err_set(err, "out of memory");
        return NULL;
    }
    vm->limits = (struct limits){.time_ms = STEP_LOAD_TIME_MS};
    if (!(vm->L = luastate_new(&step_opts, &vm->limits, &vm->prelude_ref, err))) {
        free(vm);
        return NULL;
    }
    lua_State *L = vm->L;
    lua_createtable(L, (int)s->n, 0);
    for (size_t i = 0; i < s->n; i++) {
        if (step_table(L, &s->v[i], err) < 0) {
            vm_free(vm);
            return NULL;
        }
        lua_rawseti(L, -2, s->v[i].version);
    }
    vm->steps_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return vm;
}

int vm_run_step(struct vm *vm, int version, const char *fn, struct rt_migrate_ctx *ctx,
                struct rt_err *err)
{
    lua_State *L = vm->L;
    int rc = 0;

    lua_settop(L, 0);
    lua_getfield(L, LUA_REGISTRYINDEX, RT_KEY_TRACEBACK);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->steps_ref);
    if (lua_rawgeti(L, -1, version) != LUA_TTABLE ||
        lua_getfield(L, -1, fn) != LUA_TFUNCTION) {
        rt_err_set(err, "step %04d has no %s function", version, fn);
        lua_settop(L, 0);
        return -1;
    }
    rt_migrate_push(L, ctx); /* stack: traceback, steps, step, fn, m */
    lua_pushvalue(L, -1);
    lua_insert(L, 3); /* keep m below the call to detach it afterwards */
    if (lua_pcall(L, 1, 0, 1) != LUA_OK) {
        /* The first line is the message; the traceback is for the log. */
        const char *msg = lua_tostring(L, -1);
        rt_err_set(err, "%s", msg ? msg : "error object is not a string");
        char *nl = strstr(err->msg, "\nstack traceback:");
        if (nl)
            *nl = '\0';
        rc = -1;
    }
    rt_migrate_close(L, 3);
    lua_settop(L, 0);
    lua_gc(L, LUA_GCSTEP, 0);
    return rc;
}

void vm_free(struct vm *vm)
{
    if (!vm)
        return;
    if (vm->L)
        lua_close(vm->L);
    free(vm);
}
