/* Unit tests for crypto.c: SHA-256 test vectors (FIPS 180-4 examples),
 * argon2id, and JWTs: HS256 with kids, RS256 and ES256 with keys made here,
 * key-type checks, rotation by kid and the algorithm-confusion attack. */
#include "crypto.h"

#include "check.h"

#include <limits.h>
#include <stdlib.h>

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

static const unsigned char key[] = "0123456789abcdef0123456789abcdef-test-key";
#define KEYLEN (sizeof key - 1)

/* The HS256 key set of most token tests: key, for tokens with kid "k1" and
 * without a kid. */
static struct crypto_jwt_keys *hs_keys;

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

static int verify_with(const struct crypto_jwt_keys *k, const char *token, long long now,
                       struct crypto_jwt_claims *out)
{
    char why[160];
    return crypto_jwt_verify(k, token, "runtime", "api", now, 30, out, why, sizeof why);
}

static int verify(const char *token, long long now, struct crypto_jwt_claims *out)
{
    return verify_with(hs_keys, token, now, out);
}

static struct crypto_jwt_keys *hs256(const char *kid, const void *secret, size_t len)
{
    char why[160];
    struct crypto_jwt_keys *k = crypto_jwt_keys_new(CRYPTO_JWT_HS256);
    if (k && (crypto_jwt_keys_set_signer(k, kid, secret, len, why, sizeof why) < 0 ||
              crypto_jwt_keys_add(k, kid, secret, len, why, sizeof why) < 0)) {
        crypto_jwt_keys_free(k);
        return NULL;
    }
    return k;
}

/* A token made directly with libjwt, for shapes the runtime never signs:
 * any algorithm and key (HS256 keyed with a PEM public key too), kid NULL
 * for none, with or without exp. */
static char *raw_token_with(jwt_alg_t alg, const void *k, size_t klen, const char *kid,
                            int with_exp, long long now)
{
    jwt_t *jwt;
    char *t = NULL;
    if (jwt_new(&jwt) != 0)
        return NULL;
    jwt_add_grant(jwt, "iss", "runtime");
    jwt_add_grant(jwt, "aud", "api");
    jwt_add_grant(jwt, "scope", "core");
    jwt_add_grant(jwt, "jti", "j-2");
    jwt_add_grant(jwt, "sub", "42");
    jwt_add_grant_int(jwt, "iat", (long)now);
    if (with_exp)
        jwt_add_grant_int(jwt, "exp", (long)now + 900);
    if (kid)
        jwt_add_header(jwt, "kid", kid);
    if (jwt_set_alg(jwt, alg, alg == JWT_ALG_NONE ? NULL : k,
                    alg == JWT_ALG_NONE ? 0 : (int)klen) == 0)
        t = jwt_encode_str(jwt);
    jwt_free(jwt);
    return t;
}

static char *raw_token(jwt_alg_t alg, int with_exp, long long now)
{
    return raw_token_with(alg, key, KEYLEN, NULL, with_exp, now);
}

