/* test_kind — slot layouts, field tables, pack/unpack, validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "kind.h"

#define Q62 ((int64_t)(((uint64_t)1 << 62) - 1)) /* widest 62-bit value */

/* ---- layout ------------------------------------------------------------- */

static void test_sizes(void **st)
{
    (void)st;
    assert_int_equal(sizeof(trade), 32);
    assert_int_equal(sizeof(option_trade), 48);
    assert_int_equal(kind_trade.size, 32);
    assert_int_equal(kind_option_trade.size, 48);
    assert_int_equal(offsetof(option_trade, base), 0);
    assert_int_equal(TRADE_NFIELDS, 5);
    assert_int_equal(OPTION_TRADE_NFIELDS, 8);
    assert_int_equal(kind_trade.nfields, TRADE_NFIELDS);
    assert_int_equal(kind_option_trade.nfields, OPTION_TRADE_NFIELDS);
    assert_true(kind_option_trade.nfields <= KIND_MAX_FIELDS);
}

static void test_field_tables(void **st)
{
    (void)st;
    static const struct {
        int index;
        const char *key;
        int type, bits, flags;
    } want[] = {
        {TRADE_ts, "ts", KIND_TS, 64, KIND_REQ},
        {TRADE_px, "px", KIND_FIX, 64, KIND_REQ | KIND_SIGNED},
        {TRADE_qty, "qty", KIND_FIX, 62, KIND_REQ},
        {TRADE_side, "side", KIND_SIDE, 2, 0},
        {TRADE_id, "id", KIND_U64, 64, 0},
        {OPTION_TRADE_strike, "strike", KIND_FIX, 64, KIND_REQ | KIND_SIGNED},
        {OPTION_TRADE_expiry, "expiry", KIND_TS, 62, KIND_REQ},
        {OPTION_TRADE_right, "right", KIND_RIGHT, 2, KIND_REQ},
    };
    for (int i = 0; i < 8; i++) {
        assert_int_equal(want[i].index, i);
        const kind_field *f = &kind_option_trade.fields[i];
        assert_string_equal(f->key, want[i].key);
        assert_int_equal(f->keylen, strlen(want[i].key));
        assert_int_equal(f->type, want[i].type);
        assert_int_equal(f->bits, want[i].bits);
        assert_int_equal(f->flags, want[i].flags);
        assert_non_null(f->doc);
        assert_true(strlen(f->doc) > 0);
    }
    /* The derived kind's table starts with the base's, same indexes. */
    for (int i = 0; i < kind_trade.nfields; i++) {
        const kind_field *b = &kind_trade.fields[i], *d = &kind_option_trade.fields[i];
        assert_string_equal(b->key, d->key);
        assert_int_equal(b->keylen, d->keylen);
        assert_int_equal(b->type, d->type);
        assert_int_equal(b->bits, d->bits);
        assert_int_equal(b->flags, d->flags);
        assert_string_equal(b->doc, d->doc);
    }
    /* Storage widths add up to the slot size: no hidden padding. */
    for (unsigned k = 0; k < kind_count(); k++) {
        const kind *kd = kind_by_id(k);
        unsigned bits = 0;
        for (int i = 0; i < kd->nfields; i++)
            bits += kd->fields[i].bits;
        assert_int_equal(bits, kd->size * 8u);
    }
}

/* ---- pack / unpack ------------------------------------------------------ */

/* Pack into the middle of a guarded buffer: nothing outside the slot moves. */
static void roundtrip(const kind *k, const int64_t *v)
{
    unsigned char buf[128];
    int64_t back[KIND_MAX_FIELDS];
    memset(buf, 0xA5, sizeof buf);
    k->pack(buf + 32, v);
    for (size_t i = 0; i < sizeof buf; i++)
        if (i < 32 || i >= 32u + k->size)
            assert_int_equal(buf[i], 0xA5);
    memset(back, 0x5A, sizeof back);
    k->unpack(buf + 32, back);
    for (int i = 0; i < k->nfields; i++)
        if (back[i] != v[i])
            fail_msg("%s.%s: %lld back as %lld", k->name, k->fields[i].key, (long long)v[i],
                     (long long)back[i]);
}

