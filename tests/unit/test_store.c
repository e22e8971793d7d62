/* test_store — symbols, two-phase ingest, the memory cap, aggregates,
 * bounded queries, and a brute-force check against naive recomputation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "expect_abort.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kind.h"
#include "store.h"

_Static_assert(sizeof(trade) == 32, "a trade slot is 32 bytes");
_Static_assert(sizeof(option_trade) == 48, "an option_trade slot is 48 bytes");

#define E8 100000000LL
#define TS0 1767225600000000000LL

typedef unsigned __int128 u128;

/* ---- helpers ------------------------------------------------------------ */

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static uint64_t rnd(void) /* xorshift64* */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

static uint64_t rnd_below(uint64_t n) { return (uint64_t)(((u128)rnd() * n) >> 64); }

static store *open_store_cfg(size_t max_memory, uint32_t max_symbols, int plain)
{
    store *s = NULL;
    store_config cfg = {.max_memory = max_memory, .max_symbols = max_symbols, .plain = plain};
    assert_int_equal(store_open(&s, &cfg), STORE_OK);
    return s;
}

/* Compacting, as by default. Tests of the wide layout's byte accounting
 * open plain stores (open_store_plain); test_store_compact checks that
 * both answer every query the same. */
static store *open_store(size_t max_memory, uint32_t max_symbols)
{
    return open_store_cfg(max_memory, max_symbols, 0);
}

static store *open_store_plain(size_t max_memory, uint32_t max_symbols)
{
    return open_store_cfg(max_memory, max_symbols, 1);
}

static int add(store *s, store_batch *b, const char *sym, int64_t ts, int64_t px, int64_t qty,
               uint64_t id)
{
    int64_t v[TRADE_NFIELDS] = {ts, px, qty, KIND_SIDE_BUY, (int64_t)id};
    int bad;
    assert_int_equal(kind_check(&kind_trade, v, 0x1f, &bad), KIND_OK);
    return store_batch_add(s, b, sym, strlen(sym), &kind_trade, v);
}

static int add_option(store *s, store_batch *b, const char *sym, int64_t ts, int64_t px,
                      int64_t qty, uint64_t id, int64_t strike)
{
    int64_t v[OPTION_TRADE_NFIELDS] = {ts,     px, qty, KIND_SIDE_SELL, (int64_t)id,
                                       strike, TS0 + 86400 * 1000000000LL, KIND_RIGHT_PUT};
    return store_batch_add(s, b, sym, strlen(sym), &kind_option_trade, v);
}

static int commit(store *s, store_batch *b)
{
    int rc = store_batch_reserve(s, b);
    if (rc == STORE_OK)
        store_batch_commit(s, b);
    store_batch_reset(b);
    return rc;
}

/* Records visited by a scan. */
typedef struct rec {
    int64_t ts, px, qty;
    uint64_t id;
} rec;

typedef struct collect {
    rec *r;
    size_t n, cap;
    const kind *k;
} collect;

static void visit(void *ctx, const kind *k, const void *slot)
{
    collect *c = ctx;
    const trade *t = kind_trade_of(slot);
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->r = realloc(c->r, c->cap * sizeof *c->r);
        assert_non_null(c->r);
    }
    c->r[c->n++] = (rec){(int64_t)t->ts, (int64_t)t->px, (int64_t)t->qty, t->id};
    c->k = k;
}

static size_t scan_all(const store *s, const char *sym, int64_t from, int64_t to, uint32_t limit,
                       collect *c)
{
    uint64_t cur = 0, next;
    c->n = 0;
    do {
        assert_int_equal(store_scan(s, sym, strlen(sym), from, to, cur, limit, visit, c, &next),
                         STORE_OK);
        cur = next;
    } while (cur != STORE_CURSOR_END);
    return c->n;
}

/* Everything a query could see, to prove a rejected batch changed nothing. */
typedef struct snapshot {
    store_stats st;
    uint32_t n;
    store_symbol_info info[64];
    collect recs[64];
} snapshot;

static void snap(const store *s, const char *const *syms, uint32_t n, snapshot *sn)
{
    memset(sn, 0, sizeof *sn);
    store_get_stats(s, &sn->st);
    sn->st.bytes_pending = 0;
    sn->n = n;
    for (uint32_t i = 0; i < n; i++) {
        if (store_symbol(s, syms[i], strlen(syms[i]), &sn->info[i]) != STORE_OK)
            continue;
        scan_all(s, syms[i], INT64_MIN, INT64_MAX, STORE_MAX_TRADES, &sn->recs[i]);
    }
}

static void snap_equal(const snapshot *a, const snapshot *b)
{
    assert_memory_equal(&a->st, &b->st, sizeof a->st);
    for (uint32_t i = 0; i < a->n; i++) {
        assert_memory_equal(&a->info[i], &b->info[i], sizeof a->info[i]);
        assert_int_equal(a->recs[i].n, b->recs[i].n);
        if (a->recs[i].n)
            assert_memory_equal(a->recs[i].r, b->recs[i].r, a->recs[i].n * sizeof(rec));
    }
}

static void snap_free(snapshot *sn)
{
    for (uint32_t i = 0; i < sn->n; i++)
        free(sn->recs[i].r);
}

/* ---- basics ------------------------------------------------------------- */

static void test_basic(void **st)
{
    (void)st;
    store *s = open_store(0, 0);
    store_batch b;
    store_batch_init(&b);
    assert_int_equal(add(s, &b, "AAPL", TS0 + 10, 18725 * E8 / 100, 100 * E8, 1), STORE_OK);
    assert_int_equal(add(s, &b, "AAPL", TS0 + 20, 18800 * E8 / 100, 50 * E8, 2), STORE_OK);
    assert_int_equal(add(s, &b, "MSFT", TS0 + 15, 400 * E8, 1 * E8, 3), STORE_OK);
    assert_int_equal(b.n, 3);
    assert_int_equal(store_batch_reserve(s, &b), STORE_OK);
    assert_true(b.reserved);
    assert_true(b.need > 0);
    store_stats ss;
    store_get_stats(s, &ss);
    assert_int_equal(ss.bytes_pending, b.need);
    assert_int_equal(ss.symbols, 0); /* not committed yet: invisible */
    store_symbol_info si;
    assert_int_equal(store_symbol(s, "AAPL", 4, &si), STORE_ENOTFOUND);
    store_batch_commit(s, &b);
    assert_int_equal(b.n, 0);

    assert_int_equal(store_symbol(s, "AAPL", 4, &si), STORE_OK);
    assert_string_equal(si.name, "AAPL");
    assert_ptr_equal(si.kind, &kind_trade);
    assert_int_equal(si.agg.count, 2);
    assert_true(si.agg.volume == (u128)150 * E8);
    assert_true(si.agg.notional == (u128)18725 * E8 / 100 * 100 * E8 + (u128)188 * E8 * 50 * E8);
    assert_int_equal(si.agg.open, 18725 * E8 / 100);
    assert_int_equal(si.agg.close, 188 * E8);
    assert_int_equal(si.agg.high, 188 * E8);
    assert_int_equal(si.agg.low, 18725 * E8 / 100);
    assert_int_equal(si.agg.first_ts, TS0 + 10);
    assert_int_equal(si.agg.last_ts, TS0 + 20);
    assert_int_equal(si.pages, 1);
    /* (187.25*100 + 188*50) / 150 = 187.5 */
    assert_int_equal(store_agg_vwap(&si.agg), 1875 * E8 / 10);
    store_symbol_info by_id;
    assert_int_equal(store_symbol_by_id(s, si.id, &by_id), STORE_OK);
    assert_memory_equal(&si, &by_id, sizeof si);
    assert_int_equal(store_symbol_by_id(s, 999, &by_id), STORE_ENOTFOUND);
    assert_ptr_equal(store_symbol_kind(s, "MSFT", 4), &kind_trade);
    assert_null(store_symbol_kind(s, "IBM", 3));

    store_get_stats(s, &ss);
    assert_int_equal(ss.trades, 3);
    assert_int_equal(ss.symbols, 2);
    assert_int_equal(ss.batches, 1);
    assert_int_equal(ss.pages, 2);
    assert_int_equal(ss.bytes_cap, (uint64_t)1 << 30);
    assert_int_equal(ss.bytes_slots, 3 * 32);
    assert_int_equal(ss.bytes_pending, 0);
    assert_true(ss.bytes_index > 0);
    assert_int_equal(ss.bytes_used, 2 * 32 + 3 * 32 + ss.bytes_index);
    assert_true(ss.bytes_reserved >= ss.bytes_used);
    assert_true(ss.fill > 0 && ss.fill <= 1);

    store_batch_free(&b);
    store_close(s);
}

