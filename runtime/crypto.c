/* crypto: SHA-256, CSPRNG, constant-time compare, passwords, JWTs (see
 * crypto.h). */
#include "crypto.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <argon2.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

void crypto_sha256_init(struct crypto_sha256 *c)
{
    c->ctx = EVP_MD_CTX_new();
    c->failed = !c->ctx || EVP_DigestInit_ex(c->ctx, EVP_sha256(), NULL) != 1;
}

void crypto_sha256_update(struct crypto_sha256 *c, const void *data, size_t len)
{
    if (!c->failed && EVP_DigestUpdate(c->ctx, data, len) != 1)
        c->failed = true;
}

int crypto_sha256_final(struct crypto_sha256 *c, unsigned char out[CRYPTO_SHA256_LEN])
{
    unsigned int n = 0;

    if (!c->failed && (EVP_DigestFinal_ex(c->ctx, out, &n) != 1 || n != CRYPTO_SHA256_LEN))
        c->failed = true;
    EVP_MD_CTX_free(c->ctx);
    c->ctx = NULL;
    if (c->failed) {
        memset(out, 0, CRYPTO_SHA256_LEN);
        ERR_clear_error(); /* nothing left on this thread's queue for libjwt to trip on */
        return -1;
    }
    return 0;
}

void crypto_hex(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

int crypto_sha256_hex(const void *data, size_t len, char hex[CRYPTO_SHA256_HEX_LEN + 1])
{
    unsigned char md[CRYPTO_SHA256_LEN];
    unsigned int n = 0;

    if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1 || n != sizeof md) {
        hex[0] = '\0';
        ERR_clear_error();
        return -1;
    }
    crypto_hex(md, sizeof md, hex);
    return 0;
}

