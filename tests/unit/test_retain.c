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

/* ---- absolute cursors ------------------------------------------------------ */

static void put(store *s, const char *sym, int64_t ts, int64_t px, uint64_t id)
{
    store_batch b;
    store_batch_init(&b);
    int64_t v[TRADE_NFIELDS] = {ts, px, E8, 1, (int64_t)id};
    assert_int_equal(store_batch_add(s, &b, sym, strlen(sym), &kind_trade, v), STORE_OK);
    assert_int_equal(store_batch_reserve(s, &b), STORE_OK);
    store_batch_commit(s, &b);
    store_batch_free(&b);
}

typedef struct ids {
    uint64_t v[20000];
    size_t n;
} ids;

static void ids_visit(void *ctx, const kind *k, const void *slot)
{
    (void)k;
    ids *x = ctx;
    assert_true(x->n < 20000);
    x->v[x->n++] = kind_trade_of(slot)->id;
}

/* One page of `sym` from *cur; returns 0 at the end. */
static int page(const store *s, const char *sym, uint64_t *cur, uint32_t limit, ids *out)
{
    uint64_t next;
    assert_int_equal(store_scan(s, sym, strlen(sym), 0, INT64_MAX, *cur, limit, ids_visit, out,
                                &next),
                     STORE_OK);
    *cur = next;
    return next != STORE_CURSOR_END;
}

/* Every record still stored at the end whose id is above `after` is in
 * `got` exactly once, and `got` is in arrival order. */
static void check_no_skip(const store *s, const char *sym, const ids *got, uint64_t after)
{
    static ids all;
    uint64_t cur = 0;
    all.n = 0;
    while (page(s, sym, &cur, STORE_MAX_TRADES, &all))
        ;
    for (size_t i = 1; i < got->n; i++)
        assert_true(got->v[i] > got->v[i - 1]); /* ids rise with arrival: no repeat */
    size_t j = 0;
    for (size_t i = 0; i < all.n; i++) {
        if (all.v[i] <= after)
            continue;
        while (j < got->n && got->v[j] < all.v[i])
            j++;
        assert_true(j < got->n && got->v[j] == all.v[i]); /* not skipped */
    }
}

/* Retention drops pages between two pages of a cursor walk: no record that
 * is still stored is skipped (the cursor was an offset from the first page,
 * so every drop skipped as many records). */
static void test_cursor_survives_drops(void **st)
{
    (void)st;
    store *s = ck_open(0);
    for (uint64_t i = 0; i < 5000; i++)
        put(s, "C", TS0 + (int64_t)i, 100 * E8, i);
    static ids got;
    got.n = 0;
    uint64_t cur = 0;
    store_drop_result r;
    int64_t cut = TS0;
    int more = page(s, "C", &cur, 100, &got);
    while (more) {
        if (cut < TS0 + 4500)
            cut += 150; /* drops pages already read, and then pages not yet read */
        assert_int_equal(store_drop_before(s, cut, UINT64_MAX, &r), STORE_OK);
        more = page(s, "C", &cur, 100, &got);
    }
    assert_true(got.n > 100 && got.n < 5000);
    check_no_skip(s, "C", &got, 0);
    assert_int_equal(got.v[got.n - 1], 4999);
    store_close(s);
}

/* store_scan_mark, a reader that follows the tail as trades arrive while
 * retention drops from the head and compaction relinks sealed pages: it
 * reads every trade exactly once, in order, as store_scan would. */
