/* test_retain — store_drop_before: what stays (every trade at or after the
 * cutoff, in arrival order), aggregates equal to a refold of what stays, a
 * budget spread over calls with commits in between, emptied symbols, a
 * pending reservation keeping its tail page, and a snapshot after drops. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store_check.h"

#define NSYMS 200

/* Copy of a store's content per symbol id, to compare before/after. */
typedef struct image {
    uint32_t n;
    ck_recs r[NSYMS + 16];
} image;

static void take(const store *s, image *im)
{
    memset(im, 0, sizeof *im);
    im->n = NSYMS + 16;
    for (uint32_t id = 0; id < im->n; id++) {
        store_symbol_info si;
        if (store_symbol_by_id(s, id, &si) == STORE_OK)
            ck_scan(s, si.name, INT64_MIN, INT64_MAX, STORE_MAX_TRADES, &im->r[id]);
    }
}

static void image_free(image *im)
{
    for (uint32_t i = 0; i < im->n; i++)
        free(im->r[i].b);
}

/* After a drop at `cutoff`: what is left of each symbol is a suffix of
 * what it held (a page prefix went), every trade at or after the cutoff is
 * in it, the aggregates are a refold of it, and the totals add up. */
static uint64_t check_after(const store *s, const image *before, int64_t cutoff)
{
    uint64_t total = 0, dropped = 0;
    for (uint32_t id = 0; id < before->n; id++) {
        const ck_recs *b = &before->r[id];
        store_symbol_info si;
        ck_recs a = {0};
        if (store_symbol_by_id(s, id, &si) == STORE_OK)
            ck_scan(s, si.name, INT64_MIN, INT64_MAX, STORE_MAX_TRADES, &a);
        assert_true(a.n <= b->n);
        size_t gone = b->n - a.n;
        if (a.n)
            assert_memory_equal(a.b, b->b + gone * b->size, a.len);
        for (size_t i = 0; i < gone; i++)
            assert_true((int64_t)kind_trade_of(b->b + i * b->size)->ts < cutoff);
        ck_agg_consistent(s, id);
        total += a.n;
        dropped += gone;
        free(a.b);
    }
    store_stats st;
    store_get_stats(s, &st);
    assert_int_equal(st.trades, total);
    return dropped;
}

static void test_drop_in_one_call(void **st)
{
    (void)st;
    uint64_t id = 1;
    store *s = ck_open(0);
    ck_fill(s, NSYMS, 300000, TS0, &id);
    static image before;
    take(s, &before);
    store_stats s0, s1;
    store_get_stats(s, &s0);
    int64_t cutoff = TS0 + 150000LL * 1000; /* about half */
    store_drop_result r;
    assert_int_equal(store_drop_before(s, cutoff, UINT64_MAX, &r), STORE_OK);
    assert_true(r.done);
    assert_true(r.trades > 100000 && r.trades < 150000);
    assert_true(r.pages > 0 && r.partitions > 0);
    assert_int_equal(check_after(s, &before, cutoff), r.trades);
    store_get_stats(s, &s1);
    assert_int_equal(s1.trades, s0.trades - r.trades);
    assert_int_equal(s1.pages, s0.pages - r.pages);
    assert_int_equal(s1.newest_ts, s0.newest_ts);
    assert_int_equal(s1.batches, s0.batches);
    /* Again at the same cutoff: nothing more to drop. */
    assert_int_equal(store_drop_before(s, cutoff, UINT64_MAX, &r), STORE_OK);
    assert_int_equal(r.trades, 0);
    assert_true(r.done);
    image_free(&before);

    /* Freed pages are reused: ingesting as much again takes no more. */
    ck_fill(s, NSYMS, s0.trades - s1.trades, TS0 + 400000LL * 1000, &id);
    store_stats s2;
    store_get_stats(s, &s2);
    assert_true(s2.bytes_reserved <= s0.bytes_reserved + s0.bytes_reserved / 10);
    for (uint32_t i = 0; i < NSYMS + 16; i++)
        ck_agg_consistent(s, i);
    store_close(s);
}

/* A tiny budget: many calls, commits to the same partitions in between;
 * the state is consistent after every call and ends as one big call does. */
