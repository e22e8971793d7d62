/* test_frame — the incremental msgpack framer: every format, piecewise
 * feeding, limits from headers alone, and garbage against msgpack-c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

static proto_limits lim_default(void)
{
    proto_limits l;
    proto_limits_default(&l);
    return l;
}

/* One-shot framing of buf; returns the proto_frame result. */
static int frame_all(const uint8_t *buf, size_t len, const proto_limits *l, size_t *n,
                     proto_error *e)
{
    proto_framer f;
    proto_framer_reset(&f);
    return proto_frame(&f, buf, len, l, n, e);
}

/* Feed buf in pieces of `step` bytes (0 = random 1..64), each call seeing
 * the message from its first byte. Copies into an exact-size heap buffer
 * per call (while small) so ASan catches a read past what has "arrived". */
static int frame_pieces(const uint8_t *buf, size_t len, const proto_limits *l, size_t step,
                        size_t *n, proto_error *e)
{
    proto_framer f;
    proto_framer_reset(&f);
    size_t have = 0;
    int rc = PROTO_FRAME_MORE;
    while (have < len) {
        size_t k = step ? step : (size_t)(rand() % 64) + 1;
        have = have + k > len ? len : have + k;
        if (have <= 8192) {
            uint8_t *copy = malloc(have);
            memcpy(copy, buf, have);
            rc = proto_frame(&f, copy, have, l, n, e);
            free(copy);
        } else {
            rc = proto_frame(&f, buf, have, l, n, e);
        }
        if (rc != PROTO_FRAME_MORE)
            break;
    }
    return rc;
}

/* A message using every msgpack format, built partly by hand. */
static size_t build_all_formats(msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    static char big[70000];
    memset(big, 'a', sizeof(big));
    msgpack_pack_array(&pk, 40);
    msgpack_pack_fix_uint8(&pk, 5);       /* uint8 (cc) */
    msgpack_pack_int(&pk, 5);             /* positive fixint */
    msgpack_pack_int(&pk, -5);            /* negative fixint */
    msgpack_pack_nil(&pk);
    msgpack_pack_true(&pk);
    msgpack_pack_false(&pk);
    msgpack_pack_float(&pk, 1.5f);
    msgpack_pack_double(&pk, 2.5);
    msgpack_pack_fix_uint16(&pk, 1);
    msgpack_pack_fix_uint32(&pk, 1);
    msgpack_pack_fix_uint64(&pk, 1);
    msgpack_pack_fix_int8(&pk, -1);
    msgpack_pack_fix_int16(&pk, -1);
    msgpack_pack_fix_int32(&pk, -1);
    msgpack_pack_fix_int64(&pk, -1);
    msgpack_pack_str_with_body(&pk, "abc", 3);      /* fixstr */
    msgpack_pack_str_with_body(&pk, big, 40);       /* str8 */
    msgpack_pack_str_with_body(&pk, big, 300);      /* str16 */
    msgpack_pack_str_with_body(&pk, big, 70000);    /* str32 */
    msgpack_pack_bin_with_body(&pk, big, 10);       /* bin8 */
    msgpack_pack_bin_with_body(&pk, big, 300);      /* bin16 */
    msgpack_pack_bin_with_body(&pk, big, 70000);    /* bin32 */
    msgpack_pack_ext_with_body(&pk, big, 1, 5);     /* fixext1 */
    msgpack_pack_ext_with_body(&pk, big, 2, 5);     /* fixext2 */
    msgpack_pack_ext_with_body(&pk, big, 4, -1);    /* fixext4 */
    msgpack_pack_ext_with_body(&pk, big, 8, -1);    /* fixext8 */
    msgpack_pack_ext_with_body(&pk, big, 16, 5);    /* fixext16 */
    msgpack_pack_ext_with_body(&pk, big, 12, -1);   /* ext8 */
    msgpack_pack_ext_with_body(&pk, big, 300, 7);   /* ext16 */
    msgpack_pack_ext_with_body(&pk, big, 70000, 7); /* ext32 */
    msgpack_pack_array(&pk, 0);                     /* empty fixarray */
    msgpack_pack_map(&pk, 0);                       /* empty fixmap */
    msgpack_pack_array(&pk, 20);                    /* array16 */
    for (int i = 0; i < 20; i++)
        msgpack_pack_int(&pk, i);
    msgpack_pack_map(&pk, 17); /* map16 */
    for (int i = 0; i < 17; i++) {
        msgpack_pack_int(&pk, i);
        msgpack_pack_array(&pk, 1);
        msgpack_pack_nil(&pk);
    }
    /* array32 and map32 by hand (msgpack-c picks the shortest form) */
    const uint8_t a32[] = {0xdd, 0, 0, 0, 2, 0x01, 0x02};
    msgpack_sbuffer_write(sb, (const char *)a32, sizeof(a32));
    const uint8_t m32[] = {0xdf, 0, 0, 0, 1, 0xa1, 'k', 0xde, 0, 1, 0x01, 0xc0};
    msgpack_sbuffer_write(sb, (const char *)m32, sizeof(m32));
    /* str8 with zero length, bin8 zero, ext8 zero, array16 zero, map32 zero */
    const uint8_t zeros[] = {0xd9, 0, 0xc4, 0, 0xc7, 0, 1, 0xdc, 0, 0, 0xdf, 0, 0, 0, 0};
    msgpack_sbuffer_write(sb, (const char *)zeros, sizeof(zeros));
    /* fixmap with a fixext key */
    const uint8_t fm[] = {0x81, 0xd4, 1, 2, 0x90};
    msgpack_sbuffer_write(sb, (const char *)fm, sizeof(fm));
    return sb->size;
}

