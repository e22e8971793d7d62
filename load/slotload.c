/* slotload — streams the W1 workload to slotd and reports throughput,
 * ack latency and the server's memory per million trades.
 *
 * One thread, one libuv loop: slotd and slotload share two cores, so the
 * client must cost as little as possible while the clock runs. Every batch
 * body (the msgpack array of trades) is therefore encoded before the timed
 * phase. The protocol is libslotd-client's (proto/client, the official C
 * client): one non-blocking sender per connection, its socket watched by a
 * uv_poll_t and its timer by a uv_timer_t; a batch is handed over with
 * slotd_send_raw, ACKs come back through on_ack, refused batches through
 * on_error. Reconnects, resends and seqs are the library's.
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
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "slotd/client.h"
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

enum { SL_PHASE_RUN = 1, SL_PHASE_DRAIN, SL_PHASE_DONE };

typedef struct sl_flight {
    uint64_t t0; /* send time (closed loop) or due time (open loop) */
    uint32_t ntrades;
} sl_flight;

struct sl_run;

typedef struct sl_conn {
    struct sl_run *run;
    slotd_sender *s;
    uv_poll_t *poll;  /* on the sender's socket; a new one per socket */
    int events;       /* what poll watches (UV_READABLE | UV_WRITABLE) */
    uv_timer_t timer; /* the sender's next deadline (back-off, ...) */
    char name[96];
    uint64_t sent;    /* batches handed over: approximates the seq for wire_bytes */
    sl_flight *fl;    /* FIFO ring of cfg->inflight: ACKs come back in order */
    uint32_t head, count;
} sl_conn;

