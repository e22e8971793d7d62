/* client_drive — streams trades 0..N-1 through libslotd-client with chosen
 * options, for tests/integration/test_client_c.py (a real slotd, real
 * sockets). Trade i: symbol <prefix><i % syms>, ts TS0 + i, id i, qty 1
 * (or -1 for --bad-at i: a BAD_VALUE). With --resume the source starts at
 * slotd_sender_sealed() (the spool's count), as an application would.
 *
 * Prints "sealed N acked M" lines with --progress, one "error {...}" line per
 * on_error, and at the end one JSON line: {"rc": ..., "err": {...},
 * "stats": {...}}. Exit status 0 whatever flush returned (the test reads
 * the JSON); 2 for bad arguments or a sender that cannot be created. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "drive_common.h"
#include "slotd/client.h"

#define TS0 1767225600000000000LL

typedef struct drive {
    uint64_t acked_trades_cb, acked_batches_cb;
} drive;

static void print_err(const slotd_batch_error *e)
{
    printf("{\"code\": %d, \"name\": ", e->code);
    json_str(e->code ? slotd_strerror(e->code) : "");
    printf(", \"wire_code\": ");
    json_str(e->wire_code);
    printf(", \"seq\": %llu, \"index\": %lld, \"field\": ", (unsigned long long)e->seq,
           (long long)e->index);
    json_str(e->field);
    printf(", \"message\": ");
    json_str(e->message);
    printf("}");
}

static void on_ack(void *u, uint64_t seq, uint32_t n, void *batch_user)
{
    drive *d = u;
    (void)seq;
    (void)batch_user;
    d->acked_trades_cb += n;
    d->acked_batches_cb++;
}

static void on_error(void *u, const slotd_batch_error *e)
{
    (void)u;
    printf("error ");
    print_err(e);
    printf("\n");
    fflush(stdout);
}

/* Non-blocking mode: wait for what the sender wants, then process. */
static int pump(slotd_sender *s, int max_wait)
{
    struct pollfd p = {.fd = slotd_sender_fd(s), .events = (short)slotd_sender_events(s)};
    int t = slotd_sender_timeout_ms(s);
    if (t < 0 || t > max_wait)
        t = max_wait;
    int revents = 0;
    if (p.fd >= 0 && p.events) {
        if (poll(&p, 1, t) > 0)
            revents = p.revents;
    } else {
        poll(NULL, 0, t);
    }
    return slotd_sender_process(s, revents);
}

