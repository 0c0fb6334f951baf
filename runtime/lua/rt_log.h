/* rt.log: log lines from scripts.
 *
 *   log.debug(...), log.info(...), log.warn(...), log.error(...)
 *
 * Arguments are converted with tostring and joined by spaces. The line
 * carries the current request id (registry string RT_KEY_REQUEST_ID, lua/keys.h).
 *
 * Uses: log.c, lua/keys.h (the request id). */
#ifndef RT_LUA_RT_LOG_H
#define RT_LUA_RT_LOG_H

#include <lua.h>

int luaopen_rt_log(lua_State *L);

#endif
