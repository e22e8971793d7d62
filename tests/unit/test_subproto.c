/* test_subproto — SUB/UNSUB decoding (every accepted form, each refusal's
 * code and message) and the bytes of SUBOK, S, GAP and UNSUBOK. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "pk.h"
#include "subproto.h"

static int decode(pk *k, subproto_req *r, proto_error *err)
{
    int rc = subproto_decode_sub((const uint8_t *)k->sb.data, k->sb.size, r, err);
    msgpack_sbuffer_destroy(&k->sb);
    return rc;
}

/* ["SUB", id, {"syms": ..., <then the caller's extra pairs>}] header. */
static void sub_head(pk *k, uint64_t id, uint32_t pairs)
{
    pk_head(k, "SUB", id, pairs);
}

static void test_star_now(void **state)
{
    (void)state;
    pk k;
    proto_error err;
    subproto_req *r = malloc(sizeof *r);
    sub_head(&k, 7, 1);
    pk_str(&k, "syms");
    pk_str(&k, "*");
    assert_true(subproto_is((const uint8_t *)k.sb.data, k.sb.size, "SUB"));
    assert_false(subproto_is((const uint8_t *)k.sb.data, k.sb.size, "UNSUB"));
    assert_int_equal(decode(&k, r, &err), 0);
    assert_int_equal(r->id, 7);
    assert_true(r->all);
    assert_int_equal(r->from, SUBPROTO_NOW);
    assert_false(r->gaps);
    free(r);
}

static void test_list_cursor_gaps(void **state)
{
    (void)state;
    pk k;
    proto_error err;
    subproto_req *r = malloc(sizeof *r);
    sub_head(&k, 1, 3);
    pk_str(&k, "syms");
    msgpack_pack_array(&k.p, 2);
    pk_str(&k, "AAPL");
    pk_str(&k, "MSFT");
    pk_str(&k, "from");
    msgpack_pack_map(&k.p, 1);
    pk_str(&k, "MSFT");
    msgpack_pack_uint64(&k.p, 12345678901ULL);
    pk_str(&k, "gaps");
    msgpack_pack_true(&k.p);
    assert_int_equal(decode(&k, r, &err), 0);
    assert_false(r->all);
    assert_int_equal(r->nsyms, 2);
    assert_string_equal(r->syms[1].name, "MSFT");
    assert_int_equal(r->syms[1].len, 4);
    assert_int_equal(r->from, SUBPROTO_MAP);
    assert_int_equal(r->nfrom, 1);
    assert_string_equal(r->fromv[0].name, "MSFT");
    assert_int_equal(r->fromv[0].pos, 12345678901ULL);
    assert_true(r->gaps);
    sub_head(&k, 2, 2);
    pk_str(&k, "from");
    pk_str(&k, "start");
    pk_str(&k, "syms");
    pk_str(&k, "*");
    assert_int_equal(decode(&k, r, &err), 0);
    assert_int_equal(r->from, SUBPROTO_START);
    free(r);
}

/* Each refusal: the code and a message naming what is wrong. */
static void test_refusals(void **state)
{
    (void)state;
    pk k;
    proto_error err;
    subproto_req *r = malloc(sizeof *r);

    sub_head(&k, 3, 1); /* syms: an integer */
    pk_str(&k, "syms");
    msgpack_pack_int(&k.p, 5);
    assert_int_equal(decode(&k, r, &err), -1);
    assert_int_equal(err.code, PROTO_E_BAD_SUB);
    assert_int_equal(r->id, 3);
    assert_non_null(strstr(err.msg, "syms: must be"));

    sub_head(&k, 3, 1); /* a symbol of 32 bytes */
    pk_str(&k, "syms");
    msgpack_pack_array(&k.p, 1);
    pk_str(&k, "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345");
    assert_int_equal(decode(&k, r, &err), -1);
    assert_non_null(strstr(err.msg, "1-31 bytes"));

    sub_head(&k, 3, 2); /* from: a negative position */
    pk_str(&k, "syms");
    pk_str(&k, "*");
    pk_str(&k, "from");
    msgpack_pack_map(&k.p, 1);
    pk_str(&k, "A");
    msgpack_pack_int(&k.p, -1);
    assert_int_equal(decode(&k, r, &err), -1);
    assert_non_null(strstr(err.msg, "position of 'A' must be a non-negative integer"));

    sub_head(&k, 3, 2); /* from: a word it does not know */
    pk_str(&k, "syms");
    pk_str(&k, "*");
    pk_str(&k, "from");
    pk_str(&k, "later");
    assert_int_equal(decode(&k, r, &err), -1);
    assert_non_null(strstr(err.msg, "from: must be"));

    sub_head(&k, 3, 1); /* no syms */
    pk_str(&k, "gaps");
    msgpack_pack_false(&k.p);
    assert_int_equal(decode(&k, r, &err), -1);
    assert_non_null(strstr(err.msg, "syms is required"));

    sub_head(&k, 3, 2); /* an unknown key */
    pk_str(&k, "syms");
    pk_str(&k, "*");
    pk_str(&k, "depth");
    msgpack_pack_int(&k.p, 1);
    assert_int_equal(decode(&k, r, &err), -1);
    assert_non_null(strstr(err.msg, "unknown key 'depth'"));

    pk_init(&k); /* the id a string: the message's shape */
    msgpack_pack_array(&k.p, 3);
    pk_str(&k, "SUB");
    pk_str(&k, "x");
    msgpack_pack_map(&k.p, 0);
    assert_int_equal(decode(&k, r, &err), -1);
    assert_int_equal(err.code, PROTO_E_BAD_MESSAGE);
    assert_int_equal(r->id, 0);

    uint64_t id = 9;
    const uint8_t junk[] = {0x92, 0xa5, 'U', 'N', 'S', 'U', 'B', 0xc1};
    assert_int_equal(subproto_decode_unsub(junk, sizeof junk, &id, &err), -1);
    assert_int_equal(err.code, PROTO_E_MALFORMED);
    free(r);
}

