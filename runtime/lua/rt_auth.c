/* rt.auth: passwords, sessions and token state for handlers, over auth.c and
 * crypto.c (see rt_auth.h). */
#include "lua/rt_auth.h"

#include "config.h"
#include "crypto.h"
#include "log.h"
#include "lua/keys.h"
#include "lua/rt_db.h"
#include "lua/sandbox.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

/* What the current request gives rt.auth (rt_auth_bind). */
/* What revoke_user and rbac_changed asked for, applied once the request's
 * transaction commits (rt_auth_settle): a permission cache dropped before
 * the commit could be refilled with the old set by a concurrent request, and
 * a rolled-back request must not end anyone's sessions. */
#define MAX_PENDING 16

struct pending {
    bool revoke;   /* revoke_user; else rbac_changed */
    char sub[64];  /* "": every user of the tenant (rbac_changed only) */
    long long tid; /* 0: the request's tenant */
};

struct binding {
    struct auth *auth;
    const struct crypto_jwt_claims *claims;
    long long tid;
    enum lane lane;
    bool confined; /* a tenant's override code may run: see rt_auth_bind */
    int npending;
    struct pending pending[MAX_PENDING];
};

static const char BINDING_KEY[] = "rt.auth.binding";

void rt_auth_bind(lua_State *L, struct auth *a, const struct crypto_jwt_claims *claims,
                  long long tid, enum lane lane, bool confined)
{
    struct binding *b;
    if (lua_getfield(L, LUA_REGISTRYINDEX, BINDING_KEY) != LUA_TUSERDATA) {
        lua_pop(L, 1);
        if (!a && !claims)
            return; /* nothing to clear, and no allocation outside a pcall */
        b = lua_newuserdatauv(L, sizeof *b, 0);
        lua_setfield(L, LUA_REGISTRYINDEX, BINDING_KEY);
    } else {
        b = lua_touserdata(L, -1);
        lua_pop(L, 1);
    }
    *b = (struct binding){a, claims, tid, lane, confined, 0, {{false, "", 0}}};
}

static const struct config *config_of(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, RT_KEY_CONFIG);
    const struct config *cfg = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!cfg)
        luaL_error(L, "rt.auth: not available here");
    return cfg;
}

/* The request's binding; raises outside a request. */
static struct binding *bound(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, BINDING_KEY);
    struct binding *b = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!b || !b->auth)
        luaL_error(L, "rt.auth: only available while handling a request");
    return b;
}

enum lane rt_auth_lane(lua_State *L)
{
    return bound(L)->lane;
}

bool rt_auth_confined(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, BINDING_KEY);
    const struct binding *b = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return b && b->auth && b->confined;
}

/* ---- what a tenant's override code may do ------------------------------- */

/* The users a confined run may issue tokens for: active users of the
 * request's tenant, read in the request's transaction (scoped to that
 * tenant, and tenant_id checked besides). */
static const char ACTIVE_USER_SQL[] =
    "SELECT 1 AS active FROM users WHERE id = $1::bigint AND tenant_id = $2::bigint "
    "AND status = 'active' AND deleted_at IS NULL";

/* Raises in a confined run: `what` is not for a tenant's override code. */
static void not_confined(lua_State *L, const char *what)
{
    if (rt_auth_confined(L))
        luaL_error(L, "rt.auth.%s: not available to a tenant's override scripts", what);
}

/* Whether s is a user id: 1 to 18 decimal digits (a bigint), nothing else. */
static bool is_user_id(const char *s)
{
    size_t n = 0;
    while (isdigit((unsigned char)s[n]))
        n++;
    return n > 0 && n <= 18 && s[n] == '\0';
}

/* In a confined run, raises unless (scope, tid, sub) names an active user of
 * the request's own tenant; elsewhere does nothing. Returns 0, or -1 with
 * nil, message, err_t pushed when the database could not answer (rt.db's
 * err_t; rt.db recorded the failure as the request's). */
