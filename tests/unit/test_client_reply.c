/* test_client_reply — the C client's reply parser and error vocabulary:
 * PROTOCOL.md's example bytes, replies split at every byte, malformed
 * replies refused, each ERR code's class (docs/clients.md table), the
 * field read from a record error's message, slotd_strerror. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"

/* Feeds bytes to a reader, n at a time; the replies it gives, up to max. */
static int feed(const unsigned char *b, size_t len, size_t step, slotd__reply *out, int max)
{
    slotd__reader rd;
    slotd__reader_init(&rd);
    int got = 0;
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step, cap;
        char *space = slotd__reader_space(&rd, n, &cap);
        assert_non_null(space);
        assert_true(cap >= n);
        memcpy(space, b + off, n);
        slotd__reader_commit(&rd, n);
        int rc;
        while (got < max && (rc = slotd__reader_next(&rd, &out[got])) != 0) {
            if (rc < 0) {
                slotd__reader_destroy(&rd);
                return rc;
            }
            got++;
        }
    }
    slotd__reader_destroy(&rd);
    return got;
}

static void test_protocol_examples(void **state)
{
    (void)state;
    /* PROTOCOL.md 3.6: ["ERR", 44, "BAD_VALUE", "trade 3: px: more than 8 decimals", 3],
     * then ["ACK", 42, 1], then 2.1's WELCOME with last_seq 41. */
    static const unsigned char b[] = {
        0x95, 0xa3, 0x45, 0x52, 0x52, 0x2c, 0xa9, 0x42, 0x41, 0x44, 0x5f, 0x56, 0x41, 0x4c, 0x55,
        0x45, 0xd9, 0x21, 0x74, 0x72, 0x61, 0x64, 0x65, 0x20, 0x33, 0x3a, 0x20, 0x70, 0x78, 0x3a,
        0x20, 0x6d, 0x6f, 0x72, 0x65, 0x20, 0x74, 0x68, 0x61, 0x6e, 0x20, 0x38, 0x20, 0x64, 0x65,
        0x63, 0x69, 0x6d, 0x61, 0x6c, 0x73, 0x03, 0x93, 0xa3, 0x41, 0x43, 0x4b, 0x2a, 0x01, 0x92,
        0xa7, 0x57, 0x45, 0x4c, 0x43, 0x4f, 0x4d, 0x45, 0x83, 0xa6, 0x73, 0x65, 0x72, 0x76, 0x65,
        0x72, 0xa5, 0x73, 0x6c, 0x6f, 0x74, 0x64, 0xa7, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e,
        0xa5, 0x30, 0x2e, 0x31, 0x2e, 0x30, 0xa8, 0x6c, 0x61, 0x73, 0x74, 0x5f, 0x73, 0x65, 0x71,
        0x29};
    for (size_t step = 1; step <= sizeof b; step++) { /* every split gives the same replies */
        slotd__reply r[4];
        assert_int_equal(feed(b, sizeof b, step, r, 4), 3);
        assert_int_equal(r[0].type, SLOTD__R_ERR);
        assert_int_equal(r[0].seq, 44);
        assert_string_equal(r[0].code, "BAD_VALUE");
        assert_string_equal(r[0].message, "trade 3: px: more than 8 decimals");
        assert_int_equal(r[0].index, 3);
        assert_int_equal(r[1].type, SLOTD__R_ACK);
        assert_int_equal(r[1].seq, 42);
        assert_int_equal(r[1].n, 1);
        assert_int_equal(r[2].type, SLOTD__R_WELCOME);
        assert_int_equal(r[2].seq, 41);
    }
}

/* One value packed by msgpack-c, parsed. */
static int parse_packed(void (*pack)(msgpack_packer *), slotd__reply *r)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack(&pk);
    int rc = feed((const unsigned char *)sb.data, sb.size, sb.size, r, 1);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static void str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

