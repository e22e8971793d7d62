/* hist — a latency histogram with bounded relative error (HDR-style).
 *
 * Values are unsigned integers (slotload records nanoseconds). Buckets are
 * log-linear: values below 2^HIST_SUB_BITS each have their own bucket; above
 * that, every power of two is split into 2^(HIST_SUB_BITS-1) equal buckets.
 * A bucket is then at most 1/128 of its lower bound wide, and a quantile is
 * reported as its bucket's midpoint, so it is within 0.4% of a value that
 * was recorded (and clamped to the exact min and max). Recording is a
 * count-leading-zeros, a shift and an increment: cheap enough for the ack
 * path, and fixed-size (no allocation), so histograms can be reset and
 * merged per second.
 *
 * Values at or above HIST_MAX (2^40 ns, about 18 minutes) land in the last
 * bucket; max still holds the exact largest value.
 */
#ifndef SLOTD_HIST_H
#define SLOTD_HIST_H

#include <stddef.h>
#include <stdint.h>

#define HIST_SUB_BITS 8                         /* 2^8 linear buckets at the bottom */
#define HIST_SUB (1u << HIST_SUB_BITS)          /* 256 */
#define HIST_HALF (HIST_SUB / 2)                /* buckets per power of two above */
#define HIST_MAX_BITS 40
#define HIST_MAX (1ull << HIST_MAX_BITS)
#define HIST_NBUCKETS (HIST_SUB + (HIST_MAX_BITS - HIST_SUB_BITS) * HIST_HALF)

typedef struct hist {
    uint64_t count;
    uint64_t min, max; /* exact; min is UINT64_MAX while empty */
    double sum;        /* for the mean */
    uint64_t b[HIST_NBUCKETS];
} hist;

void hist_reset(hist *h);
void hist_record(hist *h, uint64_t v);
void hist_record_n(hist *h, uint64_t v, uint64_t n);
/* dst += src. */
void hist_merge(hist *dst, const hist *src);

/* The value at quantile q in [0, 1] (0.99 = p99): the smallest recorded
 * value's bucket such that at least q of the values are at or below it,
 * reported as that bucket's midpoint clamped to [min, max]. q <= 0 gives
 * min, q >= 1 gives max; 0 for an empty histogram. */
uint64_t hist_quantile(const hist *h, double q);
double hist_mean(const hist *h);

/* Bucket geometry, exposed for tests: the bucket of v, and the inclusive
 * range [lo, hi] of values that fall into bucket i. */
size_t hist_bucket_of(uint64_t v);
uint64_t hist_bucket_lo(size_t i);
uint64_t hist_bucket_hi(size_t i);

#endif