static int check_subject(lua_State *L, const char *what, const char *scope, long long tid,
                         const char *sub)
{
    const struct binding *b = bound(L);

    if (!b->confined)
        return 0;
    if (strcmp(scope, "tenant") != 0)
        return luaL_error(L,
                          "rt.auth.%s: a tenant's override scripts cannot issue %s tokens",
                          what, scope);
    if (b->tid <= 0 || tid != b->tid)
        return luaL_error(L,
                          "rt.auth.%s: a tenant's override scripts issue tokens for their "
                          "own tenant only (tid %lld)",
                          what, b->tid);
    if (!is_user_id(sub))
        return luaL_error(L, "rt.auth.%s: sub must be the id of a user of this tenant",
                          what);
    sandbox_push_module(L, "rt.db");
    lua_getfield(L, -1, "query_one");
    lua_pushstring(L, ACTIVE_USER_SQL);
    lua_pushstring(L, sub);
    lua_pushinteger(L, (lua_Integer)b->tid);
    lua_call(L, 3, 3); /* row | nil | nil, message, err_t */
    if (lua_istable(L, -3)) {
        lua_pop(L, 4);
        return 0;
    }
    if (lua_isnil(L, -2))
        return luaL_error(L, "rt.auth.%s: user %s is not an active user of this tenant",
                          what, sub);
    /* [rt.db, nil, message, err_t] -> [..., nil, "cannot check ...", err_t]:
     * the top three are what the caller returns. */
    const char *msg = lua_pushfstring(L, "cannot check the user: %s", lua_tostring(L, -2));
    lua_pushnil(L);
    lua_pushstring(L, msg);
    lua_pushvalue(L, -4); /* err_t */
    return -1;
}

/* In a confined run, raises unless the request's own token is a token of
 * its tenant (a platform admin's token on an "any" route is not the
 * override's to end). */
static void check_caller(lua_State *L, const struct binding *b, const char *what)
{
    if (b->confined && (!b->claims || strcmp(b->claims->scope, "tenant") != 0 ||
                        b->tid <= 0 || b->claims->tid != b->tid))
        luaL_error(L,
                   "rt.auth.%s: a tenant's override scripts end sessions of their own "
                   "tenant's users only",
                   what);
}

/* Password hashing costs tens of milliseconds of CPU: only offloaded
 * routes may do it, so it never holds up an HTTP thread. */
static void need_offload(lua_State *L, const char *fn)
{
    if (rt_auth_lane(L) == LANE_HTTP)
        luaL_error(L, "rt.auth.%s: declare the route with offload = true", fn);
}

static struct crypto_argon2 argon2_params(const struct config *cfg)
{
    return (struct crypto_argon2){(uint32_t)cfg->auth_argon2_iterations,
                                  (uint32_t)cfg->auth_argon2_memory_kib,
                                  (uint32_t)cfg->auth_argon2_parallelism};
}

/* Stored hashes may not ask for more than this (see crypto.h). */
static const struct crypto_argon2 CEILING = {16, 1u << 20, 16};

static int l_hash_password(lua_State *L)
{
    size_t len;
    const char *pw = luaL_checklstring(L, 1, &len);
    const struct config *cfg = config_of(L);
    struct crypto_argon2 p = argon2_params(cfg);
    char out[CRYPTO_HASH_MAX];

    need_offload(L, "hash_password");
    if (len == 0 || len > CRYPTO_PASSWORD_MAX)
        return luaL_argerror(L, 1, "password must be 1 to 256 bytes");
    if (crypto_password_hash(pw, len, &p, out, sizeof out) < 0)
        return luaL_error(L, "rt.auth.hash_password: hashing failed");
    lua_pushstring(L, out);
    return 1;
}

/* A hash of a random password with the current parameters, for unknown users:
 * checking against it costs what a real check costs. */
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;
static char dummy_hash[CRYPTO_HASH_MAX];
static struct crypto_argon2 dummy_params;

static void dummy_init(void)
{
    char pw[33];
    unsigned char rnd[16];
    if (crypto_random(rnd, sizeof rnd) < 0)
        memset(rnd, 0x5a, sizeof rnd);
    crypto_hex(rnd, sizeof rnd, pw);
    if (crypto_password_hash(pw, strlen(pw), &dummy_params, dummy_hash, sizeof dummy_hash) <
        0)
        dummy_hash[0] = '\0';
}

/* verify_password(password, hash|nil) -> boolean. A nil or malformed hash
 * still costs one full check and answers false. */
static int l_verify_password(lua_State *L)
{
    size_t len;
    const char *pw = luaL_checklstring(L, 1, &len);
    const char *hash = luaL_optstring(L, 2, NULL);
    const struct config *cfg = config_of(L);

    need_offload(L, "verify_password");
    if (len > CRYPTO_PASSWORD_MAX)
        len = CRYPTO_PASSWORD_MAX;
    int rc = -1;
    if (hash && *hash)
        rc = crypto_password_verify(hash, pw, len, &CEILING);
    if (rc < 0) {
        dummy_params = argon2_params(cfg);
        pthread_once(&dummy_once, dummy_init);
        (void)crypto_password_verify(dummy_hash, pw, len, &CEILING);
        rc = 0;
    }
    lua_pushboolean(L, rc == 1);
    return 1;
}

