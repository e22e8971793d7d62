/* test_decode — the direct batch decoder: both wire forms, every
 * error it can report (code, index, message, store untouched), key orders,
 * timestamps, decimals, derived kinds, and a differential run against the
 * msgpack-c object-tree reference decoder (ref_decode.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "fixp.h"
#include "decode_fx.h"
#include "proto.h"
#include "gen_batch.h"
#include "ref_decode.h"

#define TS0 1767225600000000000LL

/* ---- fixture and message building --------------------------------------- */

static int setup(void **state) { return fx_setup(state, 8); }
static int teardown(void **state) { return fx_teardown(state); }

static void S(fx *f, const char *s) { msgpack_pack_str_with_body(&f->pk, s, strlen(s)); }
static void U(fx *f, uint64_t v) { msgpack_pack_uint64(&f->pk, v); }

/* ["T", seq, [<n trades follow>] (, kind)] — the kind is packed by the
 * caller after the trades when nelem == 4. */
static void begin(fx *f, uint64_t seq, uint32_t ntrades, int nelem)
{
    msgpack_sbuffer_clear(&f->sb);
    msgpack_pack_array(&f->pk, (size_t)nelem);
    S(f, "T");
    U(f, seq);
    msgpack_pack_array(&f->pk, ntrades);
}

/* A standard map trade. */
static void map_trade(fx *f, const char *sym, int64_t ts, const char *px, uint64_t qty,
                      const char *side, uint64_t id)
{
    msgpack_pack_map(&f->pk, 6);
    S(f, "sym"), S(f, sym);
    S(f, "ts"), U(f, (uint64_t)ts);
    S(f, "px"), S(f, px);
    S(f, "qty"), U(f, qty);
    S(f, "side"), S(f, side);
    S(f, "id"), U(f, id);
}

static int decode(fx *f, uint64_t *seq, proto_error *e)
{
    return proto_decode_batch((const uint8_t *)f->sb.data, f->sb.size, &f->lim, f->s, &f->b, seq,
                              e);
}

/* Commit what was staged. */
static void commit(fx *f)
{
    assert_int_equal(store_batch_reserve(f->s, &f->b), STORE_OK);
    store_batch_commit(f->s, &f->b);
}

typedef struct got {
    int n;
    int64_t v[64][KIND_MAX_FIELDS];
    const kind *k[64];
} got;

static void visit(void *ctx, const kind *k, const void *slot)
{
    got *g = ctx;
    if (g->n < 64) {
        k->unpack(slot, g->v[g->n]);
        g->k[g->n++] = k;
    }
}

/* Every committed record of `sym`. */
static void scan(fx *f, const char *sym, got *g)
{
    uint64_t next;
    g->n = 0;
    assert_int_equal(store_scan(f->s, sym, strlen(sym), INT64_MIN, INT64_MAX, 0, 64, visit, g,
                                &next),
                     STORE_OK);
}

/* Decode must fail with `code` at `index`, message containing `needle`,
 * nothing staged and nothing stored. */
static void expect_err(fx *f, proto_code code, int64_t index, const char *needle)
{
    store_stats before, after;
    store_get_stats(f->s, &before);
    uint64_t seq = 99;
    proto_error e = {0};
    int rc = decode(f, &seq, &e);
    if (rc != -1 || e.code != code || e.index != index || !strstr(e.msg, needle))
        print_error("want %s@%lld \"%s\", got rc %d %s@%lld \"%s\"\n", proto_code_name(code),
                    (long long)index, needle, rc, proto_code_name(e.code), (long long)e.index,
                    e.msg);
    assert_int_equal(rc, -1);
    assert_int_equal(e.code, code);
    assert_int_equal(e.index, index);
    assert_non_null(strstr(e.msg, needle));
    assert_int_equal(f->b.n, 0);
    store_get_stats(f->s, &after);
    assert_int_equal(before.trades, after.trades);
    assert_int_equal(before.symbols, after.symbols);
    assert_int_equal(before.bytes_pending, after.bytes_pending);
}

