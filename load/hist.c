/* hist — log-linear latency histogram; see hist.h for the error bound. */
#include "hist.h"

#include <string.h>

void hist_reset(hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

size_t hist_bucket_of(uint64_t v)
{
    if (v < HIST_SUB)
        return (size_t)v;
    if (v >= HIST_MAX)
        return HIST_NBUCKETS - 1;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* HIST_SUB_BITS.. HIST_MAX_BITS-1 */
    unsigned shift = e - (HIST_SUB_BITS - 1);
    uint64_t m = v >> shift; /* HIST_HALF..HIST_SUB-1: the top 8 bits */
    return HIST_SUB + (size_t)(e - HIST_SUB_BITS) * HIST_HALF + (size_t)(m - HIST_HALF);
}

uint64_t hist_bucket_lo(size_t i)
{
    if (i < HIST_SUB)
        return i;
    size_t k = i - HIST_SUB;
    unsigned e = HIST_SUB_BITS + (unsigned)(k / HIST_HALF);
    uint64_t m = HIST_HALF + k % HIST_HALF;
    return m << (e - (HIST_SUB_BITS - 1));
}

uint64_t hist_bucket_hi(size_t i)
{
    if (i < HIST_SUB)
        return i;
    if (i >= HIST_NBUCKETS - 1)
        return UINT64_MAX; /* the last bucket also holds everything above HIST_MAX */
    size_t k = i - HIST_SUB;
    unsigned e = HIST_SUB_BITS + (unsigned)(k / HIST_HALF);
    return hist_bucket_lo(i) + (1ull << (e - (HIST_SUB_BITS - 1))) - 1;
}

void hist_record_n(hist *h, uint64_t v, uint64_t n)
{
    if (n == 0)
        return;
    h->b[hist_bucket_of(v)] += n;
    h->count += n;
    h->sum += (double)v * (double)n;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void hist_record(hist *h, uint64_t v) { hist_record_n(h, v, 1); }

void hist_merge(hist *dst, const hist *src)
{
    if (src->count == 0)
        return;
    for (size_t i = 0; i < HIST_NBUCKETS; i++)
        dst->b[i] += src->b[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t hist_quantile(const hist *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q <= 0)
        return h->min;
    if (q >= 1)
        return h->max;
    /* The rank of the q-th value, 1-based: ceil(q * count), at least 1. The
     * small slack keeps 0.9 * 100 (90.00000000000001 in binary) at rank 90. */
    double r = q * (double)h->count * (1.0 - 1e-12);
    uint64_t rank = (uint64_t)r;
    if ((double)rank < r)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    size_t i = 0;
    for (; i < HIST_NBUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank)
            break;
    }
    if (i >= HIST_NBUCKETS - 1)
        return h->max; /* the open-ended last bucket has no midpoint */
    uint64_t lo = hist_bucket_lo(i), hi = hist_bucket_hi(i);
    uint64_t mid = lo + (hi - lo) / 2;
    if (mid < h->min)
        mid = h->min;
    if (mid > h->max)
        mid = h->max;
    return mid;
}

double hist_mean(const hist *h) { return h->count ? h->sum / (double)h->count : 0.0; }
