/* rt.json: JSON for scripts, on lua-cjson.
 *
 *   json.encode(value)   -> string (raises on values JSON cannot hold,
 *                           including cycles: the depth limit stops them)
 *   json.decode(string)  -> value | nil, message
 *   json.null            -> JSON null (the same value as rt.null)
 *
 * Encode and decode depth are limited to the registry integer
 * "rt.json.max_depth" (set before opening); NaN and infinities are refused in
 * both directions. The raw cjson functions are also left in the registry as
 * "rt.json.encode" / "rt.json.decode" for other bindings and the prelude. */
#ifndef RT_LUA_RT_JSON_H
#define RT_LUA_RT_JSON_H

#include <lua.h>

int luaopen_rt_json(lua_State *L);

#endif
