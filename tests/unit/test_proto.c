/* test_proto — code tables, limits, message typing, HELLO decoding, and the
 * reply packers round-tripped through msgpack-c's unpacker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <msgpack.h>
#include <string.h>

#include "proto.h"

static void test_code_tables(void **state)
{
    (void)state;
    assert_string_equal(proto_code_name(PROTO_OK), "OK");
    assert_string_equal(proto_code_name(PROTO_E_MALFORMED), "MALFORMED");
    assert_string_equal(proto_code_name(PROTO_E_TOO_MANY_CONNECTIONS), "TOO_MANY_CONNECTIONS");
    assert_string_equal(proto_code_name(PROTO_E_KIND_MISMATCH), "KIND_MISMATCH");
    assert_string_equal(proto_code_name((proto_code)999), "UNKNOWN");
    for (int c = 1; c < PROTO_NCODES; c++) {
        assert_non_null(proto_code_name((proto_code)c));
        assert_true(strlen(proto_code_doc((proto_code)c)) > 10);
        for (int d = 1; d < c; d++)
            assert_string_not_equal(proto_code_name((proto_code)c), proto_code_name((proto_code)d));
    }
}

static void test_limits_default(void **state)
{
    (void)state;
    proto_limits l;
    memset(&l, 0xff, sizeof(l));
    proto_limits_default(&l);
    assert_int_equal(l.max_msg, 16u << 20);
    assert_int_equal(l.max_batch, 100000);
    assert_int_equal(l.max_depth, 16);
    assert_int_equal(l.ignore_unknown, 0);
}

/* Unpack exactly one value from buf[*off..len). */
static msgpack_object unpack_one(msgpack_zone *z, const proto_buf *b, size_t *off)
{
    msgpack_object o;
    assert_true(msgpack_unpack(b->data, b->len, off, z, &o) > 0); /* SUCCESS or EXTRA_BYTES */
    return o;
}

static void assert_str(msgpack_object o, const char *s)
{
    assert_int_equal(o.type, MSGPACK_OBJECT_STR);
    assert_int_equal(o.via.str.size, strlen(s));
    assert_memory_equal(o.via.str.ptr, s, strlen(s));
}

