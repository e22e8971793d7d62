/* test_query — parameter parsing (times, intervals, limits), the TCP Q
 * decoder, and query_run against a real store: every op's figures checked
 * against hand-computed values, JSON and msgpack results compared tree to
 * tree, and errors leaving no output. */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixp.h"
#include "query.h"
#include "pk.h"

#define S(lit) lit, sizeof(lit) - 1
#define FX(units) ((int64_t)((units) * 100000000.0 + 0.5)) /* exact for the test values */
#define T2026 1767225600000000000LL

/* ---- times and intervals ---------------------------------------------------------- */

static int64_t tm(const char *s)
{
    int64_t ns = 0x5a5a;
    assert_int_equal(query_parse_time(s, strlen(s), &ns), 0);
    return ns;
}

static void bad_time(const char *s)
{
    int64_t ns;
    if (query_parse_time(s, strlen(s), &ns) == 0)
        fail_msg("'%s' parsed as %lld", s, (long long)ns);
}

static void test_parse_time(void **state)
{
    (void)state;
    assert_true(tm("0") == 0);
    assert_true(tm("1767225600000000000") == T2026);
    assert_true(tm("-5") == -5);
    assert_true(tm("9223372036854775807") == INT64_MAX);
    assert_true(tm("2026-01-01T00:00:00Z") == T2026);
    assert_true(tm("2026-01-01t00:00:00z") == T2026);
    assert_true(tm("2026-01-01 00:00:00Z") == T2026);
    assert_true(tm("2026-01-01") == T2026);
    assert_true(tm("2026-01-01T00:00:00.5Z") == T2026 + 500000000);
    assert_true(tm("2026-01-01T00:00:00.000000001Z") == T2026 + 1);
    assert_true(tm("2026-01-01T00:00:00.123456789Z") == T2026 + 123456789);
    assert_true(tm("2026-01-01T01:00:00+01:00") == T2026);
    assert_true(tm("2025-12-31T18:30:00-05:30") == T2026);
    assert_true(tm("2024-02-29T12:34:56Z") == 1709210096000000000LL);
    assert_true(tm("1970-01-01T00:00:00Z") == 0);
    assert_true(tm("1969-12-31T23:59:59Z") == -1000000000LL);
    assert_true(tm("2262-04-11T23:47:16.854775807Z") == INT64_MAX);
    /* The lowest second fits only with its fraction (found by fuzz_time). */
    assert_true(tm("1677-09-21T00:12:43.145224192Z") == INT64_MIN);
    assert_true(tm("1677-09-21T00:12:43.999999999Z") == INT64_MIN + 854775807);
    assert_true(tm("1677-09-21T00:12:44Z") == -9223372036000000000LL);
    assert_true(tm("1677-09-21T01:12:43.145224192+01:00") == INT64_MIN);
    assert_true(tm("1969-12-31T23:59:59.5Z") == -500000000);
    bad_time("");
    bad_time("-");
    bad_time("12a");
    bad_time("9223372036854775808");
    bad_time("2026-01-01T00:00:00");       /* no zone */
    bad_time("2026-01-01T00:00Z");         /* no seconds */
    bad_time("2026-13-01T00:00:00Z");
    bad_time("2026-00-01T00:00:00Z");
    bad_time("2025-02-29T00:00:00Z");      /* not a leap year */
    bad_time("2026-04-31T00:00:00Z");
    bad_time("2026-01-01T24:00:00Z");
    bad_time("2026-01-01T00:60:00Z");
    bad_time("2026-01-01T00:00:60Z");      /* leap seconds have no ns time */
    bad_time("2026-01-01T00:00:00.Z");
    bad_time("2026-01-01T00:00:00.1234567891Z");
    bad_time("2026-01-01T00:00:00+1:00");
    bad_time("2026-01-01T00:00:00+24:00");
    bad_time("2026-01-01T00:00:00Zjunk");
    bad_time("2262-04-11T23:47:16.854775808Z"); /* one past INT64_MAX */
    bad_time("1677-09-21T00:12:43.145224191Z"); /* one before INT64_MIN */
    bad_time("1677-09-21T00:12:43Z");
    bad_time("1600-01-01T00:00:00Z");
    bad_time("2026-1-01T00:00:00Z");
}

static int64_t iv(const char *s)
{
    int64_t ns = 0;
    assert_int_equal(query_parse_interval(s, strlen(s), &ns), 0);
    return ns;
}

static void bad_iv(const char *s)
{
    int64_t ns;
    if (query_parse_interval(s, strlen(s), &ns) == 0)
        fail_msg("interval '%s' parsed as %lld", s, (long long)ns);
}

