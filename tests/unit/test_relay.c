/* test_relay — what the gateway does with node replies (proto/relay.h):
 * the same trades held by one store, and split by symbol over two stores
 * (two nodes); the two stores' msgpack top answers merged give exactly the
 * one store's answer (ties in symbol order), in JSON and msgpack; a
 * per-symbol reply re-emitted as JSON is the body the node gives over
 * HTTP, sums beyond 1e-8 and past int64 included; query_pack reads back
 * as the request; ERR replies give their code; "behind" added to a
 * per-symbol reply keeps every other byte (fixmap, map16 and map32 results,
 * any qid encoding) and is refused for an ERR or a malformed reply. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pk.h"
#include "query.h"
#include "relay.h"

#define FX(units) ((int64_t)((units) * 100000000.0 + 0.5))

static store *one, *part[2];

static void add(store *s, store_batch *b, const char *sym, int64_t ts, int64_t px, int64_t qty)
{
    int64_t v[KIND_MAX_FIELDS] = {0};
    int bad = -1;
    v[TRADE_ts] = ts;
    v[TRADE_px] = px;
    v[TRADE_qty] = qty;
    v[TRADE_side] = KIND_SIDE_BUY;
    v[TRADE_id] = 1;
    assert_int_equal(kind_check(&kind_trade, v, (1u << kind_trade.nfields) - 1, &bad), KIND_OK);
    assert_int_equal(store_batch_add(s, b, sym, strlen(sym), &kind_trade, v), STORE_OK);
}

/* Symbols, in arrival order, no two alike in count, volume or notional;
 * notionals go negative (NEG), past int64 at 1e-8 (BIG) and finer than
 * 1e-8 (TINY). */
static const struct {
    const char *sym;
    int64_t px, qty;
    int n;
} feed[] = {{"C", FX(2), FX(1), 3},      {"A", FX(1), FX(5), 6},
            {"BIG", 100000012345678LL, FX(1000000), 1},
            {"TINY", 1, 1, 2},           {"NEG", -FX(3.25), FX(2), 4},
            {"D", FX(10), FX(0.5), 7},   {"E", FX(7), FX(7), 5}};
#define NFEED (sizeof feed / sizeof feed[0])

static void put(store *s, int which)
{
    store_batch b;
    store_batch_init(&b);
    for (size_t i = 0; i < NFEED; i++)
        for (int k = 0; k < feed[i].n; k++)
            if (which < 0 || (int)(i % 2) == which)
                add(s, &b, feed[i].sym, 1000 + k, feed[i].px, feed[i].qty);
    assert_int_equal(store_batch_reserve(s, &b), STORE_OK);
    store_batch_commit(s, &b);
    store_batch_free(&b);
}