static void test_pack_extremes(void **st)
{
    (void)st;
    int64_t hi[] = {INT64_MAX, INT64_MAX, Q62, KIND_SIDE_SELL, (int64_t)UINT64_MAX};
    int64_t lo[] = {0, 0, 0, KIND_SIDE_UNKNOWN, 0};
    int64_t mid[] = {1767225600000000000LL, 18725000000LL, 10000 * 100000000LL, KIND_SIDE_BUY,
                     (int64_t)0x8000000000000000ULL};
    roundtrip(&kind_trade, hi);
    roundtrip(&kind_trade, lo);
    roundtrip(&kind_trade, mid);

    int64_t ohi[] = {INT64_MAX, INT64_MAX, Q62, KIND_SIDE_SELL, -1, INT64_MAX, Q62,
                     KIND_RIGHT_PUT};
    int64_t olo[] = {0, 0, 0, 0, 0, 0, 0, KIND_RIGHT_CALL};
    roundtrip(&kind_option_trade, ohi);
    roundtrip(&kind_option_trade, olo);

    /* The id keeps all 64 bits: UINT64_MAX reads back as UINT64_MAX. */
    trade t;
    kind_trade.pack(&t, hi);
    assert_true(t.id == UINT64_MAX);
    assert_true(t.qty == ((uint64_t)1 << 62) - 1);
    assert_true(t.side == KIND_SIDE_SELL);
}

static void test_pack_random(void **st)
{
    (void)st;
    uint64_t x = 88172645463325252ULL;
    for (int n = 0; n < 20000; n++) {
        int64_t v[KIND_MAX_FIELDS];
        for (int i = 0; i < OPTION_TRADE_NFIELDS; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
            unsigned bits = kind_option_trade.fields[i].bits;
            uint64_t r = x;
            if (kind_option_trade.fields[i].type != KIND_U64)
                r &= bits == 64 ? (uint64_t)INT64_MAX : ((uint64_t)1 << bits) - 1;
            v[i] = (int64_t)r;
        }
        v[TRADE_side] %= 3;
        v[OPTION_TRADE_right] = 1 + v[OPTION_TRADE_right] % 2;
        roundtrip(&kind_trade, v);
        roundtrip(&kind_option_trade, v);
    }
}

static void test_derived_reads_as_base(void **st)
{
    (void)st;
    int64_t v[] = {1767225600000001000LL, 18725000000LL, 300000000LL, KIND_SIDE_BUY, 77,
                   20000000000LL, 1767225600000000000LL + 86400000000000LL, KIND_RIGHT_CALL};
    option_trade o;
    kind_option_trade.pack(&o, v);
    const trade *t = kind_trade_of(&o);
    assert_true(t == &o.base);
    assert_int_equal(t->ts, v[0]);
    assert_int_equal(t->px, v[1]);
    assert_int_equal(t->qty, v[2]);
    assert_int_equal(t->side, v[3]);
    assert_int_equal(t->id, v[4]);
    /* The base kind's unpack reads a derived slot's base fields. */
    int64_t b[TRADE_NFIELDS];
    kind_trade.unpack(&o, b);
    assert_memory_equal(b, v, sizeof b);
    assert_int_equal(o.strike, v[5]);
    assert_int_equal(o.expiry, v[6]);
    assert_int_equal(o.right, v[7]);
}

/* ---- field lookup ------------------------------------------------------- */

static int idx(const kind *k, const char *key) { return kind_field_index(k, key, strlen(key)); }

