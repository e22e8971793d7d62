/* slotload — streams the W1 workload to slotd and reports throughput,
 * ack latency and the server's memory per million trades.
 *
 * One thread, one libuv loop: slotd and slotload share two cores, so the
 * client must cost as little as possible while the clock runs. Every batch
 * body (the msgpack array of trades) is therefore encoded before the timed
 * phase; sending a batch is a 12-byte header ["T", seq, ...] plus a pointer
 * into that buffer, handed to one writev. Replies are parsed with
 * msgpack-c's streaming unpacker straight out of the read buffer.
 *
 * Closed loop (--rate 0): each connection keeps --inflight batches in
 * flight; latency runs from the write to the ACK. Open loop (--rate R):
 * batch k is due at start + k * batch / R whatever happened before, a
 * timerfd wakes the loop at the due time (libuv timers only have ms
 * resolution), and latency runs from the *due* time, so a server that
 * falls behind is charged for the queueing it causes (no coordinated
 * omission). A due batch with no free in-flight slot waits for an ACK.
 */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <uv.h>

#include "slotload.h"

/* ---- time ---------------------------------------------------------------- */

/* CLOCK_MONOTONIC in ns: the clock the timerfd is armed on. */
static uint64_t sl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* This process's user and system CPU seconds so far: the client's share of
 * the two cores it shares with slotd goes in the report. */
static void sl_cpu(double *user, double *sys)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
    *sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- the client ---------------------------------------------------------- */

enum { SL_CONNECTING, SL_HELLO, SL_READY, SL_CLOSED };
enum { SL_PHASE_CONNECT, SL_PHASE_RUN, SL_PHASE_DRAIN, SL_PHASE_DONE };

typedef struct sl_flight {
    uint64_t seq;
    uint64_t t0; /* send time (closed loop) or due time (open loop) */
    uint32_t ntrades;
} sl_flight;

struct sl_run;

typedef struct sl_conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    struct sl_run *run;
    int state;
    char name[96];
    uint64_t next_seq;
    msgpack_unpacker up;
    sl_flight *fl; /* FIFO ring of cfg->inflight: ACKs come back in order */
    uint32_t head, count;
} sl_conn;

/* A batch write: the header lives here, the body in the shared buffer. */
typedef struct sl_wreq {
    uv_write_t req;
    char hdr[16];
} sl_wreq;

typedef struct sl_run {
    const sl_config *cfg;
    uv_loop_t *loop;
    sl_batches bt;
    sl_conn *conns;
    uint32_t nready, rr;
    int phase;
    uint64_t dispatched;   /* batches handed to connections so far */
    uint64_t limit;        /* batches to send; UINT64_MAX in --duration mode */
    uint64_t t_start, t_deadline, t_last;
    double interval_ns;    /* open loop: ns between batch due times */
    int tfd;
    uv_poll_t tpoll;
    uv_timer_t tick;
    uv_signal_t sigint;
    int tpoll_on;
    /* per-second state */
    uint64_t second, prev_acked, last_progress_ns;
    uint64_t last_replies, t_reply; /* the stall watchdog */
    hist *lat_sec;
    FILE *csv, *prog;
    int prog_tty;
    sl_result *res;
} sl_run;

static void sl_pump(sl_run *r);
static void sl_finish(sl_run *r);

/* Stop the run early: the first reason given is the one reported. */
__attribute__((format(printf, 2, 3))) static void sl_fatal(sl_run *r, const char *fmt, ...)
{
    if (!r->res->fatal) {
        va_list ap;
        va_start(ap, fmt);
        r->res->fatal = 1;
        vsnprintf(r->res->fatal_msg, sizeof r->res->fatal_msg, fmt, ap);
        va_end(ap);
    }
    r->limit = r->dispatched; /* send nothing more */
    sl_finish(r);
}