static void test_scan_mark_follows(void **st)
{
    (void)st;
    store *s = ck_open(0);
    static ids got;
    got.n = 0;
    store_mark m = {0};
    uint64_t cur = 0, id = 0, total = 0;
    store_drop_result r;
    for (int round = 0; round < 300; round++) {
        for (int k = 0; k < 40; k++, id++)
            put(s, "M", TS0 + (int64_t)id, 100 * E8, id);
        if (round % 50 == 49) /* drops pages the reader has passed */
            assert_int_equal(store_drop_before(s, TS0 + (int64_t)total, UINT64_MAX, &r), STORE_OK);
        uint64_t next = 0;
        while (next != STORE_CURSOR_END) {
            size_t before = got.n;
            assert_int_equal(store_scan_mark(s, "M", 1, 0, INT64_MAX, cur, 1 + round % 97,
                                             ids_visit, &got, &next, &m),
                             STORE_OK);
            if (next != STORE_CURSOR_END)
                cur = next;
            else if (got.n > before)
                cur = id; /* read to the end */
        }
        total = got.n;
    }
    assert_int_equal(got.n, id);
    for (size_t i = 0; i < got.n; i++)
        assert_int_equal(got.v[i], i);
    assert_non_null(m.pg); /* the mark was used */
    store_close(s);
}

/* store_symbol_span: first moves with the pages retention drops, end
 * counts every arrival; store_batch_ids names a reserved batch's symbols. */
static void note(void *ctx, uint32_t id)
{
    ids *v = ctx;
    v->v[v->n++] = id;
}

static void test_span_and_batch_ids(void **st)
{
    (void)st;
    store *s = ck_open(0);
    for (uint64_t i = 0; i < 5000; i++)
        put(s, "P", TS0 + (int64_t)i, 100 * E8, i);
    put(s, "Q", TS0, E8, 1);
    store_symbol_info p, q;
    assert_int_equal(store_symbol(s, "P", 1, &p), STORE_OK);
    assert_int_equal(store_symbol(s, "Q", 1, &q), STORE_OK);
    store_span sp;
    assert_int_equal(store_symbol_span(s, p.id, &sp), STORE_OK);
    assert_int_equal(sp.first, 0);
    assert_int_equal(sp.end, 5000);
    assert_string_equal(sp.name, "P");
    assert_int_equal(sp.len, 1);
    assert_ptr_equal(sp.kind, &kind_trade);
    assert_int_equal(store_symbol_span(s, 99, &sp), STORE_ENOTFOUND);
    store_drop_result r;
    assert_int_equal(store_drop_before(s, TS0 + 3000, UINT64_MAX, &r), STORE_OK);
    assert_int_equal(store_symbol_span(s, p.id, &sp), STORE_OK);
    store_symbol_info now;
    assert_int_equal(store_symbol(s, "P", 1, &now), STORE_OK);
    assert_true(sp.first > 0 && sp.first <= 3000);
    assert_int_equal(sp.end, 5000);
    assert_int_equal(sp.end - sp.first, now.agg.count); /* no deletes: all stored */
    assert_int_equal(store_drop_before(s, INT64_MAX, UINT64_MAX, &r), STORE_OK);
    assert_int_equal(store_symbol_span(s, p.id, &sp), STORE_OK); /* emptied: still there */
    assert_int_equal(sp.first, 5000);
    assert_int_equal(sp.end, 5000);

    store_batch b;
    store_batch_init(&b);
    int64_t v[TRADE_NFIELDS] = {TS0, E8, E8, 1, 1};
    const char *seq[] = {"Q", "Q", "NEW", "Q", "P"};
    for (int i = 0; i < 5; i++)
        assert_int_equal(store_batch_add(s, &b, seq[i], strlen(seq[i]), &kind_trade, v), STORE_OK);
    assert_int_equal(store_batch_reserve(s, &b), STORE_OK);
    static ids got;
    got.n = 0;
    store_batch_ids(&b, note, &got);
    store_batch_commit(s, &b);
    store_symbol_info n;
    assert_int_equal(store_symbol(s, "NEW", 3, &n), STORE_OK);
    assert_int_equal(got.n, 4);
    assert_int_equal(got.v[0], q.id);
    assert_int_equal(got.v[1], n.id);
    assert_int_equal(got.v[2], q.id);
    assert_int_equal(got.v[3], p.id);
    assert_int_equal(store_symbol_span(s, p.id, &sp), STORE_OK);
    assert_int_equal(sp.end, 5001);
    store_batch_free(&b);
    store_close(s);
}