static void test_field_index(void **st)
{
    (void)st;
    for (unsigned k = 0; k < kind_count(); k++) {
        const kind *kd = kind_by_id(k);
        for (int i = 0; i < kd->nfields; i++)
            assert_int_equal(idx(kd, kd->fields[i].key), i);
    }
    assert_int_equal(idx(&kind_trade, "ts"), TRADE_ts);
    assert_int_equal(idx(&kind_trade, "qty"), TRADE_qty);
    assert_int_equal(idx(&kind_option_trade, "px"), TRADE_px);
    assert_int_equal(idx(&kind_option_trade, "strike"), OPTION_TRADE_strike);
    assert_int_equal(idx(&kind_option_trade, "right"), OPTION_TRADE_right);

    static const char *undeclared[] = {"sym", "foo", "", "pxx", "p", "t", "tss", "TS", "Px",
                                       "qt", "qtyy", "sid", "sides", "i", "idd", "kind",
                                       "strike", "expiry", "right", " ts", "ts "};
    for (size_t i = 0; i < sizeof undeclared / sizeof undeclared[0]; i++)
        if (idx(&kind_trade, undeclared[i]) != -1)
            fail_msg("trade declares \"%s\"?", undeclared[i]);
    for (size_t i = 0; i < sizeof undeclared / sizeof undeclared[0]; i++) {
        int own = idx(&kind_option_trade, undeclared[i]) >= TRADE_NFIELDS; /* strike.. */
        assert_true(own || idx(&kind_option_trade, undeclared[i]) == -1);
    }
    assert_int_equal(idx(&kind_option_trade, "strikes"), -1);
    assert_int_equal(idx(&kind_option_trade, "rightt"), -1);

    /* Keys are (pointer, length): not NUL-terminated, embedded NULs matter. */
    assert_int_equal(kind_field_index(&kind_trade, "pxx", 2), TRADE_px);
    assert_int_equal(kind_field_index(&kind_trade, "ts\0", 3), -1);
    assert_int_equal(kind_field_index(&kind_trade, "id", 1), -1);
    assert_int_equal(kind_field_index(&kind_trade, NULL, 0), -1);
}

/* ---- validation --------------------------------------------------------- */

#define ALL_TRADE ((1u << TRADE_NFIELDS) - 1)
#define ALL_OPTION ((1u << OPTION_TRADE_NFIELDS) - 1)

static void good_trade(int64_t *v)
{
    int64_t g[] = {1767225600000000000LL, 18725000000LL, 100000000LL, KIND_SIDE_BUY, 1};
    memcpy(v, g, sizeof g);
}

static void good_option(int64_t *v)
{
    good_trade(v);
    v[OPTION_TRADE_strike] = 20000000000LL;
    v[OPTION_TRADE_expiry] = 1767225600000000000LL;
    v[OPTION_TRADE_right] = KIND_RIGHT_PUT;
}

static void check_is(const kind *k, int64_t *v, uint32_t present, int rc, int bad)
{
    int got_bad = -99;
    int got = kind_check(k, v, present, &got_bad);
    if (got != rc || (rc != KIND_OK && got_bad != bad))
        fail_msg("%s present %#x: rc %d bad %d, want rc %d bad %d", k->name, present, got,
                 got_bad, rc, bad);
}

static void test_check_required(void **st)
{
    (void)st;
    int64_t v[KIND_MAX_FIELDS];
    good_trade(v);
    check_is(&kind_trade, v, ALL_TRADE, KIND_OK, 0);
    for (int i = 0; i < TRADE_NFIELDS; i++) {
        good_trade(v);
        int req = kind_trade.fields[i].flags & KIND_REQ;
        check_is(&kind_trade, v, ALL_TRADE & ~(1u << i), req ? KIND_EMISSING : KIND_OK, i);
    }
    /* The first missing slot is the one reported. */
    check_is(&kind_trade, v, 1u << TRADE_ts, KIND_EMISSING, TRADE_px);
    check_is(&kind_trade, v, 0, KIND_EMISSING, TRADE_ts);

    good_option(v);
    check_is(&kind_option_trade, v, ALL_OPTION, KIND_OK, 0);
    for (int i = TRADE_NFIELDS; i < OPTION_TRADE_NFIELDS; i++) {
        good_option(v);
        check_is(&kind_option_trade, v, ALL_OPTION & ~(1u << i), KIND_EMISSING, i);
    }
    /* A trade's slots alone do not make an option trade. */
    check_is(&kind_option_trade, v, ALL_TRADE, KIND_EMISSING, OPTION_TRADE_strike);
}

