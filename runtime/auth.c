/* auth: sessions, revocations, API keys, permission cache (see auth.h). */
#include "auth.h"

#include "db.h"
#include "hash.h"
#include "log.h"
#include "ticker.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PERM_BUCKETS 1024
#define PERM_MAX     50000 /* entries; the cache is emptied past this */
/* How long an 'rbac' row lives: every reload in that time drops the cache
 * entries it names, so a change committed out of order is still seen. */
#define RBAC_ROW_S AUTH_RBAC_ROW_S
/* Verified access tokens remembered (a power of two), and the longest kept. */
#define TOKEN_SLOTS 512
#define TOKEN_MAX   2048

struct user_rev {
    long long tid;
    char sub[128];
    long long not_before; /* tokens with iat <= this are revoked */
};

/* Every token of tenant tid issued up to not_before is revoked (its storage
 * was recreated or purged, or it was deleted). */
struct tenant_rev {
    long long tid;
    long long not_before;
};

/* What was read from the database in one reload; immutable once built. */
struct state {
    char (*jtis)[64]; /* sorted */
    size_t njtis;
    struct user_rev *users; /* sorted by (tid, sub) */
    size_t nusers;
    struct tenant_rev *tenants; /* sorted by tid, one per tenant (the latest) */
    size_t ntenants;
    struct api_key {
        char hash[65]; /* SHA-256 hex of the key */
        long long id;
    } * keys; /* live keys, sorted by hash */
    size_t nkeys;
};

struct perm_entry {
    struct perm_entry *next;
    long long tid;
    char *sub;
    struct auth_perms p; /* p.codes owned */
    time_t loaded;
};

struct auth {
    const struct config *cfg;
    struct crypto_jwt_keys *keys; /* signing and verification keys of access tokens */
    struct db_pool *pool;
    struct ticker *ticker;

    pthread_mutex_t mu; /* guards st, st_seq, local, nlocal, seq, the permission cache */
    struct state *st;
    unsigned long long st_seq; /* seq taken by the reload that built st */
    /* Revocations made by this process that st may not hold yet (see
     * auth_reload), in the order they were made. */
    struct local_rev {
        unsigned long long seq;
        char jti[64]; /* "" for a user or tenant cut-off */
        bool tenant;  /* a tenant cut-off: u.tid, u.not_before */
        struct user_rev u;
    } * local;
    size_t nlocal;
    unsigned long long seq; /* orders local revocations and reload starts */
    struct perm_entry *buckets[PERM_BUCKETS];
    size_t nperms;
    /* Tokens whose signature and claims were verified, by hash of their
     * text: the same bytes verify the same way with the same keys, so a hit
     * redoes only the time checks. Revocation is checked apart, always. */
    struct token_slot {
        pthread_mutex_t mu; /* guards the slot */
        uint64_t hash;
        char *token; /* owned; NULL: empty */
        struct crypto_jwt_claims claims;
    } tokens[TOKEN_SLOTS];
};

/* ---- small helpers ----------------------------------------------------------- */

static void state_free(struct state *s)
{
    if (!s)
        return;
    free(s->jtis);
    free(s->users);
    free(s->tenants);
    free(s->keys);
}

static int cmp_jti(const void *a, const void *b)
{
    return strcmp(a, b);
}

static int cmp_tenant(const void *a, const void *b)
{
    const struct tenant_rev *x = a, *y = b;
    return x->tid < y->tid ? -1 : x->tid > y->tid;
}

static int cmp_user(const void *a, const void *b)
{
    const struct user_rev *x = a, *y = b;
    if (x->tid != y->tid)
        return x->tid < y->tid ? -1 : 1;
    return strcmp(x->sub, y->sub);
}

/* Why this thread's last auth call that returned -1 failed, when the
 * database was the cause (auth_db_failure). */
static _Thread_local enum db_status tls_db_failure;

enum db_status auth_db_failure(void)
{
    enum db_status st = tls_db_failure;
    tls_db_failure = DB_OK;
    return st;
}

/* Copies msg into err, cut to fit. */
static void set_err(char *err, size_t errlen, const char *msg)
{
    size_t n = strnlen(msg, errlen - 1);
    memcpy(err, msg, n);
    err[n] = '\0';
}

/* Runs sql in the transaction of *c (checked out and opened on first use;
 * tx_end commits it). */
static int tx_run(struct auth *a, struct db_conn **c, const char *sql, int n,
                  const char *const *vals, PGresult **res, char *err, size_t errlen)
{
    static const struct db_tx tx = {NULL, 0, false, 0};
    struct db_error e;
    PGresult *r = NULL;

    tls_db_failure = DB_OK;
    if (db_query(a->pool, c, &tx, sql, n, vals, &r, &e) < 0) {
        PQclear(r);
        tls_db_failure = e.status;
        set_err(err, errlen, e.message);
        return -1;
    }
    if (res)
        *res = r;
    else
        PQclear(r);
    return 0;
}

/* Commits c's transaction when rc is 0 (else rolls it back) and checks c in.
 * Returns rc, or -1 when the commit failed. */
static int tx_end(struct auth *a, struct db_conn *c, int rc, char *err, size_t errlen)
{
    struct db_error e;

    if (rc == 0 && c && db_end(c, true, &e) < 0) {
        tls_db_failure = e.status;
        set_err(err, errlen, e.message);
        rc = -1;
    }
    db_checkin(a->pool, c); /* rolls back what is left open */
    return rc;
}

/* Runs one statement in its own transaction on auth's pool. */
static int run(struct auth *a, const char *sql, int n, const char *const *vals,
               PGresult **res, char *err, size_t errlen)
{
    struct db_conn *c = NULL;
    int rc = tx_run(a, &c, sql, n, vals, res, err, errlen);
    return tx_end(a, c, rc, err, errlen);
}