/* ---- deletes -------------------------------------------------------------- */

/* Deleting a range: exactly the records in it go, aggregates are refolded,
 * cursors stay valid, head pages with nothing left are freed, and a
 * snapshot keeps it all. */
static void test_delete_range(void **st)
{
    (void)st;
    store *s = ck_open(0);
    for (uint64_t i = 0; i < 3000; i++)
        put(s, "D", TS0 + (int64_t)(i % 1000) * 10, (100 + (int64_t)(i % 17)) * E8, i);
    put(s, "OTHER", TS0, E8, 9999);
    store_symbol_info si;
    store_stats s0, s1;
    store_get_stats(s, &s0);
    static ids got;
    got.n = 0;
    uint64_t cur = 0, n = 0;
    page(s, "D", &cur, 500, &got);
    /* [TS0 + 1000, TS0 + 3000): ts index 100..299 of each of the 3 rounds. */
    assert_int_equal(store_delete_range(s, "D", 1, TS0 + 1000, TS0 + 3000, &n), STORE_OK);
    assert_int_equal(n, 600);
    while (page(s, "D", &cur, 500, &got))
        ;
    check_no_skip(s, "D", &got, 0);
    assert_int_equal(got.n, 500 + 2500 - 400); /* read before: 100..299 of round 0 */
    assert_int_equal(store_symbol(s, "D", 1, &si), STORE_OK);
    assert_int_equal(si.agg.count, 2400);
    ck_agg_consistent(s, 0);
    store_get_stats(s, &s1);
    assert_int_equal(s1.trades, s0.trades - 600);
    ck_recs rr = {0};
    ck_scan(s, "D", TS0 + 1000, TS0 + 3000, 100, &rr);
    assert_int_equal(rr.n, 0);
    free(rr.b);
    /* Nothing in range: nothing changes. */
    assert_int_equal(store_delete_range(s, "D", 1, TS0 + 1000, TS0 + 3000, &n), STORE_OK);
    assert_int_equal(n, 0);
    assert_int_equal(store_delete_range(s, "D", 1, 5, 5, &n), STORE_EINVAL);
    assert_int_equal(store_delete_range(s, "NOPE", 4, 0, INT64_MAX, &n), STORE_ENOTFOUND);

    /* A snapshot keeps the tombstones' places: cursors survive a restart. */
    ck_buf m = {0};
    snapshot_io io = ck_io(&m);
    assert_int_equal(snapshot_save(s, NULL, 0, &io, NULL), SNAPSHOT_OK);
    store *r = ck_open(0);
    assert_int_equal(snapshot_load(r, &io, NULL, NULL, NULL), SNAPSHOT_OK);
    ck_equal(s, r, 2);
    uint64_t ca = 1234, cb = 1234;
    static ids ga, gb;
    ga.n = gb.n = 0;
    page(s, "D", &ca, 77, &ga);
    page(r, "D", &cb, 77, &gb);
    assert_int_equal(ca, cb);
    assert_memory_equal(ga.v, gb.v, ga.n * sizeof *ga.v);
    free(m.b);
    store_close(r);

    /* The first rounds' records, all of them: the head pages are freed. */
    assert_int_equal(store_symbol(s, "D", 1, &si), STORE_OK);
    uint64_t pages = si.pages;
    assert_int_equal(store_delete_range(s, "D", 1, TS0, TS0 + 10000, &n), STORE_OK);
    assert_int_equal(n, 2400);
    assert_int_equal(store_symbol(s, "D", 1, &si), STORE_ENOTFOUND); /* empty: invisible */
    assert_ptr_equal(store_symbol_kind(s, "D", 1), &kind_trade);     /* kind kept */
    store_get_stats(s, &s1);
    assert_int_equal(s1.trades, 1);
    assert_true(pages > 1);
    /* New records get new numbers: a cursor from before sees them all. */
    cur = 3000;
    put(s, "D", TS0 + 5, E8, 7000);
    put(s, "D", TS0 + 6, E8, 7001);
    got.n = 0;
    while (page(s, "D", &cur, 1, &got))
        ;
    assert_int_equal(got.n, 2);
    assert_int_equal(got.v[0], 7000);
    assert_int_equal(got.v[1], 7001);
    assert_int_equal(store_symbol(s, "D", 1, &si), STORE_OK);
    assert_int_equal(si.pages, 1);
    store_close(s);
}