static void test_check_optional_default(void **st)
{
    (void)st;
    int64_t v[KIND_MAX_FIELDS];
    good_trade(v);
    v[TRADE_side] = 12345; /* garbage in absent slots is replaced by 0 */
    v[TRADE_id] = -77;
    uint32_t present = (1u << TRADE_ts) | (1u << TRADE_px) | (1u << TRADE_qty);
    check_is(&kind_trade, v, present, KIND_OK, 0);
    assert_int_equal(v[TRADE_side], KIND_SIDE_UNKNOWN);
    assert_int_equal(v[TRADE_id], 0);
    assert_int_equal(v[TRADE_ts], 1767225600000000000LL); /* present ones untouched */
}

static void expect_bad_value(const kind *k, int field, int64_t value, int rc)
{
    int64_t v[KIND_MAX_FIELDS];
    good_option(v);
    v[field] = value;
    check_is(k, v, k == &kind_trade ? ALL_TRADE : ALL_OPTION, rc, field);
}

static void test_check_ranges(void **st)
{
    (void)st;
    const kind *t = &kind_trade, *o = &kind_option_trade;
    expect_bad_value(t, TRADE_ts, -1, KIND_ERANGE);
    expect_bad_value(t, TRADE_ts, INT64_MIN, KIND_ERANGE);
    expect_bad_value(t, TRADE_ts, INT64_MAX, KIND_OK);
    expect_bad_value(t, TRADE_ts, 0, KIND_OK);
    /* Prices are signed (KIND_SIGNED); the range is symmetric (fixp.h). */
    expect_bad_value(t, TRADE_px, -1, KIND_OK);
    expect_bad_value(t, TRADE_px, -INT64_MAX, KIND_OK);
    expect_bad_value(t, TRADE_px, INT64_MIN, KIND_ERANGE);
    expect_bad_value(o, OPTION_TRADE_strike, -1, KIND_OK);
    expect_bad_value(o, OPTION_TRADE_strike, INT64_MIN, KIND_ERANGE);
    expect_bad_value(t, TRADE_px, INT64_MAX, KIND_OK);
    expect_bad_value(t, TRADE_px, 0, KIND_OK);
    expect_bad_value(t, TRADE_qty, Q62, KIND_OK);
    expect_bad_value(t, TRADE_qty, Q62 + 1, KIND_ERANGE);
    expect_bad_value(t, TRADE_qty, INT64_MAX, KIND_ERANGE);
    expect_bad_value(t, TRADE_qty, -1, KIND_ERANGE);
    expect_bad_value(t, TRADE_side, KIND_SIDE_UNKNOWN, KIND_OK);
    expect_bad_value(t, TRADE_side, KIND_SIDE_BUY, KIND_OK);
    expect_bad_value(t, TRADE_side, KIND_SIDE_SELL, KIND_OK);
    expect_bad_value(t, TRADE_side, 3, KIND_EVALUE);
    expect_bad_value(t, TRADE_side, 4, KIND_ERANGE); /* does not fit 2 bits */
    expect_bad_value(t, TRADE_side, -1, KIND_ERANGE);
    /* The id is a full uint64: every bit pattern is a valid id. */
    expect_bad_value(t, TRADE_id, -1, KIND_OK);
    expect_bad_value(t, TRADE_id, INT64_MIN, KIND_OK);
    expect_bad_value(t, TRADE_id, 0, KIND_OK);

    expect_bad_value(o, TRADE_qty, Q62 + 1, KIND_ERANGE); /* base rules still apply */
    expect_bad_value(o, OPTION_TRADE_strike, INT64_MAX, KIND_OK);
    expect_bad_value(o, OPTION_TRADE_expiry, Q62, KIND_OK);
    expect_bad_value(o, OPTION_TRADE_expiry, Q62 + 1, KIND_ERANGE);
    expect_bad_value(o, OPTION_TRADE_expiry, -1, KIND_ERANGE);
    expect_bad_value(o, OPTION_TRADE_right, KIND_RIGHT_CALL, KIND_OK);
    expect_bad_value(o, OPTION_TRADE_right, KIND_RIGHT_PUT, KIND_OK);
    expect_bad_value(o, OPTION_TRADE_right, 0, KIND_EVALUE);
    expect_bad_value(o, OPTION_TRADE_right, 3, KIND_EVALUE);
    expect_bad_value(o, OPTION_TRADE_right, 4, KIND_ERANGE);
    expect_bad_value(o, OPTION_TRADE_right, -1, KIND_ERANGE);

    /* With several bad slots the first is reported. */
    int64_t v[KIND_MAX_FIELDS];
    good_option(v);
    v[TRADE_qty] = -1;
    v[OPTION_TRADE_right] = 0;
    check_is(o, v, ALL_OPTION, KIND_ERANGE, TRADE_qty);
}