static void test_every_format(void **state)
{
    (void)state;
    proto_limits l = lim_default();
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    size_t total = build_all_formats(&sb);
    msgpack_zone z;
    msgpack_zone_init(&z, 4096);
    msgpack_object o;
    size_t moff = 0;
    /* Fix the declared element count to what we wrote. */
    int count = 0;
    {
        /* count values after the header by unpacking them one by one */
        size_t p = 3; /* array16 header: 0xdc nn nn */
        assert_int_equal((uint8_t)sb.data[0], 0xdc);
        while (p < total) {
            assert_true(msgpack_unpack(sb.data, total, &p, &z, &o) > 0);
            count++;
        }
        sb.data[1] = (char)(count >> 8);
        sb.data[2] = (char)count;
    }
    assert_int_equal(msgpack_unpack(sb.data, total, &moff, &z, &o), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(moff, total);

    size_t n = 0;
    proto_error e;
    assert_int_equal(frame_all((uint8_t *)sb.data, total, &l, &n, &e), PROTO_FRAME_DONE);
    assert_int_equal(n, total);

    /* Byte by byte, 7 at a time, and random pieces: the same answer. */
    size_t steps[] = {1, 7, 4096, 0};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        n = 0;
        assert_int_equal(frame_pieces((uint8_t *)sb.data, total, &l, steps[i], &n, &e),
                         PROTO_FRAME_DONE);
        assert_int_equal(n, total);
    }
    /* Every strict prefix is MORE (sampled: all for the first 2000 bytes). */
    for (size_t k = 0; k < total; k += k < 2000 ? 1 : 997)
        assert_int_equal(frame_all((uint8_t *)sb.data, k, &l, &n, &e), PROTO_FRAME_MORE);

    /* Trailing bytes of the next message are not part of this one. */
    msgpack_sbuffer_write(&sb, "\x91\xc0", 2);
    assert_int_equal(frame_all((uint8_t *)sb.data, sb.size, &l, &n, &e), PROTO_FRAME_DONE);
    assert_int_equal(n, total);
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&sb);
}

static void test_scalars_top_level(void **state)
{
    (void)state;
    proto_limits l = lim_default();
    struct { const char *b; size_t len; } v[] = {
        {"\x00", 1}, {"\x7f", 1}, {"\xe0", 1}, {"\xc0", 1}, {"\xc2", 1},
        {"\xcc\x01", 2}, {"\xcd\x01\x02", 3}, {"\xce\0\0\0\1", 5},
        {"\xcf\0\0\0\0\0\0\0\1", 9}, {"\xd3\0\0\0\0\0\0\0\1", 9},
        {"\xca\0\0\0\0", 5}, {"\xcb\0\0\0\0\0\0\0\0", 9}, {"\xa0", 1},
        {"\xd6\xff\0\0\0\0", 6}, {"\x80", 1}, {"\x90", 1},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t n = 0;
        proto_error e;
        assert_int_equal(frame_all((const uint8_t *)v[i].b, v[i].len, &l, &n, &e),
                         PROTO_FRAME_DONE);
        assert_int_equal(n, v[i].len);
        if (v[i].len > 1)
            assert_int_equal(frame_all((const uint8_t *)v[i].b, v[i].len - 1, &l, &n, &e),
                             PROTO_FRAME_MORE);
    }
}

