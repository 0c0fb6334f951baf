/* err: the one error value of the admin paths (see err.h). */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>

int rt_err_set(struct rt_err *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->sqlstate[0] = '\0';
    return -1;
}

int rt_err_prefix(struct rt_err *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    char head[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    char whole[sizeof head + 2 + sizeof err->msg];
    snprintf(whole, sizeof whole, "%s: %s", head, err->msg);
    memcpy(err->msg, whole, sizeof err->msg - 1);
    err->msg[sizeof err->msg - 1] = '\0';
    return -1;
}
