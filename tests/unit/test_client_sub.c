/* test_client_sub — the C client's subscription decoder and cursor
 * (sub_decode.c, sub_cursor.c): PROTOCOL.md §11's example bytes, messages
 * packed with msgpack-c (an independent encoder) and fed whole or a byte
 * at a time through the reply reader, the cursor's moves (S, holes, GAP,
 * nothing after UNSUB), every ERR mapped to its code, malformed pushes
 * refused with a message and the cursor untouched, and the cursor's text
 * form (escapes, every parse error, a map past its first growth). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"
#include "pk.h"

static const char *const TRADE_SLOTS[] = {"ts", "px", "qty", "side", "id"};
static const char *const OPTION_SLOTS[] = {"ts",  "px",     "qty",   "side", "id",
                                           "strike", "expiry", "right"};

static void pack_kind(pk *k, const char *name, const char *const *slots, int n)
{
    msgpack_pack_map(&k->p, 3);
    pk_str(k, "name");
    pk_str(k, name);
    pk_str(k, "base");
    msgpack_pack_nil(&k->p);
    pk_str(k, "slots");
    msgpack_pack_array(&k->p, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        msgpack_pack_map(&k->p, 2);
        pk_str(k, "name");
        pk_str(k, slots[i]);
        pk_str(k, "type");
        pk_str(k, "fixed");
    }
}

/* ["R", 2, {"kinds": [trade, option_trade], "fixed_point_decimals": 8}] */
static void schema(slotd__subdec *d)
{
    pk k;
    pk_init(&k);
    msgpack_pack_array(&k.p, 3);
    pk_str(&k, "R");
    msgpack_pack_uint64(&k.p, 2);
    msgpack_pack_map(&k.p, 2);
    pk_str(&k, "kinds");
    msgpack_pack_array(&k.p, 2);
    pack_kind(&k, "trade", TRADE_SLOTS, 5);
    pack_kind(&k, "option_trade", OPTION_SLOTS, 8);
    pk_str(&k, "fixed_point_decimals");
    msgpack_pack_uint64(&k.p, 8);
    slotd_batch_error e;
    assert_int_equal(slotd__subdec_schema(d, 2, k.sb.data, k.sb.size, &e), 0);
    assert_true(d->named);
    assert_int_equal(d->nkinds, 2);
    msgpack_sbuffer_destroy(&k.sb);
}

/* A decoder under test with the message just packed and what it gave. */
typedef struct fx {
    slotd__subdec d;
    pk k;
    slotd_sub_event ev;
    slotd_batch_error e;
} fx;

/* Decodes f->k (then freed). */
static int feed(fx *f)
{
    int rc = slotd__subdec_msg(&f->d, f->k.sb.data, f->k.sb.size, &f->ev, &f->e);
    msgpack_sbuffer_destroy(&f->k.sb);
    return rc;
}

static uint64_t pos(const slotd__subdec *d, const char *sym)
{
    int found;
    return slotd__cursor_get(&d->cur, sym, strlen(sym), &found);
}

/* PROTOCOL.md §11's SUBOK and S, byte for byte. */
static const unsigned char DOC_SUBOK[] = {0x93, 0xa5, 0x53, 0x55, 0x42, 0x4f, 0x4b, 0x01,
                                          0x81, 0xa4, 0x41, 0x41, 0x50, 0x4c, 0x29};
static const unsigned char DOC_S[] = {
    0x96, 0xa1, 0x53, 0x01, 0xa4, 0x41, 0x41, 0x50, 0x4c, 0xa5, 0x74, 0x72, 0x61, 0x64,
    0x65, 0x2a, 0x91, 0x95, 0xcf, 0x18, 0x86, 0x72, 0x51, 0xed, 0xfa, 0x00, 0x00, 0xa6,
    0x31, 0x38, 0x37, 0x2e, 0x32, 0x35, 0xa3, 0x31, 0x30, 0x30, 0xa1, 0x42, 0x01};