static void test_pack_welcome(void **state)
{
    (void)state;
    proto_buf b = {0};
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    assert_int_equal(proto_pack_welcome(&b, "0.1.0", UINT64_MAX), 0);
    size_t off = 0;
    msgpack_object o = unpack_one(&z, &b, &off);
    assert_int_equal(off, b.len);
    assert_int_equal(o.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(o.via.array.size, 2);
    assert_str(o.via.array.ptr[0], "WELCOME");
    msgpack_object m = o.via.array.ptr[1];
    assert_int_equal(m.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(m.via.map.size, 3);
    assert_str(m.via.map.ptr[0].key, "server");
    assert_str(m.via.map.ptr[0].val, "slotd");
    assert_str(m.via.map.ptr[1].key, "version");
    assert_str(m.via.map.ptr[1].val, "0.1.0");
    assert_str(m.via.map.ptr[2].key, "last_seq");
    assert_int_equal(m.via.map.ptr[2].val.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_true(m.via.map.ptr[2].val.via.u64 == UINT64_MAX);
    assert_int_equal(proto_msg_type((const uint8_t *)b.data, b.len), PROTO_MSG_UNKNOWN);
    msgpack_zone_destroy(&z);
    proto_buf_free(&b);
    assert_null(b.data);
}

static void test_pack_ack_appends(void **state)
{
    (void)state;
    proto_buf b = {0};
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    /* Many replies gathered into one buffer, forcing growth. */
    for (uint64_t i = 0; i < 1000; i++)
        assert_int_equal(proto_pack_ack(&b, i + 1, i * 1000), 0);
    size_t off = 0;
    for (uint64_t i = 0; i < 1000; i++) {
        msgpack_object o = unpack_one(&z, &b, &off);
        assert_int_equal(o.via.array.size, 3);
        assert_str(o.via.array.ptr[0], "ACK");
        assert_true(o.via.array.ptr[1].via.u64 == i + 1);
        assert_true(o.via.array.ptr[2].via.u64 == i * 1000);
    }
    assert_int_equal(off, b.len);
    msgpack_zone_destroy(&z);
    proto_buf_free(&b);
}

static void test_pack_err(void **state)
{
    (void)state;
    proto_buf b = {0};
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    proto_error e = {PROTO_E_BAD_VALUE, 3, "trade 3: px: more than 8 decimals"};
    assert_int_equal(proto_pack_err(&b, 42, &e), 0);
    proto_error e2 = {PROTO_E_MALFORMED, -1, ""};
    memset(e2.msg, 'x', sizeof(e2.msg)); /* unterminated: must not overread */
    assert_int_equal(proto_pack_err(&b, 0, &e2), 0);

    size_t off = 0;
    msgpack_object o = unpack_one(&z, &b, &off);
    assert_int_equal(o.via.array.size, 5);
    assert_str(o.via.array.ptr[0], "ERR");
    assert_true(o.via.array.ptr[1].via.u64 == 42);
    assert_str(o.via.array.ptr[2], "BAD_VALUE");
    assert_str(o.via.array.ptr[3], "trade 3: px: more than 8 decimals");
    assert_int_equal(o.via.array.ptr[4].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(o.via.array.ptr[4].via.u64, 3);

    o = unpack_one(&z, &b, &off);
    assert_str(o.via.array.ptr[2], "MALFORMED");
    assert_int_equal(o.via.array.ptr[3].via.str.size, sizeof(e2.msg));
    assert_int_equal(o.via.array.ptr[4].type, MSGPACK_OBJECT_NIL);
    assert_int_equal(off, b.len);
    msgpack_zone_destroy(&z);
    proto_buf_free(&b);
}

/* proto_error_set: the one formatter of proto_error (decoders, framer,
 * query layer, ingest): code, index and message set together, the message
 * cut to fit and always terminated, -1 returned for `return ...(...)`. */
static void test_error_set(void **state)
{
    proto_error e;
    memset(&e, 'x', sizeof e);
    assert_int_equal(proto_error_set(&e, PROTO_E_BAD_VALUE, 7, "trade %d: %s", 7, "px"), -1);
    assert_int_equal(e.code, PROTO_E_BAD_VALUE);
    assert_int_equal(e.index, 7);
    assert_string_equal(e.msg, "trade 7: px");
    char big[sizeof e.msg * 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(proto_error_set(&e, PROTO_E_MALFORMED, -1, "%s", big), -1);
    assert_int_equal(e.index, -1);
    assert_int_equal(strlen(e.msg), sizeof e.msg - 1);
}

static void test_msg_type(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    struct { const char *type; int n; proto_msg want; } cases[] = {
        {"HELLO", 2, PROTO_MSG_HELLO}, {"T", 3, PROTO_MSG_T},  {"Q", 3, PROTO_MSG_Q},
        {"X", 3, PROTO_MSG_UNKNOWN},   {"HELL", 2, PROTO_MSG_UNKNOWN},
        {"T", 20, PROTO_MSG_T}, /* array16 header */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        msgpack_sbuffer_clear(&sb);
        msgpack_pack_array(&pk, (size_t)cases[i].n);
        msgpack_pack_str_with_body(&pk, cases[i].type, strlen(cases[i].type));
        for (int j = 1; j < cases[i].n; j++)
            msgpack_pack_nil(&pk);
        assert_int_equal(proto_msg_type((uint8_t *)sb.data, sb.size), cases[i].want);
    }
    /* str8 type name, empty array, a map, truncation */
    const uint8_t str8[] = {0x92, 0xd9, 0x01, 'T', 0xc0};
    assert_int_equal(proto_msg_type(str8, sizeof(str8)), PROTO_MSG_T);
    const uint8_t empty[] = {0x90};
    assert_int_equal(proto_msg_type(empty, sizeof(empty)), PROTO_MSG_UNKNOWN);
    const uint8_t map[] = {0x81, 0xa1, 'T', 0xc0};
    assert_int_equal(proto_msg_type(map, sizeof(map)), PROTO_MSG_UNKNOWN);
    const uint8_t cut[] = {0x93, 0xa5, 'H', 'E'};
    assert_int_equal(proto_msg_type(cut, sizeof(cut)), PROTO_MSG_UNKNOWN);
    assert_int_equal(proto_msg_type(NULL, 0), PROTO_MSG_UNKNOWN);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- HELLO -------------------------------------------------------------- */

typedef struct fx {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} fx;

static void S(fx *f, const char *s) { msgpack_pack_str_with_body(&f->pk, s, strlen(s)); }
static void U(fx *f, uint64_t v) { msgpack_pack_uint64(&f->pk, v); }

static int hello(fx *f, proto_hello *h, proto_error *e)
{
    return proto_decode_hello((const uint8_t *)f->sb.data, f->sb.size, h, e);
}

static void test_hello(void **state)
{
    (void)state;
    fx fxs, *f = &fxs;
    msgpack_sbuffer_init(&f->sb);
    msgpack_packer_init(&f->pk, &f->sb, msgpack_sbuffer_write);
    proto_hello h;
    proto_error e;
    msgpack_sbuffer_clear(&f->sb);
    msgpack_pack_array(&f->pk, 2), S(f, "HELLO");
    msgpack_pack_map(&f->pk, 3), S(f, "client"), S(f, "feed-1"), S(f, "token"), S(f, "s3cret");
    S(f, "extra"), msgpack_pack_array(&f->pk, 1), U(f, 1);
    assert_int_equal(hello(f, &h, &e), 0);
    assert_string_equal(h.client, "feed-1");
    assert_string_equal(h.token, "s3cret");
    assert_int_equal(h.has_token, 1);

    msgpack_sbuffer_clear(&f->sb);
    msgpack_pack_array(&f->pk, 2), S(f, "HELLO");
    msgpack_pack_map(&f->pk, 2), S(f, "token"), msgpack_pack_nil(&f->pk), S(f, "client"),
        S(f, "x");
    assert_int_equal(hello(f, &h, &e), 0);
    assert_int_equal(h.has_token, 0);

    struct { int what; proto_code code; } bad[] = {
        {0, PROTO_E_NOT_HELLO}, {1, PROTO_E_BAD_MESSAGE}, {2, PROTO_E_BAD_MESSAGE},
        {3, PROTO_E_BAD_MESSAGE}, {4, PROTO_E_BAD_MESSAGE}, {5, PROTO_E_MALFORMED},
        {6, PROTO_E_NOT_HELLO}, {7, PROTO_E_BAD_MESSAGE}, {8, PROTO_E_UNAUTHORIZED},
    };
    char longname[PROTO_NAME_MAX + 2], longtok[PROTO_TOKEN_MAX + 2];
    memset(longname, 'n', sizeof(longname) - 1), longname[sizeof(longname) - 1] = 0;
    memset(longtok, 't', sizeof(longtok) - 1), longtok[sizeof(longtok) - 1] = 0;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        msgpack_sbuffer_clear(&f->sb);
        switch (bad[i].what) {
        case 0: msgpack_pack_array(&f->pk, 3), S(f, "T"), U(f, 1), msgpack_pack_array(&f->pk, 0);
            break;
        case 1: msgpack_pack_array(&f->pk, 2), S(f, "HELLO"), msgpack_pack_map(&f->pk, 0); break;
        case 2: msgpack_pack_array(&f->pk, 2), S(f, "HELLO"), S(f, "client"); break;
        case 3: msgpack_pack_array(&f->pk, 2), S(f, "HELLO"), msgpack_pack_map(&f->pk, 1);
            S(f, "client"), S(f, longname);
            break;
        case 4: msgpack_pack_array(&f->pk, 2), S(f, "HELLO"), msgpack_pack_map(&f->pk, 1);
            S(f, "client"), msgpack_pack_str_with_body(&f->pk, "a\0b", 3);
            break;
        case 5: msgpack_pack_array(&f->pk, 2), S(f, "HELLO"), msgpack_pack_map(&f->pk, 1);
            S(f, "client");
            break; /* truncated */
        case 6: msgpack_pack_map(&f->pk, 0); break;
        case 7: msgpack_pack_array(&f->pk, 3), S(f, "HELLO"), msgpack_pack_map(&f->pk, 0),
            msgpack_pack_nil(&f->pk);
            break;
        case 8: msgpack_pack_array(&f->pk, 2), S(f, "HELLO"), msgpack_pack_map(&f->pk, 2);
            S(f, "client"), S(f, "c"), S(f, "token"), S(f, longtok);
            break;
        }
        e.code = PROTO_OK;
        assert_int_equal(hello(f, &h, &e), -1);
        assert_int_equal(e.code, bad[i].code);
        assert_int_equal(e.index, -1);
    }
    msgpack_sbuffer_destroy(&f->sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_code_tables), cmocka_unit_test(test_limits_default),
        cmocka_unit_test(test_pack_welcome), cmocka_unit_test(test_pack_ack_appends),
        cmocka_unit_test(test_pack_err),     cmocka_unit_test(test_msg_type),
        cmocka_unit_test(test_hello),
        cmocka_unit_test(test_error_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
