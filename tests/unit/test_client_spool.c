/* test_client_spool — the C client's spool (docs/clients.md format):
 * batches read back past the last ACKED, next seq and `sealed` kept across
 * a compaction, a torn tail cut at the last whole record, damage elsewhere
 * refused naming file and offset, and the lock held against a second
 * opener. Files live in a fresh directory under /tmp. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"

typedef struct seen {
    int n;
    uint64_t seq[16], sealed[16];
    uint32_t ntrades[16];
    char kind[16][32];
    char body[16][32];
} seen;

static int collect(void *u, uint64_t seq, uint64_t sealed, uint32_t ntrades, const char *kind,
                   size_t kind_len, const char *body, size_t len)
{
    seen *s = u;
    assert_true(s->n < 16);
    s->seq[s->n] = seq;
    s->sealed[s->n] = sealed;
    s->ntrades[s->n] = ntrades;
    snprintf(s->kind[s->n], 32, "%.*s", (int)kind_len, kind);
    snprintf(s->body[s->n], 32, "%.*s", (int)len, body);
    s->n++;
    return 0;
}

static char dir[64], path[96];

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/test_client_spool.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/feed.spool", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    char tmp[110];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    unlink(tmp);
    rmdir(dir);
    return 0;
}

static int reopen(slotd__spool *sp, seen *s, char *err)
{
    memset(s, 0, sizeof *s);
    return slotd__spool_open(sp, path, 0, collect, s, err, 256);
}

static off_t file_size(void)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* Three batches (seqs 5, 6, 7; 10 trades each; 6 of kind option_trade). */
static void write_three(slotd__spool *sp)
{
    assert_int_equal(slotd__spool_batch(sp, 5, 10, 10, "", 0, "body5", 5), 0);
    assert_int_equal(slotd__spool_batch(sp, 6, 20, 10, "option_trade", 12, "body6", 5), 0);
    assert_int_equal(slotd__spool_batch(sp, 7, 30, 10, "", 0, "body7", 5), 0);
}

static void open_with_three(slotd__spool *sp, seen *s, char *err)
{
    assert_int_equal(reopen(sp, s, err), 0);
    write_three(sp);
}

static void test_read_back(void **state)
{
    (void)state;
    slotd__spool sp;
    seen s;
    char err[256] = "";
    assert_int_equal(reopen(&sp, &s, err), 0);
    assert_int_equal(s.n, 0);
    assert_false(sp.history);
    assert_int_equal(file_size(), 8);
    write_three(&sp);
    assert_int_equal(slotd__spool_ack(&sp, 5), 0);
    slotd__spool_close(&sp);

    assert_int_equal(reopen(&sp, &s, err), 0);
    assert_true(sp.history);
    assert_int_equal(sp.last_seq, 7);
    assert_int_equal(sp.sealed, 30);
    assert_int_equal(sp.acked, 5);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.seq[0], 6);
    assert_int_equal(s.sealed[0], 20);
    assert_int_equal(s.ntrades[0], 10);
    assert_string_equal(s.kind[0], "option_trade");
    assert_string_equal(s.body[0], "body6");
    assert_int_equal(s.seq[1], 7);
    assert_string_equal(s.kind[1], "");
    assert_string_equal(s.body[1], "body7");
    slotd__spool_close(&sp);
}