static void test_back_to_back(void **state)
{
    (void)state;
    proto_limits l = lim_default();
    const uint8_t s[] = {0x93, 0xa1, 'T', 0x01, 0x90, 0x92, 0xa1, 'Q', 0x80, 0xc3};
    size_t pos = 0, n;
    size_t want[] = {5, 4, 1};
    proto_error e;
    proto_framer f;
    proto_framer_reset(&f);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(proto_frame(&f, s + pos, sizeof(s) - pos, &l, &n, &e), PROTO_FRAME_DONE);
        assert_int_equal(n, want[i]);
        pos += n; /* the framer resets itself after DONE */
    }
    assert_int_equal(pos, sizeof(s));
}

static void test_huge_declarations(void **state)
{
    (void)state;
    proto_limits l = lim_default();
    /* Only the header has arrived; each must be refused now, not waited on. */
    const struct { const uint8_t b[6]; size_t len; } v[] = {
        {{0xdb, 0xff, 0xff, 0xff, 0xff}, 5},       /* str32 4 GiB */
        {{0xc6, 0xff, 0xff, 0xff, 0xff}, 5},       /* bin32 */
        {{0xc9, 0xff, 0xff, 0xff, 0xff, 0x01}, 6}, /* ext32 */
        {{0xdd, 0xff, 0xff, 0xff, 0xff}, 5},       /* array32 */
        {{0xdf, 0x80, 0x00, 0x00, 0x00}, 5},       /* map32: 2^31 pairs */
        {{0xdb, 0x01, 0x00, 0x00, 0x00}, 5},       /* str32 of exactly 16 MiB */
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t n;
        proto_error e;
        assert_int_equal(frame_all(v[i].b, v[i].len, &l, &n, &e), -PROTO_E_TOO_LARGE);
        assert_int_equal(e.code, PROTO_E_TOO_LARGE);
        assert_int_equal(e.index, -1);
        assert_true(strlen(e.msg) > 0);
    }
    /* An ext's length is judged before its type byte arrives. */
    const uint8_t ext32_cut[] = {0xc9, 0xff, 0xff, 0xff, 0xff};
    size_t n0;
    proto_error e0;
    assert_int_equal(frame_all(ext32_cut, sizeof(ext32_cut), &l, &n0, &e0), -PROTO_E_TOO_LARGE);
    const uint8_t ext8_cut[] = {0xc7, 0x10};
    assert_int_equal(frame_all(ext8_cut, sizeof(ext8_cut), &l, &n0, &e0), PROTO_FRAME_MORE);
    /* Nested: the huge string is inside an array, after other values. */
    const uint8_t nested[] = {0x93, 0xa1, 'T', 0x01, 0xdb, 0xff, 0xff, 0xff, 0xf0};
    size_t n;
    proto_error e;
    assert_int_equal(frame_all(nested, sizeof(nested), &l, &n, &e), -PROTO_E_TOO_LARGE);
    /* The largest string that fits is waited for, not refused. */
    uint8_t fits[5] = {0xdb};
    uint32_t body = (uint32_t)(l.max_msg - 5);
    fits[1] = (uint8_t)(body >> 24), fits[2] = (uint8_t)(body >> 16);
    fits[3] = (uint8_t)(body >> 8), fits[4] = (uint8_t)body;
    assert_int_equal(frame_all(fits, 5, &l, &n, &e), PROTO_FRAME_MORE);
    /* A small limit: array16 with more elements than bytes left. */
    l.max_msg = 100;
    const uint8_t a16[] = {0xdc, 0x00, 0x64};
    assert_int_equal(frame_all(a16, sizeof(a16), &l, &n, &e), -PROTO_E_TOO_LARGE);
}

static void test_message_too_long(void **state)
{
    (void)state;
    proto_limits l = lim_default();
    l.max_msg = 1000;
    /* 20 strings of 60 bytes: each fits, the whole does not. */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char s[60];
    memset(s, 'x', sizeof(s));
    msgpack_pack_array(&pk, 20);
    for (int i = 0; i < 20; i++)
        msgpack_pack_str_with_body(&pk, s, sizeof(s));
    size_t n;
    proto_error e;
    assert_int_equal(frame_all((uint8_t *)sb.data, sb.size, &l, &n, &e), -PROTO_E_TOO_LARGE);
    assert_int_equal(frame_pieces((uint8_t *)sb.data, sb.size, &l, 1, &n, &e),
                     -PROTO_E_TOO_LARGE);
    /* Exactly at the limit is fine. */
    l.max_msg = sb.size;
    assert_int_equal(frame_all((uint8_t *)sb.data, sb.size, &l, &n, &e), PROTO_FRAME_DONE);
    l.max_msg = sb.size - 1;
    assert_int_equal(frame_all((uint8_t *)sb.data, sb.size, &l, &n, &e), -PROTO_E_TOO_LARGE);
    msgpack_sbuffer_destroy(&sb);
}