static void test_unsub(void **state)
{
    (void)state;
    const uint8_t msg[] = {0x92, 0xa5, 'U', 'N', 'S', 'U', 'B', 0x2a};
    uint64_t id = 0;
    proto_error err;
    assert_true(subproto_is(msg, sizeof msg, "UNSUB"));
    assert_int_equal(subproto_decode_unsub(msg, sizeof msg, &id, &err), 0);
    assert_int_equal(id, 42);
}

/* The encoders' bytes, read back with msgpack-c. */
static msgpack_object *unpack(msgpack_unpacked *u, const proto_buf *b, size_t *off)
{
    assert_int_equal(msgpack_unpack_next(u, b->data, b->len, off), MSGPACK_UNPACK_SUCCESS);
    return &u->data;
}

static void test_encoders(void **state)
{
    (void)state;
    proto_buf b = {0};
    emit e;
    emit_msgpack_init(&e, &b);
    subproto_begin_subok(&e, 5);
    e.map(&e, 1);
    subproto_pos(&e, "AAPL", 4, 17);
    subproto_end(&e);
    int64_t v[KIND_MAX_FIELDS] = {0};
    v[TRADE_ts] = 1767225600000000000LL;
    v[TRADE_px] = -3763000000LL; /* -37.63 */
    v[TRADE_qty] = 150000000;    /* 1.5 */
    v[TRADE_side] = 1;
    v[TRADE_id] = 99;
    _Alignas(8) unsigned char slot[128];
    kind_trade.pack(slot, v);
    emit_msgpack_init(&e, &b);
    subproto_begin_s(&e, 5, "AAPL", 4, &kind_trade, 18, 1);
    subproto_trade(&e, &kind_trade, slot);
    subproto_end(&e);
    emit_msgpack_init(&e, &b);
    subproto_gap(&e, 5, "AAPL", 4, 2, 10);
    emit_msgpack_init(&e, &b);
    subproto_unsubok(&e, 5);

    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    char text[256];
    const char *want[] = {
        "[\"SUBOK\", 5, {\"AAPL\"=>17}]",
        "[\"S\", 5, \"AAPL\", \"trade\", 18, [[1767225600000000000, \"-37.63\", \"1.5\", \"B\", 99]]]",
        "[\"GAP\", 5, \"AAPL\", 2, 10]",
        "[\"UNSUBOK\", 5]",
    };
    for (int i = 0; i < 4; i++) {
        msgpack_object *o = unpack(&u, &b, &off);
        msgpack_object_print_buffer(text, sizeof text, *o);
        assert_string_equal(text, want[i]);
    }
    assert_int_equal(off, b.len);
    msgpack_unpacked_destroy(&u);
    proto_buf_free(&b);
}

/* subproto_pack_s writes what the emitter path writes, value for value,
 * for both kinds over random values (negative prices, large ids, every
 * side and right, long runs). */