static void test_parse_interval(void **state)
{
    (void)state;
    assert_true(iv("1000ns") == 1000);
    assert_true(iv("2") == 2000000000); /* a bare number is seconds, as in every duration */
    assert_true(iv("1.5s") == 1500000000);
    assert_true(iv("100ns") == 100);
    assert_true(iv("250us") == 250000);
    assert_true(iv("250\xc2\xb5s") == 250000);
    assert_true(iv("500ms") == 500000000);
    assert_true(iv("1s") == 1000000000);
    assert_true(iv("5m") == 300000000000LL);
    assert_true(iv("1h") == 3600000000000LL);
    assert_true(iv("1d") == 86400000000000LL);
    bad_iv("");
    bad_iv("0");
    bad_iv("0s");
    bad_iv("-1s");
    bad_iv("1.5ns");
    bad_iv("1x");
    bad_iv("s");
    bad_iv("1 s");
    bad_iv("1S");
    bad_iv("999999999999d"); /* overflows int64 ns */
}

/* ---- parameters ------------------------------------------------------------------ */

static void test_defaults(void **state)
{
    (void)state;
    query_req q;
    query_req_init(&q, QUERY_TRADES);
    assert_int_equal(q.op, QUERY_TRADES);
    assert_true(q.from <= 0);
    assert_true(q.to == INT64_MAX);
    assert_int_equal(q.limit, 1000);
    assert_int_equal(q.top, 10);
    assert_int_equal(q.by, STORE_BY_COUNT);
    assert_int_equal(q.cursor, 0);
    assert_int_equal(q.symlen, 0);
}

static void test_set_param(void **state)
{
    (void)state;
    query_req q;
    proto_error err;
    query_req_init(&q, QUERY_TRADES);
    assert_int_equal(query_set_param(&q, S("limit"), S("5"), &err), 0);
    assert_int_equal(q.limit, 5);
    assert_int_equal(query_set_param(&q, S("limit"), S("20000000"), &err), 0);
    assert_int_equal(q.limit, STORE_MAX_TRADES);
    assert_int_equal(query_set_param(&q, S("cursor"), S("18446744073709551614"), &err), 0);
    assert_true(q.cursor == UINT64_MAX - 1);
    assert_int_equal(query_set_param(&q, S("from"), S("2026-01-01T00:00:00Z"), &err), 0);
    assert_true(q.from == T2026);
    assert_int_equal(query_set_param(&q, S("to"), S("-7"), &err), 0);
    assert_true(q.to == -7);

    const struct {
        query_op op;
        const char *name, *val, *want; /* want: text the message must contain */
    } bad[] = {
        {QUERY_TRADES, "limit", "0", "'limit'"},
        {QUERY_TRADES, "limit", "-1", "'limit'"},
        {QUERY_TRADES, "limit", "ten", "'limit'"},
        {QUERY_TRADES, "limit", "", "'limit'"},
        {QUERY_TRADES, "cursor", "18446744073709551616", "'cursor'"},
        {QUERY_TRADES, "from", "yesterday", "'from'"},
        {QUERY_TRADES, "to", "2026-02-30", "'to'"},
        {QUERY_TRADES, "interval", "1s", "does not apply"},
        {QUERY_TRADES, "fromm", "1", "unknown parameter 'fromm'"},
        {QUERY_BARS, "interval", "1 minute", "'interval'"},
        {QUERY_BARS, "limit", "5", "'limit' does not apply to bars"},
        {QUERY_TOP, "by", "price", "'by'"},
        {QUERY_TOP, "top", "0", "'top'"},
        {QUERY_TOP, "from", "0", "does not apply"},
        {QUERY_SYMBOL, "limit", "5", "does not apply"},
        {QUERY_SCHEMA, "x", "1", "unknown parameter 'x'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        query_req_init(&q, bad[i].op);
        memset(&err, 0, sizeof err);
        assert_int_equal(query_set_param(&q, bad[i].name, strlen(bad[i].name), bad[i].val,
                                         strlen(bad[i].val), &err),
                         -1);
        assert_int_equal(err.code, PROTO_E_BAD_QUERY);
        assert_int_equal(err.index, -1);
        if (!strstr(err.msg, bad[i].want))
            fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, bad[i].want);
    }

    query_req_init(&q, QUERY_TOP);
    assert_int_equal(query_set_param(&q, S("top"), S("5000"), &err), 0);
    assert_int_equal(q.top, STORE_MAX_TOP);
    assert_int_equal(query_set_param(&q, S("by"), S("volume"), &err), 0);
    assert_int_equal(q.by, STORE_BY_VOLUME);
    assert_int_equal(query_set_param(&q, S("by"), S("notional"), &err), 0);
    assert_int_equal(q.by, STORE_BY_NOTIONAL);
    assert_int_equal(query_set_param(&q, S("by"), S("count"), &err), 0);
    assert_int_equal(q.by, STORE_BY_COUNT);
    query_req_init(&q, QUERY_BARS);
    assert_int_equal(query_set_param(&q, S("interval"), S("5m"), &err), 0);
    assert_true(q.interval == 300000000000LL);

    /* Long garbage is quoted back truncated, and the message stays bounded. */
    char longval[500];
    memset(longval, 'x', sizeof longval);
    query_req_init(&q, QUERY_TRADES);
    assert_int_equal(query_set_param(&q, S("from"), longval, sizeof longval, &err), -1);
    assert_true(strlen(err.msg) < sizeof err.msg);
    assert_non_null(strstr(err.msg, "..."));

    assert_int_equal(query_set_symbol(&q, S("AAPL"), &err), 0);
    assert_string_equal(q.sym, "AAPL");
    assert_int_equal(q.symlen, 4);
    assert_int_equal(query_set_symbol(&q, S(""), &err), -1);
    assert_int_equal(query_set_symbol(&q, S("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456"), &err), -1);
    assert_int_equal(err.code, PROTO_E_BAD_QUERY);
}

