/* limits: what one run of a script may use in a Lua state.
 *
 * A state made by limits_newstate allocates through its struct limits, which
 * tracks the bytes the state holds and refuses to grow past memory_cap. A
 * count hook, installed on the state and inherited by every coroutine it
 * creates, counts instructions and reads the clock every
 * LIMITS_HOOK_INTERVAL instructions.
 *
 * The memory cap holds at all times. The instruction budget and the
 * wall-clock deadline hold for a run: from limits_begin to limits_end (one
 * request, or the loading of one script file). Once a run hits any limit it
 * is over: the hook then raises on every instruction, in every coroutine, so
 * pcall, xpcall, coroutine.resume and error handlers cannot carry on, and
 * limits_end reports what was hit; the caller decides what to do with the
 * request and the state.
 *
 * Lua retries a refused allocation once, after an emergency collection; only
 * two refusals in a row count as hitting the cap, so a state that merely
 * needed a collection is not reported.
 *
 * Uses: Lua (lua_newstate, lua_sethook). */
#ifndef RT_LUA_LIMITS_H
#define RT_LUA_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <lua.h>

#define LIMITS_HOOK_INTERVAL 1000 /* instructions between two hook calls */

enum limits_kind {
    LIMITS_NONE,
    LIMITS_INSTRUCTIONS,
    LIMITS_MEMORY,
    LIMITS_TIME,
};

struct limits {
    /* Settings, set by the owner before limits_newstate; 0 means no limit. */
    size_t memory_cap;          /* bytes the state may hold */
    long long max_instructions; /* per run */
    int time_ms;                /* per run, wall clock */

    /* Bookkeeping, owned by limits.c. */
    size_t used; /* bytes the state holds now */
    long long instructions;
    struct timespec deadline;
    int refusals; /* refused allocations in a row */
    bool running;
    enum limits_kind hit;
    char where[256]; /* the first error the limit raised ("file:line: ...") */
};

/* Creates a Lua state whose allocations go through lim, with the count hook
 * installed. lim (settings filled in) is borrowed and must outlive the state,
 * lua_close included. Returns NULL when the state cannot be created (out of
 * memory, or a cap too small for an empty state). */
lua_State *limits_newstate(struct limits *lim);

/* Starts a run on L (the main thread of a limits_newstate state): resets the
 * instruction count and what was hit, and sets the deadline. */
void limits_begin(lua_State *L);

/* Ends the run. Returns the limit it hit, LIMITS_NONE if none. */
enum limits_kind limits_end(lua_State *L);

/* For C functions that do long work in one call (string.rep, JSON encoding):
 * raises a Lua error, and ends the run as the hook would, when `bytes` more
 * would not fit under the memory cap even after a full collection, when the
 * deadline has passed, or when the run already hit a limit. `what` names the caller in the
 * message. Does nothing in a state not made by limits_newstate. */
void limits_check(lua_State *L, size_t bytes, const char *what);

/* Whether the run in progress on L has hit a limit (the hook is raising). */
bool limits_exceeded(lua_State *L);

/* Whether the hook ended coroutine co by raising a limit in it. Lua leaves
 * hooks off in such a thread, so nothing may run in it again: its __close
 * handlers included (the sandbox's coroutine.close and coroutine.wrap skip
 * them). Uses the thread's extra space (lua_getextraspace); nothing else in
 * the runtime may. */
bool limits_thread_ended(lua_State *co);

/* "instruction", "memory", "time" (or "no"). */
const char *limits_kind_name(enum limits_kind k);

#endif
