/*
 * bare_pg - benchmark baseline: the database work of GET /api/v1/users/me,
 * without the runtime's own layers (no Lua, no auth, no routing).
 *
 * Every GET, on any URL, runs one pipelined round trip to PostgreSQL
 * (set_config() of the five per-request settings, the signed scope the
 * row-level security policies check among them (docs/SECURITY.md), then the users row
 * select, then a sync) and answers 200 with the row as a JSON object of
 * strings / nulls, 404 {"error":"not_found"} or 500 {"error":"db"}. Bound
 * to 127.0.0.1 only. The numbers measure the ceiling of two architectures:
 *
 *   block  the runtime's current one: one daemon with an internal epoll
 *          thread pool of THREADS workers and a shared pool of CONNS
 *          blocking PGconn; a worker checks a connection out per request
 *          (waiting while none is free) and blocks on the result.
 *   async  an event loop per thread: THREADS threads, each with its own
 *          external-epoll daemon on the same port (SO_REUSEPORT) and its own
 *          CONNS/THREADS (at least 1) non-blocking, pipeline-mode PGconn.
 *          Requests are suspended while their query is in flight (or queued
 *          FIFO while all of the thread's connections are busy) and resumed
 *          when the result arrives.
 *
 * Usage: bare_pg MODE PORT THREADS CONNS CONNINFO
 * Environment: BARE_TENANT_ID (default 4), BARE_USER_ID (default 1).
 * Stops cleanly on SIGINT / SIGTERM (async mode answers requests still
 * waiting for the database with 503). A broken database connection in async
 * mode ends the program with a message.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <microhttpd.h>

#include "bare_common.h"

#define BARE_MAX_CONNS   1024
#define BARE_SEARCH_PATH "\"t_bench_auth\""
#define SQL_SETTINGS                                              \
    "SELECT set_config($1, $2, true), set_config($3, $4, true), " \
    "set_config($5, $6, true), set_config($7, $8, true), set_config($9, $10, true)"
#define SQL_USER                                                                     \
    "SELECT id, username, email, full_name, phone, status, is_superuser, "           \
    "email_verified, last_login_at, created_at, updated_at, created_by, updated_by " \
    "FROM users WHERE id = $1 AND deleted_at IS NULL"

/* epoll tags of the async loops: the daemon, the stop eventfd, PG slot i. */
#define TAG_MHD   0
#define TAG_STOP  1
#define TAG_SLOT0 2

/* Not const: MHD_create_response_from_buffer() takes a non-const pointer. */
static char not_found_body[] = "{\"error\":\"not_found\"}";
static char db_error_body[] = "{\"error\":\"db\"}";
static const char *tenant_id = "4";
static const char *user_id = "1";
/* Every connection enrolls the same scope key (one per process), so one
 * signed scope serves them all: "t:<tenant>.<tag>", made by the database. */
static char scope_key[65];
static char scope_value[128];

struct reply {
    unsigned int status; /* 0 until known */
    char *body;          /* malloc'ed JSON for 200, NULL for the static errors */
    size_t len;
};

/* Progress of one pipeline: query results seen, failure, the users row. */
struct pipe_state {
    int nres;
    int failed;
    PGresult *row;
};

/* ---- database work, shared by both modes ---- */

static int pg_ok(PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);

    PQclear(res);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* Fills out (size bytes) with the hex of (size - 1) / 2 random bytes. */
static int bare_random_hex(char *out, size_t size)
{
    unsigned char raw[32];
    size_t n = (size - 1) / 2;

    if (n > sizeof raw || getrandom(raw, n, 0) != (ssize_t)n) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    }
    return 0;
}

/* Enrolls the process's scope key for this connection and, once, asks the
 * database for the signed scope of the tenant (as rt_scope.verified() checks
 * it). A database without the walls gets an empty scope. */
