/* account: platform (core) users made by the operator.
 *
 * The first platform superuser cannot come from the HTTP API (nobody could
 * authorise it), so it comes from `runtime user create` (cmd_user.c), which
 * reads the password (never from an argument, never a default) and calls
 * this engine. It hashes the password and writes core.users; it prints
 * nothing. Uses: crypto.c (argon2id), db.c (the connection), sql.c, err.c,
 * config.c. */
#ifndef RT_ACCOUNT_H
#define RT_ACCOUNT_H

#include <stdbool.h>

#include "config.h"
#include "err.h"

#define ACCOUNT_EMAIL_MAX 254

struct account_spec {
    const char *email;    /* kept lower-case in the table */
    const char *name;     /* NULL: "" */
    const char *password; /* plain text; borrowed, never stored */
    bool superuser;       /* grants it; an existing superuser keeps it either way */
};

/* The user account_create made or updated. */
struct account_user {
    long long id;
    bool created; /* false: an existing user with that email was updated */
};

/* Checks an email (has '@', at most ACCOUNT_EMAIL_MAX bytes) and a password
 * (auth.password_min_length up to CRYPTO_PASSWORD_MAX bytes) before any work.
 * password may be NULL to check the email alone. Returns 0, or -1 with err
 * saying what is wrong. */
int account_check(const struct config *cfg, const char *email, const char *password,
                  struct rt_err *err);

/* Creates a platform user, or gives an existing one (same email, not
 * deleted) the new password, clears its lockout and adds superuser when
 * asked. Returns 0 with *out filled, or -1 with err. */
int account_create(const struct config *cfg, const struct account_spec *spec,
                   struct account_user *out, struct rt_err *err);

#endif