/* ---- TCP decode ------------------------------------------------------------------- */


/* On the TCP wire an integer interval is ns (like ts, from, to); its text
 * form is the duration grammar, where a bare number is seconds. */
static void test_decode_interval_units(void **state)
{
    (void)state;
    for (int text = 0; text < 2; text++) {
        pk k;
        query_req q;
        proto_error err;
        uint64_t qid;
        pk_init(&k);
        msgpack_pack_array(&k.p, 3);
        pk_str(&k, "Q");
        msgpack_pack_uint64(&k.p, 1);
        msgpack_pack_map(&k.p, 3);
        pk_str(&k, "op");
        pk_str(&k, "bars");
        pk_str(&k, "sym");
        pk_str(&k, "AAPL");
        pk_str(&k, "interval");
        if (text)
            pk_str(&k, "2");
        else
            msgpack_pack_uint64(&k.p, 2);
        assert_int_equal(query_decode((uint8_t *)k.sb.data, k.sb.size, &qid, &q, &err), 0);
        assert_true(q.interval == (text ? 2000000000 : 2));
        msgpack_sbuffer_destroy(&k.sb);
    }
}

static void test_decode(void **state)
{
    (void)state;
    pk k;
    query_req q;
    proto_error err;
    uint64_t qid = 99;

    pk_init(&k);
    msgpack_pack_array(&k.p, 3);
    pk_str(&k, "Q");
    msgpack_pack_uint64(&k.p, 7);
    msgpack_pack_map(&k.p, 6);
    pk_str(&k, "limit");
    msgpack_pack_int(&k.p, 50);
    pk_str(&k, "sym");
    pk_str(&k, "AAPL");
    pk_str(&k, "op"); /* op need not come first */
    pk_str(&k, "trades");
    pk_str(&k, "from");
    pk_str(&k, "2026-01-01T00:00:00Z");
    pk_str(&k, "to");
    msgpack_pack_int64(&k.p, -3);
    pk_str(&k, "cursor");
    msgpack_pack_uint64(&k.p, 12);
    assert_int_equal(query_decode((uint8_t *)k.sb.data, k.sb.size, &qid, &q, &err), 0);
    assert_int_equal(qid, 7);
    assert_int_equal(q.op, QUERY_TRADES);
    assert_string_equal(q.sym, "AAPL");
    assert_int_equal(q.limit, 50);
    assert_true(q.from == T2026);
    assert_true(q.to == -3);
    assert_int_equal(q.cursor, 12);
    msgpack_sbuffer_destroy(&k.sb);

    const struct {
        const char *json; /* shape of the third element, built below */
        proto_code code;
        const char *want;
    } cases[] = {
        {"{}", PROTO_E_BAD_QUERY, "no 'op'"},
        {"{\"op\":\"nope\"}", PROTO_E_BAD_QUERY, "unknown op 'nope'"},
        {"{\"op\":5}", PROTO_E_BAD_QUERY, "'op' must be a string"},
        {"{\"op\":\"symbol\"}", PROTO_E_BAD_QUERY, "need 'sym'"},
        {"{\"op\":\"stats\",\"sym\":\"A\"}", PROTO_E_BAD_QUERY, "'sym' does not apply"},
        {"{\"op\":\"symbol\",\"sym\":\"\"}", PROTO_E_BAD_QUERY, "symbol must be"},
        {"{\"op\":\"symbol\",\"sym\":7}", PROTO_E_BAD_QUERY, "'sym' must be a string"},
        {"{\"op\":\"trades\",\"sym\":\"A\",\"limit\":1.5}", PROTO_E_BAD_QUERY, "'limit' must be"},
        {"{\"op\":\"trades\",\"sym\":\"A\",\"limit\":0}", PROTO_E_BAD_QUERY, "'limit'"},
        {"{\"op\":\"top\",\"by\":\"px\"}", PROTO_E_BAD_QUERY, "'by'"},
        {"{\"op\":\"top\",\"what\":1}", PROTO_E_BAD_QUERY, "unknown parameter 'what'"},
        {"[]", PROTO_E_BAD_MESSAGE, "must be a map"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_error_t jerr;
        json_t *j = json_loads(cases[i].json, 0, &jerr);
        assert_non_null(j);
        pk_init(&k);
        msgpack_pack_array(&k.p, 3);
        pk_str(&k, "Q");
        msgpack_pack_uint64(&k.p, 1000 + i);
        if (json_is_array(j)) {
            msgpack_pack_array(&k.p, 0);
        } else {
            const char *key;
            json_t *v;
            msgpack_pack_map(&k.p, json_object_size(j));
            json_object_foreach(j, key, v)
            {
                pk_str(&k, key);
                if (json_is_string(v))
                    pk_str(&k, json_string_value(v));
                else if (json_is_integer(v))
                    msgpack_pack_int64(&k.p, json_integer_value(v));
                else
                    msgpack_pack_double(&k.p, json_real_value(v));
            }
        }
        json_decref(j);
        memset(&err, 0, sizeof err);
        qid = 0;
        assert_int_equal(query_decode((uint8_t *)k.sb.data, k.sb.size, &qid, &q, &err), -1);
        assert_int_equal(qid, 1000 + i); /* echoed in the ERR */
        if (err.code != cases[i].code || !strstr(err.msg, cases[i].want))
            fail_msg("case %zu: %d '%s', want %d '%s'", i, err.code, err.msg, cases[i].code,
                     cases[i].want);
        msgpack_sbuffer_destroy(&k.sb);
    }

    /* Wrong envelope shapes. */
    pk_init(&k);
    msgpack_pack_array(&k.p, 2);
    pk_str(&k, "Q");
    msgpack_pack_uint64(&k.p, 1);
    assert_int_equal(query_decode((uint8_t *)k.sb.data, k.sb.size, &qid, &q, &err), -1);
    assert_int_equal(err.code, PROTO_E_BAD_MESSAGE);
    msgpack_sbuffer_destroy(&k.sb);
    pk_init(&k);
    msgpack_pack_array(&k.p, 3);
    pk_str(&k, "Q");
    pk_str(&k, "id");
    msgpack_pack_map(&k.p, 0);
    assert_int_equal(query_decode((uint8_t *)k.sb.data, k.sb.size, &qid, &q, &err), -1);
    assert_int_equal(err.code, PROTO_E_BAD_MESSAGE);
    assert_int_equal(qid, 0);
    msgpack_sbuffer_destroy(&k.sb);
    const uint8_t junk[] = {0xc1};
    assert_int_equal(query_decode(junk, 1, &qid, &q, &err), -1);
}

/* ---- query_run --------------------------------------------------------------------- */

static store *st;

static void add(store_batch *b, const kind *k, const char *sym, int64_t ts, int64_t px,
                int64_t qty, int side, uint64_t id, const int64_t *extra)
{
    int64_t v[KIND_MAX_FIELDS] = {0};
    int bad = -1;
    v[TRADE_ts] = ts;
    v[TRADE_px] = px;
    v[TRADE_qty] = qty;
    v[TRADE_side] = side;
    v[TRADE_id] = (int64_t)id;
    for (int i = TRADE_NFIELDS; i < k->nfields; i++)
        v[i] = extra[i - TRADE_NFIELDS];
    assert_int_equal(kind_check(k, v, (1u << k->nfields) - 1, &bad), KIND_OK);
    assert_int_equal(store_batch_add(st, b, sym, strlen(sym), k, v), STORE_OK);
}

static int setup_store(void **state)
{
    (void)state;
    store_config cfg = {0};
    store_batch b;
    assert_int_equal(store_open(&st, &cfg), STORE_OK);
    store_batch_init(&b);
    /* AAPL arrives out of time order: open/close follow ts, not arrival. */
    add(&b, &kind_trade, "AAPL", 3000, FX(187.25), FX(10), KIND_SIDE_BUY, 1, NULL);
    add(&b, &kind_trade, "AAPL", 1000, FX(187.00), FX(5), KIND_SIDE_SELL, 2, NULL);
    add(&b, &kind_trade, "MSFT", 1500, FX(400.5), FX(100), KIND_SIDE_UNKNOWN, 3, NULL);
    assert_int_equal(store_batch_reserve(st, &b), STORE_OK);
    store_batch_commit(st, &b);
    store_batch_reset(&b);
    add(&b, &kind_trade, "AAPL", 2000, FX(188.50), FX(2.5), KIND_SIDE_BUY, 4, NULL);
    add(&b, &kind_trade, "AAPL", 4000, FX(186.75), FX(1), KIND_SIDE_BUY, 11, NULL);
    add(&b, &kind_trade, "MSFT", 2500, FX(401), FX(50), KIND_SIDE_SELL, 5, NULL);
    int64_t opt[3] = {FX(200), T2026, KIND_RIGHT_PUT};
    add(&b, &kind_option_trade, "AAPL260116P200", 1200, FX(3.5), FX(7), KIND_SIDE_BUY, 6, opt);
    /* A sum past int64 at 1e-8, and one finer than 1e-8. */
    add(&b, &kind_trade, "BIG", 10, 100000012345678LL, FX(1000000), KIND_SIDE_BUY, 7, NULL);
    add(&b, &kind_trade, "TINY", 10, 1, 1, KIND_SIDE_BUY, 8, NULL);
    add(&b, &kind_trade, "WIDE", 0, FX(1), FX(1), KIND_SIDE_BUY, 9, NULL);
    add(&b, &kind_trade, "WIDE", 1000000000, FX(1), FX(1), KIND_SIDE_BUY, 10, NULL);
    add(&b, &kind_trade, "UID", 5, FX(1), FX(1), KIND_SIDE_BUY, UINT64_MAX, NULL);
    assert_int_equal(store_batch_reserve(st, &b), STORE_OK);
    store_batch_commit(st, &b);
    store_batch_free(&b);
    return 0;
}

static int teardown_store(void **state)
{
    (void)state;
    store_close(st);
    return 0;
}

/* msgpack object -> jansson, to compare the two encodings of one result. */
static json_t *mp_to_json(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return json_null();
    case MSGPACK_OBJECT_BOOLEAN: return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return o->via.u64 > INT64_MAX ? json_real((double)o->via.u64) : json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return json_integer(o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR: return json_stringn(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; i < o->via.array.size; i++)
            json_array_append_new(a, mp_to_json(&o->via.array.ptr[i]));
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            char key[128];
            assert_int_equal(k->type, MSGPACK_OBJECT_STR);
            snprintf(key, sizeof key, "%.*s", (int)k->via.str.size, k->via.str.ptr);
            assert_null(json_object_get(m, key)); /* no duplicate keys */
            json_object_set_new(m, key, mp_to_json(&o->via.map.ptr[i].val));
        }
        return m;
    }
    default: fail_msg("unexpected msgpack type %d", o->type);
    }
    return NULL;
}