/* password_problem(password) -> nil, or what is wrong with it. */
static int l_password_problem(lua_State *L)
{
    size_t len;
    const char *pw = luaL_checklstring(L, 1, &len);
    const struct config *cfg = config_of(L);
    size_t chars = 0, same = 0;

    for (size_t i = 0; i < len; i++) {
        chars += ((unsigned char)pw[i] & 0xc0) != 0x80; /* UTF-8 lead bytes */
        same += pw[i] == pw[0];
    }
    if (chars < (size_t)cfg->auth_password_min_length)
        lua_pushfstring(L, "must be at least %d characters", cfg->auth_password_min_length);
    else if (len > CRYPTO_PASSWORD_MAX)
        lua_pushfstring(L, "must be at most %d bytes", CRYPTO_PASSWORD_MAX);
    else if (same == len)
        lua_pushliteral(L, "must not repeat one character");
    else
        lua_pushnil(L);
    return 1;
}

/* Reads {sub=, scope=, tid=} from argument 1. The strings are left on the
 * stack (at 2 and 3), which keeps them alive for the caller: a number is
 * converted there, and a field an __index function made is in no table. */
static void subject(lua_State *L, const char **sub, const char **scope, long long *tid)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_getfield(L, 1, "sub");
    lua_getfield(L, 1, "scope");
    *sub = lua_tostring(L, 2);
    *scope = lua_tostring(L, 3);
    if (!*sub || !crypto_jwt_sub_valid(*sub))
        luaL_argerror(L, 1, "sub must be a user id (a positive integer)");
    if (!*scope || (strcmp(*scope, "core") != 0 && strcmp(*scope, "tenant") != 0))
        luaL_argerror(L, 1, "scope must be core or tenant");
    lua_getfield(L, 1, "tid");
    *tid = (long long)lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (strcmp(*scope, "tenant") == 0 && *tid <= 0)
        luaL_argerror(L, 1, "a tenant token needs tid");
}

/* Pushes the token response of seed 001/002 logins. */
static void push_session(lua_State *L, const struct config *cfg,
                         const struct auth_session *s)
{
    lua_createtable(L, 0, 5);
    lua_pushstring(L, s->access);
    lua_setfield(L, -2, "access_token");
    if (s->refresh[0]) {
        lua_pushstring(L, s->refresh);
        lua_setfield(L, -2, "refresh_token");
    }
    lua_pushliteral(L, "bearer");
    lua_setfield(L, -2, "token_type");
    lua_pushinteger(L, cfg->auth_token_ttl_s);
    lua_setfield(L, -2, "expires_in");
}

/* Returns nil, message, err_t for a failed auth call (the convention of
 * rt_db.h). A database failure behind it decides the request's status as a
 * failed rt.db call would (503 + Retry-After, 504) when the script passes
 * the nil on or raises; a failure that is not the database's has kind
 * "internal". */
static int fail(lua_State *L, const char *what, const struct db_error *err)
{
    struct db_error named = *err;

    (void)auth_db_failure(); /* err carries the status; reset the thread's copy */
    snprintf(named.message, sizeof named.message, "rt.auth.%s: %.*s", what,
             (int)(sizeof named.message - 40), err->message);
    return rt_db_push_error(L, &named, "internal");
}

/* issue_token{sub=, scope=, tid=} -> token, exp | nil, message, err_t */
static int l_issue_token(lua_State *L)
{
    const char *sub, *scope;
    long long tid;
    struct auth_session s;
    struct db_error err;

    subject(L, &sub, &scope, &tid);
    if (check_subject(L, "issue_token", scope, tid, sub) < 0)
        return 3;
    if (auth_issue_access(bound(L)->auth, scope, tid, sub, NULL, &s, &err) < 0)
        return fail(L, "issue_token", &err);
    lua_pushstring(L, s.access);
    lua_pushinteger(L, (lua_Integer)s.claims.exp);
    auth_session_clear(&s);
    return 2;
}

/* login{sub=, scope=, tid=} -> {access_token, refresh_token, token_type,
 * expires_in} | nil, message, err_t */
static int l_login(lua_State *L)
{
    const char *sub, *scope;
    long long tid;
    struct auth_session s;
    struct db_error err;

    subject(L, &sub, &scope, &tid);
    if (check_subject(L, "login", scope, tid, sub) < 0)
        return 3;
    if (auth_session_start(bound(L)->auth, scope, tid, sub, &s, &err) < 0)
        return fail(L, "login", &err);
    push_session(L, config_of(L), &s);
    auth_session_clear(&s);
    return 1;
}