int crypto_random(void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int crypto_equal(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

void crypto_wipe(void *p, size_t len)
{
    if (p && len)
        OPENSSL_cleanse(p, len);
}

/* ---- passwords -------------------------------------------------------------- */

int crypto_password_hash(const char *password, size_t len, const struct crypto_argon2 *p,
                         char *out, size_t cap)
{
    unsigned char salt[16];

    if (len > CRYPTO_PASSWORD_MAX || crypto_random(salt, sizeof salt) < 0)
        return -1;
    if (argon2_encodedlen(p->t_cost, p->m_cost_kib, p->parallelism, sizeof salt, 32,
                          Argon2_id) > cap)
        return -1;
    return argon2id_hash_encoded(p->t_cost, p->m_cost_kib, p->parallelism, password, len,
                                 salt, sizeof salt, 32, out, cap) == ARGON2_OK
               ? 0
               : -1;
}

int crypto_password_verify(const char *encoded, const char *password, size_t len,
                           const struct crypto_argon2 *ceiling)
{
    unsigned long m, t, par;
    int consumed = 0;

    if (!encoded || len > CRYPTO_PASSWORD_MAX)
        return -1;
    /* The parameters are read before any work: a hash planted with huge ones
     * must not cost the server minutes or gigabytes. */
    if (sscanf(encoded, "$argon2id$v=19$m=%lu,t=%lu,p=%lu$%n", &m, &t, &par, &consumed) !=
            3 ||
        consumed == 0 || m > ceiling->m_cost_kib || t > ceiling->t_cost ||
        par > ceiling->parallelism || m < 8 || t < 1 || par < 1)
        return -1;
    switch (argon2id_verify(encoded, password, len)) {
    case ARGON2_OK: return 1;
    case ARGON2_VERIFY_MISMATCH: return 0;
    default: return -1;
    }
}

/* ---- tokens ------------------------------------------------------------------ */

static const struct {
    const char *name;
    jwt_alg_t jwt;
} algs[] = {
    [CRYPTO_JWT_HS256] = {"HS256", JWT_ALG_HS256},
    [CRYPTO_JWT_RS256] = {"RS256", JWT_ALG_RS256},
    [CRYPTO_JWT_ES256] = {"ES256", JWT_ALG_ES256},
};

int crypto_jwt_alg_parse(const char *name, enum crypto_jwt_alg *out)
{
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
        if (name && strcmp(name, algs[i].name) == 0) {
            *out = (enum crypto_jwt_alg)i;
            return 0;
        }
    return -1;
}

const char *crypto_jwt_alg_name(enum crypto_jwt_alg alg)
{
    return algs[alg].name;
}

struct jwt_key {
    char kid[CRYPTO_JWT_KID_MAX]; /* "": tokens without a kid */
    unsigned char *key;           /* owned */
    size_t len;
};

struct crypto_jwt_keys {
    enum crypto_jwt_alg alg;
    struct jwt_key signer; /* signer.key NULL: none */
    struct jwt_key *verify;
    size_t nverify;
};

struct crypto_jwt_keys *crypto_jwt_keys_new(enum crypto_jwt_alg alg)
{
    struct crypto_jwt_keys *k = calloc(1, sizeof *k);
    if (k)
        k->alg = alg;
    return k;
}

/* Overwrites key material before it goes back to the allocator. */
static void key_clear(struct jwt_key *key)
{
    crypto_wipe(key->key, key->len);
    free(key->key);
    key->key = NULL;
    key->len = 0;
}

void crypto_jwt_keys_free(struct crypto_jwt_keys *k)
{
    if (!k)
        return;
    key_clear(&k->signer);
    for (size_t i = 0; i < k->nverify; i++)
        key_clear(&k->verify[i]);
    free(k->verify);
    free(k);
}

enum crypto_jwt_alg crypto_jwt_keys_alg(const struct crypto_jwt_keys *k)
{
    return k->alg;
}

static bool kid_valid(const char *kid)
{
    size_t n = strlen(kid);
    if (n >= CRYPTO_JWT_KID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(kid[i] >= 'a' && kid[i] <= 'z') && !(kid[i] >= 'A' && kid[i] <= 'Z') &&
            !(kid[i] >= '0' && kid[i] <= '9') && !strchr("._-", kid[i]))
            return false;
    return true;
}

/* Keys are never encrypted: without this, OpenSSL would ask on the
 * terminal for a passphrase. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* Checks that key is what alg signs or verifies with: a secret of 32 bytes
 * or more for HS256; for RS256 and ES256 a PEM key (private or public) of
 * the algorithm's type, parsed here so a wrong file is a start-up error
 * rather than every token failing later. */
static int key_check(enum crypto_jwt_alg alg, const void *key, size_t len, bool private_key,
                     char *why, size_t why_len)
{
    if (alg == CRYPTO_JWT_HS256) {
        if (len < 32) {
            snprintf(why, why_len, "an HS256 secret needs 32 bytes or more");
            return -1;
        }
        return 0;
    }
    if (len == 0 || len > 65536) {
        snprintf(why, why_len, "not a PEM key (empty or too large)");
        return -1;
    }
    BIO *b = BIO_new_mem_buf(key, (int)len);
    EVP_PKEY *pk = NULL;
    int rc = -1;
    if (!b) {
        snprintf(why, why_len, "out of memory");
        goto done;
    }
    pk = private_key ? PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL)
                     : PEM_read_bio_PUBKEY(b, NULL, no_passphrase, NULL);
    if (!pk) {
        snprintf(why, why_len,
                 private_key ? "not an unencrypted PEM private key"
                             : "not a PEM public key (-----BEGIN PUBLIC KEY-----)");
        goto done;
    }
    if (alg == CRYPTO_JWT_RS256) {
        if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA)
            snprintf(why, why_len, "RS256 needs an RSA key");
        else if (EVP_PKEY_get_bits(pk) < 2048)
            snprintf(why, why_len, "RS256 needs an RSA key of 2048 bits or more (got %d)",
                     EVP_PKEY_get_bits(pk));
        else
            rc = 0;
    } else {
        char group[64] = "";
        size_t glen = 0;
        if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_EC ||
            EVP_PKEY_get_group_name(pk, group, sizeof group, &glen) != 1 ||
            (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0))
            snprintf(why, why_len, "ES256 needs an EC key on the P-256 curve");
        else
            rc = 0;
    }