static void expect_ok(fx *f, uint32_t n)
{
    uint64_t seq = 0;
    proto_error e = {0};
    int rc = decode(f, &seq, &e);
    if (rc != 0)
        print_error("unexpected %s@%lld: %s\n", proto_code_name(e.code), (long long)e.index,
                    e.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(f->b.n, n);
}

/* ---- accepted forms ----------------------------------------------------- */

static void test_map_and_array_forms(void **state)
{
    fx *f = *state;
    begin(f, 7, 3, 3);
    map_trade(f, "AAPL", TS0, "187.25", 10, "B", 1);
    /* array form, all slots */
    msgpack_pack_array(&f->pk, 6), S(f, "AAPL"), U(f, TS0 + 1), msgpack_pack_double(&f->pk, 187.5);
    U(f, 20), S(f, "sell"), U(f, UINT64_MAX);
    /* array form, trailing optional slots omitted; nil side */
    msgpack_pack_array(&f->pk, 5), S(f, "AAPL"), U(f, TS0 + 2), msgpack_pack_float(&f->pk, 0.5f);
    S(f, "0.00000001"), msgpack_pack_nil(&f->pk);
    uint64_t seq = 0;
    proto_error e;
    assert_int_equal(decode(f, &seq, &e), 0);
    assert_true(seq == 7);
    assert_int_equal(f->b.n, 3);
    commit(f);
    got g;
    scan(f, "AAPL", &g);
    assert_int_equal(g.n, 3);
    assert_ptr_equal(g.k[0], &kind_trade);
    int64_t want[3][5] = {
        {TS0, 18725000000LL, 10 * FIXP_SCALE, KIND_SIDE_BUY, 1},
        {TS0 + 1, 18750000000LL, 20 * FIXP_SCALE, KIND_SIDE_SELL, -1 /* UINT64_MAX bits */},
        {TS0 + 2, 50000000LL, 1, KIND_SIDE_UNKNOWN, 0},
    };
    for (int i = 0; i < 3; i++)
        assert_memory_equal(g.v[i], want[i], sizeof(want[i]));
}

static void test_key_permutations(void **state)
{
    fx *f = *state;
    const char *keys[6] = {"sym", "ts", "px", "qty", "side", "id"};
    int perm[6] = {0, 1, 2, 3, 4, 5};
    int npermutations = 0;
    /* Heap's algorithm over all 720 orders, one trade each, one batch. */
    int c[6] = {0};
    begin(f, 1, 720, 3);
    for (int i = 0;;) {
        msgpack_pack_map(&f->pk, 6);
        for (int j = 0; j < 6; j++) {
            S(f, keys[perm[j]]);
            switch (perm[j]) {
            case 0: S(f, "PERM"); break;
            case 1: U(f, TS0 + (uint64_t)npermutations); break;
            case 2: S(f, "1.5"); break;
            case 3: U(f, 3); break;
            case 4: S(f, "S"); break;
            case 5: U(f, (uint64_t)npermutations); break;
            }
        }
        npermutations++;
        while (i < 6 && c[i] >= i)
            c[i++] = 0;
        if (i >= 6)
            break;
        int a = i % 2 ? c[i] : 0, t = perm[a];
        perm[a] = perm[i], perm[i] = t;
        c[i]++, i = 1;
    }
    assert_int_equal(npermutations, 720);
    expect_ok(f, 720);
    commit(f);
    got g;
    scan(f, "PERM", &g); /* the first 64 */
    for (int i = 0; i < g.n; i++) {
        int64_t want[5] = {TS0 + i, 150000000, 3 * FIXP_SCALE, KIND_SIDE_SELL, i};
        assert_memory_equal(g.v[i], want, sizeof(want));
    }
}

static void ts_ext(fx *f, int size, int64_t sec, uint32_t nsec)
{
    uint8_t b[12];
    if (size == 4) {
        uint32_t s = (uint32_t)sec;
        for (int i = 0; i < 4; i++)
            b[i] = (uint8_t)(s >> (24 - 8 * i));
    } else if (size == 8) {
        uint64_t w = (uint64_t)nsec << 34 | (uint64_t)sec;
        for (int i = 0; i < 8; i++)
            b[i] = (uint8_t)(w >> (56 - 8 * i));
    } else {
        for (int i = 0; i < 4; i++)
            b[i] = (uint8_t)(nsec >> (24 - 8 * i));
        for (int i = 0; i < 8; i++)
            b[4 + i] = (uint8_t)((uint64_t)sec >> (56 - 8 * i));
    }
    msgpack_pack_ext_with_body(&f->pk, b, (size_t)size, -1);
}

static void ts_trade(fx *f, const char *sym, int size, int64_t sec, uint32_t nsec)
{
    msgpack_pack_array(&f->pk, 4), S(f, sym);
    ts_ext(f, size, sec, nsec);
    U(f, 1), U(f, 1);
}

static void test_timestamps(void **state)
{
    fx *f = *state;
    begin(f, 1, 4, 3);
    ts_trade(f, "TS", 4, 1767225600, 0);
    ts_trade(f, "TS", 8, 1767225600, 123456789);
    ts_trade(f, "TS", 12, 1767225600, 999999999);
    ts_trade(f, "TS", 12, 9223372036LL, 854775806); /* INT64_MAX - 1 ns (scan is [from, to)) */
    expect_ok(f, 4);
    commit(f);
    got g;
    scan(f, "TS", &g);
    assert_int_equal(g.n, 4);
    assert_true(g.v[0][0] == TS0);
    assert_true(g.v[1][0] == TS0 + 123456789);
    assert_true(g.v[2][0] == TS0 + 999999999);
    assert_true(g.v[3][0] == INT64_MAX - 1);

    struct { int size; int64_t sec; uint32_t nsec; const char *why; } bad[] = {
        {8, 1, 1000000000, "nanoseconds"},
        {12, 1, 1000000000, "nanoseconds"},
        {12, -1, 0, "before 1970"},
        {12, 9223372036LL, 854775808, "range"},
        {12, INT64_MAX, 0, "range"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        begin(f, 1, 2, 3);
        ts_trade(f, "TS", 4, 1, 0);
        ts_trade(f, "TS", bad[i].size, bad[i].sec, bad[i].nsec);
        expect_err(f, PROTO_E_BAD_VALUE, 1, bad[i].why);
    }
    /* wrong extension type, wrong length, float, negative int */
    begin(f, 1, 1, 3);
    msgpack_pack_array(&f->pk, 4), S(f, "TS"), msgpack_pack_ext_with_body(&f->pk, "abcd", 4, 5);
    U(f, 1), U(f, 1);
    expect_err(f, PROTO_E_WRONG_TYPE, 0, "trade 0: ts: expected");
    begin(f, 1, 1, 3);
    msgpack_pack_array(&f->pk, 4), S(f, "TS"), msgpack_pack_ext_with_body(&f->pk, "ab", 2, -1);
    U(f, 1), U(f, 1);
    expect_err(f, PROTO_E_BAD_VALUE, 0, "2 bytes");
    begin(f, 1, 1, 3);
    msgpack_pack_array(&f->pk, 4), S(f, "TS"), msgpack_pack_double(&f->pk, 1.0), U(f, 1), U(f, 1);
    expect_err(f, PROTO_E_WRONG_TYPE, 0, "got float");
    begin(f, 1, 1, 3);
    msgpack_pack_array(&f->pk, 4), S(f, "TS"), msgpack_pack_int64(&f->pk, -5), U(f, 1), U(f, 1);
    expect_err(f, PROTO_E_BAD_VALUE, 0, "negative");
}

static void test_numbers(void **state)
{
    fx *f = *state;
    /* px as every number form; qty extremes */
    begin(f, 1, 8, 3);
    const int64_t want_px[8] = {18725000000LL, 1, 10000000000LL, 10000000000LL, 29000000LL,
                                12345678912345678LL, 5 * FIXP_SCALE, 0};
    for (int i = 0; i < 8; i++) {
        msgpack_pack_array(&f->pk, 4), S(f, "NUM"), U(f, (uint64_t)i);
        switch (i) {
        case 0: S(f, "187.25"); break;
        case 1: S(f, "0.000000010"); break; /* trailing zero past 8 decimals is exact */
        case 2: msgpack_pack_fix_int64(&f->pk, 100); break;
        case 3: msgpack_pack_fix_uint8(&f->pk, 100); break;
        case 4: msgpack_pack_double(&f->pk, 0.29); break;
        case 5: S(f, "123456789.12345678"); break;
        case 6: msgpack_pack_float(&f->pk, 5.0f); break;
        case 7: msgpack_pack_int64(&f->pk, 0); break;
        }
        U(f, i == 0 ? (1ull << 62) / FIXP_SCALE : 1); /* the largest whole qty that fits */
    }
    expect_ok(f, 8);
    commit(f);
    got g;
    scan(f, "NUM", &g);
    for (int i = 0; i < 8; i++)
        assert_true(g.v[i][1] == want_px[i]);
    assert_true(g.v[0][2] == (int64_t)((1ull << 62) / FIXP_SCALE) * FIXP_SCALE);

    struct { int what; proto_code code; const char *why; } bad[] = {
        {0, PROTO_E_BAD_VALUE, "px: "},      {1, PROTO_E_BAD_VALUE, "qty: negative"},
        {2, PROTO_E_BAD_VALUE, "qty: negative"}, {3, PROTO_E_BAD_VALUE, "px: "},
        {4, PROTO_E_BAD_VALUE, "px: "},      {5, PROTO_E_WRONG_TYPE, "px: expected"},
        {6, PROTO_E_BAD_VALUE, "qty: out of range"}, {7, PROTO_E_BAD_VALUE, "px: "},
        {8, PROTO_E_WRONG_TYPE, "px: expected"},     {9, PROTO_E_BAD_VALUE, "qty: negative"},
        {10, PROTO_E_BAD_VALUE, "px: number out of range"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        begin(f, 1, 3, 3);
        for (int t = 0; t < 2; t++)
            msgpack_pack_array(&f->pk, 4), S(f, "NUM"), U(f, 1), U(f, 1), U(f, 1);
        msgpack_pack_array(&f->pk, 4), S(f, "NUM"), U(f, 1);
        uint64_t qty = 1;
        int negq = 0; /* a negative qty, in one of three forms */
        switch (bad[i].what) {
        case 0: S(f, "1.123456789"); break;
        case 1: U(f, 1), negq = 1; break;
        case 2: U(f, 1), negq = 2; break;
        case 3: msgpack_pack_double(&f->pk, NAN); break;
        case 4: S(f, "1e5"); break;
        case 5: msgpack_pack_true(&f->pk); break;
        case 6: U(f, 1); qty = (1ull << 62) / FIXP_SCALE + 1; break;
        case 7: U(f, UINT64_MAX); break;
        case 8: msgpack_pack_bin_with_body(&f->pk, "1", 1); break;
        case 9: U(f, 1), negq = 3; break;
        case 10: msgpack_pack_int64(&f->pk, INT64_MIN); break;
        }
        if (negq == 1)
            S(f, "-1");
        else if (negq == 2)
            msgpack_pack_int64(&f->pk, -1);
        else if (negq == 3)
            msgpack_pack_double(&f->pk, -0.5);
        else
            U(f, qty);
        expect_err(f, bad[i].code, 2, bad[i].why);
    }
    /* The message names the reason. */
    begin(f, 1, 1, 3);
    msgpack_pack_array(&f->pk, 4), S(f, "NUM"), U(f, 1), S(f, "1.000000001"), U(f, 1);
    expect_err(f, PROTO_E_BAD_VALUE, 0, "trade 0: px: ");
    expect_err(f, PROTO_E_BAD_VALUE, 0, core_strerror(FIXP_EPRECISION));
}

/* Prices are signed in every wire form and both trade forms (the map form
 * in key order is the fast path's shape); qty stays >= 0; strike is signed. */
static void test_signed_prices(void **state)
{
    fx *f = *state;
    const int64_t want[9] = {-3763000000LL, -5 * FIXP_SCALE, -100 * FIXP_SCALE, -3763000000LL,
                             -50000000LL,   -1,              -INT64_MAX,        -3763000000LL,
                             -3763000000LL};
    begin(f, 1, 9, 3);
    for (int i = 0; i < 7; i++) {
        msgpack_pack_array(&f->pk, 4), S(f, "CL"), U(f, (uint64_t)(TS0 + i));
        switch (i) {
        case 0: S(f, "-37.63"); break;
        case 1: msgpack_pack_int8(&f->pk, -5); break; /* negative fixint */
        case 2: msgpack_pack_fix_int64(&f->pk, -100); break;
        case 3: msgpack_pack_double(&f->pk, -37.63); break;
        case 4: msgpack_pack_float(&f->pk, -0.5f); break;
        case 5: S(f, "-0.00000001"); break;
        case 6: S(f, "-92233720368.54775807"); break;
        }
        U(f, 1);
    }
    for (int i = 7; i < 9; i++) { /* map form, keys in order */
        msgpack_pack_map(&f->pk, 4);
        S(f, "sym"), S(f, "CL"), S(f, "ts"), U(f, (uint64_t)(TS0 + i)), S(f, "px");
        if (i == 7)
            msgpack_pack_double(&f->pk, -37.63);
        else
            S(f, "-37.63");
        S(f, "qty"), U(f, 2);
    }
    expect_ok(f, 9);
    commit(f);
    got g;
    scan(f, "CL", &g);
    assert_int_equal(g.n, 9);
    for (int i = 0; i < 9; i++)
        if (g.v[i][TRADE_px] != want[i])
            fail_msg("trade %d: px %lld, want %lld", i, (long long)g.v[i][TRADE_px],
                     (long long)want[i]);

    /* qty < 0 in the map form too, a float first read by the fast path. */
    begin(f, 2, 1, 3);
    msgpack_pack_map(&f->pk, 4);
    S(f, "sym"), S(f, "CL"), S(f, "ts"), U(f, TS0), S(f, "px"), S(f, "1");
    S(f, "qty"), msgpack_pack_double(&f->pk, -2.0);
    expect_err(f, PROTO_E_BAD_VALUE, 0, "trade 0: qty: negative");
    begin(f, 2, 1, 3);
    msgpack_pack_array(&f->pk, 4), S(f, "CL"), U(f, TS0), S(f, "-92233720368.54775808"), U(f, 1);
    expect_err(f, PROTO_E_BAD_VALUE, 0, "px: number out of range");

    /* option_trade: a negative strike (and price). */
    begin(f, 3, 1, 4);
    msgpack_pack_array(&f->pk, 9), S(f, "SPRD"), U(f, TS0), S(f, "-1.25"), U(f, 1), S(f, "B");
    U(f, 7), S(f, "-2.5"), U(f, TS0 + 86400000000000LL), S(f, "C");
    S(f, "option_trade");
    expect_ok(f, 1);
    commit(f);
    scan(f, "SPRD", &g);
    assert_int_equal(g.n, 1);
    assert_true(g.v[0][TRADE_px] == -125000000LL);
    assert_true(g.v[0][OPTION_TRADE_strike] == -250000000LL);
}

static void option_trade_map(fx *f, const char *sym, const char *right)
{
    msgpack_pack_map(&f->pk, 7);
    S(f, "sym"), S(f, sym), S(f, "ts"), U(f, TS0), S(f, "px"), S(f, "2.5"), S(f, "qty"), U(f, 1);
    S(f, "strike"), S(f, "190"), S(f, "expiry"), U(f, TS0 + 86400000000000LL);
    S(f, "right"), S(f, right);
}

static void test_option_trade(void **state)
{
    fx *f = *state;
    /* declared kind, map and array forms */
    begin(f, 1, 2, 4);
    option_trade_map(f, "AAPL260116C190", "C");
    msgpack_pack_array(&f->pk, 9), S(f, "AAPL260116C190"), U(f, TS0 + 1), S(f, "3"), U(f, 2);
    S(f, "B"), U(f, 77), U(f, 190), U(f, TS0 + 1000), S(f, "put");
    S(f, "option_trade");
    expect_ok(f, 2);
    commit(f);
    got g;
    scan(f, "AAPL260116C190", &g);
    assert_int_equal(g.n, 2);
    assert_ptr_equal(g.k[0], &kind_option_trade);
    int64_t want0[8] = {TS0, 250000000, FIXP_SCALE, 0, 0, 190 * FIXP_SCALE,
                        TS0 + 86400000000000LL, KIND_RIGHT_CALL};
    assert_memory_equal(g.v[0], want0, sizeof(want0));
    assert_true(g.v[1][7] == KIND_RIGHT_PUT && g.v[1][4] == 77);

    /* No declared kind: the symbol's kind decides, option keys accepted. */
    begin(f, 2, 1, 3);
    option_trade_map(f, "AAPL260116C190", "call");
    expect_ok(f, 1);
    /* The same keys on a plain symbol are unknown fields. */
    begin(f, 3, 1, 3);
    option_trade_map(f, "AAPL", "call");
    expect_err(f, PROTO_E_UNKNOWN_FIELD, 0, "kind trade has no field \"strike\"");
    /* Declared kind against an existing symbol of another kind. */
    begin(f, 4, 2, 4);
    map_trade(f, "PLAIN", TS0, "1", 1, "B", 1);
    map_trade(f, "AAPL260116C190", TS0, "1", 1, "B", 1);
    S(f, "trade");
    expect_err(f, PROTO_E_KIND_MISMATCH, 1, "holds kind option_trade, not trade");
    /* A required option slot missing; a bad right. */
    begin(f, 5, 1, 4);
    msgpack_pack_array(&f->pk, 8), S(f, "OPT2"), U(f, 1), U(f, 1), U(f, 1), S(f, ""), U(f, 1);
    U(f, 1), U(f, 1);
    S(f, "option_trade");
    expect_err(f, PROTO_E_MISSING_FIELD, 0, "missing right");
    begin(f, 5, 1, 4);
    msgpack_pack_array(&f->pk, 9), S(f, "OPT2"), U(f, 1), U(f, 1), U(f, 1), S(f, ""), U(f, 1);
    U(f, 1), U(f, 1), S(f, "X");
    S(f, "option_trade");
    expect_err(f, PROTO_E_BAD_VALUE, 0, "right: \"X\" is not");
    /* expiry is a 62-bit slot */
    begin(f, 5, 1, 4);
    msgpack_pack_array(&f->pk, 9), S(f, "OPT2"), U(f, 1), U(f, 1), U(f, 1), S(f, ""), U(f, 1);
    U(f, 1), U(f, 1ull << 62), S(f, "C");
    S(f, "option_trade");
    expect_err(f, PROTO_E_BAD_VALUE, 0, "expiry: out of range");
}

/* ---- every error the decoder reports ----------------------------------- */

static void test_message_errors(void **state)
{
    fx *f = *state;
    uint64_t seq;
    proto_error e;
    /* BAD_MESSAGE shapes */
    msgpack_sbuffer_clear(&f->sb);
    msgpack_pack_map(&f->pk, 0);
    expect_err(f, PROTO_E_BAD_MESSAGE, -1, "a batch is");
    msgpack_sbuffer_clear(&f->sb);
    msgpack_pack_array(&f->pk, 2), S(f, "T"), U(f, 1);
    expect_err(f, PROTO_E_BAD_MESSAGE, -1, "a batch is");
    msgpack_sbuffer_clear(&f->sb);
    msgpack_pack_array(&f->pk, 3), S(f, "Q"), U(f, 1), msgpack_pack_array(&f->pk, 0);
    expect_err(f, PROTO_E_BAD_MESSAGE, -1, "not a T");
    begin(f, 0, 0, 3);
    expect_err(f, PROTO_E_BAD_MESSAGE, -1, "seq");
    msgpack_sbuffer_clear(&f->sb);
    msgpack_pack_array(&f->pk, 3), S(f, "T"), msgpack_pack_int64(&f->pk, -3);
    msgpack_pack_array(&f->pk, 0);
    expect_err(f, PROTO_E_BAD_MESSAGE, -1, "seq");
    msgpack_sbuffer_clear(&f->sb);
    msgpack_pack_array(&f->pk, 3), S(f, "T"), U(f, 5), msgpack_pack_map(&f->pk, 0);
    expect_err(f, PROTO_E_BAD_MESSAGE, -1, "trades must be an array");
    decode(f, &seq, &e);
    assert_true(seq == 5); /* echoed once parsed */
    begin(f, 6, 0, 4);
    U(f, 1);
    expect_err(f, PROTO_E_BAD_MESSAGE, -1, "kind must be a string");
    /* UNKNOWN_KIND is message-level */
    begin(f, 6, 1, 4);
    map_trade(f, "AAPL", TS0, "1", 1, "B", 1);
    S(f, "future");
    expect_err(f, PROTO_E_UNKNOWN_KIND, -1, "unknown kind \"future\"");
    /* nil kind = none */
    begin(f, 6, 1, 4);
    map_trade(f, "AAPL", TS0, "1", 1, "B", 1);
    msgpack_pack_nil(&f->pk);
    expect_ok(f, 1);
    /* TOO_LARGE: more trades than max_batch */
    f->lim.max_batch = 2;
    begin(f, 7, 3, 3);
    for (int i = 0; i < 3; i++)
        map_trade(f, "AAPL", TS0, "1", 1, "B", 1);
    expect_err(f, PROTO_E_TOO_LARGE, -1, "limit of 2 (--max-batch)");
    decode(f, &seq, &e);
    assert_true(seq == 7);
    f->lim.max_batch = 100000;
    /* MALFORMED: truncated, trailing bytes, 0xc1 */
    begin(f, 8, 2, 3);
    map_trade(f, "AAPL", TS0, "1", 1, "B", 1);
    map_trade(f, "AAPL", TS0, "1", 1, "B", 1);
    size_t full = f->sb.size;
    f->sb.size = full - 1;
    expect_err(f, PROTO_E_MALFORMED, -1, "ends inside");
    f->sb.size = full;
    msgpack_pack_nil(&f->pk);
    expect_err(f, PROTO_E_MALFORMED, -1, "after");
    begin(f, 8, 1, 3);
    msgpack_sbuffer_write(&f->sb, "\xc1", 1);
    expect_err(f, PROTO_E_MALFORMED, -1, "0xc1");
    msgpack_sbuffer_clear(&f->sb);
    expect_err(f, PROTO_E_MALFORMED, -1, "ends inside");
    /* An empty batch is fine. */
    begin(f, 9, 0, 3);
    expect_ok(f, 0);
}

static void test_trade_errors(void **state)
{
    fx *f = *state;
    /* Each case: trade 0 good, trade 1 bad. */
    for (int what = 0; what < 21; what++) {
        proto_code code = PROTO_E_BAD_VALUE;
        const char *why = "";
        begin(f, 1, 2, 3);
        map_trade(f, "GOOD", TS0, "1", 1, "B", 1);
        switch (what) {
        case 0: /* missing sym (map) */
            msgpack_pack_map(&f->pk, 1), S(f, "ts"), U(f, 1);
            code = PROTO_E_MISSING_FIELD, why = "trade 1: missing sym";
            break;
        case 1: /* missing sym (array) */
            msgpack_pack_array(&f->pk, 0);
            code = PROTO_E_MISSING_FIELD, why = "missing sym";
            break;
        case 2: /* missing ts */
            msgpack_pack_map(&f->pk, 3), S(f, "sym"), S(f, "X"), S(f, "px"), U(f, 1);
            S(f, "qty"), U(f, 1);
            code = PROTO_E_MISSING_FIELD, why = "trade 1: missing ts";
            break;
        case 3: /* nil for a required slot is missing */
            msgpack_pack_array(&f->pk, 4), S(f, "X"), U(f, 1), msgpack_pack_nil(&f->pk), U(f, 1);
            code = PROTO_E_MISSING_FIELD, why = "missing px";
            break;
        case 4: /* trailing required slot omitted */
            msgpack_pack_array(&f->pk, 3), S(f, "X"), U(f, 1), U(f, 1);
            code = PROTO_E_MISSING_FIELD, why = "missing qty";
            break;
        case 5: /* unknown key */
            msgpack_pack_map(&f->pk, 2), S(f, "sym"), S(f, "X"), S(f, "venue"), U(f, 1);
            code = PROTO_E_UNKNOWN_FIELD, why = "trade 1: kind trade has no field \"venue\"";
            break;
        case 6: /* too many array values */
            msgpack_pack_array(&f->pk, 7), S(f, "X");
            for (int i = 0; i < 6; i++)
                U(f, 1);
            code = PROTO_E_UNKNOWN_FIELD, why = "6 values after sym";
            break;
        case 7: /* duplicate key */
            msgpack_pack_map(&f->pk, 3), S(f, "sym"), S(f, "X"), S(f, "ts"), U(f, 1);
            S(f, "ts"), U(f, 2);
            why = "trade 1: ts: duplicate key";
            break;
        case 8: /* duplicate sym */
            msgpack_pack_map(&f->pk, 2), S(f, "sym"), S(f, "X"), S(f, "sym"), S(f, "Y");
            why = "sym: duplicate key";
            break;
        case 9: /* sym not a string */
            msgpack_pack_map(&f->pk, 1), S(f, "sym"), U(f, 5);
            code = PROTO_E_WRONG_TYPE, why = "trade 1: sym: expected a string, got integer";
            break;
        case 10: /* key not a string */
            msgpack_pack_map(&f->pk, 2), S(f, "sym"), S(f, "X"), U(f, 1), U(f, 1);
            code = PROTO_E_WRONG_TYPE, why = "map key is a integer";
            break;
        case 11: /* trade neither map nor array */
            S(f, "AAPL");
            code = PROTO_E_WRONG_TYPE, why = "trade 1: a trade is a map or an array";
            break;
        case 12: /* wrong type for qty */
            msgpack_pack_array(&f->pk, 4), S(f, "X"), U(f, 1), U(f, 1), msgpack_pack_map(&f->pk, 0);
            code = PROTO_E_WRONG_TYPE, why = "trade 1: qty: expected a number or a decimal string, got map";
            break;
        case 13: /* bad side */
            msgpack_pack_array(&f->pk, 5), S(f, "X"), U(f, 1), U(f, 1), U(f, 1), S(f, "Z");
            why = "side: \"Z\" is not";
            break;
        case 14: /* side of wrong type */
            msgpack_pack_array(&f->pk, 5), S(f, "X"), U(f, 1), U(f, 1), U(f, 1), U(f, 1);
            code = PROTO_E_WRONG_TYPE, why = "side: expected a string";
            break;
        case 15: /* negative id */
            msgpack_pack_array(&f->pk, 6), S(f, "X"), U(f, 1), U(f, 1), U(f, 1), S(f, "B");
            msgpack_pack_int64(&f->pk, -1);
            why = "id: negative";
            break;
        case 16: /* empty symbol */
            msgpack_pack_array(&f->pk, 4), S(f, ""), U(f, 1), U(f, 1), U(f, 1);
            code = PROTO_E_BAD_SYMBOL, why = "trade 1: sym: not 1-31 bytes";
            break;
        case 17: /* 32-byte symbol */
            msgpack_pack_array(&f->pk, 4), S(f, "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345");
            U(f, 1), U(f, 1), U(f, 1);
            code = PROTO_E_BAD_SYMBOL, why = "sym";
            break;
        case 18: /* invalid UTF-8 */
            msgpack_pack_array(&f->pk, 4), S(f, "\xff\xfe"), U(f, 1), U(f, 1), U(f, 1);
            code = PROTO_E_BAD_SYMBOL, why = "sym";
            break;
        case 19: /* id of wrong type */
            msgpack_pack_array(&f->pk, 6), S(f, "X"), U(f, 1), U(f, 1), U(f, 1), S(f, "B");
            msgpack_pack_double(&f->pk, 1.0);
            code = PROTO_E_WRONG_TYPE, why = "id: expected a non-negative integer, got float";
            break;
        case 20: /* a long unknown key */
            msgpack_pack_map(&f->pk, 2), S(f, "sym"), S(f, "X"), S(f, "exchange_timestamp");
            U(f, 1);
            code = PROTO_E_UNKNOWN_FIELD, why = "\"exchange_timestamp\"";
            break;
        }
        expect_err(f, code, 1, why);
    }
}

static void test_ignore_unknown(void **state)
{
    fx *f = *state;
    f->lim.ignore_unknown = 1;
    begin(f, 1, 2, 3);
    msgpack_pack_map(&f->pk, 7), S(f, "venue"), msgpack_pack_array(&f->pk, 2), U(f, 1);
    msgpack_pack_map(&f->pk, 1), U(f, 2), U(f, 3);
    S(f, "sym"), S(f, "IGN"), S(f, "ts"), U(f, TS0), S(f, "px"), U(f, 1), S(f, "qty"), U(f, 2);
    S(f, "strike"), U(f, 5), S(f, "a_very_long_unknown_key"), msgpack_pack_nil(&f->pk);
    msgpack_pack_array(&f->pk, 8), S(f, "IGN"), U(f, TS0), U(f, 1), U(f, 2), S(f, "B"), U(f, 9);
    S(f, "extra"), msgpack_pack_array(&f->pk, 0);
    expect_ok(f, 2);
    /* Unknown keys are not checked for duplicates or types, known ones are. */
    begin(f, 1, 1, 3);
    msgpack_pack_map(&f->pk, 3), S(f, "sym"), S(f, "IGN"), S(f, "px"), U(f, 1), S(f, "px"),
        U(f, 1);
    expect_err(f, PROTO_E_BAD_VALUE, 0, "duplicate");
    f->lim.ignore_unknown = 0;
}

static void test_symbol_limit(void **state)
{
    fx *f = *state;
    /* The fixture's store allows 8 symbols. */
    begin(f, 1, 10, 3);
    for (int i = 0; i < 10; i++) {
        char sym[16];
        snprintf(sym, sizeof(sym), "LIM%d", i);
        map_trade(f, sym, TS0, "1", 1, "B", 1);
    }
    expect_err(f, PROTO_E_SYMBOL_LIMIT, 8, "symbol limit");
}

/* ---- differential: direct decoder vs msgpack-c object tree --------------- */

typedef struct side {
    store *s;
    store_batch b;
} side;

static void test_differential(void **state)
{
    (void)state;
    side a, r;
    store_config cfg = {.max_memory = 256u << 20, .max_symbols = 5};
    proto_limits lim;
    proto_limits_default(&lim);
    lim.max_batch = 10;
    assert_int_equal(store_open(&a.s, &cfg), STORE_OK);
    assert_int_equal(store_open(&r.s, &cfg), STORE_OK);
    store_batch_init(&a.b), store_batch_init(&r.b);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    gen g = {&pk, 90};
    int accepted = 0, rejected = 0, compared = 0;
    int codes[PROTO_NCODES] = {0};
    for (int iter = 0; iter < 60000; iter++) {
        msgpack_sbuffer_clear(&sb);
        g.valid = iter % 3 == 0 ? 100 : iter % 3 == 1 ? 97 : 85;
        lim.ignore_unknown = iter % 7 == 0;
        gen_batch(&g, (uint64_t)iter + 1);
        size_t len = sb.size;
        uint8_t *msg = malloc(len ? len : 1);
        memcpy(msg, sb.data, len);
        if (iter % 4 == 3) { /* byte mutations, then keep what still frames */
            for (int m = (int)(rnd() % 3) + 1; m > 0 && len; m--)
            {
                size_t at = rnd() % len; /* two statements: argument order is unspecified */
                msg[at] = (uint8_t)rnd();
            }
            proto_framer fr;
            proto_error fe;
            size_t n = 0;
            proto_framer_reset(&fr);
            if (proto_frame(&fr, msg, len, &lim, &n, &fe) != PROTO_FRAME_DONE) {
                /* The direct decoder must still be safe on it. */
                uint64_t s1;
                proto_error e1;
                if (proto_decode_batch(msg, len, &lim, a.s, &a.b, &s1, &e1) == 0) {
                    assert_true(0 && "unframeable bytes accepted");
                }
                free(msg);
                continue;
            }
            len = n;
        }
        uint64_t s1 = 0, s2 = 0;
        proto_error e1 = {0}, e2 = {0};
        int rc1 = proto_decode_batch(msg, len, &lim, a.s, &a.b, &s1, &e1);
        int rc2 = ref_decode_batch(msg, len, &lim, r.s, &r.b, &s2, &e2);
        compared++;
        if (rc1 != rc2 || (rc1 && (e1.code != e2.code || e1.index != e2.index)) || s1 != s2) {
            char hex[200] = "";
            for (size_t i = 0; i < len && i < 64; i++)
                snprintf(hex + 3 * i, 4, "%02x ", msg[i]);
            print_error("iter %d: direct rc %d %s@%lld \"%s\" seq %llu; ref rc %d %s@%lld "
                        "\"%s\" seq %llu\n%s\n",
                        iter, rc1, proto_code_name(e1.code), (long long)e1.index, e1.msg,
                        (unsigned long long)s1, rc2, proto_code_name(e2.code),
                        (long long)e2.index, e2.msg, (unsigned long long)s2, hex);
            fail();
        }
        assert_int_equal(a.b.n, r.b.n);
        assert_int_equal(a.b.len, r.b.len);
        if (a.b.len)
            assert_memory_equal(a.b.buf, r.b.buf, a.b.len);
        if (rc1 == 0) {
            accepted++;
            /* Commit some, so symbols' kinds get fixed and later trades
             * resolve through store_symbol_kind. */
            if (chance(50) && a.b.n) {
                assert_int_equal(store_batch_reserve(a.s, &a.b), STORE_OK);
                assert_int_equal(store_batch_reserve(r.s, &r.b), STORE_OK);
                store_batch_commit(a.s, &a.b);
                store_batch_commit(r.s, &r.b);
            }
        } else {
            rejected++;
            codes[e1.code]++;
        }
        free(msg);
    }
    print_message("differential: %d compared, %d accepted, %d rejected\n", compared, accepted,
                  rejected);
    for (int c = 1; c < PROTO_NCODES; c++)
        if (codes[c])
            print_message("  %-14s %d\n", proto_code_name((proto_code)c), codes[c]);
    assert_true(accepted > 5000 && rejected > 5000);
    /* Every trade-level and message-level code the decoder has was hit. */
    proto_code must[] = {PROTO_E_BAD_MESSAGE,  PROTO_E_UNKNOWN_FIELD,
                         PROTO_E_MISSING_FIELD, PROTO_E_WRONG_TYPE,   PROTO_E_BAD_VALUE,
                         PROTO_E_BAD_SYMBOL,    PROTO_E_UNKNOWN_KIND, PROTO_E_KIND_MISMATCH,
                         PROTO_E_TOO_LARGE,     PROTO_E_SYMBOL_LIMIT};
    for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++)
        assert_true(codes[must[i]] > 0);
    store_batch_free(&a.b), store_batch_free(&r.b);
    store_close(a.s), store_close(r.s);
    msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_map_and_array_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_permutations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timestamps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_numbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signed_prices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_option_trade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_message_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trade_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ignore_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symbol_limit, setup, teardown),
        cmocka_unit_test(test_differential),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
