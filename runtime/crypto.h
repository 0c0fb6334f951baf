/* crypto: hashing, passwords, tokens and randomness for the rest of the core.
 *
 * SHA-256 (OpenSSL's) for migration and seed checksums and fingerprints and
 * stored token digests; argon2id password hashes in PHC string form
 * (libargon2); JWTs (HS256, RS256 or ES256, one algorithm pinned per key
 * set, keys chosen by kid) with the claims the runtime requires (libjwt,
 * which validates no claims itself; OpenSSL checks the type of PEM keys);
 * random bytes from the kernel; constant-time comparison and wiping of
 * secrets (OpenSSL's). No Lua, no I/O but the kernel's CSPRNG: key files
 * are read by the caller.
 *
 * Uses: OpenSSL, libargon2, libjwt; no other runtime file. */
#ifndef RT_CRYPTO_H
#define RT_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPTO_SHA256_LEN     32
#define CRYPTO_SHA256_HEX_LEN 64

/* Streaming SHA-256 over an OpenSSL digest context, which lives on the heap
 * (OpenSSL 3 deprecates the stack-allocated SHA256_CTX): init can fail for
 * want of memory, and so can update. A failure is remembered and reported
 * by final, so a caller checks once. Every init is matched by exactly one
 * final, which releases the context on every path, failed or not. */
struct evp_md_ctx_st; /* OpenSSL's EVP_MD_CTX; named so users need no OpenSSL header */

struct crypto_sha256 {
    struct evp_md_ctx_st *ctx; /* owned from init to final; NULL: init failed */
    bool failed;
};

void crypto_sha256_init(struct crypto_sha256 *c);
void crypto_sha256_update(struct crypto_sha256 *c, const void *data, size_t len);

/* Writes the digest of everything given to update. Returns 0, or -1 (out
 * of memory in init, update or here; out is then zeroed). Releases the
 * context either way; c must be initialised again before reuse. */
int crypto_sha256_final(struct crypto_sha256 *c, unsigned char out[CRYPTO_SHA256_LEN])
    __attribute__((warn_unused_result));

/* One-shot: writes 64 lower-case hex digits and a NUL to hex. Returns 0, or
 * -1 (out of memory; hex is then the empty string). */
int crypto_sha256_hex(const void *data, size_t len, char hex[CRYPTO_SHA256_HEX_LEN + 1])
    __attribute__((warn_unused_result));

/* Hex-encodes len bytes of in into out (2 * len + 1 bytes). */
void crypto_hex(const unsigned char *in, size_t len, char *out);

/* Fills buf with len bytes from the kernel CSPRNG. Returns 0 or -1. */
int crypto_random(void *buf, size_t len) __attribute__((warn_unused_result));

/* Compares len bytes in time that does not depend on the contents
 * (CRYPTO_memcmp). Returns 1 when they are equal, 0 when not. */
int crypto_equal(const void *a, const void *b, size_t len);

/* Overwrites len bytes at p with zeros in a way the compiler cannot drop
 * (OPENSSL_cleanse), for secrets before their memory is freed. p may be
 * NULL when len is 0. */
void crypto_wipe(void *p, size_t len);

/* ---- passwords (argon2id) -------------------------------------------------- */

struct crypto_argon2 {
    uint32_t t_cost;      /* iterations; OWASP: >= 2 */
    uint32_t m_cost_kib;  /* memory in KiB; OWASP: >= 19456 (19 MiB) */
    uint32_t parallelism; /* lanes; OWASP: 1 */
};

#define CRYPTO_PASSWORD_MAX 256 /* bytes; longer passwords are refused */
#define CRYPTO_HASH_MAX     160 /* room for any PHC string we produce */

/* Hashes password with a fresh 16-byte salt into out, a PHC string such as
 * "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>". Returns 0 or -1. */
int crypto_password_hash(const char *password, size_t len, const struct crypto_argon2 *p,
                         char *out, size_t cap) __attribute__((warn_unused_result));

/* Checks password against a stored PHC string in constant time. Returns 1
 * for a match, 0 for a mismatch, -1 for a malformed hash or one whose
 * parameters exceed ceiling (a stored hash must not be able to make a login
 * cost minutes or gigabytes). */
int crypto_password_verify(const char *encoded, const char *password, size_t len,
                           const struct crypto_argon2 *ceiling);

/* ---- tokens (JWT) ----------------------------------------------------------- */

enum crypto_jwt_alg {
    CRYPTO_JWT_HS256,
    CRYPTO_JWT_RS256,
    CRYPTO_JWT_ES256,
};

/* "HS256", "RS256" or "ES256". Returns 0, or -1 for any other name. */
int crypto_jwt_alg_parse(const char *name, enum crypto_jwt_alg *out);
const char *crypto_jwt_alg_name(enum crypto_jwt_alg alg);

