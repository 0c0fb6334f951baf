/* config: config.lua + environment overrides (see config.h). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

enum key_type {
    KEY_STRING,
    KEY_INT,
    KEY_BOOL,
    KEY_LIST, /* a string, or a Lua list of strings; kept comma-separated */
};

struct key {
    struct config_key_info info;
    enum key_type type;
    size_t offset;
    long min, max;
};

#define STR(sec, k, def, doc)                                                  \
    {                                                                          \
        {#sec "." #k, "RUNTIME_" #sec "_" #k, "string", def, doc}, KEY_STRING, \
            offsetof(struct config, sec##_##k), 0, 0                           \
    }
#define INT(sec, k, def, lo, hi, doc)                                         \
    {                                                                         \
        {#sec "." #k, "RUNTIME_" #sec "_" #k, "integer", #def, doc}, KEY_INT, \
            offsetof(struct config, sec##_##k), lo, hi                        \
    }
#define LIST(sec, k, def, doc)                                             \
    {                                                                      \
        {#sec "." #k, "RUNTIME_" #sec "_" #k, "list", def, doc}, KEY_LIST, \
            offsetof(struct config, sec##_##k), 0, 0                       \
    }
#define BOOL(sec, k, def, doc)                                                 \
    {                                                                          \
        {#sec "." #k, "RUNTIME_" #sec "_" #k, "boolean", #def, doc}, KEY_BOOL, \
            offsetof(struct config, sec##_##k), 0, 1                           \
    }

/* The environment names are upper-cased when the table is first used. */
static struct key keys[] = {
    STR(http, host, "127.0.0.1", "Address to listen on."),
    INT(http, port, 8080, 1, 65535, "TCP port to listen on."),
    INT(http, threads, 4, 1, 256,
        "Worker threads (libmicrohttpd thread pool); each owns one Lua state."),
    INT(http, max_body, 1048576, 0, INT_MAX,
        "Largest request body in bytes; larger gets 413."),
    INT(http, connection_memory_limit, 32768, 4096, 16777216,
        "Memory per connection for the request line and headers; "
        "beyond it 414 or 431."),
    INT(http, connection_timeout, 30, 1, 3600,
        "Seconds an idle or slow connection is kept."),
    INT(http, connection_limit, 1024, 1, 1000000, "Most concurrent connections."),
    INT(http, per_ip_connection_limit, 256, 0, 1000000,
        "Most concurrent connections from one IP address (0: no limit)."),
    INT(http, shutdown_grace, 10, 0, 3600,
        "Seconds in-flight requests get to finish on SIGTERM/SIGINT."),
    INT(http, offload_threads, 0, 0, 64,
        "Threads (SCHED_IDLE) that run routes declared offload = true, such as "
        "logins: password hashing never holds up other requests. 0: half the CPUs, "
        "at least one."),
    INT(http, admin_threads, 2, 1, 64,
        "Threads that run routes declared offload = \"admin\" (provisioning, "
        "migrations, seeds, purges), apart from the offload threads so a long run "
        "never queues a login."),
    INT(http, offload_queue, 256, 1, 100000,
        "Most requests waiting for a thread on each lane (offload, admin); beyond "
        "it 503."),
    STR(database, url, "",
        "libpq connection URL of the request role (rt_app). Required by serve."),
    STR(database, owner_url, "",
        "libpq connection URL of the owner role (rt_owner). Required by migrate."),
    INT(database, pool_size, 8, 1, 1000, "Most connections per (server, database) pool."),
    INT(database, checkout_timeout_ms, 2000, 1, 600000,
        "Milliseconds a request waits for a pooled connection before 504."),
    INT(database, statement_timeout_ms, 5000, 0, 86400000,
        "statement_timeout set in every request transaction (0: none)."),
    INT(database, connect_timeout, 5, 1, 600, "Seconds to wait for a new connection."),
    INT(database, retry_after, 5, 1, 3600,
        "Retry-After seconds sent with 503 while the database is unreachable."),
    INT(database, idle_pool_ms, 60000, 0, 86400000,
        "Milliseconds a tenant database's pool may go unused before it and its "
        "connections are closed (0: never)."),
    STR(tenancy, default_isolation, "schema",
        "Isolation of new tenants when none is given: shared, schema or database."),
    STR(tenancy, sources, "path,header,token",
        "Trusted tenant sources, comma-separated: path, header, subdomain, domain, token."),
    STR(tenancy, base_domain, "",
        "Base domain whose subdomains name tenants (acme.example.com); empty: none."),
    INT(tenancy, refresh_ms, 1000, 50, 600000,
        "Milliseconds between checks of the tenant directory for changes."),
    INT(tenancy, spare_schemas, 2, 0, 100,
        "Pre-migrated spare schemas kept per server for new schema tenants (0: none)."),
    BOOL(tenancy, database_template, true,
         "Clone new database tenants from a pre-migrated template database."),
    STR(auth, jwt_algorithm, "HS256",
        "Algorithm of bearer tokens: HS256, RS256 or ES256 (pinned: never the token's)."),
    STR(auth, jwt_secret, "",
        "HS256 key for bearer tokens (32 bytes or more); empty: only public routes work."),
    STR(auth, jwt_kid, "",
        "kid put into new tokens' header; required for RS256/ES256, where it names the "
        "public key of auth.jwt_private_key_file in auth.jwt_public_keys."),
    STR(auth, jwt_private_key_file, "",
        "PEM private key new RS256/ES256 tokens are signed with (relative to the config "
        "file)."),
    LIST(auth, jwt_public_keys, "",
         "RS256/ES256 verification keys: kid=path of PEM public keys; a token's kid picks "
         "one."),
    LIST(auth, jwt_previous_secrets, "",
         "HS256 secrets of earlier kids (kid=secret) that still verify tokens."),
    STR(auth, issuer, "runtime", "iss of the tokens the runtime issues and accepts."),
    STR(auth, audience, "runtime-api", "aud of the tokens the runtime issues and accepts."),
    INT(auth, leeway_s, 30, 0, 300, "Clock leeway in seconds for exp and iat."),
    INT(auth, token_ttl_s, 900, 30, 86400, "Lifetime of access tokens in seconds."),
    INT(auth, refresh_ttl_s, 1209600, 60, 31536000,
        "Lifetime of refresh tokens in seconds."),
    INT(auth, revocation_refresh_ms, 1000, 50, 600000,
        "Milliseconds between reloads of revocations and API keys."),
    INT(auth, permission_cache_s, 300, 0, 86400,
        "Longest a user's cached permission set is used (role changes drop it sooner)."),
    INT(auth, argon2_memory_kib, 19456, 19456, 4194304,
        "argon2id memory cost in KiB for new password hashes (OWASP: 19456 or more)."),
    INT(auth, argon2_iterations, 2, 2, 100, "argon2id iterations for new password hashes."),
    INT(auth, argon2_parallelism, 1, 1, 64, "argon2id lanes for new password hashes."),
    INT(auth, lockout_attempts, 5, 1, 1000, "Failed logins in a row that lock an account."),
    INT(auth, lockout_s, 900, 1, 604800, "Seconds an account stays locked."),
    INT(auth, password_min_length, 10, 8, 256, "Shortest password accepted."),
    BOOL(auth, core_registration, true,
         "POST /api/v1/auth/register without a tenant creates platform users."),
    INT(migrate, jobs, 4, 1, 64, "Parallel tenant workers for runtime migrate."),
    INT(migrate, lock_timeout_ms, 60000, 1, 3600000,
        "Longest wait for a migration target's lock."),
    STR(scripts, dir, "scripts",
        "Script root (api/, migrations/, seeds/), relative to the config file."),
    INT(scripts, instruction_limit, 100000000, 0, INT_MAX,
        "Lua instructions one request may run (counted per 1000; 0: no limit)."),
    INT(scripts, memory_limit_mb, 64, 0, 65536,
        "MiB a worker's Lua state may hold (0: no limit); past it the request fails "
        "and the state is rebuilt."),
    INT(scripts, time_limit_ms, 10000, 0, 3600000,
        "Wall-clock milliseconds a request's script may run (0: no limit)."),
    INT(scripts, tenant_envs, 256, 1, 1000000,
        "Tenant environments a worker's Lua state keeps; past it the least recently "
        "used is dropped."),
    BOOL(scripts, reload, true,
         "Watch the script root (inotify) and load changed scripts while serving."),
    INT(scripts, reload_delay_ms, 25, 0, 10000,
        "Quiet time after the last file change before a reload (changes in a burst "
        "load once)."),
    INT(json, max_depth, 64, 1, 1000,
        "Deepest nesting rt.json decodes; it encodes 16 levels more."),
    STR(log, level, "info", "Lowest level logged: debug, info, warn or error."),
    BOOL(log, access, true, "One access-log line per request."),
};
#define NKEYS (sizeof keys / sizeof keys[0])

static char env_names[NKEYS][64];

static void env_names_init(void)
{
    if (env_names[0][0])
        return;
    for (size_t i = 0; i < NKEYS; i++) {
        const char *s = keys[i].info.env;
        size_t j = 0;
        for (; s[j] && j < sizeof env_names[i] - 1; j++)
            env_names[i][j] = (char)toupper((unsigned char)s[j]);
        env_names[i][j] = '\0';
        keys[i].info.env = env_names[i];
    }
}

size_t config_key_count(void)
{
    env_names_init();
    return NKEYS;
}

const struct config_key_info *config_key(size_t i)
{
    env_names_init();
    return i < NKEYS ? &keys[i].info : NULL;
}

static const struct key *key_find(const char *section, const char *name)
{
    size_t sl = strlen(section);
    for (size_t i = 0; i < NKEYS; i++) {
        const char *n = keys[i].info.name;
        if (strncmp(n, section, sl) == 0 && n[sl] == '.' && strcmp(n + sl + 1, name) == 0)
            return &keys[i];
    }
    return NULL;
}

static bool section_known(const char *section)
{
    size_t sl = strlen(section);
    for (size_t i = 0; i < NKEYS; i++)
        if (strncmp(keys[i].info.name, section, sl) == 0 && keys[i].info.name[sl] == '.')
            return true;
    return false;
}

static int set_string(struct config *c, const struct key *k, const char *v,
                      struct rt_err *err)
{
    char **slot = (char **)((char *)c + k->offset);
    char *copy = strdup(v);
    if (!copy) {
        rt_err_set(err, "out of memory");
        return -1;
    }
    free(*slot);
    *slot = copy;
    return 0;
}

static int set_int(struct config *c, const struct key *k, long long v, const char *origin,
                   struct rt_err *err)
{
    if (v < k->min || v > k->max) {
        rt_err_set(err, "%s: %s must be between %ld and %ld (got %lld)", origin,
                   k->info.name, k->min, k->max, v);
        return -1;
    }
    if (k->type == KEY_BOOL)
        *(bool *)((char *)c + k->offset) = v != 0;
    else
        *(int *)((char *)c + k->offset) = (int)v;
    return 0;
}

/* Parses a textual value (default or environment) into its slot. */
static int set_text(struct config *c, const struct key *k, const char *v,
                    const char *origin, struct rt_err *err)
{
    char *end;
    long long n;

    switch (k->type) {
    case KEY_STRING:
    case KEY_LIST: return set_string(c, k, v, err);
    case KEY_BOOL:
        if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcmp(v, "yes") == 0 ||
            strcmp(v, "on") == 0)
            return set_int(c, k, 1, origin, err);
        if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0 || strcmp(v, "no") == 0 ||
            strcmp(v, "off") == 0)
            return set_int(c, k, 0, origin, err);
        rt_err_set(err, "%s: %s must be true or false (got '%s')", origin, k->info.name, v);
        return -1;
    case KEY_INT:
        errno = 0;
        n = strtoll(v, &end, 10);
        if (errno || end == v || *end) {
            rt_err_set(err, "%s: %s must be an integer (got '%s')", origin, k->info.name,
                       v);
            return -1;
        }
        return set_int(c, k, n, origin, err);
    }
    return -1;
}

/* A list from config.lua ({ "a=1", "b=2" }) is kept as the text an
 * environment variable would give ("a=1,b=2"), so one parser reads both.
 * Stack: [..., list] -> unchanged. */
static int set_list(struct config *c, const struct key *k, lua_State *L, const char *origin,
                    struct rt_err *err)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    luaL_Buffer b;

    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_Integer i = lua_isinteger(L, -2) ? lua_tointeger(L, -2) : 0;
        if (i < 1 || i > n || lua_type(L, -1) != LUA_TSTRING ||
            strchr(lua_tostring(L, -1), ',')) {
            rt_err_set(err, "%s: %s must be a list of strings without commas", origin,
                       k->info.name);
            return -1;
        }
        lua_pop(L, 1);
    }
    luaL_buffinit(L, &b);
    for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, ',');
        lua_rawgeti(L, -2, i); /* -2: the buffer may hold a slot on the stack */
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    int rc = set_string(c, k, lua_tostring(L, -1), err);
    lua_pop(L, 1);
    return rc;
}

/* Reads one value from the Lua stack top into its slot. */
static int set_lua(struct config *c, const struct key *k, lua_State *L, const char *origin,
                   struct rt_err *err)
{
    int t = lua_type(L, -1);

    switch (k->type) {
    case KEY_STRING:
        if (t != LUA_TSTRING)
            break;
        return set_string(c, k, lua_tostring(L, -1), err);
    case KEY_BOOL:
        if (t != LUA_TBOOLEAN)
            break;
        return set_int(c, k, lua_toboolean(L, -1), origin, err);
    case KEY_INT:
        if (!lua_isinteger(L, -1))
            break;
        return set_int(c, k, (long long)lua_tointeger(L, -1), origin, err);
    case KEY_LIST:
        if (t == LUA_TSTRING)
            return set_string(c, k, lua_tostring(L, -1), err);
        if (t != LUA_TTABLE)
            break;
        return set_list(c, k, L, origin, err);
    }
    rt_err_set(err, "%s: %s must be a%s %s (got %s)", origin, k->info.name,
               k->type == KEY_INT ? "n" : "", k->info.type, lua_typename(L, t));
    return -1;
}

static bool server_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 31 || !islower((unsigned char)s[0]))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_'))
            return false;
    return true;
}

/* Reads servers = { name = { url = "...", owner_url = "..." }, ... }.
 * Stack: [..., servers table] -> unchanged. */
static int apply_servers(struct config *c, lua_State *L, const char *origin,
                         struct rt_err *err)
{
    if (!lua_istable(L, -1)) {
        rt_err_set(err, "%s: servers must be a table", origin);
        return -1;
    }
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
        if (!server_name_valid(name) || strcmp(name, "main") == 0) {
            rt_err_set(err,
                       "%s: servers.%s: server names are [a-z][a-z0-9_]* and 'main' is "
                       "database.url",
                       origin, name);
            return -1;
        }
        if (!lua_istable(L, -1)) {
            rt_err_set(err, "%s: servers.%s must be a table", origin, name);
            return -1;
        }
        struct config_server *v =
            realloc(c->servers, sizeof *v * (size_t)(c->nservers + 1));
        if (!v) {
            rt_err_set(err, "out of memory");
            return -1;
        }
        c->servers = v;
        struct config_server *sv = &c->servers[c->nservers++];
        memset(sv, 0, sizeof *sv);
        sv->name = strdup(name);
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
            char **slot = strcmp(k, "url") == 0         ? &sv->url
                          : strcmp(k, "owner_url") == 0 ? &sv->owner_url
                                                        : NULL;
            if (!slot || lua_type(L, -1) != LUA_TSTRING) {
                rt_err_set(err, "%s: servers.%s.%s: expected url and owner_url strings",
                           origin, name, k);
                return -1;
            }
            free(*slot);
            *slot = strdup(lua_tostring(L, -1));
            lua_pop(L, 1);
        }
        if (!sv->name || !sv->url || !sv->owner_url) {
            rt_err_set(err, "%s: servers.%s needs url and owner_url", origin, name);
            return -1;
        }
        lua_pop(L, 1);
    }
    return 0;
}