static int pg_enroll(PGconn *pg)
{
    const char *key[1] = {scope_key};
    PGresult *res =
        PQexec(pg, "SELECT to_regprocedure('rt_scope.enroll(text)') IS NOT NULL");
    int walls = PQresultStatus(res) == PGRES_TUPLES_OK && PQgetvalue(res, 0, 0)[0] == 't';

    PQclear(res);
    if (!walls) {
        return 1;
    }
    if (!pg_ok(
            PQexecParams(pg, "SELECT rt_scope.enroll($1)", 1, NULL, key, NULL, NULL, 0))) {
        return 0;
    }
    if (scope_value[0] == '\0') {
        const char *values[2] = {scope_key, tenant_id};
        res = PQexecParams(pg,
                           "SELECT 't:' || $2 || '.' || encode(sha256(decode($1, 'hex') || "
                           "convert_to('t:' || $2, 'UTF8') || decode($1, 'hex')), 'hex')",
                           2, NULL, values, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            PQclear(res);
            return 0;
        }
        snprintf(scope_value, sizeof scope_value, "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
    }
    return 1;
}

/* Connects and prepares "s" and "u" ("u" needs the tenant search_path). */
static PGconn *pg_open(const char *conninfo)
{
    const char *values[2] = {BARE_SEARCH_PATH, tenant_id};
    PGconn *pg = PQconnectdb(conninfo);

    if (pg != NULL && PQstatus(pg) == CONNECTION_OK && pg_enroll(pg) &&
        pg_ok(PQprepare(pg, "s", SQL_SETTINGS, 10, NULL)) && pg_ok(PQexec(pg, "BEGIN")) &&
        pg_ok(PQexecParams(pg,
                           "SELECT set_config('search_path', $1, true), "
                           "set_config('app.tenant_id', $2, true)",
                           2, NULL, values, NULL, NULL, 0)) &&
        pg_ok(PQprepare(pg, "u", SQL_USER, 1, NULL)) && pg_ok(PQexec(pg, "COMMIT"))) {
        return pg;
    }
    fprintf(stderr, "bare_pg: database setup failed: %s",
            pg != NULL ? PQerrorMessage(pg) : "out of memory\n");
    PQfinish(pg);
    return NULL;
}

static int pipe_send(PGconn *pg)
{
    const char *settings[10] = {
        "statement_timeout", "5000",           "transaction_read_only", "on",
        "search_path",       BARE_SEARCH_PATH, "app.tenant_id",         tenant_id,
        "app.scope",         scope_value};

    if (PQsendQueryPrepared(pg, "s", 10, settings, NULL, NULL, 0) != 1 ||
        PQsendQueryPrepared(pg, "u", 1, &user_id, NULL, NULL, 0) != 1 ||
        PQpipelineSync(pg) != 1) {
        fprintf(stderr, "bare_pg: sending the pipeline failed: %s", PQerrorMessage(pg));
        return -1;
    }
    return 0;
}

/* Appends text as a JSON string; dst needs room for 6 * strlen(text) + 2. */
static char *json_string(char *dst, const char *text)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p;

    *dst++ = '"';
    for (p = (const unsigned char *)text; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            *dst++ = '\\';
            *dst++ = (char)*p;
        } else if (*p < 0x20) {
            memcpy(dst, "\\u00", 4);
            dst[4] = hex[*p >> 4];
            dst[5] = hex[*p & 0xf];
            dst += 6;
        } else {
            *dst++ = (char)*p;
        }
    }
    *dst++ = '"';
    return dst;
}

/* The reply for the users select: the row as JSON, or 404. */
static void build_reply(const PGresult *res, struct reply *rep)
{
    int nfields = PQnfields(res);
    size_t size = 3;
    char *p;
    int i;

    if (PQntuples(res) == 0) {
        rep->status = MHD_HTTP_NOT_FOUND;
        return;
    }
    for (i = 0; i < nfields; i++) {
        size += 6 * (strlen(PQfname(res, i)) + (size_t)PQgetlength(res, 0, i)) + 8;
    }
    rep->body = malloc(size);
    if (rep->body == NULL) {
        rep->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        return;
    }
    p = rep->body;
    *p++ = '{';
    for (i = 0; i < nfields; i++) {
        if (i > 0) {
            *p++ = ',';
        }
        p = json_string(p, PQfname(res, i));
        *p++ = ':';
        if (PQgetisnull(res, 0, i)) {
            memcpy(p, "null", 4);
            p += 4;
        } else {
            p = json_string(p, PQgetvalue(res, 0, i));
        }
    }
    *p++ = '}';
    rep->len = (size_t)(p - rep->body);
    rep->status = MHD_HTTP_OK;
}