#define CRYPTO_JWT_KID_MAX 64 /* bytes with the NUL; kids are [A-Za-z0-9._-] */

struct crypto_jwt_claims {
    char iss[128];
    char aud[128];
    char sub[128];
    char scope[16]; /* "core" or "tenant" */
    char jti[64];
    char sid[64];  /* session (refresh-token family); "" when the token has none */
    long long tid; /* tenant id; 0 for core tokens */
    long long iat, exp;
};

/* The keys of one algorithm: the one new tokens are signed with and, by kid,
 * the ones tokens are verified with. The algorithm is the key set's, never
 * the token's. Built at start-up, then only read (thread-safe to share). */
struct crypto_jwt_keys;

struct crypto_jwt_keys *crypto_jwt_keys_new(enum crypto_jwt_alg alg);
void crypto_jwt_keys_free(struct crypto_jwt_keys *k);
enum crypto_jwt_alg crypto_jwt_keys_alg(const struct crypto_jwt_keys *k);

/* Sets the signing key (copied): the HS256 secret (32 bytes or more), or a
 * PEM private key: RSA of 2048 bits or more for RS256, EC on P-256 for
 * ES256 (unencrypted). kid (NULL or "": none) goes into each token's header.
 * Returns 0, or -1 with why (the key is not of the algorithm's type, a bad
 * kid, ...). */
int crypto_jwt_keys_set_signer(struct crypto_jwt_keys *k, const char *kid, const void *key,
                               size_t len, char *why, size_t why_len)
    __attribute__((warn_unused_result));

/* Adds a verification key (copied) for tokens whose header names kid; kid
 * NULL or "" is the key of tokens without a kid. HS256: a secret of 32 bytes
 * or more; RS256/ES256: a PEM public key of the algorithm's type. A kid may
 * be added once. Returns 0, or -1 with why. */
int crypto_jwt_keys_add(struct crypto_jwt_keys *k, const char *kid, const void *key,
                        size_t len, char *why, size_t why_len)
    __attribute__((warn_unused_result));

/* Signs a probe token and verifies it: the signing key must be set and
 * verifiable under its own kid (for RS256/ES256: the private key matches
 * the public key added for that kid). Returns 0, or -1 with why. */
int crypto_jwt_keys_check(const struct crypto_jwt_keys *k, char *why, size_t why_len);

/* Signs claims (sid only when set) with the signing key, its kid in the
 * header. Returns a malloc'd token the caller frees, or NULL (no signing
 * key, or signing failed). */
char *crypto_jwt_sign(const struct crypto_jwt_keys *k, const struct crypto_jwt_claims *c);

/* Verifies token: its header must name the key set's algorithm (never
 * "none", never another algorithm: an RS256 set refuses an HS256 token
 * whatever key it was made with), its kid must name a verification key (no
 * kid: the key added for ""), the signature must match that key, and the
 * claims exp, iat, iss, aud, scope (core|tenant), jti, and tid for tenant
 * tokens must be present; sub must be a user id (crypto_jwt_sub_valid);
 * iss and aud must equal the expected ones, exp
 * must not have passed and iat must not be in the future (leeway seconds
 * each way). sid is optional. Returns 0 and fills out, or -1 with a reason
 * in why (for the log; clients get one 401 whatever it is). */
int crypto_jwt_verify(const struct crypto_jwt_keys *k, const char *token, const char *iss,
                      const char *aud, long long now, int leeway,
                      struct crypto_jwt_claims *out, char *why, size_t why_len);

/* True when sub is a user id: a positive decimal integer that fits 64 bits
 * (bigint), digits only, no leading zero. Handlers look users up by it; "abc",
 * "1e3" or a number past bigint would make that lookup fail, and "apikey:1"
 * would pass for a platform API key. Pure. */
bool crypto_jwt_sub_valid(const char *sub);

/* The time checks of crypto_jwt_verify alone (for claims verified before):
 * exp not passed, iat not in the future, leeway seconds each way. Returns 0,
 * or -1 with a reason in why. */
int crypto_jwt_current(const struct crypto_jwt_claims *c, long long now, int leeway,
                       char *why, size_t why_len);

/* The last second (Unix time) at which a token with claims c passes
 * crypto_jwt_current: exp plus the leeway, computed without overflow (a
 * signed token's exp can be anything), and capped at CRYPTO_JWT_TIME_MAX,
 * which PostgreSQL's to_timestamp still takes. For revocations that must
 * outlive the token. */
#define CRYPTO_JWT_TIME_MAX 253402300799LL /* 9999-12-31 23:59:59 UTC */
long long crypto_jwt_valid_until(const struct crypto_jwt_claims *c, int leeway);

#endif
