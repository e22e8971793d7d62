/* checkpoint — see checkpoint.h for the design.
 *
 * One checkpoint at a time, a small state machine on the loop thread:
 *
 *   IDLE --trigger--> BARRIER --barrier cb, fork--> CHILD --pipe EOF,
 *     ^                   |                           waitpid ok--> REMOVING
 *     |                   +-- error / nothing new --+        |         |
 *     +------------------------------------------------+-----+---------+
 *                                              (failure)   (worker done)
 *
 * The extra blob the server keeps in a snapshot (core/snapshot.h carries it
 * opaquely), little endian:
 *
 *   0 magic "SLOTCKP1"   8 segment N u64   16 created, Unix ns u64
 *  24 clients u32       28 zero u32
 *  32 per client: name length u8 | name | durable seq u64
 */
#define _GNU_SOURCE
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "ingest.h"
#include "journal.h"
#include "log.h"
#include "retention.h"
#include "snapshot.h"

#define CKPT_TICK_MS 200
#define CKPT_RETRY_NS (10ull * 1000000000u) /* after a failure */
#define CKPT_WBUF (1u << 20)                /* the writer's buffer */
#define CKPT_EXTRA_HDR 32

enum { CKPT_IDLE, CKPT_BARRIER, CKPT_CHILD, CKPT_REMOVING };

/* What the child reports through its pipe (same binary: a raw struct). */
typedef struct ckpt_report {
    int rc;           /* 0, or a SNAPSHOT_* code, or -errno (see stage) */
    char stage[16];   /* where it failed */
    uint64_t bytes, trades;
} ckpt_report;

typedef struct checkpoint {
    server *srv;
    int phase, stopping, final_done;
    void (*stopped)(server *srv);
    uv_timer_t tick;
    uv_pipe_t pipe;
    uv_work_t work;
    pid_t child;
    uint64_t seg;            /* N being taken */
    uint64_t t0;             /* hrtime the checkpoint started */
    uint64_t replayed;       /* journal bytes replayed at start-up, above the snapshot */
    uint64_t pos_at_last;    /* journal position covered by the last checkpoint */
    uint64_t pos_pending;    /* ... by the one being taken */
    uint64_t dropped_at;     /* retention's drop count the newest snapshot reflects */
    uint64_t dropped_pending; /* ... the one being taken */
    uint64_t last_start_ns, retry_at;
    ckpt_report report;
    size_t report_len;
    unsigned char *wbuf;     /* allocated before fork: the child never allocates */
    unsigned char *extra;
    size_t extra_len, extra_cap;
    char tmp_path[4096], snap_path[4096];
    int remove_rc;
    uint64_t removed;
    checkpoint_stats st;
} checkpoint;

static checkpoint *g_loaded; /* stats from checkpoint_load, before checkpoint_start */

/* ---- file names ------------------------------------------------------- */

static void ckpt_path(char *buf, size_t n, const char *dir, uint64_t seg, const char *ext)
{
    snprintf(buf, n, "%s/snapshot-%016" PRIx64 ".%s", dir, seg, ext);
}

/* snapshot-<16 lowercase hex>.<ext>: its number, or 0 when not ours. */
static uint64_t ckpt_parse_name(const char *s, const char *ext)
{
    size_t el = strlen(ext);
    if (strlen(s) != 26 + el || strncmp(s, "snapshot-", 9) || s[25] != '.' || strcmp(s + 26, ext))
        return 0;
    for (int i = 9; i < 25; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return strtoull(s + 9, NULL, 16);
}

static int ckpt_cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x > y ? -1 : x < y;
}

/* Snapshot numbers in dir (ext "snap" or "tmp"), newest first. */
static int ckpt_list(const char *dir, const char *ext, uint64_t **out, size_t *n)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t cap = 0;
    *out = NULL, *n = 0;
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    while ((e = readdir(d))) {
        uint64_t no = ckpt_parse_name(e->d_name, ext);
        if (!no)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            uint64_t *v = realloc(*out, cap * sizeof *v);
            if (!v) {
                closedir(d);
                return -ENOMEM;
            }
            *out = v;
        }
        (*out)[(*n)++] = no;
    }
    closedir(d);
    if (*n)
        qsort(*out, *n, sizeof **out, ckpt_cmp_desc);
    return 0;
}