/* Consumes one non-NULL result; returns 1 once it was the pipeline sync. */
static int pipe_feed(PGconn *pg, PGresult *res, struct pipe_state *ps)
{
    ExecStatusType st = PQresultStatus(res);
    int done = 0;

    if (st == PGRES_PIPELINE_SYNC) {
        done = 1;
    } else if (st != PGRES_TUPLES_OK) {
        if (!ps->failed) {
            const char *msg = PQresultErrorMessage(res);
            fprintf(stderr, "bare_pg: query failed: %s",
                    *msg != '\0' ? msg : PQerrorMessage(pg));
        }
        ps->failed = 1;
    } else if (++ps->nres == 2) {
        ps->row = res; /* kept for pipe_finish() */
        return 0;
    }
    PQclear(res);
    return done;
}

/* Builds the reply from the pipeline's outcome and resets *ps. */
static void pipe_finish(struct pipe_state *ps, struct reply *rep)
{
    memset(rep, 0, sizeof(*rep));
    if (ps->failed || ps->row == NULL) {
        rep->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    } else {
        build_reply(ps->row, rep);
    }
    PQclear(ps->row);
    memset(ps, 0, sizeof(*ps));
}

/* Creates, queues and releases the response for rep (takes its body). */
static enum MHD_Result queue_reply(struct MHD_Connection *connection, struct reply *rep)
{
    struct MHD_Response *response;
    enum MHD_Result ret;

    if (rep->body != NULL) {
        response =
            MHD_create_response_from_buffer(rep->len, rep->body, MHD_RESPMEM_MUST_FREE);
        if (response == NULL) {
            free(rep->body);
        }
        rep->body = NULL;
    } else {
        char *body = rep->status == MHD_HTTP_NOT_FOUND ? not_found_body : db_error_body;
        response =
            MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_PERSISTENT);
    }
    if (response == NULL) {
        return MHD_NO;
    }
    if (MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                                "application/json") != MHD_YES) {
        MHD_destroy_response(response);
        return MHD_NO;
    }
    ret = MHD_queue_response(connection, rep->status, response);
    MHD_destroy_response(response);
    return ret;
}

/* ---- block mode: thread pool daemon, shared blocking connection pool ---- */

struct pool {
    pthread_mutex_t lock;
    pthread_cond_t freed;
    PGconn **all;
    PGconn **idle; /* stack of free connections */
    size_t n;
    size_t nidle;
};

/* Sends the pipeline on a blocking connection and reads it to the sync. */
static void pipe_blocking(PGconn *pg, struct pipe_state *ps)
{
    int nulls = 0;

    if (pipe_send(pg) != 0) {
        ps->failed = 1;
        return;
    }
    for (;;) {
        PGresult *res = PQgetResult(pg);

        /* One NULL ends each query; two in a row mean the pipeline is gone. */
        if (res == NULL) {
            if (++nulls > 1 || PQstatus(pg) == CONNECTION_BAD) {
                fprintf(stderr, "bare_pg: pipeline broken: %s", PQerrorMessage(pg));
                ps->failed = 1;
                return;
            }
            continue;
        }
        nulls = 0;
        if (pipe_feed(pg, res, ps)) {
            return;
        }
    }
}

