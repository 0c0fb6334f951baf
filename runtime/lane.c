/* lane: the offload lanes' thread pools (see lane.h). */
#define _GNU_SOURCE /* SCHED_IDLE */
#include "lane.h"

#include "log.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

struct lane_pool {
    const char *name; /* static */
    int max_queued;
    bool idle_priority;
    void (*run)(struct lane_item *, void *);
    void *arg;
    pthread_mutex_t mu; /* guards the queue and stop */
    pthread_cond_t wake;
    struct lane_item *head, *tail;
    int queued;
    bool stop;
    pthread_t *threads;
    int nthreads; /* started */
};

bool lane_pool_push(struct lane_pool *p, struct lane_item *item)
{
    pthread_mutex_lock(&p->mu);
    bool ok = p->queued < p->max_queued;
    if (ok) {
        item->next = NULL;
        if (p->tail)
            p->tail->next = item;
        else
            p->head = item;
        p->tail = item;
        p->queued++;
        pthread_cond_signal(&p->wake);
    }
    pthread_mutex_unlock(&p->mu);
    return ok;
}

/* Drains the queue before it stops, so nothing queued is left behind. */
static void *lane_main(void *arg)
{
    struct lane_pool *p = arg;
    struct sched_param sp = {0};

    if (p->idle_priority && pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) != 0 &&
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19) < 0)
        log_msg(LOG_LEVEL_DEBUG, NULL, "%s thread: cannot lower its priority", p->name);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stop)
            pthread_cond_wait(&p->wake, &p->mu);
        struct lane_item *item = p->head;
        if (!item)
            break; /* stopping, and nothing left */
        p->head = item->next;
        if (!p->head)
            p->tail = NULL;
        p->queued--;
        pthread_mutex_unlock(&p->mu);
        p->run(item, p->arg);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

struct lane_pool *lane_pool_start(const char *name, int nthreads, int max_queued,
                                  bool idle_priority,
                                  void (*run)(struct lane_item *, void *), void *arg,
                                  struct rt_err *err)
{
    struct lane_pool *p = calloc(1, sizeof *p);

    if (p)
        p->threads = calloc((size_t)nthreads, sizeof *p->threads);
    if (!p || !p->threads) {
        free(p);
        rt_err_set(err, "out of memory");
        return NULL;
    }
    p->name = name;
    p->max_queued = max_queued;
    p->idle_priority = idle_priority;
    p->run = run;
    p->arg = arg;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    for (; p->nthreads < nthreads; p->nthreads++)
        if (pthread_create(&p->threads[p->nthreads], NULL, lane_main, p) != 0) {
            rt_err_set(err, "cannot start the %s threads", name);
            lane_pool_stop(p);
            return NULL;
        }
    return p;
}

void lane_pool_stop(struct lane_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}