/* Equal trees; numbers compared as doubles (JSON prints fixed point
 * exactly, msgpack carries float64). */
static int same(json_t *a, json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) {
        double x = json_number_value(a), y = json_number_value(b);
        return x == y || fabs(x - y) <= 1e-12 * fmax(fabs(x), fabs(y));
    }
    if (json_typeof(a) != json_typeof(b))
        return 0;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    }
    if (json_is_object(a)) {
        const char *k;
        json_t *v;
        if (json_object_size(a) != json_object_size(b))
            return 0;
        json_object_foreach(a, k, v)
        {
            json_t *w = json_object_get(b, k);
            if (!w || !same(v, w))
                return 0;
        }
        return 1;
    }
    return json_equal(a, b);
}

/* Run q through both encoders; return the JSON result parsed, after checking
 * the msgpack result is the same tree (and both fully closed). */
static json_t *run(const query_req *q)
{
    proto_buf jb = {0}, mb = {0};
    emit e;
    proto_error err = {0};
    emit_json_init(&e, &jb);
    if (query_run(st, q, &e, &err) != 0)
        fail_msg("query_run: %s", err.msg);
    assert_false(e.err);
    assert_int_equal(e.depth, 0);
    json_error_t jerr;
    json_t *j = json_loadb(jb.data, jb.len, 0, &jerr);
    if (!j)
        fail_msg("bad JSON (%s): %.*s", jerr.text, (int)jb.len, jb.data);

    emit_msgpack_init(&e, &mb);
    assert_int_equal(query_run(st, q, &e, &err), 0);
    assert_false(e.err);
    msgpack_unpacked u;
    size_t off = 0;
    msgpack_unpacked_init(&u);
    assert_int_equal(msgpack_unpack_next(&u, mb.data, mb.len, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, mb.len); /* announced counts match what was written */
    json_t *m = mp_to_json(&u.data);
    if (!same(j, m)) {
        char *js = json_dumps(j, JSON_SORT_KEYS), *ms = json_dumps(m, JSON_SORT_KEYS);
        fail_msg("JSON and msgpack differ:\n%s\n%s", js, ms);
    }
    json_decref(m);
    msgpack_unpacked_destroy(&u);
    proto_buf_free(&jb);
    proto_buf_free(&mb);
    return j;
}

static void run_fails(const query_req *q, proto_code code, const char *want)
{
    proto_buf b = {0};
    emit e;
    proto_error err = {0};
    emit_json_init(&e, &b);
    assert_int_equal(query_run(st, q, &e, &err), -1);
    assert_int_equal(b.len, 0); /* nothing emitted */
    if (err.code != code || !strstr(err.msg, want))
        fail_msg("got %d '%s', want %d '%s'", err.code, err.msg, code, want);
    proto_buf_free(&b);
}

static const char *sget(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_string(v))
        fail_msg("'%s' is not a string", k);
    return json_string_value(v);
}