/* refresh(token) -> session table plus sub, scope, tid | nil (unknown,
 * spent, revoked or expired) | nil, message, err_t */
static int l_refresh(lua_State *L)
{
    const char *token = luaL_checkstring(L, 1);
    const struct binding *b = bound(L);
    struct auth_session s;
    struct db_error err;

    /* A confined run refreshes sessions of its own tenant only; any other
     * is unknown to it, and stays unspent. */
    int rc = auth_session_refresh(b->auth, token, b->confined ? b->tid : -1, &s, &err);
    if (rc < 0)
        return fail(L, "refresh", &err);
    if (rc == 0) {
        lua_pushnil(L);
        return 1;
    }
    push_session(L, config_of(L), &s);
    lua_pushstring(L, s.claims.sub);
    lua_setfield(L, -2, "sub");
    lua_pushstring(L, s.claims.scope);
    lua_setfield(L, -2, "scope");
    lua_pushinteger(L, (lua_Integer)s.claims.tid);
    lua_setfield(L, -2, "tid");
    auth_session_clear(&s);
    return 1;
}

/* logout([refresh_token]) -> true | nil, message, err_t: revokes the
 * caller's token and that session. */
static int l_logout(lua_State *L)
{
    const char *refresh = luaL_optstring(L, 1, NULL);
    struct binding *b = bound(L);
    struct db_error err;

    if (!b->claims || strncmp(b->claims->sub, "apikey:", 7) == 0)
        return luaL_error(L, "rt.auth.logout: the request has no user token");
    check_caller(L, b, "logout");
    if (auth_session_end(b->auth, b->claims, refresh, &err) < 0)
        return fail(L, "logout", &err);
    lua_pushboolean(L, 1);
    return 1;
}

/* logout_others() -> n | nil, message, err_t: ends every other session of
 * the caller (their refresh tokens and access tokens); the caller's own
 * goes on. */
static int l_logout_others(lua_State *L)
{
    struct binding *b = bound(L);
    struct db_error err;

    if (!b->claims || strncmp(b->claims->sub, "apikey:", 7) == 0)
        return luaL_error(L, "rt.auth.logout_others: the request has no user token");
    check_caller(L, b, "logout_others");
    int n = auth_session_end_others(b->auth, b->claims, &err);
    if (n < 0)
        return fail(L, "logout_others", &err);
    lua_pushinteger(L, n);
    return 1;
}

/* Applies one pending action now. Returns 0 or -1 (err filled). */
static int apply(struct binding *b, const struct pending *p, struct db_error *err)
{
    long long tid = p->tid ? p->tid : b->tid;
    if (p->revoke)
        return auth_revoke_user(b->auth, tid, p->sub, err);
    return auth_rbac_changed(b->auth, tid, p->sub[0] ? p->sub : NULL, err);
}

/* Queues an action for the commit; past MAX_PENDING it is applied at once
 * (the safe side for both), which can fail. Returns true | nil, message,
 * err_t. */
static int defer(lua_State *L, bool revoke, const char *sub, long long tid,
                 const char *what)
{
    struct binding *b = bound(L);
    struct pending p = {revoke, "", tid};
    struct db_error err;

    if (b->confined && b->tid <= 0)
        return luaL_error(L, "rt.auth.%s: not available to a tenant's override scripts",
                          what);
    if (sub && strlen(sub) >= sizeof p.sub)
        return luaL_error(L, "rt.auth.%s: user id too long", what);
    if (sub)
        memcpy(p.sub, sub, strlen(sub) + 1);
    if (b->npending < MAX_PENDING) {
        b->pending[b->npending++] = p;
    } else if (apply(b, &p, &err) < 0) {
        return fail(L, what, &err);
    }
    lua_pushboolean(L, 1);
    return 1;
}

void rt_auth_settle(lua_State *L, bool committed, const char *request_id)
{
    lua_getfield(L, LUA_REGISTRYINDEX, BINDING_KEY);
    struct binding *b = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!b)
        return;
    for (int i = 0; committed && b->auth && i < b->npending; i++) {
        struct db_error err;
        if (apply(b, &b->pending[i], &err) < 0) {
            (void)auth_db_failure(); /* the answer is decided already */
            log_msg(LOG_LEVEL_ERROR, request_id, "after commit: rt.auth.%s: %s",
                    b->pending[i].revoke ? "revoke_user" : "rbac_changed", err.message);
        }
    }
    b->npending = 0;
}

