/* test_cpage — the compact page codec: every page of records the kinds
 * accept comes back bit for bit (random W1-like pages, extreme values,
 * jumps across the full range, out-of-order and duplicate ts, zero qty,
 * max ids, negative prices, option trades, tombstones, byte-aligned
 * widths), a delete on a compact page equals one on the wide page, a page
 * that does not compress says so, a damaged body is refused, and every
 * body written is byte for byte the one the format defines (a reference
 * encoder here). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cpage.h"
#include "kind.h"

#define MAXN 63
#define E8 100000000LL
#define TS0 1767225600000000000LL

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dULL;
}
static uint64_t below(uint64_t n) { return n ? (uint64_t)(((unsigned __int128)rnd() * n) >> 64) : 0; }

/* The body the format (cpage.h) says a plan makes, built the slow way:
 * header fields written one by one, each q by division, put bit by bit.
 * Pins the bytes: a snapshot's compact bodies and those written now are
 * the same for the same page. */
static void reference_body(const cpage_plan *pl, const kind *k, const unsigned char *slots,
                           unsigned char *ref)
{
    const unsigned nf = pl->nfields;
    memset(ref, 0, pl->bytes);
    ref[0] = CPAGE_MAGIC;
    ref[1] = (unsigned char)nf;
    memcpy(ref + 2, &pl->rbits, 2);
    memcpy(ref + 4, &pl->stepmask, 2);
    memcpy(ref + 6, &pl->hdr, 2);
    size_t at = 8;
    for (unsigned f = 0; f < nf; f++)
        ref[at + f] = pl->width[f];
    at += (nf + 7) / 8 * 8;
    for (unsigned f = 0; f < nf; f++, at += 8)
        memcpy(ref + at, &pl->base[f], 8);
    for (unsigned f = 0; f < nf; f++)
        if (pl->stepmask & (1u << f)) {
            memcpy(ref + at, &pl->step[f], 8);
            at += 8;
        }
    assert_int_equal(at, pl->hdr);
    const uint64_t dead = k->fields[0].bits == 64 ? UINT64_MAX : (1ULL << k->fields[0].bits) - 1;
    for (uint32_t i = 0; i < pl->n; i++) {
        int64_t v[OPTION_TRADE_NFIELDS];
        k->unpack(slots + (size_t)i * k->size, v);
        uint64_t bit = (uint64_t)i * pl->rbits;
        for (unsigned f = 0; f < nf; f++) {
            const uint64_t x = (uint64_t)v[f];
            uint64_t q = (x - pl->base[f]) / pl->step[f];
            if (f == 0 && x == dead)
                q = pl->width[0] == 64 ? UINT64_MAX : (1ULL << pl->width[0]) - 1;
            for (unsigned b = 0; b < pl->width[f]; b++, bit++)
                if ((q >> b) & 1)
                    ref[pl->hdr + bit / 8] |= (unsigned char)(1u << (bit % 8));
        }
    }
}

/* Pages encoded, by the encoder's path (cpage.c, cpage__encode): records
 * built whole, trade's of up to 64 or 128 bits or any kind's of up to 64;
 * else field by field. */
static unsigned paths[4];

/* Encode n records, check, decode them every way; 0 when the page does not
 * compress. The body is returned for further use (cpage_kill). */