/* Opens a transaction on *c holding the session lock of user (tid, sub)
 * until it ends. Refreshes and revocations of one user's sessions take it
 * first, so they run one after the other, and each statement after it sees
 * what the one before committed: a refresh cannot add a token to a session
 * that a revocation running at the same moment has already passed over. */
static int lock_user(struct auth *a, struct db_conn **c, long long tid, const char *sub,
                     char *err, size_t errlen)
{
    char tids[24];
    snprintf(tids, sizeof tids, "%lld", tid);
    const char *v[] = {tids, sub};
    return tx_run(a, c,
                  "SELECT pg_advisory_xact_lock(hashtextextended($1 || ':' || $2, 0))", 2,
                  v, NULL, err, errlen);
}

static int random_hex(char *out, size_t bytes)
{
    unsigned char b[64];
    if (bytes > sizeof b || crypto_random(b, bytes) < 0)
        return -1;
    crypto_hex(b, bytes, out);
    return 0;
}

/* ---- reload ------------------------------------------------------------------- */

static const char RELOAD_SQL[] =
    "SELECT 'r', kind, coalesce(jti, ''), tenant_id::text, coalesce(user_id, ''), "
    "floor(extract(epoch FROM not_before))::bigint::text "
    "FROM core.revocations WHERE expires_at > now() "
    "UNION ALL SELECT 'k', '', key_hash, id::text, '', '' "
    "FROM core.api_keys WHERE revoked_at IS NULL";

static struct state *state_build(PGresult *r)
{
    struct state *s = calloc(1, sizeof *s);
    int n = PQntuples(r);

    if (!s)
        return NULL;
    s->jtis = calloc((size_t)n + 1, sizeof *s->jtis);
    s->users = calloc((size_t)n + 1, sizeof *s->users);
    s->tenants = calloc((size_t)n + 1, sizeof *s->tenants);
    s->keys = calloc((size_t)n + 1, sizeof *s->keys);
    if (!s->jtis || !s->users || !s->tenants || !s->keys) {
        state_free(s);
        free(s);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        const char *what = PQgetvalue(r, i, 0), *kind = PQgetvalue(r, i, 1);
        if (*what == 'k') {
            struct api_key *k = &s->keys[s->nkeys++];
            snprintf(k->hash, sizeof k->hash, "%s", PQgetvalue(r, i, 2));
            k->id = atoll(PQgetvalue(r, i, 3));
        } else if (strcmp(kind, "jti") == 0) {
            snprintf(s->jtis[s->njtis++], sizeof s->jtis[0], "%s", PQgetvalue(r, i, 2));
        } else if (strcmp(kind, "user") == 0) {
            struct user_rev *u = &s->users[s->nusers++];
            u->tid = atoll(PQgetvalue(r, i, 3));
            snprintf(u->sub, sizeof u->sub, "%s", PQgetvalue(r, i, 4));
            u->not_before = atoll(PQgetvalue(r, i, 5));
        } else if (strcmp(kind, "tenant") == 0) {
            struct tenant_rev *t = &s->tenants[s->ntenants++];
            t->tid = atoll(PQgetvalue(r, i, 3));
            t->not_before = atoll(PQgetvalue(r, i, 5));
        }
    }
    qsort(s->jtis, s->njtis, sizeof s->jtis[0], cmp_jti);
    qsort(s->users, s->nusers, sizeof s->users[0], cmp_user);
    /* one row per user: the latest not_before */
    size_t w = 0;
    for (size_t i = 0; i < s->nusers; i++) {
        if (w && cmp_user(&s->users[w - 1], &s->users[i]) == 0) {
            if (s->users[i].not_before > s->users[w - 1].not_before)
                s->users[w - 1].not_before = s->users[i].not_before;
        } else {
            s->users[w++] = s->users[i];
        }
    }
    s->nusers = w;
    /* one row per tenant too */
    qsort(s->tenants, s->ntenants, sizeof s->tenants[0], cmp_tenant);
    w = 0;
    for (size_t i = 0; i < s->ntenants; i++) {
        if (w && s->tenants[w - 1].tid == s->tenants[i].tid) {
            if (s->tenants[i].not_before > s->tenants[w - 1].not_before)
                s->tenants[w - 1].not_before = s->tenants[i].not_before;
        } else {
            s->tenants[w++] = s->tenants[i];
        }
    }
    s->ntenants = w;
    /* the hash is the first member: cmp_jti compares it */
    qsort(s->keys, s->nkeys, sizeof s->keys[0], cmp_jti);
    return s;
}

static void perms_drop_locked(struct auth *a, long long tid, const char *sub);

/* A reload must not lose a revocation made here while its query runs.
 *
 * A revocation is committed to core.revocations first and only then added
 * to the local list (local_add), with a sequence number. A reload takes a
 * number from the same sequence before its query starts. So an entry whose
 * number is below the reload's was committed before the query began and its
 * snapshot holds it (unless it has expired, when dropping it is right); an
 * entry made after the reload began may have committed too late for the
 * query, so it stays in the local list until a later reload's query is sure
 * to have seen it. Clearing the whole list at the swap (as this once did)
 * let such a revocation lapse until the next reload.
 *
 * Reloads can overlap (the ticker, and API key changes call auth_reload): a
 * reload's state replaces the installed one only if it began later, so an
 * older snapshot never overwrites a newer one whose reload already dropped
 * the local entries it covered. */
