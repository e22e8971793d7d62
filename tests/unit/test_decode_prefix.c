/* test_decode_prefix — proto_decode_batch_prefix, the one-pass path for T
 * batches whose end is not known yet: it must give exactly what
 * proto_frame followed by proto_decode_batch gives (length, seq, staged
 * bytes) or decline (0, nothing staged), never anything else. Explicit
 * cases for each reason to decline, then a differential run over random,
 * mutated, truncated and concatenated batches (gen_batch.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "gen_batch.h"
#include "decode_fx.h"
#include "proto.h"

static int setup(void **state) { return fx_setup(state, 64); }
static int teardown(void **state) { return fx_teardown(state); }

static void S(fx *f, const char *s) { msgpack_pack_str_with_body(&f->pk, s, strlen(s)); }
static void U(fx *f, uint64_t v) { msgpack_pack_uint64(&f->pk, v); }

static void map_trade(fx *f, const char *sym, uint64_t id)
{
    msgpack_pack_map(&f->pk, 6);
    S(f, "sym"), S(f, sym);
    S(f, "ts"), U(f, (uint64_t)TS0 + id);
    S(f, "px"), msgpack_pack_double(&f->pk, 187.25);
    S(f, "qty"), U(f, 100);
    S(f, "side"), S(f, "B");
    S(f, "id"), U(f, id);
}

/* ["T", seq, [n map trades]] appended to the buffer; returns its length. */
static size_t batch(fx *f, uint64_t seq, uint32_t n)
{
    size_t before = f->sb.size;
    msgpack_pack_array(&f->pk, 3);
    S(f, "T");
    U(f, seq);
    msgpack_pack_array(&f->pk, n);
    for (uint32_t i = 0; i < n; i++)
        map_trade(f, i % 2 ? "AAPL" : "MSFT", i);
    return f->sb.size - before;
}

static int prefix(fx *f, size_t avail, uint64_t *seq, size_t *len)
{
    return proto_decode_batch_prefix((const uint8_t *)f->sb.data, avail, &f->lim, f->s, &f->b,
                                     seq, len);
}

static void expect_declined(fx *f, size_t avail)
{
    uint64_t seq = 7;
    size_t len = 12345;
    assert_int_equal(prefix(f, avail, &seq, &len), 0);
    assert_int_equal(f->b.n, 0);
    assert_int_equal(f->b.len, 0);
    assert_int_equal(len, 12345); /* untouched */
}

/* A whole message with the next one's bytes behind it: its own length. */
static void test_complete_then_more(void **state)
{
    fx *f = *state;
    size_t first = batch(f, 5, 40);
    batch(f, 6, 3);
    uint64_t seq = 0;
    size_t len = 0;
    assert_int_equal(prefix(f, f->sb.size, &seq, &len), 1);
    assert_int_equal(len, first);
    assert_int_equal(seq, 5);
    assert_int_equal(f->b.n, 40);
    /* Exactly the bytes proto_decode_batch stages for the framed message. */
    uint64_t s2 = 0;
    proto_error e;
    store_batch ref;
    store_batch_init(&ref);
    assert_int_equal(
        proto_decode_batch((const uint8_t *)f->sb.data, first, &f->lim, f->s, &ref, &s2, &e), 0);
    assert_int_equal(ref.len, f->b.len);
    assert_memory_equal(ref.buf, f->b.buf, f->b.len);
    store_batch_free(&ref);
    /* The message alone, nothing after it, is just as complete. */
    assert_int_equal(prefix(f, first, &seq, &len), 1);
    assert_int_equal(len, first);
}

/* Not complete yet: every cut declines, so the framer waits for the rest. */
static void test_truncated(void **state)
{
    fx *f = *state;
    size_t n = batch(f, 1, 5);
    for (size_t cut = 0; cut < n; cut++)
        expect_declined(f, cut);
}

/* Limits only the framer checks: the length and the nesting. */
static void test_framer_limits(void **state)
{
    fx *f = *state;
    size_t n = batch(f, 1, 5);
    uint64_t seq;
    size_t len;
    f->lim.max_msg = n; /* exactly fits */
    assert_int_equal(prefix(f, n, &seq, &len), 1);
    f->lim.max_msg = n - 1; /* proto_frame says TOO_LARGE */
    expect_declined(f, n);
    f->lim.max_msg = 16u << 20;
    f->lim.max_depth = 3; /* message, trades, trade */
    assert_int_equal(prefix(f, n, &seq, &len), 1);
    f->lim.max_depth = 2;
    expect_declined(f, n);
}

/* A skipped value's depth is unknown: decline, so the framer judges it. */
static void test_skipped_values(void **state)
{
    fx *f = *state;
    f->lim.ignore_unknown = 1;
    f->lim.max_depth = 3;
    msgpack_pack_array(&f->pk, 3);
    S(f, "T"), U(f, 1), msgpack_pack_array(&f->pk, 1);
    msgpack_pack_map(&f->pk, 5);
    S(f, "sym"), S(f, "X"), S(f, "ts"), U(f, TS0), S(f, "px"), U(f, 1), S(f, "qty"), U(f, 1);
    S(f, "venue"), msgpack_pack_array(&f->pk, 1), msgpack_pack_array(&f->pk, 0);
    proto_framer fr;
    proto_error e;
    size_t n = 0;
    proto_framer_reset(&fr);
    assert_int_equal(proto_frame(&fr, (const uint8_t *)f->sb.data, f->sb.size, &f->lim, &n, &e),
                     -PROTO_E_TOO_LARGE);
    expect_declined(f, f->sb.size);
    /* Without the skip, the same limits take it in one pass. */
    msgpack_sbuffer_clear(&f->sb);
    size_t m = batch(f, 2, 2);
    uint64_t seq;
    size_t len;
    assert_int_equal(prefix(f, m, &seq, &len), 1);
}

