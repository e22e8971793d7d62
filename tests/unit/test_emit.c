/* test_emit — the JSON writer checked by parsing its output with jansson
 * (strings with every kind of awkward byte, numbers at their extremes,
 * random nestings), the msgpack writer by unpacking with msgpack-c, and the
 * proto_buf helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "expect_abort.h"

#include <jansson.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "emit.h"

/* Output as a NUL-terminated string (the buffer is not). */
static char *text(proto_buf *b)
{
    char *s = malloc(b->len + 1);
    assert_non_null(s);
    memcpy(s, b->data, b->len);
    s[b->len] = 0;
    return s;
}

static json_t *parse(proto_buf *b)
{
    json_error_t jerr;
    json_t *j = json_loadb(b->data, b->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!j) {
        char *s = text(b);
        print_error("jansson: %s at %d: %s\n", jerr.text, jerr.position, s);
        free(s);
    }
    assert_non_null(j);
    return j;
}

/* One string value through the JSON emitter, decoded back by jansson. */
static void check_string(const char *in, size_t inlen, const char *want, size_t wantlen)
{
    proto_buf b = {0};
    emit e;
    emit_json_init(&e, &b);
    e.str(&e, in, inlen);
    assert_false(e.err);
    json_t *j = parse(&b);
    assert_true(json_is_string(j));
    assert_int_equal(json_string_length(j), wantlen);
    assert_memory_equal(json_string_value(j), want, wantlen);
    /* The raw text never carries a control byte. */
    for (size_t i = 0; i < b.len; i++)
        assert_true((unsigned char)b.data[i] >= 0x20);
    json_decref(j);
    proto_buf_free(&b);
}

#define CHECK_STR(in, want) check_string(in, sizeof(in) - 1, want, sizeof(want) - 1)