static long long iget(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v))
        fail_msg("'%s' is not an integer", k);
    return json_integer_value(v);
}

static double nget(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_number(v))
        fail_msg("'%s' is not a number", k);
    return json_number_value(v);
}

static query_req req(query_op op, const char *sym)
{
    query_req q;
    proto_error err;
    query_req_init(&q, op);
    if (sym)
        assert_int_equal(query_set_symbol(&q, sym, strlen(sym), &err), 0);
    return q;
}

static void param(query_req *q, const char *name, const char *val)
{
    proto_error err;
    if (query_set_param(q, name, strlen(name), val, strlen(val), &err) != 0)
        fail_msg("%s=%s: %s", name, val, err.msg);
}

static void test_run_symbol(void **state)
{
    (void)state;
    query_req q = req(QUERY_SYMBOL, "AAPL");
    json_t *j = run(&q);
    assert_int_equal(json_object_size(j), 20);
    assert_string_equal(sget(j, "symbol"), "AAPL");
    assert_string_equal(sget(j, "kind"), "trade");
    assert_int_equal(iget(j, "count"), 4);
    assert_string_equal(sget(j, "volume_s"), "18.5");
    assert_true(nget(j, "volume") == 18.5);
    assert_string_equal(sget(j, "notional_s"), "3465.5"); /* 1872.5 + 935 + 471.25 + 186.75 */
    assert_string_equal(sget(j, "vwap_s"), "187.32432432");
    assert_string_equal(sget(j, "open_s"), "187");    /* px at ts 1000, arrived second */
    assert_string_equal(sget(j, "close_s"), "186.75"); /* px at ts 4000 */
    assert_string_equal(sget(j, "high_s"), "188.5");
    assert_string_equal(sget(j, "low_s"), "186.75");
    assert_true(nget(j, "high") == 188.5);
    assert_int_equal(iget(j, "first_ts"), 1000);
    assert_int_equal(iget(j, "last_ts"), 4000);
    assert_true(iget(j, "pages") >= 1);
    json_decref(j);

    /* 128-bit sums: exact text past int64, and finer than 1e-8. */
    q = req(QUERY_SYMBOL, "BIG");
    j = run(&q);
    assert_string_equal(sget(j, "notional_s"), "1000000123456.78");
    assert_true(fabs(nget(j, "notional") - 1000000123456.78) < 1e-3);
    assert_string_equal(sget(j, "volume_s"), "1000000");
    assert_string_equal(sget(j, "vwap_s"), "1000000.12345678");
    json_decref(j);
    q = req(QUERY_SYMBOL, "TINY");
    j = run(&q);
    assert_string_equal(sget(j, "notional_s"), "0.0000000000000001");
    assert_true(nget(j, "notional") == 1e-16);
    assert_string_equal(sget(j, "vwap_s"), "0.00000001");
    json_decref(j);

    q = req(QUERY_SYMBOL, "NOPE");
    run_fails(&q, PROTO_E_NOT_FOUND, "NOPE");
}