static enum MHD_Result block_handler(void *cls, struct MHD_Connection *connection,
                                     const char *url, const char *method,
                                     const char *version, const char *upload_data,
                                     size_t *upload_data_size, void **req_cls)
{
    struct pool *pool = cls;
    struct pipe_state ps = {0};
    struct reply rep;
    PGconn *pg;

    (void)url;
    (void)method;
    (void)version;
    (void)upload_data;

    if (!bare_request_complete(req_cls, upload_data_size)) {
        return MHD_YES;
    }

    pthread_mutex_lock(&pool->lock);
    while (pool->nidle == 0) {
        pthread_cond_wait(&pool->freed, &pool->lock);
    }
    pg = pool->idle[--pool->nidle];
    pthread_mutex_unlock(&pool->lock);

    pipe_blocking(pg, &ps);

    pthread_mutex_lock(&pool->lock);
    pool->idle[pool->nidle++] = pg;
    pthread_cond_signal(&pool->freed);
    pthread_mutex_unlock(&pool->lock);

    pipe_finish(&ps, &rep);
    return queue_reply(connection, &rep);
}

/* ---- async mode: one external-epoll daemon + event loop per thread ---- */

/*
 * A request is suspended from the moment its query is sent or queued until
 * its reply is ready. libmicrohttpd never completes a suspended connection
 * (no timeouts, no disconnect detection) and loop_drain() resumes them all
 * before the daemon stops, so a request in a slot or the queue stays valid.
 */
struct req {
    struct MHD_Connection *connection;
    int ready;        /* rep holds the answer */
    struct req *next; /* FIFO link while queued */
    struct reply rep;
};

struct slot {
    PGconn *pg;
    int busy;
    int want_out;
    struct req *req;
    struct pipe_state ps;
};

struct loop {
    pthread_t thread;
    struct MHD_Daemon *daemon;
    int epfd;
    int stopping;
    struct slot *slots;
    size_t nslots;
    struct req *head;
    struct req *tail;
};

static void die_pg(PGconn *pg, const char *what)
{
    fprintf(stderr, "bare_pg: %s: %s", what, PQerrorMessage(pg));
    _Exit(1);
}

/* Flushes the send buffer; watches EPOLLOUT as long as some is left. */
static void slot_flush(struct loop *lp, struct slot *s)
{
    struct epoll_event ev = {.events = EPOLLIN};
    int r = PQflush(s->pg);

    if (r < 0) {
        die_pg(s->pg, "PQflush");
    }
    if (r == s->want_out) {
        return;
    }
    ev.events |= r ? EPOLLOUT : 0;
    ev.data.u64 = TAG_SLOT0 + (uint64_t)(s - lp->slots);
    if (epoll_ctl(lp->epfd, EPOLL_CTL_MOD, PQsocket(s->pg), &ev) != 0) {
        perror("bare_pg: epoll_ctl");
        _Exit(1);
    }
    s->want_out = r;
}

static void slot_start(struct loop *lp, struct slot *s, struct req *rq)
{
    if (pipe_send(s->pg) != 0) {
        die_pg(s->pg, "pipeline");
    }
    s->busy = 1;
    s->req = rq;
    slot_flush(lp, s);
}

/* Reads what arrived; at the sync, resumes the request and starts the next. */
static void slot_event(struct loop *lp, struct slot *s, uint32_t events)
{
    struct req *rq;

    if (s->want_out) {
        slot_flush(lp, s);
    }
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) == 0) {
        return;
    }
    if (!PQconsumeInput(s->pg)) {
        die_pg(s->pg, "PQconsumeInput");
    }
    while (s->busy && !PQisBusy(s->pg)) {
        PGresult *res = PQgetResult(s->pg);

        if (res == NULL || !pipe_feed(s->pg, res, &s->ps)) {
            continue;
        }
        s->busy = 0;
        rq = s->req;
        s->req = NULL;
        pipe_finish(&s->ps, &rq->rep);
        rq->ready = 1;
        MHD_resume_connection(rq->connection);
        if (lp->head != NULL) {
            rq = lp->head;
            lp->head = rq->next;
            if (lp->head == NULL) {
                lp->tail = NULL;
            }
            slot_start(lp, s, rq);
        }
    }
}

