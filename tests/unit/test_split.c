/* test_split — a T message cut per partition (proto/split.h): each part is
 * exactly what msgpack-c packs for ["T", seq, [that partition's trades in
 * batch order]] (+ the kind name), whatever the trade form and count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "split.h"

/* The partition of a symbol in these tests: its last byte mod nparts. */
static int32_t last_byte(void *ctx, const char *sym, size_t len)
{
    int32_t n = *(int32_t *)ctx;
    return len ? (int32_t)((unsigned char)sym[len - 1] % (unsigned)n) : 0;
}

typedef struct tr {
    char sym[8];
    int array_form;
    uint64_t ts;
} tr;

static void pack_trade(msgpack_packer *pk, const tr *t)
{
    size_t n = strlen(t->sym);
    if (t->array_form) {
        msgpack_pack_array(pk, 4);
        msgpack_pack_str_with_body(pk, t->sym, n);
        msgpack_pack_uint64(pk, t->ts);
        msgpack_pack_str_with_body(pk, "1.5", 3);
        msgpack_pack_uint64(pk, 7);
        return;
    }
    msgpack_pack_map(pk, 4); /* sym not first: found wherever it is */
    msgpack_pack_str_with_body(pk, "ts", 2);
    msgpack_pack_uint64(pk, t->ts);
    msgpack_pack_str_with_body(pk, "px", 2);
    msgpack_pack_str_with_body(pk, "1.5", 3);
    msgpack_pack_str_with_body(pk, "sym", 3);
    msgpack_pack_str_with_body(pk, t->sym, n);
    msgpack_pack_str_with_body(pk, "qty", 3);
    msgpack_pack_uint64(pk, 7);
}

/* ["T", seq, [trades with part(sym) == only, or all when only < 0]] (+kind). */
static void pack_batch(msgpack_sbuffer *sb, uint64_t seq, const tr *t, size_t n,
                       const char *kind_name, int32_t only, int32_t nparts)
{
    msgpack_packer pk;
    size_t count = 0;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    for (size_t i = 0; i < n; i++)
        count += only < 0 || last_byte(&nparts, t[i].sym, strlen(t[i].sym)) == only;
    msgpack_pack_array(&pk, kind_name ? 4 : 3);
    msgpack_pack_str_with_body(&pk, "T", 1);
    msgpack_pack_uint64(&pk, seq);
    msgpack_pack_array(&pk, (uint32_t)count);
    for (size_t i = 0; i < n; i++)
        if (only < 0 || last_byte(&nparts, t[i].sym, strlen(t[i].sym)) == only)
            pack_trade(&pk, &t[i]);
    if (kind_name)
        msgpack_pack_str_with_body(&pk, kind_name, strlen(kind_name));
}

/* Split a batch of n trades and compare every part with msgpack-c's. */
static void check_split(const tr *t, size_t n, uint64_t seq, const char *kind_name,
                        int32_t nparts)
{
    msgpack_sbuffer whole;
    split_out o;
    proto_error err = {0};
    msgpack_sbuffer_init(&whole);
    pack_batch(&whole, seq, t, n, kind_name, -1, nparts);
    assert_int_equal(split_init(&o, nparts), 0);
    assert_int_equal(split_batch((const uint8_t *)whole.data, whole.size, last_byte, &nparts, &o,
                                 &err), 0);
    size_t total = 0;
    for (int32_t p = 0; p < nparts; p++) {
        msgpack_sbuffer want;
        msgpack_sbuffer_init(&want);
        pack_batch(&want, seq, t, n, kind_name, p, nparts);
        total += o.counts[p];
        if (o.counts[p] == 0) {
            assert_int_equal(o.parts[p].len, 0);
        } else {
            assert_int_equal(o.parts[p].len, want.size);
            assert_memory_equal(o.parts[p].data, want.data, want.size);
        }
        msgpack_sbuffer_destroy(&want);
    }
    assert_int_equal(total, n);
    split_free(&o);
    msgpack_sbuffer_destroy(&whole);
}

static tr *trades(size_t n, int nsyms)
{
    tr *t = calloc(n, sizeof *t);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++) {
        snprintf(t[i].sym, sizeof t[i].sym, "S%c", 'a' + (int)(i * 7 % (size_t)nsyms));
        t[i].array_form = (i % 3) == 0;
        t[i].ts = 1767225600000000000ull + i;
    }
    return t;
}

static void test_forms_and_order(void **state)
{
    (void)state;
    tr *t = trades(40, 5); /* 40 trades: array16 headers where a part has >= 16 */
    check_split(t, 40, 1, NULL, 4);
    check_split(t, 40, 0xfffffffffull, "trade", 3); /* a wide seq, the kind name kept */
    check_split(t, 7, 300, NULL, 1);
    free(t);
}

static void test_large_part(void **state)
{
    (void)state;
    tr *t = trades(70000, 1); /* one part of 70000 trades: an array32 header */
    check_split(t, 70000, 5, NULL, 2);
    free(t);
}

static void test_empty_batch(void **state)
{
    (void)state;
    check_split(NULL, 0, 9, NULL, 4);
}

static void test_refused(void **state)
{
    (void)state;
    int32_t nparts = 2;
    split_out o;
    proto_error err = {0};
    assert_int_equal(split_init(&o, nparts), 0);
    /* ["T", 1, [{"ts": 1}]]: no symbol */
    const uint8_t nosym[] = {0x93, 0xa1, 'T', 0x01, 0x91, 0x81, 0xa2, 't', 's', 0x01};
    assert_int_equal(split_batch(nosym, sizeof nosym, last_byte, &nparts, &o, &err), -1);
    assert_int_equal(err.code, PROTO_E_MISSING_FIELD);
    /* ["Q", 1, []] */
    const uint8_t notT[] = {0x93, 0xa1, 'Q', 0x01, 0x90};
    assert_int_equal(split_batch(notT, sizeof notT, last_byte, &nparts, &o, &err), -1);
    assert_int_equal(err.code, PROTO_E_BAD_MESSAGE);
    /* cut short inside a trade, at every length */
    const uint8_t ok[] = {0x93, 0xa1, 'T', 0x01, 0x91, 0x92, 0xa2, 'S', 'a', 0x05};
    for (size_t n = 0; n < sizeof ok; n++)
        assert_int_equal(split_batch(ok, n, last_byte, &nparts, &o, &err), -1);
    assert_int_equal(split_batch(ok, sizeof ok, last_byte, &nparts, &o, &err), 0);
    assert_int_equal(o.counts[0] + o.counts[1], 1);
    split_free(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms_and_order),
        cmocka_unit_test(test_large_part),
        cmocka_unit_test(test_empty_batch),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
