/* auth_revoke: revocations (see auth.h): the state read from
 * core.revocations and core.api_keys and its reload, the list of
 * revocations this process made since, the check of a token against both,
 * and the cut-offs of a user and of a tenant. */
#include "auth.h"
#include "auth_int.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void auth_state_free(struct auth_state *s)
{
    if (!s)
        return;
    free(s->jtis);
    free(s->users);
    free(s->tenants);
    free(s->keys);
}

static int cmp_tenant(const void *a, const void *b)
{
    const struct tenant_rev *x = a, *y = b;
    return x->tid < y->tid ? -1 : x->tid > y->tid;
}

static int cmp_user(const void *a, const void *b)
{
    const struct user_rev *x = a, *y = b;
    if (x->tid != y->tid)
        return x->tid < y->tid ? -1 : 1;
    return strcmp(x->sub, y->sub);
}

/* ---- reload ------------------------------------------------------------------- */

static const char RELOAD_SQL[] =
    "SELECT 'r', kind, coalesce(jti, ''), tenant_id::text, coalesce(user_id, ''), "
    "floor(extract(epoch FROM not_before))::bigint::text "
    "FROM core.revocations WHERE expires_at > now() "
    "UNION ALL SELECT 'k', '', key_hash, id::text, '', '' "
    "FROM core.api_keys WHERE revoked_at IS NULL";

static struct auth_state *state_build(PGresult *r)
{
    struct auth_state *s = calloc(1, sizeof *s);
    int n = PQntuples(r);

    if (!s)
        return NULL;
    s->jtis = calloc((size_t)n + 1, sizeof *s->jtis);
    s->users = calloc((size_t)n + 1, sizeof *s->users);
    s->tenants = calloc((size_t)n + 1, sizeof *s->tenants);
    s->keys = calloc((size_t)n + 1, sizeof *s->keys);
    if (!s->jtis || !s->users || !s->tenants || !s->keys) {
        auth_state_free(s);
        free(s);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        const char *what = PQgetvalue(r, i, 0), *kind = PQgetvalue(r, i, 1);
        if (*what == 'k') {
            struct live_key *k = &s->keys[s->nkeys++];
            snprintf(k->hash, sizeof k->hash, "%s", PQgetvalue(r, i, 2));
            k->id = atoll(PQgetvalue(r, i, 3));
        } else if (strcmp(kind, "jti") == 0) {
            snprintf(s->jtis[s->njtis++], sizeof s->jtis[0], "%s", PQgetvalue(r, i, 2));
        } else if (strcmp(kind, "user") == 0) {
            struct user_rev *u = &s->users[s->nusers++];
            u->tid = atoll(PQgetvalue(r, i, 3));
            snprintf(u->sub, sizeof u->sub, "%s", PQgetvalue(r, i, 4));
            u->not_before = atoll(PQgetvalue(r, i, 5));
        } else if (strcmp(kind, "tenant") == 0) {
            struct tenant_rev *t = &s->tenants[s->ntenants++];
            t->tid = atoll(PQgetvalue(r, i, 3));
            t->not_before = atoll(PQgetvalue(r, i, 5));
        }
    }
    qsort(s->jtis, s->njtis, sizeof s->jtis[0], auth_cmp_str);
    qsort(s->users, s->nusers, sizeof s->users[0], cmp_user);
    /* one row per user: the latest not_before */
    size_t w = 0;
    for (size_t i = 0; i < s->nusers; i++) {
        if (w && cmp_user(&s->users[w - 1], &s->users[i]) == 0) {
            if (s->users[i].not_before > s->users[w - 1].not_before)
                s->users[w - 1].not_before = s->users[i].not_before;
        } else {
            s->users[w++] = s->users[i];
        }
    }
    s->nusers = w;
    /* one row per tenant too */
    qsort(s->tenants, s->ntenants, sizeof s->tenants[0], cmp_tenant);
    w = 0;
    for (size_t i = 0; i < s->ntenants; i++) {
        if (w && s->tenants[w - 1].tid == s->tenants[i].tid) {
            if (s->tenants[i].not_before > s->tenants[w - 1].not_before)
                s->tenants[w - 1].not_before = s->tenants[i].not_before;
        } else {
            s->tenants[w++] = s->tenants[i];
        }
    }
    s->ntenants = w;
    /* the hash is the first member: auth_cmp_str compares it */
    qsort(s->keys, s->nkeys, sizeof s->keys[0], auth_cmp_str);
    return s;
}