static void sl_count_err(sl_result *res, const char *code, size_t len)
{
    if (len >= sizeof res->errs[0].code)
        len = sizeof res->errs[0].code - 1;
    for (int i = 0; i < res->nerrs; i++)
        if (strlen(res->errs[i].code) == len && memcmp(res->errs[i].code, code, len) == 0) {
            res->errs[i].batches++;
            return;
        }
    int i = res->nerrs < SL_MAX_CODES ? res->nerrs++ : SL_MAX_CODES - 1;
    memcpy(res->errs[i].code, code, len);
    res->errs[i].code[len] = '\0';
    res->errs[i].batches = 1;
}

static void sl_on_close(uv_handle_t *h) { (void)h; }

static void sl_conn_close(sl_conn *c, const char *why)
{
    if (c->state == SL_CLOSED)
        return;
    if (c->count) { /* batches that will never be answered */
        c->run->res->lost_batches += c->count;
        for (uint32_t i = 0; i < c->count; i++)
            sl_count_err(c->run->res, why, strlen(why));
        c->count = 0;
    }
    if (c->state == SL_READY && c->run->nready)
        c->run->nready--;
    c->state = SL_CLOSED;
    uv_close((uv_handle_t *)&c->tcp, sl_on_close);
}

/* All connections drained (or dead): stop timers so uv_run returns. */
static void sl_finish(sl_run *r)
{
    if (r->phase == SL_PHASE_DONE)
        return;
    if (r->phase == SL_PHASE_RUN)
        r->phase = SL_PHASE_DRAIN;
    if (!r->res->fatal)
        for (uint32_t i = 0; i < r->cfg->connections; i++)
            if (r->conns[i].state != SL_CLOSED && r->conns[i].count)
                return;
    r->phase = SL_PHASE_DONE;
    if (r->t_start) {
        double u, sy;
        sl_cpu(&u, &sy);
        r->res->cpu_user = u - r->res->cpu_user;
        r->res->cpu_sys = sy - r->res->cpu_sys;
    }
    for (uint32_t i = 0; i < r->cfg->connections; i++)
        sl_conn_close(&r->conns[i], "DISCONNECTED");
    uv_close((uv_handle_t *)&r->tick, sl_on_close);
    uv_close((uv_handle_t *)&r->sigint, sl_on_close);
    if (r->tpoll_on)
        uv_close((uv_handle_t *)&r->tpoll, sl_on_close);
}

static void sl_on_write(uv_write_t *req, int status)
{
    sl_conn *c = req->data;
    free(req);
    if (status < 0 && c->state != SL_CLOSED) {
        sl_conn_close(c, "DISCONNECTED");
        sl_fatal(c->run, "write failed: %s", uv_strerror(status));
    }
}

/* ["T", seq, <body>]: fixarray 3, fixstr "T", then seq as a msgpack uint. */
static size_t sl_batch_header(char *h, uint64_t seq)
{
    size_t n = 0;
    h[n++] = (char)0x93;
    h[n++] = (char)0xa1;
    h[n++] = 'T';
    if (seq < 128) {
        h[n++] = (char)seq;
        return n;
    }
    h[n++] = (char)0xcf; /* uint64, big endian: always valid, 9 bytes */
    for (int i = 7; i >= 0; i--)
        h[n++] = (char)(seq >> (i * 8));
    return n;
}