/* ---- enums, lookup ------------------------------------------------------ */

static int64_t parse_ok(kind_type t, const char *s)
{
    int64_t v = -1;
    if (kind_enum_parse(t, s, strlen(s), &v) != KIND_OK)
        fail_msg("\"%s\" rejected", s);
    return v;
}

static void test_enums(void **st)
{
    (void)st;
    assert_int_equal(parse_ok(KIND_SIDE, "B"), KIND_SIDE_BUY);
    assert_int_equal(parse_ok(KIND_SIDE, "b"), KIND_SIDE_BUY);
    assert_int_equal(parse_ok(KIND_SIDE, "buy"), KIND_SIDE_BUY);
    assert_int_equal(parse_ok(KIND_SIDE, "BUY"), KIND_SIDE_BUY);
    assert_int_equal(parse_ok(KIND_SIDE, "S"), KIND_SIDE_SELL);
    assert_int_equal(parse_ok(KIND_SIDE, "sell"), KIND_SIDE_SELL);
    assert_int_equal(parse_ok(KIND_SIDE, "Sell"), KIND_SIDE_SELL);
    assert_int_equal(parse_ok(KIND_SIDE, ""), KIND_SIDE_UNKNOWN);
    assert_int_equal(parse_ok(KIND_SIDE, "u"), KIND_SIDE_UNKNOWN);
    assert_int_equal(parse_ok(KIND_SIDE, "unknown"), KIND_SIDE_UNKNOWN);
    assert_int_equal(parse_ok(KIND_RIGHT, "C"), KIND_RIGHT_CALL);
    assert_int_equal(parse_ok(KIND_RIGHT, "call"), KIND_RIGHT_CALL);
    assert_int_equal(parse_ok(KIND_RIGHT, "P"), KIND_RIGHT_PUT);
    assert_int_equal(parse_ok(KIND_RIGHT, "PUT"), KIND_RIGHT_PUT);

    int64_t v = 99;
    static const char *bad_side[] = {"X", "bu", "buys", "sel", "BS", " B", "B ", "1", "C"};
    for (size_t i = 0; i < sizeof bad_side / sizeof bad_side[0]; i++)
        assert_int_equal(kind_enum_parse(KIND_SIDE, bad_side[i], strlen(bad_side[i]), &v),
                         KIND_EVALUE);
    static const char *bad_right[] = {"", "B", "calls", "pu", "c ", "2"};
    for (size_t i = 0; i < sizeof bad_right / sizeof bad_right[0]; i++)
        assert_int_equal(kind_enum_parse(KIND_RIGHT, bad_right[i], strlen(bad_right[i]), &v),
                         KIND_EVALUE);
    assert_int_equal(v, 99);
    assert_int_equal(kind_enum_parse(KIND_FIX, "B", 1, &v), KIND_EVALUE);
    assert_int_equal(kind_enum_parse(KIND_SIDE, "Bx", 1, &v), KIND_OK); /* length-bounded */
    assert_int_equal(v, KIND_SIDE_BUY);

    assert_string_equal(kind_enum_name(KIND_SIDE, KIND_SIDE_BUY), "B");
    assert_string_equal(kind_enum_name(KIND_SIDE, KIND_SIDE_SELL), "S");
    assert_string_equal(kind_enum_name(KIND_SIDE, KIND_SIDE_UNKNOWN), "");
    assert_string_equal(kind_enum_name(KIND_RIGHT, KIND_RIGHT_CALL), "C");
    assert_string_equal(kind_enum_name(KIND_RIGHT, KIND_RIGHT_PUT), "P");
    /* name -> parse is the identity on every valid value. */
    for (int64_t s = 0; s <= 2; s++) {
        const char *n = kind_enum_name(KIND_SIDE, s);
        assert_int_equal(parse_ok(KIND_SIDE, n), s);
    }
    for (int64_t r = 1; r <= 2; r++)
        assert_int_equal(parse_ok(KIND_RIGHT, kind_enum_name(KIND_RIGHT, r)), r);

    kind_type types[] = {KIND_TS, KIND_FIX, KIND_U64, KIND_SIDE, KIND_RIGHT};
    for (int i = 0; i < 5; i++) {
        assert_non_null(kind_type_name(types[i]));
        assert_string_not_equal(kind_type_name(types[i]), "?");
        for (int j = 0; j < i; j++)
            assert_string_not_equal(kind_type_name(types[i]), kind_type_name(types[j]));
    }
}