typedef struct sl_run {
    const sl_config *cfg;
    uv_loop_t *loop;
    sl_batches bt;
    sl_conn *conns;
    uint32_t rr;
    int phase;
    uint64_t dispatched;   /* batches handed to connections so far */
    uint64_t limit;        /* batches to send; UINT64_MAX in --duration mode */
    uint64_t t_start, t_deadline, t_last;
    double interval_ns;    /* open loop: ns between batch due times */
    int tfd;
    uv_poll_t tpoll;
    uv_timer_t tick;
    uv_signal_t sigint;
    uv_idle_t closer;      /* closes the senders outside their callbacks */
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
static void sl_on_poll(uv_poll_t *p, int status, int events);

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

static void sl_on_close_free(uv_handle_t *h) { free(h); }
static void sl_on_close(uv_handle_t *h) { (void)h; }

/* After the last callback of the run: the senders go (closing their
 * sockets through sl_on_socket), then the idle handle itself. */
static void sl_on_closer(uv_idle_t *h)
{
    sl_run *r = h->data;
    for (uint32_t i = 0; i < r->cfg->connections; i++) {
        sl_conn *c = &r->conns[i];
        if (c->count) /* batches that will never be answered */
            r->res->lost_batches += c->count;
        c->count = 0;
        if (c->s)
            slotd_sender_close(c->s, 0);
        c->s = NULL;
        uv_close((uv_handle_t *)&c->timer, sl_on_close);
    }
    uv_close((uv_handle_t *)h, sl_on_close);
}

/* All connections drained (or the run stopped): close everything so
 * uv_run returns. */
static void sl_finish(sl_run *r)
{
    if (r->phase == SL_PHASE_DONE)
        return;
    if (r->phase == SL_PHASE_RUN)
        r->phase = SL_PHASE_DRAIN;
    if (!r->res->fatal)
        for (uint32_t i = 0; i < r->cfg->connections; i++)
            if (r->conns[i].count)
                return;
    r->phase = SL_PHASE_DONE;
    if (r->t_start) {
        double u, sy;
        sl_cpu(&u, &sy);
        r->res->cpu_user = u - r->res->cpu_user;
        r->res->cpu_sys = sy - r->res->cpu_sys;
    }
    uv_idle_start(&r->closer, sl_on_closer);
    uv_close((uv_handle_t *)&r->tick, sl_on_close);
    uv_close((uv_handle_t *)&r->sigint, sl_on_close);
    if (r->tpoll_on)
        uv_close((uv_handle_t *)&r->tpoll, sl_on_close);
}

/* Watch what the sender now waits for: its socket's events, its timer. */
static void sl_watch(sl_conn *c)
{
    if (!c->s)
        return;
    int ev = slotd_sender_events(c->s);
    int want = (ev & POLLIN ? UV_READABLE : 0) | (ev & POLLOUT ? UV_WRITABLE : 0);
    if (c->poll && want != c->events) {
        if (want)
            uv_poll_start(c->poll, want, sl_on_poll);
        else
            uv_poll_stop(c->poll);
        c->events = want;
    }
    int t = slotd_sender_timeout_ms(c->s);
    if (t >= 0)
        uv_timer_start(&c->timer, c->timer.timer_cb, (uint64_t)t, 0);
    else if (uv_is_active((uv_handle_t *)&c->timer))
        uv_timer_stop(&c->timer);
}

static void sl_process(sl_conn *c, int revents)
{
    sl_run *r = c->run;
    if (!c->s)
        return;
    int rc = slotd_sender_process(c->s, revents);
    if (rc < 0) {
        sl_fatal(r, "%s: %s", c->name, slotd_sender_last_error(c->s)->message);
        return;
    }
    sl_watch(c);
    if (r->phase == SL_PHASE_RUN)
        sl_pump(r);
    else if (r->phase == SL_PHASE_DRAIN)
        sl_finish(r);
}

static void sl_on_poll(uv_poll_t *p, int status, int events)
{
    int rev = (events & UV_READABLE ? POLLIN : 0) | (events & UV_WRITABLE ? POLLOUT : 0);
    sl_process(p->data, status < 0 ? rev | POLLERR : rev);
}

static void sl_on_timer(uv_timer_t *t)
{
    sl_process(t->data, 0);
}

/* The library opened or is about to close its socket. */
static void sl_on_socket(void *u, int fd, int open)
{
    sl_conn *c = u;
    if (!open) {
        if (c->poll)
            uv_close((uv_handle_t *)c->poll, sl_on_close_free);
        c->poll = NULL;
        c->events = 0;
        return;
    }
    c->poll = malloc(sizeof *c->poll);
    if (!c->poll || uv_poll_init(c->run->loop, c->poll, fd) != 0) {
        free(c->poll);
        c->poll = NULL;
        sl_fatal(c->run, "%s: cannot watch the socket", c->name);
        return;
    }
    c->poll->data = c;
    c->events = UV_READABLE | UV_WRITABLE; /* a connect completes as writable */
    uv_poll_start(c->poll, c->events, sl_on_poll);
}

/* A batch is done (stored, or given up): latency from its t0. */
static sl_flight *sl_done(sl_conn *c)
{
    sl_run *r = c->run;
    if (c->count == 0)
        return NULL;
    sl_flight *f = &c->fl[c->head];
    uint64_t now = sl_now();
    uint64_t lat = now > f->t0 ? now - f->t0 : 0;
    c->head = (c->head + 1) % r->cfg->inflight;
    c->count--;
    r->t_last = now;
    hist_record(r->res->lat, lat);
    hist_record(r->lat_sec, lat);
    return f;
}

static void sl_on_ack(void *u, uint64_t seq, uint32_t ntrades, void *batch_user)
{
    sl_conn *c = u;
    (void)seq;
    (void)batch_user;
    if (sl_done(c)) {
        c->run->res->acked_batches++;
        c->run->res->acked_trades += ntrades;
    }
}

static void sl_on_error(void *u, const slotd_batch_error *e)
{
    sl_conn *c = u;
    sl_run *r = c->run;
    if (e->code != SLOTD_EBATCH) { /* the sender stopped */
        sl_fatal(r, "%s: %s", c->name, e->message);
        return;
    }
    sl_done(c);
    r->res->err_batches++;
    sl_count_err(r->res, e->wire_code, strlen(e->wire_code));
    if (r->res->err_batches <= 5)
        fprintf(stderr, "slotload: batch %llu on %s: %s\n", (unsigned long long)e->seq, c->name,
                e->message);
}

/* The seq's msgpack size in ["T", seq, ...] (fresh names start at 1). */
static size_t sl_uint_size(uint64_t v)
{
    return v < 128 ? 1 : v <= 0xff ? 2 : v <= 0xffff ? 3 : v <= 0xffffffffu ? 5 : 9;
}

static void sl_send(sl_conn *c, uint64_t k, uint64_t t0)
{
    sl_run *r = c->run;
    uint64_t b = k % r->bt.n; /* --duration cycles through the pool */
    size_t blen = r->bt.off[b + 1] - r->bt.off[b];
    sl_flight *f = &c->fl[(c->head + c->count) % r->cfg->inflight];
    f->t0 = t0;
    f->ntrades = r->bt.ntrades[b];
    if (r->cfg->rate > 0) {
        uint64_t now = sl_now();
        hist_record(r->res->lag, now > t0 ? now - t0 : 0);
    }
    c->count++;
    r->dispatched++;
    r->res->sent_batches++;
    r->res->sent_trades += f->ntrades;
    r->res->wire_bytes += 3 + sl_uint_size(++c->sent) + blen;
    int rc = slotd_send_raw(c->s, NULL, r->bt.buf.data + r->bt.off[b], blen, f->ntrades, NULL);
    if (rc < 0) {
        sl_fatal(r, "%s: send: %s", c->name, slotd_strerror(rc));
        return;
    }
    sl_watch(c);
}

/* The next connection with a free in-flight slot, round robin. */
static sl_conn *sl_pick(sl_run *r)
{
    uint32_t n = r->cfg->connections;
    for (uint32_t i = 0; i < n; i++) {
        sl_conn *c = &r->conns[(r->rr + i) % n];
        if (c->s && c->count < r->cfg->inflight) {
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
    if (replies != r->last_replies || inflight == 0) {
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
    if (r->phase == SL_PHASE_DRAIN) {
        fprintf(stderr, "\nslotload: interrupted twice, exiting\n");
        exit(130);
    }
    fprintf(stderr, "\nslotload: interrupted: draining in-flight batches (again to quit)\n");
    r->limit = r->dispatched;
    sl_finish(r);
}

/* ---- setup --------------------------------------------------------------- */

static int sl_conns_start(sl_run *r)
{
    const sl_config *cfg = r->cfg;
    /* A name no earlier run used (unless --client), so every connection
     * starts at last_seq 0. */
    unsigned long long nonce = (unsigned long long)time(NULL) ^ ((unsigned long long)sl_now() << 20);
    for (uint32_t i = 0; i < cfg->connections; i++) {
        sl_conn *c = &r->conns[i];
        c->run = r;
        if (cfg->client_name && cfg->connections == 1)
            snprintf(c->name, sizeof c->name, "%s", cfg->client_name);
        else if (cfg->client_name)
            snprintf(c->name, sizeof c->name, "%s-%u", cfg->client_name, i);
        else
            snprintf(c->name, sizeof c->name, "%.40s-%d-%llx-%u", cfg->client_prefix,
                     (int)getpid(), nonce & 0xffffffffffull, i);
        c->fl = calloc(cfg->inflight, sizeof *c->fl);
        if (!c->fl)
            return -1;
        uv_timer_init(r->loop, &c->timer);
        c->timer.data = c;
        c->timer.timer_cb = sl_on_timer; /* sl_watch starts it with this callback */
        slotd_sender_opts o;
        slotd_sender_opts_init(&o);
        o.host = cfg->host;
        o.port = cfg->port;
        o.client = c->name;
        o.token = cfg->token[0] ? cfg->token : NULL;
        o.tls = cfg->tls;
        o.tls_ca = cfg->tls_ca;
        o.tls_cert = cfg->tls_cert;
        o.tls_key = cfg->tls_key;
        o.tls_server_name = cfg->tls_server_name;
        char err[256] = "";
        o.errbuf = err;
        o.errbuf_len = sizeof err;
        o.window = cfg->inflight; /* slotload never hands over more than that */
        o.max_buffered = SIZE_MAX;
        o.linger_ms = 0;
        o.nonblocking = 1;
        o.retry_timeout_ms = INT32_MAX; /* the stall watchdog decides */
        o.on_ack = sl_on_ack;
        o.on_error = sl_on_error;
        o.on_socket = sl_on_socket;
        o.user = c;
        int rc = slotd_sender_new(&o, &c->s);
        if (rc != 0) {
            fprintf(stderr, "slotload: %s: %s%s%s\n", c->name, slotd_strerror(rc), err[0] ? ": " : "",
                    err);
            return -1;
        }
        sl_watch(c);
    }
    return 0;
}

static int sl_run_loop(const sl_config *cfg, sl_run *r)
{
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
    uv_idle_init(r->loop, &r->closer);
    r->closer.data = r;
    r->t_reply = sl_now();
    if (sl_conns_start(r) != 0)
        return -1;
    /* The clock starts now: the senders connect and say HELLO while the
     * first batches queue (their seqs follow each WELCOME's last_seq).
     * Unless a sender already stopped the run (a TLS handshake refused
     * while the others were being made): then only the closing is left. */
    if (r->phase != SL_PHASE_DONE) {
        r->phase = SL_PHASE_RUN;
        r->t_start = r->t_last = r->last_progress_ns = sl_now();
        sl_cpu(&r->res->cpu_user, &r->res->cpu_sys);
        if (cfg->duration > 0)
            r->t_deadline = r->t_start + (uint64_t)(cfg->duration * 1e9);
        sl_pump(r);
    }
    uv_run(r->loop, UV_RUN_DEFAULT);
    if (r->prog)
        sl_progress_end(r->prog, r->prog_tty);
    r->res->seconds = r->t_start && r->t_last > r->t_start ? (double)(r->t_last - r->t_start) / 1e9 : 0;
    close(r->tfd);
    for (uint32_t i = 0; i < cfg->connections; i++)
        free(r->conns[i].fl);
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
    if (cfg.kafka_brokers) {
        free(res.lat);
        free(res.lag);
        return sl_kafka_run(&cfg);
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