static int setup(void **state)
{
    store_config cfg = {0};
    (void)state;
    assert_int_equal(store_open(&one, &cfg), STORE_OK);
    put(one, -1);
    for (int w = 0; w < 2; w++) {
        assert_int_equal(store_open(&part[w], &cfg), STORE_OK);
        put(part[w], w);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    store_close(one);
    store_close(part[0]);
    store_close(part[1]);
    return 0;
}

/* ["R", qid, result] of q against s, as a node packs it. */
static void reply_of(const store *s, const query_req *q, proto_buf *out)
{
    emit e;
    proto_error err;
    out->len = 0;
    emit_msgpack_init(&e, out);
    e.array(&e, 3);
    emit_cstr(&e, "R");
    e.u64(&e, 1);
    assert_int_equal(query_run(s, q, &e, &err), 0);
    e.end(&e);
    assert_false(e.err);
}

static void result_json(const store *s, const query_req *q, proto_buf *out)
{
    emit e;
    proto_error err;
    out->len = 0;
    emit_json_init(&e, out);
    assert_int_equal(query_run(s, q, &e, &err), 0);
    assert_false(e.err);
}

static void assert_buf_eq(const proto_buf *a, const proto_buf *b)
{
    if (a->len != b->len || memcmp(a->data, b->data, a->len) != 0)
        fail_msg("%.*s\n!=\n%.*s", (int)a->len, a->data, (int)b->len, b->data);
}

static void test_top_merge_exact(void **state)
{
    proto_buf r0 = {0}, r1 = {0}, want = {0}, got = {0};
    proto_error err;
    (void)state;
    for (int by = STORE_BY_COUNT; by <= STORE_BY_NOTIONAL; by++)
        for (uint32_t n = 1; n <= NFEED + 1; n++) {
            query_req q;
            query_req_init(&q, QUERY_TOP);
            q.by = (store_by)by;
            q.top = n;
            reply_of(part[0], &q, &r0);
            reply_of(part[1], &q, &r1);
            result_json(one, &q, &want);
            relay_top *t = relay_top_new(q.by, q.top);
            assert_non_null(t);
            assert_int_equal(relay_top_add(t, (uint8_t *)r1.data, r1.len, &err), 0);
            assert_int_equal(relay_top_add(t, (uint8_t *)r0.data, r0.len, &err), 0);
            emit e;
            got.len = 0;
            emit_json_init(&e, &got);
            relay_top_emit(t, NULL, 0, &e);
            assert_false(e.err);
            relay_top_free(t);
            assert_buf_eq(&got, &want);
        }
    proto_buf_free(&r0);
    proto_buf_free(&r1);
    proto_buf_free(&want);
    proto_buf_free(&got);
}

static void test_top_partial_and_dups(void **state)
{
    proto_buf r0 = {0}, got = {0};
    proto_error err;
    (void)state;
    query_req q;
    query_req_init(&q, QUERY_TOP);
    q.top = 3;
    reply_of(part[0], &q, &r0);
    relay_top *t = relay_top_new(q.by, q.top);
    /* the same node's answer twice (two replicas): each symbol once */
    assert_int_equal(relay_top_add(t, (uint8_t *)r0.data, r0.len, &err), 0);
    assert_int_equal(relay_top_add(t, (uint8_t *)r0.data, r0.len, &err), 0);
    int32_t missing[] = {1, 3};
    emit e;
    emit_json_init(&e, &got);
    relay_top_emit(t, missing, 2, &e);
    relay_top_free(t);
    proto_buf_append(&got, "", 1);
    assert_non_null(strstr(got.data, "\"partial\":true,\"missing_partitions\":[1,3]}"));
    /* part[0] holds C, BIG, NEG, E: top 3 by count is E(5), NEG(4), C(3) */
    char *e1 = strstr(got.data, "\"symbols\":[{\"symbol\":\"E\""), *n1, *c1;
    assert_non_null(e1);
    assert_non_null(n1 = strstr(e1, "\"symbol\":\"NEG\""));
    assert_non_null(c1 = strstr(n1, "\"symbol\":\"C\""));
    assert_null(strstr(n1, "\"symbol\":\"E\""));
    assert_null(strstr(c1 + 1, "\"symbol\":\"C\""));
    /* a reply that is not a top answer */
    t = relay_top_new(q.by, q.top);
    query_req_init(&q, QUERY_STATS);
    reply_of(part[0], &q, &r0);
    assert_int_equal(relay_top_add(t, (uint8_t *)r0.data, r0.len, &err), -1);
    assert_int_equal(err.code, PROTO_E_MALFORMED);
    relay_top_free(t);
    proto_buf_free(&r0);
    proto_buf_free(&got);
}

/* Equal values: by symbol name, whichever node answered first. */
static void test_top_ties_by_name(void **state)
{
    store *a, *b;
    store_config cfg = {0};
    store_batch bt;
    proto_buf ra = {0}, rb = {0}, got = {0};
    proto_error err;
    (void)state;
    assert_int_equal(store_open(&a, &cfg), STORE_OK);
    assert_int_equal(store_open(&b, &cfg), STORE_OK);
    store_batch_init(&bt);
    add(a, &bt, "Z", 1, FX(1), FX(1));
    add(a, &bt, "Z", 2, FX(1), FX(1));
    assert_int_equal(store_batch_reserve(a, &bt), STORE_OK);
    store_batch_commit(a, &bt);
    store_batch_reset(&bt);
    add(b, &bt, "Y", 1, FX(1), FX(1));
    add(b, &bt, "Y", 2, FX(1), FX(1));
    assert_int_equal(store_batch_reserve(b, &bt), STORE_OK);
    store_batch_commit(b, &bt);
    store_batch_free(&bt);
    query_req q;
    query_req_init(&q, QUERY_TOP);
    reply_of(a, &q, &ra);
    reply_of(b, &q, &rb);
    relay_top *t = relay_top_new(q.by, 1);
    assert_int_equal(relay_top_add(t, (uint8_t *)ra.data, ra.len, &err), 0);
    assert_int_equal(relay_top_add(t, (uint8_t *)rb.data, rb.len, &err), 0);
    emit e;
    emit_json_init(&e, &got);
    relay_top_emit(t, NULL, 0, &e);
    relay_top_free(t);
    proto_buf_append(&got, "", 1);
    assert_non_null(strstr(got.data, "\"symbols\":[{\"symbol\":\"Y\""));
    assert_null(strstr(got.data, "\"Z\""));
    store_close(a);
    store_close(b);
    proto_buf_free(&ra);
    proto_buf_free(&rb);
    proto_buf_free(&got);
}

static void test_result_as_json(void **state)
{
    proto_buf r = {0}, want = {0}, got = {0};
    static const char *syms[] = {"BIG", "TINY", "NEG", "A"};
    (void)state;
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        for (int op = QUERY_SYMBOL; op <= QUERY_BARS; op++) {
            query_req q;
            query_req_init(&q, (query_op)op);
            query_set_symbol(&q, syms[i], strlen(syms[i]), NULL);
            reply_of(one, &q, &r);
            result_json(one, &q, &want);
            emit e;
            got.len = 0;
            emit_json_init(&e, &got);
            assert_int_equal(relay_status((uint8_t *)r.data, r.len, NULL), 1);
            assert_int_equal(relay_result((uint8_t *)r.data, r.len, &e), 0);
            assert_buf_eq(&got, &want);
        }
    }
    proto_buf_free(&r);
    proto_buf_free(&want);
    proto_buf_free(&got);
}