done:
    EVP_PKEY_free(pk);
    BIO_free(b);
    ERR_clear_error(); /* nothing left on this thread's queue for libjwt to trip on */
    return rc;
}

static int key_set(struct jwt_key *dst, const char *kid, const void *key, size_t len,
                   char *why, size_t why_len)
{
    if (!kid_valid(kid)) {
        snprintf(why, why_len, "a kid is 1 to %d characters of A-Z a-z 0-9 . _ -",
                 CRYPTO_JWT_KID_MAX - 1);
        return -1;
    }
    /* One spare byte: a NUL after PEM text. */
    if (!(dst->key = malloc(len + 1))) {
        snprintf(why, why_len, "out of memory");
        return -1;
    }
    memcpy(dst->key, key, len);
    dst->key[len] = '\0';
    dst->len = len;
    snprintf(dst->kid, sizeof dst->kid, "%s", kid);
    return 0;
}

int crypto_jwt_keys_set_signer(struct crypto_jwt_keys *k, const char *kid, const void *key,
                               size_t len, char *why, size_t why_len)
{
    if (key_check(k->alg, key, len, true, why, why_len) < 0)
        return -1;
    key_clear(&k->signer);
    return key_set(&k->signer, kid ? kid : "", key, len, why, why_len);
}

static const struct jwt_key *key_find(const struct crypto_jwt_keys *k, const char *kid)
{
    for (size_t i = 0; i < k->nverify; i++)
        if (strcmp(k->verify[i].kid, kid) == 0)
            return &k->verify[i];
    return NULL;
}

int crypto_jwt_keys_add(struct crypto_jwt_keys *k, const char *kid, const void *key,
                        size_t len, char *why, size_t why_len)
{
    if (!kid)
        kid = "";
    if (key_find(k, kid)) {
        snprintf(why, why_len, "kid '%s' is given twice", kid);
        return -1;
    }
    if (key_check(k->alg, key, len, false, why, why_len) < 0)
        return -1;
    struct jwt_key *v = realloc(k->verify, (k->nverify + 1) * sizeof *v);
    if (!v) {
        snprintf(why, why_len, "out of memory");
        return -1;
    }
    k->verify = v;
    memset(&v[k->nverify], 0, sizeof v[0]);
    if (key_set(&v[k->nverify], kid, key, len, why, why_len) < 0)
        return -1;
    k->nverify++;
    return 0;
}

int crypto_jwt_keys_check(const struct crypto_jwt_keys *k, char *why, size_t why_len)
{
    struct crypto_jwt_claims c = {.iss = "probe",
                                  .aud = "probe",
                                  .sub = "1",
                                  .scope = "core",
                                  .jti = "probe",
                                  .iat = 1000,
                                  .exp = 2000};
    struct crypto_jwt_claims out;
    char vwhy[160];

    if (!k->signer.key) {
        snprintf(why, why_len, "no signing key");
        return -1;
    }
    if (!key_find(k, k->signer.kid)) {
        snprintf(why, why_len, "no verification key for the signing kid '%s'",
                 k->signer.kid);
        return -1;
    }
    char *t = crypto_jwt_sign(k, &c);
    if (!t) {
        snprintf(why, why_len, "signing with the signing key failed");
        return -1;
    }
    int rc = crypto_jwt_verify(k, t, "probe", "probe", 1500, 0, &out, vwhy, sizeof vwhy);
    free(t);
    if (rc < 0)
        snprintf(why, why_len,
                 "a token signed with the signing key does not verify with the key of "
                 "kid '%s' (%s)",
                 k->signer.kid, vwhy);
    return rc;
}

