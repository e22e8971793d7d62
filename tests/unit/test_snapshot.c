/* test_snapshot — a store through snapshot_save and snapshot_load answers
 * every query the same (aggregates, scans, bars, top, stats); ingest goes on
 * after a restore; damage anywhere in the stream, truncation at any length
 * and a different kind layout are refused; the memory cap holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store_check.h"

#define NSYMS 300

static store *restore_from(ck_buf *m, size_t max_memory, int *rc, void **extra, size_t *elen)
{
    store *s = ck_open(max_memory);
    snapshot_io io = ck_io(m);
    m->pos = 0;
    *rc = snapshot_load(s, &io, extra, elen, NULL);
    return s;
}

static void save(const store *s, ck_buf *m, const char *extra, snapshot_info *info)
{
    snapshot_io io = ck_io(m);
    m->len = 0;
    assert_int_equal(snapshot_save(s, extra, extra ? strlen(extra) : 0, &io, info), SNAPSHOT_OK);
}

static void test_round_trip(void **st)
{
    (void)st;
    uint64_t id = 1;
    store *a = ck_open(0);
    ck_fill(a, NSYMS, 200000, TS0, &id);
    /* A symbol created by a batch that was then released leaves no trace
     * (store.h): gone before the snapshot, and not in it. */
    store_batch b;
    store_batch_init(&b);
    int64_t v[TRADE_NFIELDS] = {TS0, E8, E8, 0, 0};
    assert_int_equal(store_batch_add(a, &b, "GHOST", 5, &kind_trade, v), STORE_OK);
    assert_int_equal(store_batch_reserve(a, &b), STORE_OK);
    store_batch_release(a, &b);
    store_batch_reset(&b);
    ck_fill(a, NSYMS + 5, 10000, TS0 + 500000000, &id); /* a few more symbols after it */

    ck_buf m = {0};
    snapshot_info si, li;
    save(a, &m, "clients and segment 42", &si);
    store_stats sa;
    store_get_stats(a, &sa);
    assert_int_equal(si.bytes, m.len);
    assert_int_equal(si.trades, sa.trades);
    print_message("snapshot: %llu trades, %llu partitions, %zu bytes (%.1f B/trade)\n",
                  (unsigned long long)si.trades, (unsigned long long)si.partitions, m.len,
                  (double)m.len / (double)si.trades);

    void *extra;
    size_t elen;
    store *r = ck_open(0);
    snapshot_io io = ck_io(&m);
    m.pos = 0;
    assert_int_equal(snapshot_load(r, &io, &extra, &elen, &li), SNAPSHOT_OK);
    assert_int_equal(li.bytes, si.bytes);
    assert_int_equal(li.partitions, si.partitions);
    assert_int_equal(elen, strlen("clients and segment 42"));
    assert_memory_equal(extra, "clients and segment 42", elen);
    free(extra);
    ck_equal(a, r, NSYMS + 10);
    store_stats sr;
    store_get_stats(r, &sr);
    assert_int_equal(sr.newest_ts, sa.newest_ts);
    /* Packed pages: never more memory than the original. */
    assert_true(sr.bytes_reserved <= sa.bytes_reserved);
    assert_true(sr.pages <= sa.pages);
    assert_null(store_symbol_kind(a, "GHOST", 5));
    assert_null(store_symbol_kind(r, "GHOST", 5));

    /* A snapshot of the restored store is the same stream: page frames
     * (version 3) come back with the same bounds and the same compact
     * bodies. */
    {
        ck_buf m1 = {0}, m2 = {0};
        save(a, &m1, "x", NULL);
        save(r, &m2, "x", NULL);
        assert_int_equal(m1.len, m2.len);
        assert_memory_equal(m1.b, m2.b, m1.len);
        free(m1.b);
        free(m2.b);
    }

    /* Both go on ingesting the same trades: restored partitions (single
     * pages sized to their count, chains with short tails) grow right. */
    uint64_t id2 = id;
    uint64_t saved = ck_rng;
    ck_fill(a, NSYMS + 20, 50000, TS0 + 900000000, &id);
    ck_rng = saved;
    ck_fill(r, NSYMS + 20, 50000, TS0 + 900000000, &id2);
    ck_equal(a, r, NSYMS + 30);

    /* Loading into a store that holds something is refused. */
    m.pos = 0;
    assert_int_equal(snapshot_load(r, &io, NULL, NULL, NULL), SNAPSHOT_EINVAL);
    free(m.b);
    store_batch_free(&b);
    store_close(a);
    store_close(r);
}