static void test_tokens(void)
{
    long long now = 1800000000;
    struct crypto_jwt_claims c = claims("tenant", 7, now), out;
    char why[160];
    hs_keys = hs256("k1", key, KEYLEN);
    CHECK(hs_keys && crypto_jwt_keys_add(hs_keys, "", key, KEYLEN, why, sizeof why) == 0);
    CHECK(crypto_jwt_keys_check(hs_keys, why, sizeof why) == 0);
    char *t = crypto_jwt_sign(hs_keys, &c);

    CHECK(t != NULL);
    CHECK(verify(t, now, &out) == 0);
    CHECK(out.tid == 7 && strcmp(out.scope, "tenant") == 0 && strcmp(out.sub, "42") == 0);
    CHECK(out.exp == now + 900);
    /* expired, and issued in the future, beyond the leeway */
    CHECK(verify(t, now + 900 + 31, &out) == -1);
    CHECK(verify(t, now + 900 + 29, &out) == 0);
    CHECK(verify(t, now - 31, &out) == -1);
    /* wrong key, wrong issuer or audience */
    struct crypto_jwt_keys *other = hs256("k1", "another key of at least 32 bytes!!", 34);
    CHECK(other && verify_with(other, t, now, &out) == -1);
    crypto_jwt_keys_free(other);
    CHECK(crypto_jwt_verify(hs_keys, t, "other", "api", now, 30, &out, why, sizeof why) ==
          -1);
    CHECK(crypto_jwt_verify(hs_keys, t, "runtime", "web", now, 30, &out, why, sizeof why) ==
          -1);
    /* tampered payload */
    char *tampered = strdup(t);
    char *p = strchr(tampered, '.') + 3;
    *p = *p == 'A' ? 'B' : 'A';
    CHECK(verify(tampered, now, &out) == -1);
    free(tampered);
    free(t);

    /* a tenant token without tid, a short key */
    struct crypto_jwt_claims no_tid = claims("tenant", 0, now);
    t = crypto_jwt_sign(hs_keys, &no_tid);
    CHECK(t && verify(t, now, &out) == -1);
    free(t);
    struct crypto_jwt_keys *weak = crypto_jwt_keys_new(CRYPTO_JWT_HS256);
    CHECK(crypto_jwt_keys_set_signer(weak, NULL, key, 16, why, sizeof why) == -1);
    CHECK(crypto_jwt_keys_add(weak, NULL, key, 16, why, sizeof why) == -1);
    CHECK(crypto_jwt_sign(weak, &c) == NULL); /* no signing key */
    CHECK(crypto_jwt_keys_check(weak, why, sizeof why) == -1);
    crypto_jwt_keys_free(weak);
    struct crypto_jwt_claims bad_scope = claims("admin", 0, now);
    t = crypto_jwt_sign(hs_keys, &bad_scope);
    CHECK(t && verify(t, now, &out) == -1);
    free(t);

    /* sub is a user id: handlers look users up by it (a bigint) */
    static const char *const bad_subs[] = {
        "",
        "abc",
        "1e3",
        "-1",
        "01",
        " 1",
        "1 ",
        "9223372036854775808",
        "99999999999999999999",
        "apikey:1",
    };
    for (size_t i = 0; i < sizeof bad_subs / sizeof bad_subs[0]; i++) {
        struct crypto_jwt_claims bad_sub = claims("core", 0, now);
        strcpy(bad_sub.sub, bad_subs[i]);
        t = crypto_jwt_sign(hs_keys, &bad_sub);
        CHECK(t && verify(t, now, &out) == -1);
        free(t);
    }
    struct crypto_jwt_claims max_sub = claims("core", 0, now);
    strcpy(max_sub.sub, "9223372036854775807");
    t = crypto_jwt_sign(hs_keys, &max_sub);
    CHECK(t && verify(t, now, &out) == 0);
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
    crypto_jwt_keys_free(hs_keys);
}

/* HS256 rotation: tokens name their key by kid; an earlier secret kept
 * under its kid still verifies; an unknown kid does not. */
static void test_hs256_rotation(void)
{
    long long now = 1800000000;
    struct crypto_jwt_claims c = claims("core", 0, now), out;
    static const char old_secret[] = "the old secret, 32 bytes or more!!";
    char why[160];

    struct crypto_jwt_keys *before = hs256("k1", old_secret, sizeof old_secret - 1);
    struct crypto_jwt_keys *after = hs256("k2", key, KEYLEN);
    char *t1 = crypto_jwt_sign(before, &c), *t2 = crypto_jwt_sign(after, &c);
    CHECK(t1 && t2);
    CHECK(verify_with(after, t2, now, &out) == 0);
    CHECK(verify_with(after, t1, now, &out) == -1); /* kid k1 unknown */
    CHECK(crypto_jwt_keys_add(after, "k1", old_secret, sizeof old_secret - 1, why,
                              sizeof why) == 0);
    CHECK(verify_with(after, t1, now, &out) == 0);
    /* a kid is given once, and is plain text */
    CHECK(crypto_jwt_keys_add(after, "k1", old_secret, sizeof old_secret - 1, why,
                              sizeof why) == -1);
    CHECK(crypto_jwt_keys_add(after, "k\"3", key, KEYLEN, why, sizeof why) == -1);
    /* no kid-less key in this set: a token without a kid is refused */
    struct crypto_jwt_keys *nokid = hs256(NULL, key, KEYLEN);
    char *t0 = crypto_jwt_sign(nokid, &c);
    CHECK(t0 && verify_with(nokid, t0, now, &out) == 0);
    CHECK(verify_with(after, t0, now, &out) == -1);
    free(t0);
    free(t1);
    free(t2);
    crypto_jwt_keys_free(nokid);
    crypto_jwt_keys_free(before);
    crypto_jwt_keys_free(after);
}