/* ---- writing a snapshot file (child, or in process at exit) ----------- */

typedef struct ckpt_out {
    int fd;
    unsigned char *buf;
    size_t len;
    int err;
} ckpt_out;

static int ckpt_write_all(int fd, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        b += w, n -= (size_t)w;
    }
    return 0;
}

static int ckpt_out_write(void *ctx, const void *p, size_t n)
{
    ckpt_out *o = ctx;
    if (o->len + n > CKPT_WBUF) {
        if ((o->err = ckpt_write_all(o->fd, o->buf, o->len)) < 0)
            return -1;
        o->len = 0;
        if (n >= CKPT_WBUF)
            return (o->err = ckpt_write_all(o->fd, p, n)) < 0 ? -1 : 0;
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
    return 0;
}

/* tmp -> fsync -> rename -> fsync dir. No allocation, no stdio: fit for a
 * fork()ed child of a multithreaded process. */
static void ckpt_write_file(checkpoint *ck, ckpt_report *r)
{
    server *srv = ck->srv;
    ckpt_out o = {.fd = -1, .buf = ck->wbuf};
    snapshot_io io = {.write = ckpt_out_write, .crc = crc32c, .ctx = &o};
    snapshot_info info = {0};
    int dfd = -1;

    memset(r, 0, sizeof *r);
    memcpy(r->stage, "open", 5);
    if ((o.fd = open(ck->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        r->rc = -errno;
        return;
    }
    memcpy(r->stage, "write", 6);
    r->rc = snapshot_save(srv->store, ck->extra, ck->extra_len, &io, &info);
    if (r->rc == SNAPSHOT_EIO && o.err)
        r->rc = o.err;
    if (r->rc == 0 && o.len && (r->rc = ckpt_write_all(o.fd, o.buf, o.len)) == 0)
        o.len = 0;
    if (r->rc == 0) {
        memcpy(r->stage, "fsync", 6);
        if (fsync(o.fd) < 0)
            r->rc = -errno;
    }
    if (close(o.fd) < 0 && r->rc == 0)
        r->rc = -errno;
    if (r->rc == 0) {
        memcpy(r->stage, "rename", 7);
        if (rename(ck->tmp_path, ck->snap_path) < 0)
            r->rc = -errno;
    }
    if (r->rc == 0) {
        memcpy(r->stage, "fsync_dir", 10);
        if ((dfd = open(srv->cfg.data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
            fsync(dfd) < 0)
            r->rc = -errno;
        if (dfd >= 0)
            close(dfd);
    }
    if (r->rc != 0) {
        unlink(ck->tmp_path);
        return;
    }
    memcpy(r->stage, "done", 5);
    r->bytes = info.bytes;
    r->trades = info.trades;
}

static const char *ckpt_strerror(int rc)
{
    return rc <= SNAPSHOT_EIO && rc >= SNAPSHOT_EINVAL ? snapshot_strerror(rc) : strerror(-rc);
}

/* ---- the extra blob ---------------------------------------------------- */

static void ckpt_put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static uint64_t ckpt_get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void ckpt_extra_client(void *ctx, const char *client, size_t clen, uint64_t seq)
{
    checkpoint *ck = ctx;
    size_t need = ck->extra_len + 1 + clen + 8;
    if (!ck->extra || clen > 255)
        return;
    if (need > ck->extra_cap) {
        size_t cap = ck->extra_cap * 2;
        while (cap < need)
            cap *= 2;
        unsigned char *e = realloc(ck->extra, cap);
        if (!e) {
            free(ck->extra);
            ck->extra = NULL; /* reported by ckpt_extra_build */
            return;
        }
        ck->extra = e, ck->extra_cap = cap;
    }
    unsigned char *p = ck->extra + ck->extra_len;
    p[0] = (unsigned char)clen;
    memcpy(p + 1, client, clen);
    ckpt_put64(p + 1 + clen, seq);
    ck->extra_len = need;
}

/* Client table and segment, as of now (the barrier callback). */
static int ckpt_extra_build(checkpoint *ck, uint64_t seg)
{
    struct timespec now;
    uint32_t n = 0;
    if (!ck->extra) {
        ck->extra_cap = 4096;
        if (!(ck->extra = malloc(ck->extra_cap)))
            return -ENOMEM;
    }
    memset(ck->extra, 0, CKPT_EXTRA_HDR);
    memcpy(ck->extra, "SLOTCKP1", 8);
    ckpt_put64(ck->extra + 8, seg);
    clock_gettime(CLOCK_REALTIME, &now);
    ckpt_put64(ck->extra + 16, (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec);
    ck->extra_len = CKPT_EXTRA_HDR;
    clients_foreach(&ck->srv->clients, ckpt_extra_client, ck);
    if (!ck->extra)
        return -ENOMEM;
    for (size_t off = CKPT_EXTRA_HDR; off < ck->extra_len; off += 1 + ck->extra[off] + 8)
        n++;
    for (int i = 0; i < 4; i++)
        ck->extra[24 + i] = (unsigned char)(n >> (8 * i));
    return 0;
}

/* Apply a loaded blob: the client table. Checked whole before anything is
 * applied; -1 when it is not one we wrote. */
static int ckpt_extra_apply(server *srv, const unsigned char *x, size_t len, uint64_t seg)
{
    if (len < CKPT_EXTRA_HDR || memcmp(x, "SLOTCKP1", 8) || ckpt_get64(x + 8) != seg)
        return -1;
    uint32_t n = (uint32_t)ckpt_get64(x + 24); /* u32 count, then a zero u32 */
    for (int apply = 0; apply < 2; apply++) {
        size_t off = CKPT_EXTRA_HDR;
        for (uint32_t i = 0; i < n; i++) {
            if (off >= len || len - off < 1u + x[off] + 8u || x[off] == 0)
                return -1;
            size_t clen = x[off];
            if (apply && clients_restore(&srv->clients, (const char *)x + off + 1, clen,
                                           ckpt_get64(x + off + 1 + clen)) != 0)
                return -1;
            off += 1 + clen + 8;
        }
        if (off != len)
            return -1;
    }
    return 0;
}

/* ---- start-up ------------------------------------------------------------ */

typedef struct ckpt_in {
    const unsigned char *base;
    size_t size, pos;
} ckpt_in;

static int ckpt_in_read(void *ctx, void *p, size_t n)
{
    ckpt_in *in = ctx;
    if (n > in->size - in->pos)
        return -1;
    memcpy(p, in->base + in->pos, n);
    in->pos += n;
    return 0;
}

/* Load snapshot `seg` into srv->store (fresh). 0 or an error code (the
 * store then needs replacing); *why says what. */
static int ckpt_load_file(server *srv, uint64_t seg, const char **why, snapshot_info *info)
{
    char path[4096];
    struct stat sb;
    void *extra = NULL, *map = MAP_FAILED;
    size_t elen = 0;
    int rc, fd;

    ckpt_path(path, sizeof path, srv->cfg.data_dir, seg, "snap");
    *why = "cannot read";
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &sb) < 0) {
        rc = -errno;
        *why = strerror(errno);
        goto cleanup;
    }
    rc = SNAPSHOT_EFORMAT;
    *why = snapshot_strerror(rc);
    if (sb.st_size < SNAPSHOT_HEADER_BYTES + SNAPSHOT_TRAILER_BYTES)
        goto cleanup;
    map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        rc = -errno;
        *why = strerror(errno);
        goto cleanup;
    }
    madvise(map, (size_t)sb.st_size, MADV_SEQUENTIAL);
    ckpt_in in = {map, (size_t)sb.st_size, 0};
    snapshot_io io = {.read = ckpt_in_read, .crc = crc32c, .ctx = &in};
    if ((rc = snapshot_load(srv->store, &io, &extra, &elen, info)) != SNAPSHOT_OK) {
        *why = snapshot_strerror(rc);
        goto cleanup;
    }
    rc = SNAPSHOT_EFORMAT;
    if (in.pos != in.size) {
        *why = "bytes after the snapshot's end";
        goto cleanup;
    }
    if (ckpt_extra_apply(srv, extra, elen, seg) != 0) {
        *why = "client table or segment number not as written";
        goto cleanup;
    }
    rc = 0;
cleanup:
    free(extra);
    if (map != MAP_FAILED)
        munmap(map, (size_t)sb.st_size);
    if (fd >= 0)
        close(fd);
    return rc;
}

static int ckpt_fresh_store(server *srv, const store_config *sc)
{
    store_close(srv->store);
    srv->store = NULL;
    int rc = store_open(&srv->store, sc);
    if (rc != STORE_OK)
        log_error("store_open_failed err=%s", store_strerror(rc));
    return rc == STORE_OK ? 0 : -1;
}

/* A snapshot too large for this store: name the flags and what they need
 * (the header's partition count; the file's size, which is about what the
 * store takes). */
static void ckpt_too_big(const server *srv, uint64_t seg, char *buf, size_t n)
{
    char path[4096];
    unsigned char hdr[SNAPSHOT_HEADER_BYTES];
    struct stat sb;
    int fd;
    uint64_t parts = 0, size = 0;

    ckpt_path(path, sizeof path, srv->cfg.data_dir, seg, "snap");
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
        if (fstat(fd, &sb) == 0)
            size = (uint64_t)sb.st_size;
        if (pread(fd, hdr, sizeof hdr, 0) == (ssize_t)sizeof hdr)
            parts = ckpt_get64(hdr + 24) & 0xffffffffu;
        close(fd);
    }
    snprintf(buf, n, "the snapshot holds %" PRIu64 " symbols in %" PRIu64 " bytes: start with "
             "--max-symbols %" PRIu64 " or more and --max-memory %" PRIu64 "M or more "
             "(now %" PRIu32 " and %zu)", parts, size, parts,
             size / 8 * 9 / (1 << 20) + 1, srv->cfg.max_symbols, srv->cfg.max_memory);
}

/* The journal must continue the snapshot chosen (n), or start at segment 1
 * without one (n = 0): a checkpoint at n always leaves segment n + 1
 * behind (the barrier creates it before the snapshot exists), and segments
 * are only removed up to a durable snapshot. Otherwise what lay between is
 * gone: refuse, naming the file, unless --salvage accepts the loss. */
static int ckpt_journal_follows(const server *srv, uint64_t n, const uint64_t *segs, size_t nsegs)
{
    const char *dir = srv->cfg.data_dir;
    char seg[64], snap[4096], why[8192];

    if (n == 0 && (nsegs == 0 || segs[0] == 1))
        return 0;
    if (n > 0 && nsegs && segs[nsegs - 1] > n)
        return 0; /* consecutive from n + 1: journal_replay checks the rest */
    journal_segment_name(seg, sizeof seg, n + 1);
    if (n == 0) {
        /* Either the snapshot of the checkpoint that removed segments
         * 1..lo-1 was deleted, or they were, with no checkpoint at all. */
        ckpt_path(snap, sizeof snap, dir, segs[0] - 1, "snap");
        snprintf(why, sizeof why, "reason=\"no snapshot in %s, but the journal starts at segment %"
                 PRIu64 ": %s (written by the checkpoint that removed the segments before it; it "
                 "holds every trade and last_seq up to segment %" PRIu64 ") is missing, or %s is\" "
                 "hint=\"restore the missing file; or start with --salvage to start from the "
                 "journal alone, losing what it held\"", dir, segs[0], snap, segs[0] - 1, seg);
    } else {
        snprintf(why, sizeof why, "reason=\"%s/%s is missing: every checkpoint (here at segment %"
                 PRIu64 ") leaves the segment after it, which holds what was acknowledged since\" "
                 "hint=\"restore that file; or start with --salvage to accept the loss\"",
                 dir, seg, n);
    }
    if (!srv->cfg.journal.salvage) {
        log_error("start_refused %s", why);
        return -1;
    }
    log_warn("start_salvaged %s action=start_without_it", why);
    return 0;
}

int checkpoint_load(server *srv, const store_config *sc)
{
    const char *dir = srv->cfg.data_dir;
    uint64_t *snaps = NULL, *segs = NULL;
    size_t nsnaps = 0, nsegs = 0;
    int rc = ckpt_list(dir, "snap", &snaps, &nsnaps), out = -1, too_big = 0;
    char big[512] = "";

    if (rc == 0 && (rc = journal_segments(dir, &segs, &nsegs)) == -ENOENT)
        rc = 0;
    if (rc < 0) {
        log_error("checkpoint_load_failed dir=%s err=%s", dir, strerror(-rc));
        goto cleanup;
    }
    srv->cfg.journal.after_segment = 0;
    uint64_t lo = nsegs ? segs[0] : 0;
    for (size_t i = 0; i < nsnaps; i++) {
        uint64_t n = snaps[i];
        char path[4096];
        const char *why;
        snapshot_info info = {0};
        ckpt_path(path, sizeof path, dir, n, "snap");
        /* Replay must find every segment after N: a hole means lost data. */
        if (nsegs ? lo > n + 1 : i > 0) {
            log_error("checkpoint_unusable file=%s reason=\"journal segments %" PRIu64 "..%" PRIu64
                      " after it were removed (by a newer checkpoint)\"",
                      path, n + 1, nsegs ? lo - 1 : snaps[0]);
            break;
        }
        uint64_t t0 = uv_hrtime();
        if ((rc = ckpt_load_file(srv, n, &why, &info)) == 0) {
            double dt = (double)(uv_hrtime() - t0) / 1e9;
            if (ckpt_journal_follows(srv, n, segs, nsegs) != 0)
                goto cleanup; /* a real snapshot: its checkpoint left segment n + 1 */
            srv->cfg.journal.after_segment = n;
            free(g_loaded); /* a second load (replay's symbol count) replaces the first */
            if ((g_loaded = calloc(1, sizeof *g_loaded))) {
                g_loaded->st.segment = n;
                g_loaded->st.load_seconds = dt;
                g_loaded->st.loaded_trades = info.trades;
            }
            log_info("snapshot_loaded file=%s segment=%" PRIu64 " trades=%" PRIu64
                     " bytes=%" PRIu64 " seconds=%.3f trades_per_second=%.0f",
                     path, n, info.trades, info.bytes, dt,
                     dt > 0 ? (double)info.trades / dt : 0.0);
            out = 0;
            goto cleanup;
        }
        if (rc == SNAPSHOT_EFULL && !too_big) {
            too_big = 1;
            ckpt_too_big(srv, n, big, sizeof big);
        }
        log_warn("snapshot_invalid file=%s err=\"%s%s%s\" action=%s", path, why,
                 rc == SNAPSHOT_EFULL ? ": " : "", rc == SNAPSHOT_EFULL ? big : "",
                 i + 1 < nsnaps ? "try_older_snapshot" : "try_full_replay");
        if (ckpt_fresh_store(srv, sc) != 0)
            goto cleanup;
        /* The client table is applied only after every check has passed,
         * so a failed load has left it empty. */
    }
    if (nsnaps == 0) {
        out = ckpt_journal_follows(srv, 0, segs, nsegs);
        goto cleanup;
    }
    if (nsegs && lo == 1) {
        log_warn("snapshot_fallback action=full_replay segments=%zu", nsegs);
        out = 0;
        goto cleanup;
    }
    log_error("start_refused reason=\"no usable snapshot in %s, and the journal no longer "
              "starts at segment 1 (oldest: %" PRIu64 "): starting would lose data\" hint=\"%s\"",
              dir, lo, too_big ? big : "restore an intact snapshot-*.snap (and the segments after "
              "it), or move the data directory away to start empty");
cleanup:
    free(snaps);
    free(segs);
    return out;
}

/* ---- taking a checkpoint (loop thread) ------------------------------------ */

static void ckpt_stop_continue(checkpoint *ck);
static void ckpt_begin(checkpoint *ck, uint64_t pos);

static uint64_t ckpt_dropped_total(const server *srv)
{
    retention_stats rs;
    retention_get_stats(srv, &rs);
    return rs.dropped_trades;
}

/* Has retention changed the store since the newest snapshot? */
static int ckpt_dropped(const checkpoint *ck) { return ckpt_dropped_total(ck->srv) != ck->dropped_at; }

static void ckpt_fail(checkpoint *ck, const char *stage, int rc)
{
    ck->st.failures++;
    ck->phase = CKPT_IDLE;
    ck->retry_at = uv_hrtime() + CKPT_RETRY_NS;
    log_warn("checkpoint_failed segment=%" PRIu64 " stage=%s err=\"%s\" retry_seconds=%llu",
             ck->seg, stage, ckpt_strerror(rc), CKPT_RETRY_NS / 1000000000u);
    ckpt_stop_continue(ck);
}

/* Segments <= N, older snapshots, leftover temp files. Any thread. */
static void ckpt_remove(checkpoint *ck)
{
    const char *dir = ck->srv->cfg.data_dir;
    static const char *const exts[2] = {"snap", "tmp"};
    ck->removed = 0;
    ck->remove_rc = journal_remove_through(dir, ck->seg, &ck->removed);
    for (int e = 0; e < 2; e++) {
        uint64_t *v = NULL;
        size_t n = 0;
        if (ckpt_list(dir, exts[e], &v, &n) < 0)
            continue;
        for (size_t i = 0; i < n; i++) {
            char path[4096];
            if (v[i] >= ck->seg)
                continue;
            ckpt_path(path, sizeof path, dir, v[i], exts[e]);
            if (unlink(path) < 0 && errno != ENOENT && !ck->remove_rc)
                ck->remove_rc = -errno;
        }
        free(v);
    }
}

static void ckpt_remove_work(uv_work_t *w) { ckpt_remove(w->data); }

/* The snapshot of ck->seg is durable and what it covers removed. */
static void ckpt_done(checkpoint *ck)
{
    ck->st.total++;
    ck->st.segment = ck->seg;
    ck->st.last_seconds = (double)(uv_hrtime() - ck->t0) / 1e9;
    ck->st.last_bytes = ck->report.bytes;
    ck->st.last_trades = ck->report.trades;
    ck->st.segments_removed += ck->removed;
    ck->pos_at_last = ck->pos_pending;
    ck->dropped_at = ck->dropped_pending;
    if (ck->remove_rc)
        log_warn("checkpoint_cleanup_failed segment=%" PRIu64 " err=\"%s\" (retried next time)",
                 ck->seg, strerror(-ck->remove_rc));
    log_info("checkpoint_done file=%s segment=%" PRIu64 " trades=%" PRIu64 " bytes=%" PRIu64
             " seconds=%.3f segments_removed=%" PRIu64, ck->snap_path, ck->seg,
             ck->report.trades, ck->report.bytes, ck->st.last_seconds, ck->removed);
    ck->phase = CKPT_IDLE;
    ckpt_stop_continue(ck);
}

static void ckpt_removed(uv_work_t *w, int status)
{
    (void)status;
    ckpt_done(w->data);
}

static void ckpt_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char scratch[256];
    (void)h, (void)hint;
    *buf = uv_buf_init(scratch, sizeof scratch);
}

static void ckpt_pipe_closed(uv_handle_t *h)
{
    checkpoint *ck = h->data;
    int status = 0;
    pid_t p;
    /* EOF: the child has exited (it never closes the pipe otherwise), so
     * this wait is for a process already on its way out. */
    while ((p = waitpid(ck->child, &status, 0)) < 0 && errno == EINTR)
        ;
    ck->child = 0;
    if (p < 0)
        return ckpt_fail(ck, "waitpid", -errno);
    if (!WIFEXITED(status)) {
        log_warn("checkpoint_child_killed signal=%d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        return ckpt_fail(ck, "child", -EINTR);
    }
    if (ck->report_len != sizeof ck->report)
        return ckpt_fail(ck, "child", -EPIPE);
    if (ck->report.rc != 0 || WEXITSTATUS(status) != 0)
        return ckpt_fail(ck, ck->report.stage, ck->report.rc ? ck->report.rc : -EIO);
    ck->phase = CKPT_REMOVING;
    ck->work.data = ck;
    int rc = uv_queue_work(ck->srv->loop, &ck->work, ckpt_remove_work, ckpt_removed);
    if (rc != 0) { /* cannot happen with a live loop; do it here then */
        ckpt_remove(ck);
        ckpt_done(ck);
    }
}

static void ckpt_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    checkpoint *ck = s->data;
    if (nread > 0) {
        size_t room = sizeof ck->report - ck->report_len, n = (size_t)nread;
        n = n < room ? n : room;
        memcpy((char *)&ck->report + ck->report_len, buf->base, n);
        ck->report_len += n;
        return;
    }
    if (nread < 0) {
        uv_read_stop(s);
        uv_close((uv_handle_t *)s, ckpt_pipe_closed);
    }
}

/* The child: write the snapshot, report, exit. See checkpoint.h. */
__attribute__((noreturn)) static void ckpt_child(checkpoint *ck, int wfd, pid_t parent)
{
    struct sigaction dfl;
    sigset_t none;
    ckpt_report r;

    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    /* The parent's handlers (libuv's write to the parent's signal pipe)
     * must not run here: a SIGTERM for the child would look like one for
     * slotd. Ignored signals (SIGPIPE, SIGXFSZ) stay ignored. */
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction old;
        if (sig != SIGKILL && sig != SIGSTOP && sigaction(sig, NULL, &old) == 0 &&
            old.sa_handler != SIG_IGN && old.sa_handler != SIG_DFL)
            sigaction(sig, &dfl, NULL);
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) /* the parent died before prctl took */
        _exit(3);
    if (wfd != 3 && dup2(wfd, 3) < 0)
        _exit(4);
    /* Sockets, the journal's locked directory fd, epoll: none are ours. */
    if (close_range(4, ~0u, 0) < 0)
        for (int fd = 4; fd < 65536; fd++)
            close(fd);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    ckpt_write_file(ck, &r);
    ckpt_write_all(3, &r, sizeof r);
    _exit(r.rc == 0 ? 0 : 1);
}