/* revoke_user(user_id) -> true | nil, message, err_t: every token and
 * session of that user of the current tenant (platform user without one)
 * stops working once the request commits. */
static int l_revoke_user(lua_State *L)
{
    return defer(L, true, luaL_checkstring(L, 1), 0, "revoke_user");
}

/* rbac_changed([user_id [, tenant_id]]) -> true | nil, message, err_t:
 * roles or permissions of that user
 * (nil: anyone) of the current tenant changed; a platform request (no
 * tenant) names the tenant (re-seeding, migrating it). A request of a
 * tenant may name only that tenant. */
static int l_rbac_changed(lua_State *L)
{
    const char *sub = luaL_optstring(L, 1, NULL);
    lua_Integer tid = luaL_optinteger(L, 2, 0);
    struct binding *b = bound(L);

    if (tid < 0 || (tid > 0 && b->tid > 0 && b->tid != (long long)tid))
        return luaL_argerror(L, 2, "the request's own tenant");
    return defer(L, false, sub, (long long)tid, "rbac_changed");
}

/* revoke_tenant(tenant_id) -> true | nil, message, err_t: every session and
 * token of that tenant ends
 * now (its storage was recreated or purged, or it was deleted), here at once
 * and on other replicas within auth.revocation_refresh_ms. Not deferred: the
 * platform routes that call it change the tenant on connections of their
 * own, already committed. A request of a tenant may name only that tenant. */
static int l_revoke_tenant(lua_State *L)
{
    lua_Integer tid = luaL_checkinteger(L, 1);
    struct binding *b = bound(L);
    struct db_error err;

    if (tid <= 0)
        return luaL_argerror(L, 1, "a tenant id");
    if (b->tid > 0 && b->tid != (long long)tid)
        return luaL_error(L, "rt.auth.revoke_tenant: not another tenant's sessions");
    if (auth_revoke_tenant(b->auth, (long long)tid, &err) < 0)
        return fail(L, "revoke_tenant", &err);
    lua_pushboolean(L, 1);
    return 1;
}

/* create_api_key(name, creator_id) -> key, id (the key is shown once) |
 * nil, message, err_t */
static int l_create_api_key(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lua_Integer creator = luaL_optinteger(L, 2, 0);
    char key[96];
    struct db_error err;

    not_confined(L, "create_api_key");
    long long id = auth_api_key_create(bound(L)->auth, name, (long long)creator, key, &err);
    if (id < 0) {
        crypto_wipe(key, sizeof key);
        return fail(L, "create_api_key", &err);
    }
    lua_pushstring(L, key);
    crypto_wipe(key, sizeof key);
    lua_pushinteger(L, (lua_Integer)id);
    return 2;
}

/* revoke_api_key(id) -> true | false (no such live key) | nil, message,
 * err_t */
static int l_revoke_api_key(lua_State *L)
{
    lua_Integer id = luaL_checkinteger(L, 1);
    struct db_error err;

    not_confined(L, "revoke_api_key");
    int rc = auth_api_key_revoke(bound(L)->auth, (long long)id, &err);
    if (rc < 0)
        return fail(L, "revoke_api_key", &err);
    lua_pushboolean(L, rc == 1);
    return 1;
}

/* config() -> the auth settings scripts need */
static int l_config(lua_State *L)
{
    const struct config *cfg = config_of(L);
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, cfg->auth_password_min_length);
    lua_setfield(L, -2, "password_min_length");
    lua_pushinteger(L, cfg->auth_lockout_attempts);
    lua_setfield(L, -2, "lockout_attempts");
    lua_pushinteger(L, cfg->auth_lockout_s);
    lua_setfield(L, -2, "lockout_s");
    lua_pushboolean(L, cfg->auth_core_registration);
    lua_setfield(L, -2, "core_registration");
    lua_pushinteger(L, cfg->auth_token_ttl_s);
    lua_setfield(L, -2, "token_ttl_s");
    return 1;
}

int luaopen_rt_auth(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"hash_password", l_hash_password},
        {"verify_password", l_verify_password},
        {"password_problem", l_password_problem},
        {"issue_token", l_issue_token},
        {"login", l_login},
        {"refresh", l_refresh},
        {"logout", l_logout},
        {"logout_others", l_logout_others},
        {"revoke_user", l_revoke_user},
        {"rbac_changed", l_rbac_changed},
        {"revoke_tenant", l_revoke_tenant},
        {"create_api_key", l_create_api_key},
        {"revoke_api_key", l_revoke_api_key},
        {"config", l_config},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    return 1;
}