static void check_doc_push(const slotd_sub_event *ev)
{
    assert_int_equal(ev->type, SLOTD_SUB_TRADES);
    assert_string_equal(ev->sym, "AAPL");
    assert_string_equal(ev->kind, "trade");
    assert_int_equal(ev->ntrades, 1);
    assert_int_equal(ev->nslots, 5);
    assert_true(ev->exact);
    assert_int_equal(ev->first, 41);
    assert_int_equal(ev->next, 42);
    const slotd_value *ts = slotd_sub_slot(ev, 0, "ts"), *px = slotd_sub_slot(ev, 0, "px");
    assert_int_equal(ts->type, SLOTD_UINT);
    assert_int_equal(ts->u, 1767225600000000000ull);
    assert_int_equal(ts->i, 1767225600000000000ll);
    assert_int_equal(px->type, SLOTD_TEXT);
    assert_string_equal(px->text, "187.25");
    assert_int_equal(px->len, 6);
    assert_string_equal(slotd_sub_slot(ev, 0, "qty")->text, "100");
    assert_string_equal(slotd_sub_slot(ev, 0, "side")->text, "B");
    assert_int_equal(slotd_sub_slot(ev, 0, "id")->u, 1);
    assert_null(slotd_sub_slot(ev, 0, "strike"));
    assert_null(slotd_sub_slot(ev, 1, "px"));
}

static void test_doc_example(void **state)
{
    (void)state;
    slotd__subdec d;
    slotd__subdec_init(&d, 1);
    schema(&d);
    slotd_sub_event ev;
    slotd_batch_error e;
    assert_int_equal(slotd__subdec_msg(&d, (const char *)DOC_SUBOK, sizeof DOC_SUBOK, &ev, &e),
                     SLOTD__SUB_SUBOK);
    assert_int_equal(pos(&d, "AAPL"), 41);
    assert_int_equal(slotd__subdec_msg(&d, (const char *)DOC_S, sizeof DOC_S, &ev, &e),
                     SLOTD__SUB_EVENT);
    check_doc_push(&ev);
    char text[64];
    assert_int_equal(slotd__cursor_text(&d.cur, text, sizeof text), 7);
    assert_string_equal(text, "AAPL:42");
    assert_int_equal(d.trades, 1);
    slotd__subdec_free(&d);
}

/* The same bytes through the reply reader a byte at a time: whole
 * messages come out only once complete. */
static void test_stream_split(void **state)
{
    (void)state;
    unsigned char all[sizeof DOC_SUBOK + sizeof DOC_S];
    memcpy(all, DOC_SUBOK, sizeof DOC_SUBOK);
    memcpy(all + sizeof DOC_SUBOK, DOC_S, sizeof DOC_S);
    slotd__subdec d;
    slotd__subdec_init(&d, 1);
    schema(&d);
    slotd__reader rd;
    slotd__reader_init(&rd);
    int kinds[2], got = 0;
    slotd_sub_event ev;
    slotd_batch_error e;
    for (size_t i = 0; i < sizeof all; i++) {
        size_t cap;
        char *space = slotd__reader_space(&rd, 1, &cap);
        assert_non_null(space);
        *space = (char)all[i];
        slotd__reader_commit(&rd, 1);
        const char *m;
        size_t n;
        int k = slotd__reader_msg(&rd, &m, &n);
        assert_true(k >= 0);
        if (k) {
            assert_true(got < 2);
            assert_int_equal(i + 1, got == 0 ? sizeof DOC_SUBOK : sizeof all);
            kinds[got++] = slotd__subdec_msg(&d, m, n, &ev, &e);
        }
    }
    assert_int_equal(got, 2);
    assert_int_equal(kinds[0], SLOTD__SUB_SUBOK);
    assert_int_equal(kinds[1], SLOTD__SUB_EVENT);
    check_doc_push(&ev);
    slotd__reader_destroy(&rd);
    slotd__subdec_free(&d);
}

static void pack_subok(pk *k, uint64_t id, const char *sym, uint64_t p)
{
    pk_init(k);
    msgpack_pack_array(&k->p, 3);
    pk_str(k, "SUBOK");
    msgpack_pack_uint64(&k->p, id);
    msgpack_pack_map(&k->p, sym ? 1 : 0);
    if (sym) {
        pk_str(k, sym);
        msgpack_pack_uint64(&k->p, p);
    }
}