/* One far-future trade, then deleted: the store's newest ts comes back
 * (retention's "now"), and the aggregates forget it. */
static void test_delete_newest(void **st)
{
    (void)st;
    store *s = ck_open(0);
    for (uint64_t i = 0; i < 100; i++)
        put(s, "N", TS0 + (int64_t)i, (100 + (int64_t)i) * E8, i);
    put(s, "M", TS0 + 50, 5 * E8, 100);
    const int64_t y2100 = 4102444800LL * 1000000000LL;
    put(s, "N", y2100, 999 * E8, 101);
    store_stats st0;
    store_get_stats(s, &st0);
    assert_int_equal(st0.newest_ts, y2100);
    uint64_t n;
    assert_int_equal(store_delete_range(s, "N", 1, y2100, y2100 + 1, &n), STORE_OK);
    assert_int_equal(n, 1);
    store_get_stats(s, &st0);
    assert_int_equal(st0.newest_ts, TS0 + 99);
    store_symbol_info si;
    assert_int_equal(store_symbol(s, "N", 1, &si), STORE_OK);
    assert_int_equal(si.agg.high, 199 * E8);
    assert_int_equal(si.agg.close, 199 * E8);
    assert_int_equal(si.agg.last_ts, TS0 + 99);
    ck_agg_consistent(s, 0);
    store_close(s);
}

/* A delete while a batch is reserved for the partition (growing page and
 * chained): the commit still fits its reservation, and retention then drops
 * tombstoned pages like any others. */
static void test_delete_with_pending(void **st)
{
    (void)st;
    for (int big = 0; big < 2; big++) {
        store *s = ck_open(0);
        int total = big ? 1000 : 2;
        for (int i = 0; i < total; i++)
            put(s, "G", TS0 + i, E8, (uint64_t)i);
        store_batch b;
        store_batch_init(&b);
        for (int i = 0; i < 300; i++) {
            int64_t v[TRADE_NFIELDS] = {TS0 + 5000 + i, 2 * E8, E8, 2, 5000 + i};
            assert_int_equal(store_batch_add(s, &b, "G", 1, &kind_trade, v), STORE_OK);
        }
        assert_int_equal(store_batch_reserve(s, &b), STORE_OK);
        uint64_t n;
        assert_int_equal(store_delete_range(s, "G", 1, 0, INT64_MAX, &n), STORE_OK);
        assert_int_equal(n, (uint64_t)total);
        store_batch_commit(s, &b);
        store_symbol_info si;
        assert_int_equal(store_symbol(s, "G", 1, &si), STORE_OK);
        assert_int_equal(si.agg.count, 300);
        assert_int_equal(si.agg.first_ts, TS0 + 5000);
        ck_agg_consistent(s, 0);
        store_drop_result r;
        assert_int_equal(store_drop_before(s, TS0 + 5100, UINT64_MAX, &r), STORE_OK);
        ck_agg_consistent(s, 0);
        store_stats st0;
        store_get_stats(s, &st0);
        assert_int_equal(st0.bytes_pending, 0);
        assert_int_equal(st0.trades, 300 - r.trades);
        store_batch_free(&b);
        store_close(s);
    }
}