static void test_vwap_rounding(void **st)
{
    (void)st;
    store_agg a = {0};
    assert_int_equal(store_agg_vwap(&a), 0);
    /* px 1 and 2 units of 1e-8, qty 1 each: vwap 1.5e-8 rounds half up to 2. */
    store_agg_add(&a, 1, 1, 1);
    store_agg_add(&a, 2, 2, 1);
    assert_int_equal(store_agg_vwap(&a), 2);
    store_agg b = {0};
    store_agg_add(&b, 1, 1, 2); /* (1*2 + 2*1) / 3 = 1.33 -> 1 */
    store_agg_add(&b, 2, 2, 1);
    assert_int_equal(store_agg_vwap(&b), 1);
    /* Extremes do not overflow 128 bits. */
    store_agg c = {0};
    int64_t maxq = (int64_t)(((uint64_t)1 << 62) - 1);
    for (int i = 0; i < 4; i++)
        store_agg_add(&c, i, INT64_MAX, maxq);
    assert_int_equal(store_agg_vwap(&c), INT64_MAX);
    assert_int_equal(c.high, INT64_MAX);
}

/* Prices are signed (spreads, WTI at -37.63): notional is a signed sum,
 * VWAP rounds half away from zero, top-N by notional orders signed values. */
static void test_signed_prices(void **st)
{
    (void)st;
    store_agg a = {0};
    store_agg_add(&a, 1, -1, 1); /* -1.5e-8 -> -2e-8, as 1.5e-8 -> 2e-8 */
    store_agg_add(&a, 2, -2, 1);
    assert_int_equal(store_agg_vwap(&a), -2);
    assert_true(a.notional == -3);
    assert_int_equal(a.low, -2);
    assert_int_equal(a.high, -1);
    store_agg b = {0};
    store_agg_add(&b, 1, -1, 2); /* (-1*2 - 2*1) / 3 = -1.33 -> -1 */
    store_agg_add(&b, 2, -2, 1);
    assert_int_equal(store_agg_vwap(&b), -1);
    store_agg m = {0}; /* mixed signs: (-3763 * 10 + 1001 * 10) / 20 = -1381 */
    store_agg_add(&m, 1, -3763, 10);
    store_agg_add(&m, 2, 1001, 10);
    assert_int_equal(store_agg_vwap(&m), -1381);
    /* The negative extremes fit the signed 128-bit sum too. */
    store_agg c = {0};
    int64_t maxq = (int64_t)(((uint64_t)1 << 62) - 1);
    for (int i = 0; i < 4; i++)
        store_agg_add(&c, i, -INT64_MAX, maxq);
    assert_int_equal(store_agg_vwap(&c), -INT64_MAX);
    assert_true(c.notional < 0);

    store *s = open_store(0, 0);
    store_batch bt;
    store_batch_init(&bt);
    assert_int_equal(add(s, &bt, "POS", TS0, 1 * E8, 1 * E8, 1), STORE_OK);
    assert_int_equal(add(s, &bt, "NEG", TS0, -3763 * E8 / 100, 10 * E8, 2), STORE_OK);
    assert_int_equal(add(s, &bt, "ZERO", TS0, 0, 1 * E8, 3), STORE_OK);
    assert_int_equal(store_batch_reserve(s, &bt), STORE_OK);
    store_batch_commit(s, &bt);
    store_symbol_info si;
    assert_int_equal(store_symbol(s, "NEG", 3, &si), STORE_OK);
    assert_true(si.agg.notional == (__int128)-3763 * E8 / 100 * 10 * E8);
    assert_int_equal(store_agg_vwap(&si.agg), -3763 * E8 / 100);
    uint32_t ids[3], n;
    assert_int_equal(store_top(s, STORE_BY_NOTIONAL, 3, ids, &n), STORE_OK);
    assert_int_equal(n, 3);
    const char *want[] = {"POS", "ZERO", "NEG"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(store_symbol_by_id(s, ids[i], &si), STORE_OK);
        assert_string_equal(si.name, want[i]);
    }
    store_batch_free(&bt);
    store_close(s);
}

/* ---- kinds -------------------------------------------------------------- */

static void test_derived_kind(void **st)
{
    (void)st;
    store *s = open_store_plain(0, 0);
    store_batch b;
    store_batch_init(&b);
    const char *sym = "AAPL260116P00190000";
    for (int i = 0; i < 500; i++)
        assert_int_equal(add_option(s, &b, sym, TS0 + i * 1000, (5 + i % 7) * E8, (i + 1) * E8,
                                    (uint64_t)i, 190 * E8),
                         STORE_OK);
    assert_int_equal(commit(s, &b), STORE_OK);
    assert_ptr_equal(store_symbol_kind(s, sym, strlen(sym)), &kind_option_trade);

    store_symbol_info si;
    assert_int_equal(store_symbol(s, sym, strlen(sym), &si), STORE_OK);
    assert_ptr_equal(si.kind, &kind_option_trade);
    assert_true(kind_is_a(si.kind, &kind_trade));
    assert_int_equal(si.agg.count, 500);
    assert_int_equal(si.agg.first_ts, TS0);
    assert_int_equal(si.agg.last_ts, TS0 + 499 * 1000);

    /* Base-kind scan: the trade view of each slot, and the full record. */
    collect c = {0};
    assert_int_equal(scan_all(s, sym, TS0 + 100 * 1000, TS0 + 200 * 1000, 7, &c), 100);
    assert_ptr_equal(c.k, &kind_option_trade);
    for (size_t i = 0; i < c.n; i++) {
        assert_int_equal(c.r[i].ts, TS0 + (int64_t)(100 + i) * 1000);
        assert_int_equal(c.r[i].id, 100 + i);
        assert_int_equal(c.r[i].qty, (int64_t)(101 + i) * E8);
    }
    free(c.r);

    /* Bars over the base slots. */
    store_bar bars[10];
    uint32_t nb;
    assert_int_equal(store_bars(s, sym, strlen(sym), TS0, TS0 + 500 * 1000, 100 * 1000, bars, 10,
                                &nb),
                     STORE_OK);
    assert_int_equal(nb, 5);
    for (uint32_t i = 0; i < nb; i++) {
        assert_int_equal(bars[i].agg.count, 100);
        assert_int_equal(bars[i].start, TS0 + (int64_t)i * 100 * 1000);
    }

    store_stats ss;
    store_get_stats(s, &ss);
    assert_int_equal(ss.trades, 500);
    assert_int_equal(ss.bytes_slots, 500 * 48);

    uint32_t ids[4], n;
    assert_int_equal(store_top(s, STORE_BY_VOLUME, 4, ids, &n), STORE_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], si.id);
    store_batch_free(&b);
    store_close(s);
}