/* Walks the table returned by config.lua. Stack: [table] -> [table]. */
static int apply_table(struct config *c, lua_State *L, const char *origin,
                       struct rt_err *err)
{
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            rt_err_set(err, "%s: top-level keys must be section names", origin);
            return -1;
        }
        const char *section = lua_tostring(L, -2);
        if (strcmp(section, "servers") == 0) {
            if (apply_servers(c, L, origin, err) < 0)
                return -1;
            lua_pop(L, 1);
            continue;
        }
        if (!section_known(section)) {
            rt_err_set(err, "%s: unknown section '%s'", origin, section);
            return -1;
        }
        if (!lua_istable(L, -1)) {
            rt_err_set(err, "%s: section '%s' must be a table", origin, section);
            return -1;
        }
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_type(L, -2) != LUA_TSTRING) {
                rt_err_set(err, "%s: keys in '%s' must be names", origin, section);
                return -1;
            }
            const struct key *k = key_find(section, lua_tostring(L, -2));
            if (!k) {
                rt_err_set(err, "%s: unknown key '%s.%s'", origin, section,
                           lua_tostring(L, -2));
                return -1;
            }
            if (set_lua(c, k, L, origin, err) < 0)
                return -1;
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    return 0;
}

static int load_file(struct config *c, const char *path, struct rt_err *err)
{
    lua_State *L = luaL_newstate();
    int rc = -1;

    if (!L) {
        rt_err_set(err, "out of memory");
        return -1;
    }
    /* No libraries are opened: the config is data, not a program. */
    if (luaL_loadfilex(L, path, "t") != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
        rt_err_set(err, "%s", lua_tostring(L, -1));
        goto done;
    }
    if (!lua_istable(L, -1)) {
        rt_err_set(err, "%s: must return a table (got %s)", path, luaL_typename(L, -1));
        goto done;
    }
    rc = apply_table(c, L, path, err);
done:
    lua_close(L);
    return rc;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

struct config *config_load(const char *path, struct rt_err *err)
{
    struct config *c = calloc(1, sizeof *c);
    bool must_exist = path != NULL;

    env_names_init();
    if (!c) {
        rt_err_set(err, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < NKEYS; i++)
        if (set_text(c, &keys[i], keys[i].info.def, "default", err) < 0)
            goto fail;
    if (!path && getenv("RUNTIME_CONFIG") && *getenv("RUNTIME_CONFIG")) {
        path = getenv("RUNTIME_CONFIG");
        must_exist = true;
    }
    if (!path)
        path = "config.lua";
    if (access(path, R_OK) == 0) {
        if (load_file(c, path, err) < 0)
            goto fail;
        c->base_dir = dir_of(path);
    } else if (must_exist) {
        rt_err_set(err, "cannot read config file '%s': %s", path, strerror(errno));
        goto fail;
    } else {
        c->base_dir = strdup(".");
    }
    if (!c->base_dir) {
        rt_err_set(err, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < NKEYS; i++) {
        const char *v = getenv(keys[i].info.env);
        if (v && set_text(c, &keys[i], v, keys[i].info.env, err) < 0)
            goto fail;
    }
    /* "main" goes first: it is the database.* keys after their overrides. */
    struct config_server *v = realloc(c->servers, sizeof *v * (size_t)(c->nservers + 1));
    if (!v) {
        rt_err_set(err, "out of memory");
        goto fail;
    }
    c->servers = v;
    memmove(&c->servers[1], &c->servers[0], sizeof *v * (size_t)c->nservers);
    c->nservers++;
    c->servers[0].name = strdup("main");
    c->servers[0].url = strdup(c->database_url);
    c->servers[0].owner_url = strdup(c->database_owner_url);
    if (!c->servers[0].name || !c->servers[0].url || !c->servers[0].owner_url) {
        rt_err_set(err, "out of memory");
        goto fail;
    }
    return c;
fail:
    config_free(c);
    return NULL;
}

struct config *config_load_cli(const char *path)
{
    struct rt_err err;
    struct config *c = config_load(path, &err);
    if (!c)
        fprintf(stderr, "runtime: config: %s\n", err.msg);
    return c;
}

void config_free(struct config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].type == KEY_STRING || keys[i].type == KEY_LIST)
            free(*(char **)((char *)c + keys[i].offset));
    for (int i = 0; i < c->nservers; i++) {
        free(c->servers[i].name);
        free(c->servers[i].url);
        free(c->servers[i].owner_url);
    }
    free(c->servers);
    free(c->base_dir);
    free(c);
}

const struct config_server *config_server(const struct config *c, const char *name)
{
    for (int i = 0; i < c->nservers; i++)
        if (strcmp(c->servers[i].name, name) == 0)
            return &c->servers[i];
    return NULL;
}

char *config_path(const struct config *c, const char *p)
{
    if (p[0] == '/' || strcmp(c->base_dir, ".") == 0)
        return strdup(p);
    size_t n = strlen(c->base_dir) + strlen(p) + 2;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%s/%s", c->base_dir, p);
    return out;
}