/* ["S", id, sym, kind, next, [n trades of `trade`]]: trade i has id i. */
static void pack_s(pk *k, uint64_t id, const char *sym, const char *kind, uint64_t next, int n)
{
    pk_init(k);
    msgpack_pack_array(&k->p, 6);
    pk_str(k, "S");
    msgpack_pack_uint64(&k->p, id);
    pk_str(k, sym);
    pk_str(k, kind);
    msgpack_pack_uint64(&k->p, next);
    msgpack_pack_array(&k->p, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        msgpack_pack_array(&k->p, 5);
        msgpack_pack_uint64(&k->p, 1767225600000000000ull + (uint64_t)i);
        pk_str(k, "-1.5");
        pk_str(k, "0.00000001");
        pk_str(k, "");
        msgpack_pack_uint64(&k->p, (uint64_t)i);
    }
}

static void pack_gap(pk *k, uint64_t id, const char *sym, uint64_t from, uint64_t to)
{
    pk_init(k);
    msgpack_pack_array(&k->p, 5);
    pk_str(k, "GAP");
    msgpack_pack_uint64(&k->p, id);
    pk_str(k, sym);
    msgpack_pack_uint64(&k->p, from);
    msgpack_pack_uint64(&k->p, to);
}

static void pack_err(pk *k, uint64_t id, const char *code, const char *message)
{
    pk_init(k);
    msgpack_pack_array(&k->p, 5);
    pk_str(k, "ERR");
    msgpack_pack_uint64(&k->p, id);
    pk_str(k, code);
    pk_str(k, message);
    msgpack_pack_nil(&k->p);
}

/* A subscription (id 7) to one symbol at position 10, named. */
static void open_at_10(fx *f)
{
    slotd__subdec_init(&f->d, 7);
    schema(&f->d);
    pack_subok(&f->k, 7, "X", 10);
    assert_int_equal(feed(f), SLOTD__SUB_SUBOK);
}

static void test_cursor_moves(void **state)
{
    (void)state;
    fx f;
    open_at_10(&f);
    /* a run without holes: positions 10..12 */
    pack_s(&f.k, 7, "X", "trade", 13, 3);
    assert_int_equal(feed(&f), SLOTD__SUB_EVENT);
    assert_true(f.ev.exact);
    assert_int_equal(f.ev.first, 10);
    assert_int_equal(f.ev.next, 13);
    assert_string_equal(slotd_sub_slot(&f.ev, 2, "px")->text, "-1.5");
    assert_string_equal(slotd_sub_slot(&f.ev, 2, "qty")->text, "0.00000001");
    assert_string_equal(slotd_sub_slot(&f.ev, 2, "side")->text, "");
    assert_int_equal(slotd_sub_slot(&f.ev, 2, "id")->u, 2);
    assert_int_equal(pos(&f.d, "X"), 13);
    /* deletes left holes: 2 trades up to position 20, positions unknown */
    pack_s(&f.k, 7, "X", "trade", 20, 2);
    assert_int_equal(feed(&f), SLOTD__SUB_EVENT);
    assert_false(f.ev.exact);
    assert_int_equal(f.ev.next, 20);
    assert_int_equal(pos(&f.d, "X"), 20);
    /* a symbol SUBOK did not list starts at 0 */
    pack_s(&f.k, 7, "NEW", "trade", 1, 1);
    assert_int_equal(feed(&f), SLOTD__SUB_EVENT);
    assert_true(f.ev.exact);
    assert_int_equal(f.ev.first, 0);
    assert_int_equal(pos(&f.d, "NEW"), 1);
    /* GAP: the cursor jumps to `to` */
    pack_gap(&f.k, 7, "X", 20, 500);
    assert_int_equal(feed(&f), SLOTD__SUB_EVENT);
    assert_int_equal(f.ev.type, SLOTD_SUB_GAP);
    assert_string_equal(f.ev.sym, "X");
    assert_int_equal(f.ev.first, 20);
    assert_int_equal(f.ev.next, 500);
    assert_int_equal(pos(&f.d, "X"), 500);
    assert_int_equal(f.d.trades, 6);
    /* after UNSUB: pushes are read, not handed out; the cursor stays */
    f.d.dropping = 1;
    pack_s(&f.k, 7, "X", "trade", 502, 2);
    assert_int_equal(feed(&f), SLOTD__SUB_DROPPED);
    pack_gap(&f.k, 7, "X", 502, 600);
    assert_int_equal(feed(&f), SLOTD__SUB_DROPPED);
    assert_int_equal(pos(&f.d, "X"), 500);
    assert_int_equal(f.d.trades, 6);
    pk_init(&f.k);
    msgpack_pack_array(&f.k.p, 2);
    pk_str(&f.k, "UNSUBOK");
    msgpack_pack_uint64(&f.k.p, 7);
    assert_int_equal(feed(&f), SLOTD__SUB_UNSUBOK);
    slotd__subdec_free(&f.d);
}