static void test_err_and_pack(void **state)
{
    /* ["ERR", 4, "NOT_FOUND", "no such symbol", nil] */
    static const uint8_t e[] = {0x95, 0xa3, 'E', 'R', 'R', 0x04, 0xa9, 'N', 'O', 'T', '_', 'F',
                                'O', 'U', 'N', 'D', 0xa2, 'n', 'o', 0xc0};
    proto_error err;
    proto_buf b = {0};
    (void)state;
    assert_int_equal(relay_status(e, sizeof e, &err), 0);
    assert_int_equal(err.code, PROTO_E_NOT_FOUND);
    assert_string_equal(err.msg, "no");
    assert_int_equal(relay_status(e, 3, &err), -1);
    assert_int_equal(relay_result(e, sizeof e, NULL), -1);
    /* query_pack reads back as the same request */
    query_req q, back;
    uint64_t qid;
    query_req_init(&q, QUERY_TRADES);
    query_set_symbol(&q, "AAPL", 4, NULL);
    q.from = -5, q.has_from = 1;
    q.limit = 77, q.cursor = 9;
    assert_int_equal(query_pack(&b, 42, &q), 0);
    assert_int_equal(query_decode((uint8_t *)b.data, b.len, &qid, &back, &err), 0);
    assert_int_equal(qid, 42);
    assert_memory_equal(&q, &back, sizeof q);
    query_req_init(&q, QUERY_TOP);
    q.top = 12, q.by = STORE_BY_NOTIONAL;
    assert_int_equal(query_pack(&b, 1, &q), 0);
    assert_int_equal(query_decode((uint8_t *)b.data, b.len, &qid, &back, &err), 0);
    assert_memory_equal(&q, &back, sizeof q);
    query_req_init(&q, QUERY_BARS);
    query_set_symbol(&q, "X", 1, NULL);
    q.interval = 1500000000, q.to = 99, q.has_to = 1;
    assert_int_equal(query_pack(&b, 1, &q), 0);
    assert_int_equal(query_decode((uint8_t *)b.data, b.len, &qid, &back, &err), 0);
    assert_memory_equal(&q, &back, sizeof q);
    proto_buf_free(&b);
}

/* ["R", qid, {k0: 0, k1: 1, ...}] with nkeys entries, packed by msgpack-c. */
static void r_reply(pk *k, uint64_t qid, uint32_t nkeys)
{
    pk_head(k, "R", qid, nkeys);
    for (uint32_t i = 0; i < nkeys; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%u", i);
        pk_str(k, key);
        msgpack_pack_uint32(&k->p, i);
    }
}