void auth_reload(struct auth *a)
{
    PGresult *r = NULL, *rb = NULL;
    char err[256];

    pthread_mutex_lock(&a->mu);
    unsigned long long started = ++a->seq;
    pthread_mutex_unlock(&a->mu);
    if (run(a, RELOAD_SQL, 0, NULL, &r, err, sizeof err) < 0) {
        log_msg(LOG_LEVEL_DEBUG, NULL, "auth: cannot reload revocations: %s", err);
        return; /* keep what we have */
    }
    struct state *s = state_build(r);
    PQclear(r);
    if (!s)
        return;
    (void)run(a,
              "SELECT tenant_id::text, coalesce(user_id, '') FROM core.revocations "
              "WHERE kind = 'rbac' AND expires_at > now()",
              0, NULL, &rb, err, sizeof err);
    pthread_mutex_lock(&a->mu);
    struct state *old = s;
    if (started > a->st_seq) {
        old = a->st;
        a->st = s;
        a->st_seq = started;
        size_t w = 0;
        for (size_t i = 0; i < a->nlocal; i++)
            if (a->local[i].seq > started)
                a->local[w++] = a->local[i];
        a->nlocal = w;
    }
    for (int i = 0; rb && i < PQntuples(rb); i++) {
        const char *sub = PQgetvalue(rb, i, 1);
        perms_drop_locked(a, atoll(PQgetvalue(rb, i, 0)), *sub ? sub : NULL);
    }
    pthread_mutex_unlock(&a->mu);
    PQclear(rb);
    state_free(old);
    free(old);
}

static void reload_tick(void *arg)
{
    auth_reload(arg);
}

/* ---- token keys ----------------------------------------------------------------- */

/* Reads a key file named in the config (relative to the config file) into
 * a malloc'd buffer the caller frees. Returns NULL with err filled. */