static void test_depth(void **state)
{
    (void)state;
    proto_limits l = lim_default();
    uint8_t buf[64];
    size_t n;
    proto_error e;
    for (int d = 1; d <= 40; d++) {
        for (int i = 0; i < d; i++)
            buf[i] = 0x91;
        buf[d] = 0xc0;
        int rc = frame_all(buf, (size_t)d + 1, &l, &n, &e);
        if (d <= 16) {
            assert_int_equal(rc, PROTO_FRAME_DONE);
            assert_int_equal(n, (size_t)d + 1);
        } else {
            assert_int_equal(rc, -PROTO_E_TOO_LARGE);
            assert_non_null(strstr(e.msg, "nesting"));
        }
        /* With an empty innermost container instead of nil. */
        buf[d - 1] = 0x90;
        rc = frame_all(buf, (size_t)d, &l, &n, &e);
        assert_int_equal(rc, d <= 16 ? PROTO_FRAME_DONE : -PROTO_E_TOO_LARGE);
    }
    /* A limit beyond the framer's own 32 levels is clamped, not overrun. */
    l.max_depth = 1000;
    for (int i = 0; i < 40; i++)
        buf[i] = 0x81, buf[40] = 0x01;
    assert_int_equal(frame_all(buf, 41, &l, &n, &e), -PROTO_E_TOO_LARGE);
    /* Maps count as levels too: {0: {0: {...}}} */
    l.max_depth = 2;
    const uint8_t maps[] = {0x81, 0x00, 0x81, 0x00, 0x81, 0x00, 0x00};
    assert_int_equal(frame_all(maps, sizeof(maps), &l, &n, &e), -PROTO_E_TOO_LARGE);
    const uint8_t maps2[] = {0x81, 0x00, 0x81, 0x00, 0x00};
    assert_int_equal(frame_all(maps2, sizeof(maps2), &l, &n, &e), PROTO_FRAME_DONE);
}

/* Each TOO_LARGE message names the limit, its value and its flag, not
 * the value that happened to hit it: a 6-element trade near the end of a
 * too-long message is not "a container declares 6 elements". */
static void expect_msg(const uint8_t *b, size_t len, const proto_limits *l, const char *a,
                       const char *c)
{
    size_t n;
    proto_error e;
    assert_int_equal(frame_all(b, len, l, &n, &e), -PROTO_E_TOO_LARGE);
    if (!strstr(e.msg, a) || !strstr(e.msg, c))
        fail_msg("message \"%s\" lacks \"%s\" or \"%s\"", e.msg, a, c);
}

static void test_limit_messages(void **state)
{
    (void)state;
    proto_limits l = lim_default();
    l.max_msg = 100;
    uint8_t b[128];
    /* An array of 6 nils starting at byte 97 of a 100-byte budget. */
    b[0] = 0xdc, b[1] = 0x00, b[2] = 0x02;      /* array16 of 2 */
    b[3] = 0xc4, b[4] = 91;                     /* bin8 of 91: bytes 5..95 */
    memset(b + 5, 0, 91);
    b[96] = 0x96;                               /* the second element: 6 elements */
    expect_msg(b, 97, &l, "100-byte", "--max-message");
    b[96] = 0xa8;                               /* ... or an 8-byte string */
    expect_msg(b, 97, &l, "100-byte", "--max-message");
    const uint8_t str32[] = {0xdb, 0xff, 0xff, 0xff, 0xff};
    expect_msg(str32, sizeof str32, &l, "100-byte", "--max-message");
    uint8_t deep[20];
    memset(deep, 0x91, sizeof deep);
    l = lim_default();
    l.max_depth = 6;
    expect_msg(deep, sizeof deep, &l, "6", "--max-depth");
}

