/* cmd_user: `runtime user create` (see cmd_user.h). */
#include "cmd_user.h"

#include "account.h"
#include "cli.h"
#include "config.h"
#include "crypto.h"

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

static int create(const struct config *cfg, struct account_spec *spec)
{
    char pw[CRYPTO_PASSWORD_MAX + 2];
    struct account_user user;
    struct rt_err err;

    /* The email first: a bad one is refused before a password is read. */
    if (account_check(cfg, spec->email, NULL, &err) < 0) {
        fprintf(stderr, "runtime user create: %s\n", err.msg);
        return 2;
    }
    if (read_password(pw, sizeof pw) < 0 || strlen(pw) > CRYPTO_PASSWORD_MAX) {
        fprintf(stderr, "runtime user create: no password on standard input or in "
                        "RUNTIME_USER_PASSWORD (at most 256 bytes)\n");
        return 2;
    }
    if (account_check(cfg, spec->email, pw, &err) < 0) {
        memset(pw, 0, sizeof pw);
        fprintf(stderr, "runtime user create: %s\n", err.msg);
        return 2;
    }
    spec->password = pw;
    int rc = account_create(cfg, spec, &user, &err);
    memset(pw, 0, sizeof pw);
    spec->password = NULL;
    if (rc < 0) {
        fprintf(stderr, "runtime user create: %s\n", err.msg);
        return 1;
    }
    printf("platform user %s %s (id %lld%s)\n", spec->email,
           user.created ? "created" : "updated", user.id,
           spec->superuser ? ", superuser" : "");
    return 0;
}

int cmd_user_main(int argc, char **argv)
{
    enum { O_HELP = 256, O_SUPERUSER, O_NAME, O_CONFIG };
    static const struct option longopts[] = {
        {"help", no_argument, NULL, O_HELP},
        {"superuser", no_argument, NULL, O_SUPERUSER},
        {"name", required_argument, NULL, O_NAME},
        {"config", required_argument, NULL, O_CONFIG},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = argc > 1 ? argv[1] : NULL, *config_file = NULL, *word;
    struct account_spec spec = {0};
    int ch;

    if (!cmd || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(cmd ? stdout : stderr);
        return cmd ? 0 : 2;
    }
    /* argv[1] is the command; its options follow. */
    cli_start();
    while ((ch = cli_next(argc - 1, argv + 1, "-:", longopts, &word)) != -1) {
        switch (ch) {
        case O_HELP: usage(stdout); return 0;
        case O_SUPERUSER: spec.superuser = true; break;
        case O_NAME: spec.name = optarg; break;
        case O_CONFIG: config_file = optarg; break;
        case 1:
            if (!spec.email) {
                spec.email = word;
                break;
            }
            return cli_bad("user", word, usage);
        default: return cli_bad("user", word ? word : "?", usage);
        }
    }
    if (strcmp(cmd, "create") != 0 || !spec.email) {
        usage(stderr);
        return 2;
    }
    struct config *cfg = config_load_cli(config_file);
    if (!cfg)
        return 1;
    int rc = create(cfg, &spec);
    config_free(cfg);
    return rc;
}