static enum MHD_Result async_handler(void *cls, struct MHD_Connection *connection,
                                     const char *url, const char *method,
                                     const char *version, const char *upload_data,
                                     size_t *upload_data_size, void **req_cls)
{
    struct loop *lp = cls;
    struct req *rq = *req_cls;
    size_t i;

    (void)url;
    (void)method;
    (void)version;
    (void)upload_data;

    if (rq == NULL) {
        rq = calloc(1, sizeof(*rq));
        if (rq == NULL) {
            return MHD_NO;
        }
        rq->connection = connection;
        *req_cls = rq;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (lp->stopping && !rq->ready) {
        rq->rep.status = MHD_HTTP_SERVICE_UNAVAILABLE;
        rq->ready = 1;
    }
    if (rq->ready) {
        return queue_reply(connection, &rq->rep);
    }
    for (i = 0; i < lp->nslots && lp->slots[i].busy; i++) {
    }
    if (i < lp->nslots) {
        slot_start(lp, &lp->slots[i], rq);
    } else {
        if (lp->tail != NULL) {
            lp->tail->next = rq;
        } else {
            lp->head = rq;
        }
        lp->tail = rq;
    }
    MHD_suspend_connection(connection);
    return MHD_YES;
}

static void async_completed(void *cls, struct MHD_Connection *connection, void **req_cls,
                            enum MHD_RequestTerminationCode toe)
{
    struct req *rq = *req_cls;

    (void)cls;
    (void)connection;
    (void)toe;
    if (rq != NULL) {
        free(rq->rep.body);
        free(rq);
        *req_cls = NULL;
    }
}

/* Answers every suspended request with 503 so the daemon can be stopped. */
static void loop_drain(struct loop *lp)
{
    struct req *rq;
    size_t i;

    lp->stopping = 1;
    for (i = 0; i < lp->nslots; i++) {
        rq = lp->slots[i].req;
        lp->slots[i].req = NULL;
        if (rq != NULL) {
            rq->next = lp->head;
            lp->head = rq;
        }
    }
    while ((rq = lp->head) != NULL) {
        lp->head = rq->next;
        rq->rep.status = MHD_HTTP_SERVICE_UNAVAILABLE;
        rq->ready = 1;
        MHD_resume_connection(rq->connection);
    }
    lp->tail = NULL;
    for (i = 0; i < 3; i++) {
        (void)MHD_run(lp->daemon);
    }
}

static void *loop_run(void *arg)
{
    struct loop *lp = arg;
    struct epoll_event events[64];

    for (;;) {
        MHD_UNSIGNED_LONG_LONG mhd_timeout;
        int timeout = 1000;
        int n;
        int i;

        if (MHD_get_timeout(lp->daemon, &mhd_timeout) == MHD_YES && mhd_timeout < 1000) {
            timeout = (int)mhd_timeout;
        }
        n = epoll_wait(lp->epfd, events, 64, timeout);
        if (n < 0 && errno != EINTR) {
            perror("bare_pg: epoll_wait");
            _Exit(1);
        }
        for (i = 0; i < n; i++) {
            if (events[i].data.u64 == TAG_STOP) {
                loop_drain(lp);
                return NULL;
            }
            if (events[i].data.u64 >= TAG_SLOT0) {
                slot_event(lp, &lp->slots[events[i].data.u64 - TAG_SLOT0],
                           events[i].events);
            }
        }
        /* Accepts, reads, and processes the connections resumed above. */
        if (MHD_run(lp->daemon) != MHD_YES) {
            fprintf(stderr, "bare_pg: MHD_run failed\n");
        }
    }
}

static int epoll_add(int epfd, int fd, uint64_t tag)
{
    struct epoll_event ev = {.events = EPOLLIN};

    ev.data.u64 = tag;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        perror("bare_pg: epoll_ctl");
        return -1;
    }
    return 0;
}