static void test_malformed(void **state)
{
    (void)state;
    proto_limits l = lim_default();
    size_t n;
    proto_error e;
    const uint8_t c1[] = {0xc1};
    assert_int_equal(frame_all(c1, 1, &l, &n, &e), -PROTO_E_MALFORMED);
    assert_int_equal(e.code, PROTO_E_MALFORMED);
    const uint8_t inner[] = {0x93, 0xa1, 'T', 0xc1, 0x90};
    assert_int_equal(frame_all(inner, sizeof(inner), &l, &n, &e), -PROTO_E_MALFORMED);
    assert_non_null(strstr(e.msg, "offset 3"));
    /* Byte-by-byte reaches the same verdict. */
    assert_int_equal(frame_pieces(inner, sizeof(inner), &l, 1, &n, &e), -PROTO_E_MALFORMED);
    /* The bytes after a complete message are not examined. */
    const uint8_t after[] = {0x90, 0xc1};
    assert_int_equal(frame_all(after, sizeof(after), &l, &n, &e), PROTO_FRAME_DONE);
    assert_int_equal(n, 1);
}

static void test_resumes_without_rescan(void **state)
{
    (void)state;
    /* A big batch fed 64 KiB at a time: off only moves forward and the
     * total bytes examined stay near the message size. We can't count
     * reads directly, so check the state is monotonic and the end is right. */
    proto_limits l = lim_default();
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, "T", 1);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_array(&pk, 100000);
    for (int i = 0; i < 100000; i++) {
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "sym", 3);
        msgpack_pack_str_with_body(&pk, "SYM0001", 7);
        msgpack_pack_str_with_body(&pk, "px", 2);
        msgpack_pack_double(&pk, 100.25 + i);
    }
    proto_framer f;
    proto_framer_reset(&f);
    size_t n = 0, last_off = 0;
    proto_error e;
    int rc = PROTO_FRAME_MORE;
    for (size_t have = 65536; rc == PROTO_FRAME_MORE; have += 65536) {
        if (have > sb.size)
            have = sb.size;
        rc = proto_frame(&f, (uint8_t *)sb.data, have, &l, &n, &e);
        if (rc == PROTO_FRAME_MORE) {
            assert_true(f.off >= last_off);
            assert_true(f.off <= have + 16); /* at most a cut header/body beyond */
            last_off = f.off;
        }
    }
    assert_int_equal(rc, PROTO_FRAME_DONE);
    assert_int_equal(n, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* xorshift so runs are reproducible */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static void test_garbage_vs_msgpack_c(void **state)
{
    (void)state;
    proto_limits l = lim_default();
    l.max_msg = 4096;
    msgpack_zone z;
    msgpack_zone_init(&z, 4096);
    int done = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = (size_t)(rnd() % 48) + 1;
        uint8_t *buf = malloc(len);
        /* Bias towards small headers and containers so values complete. */
        for (size_t i = 0; i < len; i++) {
            uint64_t r = rnd();
            buf[i] = (r & 3) == 0 ? (uint8_t)(0x90 | ((r >> 8) & 3))
                     : (r & 3) == 1 ? (uint8_t)((r >> 8) & 0x7f)
                                    : (uint8_t)(r >> 8);
        }
        size_t n = 0, n2 = 0;
        proto_error e;
        int rc = frame_all(buf, len, &l, &n, &e);
        int rc2 = frame_pieces(buf, len, &l, 0, &n2, &e);
        assert_int_equal(rc, rc2);
        if (rc == PROTO_FRAME_DONE) {
            assert_int_equal(n, n2);
            assert_true(n >= 1 && n <= len);
            done++;
            /* msgpack-c agrees on where the value ends. */
            msgpack_object o;
            size_t off = 0;
            assert_int_equal(msgpack_unpack((char *)buf, n, &off, &z, &o), MSGPACK_UNPACK_SUCCESS);
            assert_int_equal(off, n);
        } else if (rc == PROTO_FRAME_MORE) {
            msgpack_object o;
            size_t off = 0;
            assert_int_equal(msgpack_unpack((char *)buf, len, &off, &z, &o),
                             MSGPACK_UNPACK_CONTINUE);
        } else {
            assert_true(rc == -PROTO_E_MALFORMED || rc == -PROTO_E_TOO_LARGE);
        }
        msgpack_zone_clear(&z);
        free(buf);
    }
    assert_true(done > 1000);
    msgpack_zone_destroy(&z);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_format),
        cmocka_unit_test(test_scalars_top_level),
        cmocka_unit_test(test_back_to_back),
        cmocka_unit_test(test_huge_declarations),
        cmocka_unit_test(test_message_too_long),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_limit_messages),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_resumes_without_rescan),
        cmocka_unit_test(test_garbage_vs_msgpack_c),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