static void test_run_trades(void **state)
{
    (void)state;
    query_req q = req(QUERY_TRADES, "AAPL");
    json_t *j = run(&q);
    json_t *tr = json_object_get(j, "trades");
    assert_int_equal(json_array_size(tr), 4);
    assert_int_equal(iget(j, "count"), 4);
    assert_true(json_is_null(json_object_get(j, "next_cursor")));
    assert_string_equal(sget(j, "kind"), "trade");
    /* Arrival order, every slot by name, fixed point twice. */
    json_t *t0 = json_array_get(tr, 0);
    assert_int_equal(json_object_size(t0), 7);
    assert_int_equal(iget(t0, "ts"), 3000);
    assert_string_equal(sget(t0, "px_s"), "187.25");
    assert_true(nget(t0, "px") == 187.25);
    assert_string_equal(sget(t0, "qty_s"), "10");
    assert_string_equal(sget(t0, "side"), "B");
    assert_int_equal(iget(t0, "id"), 1);
    assert_string_equal(sget(json_array_get(tr, 1), "side"), "S");
    assert_int_equal(iget(json_array_get(tr, 1), "ts"), 1000);
    json_decref(j);

    /* A uint64 id above INT64_MAX stays unsigned (jansson cannot read it:
     * check the text and the msgpack type). */
    q = req(QUERY_TRADES, "UID");
    proto_buf b = {0};
    emit e;
    proto_error err;
    emit_json_init(&e, &b);
    assert_int_equal(query_run(st, &q, &e, &err), 0);
    assert_non_null(memmem(b.data, b.len, S("\"id\":18446744073709551615}")));
    b.len = 0;
    emit_msgpack_init(&e, &b);
    assert_int_equal(query_run(st, &q, &e, &err), 0);
    const uint8_t u64max[] = {0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_non_null(memmem(b.data, b.len, u64max, sizeof u64max));
    proto_buf_free(&b);
    q = req(QUERY_TRADES, "AAPL");

    /* Paging: limit 3, then the rest from the cursor. */
    param(&q, "limit", "3");
    j = run(&q);
    assert_int_equal(iget(j, "count"), 3);
    long long next = iget(j, "next_cursor");
    json_decref(j);
    char cur[24];
    snprintf(cur, sizeof cur, "%lld", next);
    param(&q, "cursor", cur);
    j = run(&q);
    assert_int_equal(iget(j, "count"), 1);
    assert_int_equal(iget(json_array_get(json_object_get(j, "trades"), 0), "ts"), 4000);
    assert_true(json_is_null(json_object_get(j, "next_cursor")));
    json_decref(j);

    /* [from, to) by time, still in arrival order. */
    q = req(QUERY_TRADES, "AAPL");
    param(&q, "from", "1500");
    param(&q, "to", "3000");
    j = run(&q);
    assert_int_equal(iget(j, "count"), 1);
    assert_int_equal(iget(json_array_get(json_object_get(j, "trades"), 0), "ts"), 2000);
    json_decref(j);

    /* A derived kind renders its own slots from its field table. */
    q = req(QUERY_TRADES, "AAPL260116P200");
    j = run(&q);
    assert_string_equal(sget(j, "kind"), "option_trade");
    t0 = json_array_get(json_object_get(j, "trades"), 0);
    assert_int_equal(json_object_size(t0), 11);
    assert_string_equal(sget(t0, "strike_s"), "200");
    assert_true(nget(t0, "strike") == 200);
    assert_true(iget(t0, "expiry") == T2026);
    assert_string_equal(sget(t0, "right"), "P");
    assert_string_equal(sget(t0, "px_s"), "3.5");
    json_decref(j);

    q = req(QUERY_TRADES, "AAPL");
    param(&q, "from", "5");
    param(&q, "to", "5");
    run_fails(&q, PROTO_E_BAD_QUERY, "'from' must be before 'to'");
    q = req(QUERY_TRADES, "ZZZ");
    run_fails(&q, PROTO_E_NOT_FOUND, "ZZZ");
}

static void test_run_bars(void **state)
{
    (void)state;
    query_req q = req(QUERY_BARS, "AAPL");
    param(&q, "interval", "2000ns");
    json_t *j = run(&q);
    assert_int_equal(iget(j, "interval"), 2000);
    json_t *bars = json_object_get(j, "bars");
    assert_int_equal(json_array_size(bars), 3);
    json_t *b0 = json_array_get(bars, 0), *b1 = json_array_get(bars, 1), *b2 = json_array_get(bars, 2);
    assert_int_equal(json_object_size(b0), 14);
    assert_int_equal(iget(b0, "start"), 0);
    assert_int_equal(iget(b0, "count"), 1);
    assert_string_equal(sget(b0, "open_s"), "187");
    /* [2000, 4000): ts 3000 arrived before ts 2000; open is the earlier ts. */
    assert_int_equal(iget(b1, "start"), 2000);
    assert_int_equal(iget(b1, "count"), 2);
    assert_string_equal(sget(b1, "open_s"), "188.5");
    assert_string_equal(sget(b1, "close_s"), "187.25");
    assert_string_equal(sget(b1, "high_s"), "188.5");
    assert_string_equal(sget(b1, "low_s"), "187.25");
    assert_string_equal(sget(b1, "volume_s"), "12.5");
    assert_string_equal(sget(b1, "vwap_s"), "187.5"); /* (1872.5 + 471.25) / 12.5 */
    assert_int_equal(iget(b2, "start"), 4000);
    assert_string_equal(sget(b2, "close_s"), "186.75");
    json_decref(j);

    /* The default range is the symbol's own span: no limit trips. */
    q = req(QUERY_BARS, "AAPL");
    j = run(&q);
    assert_int_equal(json_array_size(json_object_get(j, "bars")), 1);
    assert_int_equal(iget(j, "interval"), 60000000000LL);
    json_decref(j);

    /* A range past the data gives no bars, not an error. */
    q = req(QUERY_BARS, "AAPL");
    param(&q, "from", "2026-01-01T00:00:00Z");
    j = run(&q);
    assert_int_equal(json_array_size(json_object_get(j, "bars")), 0);
    json_decref(j);

    q = req(QUERY_BARS, "WIDE");
    param(&q, "interval", "1us");
    run_fails(&q, PROTO_E_BAD_QUERY, "at most 10000 bars");
    q = req(QUERY_BARS, "NOPE");
    run_fails(&q, PROTO_E_NOT_FOUND, "NOPE");
}

static void test_run_top(void **state)
{
    (void)state;
    query_req q = req(QUERY_TOP, NULL);
    json_t *j = run(&q);
    assert_string_equal(sget(j, "by"), "count");
    json_t *syms = json_object_get(j, "symbols");
    assert_int_equal(json_array_size(syms), 7);
    assert_string_equal(sget(json_array_get(syms, 0), "symbol"), "AAPL");
    assert_string_equal(sget(json_array_get(syms, 1), "symbol"), "MSFT");
    json_t *m = json_array_get(syms, 1);
    assert_int_equal(json_object_size(m), 8);
    assert_int_equal(iget(m, "count"), 2);
    assert_string_equal(sget(m, "volume_s"), "150");
    assert_string_equal(sget(m, "notional_s"), "60100"); /* 40050 + 20050 */
    assert_string_equal(sget(m, "vwap_s"), "400.66666667");
    json_decref(j);

    q = req(QUERY_TOP, NULL);
    param(&q, "by", "volume");
    param(&q, "top", "2");
    j = run(&q);
    syms = json_object_get(j, "symbols");
    assert_int_equal(json_array_size(syms), 2);
    assert_string_equal(sget(json_array_get(syms, 0), "symbol"), "BIG");
    assert_string_equal(sget(json_array_get(syms, 1), "symbol"), "MSFT");
    json_decref(j);

    q = req(QUERY_TOP, NULL);
    param(&q, "by", "notional");
    param(&q, "top", "3");
    j = run(&q);
    syms = json_object_get(j, "symbols");
    assert_string_equal(sget(j, "by"), "notional");
    assert_string_equal(sget(json_array_get(syms, 0), "symbol"), "BIG");
    assert_string_equal(sget(json_array_get(syms, 1), "symbol"), "MSFT");
    assert_string_equal(sget(json_array_get(syms, 2), "symbol"), "AAPL");
    json_decref(j);
}

static void test_run_stats_schema(void **state)
{
    (void)state;
    query_req q = req(QUERY_STATS, NULL);
    json_t *j = run(&q);
    assert_int_equal(iget(j, "trades"), 12);
    assert_int_equal(iget(j, "symbols"), 7);
    assert_int_equal(iget(j, "batches"), 2);
    assert_true(iget(j, "bytes_used") > 0);
    assert_true(iget(j, "bytes_reserved") >= iget(j, "bytes_used"));
    assert_true(iget(j, "bytes_slots") >= 11 * 32 + 48);
    assert_true(json_is_number(json_object_get(j, "fill")));
    assert_true(nget(j, "bytes_per_trade") > 0);
    const char *keys[] = {"pages", "bytes_cap", "bytes_index", "bytes_pending"};
    for (size_t i = 0; i < 4; i++)
        assert_non_null(json_object_get(j, keys[i]));
    json_decref(j);

    q = req(QUERY_SCHEMA, NULL);
    j = run(&q);
    assert_int_equal(iget(j, "fixed_point_decimals"), 8);
    json_t *kinds = json_object_get(j, "kinds");
    assert_int_equal(json_array_size(kinds), kind_count());
    json_t *k0 = json_array_get(kinds, 0), *k1 = json_array_get(kinds, 1);
    assert_string_equal(sget(k0, "name"), "trade");
    assert_true(json_is_null(json_object_get(k0, "base")));
    assert_int_equal(iget(k0, "slot_bytes"), 32);
    json_t *slots = json_object_get(k0, "slots");
    assert_int_equal(json_array_size(slots), TRADE_NFIELDS);
    json_t *qty = json_array_get(slots, TRADE_qty);
    assert_string_equal(sget(qty, "name"), "qty");
    assert_string_equal(sget(qty, "type"), kind_type_name(KIND_FIX));
    assert_int_equal(iget(qty, "bits"), 62);
    assert_true(json_is_true(json_object_get(qty, "required")));
    assert_true(json_is_false(json_object_get(json_array_get(slots, TRADE_side), "required")));
    assert_true(strlen(sget(qty, "doc")) > 0);
    assert_string_equal(sget(k1, "name"), "option_trade");
    assert_string_equal(sget(k1, "base"), "trade");
    assert_int_equal(iget(k1, "slot_bytes"), 48);
    assert_int_equal(json_array_size(json_object_get(k1, "slots")), OPTION_TRADE_NFIELDS);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest parse_tests[] = {
        cmocka_unit_test(test_parse_time), cmocka_unit_test(test_parse_interval),
        cmocka_unit_test(test_decode_interval_units),
        cmocka_unit_test(test_defaults),   cmocka_unit_test(test_set_param),
        cmocka_unit_test(test_decode),
    };
    const struct CMUnitTest run_tests[] = {
        cmocka_unit_test(test_run_symbol), cmocka_unit_test(test_run_trades),
        cmocka_unit_test(test_run_bars),   cmocka_unit_test(test_run_top),
        cmocka_unit_test(test_run_stats_schema),
    };
    int rc = cmocka_run_group_tests(parse_tests, NULL, NULL);
    return rc | cmocka_run_group_tests(run_tests, setup_store, teardown_store);
}
