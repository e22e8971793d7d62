/* store_check — helpers shared by test_snapshot and test_retain: a random
 * store filler (many symbols, both kinds, out-of-order timestamps), a
 * store-to-store comparison through every query, a brute-force aggregate
 * check, and an in-memory snapshot_io. Include after cmocka.h. */
#ifndef SLOTD_STORE_CHECK_H
#define SLOTD_STORE_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "kind.h"
#include "snapshot.h"
#include "store.h"

#define E8 100000000LL
#define TS0 1767225600000000000LL

static uint64_t ck_rng = 0x2545f4914f6cdd1dULL;

static uint64_t ck_rnd(void) /* xorshift64* */
{
    ck_rng ^= ck_rng >> 12;
    ck_rng ^= ck_rng << 25;
    ck_rng ^= ck_rng >> 27;
    return ck_rng * 0x2545f4914f6cdd1dULL;
}

static uint64_t ck_below(uint64_t n) { return (uint64_t)(((unsigned __int128)ck_rnd() * n) >> 64); }

static store *ck_open_cfg(size_t max_memory, int plain)
{
    store *s = NULL;
    store_config cfg = {.max_memory = max_memory, .max_symbols = 0, .plain = plain};
    assert_int_equal(store_open(&s, &cfg), STORE_OK);
    return s;
}

/* A compacting store (the default). */
static store *ck_open(size_t max_memory) { return ck_open_cfg(max_memory, 0); }
/* A plain store: every page keeps its wide slots. */
static __attribute__((unused)) store *ck_open_plain(size_t max_memory)
{
    return ck_open_cfg(max_memory, 1);
}

static void ck_sym(uint32_t i, char *buf)
{
    snprintf(buf, 16, i % 5 == 4 ? "OPT%u" : "SYM%u", i);
}

/* `ntrades` trades over `nsyms` symbols (every fifth an option_trade
 * symbol), Zipf-ish skew, ts mostly increasing from ts0 by ~1 us with a
 * share arriving up to 1 ms late, in batches of up to 500. Ids from *id. */
static __attribute__((unused)) void ck_fill(store *s, uint32_t nsyms, uint64_t ntrades, int64_t ts0,
                                            uint64_t *id)
{
    store_batch b;
    char sym[16];
    store_batch_init(&b);
    for (uint64_t i = 0; i < ntrades; i++) {
        uint32_t k = (uint32_t)ck_below(nsyms);
        k = (uint32_t)ck_below(k + 1); /* skew toward low ids */
        ck_sym(k, sym);
        int64_t ts = ts0 + (int64_t)i * 1000 + (int64_t)ck_below(1000);
        if (ck_below(10) == 0)
            ts -= (int64_t)ck_below(1000000); /* late */
        /* One draw per statement: the order of evaluation inside an
         * initializer or an expression is unspecified, and the snapshot
         * fixture (test_snapshot) depends on this exact sequence (an ASan
         * build evaluated the old initializer in another order). */
        int64_t px = (int64_t)(90 + ck_below(20)) * E8;
        px += (int64_t)ck_below(E8);
        int64_t qty = (int64_t)(1 + ck_below(10000)) * E8;
        qty /= 1 + (int64_t)ck_below(4);
        int64_t side = (int64_t)ck_below(3);
        int64_t strike = (int64_t)(100 + ck_below(5)) * E8;
        int64_t right = 1 + (int64_t)ck_below(2);
        int64_t v[OPTION_TRADE_NFIELDS] = {
            ts, px, qty, side, (int64_t)(*id)++, strike, TS0 + 86400LL * 1000000000LL, right};
        const kind *kd = k % 5 == 4 ? &kind_option_trade : &kind_trade;
        assert_int_equal(store_batch_add(s, &b, sym, strlen(sym), kd, v), STORE_OK);
        if (b.n == 1 + ck_below(500) || i + 1 == ntrades) {
            assert_int_equal(store_batch_reserve(s, &b), STORE_OK);
            store_batch_commit(s, &b);
        }
    }
    store_batch_free(&b);
}

/* Every slot of a symbol in [from, to), through the cursor, as raw bytes. */
typedef struct ck_recs {
    unsigned char *b;
    size_t n, len, cap, size;
} ck_recs;

static void ck_visit(void *ctx, const kind *k, const void *slot)
{
    ck_recs *r = ctx;
    if (r->len + k->size > r->cap) {
        r->cap = r->cap ? r->cap * 2 : 4096;
        r->b = realloc(r->b, r->cap);
        assert_non_null(r->b);
    }
    memcpy(r->b + r->len, slot, k->size);
    r->len += k->size;
    r->size = k->size;
    r->n++;
}

static void ck_scan(const store *s, const char *sym, int64_t from, int64_t to, uint32_t limit,
                    ck_recs *r)
{
    uint64_t cur = 0, next;
    r->n = r->len = 0;
    do {
        int rc = store_scan(s, sym, strlen(sym), from, to, cur, limit, ck_visit, r, &next);
        assert_int_equal(rc, STORE_OK);
        cur = next;
    } while (cur != STORE_CURSOR_END);
}

static void ck_agg_eq(const store_agg *a, const store_agg *b)
{
    assert_int_equal(a->count, b->count);
    assert_true(a->volume == b->volume);
    assert_true(a->notional == b->notional);
    if (!a->count)
        return;
    assert_int_equal(a->open, b->open);
    assert_int_equal(a->high, b->high);
    assert_int_equal(a->low, b->low);
    assert_int_equal(a->close, b->close);
    assert_int_equal(a->first_ts, b->first_ts);
    assert_int_equal(a->last_ts, b->last_ts);
}

/* The aggregates of a symbol refolded from its stored slots (arrival
 * order, the ingest rule) must be the ones the store keeps. */