static void test_pack_s_matches_emitter(void **state)
{
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    const kind *kinds[] = {&kind_trade, &kind_option_trade};
    for (int round = 0; round < 200; round++) {
        const kind *k = kinds[round % 2];
        uint32_t n = (uint32_t)(round % 40) * 3 + 1;
        _Alignas(8) unsigned char *slots = malloc((size_t)n * k->size);
        for (uint32_t t = 0; t < n; t++) {
            int64_t v[KIND_MAX_FIELDS] = {0};
            for (int i = 0; i < k->nfields; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                kind_type ty = (kind_type)k->fields[i].type;
                v[i] = ty == KIND_FIX ? (int64_t)(x % 2000000000000ULL) - 1000000000000LL
                       : ty == KIND_SIDE ? (int64_t)(x % 3)
                       : ty == KIND_RIGHT ? (int64_t)(x % 2)
                       : ty == KIND_U64 ? (int64_t)(x >> (x % 64))
                                        : (int64_t)(x >> 2 >> (x % 60));
                if (i == 2) /* qty >= 0 */
                    v[i] = v[i] < 0 ? -v[i] : v[i];
            }
            k->pack(slots + (size_t)t * k->size, v);
        }
        proto_buf a = {0}, b = {0};
        emit e;
        emit_msgpack_init(&e, &a);
        subproto_begin_s(&e, (uint64_t)round << 20, "SYM", 3, k, x, n);
        for (uint32_t t = 0; t < n; t++)
            subproto_trade(&e, k, slots + (size_t)t * k->size);
        subproto_end(&e);
        assert_int_equal(subproto_pack_s(&b, (uint64_t)round << 20, "SYM", 3, k, x, slots, n), 0);
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t oa = 0, ob = 0;
        static char ta[1 << 16], tb[1 << 16];
        msgpack_object_print_buffer(ta, sizeof ta, *unpack(&u, &a, &oa));
        msgpack_object_print_buffer(tb, sizeof tb, *unpack(&u, &b, &ob));
        assert_string_equal(ta, tb);
        assert_int_equal(oa, a.len);
        assert_int_equal(ob, b.len);
        msgpack_unpacked_destroy(&u);
        proto_buf_free(&a);
        proto_buf_free(&b);
        free(slots);
    }
}

/* SSE: query parameters, and cursor text out and back in (escaping). */
static void test_sse_cursor_text(void **state)
{
    (void)state;
    proto_error err;
    subproto_req *r = calloc(1, sizeof *r);
    proto_buf b = {0};
    assert_int_equal(subproto_cursor_append(&b, "AAPL", 4, 41, 1), 0);
    assert_int_equal(subproto_cursor_append(&b, "A,B:C%", 6, 0, 0), 0);
    assert_int_equal(subproto_cursor_append(&b, "X Y", 3, 18446744073709551615ULL, 0), 0);
    assert_int_equal(b.len, strlen("AAPL:41,A%2CB%3AC%25:0,X%20Y:18446744073709551615"));
    assert_memory_equal(b.data, "AAPL:41,A%2CB%3AC%25:0,X%20Y:18446744073709551615", b.len);
    assert_int_equal(subproto_cursor_parse(r, b.data, b.len, &err), 0);
    assert_int_equal(r->from, SUBPROTO_MAP);
    assert_int_equal(r->nfrom, 3);
    assert_string_equal(r->fromv[1].name, "A,B:C%");
    assert_int_equal(r->fromv[0].pos, 41);
    assert_int_equal(r->fromv[2].pos, 18446744073709551615ULL);
    proto_buf_free(&b);

    const struct {
        const char *text, *msg;
    } bad[] = {
        {"AAPL", "expected sym:position"},
        {"AAPL:", "expected sym:position"},
        {"AAPL:1x", "position of 'AAPL' is not a non-negative integer"},
        {"AAPL:18446744073709551616", "not a non-negative integer"},
        {":1", "an empty symbol"},
        {"A%4:1", "bad percent-encoding"},
        {"A:1,A:2", "'A' is named twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(subproto_cursor_parse(r, bad[i].text, strlen(bad[i].text), &err), -1);
        assert_int_equal(err.code, PROTO_E_BAD_QUERY);
        assert_non_null(strstr(err.msg, bad[i].msg));
    }

    memset(r, 0, sizeof *r);
    assert_int_equal(subproto_set_param(r, "syms", 4, "AAPL,MSFT", 9, &err), 0);
    assert_int_equal(r->nsyms, 2);
    assert_string_equal(r->syms[1].name, "MSFT");
    assert_int_equal(subproto_set_param(r, "from", 4, "start", 5, &err), 0);
    assert_int_equal(r->from, SUBPROTO_START);
    assert_int_equal(subproto_set_param(r, "gaps", 4, "true", 4, &err), 0);
    assert_true(r->gaps);
    assert_int_equal(subproto_set_param(r, "syms", 4, "*", 1, &err), 0);
    assert_true(r->all);
    assert_int_equal(r->nsyms, 0);
    assert_int_equal(subproto_set_param(r, "syms", 4, "A", 1, &err), 0);
    assert_false(r->all);
    assert_int_equal(subproto_set_param(r, "syms", 4, "A,,B", 4, &err), -1);
    assert_non_null(strstr(err.msg, "1-31 bytes"));
    assert_int_equal(subproto_set_param(r, "gaps", 4, "1", 1, &err), -1);
    assert_int_equal(subproto_set_param(r, "limit", 5, "1", 1, &err), -1);
    assert_non_null(strstr(err.msg, "unknown parameter 'limit'"));
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_star_now),
        cmocka_unit_test(test_list_cursor_gaps),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_unsub),
        cmocka_unit_test(test_encoders),
        cmocka_unit_test(test_sse_cursor_text),
        cmocka_unit_test(test_pack_s_matches_emitter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
