/* rt.auth: tokens for scripts.
 *
 *   auth.issue_token{ sub = "42", scope = "core" | "tenant", tid = 7 }
 *       -> token, expires_at   | nil, message
 *
 * Signs an HS256 access token with the runtime's configured key, issuer,
 * audience and lifetime, and a random jti. Available while a request runs
 * (the registry holds the config); password hashing and refresh tokens come
 * with the rest of the auth issue. */
#ifndef RT_LUA_RT_AUTH_H
#define RT_LUA_RT_AUTH_H

#include <lua.h>

int luaopen_rt_auth(lua_State *L);

#endif