char *crypto_jwt_sign(const struct crypto_jwt_keys *k, const struct crypto_jwt_claims *c)
{
    const struct jwt_key *key = &k->signer;
    jwt_t *jwt = NULL;
    char *token = NULL;

    if (!key->key || jwt_new(&jwt) != 0)
        return NULL;
    if (jwt_add_grant(jwt, "iss", c->iss) == 0 && jwt_add_grant(jwt, "aud", c->aud) == 0 &&
        (!c->sub[0] || jwt_add_grant(jwt, "sub", c->sub) == 0) &&
        jwt_add_grant(jwt, "scope", c->scope) == 0 &&
        jwt_add_grant(jwt, "jti", c->jti) == 0 &&
        (!c->sid[0] || jwt_add_grant(jwt, "sid", c->sid) == 0) &&
        (c->tid == 0 || jwt_add_grant_int(jwt, "tid", (long)c->tid) == 0) &&
        jwt_add_grant_int(jwt, "iat", (long)c->iat) == 0 &&
        jwt_add_grant_int(jwt, "exp", (long)c->exp) == 0 &&
        (!key->kid[0] || jwt_add_header(jwt, "kid", key->kid) == 0) &&
        jwt_set_alg(jwt, algs[k->alg].jwt, key->key, (int)key->len) == 0)
        token = jwt_encode_str(jwt);
    jwt_free(jwt);
    return token;
}

static int copy_grant(jwt_t *jwt, const char *name, char *out, size_t cap)
{
    const char *v = jwt_get_grant(jwt, name);
    if (!v || !*v || strlen(v) >= cap)
        return -1;
    memcpy(out, v, strlen(v) + 1);
    return 0;
}

/* A numeric claim; errno tells a missing or non-numeric one apart. */
static int int_grant(jwt_t *jwt, const char *name, long long *out)
{
    errno = 0;
    long v = jwt_get_grant_int(jwt, name);
    if (errno != 0)
        return -1;
    *out = v;
    return 0;
}

/* Reads the kid of a decoded token's header into kid ("" without one).
 * Returns -1 when there is a kid that is not a string or too long. */
static int header_kid(jwt_t *jwt, char kid[CRYPTO_JWT_KID_MAX])
{
    const char *v = jwt_get_header(jwt, "kid");
    kid[0] = '\0';
    if (v) {
        if (strlen(v) >= CRYPTO_JWT_KID_MAX)
            return -1;
        memcpy(kid, v, strlen(v) + 1);
        return 0;
    }
    char *any = jwt_get_headers_json(jwt, "kid"); /* a kid of another JSON type */
    free(any);
    return any ? -1 : 0;
}

int crypto_jwt_current(const struct crypto_jwt_claims *c, long long now, int leeway,
                       char *why, size_t why_len)
{
    /* The leeway moves now, not the claims: exp and iat are whatever a
     * signed token carries, and exp + leeway could overflow. */
    if (c->exp < now - leeway) {
        snprintf(why, why_len, "expired");
        return -1;
    }
    if (c->iat > now + leeway) {
        snprintf(why, why_len, "issued in the future");
        return -1;
    }
    return 0;
}

long long crypto_jwt_valid_until(const struct crypto_jwt_claims *c, int leeway)
{
    /* Compare before adding: exp > MAX - leeway is exp + leeway > MAX
     * without the addition that could overflow. */
    if (leeway < 0)
        leeway = 0;
    if (c->exp > CRYPTO_JWT_TIME_MAX - leeway)
        return CRYPTO_JWT_TIME_MAX;
    return c->exp + leeway;
}

bool crypto_jwt_sub_valid(const char *sub)
{
    static const char max[] = "9223372036854775807";
    size_t n = strspn(sub, "0123456789");

    if (n == 0 || sub[n] != '\0' || sub[0] == '0' || n > sizeof max - 1)
        return false;
    return n < sizeof max - 1 || strcmp(sub, max) <= 0;
}

int crypto_jwt_verify(const struct crypto_jwt_keys *k, const char *token, const char *iss,
                      const char *aud, long long now, int leeway,
                      struct crypto_jwt_claims *out, char *why, size_t why_len)
{
    jwt_t *head = NULL, *jwt = NULL;
    char kid[CRYPTO_JWT_KID_MAX], kid2[CRYPTO_JWT_KID_MAX];
    const struct jwt_key *key;
    int rc = -1;