static void test_lookup(void **st)
{
    (void)st;
    assert_int_equal(kind_count(), 2);
    assert_ptr_equal(kind_by_id(0), &kind_trade);
    assert_ptr_equal(kind_by_id(1), &kind_option_trade);
    assert_null(kind_by_id(2));
    assert_null(kind_by_id(KIND_MAX));
    assert_null(kind_by_id(~0u));
    for (unsigned i = 0; i < kind_count(); i++) {
        const kind *k = kind_by_id(i);
        assert_int_equal(k->id, i);
        assert_ptr_equal(kind_by_name(k->name, strlen(k->name)), k);
        assert_non_null(k->pack);
        assert_non_null(k->unpack);
    }
    assert_ptr_equal(kind_by_name("trade", 5), &kind_trade);
    assert_ptr_equal(kind_by_name("option_trade", 12), &kind_option_trade);
    assert_ptr_equal(kind_by_name("trades", 5), &kind_trade);
    assert_null(kind_by_name("trade", 4));
    assert_null(kind_by_name("trades", 6));
    assert_null(kind_by_name("Trade", 5));
    assert_null(kind_by_name("option", 6));
    assert_null(kind_by_name("", 0));

    assert_null(kind_trade.base);
    assert_ptr_equal(kind_option_trade.base, &kind_trade);
    assert_true(kind_is_a(&kind_trade, &kind_trade));
    assert_true(kind_is_a(&kind_option_trade, &kind_option_trade));
    assert_true(kind_is_a(&kind_option_trade, &kind_trade));
    assert_false(kind_is_a(&kind_trade, &kind_option_trade));
    assert_false(kind_is_a(NULL, &kind_trade));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_field_tables),
        cmocka_unit_test(test_pack_extremes),
        cmocka_unit_test(test_pack_random),
        cmocka_unit_test(test_derived_reads_as_base),
        cmocka_unit_test(test_field_index),
        cmocka_unit_test(test_check_required),
        cmocka_unit_test(test_check_optional_default),
        cmocka_unit_test(test_check_ranges),
        cmocka_unit_test(test_enums),
        cmocka_unit_test(test_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