static void sl_send(sl_conn *c, uint64_t k, uint64_t t0)
{
    sl_run *r = c->run;
    uint64_t b = k % r->bt.n; /* --duration cycles through the pool */
    sl_wreq *w = malloc(sizeof *w);
    if (!w) {
        sl_fatal(r, "out of memory");
        return;
    }
    size_t hl = sl_batch_header(w->hdr, c->next_seq);
    size_t blen = r->bt.off[b + 1] - r->bt.off[b];
    uv_buf_t bufs[2] = {uv_buf_init(w->hdr, (unsigned)hl),
                        uv_buf_init(r->bt.buf.data + r->bt.off[b], (unsigned)blen)};
    sl_flight *f = &c->fl[(c->head + c->count) % r->cfg->inflight];
    f->seq = c->next_seq++;
    f->t0 = t0;
    if (r->cfg->rate > 0) {
        uint64_t now = sl_now();
        hist_record(r->res->lag, now > t0 ? now - t0 : 0);
    }
    f->ntrades = r->bt.ntrades[b];
    c->count++;
    r->dispatched++;
    r->res->sent_batches++;
    r->res->sent_trades += f->ntrades;
    r->res->wire_bytes += hl + blen;
    w->req.data = c;
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, 2, sl_on_write);
    if (rc < 0) {
        free(w);
        sl_conn_close(c, "DISCONNECTED");
        sl_fatal(r, "write failed: %s", uv_strerror(rc));
    }
}

/* The next ready connection with a free in-flight slot, round robin. */
static sl_conn *sl_pick(sl_run *r)
{
    uint32_t n = r->cfg->connections;
    for (uint32_t i = 0; i < n; i++) {
        sl_conn *c = &r->conns[(r->rr + i) % n];
        if (c->state == SL_READY && c->count < r->cfg->inflight) {
            r->rr = (r->rr + i + 1) % n;
            return c;
        }
    }
    return NULL;
}

