/* check: a minimal unit-test harness for the C tests under ctest.
 * CHECK records a failure with file:line and goes on; check_done prints
 * "N passed, N failed" and gives the exit status. */
#ifndef RT_TEST_CHECK_H
#define RT_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond) {                                                                  \
            check_passed++;                                                          \
        } else {                                                                     \
            check_failed++;                                                          \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

#define CHECK_STR(a, b)                                                                 \
    do {                                                                                \
        const char *check_a_ = (a), *check_b_ = (b);                                    \
        if (check_a_ && check_b_ && strcmp(check_a_, check_b_) == 0) {                  \
            check_passed++;                                                             \
        } else {                                                                        \
            check_failed++;                                                             \
            fprintf(stderr, "%s:%d: expected \"%s\", got \"%s\"\n", __FILE__, __LINE__, \
                    check_b_ ? check_b_ : "(null)", check_a_ ? check_a_ : "(null)");    \
        }                                                                               \
    } while (0)

static int check_done(void)
{
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
