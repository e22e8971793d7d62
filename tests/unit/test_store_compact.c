/* test_store_compact — differential: a compacting store and a plain store
 * (store_config.plain) fed the same random and adversarial trades of both
 * kinds (W1-like runs, extreme and negative prices, ts jumps across the
 * range, out-of-order and duplicate ts, zero qty, max ids) answer every
 * query identically — symbol aggregates, trade ranges paged with cursors,
 * bars, top-N — and go on doing so after deletes, a snapshot round trip
 * (each store's snapshot loaded into both kinds of store) and a retention
 * drop spread over budgeted calls. Also: the compacting store did compact,
 * and takes fewer bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store_check.h"

#define NSYMS 60
#define TSMAX ((int64_t)1 << 62) /* ck_equal's ranges do arithmetic on spans */

/* One trade's values: mostly W1-like per symbol, with adversarial runs. */
static void gen(uint32_t k, uint64_t i, int64_t *v)
{
    static int64_t px[NSYMS], ts[NSYMS];
    if (ts[k] == 0) {
        ts[k] = TS0 + (int64_t)k * 1000;
        px[k] = (int64_t)(10 + k) * E8;
    }
    int mode = (int)ck_below(100);
    ts[k] += (int64_t)ck_below(5000);
    px[k] += ((int64_t)ck_below(5) - 2) * 1000000;
    v[0] = ts[k];
    v[1] = px[k];
    v[2] = (int64_t)(1 + ck_below(10000)) * E8;
    v[3] = (int64_t)ck_below(3);
    v[4] = (int64_t)i;
    v[5] = (int64_t)(90 + ck_below(20)) * E8;
    v[6] = TS0 + 86400LL * 1000000000LL * (int64_t)(1 + ck_below(30));
    v[7] = 1 + (int64_t)ck_below(2);
    if (mode == 0)
        v[1] = ck_below(2) ? INT64_MAX : INT64_MIN + 1; /* extreme prices */
    else if (mode == 1)
        v[1] = -(int64_t)ck_below(1000) * 1000000; /* negative */
    else if (mode == 2)
        v[0] = (int64_t)ck_below((uint64_t)TSMAX); /* a jump anywhere */
    else if (mode == 3)
        v[0] = ts[k] - (int64_t)ck_below(10000000); /* late */
    else if (mode < 8)
        v[0] = ts[k] - (int64_t)ck_below(2) * 4999; /* duplicates, or nearly */
    else if (mode == 8)
        v[2] = 0;
    else if (mode == 9)
        v[4] = (int64_t)UINT64_MAX - (int64_t)ck_below(3);
    else if (mode == 10)
        v[2] = ((int64_t)1 << 62) - 1;
    if (v[0] < 0)
        v[0] = 0;
}

static void feed(store *c, store *p, uint64_t n, uint64_t *id)
{
    store_batch bc, bp;
    char sym[16];
    store_batch_init(&bc);
    store_batch_init(&bp);
    for (uint64_t i = 0; i < n; i++, (*id)++) {
        uint32_t k = (uint32_t)ck_below(ck_below(NSYMS) + 1); /* skewed */
        ck_sym(k, sym);
        int64_t v[OPTION_TRADE_NFIELDS];
        gen(k, *id, v);
        const kind *kd = k % 5 == 4 ? &kind_option_trade : &kind_trade;
        assert_int_equal(store_batch_add(c, &bc, sym, strlen(sym), kd, v), STORE_OK);
        assert_int_equal(store_batch_add(p, &bp, sym, strlen(sym), kd, v), STORE_OK);
        if (bc.n == 1 + ck_below(700) || i + 1 == n) {
            assert_int_equal(store_batch_reserve(c, &bc), STORE_OK);
            assert_int_equal(store_batch_reserve(p, &bp), STORE_OK);
            store_batch_commit(c, &bc);
            store_batch_commit(p, &bp);
        }
    }
    store_batch_free(&bc);
    store_batch_free(&bp);
}

/* Deletes of random ranges, the same on both: same counts. */
static void deletes(store *c, store *p, int rounds)
{
    char sym[16];
    for (int r = 0; r < rounds; r++) {
        ck_sym((uint32_t)ck_below(NSYMS), sym);
        store_symbol_info si;
        if (store_symbol(p, sym, strlen(sym), &si) != STORE_OK)
            continue;
        int64_t span = si.agg.last_ts - si.agg.first_ts + 1;
        int64_t from = si.agg.first_ts + (int64_t)ck_below((uint64_t)span);
        int64_t to = from + 1 + (int64_t)ck_below((uint64_t)(span / 4 + 1));
        uint64_t dc = 0, dp = 0;
        int rc1 = store_delete_range(c, sym, strlen(sym), from, to, &dc);
        int rc2 = store_delete_range(p, sym, strlen(sym), from, to, &dp);
        assert_int_equal(rc1, rc2);
        assert_int_equal(dc, dp);
    }
}

static void drop(store *s, int64_t cutoff)
{
    store_drop_result r;
    do
        assert_int_equal(store_drop_before(s, cutoff, 5000, &r), STORE_OK);
    while (!r.done);
    do /* a second pass applies folds the first left in progress */
        assert_int_equal(store_drop_before(s, cutoff, 5000, &r), STORE_OK);
    while (!r.done);
}