/* At exit, in process: nothing else runs, so no fork is needed. */
static void ckpt_final(checkpoint *ck)
{
    ckpt_write_file(ck, &ck->report);
    if (ck->report.rc != 0)
        return ckpt_fail(ck, ck->report.stage, ck->report.rc);
    ckpt_remove(ck);
    ckpt_done(ck);
}

static void ckpt_on_barrier(void *ctx, int status, uint64_t seg)
{
    checkpoint *ck = ctx;
    server *srv = ck->srv;
    int fds[2], rc;
    sigset_t all, old;

    ck->seg = seg;
    if (status)
        return ckpt_fail(ck, "barrier", status);
    if ((ck->stopping && !ck->final_done) || (seg <= ck->st.segment && !ckpt_dropped(ck))) {
        /* Stopping (a last one comes separately, if asked for), or the
         * newest snapshot already covers all of it. */
        ck->phase = CKPT_IDLE;
        ck->pos_at_last = ck->pos_pending;
        return ckpt_stop_continue(ck);
    }
    if ((rc = ckpt_extra_build(ck, seg)) != 0)
        return ckpt_fail(ck, "extra", rc);
    ckpt_path(ck->tmp_path, sizeof ck->tmp_path, srv->cfg.data_dir, seg, "tmp");
    ckpt_path(ck->snap_path, sizeof ck->snap_path, srv->cfg.data_dir, seg, "snap");
    ck->dropped_pending = ckpt_dropped_total(srv); /* the snapshot holds drops up to here */
    memset(&ck->report, 0, sizeof ck->report);
    ck->report_len = 0;
    if (ck->stopping)
        return ckpt_final(ck);
    if (pipe2(fds, O_CLOEXEC) < 0)
        return ckpt_fail(ck, "pipe", -errno);
    pid_t parent = getpid(), pid;
    uint64_t f0 = uv_hrtime();
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    /* The loop stops for as long as fork copies the page tables (a few ms
     * per GB resident); it is logged, as fork_ms. */
    pid = fork();
    if (pid == 0)
        ckpt_child(ck, fds[1], parent);
    rc = pid < 0 ? -errno : 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(fds[1]);
    if (rc) {
        close(fds[0]);
        return ckpt_fail(ck, "fork", rc);
    }
    ck->child = pid;
    ck->phase = CKPT_CHILD;
    uv_pipe_init(srv->loop, &ck->pipe, 0);
    ck->pipe.data = ck;
    if ((rc = uv_pipe_open(&ck->pipe, fds[0])) == 0)
        rc = uv_read_start((uv_stream_t *)&ck->pipe, ckpt_on_alloc, ckpt_on_read);
    if (rc != 0) { /* cannot watch it: wait for it instead */
        log_warn("checkpoint_watch_failed err=%s action=wait", uv_strerror(rc));
        uv_close((uv_handle_t *)&ck->pipe, ckpt_pipe_closed);
    }
    log_info("checkpoint_started segment=%" PRIu64 " pid=%d fork_ms=%.2f", seg, (int)pid,
             (double)(uv_hrtime() - f0) / 1e6);
}