static void test_json_strings(void **state)
{
    (void)state;
    CHECK_STR("", "");
    CHECK_STR("AAPL", "AAPL");
    CHECK_STR("a\"b\\c/d", "a\"b\\c/d");
    CHECK_STR("\n\r\t\b\f", "\n\r\t\b\f");
    CHECK_STR("\x01\x1f\x7f", "\x01\x1f\x7f");
    CHECK_STR("nul\0in", "nul\0in");
    CHECK_STR("\xe2\x82\xac \xf0\x9d\x84\x9e \xc3\xa9", "\xe2\x82\xac \xf0\x9d\x84\x9e \xc3\xa9");
    CHECK_STR("\xe2\x80\xa8\xe2\x80\xa9", "\xe2\x80\xa8\xe2\x80\xa9");
    /* Invalid UTF-8: each offending byte becomes U+FFFD. */
#define FFFD "\xef\xbf\xbd"
    CHECK_STR("a\xff" "b", "a" FFFD "b");
    CHECK_STR("\xc0\xaf", FFFD FFFD);             /* overlong '/' */
    CHECK_STR("\xed\xa0\x80", FFFD FFFD FFFD);    /* UTF-16 surrogate */
    CHECK_STR("\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD); /* above U+10FFFF */
    CHECK_STR("x\xe2\x82", "x" FFFD FFFD);        /* truncated at the end */
    CHECK_STR("\xe2\x82" "x", FFFD FFFD "x");      /* truncated before ASCII */
    CHECK_STR("\x80\xbf", FFFD FFFD);             /* lone continuation bytes */
    CHECK_STR("\xe0\x9f\xbf", FFFD FFFD FFFD);    /* overlong 3-byte */
    CHECK_STR("\xf0\x8f\xbf\xbf", FFFD FFFD FFFD FFFD); /* overlong 4-byte */
}

static void test_json_numbers(void **state)
{
    (void)state;
    proto_buf b = {0};
    emit e;
    emit_json_init(&e, &b);
    e.array(&e, 18);
    e.i64(&e, INT64_MIN);
    e.i64(&e, INT64_MAX);
    e.u64(&e, UINT64_MAX);
    e.fix(&e, 18725000000LL);
    e.fix(&e, 1);
    e.fix(&e, 0);
    e.fix(&e, INT64_MAX);
    e.fix(&e, 4200000000LL);
    e.dbl(&e, 0.1);
    e.dbl(&e, NAN);
    e.dbl(&e, INFINITY);
    e.dbl(&e, -INFINITY);
    e.dbl(&e, 1e300);
    e.dbl(&e, 5e-324);
    e.dbl(&e, 123456.789);
    e.boolean(&e, 1);
    e.boolean(&e, 0);
    e.nil(&e);
    e.end(&e);
    assert_false(e.err);
    char *s = text(&b);
    assert_string_equal(s, "[-9223372036854775808,9223372036854775807,18446744073709551615,"
                           "187.25,0.00000001,0,92233720368.54775807,42,0.1,null,null,null,"
                           "1e+300,5e-324,123456.789,true,false,null]");
    free(s);
    /* jansson reads it (big integers as reals) and every double round-trips. */
    json_error_t jerr;
    proto_buf b2 = {0};
    double vals[] = {0.1, 1.0 / 3, 1e300, 5e-324, -0.0, 123456.789, 2.5e-8, 9007199254740993.0};
    emit_json_init(&e, &b2);
    e.array(&e, 8);
    for (int i = 0; i < 8; i++)
        e.dbl(&e, vals[i]);
    e.end(&e);
    json_t *j = json_loadb(b2.data, b2.len, 0, &jerr);
    assert_non_null(j);
    for (int i = 0; i < 8; i++) {
        json_t *v = json_array_get(j, (size_t)i);
        assert_true(json_is_number(v));
        assert_true(json_number_value(v) == vals[i]);
    }
    json_decref(j);
    proto_buf_free(&b);
    proto_buf_free(&b2);
}

static void test_json_containers(void **state)
{
    (void)state;
    proto_buf b = {0};
    emit e;
    emit_json_init(&e, &b);
    e.map(&e, 4);
    e.key(&e, "empty_map");
    e.map(&e, 0);
    e.end(&e);
    e.key(&e, "empty_array");
    e.array(&e, 0);
    e.end(&e);
    e.key(&e, "nested");
    e.array(&e, 3);
    e.array(&e, 0);
    e.end(&e);
    e.map(&e, 1);
    e.key(&e, "k\"ey");
    emit_cstr(&e, "v");
    e.end(&e);
    e.i64(&e, -1);
    e.end(&e);
    e.key(&e, "last");
    e.nil(&e);
    e.end(&e);
    assert_false(e.err);
    assert_int_equal(e.depth, 0);
    char *s = text(&b);
    assert_string_equal(s, "{\"empty_map\":{},\"empty_array\":[],\"nested\":[[],{\"k\\\"ey\":\"v\"},-1],"
                           "\"last\":null}");
    free(s);
    proto_buf_free(&b);
}

/* Random trees: the same random choices build a jansson tree and drive the
 * emitter; parsing the emitter's text must give an equal tree. */
static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static json_t *random_value(emit *e, int depth)
{
    unsigned pick = (unsigned)(next_rand() % (depth < 6 ? 8 : 5));
    char buf[16];
    switch (pick) {
    case 0: {
        int64_t v = (int64_t)next_rand() >> (next_rand() % 64);
        e->i64(e, v);
        return json_integer(v);
    }
    case 1: {
        size_t n = next_rand() % 12;
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)(' ' + next_rand() % 95);
        e->str(e, buf, n);
        return json_stringn(buf, n);
    }
    case 2: {
        double d = (double)(int64_t)next_rand() / 1e6;
        if (d == floor(d))
            d += 0.25; /* integral text would read back as a JSON integer */
        e->dbl(e, d);
        return json_real(d);
    }
    case 3:
        e->nil(e);
        return json_null();
    case 4: {
        int v = (int)(next_rand() & 1);
        e->boolean(e, v);
        return json_boolean(v);
    }
    case 5:
    case 6: {
        uint32_t n = (uint32_t)(next_rand() % 5);
        json_t *a = json_array();
        e->array(e, n);
        for (uint32_t i = 0; i < n; i++)
            json_array_append_new(a, random_value(e, depth + 1));
        e->end(e);
        return a;
    }
    default: {
        uint32_t n = (uint32_t)(next_rand() % 5);
        json_t *m = json_object();
        e->map(e, n);
        for (uint32_t i = 0; i < n; i++) {
            char key[16];
            snprintf(key, sizeof key, "k%u", i);
            e->key(e, key);
            json_object_set_new(m, key, random_value(e, depth + 1));
        }
        e->end(e);
        return m;
    }
    }
}