/* A fresh key as PEM text (malloc'd): the private key, or its public half. */
static char *make_pem(EVP_PKEY *pk, int public_half, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data, *out = NULL;
    if (b && (public_half ? PEM_write_bio_PUBKEY(b, pk)
                          : PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL))) {
        long n = BIO_get_mem_data(b, &data);
        if (n > 0 && (out = malloc((size_t)n + 1))) {
            memcpy(out, data, (size_t)n);
            out[n] = '\0';
            *len = (size_t)n;
        }
    }
    BIO_free(b);
    return out;
}

struct pem_pair {
    char *priv, *pub;
    size_t priv_len, pub_len;
};

static struct pem_pair pem_pair(EVP_PKEY *pk)
{
    struct pem_pair p = {0};
    if (pk) {
        p.priv = make_pem(pk, 0, &p.priv_len);
        p.pub = make_pem(pk, 1, &p.pub_len);
    }
    EVP_PKEY_free(pk);
    return p;
}

static void pem_pair_free(struct pem_pair *p)
{
    free(p->priv);
    free(p->pub);
}

/* A key set of alg signing with p under kid, verifying kid with p.pub. */
static struct crypto_jwt_keys *pem_keys(enum crypto_jwt_alg alg, const char *kid,
                                        const struct pem_pair *p)
{
    char why[160];
    struct crypto_jwt_keys *k = crypto_jwt_keys_new(alg);
    if (k &&
        (crypto_jwt_keys_set_signer(k, kid, p->priv, p->priv_len, why, sizeof why) < 0 ||
         crypto_jwt_keys_add(k, kid, p->pub, p->pub_len, why, sizeof why) < 0)) {
        fprintf(stderr, "pem_keys: %s\n", why);
        crypto_jwt_keys_free(k);
        return NULL;
    }
    return k;
}

/* A token with alg HS256 whose HMAC key is the PEM public key of an RS256
 * or ES256 set: accepted by a verifier that lets the token pick the
 * algorithm. */
static char *confused_token(const struct pem_pair *p, const char *kid, long long now)
{
    return raw_token_with(JWT_ALG_HS256, p->pub, p->pub_len, kid, 1, now);
}

static void test_public_keys(enum crypto_jwt_alg alg, struct pem_pair a, struct pem_pair b,
                             struct pem_pair wrong_type)
{
    long long now = 1800000000;
    struct crypto_jwt_claims c = claims("tenant", 9, now), out;
    char why[160];

