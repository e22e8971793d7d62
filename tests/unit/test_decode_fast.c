/* test_decode_fast — the decoder's fast path (proto/decode_fast.c) and what
 * it relies on: the SWAR decimal reader against quick_decimal and
 * fixp_from_str, symbol keys of every length through the store's leaf and
 * general lookups, values at the edges of what the fast path takes, and a
 * differential run of batches in the fast shape (with every kind of
 * deviation) against the msgpack-c reference decoder (ref_decode.h). The
 * general rules are in test_decode.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "decnum.h"
#include "fixp.h"
#include "decode_fx.h"
#include "proto.h"
#include "ref_decode.h"

#define TS0 1767225600000000000LL

/* Deterministic: xorshift with a fixed seed. */
static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}
static int chance(int pct) { return (int)(rnd() % 100) < pct; }

/* ---- decimals ------------------------------------------------------------ */

/* Whatever a fast reader accepts, fixp_from_str accepts with the same value,
 * and the SWAR reader says exactly what quick_decimal says. */
static void check_decimal(const uint8_t *s, uint32_t len)
{
    int64_t q = -1, w = -1, ref = -1;
    int rq = quick_decimal(s, len, &q);
    if (rq) {
        assert_int_equal(fixp_from_str((const char *)s, len, &ref), FIXP_OK);
        assert_true(q == ref);
    }
#ifdef DECNUM_SWAR
    if (len >= 1 && len <= 8) {
        int rw = swar_decimal(s, len, &w);
        assert_int_equal(rw, rq);
        if (rw)
            assert_true(w == q);
    }
#endif
}

static void test_decimal_readers(void **state)
{
    (void)state;
    uint8_t b[24];
    /* every string of 1 or 2 bytes, garbage after it */
    for (uint32_t v = 0; v < 65536; v++) {
        memset(b, (int)(v * 7), sizeof b);
        b[0] = (uint8_t)v, b[1] = (uint8_t)(v >> 8);
        check_decimal(b, 1 + (v > 255));
    }
    /* digits, dots and the bytes next to them, up to 19 characters */
    static const uint8_t alpha[] = "0123456789..../:-+e \xfa\xff\xf9\xae\xb0";
    for (int it = 0; it < 400000; it++) {
        uint32_t len = 1 + (uint32_t)(rnd() % (it % 2 ? 8 : 19));
        uint64_t g = rnd();
        memcpy(b + 12, &g, 8);
        memcpy(b + 4, &g, 8);
        for (uint32_t i = 0; i < len; i++)
            b[i] = it % 3 ? (uint8_t)('0' + rnd() % 10) : alpha[rnd() % (sizeof alpha - 1)];
        if (it % 3 == 1)
            b[rnd() % len] = '.';
        check_decimal(b, len);
    }
    /* the limits: 10 integer digits, 8 decimals, 19 digits without a dot
     * (which once overflowed the accumulator) */
    static const char *const edge[] = {"9999999999", "99999999999", "1.12345678", "1.123456789",
                                       "9999999999.99999999", "9999999999999999999", "12345678",
                                       "1234567.", ".1234567", "0.0000000", "00000000"};
    for (size_t i = 0; i < sizeof(edge) / sizeof(edge[0]); i++) {
        memset(b, 'x', sizeof b);
        memcpy(b, edge[i], strlen(edge[i]));
        check_decimal(b, (uint32_t)strlen(edge[i]));
    }
}

/* ---- fixtures ------------------------------------------------------------- */

static int setup(void **state) { return fx_setup(state, 100); }
static int teardown(void **state) { return fx_teardown(state); }

static void S(fx *f, const char *s, size_t n) { msgpack_pack_str_with_body(&f->pk, s, n); }

static void begin(fx *f, uint32_t ntrades)
{
    msgpack_sbuffer_clear(&f->sb);
    msgpack_pack_array(&f->pk, 3);
    S(f, "T", 1);
    msgpack_pack_uint64(&f->pk, 1);
    msgpack_pack_array(&f->pk, ntrades);
}

/* {sym, ts, px, qty, side, id}, the shape clients send */
static void map_trade(fx *f, const char *sym, size_t symlen, const char *px, uint64_t qty)
{
    msgpack_pack_map(&f->pk, 6);
    S(f, "sym", 3), S(f, sym, symlen);
    S(f, "ts", 2), msgpack_pack_uint64(&f->pk, (uint64_t)TS0);
    S(f, "px", 2), S(f, px, strlen(px));
    S(f, "qty", 3), msgpack_pack_uint64(&f->pk, qty);
    S(f, "side", 4), S(f, "S", 1);
    S(f, "id", 2), msgpack_pack_uint64(&f->pk, 42);
}

