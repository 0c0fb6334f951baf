/* crypto: hashing and randomness for the rest of the core.
 *
 * SHA-256 (FIPS 180-4) for migration and seed checksums and fingerprints,
 * and later for stored token and API-key digests; random bytes from the
 * kernel; constant-time comparison. Pure except for crypto_random. */
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

#endif
