/* Fuzz target: token verification (crypto_jwt_verify in crypto.c, what
 * auth_verify_token in auth.c calls on a cache miss) with one HS256 key.
 *
 * The first input byte picks the mode. Even: the rest is a token string as
 * a client sends it. Odd: the rest is "<payload JSON>" or
 * "<header JSON>\n<payload JSON>", made into a token correctly signed with
 * the key, so the claims checks behind the signature get fuzzed too.
 *
 * A token that verifies must carry what the runtime relies on: the
 * expected issuer and audience, scope core or tenant, a jti, a tid above 0
 * for tenant tokens, exp not passed and iat not in the future (within the
 * leeway). Signing its claims again must give a token that verifies to the
 * same claims, and a key set with another secret must refuse the token. */
#include "crypto.h"

#include <openssl/hmac.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW    1700000000LL
#define LEEWAY 30
#define ISS    "runtime"
#define AUD    "api"

static const char secret[] = "fuzz-secret-fuzz-secret-fuzz-secret-0123";
static const char other[] = "another-secret-another-secret-another-01";
static struct crypto_jwt_keys *keys, *wrong;

static void fail(const char *what, const char *token)
{
    fprintf(stderr, "fuzz/jwt: %s\ntoken: %s\n", what, token);
    abort();
}

static struct crypto_jwt_keys *hs256(const char *key)
{
    char why[256];
    struct crypto_jwt_keys *k = crypto_jwt_keys_new(CRYPTO_JWT_HS256);
    if (!k || crypto_jwt_keys_set_signer(k, NULL, key, strlen(key), why, sizeof why) < 0 ||
        crypto_jwt_keys_add(k, NULL, key, strlen(key), why, sizeof why) < 0) {
        fprintf(stderr, "fuzz/jwt: key set: %s\n", why);
        abort();
    }
    return k;
}

/* Appends base64url (no padding) of in to out; returns the new end. */
static char *b64url(char *out, const unsigned char *in, size_t len)
{
    static const char a[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        *out++ = a[v >> 18];
        *out++ = a[(v >> 12) & 63];
        *out++ = a[(v >> 6) & 63];
        *out++ = a[v & 63];
    }
    if (len - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        *out++ = a[v >> 18];
        *out++ = a[(v >> 12) & 63];
    } else if (len - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        *out++ = a[v >> 18];
        *out++ = a[(v >> 12) & 63];
        *out++ = a[(v >> 6) & 63];
    }
    *out = '\0';
    return out;
}

/* header.payload.signature, signed with secret; malloc'd. */
static char *sign_raw(const char *header, size_t hlen, const char *payload, size_t plen)
{
    char *tok = malloc((hlen + plen) * 4 / 3 + 128), *p;
    unsigned char mac[32];
    unsigned maclen = sizeof mac;
    if (!tok)
        abort();
    p = b64url(tok, (const unsigned char *)header, hlen);
    *p++ = '.';
    p = b64url(p, (const unsigned char *)payload, plen);
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)tok,
              (size_t)(p - tok), mac, &maclen))
        abort();
    *p++ = '.';
    b64url(p, mac, maclen);
    return tok;
}

static int same_claims(const struct crypto_jwt_claims *a, const struct crypto_jwt_claims *b)
{
    return strcmp(a->iss, b->iss) == 0 && strcmp(a->aud, b->aud) == 0 &&
           strcmp(a->sub, b->sub) == 0 && strcmp(a->scope, b->scope) == 0 &&
           strcmp(a->jti, b->jti) == 0 && strcmp(a->sid, b->sid) == 0 && a->tid == b->tid &&
           a->iat == b->iat && a->exp == b->exp;
}

static void check(const char *token)
{
    struct crypto_jwt_claims c, again;
    char why[256];

    if (crypto_jwt_verify(keys, token, ISS, AUD, NOW, LEEWAY, &c, why, sizeof why) < 0) {
        if (!why[0])
            fail("refused without a reason", token);
        return;
    }
    if (strcmp(c.iss, ISS) || strcmp(c.aud, AUD) || !c.jti[0] ||
        (strcmp(c.scope, "core") && strcmp(c.scope, "tenant")) ||
        (strcmp(c.scope, "tenant") == 0 && c.tid <= 0))
        fail("verified a token without the required claims", token);
    if (c.exp < NOW - LEEWAY || c.iat > NOW + LEEWAY)
        fail("verified a token outside its lifetime", token);
    if (crypto_jwt_verify(wrong, token, ISS, AUD, NOW, LEEWAY, &again, why, sizeof why) ==
        0)
        fail("verified with the wrong secret", token);

    char *resigned = crypto_jwt_sign(keys, &c);
    if (!resigned)
        fail("could not sign verified claims", token);
    if (crypto_jwt_verify(keys, resigned, ISS, AUD, NOW, LEEWAY, &again, why, sizeof why) <
        0)
        fail(why, resigned);
    if (!same_claims(&c, &again))
        fail("signing verified claims again changed them", resigned);
    free(resigned);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!keys) {
        keys = hs256(secret);
        wrong = hs256(other);
    }
    if (size < 1 || size > 4096)
        return 0;
    char *in = malloc(size);
    if (!in)
        abort();
    memcpy(in, data + 1, size - 1);
    in[size - 1] = '\0';

    if ((data[0] & 1) == 0) {
        check(in);
    } else {
        static const char std[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
        const char *body = (const char *)data + 1, *end = (const char *)data + size;
        const char *nl = memchr(body, '\n', (size_t)(end - body));
        char *tok = nl ? sign_raw(body, (size_t)(nl - body), nl + 1, (size_t)(end - nl - 1))
                       : sign_raw(std, sizeof std - 1, body, (size_t)(end - body));
        check(tok);
        free(tok);
    }
    free(in);
    return 0;
}
