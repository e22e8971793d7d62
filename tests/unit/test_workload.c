/* test_workload — the reference workload is deterministic and has W1's shape. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixp.h"
#include "kind.h"
#include "workload.h"

#define N 200000

static void test_determinism(void **st)
{
    (void)st;
    workload a, b, c;
    assert_int_equal(workload_init(&a, 1000, 1.1, 42), 0);
    assert_int_equal(workload_init(&b, 1000, 1.1, 42), 0);
    assert_int_equal(workload_init(&c, 1000, 1.1, 43), 0);
    int differ = 0;
    for (int i = 0; i < N; i++) {
        workload_trade ta, tb, tc;
        workload_next(&a, &ta);
        workload_next(&b, &tb);
        workload_next(&c, &tc);
        assert_int_equal(ta.sym, tb.sym);
        assert_int_equal(ta.ts, tb.ts);
        assert_int_equal(ta.px, tb.px);
        assert_int_equal(ta.qty, tb.qty);
        assert_int_equal(ta.id, tb.id);
        assert_int_equal(ta.side, tb.side);
        differ += ta.sym != tc.sym || ta.px != tc.px || ta.qty != tc.qty || ta.ts != tc.ts;
    }
    assert_true(differ > N * 9 / 10);
    /* The raw stream too, and a seed of 0 is a normal seed. */
    assert_true(workload_rand(&a) == workload_rand(&b));
    workload_free(&a);
    workload_free(&b);
    workload_free(&c);
    assert_int_equal(workload_init(&a, 10, 1.1, 0), 0);
    assert_true(workload_rand(&a) != 0 || workload_rand(&a) != 0);
    workload_free(&a);
}

/* Pin the sequence: a change to the generator changes every benchmark's
 * input, so it must be a deliberate one (update these values with it). */
static void test_golden(void **st)
{
    (void)st;
    workload w;
    assert_int_equal(workload_init(&w, 1000, 1.1, 1), 0);
    workload_trade t;
    uint64_t h = 1469598103934665603ULL; /* FNV-1a over the first 1000 trades */
    for (int i = 0; i < 1000; i++) {
        workload_next(&w, &t);
        uint64_t f[] = {t.sym, (uint64_t)t.ts, (uint64_t)t.px, (uint64_t)t.qty, t.id,
                        (uint64_t)t.side};
        for (int j = 0; j < 6; j++)
            h = (h ^ f[j]) * 1099511628211ULL;
    }
    workload_free(&w);
    if (h != 0x7e09b30f16dbb8caULL)
        fail_msg("workload sequence changed: hash %#llx", (unsigned long long)h);
}

static void test_fields(void **st)
{
    (void)st;
    workload w;
    assert_int_equal(workload_init(&w, 1000, 1.1, 7), 0);
    for (uint32_t s = 0; s < w.nsym; s++) {
        assert_in_range(w.decimals[s], 2, 4);
        assert_in_range(w.px[s], 50 * FIXP_SCALE, 150 * FIXP_SCALE);
    }
    int seen_dec[5] = {0};
    for (uint32_t s = 0; s < w.nsym; s++)
        seen_dec[w.decimals[s]]++;
    assert_true(seen_dec[2] > 200 && seen_dec[3] > 200 && seen_dec[4] > 200);

    int64_t prev_ts = 0;
    uint64_t sides[3] = {0}, qty_lo = 0, qty_hi = 0;
    for (int i = 0; i < N; i++) {
        workload_trade t;
        workload_next(&w, &t);
        assert_true(t.sym < w.nsym);
        assert_int_equal(t.id, (uint64_t)i + 1);
        /* ts: trade i in [TS0 + i us, TS0 + (i+1) us), so strictly increasing. */
        assert_in_range(t.ts - WORKLOAD_TS0, (int64_t)i * 1000, (int64_t)i * 1000 + 999);
        assert_true(t.ts > prev_ts);
        prev_ts = t.ts;
        /* price: positive, on the symbol's own tick grid */
        int64_t tick = (int64_t)pow(10, 8 - w.decimals[t.sym]);
        assert_true(t.px > 0);
        assert_int_equal(t.px % tick, 0);
        /* qty: whole units 1..10,000 */
        assert_int_equal(t.qty % FIXP_SCALE, 0);
        assert_in_range(t.qty / FIXP_SCALE, 1, 10000);
        qty_lo += t.qty == FIXP_SCALE;
        qty_hi += t.qty == 10000 * FIXP_SCALE;
        assert_true(t.side == KIND_SIDE_BUY || t.side == KIND_SIDE_SELL);
        sides[t.side]++;
    }
    assert_true(qty_lo > 0 && qty_hi > 0); /* both ends reachable */
    assert_in_range(sides[KIND_SIDE_BUY], N * 48 / 100, N * 52 / 100);
    workload_free(&w);
}

