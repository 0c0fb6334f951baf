/* auth_keys: platform API keys ("rtk_<prefix>_<secret>", see auth.h):
 * the check of a presented key against the live keys of the reloaded
 * state, and making and revoking keys. */
#include "auth.h"
#include "auth_int.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

long long auth_api_key(struct auth *a, const char *key)
{
    char hex[CRYPTO_SHA256_HEX_LEN + 1];
    long long id = 0;

    if (strncmp(key, "rtk_", 4) != 0 || strlen(key) > 200)
        return 0;
    if (crypto_sha256_hex(key, strlen(key), hex) < 0) {
        log_msg(LOG_LEVEL_ERROR, NULL, "auth: cannot check an API key: out of memory");
        return 0;
    }
    pthread_mutex_lock(&a->mu);
    const struct auth_state *s = a->st;
    const struct live_key *k =
        s->nkeys ? bsearch(hex, s->keys, s->nkeys, sizeof s->keys[0], auth_cmp_str) : NULL;
    if (k)
        id = k->id;
    pthread_mutex_unlock(&a->mu);
    return id;
}

long long auth_api_key_create(struct auth *a, const char *name, long long creator,
                              char key[96], struct db_error *err)
{
    char prefix[17], secret[65], hash[CRYPTO_SHA256_HEX_LEN + 1], by[24];
    PGresult *r = NULL;

    if (auth_random_hex(prefix, 8) < 0 || auth_random_hex(secret, 32) < 0)
        return auth_fail(err, "no randomness");
    snprintf(key, 96, "rtk_%s_%s", prefix, secret);
    crypto_wipe(secret, sizeof secret); /* the key holds it now, for the caller */
    if (crypto_sha256_hex(key, strlen(key), hash) < 0)
        return auth_fail(err, "out of memory");
    snprintf(by, sizeof by, "%lld", creator);
    const char *v[] = {name, prefix, hash, creator > 0 ? by : NULL};
    if (auth_run(a,
                 "INSERT INTO core.api_keys (name, prefix, key_hash, created_by) "
                 "VALUES ($1, $2, $3, $4) RETURNING id",
                 4, v, &r, err) < 0)
        return -1;
    long long id = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    auth_reload(a);
    return id;
}

int auth_api_key_revoke(struct auth *a, long long id, struct db_error *err)
{
    char ids[24];
    PGresult *r = NULL;
    snprintf(ids, sizeof ids, "%lld", id);
    const char *v[] = {ids};
    if (auth_run(a,
                 "UPDATE core.api_keys SET revoked_at = now() WHERE id = $1 "
                 "AND revoked_at IS NULL RETURNING id",
                 1, v, &r, err) < 0)
        return -1;
    int found = PQntuples(r) == 1;
    PQclear(r);
    if (found)
        auth_reload(a);
    return found;
}