static void test_empty_store(void **st)
{
    (void)st;
    store *a = ck_open(0);
    ck_buf m = {0};
    save(a, &m, NULL, NULL);
    assert_int_equal(m.len, SNAPSHOT_HEADER_BYTES + SNAPSHOT_TRAILER_BYTES);
    int rc;
    void *extra = (void *)1;
    size_t elen = 9;
    store *r = restore_from(&m, 0, &rc, &extra, &elen);
    assert_int_equal(rc, SNAPSHOT_OK);
    assert_null(extra);
    assert_int_equal(elen, 0);
    ck_equal(a, r, 4);
    free(m.b);
    store_close(a);
    store_close(r);
}

/* Every single-byte change and every truncation of a small snapshot is
 * refused; the store it was loading into is then just closed. */
static void test_damage_refused(void **st)
{
    (void)st;
    uint64_t id = 1;
    store *a = ck_open(0);
    ck_fill(a, 12, 300, TS0, &id);
    ck_buf m = {0};
    save(a, &m, "extra", NULL);
    /* Counts by SNAPSHOT_E* code: SNAPSHOT_EIO (the first) at 0. */
    int rc, codes[SNAPSHOT_EIO - SNAPSHOT_EINVAL + 1] = {0};
#define SEEN(code) codes[SNAPSHOT_EIO - (code)]
    for (size_t i = 0; i < m.len; i++) {
        unsigned char was = m.b[i];
        m.b[i] ^= (unsigned char)(1 + ck_below(255));
        store *r = restore_from(&m, 0, &rc, NULL, NULL);
        assert_true(rc <= SNAPSHOT_EIO && rc >= SNAPSHOT_EINVAL);
        SEEN(rc)++;
        store_close(r);
        m.b[i] = was;
    }
    print_message("byte flips: EFORMAT %d ECRC %d EKIND %d EVERSION %d EIO %d EFULL %d\n",
                  SEEN(SNAPSHOT_EFORMAT), SEEN(SNAPSHOT_ECRC), SEEN(SNAPSHOT_EKIND),
                  SEEN(SNAPSHOT_EVERSION), SEEN(SNAPSHOT_EIO), SEEN(SNAPSHOT_EFULL));
#undef SEEN
    size_t full = m.len;
    for (size_t n = 0; n < full; n++) {
        m.len = n;
        store *r = restore_from(&m, 0, &rc, NULL, NULL);
        assert_true(rc == SNAPSHOT_EIO || rc == SNAPSHOT_EFORMAT);
        store_close(r);
    }
    m.len = full;
    store *r = restore_from(&m, 0, &rc, NULL, NULL);
    assert_int_equal(rc, SNAPSHOT_OK);
    ck_equal(a, r, 20);
    store_close(r);
    /* A failing write function fails the save, wherever it fails. */
    ck_buf w = {0};
    snapshot_io io = ck_io(&w);
    for (size_t at = 1; at < full; at += 97) {
        w.len = 0;
        w.fail_at = at;
        assert_int_equal(snapshot_save(a, "extra", 5, &io, NULL), SNAPSHOT_EIO);
    }
    free(w.b);
    free(m.b);
    store_close(a);
}

/* A stream from a build whose kinds differ (fingerprint or count) is
 * refused as such, with a valid header checksum. */
