/* host: the script set the server runs, replaced whole when files change.
 *
 * host_start loads the scripts (a set that does not load is a start-up
 * error) and, with scripts.reload, watches the scripts root (watch.c). After
 * a change it loads a new set in the background; if that fails (a file does
 * not compile, a route table is invalid, two routes clash) the error is
 * logged with file and line, kept for rt.scripts_status(), and the previous
 * set keeps serving. If it loads, it becomes current: requests that start
 * afterwards run it, requests already running finish on theirs (each holds
 * a reference).
 *
 * Uses: scripts.c, watch.c, log.c, config.c, err.c. */
#ifndef RT_HOST_H
#define RT_HOST_H

#include "config.h"
#include "scripts.h"

struct host;

/* Loads dir's scripts and starts watching it when cfg->scripts_reload.
 * Every set, the first and each reload, is loaded with modules (the rt.*
 * modules of its states, see vm_scripts_load). cfg and modules are borrowed
 * and must outlive the host. NULL with err filled. */
struct host *host_start(const struct config *cfg, const char *dir,
                        const struct rt_module *const *modules, struct rt_err *err);
/* The current set, retained: release it with vm_scripts_release. */
struct vm_scripts *host_acquire(struct host *h);
/* The reload status every worker state shows (rt.scripts_status()). */
struct vm_board *host_board(struct host *h);
/* Loads the scripts now. Returns 0 when the new set is current, -1 when it
 * did not load (logged; the previous set stays). */
int host_reload(struct host *h);
/* Stops watching and drops the host's reference to the current set. */
void host_stop(struct host *h);

#endif