/* ---- the memory cap after drops -------------------------------------------- */

/* Stage `n` trades of `sym` (kind k) at ts from *ts on, then reserve. */
static int stage(store *s, store_batch *b, const char *sym, const kind *k, int n, int64_t *ts)
{
    for (int i = 0; i < n; i++, (*ts)++) {
        int64_t v[OPTION_TRADE_NFIELDS] = {*ts, 100 * E8, E8, 1, *ts, 100 * E8,
                                           TS0 + 86400LL * 1000000000LL, 1};
        assert_int_equal(store_batch_add(s, b, sym, strlen(sym), k, v), STORE_OK);
    }
    return store_batch_reserve(s, b);
}

/* Fill the store with batches of `n` trades of `sym` until reserve says
 * STORE_FULL; returns the trades stored. */
static uint64_t fill_to_cap(store *s, const char *sym, int n, int64_t *ts)
{
    store_batch b;
    store_batch_init(&b);
    uint64_t stored = 0;
    int rc;
    while ((rc = stage(s, &b, sym, &kind_trade, n, ts)) == STORE_OK) {
        store_batch_commit(s, &b);
        stored += (uint64_t)n;
    }
    assert_int_equal(rc, STORE_EFULL);
    store_batch_release(s, &b);
    store_batch_free(&b);
    return stored;
}

/* The defect: once a store had reached its cap, pages retention freed
 * stayed counted against it, so every batch that needed a page got
 * STORE_FULL for ever. Fill, drop everything, and the same volume fits
 * again, round after round, through free-listed pages. */
static void cap_reached_then_drops_make_room(int plain)
{
    /* Compacting, what a drop frees lies in the small classes of compact
     * pages, which a new symbol's growth steps cannot take: only chunks
     * emptied and given back to every class (slab.c) make room for it. */
    store *s = ck_open_cfg((size_t)4 << 20, plain);
    int64_t ts = TS0;
    uint64_t first = fill_to_cap(s, "A", 500, &ts);
    assert_true(first > 40000);
    for (int round = 0; round < 5; round++) {
        store_drop_result r;
        assert_int_equal(store_drop_before(s, ts, UINT64_MAX, &r), STORE_OK);
        assert_true(r.done);
        store_stats ss;
        store_get_stats(s, &ss);
        assert_int_equal(ss.trades, 0);
        /* A new symbol (growth ladder, then chained pages) and the old one. */
        uint64_t again = fill_to_cap(s, round % 2 ? "A" : "B", 500, &ts);
        assert_true(again >= first * 9 / 10);
        store_get_stats(s, &ss);
        assert_true(ss.bytes_reserved + ss.bytes_pending <= ss.bytes_cap);
    }
    ck_agg_consistent(s, 0);
    store_close(s);
}

static void test_cap_reached_then_drops_make_room(void **st)
{
    (void)st;
    cap_reached_then_drops_make_room(1);
}

/* The same with compaction (the default): before chunks were given back,
 * the second round stored nothing (STORE_FULL at the first growth step). */
static void test_cap_reached_then_drops_make_room_compact(void **st)
{
    (void)st;
    cap_reached_then_drops_make_room(0);
}

/* Two reserved batches must not both count the same free pages: after a
 * drop, one batch reserving about all of them leaves too little for a
 * second as large; once the first commits, the second still gets
 * STORE_FULL, and after another drop it fits. */