static void test_compaction_keeps_seq_and_sealed(void **state)
{
    (void)state;
    slotd__spool sp;
    seen s;
    char err[256] = "";
    open_with_three(&sp, &s, err);
    assert_int_equal(slotd__spool_ack(&sp, 7), 0);
    assert_int_equal(slotd__spool_compact(&sp), 0);
    assert_int_equal(file_size(), 8 + 9 + 16); /* header + STATE */
    /* Still locked after the rename: the new file is the locked one. */
    slotd__spool other;
    seen s2;
    assert_int_equal(reopen(&other, &s2, err), SLOTD_ELOCKED);
    /* Appends go to the new file. */
    assert_int_equal(slotd__spool_batch(&sp, 8, 31, 1, "", 0, "b8", 2), 0);
    slotd__spool_close(&sp);

    assert_int_equal(reopen(&sp, &s, err), 0);
    assert_int_equal(sp.last_seq, 8);
    assert_int_equal(sp.sealed, 31);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.seq[0], 8);
    slotd__spool_ack(&sp, 8);
    assert_int_equal(slotd__spool_compact(&sp), 0);
    slotd__spool_close(&sp);
    assert_int_equal(reopen(&sp, &s, err), 0);
    assert_true(sp.history); /* a STATE alone still says where seqs are */
    assert_int_equal(sp.last_seq, 8);
    assert_int_equal(sp.sealed, 31);
    assert_int_equal(s.n, 0);
    slotd__spool_close(&sp);
}

static void append_bytes(const void *p, size_t n)
{
    FILE *f = fopen(path, "ab");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void test_torn_tail_cut(void **state)
{
    (void)state;
    slotd__spool sp;
    seen s;
    char err[256] = "";
    open_with_three(&sp, &s, err);
    slotd__spool_close(&sp);
    off_t whole = file_size();

    /* A record cut short (its length runs past the end). */
    append_bytes("\x40\x00\x00\x00\x01\x02\x03\x04\x01seq", 12);
    assert_int_equal(reopen(&sp, &s, err), 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(file_size(), whole);
    slotd__spool_close(&sp);

    /* A whole-length last record with a bad checksum. */
    append_bytes("\x02\x00\x00\x00\xde\xad\xbe\xef\x02\x07", 10);
    assert_int_equal(reopen(&sp, &s, err), 0);
    assert_int_equal(file_size(), whole);
    slotd__spool_close(&sp);

    /* Zeros after the last record, and a header cut short. */
    append_bytes("\0\0\0\0\0\0\0\0\0\0\0\0", 12);
    assert_int_equal(reopen(&sp, &s, err), 0);
    assert_int_equal(file_size(), whole);
    slotd__spool_close(&sp);
    append_bytes("\x05\x00", 2);
    assert_int_equal(reopen(&sp, &s, err), 0);
    assert_int_equal(file_size(), whole);
    assert_int_equal(s.n, 3);
    assert_int_equal(sp.last_seq, 7);
    slotd__spool_close(&sp);

    /* A header torn while the file was created. */
    truncate(path, 3);
    assert_int_equal(reopen(&sp, &s, err), 0);
    assert_int_equal(file_size(), 8);
    assert_false(sp.history);
    slotd__spool_close(&sp);
}

static void test_damage_refused(void **state)
{
    (void)state;
    slotd__spool sp;
    seen s;
    char err[256] = "";
    open_with_three(&sp, &s, err);
    slotd__spool_close(&sp);
    /* A bit flipped in the first record's payload: not the tail, damage. */
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 8 + 9 + 3, SEEK_SET);
    fputc(0x55, f);
    fclose(f);
    assert_int_equal(reopen(&sp, &s, err), SLOTD_ESPOOL);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "offset 8"));
    assert_int_equal(sp.fd, -1);

    /* Not a spool at all. */
    f = fopen(path, "wb");
    fputs("NOTASPOOL, some text", f);
    fclose(f);
    assert_int_equal(reopen(&sp, &s, err), SLOTD_ESPOOL);
    assert_non_null(strstr(err, "offset 0"));
}

static void test_locked(void **state)
{
    (void)state;
    slotd__spool a, b;
    seen s;
    char err[256] = "";
    assert_int_equal(reopen(&a, &s, err), 0);
    assert_int_equal(reopen(&b, &s, err), SLOTD_ELOCKED);
    assert_non_null(strstr(err, "locked"));
    slotd__spool_close(&a);
    assert_int_equal(reopen(&b, &s, err), 0); /* free once the holder closes */
    slotd__spool_close(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction_keeps_seq_and_sealed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damage_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locked, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