/* A reload must not lose a revocation made here while its query runs.
 *
 * A revocation is committed to core.revocations first and only then added
 * to the local list (auth_local_add), with a sequence number. A reload takes a
 * number from the same sequence before its query starts. So an entry whose
 * number is below the reload's was committed before the query began and its
 * snapshot holds it (unless it has expired, when dropping it is right); an
 * entry made after the reload began may have committed too late for the
 * query, so it stays in the local list until a later reload's query is sure
 * to have seen it. Clearing the whole list at the swap (as this once did)
 * let such a revocation lapse until the next reload.
 *
 * Reloads can overlap (the ticker, and API key changes call auth_reload): a
 * reload's state replaces the installed one only if it began later, so an
 * older snapshot never overwrites a newer one whose reload already dropped
 * the local entries it covered. */
void auth_reload(struct auth *a)
{
    PGresult *r = NULL, *rb = NULL;
    struct db_error err;

    pthread_mutex_lock(&a->mu);
    unsigned long long started = ++a->seq;
    pthread_mutex_unlock(&a->mu);
    if (auth_run(a, RELOAD_SQL, 0, NULL, &r, &err) < 0) {
        log_msg(LOG_LEVEL_DEBUG, NULL, "auth: cannot reload revocations: %s", err.message);
        return; /* keep what we have */
    }
    struct auth_state *s = state_build(r);
    PQclear(r);
    if (!s)
        return;
    (void)auth_run(a,
                   "SELECT tenant_id::text, coalesce(user_id, '') FROM core.revocations "
                   "WHERE kind = 'rbac' AND expires_at > now()",
                   0, NULL, &rb, &err);
    pthread_mutex_lock(&a->mu);
    struct auth_state *old = s;
    if (started > a->st_seq) {
        old = a->st;
        a->st = s;
        a->st_seq = started;
        size_t w = 0;
        for (size_t i = 0; i < a->nlocal; i++)
            if (a->local[i].seq > started)
                a->local[w++] = a->local[i];
        a->nlocal = w;
    }
    for (int i = 0; rb && i < PQntuples(rb); i++) {
        const char *sub = PQgetvalue(rb, i, 1);
        auth_perms_drop_locked(a, atoll(PQgetvalue(rb, i, 0)), *sub ? sub : NULL);
    }
    pthread_mutex_unlock(&a->mu);
    PQclear(rb);
    auth_state_free(old);
    free(old);
}

/* ---- the check ------------------------------------------------------------------ */

static bool state_revoked(const struct auth_state *s, const struct crypto_jwt_claims *c)
{
    if (s->njtis && bsearch(c->jti, s->jtis, s->njtis, sizeof s->jtis[0], auth_cmp_str))
        return true;
    if (s->nusers) {
        struct user_rev key = {.tid = c->tid};
        snprintf(key.sub, sizeof key.sub, "%s", c->sub);
        const struct user_rev *u =
            bsearch(&key, s->users, s->nusers, sizeof s->users[0], cmp_user);
        if (u && c->iat <= u->not_before)
            return true;
    }
    if (s->ntenants && c->tid > 0) {
        struct tenant_rev key = {.tid = c->tid};
        const struct tenant_rev *t =
            bsearch(&key, s->tenants, s->ntenants, sizeof s->tenants[0], cmp_tenant);
        if (t && c->iat <= t->not_before)
            return true;
    }
    return false;
}

/* The local list is small (what one reload interval made): scanned.
 * Caller holds a->mu. */