static void test_json_random_trees(void **state)
{
    (void)state;
    for (int round = 0; round < 2000; round++) {
        proto_buf b = {0};
        emit e;
        emit_json_init(&e, &b);
        json_t *want = random_value(&e, 0);
        assert_false(e.err);
        assert_int_equal(e.depth, 0);
        json_t *got = parse(&b);
        if (!json_equal(want, got)) {
            char *s = text(&b);
            print_error("round %d: %s\n", round, s);
            free(s);
            fail();
        }
        json_decref(want);
        json_decref(got);
        proto_buf_free(&b);
    }
}

static void test_json_misuse(void **state)
{
    (void)state;
    proto_buf b = {0};
    emit e;
    emit_json_init(&e, &b);
    e.key(&e, "no map"); /* a key outside a map */
    assert_true(e.err);
    proto_buf_free(&b);
    emit_json_init(&e, &b);
    for (int i = 0; i < 100; i++)
        e.array(&e, 1); /* deeper than the state arrays */
    assert_true(e.err);
    proto_buf_free(&b);
    emit_json_init(&e, &b);
    e.end(&e); /* end without an open container */
    assert_true(e.err);
    proto_buf_free(&b);
}

/* ---- declared container counts (debug builds) ------------------------------ */

/* A miscounted container is a caller bug that corrupts msgpack silently (the
 * reader takes the next value as the missing element), so debug builds
 * assert. Each case runs in a child: it must die of SIGABRT. */
typedef void (*misuse_fn)(emit *e);

typedef struct misuse {
    misuse_fn fn;
    int json;
} misuse;

static void run_misuse(void *ctx)
{
    misuse *m = ctx;
    proto_buf b = {0};
    emit e;
    if (m->json)
        emit_json_init(&e, &b);
    else
        emit_msgpack_init(&e, &b);
    m->fn(&e);
}

static void dies_of_assert(misuse_fn fn, int json)
{
    misuse m = {fn, json};
    expect_abort(run_misuse, &m); /* the count check is a debug-build assertion */
}

static void map_short(emit *e) /* declared 2 pairs, wrote 1 */
{
    e->map(e, 2);
    e->key(e, "a");
    e->i64(e, 1);
    e->end(e);
}

static void map_long(emit *e) /* declared 1 pair, wrote 2 */
{
    e->map(e, 1);
    e->key(e, "a");
    e->i64(e, 1);
    e->key(e, "b");
    e->i64(e, 2);
    e->end(e);
}

static void nested_array_short(emit *e) /* the inner array is short */
{
    e->map(e, 1);
    e->key(e, "xs");
    e->array(e, 3);
    e->u64(e, 1);
    e->nil(e);
    e->end(e);
    e->end(e);
}

static void container_counts_as_one(emit *e) /* an inner map is one element of its array */
{
    e->array(e, 1);
    e->map(e, 0);
    e->end(e);
    e->boolean(e, 1);
    e->end(e);
}

static void test_count_asserted(void **state)
{
    (void)state;
    misuse_fn cases[] = {map_short, map_long, nested_array_short, container_counts_as_one};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int json = 0; json <= 1; json++)
            dies_of_assert(cases[i], json);
}