static int64_t option_strike_seen;

static void visit_option(void *ctx, const kind *k, const void *slot)
{
    int64_t v[KIND_MAX_FIELDS];
    (void)ctx;
    k->unpack(slot, v);
    option_strike_seen = v[OPTION_TRADE_strike];
    assert_int_equal(v[OPTION_TRADE_right], KIND_RIGHT_PUT);
}

static void test_kind_mismatch(void **st)
{
    (void)st;
    store *s = open_store(0, 0);
    store_batch b;
    store_batch_init(&b);
    assert_int_equal(add_option(s, &b, "OPT", TS0, E8, E8, 1, 42 * E8), STORE_OK);
    assert_int_equal(add(s, &b, "STK", TS0, E8, E8, 2), STORE_OK);
    assert_int_equal(add(s, &b, "OPT", TS0, E8, E8, 3), STORE_EKIND);
    assert_int_equal(add_option(s, &b, "STK", TS0, E8, E8, 4, E8), STORE_EKIND);
    assert_int_equal(b.n, 2); /* the rejected ones were not staged */
    assert_int_equal(commit(s, &b), STORE_OK);
    uint64_t next;
    assert_int_equal(store_scan(s, "OPT", 3, 0, INT64_MAX, 0, 10, visit_option, NULL, &next),
                     STORE_OK);
    assert_int_equal(option_strike_seen, 42 * E8);
    /* Still fixed after commit, in both directions. */
    assert_int_equal(add(s, &b, "OPT", TS0, E8, E8, 5), STORE_EKIND);
    assert_int_equal(add_option(s, &b, "STK", TS0, E8, E8, 6, E8), STORE_EKIND);
    /* And through the decoder's one-line lookup of short `trade` names
     * (store_batch_add_slot): the table entry knows OPT is not a trade. */
    trade t = {.ts = TS0, .px = E8, .qty = E8, .id = 7};
    assert_int_equal(store_batch_add_slot(s, &b, "OPT", 3, &kind_trade, &t), STORE_EKIND);
    assert_int_equal(store_batch_add_slot(s, &b, "STK", 3, &kind_trade, &t), STORE_OK);
    assert_int_equal(b.n, 1);
    assert_int_equal(commit(s, &b), STORE_OK);
    /* A kind the store does not know is refused, not trusted. */
    kind fake = kind_trade;
    int64_t v[TRADE_NFIELDS] = {TS0, E8, E8, 0, 1};
    assert_int_equal(store_batch_add(s, &b, "NEWSYM", 6, &fake, v), STORE_EKIND);
    assert_null(store_symbol_kind(s, "NEWSYM", 6));
    store_batch_free(&b);
    store_close(s);
}

/* ---- symbols ------------------------------------------------------------ */

