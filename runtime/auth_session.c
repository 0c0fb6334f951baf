/* auth_session: sessions (see auth.h): access tokens, logins (a refresh
 * token family), refresh with rotation and reuse detection, logout and
 * "log out everywhere else". */
#include "auth.h"
#include "auth_int.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void auth_session_clear(struct auth_session *s)
{
    /* Both tokens are secrets: wiped, not just dropped. */
    if (s->access)
        crypto_wipe(s->access, strlen(s->access));
    free(s->access);
    crypto_wipe(s, sizeof *s);
}

int auth_issue_access(struct auth *a, const char *scope, long long tid, const char *sub,
                      const char *sid, struct auth_session *out, struct db_error *err)
{
    const struct config *cfg = a->cfg;
    struct crypto_jwt_claims *c = &out->claims;

    memset(out, 0, sizeof *out);
    if (!auth_keys_configured(a)) {
        return auth_fail(err, "auth.jwt_secret is not configured (32 bytes or more)");
    }
    if (auth_random_hex(c->jti, 16) < 0)
        return auth_fail(err, "no randomness");
    snprintf(c->iss, sizeof c->iss, "%s", cfg->auth_issuer);
    snprintf(c->aud, sizeof c->aud, "%s", cfg->auth_audience);
    snprintf(c->sub, sizeof c->sub, "%s", sub);
    snprintf(c->scope, sizeof c->scope, "%s", scope);
    snprintf(c->sid, sizeof c->sid, "%s", sid ? sid : "");
    c->tid = strcmp(scope, "tenant") == 0 ? tid : 0;
    c->iat = (long long)time(NULL);
    c->exp = c->iat + cfg->auth_token_ttl_s;
    out->access = crypto_jwt_sign(a->keys, c);
    if (!out->access) {
        return auth_fail(err, "signing failed");
    }
    return 0;
}

/* Issues an access token and a refresh token of family (stored hashed, in
 * the transaction of *c). */
static int issue_pair(struct auth *a, struct db_conn **c, const char *scope, long long tid,
                      const char *sub, const char *family, struct auth_session *out,
                      struct db_error *err)
{
    char hash[CRYPTO_SHA256_HEX_LEN + 1], tids[24], ttl[24];

    if (auth_issue_access(a, scope, tid, sub, family, out, err) < 0)
        return -1;
    memcpy(out->refresh, "rtr_", 4);
    if (auth_random_hex(out->refresh + 4, 32) < 0) {
        auth_session_clear(out);
        return auth_fail(err, "no randomness");
    }
    if (crypto_sha256_hex(out->refresh, strlen(out->refresh), hash) < 0) {
        auth_session_clear(out);
        return auth_fail(err, "out of memory");
    }
    snprintf(tids, sizeof tids, "%lld", out->claims.tid);
    snprintf(ttl, sizeof ttl, "%d", a->cfg->auth_refresh_ttl_s);
    const char *v[] = {hash, family, scope, tids, sub, out->claims.jti, ttl};
    if (auth_tx_run(
            a, c,
            "INSERT INTO core.refresh_tokens (token_hash, family, scope, tenant_id, "
            "user_id, access_jti, expires_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))",
            7, v, NULL, err) < 0) {
        auth_session_clear(out);
        return -1;
    }
    return 0;
}

int auth_session_start(struct auth *a, const char *scope, long long tid, const char *sub,
                       struct auth_session *out, struct db_error *err)
{
    char family[33];

    if (auth_random_hex(family, 16) < 0)
        return auth_fail(err, "no randomness");
    struct db_conn *c = NULL;
    int rc = issue_pair(a, &c, scope, tid, sub, family, out, err);
    if ((rc = auth_tx_end(a, c, rc, err)) < 0)
        auth_session_clear(out);
    return rc;
}

/* Revokes a family of user (tid, sub): its refresh tokens, and the access
 * tokens issued from it that may still be alive. */
static int revoke_family(struct auth *a, const char *family, long long tid, const char *sub,
                         struct db_error *err)
{
    struct db_conn *c = NULL;
    PGresult *r = NULL;
    char ttl[24];