static void test_drop_budgeted(void **st)
{
    (void)st;
    uint64_t id = 1, id_b = 1;
    store *a = ck_open(0), *b = ck_open(0);
    uint64_t seed = ck_rng;
    ck_fill(a, NSYMS, 200000, TS0, &id);
    ck_rng = seed;
    ck_fill(b, NSYMS, 200000, TS0, &id_b);
    int64_t cutoff = TS0 + 120000LL * 1000;
    store_drop_result r;
    uint64_t calls = 0, dropped = 0;
    do {
        assert_int_equal(store_drop_before(a, cutoff, 300, &r), STORE_OK);
        assert_true(r.work <= 300 + STORE_DROP_PART_COST);
        dropped += r.trades;
        calls++;
        if (calls % 50 == 0) {
            /* Consistent in between: aggregates match the pages. */
            for (uint32_t i = 0; i < NSYMS; i += 7)
                ck_agg_consistent(a, i);
        }
    } while (!r.done);
    assert_int_equal(store_drop_before(b, cutoff, UINT64_MAX, &r), STORE_OK);
    assert_int_equal(dropped, r.trades);
    ck_equal(a, b, NSYMS + 16);
    print_message("budget 300: %llu calls for %llu trades dropped\n", (unsigned long long)calls,
                  (unsigned long long)dropped);

    /* Commits interleaved with a fold in progress: still consistent, and
     * the trades committed meanwhile are counted. */
    ck_fill(a, 3, 20000, TS0 + 300000LL * 1000, &id); /* big partitions: SYM0..2 */
    cutoff = TS0 + 300000LL * 1000 + 10000LL * 1000;
    for (int round = 0; round < 2000; round++) {
        assert_int_equal(store_drop_before(a, cutoff, 64, &r), STORE_OK);
        ck_fill(a, 3, 3, TS0 + 400000LL * 1000 + round * 10000LL, &id);
        if (round % 100 == 0)
            for (uint32_t i = 0; i < 3; i++)
                ck_agg_consistent(a, i);
    }
    for (uint32_t i = 0; i < NSYMS; i++)
        ck_agg_consistent(a, i);
    store_close(a);
    store_close(b);
}

/* Everything older than the cutoff, tail pages included: symbols go
 * invisible (kind still fixed), and come back with new trades. */
static void test_drop_all(void **st)
{
    (void)st;
    uint64_t id = 1;
    store *s = ck_open(0);
    ck_fill(s, 20, 5000, TS0, &id);
    store_stats s0, s1;
    store_get_stats(s, &s0);
    store_drop_result r;
    assert_int_equal(store_drop_before(s, INT64_MAX, UINT64_MAX, &r), STORE_OK);
    assert_int_equal(r.trades, s0.trades);
    store_get_stats(s, &s1);
    assert_int_equal(s1.trades, 0);
    assert_int_equal(s1.symbols, 0);
    assert_int_equal(s1.pages, 0);
    store_symbol_info si;
    assert_int_equal(store_symbol(s, "SYM0", 4, &si), STORE_ENOTFOUND);
    assert_ptr_equal(store_symbol_kind(s, "OPT4", 4), &kind_option_trade);
    uint32_t top[10], n;
    assert_int_equal(store_top(s, STORE_BY_COUNT, 10, top, &n), STORE_OK);
    assert_int_equal(n, 0);
    /* A kind mismatch is still refused; the right kind grows again. */
    store_batch b;
    store_batch_init(&b);
    int64_t v[OPTION_TRADE_NFIELDS] = {TS0, E8, E8, 0, 1, E8, TS0, 1};
    assert_int_equal(store_batch_add(s, &b, "OPT4", 4, &kind_trade, v), STORE_EKIND);
    store_batch_free(&b);
    ck_fill(s, 20, 5000, TS0 + 10000000000LL, &id);
    for (uint32_t i = 0; i < 20; i++)
        ck_agg_consistent(s, i);
    store_get_stats(s, &s1);
    assert_int_equal(s1.trades, 5000);
    store_close(s);
}

/* A reserved batch pending for a partition keeps its tail page (the
 * reservation was computed against it); the commit lands and counts. */