static store *reload(const store *from, int plain)
{
    ck_buf m = {0};
    snapshot_io io = ck_io(&m);
    assert_int_equal(snapshot_save(from, NULL, 0, &io, NULL), SNAPSHOT_OK);
    store *s = ck_open_cfg(0, plain);
    m.pos = 0;
    assert_int_equal(snapshot_load(s, &io, NULL, NULL, NULL), SNAPSHOT_OK);
    free(m.b);
    return s;
}

static void test_differential(void **st)
{
    (void)st;
    uint64_t id = 1;
    store *c = ck_open(0), *p = ck_open_plain(0);
    feed(c, p, 150000, &id);
    ck_equal(c, p, NSYMS + 1);
    store_stats sc, sp;
    store_get_stats(c, &sc);
    store_get_stats(p, &sp);
    assert_true(sc.pages_compact > 500);
    assert_int_equal(sp.pages_compact, 0);
    assert_true(sc.bytes_reserved < sp.bytes_reserved);
    print_message("compacting %.1f B/trade, plain %.1f, %llu compact pages of %llu\n",
                  (double)sc.bytes_reserved / (double)sc.trades,
                  (double)sp.bytes_reserved / (double)sp.trades,
                  (unsigned long long)sc.pages_compact, (unsigned long long)sc.pages);

    deletes(c, p, 200);
    ck_equal(c, p, NSYMS + 1);
    feed(c, p, 20000, &id); /* appends after deletes */
    ck_equal(c, p, NSYMS + 1);

    /* Snapshots: each store's, loaded into a compacting and a plain store. */
    store *cc = reload(c, 0), *cp = reload(c, 1), *pc = reload(p, 0), *pp = reload(p, 1);
    ck_equal(c, cc, NSYMS + 1);
    ck_equal(c, cp, NSYMS + 1);
    ck_equal(p, pc, NSYMS + 1);
    ck_equal(p, pp, NSYMS + 1);
    store_get_stats(pc, &sp);
    assert_true(sp.pages_compact > 500); /* a plain store's snapshot loads compact */

    /* Retention, budgeted. It drops whole pages, so which older trades go
     * depends on where pages end, and that on the free pages each store
     * had to chain with (a compacting store frees compact pages too): a
     * plain store and a compacting one with the same page bounds — a
     * snapshot keeps them — drop the same and answer the same; any two
     * keep every trade from the cutoff on. */
    int64_t cut = TS0 + (int64_t)(id / 2) * 2500;
    drop(c, cut);
    drop(p, cut);
    drop(cc, cut);
    drop(pc, cut);
    ck_equal(c, cc, NSYMS + 1);
    ck_equal(p, pc, NSYMS + 1);
    ck_recs ra = {0}, rb = {0};
    for (uint32_t k = 0; k < NSYMS; k++) {
        char sym[16];
        ck_sym(k, sym);
        store_symbol_info si;
        ra.n = ra.len = rb.n = rb.len = 0; /* a symbol with nothing left: no records */
        if (store_symbol(c, sym, strlen(sym), &si) == STORE_OK)
            ck_scan(c, sym, cut, INT64_MAX, 333, &ra);
        if (store_symbol(p, sym, strlen(sym), &si) == STORE_OK)
            ck_scan(p, sym, cut, INT64_MAX, 333, &rb);
        assert_int_equal(ra.n, rb.n);
        if (ra.len)
            assert_memory_equal(ra.b, rb.b, ra.len);
    }
    free(ra.b);
    free(rb.b);
    /* Then more of everything on the pair with equal bounds. */
    deletes(pc, p, 100);
    feed(pc, p, 20000, &id);
    ck_equal(pc, p, NSYMS + 1);
    for (uint32_t i = 0; i < NSYMS; i++)
        ck_agg_consistent(pc, i);

    store_close(cc);
    store_close(cp);
    store_close(pc);
    store_close(pp);
    store_close(c);
    store_close(p);
}

/* Deletes that empty compact pages and whole symbols, then ingest again:
 * pages freed from the head, the frontier reset, compaction goes on. */
static void test_delete_everything(void **st)
{
    (void)st;
    uint64_t id = 1, dc = 0, dp = 0;
    store *c = ck_open(0), *p = ck_open_plain(0);
    feed(c, p, 30000, &id);
    char sym[16];
    for (uint32_t k = 0; k < NSYMS; k += 2) {
        ck_sym(k, sym);
        int rc1 = store_delete_range(c, sym, strlen(sym), 0, INT64_MAX, &dc);
        int rc2 = store_delete_range(p, sym, strlen(sym), 0, INT64_MAX, &dp);
        assert_int_equal(rc1, rc2);
        assert_int_equal(dc, dp);
    }
    ck_equal(c, p, NSYMS + 1);
    feed(c, p, 30000, &id);
    ck_equal(c, p, NSYMS + 1);
    store_stats sc;
    store_get_stats(c, &sc);
    assert_true(sc.pages_compact > 100);
    store_close(c);
    store_close(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_differential),
        cmocka_unit_test(test_delete_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