/* Without the schema: values in slot order, the first trade sets the count. */
static void test_no_names(void **state)
{
    (void)state;
    fx f;
    slotd__subdec_init(&f.d, 1);
    pack_s(&f.k, 1, "Y", "some_kind", 2, 2);
    assert_int_equal(feed(&f), SLOTD__SUB_EVENT);
    assert_null(f.ev.slot_names);
    assert_null(slotd_sub_slot(&f.ev, 0, "px"));
    assert_string_equal(f.ev.kind, "some_kind");
    assert_int_equal(f.ev.nslots, 5);
    assert_string_equal(f.ev.values[1 * 5 + 1].text, "-1.5");
    assert_int_equal(f.ev.values[1 * 5 + 4].u, 1);
    slotd__subdec_free(&f.d);
}

/* Every integer and string form a value may take (not only the one-byte
 * forms the decoder reads inline). */
static void test_value_forms(void **state)
{
    (void)state;
    fx f;
    slotd__subdec_init(&f.d, 1);
    char long_text[41];
    memset(long_text, 'x', 40);
    long_text[40] = '\0';
    pk_init(&f.k);
    msgpack_pack_array(&f.k.p, 6);
    pk_str(&f.k, "S");
    msgpack_pack_uint64(&f.k.p, 1);
    pk_str(&f.k, "V");
    pk_str(&f.k, "k");
    msgpack_pack_uint64(&f.k.p, 1);
    msgpack_pack_array(&f.k.p, 1);
    msgpack_pack_array(&f.k.p, 6);
    msgpack_pack_int64(&f.k.p, -5);                    /* negative fixint */
    msgpack_pack_int64(&f.k.p, -300);                  /* int16 */
    msgpack_pack_uint64(&f.k.p, (1ull << 63) + 1);     /* past INT64_MAX */
    msgpack_pack_uint64(&f.k.p, 200);                  /* uint8 */
    pk_str(&f.k, long_text);                           /* str8 */
    msgpack_pack_str_with_body(&f.k.p, "", 0);         /* empty fixstr */
    assert_int_equal(feed(&f), SLOTD__SUB_EVENT);
    const slotd_value *v = f.ev.values;
    assert_int_equal(f.ev.nslots, 6);
    assert_int_equal(v[0].type, SLOTD_INT);
    assert_int_equal(v[0].i, -5);
    assert_int_equal(v[1].type, SLOTD_INT);
    assert_int_equal(v[1].i, -300);
    assert_int_equal(v[2].type, SLOTD_UINT);
    assert_true(v[2].u == (1ull << 63) + 1);
    assert_int_equal(v[2].i, 0);
    assert_int_equal(v[3].type, SLOTD_UINT);
    assert_int_equal(v[3].u, 200);
    assert_int_equal(v[3].i, 200);
    assert_int_equal(v[4].type, SLOTD_TEXT);
    assert_string_equal(v[4].text, long_text);
    assert_int_equal(v[4].len, 40);
    assert_int_equal(v[5].type, SLOTD_TEXT);
    assert_string_equal(v[5].text, "");
    slotd__subdec_free(&f.d);
}

typedef struct errcase {
    uint64_t id;
    const char *code;
    int want;
} errcase;

static void test_errors(void **state)
{
    (void)state;
    static const errcase cases[] = {
        {7, "CURSOR_GONE", SLOTD_ECURSOR_GONE}, {7, "BAD_SUB", SLOTD_ESUB},
        {7, "UNAUTHORIZED", SLOTD_EUNAUTHORIZED}, {0, "FENCED", SLOTD_EFENCED},
        {0, "IDLE_TIMEOUT", SLOTD_EDISCONNECTED}, {0, "MALFORMED", SLOTD_EPROTOCOL},
        {7, "SOMETHING_NEW", SLOTD_ESUB},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fx f;
        open_at_10(&f);
        pack_err(&f.k, cases[i].id, cases[i].code, "the server's words");
        assert_int_equal(feed(&f), cases[i].want);
        assert_int_equal(f.e.code, cases[i].want);
        assert_string_equal(f.e.wire_code, cases[i].code);
        assert_string_equal(f.e.message, "the server's words");
        assert_int_equal(pos(&f.d, "X"), 10);
        slotd__subdec_free(&f.d);
    }
}