static int loop_init(struct loop *lp, size_t nslots, const struct sockaddr_in *addr,
                     const char *conninfo, int stop_fd)
{
    const union MHD_DaemonInfo *info;
    size_t i;

    lp->epfd = epoll_create1(EPOLL_CLOEXEC);
    lp->slots = calloc(nslots, sizeof(*lp->slots));
    if (lp->epfd < 0 || lp->slots == NULL) {
        perror("bare_pg: loop setup");
        return -1;
    }
    lp->nslots = nslots;
    for (i = 0; i < nslots; i++) {
        lp->slots[i].pg = pg_open(conninfo);
        if (lp->slots[i].pg == NULL) {
            return -1;
        }
        if (PQsetnonblocking(lp->slots[i].pg, 1) != 0 ||
            PQenterPipelineMode(lp->slots[i].pg) != 1) {
            fprintf(stderr, "bare_pg: pipeline setup: %s", PQerrorMessage(lp->slots[i].pg));
            return -1;
        }
        if (epoll_add(lp->epfd, PQsocket(lp->slots[i].pg), TAG_SLOT0 + i) != 0) {
            return -1;
        }
    }
    lp->daemon = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC | MHD_USE_ERROR_LOG,
        ntohs(addr->sin_port), NULL, NULL, async_handler, lp, MHD_OPTION_SOCK_ADDR,
        (const struct sockaddr *)addr, MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1,
        MHD_OPTION_NOTIFY_COMPLETED, async_completed, lp, MHD_OPTION_END);
    if (lp->daemon == NULL) {
        fprintf(stderr, "bare_pg: cannot start daemon on 127.0.0.1:%u\n",
                (unsigned int)ntohs(addr->sin_port));
        return -1;
    }
    info = MHD_get_daemon_info(lp->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    if (info == NULL) {
        fprintf(stderr, "bare_pg: no daemon epoll fd\n");
        return -1;
    }
    return epoll_add(lp->epfd, info->epoll_fd, TAG_MHD) != 0 ||
                   epoll_add(lp->epfd, stop_fd, TAG_STOP) != 0
               ? -1
               : 0;
}

static void loop_free(struct loop *lp)
{
    size_t i;

    if (lp->daemon != NULL) {
        MHD_stop_daemon(lp->daemon);
    }
    for (i = 0; i < lp->nslots; i++) {
        PQclear(lp->slots[i].ps.row);
        PQfinish(lp->slots[i].pg);
    }
    free(lp->slots);
    if (lp->epfd >= 0) {
        close(lp->epfd);
    }
}

/* ---- main ---- */

static int run_async(long threads, long conns, const struct sockaddr_in *addr,
                     const char *conninfo, sigset_t *stop_signals)
{
    struct loop *loops = calloc((size_t)threads, sizeof(*loops));
    int stop_fd = eventfd(0, EFD_CLOEXEC);
    long started = 0;
    long i;
    int rc = 1;

    if (loops == NULL || stop_fd < 0) {
        perror("bare_pg: setup");
        goto out;
    }
    for (i = 0; i < threads; i++) {
        loops[i].epfd = -1;
    }
    for (i = 0; i < threads; i++) {
        /* CONNS split over the threads, the remainder to the first ones. */
        long n = conns / threads + (i < conns % threads ? 1 : 0);

        if (loop_init(&loops[i], (size_t)(n > 0 ? n : 1), addr, conninfo, stop_fd) != 0) {
            goto out;
        }
    }
    for (; started < threads; started++) {
        if (pthread_create(&loops[started].thread, NULL, loop_run, &loops[started]) != 0) {
            fprintf(stderr, "bare_pg: cannot start thread\n");
            break;
        }
    }
    if (started == threads) {
        fprintf(stderr,
                "bare_pg: async, listening on http://127.0.0.1:%u/ with %ld loops\n",
                (unsigned int)ntohs(addr->sin_port), threads);
        bare_wait_for_stop(stop_signals, "bare_pg");
        rc = 0;
    }
    /* The eventfd stays readable, so one write wakes every loop. */
    if (eventfd_write(stop_fd, 1) != 0) {
        perror("bare_pg: eventfd_write");
        _Exit(1);
    }
    for (i = 0; i < started; i++) {
        pthread_join(loops[i].thread, NULL);
    }
out:
    for (i = 0; loops != NULL && i < threads; i++) {
        loop_free(&loops[i]);
    }
    free(loops);
    if (stop_fd >= 0) {
        close(stop_fd);
    }
    return rc;
}