    snprintf(ttl, sizeof ttl, "%d", a->cfg->auth_token_ttl_s + a->cfg->auth_leeway_s);
    const char *v[] = {family, ttl};
    int rc = auth_lock_user(a, &c, tid, sub, err);
    if (rc == 0)
        rc = auth_tx_run(
            a, &c,
            "WITH f AS (UPDATE core.refresh_tokens SET revoked_at = coalesce(revoked_at, "
            "now()) WHERE family = $1 RETURNING access_jti, created_at) "
            "INSERT INTO core.revocations (kind, jti, expires_at) "
            "SELECT 'jti', access_jti, created_at + make_interval(secs => $2) FROM f "
            "WHERE created_at + make_interval(secs => $2) > now() RETURNING jti",
            2, v, &r, err);
    if (auth_tx_end(a, c, rc, err) < 0) {
        PQclear(r);
        return -1;
    }
    for (int i = 0; i < PQntuples(r); i++)
        auth_local_add(a, PQgetvalue(r, i, 0), 0, NULL);
    PQclear(r);
    return 0;
}

int auth_session_refresh(struct auth *a, const char *refresh, long long only_tid,
                         struct auth_session *out, struct db_error *err)
{
    char hash[CRYPTO_SHA256_HEX_LEN + 1], family[64], scope[16], sub[128];
    struct db_conn *c = NULL;
    PGresult *r = NULL;

    memset(out, 0, sizeof *out);
    if (strncmp(refresh, "rtr_", 4) != 0 || strlen(refresh) != AUTH_REFRESH_LEN - 1)
        return 0;
    if (crypto_sha256_hex(refresh, strlen(refresh), hash) < 0)
        return auth_fail(err, "out of memory");
    const char *v[] = {hash};
    /* Whose it is (these columns never change): the lock to take. */
    if (auth_run(a,
                 "SELECT tenant_id::text, user_id, family FROM core.refresh_tokens "
                 "WHERE token_hash = $1",
                 1, v, &r, err) < 0)
        return -1;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return 0;
    }
    long long tid = atoll(PQgetvalue(r, 0, 0));
    snprintf(sub, sizeof sub, "%s", PQgetvalue(r, 0, 1));
    snprintf(family, sizeof family, "%s", PQgetvalue(r, 0, 2));
    PQclear(r);
    r = NULL;
    if (only_tid >= 0 && tid != only_tid)
        return 0;

    bool fresh = false, reused = false;
    int rc = auth_lock_user(a, &c, tid, sub, err);
    /* Only an active tenant's sessions, and only an active platform user's,
     * go on; the token is not spent otherwise (a suspended tenant's users
     * refresh again once it is active). A tenant user's own status lives in
     * the tenant's storage: the refresh route checks it. */
    if (rc == 0)
        rc = auth_tx_run(
            a, &c,
            "UPDATE core.refresh_tokens SET used_at = now() WHERE token_hash = $1 "
            "AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now() "
            "AND CASE scope WHEN 'tenant' THEN EXISTS (SELECT 1 FROM core.tenants t "
            "  WHERE t.id = tenant_id AND t.status = 'active') "
            "ELSE EXISTS (SELECT 1 FROM core.users u WHERE u.id::text = user_id "
            "  AND u.status = 'active' AND u.deleted_at IS NULL) END "
            "RETURNING scope",
            1, v, &r, err);
    if (rc == 0 && PQntuples(r) == 1) {
        fresh = true;
        snprintf(scope, sizeof scope, "%s", PQgetvalue(r, 0, 0));
        rc = issue_pair(a, &c, scope, tid, sub, family, out, err);
    } else if (rc == 0) {
        /* Spent, revoked or expired: a spent one being replayed means
         * someone else holds it, so the whole login ends (below, once this
         * transaction has let go of the lock). */
        PQclear(r);
        r = NULL;
        rc = auth_tx_run(a, &c,
                         "SELECT 1 FROM core.refresh_tokens WHERE token_hash = $1 "
                         "AND used_at IS NOT NULL",
                         1, v, &r, err);
        reused = rc == 0 && PQntuples(r) == 1;
    }
    PQclear(r);
    if (auth_tx_end(a, c, rc, err) < 0) {
        auth_session_clear(out);
        return -1;
    }
    if (fresh)
        return 1;
    if (reused) {
        log_msg(LOG_LEVEL_WARN, NULL,
                "refresh token reused: session family %.8s... revoked", family);
        if (revoke_family(a, family, tid, sub, err) < 0)
            return -1;
    }
    return 0;
}