    CHECK(a.priv && a.pub && b.priv && b.pub && wrong_type.priv && wrong_type.pub);
    struct crypto_jwt_keys *ka = pem_keys(alg, "a", &a), *kb = pem_keys(alg, "b", &b);
    CHECK(ka && kb);
    if (!ka || !kb)
        goto done;
    CHECK(crypto_jwt_keys_check(ka, why, sizeof why) == 0);
    strcpy(c.sid, "family-1");
    char *ta = crypto_jwt_sign(ka, &c);
    CHECK(ta && verify_with(ka, ta, now, &out) == 0);
    CHECK(out.tid == 9 && strcmp(out.sid, "family-1") == 0);
    /* another key under the same kid: a bad signature */
    struct crypto_jwt_keys *imposter = pem_keys(alg, "a", &b);
    char *ti = crypto_jwt_sign(imposter, &c);
    CHECK(ti && verify_with(ka, ti, now, &out) == -1);
    /* rotation: b signs, a still verifies under its kid; without a, 401 */
    CHECK(verify_with(kb, ta, now, &out) == -1);
    CHECK(crypto_jwt_keys_add(kb, "a", a.pub, a.pub_len, why, sizeof why) == 0);
    CHECK(verify_with(kb, ta, now, &out) == 0);
    char *tb = crypto_jwt_sign(kb, &c);
    CHECK(tb && verify_with(kb, tb, now, &out) == 0);
    CHECK(verify_with(ka, tb, now, &out) == -1); /* unknown kid b */
    /* the algorithm-confusion attack: HS256 keyed with the public key */
    char *tc = confused_token(&a, "a", now);
    CHECK(tc && verify_with(ka, tc, now, &out) == -1);
    /* an HS256 set never takes an RS256/ES256 token, nor the reverse */
    struct crypto_jwt_keys *hk = hs256("a", key, KEYLEN);
    CHECK(verify_with(hk, ta, now, &out) == -1);
    char *th = crypto_jwt_sign(hk, &c);
    CHECK(th && verify_with(ka, th, now, &out) == -1);
    /* key types: private for public, the other algorithm's keys, a secret */
    struct crypto_jwt_keys *t = crypto_jwt_keys_new(alg);
    CHECK(crypto_jwt_keys_add(t, "x", a.priv, a.priv_len, why, sizeof why) == -1);
    CHECK(crypto_jwt_keys_add(t, "x", wrong_type.pub, wrong_type.pub_len, why,
                              sizeof why) == -1);
    CHECK(crypto_jwt_keys_set_signer(t, "x", wrong_type.priv, wrong_type.priv_len, why,
                                     sizeof why) == -1);
    CHECK(crypto_jwt_keys_set_signer(t, "x", a.pub, a.pub_len, why, sizeof why) == -1);
    CHECK(crypto_jwt_keys_set_signer(t, "x", key, KEYLEN, why, sizeof why) == -1);
    /* a private key that is not the kid's public key */
    CHECK(crypto_jwt_keys_set_signer(t, "x", a.priv, a.priv_len, why, sizeof why) == 0);
    CHECK(crypto_jwt_keys_add(t, "x", b.pub, b.pub_len, why, sizeof why) == 0);
    CHECK(crypto_jwt_keys_check(t, why, sizeof why) == -1);
    crypto_jwt_keys_free(t);
    free(ta);
    free(ti);
    free(tb);
    free(tc);
    free(th);
    crypto_jwt_keys_free(hk);
    crypto_jwt_keys_free(imposter);
done:
    crypto_jwt_keys_free(ka);
    crypto_jwt_keys_free(kb);
    pem_pair_free(&a);
    pem_pair_free(&b);
    pem_pair_free(&wrong_type);
}

