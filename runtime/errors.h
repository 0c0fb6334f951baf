/* errors: the one JSON error shape of the HTTP API.
 *
 *   {"error":"<code>","message":"<text>","request_id":"<id>"}
 *
 * 4xx bodies say what to fix. 5xx bodies never carry internal detail: for a
 * status >= 500 the message given is ignored and a fixed one is used, so a
 * caller cannot leak SQL, paths or tracebacks by accident (those go to the
 * log with the request id). Pure: no I/O.
 *
 * Uses: buf.c. */
#ifndef RT_ERRORS_H
#define RT_ERRORS_H

#include <stddef.h>

/* The default error code for an HTTP status ("not_found" for 404, ...).
 * Never NULL. */
const char *errors_code(int status);

/* The fixed client-facing message for a 5xx status. Never NULL. */
const char *errors_server_message(int status);

/* Builds the error body. code may be NULL (the default for status is used);
 * message may be NULL for 4xx (the code is used). Returns a malloc'd string
 * the caller frees, and its length in *len, or NULL when out of memory. */
char *errors_body(int status, const char *code, const char *message, const char *request_id,
                  size_t *len);

#endif
