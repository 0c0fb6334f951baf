/* Unit tests for config.c: defaults, file values, environment overrides,
 * errors naming the key, and every key documented in README.md. */
#include "config.h"

#include "check.h"

#include <stdlib.h>
#include <unistd.h>

static char path[] = "/tmp/rt_test_config_XXXXXX";

static void write_config(const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static struct config *load(const char *text, struct rt_err *err)
{
    write_config(text);
    return config_load(path, err);
}

static void test_defaults_and_file(void)
{
    struct rt_err err;
    struct config *c = load("return { http = { port = 9000, threads = 3 }, "
                            "log = { access = false } }",
                            &err);
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(c->http_port == 9000);
    CHECK(c->http_threads == 3);
    CHECK(c->log_access == false);
    CHECK_STR(c->http_host, "127.0.0.1");
    CHECK(c->http_max_body == 1048576);
    CHECK_STR(c->base_dir, "/tmp");
    char *p = config_path(c, "scripts");
    CHECK_STR(p, "/tmp/scripts");
    free(p);
    config_free(c);
}

static void test_env_overrides(void)
{
    struct rt_err err;
    setenv("RUNTIME_HTTP_PORT", "9100", 1);
    setenv("RUNTIME_DATABASE_URL", "postgresql://x@127.0.0.1/db", 1);
    setenv("RUNTIME_LOG_ACCESS", "off", 1);
    struct config *c = load("return { http = { port = 9000 } }", &err);
    CHECK(c && c->http_port == 9100);
    CHECK(c && strcmp(c->database_url, "postgresql://x@127.0.0.1/db") == 0);
    CHECK(c && !c->log_access);
    config_free(c);
    setenv("RUNTIME_HTTP_PORT", "nine", 1);
    c = load("return {}", &err);
    CHECK(c == NULL && strstr(err.msg, "RUNTIME_HTTP_PORT") && strstr(err.msg, "integer"));
    config_free(c);
    unsetenv("RUNTIME_HTTP_PORT");
    unsetenv("RUNTIME_DATABASE_URL");
    unsetenv("RUNTIME_LOG_ACCESS");
}

static void test_errors(void)
{
    struct rt_err err;
    CHECK(load("return { http = { prot = 1 } }", &err) == NULL);
    CHECK(strstr(err.msg, "unknown key 'http.prot'") != NULL);
    CHECK(load("return { htp = {} }", &err) == NULL);
    CHECK(strstr(err.msg, "unknown section 'htp'") != NULL);
    CHECK(load("return { http = { port = \"80\" } }", &err) == NULL);
    CHECK(strstr(err.msg, "http.port must be an integer") != NULL);
    CHECK(load("return { http = { port = 70000 } }", &err) == NULL);
    CHECK(strstr(err.msg, "between") != NULL);
    CHECK(load("return 42", &err) == NULL);
    CHECK(strstr(err.msg, "must return a table") != NULL);
    CHECK(load("return {", &err) == NULL);
    CHECK(strstr(err.msg, path) != NULL);           /* syntax errors name the file */
    CHECK(load("return os.exit(1)", &err) == NULL); /* no libraries */
    CHECK(config_load("/nonexistent/config.lua", &err) == NULL);
    CHECK(strstr(err.msg, "cannot read") != NULL);
}

static void test_servers(void)
{
    struct rt_err err;
    setenv("RUNTIME_DATABASE_URL", "postgresql://app@main/db", 1);
    struct config *c = load("return { servers = { eu = { url = 'postgresql://app@eu/db', "
                            "owner_url = 'postgresql://owner@eu/db' } } }",
                            &err);
    unsetenv("RUNTIME_DATABASE_URL");
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(c->nservers == 2);
    CHECK_STR(c->servers[0].name, "main");
    CHECK_STR(config_server(c, "main")->url, "postgresql://app@main/db");
    CHECK_STR(config_server(c, "eu")->owner_url, "postgresql://owner@eu/db");
    CHECK(config_server(c, "us") == NULL);
    config_free(c);
    CHECK(load("return { servers = { main = { url = 'a', owner_url = 'b' } } }", &err) ==
          NULL);
    CHECK(strstr(err.msg, "'main' is database.url") != NULL);
    CHECK(load("return { servers = { eu = { url = 'a' } } }", &err) == NULL);
    CHECK(strstr(err.msg, "needs url and owner_url") != NULL);
    CHECK(load("return { servers = { EU = { url = 'a', owner_url = 'b' } } }", &err) ==
          NULL);
    CHECK(load("return { servers = { eu = { url = 'a', owner_url = 'b', pool = 3 } } }",
               &err) == NULL);
}

/* A list setting is a Lua list or comma-separated text; both read the same. */
static void test_lists(void)
{
    struct rt_err err;
    struct config *c =
        load("return { auth = { jwt_public_keys = { 'a=a.pem', 'b=/k/b.pem' }, "
             "jwt_previous_secrets = 'old=x' } }",
             &err);
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK_STR(c->auth_jwt_public_keys, "a=a.pem,b=/k/b.pem");
    CHECK_STR(c->auth_jwt_previous_secrets, "old=x");
    CHECK_STR(c->auth_jwt_algorithm, "HS256");
    config_free(c);
    c = load("return { auth = { jwt_public_keys = {} } }", &err);
    CHECK(c && strcmp(c->auth_jwt_public_keys, "") == 0);
    config_free(c);
    setenv("RUNTIME_AUTH_JWT_PUBLIC_KEYS", "k=/x.pem", 1);
    c = load("return { auth = { jwt_public_keys = { 'a=a.pem' } } }", &err);
    unsetenv("RUNTIME_AUTH_JWT_PUBLIC_KEYS");
    CHECK(c && strcmp(c->auth_jwt_public_keys, "k=/x.pem") == 0);
    config_free(c);
    CHECK(load("return { auth = { jwt_public_keys = { 'a=1,b=2' } } }", &err) == NULL);
    CHECK(strstr(err.msg, "without commas") != NULL);
    CHECK(load("return { auth = { jwt_public_keys = { 'a', 3 } } }", &err) == NULL);
    CHECK(load("return { auth = { jwt_public_keys = { x = 'a' } } }", &err) == NULL);
    CHECK(load("return { auth = { jwt_public_keys = 7 } }", &err) == NULL);
    CHECK(strstr(err.msg, "auth.jwt_public_keys must be a list") != NULL);
}

static void test_keys_documented(void)
{
    FILE *f = fopen("README.md", "r");
    static char text[1 << 18];
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f)
        fclose(f);
    text[n] = '\0';
    CHECK(n > 0);
    for (size_t i = 0; i < config_key_count(); i++) {
        const struct config_key_info *k = config_key(i);
        char want[128];
        snprintf(want, sizeof want, "`%s`", k->name);
        if (!strstr(text, want))
            fprintf(stderr, "README.md does not document %s\n", k->name);
        CHECK(strstr(text, want) != NULL);
        snprintf(want, sizeof want, "`%s`", k->env);
        CHECK(strstr(text, want) != NULL);
    }
}

int main(void)
{
    int fd = mkstemp(path);
    if (fd < 0)
        return 1;
    close(fd);
    test_defaults_and_file();
    test_env_overrides();
    test_errors();
    test_servers();
    test_lists();
    test_keys_documented();
    unlink(path);
    return check_done();
}
