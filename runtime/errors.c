/* errors: JSON error bodies (see errors.h). */
#include "errors.h"

#include "buf.h"

struct status_code {
    int status;
    const char *code;
};

static const struct status_code codes[] = {
    {400, "bad_request"},
    {401, "unauthenticated"},
    {403, "forbidden"},
    {404, "not_found"},
    {405, "method_not_allowed"},
    {408, "request_timeout"},
    {409, "conflict"},
    {413, "payload_too_large"},
    {414, "uri_too_long"},
    {415, "unsupported_media_type"},
    {422, "validation_failed"},
    {429, "rate_limited"},
    {431, "header_fields_too_large"},
    {500, "internal_error"},
    {501, "not_implemented"},
    {502, "bad_gateway"},
    {503, "unavailable"},
    {504, "timeout"},
};

const char *errors_code(int status)
{
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (codes[i].status == status)
            return codes[i].code;
    return status >= 500 ? "internal_error" : "bad_request";
}

const char *errors_server_message(int status)
{
    switch (status) {
    case 503: return "the service is temporarily unavailable; retry later";
    case 504: return "the request timed out";
    default: return "internal error; quote the request_id when reporting it";
    }
}

char *errors_body(int status, const char *code, const char *message, const char *request_id,
                  size_t *len)
{
    struct buf b = BUF_INIT;

    if (!code)
        code = errors_code(status);
    if (status >= 500)
        message = errors_server_message(status);
    else if (!message)
        message = code;
    buf_puts(&b, "{\"error\":");
    buf_json_cstr(&b, code);
    buf_puts(&b, ",\"message\":");
    buf_json_cstr(&b, message);
    if (request_id) {
        buf_puts(&b, ",\"request_id\":");
        buf_json_cstr(&b, request_id);
    }
    buf_putc(&b, '}');
    return buf_steal(&b, len);
}
