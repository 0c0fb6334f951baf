/* Fuzz target: the step file name parser (vm_step_name_parse, steps.c), which
 * turns "NNNN_name.lua" under migrations/ and seeds/ into a version and a
 * name.
 *
 * An accepted name has four or more digits, '_', then [a-z0-9_]+ and
 * ".lua"; its version is below a million, and printing it back the way
 * `runtime migrate new` names files ("%04d_%s.lua") parses to the same
 * version and name. The input's first line is also tried as the NAME of
 * `runtime migrate new`: a name that command accepts, with any version it
 * can give, must parse back. */
#include "steps.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *input)
{
    fprintf(stderr, "fuzz/step_name: %s: \"%s\"\n", what, input);
    abort();
}

static int name_ok(const char *name)
{
    return *name && strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 300)
        return 0;
    char *in = malloc(size + 1), *name = NULL, *name2 = NULL, file[400];
    int version, version2;
    if (!in)
        return 0;
    memcpy(in, data, size);
    in[size] = '\0'; /* file names end at a NUL, like d_name */

    if (vm_step_name_parse(in, &version, &name) == 0) {
        size_t n = strlen(in), digits = strspn(in, "0123456789");
        if (!name || !name_ok(name) || version < 0 || version > 999999 || digits < 4 ||
            in[digits] != '_' || strcmp(in + n - 4, ".lua") != 0 ||
            strlen(name) != n - digits - 5 || memcmp(in + digits + 1, name, strlen(name)))
            fail("accepted a malformed name", in);
        snprintf(file, sizeof file, "%04d_%s.lua", version, name);
        if (vm_step_name_parse(file, &version2, &name2) < 0 || version2 != version ||
            strcmp(name2, name) != 0)
            fail("a parsed name printed back does not parse the same", in);
        free(name2);
        name2 = NULL;
    }
    free(name);
    name = NULL;

    /* As the NAME of `runtime migrate new`, with the first and last
     * versions it could give. */
    in[strcspn(in, "\n")] = '\0';
    if (name_ok(in) && strlen(in) < 200) {
        static const int versions[] = {1, 42, 9999, 10000, 999999};
        for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
            snprintf(file, sizeof file, "%04d_%s.lua", versions[i], in);
            if (vm_step_name_parse(file, &version, &name) < 0 || version != versions[i] ||
                strcmp(name, in) != 0)
                fail("a file `runtime migrate new` would write does not parse", file);
            free(name);
            name = NULL;
        }
    }
    free(in);
    return 0;
}