static void test_free_pages_counted_once(void **st)
{
    (void)st;
    store *s = ck_open_plain((size_t)2 << 20); /* the volumes are the wide layout's */
    int64_t ts = TS0;
    uint64_t cap_trades = fill_to_cap(s, "A", 500, &ts);
    store_drop_result r;
    assert_int_equal(store_drop_before(s, ts, UINT64_MAX, &r), STORE_OK);
    int big = (int)(cap_trades * 6 / 10);
    store_batch b1, b2;
    store_batch_init(&b1);
    store_batch_init(&b2);
    assert_int_equal(stage(s, &b1, "B", &kind_trade, big, &ts), STORE_OK);
    assert_int_equal(stage(s, &b2, "C", &kind_trade, big, &ts), STORE_EFULL);
    store_batch_commit(s, &b1);
    store_batch_release(s, &b2);
    assert_int_equal(stage(s, &b2, "C", &kind_trade, big, &ts), STORE_EFULL);
    store_batch_release(s, &b2);
    assert_int_equal(store_drop_before(s, ts, UINT64_MAX, &r), STORE_OK);
    assert_int_equal(stage(s, &b2, "C", &kind_trade, big, &ts), STORE_OK);
    store_batch_commit(s, &b2);
    store_batch_free(&b1);
    store_batch_free(&b2);
    store_close(s);
}

/* Counter-test: free pages of a class too small for what a batch asks do
 * not count. Thousands of one-trade symbols fill the cap with 96-byte
 * pages; dropped, they are free but no growth step past 96 bytes can use
 * them, so symbols that need larger pages are refused (counting free
 * bytes would admit them, and commit would have to carve past the cap);
 * a few two-trade batches still fit. */
static void test_small_free_pages_do_not_count(void **st)
{
    (void)st;
    store_config cfg = {.max_memory = (size_t)2 << 20, .max_symbols = 0};
    store *s = NULL;
    assert_int_equal(store_open(&s, &cfg), STORE_OK);
    int64_t ts = TS0;
    store_batch b;
    store_batch_init(&b);
    char sym[16];
    int rc = STORE_OK;
    uint32_t nsym = 0;
    while (rc == STORE_OK) {
        for (int i = 0; i < 100; i++) {
            snprintf(sym, sizeof sym, "S%u", nsym++);
            int64_t v[TRADE_NFIELDS] = {ts++, 100 * E8, E8, 1, ts};
            assert_int_equal(store_batch_add(s, &b, sym, strlen(sym), &kind_trade, v), STORE_OK);
        }
        if ((rc = store_batch_reserve(s, &b)) == STORE_OK)
            store_batch_commit(s, &b);
    }
    assert_int_equal(rc, STORE_EFULL);
    store_batch_release(s, &b);
    store_drop_result r;
    assert_int_equal(store_drop_before(s, ts, UINT64_MAX, &r), STORE_OK);
    store_stats ss;
    store_get_stats(s, &ss);
    /* Little room left to carve, far more in free 96-byte pages. */
    assert_true(ss.bytes_cap - ss.bytes_reserved < 64 * 1024);
    assert_true(ss.bytes_reserved - ss.bytes_index > 400 * 1024);
    /* Ten symbols of 63 trades each grow through every class to 2 KiB
     * (~15 KiB of pages apiece): no step past 96 bytes can take a free page,
     * so they would have to carve ~150 KiB past the cap. */
    for (int i = 0; i < 10; i++) {
        snprintf(sym, sizeof sym, "BIG%d", i);
        for (int j = 0; j < 63; j++) {
            int64_t v[TRADE_NFIELDS] = {ts++, 100 * E8, E8, 1, ts};
            assert_int_equal(store_batch_add(s, &b, sym, strlen(sym), &kind_trade, v), STORE_OK);
        }
    }
    assert_int_equal(store_batch_reserve(s, &b), STORE_EFULL);
    store_batch_release(s, &b);
    /* Trades of symbols that exist, two each, fit in free 96-byte pages. */
    for (uint32_t i = 0; i < 50; i++) {
        snprintf(sym, sizeof sym, "S%u", i);
        for (int j = 0; j < 2; j++) {
            int64_t v[TRADE_NFIELDS] = {ts++, 100 * E8, E8, 1, ts};
            assert_int_equal(store_batch_add(s, &b, sym, strlen(sym), &kind_trade, v), STORE_OK);
        }
    }
    assert_int_equal(store_batch_reserve(s, &b), STORE_OK);
    store_batch_commit(s, &b);
    store_batch_free(&b);
    store_close(s);
}