static int decode(fx *f, proto_error *e)
{
    uint64_t seq;
    return proto_decode_batch((const uint8_t *)f->sb.data, f->sb.size, &f->lim, f->s, &f->b,
                              &seq, e);
}

/* ---- symbols -------------------------------------------------------------- */

/* Names of every length: created through the general path, found again
 * through the leaf path (1-7 bytes), the two-word path (8-15) and the
 * general one (16-31), by queries under the same name, in the same
 * partition every time. */
static void test_symbol_lengths(void **state)
{
    fx *f = *state;
    char name[32];
    for (int round = 0; round < 3; round++) {
        begin(f, 31);
        for (int len = 1; len <= 31; len++) {
            for (int i = 0; i < len; i++)
                name[i] = (char)('A' + (len * 7 + i) % 26);
            map_trade(f, name, (size_t)len, "1.5", 2);
        }
        proto_error e;
        assert_int_equal(decode(f, &e), 0);
        assert_int_equal(f->b.n, 31);
        assert_int_equal(store_batch_reserve(f->s, &f->b), STORE_OK);
        store_batch_commit(f->s, &f->b);
    }
    store_stats st;
    store_get_stats(f->s, &st);
    assert_int_equal(st.symbols, 31);
    for (int len = 1; len <= 31; len++) {
        for (int i = 0; i < len; i++)
            name[i] = (char)('A' + (len * 7 + i) % 26);
        store_symbol_info info;
        assert_int_equal(store_symbol(f->s, name, (size_t)len, &info), STORE_OK);
        assert_int_equal(info.agg.count, 3);
        assert_int_equal(strlen(info.name), (size_t)len);
        assert_memory_equal(info.name, name, (size_t)len);
        assert_true(info.agg.volume == 3 * 2 * (unsigned __int128)FIXP_SCALE);
    }
}

/* Two names whose 32-bit hashes are equal (under the store's hash when this
 * was written; if it changes they merely stop colliding): the key compare,
 * not the hash, must keep them apart, on every path. */
static void test_symbol_collision(void **state)
{
    fx *f = *state;
    for (int round = 0; round < 3; round++) {
        begin(f, 4);
        map_trade(f, "C037346", 7, "1", 1);
        map_trade(f, "C037406", 7, "2", 10);
        map_trade(f, "C037406", 7, "2", 10);
        map_trade(f, "C037346", 7, "1", 1);
        proto_error e;
        assert_int_equal(decode(f, &e), 0);
        assert_int_equal(store_batch_reserve(f->s, &f->b), STORE_OK);
        store_batch_commit(f->s, &f->b);
    }
    store_symbol_info a, b;
    assert_int_equal(store_symbol(f->s, "C037346", 7, &a), STORE_OK);
    assert_int_equal(store_symbol(f->s, "C037406", 7, &b), STORE_OK);
    assert_int_not_equal(a.id, b.id);
    assert_int_equal(a.agg.count, 6);
    assert_int_equal(b.agg.count, 6);
    assert_true(a.agg.volume == 6 * (unsigned __int128)FIXP_SCALE);
    assert_true(b.agg.high == 2 * FIXP_SCALE);
}

/* ---- edges ---------------------------------------------------------------- */

/* One trade through both decoders: same verdict, code, index and bytes. */
static void same_as_ref(fx *f, store *ref, store_batch *rb, int want_ok)
{
    uint64_t s1, s2;
    proto_error e1 = {0}, e2 = {0};
    const uint8_t *m = (const uint8_t *)f->sb.data;
    int r1 = proto_decode_batch(m, f->sb.size, &f->lim, f->s, &f->b, &s1, &e1);
    int r2 = ref_decode_batch(m, f->sb.size, &f->lim, ref, rb, &s2, &e2);
    if (r1 != r2 || r1 != (want_ok ? 0 : -1) ||
        (r1 && (e1.code != e2.code || e1.index != e2.index)))
        print_error("direct %d %s@%lld \"%s\"; ref %d %s@%lld \"%s\"\n", r1,
                    proto_code_name(e1.code), (long long)e1.index, e1.msg, r2,
                    proto_code_name(e2.code), (long long)e2.index, e2.msg);
    assert_int_equal(r1, want_ok ? 0 : -1);
    assert_int_equal(r1, r2);
    assert_int_equal(f->b.len, rb->len);
    if (r1 == 0)
        assert_memory_equal(f->b.buf, rb->buf, f->b.len);
    else
        assert_int_equal(e1.code, e2.code), assert_int_equal(e1.index, e2.index);
}

