/* watch: tells when scripts under a directory tree change (inotify).
 *
 * A thread watches every folder under root, folders made later included.
 * A change is a *.lua file created, written, deleted or renamed, or a folder
 * created, deleted or renamed; after delay_ms without another change it
 * calls on_change(ud), on the watch thread, once for the whole burst. When
 * the kernel's event queue overflows the tree is rescanned and treated as
 * changed.
 *
 * Uses: log.c, err.c. */
#ifndef RT_WATCH_H
#define RT_WATCH_H

#include <stddef.h>

#include "err.h"

struct watch;

/* Starts watching root. Returns NULL with err filled (inotify unavailable,
 * root unreadable). */
struct watch *watch_start(const char *root, int delay_ms, void (*on_change)(void *ud),
                          void *ud, struct rt_err *err);
/* Stops the thread (waiting for a running on_change) and frees w. */
void watch_stop(struct watch *w);

#endif
