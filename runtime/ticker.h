/* ticker: a background thread that calls a function every interval until
 * stopped. Used for the caches that follow database state (the tenant
 * directory, revocations), so a request never waits for a refresh.
 *
 * Uses: nothing of the runtime. */
#ifndef RT_TICKER_H
#define RT_TICKER_H

#include <stdbool.h>

struct ticker;

/* Starts a thread that calls fn(arg) every interval_ms (first call after one
 * interval). Returns NULL when the thread cannot start. */
struct ticker *ticker_start(int interval_ms, void (*fn)(void *), void *arg);

/* Stops and joins the thread (waits for a call in progress). NULL is a
 * no-op. */
void ticker_stop(struct ticker *t);

#endif