static void test_msgpack(void **state)
{
    (void)state;
    proto_buf b = {0};
    emit e;
    emit_msgpack_init(&e, &b);
    e.map(&e, 8);
    e.key(&e, "i");
    e.i64(&e, -5);
    e.key(&e, "u");
    e.u64(&e, UINT64_MAX);
    e.key(&e, "f");
    e.fix(&e, 18725000000LL);
    e.key(&e, "d");
    e.dbl(&e, 0.5);
    e.key(&e, "s");
    e.str(&e, "a\0b", 3);
    e.key(&e, "b");
    e.boolean(&e, 1);
    e.key(&e, "n");
    e.nil(&e);
    e.key(&e, "a");
    e.array(&e, 2);
    emit_cstr(&e, "x");
    e.boolean(&e, 0);
    e.end(&e);
    e.end(&e);
    assert_false(e.err);
    assert_int_equal(e.depth, 0);

    msgpack_unpacked u;
    size_t off = 0;
    msgpack_unpacked_init(&u);
    assert_int_equal(msgpack_unpack_next(&u, b.data, b.len, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, b.len);
    msgpack_object o = u.data;
    assert_int_equal(o.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(o.via.map.size, 8);
    msgpack_object_kv *kv = o.via.map.ptr;
    assert_int_equal(kv[0].val.type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    assert_int_equal(kv[0].val.via.i64, -5);
    assert_int_equal(kv[1].val.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_true(kv[1].val.via.u64 == UINT64_MAX);
    assert_int_equal(kv[2].val.type, MSGPACK_OBJECT_FLOAT64);
    assert_true(kv[2].val.via.f64 == 187.25);
    assert_int_equal(kv[3].val.type, MSGPACK_OBJECT_FLOAT64);
    assert_int_equal(kv[4].val.type, MSGPACK_OBJECT_STR);
    assert_int_equal(kv[4].val.via.str.size, 3);
    assert_memory_equal(kv[4].val.via.str.ptr, "a\0b", 3);
    assert_int_equal(kv[5].val.type, MSGPACK_OBJECT_BOOLEAN);
    assert_int_equal(kv[6].val.type, MSGPACK_OBJECT_NIL);
    assert_int_equal(kv[7].val.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(kv[7].val.via.array.size, 2);
    assert_int_equal(kv[0].key.type, MSGPACK_OBJECT_STR);
    assert_memory_equal(kv[7].key.via.str.ptr, "a", 1);
    msgpack_unpacked_destroy(&u);
    proto_buf_free(&b);
}

static void test_appends_not_clears(void **state)
{
    (void)state;
    proto_buf b = {0};
    emit e;
    assert_int_equal(proto_buf_append(&b, "head:", 5), 0);
    emit_json_init(&e, &b);
    e.i64(&e, 7);
    assert_int_equal(b.len, 6);
    assert_memory_equal(b.data, "head:7", 6);
    proto_buf_free(&b);
}

static void test_buf_helpers(void **state)
{
    (void)state;
    proto_buf b = {0};
    assert_int_equal(proto_buf_append(&b, "", 0), 0);
    assert_int_equal(proto_buf_printf(&b, "%d-%s", 42, "x"), 0);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "42-x", 4);
    /* Longer than the small stack buffer printf uses first. */
    char big[3000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(proto_buf_printf(&b, "[%s]", big), 0);
    assert_int_equal(b.len, 4 + 2 + 2999);
    assert_int_equal(b.data[5], 'z');
    assert_int_equal(b.data[b.len - 1], ']');
    for (int i = 0; i < 10000; i++)
        assert_int_equal(proto_buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(b.len, 3005 + 100000);
    assert_true(b.cap >= b.len);
    proto_buf_free(&b);
}

static void test_format_double(void **state)
{
    (void)state;
    char buf[40];
    assert_int_equal(emit_format_double(0.1, buf, sizeof buf), 3);
    assert_string_equal(buf, "0.1");
    emit_format_double(1.0, buf, sizeof buf);
    assert_string_equal(buf, "1");
    emit_format_double(0.00025, buf, sizeof buf);
    assert_string_equal(buf, "0.00025");
    emit_format_double(1.0 / 3, buf, sizeof buf);
    assert_true(strtod(buf, NULL) == 1.0 / 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_strings),      cmocka_unit_test(test_json_numbers),
        cmocka_unit_test(test_json_containers),   cmocka_unit_test(test_json_random_trees),
        cmocka_unit_test(test_json_misuse),       cmocka_unit_test(test_msgpack),
        cmocka_unit_test(test_appends_not_clears), cmocka_unit_test(test_buf_helpers),
        cmocka_unit_test(test_format_double),
        cmocka_unit_test(test_count_asserted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