static char *read_key_file(const struct config *cfg, const char *setting, const char *name,
                           size_t *len, char *err, size_t errlen)
{
    char *path = config_path(cfg, name), *text = NULL;
    FILE *f = path ? fopen(path, "rb") : NULL;

    if (!f) {
        snprintf(err, errlen, "%s: cannot read '%s': %s", setting, path ? path : name,
                 path ? strerror(errno) : "out of memory");
        goto done;
    }
    /* Key files are small; a bound keeps a wrong path from reading a disk. */
    text = malloc(65536 + 1);
    *len = text ? fread(text, 1, 65536 + 1, f) : 0;
    if (!text || ferror(f) || *len > 65536) {
        snprintf(err, errlen, "%s: cannot read '%s': %s", setting, path,
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
                         int (*fn)(void *arg, const char *kid, const char *value, char *err,
                                   size_t errlen),
                         void *arg, char *err, size_t errlen)
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
            snprintf(err, errlen, "%s: an item is longer than %zu bytes", setting,
                     sizeof item - 1);
            return -1;
        }
        memcpy(item, p, m);
        item[m] = '\0';
        char *eq = strchr(item, '=');
        if (m > 0) {
            if (!eq || eq == item) {
                snprintf(err, errlen, "%s: items are kid=value (got '%.40s%s')", setting,
                         item, m > 40 ? "..." : "");
                return -1;
            }
            *eq = '\0';
            if (fn(arg, item, eq + 1, err, errlen) < 0)
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

static int add_public_key(void *arg, const char *kid, const char *path, char *err,
                          size_t errlen)
{
    struct keys_ctx *k = arg;
    char why[200];
    size_t len = 0;
    char *pem = read_key_file(k->cfg, "auth.jwt_public_keys", path, &len, err, errlen);

    if (!pem)
        return -1;
    int rc = crypto_jwt_keys_add(k->keys, kid, pem, len, why, sizeof why);
    free(pem);
    if (rc < 0)
        snprintf(err, errlen, "auth.jwt_public_keys: kid '%s' (%s): %s", kid, path, why);
    return rc;
}

static int add_previous_secret(void *arg, const char *kid, const char *secret, char *err,
                               size_t errlen)
{
    struct keys_ctx *k = arg;
    char why[200];

    if (!kid[0] || strcmp(kid, k->cfg->auth_jwt_kid) == 0 ||
        crypto_jwt_keys_add(k->keys, kid, secret, strlen(secret), why, sizeof why) < 0) {
        snprintf(err, errlen, "auth.jwt_previous_secrets: kid '%s': %s", kid,
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
static int keys_hs256(struct keys_ctx *k, char *err, size_t errlen)
{
    const struct config *cfg = k->cfg;
    const char *secret = cfg->auth_jwt_secret;
    char why[200];

    if (cfg->auth_jwt_private_key_file[0] || cfg->auth_jwt_public_keys[0]) {
        snprintf(err, errlen,
                 "auth.jwt_private_key_file and auth.jwt_public_keys are for RS256 and "
                 "ES256; auth.jwt_algorithm is HS256");
        return -1;
    }
    if (!secret[0]) {
        if (cfg->auth_jwt_previous_secrets[0]) {
            snprintf(err, errlen, "auth.jwt_previous_secrets needs auth.jwt_secret");
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
        snprintf(err, errlen, "auth.jwt_secret, auth.jwt_kid: %s", why);
        return -1;
    }
    return each_kid_item(cfg->auth_jwt_previous_secrets, "auth.jwt_previous_secrets",
                         add_previous_secret, k, err, errlen);
}

/* RS256/ES256: the private key file signs with auth.jwt_kid; the public
 * keys verify, each under its kid, and must include auth.jwt_kid's. */
static int keys_pem(struct keys_ctx *k, char *err, size_t errlen)
{
    const struct config *cfg = k->cfg;
    const char *alg = crypto_jwt_alg_name(crypto_jwt_keys_alg(k->keys));
    char why[200];
    size_t len = 0;

    if (!cfg->auth_jwt_private_key_file[0] || !cfg->auth_jwt_kid[0] ||
        !cfg->auth_jwt_public_keys[0]) {
        snprintf(err, errlen,
                 "auth.jwt_algorithm %s needs auth.jwt_private_key_file, auth.jwt_kid and "
                 "auth.jwt_public_keys",
                 alg);
        return -1;
    }
    if (cfg->auth_jwt_secret[0] || cfg->auth_jwt_previous_secrets[0])
        log_msg(LOG_LEVEL_WARN, NULL,
                "auth.jwt_secret and auth.jwt_previous_secrets are ignored with %s", alg);
    char *pem = read_key_file(cfg, "auth.jwt_private_key_file",
                              cfg->auth_jwt_private_key_file, &len, err, errlen);
    if (!pem)
        return -1;
    int rc =
        crypto_jwt_keys_set_signer(k->keys, cfg->auth_jwt_kid, pem, len, why, sizeof why);
    memset(pem, 0, len);
    free(pem);
    if (rc < 0) {
        snprintf(err, errlen, "auth.jwt_private_key_file: %s", why);
        return -1;
    }
    return each_kid_item(cfg->auth_jwt_public_keys, "auth.jwt_public_keys", add_public_key,
                         k, err, errlen);
}

/* Builds the token keys from the auth.jwt_* settings: any problem (an
 * unknown algorithm, a missing, unreadable or wrong key file, a private key
 * that does not match its kid's public key) is a start-up error. */
static struct crypto_jwt_keys *keys_load(const struct config *cfg, char *err, size_t errlen)
{
    enum crypto_jwt_alg alg;
    char why[300];

    if (crypto_jwt_alg_parse(cfg->auth_jwt_algorithm, &alg) < 0) {
        snprintf(err, errlen, "auth.jwt_algorithm must be HS256, RS256 or ES256 (got '%s')",
                 cfg->auth_jwt_algorithm);
        return NULL;
    }
    struct keys_ctx k = {cfg, crypto_jwt_keys_new(alg)};
    if (!k.keys) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    bool hs = alg == CRYPTO_JWT_HS256;
    if ((hs ? keys_hs256(&k, err, errlen) : keys_pem(&k, err, errlen)) < 0)
        goto fail;
    if ((!hs || cfg->auth_jwt_secret[0]) &&
        crypto_jwt_keys_check(k.keys, why, sizeof why) < 0) {
        snprintf(err, errlen, "auth: %s", why);
        goto fail;
    }
    return k.keys;
fail:
    crypto_jwt_keys_free(k.keys);
    return NULL;
}

int auth_check_keys(const struct config *cfg, char *err, size_t errlen)
{
    struct crypto_jwt_keys *k = keys_load(cfg, err, errlen);
    crypto_jwt_keys_free(k);
    return k ? 0 : -1;
}

struct auth *auth_new(const struct config *cfg, bool poll, char *err, size_t errlen)
{
    struct auth *a = calloc(1, sizeof *a);

    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->cfg = cfg;
    pthread_mutex_init(&a->mu, NULL);
    for (int i = 0; i < TOKEN_SLOTS; i++)
        pthread_mutex_init(&a->tokens[i].mu, NULL);
    if (!(a->keys = keys_load(cfg, err, errlen))) {
        auth_free(a);
        return NULL;
    }
    struct db_pool_options po = {
        .conninfo = cfg->database_url,
        .name = "auth",
        .max_size = 2,
        .checkout_timeout_ms = cfg->database_checkout_timeout_ms,
        .connect_timeout_s = cfg->database_connect_timeout,
        .statement_timeout_ms = cfg->database_statement_timeout_ms,
    };
    a->pool = db_pool_new(&po);
    a->st = calloc(1, sizeof *a->st);
    if (!a->pool || !a->st) {
        snprintf(err, errlen, "out of memory");
        auth_free(a);
        return NULL;
    }
    auth_reload(a);
    if (poll &&
        !(a->ticker = ticker_start(cfg->auth_revocation_refresh_ms, reload_tick, a))) {
        snprintf(err, errlen, "cannot start the revocation reloader");
        auth_free(a);
        return NULL;
    }
    return a;
}

void auth_free(struct auth *a)
{
    if (!a)
        return;
    ticker_stop(a->ticker);
    perms_drop_locked(a, -1, NULL);
    state_free(a->st);
    free(a->st);
    free(a->local);
    db_pool_free(a->pool);
    crypto_jwt_keys_free(a->keys);
    for (int i = 0; i < TOKEN_SLOTS; i++) {
        free(a->tokens[i].token);
        pthread_mutex_destroy(&a->tokens[i].mu);
    }
    pthread_mutex_destroy(&a->mu);
    free(a);
}

/* ---- the request path ------------------------------------------------------ */

/* False when HS256 has no secret: no token can be signed or verified. */
static bool keys_configured(const struct auth *a)
{
    return crypto_jwt_keys_alg(a->keys) != CRYPTO_JWT_HS256 || a->cfg->auth_jwt_secret[0];
}

int auth_verify_token(struct auth *a, const char *token, struct crypto_jwt_claims *out,
                      char *why, size_t why_len)
{
    const struct config *cfg = a->cfg;
    if (!keys_configured(a)) {
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

static bool state_revoked(const struct state *s, const struct crypto_jwt_claims *c)
{
    if (s->njtis && bsearch(c->jti, s->jtis, s->njtis, sizeof s->jtis[0], cmp_jti))
        return true;
    if (s->nusers) {
        struct user_rev key = {.tid = c->tid};
        snprintf(key.sub, sizeof key.sub, "%s", c->sub);
        const struct user_rev *u =
            bsearch(&key, s->users, s->nusers, sizeof s->users[0], cmp_user);
        if (u && c->iat <= u->not_before)
            return true;
    }
    if (s->ntenants && c->tid > 0) {
        struct tenant_rev key = {.tid = c->tid};
        const struct tenant_rev *t =
            bsearch(&key, s->tenants, s->ntenants, sizeof s->tenants[0], cmp_tenant);
        if (t && c->iat <= t->not_before)
            return true;
    }
    return false;
}

/* The local list is small (what one reload interval made): scanned.
 * Caller holds a->mu. */
static bool local_revoked(const struct auth *a, const struct crypto_jwt_claims *c)
{
    for (size_t i = 0; i < a->nlocal; i++) {
        const struct local_rev *l = &a->local[i];
        if (l->tenant   ? c->tid > 0 && l->u.tid == c->tid && c->iat <= l->u.not_before
            : l->jti[0] ? strcmp(l->jti, c->jti) == 0
                        : l->u.tid == c->tid && strcmp(l->u.sub, c->sub) == 0 &&
                              c->iat <= l->u.not_before)
            return true;
    }
    return false;
}

bool auth_token_revoked(struct auth *a, const struct crypto_jwt_claims *c)
{
    pthread_mutex_lock(&a->mu);
    bool r = state_revoked(a->st, c) || local_revoked(a, c);
    pthread_mutex_unlock(&a->mu);
    return r;
}

long long auth_api_key(struct auth *a, const char *key)
{
    char hex[CRYPTO_SHA256_HEX_LEN + 1];
    long long id = 0;

    if (strncmp(key, "rtk_", 4) != 0 || strlen(key) > 200)
        return 0;
    if (crypto_sha256_hex(key, strlen(key), hex) < 0) {
        log_msg(LOG_LEVEL_ERROR, NULL, "auth: cannot check an API key: out of memory");
        return 0;
    }
    pthread_mutex_lock(&a->mu);
    const struct state *s = a->st;
    const struct api_key *k =
        s->nkeys ? bsearch(hex, s->keys, s->nkeys, sizeof s->keys[0], cmp_jti) : NULL;
    if (k)
        id = k->id;
    pthread_mutex_unlock(&a->mu);
    return id;
}

/* Records a revocation here at once, after it was committed (the next
 * reloads bring it from the database too; see auth_reload): jti, or the
 * cut-off of user (tid, sub), or with neither that of tenant tid. */
static void local_add(struct auth *a, const char *jti, long long tid, const char *sub)
{
    pthread_mutex_lock(&a->mu);
    void *v = realloc(a->local, (a->nlocal + 1) * sizeof *a->local);
    if (v) {
        a->local = v;
        struct local_rev *l = &a->local[a->nlocal++];
        memset(l, 0, sizeof *l);
        l->seq = ++a->seq;
        if (jti) {
            snprintf(l->jti, sizeof l->jti, "%s", jti);
        } else {
            l->tenant = !sub;
            l->u.tid = tid;
            snprintf(l->u.sub, sizeof l->u.sub, "%s", sub ? sub : "");
            l->u.not_before = (long long)time(NULL);
        }
    }
    pthread_mutex_unlock(&a->mu);
}

/* ---- sessions ---------------------------------------------------------------- */

void auth_session_clear(struct auth_session *s)
{
    free(s->access);
    memset(s, 0, sizeof *s);
}

int auth_issue_access(struct auth *a, const char *scope, long long tid, const char *sub,
                      const char *sid, struct auth_session *out, char *err, size_t errlen)
{
    const struct config *cfg = a->cfg;
    struct crypto_jwt_claims *c = &out->claims;

    memset(out, 0, sizeof *out);
    if (!keys_configured(a)) {
        snprintf(err, errlen, "auth.jwt_secret is not configured (32 bytes or more)");
        return -1;
    }
    if (random_hex(c->jti, 16) < 0) {
        snprintf(err, errlen, "no randomness");
        return -1;
    }
    snprintf(c->iss, sizeof c->iss, "%s", cfg->auth_issuer);
    snprintf(c->aud, sizeof c->aud, "%s", cfg->auth_audience);
    snprintf(c->sub, sizeof c->sub, "%s", sub);
    snprintf(c->scope, sizeof c->scope, "%s", scope);
    snprintf(c->sid, sizeof c->sid, "%s", sid ? sid : "");
    c->tid = strcmp(scope, "tenant") == 0 ? tid : 0;
    c->iat = (long long)time(NULL);
    c->exp = c->iat + cfg->auth_token_ttl_s;
    out->access = crypto_jwt_sign(a->keys, c);
    if (!out->access) {
        snprintf(err, errlen, "signing failed");
        return -1;
    }
    return 0;
}

/* Issues an access token and a refresh token of family (stored hashed, in
 * the transaction of *c). */
static int issue_pair(struct auth *a, struct db_conn **c, const char *scope, long long tid,
                      const char *sub, const char *family, struct auth_session *out,
                      char *err, size_t errlen)
{
    char hash[CRYPTO_SHA256_HEX_LEN + 1], tids[24], ttl[24];

    if (auth_issue_access(a, scope, tid, sub, family, out, err, errlen) < 0)
        return -1;
    memcpy(out->refresh, "rtr_", 4);
    if (random_hex(out->refresh + 4, 32) < 0) {
        snprintf(err, errlen, "no randomness");
        auth_session_clear(out);
        return -1;
    }
    if (crypto_sha256_hex(out->refresh, strlen(out->refresh), hash) < 0) {
        snprintf(err, errlen, "out of memory");
        auth_session_clear(out);
        return -1;
    }
    snprintf(tids, sizeof tids, "%lld", out->claims.tid);
    snprintf(ttl, sizeof ttl, "%d", a->cfg->auth_refresh_ttl_s);
    const char *v[] = {hash, family, scope, tids, sub, out->claims.jti, ttl};
    if (tx_run(a, c,
               "INSERT INTO core.refresh_tokens (token_hash, family, scope, tenant_id, "
               "user_id, access_jti, expires_at) "
               "VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))",
               7, v, NULL, err, errlen) < 0) {
        auth_session_clear(out);
        return -1;
    }
    return 0;
}

int auth_session_start(struct auth *a, const char *scope, long long tid, const char *sub,
                       struct auth_session *out, char *err, size_t errlen)
{
    char family[33];

    if (random_hex(family, 16) < 0) {
        snprintf(err, errlen, "no randomness");
        return -1;
    }
    struct db_conn *c = NULL;
    int rc = issue_pair(a, &c, scope, tid, sub, family, out, err, errlen);
    if ((rc = tx_end(a, c, rc, err, errlen)) < 0)
        auth_session_clear(out);
    return rc;
}

/* Revokes a family of user (tid, sub): its refresh tokens, and the access
 * tokens issued from it that may still be alive. */
static int revoke_family(struct auth *a, const char *family, long long tid, const char *sub,
                         char *err, size_t errlen)
{
    struct db_conn *c = NULL;
    PGresult *r = NULL;
    char ttl[24];

    snprintf(ttl, sizeof ttl, "%d", a->cfg->auth_token_ttl_s + a->cfg->auth_leeway_s);
    const char *v[] = {family, ttl};
    int rc = lock_user(a, &c, tid, sub, err, errlen);
    if (rc == 0)
        rc = tx_run(
            a, &c,
            "WITH f AS (UPDATE core.refresh_tokens SET revoked_at = coalesce(revoked_at, "
            "now()) WHERE family = $1 RETURNING access_jti, created_at) "
            "INSERT INTO core.revocations (kind, jti, expires_at) "
            "SELECT 'jti', access_jti, created_at + make_interval(secs => $2) FROM f "
            "WHERE created_at + make_interval(secs => $2) > now() RETURNING jti",
            2, v, &r, err, errlen);
    if (tx_end(a, c, rc, err, errlen) < 0) {
        PQclear(r);
        return -1;
    }
    for (int i = 0; i < PQntuples(r); i++)
        local_add(a, PQgetvalue(r, i, 0), 0, NULL);
    PQclear(r);
    return 0;
}

int auth_session_refresh(struct auth *a, const char *refresh, long long only_tid,
                         struct auth_session *out, char *err, size_t errlen)
{
    char hash[CRYPTO_SHA256_HEX_LEN + 1], family[64], scope[16], sub[128];
    struct db_conn *c = NULL;
    PGresult *r = NULL;

    memset(out, 0, sizeof *out);
    if (strncmp(refresh, "rtr_", 4) != 0 || strlen(refresh) != AUTH_REFRESH_LEN - 1)
        return 0;
    if (crypto_sha256_hex(refresh, strlen(refresh), hash) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *v[] = {hash};
    /* Whose it is (these columns never change): the lock to take. */
    if (run(a,
            "SELECT tenant_id::text, user_id, family FROM core.refresh_tokens "
            "WHERE token_hash = $1",
            1, v, &r, err, errlen) < 0)
        return -1;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return 0;
    }
    long long tid = atoll(PQgetvalue(r, 0, 0));
    snprintf(sub, sizeof sub, "%s", PQgetvalue(r, 0, 1));
    snprintf(family, sizeof family, "%s", PQgetvalue(r, 0, 2));
    PQclear(r);
    r = NULL;
    if (only_tid >= 0 && tid != only_tid)
        return 0;

    bool fresh = false, reused = false;
    int rc = lock_user(a, &c, tid, sub, err, errlen);
    /* Only an active tenant's sessions, and only an active platform user's,
     * go on; the token is not spent otherwise (a suspended tenant's users
     * refresh again once it is active). A tenant user's own status lives in
     * the tenant's storage: the refresh route checks it. */
    if (rc == 0)
        rc =
            tx_run(a, &c,
                   "UPDATE core.refresh_tokens SET used_at = now() WHERE token_hash = $1 "
                   "AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now() "
                   "AND CASE scope WHEN 'tenant' THEN EXISTS (SELECT 1 FROM core.tenants t "
                   "  WHERE t.id = tenant_id AND t.status = 'active') "
                   "ELSE EXISTS (SELECT 1 FROM core.users u WHERE u.id::text = user_id "
                   "  AND u.status = 'active' AND u.deleted_at IS NULL) END "
                   "RETURNING scope",
                   1, v, &r, err, errlen);
    if (rc == 0 && PQntuples(r) == 1) {
        fresh = true;
        snprintf(scope, sizeof scope, "%s", PQgetvalue(r, 0, 0));
        rc = issue_pair(a, &c, scope, tid, sub, family, out, err, errlen);
    } else if (rc == 0) {
        /* Spent, revoked or expired: a spent one being replayed means
         * someone else holds it, so the whole login ends (below, once this
         * transaction has let go of the lock). */
        PQclear(r);
        r = NULL;
        rc = tx_run(a, &c,
                    "SELECT 1 FROM core.refresh_tokens WHERE token_hash = $1 "
                    "AND used_at IS NOT NULL",
                    1, v, &r, err, errlen);
        reused = rc == 0 && PQntuples(r) == 1;
    }
    PQclear(r);
    if (tx_end(a, c, rc, err, errlen) < 0) {
        auth_session_clear(out);
        return -1;
    }
    if (fresh)
        return 1;
    if (reused) {
        log_msg(LOG_LEVEL_WARN, NULL,
                "refresh token reused: session family %.8s... revoked", family);
        if (revoke_family(a, family, tid, sub, err, errlen) < 0)
            return -1;
    }
    return 0;
}

static int revoke_jti(struct auth *a, const struct crypto_jwt_claims *c, char *err,
                      size_t errlen)
{
    char exp[24];
    snprintf(exp, sizeof exp, "%lld", c->exp + a->cfg->auth_leeway_s);
    const char *v[] = {c->jti, exp};
    if (run(a,
            "INSERT INTO core.revocations (kind, jti, expires_at) "
            "VALUES ('jti', $1, to_timestamp($2::bigint))",
            2, v, NULL, err, errlen) < 0)
        return -1;
    local_add(a, c->jti, 0, NULL);
    return 0;
}

int auth_session_end(struct auth *a, const struct crypto_jwt_claims *who,
                     const char *refresh, char *err, size_t errlen)
{
    if (revoke_jti(a, who, err, errlen) < 0)
        return -1;
    if (!refresh || strlen(refresh) != AUTH_REFRESH_LEN - 1)
        return 0;
    char hash[CRYPTO_SHA256_HEX_LEN + 1], tids[24];
    PGresult *r = NULL;
    if (crypto_sha256_hex(refresh, strlen(refresh), hash) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(tids, sizeof tids, "%lld", who->tid);
    const char *v[] = {hash, tids, who->sub};
    if (run(a,
            "SELECT family FROM core.refresh_tokens WHERE token_hash = $1 "
            "AND tenant_id = $2 AND user_id = $3",
            3, v, &r, err, errlen) < 0)
        return -1;
    int rc = 0;
    if (PQntuples(r) == 1) {
        char family[64];
        snprintf(family, sizeof family, "%s", PQgetvalue(r, 0, 0));
        rc = revoke_family(a, family, who->tid, who->sub, err, errlen);
    }
    PQclear(r);
    return rc;
}

int auth_session_end_others(struct auth *a, const struct crypto_jwt_claims *who, char *err,
                            size_t errlen)
{
    char tids[24], ttl[24];
    struct db_conn *c = NULL;
    PGresult *r = NULL;
    int ended = 0;

    snprintf(tids, sizeof tids, "%lld", who->tid);
    snprintf(ttl, sizeof ttl, "%d", a->cfg->auth_token_ttl_s + a->cfg->auth_leeway_s);
    const char *v[] = {tids, who->sub, who->sid[0] ? who->sid : NULL, who->jti, ttl};
    /* The caller's session: the token's sid, or for a token issued before
     * tokens carried one, the family that issued its jti; none ('') for a
     * token of no session. Every other family of the user is revoked as
     * revoke_family does it: its refresh tokens (used ones too: their
     * access tokens may still be alive) and the access tokens issued from
     * them that have not expired. Families that still had a usable refresh
     * token are the sessions counted. */
    int rc = lock_user(a, &c, who->tid, who->sub, err, errlen);
    if (rc == 0)
        rc = tx_run(
            a, &c,
            "WITH me AS (SELECT coalesce($3::text, (SELECT family FROM core.refresh_tokens "
            "  WHERE access_jti = $4 AND tenant_id = $1 AND user_id = $2 LIMIT 1), '') AS "
            "f), "
            "live AS (SELECT count(DISTINCT family) AS n FROM core.refresh_tokens, me "
            "  WHERE tenant_id = $1 AND user_id = $2 AND family <> me.f "
            "  AND revoked_at IS NULL AND used_at IS NULL AND expires_at > now()), "
            "gone AS (UPDATE core.refresh_tokens t SET revoked_at = now() FROM me "
            "  WHERE t.tenant_id = $1 AND t.user_id = $2 AND t.family <> me.f "
            "  AND t.revoked_at IS NULL RETURNING t.access_jti, t.created_at), "
            "rev AS (INSERT INTO core.revocations (kind, jti, expires_at) "
            "  SELECT 'jti', access_jti, created_at + make_interval(secs => $5) FROM gone "
            "  WHERE created_at + make_interval(secs => $5) > now() RETURNING jti) "
            "SELECT 'n', n::text FROM live UNION ALL SELECT 'j', jti FROM rev",
            5, v, &r, err, errlen);
    if (tx_end(a, c, rc, err, errlen) < 0) {
        PQclear(r);
        return -1;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        if (PQgetvalue(r, i, 0)[0] == 'n')
            ended = atoi(PQgetvalue(r, i, 1));
        else
            local_add(a, PQgetvalue(r, i, 1), 0, NULL);
    }
    PQclear(r);
    return ended;
}

int auth_revoke_user(struct auth *a, long long tid, const char *sub, char *err,
                     size_t errlen)
{
    char tids[24], ttl[24];
    snprintf(tids, sizeof tids, "%lld", tid);
    snprintf(ttl, sizeof ttl, "%d", a->cfg->auth_token_ttl_s + 2 * a->cfg->auth_leeway_s);
    const char *v[] = {tids, sub, ttl};
    struct db_conn *c = NULL;
    int rc = lock_user(a, &c, tid, sub, err, errlen);
    /* The 'rbac' row drops the user's cached permission set on the other
     * replicas too (a disabled or deleted user has none). */
    if (rc == 0)
        rc = tx_run(a, &c,
                    "WITH s AS (UPDATE core.refresh_tokens SET revoked_at = now() "
                    "WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL) "
                    "INSERT INTO core.revocations (kind, tenant_id, user_id, expires_at) "
                    "VALUES ('user', $1, $2, now() + make_interval(secs => $3)), "
                    "('rbac', $1, $2, now() + interval '" RBAC_ROW_S " seconds')",
                    3, v, NULL, err, errlen);
    if (tx_end(a, c, rc, err, errlen) < 0)
        return -1;
    local_add(a, NULL, tid, sub);
    pthread_mutex_lock(&a->mu);
    perms_drop_locked(a, tid, sub);
    pthread_mutex_unlock(&a->mu);
    return 0;
}

int auth_revoke_tenant(struct auth *a, long long tid, char *err, size_t errlen)
{
    char tids[24], ttl[24];
    snprintf(tids, sizeof tids, "%lld", tid);
    snprintf(ttl, sizeof ttl, "%d", a->cfg->auth_token_ttl_s + 2 * a->cfg->auth_leeway_s);
    const char *v[] = {tids, ttl};
    if (run(a, AUTH_REVOKE_TENANT_SQL, 2, v, NULL, err, errlen) < 0)
        return -1;
    local_add(a, NULL, tid, NULL);
    pthread_mutex_lock(&a->mu);
    perms_drop_locked(a, tid, NULL);
    pthread_mutex_unlock(&a->mu);
    return 0;
}

/* ---- API keys ------------------------------------------------------------------ */

long long auth_api_key_create(struct auth *a, const char *name, long long creator,
                              char key[96], char *err, size_t errlen)
{
    char prefix[17], secret[65], hash[CRYPTO_SHA256_HEX_LEN + 1], by[24];
    PGresult *r = NULL;

    if (random_hex(prefix, 8) < 0 || random_hex(secret, 32) < 0) {
        snprintf(err, errlen, "no randomness");
        return -1;
    }
    snprintf(key, 96, "rtk_%s_%s", prefix, secret);
    if (crypto_sha256_hex(key, strlen(key), hash) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(by, sizeof by, "%lld", creator);
    const char *v[] = {name, prefix, hash, creator > 0 ? by : NULL};
    if (run(a,
            "INSERT INTO core.api_keys (name, prefix, key_hash, created_by) "
            "VALUES ($1, $2, $3, $4) RETURNING id",
            4, v, &r, err, errlen) < 0)
        return -1;
    long long id = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    auth_reload(a);
    return id;
}

int auth_api_key_revoke(struct auth *a, long long id, char *err, size_t errlen)
{
    char ids[24];
    PGresult *r = NULL;
    snprintf(ids, sizeof ids, "%lld", id);
    const char *v[] = {ids};
    if (run(a,
            "UPDATE core.api_keys SET revoked_at = now() WHERE id = $1 "
            "AND revoked_at IS NULL RETURNING id",
            1, v, &r, err, errlen) < 0)
        return -1;
    int found = PQntuples(r) == 1;
    PQclear(r);
    if (found)
        auth_reload(a);
    return found;
}

/* ---- permissions ----------------------------------------------------------------- */

bool auth_perms_allow(const struct auth_perms *p, const char *need)
{
    if (p->superuser)
        return true;
    if (!need || !*need)
        return true;
    const char *us = strrchr(need, '_');
    size_t reslen = us ? (size_t)(us - need) : 0;
    for (const char *s = p->codes ? p->codes : ""; *s;) {
        size_t n = strcspn(s, ",");
        if ((n == strlen(need) && strncmp(s, need, n) == 0) ||
            (us && n == reslen + 7 && strncmp(s, need, reslen) == 0 &&
             strncmp(s + reslen, "_manage", 7) == 0))
            return true;
        s += n;
        if (*s == ',')
            s++;
    }
    return false;
}

static size_t perm_bucket(long long tid, const char *sub)
{
    size_t h = (size_t)tid * 0x9e3779b97f4a7c15ULL;
    for (const char *p = sub; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    return h % PERM_BUCKETS;
}

static void perm_entry_free(struct perm_entry *e)
{
    free(e->sub);
    free((char *)e->p.codes);
    free(e);
}

/* Drops the entries of (tid, sub); sub NULL: all of tenant tid; tid -1: all.
 * Caller holds a->mu (or is the only user). */
static void perms_drop_locked(struct auth *a, long long tid, const char *sub)
{
    for (size_t b = 0; b < PERM_BUCKETS; b++) {
        if (sub && tid >= 0)
            b = perm_bucket(tid, sub);
        for (struct perm_entry **pp = &a->buckets[b]; *pp;) {
            struct perm_entry *e = *pp;
            if (tid < 0 || (e->tid == tid && (!sub || strcmp(e->sub, sub) == 0))) {
                *pp = e->next;
                perm_entry_free(e);
                a->nperms--;
            } else {
                pp = &e->next;
            }
        }
        if (sub && tid >= 0)
            break;
    }
}

int auth_perms_cached(struct auth *a, long long tid, const char *sub, const char *need,
                      bool *allowed)
{
    time_t now = time(NULL);
    int hit = 0;

    pthread_mutex_lock(&a->mu);
    for (struct perm_entry *e = a->buckets[perm_bucket(tid, sub)]; e; e = e->next)
        if (e->tid == tid && strcmp(e->sub, sub) == 0) {
            if (now - e->loaded < a->cfg->auth_permission_cache_s) {
                *allowed = auth_perms_allow(&e->p, need);
                hit = 1;
            }
            break;
        }
    pthread_mutex_unlock(&a->mu);
    return hit;
}

void auth_perms_store(struct auth *a, long long tid, const char *sub,
                      const struct auth_perms *p)
{
    struct perm_entry *e = calloc(1, sizeof *e);
    if (!e)
        return;
    e->tid = tid;
    e->sub = strdup(sub);
    e->p = *p;
    e->p.codes = strdup(p->codes ? p->codes : "");
    e->loaded = time(NULL);
    if (!e->sub || !e->p.codes) {
        perm_entry_free(e);
        return;
    }
    pthread_mutex_lock(&a->mu);
    perms_drop_locked(a, tid, sub);
    if (a->nperms >= PERM_MAX)
        perms_drop_locked(a, -1, NULL);
    size_t b = perm_bucket(tid, sub);
    e->next = a->buckets[b];
    a->buckets[b] = e;
    a->nperms++;
    pthread_mutex_unlock(&a->mu);
}

int auth_core_perms(struct auth *a, const char *sub, struct auth_perms *out, char *err,
                    size_t errlen)
{
    PGresult *r = NULL;
    const char *v[] = {sub};

    memset(out, 0, sizeof *out);
    if (strncmp(sub, "apikey:", 7) == 0) {
        out->superuser = true; /* checked live on every request */
        return 1;
    }
    if (run(a,
            "SELECT is_superuser FROM core.users WHERE id::text = $1 "
            "AND status = 'active' AND deleted_at IS NULL",
            1, v, &r, err, errlen) < 0)
        return -1;
    int found = PQntuples(r) == 1;
    if (found)
        out->superuser = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return found;
}

int auth_rbac_changed(struct auth *a, long long tid, const char *sub, char *err,
                      size_t errlen)
{
    char tids[24];
    snprintf(tids, sizeof tids, "%lld", tid);
    const char *v[] = {tids, sub};
    pthread_mutex_lock(&a->mu);
    perms_drop_locked(a, tid, sub);
    pthread_mutex_unlock(&a->mu);
    return run(a,
               "INSERT INTO core.revocations (kind, tenant_id, user_id, expires_at) "
               "VALUES ('rbac', $1, $2, now() + interval '" RBAC_ROW_S " seconds')",
               2, v, NULL, err, errlen);
}