static int roundtrip(const kind *k, const unsigned char *slots, uint32_t n, unsigned flags,
                     unsigned char *body)
{
    cpage_plan pl;
    int bytes = cpage_plan_page(&pl, k, slots, n, flags);
    if (bytes == CPAGE_ENOGAIN)
        return 0;
    assert_true(bytes > 0);
    assert_true((size_t)bytes < (size_t)n * k->size);
    memset(body, 0xAB, 8192);
    cpage_encode(&pl, k, slots, body);
    assert_int_equal(body[bytes], 0xAB); /* nothing written past the plan */
    unsigned char ref[8192];
    reference_body(&pl, k, slots, ref);
    assert_memory_equal(body, ref, (size_t)bytes);
    const int trade_kind = k == &kind_trade;
    paths[trade_kind && pl.rbits <= 64    ? 0
          : trade_kind && pl.rbits <= 128 ? 1
          : pl.rbits <= 64                ? 2
                                          : 3]++;
    /* cpage_compact (the store's call) plans and writes the same */
    cpage_plan pc;
    unsigned char one_call[8192];
    if (!flags) {
        assert_int_equal(cpage_compact(&pc, k, slots, n, one_call, (size_t)bytes), bytes);
        assert_memory_equal(one_call, body, (size_t)bytes);
        assert_int_equal(cpage_compact(&pc, k, slots, n, one_call, (size_t)bytes - 1),
                         CPAGE_ENOGAIN);
    }
    assert_int_equal(cpage_bytes(body, n), (size_t)bytes);
    assert_int_equal(cpage_check(k, body, (size_t)bytes, n), CPAGE_OK);
    cpage_view v;
    cpage_open(&v, k, body);
    unsigned char out[MAXN * 64], one[64];
    cpage_decode(&v, 0, n, out);
    assert_memory_equal(out, slots, (size_t)n * k->size);
    for (uint32_t i = 0; i < n; i++) {
        cpage_get(&v, i, one);
        assert_memory_equal(one, slots + (size_t)i * k->size, k->size);
        assert_true(cpage_ts(&v, i) == kind_trade_of(slots + (size_t)i * k->size)->ts);
    }
    if (n > 2) { /* a run from the middle */
        cpage_decode(&v, 1, n - 2, out);
        assert_memory_equal(out, slots + k->size, (size_t)(n - 2) * k->size);
    }
    return 1;
}

static void pack(const kind *k, unsigned char *slot, const int64_t *v)
{
    memset(slot, 0, k->size);
    k->pack(slot, v);
}

/* A W1-like record: ts climbing by ~us, px on a tick near 100, whole-unit
 * qty, side, climbing id; option fields on top. */
static void w1(const kind *k, unsigned char *slot, uint32_t i, int64_t tick)
{
    int64_t v[OPTION_TRADE_NFIELDS] = {
        TS0 + (int64_t)i * 5000 + (int64_t)below(1000),
        100 * E8 + ((int64_t)below(41) - 20) * tick,
        (int64_t)(1 + below(10000)) * E8,
        (int64_t)(1 + below(2)),
        (int64_t)(1000000 + i * 7 + below(7)),
        (int64_t)(95 + below(10)) * E8,
        TS0 + 86400LL * 1000000000LL * (int64_t)(1 + below(3)),
        (int64_t)(1 + below(2))};
    pack(k, slot, v);
}

static void test_layout_from_declaration(void **st)
{
    (void)st;
    /* 63 copies of one record: each base is the field's value as the kind
     * packs it, so the slot positions cpage derives are the compiler's. */
    static const kind *const kinds[] = {&kind_trade, &kind_option_trade};
    for (size_t j = 0; j < 2; j++) {
        const kind *k = kinds[j];
        unsigned char slots[MAXN * 64];
        int64_t v[OPTION_TRADE_NFIELDS] = {TS0 + 12345,       -37 * E8 - 63, (1LL << 62) - 1, 2,
                                           (int64_t)UINT64_MAX, INT64_MIN + 5, (1LL << 62) - 3, 2};
        for (uint32_t i = 0; i < MAXN; i++)
            pack(k, slots + i * k->size, v);
        cpage_plan pl;
        assert_true(cpage_plan_page(&pl, k, slots, MAXN, 0) > 0);
        for (unsigned f = 0; f < k->nfields; f++) {
            assert_true(pl.base[f] == (uint64_t)v[f]);
            assert_int_equal(pl.width[f], f == 0 ? 1 : 0); /* ts keeps its dead code */
        }
        unsigned char body[8192];
        assert_true(roundtrip(k, slots, MAXN, 0, body));
    }
}

