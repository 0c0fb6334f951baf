/* host: the current script set and its reloads (see host.h). */
#include "host.h"

#include "log.h"
#include "watch.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct host {
    const struct config *cfg;
    const struct rt_module *const *modules; /* borrowed: of every set */
    char *dir;
    pthread_mutex_t mu; /* guards current */
    struct vm_scripts *current;
    pthread_mutex_t reload_mu; /* one reload at a time */
    struct vm_board board;
    struct watch *watch;
};

static double ms_between(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

static size_t count_overrides(const struct vm_scripts *s)
{
    size_t n = 0;
    while (vm_scripts_view_at(s, n + 1))
        n++;
    return n;
}

int host_reload(struct host *h)
{
    struct rt_err err;
    struct timespec t0, t1;

    pthread_mutex_lock(&h->reload_mu);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct vm_scripts *s = vm_scripts_load(h->dir, h->cfg, h->modules, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_mutex_lock(&h->board.mu);
    if (s) {
        h->board.generation++;
        h->board.loaded_at = (long long)time(NULL);
        h->board.error[0] = '\0';
    } else {
        h->board.failures++;
        h->board.failed_at = (long long)time(NULL);
        snprintf(h->board.error, sizeof h->board.error, "%s", err.msg);
    }
    long generation = h->board.generation;
    pthread_mutex_unlock(&h->board.mu);
    if (!s) {
        log_msg_detail(LOG_LEVEL_ERROR, NULL,
                       "scripts: reload failed; the previous version keeps serving",
                       "error", err.msg);
        pthread_mutex_unlock(&h->reload_mu);
        return -1;
    }
    pthread_mutex_lock(&h->mu);
    struct vm_scripts *old = h->current;
    h->current = s;
    pthread_mutex_unlock(&h->mu);
    vm_scripts_release(old);
    log_msg(
        LOG_LEVEL_INFO, NULL,
        "scripts: reloaded (generation %ld): %zu files, %zu routes, %zu tenant overrides "
        "in %.1f ms",
        generation, vm_scripts_file_count(s), vm_view_route_count(vm_scripts_view_at(s, 0)),
        count_overrides(s), ms_between(&t0, &t1));
    pthread_mutex_unlock(&h->reload_mu);
    return 0;
}

static void on_change(void *ud)
{
    (void)host_reload(ud);
}

struct host *host_start(const struct config *cfg, const char *dir,
                        const struct rt_module *const *modules, struct rt_err *err)
{
    struct host *h = calloc(1, sizeof *h);

    if (!h || !(h->dir = strdup(dir))) {
        rt_err_set(err, "out of memory");
        free(h);
        return NULL;
    }
    h->cfg = cfg;
    h->modules = modules;
    pthread_mutex_init(&h->mu, NULL);
    pthread_mutex_init(&h->reload_mu, NULL);
    pthread_mutex_init(&h->board.mu, NULL);
    if (!(h->current = vm_scripts_load(dir, cfg, modules, err))) {
        host_stop(h);
        return NULL;
    }
    h->board.generation = 1;
    h->board.loaded_at = (long long)time(NULL);
    if (cfg->scripts_reload) {
        struct rt_err why;
        h->watch = watch_start(dir, cfg->scripts_reload_delay_ms, on_change, h, &why);
        if (!h->watch) /* serving without reloads beats not serving */
            log_msg(LOG_LEVEL_WARN, NULL, "scripts: not watching %s for changes: %s", dir,
                    why.msg);
    }
    return h;
}

struct vm_scripts *host_acquire(struct host *h)
{
    pthread_mutex_lock(&h->mu);
    struct vm_scripts *s = h->current;
    vm_scripts_retain(s);
    pthread_mutex_unlock(&h->mu);
    return s;
}

struct vm_board *host_board(struct host *h)
{
    return &h->board;
}

void host_stop(struct host *h)
{
    if (!h)
        return;
    watch_stop(h->watch);
    vm_scripts_release(h->current);
    pthread_mutex_destroy(&h->mu);
    pthread_mutex_destroy(&h->reload_mu);
    pthread_mutex_destroy(&h->board.mu);
    free(h->dir);
    free(h);
}
