/* Unit tests for crypto.c: SHA-256 test vectors (FIPS 180-4 examples). */
#include "crypto.h"

#include "check.h"

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
    return check_done();
}
