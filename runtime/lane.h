/* lane: where a route's handler runs (its `offload` field), and the thread
 * pools that run the two offload lanes. A route on a lane is handed over by
 * its HTTP thread (the connection suspended) and answered from the lane, so
 * slow work never holds up an HTTP thread; the two lanes are apart so a long
 * provisioning or fleet migration never queues a login.
 *
 * Uses: log.c, err.c. */
#ifndef RT_LANE_H
#define RT_LANE_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

enum lane {
    LANE_HTTP,    /* on the HTTP thread that read the request */
    LANE_OFFLOAD, /* offload = true: password hashing (SCHED_IDLE threads) */
    LANE_ADMIN,   /* offload = "admin": provisioning, migrations, seeds, purges
                   * (they may hash too) */
};

/* Embedded in what is queued; the pool links items through it. */
struct lane_item {
    struct lane_item *next;
};

struct lane_pool;

/* Starts nthreads threads that call run(item, arg) for each queued item, in
 * order. idle_priority: the threads are scheduled SCHED_IDLE (nice 19 where
 * that is refused), so any other thread that wakes takes the CPU from them.
 * Returns NULL (err filled) when the pool cannot start. */
struct lane_pool *lane_pool_start(const char *name, int nthreads, int max_queued,
                                  bool idle_priority,
                                  void (*run)(struct lane_item *, void *), void *arg,
                                  struct rt_err *err);

/* Queues item. Returns false when max_queued items are already waiting. */
bool lane_pool_push(struct lane_pool *p, struct lane_item *item);

/* Runs every queued item, then joins the threads and frees p. NULL is a
 * no-op. */
void lane_pool_stop(struct lane_pool *p);

#endif
