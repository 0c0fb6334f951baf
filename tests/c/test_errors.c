/* Unit tests for errors.c: the JSON error shape. */
#include "errors.h"

#include "check.h"

#include <stdlib.h>

static void expect_body(int status, const char *code, const char *message, const char *rid,
                        const char *want)
{
    size_t len;
    char *body = errors_body(status, code, message, rid, &len);
    CHECK_STR(body, want);
    CHECK(body && strlen(body) == len);
    free(body);
}

int main(void)
{
    CHECK_STR(errors_code(404), "not_found");
    CHECK_STR(errors_code(422), "validation_failed");
    CHECK_STR(errors_code(418), "bad_request");
    CHECK_STR(errors_code(599), "internal_error");

    expect_body(404, NULL, "no route", "r1",
                "{\"error\":\"not_found\",\"message\":\"no route\",\"request_id\":\"r1\"}");
    expect_body(400, "invalid_json", "bad \"quote\"\n", NULL,
                "{\"error\":\"invalid_json\",\"message\":\"bad \\\"quote\\\"\\n\"}");
    expect_body(
        415, NULL, NULL, NULL,
        "{\"error\":\"unsupported_media_type\",\"message\":\"unsupported_media_type\"}");
    /* A 5xx never carries the message it was given: no SQL, no paths. */
    size_t len;
    char *body = errors_body(500, NULL, "relation \"users\" does not exist at /srv/x.lua:3",
                             "r2", &len);
    CHECK(body && strstr(body, "users") == NULL && strstr(body, ".lua") == NULL);
    CHECK(body && strstr(body, "\"error\":\"internal_error\"") != NULL);
    CHECK(body && strstr(body, "\"request_id\":\"r2\"") != NULL);
    free(body);
    body = errors_body(503, NULL, "could not connect to server", NULL, &len);
    CHECK(body && strstr(body, "connect") == NULL);
    CHECK(body && strstr(body, "\"error\":\"unavailable\"") != NULL);
    free(body);
    return check_done();
}
