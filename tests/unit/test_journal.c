/* test_journal — the journal against real files (a mkdtemp dir under /tmp)
 * and a real libuv loop: ordering and replay, group commit, rotation, torn
 * tails at every byte, mid-journal corruption (fail / salvage), a full disk
 * via RLIMIT_FSIZE in a forked child, the three fsync policies, and the
 * sync thread and preallocation (rotation during a sync, close's sync, a
 * crash with blocks reserved past the end), and missing or emptied segments
 * (refused, or replayed past with salvage). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "journal.h"
#include "journal_sync.h"

/* ---- fixtures -------------------------------------------------------- */

typedef struct rec {
    char client[32];
    size_t clen;
    uint64_t seq;
    uint8_t *msg;
    size_t len;
} rec;

typedef struct recs {
    rec *v;
    size_t n, cap;
} recs;

static void recs_push(recs *r, const char *client, size_t clen, uint64_t seq, const uint8_t *msg,
                      size_t len)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->v = realloc(r->v, r->cap * sizeof(*r->v));
        assert_non_null(r->v);
    }
    rec *e = &r->v[r->n++];
    assert_true(clen < sizeof(e->client));
    memcpy(e->client, client, clen);
    e->client[clen] = 0;
    e->clen = clen;
    e->seq = seq;
    e->msg = malloc(len ? len : 1);
    assert_non_null(e->msg);
    if (len)
        memcpy(e->msg, msg, len);
    e->len = len;
}

static void recs_free(recs *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i].msg);
    free(r->v);
    memset(r, 0, sizeof(*r));
}

static int replay_collect(void *ctx, const char *client, size_t clen, uint64_t seq,
                          const uint8_t *msg, size_t len)
{
    recs_push(ctx, client, clen, seq, msg, len);
    return 0;
}

/* Record i of the canonical test stream: varied sizes, client and content. */
static size_t gen_len(size_t i) { return (i * 37) % 300 + (i % 5 == 0 ? 2000 : 0); }
static void gen(size_t i, char *client, size_t *clen, uint8_t *msg, size_t *len)
{
    *clen = (size_t)snprintf(client, 32, "client-%zu", i % 3);
    *len = gen_len(i);
    for (size_t k = 0; k < *len; k++)
        msg[k] = (uint8_t)(i * 131 + k * 7);
}

static void check_replay(const recs *r, size_t first, size_t n)
{
    char client[32];
    uint8_t msg[4096];
    size_t clen, len;

    assert_int_equal(r->n, n);
    for (size_t i = 0; i < n; i++) {
        gen(first + i, client, &clen, msg, &len);
        assert_int_equal(r->v[i].clen, clen);
        assert_memory_equal(r->v[i].client, client, clen);
        assert_int_equal(r->v[i].seq, first + i + 1);
        assert_int_equal(r->v[i].len, len);
        if (len)
            assert_memory_equal(r->v[i].msg, msg, len);
    }
}

typedef struct env {
    char dir[64];
    uv_loop_t loop;
} env;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    env *e = calloc(1, sizeof(*e));
    strcpy(e->dir, "/tmp/slotd-journal-XXXXXX");
    if (!mkdtemp(e->dir) || uv_loop_init(&e->loop))
        return -1;
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    nftw(e->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(e);
    return 0;
}

static journal_config cfg_for(const char *dir, journal_fsync policy)
{
    journal_config c = {.dir = dir, .fsync = policy, .interval_ms = 10, .segment_bytes = 0};
    return c;
}

/* Completion log: every callback writes its position in completion order. */
typedef struct done_log {
    size_t n;
    size_t order[4096];
    int status[4096];
} done_log;

typedef struct done_slot {
    done_log *log;
    size_t idx;
} done_slot;

static void on_done(void *ctx, int status)
{
    done_slot *s = ctx;
    s->log->order[s->log->n] = s->idx;
    s->log->status[s->log->n] = status;
    s->log->n++;
}

/* Appends the canonical records [from, to) a few per loop iteration. */
typedef struct feeder {
    journal *j;
    size_t next, to, per_iter;
    done_log *log;
    done_slot *slots;
    uv_idle_t idle;
} feeder;

static void append_one(journal *j, size_t i, done_log *log, done_slot *slots)
{
    char client[32];
    uint8_t msg[4096];
    size_t clen, len;

    gen(i, client, &clen, msg, &len);
    slots[i].log = log;
    slots[i].idx = i;
    assert_int_equal(journal_append(j, client, clen, i + 1, msg, len, on_done, &slots[i]), 0);
}

static void feeder_tick(uv_idle_t *h)
{
    feeder *f = h->data;
    size_t k = f->per_iter ? f->per_iter : 1 + f->next % 7;
    for (; k && f->next < f->to; k--, f->next++)
        append_one(f->j, f->next, f->log, f->slots);
    if (f->next == f->to)
        uv_idle_stop(h);
}

static void feed(uv_loop_t *loop, journal *j, size_t from, size_t to, size_t per_iter,
                 done_log *log, done_slot *slots)
{
    feeder f = {.j = j, .next = from, .to = to, .per_iter = per_iter, .log = log, .slots = slots};
    uv_idle_init(loop, &f.idle);
    f.idle.data = &f;
    uv_idle_start(&f.idle, feeder_tick);
    /* Returns once the feeder is done and the journal owes no callbacks. */
    uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&f.idle, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
}

static void close_journal(uv_loop_t *loop, journal *j)
{
    journal_close(j);
    uv_run(loop, UV_RUN_DEFAULT);
}

static int reopen_collect(env *e, const char *dir, int salvage, recs *r, journal_replay_stats *st)
{
    journal *j;
    journal_config c = cfg_for(dir, JOURNAL_FSYNC_NEVER);
    c.salvage = salvage;
    int rc = journal_open(&j, &e->loop, &c, replay_collect, r, st);
    if (rc == 0)
        close_journal(&e->loop, j);
    return rc;
}

static size_t count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0;
    assert_non_null(d);
    while ((de = readdir(d)))
        n += strncmp(de->d_name, "journal-", 8) == 0;
    closedir(d);
    return n;
}

static off_t file_size(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return sb.st_size;
}

static void seg_path(char *buf, size_t n, const char *dir, unsigned no)
{
    int w = snprintf(buf, n, "%s/journal-%016x.log", dir, no);
    assert_true(w > 0 && (size_t)w < n);
}

static size_t rec_size(size_t i)
{
    char client[32];
    uint8_t msg[4096];
    size_t clen, len;
    gen(i, client, &clen, msg, &len);
    return 8 + 2 + clen + 8 + len;
}

/* Writes records [0, n) to a fresh journal in dir and closes it. */
static void write_records(env *e, const char *dir, size_t n, uint64_t segment_bytes)
{
    static done_log log;
    static done_slot slots[4096];
    journal *j;
    journal_config c = cfg_for(dir, JOURNAL_FSYNC_NEVER);
    c.segment_bytes = segment_bytes;
    memset(&log, 0, sizeof(log));
    assert_int_equal(journal_open(&j, &e->loop, &c, NULL, NULL, NULL), 0);
    /* One group per record: segment boundaries are then deterministic. */
    for (size_t i = 0; i < n; i++) {
        append_one(j, i, &log, slots);
        uv_run(&e->loop, UV_RUN_DEFAULT);
        assert_int_equal(log.n, i + 1);
    }
    close_journal(&e->loop, j);
}

static void copy_prefix(const char *from, const char *to, off_t len)
{
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char buf[65536];
    assert_true(in >= 0 && out >= 0);
    while (len > 0) {
        ssize_t r = read(in, buf, len < (off_t)sizeof(buf) ? (size_t)len : sizeof(buf));
        assert_true(r > 0);
        assert_int_equal(write(out, buf, (size_t)r), r);
        len -= r;
    }
    close(in);
    close(out);
}

/* ---- tests ----------------------------------------------------------- */

