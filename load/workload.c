/* workload — the deterministic reference workloads W1 and W1-10k.
 *
 * Every random decision comes from one xoshiro256** stream in a fixed order
 * per trade (symbol, price move, qty, side, ts jitter), so a seed names one
 * exact sequence of trades on every machine and every run.
 */
#include "workload.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixp.h"
#include "kind.h"

#define WORKLOAD_QTY_MAX 10000 /* whole units */
#define WORKLOAD_TS_STEP 1000  /* ns between trades, before jitter */

/* ---- random numbers ----------------------------------------------------- */

/* splitmix64 turns any seed (0 included) into a well-mixed xoshiro state. */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t workload_rand(workload *w)
{
    uint64_t *s = w->rng;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, n): the high half of a 64x64 product (Lemire). The bias is
 * at most n / 2^64, far below anything a benchmark could notice. */
static uint64_t rand_below(workload *w, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)workload_rand(w) * n) >> 64);
}

/* Uniform in [0, 1) with 53 random bits. */
static double rand_unit(workload *w) { return (double)(workload_rand(w) >> 11) * 0x1p-53; }

/* ---- Zipf --------------------------------------------------------------- */

/* P(rank k) proportional to 1 / (k+1)^s. The CDF is built once; a draw is a
 * binary search, O(log nsym), with no rejection loop. */
static void zipf_build(double *cdf, uint32_t n, double s)
{
    double sum = 0;
    for (uint32_t k = 0; k < n; k++) {
        sum += pow((double)k + 1, -s);
        cdf[k] = sum;
    }
    for (uint32_t k = 0; k < n; k++)
        cdf[k] /= sum;
    cdf[n - 1] = 1.0; /* no draw may fall past the end through rounding */
}

static uint32_t zipf_draw(const workload *w, double u)
{
    uint32_t lo = 0, hi = w->nsym - 1; /* first k with cdf[k] > u */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (w->cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* ---- prices ------------------------------------------------------------- */

static int64_t tick_of(const workload *w, uint32_t sym)
{
    static const int64_t ticks[] = {1000000, 100000, 10000}; /* 0.01, 0.001, 0.0001 */
    return ticks[w->decimals[sym] - 2];
}

/* A start price in [50, 150] on the symbol's tick grid. */
static int64_t start_price(workload *w, uint32_t sym)
{
    int64_t tick = tick_of(w, sym);
    int64_t steps = 100 * FIXP_SCALE / tick;
    return 50 * FIXP_SCALE + (int64_t)rand_below(w, (uint64_t)steps + 1) * tick;
}

/* Mostly unchanged or one tick either way; one trade in 64 jumps up to 50
 * ticks. A move that would reach zero is reflected, so prices stay > 0. */
static int64_t walk(workload *w, uint32_t sym)
{
    int64_t tick = tick_of(w, sym), px = w->px[sym];
    uint64_t r = workload_rand(w);
    int64_t move;
    /* Independent bit ranges of one draw: jump?, unchanged?, sign, size. */
    if ((r & 63) == 0)
        move = 1 + (int64_t)((r >> 16) % 50);
    else
        move = ((r >> 6) & 3) == 0 ? 0 : 1; /* 1/4 unchanged */
    if ((r >> 8) & 1)
        move = -move;
    if (px + move * tick <= 0)
        move = -move;
    return w->px[sym] = px + move * tick;
}

/* ---- public ------------------------------------------------------------- */

int workload_init(workload *w, uint32_t nsym, double zipf_s, uint64_t seed)
{
    memset(w, 0, sizeof *w);
    if (nsym == 0 || !(zipf_s >= 0) || isinf(zipf_s))
        return -1;
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        w->rng[i] = splitmix64(&x);
    w->nsym = nsym;
    w->cdf = malloc(nsym * sizeof *w->cdf);
    w->px = malloc(nsym * sizeof *w->px);
    w->decimals = malloc(nsym);
    if (!w->cdf || !w->px || !w->decimals) {
        workload_free(w);
        return -1;
    }
    zipf_build(w->cdf, nsym, zipf_s);
    for (uint32_t i = 0; i < nsym; i++) {
        w->decimals[i] = (uint8_t)(2 + rand_below(w, 3));
        w->px[i] = start_price(w, i);
    }
    w->ts = WORKLOAD_TS0 - 1; /* before the first trade */
    w->id = 0;
    return 0;
}

void workload_free(workload *w)
{
    free(w->cdf);
    free(w->px);
    free(w->decimals);
    w->cdf = NULL;
    w->px = NULL;
    w->decimals = NULL;
}

void workload_next(workload *w, workload_trade *t)
{
    uint32_t sym = zipf_draw(w, rand_unit(w));
    t->sym = sym;
    t->px = walk(w, sym);
    t->qty = (int64_t)(1 + rand_below(w, WORKLOAD_QTY_MAX)) * FIXP_SCALE;
    t->side = (workload_rand(w) >> 63) ? KIND_SIDE_SELL : KIND_SIDE_BUY;
    /* Trade i sits in its own 1 us window: strictly increasing by design. */
    int64_t jitter = (int64_t)rand_below(w, WORKLOAD_TS_STEP);
    t->id = ++w->id;
    t->ts = w->ts = WORKLOAD_TS0 + (int64_t)(t->id - 1) * WORKLOAD_TS_STEP + jitter;
}

int workload_symbol(uint32_t sym, char *buf)
{
    /* By hand, not snprintf: encoders call this once per trade. */
    char d[10];
    int n = 0;
    do
        d[n++] = (char)('0' + sym % 10);
    while ((sym /= 10) != 0);
    while (n < 4)
        d[n++] = '0';
    int len = 3 + n;
    buf[0] = 'S', buf[1] = 'Y', buf[2] = 'M';
    for (int i = 0; i < n; i++)
        buf[3 + i] = d[n - 1 - i];
    buf[len] = '\0';
    return len;
}