static void test_random_pages(void **st)
{
    (void)st;
    static const int64_t ticks[] = {1, 1000000, 100000, 10000, 250000, 7};
    unsigned char slots[MAXN * 64], body[8192];
    for (int round = 0; round < 3000; round++) {
        const kind *k = round % 3 == 2 ? &kind_option_trade : &kind_trade;
        uint32_t n = 1 + (uint32_t)below(MAXN);
        int64_t tick = ticks[below(6)];
        for (uint32_t i = 0; i < n; i++)
            w1(k, slots + i * k->size, i, tick);
        for (uint32_t i = 0; i < n; i++) /* a few tombstones */
            if (below(8) == 0)
                ((trade *)(slots + i * k->size))->ts = UINT64_MAX;
        unsigned flags = round % 2 ? CPAGE_BYTE_ALIGN : 0;
        int ok = roundtrip(k, slots, n, flags, body);
        if (n >= 8) /* W1 pages of a few records up compress */
            assert_true(ok);
    }
}

/* Adversarial values, each field drawn from its extremes and the full
 * range: whatever the plan says, what is encoded comes back. */
static int64_t extreme1(const kind_field *f);
static int64_t extreme(const kind_field *f)
{
    int64_t x = extreme1(f);
    return x == INT64_MIN ? x + 1 : x; /* the one int64 a signed slot refuses */
}

static int64_t extreme1(const kind_field *f)
{
    uint64_t m = f->bits == 64 ? UINT64_MAX : (1ULL << f->bits) - 1;
    int sgn = f->flags & KIND_SIGNED;
    switch (below(8)) {
    case 0: return sgn ? INT64_MIN : 0;
    case 1: return sgn ? INT64_MAX : (int64_t)(f->type == KIND_TS ? m >> 1 : m);
    case 2: return 0;
    case 3: return sgn ? -(int64_t)below(1000) * 1000000 : (int64_t)below(4);
    case 4: return (int64_t)(rnd() & (f->type == KIND_TS && !sgn ? m >> 1 : m));
    default: return (int64_t)(1 + below(3)) * 100000000;
    }
}

static void test_adversarial_pages(void **st)
{
    (void)st;
    static const kind *const kinds[] = {&kind_trade, &kind_option_trade};
    unsigned char slots[MAXN * 64], body[8192];
    int compressed = 0, refused = 0;
    for (int round = 0; round < 4000; round++) {
        const kind *k = kinds[round % 2];
        uint32_t n = 1 + (uint32_t)below(MAXN);
        int mode = (int)below(4); /* 0: all extremes; 1: one wild field; 2: dup ts; 3: W1 + one jump */
        uint32_t wild = (uint32_t)below(k->nfields);
        for (uint32_t i = 0; i < n; i++) {
            int64_t v[OPTION_TRADE_NFIELDS];
            for (unsigned f = 0; f < k->nfields; f++)
                v[f] = mode == 0 || f == wild ? extreme(&k->fields[f]) : (int64_t)below(3);
            v[3] = (int64_t)below(3); /* side */
            if (k == &kind_option_trade)
                v[7] = 1 + (int64_t)below(2); /* right */
            if (mode == 2)
                v[0] = TS0 + (int64_t)below(3); /* duplicates, out of order */
            if (v[0] < 0)
                v[0] = -(v[0] + 1);
            if (mode == 3) {
                w1(k, slots + i * k->size, i, 1000000);
                if (i == n / 2) /* one price from across the range */
                    ((trade *)(slots + i * k->size))->px = (uint64_t)extreme(&k->fields[1]);
                continue;
            }
            int bad = -1;
            assert_int_equal(kind_check(k, v, 0xffff, &bad), KIND_OK);
            pack(k, slots + i * k->size, v);
        }
        if (below(4) == 0)
            ((trade *)(slots + below(n) * k->size))->ts = UINT64_MAX;
        if (roundtrip(k, slots, n, round % 3 == 0 ? CPAGE_BYTE_ALIGN : 0, body))
            compressed++;
        else
            refused++;
    }
    assert_true(compressed > 100 && refused > 100); /* both paths taken */
}

