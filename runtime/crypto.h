/* crypto: hashing, passwords, tokens and randomness for the rest of the core.
 *
 * SHA-256 (FIPS 180-4) for migration and seed checksums and fingerprints and
 * stored token digests; argon2id password hashes in PHC string form
 * (libargon2); HS256 JWTs with the claims the runtime requires (libjwt, which
 * validates no claims itself); random bytes from the kernel; constant-time
 * comparison. No Lua, no I/O but the kernel's CSPRNG. */
#ifndef RT_CRYPTO_H
#define RT_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define CRYPTO_SHA256_LEN     32
#define CRYPTO_SHA256_HEX_LEN 64

struct crypto_sha256 {
    uint32_t h[8];
    uint64_t total;
    unsigned char block[64];
    size_t used;
};

void crypto_sha256_init(struct crypto_sha256 *c);
void crypto_sha256_update(struct crypto_sha256 *c, const void *data, size_t len);
void crypto_sha256_final(struct crypto_sha256 *c, unsigned char out[CRYPTO_SHA256_LEN]);

/* One-shot: writes 64 lower-case hex digits and a NUL to hex. */
void crypto_sha256_hex(const void *data, size_t len, char hex[CRYPTO_SHA256_HEX_LEN + 1]);

/* Hex-encodes len bytes of in into out (2 * len + 1 bytes). */
void crypto_hex(const unsigned char *in, size_t len, char *out);

/* Fills buf with len bytes from the kernel CSPRNG. Returns 0 or -1. */
int crypto_random(void *buf, size_t len) __attribute__((warn_unused_result));

/* Compares len bytes in time that does not depend on the contents. */
int crypto_equal(const void *a, const void *b, size_t len);

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

/* ---- tokens (JWT, HS256) ----------------------------------------------------- */

struct crypto_jwt_claims {
    char iss[128];
    char aud[128];
    char sub[128];
    char scope[16]; /* "core" or "tenant" */
    char jti[64];
    long long tid; /* tenant id; 0 for core tokens */
    long long iat, exp;
};

/* Signs claims with an HS256 key (at least 32 bytes). kid may be NULL.
 * Returns a malloc'd token the caller frees, or NULL. */
char *crypto_jwt_sign(const unsigned char *key, size_t key_len, const char *kid,
                      const struct crypto_jwt_claims *c);

/* Verifies token: the algorithm must be HS256 whatever the token says (never
 * "none", never another algorithm), the signature must match key, and the
 * claims exp, iat, iss, aud, scope (core|tenant), jti, and tid for tenant
 * tokens must be present; iss and aud must equal the expected ones, exp must
 * not have passed and iat must not be in the future (leeway seconds each way).
 * Returns 0 and fills out, or -1 with a reason in why (for the log; clients
 * get one 401 whatever it is). */
int crypto_jwt_verify(const unsigned char *key, size_t key_len, const char *token,
                      const char *iss, const char *aud, long long now, int leeway,
                      struct crypto_jwt_claims *out, char *why, size_t why_len);

#endif
