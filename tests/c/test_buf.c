/* Unit tests for buf.c: growth, printf, integers, JSON string escaping. */
#include "buf.h"

#include "check.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

static void test_append_and_printf(void)
{
    struct buf b = BUF_INIT;
    CHECK_STR(buf_cstr(&b), "");
    for (int i = 0; i < 1000; i++)
        buf_putc(&b, 'x');
    CHECK(b.len == 1000);
    buf_reset(&b);
    buf_printf(&b, "%d-%s", 42, "ok");
    CHECK_STR(buf_cstr(&b), "42-ok");
    char big[600];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    buf_printf(&b, "%s", big); /* longer than the small printf buffer */
    CHECK(b.len == 5 + 599);
    size_t len;
    char *s = buf_steal(&b, &len);
    CHECK(s && len == 604 && s[604] == '\0');
    free(s);
    CHECK(b.data == NULL && b.len == 0);
}

static void test_put_int(void)
{
    static const long long values[] = {0, 7, -7, 10, 1234567890123LL, LLONG_MAX, LLONG_MIN};
    struct buf b = BUF_INIT;
    char want[32];

    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        buf_reset(&b);
        buf_put_int(&b, values[i]);
        snprintf(want, sizeof want, "%lld", values[i]);
        CHECK_STR(buf_cstr(&b), want);
    }
    buf_free(&b);
}

static const char *json(const char *s, size_t n)
{
    static struct buf b = BUF_INIT;
    buf_reset(&b);
    buf_json_str(&b, s, n);
    return buf_cstr(&b);
}

static void test_json_escaping(void)
{
    CHECK_STR(json("plain", 5), "\"plain\"");
    CHECK_STR(json("a\"b\\c", 5), "\"a\\\"b\\\\c\"");
    CHECK_STR(json("\n\r\t\b\f", 5), "\"\\n\\r\\t\\b\\f\"");
    CHECK_STR(json("\x01\x1f", 2), "\"\\u0001\\u001f\"");
    CHECK_STR(json("nul\0byte", 8), "\"nul\\u0000byte\"");
    /* Valid UTF-8 passes through; invalid bytes become U+FFFD. */
    CHECK_STR(json("z\xc3\xa9\xe2\x82\xac", 6), "\"z\xc3\xa9\xe2\x82\xac\"");
    CHECK_STR(json("\xff", 1), "\"\xef\xbf\xbd\"");
    CHECK_STR(json("\xc0\xaf", 2), "\"\xef\xbf\xbd\xef\xbf\xbd\""); /* overlong */
    CHECK_STR(json("\xed\xa0\x80", 3),
              "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");          /* surrogate */
    CHECK_STR(json("\xe2\x82", 2), "\"\xef\xbf\xbd\xef\xbf\xbd\""); /* truncated */
    struct buf b = BUF_INIT;
    buf_json_cstr(&b, NULL);
    CHECK_STR(buf_cstr(&b), "null");
    buf_free(&b);
}

int main(void)
{
    test_append_and_printf();
    test_put_int();
    test_json_escaping();
    return check_done();
}