static void test_drop_keeps_reserved_tail(void **st)
{
    (void)st;
    store *s = ck_open(0);
    store_batch b;
    store_batch_init(&b);
    for (int i = 0; i < 1000; i++) { /* one partition, many pages */
        int64_t v[TRADE_NFIELDS] = {TS0 + i, (100 + i % 7) * E8, E8, 1, i};
        assert_int_equal(store_batch_add(s, &b, "P", 1, &kind_trade, v), STORE_OK);
    }
    assert_int_equal(store_batch_reserve(s, &b), STORE_OK);
    store_batch_commit(s, &b);
    int64_t v[TRADE_NFIELDS] = {TS0 + 5000, 1 * E8, 3 * E8, 2, 5000};
    assert_int_equal(store_batch_add(s, &b, "P", 1, &kind_trade, v), STORE_OK);
    assert_int_equal(store_batch_reserve(s, &b), STORE_OK);
    store_drop_result r;
    assert_int_equal(store_drop_before(s, INT64_MAX, UINT64_MAX, &r), STORE_OK);
    store_symbol_info si;
    assert_int_equal(store_symbol(s, "P", 1, &si), STORE_OK);
    assert_true(si.agg.count > 0 && si.agg.count < 1000);
    assert_int_equal(si.pages, 1);
    store_batch_commit(s, &b);
    assert_int_equal(store_symbol(s, "P", 1, &si), STORE_OK);
    assert_int_equal(si.agg.last_ts, TS0 + 5000);
    assert_int_equal(si.agg.close, 1 * E8);
    ck_agg_consistent(s, 0);
    /* Nothing pending now: the rest can go. */
    assert_int_equal(store_drop_before(s, INT64_MAX, UINT64_MAX, &r), STORE_OK);
    assert_int_equal(store_symbol(s, "P", 1, &si), STORE_ENOTFOUND);
    store_batch_free(&b);
    store_close(s);
}

/* Out of order: a head page holding one new trade stops the drop there,
 * so only a prefix goes and nothing at or after the cutoff is lost. */
static void test_drop_prefix_only(void **st)
{
    (void)st;
    store *s = ck_open(0);
    store_batch b;
    store_batch_init(&b);
    for (int i = 0; i < 2000; i++) {
        int64_t ts = i == 0 ? TS0 + 1000000 : TS0 + i; /* the very first is the newest */
        int64_t v[TRADE_NFIELDS] = {ts, (100 + i % 13) * E8, E8, 1, i};
        assert_int_equal(store_batch_add(s, &b, "Q", 1, &kind_trade, v), STORE_OK);
    }
    assert_int_equal(store_batch_reserve(s, &b), STORE_OK);
    store_batch_commit(s, &b);
    store_drop_result r;
    assert_int_equal(store_drop_before(s, TS0 + 1500, UINT64_MAX, &r), STORE_OK);
    assert_int_equal(r.trades, 0);
    store_close(s);
    store_batch_free(&b);
}

/* Drop, snapshot, restore: the restored store is the dropped one. */
static void test_drop_then_snapshot(void **st)
{
    (void)st;
    uint64_t id = 1;
    store *a = ck_open(0);
    ck_fill(a, NSYMS, 100000, TS0, &id);
    store_drop_result r;
    assert_int_equal(store_drop_before(a, TS0 + 60000LL * 1000, UINT64_MAX, &r), STORE_OK);
    assert_true(r.trades > 0);
    ck_buf m = {0};
    snapshot_io io = ck_io(&m);
    assert_int_equal(snapshot_save(a, NULL, 0, &io, NULL), SNAPSHOT_OK);
    store *b = ck_open(0);
    assert_int_equal(snapshot_load(b, &io, NULL, NULL, NULL), SNAPSHOT_OK);
    ck_equal(a, b, NSYMS + 16);
    free(m.b);
    store_close(a);
    store_close(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drop_in_one_call),
        cmocka_unit_test(test_drop_budgeted),
        cmocka_unit_test(test_drop_all),
        cmocka_unit_test(test_drop_keeps_reserved_tail),
        cmocka_unit_test(test_drop_prefix_only),
        cmocka_unit_test(test_drop_then_snapshot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
