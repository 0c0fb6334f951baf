/* Fuzz target: the SQL guard (sqlguard.c) on arbitrary statement text.
 *
 * It must never crash, whatever PostgreSQL's parser makes of the input, and
 * its verdicts must be consistent:
 *  - the request policy gives the same verdict from its cache as fresh;
 *  - what the request policy allows, the migration policy allows too (it is
 *    the stricter of the two for everything a request may send);
 *  - a leading comment changes no verdict. */
#include "sqlguard.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *sql)
{
    fprintf(stderr, "fuzz/sqlguard: %s: \"%s\"\n", what, sql);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *sql = malloc(size + 1), *commented = malloc(size + 16);
    if (!sql || !commented) {
        free(sql);
        free(commented);
        return 0;
    }
    memcpy(sql, data, size);
    sql[size] = '\0'; /* statements are C strings: text stops at a NUL */
    snprintf(commented, size + 16, "/* c */ %s", sql);

    struct sqlguard_result a, b, m, c;
    enum sqlguard_verdict first = sqlguard_check(sql, SQLGUARD_REQUEST, &a);
    enum sqlguard_verdict again = sqlguard_check(sql, SQLGUARD_REQUEST, &b);
    if (first != again || strcmp(a.reason, b.reason) != 0)
        fail("the cached verdict differs", sql);
    if (first == SQLGUARD_OK && sqlguard_check(sql, SQLGUARD_MIGRATION, &m) != SQLGUARD_OK)
        fail("a request statement the migration policy refuses", sql);
    if (sqlguard_check(commented, SQLGUARD_REQUEST, &c) != first)
        fail("a leading comment changes the verdict", sql);
    free(sql);
    free(commented);
    return 0;
}