static int run_block(long threads, long conns, const struct sockaddr_in *addr,
                     const char *conninfo, sigset_t *stop_signals)
{
    struct pool pool = {.lock = PTHREAD_MUTEX_INITIALIZER,
                        .freed = PTHREAD_COND_INITIALIZER};
    struct MHD_Daemon *mhd;
    int rc = 1;
    size_t i;

    pool.all = calloc((size_t)conns, sizeof(*pool.all));
    pool.idle = calloc((size_t)conns, sizeof(*pool.idle));
    if (pool.all == NULL || pool.idle == NULL) {
        perror("bare_pg: setup");
        goto out;
    }
    for (; pool.n < (size_t)conns; pool.n++) {
        pool.all[pool.n] = pg_open(conninfo);
        if (pool.all[pool.n] == NULL) {
            goto out;
        }
        if (PQenterPipelineMode(pool.all[pool.n]) != 1) {
            fprintf(stderr, "bare_pg: pipeline setup: %s",
                    PQerrorMessage(pool.all[pool.n]));
            pool.n++;
            goto out;
        }
        pool.idle[pool.nidle++] = pool.all[pool.n];
    }
    mhd = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG,
                           ntohs(addr->sin_port), NULL, NULL, block_handler, &pool,
                           MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)addr,
                           MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)threads,
                           MHD_OPTION_END);
    if (mhd == NULL) {
        fprintf(stderr, "bare_pg: cannot start daemon on 127.0.0.1:%u\n",
                (unsigned int)ntohs(addr->sin_port));
        goto out;
    }
    fprintf(stderr, "bare_pg: block, listening on http://127.0.0.1:%u/ with %ld threads\n",
            (unsigned int)ntohs(addr->sin_port), threads);
    bare_wait_for_stop(stop_signals, "bare_pg");
    MHD_stop_daemon(mhd);
    rc = 0;
out:
    for (i = 0; i < pool.n; i++) {
        PQfinish(pool.all[i]);
    }
    free(pool.all);
    free(pool.idle);
    return rc;
}

int main(int argc, char **argv)
{
    long port;
    long threads;
    long conns;
    int async;
    struct sockaddr_in addr;
    sigset_t stop_signals;

    if (argc != 6 || (strcmp(argv[1], "block") != 0 && strcmp(argv[1], "async") != 0) ||
        bare_parse_long(argv[2], 1, 65535, &port) != 0 ||
        bare_parse_long(argv[3], 1, BARE_MAX_THREADS, &threads) != 0 ||
        bare_parse_long(argv[4], 1, BARE_MAX_CONNS, &conns) != 0) {
        fprintf(stderr,
                "usage: %s block|async PORT THREADS CONNS CONNINFO\n"
                "       (PORT 1..65535, THREADS 1..%d, CONNS 1..%d)\n",
                argc > 0 ? argv[0] : "bare_pg", BARE_MAX_THREADS, BARE_MAX_CONNS);
        return 2;
    }
    async = strcmp(argv[1], "async") == 0;
    if (getenv("BARE_TENANT_ID") != NULL) {
        tenant_id = getenv("BARE_TENANT_ID");
    }
    if (getenv("BARE_USER_ID") != NULL) {
        user_id = getenv("BARE_USER_ID");
    }
    if (bare_random_hex(scope_key, sizeof scope_key) != 0) {
        fprintf(stderr, "bare_pg: no random bytes for the scope key\n");
        return 1;
    }

    if (bare_block_stop_signals(&stop_signals, "bare_pg") != 0) {
        return 1;
    }
    bare_loopback(&addr, port);

    return async ? run_async(threads, conns, &addr, argv[5], &stop_signals)
                 : run_block(threads, conns, &addr, argv[5], &stop_signals);
}
