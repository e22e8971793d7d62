/* test_metrics — histogram bucketing at the bounds, the per-second rate
 * ring across gaps and wrap-around, error counts, and RSS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "server.h"

#define SEC 1000000000ull
#define T0 (1000 * SEC) /* an arbitrary monotonic start */

static void test_init(void **state)
{
    (void)state;
    metrics m;
    memset(&m, 0xab, sizeof m);
    metrics_init(&m, T0 + 123);
    assert_int_equal(m.start_ns, T0 + 123);
    assert_int_equal(m.trades_total, 0);
    assert_int_equal(m.ack_count, 0);
    for (int i = 0; i < METRICS_NBUCKETS; i++)
        assert_int_equal(m.ack_buckets[i], 0);
    for (int i = 0; i < PROTO_NCODES; i++)
        assert_int_equal(m.errors_total[i], 0);
    assert_true(metrics_rate(&m, T0 + 123, 1) == 0.0);
}

static void test_histogram(void **state)
{
    (void)state;
    metrics m;
    metrics_init(&m, T0);
    metrics_ack(&m, T0, 0, 1);              /* 0 s: first bucket */
    metrics_ack(&m, T0, 100000, 1);         /* exactly 0.0001 s: le is inclusive */
    metrics_ack(&m, T0, 100001, 1);         /* just above: second bucket */
    metrics_ack(&m, T0, 1000000000, 1);     /* exactly 1 s: last finite bucket */
    metrics_ack(&m, T0, 5000000000ull, 1);  /* 5 s: +Inf */
    assert_int_equal(m.ack_buckets[0], 2);
    assert_int_equal(m.ack_buckets[1], 1);
    assert_int_equal(m.ack_buckets[METRICS_NBUCKETS - 2], 1);
    assert_int_equal(m.ack_buckets[METRICS_NBUCKETS - 1], 1);
    assert_int_equal(m.ack_count, 5);
    assert_int_equal(m.batches_total, 5);
    assert_int_equal(m.trades_total, 5);
    assert_true(m.ack_sum > 6.0002 && m.ack_sum < 6.0003);
    uint64_t sum = 0;
    for (int i = 0; i < METRICS_NBUCKETS; i++)
        sum += m.ack_buckets[i];
    assert_int_equal(sum, m.ack_count);
}

static void test_rate_windows(void **state)
{
    (void)state;
    metrics m;
    metrics_init(&m, T0);
    /* 100 trades in each of seconds 0..9, then 1000 in second 10. */
    for (int s = 0; s < 10; s++)
        metrics_ack(&m, T0 + (uint64_t)s * SEC + SEC / 2, 1000, 100);
    metrics_ack(&m, T0 + 10 * SEC + 1, 1000, 1000);
    /* At 10.5 s the last complete second is 9 (100/s); second 10 is open. */
    uint64_t now = T0 + 10 * SEC + SEC / 2;
    assert_true(metrics_rate(&m, now, 1) == 100.0);
    assert_true(metrics_rate(&m, now, 10) == 100.0);
    /* Only 10 complete seconds have been seen: a 60 s window averages them. */
    assert_true(metrics_rate(&m, now, 60) == 100.0);
    now = T0 + 11 * SEC;
    assert_true(metrics_rate(&m, now, 1) == 1000.0);
    assert_true(metrics_rate(&m, now, 10) == (900.0 + 1000.0) / 10);
    /* Windows are clamped to 1..60. */
    assert_true(metrics_rate(&m, now, 0) == 1000.0);
    assert_true(metrics_rate(&m, now, 1000) == metrics_rate(&m, now, 60));
}

static void test_rate_gaps(void **state)
{
    (void)state;
    metrics m;
    metrics_init(&m, T0);
    for (int s = 0; s < 70; s++)
        metrics_ack(&m, T0 + (uint64_t)s * SEC, 1000, 10);
    uint64_t now = T0 + 70 * SEC;
    assert_true(metrics_rate(&m, now, 60) == 10.0);
    /* Idle for 5 s: those seconds read as zero, not as stale ring slots. */
    now = T0 + 75 * SEC;
    assert_true(metrics_rate(&m, now, 1) == 0.0);
    assert_true(metrics_rate(&m, now, 10) == 5.0);
    /* Idle for longer than the ring: everything reads zero. */
    now = T0 + 500 * SEC;
    assert_true(metrics_rate(&m, now, 60) == 0.0);
    metrics_ack(&m, now, 1000, 60);
    assert_true(metrics_rate(&m, now + SEC, 1) == 60.0);
    assert_true(metrics_rate(&m, now + SEC, 60) == 1.0);
    /* A clock that steps back counts into the ring's current second (now+1
     * after the reads above), never into a past or future slot. */
    metrics_ack(&m, now - 3 * SEC, 1000, 5);
    assert_true(metrics_rate(&m, now + SEC, 1) == 60.0);
    assert_true(metrics_rate(&m, now + 2 * SEC, 1) == 5.0);
}

static void test_errors(void **state)
{
    (void)state;
    metrics m;
    metrics_init(&m, T0);
    metrics_error(&m, PROTO_E_MALFORMED);
    metrics_error(&m, PROTO_E_MALFORMED);
    metrics_error(&m, PROTO_E_STORE_FULL);
    metrics_error(&m, (proto_code)PROTO_NCODES);  /* out of range: ignored */
    metrics_error(&m, (proto_code)12345);
    assert_int_equal(m.errors_total[PROTO_E_MALFORMED], 2);
    assert_int_equal(m.errors_total[PROTO_E_STORE_FULL], 1);
    assert_int_equal(m.errors_total[PROTO_E_BAD_QUERY], 0);
}

static void test_rss(void **state)
{
    (void)state;
    uint64_t before = server_rss_bytes();
    assert_true(before > 0);
    assert_int_equal(before % 4096, 0);
    /* Touch 64 MiB: resident memory grows by most of it. */
    size_t n = 64u << 20;
    char *p = malloc(n);
    assert_non_null(p);
    memset(p, 1, n);
    uint64_t after = server_rss_bytes();
    assert_true(after > before + (48u << 20));
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),   cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_rate_windows), cmocka_unit_test(test_rate_gaps),
        cmocka_unit_test(test_errors), cmocka_unit_test(test_rss),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
