/* metrics — counters, the ack-latency histogram and the ingest-rate ring.
 *
 * Times are monotonic nanoseconds from one clock (the server uses
 * uv_hrtime()). The rate ring holds one trade count per second for the last
 * METRICS_RATE_SLOTS seconds; a second's slot is zeroed when the clock first
 * moves into it, so an idle minute reads as zero without a timer.
 */
#include "metrics.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "server.h"

#define NS_PER_SEC 1000000000ull

static const double bounds[METRICS_NBUCKETS - 1] = METRICS_LATENCY_BOUNDS;
_Static_assert(sizeof bounds / sizeof bounds[0] == METRICS_NBUCKETS - 1,
               "METRICS_NBUCKETS must be the bound count + 1");

void metrics_init(metrics *m, uint64_t now_ns)
{
    memset(m, 0, sizeof *m);
    m->start_ns = now_ns;
    m->rate_sec = now_ns / NS_PER_SEC;
}

/* Move the ring to second `sec`, zeroing the seconds skipped over. A clock
 * that goes backwards (it should not) is treated as "still this second". */
static void rate_advance(metrics *m, uint64_t sec)
{
    if (sec <= m->rate_sec)
        return;
    uint64_t gap = sec - m->rate_sec;
    if (gap >= METRICS_RATE_SLOTS) {
        memset(m->rate_slot, 0, sizeof m->rate_slot);
    } else {
        for (uint64_t s = m->rate_sec + 1; s <= sec; s++)
            m->rate_slot[s % METRICS_RATE_SLOTS] = 0;
    }
    m->rate_sec = sec;
}

void metrics_applied(metrics *m, uint64_t now_ns, uint64_t trades)
{
    m->trades_total += trades;
    rate_advance(m, now_ns / NS_PER_SEC);
    m->rate_slot[m->rate_sec % METRICS_RATE_SLOTS] += trades;
}

unsigned metrics_bucket(uint64_t ns)
{
    double secs = (double)ns / 1e9;
    unsigned b = 0;
    /* Prometheus buckets are "<= le": the first bound not below the value. */
    while (b < METRICS_NBUCKETS - 1 && secs > bounds[b])
        b++;
    return b;
}

void metrics_ack(metrics *m, uint64_t now_ns, uint64_t latency_ns, uint64_t trades)
{
    m->ack_buckets[metrics_bucket(latency_ns)]++;
    m->ack_count++;
    m->ack_sum += (double)latency_ns / 1e9;
    m->batches_total++;
    metrics_applied(m, now_ns, trades);
}

void metrics_error(metrics *m, proto_code c)
{
    if ((unsigned)c < PROTO_NCODES)
        m->errors_total[c]++;
}

double metrics_rate(metrics *m, uint64_t now_ns, unsigned window)
{
    if (window < 1)
        window = 1;
    if (window > 60)
        window = 60;
    uint64_t now_sec = now_ns / NS_PER_SEC;
    rate_advance(m, now_sec);
    /* Only complete seconds since start count: right after start-up a 60 s
     * window divides by the seconds actually seen, not by 60. */
    uint64_t start_sec = m->start_ns / NS_PER_SEC;
    uint64_t seen = now_sec > start_sec ? now_sec - start_sec : 0;
    if (seen == 0)
        return 0.0;
    if (seen < window)
        window = (unsigned)seen;
    uint64_t sum = 0;
    for (unsigned i = 1; i <= window; i++)
        sum += m->rate_slot[(now_sec - i) % METRICS_RATE_SLOTS];
    return (double)sum / (double)window;
}

uint64_t server_rss_bytes(void)
{
    unsigned long long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    if (n != 2)
        return 0;
    long page = sysconf(_SC_PAGESIZE);
    return (uint64_t)resident * (uint64_t)(page > 0 ? page : 4096);
}