static void ack_seq_str(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 3);
    str(pk, "ACK");
    str(pk, "1");
    msgpack_pack_uint64(pk, 1);
}
static void ack_short(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 2);
    str(pk, "ACK");
    msgpack_pack_uint64(pk, 1);
}
static void not_array(msgpack_packer *pk)
{
    str(pk, "ACK");
}
static void empty_array(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 0);
}
static void err_no_code(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 5);
    str(pk, "ERR");
    msgpack_pack_uint64(pk, 3);
    msgpack_pack_nil(pk);
    str(pk, "m");
    msgpack_pack_nil(pk);
}
static void welcome_no_seq(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 2);
    str(pk, "WELCOME");
    msgpack_pack_map(pk, 1);
    str(pk, "server");
    str(pk, "slotd");
}
static void welcome_neg_seq(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 2);
    str(pk, "WELCOME");
    msgpack_pack_map(pk, 1);
    str(pk, "last_seq");
    msgpack_pack_int64(pk, -1);
}
static void first_not_str(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_uint64(pk, 7);
}
static void query_result(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 3);
    str(pk, "R");
    msgpack_pack_uint64(pk, 1);
    msgpack_pack_map(pk, 0);
}
static void err_long(msgpack_packer *pk)
{
    char code[100], msg[600];
    memset(code, 'C', sizeof code);
    memset(msg, 'm', sizeof msg);
    msgpack_pack_array(pk, 5);
    str(pk, "ERR");
    msgpack_pack_uint64(pk, 9);
    msgpack_pack_str_with_body(pk, code, sizeof code);
    msgpack_pack_str_with_body(pk, msg, sizeof msg);
    msgpack_pack_uint64(pk, UINT64_MAX); /* an index past int64: nil */
}

static void test_malformed_refused(void **state)
{
    (void)state;
    void (*bad[])(msgpack_packer *) = {ack_seq_str, ack_short, not_array, empty_array,
                                       err_no_code, welcome_no_seq, welcome_neg_seq, first_not_str};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        slotd__reply r;
        assert_int_equal(parse_packed(bad[i], &r), SLOTD_EPROTOCOL);
        assert_non_null(strstr(r.message, "unexpected reply"));
    }
    slotd__reply r;
    assert_int_equal(parse_packed(query_result, &r), 1);
    assert_int_equal(r.type, SLOTD__R_OTHER);
    assert_int_equal(parse_packed(err_long, &r), 1); /* cut to fit, terminated */
    assert_int_equal(strlen(r.code), sizeof r.code - 1);
    assert_int_equal(strlen(r.message), sizeof r.message - 1);
    assert_int_equal(r.index, -1);
    /* Declared lengths past the limit are refused from the header alone,
     * before any memory is taken for them. */
    static const unsigned char huge_arr[] = {0x92, 0xa3, 'A', 'C', 'K', 0xdd, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(feed(huge_arr, sizeof huge_arr, 1, &r, 1), SLOTD_EPROTOCOL);
    static const unsigned char huge_str[] = {0x92, 0xa3, 'E', 'R', 'R', 0xdb, 0x7f, 0xff, 0xff, 0xff};
    assert_int_equal(feed(huge_str, sizeof huge_str, 1, &r, 1), SLOTD_EPROTOCOL);
    /* Nesting past the depth limit. */
    unsigned char deep[40];
    memset(deep, 0x91, sizeof deep);
    assert_int_equal(feed(deep, sizeof deep, 3, &r, 1), SLOTD_EPROTOCOL);
    /* An int64-encoded non-negative seq is the same number. */
    static const unsigned char ack64[] = {0x93, 0xa3, 'A', 'C', 'K', 0xd3, 0, 0, 0, 0, 0, 0, 0, 9, 0xd0, 0x05};
    assert_int_equal(feed(ack64, sizeof ack64, 2, &r, 1), 1);
    assert_int_equal(r.seq, 9);
    assert_int_equal(r.n, 5);
    /* 0xc1 is never valid msgpack: the stream cannot go on. */
    static const unsigned char c1[] = {0x93, 0xa3, 'A', 'C', 'K', 0xc1};
    assert_int_equal(feed(c1, sizeof c1, 1, &r, 1), SLOTD_EPROTOCOL);
}