static void test_fast_edges(void **state)
{
    fx *f = *state;
    store *ref;
    store_batch rb;
    store_config cfg = {.max_memory = 64u << 20, .max_symbols = 100};
    assert_int_equal(store_open(&ref, &cfg), STORE_OK);
    store_batch_init(&rb);
    static const struct {
        const char *px;
        uint64_t qty;
        int ok;
    } c[] = {
        {"187.25", 1, 1}, {"5.", 1, 1}, {"0.00000001", 1, 1}, {"12345678", 1, 1},
        {"1234567.8", 1, 1}, {"92233720368.54775807", 1, 1}, {"92233720368.54775808", 1, 0},
        {".5", 1, 1}, {"1..5", 1, 0}, {"1.5\xff", 1, 0}, {"-0", 1, 1}, {"-1", 1, 1},
        {"-37.63", 1, 1}, {"-92233720368.54775807", 1, 1}, {"-92233720368.54775808", 1, 0},
        {"1", 46116860184ull, 1}, {"1", 46116860185ull, 0}, {"1", UINT64_MAX, 0},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        begin(f, 2);
        map_trade(f, "EDGE", 4, "1", 1);
        map_trade(f, "EDGE", 4, c[i].px, c[i].qty);
        same_as_ref(f, ref, &rb, c[i].ok);
    }
    /* ts as uint64 above INT64_MAX, side and id in their other forms, the
     * array form with 4-6 values */
    for (int i = 0; i < 8; i++) {
        begin(f, 1);
        msgpack_pack_array(&f->pk, (size_t)(i < 6 ? 6 : 11 - i)); /* 6, 5, 4 */
        S(f, "EDGE", 4);
        msgpack_pack_fix_uint64(&f->pk, i == 0 ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX);
        msgpack_pack_double(&f->pk, i == 1 ? -0.5 : 0.25);
        msgpack_pack_fix_uint16(&f->pk, 300);
        if (i < 7) {
            if (i == 2)
                msgpack_pack_nil(&f->pk);
            else
                S(f, i == 3 ? "sell" : i == 4 ? "x" : "b", i == 3 ? 4 : 1);
        }
        if (i < 6)
            msgpack_pack_fix_uint64(&f->pk, UINT64_MAX);
        same_as_ref(f, ref, &rb, i != 0 && i != 4); /* i == 1: px -0.5 is a price */
    }
    store_batch_free(&rb);
    store_close(ref);
}

/* ---- differential -------------------------------------------------------- */

static void put_value(msgpack_packer *pk, int field, int good)
{
    char t[32];
    switch (field) {
    case 0:
        if (good || chance(50))
            msgpack_pack_uint64(pk, chance(90) ? (uint64_t)TS0 + rnd() % 1000000 : rnd() % 200);
        else
            msgpack_pack_uint64(pk, (uint64_t)INT64_MAX + 1 + rnd() % 3);
        break;
    case 1:
    case 2:
        if (chance(60)) {
            int n = snprintf(t, sizeof t, "%llu.%0*llu", (unsigned long long)(rnd() % 100000),
                             (int)(rnd() % (good ? 9 : 12)), (unsigned long long)(rnd() % 100000));
            if (!good && chance(20))
                t[rnd() % (unsigned)n] = chance(50) ? '.' : (char)rnd();
            msgpack_pack_str_with_body(pk, t, (size_t)n);
        } else if (chance(70)) {
            msgpack_pack_uint64(pk, good ? rnd() % 100000 : rnd() >> (rnd() % 30));
        } else {
            msgpack_pack_double(pk, (double)(rnd() % 1000000) / 64.0 *
                                        (good || chance(50) ? 1 : -1));
        }
        break;
    case 3:
        if (good)
            msgpack_pack_str_with_body(pk, chance(50) ? "B" : "s", 1);
        else if (chance(50))
            msgpack_pack_nil(pk);
        else
            msgpack_pack_str_with_body(pk, "Q", 1);
        break;
    default:
        if (good || chance(50))
            msgpack_pack_uint64(pk, rnd() >> (rnd() % 64));
        else
            msgpack_pack_int64(pk, -1);
    }
}

/* Batches mostly in the fast shape, with every kind of deviation mixed in:
 * other key orders and counts, bad values, symbols of other kinds, bad and
 * over-the-limit symbols, declared kinds, truncation. */
