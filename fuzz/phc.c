/* Fuzz target: the PHC string check of crypto_password_verify (crypto.c),
 * which reads a stored argon2id hash's parameters and refuses any above the
 * configured ceiling before libargon2 does any work.
 *
 * The input is "<encoded hash>\n<password>". Whatever the string, verify
 * returns -1, 0 or 1; and when it returns 0 or 1 (it ran argon2), the
 * string must be a well-formed "$argon2id$v=19$m=M,t=T,p=P$salt$hash" read
 * strictly (digits only, no sign or space) with M, T and P within the
 * ceiling: a stored hash must never make a login cost more than the
 * ceiling allows. The ceiling is small so each run stays fast. */
#include "crypto.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct crypto_argon2 ceiling = {
    .t_cost = 2, .m_cost_kib = 64, .parallelism = 2};

/* Reads "name=<digits>" followed by `end` at *p: digits only (leading zeros
 * allowed, as libargon2 allows them); a value too large to hold saturates. */
static int strict_param(const char **p, const char *name, char end, unsigned long *out)
{
    size_t nl = strlen(name), i = 0;
    unsigned long v = 0;
    if (strncmp(*p, name, nl) != 0)
        return -1;
    const char *s = *p + nl;
    while (s[i] >= '0' && s[i] <= '9') {
        v = v > 100000000 ? v : v * 10 + (unsigned long)(s[i] - '0');
        i++;
    }
    if (i == 0 || s[i] != end)
        return -1;
    *p = s + i + 1;
    *out = v;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1024)
        return 0;
    char *in = malloc(size + 1);
    if (!in)
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';
    char *pw = strchr(in, '\n');
    if (pw)
        *pw++ = '\0';
    else
        pw = in + size;

    int rc = crypto_password_verify(in, pw, strlen(pw), &ceiling);
    if (rc < -1 || rc > 1)
        abort();
    if (rc >= 0) {
        const char *p = in;
        unsigned long m, t, par;
        if (strncmp(p, "$argon2id$v=19$", 15) != 0) {
            fprintf(stderr, "fuzz/phc: verified a hash without the argon2id prefix: %s\n",
                    in);
            abort();
        }
        p += 15;
        if (strict_param(&p, "m=", ',', &m) < 0 || strict_param(&p, "t=", ',', &t) < 0 ||
            strict_param(&p, "p=", '$', &par) < 0) {
            fprintf(stderr, "fuzz/phc: verified a hash with malformed parameters: %s\n",
                    in);
            abort();
        }
        if (m > ceiling.m_cost_kib || t > ceiling.t_cost || par > ceiling.parallelism) {
            fprintf(stderr, "fuzz/phc: verified a hash above the ceiling: %s\n", in);
            abort();
        }
    }
    free(in);
    return 0;
}
