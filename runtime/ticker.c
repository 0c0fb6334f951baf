/* ticker: periodic background calls (see ticker.h). */
#include "ticker.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct ticker {
    int interval_ms;
    void (*fn)(void *);
    void *arg;
    pthread_mutex_t mu; /* guards stop */
    pthread_cond_t wake;
    bool stop;
    pthread_t thread;
};

static void *ticker_main(void *p)
{
    struct ticker *t = p;
    struct timespec until;

    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += t->interval_ms / 1000;
        until.tv_nsec += (long)(t->interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!t->stop && pthread_cond_timedwait(&t->wake, &t->mu, &until) == 0)
            ;
        if (t->stop)
            break;
        pthread_mutex_unlock(&t->mu);
        t->fn(t->arg);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

struct ticker *ticker_start(int interval_ms, void (*fn)(void *), void *arg)
{
    struct ticker *t = calloc(1, sizeof *t);
    pthread_condattr_t ca;

    if (!t)
        return NULL;
    t->interval_ms = interval_ms > 0 ? interval_ms : 1;
    t->fn = fn;
    t->arg = arg;
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&t->thread, NULL, ticker_main, t) != 0) {
        pthread_cond_destroy(&t->wake);
        pthread_mutex_destroy(&t->mu);
        free(t);
        return NULL;
    }
    return t;
}

void ticker_stop(struct ticker *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->stop = true;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
