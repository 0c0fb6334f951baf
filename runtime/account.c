/* account: platform users made by the operator (see account.h). */
#include "account.h"

#include "crypto.h"
#include "db.h"
#include "sql.h"

#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

int account_check(const struct config *cfg, const char *email, const char *password,
                  struct rt_err *err)
{
    if (!strchr(email, '@') || strlen(email) > ACCOUNT_EMAIL_MAX)
        return rt_err_set(err, "'%.300s' is not an email address", email);
    if (password && strlen(password) > CRYPTO_PASSWORD_MAX)
        return rt_err_set(err, "the password is longer than %d bytes", CRYPTO_PASSWORD_MAX);
    if (password && strlen(password) < (size_t)cfg->auth_password_min_length)
        return rt_err_set(err, "the password must be at least %d characters",
                          cfg->auth_password_min_length);
    return 0;
}

int account_create(const struct config *cfg, const struct account_spec *spec,
                   struct account_user *out, struct rt_err *err)
{
    char hash[CRYPTO_HASH_MAX];
    struct rt_err why;
    struct crypto_argon2 p = {(uint32_t)cfg->auth_argon2_iterations,
                              (uint32_t)cfg->auth_argon2_memory_kib,
                              (uint32_t)cfg->auth_argon2_parallelism};

    memset(out, 0, sizeof *out);
    if (account_check(cfg, spec->email, spec->password, err) < 0)
        return -1;
    if (crypto_password_hash(spec->password, strlen(spec->password), &p, hash,
                             sizeof hash) < 0)
        return rt_err_set(err, "hashing failed");
    const char *url =
        cfg->database_owner_url[0] ? cfg->database_owner_url : cfg->database_url;
    PGconn *c = db_connect(url, NULL, "runtime-user", cfg->database_connect_timeout, &why);
    if (!c)
        return rt_err_set(err, "cannot connect: %s", why.msg);
    const char *v[] = {spec->email, hash, spec->name ? spec->name : "",
                       spec->superuser ? "t" : "f"};
    PGresult *r = sql_query(
        c,
        "INSERT INTO core.users (email, password_hash, full_name, is_superuser) "
        "VALUES (lower($1), $2, $3, $4) ON CONFLICT (email) WHERE deleted_at IS NULL "
        "DO UPDATE SET password_hash = EXCLUDED.password_hash, "
        "is_superuser = core.users.is_superuser OR EXCLUDED.is_superuser, "
        "failed_logins = 0, locked_until = NULL, updated_at = now() "
        "RETURNING id, (xmax = 0) AS created",
        4, v, err);
    int rc = -1;
    if (r) {
        out->id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        out->created = PQgetvalue(r, 0, 1)[0] == 't';
        rc = 0;
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}