static void test_append_replay(void **state)
{
    env *e = *state;
    static done_log log;
    static done_slot slots[4096];
    const size_t n = 600;
    journal *j;
    journal_config c = cfg_for(e->dir, JOURNAL_FSYNC_NEVER);
    journal_replay_stats st;
    journal_stats js;
    recs r = {0};

    assert_int_equal(journal_open(&j, &e->loop, &c, replay_collect, &r, &st), 0);
    assert_int_equal(st.records, 0);
    assert_int_equal(journal_pending(j), 0);
    append_one(j, 0, &log, slots);
    assert_int_equal(journal_pending(j), rec_size(0));
    feed(&e->loop, j, 1, n, 0, &log, slots);
    assert_int_equal(journal_pending(j), 0);
    assert_int_equal(log.n, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(log.order[i], i);
        assert_int_equal(log.status[i], 0);
    }
    journal_get_stats(j, &js);
    assert_int_equal(js.records, n);
    assert_int_equal(js.errors, 0);
    assert_true(js.groups > 1 && js.groups <= n);
    close_journal(&e->loop, j);

    assert_int_equal(reopen_collect(e, e->dir, 0, &r, &st), 0);
    check_replay(&r, 0, n);
    assert_int_equal(st.records, n);
    assert_int_equal(st.truncated_bytes, 0);
    assert_int_equal(st.detail[0], 0);
    recs_free(&r);

    /* A second session appends after the first; replay sees both, in order,
     * and an empty trailing segment is reused rather than multiplied. */
    assert_int_equal(journal_open(&j, &e->loop, &c, NULL, NULL, &st), 0);
    memset(&log, 0, sizeof(log));
    feed(&e->loop, j, n, n + 50, 0, &log, slots);
    close_journal(&e->loop, j);
    assert_int_equal(reopen_collect(e, e->dir, 0, &r, &st), 0);
    check_replay(&r, 0, n + 50);
    recs_free(&r);
    size_t segs = count_segments(e->dir);
    assert_int_equal(reopen_collect(e, e->dir, 0, &r, &st), 0);
    assert_int_equal(count_segments(e->dir), segs);
    recs_free(&r);
}

static void test_group_commit(void **state)
{
    env *e = *state;
    static done_log log;
    static done_slot slots[4096];
    journal *j;
    journal_config c = cfg_for(e->dir, JOURNAL_FSYNC_ALWAYS);
    journal_stats js;

    assert_int_equal(journal_open(&j, &e->loop, &c, NULL, NULL, NULL), 0);
    /* 300 appends in one loop iteration (~165 KiB): the writer takes the
     * first JOURNAL__EARLY bytes at once, the rest groups behind its write
     * and fsync: a few writes, an fsync each, far fewer than appends. */
    feed(&e->loop, j, 0, 300, 300, &log, slots);
    journal_get_stats(j, &js);
    assert_int_equal(js.records, 300);
    assert_true(js.groups >= 1 && js.groups <= 30);
    assert_int_equal(js.fsyncs, js.groups);
    /* One per iteration while the writer is busy syncing: still grouped. */
    memset(&log, 0, sizeof(log));
    feed(&e->loop, j, 300, 700, 1, &log, slots);
    journal_get_stats(j, &js);
    assert_int_equal(js.records, 700);
    assert_true(js.groups < 700);
    for (size_t i = 0; i < 400; i++)
        assert_int_equal(log.order[i], 300 + i);
    print_message("group commit: 400 one-per-iteration appends in %llu groups\n",
                  (unsigned long long)js.groups - 1);
    close_journal(&e->loop, j);
}

/* One long loop iteration appending more than JOURNAL__EARLY: the writer
 * gets the first part while the rest is still appended (more than one
 * group), callbacks still run in append order, replay sees every record. */
static void test_early_handover(void **state)
{
    env *e = *state;
    static done_log log;
    static done_slot slots[4096];
    journal *j;
    journal_config c = cfg_for(e->dir, JOURNAL_FSYNC_NEVER);
    journal_stats js;
    recs r = {0};
    journal_replay_stats st;
    size_t bytes = 0;

    for (size_t i = 0; i < 2000; i++)
        bytes += rec_size(i);
    assert_true(bytes > (32u << 10)); /* twice JOURNAL__EARLY (journal_internal.h) */
    assert_int_equal(journal_open(&j, &e->loop, &c, NULL, NULL, NULL), 0);
    feed(&e->loop, j, 0, 2000, 2000, &log, slots); /* all in one iteration */
    journal_get_stats(j, &js);
    assert_int_equal(js.records, 2000);
    assert_true(js.groups >= 2);
    assert_int_equal(log.n, 2000);
    for (size_t i = 0; i < 2000; i++) {
        assert_int_equal(log.order[i], i);
        assert_int_equal(log.status[i], 0);
    }
    close_journal(&e->loop, j);
    assert_int_equal(reopen_collect(e, e->dir, 0, &r, &st), 0);
    check_replay(&r, 0, 2000);
    recs_free(&r);
}

static void test_rotation(void **state)
{
    env *e = *state;
    recs r = {0};
    journal_replay_stats st;

    write_records(e, e->dir, 400, 8192);
    size_t segs = count_segments(e->dir);
    assert_true(segs > 10);
    assert_int_equal(reopen_collect(e, e->dir, 0, &r, &st), 0);
    check_replay(&r, 0, 400);
    assert_int_equal(st.segments, segs);
    recs_free(&r);
}

static void test_torn_tail_every_offset(void **state)
{
    env *e = *state;
    static done_log log;
    static done_slot slots[4096];
    /* Records 0..20, then a short last one (21: 177 payload bytes) so the
     * every-offset loop stays quick. */
    const size_t last = 21;
    char src[256], dir[256], dst[256];

    write_records(e, e->dir, last + 1, 0);
    seg_path(src, sizeof(src), e->dir, 1);
    size_t lastlen = rec_size(last);
    off_t good = file_size(src) - (off_t)lastlen;
    assert_true(lastlen < 400);

    for (size_t k = 1; k < lastlen; k++) {
        recs r = {0};
        journal_replay_stats st;
        journal *j;
        char want[64];
        snprintf(dir, sizeof(dir), "%s/t%zu", e->dir, k);
        assert_int_equal(mkdir(dir, 0755), 0);
        seg_path(dst, sizeof(dst), dir, 1);
        copy_prefix(src, dst, good + (off_t)k);

        journal_config c = cfg_for(dir, JOURNAL_FSYNC_NEVER);
        assert_int_equal(journal_open(&j, &e->loop, &c, replay_collect, &r, &st), 0);
        check_replay(&r, 0, last);
        assert_int_equal(st.truncated_bytes, k);
        snprintf(want, sizeof(want), "offset %lld", (long long)good);
        assert_non_null(strstr(st.detail, want));
        assert_int_equal(file_size(dst), good);
        recs_free(&r);
        /* The recovered journal takes appends that replay after it. */
        memset(&log, 0, sizeof(log));
        feed(&e->loop, j, last, last + 3, 0, &log, slots);
        assert_int_equal(log.n, 3);
        close_journal(&e->loop, j);
        assert_int_equal(reopen_collect(e, dir, 0, &r, &st), 0);
        check_replay(&r, 0, last + 3);
        assert_int_equal(st.truncated_bytes, 0);
        recs_free(&r);
    }
}

/* A torn tail followed only by an empty segment (a restart that crashed
 * before writing) is still a tail. */
static void test_torn_tail_before_empty_segment(void **state)
{
    env *e = *state;
    char seg1[256], seg2[256];
    recs r = {0};
    journal_replay_stats st;

    write_records(e, e->dir, 10, 0);
    seg_path(seg1, sizeof(seg1), e->dir, 1);
    seg_path(seg2, sizeof(seg2), e->dir, 2);
    off_t full = file_size(seg1);
    assert_int_equal(truncate(seg1, full - 5), 0);
    int fd = open(seg2, O_WRONLY | O_CREAT | O_EXCL, 0644);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(reopen_collect(e, e->dir, 0, &r, &st), 0);
    check_replay(&r, 0, 9);
    assert_int_equal(st.truncated_bytes, rec_size(9) - 5);
    assert_int_equal(file_size(seg1), full - (off_t)rec_size(9));
    assert_int_equal(count_segments(e->dir), 2); /* the empty one was reused */
    recs_free(&r);
}

