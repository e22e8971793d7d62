/* test_client_encode — the C client's hand encoder against msgpack-c's
 * reading of it: trades in array form (float and exact fixed-point), every
 * integer width, array headers written in front of a body, fixed-point
 * text, and the spool's CRC-32 (zlib's check value). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"

static msgpack_object unpack(msgpack_unpacked *u, const char *b, size_t len)
{
    size_t off = 0;
    msgpack_unpacked_init(u);
    assert_int_equal(msgpack_unpack_next(u, b, len, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, len); /* exactly one value, nothing left over */
    return u->data;
}

static void assert_str(msgpack_object o, const char *s)
{
    assert_int_equal(o.type, MSGPACK_OBJECT_STR);
    assert_int_equal(o.via.str.size, strlen(s));
    assert_memory_equal(o.via.str.ptr, s, strlen(s));
}

static void test_trade(void **state)
{
    (void)state;
    char buf[SLOTD__TRADE_MAX(40)];
    const char *sym = "AAPL260116C00190000";
    char *end = slotd__enc_trade(buf, sym, strlen(sym), 1767225600000000000LL, -37.63, 100.5, 'S',
                                 UINT64_MAX);
    assert_true(end - buf <= (long)sizeof buf);
    msgpack_unpacked u;
    msgpack_object o = unpack(&u, buf, (size_t)(end - buf));
    assert_int_equal(o.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(o.via.array.size, 6);
    msgpack_object *a = o.via.array.ptr;
    assert_str(a[0], sym);
    assert_int_equal(a[1].via.u64, 1767225600000000000ULL);
    assert_int_equal(a[2].type, MSGPACK_OBJECT_FLOAT64);
    assert_true(a[2].via.f64 == -37.63);
    assert_true(a[3].via.f64 == 100.5);
    assert_str(a[4], "S");
    assert_int_equal(a[5].via.u64, UINT64_MAX);
    msgpack_unpacked_destroy(&u);

    end = slotd__enc_trade_fixed(buf, "X", 1, 5, -3763000000LL, 1, 0, 0);
    o = unpack(&u, buf, (size_t)(end - buf));
    a = o.via.array.ptr;
    assert_str(a[2], "-37.63");
    assert_str(a[3], "0.00000001");
    assert_int_equal(a[4].type, MSGPACK_OBJECT_NIL); /* side unknown */
    assert_int_equal(a[5].via.u64, 0);
    msgpack_unpacked_destroy(&u);
}

static void test_integers(void **state)
{
    (void)state;
    static const int64_t v[] = {0, 1, 127, 128, 255, 256, 65535, 65536, 4294967295LL,
                                4294967296LL, INT64_MAX, -1, -32, -33, -129, INT64_MIN};
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        char buf[16];
        char *end = slotd__enc_int(buf, v[i]);
        msgpack_unpacked u;
        msgpack_object o = unpack(&u, buf, (size_t)(end - buf));
        if (v[i] >= 0) {
            assert_int_equal(o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
            assert_int_equal(o.via.u64, (uint64_t)v[i]);
        } else {
            assert_int_equal(o.type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
            assert_int_equal(o.via.i64, v[i]);
        }
        msgpack_unpacked_destroy(&u);
    }
    /* Strings of every header width. */
    static const size_t lens[] = {0, 31, 32, 255, 256, 65535, 65536};
    static char s[70000], buf[70010];
    memset(s, 'z', sizeof s);
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        char *end = slotd__enc_str(buf, s, lens[i]);
        msgpack_unpacked u;
        msgpack_object o = unpack(&u, buf, (size_t)(end - buf));
        assert_int_equal(o.type, MSGPACK_OBJECT_STR);
        assert_int_equal(o.via.str.size, lens[i]);
        msgpack_unpacked_destroy(&u);
    }
}

static void test_array_header_before(void **state)
{
    (void)state;
    static const uint32_t n[] = {0, 1, 15, 16, 65535, 65536, 100000};
    for (size_t i = 0; i < sizeof n / sizeof *n; i++) {
        static char buf[8 + 100000];
        memset(buf + 8, 0xc0, n[i]); /* n nils */
        char *start = slotd__array_hdr_before(buf + 8, n[i]);
        msgpack_unpacked u;
        msgpack_object o = unpack(&u, start, (size_t)(buf + 8 + n[i] - start));
        assert_int_equal(o.type, MSGPACK_OBJECT_ARRAY);
        assert_int_equal(o.via.array.size, n[i]);
        msgpack_unpacked_destroy(&u);
    }
}

static void test_fixed_text(void **state)
{
    (void)state;
    static const struct {
        int64_t v;
        const char *text;
    } t[] = {{18725000000LL, "187.25"},        {-3763000000LL, "-37.63"},
             {0, "0"},                          {1, "0.00000001"},
             {-1, "-0.00000001"},               {100000000, "1"},
             {INT64_MAX, "92233720368.54775807"}, {INT64_MIN, "-92233720368.54775808"},
             {1050000000, "10.5"}};
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        char buf[32];
        size_t n = slotd__fixed_text(buf, t[i].v);
        buf[n] = '\0';
        assert_string_equal(buf, t[i].text);
    }
}

static void test_crc32(void **state)
{
    (void)state;
    assert_int_equal(slotd__crc32(0, "123456789", 9), 0xCBF43926u); /* the standard check */
    assert_int_equal(slotd__crc32(0, "", 0), 0);
    /* Chaining equals one call (the spool checksums a record in pieces). */
    uint32_t c = slotd__crc32(slotd__crc32(0, "1234", 4), "56789", 5);
    assert_int_equal(c, 0xCBF43926u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trade),      cmocka_unit_test(test_integers),
        cmocka_unit_test(test_array_header_before), cmocka_unit_test(test_fixed_text),
        cmocka_unit_test(test_crc32),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
