/* auth_perms: the permission cache per (tenant, user), platform users'
 * permissions, and permission changes told to every replica (see auth.h). */
#include "auth.h"
#include "auth_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool auth_perms_allow(const struct auth_perms *p, const char *need)
{
    if (p->superuser)
        return true;
    if (!need || !*need)
        return true;
    const char *us = strrchr(need, '_');
    size_t reslen = us ? (size_t)(us - need) : 0;
    for (const char *s = p->codes ? p->codes : ""; *s;) {
        size_t n = strcspn(s, ",");
        if ((n == strlen(need) && strncmp(s, need, n) == 0) ||
            (us && n == reslen + 7 && strncmp(s, need, reslen) == 0 &&
             strncmp(s + reslen, "_manage", 7) == 0))
            return true;
        s += n;
        if (*s == ',')
            s++;
    }
    return false;
}

static size_t perm_bucket(long long tid, const char *sub)
{
    size_t h = (size_t)tid * 0x9e3779b97f4a7c15ULL;
    for (const char *p = sub; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    return h % PERM_BUCKETS;
}

static void perm_entry_free(struct perm_entry *e)
{
    free(e->sub);
    free(e->codes);
    free(e);
}

void auth_perms_drop_locked(struct auth *a, long long tid, const char *sub)
{
    for (size_t b = 0; b < PERM_BUCKETS; b++) {
        if (sub && tid >= 0)
            b = perm_bucket(tid, sub);
        for (struct perm_entry **pp = &a->buckets[b]; *pp;) {
            struct perm_entry *e = *pp;
            if (tid < 0 || (e->tid == tid && (!sub || strcmp(e->sub, sub) == 0))) {
                *pp = e->next;
                perm_entry_free(e);
                a->nperms--;
            } else {
                pp = &e->next;
            }
        }
        if (sub && tid >= 0)
            break;
    }
}

int auth_perms_cached(struct auth *a, long long tid, const char *sub, const char *need,
                      bool *allowed)
{
    time_t now = time(NULL);
    int hit = 0;

    pthread_mutex_lock(&a->mu);
    for (struct perm_entry *e = a->buckets[perm_bucket(tid, sub)]; e; e = e->next)
        if (e->tid == tid && strcmp(e->sub, sub) == 0) {
            if (now - e->loaded < a->cfg->auth_permission_cache_s) {
                struct auth_perms p = {e->superuser, e->priority, e->codes};
                *allowed = auth_perms_allow(&p, need);
                hit = 1;
            }
            break;
        }
    pthread_mutex_unlock(&a->mu);
    return hit;
}

void auth_perms_store(struct auth *a, long long tid, const char *sub,
                      const struct auth_perms *p)
{
    struct perm_entry *e = calloc(1, sizeof *e);
    if (!e)
        return;
    e->tid = tid;
    e->sub = strdup(sub);
    e->superuser = p->superuser;
    e->priority = p->priority;
    e->codes = strdup(p->codes ? p->codes : "");
    e->loaded = time(NULL);
    if (!e->sub || !e->codes) {
        perm_entry_free(e);
        return;
    }
    pthread_mutex_lock(&a->mu);
    auth_perms_drop_locked(a, tid, sub);
    if (a->nperms >= PERM_MAX)
        auth_perms_drop_locked(a, -1, NULL);
    size_t b = perm_bucket(tid, sub);
    e->next = a->buckets[b];
    a->buckets[b] = e;
    a->nperms++;
    pthread_mutex_unlock(&a->mu);
}

int auth_core_perms(struct auth *a, const char *sub, struct auth_perms *out, char *err,
                    size_t errlen)
{
    PGresult *r = NULL;
    struct db_error e;
    const char *v[] = {sub};

    memset(out, 0, sizeof *out);
    if (strncmp(sub, "apikey:", 7) == 0) {
        out->superuser = true; /* checked live on every request */
        return 1;
    }
    if (auth_run(a,
                 "SELECT is_superuser FROM core.users WHERE id::text = $1 "
                 "AND status = 'active' AND deleted_at IS NULL",
                 1, v, &r, &e) < 0) {
        snprintf(err, errlen, "%s", e.message);
        return -1;
    }
    int found = PQntuples(r) == 1;
    if (found)
        out->superuser = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return found;
}

int auth_rbac_changed(struct auth *a, long long tid, const char *sub, struct db_error *err)
{
    char tids[24];
    snprintf(tids, sizeof tids, "%lld", tid);
    const char *v[] = {tids, sub};
    pthread_mutex_lock(&a->mu);
    auth_perms_drop_locked(a, tid, sub);
    pthread_mutex_unlock(&a->mu);
    return auth_run(a,
                    "INSERT INTO core.revocations (kind, tenant_id, user_id, expires_at) "
                    "VALUES ('rbac', $1, $2, now() + interval '" AUTH_RBAC_ROW_S
                    " seconds')",
                    2, v, NULL, err);
}