static void flip_byte(const char *path, off_t at)
{
    int fd = open(path, O_RDWR);
    uint8_t b;
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &b, 1, at), 1);
    b ^= 0x40;
    assert_int_equal(pwrite(fd, &b, 1, at), 1);
    close(fd);
}

static void test_corrupt_middle(void **state)
{
    env *e = *state;
    const size_t n = 60, bad = 30;
    char seg[256], want[128];
    recs r = {0};
    journal_replay_stats st;

    write_records(e, e->dir, n, 0);
    seg_path(seg, sizeof(seg), e->dir, 1);
    off_t off = 0;
    for (size_t i = 0; i < bad; i++)
        off += (off_t)rec_size(i);
    off_t size = file_size(seg);

    /* A flipped payload byte, then a flipped length byte. */
    const off_t where[2] = {off + (off_t)rec_size(bad) / 2, off + 1};
    for (int w = 0; w < 2; w++) {
        flip_byte(seg, where[w]);
        assert_int_equal(reopen_collect(e, e->dir, 0, &r, &st), -EBADMSG);
        snprintf(want, sizeof(want), "journal-%016x.log: corrupt record at offset %lld", 1,
                 (long long)off);
        assert_non_null(strstr(st.detail, want));
        assert_int_equal(file_size(seg), size); /* refusing means touching nothing */
        recs_free(&r);

        assert_int_equal(reopen_collect(e, e->dir, 1, &r, &st), 0);
        assert_int_equal(st.skipped_records, 1);
        assert_int_equal(st.records, n - 1);
        assert_non_null(strstr(st.detail, "skipped"));
        check_replay(&(recs){.v = r.v, .n = bad}, 0, bad);
        check_replay(&(recs){.v = r.v + bad, .n = n - 1 - bad}, bad + 1, n - 1 - bad);
        recs_free(&r);
        flip_byte(seg, where[w]); /* restore */
        assert_int_equal(reopen_collect(e, e->dir, 0, &r, &st), 0);
        check_replay(&r, 0, n);
        recs_free(&r);
    }
}

static void test_corrupt_segment_tail_with_later_segments(void **state)
{
    env *e = *state;
    char seg[256];
    recs r = {0};
    journal_replay_stats st;

    write_records(e, e->dir, 200, 8192);
    assert_true(count_segments(e->dir) > 3);
    /* The last byte of segment 2 is inside its last record; segment 3 and
     * later still hold valid records, so this is not a torn tail. */
    seg_path(seg, sizeof(seg), e->dir, 2);
    flip_byte(seg, file_size(seg) - 1);
    assert_int_equal(reopen_collect(e, e->dir, 0, &r, &st), -EBADMSG);
    assert_non_null(strstr(st.detail, "journal-0000000000000002.log"));
    recs_free(&r);
    assert_int_equal(reopen_collect(e, e->dir, 1, &r, &st), 0);
    assert_int_equal(st.records, 199);
    assert_int_equal(st.skipped_records, 1);
    recs_free(&r);
}

static int stop_at_three(void *ctx, const char *cl, size_t clen, uint64_t seq, const uint8_t *m,
                  size_t len)
{
    (void)ctx, (void)cl, (void)clen, (void)m, (void)len;
    return seq == 3;
}

static void test_replay_abort_and_lock(void **state)
{
    env *e = *state;
    journal *j, *j2;
    journal_config c = cfg_for(e->dir, JOURNAL_FSYNC_NEVER);
    journal_replay_stats st;

    write_records(e, e->dir, 5, 0);
    assert_int_equal(journal_open(&j, &e->loop, &c, stop_at_three, NULL, &st), -ECANCELED);
    assert_int_equal(st.records, 2);

    assert_int_equal(journal_open(&j, &e->loop, &c, NULL, NULL, NULL), 0);
    assert_int_equal(journal_open(&j2, &e->loop, &c, NULL, NULL, &st), -EBUSY);
    assert_int_equal(journal_append(j, "c", 1, 1, "x", 1, NULL, NULL), 0);
    assert_int_equal(journal_append(j, "c", 256, 1, "x", 1, NULL, NULL), -EINVAL);
    assert_int_equal(journal_append(j, "c", 1, 1, "x", (64u << 20) + 1, NULL, NULL), -EMSGSIZE);
    /* Close with an append still queued: it is written and acked by close. */
    close_journal(&e->loop, j);
    assert_int_equal(journal_replay(&c, NULL, NULL, &st), 0);
    assert_int_equal(st.records, 6);
}

/* Closing from inside a callback, with appends from callbacks refused. */
typedef struct closer {
    journal *j;
    int calls, append_rc;
} closer;

static void close_in_cb(void *ctx, int status)
{
    closer *c = ctx;
    assert_int_equal(status, 0);
    if (c->calls++ == 0)
        journal_close(c->j);
    else
        c->append_rc = journal_append(c->j, "c", 1, 9, "y", 1, NULL, NULL);
}

static void test_close_from_callback(void **state)
{
    env *e = *state;
    journal_config c = cfg_for(e->dir, JOURNAL_FSYNC_INTERVAL);
    closer cl = {0};
    journal_replay_stats st;

    assert_int_equal(journal_open(&cl.j, &e->loop, &c, NULL, NULL, NULL), 0);
    /* One group of two: the first callback closes the journal, which runs
     * the second from inside the first; its append is refused. */
    assert_int_equal(journal_append(cl.j, "c", 1, 1, "a", 1, close_in_cb, &cl), 0);
    assert_int_equal(journal_append(cl.j, "c", 1, 2, "b", 1, close_in_cb, &cl), 0);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(cl.calls, 2);
    assert_int_equal(cl.append_rc, -ESHUTDOWN);
    journal *j;
    assert_int_equal(journal_open(&j, &e->loop, &c, NULL, NULL, &st), 0);
    assert_int_equal(st.records, 2);
    close_journal(&e->loop, j);
}

typedef struct replay_thread_arg {
    const journal_config *cfg;
    recs *r;
    journal_replay_stats *st;
    int rc;
} replay_thread_arg;

static void *replay_thread(void *p)
{
    replay_thread_arg *a = p;
    a->rc = journal_replay(a->cfg, replay_collect, a->r, a->st);
    return NULL;
}

/* journal_replay on another thread (the server's worker), then
 * journal_open(fn = NULL) to append. */
static void test_replay_on_thread(void **state)
{
    env *e = *state;
    char seg1[256];
    recs r = {0};
    journal_replay_stats st;
    journal *j;
    journal_config c = cfg_for(e->dir, JOURNAL_FSYNC_NEVER);
    pthread_t t;

    write_records(e, e->dir, 30, 0);
    seg_path(seg1, sizeof(seg1), e->dir, 1);
    off_t full = file_size(seg1);
    assert_int_equal(truncate(seg1, full - 3), 0);
    replay_thread_arg a = {.cfg = &c, .r = &r, .st = &st};
    assert_int_equal(pthread_create(&t, NULL, replay_thread, &a), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(a.rc, 0);
    check_replay(&r, 0, 29);
    assert_int_equal(st.truncated_bytes, rec_size(29) - 3);
    recs_free(&r);

    assert_int_equal(journal_open(&j, &e->loop, &c, NULL, NULL, &st), 0);
    assert_int_equal(st.truncated_bytes, 0);
    assert_int_equal(st.records, 29);
    assert_int_equal(journal_replay(&c, NULL, NULL, &st), -EBUSY);
    close_journal(&e->loop, j);
    assert_int_equal(journal_replay(&c, replay_collect, &r, &st), 0);
    check_replay(&r, 0, 29);
    recs_free(&r);
}

/* journal_open(fn = NULL) reads only the tail: it cuts a torn tail behind
 * empty segments, and leaves older segments to journal_replay. */
static void test_open_without_fn_reads_tail(void **state)
{
    env *e = *state;
    char seg[256];
    recs r = {0};
    journal_replay_stats st;
    journal *j;
    journal_config c = cfg_for(e->dir, JOURNAL_FSYNC_NEVER);

    write_records(e, e->dir, 200, 8192);
    size_t segs = count_segments(e->dir);
    assert_true(segs > 3);
    seg_path(seg, sizeof(seg), e->dir, (unsigned)segs);
    off_t last_size = file_size(seg);
    assert_int_equal(truncate(seg, last_size - 1), 0); /* torn tail */
    seg_path(seg, sizeof(seg), e->dir, (unsigned)segs + 1);
    int fd = open(seg, O_WRONLY | O_CREAT | O_EXCL, 0644); /* then an empty segment */
    assert_true(fd >= 0);
    close(fd);
    seg_path(seg, sizeof(seg), e->dir, 1);
    flip_byte(seg, 20); /* and mid-journal damage far back */

    assert_int_equal(journal_open(&j, &e->loop, &c, NULL, NULL, &st), 0);
    assert_int_equal(st.segments, 1); /* only the torn one was read */
    assert_true(st.truncated_bytes > 0);
    journal_stats js;
    journal_get_stats(j, &js);
    assert_int_equal(js.segments, segs + 1);
    close_journal(&e->loop, j);
    assert_int_equal(journal_replay(&c, replay_collect, &r, &st), -EBADMSG);
    recs_free(&r);
    c.salvage = 1;
    assert_int_equal(journal_replay(&c, replay_collect, &r, &st), 0);
    assert_int_equal(st.records, 198); /* one skipped, one torn */
    assert_int_equal(st.truncated_bytes, 0);
    recs_free(&r);
}

/* ---- disk full ------------------------------------------------------- */

#define CHILD_CHECK(cond)                                                                   \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "child check failed at line %d: %s\n", __LINE__, #cond);        \
            _exit(1);                                                                       \
        }                                                                                   \
    } while (0)

