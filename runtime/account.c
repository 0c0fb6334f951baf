/* account: `runtime user create` (see account.h). */
#include "account.h"

#include "config.h"
#include "crypto.h"
#include "db.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: runtime user create EMAIL [--superuser] [--name NAME] [--config PATH]\n"
            "\n"
            "Creates a platform (core) user. The password is read from the first\n"
            "line of standard input, or from $RUNTIME_USER_PASSWORD when set; it must\n"
            "have auth.password_min_length characters or more. An existing user\n"
            "with that email gets the new password (and --superuser, if given).\n");
}

/* The password: $RUNTIME_USER_PASSWORD, else one line of stdin. */
static int read_password(char *out, size_t cap)
{
    const char *env = getenv("RUNTIME_USER_PASSWORD");
    if (env) {
        if (strlen(env) >= cap)
            return -1;
        snprintf(out, cap, "%s", env);
        return 0;
    }
    if (!fgets(out, (int)cap, stdin))
        return -1;
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

static int create(const struct config *cfg, const char *email, const char *name,
                  bool superuser)
{
    char pw[CRYPTO_PASSWORD_MAX + 2], hash[CRYPTO_HASH_MAX], why[400];
    struct crypto_argon2 p = {(uint32_t)cfg->auth_argon2_iterations,
                              (uint32_t)cfg->auth_argon2_memory_kib,
                              (uint32_t)cfg->auth_argon2_parallelism};

    if (!strchr(email, '@') || strlen(email) > 254) {
        fprintf(stderr, "runtime user create: '%s' is not an email address\n", email);
        return 2;
    }
    if (read_password(pw, sizeof pw) < 0 || strlen(pw) > CRYPTO_PASSWORD_MAX) {
        fprintf(stderr, "runtime user create: no password on standard input or in "
                        "RUNTIME_USER_PASSWORD (at most 256 bytes)\n");
        return 2;
    }
    if (strlen(pw) < (size_t)cfg->auth_password_min_length) {
        fprintf(stderr,
                "runtime user create: the password must be at least %d characters\n",
                cfg->auth_password_min_length);
        return 2;
    }
    int rc = crypto_password_hash(pw, strlen(pw), &p, hash, sizeof hash);
    memset(pw, 0, sizeof pw);
    if (rc < 0) {
        fprintf(stderr, "runtime user create: hashing failed\n");
        return 1;
    }
    const char *url =
        cfg->database_owner_url[0] ? cfg->database_owner_url : cfg->database_url;
    PGconn *c = db_connect(url, NULL, "runtime-user", cfg->database_connect_timeout, why,
                           sizeof why);
    if (!c) {
        fprintf(stderr, "runtime user create: cannot connect: %s\n", why);
        return 1;
    }
    const char *v[] = {email, hash, name ? name : "", superuser ? "t" : "f"};
    PGresult *r = PQexecParams(
        c,
        "INSERT INTO core.users (email, password_hash, full_name, is_superuser) "
        "VALUES (lower($1), $2, $3, $4) ON CONFLICT (email) WHERE deleted_at IS NULL "
        "DO UPDATE SET password_hash = EXCLUDED.password_hash, "
        "is_superuser = core.users.is_superuser OR EXCLUDED.is_superuser, "
        "failed_logins = 0, locked_until = NULL, updated_at = now() "
        "RETURNING id, (xmax = 0) AS created",
        4, NULL, v, NULL, NULL, 0);
    rc = 1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        printf("platform user %s %s (id %s%s)\n", email,
               PQgetvalue(r, 0, 1)[0] == 't' ? "created" : "updated", PQgetvalue(r, 0, 0),
               superuser ? ", superuser" : "");
        rc = 0;
    } else {
        fprintf(stderr, "runtime user create: %s", PQerrorMessage(c));
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}

int account_main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL, *email = NULL, *name = NULL;
    const char *config_file = NULL;
    bool superuser = false;

    if (!cmd || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(cmd ? stdout : stderr);
        return cmd ? 0 : 2;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--superuser") == 0) {
            superuser = true;
        } else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc) {
            name = argv[++i];
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_file = argv[++i];
        } else if (argv[i][0] != '-' && !email) {
            email = argv[i];
        } else {
            fprintf(stderr, "runtime user: unknown or incomplete option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (strcmp(cmd, "create") != 0 || !email) {
        usage(stderr);
        return 2;
    }
    struct config *cfg = config_load_cli(config_file);
    if (!cfg)
        return 1;
    int rc = create(cfg, email, name, superuser);
    config_free(cfg);
    return rc;
}
