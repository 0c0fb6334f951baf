/* buf: a growable byte buffer with JSON string escaping.
 *
 * Used for response bodies, error bodies and log lines. Pure: no I/O, no
 * globals. Allocation failure is sticky: once an append fails, buf->failed is
 * set and every later append is a no-op, so callers check once at the end.
 *
 * Uses: nothing of the runtime. */
#ifndef RT_BUF_H
#define RT_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct buf {
    char *data; /* owned; NUL-terminated when len > 0 or after buf_cstr() */
    size_t len;
    size_t cap;
    bool failed;
};

#define BUF_INIT          \
    {                     \
        NULL, 0, 0, false \
    }

void buf_free(struct buf *b);
void buf_reset(struct buf *b);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
/* Appends v in decimal: what "%lld" prints, without the printf machinery. */
void buf_put_int(struct buf *b, long long v);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Length (1..4) of the valid UTF-8 sequence at s, of at most avail bytes;
 * 0 for an invalid one (overlong forms, surrogates and values above
 * U+10FFFF are invalid). avail must be at least 1. */
size_t buf_utf8_len(const char *s, size_t avail);

/* Appends s (len bytes) as a JSON string literal, quotes included. Control
 * characters are escaped; invalid UTF-8 bytes are replaced with U+FFFD so the
 * output is always valid JSON whatever the input. */
void buf_json_str(struct buf *b, const char *s, size_t len);
/* Same, for a NUL-terminated string; NULL appends `null`. */
void buf_json_cstr(struct buf *b, const char *s);

/* Returns the contents as a NUL-terminated string (borrowed, valid until the
 * next append or free). Returns "" for an empty buffer. */
const char *buf_cstr(struct buf *b);

/* Hands the storage to the caller (who frees it with free()) and resets b.
 * Returns NULL if an allocation failed earlier. */
char *buf_steal(struct buf *b, size_t *len);

#endif