static bool local_revoked(const struct auth *a, const struct crypto_jwt_claims *c)
{
    for (size_t i = 0; i < a->nlocal; i++) {
        const struct local_rev *l = &a->local[i];
        if (l->tenant   ? c->tid > 0 && l->u.tid == c->tid && c->iat <= l->u.not_before
            : l->jti[0] ? strcmp(l->jti, c->jti) == 0
                        : l->u.tid == c->tid && strcmp(l->u.sub, c->sub) == 0 &&
                              c->iat <= l->u.not_before)
            return true;
    }
    return false;
}

bool auth_token_revoked(struct auth *a, const struct crypto_jwt_claims *c)
{
    pthread_mutex_lock(&a->mu);
    bool r = state_revoked(a->st, c) || local_revoked(a, c);
    pthread_mutex_unlock(&a->mu);
    return r;
}

/* Records a revocation here at once, after it was committed (the next
 * reloads bring it from the database too; see auth_reload): jti, or the
 * cut-off of user (tid, sub), or with neither that of tenant tid. */
void auth_local_add(struct auth *a, const char *jti, long long tid, const char *sub)
{
    pthread_mutex_lock(&a->mu);
    void *v = realloc(a->local, (a->nlocal + 1) * sizeof *a->local);
    if (v) {
        a->local = v;
        struct local_rev *l = &a->local[a->nlocal++];
        memset(l, 0, sizeof *l);
        l->seq = ++a->seq;
        if (jti) {
            snprintf(l->jti, sizeof l->jti, "%s", jti);
        } else {
            l->tenant = !sub;
            l->u.tid = tid;
            snprintf(l->u.sub, sizeof l->u.sub, "%s", sub ? sub : "");
            l->u.not_before = (long long)time(NULL);
        }
    }
    pthread_mutex_unlock(&a->mu);
}

/* ---- cut-offs ------------------------------------------------------------------- */

int auth_revoke_user(struct auth *a, long long tid, const char *sub, struct db_error *err)
{
    char tids[24], ttl[24];
    snprintf(tids, sizeof tids, "%lld", tid);
    snprintf(ttl, sizeof ttl, "%d", a->cfg->auth_token_ttl_s + 2 * a->cfg->auth_leeway_s);
    const char *v[] = {tids, sub, ttl};
    struct db_conn *c = NULL;
    int rc = auth_lock_user(a, &c, tid, sub, err);
    /* The 'rbac' row drops the user's cached permission set on the other
     * replicas too (a disabled or deleted user has none). */
    if (rc == 0)
        rc = auth_tx_run(
            a, &c,
            "WITH s AS (UPDATE core.refresh_tokens SET revoked_at = now() "
            "WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL) "
            "INSERT INTO core.revocations (kind, tenant_id, user_id, expires_at) "
            "VALUES ('user', $1, $2, now() + make_interval(secs => $3)), "
            "('rbac', $1, $2, now() + interval '" AUTH_RBAC_ROW_S " seconds')",
            3, v, NULL, err);
    if (auth_tx_end(a, c, rc, err) < 0)
        return -1;
    auth_local_add(a, NULL, tid, sub);
    pthread_mutex_lock(&a->mu);
    auth_perms_drop_locked(a, tid, sub);
    pthread_mutex_unlock(&a->mu);
    return 0;
}

int auth_revoke_tenant(struct auth *a, long long tid, struct db_error *err)
{
    char tids[24], ttl[24];
    snprintf(tids, sizeof tids, "%lld", tid);
    snprintf(ttl, sizeof ttl, "%d", a->cfg->auth_token_ttl_s + 2 * a->cfg->auth_leeway_s);
    const char *v[] = {tids, ttl};
    if (auth_run(a, AUTH_REVOKE_TENANT_SQL, 2, v, NULL, err) < 0)
        return -1;
    auth_local_add(a, NULL, tid, NULL);
    pthread_mutex_lock(&a->mu);
    auth_perms_drop_locked(a, tid, NULL);
    pthread_mutex_unlock(&a->mu);
    return 0;
}
