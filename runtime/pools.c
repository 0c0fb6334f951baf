/* pools: tenant pools made on first use, closed when unused (see pools.h). */
#include "pools.h"

#include "log.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct entry {
    char server[64];
    char dbname[64];
    struct db_pool *pool;
    int users;        /* references from pools_get not yet given back */
    double last_used; /* monotonic ms of the last pools_get or pools_put */
};

struct pools {
    const struct config *cfg;
    struct db_pool *main;
    int idle_ms; /* 0: never close */

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;  /* wakes the closing thread early: stop */
    struct entry *v;
    size_t n, cap;
    bool stop;
    bool thread_started;
    pthread_t thread;
};

static double mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* Removes and returns the pool of an entry unused for idle_ms, or NULL.
 * Called with mu held. */
static struct db_pool *take_idle(struct pools *ps, char name[160])
{
    double now = mono_ms();
    for (size_t i = 0; i < ps->n; i++) {
        struct entry *e = &ps->v[i];
        if (e->users > 0 || now - e->last_used < ps->idle_ms)
            continue;
        struct db_pool *p = e->pool;
        snprintf(name, 160, "%s/%s", e->server, e->dbname[0] ? e->dbname : "(default)");
        ps->v[i] = ps->v[--ps->n];
        return p;
    }
    return NULL;
}

/* Closes pools unused for idle_ms, checking every half of it (within 10 ms
 * to 1 s). A pool leaves the set before it is closed, under mu, and only
 * with no references: a request either holds it (and it is not closed) or
 * makes a new one. */
static void *closer(void *arg)
{
    struct pools *ps = arg;
    long every = ps->idle_ms / 2 < 10     ? 10
                 : ps->idle_ms / 2 > 1000 ? 1000
                                          : ps->idle_ms / 2;

    pthread_mutex_lock(&ps->mu);
    while (!ps->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += every / 1000;
        until.tv_nsec += (every % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        (void)pthread_cond_timedwait(&ps->cv, &ps->mu, &until);
        struct db_pool *p;
        char name[160];
        while (!ps->stop && (p = take_idle(ps, name)) != NULL) {
            pthread_mutex_unlock(&ps->mu);
            db_pool_free(p);
            log_msg(LOG_LEVEL_DEBUG, NULL, "closed the idle database pool %s", name);
            pthread_mutex_lock(&ps->mu);
        }
    }
    pthread_mutex_unlock(&ps->mu);
    return NULL;
}

struct pools *pools_new(const struct config *cfg, struct db_pool *main)
{
    struct pools *ps = calloc(1, sizeof *ps);
    pthread_condattr_t ca;

    if (!ps)
        return NULL;
    ps->cfg = cfg;
    ps->main = main;
    ps->idle_ms = cfg->database_idle_pool_ms;
    pthread_mutex_init(&ps->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ps->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (ps->idle_ms > 0) {
        ps->thread_started = pthread_create(&ps->thread, NULL, closer, ps) == 0;
        if (!ps->thread_started)
            log_msg(LOG_LEVEL_WARN, NULL,
                    "cannot start the thread that closes idle database pools: they are "
                    "kept open");
    }
    return ps;
}

void pools_free(struct pools *ps)
{
    if (!ps)
        return;
    if (ps->thread_started) {
        pthread_mutex_lock(&ps->mu);
        ps->stop = true;
        pthread_cond_signal(&ps->cv);
        pthread_mutex_unlock(&ps->mu);
        pthread_join(ps->thread, NULL);
    }
    for (size_t i = 0; i < ps->n; i++)
        db_pool_free(ps->v[i].pool);
    free(ps->v);
    pthread_cond_destroy(&ps->cv);
    pthread_mutex_destroy(&ps->mu);
    free(ps);
}

/* A new pool for (server, dbname) at the end of the set. Called with mu
 * held. */
static struct entry *add(struct pools *ps, const struct config_server *srv,
                         const struct tenant_info *t)
{
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 8;
        struct entry *v = realloc(ps->v, cap * sizeof *v);
        if (!v)
            return NULL;
        ps->v = v;
        ps->cap = cap;
    }
    char name[160];
    snprintf(name, sizeof name, "%s/%s", t->server, t->dbname[0] ? t->dbname : "(default)");
    struct db_pool_options po = {
        .conninfo = srv->url,
        .dbname = t->dbname[0] ? t->dbname : NULL,
        .name = name,
        .max_size = ps->cfg->database_pool_size,
        .checkout_timeout_ms = ps->cfg->database_checkout_timeout_ms,
        .connect_timeout_s = ps->cfg->database_connect_timeout,
        .statement_timeout_ms = ps->cfg->database_statement_timeout_ms,
        .refuse_privileged = true,
    };
    struct db_pool *p = db_pool_new(&po);
    if (!p)
        return NULL;
    struct entry *e = &ps->v[ps->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->server, sizeof e->server, "%s", t->server);
    snprintf(e->dbname, sizeof e->dbname, "%s", t->dbname);
    e->pool = p;
    return e;
}

struct db_pool *pools_get(struct pools *ps, const struct tenant_info *t)
{
    struct entry *e = NULL;

    if (!t || (!t->dbname[0] && strcmp(t->server, "main") == 0))
        return ps->main;
    const struct config_server *srv = config_server(ps->cfg, t->server);
    if (!srv) {
        log_msg(LOG_LEVEL_ERROR, NULL, "tenant %s: unknown server '%s'", t->code,
                t->server);
        return NULL;
    }
    pthread_mutex_lock(&ps->mu);
    for (size_t i = 0; i < ps->n && !e; i++)
        if (strcmp(ps->v[i].dbname, t->dbname) == 0 &&
            strcmp(ps->v[i].server, t->server) == 0)
            e = &ps->v[i];
    if (!e)
        e = add(ps, srv, t);
    struct db_pool *p = NULL;
    if (e) {
        e->users++;
        e->last_used = mono_ms();
        p = e->pool;
    }
    pthread_mutex_unlock(&ps->mu);
    return p;
}

void pools_put(struct pools *ps, struct db_pool *p)
{
    if (!p || p == ps->main)
        return;
    pthread_mutex_lock(&ps->mu);
    for (size_t i = 0; i < ps->n; i++)
        if (ps->v[i].pool == p) {
            ps->v[i].users--;
            ps->v[i].last_used = mono_ms();
            break;
        }
    pthread_mutex_unlock(&ps->mu);
}

size_t pools_count(struct pools *ps)
{
    pthread_mutex_lock(&ps->mu);
    size_t n = ps->n;
    pthread_mutex_unlock(&ps->mu);
    return n;
}
