/* bindings: the rt.* modules below the Lua host (see bindings.h). */
#include "bindings.h"

#include "lua/rt_auth.h"
#include "lua/rt_db.h"
#include "lua/rt_events.h"
#include "lua/rt_json.h"
#include "lua/rt_log.h"

const struct rt_module bindings_common[] = {
    {"rt.db", luaopen_rt_db, NULL},         {"rt.json", luaopen_rt_json, NULL},
    {"rt.log", luaopen_rt_log, NULL},       {"rt.auth", luaopen_rt_auth, NULL},
    {"rt.events", luaopen_rt_events, NULL}, {NULL, NULL, NULL},
};