static void test_key_sets(void)
{
    enum crypto_jwt_alg alg;
    CHECK(crypto_jwt_alg_parse("RS256", &alg) == 0 && alg == CRYPTO_JWT_RS256);
    CHECK(crypto_jwt_alg_parse("none", &alg) == -1);
    CHECK(crypto_jwt_alg_parse("hs256", &alg) == -1);
    CHECK_STR(crypto_jwt_alg_name(CRYPTO_JWT_ES256), "ES256");

    test_public_keys(CRYPTO_JWT_RS256, pem_pair(EVP_PKEY_Q_keygen(NULL, NULL, "RSA", 2048)),
                     pem_pair(EVP_PKEY_Q_keygen(NULL, NULL, "RSA", 2048)),
                     pem_pair(EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")));
    test_public_keys(CRYPTO_JWT_ES256,
                     pem_pair(EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")),
                     pem_pair(EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")),
                     pem_pair(EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384")));
    /* RSA under 2048 bits is refused */
    struct pem_pair small = pem_pair(EVP_PKEY_Q_keygen(NULL, NULL, "RSA", 1024));
    char why[160];
    struct crypto_jwt_keys *k = crypto_jwt_keys_new(CRYPTO_JWT_RS256);
    CHECK(small.pub &&
          crypto_jwt_keys_add(k, "s", small.pub, small.pub_len, why, sizeof why) == -1);
    crypto_jwt_keys_free(k);
    pem_pair_free(&small);
}

/* A signed token may carry any 64-bit exp and iat: the lifetime check must
 * not overflow adding or subtracting the leeway (the fuzz target found
 * exp = 2^63 - 1 overflowing). */
static void test_lifetime_extremes(void)
{
    struct crypto_jwt_claims c;
    char why[64];
    long long now = 1700000000;

    memset(&c, 0, sizeof c);
    c.iat = now;
    c.exp = LLONG_MAX;
    CHECK(crypto_jwt_current(&c, now, 30, why, sizeof why) == 0);
    c.iat = LLONG_MIN;
    c.exp = now + 60;
    CHECK(crypto_jwt_current(&c, now, 30, why, sizeof why) == 0);
    c.iat = LLONG_MAX;
    CHECK(crypto_jwt_current(&c, now, 30, why, sizeof why) == -1);
    CHECK_STR(why, "issued in the future");
    c.iat = now;
    c.exp = LLONG_MIN;
    CHECK(crypto_jwt_current(&c, now, 30, why, sizeof why) == -1);
    CHECK_STR(why, "expired");
    /* The leeway still counts at the edges. */
    c.exp = now - 30;
    CHECK(crypto_jwt_current(&c, now, 30, why, sizeof why) == 0);
    c.exp = now - 31;
    CHECK(crypto_jwt_current(&c, now, 30, why, sizeof why) == -1);
    c.exp = now;
    c.iat = now + 30;
    CHECK(crypto_jwt_current(&c, now, 30, why, sizeof why) == 0);
    c.iat = now + 31;
    CHECK(crypto_jwt_current(&c, now, 30, why, sizeof why) == -1);
}

/* How long a revocation of a token must live: exp plus the leeway, without
 * the signed overflow exp + leeway would be for exp = 2^63 - 1 (a logout
 * with such a token), and capped where PostgreSQL's to_timestamp still
 * takes it. */
static void test_valid_until_extremes(void)
{
    struct crypto_jwt_claims c;

    memset(&c, 0, sizeof c);
    c.exp = 1700000000;
    CHECK(crypto_jwt_valid_until(&c, 30) == 1700000030);
    CHECK(crypto_jwt_valid_until(&c, 0) == 1700000000);
    CHECK(crypto_jwt_valid_until(&c, -5) == 1700000000);
    c.exp = LLONG_MAX;
    CHECK(crypto_jwt_valid_until(&c, 30) == CRYPTO_JWT_TIME_MAX);
    CHECK(crypto_jwt_valid_until(&c, INT_MAX) == CRYPTO_JWT_TIME_MAX);
    c.exp = CRYPTO_JWT_TIME_MAX - 30;
    CHECK(crypto_jwt_valid_until(&c, 30) == CRYPTO_JWT_TIME_MAX);
    c.exp = CRYPTO_JWT_TIME_MAX - 31;
    CHECK(crypto_jwt_valid_until(&c, 30) == CRYPTO_JWT_TIME_MAX - 1);
    c.exp = LLONG_MIN;
    CHECK(crypto_jwt_valid_until(&c, 30) == LLONG_MIN + 30);
}

/* crypto_wipe zeroes what it is given, and takes NULL with length 0. */
static void test_wipe(void)
{
    unsigned char secret[32];

    memset(secret, 0xa5, sizeof secret);
    crypto_wipe(secret, sizeof secret);
    for (size_t i = 0; i < sizeof secret; i++)
        CHECK(secret[i] == 0);
    crypto_wipe(NULL, 0);
}

/* The NIST vectors (FIPS 180-2, appendix B, and the long message of the
 * SHA-256 examples), one-shot and streamed. */
static void test_sha256(void)
{
    char hex[CRYPTO_SHA256_HEX_LEN + 1];
    static char million[1000000];
    static const char *const two =
        "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    static const char *const four =
        "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
        "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";

    CHECK(crypto_sha256_hex("", 0, hex) == 0);
    CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(crypto_sha256_hex("abc", 3, hex) == 0);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(crypto_sha256_hex(two, strlen(two), hex) == 0);
    CHECK_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    CHECK(crypto_sha256_hex(four, strlen(four), hex) == 0);
    CHECK_STR(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    memset(million, 'a', sizeof million);
    CHECK(crypto_sha256_hex(million, sizeof million, hex) == 0);
    CHECK_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

    /* Streaming in odd pieces gives the same digest. */
    struct crypto_sha256 c;
    unsigned char md[CRYPTO_SHA256_LEN];
    crypto_sha256_init(&c);
    for (size_t i = 0; i < sizeof million; i += 777)
        crypto_sha256_update(&c, million + i,
                             i + 777 > sizeof million ? sizeof million - i : 777);
    CHECK(crypto_sha256_final(&c, md) == 0);
    CHECK(c.ctx == NULL); /* final released the context */
    crypto_hex(md, sizeof md, hex);
    CHECK_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

    /* Nothing, or empty pieces, is the digest of "". */
    crypto_sha256_init(&c);
    CHECK(crypto_sha256_final(&c, md) == 0);
    crypto_hex(md, sizeof md, hex);
    CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    crypto_sha256_init(&c);
    crypto_sha256_update(&c, "", 0);
    crypto_sha256_update(&c, "a", 1);
    crypto_sha256_update(&c, "", 0);
    crypto_sha256_update(&c, "bc", 2);
    CHECK(crypto_sha256_final(&c, md) == 0);
    crypto_hex(md, sizeof md, hex);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

    /* Two contexts at once do not share state. */
    struct crypto_sha256 d;
    unsigned char md2[CRYPTO_SHA256_LEN];
    crypto_sha256_init(&c);
    crypto_sha256_init(&d);
    crypto_sha256_update(&c, "ab", 2);
    crypto_sha256_update(&d, two, 28);
    crypto_sha256_update(&c, "c", 1);
    crypto_sha256_update(&d, two + 28, strlen(two) - 28);
    CHECK(crypto_sha256_final(&c, md) == 0);
    CHECK(crypto_sha256_final(&d, md2) == 0);
    crypto_hex(md, sizeof md, hex);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    crypto_hex(md2, sizeof md2, hex);
    CHECK_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

    /* A failure (here: init that got no context) is reported by final,
     * which zeroes the digest; update after it does nothing. */
    c = (struct crypto_sha256){.ctx = NULL, .failed = true};
    crypto_sha256_update(&c, "abc", 3);
    memset(md, 0xff, sizeof md);
    CHECK(crypto_sha256_final(&c, md) == -1);
    CHECK(md[0] == 0 && md[CRYPTO_SHA256_LEN - 1] == 0);
}

static void test_equal(void)
{
    unsigned char r1[16], r2[16];
    CHECK(crypto_random(r1, sizeof r1) == 0 && crypto_random(r2, sizeof r2) == 0);
    CHECK(!crypto_equal(r1, r2, sizeof r1));
    CHECK(crypto_equal("same", "same", 4));
    CHECK(!crypto_equal("same", "sane", 4));
    CHECK(!crypto_equal("same", "samf", 4)); /* the last byte counts */
    CHECK(crypto_equal("a", "b", 0));        /* nothing to compare */
}

int main(void)
{
    test_sha256();
    test_equal();
    test_passwords();
    test_tokens();
    test_hs256_rotation();
    test_key_sets();
    test_lifetime_extremes();
    test_valid_until_extremes();
    test_wipe();
    return check_done();
}