static void test_fast_differential(void **state)
{
    (void)state;
    static const char *const names[] = {"AAA", "BBB", "SYMBOL12", "OPA", "", "\xc3\x28",
                                       "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "NEW1", "NEW2", "NEW3"};
    static const char *const keys[] = {"ts", "px", "qty", "side", "id", "venue"};
    store_config cfg = {.max_memory = 64u << 20, .max_symbols = 7};
    store *s[2];
    store_batch b[2];
    int64_t v[KIND_MAX_FIELDS] = {1, 100000000, 100000000, 1, 7, 19000000000, 2, 1};
    int bad;
    assert_int_equal(kind_check(&kind_option_trade, v, 0xff, &bad), KIND_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(store_open(&s[i], &cfg), STORE_OK);
        store_batch_init(&b[i]);
        assert_int_equal(store_batch_add(s[i], &b[i], "OPA", 3, &kind_option_trade, v), STORE_OK);
        assert_int_equal(store_batch_reserve(s[i], &b[i]), STORE_OK);
        store_batch_commit(s[i], &b[i]);
    }
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    proto_limits lim;
    proto_limits_default(&lim);
    int accepted = 0, rejected = 0;
    for (int it = 0; it < 20000; it++) {
        int good = it % 4 ? 97 : 80;
        uint32_t n = (uint32_t)(rnd() % (it % 10 ? 8 : 60));
        int nelem = chance(15) ? 4 : 3;
        lim.ignore_unknown = it % 5 == 0;
        msgpack_sbuffer_clear(&sb);
        msgpack_pack_array(&pk, (size_t)nelem);
        msgpack_pack_str_with_body(&pk, "T", 1);
        msgpack_pack_uint64(&pk, (uint64_t)it + 1);
        msgpack_pack_array(&pk, n);
        for (uint32_t t = 0; t < n; t++) {
            const char *sym = names[chance(good) ? rnd() % 3 : rnd() % 10];
            int nv = chance(good) ? 5 : (int)(rnd() % 7), array = chance(50);
            int order[6] = {0, 1, 2, 3, 4, 5};
            if (!chance(good)) {
                int a = (int)(rnd() % 5), c = (int)(rnd() % 6), x = order[a];
                order[a] = order[c], order[c] = x;
            }
            if (array)
                msgpack_pack_array(&pk, (size_t)nv + 1);
            else
                msgpack_pack_map(&pk, (size_t)nv + 1), msgpack_pack_str_with_body(&pk, "sym", 3);
            msgpack_pack_str_with_body(&pk, sym, strlen(sym));
            for (int i = 0; i < nv; i++) {
                if (!array)
                    msgpack_pack_str_with_body(&pk, keys[order[i]], strlen(keys[order[i]]));
                put_value(&pk, order[i], chance(good));
            }
        }
        if (nelem == 4) {
            const char *kn = chance(70) ? "trade" : "option_trade";
            msgpack_pack_str_with_body(&pk, kn, strlen(kn));
        }
        size_t len = sb.size;
        if (it % 9 == 0 && len > 1)
            len -= 1 + rnd() % (len < 20 ? len - 1 : 20); /* truncated */
        uint8_t *msg = malloc(len); /* exactly the bytes: ASan sees any overread */
        memcpy(msg, sb.data, len);
        uint64_t q[2];
        proto_error e[2];
        memset(e, 0, sizeof e);
        int r0 = proto_decode_batch(msg, len, &lim, s[0], &b[0], &q[0], &e[0]);
        if (len < sb.size) { /* never a batch; the reference only sees framed ones */
            assert_int_equal(r0, -1);
            assert_int_equal(b[0].n, 0);
            free(msg);
            continue;
        }
        int r1 = ref_decode_batch(msg, len, &lim, s[1], &b[1], &q[1], &e[1]);
        if (r0 != r1 || q[0] != q[1] ||
            (r0 && (e[0].code != e[1].code || e[0].index != e[1].index)))
            print_error("iter %d: direct %d %s@%lld \"%s\"; ref %d %s@%lld \"%s\"\n", it, r0,
                        proto_code_name(e[0].code), (long long)e[0].index, e[0].msg, r1,
                        proto_code_name(e[1].code), (long long)e[1].index, e[1].msg);
        assert_int_equal(r0, r1);
        assert_true(q[0] == q[1]);
        assert_int_equal(b[0].n, b[1].n);
        assert_int_equal(b[0].len, b[1].len);
        if (b[0].len)
            assert_memory_equal(b[0].buf, b[1].buf, b[0].len);
        if (r0) {
            rejected++;
            assert_int_equal(e[0].code, e[1].code);
            assert_int_equal(e[0].index, e[1].index);
        } else {
            accepted++;
            if (chance(50) && b[0].n)
                for (int i = 0; i < 2; i++) {
                    assert_int_equal(store_batch_reserve(s[i], &b[i]), STORE_OK);
                    store_batch_commit(s[i], &b[i]);
                }
        }
        free(msg);
    }
    print_message("fast differential: %d accepted, %d rejected\n", accepted, rejected);
    assert_true(accepted > 3000 && rejected > 3000);
    for (int i = 0; i < 2; i++)
        store_batch_free(&b[i]), store_close(s[i]);
    msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decimal_readers),
        cmocka_unit_test_setup_teardown(test_symbol_lengths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symbol_collision, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fast_edges, setup, teardown),
        cmocka_unit_test(test_fast_differential),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