static void test_add_behind(void **state)
{
    (void)state;
    /* fixmap (3), the fixmap limit (15 -> 16: map16), map16, and the map32
     * boundary (65535 -> 65536); qids as fixint, uint8, uint32, uint64 */
    const uint32_t sizes[] = {3, 15, 300, 65535};
    const uint64_t qids[] = {7, 200, 70000, (uint64_t)1 << 40};
    for (size_t c = 0; c < 4; c++) {
        pk k;
        proto_buf out = {0};
        const int32_t parts[] = {2, 6};
        const int64_t recs[] = {1234, (int64_t)1 << 40};
        r_reply(&k, qids[c], sizes[c]);
        assert_int_equal(relay_add_behind((uint8_t *)k.sb.data, k.sb.size, parts, recs, 2, &out), 0);
        msgpack_unpacked u;
        size_t off = 0;
        msgpack_unpacked_init(&u);
        assert_int_equal(msgpack_unpack_next(&u, out.data, out.len, &off), MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(off, out.len);
        const msgpack_object *a = u.data.via.array.ptr;
        assert_int_equal(u.data.via.array.size, 3);
        assert_int_equal(a[1].via.u64, qids[c]);
        const msgpack_object_map *m = &a[2].via.map;
        assert_int_equal(m->size, sizes[c] + 1);
        for (uint32_t i = 0; i < sizes[c]; i++)
            assert_int_equal(m->ptr[i].val.via.u64, i); /* the node's entries, in order */
        const msgpack_object_kv *b = &m->ptr[sizes[c]];
        assert_int_equal(b->key.via.str.size, 6);
        assert_memory_equal(b->key.via.str.ptr, "behind", 6);
        assert_int_equal(b->val.via.array.size, 2);
        for (uint32_t i = 0; i < 2; i++) {
            const msgpack_object_map *e = &b->val.via.array.ptr[i].via.map;
            assert_int_equal(e->size, 2);
            assert_memory_equal(e->ptr[0].key.via.str.ptr, "partition", 9);
            assert_int_equal(e->ptr[0].val.via.i64, parts[i]);
            assert_memory_equal(e->ptr[1].key.via.str.ptr, "records", 7);
            assert_int_equal(e->ptr[1].val.via.i64, recs[i]);
        }
        /* the node's bytes up to the map header, and its entries after it */
        assert_memory_equal(out.data, k.sb.data, 3);
        if (c == 0) { /* re-emitted as JSON (the HTTP body) it says so too */
            proto_buf js = {0};
            emit e;
            emit_json_init(&e, &js);
            assert_int_equal(relay_result((uint8_t *)out.data, out.len, &e), 0);
            assert_int_equal(e.err, 0);
            assert_non_null(strstr(js.data, "\"behind\":[{\"partition\":2,\"records\":1234},"));
            proto_buf_free(&js);
        }
        msgpack_unpacked_destroy(&u);
        proto_buf_free(&out);
        msgpack_sbuffer_destroy(&k.sb);
    }
    /* not an R with a map result: refused, the caller passes the reply on */
    pk k;
    proto_buf out = {0};
    int32_t p = 0;
    int64_t r = 9;
    pk_init(&k);
    msgpack_pack_array(&k.p, 5);
    pk_str(&k, "ERR");
    msgpack_pack_uint8(&k.p, 1);
    pk_str(&k, "NOT_FOUND");
    pk_str(&k, "no such symbol");
    msgpack_pack_nil(&k.p);
    assert_int_equal(relay_add_behind((uint8_t *)k.sb.data, k.sb.size, &p, &r, 1, &out), -1);
    msgpack_sbuffer_destroy(&k.sb);
    r_reply(&k, 1, 2);
    assert_int_equal(relay_add_behind((uint8_t *)k.sb.data, 4, &p, &r, 1, &out), -1); /* cut */
    k.sb.data[4] = (char)0x92; /* an array where the map was */
    assert_int_equal(relay_add_behind((uint8_t *)k.sb.data, k.sb.size, &p, &r, 1, &out), -1);
    k.sb.data[3] = (char)0xc1; /* no integer: the qid */
    assert_int_equal(relay_add_behind((uint8_t *)k.sb.data, k.sb.size, &p, &r, 1, &out), -1);
    proto_buf_free(&out);
    msgpack_sbuffer_destroy(&k.sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_top_merge_exact),
        cmocka_unit_test(test_top_partial_and_dups),
        cmocka_unit_test(test_top_ties_by_name),
        cmocka_unit_test(test_result_as_json),
        cmocka_unit_test(test_err_and_pack),
        cmocka_unit_test(test_add_behind),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
