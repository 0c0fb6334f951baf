/* config: config.lua plus environment overrides, checked against one table.
 *
 * config.lua returns a table of sections (`http`, `database`, `migrate`,
 * `scripts`, `json`, `log`); every key is declared in the key table in config.c with
 * its type, default, bounds and environment variable (RUNTIME_<SECTION>_<KEY>,
 * e.g. RUNTIME_DATABASE_URL). Unknown sections or keys, wrong types and
 * out-of-range values are errors naming the key. The file is evaluated in an
 * empty Lua state: no libraries, text chunks only.
 *
 * Uses: err.c (and Lua, to read config.lua). */
#ifndef RT_CONFIG_H
#define RT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

struct config {
    char *http_host;
    int http_port;
    int http_threads;
    int http_max_body;
    int http_connection_memory_limit;
    int http_connection_timeout;
    int http_connection_limit;
    int http_per_ip_connection_limit;
    int http_shutdown_grace;
    int http_offload_threads;
    int http_admin_threads;
    int http_offload_queue;

    char *database_url;
    char *database_owner_url;
    int database_pool_size;
    int database_checkout_timeout_ms;
    int database_statement_timeout_ms;
    int database_connect_timeout;
    int database_retry_after;
    int database_idle_pool_ms;

    char *tenancy_default_isolation;
    char *tenancy_sources;
    char *tenancy_base_domain;
    int tenancy_refresh_ms;
    int tenancy_spare_schemas;
    bool tenancy_database_template;

    char *auth_jwt_algorithm; /* HS256, RS256, ES256 (checked by auth.c) */
    char *auth_jwt_secret;
    char *auth_jwt_kid;
    char *auth_jwt_private_key_file;
    char *auth_jwt_public_keys;      /* "kid=path,kid=path" */
    char *auth_jwt_previous_secrets; /* "kid=secret,..." */
    char *auth_issuer;
    char *auth_audience;
    int auth_leeway_s;
    int auth_token_ttl_s;
    int auth_refresh_ttl_s;
    int auth_revocation_refresh_ms;
    int auth_permission_cache_s;
    int auth_argon2_memory_kib;
    int auth_argon2_iterations;
    int auth_argon2_parallelism;
    int auth_lockout_attempts;
    int auth_lockout_s;
    int auth_password_min_length;
    bool auth_core_registration;

    int migrate_jobs;
    int migrate_lock_timeout_ms;

    char *scripts_dir;             /* absolute or relative to the config file's directory */
    int scripts_instruction_limit; /* 0: none */
    int scripts_memory_limit_mb;   /* 0: none */
    int scripts_time_limit_ms;     /* 0: none */
    int scripts_tenant_envs;       /* environments per worker state */
    bool scripts_reload;           /* watch scripts_dir and reload */
    int scripts_reload_delay_ms;   /* debounce */
    int json_max_depth;
    char *log_level;
    bool log_access;

    char *base_dir; /* directory of the config file ("." without one) */

    /* PostgreSQL servers tenants can be placed on. servers[0] is "main"
     * (database.url and database.owner_url); more come from the `servers`
     * table of config.lua: servers = { eu = { url = ..., owner_url = ... } }. */
    struct config_server {
        char *name;
        char *url;       /* request role (rt_app) */
        char *owner_url; /* owner role (rt_owner) */
    } * servers;
    int nservers;
};

/* Loads path (NULL: $RUNTIME_CONFIG, else ./config.lua if it exists, else
 * defaults only). A path that was named explicitly must exist. Environment
 * overrides are applied after the file. Returns NULL and fills err on
 * failure. The result is freed with config_free. */
struct config *config_load(const char *path, struct rt_err *err);

/* config_load for a command: a failure is printed to stderr as
 * "runtime: config: ..." and gives NULL. */
struct config *config_load_cli(const char *path);
void config_free(struct config *c);

/* The server called name, or NULL. */
const struct config_server *config_server(const struct config *c, const char *name);

/* Resolves a path from the config (such as scripts_dir) against base_dir.
 * Returns a malloc'd string or NULL when out of memory. */
char *config_path(const struct config *c, const char *p);

/* The key table, for documentation checks and `runtime config`. */
struct config_key_info {
    const char *name; /* "http.port" */
    const char *env;  /* "RUNTIME_HTTP_PORT" */
    const char *type; /* "string", "integer", "boolean", "list" */
    const char *def;  /* default, as text */
    const char *doc;
};
size_t config_key_count(void);
const struct config_key_info *config_key(size_t i);

#endif