/* Soundness under churn: random symbols of both kinds, random batch sizes,
 * two batches reserved at a time, drops of the older half whenever the cap
 * refuses. A reservation that counted a page the slab cannot hand out
 * would abort in commit. */
static void cap_churn(int plain)
{
    /* A compacting store holds more in the same cap: a smaller one, so
     * that it is refused as often. */
    store *s = ck_open_cfg(plain ? (size_t)3 << 20 : (size_t)3 << 19, plain);
    store_batch b[2];
    store_batch_init(&b[0]);
    store_batch_init(&b[1]);
    int64_t ts = TS0;
    char sym[16];
    uint64_t refused = 0, stored = 0, compact = 0; /* most compact pages at a refusal */
    for (int iter = 0; iter < 3000; iter++) {
        store_batch *x = &b[iter % 2];
        if (x->reserved) {
            store_batch_commit(s, x);
            continue;
        }
        uint32_t n = 1 + (uint32_t)ck_below(ck_below(10) == 0 ? 3000 : 60);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t k = (uint32_t)ck_below(400);
            ck_sym((uint32_t)ck_below(k + 1), sym);
            int64_t v[OPTION_TRADE_NFIELDS] = {ts++, 100 * E8, E8, 1, ts, 100 * E8,
                                               TS0 + 86400LL * 1000000000LL, 1};
            const kind *kd = store_batch_symbol_kind(s, x, sym, strlen(sym));
            if (!kd)
                kd = ck_below(5) == 0 ? &kind_option_trade : &kind_trade;
            assert_int_equal(store_batch_add(s, x, sym, strlen(sym), kd, v), STORE_OK);
        }
        if (store_batch_reserve(s, x) == STORE_OK) {
            stored += n;
            continue;
        }
        refused++;
        store_batch_release(s, x);
        store_stats ss;
        store_get_stats(s, &ss);
        compact = ss.pages_compact > compact ? ss.pages_compact : compact;
        store_drop_result r;
        int64_t cut = ts - (int64_t)(ck_below(2) ? ss.trades / 2 : ss.trades / 8);
        assert_int_equal(store_drop_before(s, cut, UINT64_MAX, &r), STORE_OK);
    }
    for (int j = 0; j < 2; j++)
        if (b[j].reserved) /* commit only a reserved batch (asserted) */
            store_batch_commit(s, &b[j]);
    assert_true(refused > 5);
    assert_true(stored > (plain ? 200000u : 100000u));
    assert_true(plain ? compact == 0 : compact > 100);
    store_batch_free(&b[0]);
    store_batch_free(&b[1]);
    store_close(s);
}

static void test_cap_churn_commits_never_fail(void **st)
{
    (void)st;
    cap_churn(1);
}

/* The same with compaction at the cap: compaction takes memory only as the
 * reservations allow (store_compact.c), so commits never fail either. */
static void test_cap_churn_compact(void **st)
{
    (void)st;
    cap_churn(0);
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
        cmocka_unit_test(test_cursor_survives_drops),
        cmocka_unit_test(test_span_and_batch_ids),
        cmocka_unit_test(test_scan_mark_follows),
        cmocka_unit_test(test_delete_range),
        cmocka_unit_test(test_delete_newest),
        cmocka_unit_test(test_delete_with_pending),
        cmocka_unit_test(test_cap_reached_then_drops_make_room),
        cmocka_unit_test(test_cap_reached_then_drops_make_room_compact),
        cmocka_unit_test(test_free_pages_counted_once),
        cmocka_unit_test(test_small_free_pages_do_not_count),
        cmocka_unit_test(test_cap_churn_commits_never_fail),
        cmocka_unit_test(test_cap_churn_compact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
