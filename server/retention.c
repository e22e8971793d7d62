/* retention — see retention.h. */
#include "retention.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define RETAIN_PASS_MS 1000            /* a pass over the partitions at most this often */
#define RETAIN_NEXT_MS 2               /* the rest of a pass: soon, the loop serving between */
#define RETAIN_BUDGET (256u * 1024)    /* records read per tick: about a millisecond */

typedef struct retention {
    server *srv;
    uv_timer_t timer;
    uint64_t pass_trades, pass_pages; /* the pass in progress, for its log line */
    retention_stats st;
} retention;

/* CLOCK_REALTIME in ns, plus `ahead`, saturating at INT64_MAX. */
static int64_t wall_plus(int64_t ahead)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    return ahead > INT64_MAX - now ? INT64_MAX : now + ahead;
}

int64_t retention_cutoff(const server *srv)
{
    store_stats st;
    int64_t horizon = srv->cfg.retention_ns, ahead = srv->cfg.limits.max_future_ns;
    if (horizon <= 0)
        return 0;
    store_get_stats(srv->store, &st);
    if (st.newest_ts < 0)
        return 0;
    int64_t now = st.newest_ts;
    if (ahead > 0 && now > wall_plus(ahead))
        now = wall_plus(ahead);
    return now > horizon ? now - horizon : 0;
}

static void retention_tick(uv_timer_t *t)
{
    retention *r = t->data;
    server *srv = r->srv;
    uint64_t next = RETAIN_PASS_MS;
    store_stats st;
    store_drop_result d;

    if (srv->ready && !srv->stopping) {
        store_get_stats(srv->store, &st);
        int64_t cutoff = retention_cutoff(srv);
        if (cutoff > 0 &&
            store_drop_before(srv->store, cutoff, RETAIN_BUDGET, &d) == STORE_OK) {
            r->pass_trades += d.trades;
            r->pass_pages += d.pages;
            r->st.dropped_trades += d.trades;
            r->st.dropped_pages += d.pages;
            r->st.cutoff_ts = cutoff;
            if (!d.done) {
                next = RETAIN_NEXT_MS;
            } else if (r->pass_trades) {
                log_info("retention_pass cutoff_ts=%" PRId64 " dropped_trades=%" PRIu64
                         " dropped_pages=%" PRIu64 " trades_left=%" PRIu64, cutoff,
                         r->pass_trades, r->pass_pages, st.trades - d.trades);
                r->pass_trades = r->pass_pages = 0;
            }
        }
    }
    uv_timer_start(t, retention_tick, next, 0);
}

int retention_start(server *srv)
{
    retention *r;
    if (srv->cfg.retention_ns <= 0 || srv->retention)
        return 0;
    if (!(r = calloc(1, sizeof *r)))
        return UV_ENOMEM;
    r->srv = srv;
    r->st.horizon_ns = srv->cfg.retention_ns;
    srv->retention = r;
    uv_timer_init(srv->loop, &r->timer);
    r->timer.data = r;
    uv_timer_start(&r->timer, retention_tick, 0, 0);
    return 0;
}

void retention_stop(server *srv)
{
    if (srv->retention)
        uv_timer_stop(&srv->retention->timer); /* closed with the loop's handles */
}

void retention_get_stats(const server *srv, retention_stats *st)
{
    if (srv->retention)
        *st = srv->retention->st;
    else
        memset(st, 0, sizeof *st);
    st->horizon_ns = srv->cfg.retention_ns;
}

void retention_free(server *srv)
{
    free(srv->retention);
    srv->retention = NULL;
}
