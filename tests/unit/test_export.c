/* test_export — parameters, and export_fill against a real store: the CSV
 * and JSONL text of known trades, and the same bytes whether made in one
 * piece or in many small ones (the cursor resumes exactly). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "export.h"

#define S(lit) lit, sizeof(lit) - 1
#define T0 1767225600000000000LL

static store *st;

static void add(store_batch *b, const char *sym, int64_t ts, int64_t px, int side, uint64_t id)
{
    int64_t v[KIND_MAX_FIELDS] = {0};
    int bad = -1;
    v[TRADE_ts] = ts;
    v[TRADE_px] = px;
    v[TRADE_qty] = 150000000; /* 1.5 */
    v[TRADE_side] = side;
    v[TRADE_id] = (int64_t)id;
    assert_int_equal(kind_check(&kind_trade, v, (1u << TRADE_NFIELDS) - 1, &bad), KIND_OK);
    assert_int_equal(store_batch_add(st, b, sym, strlen(sym), &kind_trade, v), STORE_OK);
}

static int setup(void **state)
{
    (void)state;
    store_config cfg = {.max_memory = 64u << 20};
    store_batch b;
    assert_int_equal(store_open(&st, &cfg), STORE_OK);
    store_batch_init(&b);
    add(&b, "AAPL", T0, 18725000000, 1, 1);   /* 187.25 B */
    add(&b, "A,\"B", T0 + 1, -1, 0, 2);       /* -0.00000001, a CSV-hostile symbol */
    for (int i = 0; i < 5000; i++)
        add(&b, "MANY", T0 + i, 100000000 + i, 2, (uint64_t)i);
    assert_int_equal(store_batch_reserve(st, &b), STORE_OK);
    store_batch_commit(st, &b);
    store_batch_free(&b);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    store_close(st);
    return 0;
}

static void req(export_req *r, const char *syms, const char *fmt)
{
    proto_error err = {0};
    export_req_init(r);
    assert_int_equal(export_set_param(r, S("syms"), syms, strlen(syms), &err), 0);
    assert_int_equal(export_set_param(r, S("format"), fmt, strlen(fmt), &err), 0);
    assert_int_equal(export_check(st, r, &err), 0);
}

/* The whole export, made `want` bytes at a time. */
static char *run(const export_req *r, size_t want, uint64_t *trades)
{
    export_cursor c = {0};
    proto_buf out = {0};
    int pieces = 0;
    *trades = 0;
    while (!c.done) {
        size_t before = out.len;
        assert_int_equal(export_fill(st, r, &c, &out, out.len + want), 0);
        assert_true(out.len > before || c.done);
        pieces++;
    }
    *trades = c.trades;
    assert_int_equal(proto_buf_append(&out, "", 1), 0);
    return out.data;
}

static void test_params(void **state)
{
    (void)state;
    export_req *r = malloc(sizeof *r);
    proto_error err = {0};
    export_req_init(r);
    assert_int_equal(export_check(st, r, &err), -1); /* syms is required */
    assert_int_equal(err.code, PROTO_E_BAD_QUERY);
    assert_int_equal(export_set_param(r, S("format"), S("xml"), &err), -1);
    assert_int_equal(export_set_param(r, S("limit"), S("5"), &err), -1);
    assert_int_equal(export_set_param(r, S("syms"), S("A,,B"), &err), -1);
    export_req_init(r);
    assert_int_equal(export_set_param(r, S("syms"), S("AAPL,AAPL"), &err), -1);
    export_req_init(r);
    assert_int_equal(export_set_param(r, S("syms"), S("AAPL,NOPE"), &err), 0);
    assert_int_equal(export_check(st, r, &err), -1);
    assert_int_equal(err.code, PROTO_E_NOT_FOUND);
    export_req_init(r);
    assert_int_equal(export_set_param(r, S("syms"), S("*"), &err), 0);
    assert_int_equal(export_set_param(r, S("from"), S("5"), &err), 0);
    assert_int_equal(export_set_param(r, S("to"), S("5"), &err), 0);
    assert_int_equal(export_check(st, r, &err), -1);
    free(r);
}

static void test_text(void **state)
{
    (void)state;
    export_req *r = malloc(sizeof *r);
    uint64_t n;
    /* A symbol holding ',' cannot be named in syms (the separator): "*"
     * exports it; symbol id order is creation order. */
    req(r, "*", "csv");
    char *csv = run(r, 1 << 20, &n);
    const char *want = "symbol,kind,ts,px,qty,side,id,strike,expiry,right\n"
                       "AAPL,trade,1767225600000000000,187.25,1.5,B,1,,,\n"
                       "\"A,\"\"B\",trade,1767225600000000001,-0.00000001,1.5,,2,,,\n"
                       "MANY,trade,1767225600000000000,1,1.5,S,0,,,\n";
    assert_memory_equal(csv, want, strlen(want));
    assert_int_equal(n, 5002);
    free(csv);
    req(r, "AAPL", "jsonl");
    char *js = run(r, 1 << 20, &n);
    assert_string_equal(js, "{\"symbol\":\"AAPL\",\"kind\":\"trade\",\"ts\":1767225600000000000,"
                            "\"px\":187.25,\"px_s\":\"187.25\",\"qty\":1.5,\"qty_s\":\"1.5\","
                            "\"side\":\"B\",\"id\":1}\n");
    free(js);
    free(r);
}

/* Pieces of any size concatenate to the one-piece export. */
static void test_pieces(void **state)
{
    (void)state;
    export_req *r = malloc(sizeof *r);
    const char *fmts[] = {"csv", "jsonl"};
    for (int f = 0; f < 2; f++) {
        uint64_t n1, n2;
        req(r, "*", fmts[f]);
        char *whole = run(r, SIZE_MAX / 2, &n1);
        char *small = run(r, 1000, &n2);
        assert_int_equal(n1, 5002);
        assert_int_equal(n2, 5002);
        assert_string_equal(whole, small);
        free(whole);
        free(small);
    }
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_pieces),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