    memset(out, 0, sizeof *out);
    const char *dot = token ? strchr(token, '.') : NULL;
    if (!token || !dot || dot == token || strlen(token) > 8192) {
        snprintf(why, why_len, "malformed token");
        return -1;
    }
    /* First the header alone: libjwt 1.10 decodes a token without checking
     * its signature when it is given no key (and then reports the algorithm
     * as none, so the header's "alg" is read as text). Nothing of this
     * decoding is trusted but the two things needed to pick the key: the
     * algorithm, which must be the key set's (pinned: "none", HS256 on an
     * RS256 set with the public key as its HMAC secret, ... never get near a
     * key), and the kid. */
    if (jwt_decode(&head, token, NULL, 0) != 0 || !head) {
        snprintf(why, why_len, "malformed token");
        goto done;
    }
    const char *alg = jwt_get_header(head, "alg");
    if (!alg || strcmp(alg, algs[k->alg].name) != 0) {
        snprintf(why, why_len, "algorithm %.16s is not the configured %s", alg ? alg : "?",
                 algs[k->alg].name);
        goto done;
    }
    if (header_kid(head, kid) < 0) {
        snprintf(why, why_len, "malformed kid");
        goto done;
    }
    if (!(key = key_find(k, kid))) {
        snprintf(why, why_len, kid[0] ? "unknown kid '%s'" : "the token has no kid%s",
                 kid[0] ? kid : "");
        goto done;
    }
    /* Then the real decoding, which checks the signature with that key. The
     * algorithm and kid are checked again on what it decoded. */
    if (jwt_decode(&jwt, token, key->key, (int)key->len) != 0 || !jwt) {
        snprintf(why, why_len, "bad signature or malformed token");
        goto done;
    }
    if (jwt_get_alg(jwt) != algs[k->alg].jwt || header_kid(jwt, kid2) < 0 ||
        strcmp(kid, kid2) != 0) {
        snprintf(why, why_len, "the header changed between decodings");
        goto done;
    }
    if (copy_grant(jwt, "iss", out->iss, sizeof out->iss) < 0 ||
        copy_grant(jwt, "aud", out->aud, sizeof out->aud) < 0 ||
        copy_grant(jwt, "scope", out->scope, sizeof out->scope) < 0 ||
        copy_grant(jwt, "jti", out->jti, sizeof out->jti) < 0 ||
        int_grant(jwt, "exp", &out->exp) < 0 || int_grant(jwt, "iat", &out->iat) < 0) {
        snprintf(why, why_len,
                 "a required claim (iss, aud, scope, jti, exp, iat) is missing");
        goto done;
    }
    (void)copy_grant(jwt, "sid", out->sid, sizeof out->sid);
    if (copy_grant(jwt, "sub", out->sub, sizeof out->sub) < 0 ||
        !crypto_jwt_sub_valid(out->sub)) {
        snprintf(why, why_len, "sub is not a user id");
        goto done;
    }
    if (strcmp(out->iss, iss) != 0 || strcmp(out->aud, aud) != 0) {
        snprintf(why, why_len, "wrong issuer or audience");
        goto done;
    }
    if (strcmp(out->scope, "core") != 0 && strcmp(out->scope, "tenant") != 0) {
        snprintf(why, why_len, "scope must be core or tenant");
        goto done;
    }
    if (strcmp(out->scope, "tenant") == 0 &&
        (int_grant(jwt, "tid", &out->tid) < 0 || out->tid <= 0)) {
        snprintf(why, why_len, "a tenant token needs tid");
        goto done;
    }
    rc = crypto_jwt_current(out, now, leeway, why, why_len);
done:
    jwt_free(head);
    jwt_free(jwt);
    if (rc < 0)
        memset(out, 0, sizeof *out);
    return rc;
}