static void sl_arm(sl_run *r, uint64_t due)
{
    struct itimerspec its = {{0, 0}, {(time_t)(due / 1000000000ull), (long)(due % 1000000000ull)}};
    timerfd_settime(r->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* Send every batch that is due and has a free slot; re-arm for the next. */
static void sl_pump(sl_run *r)
{
    if (r->phase != SL_PHASE_RUN)
        return;
    while (r->dispatched < r->limit) {
        /* The clock per batch (a vDSO call): each write gets its own t0. */
        uint64_t now = sl_now(), due = now;
        if (r->cfg->rate > 0)
            due = r->t_start + (uint64_t)((double)r->dispatched * r->interval_ns);
        /* Open loop: every batch due before the deadline is sent, however
         * late (dropping the backlog would hide the queueing it measures). */
        if (r->t_deadline && (r->cfg->rate > 0 ? due >= r->t_deadline : now >= r->t_deadline)) {
            r->limit = r->dispatched;
            break;
        }
        if (due > now) {
            sl_arm(r, due);
            return;
        }
        sl_conn *c = sl_pick(r);
        if (!c)
            return; /* every slot taken: the next ACK pumps again */
        sl_send(c, r->dispatched, due);
        if (r->phase != SL_PHASE_RUN)
            return;
    }
    sl_finish(r);
}

static void sl_on_timerfd(uv_poll_t *p, int status, int events)
{
    sl_run *r = p->data;
    uint64_t expirations;
    (void)status;
    (void)events;
    if (read(r->tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
        return;
    sl_pump(r);
}

/* ---- replies ------------------------------------------------------------- */

static int sl_is(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n && memcmp(o->via.str.ptr, s, n) == 0;
}

static uint64_t sl_u64(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? o->via.u64 : 0;
}

static void sl_on_welcome(sl_conn *c, const msgpack_object *a, uint32_t n)
{
    sl_run *r = c->run;
    uint64_t last = 0;
    if (n >= 2 && a[1].type == MSGPACK_OBJECT_MAP)
        for (uint32_t i = 0; i < a[1].via.map.size; i++)
            if (sl_is(&a[1].via.map.ptr[i].key, "last_seq"))
                last = sl_u64(&a[1].via.map.ptr[i].val);
    c->next_seq = last + 1;
    c->state = SL_READY;
    if (++r->nready == r->cfg->connections) {
        r->phase = SL_PHASE_RUN;
        r->t_start = r->t_last = r->last_progress_ns = sl_now();
        sl_cpu(&r->res->cpu_user, &r->res->cpu_sys);
        if (r->cfg->duration > 0)
            r->t_deadline = r->t_start + (uint64_t)(r->cfg->duration * 1e9);
        sl_pump(r);
    }
}

/* ACK or ERR for the oldest in-flight batch. */
static void sl_on_reply(sl_conn *c, const msgpack_object *a, uint32_t n, int is_ack)
{
    sl_run *r = c->run;
    uint64_t seq = n >= 2 ? sl_u64(&a[1]) : 0;
    if (c->count == 0 || c->fl[c->head].seq != seq) {
        if (!is_ack && n >= 4 && a[2].type == MSGPACK_OBJECT_STR) {
            char code[64], msg[160];
            snprintf(code, sizeof code, "%.*s", (int)a[2].via.str.size, a[2].via.str.ptr);
            snprintf(msg, sizeof msg, "%.*s",
                     a[3].type == MSGPACK_OBJECT_STR ? (int)a[3].via.str.size : 0,
                     a[3].type == MSGPACK_OBJECT_STR ? a[3].via.str.ptr : "");
            sl_conn_close(c, code);
            sl_fatal(r, "server error %s: %s", code, msg);
        } else {
            sl_conn_close(c, "PROTOCOL");
            sl_fatal(r, "reply out of order on %s", c->name);
        }
        return;
    }
    sl_flight *f = &c->fl[c->head];
    uint64_t now = sl_now();
    uint64_t lat = now > f->t0 ? now - f->t0 : 0;
    c->head = (c->head + 1) % r->cfg->inflight;
    c->count--;
    r->t_last = now;
    hist_record(r->res->lat, lat);
    hist_record(r->lat_sec, lat);
    if (is_ack) {
        r->res->acked_batches++;
        r->res->acked_trades += n >= 3 ? sl_u64(&a[2]) : 0;
        return;
    }
    r->res->err_batches++;
    if (n >= 3 && a[2].type == MSGPACK_OBJECT_STR)
        sl_count_err(r->res, a[2].via.str.ptr, a[2].via.str.size);
    else
        sl_count_err(r->res, "ERR", 3);
    if (r->res->err_batches <= 5 && n >= 4 && a[3].type == MSGPACK_OBJECT_STR)
        fprintf(stderr, "slotload: batch %llu on %s: %.*s\n", (unsigned long long)seq, c->name,
                (int)a[3].via.str.size, a[3].via.str.ptr);
}

static void sl_dispatch(sl_conn *c, const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size == 0) {
        sl_conn_close(c, "PROTOCOL");
        sl_fatal(c->run, "unexpected reply on %s", c->name);
        return;
    }
    const msgpack_object *a = o->via.array.ptr;
    uint32_t n = o->via.array.size;
    if (sl_is(&a[0], "ACK"))
        sl_on_reply(c, a, n, 1);
    else if (sl_is(&a[0], "ERR"))
        sl_on_reply(c, a, n, 0);
    else if (sl_is(&a[0], "WELCOME") && c->state == SL_HELLO)
        sl_on_welcome(c, a, n);
    /* anything else (an R we did not ask for) is ignored */
}

static void sl_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    sl_conn *c = h->data;
    (void)suggested;
    /* Read straight into the unpacker's buffer: no copy. */
    if (!msgpack_unpacker_reserve_buffer(&c->up, 64 << 10)) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init(msgpack_unpacker_buffer(&c->up),
                       (unsigned)msgpack_unpacker_buffer_capacity(&c->up));
}

static void sl_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    sl_conn *c = s->data;
    sl_run *r = c->run;
    (void)buf;
    if (nread < 0) {
        int busy = c->count > 0 || r->phase == SL_PHASE_CONNECT;
        sl_conn_close(c, "DISCONNECTED");
        if (busy)
            sl_fatal(r, "connection closed by the server (%s)", uv_strerror((int)nread));
        else
            sl_finish(r);
        return;
    }
    if (nread == 0)
        return;
    msgpack_unpacker_buffer_consumed(&c->up, (size_t)nread);
    msgpack_unpacked m;
    msgpack_unpacked_init(&m);
    int rc;
    while (c->state != SL_CLOSED && (rc = msgpack_unpacker_next(&c->up, &m)) == MSGPACK_UNPACK_SUCCESS)
        sl_dispatch(c, &m.data);
    msgpack_unpacked_destroy(&m);
    if (c->state != SL_CLOSED && rc == MSGPACK_UNPACK_PARSE_ERROR) {
        sl_conn_close(c, "PROTOCOL");
        sl_fatal(r, "unparsable reply on %s", c->name);
        return;
    }
    if (r->phase == SL_PHASE_RUN)
        sl_pump(r);
    else if (r->phase == SL_PHASE_DRAIN)
        sl_finish(r);
}

static void sl_on_hello_written(uv_write_t *req, int status)
{
    sl_conn *c = req->data;
    free(((sl_buf *)(req + 1))->data); /* struct hello_req: the buffer follows */
    free(req);
    if (status < 0 && c->state != SL_CLOSED) {
        sl_conn_close(c, "DISCONNECTED");
        sl_fatal(c->run, "HELLO failed: %s", uv_strerror(status));
    }
}

static void sl_on_connect(uv_connect_t *req, int status)
{
    sl_conn *c = req->data;
    if (status < 0) {
        sl_conn_close(c, "CONNECT");
        sl_fatal(c->run, "cannot connect: %s", uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, sl_alloc, sl_on_read);
    /* ["HELLO", {"client": name}]; the bytes live with the request. */
    struct hello_req {
        uv_write_t req;
        sl_buf b;
    } *w = calloc(1, sizeof *w);
    if (!w) {
        sl_fatal(c->run, "out of memory");
        return;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, &w->b, sl_buf_write);
    msgpack_pack_array(&pk, 2);
    sl_pack_str(&pk, "HELLO", 5);
    msgpack_pack_map(&pk, 1);
    sl_pack_str(&pk, "client", 6);
    sl_pack_str(&pk, c->name, strlen(c->name));
    uv_buf_t ub = uv_buf_init(w->b.data, (unsigned)w->b.len);
    w->req.data = c;
    c->state = SL_HELLO;
    uv_write(&w->req, (uv_stream_t *)&c->tcp, &ub, 1, sl_on_hello_written);
}

/* ---- once a second ------------------------------------------------------- */

static void sl_on_tick(uv_timer_t *t)
{
    sl_run *r = t->data;
    sl_result *res = r->res;
    uint64_t now = sl_now(), inflight = 0;
    for (uint32_t i = 0; i < r->cfg->connections; i++)
        inflight += r->conns[i].count;
    if (r->phase == SL_PHASE_RUN || r->phase == SL_PHASE_DRAIN) {
        r->second++;
        double dt = (double)(now - r->last_progress_ns) / 1e9;
        double rate = dt > 0 ? (double)(res->acked_trades - r->prev_acked) / dt : 0;
        uint64_t errs = res->err_batches + res->lost_batches;
        if (r->csv)
            sl_csv_row(r->csv, r->second, rate, res->acked_trades, errs, r->lat_sec);
        if (r->prog)
            sl_progress(r->prog, r->prog_tty, (double)(now - r->t_start) / 1e9, rate,
                        res->acked_trades, errs, hist_quantile(r->lat_sec, 0.99), inflight);
        hist_reset(r->lat_sec);
        r->prev_acked = res->acked_trades;
        r->last_progress_ns = now;
    }
    /* Watchdog: a run always ends, even against a server that went silent.
     * The clock runs while a connection is pending or a batch is unanswered. */
    uint64_t replies = res->acked_batches + res->err_batches;
    if (replies != r->last_replies || (r->phase != SL_PHASE_CONNECT && inflight == 0)) {
        r->last_replies = replies;
        r->t_reply = now;
    }
    if (r->cfg->stall_timeout > 0 && (double)(now - r->t_reply) / 1e9 > r->cfg->stall_timeout) {
        sl_fatal(r, "nothing answered for %.0f s: giving up", r->cfg->stall_timeout);
        return;
    }
    sl_pump(r);
}

static void sl_on_sigint(uv_signal_t *s, int signum)
{
    sl_run *r = s->data;
    (void)signum;
    if (r->phase == SL_PHASE_DRAIN || r->phase == SL_PHASE_CONNECT) {
        fprintf(stderr, "\nslotload: interrupted twice, exiting\n");
        exit(130);
    }
    fprintf(stderr, "\nslotload: interrupted: draining in-flight batches (again to quit)\n");
    r->limit = r->dispatched;
    sl_finish(r);
}

/* ---- setup --------------------------------------------------------------- */

static int sl_resolve(const char *host, int port, struct sockaddr_storage *out)
{
    struct addrinfo hints = {0}, *ai;
    char ps[16];
    hints.ai_socktype = SOCK_STREAM;
    snprintf(ps, sizeof ps, "%d", port);
    if (getaddrinfo(host, ps, &hints, &ai) != 0)
        return -1;
    memcpy(out, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return 0;
}

static int sl_conns_start(sl_run *r, const struct sockaddr *addr)
{
    const sl_config *cfg = r->cfg;
    /* A name no earlier run used, so every connection starts at last_seq 0. */
    unsigned long long nonce = (unsigned long long)time(NULL) ^ ((unsigned long long)sl_now() << 20);
    for (uint32_t i = 0; i < cfg->connections; i++) {
        sl_conn *c = &r->conns[i];
        c->run = r;
        c->state = SL_CONNECTING;
        snprintf(c->name, sizeof c->name, "%.40s-%d-%llx-%u", cfg->client_prefix, (int)getpid(),
                 nonce & 0xffffffffffull, i);
        c->fl = calloc(cfg->inflight, sizeof *c->fl);
        if (!c->fl || !msgpack_unpacker_init(&c->up, 64 << 10))
            return -1;
        uv_tcp_init(r->loop, &c->tcp);
        c->tcp.data = c;
        c->creq.data = c;
        int rc = uv_tcp_connect(&c->creq, &c->tcp, addr, sl_on_connect);
        if (rc < 0) {
            fprintf(stderr, "slotload: connect: %s\n", uv_strerror(rc));
            return -1;
        }
    }
    return 0;
}

static int sl_run_loop(const sl_config *cfg, sl_run *r)
{
    struct sockaddr_storage addr;
    if (sl_resolve(cfg->host, cfg->port, &addr) != 0) {
        fprintf(stderr, "slotload: cannot resolve %s\n", cfg->host);
        return -1;
    }
    r->loop = uv_default_loop();
    r->conns = calloc(cfg->connections, sizeof *r->conns);
    r->lat_sec = malloc(sizeof *r->lat_sec);
    if (!r->conns || !r->lat_sec)
        return -1;
    hist_reset(r->lat_sec);
    r->limit = cfg->trades ? r->bt.n : UINT64_MAX;
    if (cfg->rate > 0)
        r->interval_ns = (double)cfg->batch * 1e9 / cfg->rate;
    r->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (r->tfd < 0)
        return -1;
    uv_poll_init(r->loop, &r->tpoll, r->tfd);
    r->tpoll.data = r;
    uv_poll_start(&r->tpoll, UV_READABLE, sl_on_timerfd);
    r->tpoll_on = 1;
    uv_timer_init(r->loop, &r->tick);
    r->tick.data = r;
    uv_timer_start(&r->tick, sl_on_tick, 1000, 1000);
    uv_signal_init(r->loop, &r->sigint);
    r->sigint.data = r;
    uv_signal_start(&r->sigint, sl_on_sigint, SIGINT);
    r->t_reply = sl_now();
    if (sl_conns_start(r, (const struct sockaddr *)&addr) != 0)
        return -1;
    uv_run(r->loop, UV_RUN_DEFAULT);
    if (r->prog)
        sl_progress_end(r->prog, r->prog_tty);
    r->res->seconds = r->t_start && r->t_last > r->t_start ? (double)(r->t_last - r->t_start) / 1e9 : 0;
    close(r->tfd);
    for (uint32_t i = 0; i < cfg->connections; i++) {
        free(r->conns[i].fl);
        msgpack_unpacker_destroy(&r->conns[i].up);
    }
    free(r->conns);
    free(r->lat_sec);
    uv_loop_close(r->loop);
    return 0;
}

int main(int argc, char **argv)
{
    sl_config cfg;
    if (sl_parse_args(argc, argv, &cfg) != 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    sl_result res = {0};
    sl_run run = {0};
    run.cfg = &cfg;
    run.res = &res;
    res.lat = malloc(sizeof *res.lat);
    res.lag = malloc(sizeof *res.lag);
    if (!res.lat || !res.lag)
        return 2;
    hist_reset(res.lat);
    hist_reset(res.lag);

    if (cfg.export_format) {
        if (sl_export(&cfg, cfg.export_format, cfg.export_path) != 0) {
            fprintf(stderr, "slotload: cannot export to %s: %s\n", cfg.export_path, strerror(errno));
            return 2;
        }
        return 0;
    }
    uint64_t t0 = sl_now();
    uint64_t pool = sl_pool_trades(&cfg);
    if (sl_encode(&cfg, pool, &run.bt) != 0) {
        fprintf(stderr, "slotload: cannot encode %llu trades (out of memory?)\n", (unsigned long long)pool);
        return 2;
    }
    res.encode_seconds = (double)(sl_now() - t0) / 1e9;
    if (!cfg.json)
        fprintf(stderr, "slotload: encoded %llu trades in %llu batches (%.1f MB) in %.2f s%s\n",
                (unsigned long long)pool, (unsigned long long)run.bt.n, (double)run.bt.buf.len / 1e6,
                res.encode_seconds,
                cfg.duration > 0 ? "; reused in a cycle if the run needs more (--pool)" : "");

    if (cfg.http_port && sl_fetch_stats(cfg.host, cfg.http_port, &res.before) != 0)
        fprintf(stderr, "slotload: warning: GET /stats on port %d failed: no memory figures\n",
                cfg.http_port);
    if (cfg.csv) {
        run.csv = fopen(cfg.csv, "w");
        if (!run.csv) {
            fprintf(stderr, "slotload: cannot write %s: %s\n", cfg.csv, strerror(errno));
            return 2;
        }
        sl_csv_header(run.csv);
    }
    if (cfg.progress) {
        run.prog = cfg.json ? stderr : stdout; /* keep stdout pure JSON */
        run.prog_tty = isatty(fileno(run.prog));
    }
    if (sl_run_loop(&cfg, &run) != 0) {
        fprintf(stderr, "slotload: set-up failed\n");
        return 2;
    }
    if (run.csv)
        fclose(run.csv);
    if (res.fatal && res.sent_batches == 0) { /* never got going: no report to give */
        fprintf(stderr, "slotload: %s\n", res.fatal_msg);
        return 2;
    }
    if (cfg.http_port && sl_fetch_stats(cfg.host, cfg.http_port, &res.after) != 0)
        fprintf(stderr, "slotload: warning: GET /stats after the run failed\n");
    if (cfg.json)
        sl_report_json(stdout, &cfg, &res);
    else
        sl_report_text(stdout, &cfg, &res);
    if (res.fatal)
        fprintf(stderr, "slotload: %s\n", res.fatal_msg);
    sl_batches_free(&run.bt);
    free(res.lat);
    free(res.lag);
    int failed = res.fatal || res.err_batches || res.lost_batches ||
                 res.acked_batches != res.sent_batches;
    return failed ? 1 : 0;
}