static void test_symbol_validation(void **st)
{
    (void)st;
    store *s = open_store(0, 0);
    store_batch b;
    store_batch_init(&b);
    int64_t v[TRADE_NFIELDS] = {TS0, E8, E8, 0, 1};
    static const struct {
        const char *sym;
        size_t len;
        int ok;
    } cases[] = {
        {"", 0, 0},
        {"A", 1, 1},
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZ01234", 31, 1},
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", 32, 0},
        {"BRK.B", 5, 1},
        {"caf\xc3\xa9", 5, 1},                              /* é */
        {"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
         "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac" "A", 31, 1}, /* 10 x EUR + A */
        {"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
         "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac", 33, 0},
        {"\xf0\x9f\x9a\x80", 4, 1},      /* U+1F680 */
        {"\xf4\x8f\xbf\xbf", 4, 1},      /* U+10FFFF */
        {"\xc0\xaf", 2, 0},              /* overlong '/' */
        {"\xc1\xbf", 2, 0},              /* overlong */
        {"\xe0\x80\xaf", 3, 0},          /* overlong 3-byte */
        {"\xf0\x80\x80\xaf", 4, 0},      /* overlong 4-byte */
        {"\xed\xa0\x80", 3, 0},          /* surrogate U+D800 */
        {"\xed\xbf\xbf", 3, 0},          /* surrogate U+DFFF */
        {"\xf4\x90\x80\x80", 4, 0},      /* past U+10FFFF */
        {"\xff", 1, 0},
        {"\x80", 1, 0},                  /* stray continuation */
        {"\xe2\x82", 2, 0},              /* truncated */
        {"A\xe2\x82" "B", 4, 0},         /* bad continuation */
        {"\x01", 1, 0},
        {"A\tB", 3, 0},
        {"A\nB", 3, 0},
        {"A\x7f", 2, 0},
        {"A\0B", 3, 0},
        {"\xc2\x85", 2, 0},              /* C1 control NEL */
        {"\xc2\xa0", 2, 1},              /* NBSP is printable */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = store_batch_add(s, &b, cases[i].sym, cases[i].len, &kind_trade, v);
        if (rc != (cases[i].ok ? STORE_OK : STORE_ESYMBOL))
            fail_msg("case %zu: rc %d", i, rc);
    }
    assert_int_equal(commit(s, &b), STORE_OK);
    store_stats ss;
    store_get_stats(s, &ss);
    assert_int_equal(ss.symbols, 8);
    store_symbol_info si;
    assert_int_equal(store_symbol(s, "caf\xc3\xa9", 5, &si), STORE_OK);
    assert_string_equal(si.name, "caf\xc3\xa9");
    assert_int_equal(store_symbol(s, "", 0, &si), STORE_ESYMBOL);
    assert_int_equal(store_symbol(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", 32, &si), STORE_ESYMBOL);
    assert_int_equal(store_symbol(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ01234", 31, &si), STORE_OK);
    assert_string_equal(si.name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ01234");
    /* A prefix of a stored name is a different symbol. */
    assert_int_equal(store_symbol(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123", 30, &si), STORE_ENOTFOUND);
    store_batch_free(&b);
    store_close(s);
}

static void test_10000_symbols(void **st)
{
    (void)st;
    store *s = open_store(0, 0);
    store_batch b;
    store_batch_init(&b);
    char sym[32];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 10000; i++) {
            snprintf(sym, sizeof sym, "SYM%05d", i);
            assert_int_equal(add(s, &b, sym, TS0 + round, (i + 1) * E8, (round + 1) * E8,
                                 (uint64_t)i),
                             STORE_OK);
            if (b.n == 1000)
                assert_int_equal(commit(s, &b), STORE_OK);
        }
    }
    store_stats ss;
    store_get_stats(s, &ss);
    assert_int_equal(ss.symbols, 10000);
    assert_int_equal(ss.trades, 30000);
    uint64_t pages = 0;
    for (int i = 0; i < 10000; i++) {
        store_symbol_info si, by;
        snprintf(sym, sizeof sym, "SYM%05d", i);
        assert_int_equal(store_symbol(s, sym, strlen(sym), &si), STORE_OK);
        assert_string_equal(si.name, sym);
        assert_int_equal(si.agg.count, 3);
        assert_true(si.agg.volume == (u128)6 * E8);
        assert_int_equal(si.agg.open, (i + 1) * E8);
        assert_int_equal(store_symbol_by_id(s, si.id, &by), STORE_OK);
        assert_string_equal(by.name, sym);
        pages += si.pages;
    }
    assert_int_equal(pages, ss.pages); /* page counts agree with the slab */
    uint32_t ids[STORE_MAX_TOP], n;
    assert_int_equal(store_top(s, STORE_BY_NOTIONAL, 3, ids, &n), STORE_OK);
    assert_int_equal(n, 3);
    store_symbol_info si;
    assert_int_equal(store_symbol_by_id(s, ids[0], &si), STORE_OK);
    assert_string_equal(si.name, "SYM09999");
    assert_int_equal(store_top(s, STORE_BY_COUNT, 5000, ids, &n), STORE_OK);
    assert_int_equal(n, STORE_MAX_TOP); /* clamped */
    for (uint32_t i = 0; i < n; i++) /* all tie on count: lowest ids first */
        assert_int_equal(ids[i], i);
    store_batch_free(&b);
    store_close(s);
}

static void test_symbol_limit(void **st)
{
    (void)st;
    store *s = open_store(0, 5);
    store_batch b;
    store_batch_init(&b);
    const char *names[] = {"A", "B", "C", "D", "E"};
    for (int i = 0; i < 5; i++)
        assert_int_equal(add(s, &b, names[i], TS0, E8, E8, 1), STORE_OK);
    assert_int_equal(add(s, &b, "F", TS0, E8, E8, 1), STORE_ESYMLIMIT);
    assert_int_equal(add(s, &b, "A", TS0, E8, E8, 2), STORE_OK); /* existing: fine */
    assert_int_equal(commit(s, &b), STORE_OK);
    assert_int_equal(add(s, &b, "G", TS0, E8, E8, 1), STORE_ESYMLIMIT);
    store_stats ss;
    store_get_stats(s, &ss);
    assert_int_equal(ss.symbols, 5);
    assert_int_equal(ss.trades, 6);
    store_batch_free(&b);
    store_close(s);
}

/* ---- time order --------------------------------------------------------- */

static void test_out_of_order(void **st)
{
    (void)st;
    store *s = open_store(0, 0);
    store_batch b;
    store_batch_init(&b);
    enum { N = 5000 };
    rec *all = malloc(N * sizeof *all);
    rng_state = 7;
    for (int i = 0; i < N; i++) {
        all[i] = (rec){TS0 + (int64_t)rnd_below(1000000), (int64_t)(1 + rnd_below(1000)) * E8,
                       (int64_t)(1 + rnd_below(100)) * E8, (uint64_t)i};
        if (i == 100) /* ties at both ends: open is the first, close the last */
            all[i].ts = TS0 - 5, all[i].px = 7 * E8;
        if (i == 200)
            all[i].ts = TS0 - 5, all[i].px = 8 * E8;
        if (i == 300)
            all[i].ts = TS0 + 2000000, all[i].px = 9 * E8;
        if (i == 400)
            all[i].ts = TS0 + 2000000, all[i].px = 11 * E8;
        assert_int_equal(add(s, &b, "X", all[i].ts, all[i].px, all[i].qty, all[i].id), STORE_OK);
        if (b.n == 333)
            assert_int_equal(commit(s, &b), STORE_OK);
    }
    assert_int_equal(commit(s, &b), STORE_OK);
    store_symbol_info si;
    assert_int_equal(store_symbol(s, "X", 1, &si), STORE_OK);
    assert_int_equal(si.agg.first_ts, TS0 - 5);
    assert_int_equal(si.agg.open, 7 * E8);
    assert_int_equal(si.agg.last_ts, TS0 + 2000000);
    assert_int_equal(si.agg.close, 11 * E8);

    collect c = {0};
    for (int q = 0; q < 50; q++) {
        int64_t from = TS0 + (int64_t)rnd_below(1000000), to = from + (int64_t)rnd_below(300000) + 1;
        scan_all(s, "X", from, to, (uint32_t)(1 + rnd_below(700)), &c);
        size_t k = 0;
        for (int i = 0; i < N; i++) {
            if (all[i].ts < from || all[i].ts >= to)
                continue;
            assert_true(k < c.n);
            assert_memory_equal(&c.r[k], &all[i], sizeof(rec));
            k++;
        }
        assert_int_equal(k, c.n);
    }
    free(c.r);
    /* Bars: open/close by time within each bar. */
    store_bar bars[100];
    uint32_t nb;
    assert_int_equal(store_bars(s, "X", 1, TS0, TS0 + 1000000, 100000, bars, 100, &nb), STORE_OK);
    assert_int_equal(nb, 10);
    for (uint32_t j = 0; j < nb; j++) {
        int64_t lo = bars[j].start, hi = lo + 100000, best_first = INT64_MAX, best_last = INT64_MIN;
        int64_t open = 0, close = 0;
        uint64_t cnt = 0;
        for (int i = 0; i < N; i++) {
            if (all[i].ts < lo || all[i].ts >= hi)
                continue;
            cnt++;
            if (all[i].ts < best_first)
                best_first = all[i].ts, open = all[i].px;
            if (all[i].ts >= best_last)
                best_last = all[i].ts, close = all[i].px;
        }
        assert_int_equal(bars[j].agg.count, cnt);
        assert_int_equal(bars[j].agg.open, open);
        assert_int_equal(bars[j].agg.close, close);
        assert_int_equal(bars[j].agg.first_ts, best_first);
    }
    free(all);
    store_batch_free(&b);
    store_close(s);
}

/* ---- all or nothing ----------------------------------------------------- */

static const char *const snap_syms[] = {"AAA", "BBB", "CCC", "NEW1", "NEW2"};

static void load_three(store *s, store_batch *b)
{
    for (int i = 0; i < 3000; i++)
        assert_int_equal(add(s, b, snap_syms[i % 3], TS0 + i, (100 + i % 17) * E8, (1 + i % 9) * E8,
                             (uint64_t)i),
                         STORE_OK);
    assert_int_equal(commit(s, b), STORE_OK);
}

typedef struct commit_ctx {
    store *s;
    store_batch *b;
} commit_ctx;

static void commit_unreserved(void *ctx)
{
    commit_ctx *c = ctx;
    store_batch_commit(c->s, c->b);
}

static void test_all_or_nothing(void **st)
{
    (void)st;
    store *s = open_store(0, 0);
    store_batch b;
    store_batch_init(&b);
    load_three(s, &b);
    snapshot before, after;
    snap(s, snap_syms, 5, &before);

    /* A batch failing at its last trade (the decoder resets it). */
    for (int i = 0; i < 99; i++)
        assert_int_equal(add(s, &b, snap_syms[i % 5], TS0 + 9000 + i, E8, E8, 9000u + i), STORE_OK);
    assert_int_equal(add(s, &b, "BAD\x01", TS0, E8, E8, 1), STORE_ESYMBOL);
    store_batch_reset(&b);
    snap(s, snap_syms, 5, &after);
    snap_equal(&before, &after);
    snap_free(&after);
    store_symbol_info si;
    assert_int_equal(store_symbol(s, "NEW1", 4, &si), STORE_ENOTFOUND);
    uint32_t ids[16], n;
    assert_int_equal(store_top(s, STORE_BY_COUNT, 16, ids, &n), STORE_OK);
    assert_int_equal(n, 3);

    /* Reserved, then released (e.g. the journal failed). */
    for (int i = 0; i < 500; i++)
        assert_int_equal(add(s, &b, snap_syms[i % 5], TS0 + 9000 + i, E8, E8, 9000u + i), STORE_OK);
    assert_int_equal(store_batch_reserve(s, &b), STORE_OK);
    store_stats ss;
    store_get_stats(s, &ss);
    assert_true(ss.bytes_pending > 0);
    store_batch_release(s, &b);
    assert_false(b.reserved);
    store_get_stats(s, &ss);
    assert_int_equal(ss.bytes_pending, 0);
    store_batch_reset(&b);
    snap(s, snap_syms, 5, &after);
    snap_equal(&before, &after);
    snap_free(&after);
    assert_int_equal(store_symbol(s, "NEW2", 4, &si), STORE_ENOTFOUND);
    /* No trace: the symbol the released batch created is gone, kind and all. */
    assert_null(store_symbol_kind(s, "NEW2", 4));

    /* Commit without reserve is a caller bug: debug builds abort (in a
     * child, so this store lives on); NDEBUG builds store nothing. Release
     * twice is harmless. */
    assert_int_equal(add(s, &b, "AAA", TS0, E8, E8, 1), STORE_OK);
    commit_ctx cc = {s, &b};
#ifndef NDEBUG
    expect_abort(commit_unreserved, &cc);
#else
    commit_unreserved(&cc);
#endif
    store_batch_release(s, &b);
    store_batch_reset(&b);
    snap(s, snap_syms, 5, &after);
    snap_equal(&before, &after);
    snap_free(&after);
    snap_free(&before);
    store_batch_free(&b);
    store_close(s);
}

/* Several batches reserved at once, committed out of order. */
static void test_pending_batches(void **st)
{
    (void)st;
    store *s = open_store(0, 0);
    enum { NB = 4 };
    store_batch b[NB];
    for (int j = 0; j < NB; j++) {
        store_batch_init(&b[j]);
        for (int i = 0; i < 700; i++)
            assert_int_equal(add(s, &b[j], i % 2 ? "P" : "Q", TS0 + j * 1000 + i, E8, E8,
                                 (uint64_t)(j * 1000 + i)),
                             STORE_OK);
        assert_int_equal(store_batch_reserve(s, &b[j]), STORE_OK);
    }
    store_stats ss;
    store_get_stats(s, &ss);
    assert_int_equal(ss.bytes_pending, b[0].need + b[1].need + b[2].need + b[3].need);
    store_batch_commit(s, &b[2]);
    store_batch_release(s, &b[0]);
    store_batch_commit(s, &b[3]);
    store_batch_commit(s, &b[1]);
    store_get_stats(s, &ss);
    assert_int_equal(ss.bytes_pending, 0);
    assert_int_equal(ss.trades, 2100);
    collect c = {0};
    assert_int_equal(scan_all(s, "P", INT64_MIN, INT64_MAX, 1000, &c), 1050);
    static const int order[] = {2, 3, 1};
    for (size_t i = 0; i < c.n; i++)
        assert_int_equal(c.r[i].id, (uint64_t)(order[i / 350] * 1000 + (i % 350) * 2 + 1));
    free(c.r);
    for (int j = 0; j < NB; j++)
        store_batch_free(&b[j]);
    store_close(s);
}

/* ---- memory cap --------------------------------------------------------- */

/* What reserve holds is an upper bound on what commit then carves, from any
 * state: empty, growing, chained, recycled pages; both slot sizes. */
static void test_reservation_bound(void **st)
{
    (void)st;
    store *s = open_store_plain(0, 0);
    store_batch b;
    store_batch_init(&b);
    char sym[16];
    rng_state = 31337;
    uint64_t id = 0, need = 0, carved = 0;
    for (int round = 0; round < 3000; round++) {
        if (round < 1000 && round % 10 == 0) { /* fresh stores: nothing to recycle */
            store_close(s);
            s = open_store_plain(0, 0);
        }
        uint32_t nsym = (uint32_t)(1 + rnd_below(round % 10 ? 40 : 400));
        uint32_t n = (uint32_t)(1 + rnd_below(round % 7 ? 300 : 3000));
        for (uint32_t i = 0; i < n; i++, id++) {
            uint32_t k = (uint32_t)rnd_below(nsym) * 7 % 500;
            snprintf(sym, sizeof sym, "R%u", k);
            int rc = k % 5 == 0 ? add_option(s, &b, sym, TS0, E8, E8, id, E8)
                                : add(s, &b, sym, TS0, E8, E8, id);
            assert_int_equal(rc, STORE_OK);
        }
        /* After reserve, which creates the batch's new symbols (index bytes
         * that are not part of the reservation). */
        store_stats s0, s1;
        assert_int_equal(store_batch_reserve(s, &b), STORE_OK);
        store_get_stats(s, &s0);
        uint64_t want = b.need;
        store_batch_commit(s, &b);
        store_get_stats(s, &s1);
        assert_true(s1.bytes_reserved - s0.bytes_reserved <= want);
        need += want;
        carved += s1.bytes_reserved - s0.bytes_reserved;
    }
    /* Conservative, not absurd: free pages make the real cost lower. */
    assert_true(need < carved * 3);
    store_batch_free(&b);
    store_close(s);
}

static void test_memory_cap(void **st)
{
    (void)st;
    store *s = open_store(256 * 1024, 0);
    store_batch b;
    store_batch_init(&b);
    uint64_t id = 0;
    int rc = STORE_OK, batches = 0;
    while (rc == STORE_OK) {
        for (int i = 0; i < 500; i++, id++)
            assert_int_equal(add(s, &b, snap_syms[id % 3], TS0 + (int64_t)id, E8, E8, id), STORE_OK);
        rc = store_batch_reserve(s, &b);
        if (rc == STORE_OK) {
            store_batch_commit(s, &b);
            batches++;
        }
    }
    assert_int_equal(rc, STORE_EFULL);
    assert_false(b.reserved);
    assert_true(batches > 5);
    store_batch_reset(&b);
    store_stats ss;
    store_get_stats(s, &ss);
    assert_true(ss.bytes_reserved <= ss.bytes_cap);
    assert_int_equal(ss.bytes_pending, 0);
    assert_int_equal(ss.trades, (uint64_t)batches * 500);
    snapshot before, after;
    snap(s, snap_syms, 3, &before);
    /* Everything stored is intact and queryable, in order. */
    for (int k = 0; k < 3; k++) {
        collect c = {0};
        assert_int_equal(scan_all(s, snap_syms[k], INT64_MIN, INT64_MAX, 999, &c),
                         ss.trades / 3 + ((uint64_t)k < ss.trades % 3));
        for (size_t i = 0; i < c.n; i++)
            assert_int_equal(c.r[i].id, i * 3 + (uint64_t)k);
        free(c.r);
    }
    /* A big batch is still refused and changes nothing... */
    for (int i = 0; i < 5000; i++)
        assert_int_equal(add(s, &b, snap_syms[i % 3], TS0, E8, E8, 1), STORE_OK);
    assert_int_equal(commit(s, &b), STORE_EFULL);
    snap(s, snap_syms, 3, &after);
    snap_equal(&before, &after);
    snap_free(&after);
    /* ...while a small one that fits the room left in tail pages goes in. */
    int fit = 0;
    for (int k = 0; k < 3; k++) {
        assert_int_equal(add(s, &b, snap_syms[k], TS0, E8, E8, 1), STORE_OK);
        if (store_batch_reserve(s, &b) == STORE_OK) {
            assert_int_equal(b.need, 0);
            store_batch_commit(s, &b);
            fit++;
        }
        store_batch_reset(&b);
    }
    assert_true(fit > 0);
    store_get_stats(s, &ss);
    assert_int_equal(ss.trades, (uint64_t)batches * 500 + (uint64_t)fit);
    snap_free(&before);
    store_batch_free(&b);
    store_close(s);
}

/* ---- queries ------------------------------------------------------------ */

static void test_cursor_paging(void **st)
{
    (void)st;
    store *s = open_store(0, 0);
    store_batch b;
    store_batch_init(&b);
    enum { N = 25000 };
    rng_state = 99;
    int64_t *ts = malloc(N * sizeof *ts);
    for (int i = 0; i < N; i++) {
        ts[i] = TS0 + (int64_t)rnd_below(100000);
        assert_int_equal(add(s, &b, "PG", ts[i], E8, E8, (uint64_t)i), STORE_OK);
        if (b.n == 1000)
            assert_int_equal(commit(s, &b), STORE_OK);
    }
    static const uint32_t limits[] = {1, 7, 1000, STORE_MAX_TRADES, UINT32_MAX};
    for (size_t li = 0; li < sizeof limits / sizeof limits[0]; li++) {
        int64_t from = TS0 + 20000, to = TS0 + 70000;
        uint64_t cur = 0, next, calls = 0;
        collect c = {0};
        do {
            size_t before = c.n;
            assert_int_equal(store_scan(s, "PG", 2, from, to, cur, limits[li], visit, &c, &next),
                             STORE_OK);
            assert_true(c.n - before <= (limits[li] < STORE_MAX_TRADES ? limits[li]
                                                                         : STORE_MAX_TRADES));
            if (next != STORE_CURSOR_END)
                assert_true(next > cur);
            cur = next;
            calls++;
        } while (cur != STORE_CURSOR_END && calls < 100000);
        size_t k = 0;
        for (int i = 0; i < N; i++)
            if (ts[i] >= from && ts[i] < to) {
                assert_true(k < c.n);
                assert_int_equal(c.r[k++].id, (uint64_t)i); /* each once, arrival order */
            }
        assert_int_equal(k, c.n);
        free(c.r);
    }
    /* A cursor past the end is the end. */
    uint64_t next = 0;
    collect c = {0};
    assert_int_equal(store_scan(s, "PG", 2, 0, INT64_MAX, N + 5, 10, visit, &c, &next), STORE_OK);
    assert_int_equal(c.n, 0);
    assert_int_equal(next, STORE_CURSOR_END);
    free(ts);
    store_batch_free(&b);
    store_close(s);
}

static void test_query_bounds(void **st)
{
    (void)st;
    store *s = open_store(0, 0);
    store_batch b;
    store_batch_init(&b);
    for (int i = 0; i < 30000; i++) {
        assert_int_equal(add(s, &b, "Q", TS0 + i * 1000LL, E8, E8, (uint64_t)i), STORE_OK);
        if (b.n == 5000)
            assert_int_equal(commit(s, &b), STORE_OK);
    }
    uint64_t next;
    collect c = {0};
    /* Limits are clamped. */
    assert_int_equal(store_scan(s, "Q", 1, 0, INT64_MAX, 0, UINT32_MAX, visit, &c, &next), STORE_OK);
    assert_int_equal(c.n, STORE_MAX_TRADES);
    assert_int_equal(next, STORE_MAX_TRADES);
    /* Bad parameters. */
    assert_int_equal(store_scan(s, "Q", 1, 0, INT64_MAX, 0, 0, visit, &c, &next), STORE_EINVAL);
    assert_int_equal(store_scan(s, "Q", 1, 5, 5, 0, 10, visit, &c, &next), STORE_EINVAL);
    assert_int_equal(store_scan(s, "Q", 1, 6, 5, 0, 10, visit, &c, &next), STORE_EINVAL);
    assert_int_equal(store_scan(s, "NOPE", 4, 0, 1, 0, 10, visit, &c, &next), STORE_ENOTFOUND);
    assert_int_equal(store_scan(s, "", 0, 0, 1, 0, 10, visit, &c, &next), STORE_ESYMBOL);
    free(c.r);

    store_bar *bars = calloc(STORE_MAX_BARS + 10, sizeof *bars);
    uint32_t nb;
    assert_int_equal(store_bars(s, "Q", 1, TS0, TS0 + 10, 0, bars, 10, &nb), STORE_EINVAL);
    assert_int_equal(store_bars(s, "Q", 1, TS0, TS0 + 10, -5, bars, 10, &nb), STORE_EINVAL);
    assert_int_equal(store_bars(s, "Q", 1, TS0, TS0, 1, bars, 10, &nb), STORE_EINVAL);
    assert_int_equal(store_bars(s, "Q", 1, TS0 + 1, TS0, 1, bars, 10, &nb), STORE_EINVAL);
    assert_int_equal(store_bars(s, "Q", 1, TS0, TS0 + 10, 1, bars, 0, &nb), STORE_EINVAL);
    assert_int_equal(store_bars(s, "NOPE", 4, TS0, TS0 + 10, 1, bars, 10, &nb), STORE_ENOTFOUND);
    /* 11 intervals into 10 bars: refused, not truncated. */
    assert_int_equal(store_bars(s, "Q", 1, TS0, TS0 + 11000, 1000, bars, 10, &nb), STORE_ELIMIT);
    assert_int_equal(store_bars(s, "Q", 1, TS0, TS0 + 10000, 1000, bars, 10, &nb), STORE_OK);
    assert_int_equal(nb, 10);
    /* max_bars is capped at STORE_MAX_BARS whatever the buffer. */
    assert_int_equal(store_bars(s, "Q", 1, TS0, TS0 + (STORE_MAX_BARS + 1) * 1000LL, 1000, bars,
                                STORE_MAX_BARS + 10, &nb),
                     STORE_ELIMIT);
    assert_int_equal(store_bars(s, "Q", 1, TS0, TS0 + STORE_MAX_BARS * 1000LL, 1000, bars,
                                STORE_MAX_BARS + 10, &nb),
                     STORE_OK);
    assert_int_equal(nb, STORE_MAX_BARS);
    /* Only non-empty bars, aligned to the interval. */
    assert_int_equal(store_bars(s, "Q", 1, 0, INT64_MAX, INT64_MAX / 4, bars, 10, &nb), STORE_OK);
    assert_int_equal(nb, 1);
    assert_int_equal(bars[0].start, TS0 / (INT64_MAX / 4) * (INT64_MAX / 4));
    assert_int_equal(bars[0].agg.count, 30000);
    free(bars);

    uint32_t ids[STORE_MAX_TOP], n;
    assert_int_equal(store_top(s, (store_by)7, 5, ids, &n), STORE_EINVAL);
    assert_int_equal(store_top(s, STORE_BY_COUNT, 0, ids, &n), STORE_OK);
    assert_int_equal(n, 0);
    store_batch_free(&b);
    store_close(s);
}

/* The scan budget and the bars record bound, on pages that all overlap the
 * range but hold no match: 0 and 100 alternate, the range is [50, 60). */
static void test_scan_budget(void **st)
{
    (void)st;
    store *s = open_store((size_t)512 << 20, 0);
    store_batch b;
    store_batch_init(&b);
    uint64_t total = STORE_SCAN_BUDGET + 3000;
    for (uint64_t i = 0; i < total; i++) {
        int64_t v[TRADE_NFIELDS] = {i == total - 1 ? 55 : (int64_t)(i % 2) * 100, E8, E8, 0,
                                    (int64_t)i};
        assert_int_equal(store_batch_add(s, &b, "BIG", 3, &kind_trade, v), STORE_OK);
        if (b.n == 100000 || i == total - 1)
            assert_int_equal(commit(s, &b), STORE_OK);
    }
    uint64_t next;
    collect c = {0};
    assert_int_equal(store_scan(s, "BIG", 3, 50, 60, 0, 10, visit, &c, &next), STORE_OK);
    assert_int_equal(c.n, 0);
    assert_int_equal(next, STORE_SCAN_BUDGET); /* resume where the budget ran out */
    assert_int_equal(store_scan(s, "BIG", 3, 50, 60, next, 10, visit, &c, &next), STORE_OK);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.r[0].id, total - 1);
    assert_int_equal(next, STORE_CURSOR_END);
    free(c.r);
    store_bar bars[4];
    uint32_t nb;
    assert_int_equal(store_bars(s, "BIG", 3, 50, 60, 10, bars, 4, &nb), STORE_ELIMIT);
    store_batch_free(&b);
    store_close(s);
}

/* ---- brute force -------------------------------------------------------- */

#define BF_SYMS 300
#define BF_TRADES 1000000

typedef struct bf_sym {
    char name[16];
    rec *r;
    size_t n, cap;
} bf_sym;

typedef struct bf_staged {
    uint32_t sym;
    rec r;
} bf_staged;

static void bf_push(bf_sym *y, const rec *r)
{
    if (y->n == y->cap) {
        y->cap = y->cap ? y->cap * 2 : 64;
        y->r = realloc(y->r, y->cap * sizeof *y->r);
        assert_non_null(y->r);
    }
    y->r[y->n++] = *r;
}

static void bf_agg(const bf_sym *y, int64_t from, int64_t to, store_agg *a)
{
    memset(a, 0, sizeof *a);
    for (size_t i = 0; i < y->n; i++) {
        const rec *r = &y->r[i];
        if (r->ts < from || r->ts >= to)
            continue;
        if (a->count == 0 || r->ts < a->first_ts)
            a->first_ts = r->ts, a->open = r->px;
        if (a->count == 0 || r->ts >= a->last_ts)
            a->last_ts = r->ts, a->close = r->px;
        if (a->count == 0 || r->px > a->high)
            a->high = r->px;
        if (a->count == 0 || r->px < a->low)
            a->low = r->px;
        a->count++;
        a->volume += (u128)r->qty;
        a->notional += (__int128)r->px * r->qty;
    }
}

static int64_t bf_vwap(const store_agg *a)
{
    if (a->volume == 0)
        return 0;
    int neg = a->notional < 0; /* half away from zero: round the magnitude */
    u128 m = neg ? (u128)-a->notional : (u128)a->notional;
    u128 q = m / a->volume, r = m - q * a->volume;
    int64_t v = (int64_t)(q + (2 * r >= a->volume));
    return neg ? -v : v;
}

static void agg_equal(const store_agg *a, const store_agg *b)
{
    assert_int_equal(a->count, b->count);
    assert_true(a->volume == b->volume);
    assert_true(a->notional == b->notional);
    assert_int_equal(a->open, b->open);
    assert_int_equal(a->high, b->high);
    assert_int_equal(a->low, b->low);
    assert_int_equal(a->close, b->close);
    assert_int_equal(a->first_ts, b->first_ts);
    assert_int_equal(a->last_ts, b->last_ts);
    assert_int_equal(store_agg_vwap(a), bf_vwap(b));
}

static u128 bf_key(const bf_sym *y, store_by by)
{
    store_agg a;
    bf_agg(y, INT64_MIN, INT64_MAX, &a);
    /* signed notional: its sign bit flipped orders like the signed value */
    return by == STORE_BY_COUNT    ? a.count
           : by == STORE_BY_VOLUME ? a.volume
                                   : (u128)a.notional ^ ((u128)1 << 127);
}

static bf_sym *bf_syms;
static store_by bf_by;
/* By id: ids of symbols a released batch created stay unused (holes), so
 * ids can exceed BF_SYMS. */
#define BF_IDS (BF_SYMS * 16)
static u128 bf_keys[BF_IDS];

static int bf_rank(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    if (bf_keys[a] != bf_keys[b])
        return bf_keys[a] > bf_keys[b] ? -1 : 1;
    return a < b ? -1 : 1;
}

static void test_brute_force(void **st)
{
    (void)st;
    store *s = open_store_plain(0, 0);
    bf_sym *y = calloc(BF_SYMS, sizeof *y);
    bf_syms = y;
    uint32_t id_of[BF_SYMS];
    rng_state = 0x5eed;
    for (int i = 0; i < BF_SYMS; i++)
        snprintf(y[i].name, sizeof y[i].name, "S%03d.%c", i, 'A' + i % 26);
    /* Up to three batches in flight, committed or released in any order. */
    store_batch b[3];
    bf_staged *staged[3];
    for (int j = 0; j < 3; j++) {
        store_batch_init(&b[j]);
        staged[j] = malloc(2000 * sizeof **staged);
    }
    uint64_t done = 0, released = 0, id = 0;
    int64_t ts_base = TS0;
    while (done < BF_TRADES) {
        int j = (int)rnd_below(3);
        if (b[j].reserved) { /* finish it */
            store_stats s0, s1;
            store_get_stats(s, &s0);
            if (rnd_below(10) == 0) {
                released += b[j].n;
                store_batch_release(s, &b[j]);
            } else {
                for (uint32_t i = 0; i < b[j].n; i++)
                    bf_push(&y[staged[j][i].sym], &staged[j][i].r);
                done += b[j].n;
                store_batch_commit(s, &b[j]);
            }
            /* Memory plus reservations never grows as batches finish. */
            store_get_stats(s, &s1);
            assert_true(s1.bytes_reserved + s1.bytes_pending <= s0.bytes_reserved + s0.bytes_pending);
            store_batch_reset(&b[j]);
            continue;
        }
        uint32_t n = (uint32_t)(1 + rnd_below(rnd_below(4) ? 200 : 2000));
        for (uint32_t i = 0; i < n; i++) {
            /* Skewed symbols, timestamps drifting up with jitter both ways. */
            uint32_t k = (uint32_t)(rnd_below(BF_SYMS) * rnd_below(BF_SYMS) / BF_SYMS);
            ts_base += (int64_t)rnd_below(2000);
            rec r = {ts_base + (int64_t)rnd_below(5000000) - 2500000, (int64_t)(1 + rnd_below(1000000)) * 1000,
                     (int64_t)(1 + rnd_below(10000)) * E8 / (1 + (int64_t)rnd_below(100)), id++};
            assert_int_equal(add(s, &b[j], y[k].name, r.ts, r.px, r.qty, r.id), STORE_OK);
            staged[j][i] = (bf_staged){k, r};
        }
        assert_int_equal(store_batch_reserve(s, &b[j]), STORE_OK);
    }
    for (int j = 0; j < 3; j++)
        if (b[j].reserved) {
            released += b[j].n;
            store_batch_release(s, &b[j]);
        }
    assert_true(released > 0);

    store_stats ss;
    store_get_stats(s, &ss);
    assert_int_equal(ss.trades, done);
    assert_int_equal(ss.bytes_pending, 0);
    assert_int_equal(ss.bytes_slots, done * 32);
    uint64_t visible = 0, pages = 0;
    for (int i = 0; i < BF_SYMS; i++) {
        store_symbol_info si;
        int rc = store_symbol(s, y[i].name, strlen(y[i].name), &si);
        id_of[i] = UINT32_MAX;
        if (y[i].n == 0) {
            assert_int_equal(rc, STORE_ENOTFOUND);
            continue;
        }
        assert_int_equal(rc, STORE_OK);
        id_of[i] = si.id;
        assert_true(si.id < BF_IDS);
        visible++;
        pages += si.pages;
        store_agg want;
        bf_agg(&y[i], INT64_MIN, INT64_MAX, &want);
        agg_equal(&si.agg, &want);
    }
    assert_int_equal(ss.symbols, visible);
    assert_int_equal(ss.pages, pages);

    /* Top-N by each measure, ties by lower id. */
    for (store_by by = STORE_BY_COUNT; by <= STORE_BY_NOTIONAL; by++) {
        uint32_t order[BF_SYMS], m = 0, ids[STORE_MAX_TOP], n;
        for (uint32_t i = 0; i < BF_SYMS; i++)
            if (y[i].n)
                order[m++] = id_of[i], bf_keys[id_of[i]] = bf_key(&y[i], by);
        bf_by = by;
        qsort(order, m, sizeof *order, bf_rank);
        static const uint32_t ns[] = {1, 10, 299, 1000};
        for (size_t q = 0; q < sizeof ns / sizeof ns[0]; q++) {
            assert_int_equal(store_top(s, by, ns[q], ids, &n), STORE_OK);
            assert_int_equal(n, ns[q] < m ? ns[q] : m);
            assert_memory_equal(ids, order, n * sizeof *ids);
        }
    }

    /* Random scans: ranges, limits, cursors. */
    collect c = {0};
    for (int q = 0; q < 300; q++) {
        bf_sym *z = &y[rnd_below(BF_SYMS)];
        if (!z->n)
            continue;
        int64_t from = TS0 + (int64_t)rnd_below((uint64_t)(ts_base - TS0)),
                to = from + (int64_t)rnd_below(q % 3 ? 50000000 : 2000000000) + 1;
        uint64_t cursor = rnd_below(z->n + 10);
        uint32_t limit = (uint32_t)(1 + rnd_below(q % 5 ? 100 : 20000)), lim = limit;
        if (lim > STORE_MAX_TRADES)
            lim = STORE_MAX_TRADES;
        uint64_t next;
        c.n = 0;
        assert_int_equal(store_scan(s, z->name, strlen(z->name), from, to, cursor, limit, visit,
                                    &c, &next),
                         STORE_OK);
        size_t k = 0, i = cursor;
        for (; i < z->n && k < lim; i++)
            if (z->r[i].ts >= from && z->r[i].ts < to) {
                assert_true(k < c.n);
                assert_memory_equal(&c.r[k], &z->r[i], sizeof(rec));
                k++;
            }
        assert_int_equal(k, c.n);
        if (k < lim)
            assert_int_equal(next, STORE_CURSOR_END);
        else
            assert_int_equal(next, i < z->n ? i : STORE_CURSOR_END);
    }
    free(c.r);

    /* Random bars. */
    store_bar *bars = malloc(STORE_MAX_BARS * sizeof *bars);
    for (int q = 0; q < 100; q++) {
        bf_sym *z = &y[rnd_below(BF_SYMS / 3)];
        if (!z->n)
            continue;
        int64_t interval = (int64_t)(1 + rnd_below(q % 2 ? 1000000 : 100000000));
        int64_t from = TS0 + (int64_t)rnd_below((uint64_t)(ts_base - TS0)) - 5000000;
        int64_t to = from + interval * (int64_t)(1 + rnd_below(500)) + (int64_t)rnd_below(7);
        uint32_t nb;
        int rc = store_bars(s, z->name, strlen(z->name), from, to, interval, bars, STORE_MAX_BARS,
                            &nb);
        int64_t first = from / interval - (from % interval < 0), last = (to - 1) / interval;
        if (last - first + 1 > STORE_MAX_BARS) {
            assert_int_equal(rc, STORE_ELIMIT);
            continue;
        }
        assert_int_equal(rc, STORE_OK);
        uint32_t k = 0;
        for (int64_t bi = first; bi <= last; bi++) {
            int64_t lo = bi * interval, hi = lo + interval;
            store_agg want;
            bf_agg(z, lo > from ? lo : from, hi < to ? hi : to, &want);
            if (!want.count)
                continue;
            assert_true(k < nb);
            assert_int_equal(bars[k].start, lo);
            agg_equal(&bars[k].agg, &want);
            k++;
        }
        assert_int_equal(k, nb);
    }
    free(bars);

    for (int j = 0; j < 3; j++) {
        store_batch_free(&b[j]);
        free(staged[j]);
    }
    for (int i = 0; i < BF_SYMS; i++)
        free(y[i].r);
    free(y);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),           cmocka_unit_test(test_vwap_rounding),
        cmocka_unit_test(test_signed_prices),
        cmocka_unit_test(test_derived_kind),    cmocka_unit_test(test_kind_mismatch),
        cmocka_unit_test(test_symbol_validation), cmocka_unit_test(test_10000_symbols),
        cmocka_unit_test(test_symbol_limit),    cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_all_or_nothing),  cmocka_unit_test(test_pending_batches),
        cmocka_unit_test(test_reservation_bound), cmocka_unit_test(test_memory_cap),
        cmocka_unit_test(test_cursor_paging),
        cmocka_unit_test(test_query_bounds),    cmocka_unit_test(test_scan_budget),
        cmocka_unit_test(test_brute_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