static void test_code_classes(void **state)
{
    (void)state;
    static const struct {
        const char *code;
        int seq0, cls, rc;
    } t[] = {
        {"BLOCKED", 0, SLOTD__C_BLOCKED, 0},
        {"STORE_FULL", 0, SLOTD__C_TRANSIENT, 0},
        {"JOURNAL", 0, SLOTD__C_TRANSIENT, 0},
        {"NOT_READY", 0, SLOTD__C_TRANSIENT, 0},
        {"BAD_VALUE", 0, SLOTD__C_PERMANENT, 0},
        {"UNKNOWN_FIELD", 0, SLOTD__C_PERMANENT, 0},
        {"KIND_MISMATCH", 0, SLOTD__C_PERMANENT, 0},
        {"SYMBOL_LIMIT", 0, SLOTD__C_PERMANENT, 0},
        {"TOO_LARGE", 0, SLOTD__C_PERMANENT, 0}, /* trades per batch */
        {"SOMETHING_NEW", 0, SLOTD__C_PERMANENT, 0},
        {"BAD_MESSAGE", 0, SLOTD__C_FATAL, SLOTD_EPROTOCOL},
        {"UNAUTHORIZED", 1, SLOTD__C_FATAL, SLOTD_EUNAUTHORIZED},
        {"FENCED", 1, SLOTD__C_FATAL, SLOTD_EFENCED},
        {"NOT_READY", 1, SLOTD__C_RETRY_CONN, 0},
        {"TOO_MANY_CONNECTIONS", 1, SLOTD__C_RETRY_CONN, 0},
        {"TOO_MANY_CLIENTS", 1, SLOTD__C_RETRY_CONN, 0},
        {"IDLE_TIMEOUT", 1, SLOTD__C_RETRY_CONN, 0},
        {"MALFORMED", 1, SLOTD__C_FATAL, SLOTD_EPROTOCOL},
        {"TOO_LARGE", 1, SLOTD__C_FATAL, SLOTD_EPROTOCOL}, /* message size: closes */
        {"NOT_HELLO", 1, SLOTD__C_FATAL, SLOTD_EPROTOCOL},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        int rc = 12345;
        assert_int_equal(slotd__code_class(t[i].code, t[i].seq0, &rc), t[i].cls);
        assert_int_equal(rc, t[i].rc);
    }
}

static void test_error_field(void **state)
{
    (void)state;
    char f[64];
    slotd__error_field("trade 3: px: more than 8 decimals", f, sizeof f);
    assert_string_equal(f, "px");
    slotd__error_field("trade 12345: option_right: bad: value", f, sizeof f);
    assert_string_equal(f, "option_right");
    const char *none[] = {"message larger than the limit", "trade x: px: no index", "trade 3 px: y",
                          "trade 3: no second colon", "trade 3: : empty", ""};
    for (size_t i = 0; i < sizeof none / sizeof *none; i++) {
        strcpy(f, "stale");
        slotd__error_field(none[i], f, sizeof f);
        assert_string_equal(f, "");
    }
    char small[4];
    slotd__error_field("trade 1: strike: x", small, sizeof small); /* cut to fit */
    assert_string_equal(small, "str");
}

static void test_strerror(void **state)
{
    (void)state;
#define CODE(name, value, text) name,
    static const int codes[] = {SLOTD_ERRORS(CODE)};
#undef CODE
    size_t n = sizeof codes / sizeof *codes;
    for (size_t i = 0; i < n; i++) {
        assert_true(codes[i] < -4095); /* apart from -errno and libuv's codes */
        assert_true(strlen(slotd_strerror(codes[i])) > 0);
        assert_string_not_equal(slotd_strerror(codes[i]), "unknown error");
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(codes[i], codes[j]);
            assert_string_not_equal(slotd_strerror(codes[i]), slotd_strerror(codes[j]));
        }
    }
    assert_string_equal(slotd_strerror(-1), "unknown error");
    assert_string_equal(slotd_strerror(-4999), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_protocol_examples), cmocka_unit_test(test_malformed_refused),
        cmocka_unit_test(test_code_classes),      cmocka_unit_test(test_error_field),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
