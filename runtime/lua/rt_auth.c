/* rt.auth: token issuing over crypto.c (see rt_auth.h). */
#include "lua/rt_auth.h"

#include "config.h"
#include "crypto.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>

static const char *field(lua_State *L, const char *name, bool required)
{
    lua_getfield(L, 1, name);
    const char *v = lua_tostring(L, -1);
    lua_pop(L, 1); /* the string stays alive in the argument table */
    if (required && (!v || !*v))
        luaL_error(L, "rt.auth.issue_token: %s is required", name);
    return v;
}

static int l_issue_token(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "rt.config");
    const struct config *cfg = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!cfg)
        return luaL_error(L, "rt.auth.issue_token: not available here");
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *sub = field(L, "sub", true);
    const char *scope = field(L, "scope", true);
    if (strcmp(scope, "core") != 0 && strcmp(scope, "tenant") != 0)
        return luaL_argerror(L, 1, "scope must be core or tenant");
    lua_getfield(L, 1, "tid");
    lua_Integer tid = lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (strcmp(scope, "tenant") == 0 && tid <= 0)
        return luaL_argerror(L, 1, "a tenant token needs tid");
    if (strlen(cfg->auth_jwt_secret) < 32) {
        lua_pushnil(L);
        lua_pushliteral(L, "auth.jwt_secret is not configured (32 bytes or more)");
        return 2;
    }

    struct crypto_jwt_claims c;
    unsigned char rnd[16];
    memset(&c, 0, sizeof c);
    if (crypto_random(rnd, sizeof rnd) < 0)
        return luaL_error(L, "rt.auth.issue_token: no randomness");
    crypto_hex(rnd, sizeof rnd, c.jti);
    snprintf(c.iss, sizeof c.iss, "%s", cfg->auth_issuer);
    snprintf(c.aud, sizeof c.aud, "%s", cfg->auth_audience);
    snprintf(c.sub, sizeof c.sub, "%s", sub);
    snprintf(c.scope, sizeof c.scope, "%s", scope);
    c.tid = strcmp(scope, "tenant") == 0 ? (long long)tid : 0;
    c.iat = (long long)time(NULL);
    c.exp = c.iat + cfg->auth_token_ttl_s;
    char *token = crypto_jwt_sign((const unsigned char *)cfg->auth_jwt_secret,
                                  strlen(cfg->auth_jwt_secret), NULL, &c);
    if (!token)
        return luaL_error(L, "rt.auth.issue_token: signing failed");
    lua_pushstring(L, token);
    free(token);
    lua_pushinteger(L, (lua_Integer)c.exp);
    return 2;
}

int luaopen_rt_auth(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"issue_token", l_issue_token},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    return 1;
}