static __attribute__((unused)) void ck_agg_consistent(const store *s, uint32_t id)
{
    store_symbol_info si;
    ck_recs r = {0};
    store_agg a;
    if (store_symbol_by_id(s, id, &si) != STORE_OK)
        return;
    ck_scan(s, si.name, INT64_MIN, INT64_MAX, STORE_MAX_TRADES, &r);
    memset(&a, 0, sizeof a);
    for (size_t i = 0; i < r.n; i++) {
        const trade *t = kind_trade_of(r.b + i * r.size);
        store_agg_add(&a, (int64_t)t->ts, (int64_t)t->px, (int64_t)t->qty);
    }
    ck_agg_eq(&a, &si.agg);
    free(r.b);
}

/* Every query answers the same on a and b for symbol ids below `ids`
 * (ids included; page counts and memory may differ: a restored store packs
 * its pages, and where pages end decides how they compact). */
static void ck_equal(const store *a, const store *b, uint32_t ids)
{
    store_stats sa, sb;
    store_get_stats(a, &sa);
    store_get_stats(b, &sb);
    assert_int_equal(sa.trades, sb.trades);
    assert_int_equal(sa.symbols, sb.symbols);
    assert_int_equal(sa.batches, sb.batches);
    if (!sa.pages_compact && !sb.pages_compact) /* compact bodies depend on page bounds */
        assert_int_equal(sa.bytes_slots, sb.bytes_slots);
    ck_recs ra = {0}, rb = {0};
    for (uint32_t id = 0; id < ids; id++) {
        store_symbol_info ia, ib;
        int rca = store_symbol_by_id(a, id, &ia), rcb = store_symbol_by_id(b, id, &ib);
        assert_int_equal(rca, rcb);
        if (rca != STORE_OK)
            continue; /* past the last id, or a symbol without trades in both */
        assert_string_equal(ia.name, ib.name);
        assert_ptr_equal(ia.kind, ib.kind);
        ck_agg_eq(&ia.agg, &ib.agg);
        /* Everything, paged with an odd limit. */
        ck_scan(a, ia.name, INT64_MIN, INT64_MAX, 777, &ra);
        ck_scan(b, ib.name, INT64_MIN, INT64_MAX, 777, &rb);
        assert_int_equal(ra.n, rb.n);
        assert_int_equal(ra.n, ia.agg.count);
        if (ra.len)
            assert_memory_equal(ra.b, rb.b, ra.len);
        /* A range, and bars over the symbol's span at two intervals. */
        int64_t span = ia.agg.last_ts - ia.agg.first_ts + 1;
        int64_t from = ia.agg.first_ts + (int64_t)ck_below((uint64_t)span);
        ck_scan(a, ia.name, from, from + span / 3 + 1, 50, &ra);
        ck_scan(b, ib.name, from, from + span / 3 + 1, 50, &rb);
        assert_int_equal(ra.n, rb.n);
        if (ra.len)
            assert_memory_equal(ra.b, rb.b, ra.len);
        static store_bar ba[STORE_MAX_BARS], bb[STORE_MAX_BARS];
        for (int64_t iv = span / 50 + 1; iv <= span; iv = iv > span / 40 ? span + 1 : iv * 40) {
            uint32_t na = 0, nb = 0;
            int r1 = store_bars(a, ia.name, strlen(ia.name), ia.agg.first_ts,
                                ia.agg.last_ts + 1, iv, ba, STORE_MAX_BARS, &na);
            int r2 = store_bars(b, ib.name, strlen(ib.name), ia.agg.first_ts,
                                ia.agg.last_ts + 1, iv, bb, STORE_MAX_BARS, &nb);
            assert_int_equal(r1, r2);
            assert_int_equal(na, nb);
            for (uint32_t j = 0; j < na; j++) {
                assert_int_equal(ba[j].start, bb[j].start);
                ck_agg_eq(&ba[j].agg, &bb[j].agg);
            }
        }
    }
    free(ra.b);
    free(rb.b);
    for (int by = STORE_BY_COUNT; by <= STORE_BY_NOTIONAL; by++) {
        static uint32_t ta[STORE_MAX_TOP], tb[STORE_MAX_TOP];
        uint32_t na, nb;
        assert_int_equal(store_top(a, (store_by)by, STORE_MAX_TOP, ta, &na), STORE_OK);
        assert_int_equal(store_top(b, (store_by)by, STORE_MAX_TOP, tb, &nb), STORE_OK);
        assert_int_equal(na, nb);
        assert_memory_equal(ta, tb, na * sizeof *ta);
    }
}

/* ---- in-memory snapshot_io --------------------------------------------------- */

typedef struct ck_buf {
    unsigned char *b;
    size_t len, cap, pos;
    size_t fail_at; /* writes/reads past this many bytes fail; 0 = never */
} ck_buf;

static int ck_write(void *ctx, const void *p, size_t n)
{
    ck_buf *m = ctx;
    if (m->fail_at && m->len + n > m->fail_at)
        return -1;
    if (m->len + n > m->cap) {
        m->cap = m->cap ? m->cap * 2 : 1 << 16;
        while (m->cap < m->len + n)
            m->cap *= 2;
        m->b = realloc(m->b, m->cap);
        assert_non_null(m->b);
    }
    memcpy(m->b + m->len, p, n);
    m->len += n;
    return 0;
}

static int ck_read(void *ctx, void *p, size_t n)
{
    ck_buf *m = ctx;
    if (n > m->len - m->pos)
        return -1;
    memcpy(p, m->b + m->pos, n);
    m->pos += n;
    return 0;
}

static snapshot_io ck_io(ck_buf *m)
{
    snapshot_io io = {ck_write, ck_read, crc32c, m};
    return io;
}

#endif
