/* Unit tests for crypto.c: SHA-256 test vectors (FIPS 180-4 examples). */
#include "crypto.h"

#include "check.h"

#include <stdlib.h>

#include <jwt.h>

static const unsigned char key[] = "0123456789abcdef0123456789abcdef-test-key";
#define KEYLEN (sizeof key - 1)

static void test_passwords(void)
{
    struct crypto_argon2 owasp = {2, 19456, 1}, ceiling = {4, 65536, 4};
    char hash[CRYPTO_HASH_MAX], other[CRYPTO_HASH_MAX];

    CHECK(crypto_password_hash("correct horse", 13, &owasp, hash, sizeof hash) == 0);
    CHECK(strncmp(hash, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0);
    CHECK(crypto_password_verify(hash, "correct horse", 13, &ceiling) == 1);
    CHECK(crypto_password_verify(hash, "correct hors", 12, &ceiling) == 0);
    /* A fresh salt every time. */
    CHECK(crypto_password_hash("correct horse", 13, &owasp, other, sizeof other) == 0);
    CHECK(strcmp(hash, other) != 0);
    /* Stored parameters above the ceiling are refused without hashing. */
    struct crypto_argon2 low = {1, 8192, 1};
    CHECK(crypto_password_verify(hash, "correct horse", 13, &low) == -1);
    CHECK(crypto_password_verify("$argon2id$v=19$m=99999999,t=2,p=1$c2FsdA$aGFzaA", "x", 1,
                                 &ceiling) == -1);
    CHECK(crypto_password_verify("$argon2i$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", "x", 1,
                                 &ceiling) == -1);
    CHECK(crypto_password_verify("plain-text", "plain-text", 10, &ceiling) == -1);
    CHECK(crypto_password_hash("x", CRYPTO_PASSWORD_MAX + 1, &owasp, hash, sizeof hash) ==
          -1);
}

static struct crypto_jwt_claims claims(const char *scope, long long tid, long long now)
{
    struct crypto_jwt_claims c;
    memset(&c, 0, sizeof c);
    strcpy(c.iss, "runtime");
    strcpy(c.aud, "api");
    strcpy(c.sub, "42");
    strcpy(c.scope, scope);
    strcpy(c.jti, "j-1");
    c.tid = tid;
    c.iat = now;
    c.exp = now + 900;
    return c;
}

static int verify(const char *token, long long now, struct crypto_jwt_claims *out)
{
    char why[128];
    return crypto_jwt_verify(key, KEYLEN, token, "runtime", "api", now, 30, out, why,
                             sizeof why);
}

/* A token made directly with libjwt, for shapes the runtime never signs. */
static char *raw_token(jwt_alg_t alg, int with_exp, long long now)
{
    jwt_t *jwt;
    char *t = NULL;
    if (jwt_new(&jwt) != 0)
        return NULL;
    jwt_add_grant(jwt, "iss", "runtime");
    jwt_add_grant(jwt, "aud", "api");
    jwt_add_grant(jwt, "scope", "core");
    jwt_add_grant(jwt, "jti", "j-2");
    jwt_add_grant_int(jwt, "iat", (long)now);
    if (with_exp)
        jwt_add_grant_int(jwt, "exp", (long)now + 900);
    if (jwt_set_alg(jwt, alg, alg == JWT_ALG_NONE ? NULL : key,
                    alg == JWT_ALG_NONE ? 0 : (int)KEYLEN) == 0)
        t = jwt_encode_str(jwt);
    jwt_free(jwt);
    return t;
}

static void test_tokens(void)
{
    long long now = 1800000000;
    struct crypto_jwt_claims c = claims("tenant", 7, now), out;
    char *t = crypto_jwt_sign(key, KEYLEN, "k1", &c);

    CHECK(t != NULL);
    CHECK(verify(t, now, &out) == 0);
    CHECK(out.tid == 7 && strcmp(out.scope, "tenant") == 0 && strcmp(out.sub, "42") == 0);
    CHECK(out.exp == now + 900);
    /* expired, and issued in the future, beyond the leeway */
    CHECK(verify(t, now + 900 + 31, &out) == -1);
    CHECK(verify(t, now + 900 + 29, &out) == 0);
    CHECK(verify(t, now - 31, &out) == -1);
    /* wrong key, wrong issuer or audience */
    char why[128];
    CHECK(crypto_jwt_verify((const unsigned char *)"another key of at least 32 bytes!!", 34,
                            t, "runtime", "api", now, 30, &out, why, sizeof why) == -1);
    CHECK(crypto_jwt_verify(key, KEYLEN, t, "other", "api", now, 30, &out, why,
                            sizeof why) == -1);
    CHECK(crypto_jwt_verify(key, KEYLEN, t, "runtime", "web", now, 30, &out, why,
                            sizeof why) == -1);
    /* tampered payload */
    char *tampered = strdup(t);
    char *p = strchr(tampered, '.') + 3;
    *p = *p == 'A' ? 'B' : 'A';
    CHECK(verify(tampered, now, &out) == -1);
    free(tampered);
    free(t);

    /* a tenant token without tid, a short key */
    struct crypto_jwt_claims no_tid = claims("tenant", 0, now);
    t = crypto_jwt_sign(key, KEYLEN, NULL, &no_tid);
    CHECK(t && verify(t, now, &out) == -1);
    free(t);
    CHECK(crypto_jwt_sign(key, 16, NULL, &c) == NULL);
    struct crypto_jwt_claims bad_scope = claims("admin", 0, now);
    t = crypto_jwt_sign(key, KEYLEN, NULL, &bad_scope);
    CHECK(t && verify(t, now, &out) == -1);
    free(t);

    /* the algorithm is never the token's choice */
    t = raw_token(JWT_ALG_NONE, 1, now);
    CHECK(t && verify(t, now, &out) == -1);
    free(t);
    t = raw_token(JWT_ALG_HS512, 1, now);
    CHECK(t && verify(t, now, &out) == -1);
    free(t);
    /* exp is required */
    t = raw_token(JWT_ALG_HS256, 0, now);
    CHECK(t && verify(t, now, &out) == -1);
    free(t);
    t = raw_token(JWT_ALG_HS256, 1, now);
    CHECK(t && verify(t, now, &out) == 0);
    free(t);
    /* malformed */
    CHECK(verify("", now, &out) == -1);
    CHECK(verify("not a token", now, &out) == -1);
    CHECK(verify("a.b.c", now, &out) == -1);
    CHECK(verify(".x.y", now, &out) == -1);
}

int main(void)
{
    char hex[65];
    static char million[1000000];

    crypto_sha256_hex("", 0, hex);
    CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    crypto_sha256_hex("abc", 3, hex);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    crypto_sha256_hex(two, strlen(two), hex);
    CHECK_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    memset(million, 'a', sizeof million);
    crypto_sha256_hex(million, sizeof million, hex);
    CHECK_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

    /* Streaming in odd pieces gives the same digest. */
    struct crypto_sha256 c;
    unsigned char md[32];
    crypto_sha256_init(&c);
    for (size_t i = 0; i < sizeof million; i += 777)
        crypto_sha256_update(&c, million + i,
                             i + 777 > sizeof million ? sizeof million - i : 777);
    crypto_sha256_final(&c, md);
    crypto_hex(md, 32, hex);
    CHECK_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

    unsigned char r1[16], r2[16];
    CHECK(crypto_random(r1, sizeof r1) == 0 && crypto_random(r2, sizeof r2) == 0);
    CHECK(!crypto_equal(r1, r2, sizeof r1));
    CHECK(crypto_equal("same", "same", 4));
    CHECK(!crypto_equal("same", "sane", 4));
    test_passwords();
    test_tokens();
    return check_done();
}
