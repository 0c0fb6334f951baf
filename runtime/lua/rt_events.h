/* rt.events: events raised by scripts and handled by scripts.
 *
 *   n = events.emit(name, payload)
 *
 * Calls every handler registered for `name` by the files of scripts/events
 * (and the tenant's override folder), in file order, as
 * handler(payload, event) with event = { name = name, tenant = req.tenant
 * or nil }. Handlers run at once, in the emitter's request: the same tenant
 * environment, the same database transaction and the same limits. An error
 * in a handler is raised from emit (the emitter may pcall it). Returns the
 * number of handlers called.
 *
 * The handler lists come from the registry function RT_KEY_EVENTS_HANDLERS (lua/keys.h)
 * (dispatch.c), which exists only while a request runs.
 *
 * Uses: lua/keys.h (the handler lists dispatch.c keeps). */
#ifndef RT_LUA_RT_EVENTS_H
#define RT_LUA_RT_EVENTS_H

#include <lua.h>

int luaopen_rt_events(lua_State *L);

#endif
