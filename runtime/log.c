/* log: structured JSON log lines on stderr (see log.h). */
#include "log.h"

#include "buf.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic int current_level = LOG_LEVEL_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

void log_set_level(enum log_level level)
{
    atomic_store(&current_level, (int)level);
}

bool log_enabled(enum log_level level)
{
    return (int)level >= atomic_load(&current_level);
}

static void line_begin(struct buf *b, enum log_level level, const char *rid)
{
    struct timespec ts;
    struct tm tm;
    char when[32];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    buf_printf(b, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\"", when, ts.tv_nsec / 1000000,
               level_names[level]);
    if (rid) {
        buf_puts(b, ",\"request_id\":");
        buf_json_cstr(b, rid);
    }
}

static void line_end(struct buf *b)
{
    buf_puts(b, "}\n");
    if (!b->failed) {
        /* One write per line keeps lines whole when threads log at once. */
        ssize_t off = 0, n;
        while ((size_t)off < b->len &&
               (n = write(STDERR_FILENO, b->data + off, b->len - (size_t)off)) > 0)
            off += n;
    }
    buf_free(b);
}

void log_msg(enum log_level level, const char *request_id, const char *fmt, ...)
{
    struct buf b = BUF_INIT, m = BUF_INIT;
    va_list ap;

    if (!log_enabled(level))
        return;
    va_start(ap, fmt);
    buf_vprintf(&m, fmt, ap);
    va_end(ap);
    line_begin(&b, level, request_id);
    buf_puts(&b, ",\"msg\":");
    buf_json_str(&b, buf_cstr(&m), m.failed ? 0 : m.len);
    buf_free(&m);
    line_end(&b);
}

void log_msg_detail(enum log_level level, const char *request_id, const char *msg,
                    const char *key, const char *value)
{
    struct buf b = BUF_INIT;

    if (!log_enabled(level))
        return;
    line_begin(&b, level, request_id);
    buf_puts(&b, ",\"msg\":");
    buf_json_cstr(&b, msg);
    buf_putc(&b, ',');
    buf_json_cstr(&b, key);
    buf_putc(&b, ':');
    buf_json_cstr(&b, value);
    line_end(&b);
}

void log_access(const struct log_access *a)
{
    struct buf b = BUF_INIT;

    if (!log_enabled(LOG_LEVEL_INFO))
        return;
    line_begin(&b, LOG_LEVEL_INFO, a->request_id);
    buf_puts(&b, ",\"msg\":\"access\",\"method\":");
    buf_json_cstr(&b, a->method);
    buf_puts(&b, ",\"path\":");
    buf_json_cstr(&b, a->path);
    if (a->tenant) {
        buf_puts(&b, ",\"tenant\":");
        buf_json_cstr(&b, a->tenant);
    }
    buf_printf(&b, ",\"status\":%d,\"duration_ms\":%.3f,\"bytes\":%llu", a->status,
               a->duration_ms, a->bytes);
    line_end(&b);
}