/* Every error, and every message that is not a T, is the framed path's. */
static void test_errors_decline(void **state)
{
    fx *f = *state;
    msgpack_pack_array(&f->pk, 3);
    S(f, "T"), U(f, 1), msgpack_pack_array(&f->pk, 1);
    msgpack_pack_map(&f->pk, 1), S(f, "sym"), U(f, 3); /* WRONG_TYPE */
    expect_declined(f, f->sb.size);
    msgpack_sbuffer_clear(&f->sb);
    msgpack_pack_array(&f->pk, 3);
    S(f, "Q"), U(f, 1), msgpack_pack_map(&f->pk, 0);
    expect_declined(f, f->sb.size);
}

/* A batch declaring its kind: the kind's end is the message's. */
static void test_declared_kind(void **state)
{
    fx *f = *state;
    msgpack_pack_array(&f->pk, 4);
    S(f, "T"), U(f, 3), msgpack_pack_array(&f->pk, 2);
    map_trade(f, "KND", 1), map_trade(f, "KND", 2);
    S(f, "trade");
    size_t n = f->sb.size;
    batch(f, 4, 1);
    uint64_t seq;
    size_t len;
    assert_int_equal(prefix(f, f->sb.size, &seq, &len), 1);
    assert_int_equal(len, n);
    assert_int_equal(f->b.n, 2);
}

/* Random batches (valid, wrong, mutated), cut anywhere or followed by
 * another message: whatever the prefix path says, the framed path agrees. */
static void test_differential(void **state)
{
    fx *f = *state;
    gen g = {&f->pk, 90};
    int taken = 0, declined = 0;
    store_batch ref;
    store_batch_init(&ref);
    for (int iter = 0; iter < 20000; iter++) {
        msgpack_sbuffer_clear(&f->sb);
        g.valid = iter % 3 == 0 ? 100 : iter % 3 == 1 ? 97 : 85;
        f->lim.ignore_unknown = iter % 7 == 0;
        f->lim.max_batch = 10;
        f->lim.max_depth = iter % 11 == 0 ? 3 : 16;
        f->lim.max_msg = iter % 13 == 0 ? 200 : 16u << 20;
        gen_batch(&g, (uint64_t)iter + 1);
        if (chance(50))
            gen_batch(&g, (uint64_t)iter + 2);
        size_t avail = f->sb.size;
        uint8_t *buf = malloc(avail ? avail : 1);
        memcpy(buf, f->sb.data, avail);
        if (iter % 4 == 3 && avail)
            buf[rnd() % avail] = (uint8_t)rnd();
        if (chance(30) && avail)
            avail = rnd() % avail;
        uint64_t s1 = 0, s2 = 0;
        size_t len = 0, n = 0;
        int took = proto_decode_batch_prefix(buf, avail, &f->lim, f->s, &f->b, &s1, &len);
        proto_framer fr;
        proto_error e;
        proto_framer_reset(&fr);
        int frc = proto_frame(&fr, buf, avail, &f->lim, &n, &e);
        if (took) {
            taken++;
            assert_int_equal(frc, PROTO_FRAME_DONE);
            assert_int_equal(len, n);
            assert_int_equal(proto_msg_type(buf, n), PROTO_MSG_T);
            assert_int_equal(proto_decode_batch(buf, n, &f->lim, f->s, &ref, &s2, &e), 0);
            assert_int_equal(s1, s2);
            assert_int_equal(f->b.n, ref.n);
            assert_int_equal(f->b.len, ref.len);
            if (f->b.len)
                assert_memory_equal(f->b.buf, ref.buf, f->b.len);
            if (chance(30) && f->b.n) { /* fix some symbols' kinds */
                assert_int_equal(store_batch_reserve(f->s, &f->b), STORE_OK);
                store_batch_commit(f->s, &f->b);
            }
            store_batch_reset(&ref);
        } else {
            declined++;
            assert_int_equal(f->b.n, 0);
            /* Declined although framed and accepted: only for a limit the
             * prefix path cannot see (a skipped value) — never otherwise. */
            if (frc == PROTO_FRAME_DONE && proto_msg_type(buf, n) == PROTO_MSG_T &&
                proto_decode_batch(buf, n, &f->lim, f->s, &ref, &s2, &e) == 0)
                assert_true(f->lim.ignore_unknown);
            store_batch_reset(&ref);
        }
        store_batch_reset(&f->b);
        free(buf);
    }
    store_batch_free(&ref);
    print_message("prefix differential: %d taken, %d declined\n", taken, declined);
    assert_true(taken > 3000 && declined > 3000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_complete_then_more, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_framer_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skipped_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_decline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_declared_kind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_differential, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