static void test_kind_mismatch(void **st)
{
    (void)st;
    uint64_t id = 1;
    store *a = ck_open(0);
    ck_fill(a, 10, 100, TS0, &id);
    ck_buf m = {0};
    save(a, &m, NULL, NULL);
    unsigned char *h = m.b;
    for (int field = 0; field < 3; field++) {
        unsigned char keep[SNAPSHOT_HEADER_BYTES];
        memcpy(keep, h, sizeof keep);
        if (field == 0)
            h[16] ^= 1; /* fingerprint */
        else if (field == 1)
            h[28]++;    /* kinds */
        else
            h[8]++;     /* version */
        uint32_t crc = crc32c(0, h, 60);
        for (int i = 0; i < 4; i++)
            h[60 + i] = (unsigned char)(crc >> (8 * i));
        int rc;
        store *r = restore_from(&m, 0, &rc, NULL, NULL);
        assert_int_equal(rc, field == 2 ? SNAPSHOT_EVERSION : SNAPSHOT_EKIND);
        assert_int_equal(store_symbol_kind(r, "SYM0", 4), NULL); /* nothing loaded */
        store_close(r);
        memcpy(h, keep, sizeof keep);
    }
    /* The same fingerprint every time; it is not zero. */
    assert_true(snapshot_kind_fingerprint() == snapshot_kind_fingerprint());
    assert_true(snapshot_kind_fingerprint() != 0);
    free(m.b);
    store_close(a);
}

/* Loading honours the store's cap: a snapshot larger than --max-memory is
 * refused with EFULL, not loaded in part and kept. */
static void test_memory_cap(void **st)
{
    (void)st;
    uint64_t id = 1;
    store *a = ck_open(64u << 20);
    ck_fill(a, 50, 700000, TS0, &id);
    ck_buf m = {0};
    save(a, &m, NULL, NULL);
    int rc;
    store *r = restore_from(&m, 4u << 20, &rc, NULL, NULL); /* compact: ~9 MiB */
    assert_int_equal(rc, SNAPSHOT_EFULL);
    store_close(r);
    r = restore_from(&m, 64u << 20, &rc, NULL, NULL);
    assert_int_equal(rc, SNAPSHOT_OK);
    ck_equal(a, r, 60);
    free(m.b);
    store_close(a);
    store_close(r);
}

/* A snapshot written before compact pages (version 2, by the code of
 * commit 143b5ca; the writer is kept in tests/unit/data/README) still
 * loads, into a compacting and a plain store, and answers as the store it
 * was taken from: that store is rebuilt here the same way (ck_fill from
 * its first state, then a delete, so tombstones travel too). */
static void test_previous_version(void **st)
{
    (void)st;
    char path[512];
    const char *here = __FILE__, *slash = strrchr(here, '/');
    snprintf(path, sizeof path, "%.*sdata/snapshot_v2.bin", slash ? (int)(slash - here + 1) : 0,
             here);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    ck_buf m = {0};
    m.cap = 1 << 20;
    m.b = malloc(m.cap);
    assert_non_null(m.b);
    m.len = fread(m.b, 1, m.cap, f);
    fclose(f);
    assert_int_equal(m.b[8], 2); /* version 2 */

    uint64_t id = 1, del = 0;
    ck_rng = 0x2545f4914f6cdd1dULL;
    store *a = ck_open_plain(0);
    ck_fill(a, 20, 2500, TS0, &id);
    assert_int_equal(store_delete_range(a, "SYM0", 4, TS0 + 1000000, TS0 + 2000000, &del),
                     STORE_OK);
    assert_true(del > 0);
    for (int plain = 0; plain < 2; plain++) {
        store *r = ck_open_cfg(0, plain);
        snapshot_io io = ck_io(&m);
        void *extra = NULL;
        size_t elen = 0;
        m.pos = 0;
        assert_int_equal(snapshot_load(r, &io, &extra, &elen, NULL), SNAPSHOT_OK);
        assert_int_equal(elen, 2);
        assert_memory_equal(extra, "v2", 2);
        free(extra);
        ck_equal(a, r, 25);
        store_stats ss;
        store_get_stats(r, &ss);
        assert_true(plain ? ss.pages_compact == 0 : ss.pages_compact > 10);
        store_close(r);
    }
    store_close(a);
    free(m.b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_empty_store),
        cmocka_unit_test(test_damage_refused),
        cmocka_unit_test(test_kind_mismatch),
        cmocka_unit_test(test_memory_cap),
        cmocka_unit_test(test_previous_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
