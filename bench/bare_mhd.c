/*
 * bare_mhd - benchmark baseline: the smallest useful libmicrohttpd server.
 *
 * Same daemon mode as the runtime (internal polling thread + epoll, thread
 * pool), bound to 127.0.0.1 only. Every request is answered with
 * 200 {"message":"hello"} from one shared, persistent response object, so the
 * numbers measure libmicrohttpd + the kernel and nothing else.
 *
 * Usage: bare_mhd PORT THREADS
 * Stops cleanly on SIGINT / SIGTERM.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "bare_common.h"

/* Not const: MHD_create_response_from_buffer() takes a non-const pointer. */
static char hello_body[] = "{\"message\":\"hello\"}";

static enum MHD_Result handle_request(void *cls, struct MHD_Connection *connection,
                                      const char *url, const char *method,
                                      const char *version, const char *upload_data,
                                      size_t *upload_data_size, void **req_cls)
{
    struct MHD_Response *response = cls;

    (void)url;
    (void)method;
    (void)version;
    (void)upload_data;

    if (!bare_request_complete(req_cls, upload_data_size)) {
        return MHD_YES;
    }
    return MHD_queue_response(connection, MHD_HTTP_OK, response);
}

int main(int argc, char **argv)
{
    long port;
    long threads;
    struct sockaddr_in addr;
    struct MHD_Response *response;
    struct MHD_Daemon *daemon;
    sigset_t stop_signals;

    if (argc != 3 || bare_parse_long(argv[1], 1, 65535, &port) != 0 ||
        bare_parse_long(argv[2], 1, BARE_MAX_THREADS, &threads) != 0) {
        fprintf(stderr, "usage: %s PORT THREADS   (PORT 1..65535, THREADS 1..%d)\n",
                argc > 0 ? argv[0] : "bare_mhd", BARE_MAX_THREADS);
        return 2;
    }

    if (bare_block_stop_signals(&stop_signals, "bare_mhd") != 0) {
        return 1;
    }

    response = MHD_create_response_from_buffer(sizeof(hello_body) - 1, hello_body,
                                               MHD_RESPMEM_PERSISTENT);
    if (response == NULL || MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                                                    "application/json") != MHD_YES) {
        fprintf(stderr, "bare_mhd: cannot create response\n");
        if (response != NULL) {
            MHD_destroy_response(response);
        }
        return 1;
    }

    bare_loopback(&addr, port);

    daemon = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL,
        handle_request, response, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)threads, MHD_OPTION_END);
    if (daemon == NULL) {
        fprintf(stderr, "bare_mhd: cannot start daemon on 127.0.0.1:%ld\n", port);
        MHD_destroy_response(response);
        return 1;
    }

    fprintf(stderr, "bare_mhd: listening on http://127.0.0.1:%ld/ with %ld threads\n", port,
            threads);

    bare_wait_for_stop(&stop_signals, "bare_mhd");
    MHD_stop_daemon(daemon);
    MHD_destroy_response(response);
    return 0;
}
