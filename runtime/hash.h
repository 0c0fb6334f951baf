/* hash: the FNV-1a hash of strings, for the runtime's small hash tables.
 *
 * Uses: nothing. */
#ifndef RT_HASH_H
#define RT_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static inline uint64_t hash_str(const char *s)
{
    return hash_bytes(s, strlen(s));
}

#endif