static void test_tombstones(void **st)
{
    (void)st;
    unsigned char slots[MAXN * 64], wide[MAXN * 64], body[8192];
    cpage_view v;
    const kind *k = &kind_trade;
    for (uint32_t i = 0; i < MAXN; i++)
        w1(k, slots + i * 32, i, 10000);
    ((trade *)slots)->ts = UINT64_MAX; /* dead before encoding */
    assert_true(roundtrip(k, slots, MAXN, 0, body));
    /* Deletes on the compact page: the same bytes as on the wide page. */
    memcpy(wide, slots, sizeof wide);
    for (uint32_t i = 0; i < MAXN; i += 1 + (uint32_t)below(5)) {
        cpage_kill(body, i);
        ((trade *)(wide + i * 32))->ts = UINT64_MAX;
    }
    cpage_kill(body, MAXN - 1);
    ((trade *)(wide + (MAXN - 1) * 32))->ts = UINT64_MAX;
    cpage_open(&v, k, body);
    cpage_decode(&v, 0, MAXN, slots);
    assert_memory_equal(slots, wide, MAXN * 32);
    assert_true(cpage_ts(&v, MAXN - 1) == UINT64_MAX);
    /* A page of tombstones only, and one with a single live record. */
    for (uint32_t i = 0; i < MAXN; i++)
        ((trade *)(slots + i * 32))->ts = UINT64_MAX;
    assert_true(roundtrip(k, slots, MAXN, 0, body));
    ((trade *)(slots + 7 * 32))->ts = INT64_MAX;
    assert_true(roundtrip(k, slots, MAXN, 0, body));
    ((trade *)(slots + 7 * 32))->ts = 0;
    assert_true(roundtrip(k, slots, MAXN, 0, body));
}

static void test_does_not_compress(void **st)
{
    (void)st;
    unsigned char slots[MAXN * 64], body[8192];
    cpage_plan pl;
    for (uint32_t i = 0; i < MAXN; i++) { /* every field random over its range */
        int64_t v[TRADE_NFIELDS] = {(int64_t)(rnd() >> 1), (int64_t)rnd(), (int64_t)(rnd() >> 2),
                                    (int64_t)below(3), (int64_t)rnd()};
        pack(&kind_trade, slots + i * 32, v);
    }
    assert_int_equal(cpage_plan_page(&pl, &kind_trade, slots, MAXN, 0), CPAGE_ENOGAIN);
    assert_int_equal(roundtrip(&kind_trade, slots, MAXN, 0, body), 0);
    /* One record is never worth a header. */
    w1(&kind_trade, slots, 0, 1);
    assert_int_equal(cpage_plan_page(&pl, &kind_trade, slots, 1, 0), CPAGE_ENOGAIN);
    assert_int_equal(cpage_plan_page(&pl, &kind_trade, slots, 0, 0), CPAGE_ENOGAIN);
}

static void test_w1_widths(void **st)
{
    (void)st;
    /* Price ticks and whole lots are found as steps; bit-packed beats
     * byte-aligned. */
    unsigned char slots[MAXN * 64];
    cpage_plan pl, pb;
    for (uint32_t i = 0; i < MAXN; i++)
        w1(&kind_trade, slots + i * 32, i, 1000000);
    assert_true(cpage_plan_page(&pl, &kind_trade, slots, MAXN, 0) > 0);
    assert_true(cpage_plan_page(&pb, &kind_trade, slots, MAXN, CPAGE_BYTE_ALIGN) > 0);
    assert_true(pl.step[1] % 1000000 == 0);
    assert_true(pl.step[2] % E8 == 0);
    assert_true(pl.width[1] <= 6 && pl.width[2] <= 14 && pl.width[3] <= 1);
    assert_true(pl.bytes < pb.bytes);
    assert_true(pl.bytes < MAXN * 32 / 3);
}

/* The encoder's four paths each write the reference bytes (roundtrip
 * compares every page with reference_body): W1 trade pages (records of up
 * to 64 bits; some with ts in whole ms, whose q is shifted rather than
 * only multiplied into place), trade pages with wide ids (up to 128), option trades on
 * narrow values (up to 64 bits, any kind), and option trades with wide
 * ids (field by field); tombstones in each. */
