/* limits: memory cap, instruction budget and deadline of a Lua state (see
 * limits.h). */
#include "lua/limits.h"

#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>

/* Bytes the state may still allocate under its cap. */
static size_t room(const struct limits *lim)
{
    return lim->used < lim->memory_cap ? lim->memory_cap - lim->used : 0;
}

static void *limits_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct limits *lim = ud;
    size_t old = ptr ? osize : 0; /* without a block, osize is a type tag */

    if (nsize == 0) {
        free(ptr);
        lim->used -= old;
        return NULL;
    }
    if (nsize > old && lim->memory_cap && nsize - old > room(lim)) {
        /* The second refusal in a row is the retry after an emergency
         * collection: the state really is full. */
        if (++lim->refusals >= 2 && lim->running && lim->hit == LIMITS_NONE)
            lim->hit = LIMITS_MEMORY;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (!p) {
        if (nsize > old)
            return NULL;
        p = ptr; /* Lua assumes shrinking never fails: keep the larger block */
    }
    lim->used = lim->used - old + nsize;
    if (nsize > old)
        lim->refusals = 0;
    return p;
}

static struct limits *limits_of(lua_State *L)
{
    void *ud;
    return lua_getallocf(L, &ud) == limits_alloc ? ud : NULL;
}

static bool deadline_passed(const struct limits *lim)
{
    struct timespec now;

    if (!lim->time_ms)
        return false;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > lim->deadline.tv_sec ||
           (now.tv_sec == lim->deadline.tv_sec && now.tv_nsec >= lim->deadline.tv_nsec);
}

static void count_hook(lua_State *L, lua_Debug *ar);

/* What the extra space of a coroutine holds once the hook raised in it. */
static const char ended_mark;

/* Marks coroutine L as ended by the hook. Lua calls a hook with hooks off
 * for its thread and turns them on again when the hook returns; a hook that
 * raises never returns, and in a coroutine with no pcall left to restore
 * them, they stay off for good. What runs in that thread afterwards (the
 * __close handlers that coroutine.close and coroutine.wrap would run) could
 * never be stopped; the sandbox refuses to run them. Allocates nothing, so
 * the mark is in place before any error can leave the hook. The main thread
 * is never marked: new threads copy its extra space. */
static void mark_ended(lua_State *L)
{
    bool main = lua_pushthread(L);
    lua_pop(L, 1);
    if (!main)
        *(const void **)lua_getextraspace(L) = &ended_mark;
}

bool limits_thread_ended(lua_State *co)
{
    return *(const void **)lua_getextraspace(co) == &ended_mark;
}

/* Ends the run with limit k and raises "<where>: <what>: k limit exceeded"
 * (where: the Lua function at `level`). Hooking every instruction of this
 * thread makes whatever catches the error fail at its next instruction. */
static int raise_limit(lua_State *L, struct limits *lim, enum limits_kind k, int level,
                       const char *what)
{
    if (lim->running && lim->hit == LIMITS_NONE)
        lim->hit = k;
    if (lim->running)
        k = lim->hit;
    luaL_where(L, level);
    lua_pushfstring(L, "%s%s%s limit exceeded", what ? what : "", what ? ": " : "",
                    limits_kind_name(k));
    lua_concat(L, 2);
    if (lim->running) {
        if (!lim->where[0])
            snprintf(lim->where, sizeof lim->where, "%s", lua_tostring(L, -1));
        lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
    }
    return lua_error(L);
}

static void count_hook(lua_State *L, lua_Debug *ar)
{
    struct limits *lim = limits_of(L);
    int count = lua_gethookcount(L);

    (void)ar;
    if (lim && lim->running) {
        if (lim->hit == LIMITS_NONE) {
            lim->instructions += count;
            if (lim->max_instructions && lim->instructions > lim->max_instructions)
                lim->hit = LIMITS_INSTRUCTIONS;
            else if (deadline_passed(lim))
                lim->hit = LIMITS_TIME;
        }
        if (lim->hit != LIMITS_NONE) {
            mark_ended(L);
            raise_limit(L, lim, lim->hit, 0, NULL);
        }
    }
    /* A coroutine left hooked on every instruction by an earlier run goes
     * back to the normal interval. */
    if (count != LIMITS_HOOK_INTERVAL)
        lua_sethook(L, count_hook, LUA_MASKCOUNT, LIMITS_HOOK_INTERVAL);
}

static int panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "runtime: unprotected Lua error: %s\n", msg ? msg : "?");
    return 0; /* Lua aborts */
}

lua_State *limits_newstate(struct limits *lim)
{
    lim->used = 0;
    lim->instructions = 0;
    lim->refusals = 0;
    lim->running = false;
    lim->hit = LIMITS_NONE;
    lua_State *L = lua_newstate(limits_alloc, lim);
    if (!L)
        return NULL;
    lua_atpanic(L, panic);
    lua_sethook(L, count_hook, LUA_MASKCOUNT, LIMITS_HOOK_INTERVAL);
    return L;
}

void limits_begin(lua_State *L)
{
    struct limits *lim = limits_of(L);

    lim->instructions = 0;
    lim->refusals = 0;
    lim->hit = LIMITS_NONE;
    lim->where[0] = '\0';
    clock_gettime(CLOCK_MONOTONIC, &lim->deadline);
    lim->deadline.tv_sec += lim->time_ms / 1000;
    lim->deadline.tv_nsec += (long)(lim->time_ms % 1000) * 1000000L;
    if (lim->deadline.tv_nsec >= 1000000000L) {
        lim->deadline.tv_sec++;
        lim->deadline.tv_nsec -= 1000000000L;
    }
    lim->running = true;
    lua_sethook(L, count_hook, LUA_MASKCOUNT, LIMITS_HOOK_INTERVAL);
}

enum limits_kind limits_end(lua_State *L)
{
    struct limits *lim = limits_of(L);

    lim->running = false;
    lua_sethook(L, count_hook, LUA_MASKCOUNT, LIMITS_HOOK_INTERVAL);
    return lim->hit;
}

void limits_check(lua_State *L, size_t bytes, const char *what)
{
    struct limits *lim = limits_of(L);

    if (!lim)
        return;
    if (lim->memory_cap && bytes > room(lim)) {
        lua_gc(L, LUA_GCCOLLECT); /* what garbage frees is not over the cap */
        if (bytes > room(lim))
            raise_limit(L, lim, LIMITS_MEMORY, 1, what);
    }
    if (lim->running && lim->hit != LIMITS_NONE)
        raise_limit(L, lim, lim->hit, 1, what);
    if (lim->running && deadline_passed(lim))
        raise_limit(L, lim, LIMITS_TIME, 1, what);
}

bool limits_exceeded(lua_State *L)
{
    struct limits *lim = limits_of(L);
    return lim && lim->running && lim->hit != LIMITS_NONE;
}

const char *limits_kind_name(enum limits_kind k)
{
    switch (k) {
    case LIMITS_INSTRUCTIONS: return "instruction";
    case LIMITS_MEMORY: return "memory";
    case LIMITS_TIME: return "time";
    default: return "no";
    }
}
