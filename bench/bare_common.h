/*
 * bare_common.h - what the bare C benchmark baselines (bare_mhd.c, bare_pg.c)
 * share: argument parsing, the stop signals, the last callback of a request,
 * the loopback address.
 * Header-only (static inline); each baseline is one translation unit.
 */
#ifndef BARE_COMMON_H
#define BARE_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BARE_MAX_THREADS 256

/* Parses a decimal long in [min, max]; 0, or -1 if text is not one. */
static inline int bare_parse_long(const char *text, long min, long max, long *out)
{
    char *end = NULL;
    long value;

    errno = 0;
    value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max) {
        return -1;
    }
    *out = value;
    return 0;
}

/*
 * Blocks SIGINT and SIGTERM in the calling thread, before any other thread
 * starts (they inherit the mask), so that bare_wait_for_stop() in main can
 * collect them synchronously with sigwait().
 */
static inline int bare_block_stop_signals(sigset_t *stop_signals, const char *name)
{
    sigemptyset(stop_signals);
    sigaddset(stop_signals, SIGINT);
    sigaddset(stop_signals, SIGTERM);
    if (pthread_sigmask(SIG_BLOCK, stop_signals, NULL) != 0) {
        fprintf(stderr, "%s: pthread_sigmask failed\n", name);
        return -1;
    }
    return 0;
}

static inline void bare_wait_for_stop(sigset_t *stop_signals, const char *name)
{
    int sig = 0;

    if (sigwait(stop_signals, &sig) != 0) {
        fprintf(stderr, "%s: sigwait failed, stopping\n", name);
    } else {
        fprintf(stderr, "%s: signal %d, stopping\n", name, sig);
    }
}

/*
 * For an access handler: 1 on the request's last callback, where the baselines
 * answer, as the runtime does (a response queued on the first callback makes
 * libmicrohttpd close the connection afterwards); any body is discarded.
 */
static inline int bare_request_complete(void **req_cls, size_t *upload_data_size)
{
    static int seen;

    if (*req_cls == NULL) {
        *req_cls = &seen;
        return 0;
    }
    if (*upload_data_size != 0) {
        *upload_data_size = 0;
        return 0;
    }
    return 1;
}

/* 127.0.0.1:port: the baselines never listen anywhere else. */
static inline void bare_loopback(struct sockaddr_in *addr, long port)
{
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_port = htons((uint16_t)port);
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

#endif