static int revoke_jti(struct auth *a, const struct crypto_jwt_claims *c,
                      struct db_error *err)
{
    char exp[24];
    snprintf(exp, sizeof exp, "%lld", crypto_jwt_valid_until(c, a->cfg->auth_leeway_s));
    const char *v[] = {c->jti, exp};
    if (auth_run(a,
                 "INSERT INTO core.revocations (kind, jti, expires_at) "
                 "VALUES ('jti', $1, to_timestamp($2::bigint))",
                 2, v, NULL, err) < 0)
        return -1;
    auth_local_add(a, c->jti, 0, NULL);
    return 0;
}

int auth_session_end(struct auth *a, const struct crypto_jwt_claims *who,
                     const char *refresh, struct db_error *err)
{
    if (revoke_jti(a, who, err) < 0)
        return -1;
    if (!refresh || strlen(refresh) != AUTH_REFRESH_LEN - 1)
        return 0;
    char hash[CRYPTO_SHA256_HEX_LEN + 1], tids[24];
    PGresult *r = NULL;
    if (crypto_sha256_hex(refresh, strlen(refresh), hash) < 0)
        return auth_fail(err, "out of memory");
    snprintf(tids, sizeof tids, "%lld", who->tid);
    const char *v[] = {hash, tids, who->sub};
    if (auth_run(a,
                 "SELECT family FROM core.refresh_tokens WHERE token_hash = $1 "
                 "AND tenant_id = $2 AND user_id = $3",
                 3, v, &r, err) < 0)
        return -1;
    int rc = 0;
    if (PQntuples(r) == 1) {
        char family[64];
        snprintf(family, sizeof family, "%s", PQgetvalue(r, 0, 0));
        rc = revoke_family(a, family, who->tid, who->sub, err);
    }
    PQclear(r);
    return rc;
}

int auth_session_end_others(struct auth *a, const struct crypto_jwt_claims *who,
                            struct db_error *err)
{
    char tids[24], ttl[24];
    struct db_conn *c = NULL;
    PGresult *r = NULL;
    int ended = 0;

    snprintf(tids, sizeof tids, "%lld", who->tid);
    snprintf(ttl, sizeof ttl, "%d", a->cfg->auth_token_ttl_s + a->cfg->auth_leeway_s);
    const char *v[] = {tids, who->sub, who->sid[0] ? who->sid : NULL, who->jti, ttl};
    /* The caller's session: the token's sid, or for a token issued before
     * tokens carried one, the family that issued its jti; none ('') for a
     * token of no session. Every other family of the user is revoked as
     * revoke_family does it: its refresh tokens (used ones too: their
     * access tokens may still be alive) and the access tokens issued from
     * them that have not expired. Families that still had a usable refresh
     * token are the sessions counted. */
    int rc = auth_lock_user(a, &c, who->tid, who->sub, err);
    if (rc == 0)
        rc = auth_tx_run(
            a, &c,
            "WITH me AS (SELECT coalesce($3::text, (SELECT family FROM core.refresh_tokens "
            "  WHERE access_jti = $4 AND tenant_id = $1 AND user_id = $2 LIMIT 1), '') AS "
            "f), "
            "live AS (SELECT count(DISTINCT family) AS n FROM core.refresh_tokens, me "
            "  WHERE tenant_id = $1 AND user_id = $2 AND family <> me.f "
            "  AND revoked_at IS NULL AND used_at IS NULL AND expires_at > now()), "
            "gone AS (UPDATE core.refresh_tokens t SET revoked_at = now() FROM me "
            "  WHERE t.tenant_id = $1 AND t.user_id = $2 AND t.family <> me.f "
            "  AND t.revoked_at IS NULL RETURNING t.access_jti, t.created_at), "
            "rev AS (INSERT INTO core.revocations (kind, jti, expires_at) "
            "  SELECT 'jti', access_jti, created_at + make_interval(secs => $5) FROM gone "
            "  WHERE created_at + make_interval(secs => $5) > now() RETURNING jti) "
            "SELECT 'n', n::text FROM live UNION ALL SELECT 'j', jti FROM rev",
            5, v, &r, err);
    if (auth_tx_end(a, c, rc, err) < 0) {
        PQclear(r);
        return -1;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        if (PQgetvalue(r, i, 0)[0] == 'n')
            ended = atoi(PQgetvalue(r, i, 1));
        else
            auth_local_add(a, PQgetvalue(r, i, 1), 0, NULL);
    }
    PQclear(r);
    return ended;
}
