/* log: structured log lines (one JSON object per line on stderr).
 *
 * Every line carries a timestamp and level, and the request id when there is
 * one, so a 500 seen by a client can be found in the log. Thread-safe: a line
 * is formatted into a private buffer and written with one write(2).
 *
 * Uses: buf.c. */
#ifndef RT_LOG_H
#define RT_LOG_H

#include <stdbool.h>

enum log_level {
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_INFO,
    LOG_LEVEL_WARN,
    LOG_LEVEL_ERROR,
};

/* Parses "debug", "info", "warn" or "error"; returns -1 for anything else. */
int log_level_parse(const char *name);
void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);

/* Writes {"ts":..,"level":..,"request_id":..,"msg":..}. request_id may be NULL. */
void log_msg(enum log_level level, const char *request_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes msg plus one extra string field (e.g. a traceback). */
void log_msg_detail(enum log_level level, const char *request_id, const char *msg,
                    const char *key, const char *value);

struct log_access {
    const char *request_id;
    const char *method;
    const char *path;
    const char *tenant; /* NULL when no tenant was resolved */
    int status;
    double duration_ms;
    unsigned long long bytes;
};

void log_access(const struct log_access *a);

#endif