static void ckpt_begin(checkpoint *ck, uint64_t pos)
{
    ck->phase = CKPT_BARRIER;
    ck->t0 = ck->last_start_ns = uv_hrtime();
    ck->pos_pending = pos;
    int rc = journal_rotate_barrier(ck->srv->journal, ckpt_on_barrier, ck);
    if (rc != 0)
        ckpt_fail(ck, "barrier", rc);
}

static void ckpt_on_tick(uv_timer_t *t)
{
    checkpoint *ck = t->data;
    server *srv = ck->srv;
    uint64_t now = uv_hrtime();
    journal_stats js;
    if (ck->phase != CKPT_IDLE || ck->stopping || !srv->ready || !srv->journal ||
        now < ck->retry_at)
        return;
    journal_get_stats(srv->journal, &js);
    uint64_t pos = ck->replayed + js.bytes, grown = pos - ck->pos_at_last;
    int by_size = srv->cfg.checkpoint_bytes && grown >= srv->cfg.checkpoint_bytes;
    int by_time = srv->cfg.checkpoint_interval_ms && (grown || ckpt_dropped(ck)) &&
                  now - ck->last_start_ns >= srv->cfg.checkpoint_interval_ms * 1000000u;
    if (by_size || by_time)
        ckpt_begin(ck, pos);
}