static void test_encode_matches_reference(void **st)
{
    (void)st;
    unsigned char slots[MAXN * 64], body[8192];
    memset(paths, 0, sizeof paths);
    for (int round = 0; round < 800; round++) {
        const int shape = round % 4;
        const kind *k = shape < 2 ? &kind_trade : &kind_option_trade;
        const uint32_t n = 16 + (uint32_t)below(MAXN - 15); /* enough to pay for the header */
        for (uint32_t i = 0; i < n; i++) {
            int64_t v[OPTION_TRADE_NFIELDS] = {
                TS0 + (int64_t)i * (shape == 2 ? 1 : 977) + (int64_t)below(3),
                100 * E8 + (int64_t)below(5) * 1000000,
                (int64_t)(1 + below(shape == 2 ? 4 : 50000)) * E8,
                (int64_t)below(3),
                (int64_t)(1000000 + i * 5 + below(5)),
                95 * E8,
                TS0,
                1 + (int64_t)below(2)};
            if (shape == 1 || shape == 3) /* wide ids: the records pass 64 bits */
                v[4] = (int64_t)(rnd() >> 1);
            if (shape == 0 && round % 8 == 4) /* whole ms: ts's step has a power of two */
                v[0] = TS0 + (int64_t)(i + below(3)) * 1000000;
            pack(k, slots + (size_t)i * k->size, v);
        }
        if (below(3) == 0)
            ((trade *)(slots + below(n) * k->size))->ts = UINT64_MAX;
        assert_true(roundtrip(k, slots, n, 0, body));
    }
    for (int p = 0; p < 4; p++)
        assert_true(paths[p] >= 150);
}

static void test_damage_refused(void **st)
{
    (void)st;
    unsigned char slots[MAXN * 64], body[8192], bad[8192];
    const kind *k = &kind_trade;
    for (uint32_t i = 0; i < MAXN; i++)
        w1(k, slots + i * 32, i, 10000);
    cpage_plan pl;
    int bytes = cpage_plan_page(&pl, k, slots, MAXN, 0);
    assert_true(bytes > 0);
    cpage_encode(&pl, k, slots, body);
    assert_int_equal(cpage_check(k, body, (size_t)bytes, MAXN), CPAGE_OK);
    assert_int_equal(cpage_check(k, body, (size_t)bytes - 1, MAXN), CPAGE_EFORMAT);
    assert_int_equal(cpage_check(k, body, (size_t)bytes, MAXN - 1), CPAGE_EFORMAT);
    assert_int_equal(cpage_check(&kind_option_trade, body, (size_t)bytes, MAXN), CPAGE_EFORMAT);
    assert_int_equal(cpage_check(k, body, 4, MAXN), CPAGE_EFORMAT);
    static const size_t at[] = {0, 1, 2, 4, 6, 8, 9, 13}; /* magic .. widths, padding */
    for (size_t j = 0; j < sizeof at / sizeof at[0]; j++) {
        memcpy(bad, body, (size_t)bytes);
        bad[at[j]] ^= 0x40;
        assert_int_equal(cpage_check(k, bad, (size_t)bytes, MAXN), CPAGE_EFORMAT);
    }
    memcpy(bad, body, (size_t)bytes);
    bad[bytes - 1] = 1; /* the zero padding */
    assert_int_equal(cpage_check(k, bad, (size_t)bytes, MAXN), CPAGE_EFORMAT);
    /* A width past 64 bits, and any flip anywhere: refused
     * or still safe to decode. */
    memcpy(bad, body, (size_t)bytes);
    bad[8 + 3] = 65;
    assert_int_equal(cpage_check(k, bad, (size_t)bytes, MAXN), CPAGE_EFORMAT);
    for (int i = 0; i < 2000; i++) {
        memcpy(bad, body, (size_t)bytes);
        bad[below((uint64_t)bytes)] ^= (unsigned char)(1u << below(8));
        if (cpage_check(k, bad, (size_t)bytes, MAXN) == CPAGE_OK) {
            cpage_view v;
            unsigned char out[MAXN * 64];
            cpage_open(&v, k, bad);
            cpage_decode(&v, 0, MAXN, out);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_from_declaration),
        cmocka_unit_test(test_random_pages),
        cmocka_unit_test(test_adversarial_pages),
        cmocka_unit_test(test_tombstones),
        cmocka_unit_test(test_does_not_compress),
        cmocka_unit_test(test_w1_widths),
        cmocka_unit_test(test_encode_matches_reference),
        cmocka_unit_test(test_damage_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
