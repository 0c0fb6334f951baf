/* auth_int.h: private to the auth module (auth.c, auth_perms.c,
 * auth_revoke.c, auth_keys.c, auth_session.c, auth_module.c); nothing else
 * includes it. The module's one public face is auth.h.
 *
 * The files call downward only, in that order: auth.c (plumbing, token
 * keys, verification) calls no other; auth_perms.c calls auth.c;
 * auth_revoke.c calls both; auth_keys.c and auth_session.c call those;
 * auth_module.c (auth_new, auth_free) calls them all.
 *
 * It holds the module object, the state a reload builds, and the helpers
 * the files share: running statements on auth's own pool, the local list of
 * revocations made here, the permission cache's drop.
 *
 * Uses: db.c, crypto.c, err.c. */
#ifndef RT_AUTH_INT_H
#define RT_AUTH_INT_H

#include "crypto.h"
#include "db.h"
#include "err.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* The files include auth.h for the public types and functions; this header
 * needs none of them, so it does not include it. */
struct config;
struct ticker;

#define PERM_BUCKETS 1024
#define PERM_MAX     50000 /* entries; the cache is emptied past this */
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
struct auth_state {
    char (*jtis)[64]; /* sorted */
    size_t njtis;
    struct user_rev *users; /* sorted by (tid, sub) */
    size_t nusers;
    struct tenant_rev *tenants; /* sorted by tid, one per tenant (the latest) */
    size_t ntenants;
    struct live_key {
        char hash[65]; /* SHA-256 hex of the key; first: auth_cmp_str compares it */
        long long id;
    } * keys; /* live keys, sorted by hash */
    size_t nkeys;
};

/* One cached permission set (a struct auth_perms, held by value). */
struct perm_entry {
    struct perm_entry *next;
    long long tid;
    char *sub; /* owned */
    bool superuser;
    int priority;
    char *codes; /* owned */
    time_t loaded;
};

/* A revocation made by this process that the installed state may not hold
 * yet (see auth_reload in auth_revoke.c). */
struct local_rev {
    unsigned long long seq;
    char jti[64]; /* "" for a user or tenant cut-off */
    bool tenant;  /* a tenant cut-off: u.tid, u.not_before */
    struct user_rev u;
};

struct auth {
    const struct config *cfg;     /* borrowed */
    struct crypto_jwt_keys *keys; /* signing and verification keys of access tokens */
    struct db_pool *pool;
    struct ticker *ticker;

    pthread_mutex_t mu; /* guards st, st_seq, local, nlocal, seq, the permission cache */
    struct auth_state *st;
    unsigned long long st_seq; /* seq taken by the reload that built st */
    /* Revocations made by this process, in the order they were made. */
    struct local_rev *local;
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

/* ---- auth.c ---------------------------------------------------------------- */

/* Fills err with a failure that is not the database's (status DB_OK, no
 * sqlstate) and clears this thread's auth_db_failure. Returns -1. */
int auth_fail(struct db_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Runs sql in the transaction of *c (checked out and opened on first use;
 * auth_tx_end commits it). *res, when res is given, is the caller's to
 * PQclear. Returns 0, or -1 with err filled and auth_db_failure set. */
int auth_tx_run(struct auth *a, struct db_conn **c, const char *sql, int n,
                const char *const *vals, PGresult **res, struct db_error *err);

/* Commits c's transaction when rc is 0 (else rolls it back) and checks c in.
 * Returns rc, or -1 when the commit failed (err filled). */
int auth_tx_end(struct auth *a, struct db_conn *c, int rc, struct db_error *err);

/* Runs one statement in its own transaction on auth's pool. */
int auth_run(struct auth *a, const char *sql, int n, const char *const *vals,
             PGresult **res, struct db_error *err);

/* Opens a transaction on *c holding the session lock of user (tid, sub)
 * until it ends. Refreshes and revocations of one user's sessions take it
 * first, so they run one after the other, and each statement after it sees
 * what the one before committed: a refresh cannot add a token to a session
 * that a revocation running at the same moment has already passed over. */
int auth_lock_user(struct auth *a, struct db_conn **c, long long tid, const char *sub,
                   struct db_error *err);

/* Writes bytes random bytes as hex into out (2 * bytes + 1 chars). Returns
 * 0, or -1 when bytes > 64 or there is no randomness. */
int auth_random_hex(char *out, size_t bytes);

/* strcmp for qsort and bsearch over arrays whose elements start with a
 * string (jtis, API key hashes). */
int auth_cmp_str(const void *a, const void *b);

/* False when HS256 has no secret: no token can be signed or verified. */
bool auth_keys_configured(const struct auth *a);

/* Builds the token keys from the auth.jwt_* settings: any problem (an
 * unknown algorithm, a missing, unreadable or wrong key file, a private key
 * that does not match its kid's public key) is a start-up error (err
 * filled, NULL). The caller frees the keys (crypto_jwt_keys_free). */
struct crypto_jwt_keys *auth_keys_load(const struct config *cfg, struct rt_err *err);

/* ---- auth_revoke.c ------------------------------------------------------- */

void auth_state_free(struct auth_state *s);

/* Records a revocation here at once, after it was committed (the next
 * reloads bring it from the database too; see auth_reload): jti, or the
 * cut-off of user (tid, sub), or with neither that of tenant tid. */
void auth_local_add(struct auth *a, const char *jti, long long tid, const char *sub);

/* ---- auth_perms.c -------------------------------------------------------- */

/* Drops the cached permissions of (tid, sub); sub NULL: all of tenant tid;
 * tid -1: all. Caller holds a->mu (or is the only user). */
void auth_perms_drop_locked(struct auth *a, long long tid, const char *sub);

#endif
