/* test_hist — slotload's latency histogram: bucket geometry, the relative
 * error bound, quantiles against an exact sort, merge, reset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"

static uint64_t rng_state = 0x415751u;

/* splitmix64: a local, seedable generator so failures reproduce. */
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static hist *new_hist(void)
{
    hist *h = malloc(sizeof *h);
    assert_non_null(h);
    hist_reset(h);
    return h;
}

/* Buckets tile [0, HIST_MAX) with no gap or overlap, in order. */
static void test_buckets_tile(void **state)
{
    (void)state;
    assert_int_equal(hist_bucket_lo(0), 0);
    for (size_t i = 0; i + 1 < HIST_NBUCKETS; i++) {
        assert_true(hist_bucket_lo(i) <= hist_bucket_hi(i));
        assert_int_equal(hist_bucket_hi(i) + 1, hist_bucket_lo(i + 1));
        assert_int_equal(hist_bucket_of(hist_bucket_lo(i)), i);
        assert_int_equal(hist_bucket_of(hist_bucket_hi(i)), i);
    }
    assert_int_equal(hist_bucket_lo(HIST_NBUCKETS - 1), HIST_MAX - (HIST_MAX >> HIST_SUB_BITS));
    assert_int_equal(hist_bucket_of(HIST_MAX - 1), HIST_NBUCKETS - 1);
    assert_int_equal(hist_bucket_of(HIST_MAX), HIST_NBUCKETS - 1);
    assert_int_equal(hist_bucket_of(UINT64_MAX), HIST_NBUCKETS - 1);
}

/* Every bucket is at most 1/128 of its lower bound wide, so a midpoint is
 * within 1/256 (0.4%) of any value in it. */
static void test_bucket_width_bound(void **state)
{
    (void)state;
    for (size_t i = HIST_SUB; i + 1 < HIST_NBUCKETS; i++) {
        uint64_t lo = hist_bucket_lo(i), hi = hist_bucket_hi(i);
        assert_true((double)(hi - lo + 1) <= (double)lo / 128.0);
    }
    for (size_t i = 0; i < HIST_SUB; i++)
        assert_int_equal(hist_bucket_lo(i), hist_bucket_hi(i)); /* exact at the bottom */
}

static void test_empty(void **state)
{
    (void)state;
    hist *h = new_hist();
    assert_int_equal(h->count, 0);
    assert_int_equal(hist_quantile(h, 0.5), 0);
    assert_int_equal(hist_quantile(h, 1.0), 0);
    assert_true(hist_mean(h) == 0.0);
    free(h);
}

static void test_single_and_extremes(void **state)
{
    (void)state;
    hist *h = new_hist();
    hist_record(h, 123456789);
    assert_int_equal(hist_quantile(h, 0.0), 123456789);
    assert_int_equal(hist_quantile(h, 0.5), 123456789); /* clamped to min/max */
    assert_int_equal(hist_quantile(h, 1.0), 123456789);
    hist_record(h, 7);
    hist_record(h, UINT64_MAX / 2); /* beyond HIST_MAX: last bucket, exact max */
    assert_int_equal(h->min, 7);
    assert_int_equal(h->max, UINT64_MAX / 2);
    assert_int_equal(hist_quantile(h, 0.0), 7);
    assert_int_equal(hist_quantile(h, 1.0), UINT64_MAX / 2);
    assert_int_equal(hist_quantile(h, 0.99), UINT64_MAX / 2);
    uint64_t mid = hist_quantile(h, 0.34); /* rank 2: the bucket of 123456789 */
    assert_true(fabs((double)mid - 123456789.0) <= 123456789.0 / 256.0);
    free(h);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Against the exact order statistic of a log-uniform sample from 1 us to
 * 60 s: every reported quantile within 0.4% of the true one. */
static void test_quantiles_vs_sort(void **state)
{
    (void)state;
    enum { N = 200000 };
    uint64_t *v = malloc(N * sizeof *v);
    hist *h = new_hist();
    assert_non_null(v);
    for (int i = 0; i < N; i++) {
        double u = (double)(rnd() >> 11) * 0x1p-53;
        v[i] = (uint64_t)(1000.0 * pow(6e7, u)); /* 1e3 .. 6e10 ns */
        hist_record(h, v[i]);
    }
    qsort(v, N, sizeof *v, cmp_u64);
    static const double qs[] = {0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999};
    for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
        uint64_t rank = (uint64_t)ceil(qs[k] * N);
        uint64_t exact = v[rank - 1], got = hist_quantile(h, qs[k]);
        double rel = fabs((double)got - (double)exact) / (double)exact;
        assert_true(rel <= 1.0 / 256.0 + 1e-12);
    }
    assert_int_equal(hist_quantile(h, 1.0), v[N - 1]);
    assert_int_equal(hist_quantile(h, 0.0), v[0]);
    free(v);
    free(h);
}

/* Small integers are exact; the rank rule is ceil(q * count). */
static void test_exact_small(void **state)
{
    (void)state;
    hist *h = new_hist();
    for (uint64_t x = 1; x <= 100; x++)
        hist_record(h, x);
    assert_int_equal(hist_quantile(h, 0.5), 50);
    assert_int_equal(hist_quantile(h, 0.9), 90);
    assert_int_equal(hist_quantile(h, 0.99), 99);
    assert_int_equal(hist_quantile(h, 0.995), 100);
    assert_true(fabs(hist_mean(h) - 50.5) < 1e-9);
    free(h);
}

static void test_record_n_and_merge(void **state)
{
    (void)state;
    hist *a = new_hist(), *b = new_hist(), *c = new_hist();
    for (int i = 0; i < 5000; i++) {
        uint64_t x = rnd() % 5000000;
        hist_record(i % 2 ? a : b, x);
        hist_record(c, x);
    }
    hist_record_n(a, 42, 3);
    hist_record_n(c, 42, 3);
    hist_record_n(a, 99, 0); /* no-op */
    hist_merge(a, b);
    assert_int_equal(a->count, c->count);
    assert_int_equal(a->min, c->min);
    assert_int_equal(a->max, c->max);
    assert_memory_equal(a->b, c->b, sizeof a->b);
    for (double q = 0.05; q < 1; q += 0.05)
        assert_int_equal(hist_quantile(a, q), hist_quantile(c, q));
    hist *e = new_hist();
    hist_merge(a, e); /* merging an empty one changes nothing, min included */
    assert_int_equal(a->min, c->min);
    hist_reset(a);
    assert_int_equal(a->count, 0);
    assert_int_equal(a->min, UINT64_MAX);
    free(a);
    free(b);
    free(c);
    free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets_tile),
        cmocka_unit_test(test_bucket_width_bound),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_single_and_extremes),
        cmocka_unit_test(test_quantiles_vs_sort),
        cmocka_unit_test(test_exact_small),
        cmocka_unit_test(test_record_n_and_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