/* Malformed messages: SLOTD_EPROTOCOL, a message naming what, and the
 * cursor and trade count untouched. Each builder packs one. */
static void bad_wrong_id(pk *k) { pack_s(k, 8, "X", "trade", 11, 1); }
static void bad_unknown_kind(pk *k) { pack_s(k, 7, "X", "future", 11, 1); }
static void bad_next_behind(pk *k) { pack_s(k, 7, "X", "trade", 11, 3); }
static void bad_gap_backwards(pk *k) { pack_gap(k, 7, "X", 30, 20); }
static void bad_long_sym(pk *k)
{
    pack_s(k, 7, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456", "trade", 1, 1); /* 33 bytes */
}
static void good_empty_subok(pk *k) { pack_subok(k, 7, NULL, 0); }

static void s_head(pk *k, const char *sym, uint64_t next, uint32_t n)
{
    pk_init(k);
    msgpack_pack_array(&k->p, 6);
    pk_str(k, "S");
    msgpack_pack_uint64(&k->p, 7);
    pk_str(k, sym);
    pk_str(k, "trade");
    msgpack_pack_uint64(&k->p, next);
    msgpack_pack_array(&k->p, n);
}

static void bad_float(pk *k)
{
    s_head(k, "X", 11, 1);
    msgpack_pack_array(&k->p, 5);
    msgpack_pack_uint64(&k->p, 1);
    msgpack_pack_double(&k->p, 187.25); /* px as a float: not what the server sends */
    pk_str(k, "1");
    pk_str(k, "B");
    msgpack_pack_uint64(&k->p, 1);
}

static void bad_slot_count(pk *k)
{
    s_head(k, "X", 12, 2);
    for (int i = 0; i < 2; i++) {
        msgpack_pack_array(&k->p, i ? 4 : 5);
        for (int j = 0; j < (i ? 4 : 5); j++)
            msgpack_pack_uint64(&k->p, 1);
    }
}

static void bad_trade_not_array(pk *k)
{
    s_head(k, "X", 11, 1);
    pk_str(k, "a trade");
}

static void bad_nil_sym(pk *k)
{
    pk_init(k);
    msgpack_pack_array(&k->p, 6);
    pk_str(k, "S");
    msgpack_pack_uint64(&k->p, 7);
    msgpack_pack_nil(&k->p);
    pk_str(k, "trade");
    msgpack_pack_uint64(&k->p, 11);
    msgpack_pack_array(&k->p, 0);
}

static void bad_empty_run(pk *k) { s_head(k, "X", 11, 0); }

/* Cut inside its last trade's id (a decoder called without the reader). */
static void bad_cut(pk *k)
{
    pack_s(k, 7, "X", "trade", 13, 3);
    k->sb.size -= 1;
}

static void bad_short_s(pk *k)
{
    pk_init(k);
    msgpack_pack_array(&k->p, 4);
    pk_str(k, "S");
    msgpack_pack_uint64(&k->p, 7);
    pk_str(k, "X");
    pk_str(k, "trade");
}

static void bad_not_array(pk *k)
{
    pk_init(k);
    pk_str(k, "S");
}

static void bad_unknown_message(pk *k)
{
    pk_init(k);
    msgpack_pack_array(&k->p, 2);
    pk_str(k, "HELLO");
    msgpack_pack_uint64(&k->p, 7);
}

static void bad_subok_entry(pk *k)
{
    pk_init(k);
    msgpack_pack_array(&k->p, 3);
    pk_str(k, "SUBOK");
    msgpack_pack_uint64(&k->p, 7);
    msgpack_pack_map(&k->p, 1);
    pk_str(k, "X");
    pk_str(k, "ten");
}

typedef struct badcase {
    void (*build)(pk *k);
    const char *says;
} badcase;

static void test_malformed(void **state)
{
    (void)state;
    static const badcase cases[] = {
        {bad_wrong_id, "not this subscription's 7"},
        {bad_unknown_kind, "kind 'future' is not in the schema"},
        {bad_next_behind, "before the cursor's 10"},
        {bad_gap_backwards, "GAP not shaped"},
        {bad_long_sym, "S not shaped"},
        {bad_float, "trade 0 slot 1 is not an integer or a string"},
        {bad_slot_count, "trade 1 has 4 slots, the kind 5"},
        {bad_trade_not_array, "trade 0 is not an array"},
        {bad_nil_sym, "S not shaped"},
        {bad_empty_run, "S not shaped"},
        {bad_cut, "S: trade 2 is cut short"},
        {bad_short_s, "S not shaped"},
        {bad_not_array, "not shaped [type, id"},
        {bad_unknown_message, "unexpected message 'HELLO'"},
        {bad_subok_entry, "SUBOK: entry 0"},
        {good_empty_subok, NULL}, /* a well-formed empty SUBOK: accepted (resets the cursor) */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fx f;
        open_at_10(&f);
        cases[i].build(&f.k);
        int rc = feed(&f);
        if (!cases[i].says) {
            assert_int_equal(rc, SLOTD__SUB_SUBOK);
        } else {
            if (rc != SLOTD_EPROTOCOL || !strstr(f.e.message, cases[i].says))
                fail_msg("case %zu: rc %d, message '%s'", i, rc, f.e.message);
            assert_int_equal(f.e.code, SLOTD_EPROTOCOL);
            assert_int_equal(pos(&f.d, "X"), 10);
            assert_int_equal(f.d.trades, 0);
        }
        slotd__subdec_free(&f.d);
    }
}

/* A declared length beyond the bytes present never reaches the decoder:
 * the reader waits for them (and refuses one past SLOTD__REPLY_MAX). */
static void test_truncated_and_huge(void **state)
{
    (void)state;
    pk k;
    pack_s(&k, 7, "X", "trade", 13, 3);
    slotd__reader rd;
    slotd__reader_init(&rd);
    size_t cap;
    char *space = slotd__reader_space(&rd, k.sb.size, &cap);
    memcpy(space, k.sb.data, k.sb.size - 1);
    slotd__reader_commit(&rd, k.sb.size - 1);
    const char *m;
    size_t n;
    assert_int_equal(slotd__reader_msg(&rd, &m, &n), 0);
    msgpack_sbuffer_destroy(&k.sb);
    slotd__reader_reset(&rd);
    /* ["S", 7, "X", "trade", 1, array32 of 2^32-1 trades]: refused at once */
    static const unsigned char huge[] = {0x96, 0xa1, 'S', 0x07, 0xa1, 'X', 0xa5, 't', 'r', 'a',
                                         'd',  'e',  0x01, 0xdd, 0xff, 0xff, 0xff, 0xff};
    space = slotd__reader_space(&rd, sizeof huge, &cap);
    memcpy(space, huge, sizeof huge);
    slotd__reader_commit(&rd, sizeof huge);
    assert_int_equal(slotd__reader_msg(&rd, &m, &n), SLOTD_EPROTOCOL);
    slotd__reader_destroy(&rd);
}

static void test_schema_malformed(void **state)
{
    (void)state;
    slotd__subdec d;
    slotd__subdec_init(&d, 1);
    slotd_batch_error e;
    pk k;
    pk_init(&k); /* a kind without slots */
    msgpack_pack_array(&k.p, 3);
    pk_str(&k, "R");
    msgpack_pack_uint64(&k.p, 2);
    msgpack_pack_map(&k.p, 1);
    pk_str(&k, "kinds");
    msgpack_pack_array(&k.p, 1);
    msgpack_pack_map(&k.p, 1);
    pk_str(&k, "name");
    pk_str(&k, "trade");
    assert_int_equal(slotd__subdec_schema(&d, 2, k.sb.data, k.sb.size, &e), SLOTD_EPROTOCOL);
    assert_non_null(strstr(e.message, "schema: kind 0"));
    assert_false(d.named);
    msgpack_sbuffer_destroy(&k.sb);
    pack_err(&k, 2, "UNAUTHORIZED", "no query perm"); /* --auth-file without query */
    assert_int_equal(slotd__subdec_schema(&d, 2, k.sb.data, k.sb.size, &e), SLOTD_EUNAUTHORIZED);
    assert_string_equal(e.wire_code, "UNAUTHORIZED");
    msgpack_sbuffer_destroy(&k.sb);
    pack_subok(&k, 2, NULL, 0); /* not an R */
    assert_int_equal(slotd__subdec_schema(&d, 2, k.sb.data, k.sb.size, &e), SLOTD_EPROTOCOL);
    msgpack_sbuffer_destroy(&k.sb);
    slotd__subdec_free(&d);
}

static void test_cursor_text(void **state)
{
    (void)state;
    slotd__cursor c = {0}, back = {0};
    static const char *const syms[] = {"A:B", "x,y", "50%", "sp ace", "\x01", "AAPL"};
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(slotd__cursor_set(&c, syms[i], strlen(syms[i]), i * 1000 + 7), 0);
    char text[256];
    int64_t n = slotd__cursor_text(&c, text, sizeof text);
    assert_int_equal((size_t)n, strlen(text));
    assert_non_null(strstr(text, "A%3AB:7"));
    assert_non_null(strstr(text, "x%2Cy:1007"));
    assert_non_null(strstr(text, "50%25:2007"));
    assert_non_null(strstr(text, "sp%20ace:3007"));
    assert_non_null(strstr(text, "%01:4007"));
    assert_non_null(strstr(text, "AAPL:5007"));
    /* too small a buffer: cut, NUL-terminated, the whole length returned */
    char small[5];
    assert_int_equal(slotd__cursor_text(&c, small, sizeof small), n);
    assert_int_equal(strlen(small), 4);
    assert_int_equal(slotd__cursor_text(&c, NULL, 0), n);
    char err[128];
    assert_int_equal(slotd__cursor_parse(&back, text, err, sizeof err), 0);
    assert_int_equal(back.n, 6);
    for (size_t i = 0; i < 6; i++) {
        int found;
        assert_int_equal(slotd__cursor_get(&back, syms[i], strlen(syms[i]), &found),
                         i * 1000 + 7);
        assert_true(found);
    }
    assert_int_equal(slotd__cursor_parse(&back, "", err, sizeof err), 0);
    assert_int_equal(back.n, 0);
    static const struct {
        const char *text, *says;
    } bad[] = {
        {"A", "expected 'sym:pos'"},
        {"A:", "not a number"},
        {":5", "expected 'sym:pos'"},
        {"A:1,", "trailing ','"},
        {"A:1,A:2", "a symbol twice"},
        {"A:1;B:2", "expected ','"},
        {"%zz:1", "2 hex digits"},
        {"%4", "2 hex digits"},
        {"A,B:1", "',' before"},
        {"A:18446744073709551616", "too large"},
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345:1", "longer than 31"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = slotd__cursor_parse(&back, bad[i].text, err, sizeof err);
        if (rc != SLOTD_EINVAL || !strstr(err, bad[i].says))
            fail_msg("'%s': rc %d, '%s'", bad[i].text, rc, err);
    }
    assert_int_equal(slotd__cursor_parse(&back, "A:18446744073709551615", err, sizeof err), 0);
    slotd__cursor_free(&c);
    slotd__cursor_free(&back);
}

/* A "*" cursor over thousands of symbols: growth keeps every entry. */
static void test_cursor_many(void **state)
{
    (void)state;
    slotd__cursor c = {0};
    char sym[16];
    for (int i = 0; i < 5000; i++) {
        snprintf(sym, sizeof sym, "SYM%04d", i);
        assert_int_equal(slotd__cursor_set(&c, sym, strlen(sym), (uint64_t)i), 0);
    }
    snprintf(sym, sizeof sym, "SYM%04d", 42);
    assert_int_equal(slotd__cursor_set(&c, sym, strlen(sym), 4242), 0); /* an update */
    assert_int_equal(c.n, 5000);
    for (int i = 0; i < 5000; i++) {
        int found;
        snprintf(sym, sizeof sym, "SYM%04d", i);
        assert_int_equal(slotd__cursor_get(&c, sym, strlen(sym), &found), i == 42 ? 4242 : i);
        assert_true(found);
    }
    int found;
    assert_int_equal(slotd__cursor_get(&c, "NONE", 4, &found), 0);
    assert_false(found);
    assert_int_equal(slotd__cursor_set(&c, "", 0, 1), SLOTD_EINVAL);
    slotd__cursor_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doc_example),       cmocka_unit_test(test_stream_split),
        cmocka_unit_test(test_cursor_moves),      cmocka_unit_test(test_no_names),
        cmocka_unit_test(test_errors),            cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_truncated_and_huge), cmocka_unit_test(test_schema_malformed),
        cmocka_unit_test(test_cursor_text),       cmocka_unit_test(test_cursor_many),
        cmocka_unit_test(test_value_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
