/* auth: the bottom of the auth module (see auth.h, auth_int.h): the
 * database plumbing the module's files share, the token keys from the
 * auth.jwt_* settings, and verification of access tokens with the cache of
 * verified ones. It calls no other file of the module: the permission cache
 * is in auth_perms.c, revocations and their reload in auth_revoke.c,
 * platform API keys in auth_keys.c, sessions in auth_session.c, and the
 * module object that builds and drops all of it in auth_module.c. */
#include "auth.h"
#include "auth_int.h"

#include "db.h"
#include "hash.h"
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- shared helpers (auth_int.h) ------------------------------------------------ */

/* Why this thread's last auth call that returned -1 failed, when the
 * database was the cause (auth_db_failure). */
static _Thread_local enum db_status tls_db_failure;

enum db_status auth_db_failure(void)
{
    enum db_status st = tls_db_failure;
    tls_db_failure = DB_OK;
    return st;
}

int auth_fail(struct db_error *err, const char *fmt, ...)
{
    va_list ap;

    tls_db_failure = DB_OK;
    err->status = DB_OK;
    err->sqlstate[0] = '\0';
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

int auth_tx_run(struct auth *a, struct db_conn **c, const char *sql, int n,
                const char *const *vals, PGresult **res, struct db_error *err)
{
    static const struct db_tx tx = {NULL, 0, false, 0};
    PGresult *r = NULL;

    tls_db_failure = DB_OK;
    if (db_query(a->pool, c, &tx, sql, n, vals, &r, err) < 0) {
        PQclear(r);
        tls_db_failure = err->status;
        return -1;
    }
    if (res)
        *res = r;
    else
        PQclear(r);
    return 0;
}

int auth_tx_end(struct auth *a, struct db_conn *c, int rc, struct db_error *err)
{
    if (rc == 0 && c && db_end(c, true, err) < 0) {
        tls_db_failure = err->status;
        rc = -1;
    }
    db_checkin(a->pool, c); /* rolls back what is left open */
    return rc;
}

int auth_run(struct auth *a, const char *sql, int n, const char *const *vals,
             PGresult **res, struct db_error *err)
{
    struct db_conn *c = NULL;
    int rc = auth_tx_run(a, &c, sql, n, vals, res, err);
    return auth_tx_end(a, c, rc, err);
}

int auth_lock_user(struct auth *a, struct db_conn **c, long long tid, const char *sub,
                   struct db_error *err)
{
    char tids[24];
    snprintf(tids, sizeof tids, "%lld", tid);
    const char *v[] = {tids, sub};
    return auth_tx_run(a, c,
                       "SELECT pg_advisory_xact_lock(hashtextextended($1 || ':' || $2, 0))",
                       2, v, NULL, err);
}

int auth_random_hex(char *out, size_t bytes)
{
    unsigned char b[64];
    if (bytes > sizeof b || crypto_random(b, bytes) < 0)
        return -1;
    crypto_hex(b, bytes, out);
    return 0;
}

int auth_cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

bool auth_keys_configured(const struct auth *a)
{
    return crypto_jwt_keys_alg(a->keys) != CRYPTO_JWT_HS256 || a->cfg->auth_jwt_secret[0];
}

/* ---- token keys ----------------------------------------------------------------- */

/* Reads a key file named in the config (relative to the config file) into
 * a malloc'd buffer the caller frees. Returns NULL with err filled. */
static char *read_key_file(const struct config *cfg, const char *setting, const char *name,
                           size_t *len, struct rt_err *err)
{
    char *path = config_path(cfg, name), *text = NULL;
    FILE *f = path ? fopen(path, "rb") : NULL;

    if (!f) {
        rt_err_set(err, "%s: cannot read '%s': %s", setting, path ? path : name,
                   path ? strerror(errno) : "out of memory");
        goto done;
    }
    /* Key files are small; a bound keeps a wrong path from reading a disk. */
    text = malloc(65536 + 1);
    *len = text ? fread(text, 1, 65536 + 1, f) : 0;
    if (!text || ferror(f) || *len > 65536) {
        rt_err_set(err, "%s: cannot read '%s': %s", setting, path,
                   !text       ? "out of memory"
                   : ferror(f) ? strerror(errno)
                               : "larger than 64 KiB");
        free(text);
        text = NULL;
    }
done:
    if (f)
        fclose(f);
    free(path);
    return text;
}

/* Calls fn for each "kid=value" item of a comma-separated list setting.
 * Returns 0, or -1 with err filled (by fn, or for an item without a kid). */
static int each_kid_item(const char *list, const char *setting,
                         int (*fn)(void *arg, const char *kid, const char *value,
                                   struct rt_err *err),
                         void *arg, struct rt_err *err)
{
    char item[1024];

    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        while (n > 0 && (*p == ' ' || *p == '\t'))
            p++, n--;
        size_t m = n;
        while (m > 0 && (p[m - 1] == ' ' || p[m - 1] == '\t'))
            m--;
        if (m >= sizeof item) {
            rt_err_set(err, "%s: an item is longer than %zu bytes", setting,
                       sizeof item - 1);
            return -1;
        }
        memcpy(item, p, m);
        item[m] = '\0';
        char *eq = strchr(item, '=');
        if (m > 0) {
            if (!eq || eq == item) {
                rt_err_set(err, "%s: items are kid=value (got '%.40s%s')", setting, item,
                           m > 40 ? "..." : "");
                return -1;
            }
            *eq = '\0';
            if (fn(arg, item, eq + 1, err) < 0)
                return -1;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

struct keys_ctx {
    const struct config *cfg;
    struct crypto_jwt_keys *keys;
};

static int add_public_key(void *arg, const char *kid, const char *path, struct rt_err *err)
{
    struct keys_ctx *k = arg;
    char why[200];
    size_t len = 0;
    char *pem = read_key_file(k->cfg, "auth.jwt_public_keys", path, &len, err);

    if (!pem)
        return -1;
    int rc = crypto_jwt_keys_add(k->keys, kid, pem, len, why, sizeof why);
    free(pem);
    if (rc < 0)
        rt_err_set(err, "auth.jwt_public_keys: kid '%s' (%s): %s", kid, path, why);
    return rc;
}

static int add_previous_secret(void *arg, const char *kid, const char *secret,
                               struct rt_err *err)
{
    struct keys_ctx *k = arg;
    char why[200];

    if (!kid[0] || strcmp(kid, k->cfg->auth_jwt_kid) == 0 ||
        crypto_jwt_keys_add(k->keys, kid, secret, strlen(secret), why, sizeof why) < 0) {
        rt_err_set(err, "auth.jwt_previous_secrets: kid '%s': %s", kid,
                   kid[0] && strcmp(kid, k->cfg->auth_jwt_kid) == 0
                       ? "is auth.jwt_kid, the current secret's"
                       : why);
        return -1;
    }
    return 0;
}

/* HS256: auth.jwt_secret signs (with auth.jwt_kid when set) and verifies
 * tokens without a kid or with that kid; auth.jwt_previous_secrets verify
 * tokens of earlier kids. No secret: no keys (only public routes answer). */
static int keys_hs256(struct keys_ctx *k, struct rt_err *err)
{
    const struct config *cfg = k->cfg;
    const char *secret = cfg->auth_jwt_secret;
    char why[200];

    if (cfg->auth_jwt_private_key_file[0] || cfg->auth_jwt_public_keys[0]) {
        rt_err_set(err,
                   "auth.jwt_private_key_file and auth.jwt_public_keys are for RS256 and "
                   "ES256; auth.jwt_algorithm is HS256");
        return -1;
    }
    if (!secret[0]) {
        if (cfg->auth_jwt_previous_secrets[0]) {
            rt_err_set(err, "auth.jwt_previous_secrets needs auth.jwt_secret");
            return -1;
        }
        return 0;
    }
    if (crypto_jwt_keys_set_signer(k->keys, cfg->auth_jwt_kid, secret, strlen(secret), why,
                                   sizeof why) < 0 ||
        crypto_jwt_keys_add(k->keys, "", secret, strlen(secret), why, sizeof why) < 0 ||
        (cfg->auth_jwt_kid[0] &&
         crypto_jwt_keys_add(k->keys, cfg->auth_jwt_kid, secret, strlen(secret), why,
                             sizeof why) < 0)) {
        rt_err_set(err, "auth.jwt_secret, auth.jwt_kid: %s", why);
        return -1;
    }
    return each_kid_item(cfg->auth_jwt_previous_secrets, "auth.jwt_previous_secrets",
                         add_previous_secret, k, err);
}

/* RS256/ES256: the private key file signs with auth.jwt_kid; the public
 * keys verify, each under its kid, and must include auth.jwt_kid's. */
static int keys_pem(struct keys_ctx *k, struct rt_err *err)
{
    const struct config *cfg = k->cfg;
    const char *alg = crypto_jwt_alg_name(crypto_jwt_keys_alg(k->keys));
    char why[200];
    size_t len = 0;

    if (!cfg->auth_jwt_private_key_file[0] || !cfg->auth_jwt_kid[0] ||
        !cfg->auth_jwt_public_keys[0]) {
        rt_err_set(
            err,
            "auth.jwt_algorithm %s needs auth.jwt_private_key_file, auth.jwt_kid and "
            "auth.jwt_public_keys",
            alg);
        return -1;
    }
    if (cfg->auth_jwt_secret[0] || cfg->auth_jwt_previous_secrets[0])
        log_msg(LOG_LEVEL_WARN, NULL,
                "auth.jwt_secret and auth.jwt_previous_secrets are ignored with %s", alg);
    char *pem = read_key_file(cfg, "auth.jwt_private_key_file",
                              cfg->auth_jwt_private_key_file, &len, err);
    if (!pem)
        return -1;
    int rc =
        crypto_jwt_keys_set_signer(k->keys, cfg->auth_jwt_kid, pem, len, why, sizeof why);
    crypto_wipe(pem, len);
    free(pem);
    if (rc < 0) {
        rt_err_set(err, "auth.jwt_private_key_file: %s", why);
        return -1;
    }
    return each_kid_item(cfg->auth_jwt_public_keys, "auth.jwt_public_keys", add_public_key,
                         k, err);
}

/* Builds the token keys from the auth.jwt_* settings: any problem (an
 * unknown algorithm, a missing, unreadable or wrong key file, a private key
 * that does not match its kid's public key) is a start-up error. */
struct crypto_jwt_keys *auth_keys_load(const struct config *cfg, struct rt_err *err)
{
    enum crypto_jwt_alg alg;
    char why[300];

    if (crypto_jwt_alg_parse(cfg->auth_jwt_algorithm, &alg) < 0) {
        rt_err_set(err, "auth.jwt_algorithm must be HS256, RS256 or ES256 (got '%s')",
                   cfg->auth_jwt_algorithm);
        return NULL;
    }
    struct keys_ctx k = {cfg, crypto_jwt_keys_new(alg)};
    if (!k.keys) {
        rt_err_set(err, "out of memory");
        return NULL;
    }
    bool hs = alg == CRYPTO_JWT_HS256;
    if ((hs ? keys_hs256(&k, err) : keys_pem(&k, err)) < 0)
        goto fail;
    if ((!hs || cfg->auth_jwt_secret[0]) &&
        crypto_jwt_keys_check(k.keys, why, sizeof why) < 0) {
        rt_err_set(err, "auth: %s", why);
        goto fail;
    }
    return k.keys;
fail:
    crypto_jwt_keys_free(k.keys);
    return NULL;
}

int auth_check_keys(const struct config *cfg, struct rt_err *err)
{
    struct crypto_jwt_keys *k = auth_keys_load(cfg, err);
    crypto_jwt_keys_free(k);
    return k ? 0 : -1;
}

/* ---- verification ----------------------------------------------------------- */

int auth_verify_token(struct auth *a, const char *token, struct crypto_jwt_claims *out,
                      char *why, size_t why_len)
{
    const struct config *cfg = a->cfg;
    if (!auth_keys_configured(a)) {
        memset(out, 0, sizeof *out);
        snprintf(why, why_len, "auth.jwt_secret is not configured");
        return -1;
    }
    long long now = (long long)time(NULL);
    size_t n = token ? strnlen(token, TOKEN_MAX + 1) : TOKEN_MAX + 1;
    struct token_slot *slot = NULL;
    uint64_t h = 0;
    if (n <= TOKEN_MAX) {
        h = hash_bytes(token, n);
        slot = &a->tokens[h & (TOKEN_SLOTS - 1)];
        pthread_mutex_lock(&slot->mu);
        bool hit = slot->token && slot->hash == h && strcmp(slot->token, token) == 0;
        if (hit)
            *out = slot->claims;
        pthread_mutex_unlock(&slot->mu);
        if (hit) {
            if (crypto_jwt_current(out, now, cfg->auth_leeway_s, why, why_len) == 0)
                return 0;
            memset(out, 0, sizeof *out);
            return -1;
        }
    }
    if (crypto_jwt_verify(a->keys, token, cfg->auth_issuer, cfg->auth_audience, now,
                          cfg->auth_leeway_s, out, why, why_len) < 0)
        return -1;
    char *copy = slot ? strdup(token) : NULL;
    if (copy) {
        pthread_mutex_lock(&slot->mu);
        free(slot->token);
        slot->token = copy;
        slot->hash = h;
        slot->claims = *out;
        pthread_mutex_unlock(&slot->mu);
    }
    return 0;
}
