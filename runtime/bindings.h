/* bindings: the rt.* modules that need nothing from above the Lua host.
 *
 * rt.db, rt.json, rt.log, rt.auth and rt.events, as one module list
 * (lua/module.h) for the state builder. A caller that serves requests adds
 * its own list beside it (rt.tenant, whose context reaches the engines);
 * step states (steps.c) get this list alone.
 *
 * Uses: lua/rt_db.c, lua/rt_json.c, lua/rt_log.c, lua/rt_auth.c,
 * lua/rt_events.c. */
#ifndef RT_BINDINGS_H
#define RT_BINDINGS_H

#include "lua/module.h"

/* Ends with an entry whose name is NULL. */
extern const struct rt_module bindings_common[];

#endif