/* Runs `call` (a child function: it ends in _exit) in a forked process,
 * which must exit 0 (not be killed, e.g. by SIGXFSZ). */
#define RUN_CHILD(call)                                                                     \
    do {                                                                                    \
        int st_;                                                                            \
        fflush(NULL);                                                                       \
        pid_t pid_ = fork();                                                                \
        assert_true(pid_ >= 0);                                                             \
        if (pid_ == 0)                                                                      \
            call;                                                                           \
        assert_int_equal(waitpid(pid_, &st_, 0), pid_);                                     \
        assert_true(WIFEXITED(st_));                                                        \
        assert_int_equal(WEXITSTATUS(st_), 0);                                              \
    } while (0)

typedef struct status_box {
    int n, last;
} status_box;

static void box_done(void *ctx, int status)
{
    status_box *b = ctx;
    b->n++;
    b->last = status;
}

/* Two check handles, started before and after the journal's own: in one
 * iteration the first appends A, the journal's check hands A to the writer,
 * the second appends B — which is then queued behind A, deterministically,
 * because the loop learns of A's result only in the next iteration. */
typedef struct append_pair {
    journal *j;
    int armed;
    status_box a, b;
} append_pair;

static void pair_check(uv_check_t *h)
{
    append_pair *p = h->data;
    char client[32];
    uint8_t msg[4096];
    size_t clen, len;
    if (!p->armed)
        return;
    gen(p->armed == 1 ? 10 : 11, client, &clen, msg, &len);
    CHILD_CHECK(journal_append(p->j, client, clen, p->armed == 1 ? 11 : 12, msg, len, box_done,
                               p->armed == 1 ? &p->a : &p->b) == 0);
    p->armed = p->armed == 1 ? 2 : 0;
}

/* Appends records [from, to) in one loop iteration; returns their status. */
static int child_append(uv_loop_t *loop, journal *j, size_t from, size_t to)
{
    char client[32];
    uint8_t msg[4096];
    size_t clen, len;
    status_box b = {0};
    for (size_t i = from; i < to; i++) {
        gen(i, client, &clen, msg, &len);
        CHILD_CHECK(journal_append(j, client, clen, i + 1, msg, len, box_done, &b) == 0);
    }
    uv_run(loop, UV_RUN_DEFAULT);
    CHILD_CHECK(b.n == (int)(to - from));
    return b.last;
}