/* Prices walk: they move, by ticks, without drifting off. */
static void test_price_walk(void **st)
{
    (void)st;
    workload w;
    assert_int_equal(workload_init(&w, 10, 1.1, 3), 0);
    int64_t last[10];
    memcpy(last, w.px, sizeof last);
    uint64_t moves = 0, same = 0, big = 0;
    for (int i = 0; i < N; i++) {
        workload_trade t;
        workload_next(&w, &t);
        int64_t tick = (int64_t)pow(10, 8 - w.decimals[t.sym]);
        int64_t d = llabs(t.px - last[t.sym]) / tick;
        same += d == 0;
        moves += d == 1;
        big += d > 1;
        last[t.sym] = t.px;
    }
    assert_true(same > N / 5 && same < N / 3);
    assert_true(moves > N / 2);
    assert_true(big > 0 && big < N / 32);
    workload_free(&w);
}

static void test_zipf(void **st)
{
    (void)st;
    workload w;
    const uint32_t n = 1000;
    const double s = 1.1;
    assert_int_equal(workload_init(&w, n, s, 11), 0);
    assert_true(w.cdf[n - 1] == 1.0);
    for (uint32_t k = 1; k < n; k++)
        assert_true(w.cdf[k] >= w.cdf[k - 1]);
    uint64_t *count = calloc(n, sizeof *count);
    for (int i = 0; i < N; i++) {
        workload_trade t;
        workload_next(&w, &t);
        count[t.sym]++;
    }
    double h = 0;
    for (uint32_t k = 1; k <= n; k++)
        h += pow(k, -s);
    /* Share of rank k is k^-s / H; check the top ranks within 5%. */
    for (uint32_t k = 0; k < 3; k++) {
        double want = pow(k + 1, -s) / h, got = (double)count[k] / N;
        if (fabs(got - want) > want * 0.05)
            fail_msg("rank %u share %.4f, want %.4f", k, got, want);
    }
    assert_true(count[0] > count[1] && count[1] > count[9] && count[9] > count[99]);
    uint64_t tail = 0;
    for (uint32_t k = 500; k < n; k++)
        tail += count[k];
    assert_true(tail > 0); /* the tail is reached */
    free(count);
    workload_free(&w);

    /* s = 0 is uniform. */
    assert_int_equal(workload_init(&w, 4, 0.0, 5), 0);
    uint64_t c4[4] = {0};
    for (int i = 0; i < N; i++) {
        workload_trade t;
        workload_next(&w, &t);
        c4[t.sym]++;
    }
    for (int k = 0; k < 4; k++)
        assert_in_range(c4[k], N / 4 * 95 / 100, N / 4 * 105 / 100);
    workload_free(&w);

    /* One symbol: every trade is symbol 0. */
    assert_int_equal(workload_init(&w, 1, 1.1, 5), 0);
    for (int i = 0; i < 1000; i++) {
        workload_trade t;
        workload_next(&w, &t);
        assert_int_equal(t.sym, 0);
    }
    workload_free(&w);
}

static void test_init_errors(void **st)
{
    (void)st;
    workload w;
    assert_int_not_equal(workload_init(&w, 0, 1.1, 1), 0);
    assert_int_not_equal(workload_init(&w, 10, -1.0, 1), 0);
    assert_int_not_equal(workload_init(&w, 10, NAN, 1), 0);
    assert_int_not_equal(workload_init(&w, 10, INFINITY, 1), 0);
    workload_free(&w); /* safe after a failed init */
}

static void test_symbol_names(void **st)
{
    (void)st;
    char buf[16];
    assert_int_equal(workload_symbol(0, buf), 7);
    assert_string_equal(buf, "SYM0000");
    workload_symbol(42, buf);
    assert_string_equal(buf, "SYM0042");
    workload_symbol(9999, buf);
    assert_string_equal(buf, "SYM9999");
    assert_int_equal(workload_symbol(10000, buf), 8);
    assert_string_equal(buf, "SYM10000");
    assert_int_equal(workload_symbol(UINT32_MAX, buf), 13);
    assert_string_equal(buf, "SYM4294967295");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_price_walk),
        cmocka_unit_test(test_zipf),
        cmocka_unit_test(test_init_errors),
        cmocka_unit_test(test_symbol_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