int main(int argc, char **argv)
{
    slotd_sender_opts o;
    slotd_sender_opts_init(&o);
    uint64_t n = 1000, bad_at = UINT64_MAX;
    int syms = 10, resume = 0, progress = 0, pace_us = 0, flush_timeout = -1, fixed = 0;
    const char *prefix = "C";
    char errbuf[256] = "";
    drive d = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = 1;
        if (!strcmp(a, "--resume"))
            resume = 1, used = 0;
        else if (!strcmp(a, "--progress"))
            progress = 1, used = 0;
        else if (!strcmp(a, "--nonblocking"))
            o.nonblocking = 1, used = 0;
        else if (!strcmp(a, "--fixed"))
            fixed = 1, used = 0;
        else if (!strcmp(a, "--tls"))
            o.tls = 1, used = 0;
        else if (!v)
            goto usage;
        else if (DRIVE_CONN_OPT(o, a, v))
            used = 1; /* a connection flag: taken */
        else if (!strcmp(a, "--spool"))
            o.spool = v;
        else if (!strcmp(a, "--n"))
            n = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--syms"))
            syms = atoi(v);
        else if (!strcmp(a, "--prefix"))
            prefix = v;
        else if (!strcmp(a, "--batch"))
            o.batch_size = (uint32_t)atoi(v);
        else if (!strcmp(a, "--window"))
            o.window = (uint32_t)atoi(v);
        else if (!strcmp(a, "--linger"))
            o.linger_ms = atoi(v);
        else if (!strcmp(a, "--retry-timeout"))
            o.retry_timeout_ms = atoi(v);
        else if (!strcmp(a, "--backoff-max"))
            o.backoff_max_ms = atoi(v);
        else if (!strcmp(a, "--max-buffered"))
            o.max_buffered = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--bad-at"))
            bad_at = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--pace-us"))
            pace_us = atoi(v);
        else if (!strcmp(a, "--flush-timeout"))
            flush_timeout = atoi(v);
        else
            goto usage;
        i += used;
    }
    if (!o.client)
        goto usage;
    o.on_ack = on_ack;
    o.on_error = on_error;
    o.user = &d;
    o.errbuf = errbuf;
    o.errbuf_len = sizeof errbuf;
    slotd_sender *s;
    int rc = slotd_sender_new(&o, &s);
    if (rc != 0) {
        printf("{\"new_rc\": %d, \"name\": ", rc);
        json_str(slotd_strerror(rc));
        printf(", \"message\": ");
        json_str(errbuf);
        printf("}\n");
        return 2;
    }
    uint64_t start = resume ? slotd_sender_sealed(s) : 0;
    printf("start %llu\n", (unsigned long long)start);
    fflush(stdout);
    uint64_t eagain = 0;
    for (uint64_t i = start; i < n && rc == 0; i++) {
        char sym[32];
        snprintf(sym, sizeof sym, "%s%d", prefix, (int)(i % (uint64_t)syms));
        int side = i % 2 ? 'S' : 'B';
        double px = 100 + (double)(i % 100) / 4, qty = i == bad_at ? -1 : 1;
        do {
            rc = fixed ? slotd_trade_fixed(s, sym, TS0 + (int64_t)i, (int64_t)(px * 1e8),
                                           (int64_t)(qty * 1e8), side, i)
                       : slotd_trade(s, sym, TS0 + (int64_t)i, px, qty, side, i);
            if (rc == SLOTD_EAGAIN) { /* non-blocking: the buffer is full */
                eagain++;
                rc = pump(s, 100);
                if (rc == 0)
                    rc = SLOTD_EAGAIN;
            }
        } while (rc == SLOTD_EAGAIN);
        if (o.batch_size && (i + 1) % o.batch_size == 0) {
            if (progress) {
                slotd_sender_stats ps;
                slotd_sender_stats_get(s, &ps);
                printf("sealed %llu acked %llu\n", (unsigned long long)slotd_sender_sealed(s),
                       (unsigned long long)ps.acked_trades);
                fflush(stdout);
            }
            if (pace_us)
                usleep((useconds_t)pace_us);
        }
    }
    if (rc == 0) {
        if (o.nonblocking) { /* drive the loop ourselves, as an application would */
            while ((rc = slotd_flush(s, 0)) == SLOTD_EAGAIN && pump(s, 100) == 0)
                ;
        } else {
            rc = slotd_flush(s, flush_timeout);
        }
    }
    slotd_sender_stats st;
    slotd_sender_stats_get(s, &st);
    printf("{\"rc\": %d, \"name\": ", rc);
    json_str(rc ? slotd_strerror(rc) : "");
    printf(", \"err\": ");
    print_err(slotd_sender_last_error(s));
    printf(", \"stats\": {\"acked_batches\": %llu, \"acked_trades\": %llu, \"failed_batches\": %llu, "
           "\"resent_batches\": %llu, \"reconnects\": %llu, \"queued_batches\": %llu, "
           "\"cb_acked_trades\": %llu, \"cb_acked_batches\": %llu, \"eagain\": %llu, "
           "\"sealed\": %llu, \"start\": %llu}}\n",
           (unsigned long long)st.acked_batches, (unsigned long long)st.acked_trades,
           (unsigned long long)st.failed_batches, (unsigned long long)st.resent_batches,
           (unsigned long long)st.reconnects, (unsigned long long)st.queued_batches,
           (unsigned long long)d.acked_trades_cb, (unsigned long long)d.acked_batches_cb,
           (unsigned long long)eagain, (unsigned long long)slotd_sender_sealed(s),
           (unsigned long long)start);
    fflush(stdout);
    slotd_sender_close(s, 0);
    return 0;
usage:
    fprintf(stderr, "usage: client_drive --client NAME [--port P] [--n N] [--spool F] [--resume] ...\n");
    return 2;
}