static void disk_full_child(const char *dir, int ignore_sigxfsz)
{
    uv_loop_t loop;
    journal *j;
    journal_config c = cfg_for(dir, JOURNAL_FSYNC_ALWAYS);
    journal_stats js;
    struct rlimit rl, saved;
    char seg[256];
    off_t ok_bytes = 0;

    /* The server ignores SIGXFSZ. The default disposition (kill) must not
     * fire either: the writer thread runs with signals blocked. */
    signal(SIGXFSZ, ignore_sigxfsz ? SIG_IGN : SIG_DFL);
    CHILD_CHECK(uv_loop_init(&loop) == 0);
    append_pair pair = {0};
    uv_check_t before, after;
    uv_check_init(&loop, &before);
    uv_check_init(&loop, &after);
    before.data = after.data = &pair;
    uv_check_start(&before, pair_check);
    uv_unref((uv_handle_t *)&before);
    CHILD_CHECK(journal_open(&j, &loop, &c, NULL, NULL, NULL) == 0);
    uv_check_start(&after, pair_check);
    uv_unref((uv_handle_t *)&after);
    for (size_t i = 0; i < 10; i++)
        ok_bytes += (off_t)rec_size(i);
    CHILD_CHECK(getrlimit(RLIMIT_FSIZE, &saved) == 0);
    /* Limit in the middle of record 10: its write is short, then EFBIG. */
    rl = saved;
    rl.rlim_cur = (rlim_t)ok_bytes + rec_size(10) / 2;
    CHILD_CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
    for (size_t i = 0; i < 10; i++)
        CHILD_CHECK(child_append(&loop, j, i, i + 1) == 0);
    CHILD_CHECK(child_append(&loop, j, 10, 11) == -EFBIG);
    CHILD_CHECK(child_append(&loop, j, 10, 14) == -EFBIG); /* a whole group fails */
    seg_path(seg, sizeof(seg), dir, 1);
    struct stat sb;
    CHILD_CHECK(stat(seg, &sb) == 0 && sb.st_size == ok_bytes); /* whole records only */
    journal_get_stats(j, &js);
    CHILD_CHECK(js.errors == 2 && js.last_error == -EFBIG && js.records == 10);
    /* While a failing group (record 10, too big) is in flight, record 11 is
     * appended behind it; it would fit, but it must fail with it. */
    uint64_t groups_before = js.groups;
    CHILD_CHECK(rec_size(11) < rec_size(10) / 2);
    pair.j = j;
    pair.armed = 1;
    uv_ref((uv_handle_t *)&before); /* so the loop runs that one iteration */
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_unref((uv_handle_t *)&before);
    CHILD_CHECK(pair.armed == 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHILD_CHECK(pair.a.n == 1 && pair.a.last == -EFBIG);
    CHILD_CHECK(pair.b.n == 1 && pair.b.last == -EFBIG);
    journal_get_stats(j, &js);
    CHILD_CHECK(js.groups == groups_before + 1); /* record 11 never reached the disk */
    /* Space returns: the very next group succeeds. */
    CHILD_CHECK(setrlimit(RLIMIT_FSIZE, &saved) == 0);
    CHILD_CHECK(child_append(&loop, j, 10, 14) == 0);
    journal_close(j);
    uv_close((uv_handle_t *)&before, NULL);
    uv_close((uv_handle_t *)&after, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);

    recs r = {0};
    journal_replay_stats st;
    CHILD_CHECK(journal_open(&j, &loop, &c, replay_collect, &r, &st) == 0);
    CHILD_CHECK(st.records == 14 && st.truncated_bytes == 0 && st.skipped_records == 0);
    for (size_t i = 0; i < 14; i++)
        CHILD_CHECK(r.v[i].seq == i + 1 && r.v[i].len == gen_len(i));
    journal_close(j);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHILD_CHECK(uv_loop_close(&loop) == 0);
    _exit(0);
}

static void test_disk_full(void **state)
{
    env *e = *state;

    for (int ignore = 1; ignore >= 0; ignore--) {
        char dir[256];
        snprintf(dir, sizeof(dir), "%s/%s", e->dir, ignore ? "ign" : "dfl");
        RUN_CHILD(disk_full_child(dir, ignore)); /* not killed by SIGXFSZ */
    }
}

/* Groups handed over early fail in order: once one fails, every record
 * appended before its callbacks ran fails too, even one that would fit —
 * a later record kept after an earlier one failed would make the earlier
 * one's resend look like a duplicate. Records appended in one iteration
 * under a file size limit a later, smaller group would fit under. */
static void early_fail_child(const char *dir)
{
    static done_log log;
    static done_slot slots[4096];
    uv_loop_t loop;
    journal *j;
    journal_config c = cfg_for(dir, JOURNAL_FSYNC_NEVER);
    struct rlimit rl;
    char seg[256];

    signal(SIGXFSZ, SIG_IGN);
    CHILD_CHECK(uv_loop_init(&loop) == 0);
    CHILD_CHECK(journal_open(&j, &loop, &c, NULL, NULL, NULL) == 0);
    CHILD_CHECK(getrlimit(RLIMIT_FSIZE, &rl) == 0);
    rl.rlim_cur = 40 << 10;
    CHILD_CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
    feed(&loop, j, 0, 2000, 2000, &log, slots); /* one iteration */
    CHILD_CHECK(log.n == 2000);
    size_t ok = 0;
    off_t kept = 0;
    while (ok < 2000 && log.status[ok] == 0)
        kept += (off_t)rec_size(log.order[ok++]);
    CHILD_CHECK(ok > 0 && ok < 2000); /* the first group fit, a later one did not */
    for (size_t i = 0; i < 2000; i++)
        CHILD_CHECK(log.order[i] == i && (i < ok ? log.status[i] == 0 : log.status[i] == -EFBIG));
    seg_path(seg, sizeof(seg), dir, 1);
    struct stat sb;
    CHILD_CHECK(stat(seg, &sb) == 0 && sb.st_size == kept);
    _exit(0);
}

static void test_early_handover_fails_in_order(void **state)
{
    env *e = *state;
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/early", e->dir);
    RUN_CHILD(early_fail_child(dir));
}

/* ---- fsync policies -------------------------------------------------- */

typedef struct paced {
    journal *j;
    size_t next, to;
    done_log *log;
    done_slot *slots;
    uv_timer_t t;
} paced;

static void paced_tick(uv_timer_t *t)
{
    paced *p = t->data;
    append_one(p->j, p->next, p->log, p->slots);
    if (++p->next == p->to)
        uv_timer_stop(t);
}

static void test_fsync_policies(void **state)
{
    env *e = *state;
    static done_log log;
    static done_slot slots[4096];
    const journal_fsync pol[3] = {JOURNAL_FSYNC_ALWAYS, JOURNAL_FSYNC_INTERVAL,
                                  JOURNAL_FSYNC_NEVER};

    for (int k = 0; k < 3; k++) {
        char dir[256];
        journal *j;
        journal_config c = cfg_for(dir, pol[k]);
        journal_stats js;
        recs r = {0};
        journal_replay_stats st;

        snprintf(dir, sizeof(dir), "%s/p%d", e->dir, k);
        c.interval_ms = 20;
        assert_int_equal(journal_open(&j, &e->loop, &c, NULL, NULL, NULL), 0);
        memset(&log, 0, sizeof(log));
        /* One append every 2 ms for ~120 ms: 60 separate groups. */
        paced p = {.j = j, .next = 0, .to = 60, .log = &log, .slots = slots};
        uv_timer_init(&e->loop, &p.t);
        p.t.data = &p;
        uv_timer_start(&p.t, paced_tick, 2, 2);
        uv_run(&e->loop, UV_RUN_DEFAULT);
        uv_close((uv_handle_t *)&p.t, NULL);
        uv_run(&e->loop, UV_RUN_DEFAULT);
        assert_int_equal(log.n, 60);
        for (size_t i = 0; i < 60; i++)
            assert_int_equal(log.status[i], 0);
        journal_get_stats(j, &js);
        print_message("policy %d: %llu groups, %llu fsyncs\n", k, (unsigned long long)js.groups,
                      (unsigned long long)js.fsyncs);
        if (pol[k] == JOURNAL_FSYNC_ALWAYS)
            assert_int_equal(js.fsyncs, js.groups);
        if (pol[k] == JOURNAL_FSYNC_INTERVAL)
            assert_true(js.fsyncs >= 2 && js.fsyncs < js.groups);
        if (pol[k] == JOURNAL_FSYNC_NEVER)
            assert_int_equal(js.fsyncs, 0);
        close_journal(&e->loop, j);
        assert_int_equal(reopen_collect(e, dir, 0, &r, &st), 0);
        check_replay(&r, 0, 60);
        recs_free(&r);
    }
}

/* ---- rotate barriers and checkpoints ----------------------------------- */

#define BARRIER_MARK ((size_t)-1)

typedef struct barrier_rec {
    done_log *log;
    int status;
    uint64_t seg;
    int calls;
} barrier_rec;

static void on_barrier(void *ctx, int status, uint64_t seg)
{
    barrier_rec *b = ctx;
    b->log->order[b->log->n] = BARRIER_MARK;
    b->log->status[b->log->n] = status;
    b->log->n++;
    b->status = status;
    b->seg = seg;
    b->calls++;
}

static void collect_after(env *e, const char *dir, uint64_t after, recs *r)
{
    journal_config c = cfg_for(dir, JOURNAL_FSYNC_NEVER);
    journal_replay_stats st;
    c.after_segment = after;
    assert_int_equal(journal_replay(&c, replay_collect, r, &st), 0);
    (void)e;
}

/* Records before a barrier complete before it and land in segments <= N;
 * records after it complete after it and land in segments > N. */
static void test_barrier_order(void **state)
{
    env *e = *state;
    static done_log log;
    static done_slot slots[4096];
    journal *j;
    journal_config c = cfg_for(e->dir, JOURNAL_FSYNC_INTERVAL);
    barrier_rec b1 = {.log = &log}, b2 = {.log = &log};
    recs r = {0};

    c.segment_bytes = 16384; /* size rotation mixed in */
    assert_int_equal(journal_open(&j, &e->loop, &c, NULL, NULL, NULL), 0);
    feed(&e->loop, j, 0, 40, 0, &log, slots); /* some groups written first */
    /* In one loop iteration: 40..79, barrier, 80..119, barrier, 120..129. */
    for (size_t i = 40; i < 80; i++)
        append_one(j, i, &log, slots);
    assert_int_equal(journal_rotate_barrier(j, on_barrier, &b1), 0);
    for (size_t i = 80; i < 120; i++)
        append_one(j, i, &log, slots);
    assert_int_equal(journal_rotate_barrier(j, on_barrier, &b2), 0);
    for (size_t i = 120; i < 130; i++)
        append_one(j, i, &log, slots);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(log.n, 132);
    for (size_t i = 0, k = 0; i < log.n; i++) {
        if (i == 80 || i == 121) {
            assert_int_equal(log.order[i], BARRIER_MARK);
            continue;
        }
        assert_int_equal(log.order[i], k++);
        assert_int_equal(log.status[i], 0);
    }
    assert_int_equal(b1.calls, 1);
    assert_int_equal(b1.status, 0);
    assert_int_equal(b2.status, 0);
    assert_true(b2.seg > b1.seg && b1.seg >= 1);
    /* 120..129 went to the segment after b2's; a barrier now cuts there.
     * Another one right after it finds its segment empty: no new file. */
    barrier_rec b3 = {.log = &log}, b4 = {.log = &log};
    assert_int_equal(journal_rotate_barrier(j, on_barrier, &b3), 0);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(b3.status, 0);
    assert_int_equal(b3.seg, b2.seg + 1);
    size_t segs = count_segments(e->dir);
    assert_int_equal(journal_rotate_barrier(j, on_barrier, &b4), 0);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(b4.status, 0);
    assert_int_equal(b4.seg, b3.seg);
    assert_int_equal(count_segments(e->dir), segs);
    close_journal(&e->loop, j);

    collect_after(e, e->dir, b1.seg, &r);
    check_replay(&r, 80, 50);
    recs_free(&r);
    collect_after(e, e->dir, b2.seg, &r);
    check_replay(&r, 120, 10);
    recs_free(&r);
    collect_after(e, e->dir, 0, &r);
    check_replay(&r, 0, 130);
    recs_free(&r);

    /* The checkpoint removes what it covers; replay and appends go on. */
    uint64_t removed = 0;
    assert_int_equal(journal_remove_through(e->dir, b1.seg, &removed), 0);
    assert_int_equal(removed, b1.seg);
    assert_int_equal(count_segments(e->dir), segs - b1.seg);
    c.after_segment = b1.seg;
    assert_int_equal(journal_open(&j, &e->loop, &c, NULL, NULL, NULL), 0);
    memset(&log, 0, sizeof(log));
    feed(&e->loop, j, 130, 140, 0, &log, slots);
    close_journal(&e->loop, j);
    collect_after(e, e->dir, b1.seg, &r);
    check_replay(&r, 80, 60);
    recs_free(&r);
}

/* After a checkpoint removed every segment, numbering goes on above the
 * checkpoint: a new segment never takes a number replay would skip. */
static void test_after_segment_numbering(void **state)
{
    env *e = *state;
    static done_log log;
    static done_slot slots[4096];
    journal *j;
    journal_config c = cfg_for(e->dir, JOURNAL_FSYNC_NEVER);
    recs r = {0};
    char path[256];

    c.after_segment = 41;
    assert_int_equal(journal_open(&j, &e->loop, &c, NULL, NULL, NULL), 0);
    feed(&e->loop, j, 0, 5, 0, &log, slots);
    close_journal(&e->loop, j);
    seg_path(path, sizeof(path), e->dir, 42);
    assert_true(file_size(path) > 0);
    assert_int_equal(count_segments(e->dir), 1);
    collect_after(e, e->dir, 41, &r);
    check_replay(&r, 0, 5);
    recs_free(&r);
    /* Covered segments are not even opened: garbage there is not an error. */
    seg_path(path, sizeof(path), e->dir, 7);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("not a journal at all", f);
    fclose(f);
    collect_after(e, e->dir, 41, &r);
    check_replay(&r, 0, 5);
    recs_free(&r);
    /* Without the checkpoint, segments 1..6 are missing (before the garbage). */
    journal_config c0 = cfg_for(e->dir, JOURNAL_FSYNC_NEVER);
    assert_int_equal(journal_replay(&c0, replay_collect, &r, NULL), -ENODATA);
    recs_free(&r);
}

/* The new segment cannot be created: the barrier fails, its records do
 * not, and appends stay on the old segment; a later barrier succeeds. */
static void test_barrier_rotate_fails(void **state)
{
    env *e = *state;
    static done_log log;
    static done_slot slots[4096];
    journal *j;
    journal_config c = cfg_for(e->dir, JOURNAL_FSYNC_NEVER);
    barrier_rec b = {.log = &log};
    recs r = {0};
    char next[256];

    assert_int_equal(journal_open(&j, &e->loop, &c, NULL, NULL, NULL), 0);
    seg_path(next, sizeof(next), e->dir, 2);
    FILE *f = fopen(next, "w"); /* segment numbers are O_EXCL: this blocks it */
    assert_non_null(f);
    fclose(f);
    for (size_t i = 0; i < 10; i++)
        append_one(j, i, &log, slots);
    assert_int_equal(journal_rotate_barrier(j, on_barrier, &b), 0);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(log.n, 11);
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(log.status[i], 0);
    assert_int_equal(b.status, -EEXIST);
    unlink(next);
    feed(&e->loop, j, 10, 20, 0, &log, slots);
    assert_int_equal(journal_rotate_barrier(j, on_barrier, &b), 0);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(b.status, 0);
    assert_int_equal(b.seg, 1);
    /* Closing with a barrier still sealed: it runs, inside close. */
    append_one(j, 20, &log, slots);
    assert_int_equal(journal_rotate_barrier(j, on_barrier, &b), 0);
    int calls = b.calls;
    journal_close(j);
    assert_int_equal(b.calls, calls + 1);
    assert_int_equal(b.status, 0);
    assert_int_equal(b.seg, 2);
    assert_int_equal(journal_rotate_barrier(j, on_barrier, &b), -ESHUTDOWN);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    collect_after(e, e->dir, 0, &r);
    check_replay(&r, 0, 21);
    recs_free(&r);
}

/* ---- the sync thread and preallocation (journal_sync.c) ---------------- */

/* The interval policy syncs on its own thread: with no append after the
 * first group, the sync still comes within the interval. */
static void test_interval_sync_without_appends(void **state)
{
    env *e = *state;
    static done_log log;
    static done_slot slots[4096];
    journal *j;
    journal_config c = cfg_for(e->dir, JOURNAL_FSYNC_INTERVAL);
    journal_stats js;

    c.interval_ms = 5;
    assert_int_equal(journal_open(&j, &e->loop, &c, NULL, NULL, NULL), 0);
    feed(&e->loop, j, 0, 20, 20, &log, slots);
    journal_get_stats(j, &js);
    assert_int_equal(js.groups, 1);
    for (int i = 0; i < 2000 && js.fsyncs == 0; i++) {
        usleep(1000);
        journal_get_stats(j, &js);
    }
    assert_int_equal(js.fsyncs, 1);
    assert_int_equal(js.errors, 0);
    close_journal(&e->loop, j);
}

/* Close syncs what the sync thread has not: with an interval nothing
 * reaches, only close's sync can count. Callbacks journal_close runs see
 * the writer already finished, so their stats include it. */
typedef struct close_probe {
    journal *j;
    journal_stats st;
    int calls;
} close_probe;

static void close_probe_done(void *ctx, int status)
{
    close_probe *p = ctx;
    assert_int_equal(status, 0);
    journal_get_stats(p->j, &p->st);
    p->calls++;
}

static void test_close_syncs_everything(void **state)
{
    env *e = *state;
    static done_log log;
    static done_slot slots[4096];
    const journal_fsync pol[2] = {JOURNAL_FSYNC_INTERVAL, JOURNAL_FSYNC_NEVER};

    for (int k = 0; k < 2; k++) {
        char dir[256];
        journal_config c = cfg_for(dir, pol[k]);
        journal_stats js;
        close_probe p = {0};
        recs r = {0};

        snprintf(dir, sizeof(dir), "%s/p%d", e->dir, k);
        c.interval_ms = 600000;
        assert_int_equal(journal_open(&p.j, &e->loop, &c, NULL, NULL, NULL), 0);
        memset(&log, 0, sizeof(log));
        feed(&e->loop, p.j, 0, 50, 0, &log, slots); /* written and acked, not synced */
        journal_get_stats(p.j, &js);
        assert_int_equal(js.records, 50);
        assert_int_equal(js.fsyncs, 0);
        assert_int_equal(journal_append(p.j, "c", 1, 51, "x", 1, close_probe_done, &p), 0);
        journal_close(p.j);
        assert_int_equal(p.calls, 1);
        assert_int_equal(p.st.fsyncs, 1);
        assert_int_equal(p.st.records, 51);
        uv_run(&e->loop, UV_RUN_DEFAULT);
        assert_int_equal(journal_replay(&c, replay_collect, &r, NULL), 0);
        assert_int_equal(r.n, 51);
        recs_free(&r);
    }
}

/* A rotation while the sync thread is inside fdatasync of the old segment:
 * the writer hands the fd over instead of closing it, so the sync finishes
 * on the file it started on (no EBADF, no reused fd number). A second
 * rotation before the first old fd is retired waits for it. */
static struct {
    volatile int entered, release, calls;
    int fd_ok, same_file;
} hold;

static void hold_first_sync(int fd)
{
    struct stat a, b;

    if (__atomic_fetch_add(&hold.calls, 1, __ATOMIC_SEQ_CST))
        return;
    fstat(fd, &a);
    __atomic_store_n(&hold.entered, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < 5000 && !__atomic_load_n(&hold.release, __ATOMIC_SEQ_CST); i++)
        usleep(1000);
    usleep(50000); /* let the second rotation reach the hand-over */
    hold.fd_ok = fcntl(fd, F_GETFD) >= 0 && fstat(fd, &b) == 0;
    hold.same_file = hold.fd_ok && a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

static void test_rotation_during_sync(void **state)
{
    env *e = *state;
    static done_log log;
    static done_slot slots[4096];
    journal *j;
    journal_config c = cfg_for(e->dir, JOURNAL_FSYNC_INTERVAL);
    barrier_rec b1 = {.log = &log}, b2 = {.log = &log};
    journal_stats js;
    recs r = {0};

    memset(&hold, 0, sizeof(hold));
    c.interval_ms = 1;
    assert_int_equal(journal_open(&j, &e->loop, &c, NULL, NULL, NULL), 0);
    journal_sync_test_hook = hold_first_sync;
    feed(&e->loop, j, 0, 10, 10, &log, slots);
    for (int i = 0; i < 5000 && !__atomic_load_n(&hold.entered, __ATOMIC_SEQ_CST); i++)
        usleep(1000);
    assert_true(__atomic_load_n(&hold.entered, __ATOMIC_SEQ_CST)); /* the sync thread now sits just before fdatasync(seg 1) */
    for (size_t i = 10; i < 20; i++)
        append_one(j, i, &log, slots);
    assert_int_equal(journal_rotate_barrier(j, on_barrier, &b1), 0);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(b1.status, 0);
    assert_int_equal(b1.seg, 1);
    __atomic_store_n(&hold.release, 1, __ATOMIC_SEQ_CST);
    for (size_t i = 20; i < 30; i++)
        append_one(j, i, &log, slots);
    assert_int_equal(journal_rotate_barrier(j, on_barrier, &b2), 0);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(b2.status, 0);
    assert_int_equal(b2.seg, 2);
    assert_true(hold.fd_ok);
    assert_true(hold.same_file);
    feed(&e->loop, j, 30, 40, 0, &log, slots);
    journal_get_stats(j, &js);
    assert_int_equal(js.errors, 0);
    close_journal(&e->loop, j);
    journal_sync_test_hook = NULL;
    assert_int_equal(count_segments(e->dir), 3);
    collect_after(e, e->dir, 0, &r);
    check_replay(&r, 0, 40);
    recs_free(&r);
    collect_after(e, e->dir, 2, &r);
    check_replay(&r, 30, 10);
    recs_free(&r);
}

/* Does dir's filesystem do fallocate(KEEP_SIZE)? */
static int can_prealloc(const char *dir)
{
    char path[256];
    int fd, ok;
    snprintf(path, sizeof(path), "%s/probe", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    ok = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 65536) == 0;
    close(fd);
    unlink(path);
    return ok;
}

static off_t file_alloc(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return (off_t)sb.st_blocks * 512;
}

/* A segment's blocks are reserved when it starts, without changing
 * st_size; a crash leaves the reservation past the end, which replay never
 * sees and the next open gives back; so do rotation and close. */
#define PREALLOC_SEG ((uint64_t)8 << 20)

static void crash_child(const char *dir)
{
    uv_loop_t loop;
    journal *j;
    journal_config c = cfg_for(dir, JOURNAL_FSYNC_INTERVAL);
    char seg[256];
    c.segment_bytes = PREALLOC_SEG;
    CHILD_CHECK(uv_loop_init(&loop) == 0);
    CHILD_CHECK(journal_open(&j, &loop, &c, NULL, NULL, NULL) == 0);
    CHILD_CHECK(child_append(&loop, j, 0, 30) == 0);
    seg_path(seg, sizeof(seg), dir, 1);
    struct stat sb;
    CHILD_CHECK(stat(seg, &sb) == 0);
    off_t written = 0;
    for (size_t i = 0; i < 30; i++)
        written += (off_t)rec_size(i);
    CHILD_CHECK(sb.st_size == written);
    CHILD_CHECK((off_t)sb.st_blocks * 512 >= (off_t)PREALLOC_SEG);
    _exit(0); /* like kill -9: no close */
}

static void test_prealloc(void **state)
{
    env *e = *state;
    char dir[256], seg[256];
    recs r = {0};
    journal_replay_stats st;
    journal *j;

    if (!can_prealloc(e->dir)) {
        print_message("fallocate(KEEP_SIZE) unsupported here: prealloc test skipped\n");
        return;
    }
    snprintf(dir, sizeof(dir), "%s/crash", e->dir);
    RUN_CHILD(crash_child(dir));

    /* Replay sees exactly the records; open gives the reservation back;
     * appends go on in a new segment, reserved whole. */
    journal_config c = cfg_for(dir, JOURNAL_FSYNC_INTERVAL);
    c.segment_bytes = PREALLOC_SEG;
    assert_int_equal(journal_open(&j, &e->loop, &c, replay_collect, &r, &st), 0);
    check_replay(&r, 0, 30);
    assert_int_equal(st.truncated_bytes, 0);
    assert_int_equal(st.detail[0], 0);
    recs_free(&r);
    seg_path(seg, sizeof(seg), dir, 1);
    assert_true(file_alloc(seg) < file_size(seg) + 65536);
    static done_log log;
    static done_slot slots[4096];
    barrier_rec b = {.log = &log};
    feed(&e->loop, j, 30, 60, 0, &log, slots);
    seg_path(seg, sizeof(seg), dir, 2);
    assert_true(file_alloc(seg) >= (off_t)PREALLOC_SEG);
    /* Rotation releases the old segment's reservation (on the sync thread;
     * close waits for it). */
    assert_int_equal(journal_rotate_barrier(j, on_barrier, &b), 0);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(b.status, 0);
    assert_int_equal(b.seg, 2);
    feed(&e->loop, j, 60, 70, 0, &log, slots);
    close_journal(&e->loop, j);
    assert_true(file_alloc(seg) < file_size(seg) + 65536);
    seg_path(seg, sizeof(seg), dir, 3);
    assert_true(file_size(seg) > 0);
    assert_true(file_alloc(seg) < file_size(seg) + 65536); /* close releases too */
    collect_after(e, dir, 0, &r);
    check_replay(&r, 0, 70);
    recs_free(&r);
}

/* Pages of the segment resident in the page cache among its first n. */
static size_t resident_pages(const char *path, size_t n)
{
    long page = sysconf(_SC_PAGESIZE);
    unsigned char vec[1024];
    size_t k = 0;
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0 && n <= sizeof(vec));
    void *m = mmap(NULL, n * (size_t)page, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(m != MAP_FAILED);
    assert_int_equal(mincore(m, n * (size_t)page, vec), 0);
    for (size_t i = 0; i < n; i++)
        k += vec[i] & 1;
    munmap(m, n * (size_t)page);
    close(fd);
    return k;
}

/* Written pages do not stay in the page cache: the interval policy drops
 * them after its sync; never (and a long interval) writes them out every
 * 10 ms without an fsync and drops them too; always drops them once the
 * writer has synced them. */
static void test_written_pages_dropped(void **state)
{
    env *e = *state;
    static done_log log;
    static done_slot slots[4096];
    const journal_fsync pol[4] = {JOURNAL_FSYNC_INTERVAL, JOURNAL_FSYNC_INTERVAL,
                                  JOURNAL_FSYNC_NEVER, JOURNAL_FSYNC_ALWAYS};
    const uint32_t interval[4] = {10, 60000, 0, 0};

    for (int k = 0; k < 4; k++) {
        char dir[256], seg[256];
        journal *j;
        journal_config c = cfg_for(dir, pol[k]);
        journal_stats js;
        size_t left = 0;

        snprintf(dir, sizeof(dir), "%s/d%d", e->dir, k);
        c.interval_ms = interval[k];
        assert_int_equal(journal_open(&j, &e->loop, &c, NULL, NULL, NULL), 0);
        memset(&log, 0, sizeof(log));
        feed(&e->loop, j, 0, 1000, 1000, &log, slots); /* one iteration, ~550 KiB */
        seg_path(seg, sizeof(seg), dir, 1);
        assert_true(file_size(seg) > 64 * 4096);
        for (int i = 0; i < 2000 && (left = resident_pages(seg, 64)) > 0; i++)
            usleep(1000);
        assert_int_equal(left, 0);
        journal_get_stats(j, &js);
        /* Write-outs are not syncs; always syncs each group (a group is
         * handed over early past JOURNAL__EARLY, so ~550 KiB is a few). */
        if (k == 3)
            assert_int_equal(js.fsyncs, js.groups);
        else if (k == 0)
            assert_true(js.fsyncs >= 1 && js.fsyncs <= js.groups);
        else
            assert_int_equal(js.fsyncs, 0);
        close_journal(&e->loop, j);
    }
}

/* ---- missing and emptied segments ---- */

/* Records replay finds in the segments above `after`. */
static size_t count_after(const char *dir, uint64_t after)
{
    recs r = {0};
    journal_config c = cfg_for(dir, JOURNAL_FSYNC_NEVER);
    c.after_segment = after;
    assert_int_equal(journal_replay(&c, replay_collect, &r, NULL), 0);
    size_t n = r.n;
    recs_free(&r);
    return n;
}

static int replay_after(const char *dir, uint64_t after, int salvage, recs *r,
                        journal_replay_stats *st)
{
    journal_config c = cfg_for(dir, JOURNAL_FSYNC_NEVER);
    c.after_segment = after;
    c.salvage = salvage;
    return journal_replay(&c, replay_collect, r, st);
}

/* A segment removed from the middle: acknowledged batches are gone and
 * clients would not resend them (their last_seq comes from later
 * segments), so replay refuses, naming the file; salvage replays past it. */
static void test_missing_segment(void **state)
{
    env *e = *state;
    char seg[256], seg4[256];
    recs r = {0};
    journal_replay_stats st;

    write_records(e, e->dir, 200, 8192);
    size_t segs = count_segments(e->dir), in3 = count_after(e->dir, 2) - count_after(e->dir, 3);
    assert_true(segs > 5 && in3 > 0);
    seg_path(seg, sizeof(seg), e->dir, 3);
    seg_path(seg4, sizeof(seg4), e->dir, 4);
    off_t size4 = file_size(seg4);
    assert_int_equal(unlink(seg), 0);
    assert_int_equal(reopen_collect(e, e->dir, 0, &r, &st), -ENODATA);
    assert_non_null(strstr(st.detail, "journal-0000000000000003.log missing"));
    assert_int_equal(r.n, 0); /* checked before any record is replayed */
    assert_int_equal(count_segments(e->dir), segs - 1);
    assert_int_equal(file_size(seg4), size4); /* refusing means touching nothing */
    recs_free(&r);
    assert_int_equal(replay_after(e->dir, 0, 0, &r, &st), -ENODATA);
    recs_free(&r);

    assert_int_equal(replay_after(e->dir, 0, 1, &r, &st), 0);
    assert_int_equal(st.records, 200 - in3);
    assert_int_equal(st.missing_segments, 1);
    assert_non_null(strstr(st.detail, "salvage"));
    recs_free(&r);

    /* Two in a row: both named. */
    assert_int_equal(unlink(seg4), 0);
    assert_int_equal(replay_after(e->dir, 0, 0, &r, &st), -ENODATA);
    assert_non_null(strstr(st.detail, "journal-0000000000000003.log .. journal-0000000000000004.log"));
    recs_free(&r);
}

/* The oldest segment, with nothing covering it: the journal must start at
 * segment 1, or right after the checkpoint it continues. */
static void test_missing_first_segment(void **state)
{
    env *e = *state;
    char seg[256];
    recs r = {0};
    journal_replay_stats st;

    write_records(e, e->dir, 200, 8192);
    size_t after1 = count_after(e->dir, 1);
    seg_path(seg, sizeof(seg), e->dir, 1);
    assert_int_equal(unlink(seg), 0);
    assert_int_equal(replay_after(e->dir, 0, 0, &r, &st), -ENODATA);
    assert_non_null(strstr(st.detail, "journal-0000000000000001.log missing"));
    assert_non_null(strstr(st.detail, "no checkpoint"));
    recs_free(&r);
    /* A checkpoint at 1 covers it: nothing is missing. */
    assert_int_equal(replay_after(e->dir, 1, 0, &r, &st), 0);
    assert_int_equal(r.n, after1);
    recs_free(&r);
    /* A checkpoint at 1, but segment 2 gone: the journal does not continue it. */
    seg_path(seg, sizeof(seg), e->dir, 2);
    assert_int_equal(unlink(seg), 0);
    assert_int_equal(replay_after(e->dir, 1, 0, &r, &st), -ENODATA);
    assert_non_null(strstr(st.detail, "journal-0000000000000002.log missing"));
    recs_free(&r);
    /* Appending (journal_open without fn) checks the same. */
    journal *j;
    journal_config c = cfg_for(e->dir, JOURNAL_FSYNC_NEVER);
    c.after_segment = 1;
    assert_int_equal(journal_open(&j, &e->loop, &c, NULL, NULL, &st), -ENODATA);
}

/* Emptied is not "never written": only the newest segment may be empty
 * (created, nothing written yet). A zero-filled one was written and then
 * damaged: that is corruption, which salvage skips record by record. */
static void test_emptied_segment(void **state)
{
    env *e = *state;
    char seg[256];
    recs r = {0};
    journal_replay_stats st;

    write_records(e, e->dir, 200, 8192);
    size_t in3 = count_after(e->dir, 2) - count_after(e->dir, 3);
    seg_path(seg, sizeof(seg), e->dir, 3);
    off_t size = file_size(seg);
    assert_int_equal(truncate(seg, 0), 0);
    assert_int_equal(replay_after(e->dir, 0, 0, &r, &st), -ENODATA);
    assert_non_null(strstr(st.detail, "journal-0000000000000003.log is empty"));
    recs_free(&r);
    assert_int_equal(replay_after(e->dir, 0, 1, &r, &st), 0);
    assert_int_equal(st.records, 200 - in3);
    assert_int_equal(st.missing_segments, 1);
    recs_free(&r);

    assert_int_equal(truncate(seg, size), 0); /* zeros, as long as it was */
    assert_int_equal(replay_after(e->dir, 0, 0, &r, &st), -EBADMSG);
    assert_non_null(strstr(st.detail, "journal-0000000000000003.log: corrupt record at offset 0"));
    recs_free(&r);
}

/* A torn tail whose later segments hold only garbage: they are removed, not
 * emptied, so the journal the repair leaves (and appends to) replays
 * cleanly next time instead of showing an emptied segment. */
static void test_torn_tail_later_garbage(void **state)
{
    env *e = *state;
    static done_log log;
    static done_slot slots[4096];
    char seg[256];
    recs r = {0};
    journal_replay_stats st;
    journal *j;

    write_records(e, e->dir, 200, 8192);
    unsigned k = (unsigned)count_segments(e->dir);
    assert_true(k > 5);
    size_t kept = 200 - count_after(e->dir, k - 2) - 1; /* all before the torn record */
    seg_path(seg, sizeof(seg), e->dir, k - 2);
    assert_int_equal(truncate(seg, file_size(seg) - 3), 0);
    for (unsigned no = k - 1; no <= k; no++) {
        seg_path(seg, sizeof(seg), e->dir, no);
        FILE *f = fopen(seg, "w");
        assert_non_null(f);
        for (int i = 0; i < 1000; i++)
            fputc(0xA5, f);
        fclose(f);
    }
    journal_config c = cfg_for(e->dir, JOURNAL_FSYNC_NEVER);
    assert_int_equal(journal_open(&j, &e->loop, &c, replay_collect, &r, &st), 0);
    assert_int_equal(r.n, kept);
    assert_true(st.truncated_bytes > 2000);
    recs_free(&r);
    memset(&log, 0, sizeof(log));
    feed(&e->loop, j, kept, kept + 3, 0, &log, slots);
    close_journal(&e->loop, j);
    assert_int_equal(reopen_collect(e, e->dir, 0, &r, &st), 0);
    check_replay(&r, 0, kept + 3);
    recs_free(&r);
}

int main(void)
{
    /* The server ignores SIGXFSZ; so do its tests. */
    signal(SIGXFSZ, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_early_handover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_early_handover_fails_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_every_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_before_empty_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_middle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_segment_tail_with_later_segments, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_replay_abort_and_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_on_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_without_fn_reads_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_policies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_barrier_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_after_segment_numbering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_barrier_rotate_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interval_sync_without_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_syncs_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_during_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prealloc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_written_pages_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_first_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emptied_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_later_garbage, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