/* ---- lifecycle --------------------------------------------------------------- */

int checkpoint_start(server *srv, uint64_t replayed_bytes)
{
    checkpoint *ck = g_loaded ? g_loaded : calloc(1, sizeof *ck);
    g_loaded = NULL;
    if (!ck)
        return UV_ENOMEM;
    srv->checkpoint = ck;
    ck->srv = srv;
    ck->replayed = replayed_bytes;
    ck->last_start_ns = uv_hrtime();
    uv_timer_init(srv->loop, &ck->tick); /* first: checkpoint_stop stops it */
    ck->tick.data = ck;
    int want = srv->journal && (srv->cfg.checkpoint_bytes || srv->cfg.checkpoint_interval_ms ||
                                srv->cfg.checkpoint_on_exit);
    if (want && !(ck->wbuf = malloc(CKPT_WBUF)))
        return UV_ENOMEM;
    if (want && (srv->cfg.checkpoint_bytes || srv->cfg.checkpoint_interval_ms))
        uv_timer_start(&ck->tick, ckpt_on_tick, CKPT_TICK_MS, CKPT_TICK_MS);
    return retention_start(srv);
}

static void ckpt_stop_continue(checkpoint *ck)
{
    server *srv = ck->srv;
    if (!ck->stopping || ck->phase != CKPT_IDLE || !ck->stopped)
        return;
    if (srv->cfg.checkpoint_on_exit && srv->journal && ck->wbuf && !ck->final_done) {
        journal_stats js;
        journal_get_stats(srv->journal, &js);
        ck->final_done = 1;
        return ckpt_begin(ck, ck->replayed + js.bytes);
    }
    void (*done)(server *) = ck->stopped;
    ck->stopped = NULL;
    done(srv);
}

void checkpoint_stop(server *srv, void (*done)(server *srv))
{
    checkpoint *ck = srv->checkpoint;
    if (!ck) {
        done(srv);
        return;
    }
    ck->stopping = 1;
    ck->stopped = done;
    uv_timer_stop(&ck->tick);
    retention_stop(srv);
    if (ck->phase != CKPT_IDLE)
        log_info("checkpoint_wait phase=%s", ck->phase == CKPT_CHILD ? "child" : "barrier");
    ckpt_stop_continue(ck);
}

void checkpoint_get_stats(const server *srv, checkpoint_stats *st)
{
    /* While replaying, g_loaded belongs to the replay thread. */
    const checkpoint *ck = srv->checkpoint ? srv->checkpoint : srv->replaying ? NULL : g_loaded;
    if (ck)
        *st = ck->st;
    else
        memset(st, 0, sizeof *st);
    st->in_progress = ck && ck->phase != CKPT_IDLE;
}

void checkpoint_free(server *srv)
{
    checkpoint *ck = srv->checkpoint;
    if (ck) {
        free(ck->wbuf);
        free(ck->extra);
        free(ck);
    }
    srv->checkpoint = NULL;
    free(g_loaded);
    g_loaded = NULL;
    retention_free(srv);
}
