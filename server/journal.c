/* journal — see journal.h for the format and the contract.
 *
 * Threads. The loop thread owns `cur` (the group being filled), the list of
 * completed groups whose callbacks still have to run, and `pending`. The
 * writer thread owns the segment fd and its size. They meet under `mu`: the
 * loop pushes sealed groups onto `q`, the writer pushes finished ones onto
 * `done` and pokes the loop with uv_async_send. The writer's helper, the
 * sync thread (journal_sync.c), runs the interval policy's fdatasync (so a
 * group never waits behind one), writes data out early where nothing else
 * does, drops written pages from the page cache and closes rotated-away
 * segments.
 *
 * Group commit. At most one group is in flight: the loop seals `cur` at the
 * end of an iteration (check handle; also prepare, for appends made after
 * the check ran) only when the writer is idle. While the writer is busy
 * writing or syncing, every append lands in the same `cur`, so the next
 * write() and fsync cover all of them — batches grow exactly as much as the
 * disk is slow, and no timer adds latency when it is fast.
 *
 * Segments are numbered from 1 and never reused, so a checkpoint records
 * "state as of the end of segment N", replay starts at N+1
 * (journal_config.after_segment) and the segments <= N can be deleted
 * (journal_seg.c). journal_rotate_barrier makes such an N: the group being
 * filled is sealed with the barrier as its last callback, sealed groups go
 * to the writer ahead of cur (still one group in flight, so a failure fails
 * everything behind it as before), and the writer moves to a new segment
 * right after writing a barrier group.
 */
#define _GNU_SOURCE
#include "journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "journal_sync.h"

#define JOURNAL__HDR 8u /* len u32 + crc u32 */
#define JOURNAL__TYPE_BATCH 1
#define JOURNAL__MIN_BODY 10u /* type + clen + seq, empty client and msg */
/* Derived from JOURNAL_MAX_MSG, so every record journal_append can write
 * passes replay's length check. */
#define JOURNAL__MAX_BODY (JOURNAL__MIN_BODY + 255u + JOURNAL_MAX_MSG)
_Static_assert(JOURNAL__MAX_BODY <= UINT32_MAX, "a record length must fit its u32 header");
#define JOURNAL__SPARE_MAX (8u << 20) /* don't keep a burst-sized buffer around */

typedef struct journal__cb {
    journal_done_fn fn;
    journal_barrier_fn barrier; /* set instead of fn for a rotate barrier */
    void *ctx;
} journal__cb;

typedef struct journal__group {
    struct journal__group *next;
    uint8_t *buf; /* serialized records; crcs are filled in by the writer */
    size_t len, cap;
    journal__cb *cbs; /* one per record, in append order */
    size_t ncb, cbcap, ndone;
    int status;
    /* A barrier group (sealed by journal_rotate_barrier; its last cb is the
     * barrier): the writer rotates after it and reports here. */
    int barrier, barrier_status;
    uint64_t barrier_seg;
} journal__group;

struct journal {
    uv_loop_t *loop;
    char *dir;
    int dirfd; /* held open: fsync after creating segments, and the flock */
    journal_fsync policy;
    uint64_t interval_ns, segment_bytes;

    /* loop thread only */
    uv_async_t async;
    uv_prepare_t prepare;
    uv_check_t check;
    journal__group *cur, *spare, *ready, *ready_tail;
    journal__group *sealed, *sealed_tail; /* barrier groups waiting for the writer */
    int inflight, reffed, closing, open_handles;
    size_t pending;

    /* shared, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    journal__group *q, *q_tail, *done, *done_tail;
    int stop;
    journal_stats stats;

    /* writer thread only (and journal_open/close around its lifetime) */
    pthread_t thread;
    int fd, dirty, need_truncate;
    uint64_t seg_no, seg_size, sync_deadline;
    /* The writer's helper thread (journal_sync.h): the interval policy's
     * fdatasync, early write-out, page dropping, retiring rotated segments.
     * NULL if it could not start: the writer then syncs inline, as it
     * always used to. */
    journal_sync *sync;
    journal_prealloc prealloc;
};

static inline void journal__put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}
static inline uint32_t journal__get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void journal__put64(uint8_t *p, uint64_t v)
{
    journal__put32(p, (uint32_t)v), journal__put32(p + 4, (uint32_t)(v >> 32));
}
static inline uint64_t journal__get64(const uint8_t *p)
{
    return (uint64_t)journal__get32(p) | (uint64_t)journal__get32(p + 4) << 32;
}

static uint64_t journal__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Append "; "-separated human text to st->detail, truncating quietly. */
__attribute__((format(printf, 2, 3))) static void journal__note(journal_replay_stats *st,
                                                               const char *fmt, ...)
{
    size_t used = strlen(st->detail);
    va_list ap;

    if (used && used + 2 < sizeof(st->detail)) {
        memcpy(st->detail + used, "; ", 3);
        used += 2;
    }
    if (used + 1 >= sizeof(st->detail))
        return;
    va_start(ap, fmt);
    vsnprintf(st->detail + used, sizeof(st->detail) - used, fmt, ap);
    va_end(ap);
}

/* ---- Replay ---- */

typedef enum { JOURNAL__REC_OK, JOURNAL__REC_BAD, JOURNAL__REC_ALIEN } journal__rec;

/* Classify the bytes at off. BAD: torn or checksum mismatch (*why says
 * which); ALIEN: checksum fine but not a batch record we understand, so it
 * is real data from a newer or broken writer, never a torn tail. */
static journal__rec journal__parse(const uint8_t *base, size_t size, size_t off, size_t *reclen,
                                   const char **why)
{
    size_t avail = size - off;
    uint32_t len;

    if (avail < JOURNAL__HDR)
        return *why = "incomplete header", JOURNAL__REC_BAD;
    len = journal__get32(base + off);
    if (len < JOURNAL__MIN_BODY || len > JOURNAL__MAX_BODY)
        return *why = "bad length", JOURNAL__REC_BAD;
    if (len > avail - JOURNAL__HDR)
        return *why = "record extends past end of file", JOURNAL__REC_BAD;
    if (crc32c(0, base + off + JOURNAL__HDR, len) != journal__get32(base + off + 4))
        return *why = "checksum mismatch", JOURNAL__REC_BAD;
    *reclen = JOURNAL__HDR + len;
    if (base[off + JOURNAL__HDR] != JOURNAL__TYPE_BATCH ||
        2u + base[off + JOURNAL__HDR + 1] + 8u > len)
        return *why = "unknown record type or malformed body", JOURNAL__REC_ALIEN;
    return JOURNAL__REC_OK;
}

/* First offset >= from where a checksummed record starts, or size. Cheap
 * tests first: this walks every byte of a damaged region. */
static size_t journal__scan(const uint8_t *base, size_t size, size_t from)
{
    for (size_t p = from; p < size && size - p >= JOURNAL__HDR + JOURNAL__MIN_BODY; p++) {
        uint32_t len = journal__get32(base + p);
        size_t reclen;
        const char *why;

        if (len < JOURNAL__MIN_BODY || len > JOURNAL__MAX_BODY || len > size - p - JOURNAL__HDR)
            continue;
        if (journal__parse(base, size, p, &reclen, &why) != JOURNAL__REC_BAD)
            return p;
    }
    return size;
}

typedef struct journal__map {
    int fd;
    const uint8_t *base;
    size_t size;
} journal__map;

static int journal__map_open(journal *j, uint64_t no, journal__map *m)
{
    char name[64];
    struct stat sb;

    m->fd = -1, m->base = NULL, m->size = 0;
    journal_segment_name(name, sizeof(name), no);
    m->fd = openat(j->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (m->fd < 0 || fstat(m->fd, &sb) < 0)
        return -errno;
    m->size = (size_t)sb.st_size;
    if (m->size == 0)
        return 0;
    void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, m->fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    /* Replay reads each byte once, front to back. */
    madvise(p, m->size, MADV_SEQUENTIAL);
    m->base = p;
    return 0;
}

static void journal__map_close(journal__map *m)
{
    if (m->base)
        munmap((void *)m->base, m->size);
    if (m->fd >= 0)
        close(m->fd);
    m->fd = -1, m->base = NULL, m->size = 0;
}

/* Does any segment after index i hold a checksummed record? */
static int journal__later_valid(journal *j, const uint64_t *segs, size_t nsegs, size_t i)
{
    for (size_t k = i + 1; k < nsegs; k++) {
        journal__map m;
        int found = 0;
        if (journal__map_open(j, segs[k], &m) < 0) {
            journal__map_close(&m);
            return 1; /* unreadable: don't treat what precedes it as a tail */
        }
        found = m.size && journal__scan(m.base, m.size, 0) < m.size;
        journal__map_close(&m);
        if (found)
            return 1;
    }
    return 0;
}

/* Remove the segments after index i (they hold nothing valid: a torn
 * tail's continuation), newest first, adding their bytes to *cut. Removed
 * rather than emptied: an empty segment before a written one reads as
 * lost data at the next start (journal__check_segments); newest first, so
 * a crash part way leaves a tail that replay cuts again. */
static int journal__drop_after(journal *j, const uint64_t *segs, size_t nsegs, size_t i,
                               uint64_t *cut)
{
    for (size_t k = nsegs; k-- > i + 1;) {
        struct stat sb;
        char later[64];
        journal_segment_name(later, sizeof(later), segs[k]);
        if (fstatat(j->dirfd, later, &sb, 0) == 0)
            *cut += (uint64_t)sb.st_size;
        if (unlinkat(j->dirfd, later, 0) < 0 && errno != ENOENT)
            return -errno;
    }
    return nsegs > i + 1 && fsync(j->dirfd) < 0 ? -errno : 0;
}

static int journal__truncate_seg(journal *j, uint64_t no, uint64_t size)
{
    char name[64];
    int fd, rc = 0;

    journal_segment_name(name, sizeof(name), no);
    fd = openat(j->dirfd, name, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    /* fsync, not fdatasync: the size is the whole point. */
    if (ftruncate(fd, (off_t)size) < 0 || fsync(fd) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

/* Note a missing or emptied segment: -ENODATA, or 0 after noting that
 * salvage replays past it. */
__attribute__((format(printf, 3, 4))) static int journal__lost(journal_replay_stats *st,
                                                              int salvage, const char *fmt, ...)
{
    char what[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (!salvage) {
        journal__note(st, "%s; refusing to replay (acknowledged batches would be lost)", what);
        return -ENODATA;
    }
    journal__note(st, "%s; replayed past it (salvage): the batches it held are lost", what);
    st->missing_segments++;
    return 0;
}

/* The segments to replay (segs[0..n), all above `after`) must be what the
 * journal writes (journal.h): consecutive from after + 1, only the last
 * one empty. Sizes are summed into st->total_bytes. 0, -ENODATA naming the
 * first missing or emptied file, or -errno. */
static int journal__check_segments(journal *j, const uint64_t *segs, size_t n, uint64_t after,
                                   int salvage, journal_replay_stats *st)
{
    uint64_t expect = after + 1;
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i++) {
        char name[64], last[64];
        struct stat sb;

        journal_segment_name(name, sizeof(name), expect);
        journal_segment_name(last, sizeof(last), segs[i] - 1);
        if (segs[i] != expect && i == 0 && after == 0)
            rc = journal__lost(st, salvage, "%s%s%s missing: the journal starts at segment %" PRIu64
                               " and no checkpoint covers what came before", name,
                               segs[i] - expect > 1 ? " .. " : "",
                               segs[i] - expect > 1 ? last : "", segs[i]);
        else if (segs[i] != expect)
            rc = journal__lost(st, salvage, "%s%s%s missing: the journal goes from segment %" PRIu64
                               " to %" PRIu64, name, segs[i] - expect > 1 ? " .. " : "",
                               segs[i] - expect > 1 ? last : "", expect - 1, segs[i]);
        if (rc)
            break;
        journal_segment_name(name, sizeof(name), segs[i]);
        if (fstatat(j->dirfd, name, &sb, 0) < 0) {
            rc = -errno;
            journal__note(st, "%s: cannot read: %s", name, strerror(-rc));
            break;
        }
        st->total_bytes += (uint64_t)sb.st_size;
        /* Only the newest segment can be empty: a segment is created empty
         * and written before a newer one exists. A zero-filled one (size
         * set, data never written) is not empty: replay finds no valid
         * record in it and treats it as damage. */
        if (sb.st_size == 0 && i + 1 < n)
            rc = journal__lost(st, salvage, "%s is empty but is not the newest segment: it was "
                               "emptied", name);
        expect = segs[i] + 1;
    }
    return rc;
}

/* What journal_open needs to know to start appending. */
typedef struct journal__end {
    uint64_t last;      /* highest segment number, 0 if none */
    uint64_t last_size; /* its size after any truncation */
    uint64_t files;     /* segment files present */
} journal__end;

/* Replay the segments through fn (from the last non-empty one only, when
 * tail_only: enough to make the tail safe to append to). The records before
 * a mid-journal error have already been passed to fn: the caller must throw
 * away what it built when this fails. */
static int journal__replay(journal *j, int salvage, int tail_only, uint64_t after,
                           journal_replay_fn fn, void *ctx, journal_replay_stats *st,
                           journal__end *end)
{
    uint64_t *segs = NULL;
    size_t nsegs = 0, first = 0, covered = 0;
    journal__map m = {.fd = -1};
    int rc = journal_segments(j->dir, &segs, &nsegs);

    /* Segments a checkpoint covers are not read at all (not even for a
     * torn tail: the checkpoint was taken after they were complete). */
    while (covered < nsegs && segs[covered] <= after)
        covered++;
    memmove(segs, segs + covered, (nsegs - covered) * sizeof(*segs));
    nsegs -= covered;
    end->last = nsegs ? segs[nsegs - 1] : 0;
    end->last_size = 0;
    end->files = nsegs;
    if (rc == 0)
        rc = journal__check_segments(j, segs, nsegs, after, salvage, st);
    for (first = nsegs; tail_only && first > 0; first--) {
        struct stat sb;
        char name[64];
        journal_segment_name(name, sizeof(name), segs[first - 1]);
        if (fstatat(j->dirfd, name, &sb, 0) < 0 || sb.st_size > 0)
            break;
    }
    first = tail_only && first > 0 ? first - 1 : 0;
    for (size_t i = first; rc == 0 && i < nsegs; i++) {
        char name[64];
        size_t off = 0;

        journal_segment_name(name, sizeof(name), segs[i]);
        rc = journal__map_open(j, segs[i], &m);
        if (rc < 0) {
            journal__note(st, "%s: cannot read: %s", name, strerror(-rc));
            break;
        }
        st->segments++;
        while (off < m.size) {
            size_t reclen = 0, next;
            const char *why = "";
            journal__rec r = journal__parse(m.base, m.size, off, &reclen, &why);

            if (r == JOURNAL__REC_OK) {
                const uint8_t *b = m.base + off + JOURNAL__HDR;
                uint8_t clen = b[1];
                size_t mlen = reclen - JOURNAL__HDR - 2 - clen - 8;
                int frc = fn ? fn(ctx, (const char *)b + 2, clen, journal__get64(b + 2 + clen),
                                  b + 2 + clen + 8, mlen)
                             : 0;
                if (frc) {
                    journal__note(st, "%s: replay aborted by caller at offset %zu", name, off);
                    rc = frc < 0 ? frc : -ECANCELED;
                    goto cleanup;
                }
                st->records++;
                st->bytes += reclen;
                off += reclen;
                continue;
            }
            if (r == JOURNAL__REC_ALIEN) {
                if (!salvage) {
                    journal__note(st, "%s: %s at offset %zu; refusing to replay (salvage skips it)",
                                  name, why, off);
                    rc = -EBADMSG;
                    goto cleanup;
                }
                journal__note(st, "%s: skipped %zu bytes at offset %zu (%s)", name, reclen, off,
                              why);
                st->skipped_records++;
                off += reclen;
                continue;
            }
            next = journal__scan(m.base, m.size, off + 1);
            if (next == m.size && !journal__later_valid(j, segs, nsegs, i)) {
                /* Torn tail: nothing valid follows, so it was never whole. */
                uint64_t cut = m.size - off;
                journal__map_close(&m);
                rc = journal__drop_after(j, segs, nsegs, i, &cut);
                if (rc == 0)
                    rc = journal__truncate_seg(j, segs[i], off);
                journal__note(st, "%s: torn tail at offset %zu (%s), truncated %" PRIu64
                              " bytes%s%s", name, off, why, cut,
                              rc ? ": truncation failed: " : "", rc ? strerror(-rc) : "");
                st->truncated_bytes += cut;
                end->last = segs[i];
                end->last_size = off;
                end->files = i + 1;
                goto cleanup;
            }
            if (!salvage) {
                journal__note(st,
                              "%s: corrupt record at offset %zu (%s) with valid records after "
                              "it; refusing to replay (salvage skips it)",
                              name, off, why);
                rc = -EBADMSG;
                goto cleanup;
            }
            journal__note(st, "%s: skipped %zu corrupt bytes at offset %zu (%s)", name, next - off,
                          off, why);
            st->skipped_records++;
            off = next;
        }
        end->last_size = m.size;
        journal__map_close(&m);
    }
cleanup:
    journal__map_close(&m);
    free(segs);
    return rc;
}

/* ---- Writer thread ---- */

/* Writer-side counters, published under mu for journal_get_stats. */
static void journal__count(journal *j, uint64_t *field, int err)
{
    pthread_mutex_lock(&j->mu);
    if (field)
        (*field)++;
    if (err)
        j->stats.errors++, j->stats.last_error = err;
    pthread_mutex_unlock(&j->mu);
}

/* Append g to a singly linked FIFO. */
static void journal__fifo_push(journal__group **head, journal__group **tail, journal__group *g)
{
    g->next = NULL;
    if (*tail)
        (*tail)->next = g;
    else
        *head = g;
    *tail = g;
}

static journal__group *journal__fifo_pop(journal__group **head, journal__group **tail)
{
    journal__group *g = *head;
    if (g && !(*head = g->next))
        *tail = NULL;
    return g;
}

/* Create segment `no` and make its directory entry durable. */
static int journal__create_seg(journal *j, uint64_t no)
{
    char name[64];
    int fd, rc = 0;

    journal_segment_name(name, sizeof(name), no);
    /* O_EXCL: a segment number is never reused, so an existing file means
     * something else is writing here. */
    fd = openat(j->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    if (fsync(j->dirfd) < 0) {
        rc = -errno;
        close(fd);
        unlinkat(j->dirfd, name, 0); /* so a retry can create it */
        return rc;
    }
    return fd;
}

static int journal__sync(journal *j)
{
    int err = fdatasync(j->fd) < 0 ? -errno : 0;

    journal__count(j, err ? NULL : &j->stats.fsyncs, err);
    j->dirty = 0; /* even on failure: the kernel has dropped those pages' error state */
    return err;
}

/* The sync thread's fdatasyncs, counted like the writer's own. */
static void journal__sync_report(void *ctx, int err)
{
    journal *j = ctx;
    journal__count(j, err ? NULL : &j->stats.fsyncs, err);
}

static int journal__rotate(journal *j)
{
    int fd;

    /* The old segment must be durable before a newer one can exist: replay
     * reads "bad record, then valid records in a later segment" as
     * mid-journal corruption rather than a torn tail. */
    if (j->dirty) {
        if (fdatasync(j->fd) < 0)
            return -errno; /* counted by the caller as this group's error */
        j->dirty = 0;
        journal__count(j, &j->stats.fsyncs, 0);
    }
    fd = journal__create_seg(j, j->seg_no + 1);
    if (fd < 0)
        return fd; /* stay on the old segment; the next group retries */
    if (j->sync) { /* it may be syncing the old fd right now: it closes it */
        journal_sync_switch(j->sync, fd, j->fd, j->seg_size, j->prealloc.end);
    } else {
        journal_prealloc_release(&j->prealloc, j->fd, j->seg_size);
        close(j->fd);
    }
    journal_prealloc_reset(&j->prealloc, 0);
    j->fd = fd;
    j->seg_no++;
    j->seg_size = 0;
    j->need_truncate = 0;
    journal__count(j, &j->stats.segments, 0);
    return 0;
}

/* One write (plus rotation and sync per policy) for a whole group. On
 * failure the segment is cut back to its size before the group, so it
 * never holds a partial record; the next group retries from there. */
static int journal__write_group(journal *j, journal__group *g)
{
    size_t done = 0;
    int err = 0;

    /* Checksums here rather than in journal_append: keeps the CPU work off
     * the event loop. */
    for (size_t off = 0; off < g->len;) {
        uint32_t blen = journal__get32(g->buf + off);
        journal__put32(g->buf + off + 4, crc32c(0, g->buf + off + JOURNAL__HDR, blen));
        off += JOURNAL__HDR + blen;
    }
    if (j->need_truncate) {
        if (ftruncate(j->fd, (off_t)j->seg_size) < 0)
            return -errno;
        j->need_truncate = 0;
        journal_prealloc_reset(&j->prealloc, j->seg_size);
    }
    if (j->seg_size > 0 && j->seg_size + g->len > j->segment_bytes) {
        err = journal__rotate(j);
        if (err)
            return err;
    }
    journal_prealloc_ensure(&j->prealloc, j->fd, j->seg_size + g->len, j->segment_bytes);
    /* pwrite at our own offset: after a cut-back the file position would
     * otherwise leave a hole. Loop for short writes (RLIMIT_FSIZE, signals). */
    while (done < g->len) {
        ssize_t w = pwrite(j->fd, g->buf + done, g->len - done, (off_t)(j->seg_size + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            err = w < 0 ? -errno : -EIO;
            break;
        }
        done += (size_t)w;
    }
    if (!err && j->policy == JOURNAL_FSYNC_ALWAYS && fdatasync(j->fd) < 0)
        err = -errno;
    else if (!err && j->policy == JOURNAL_FSYNC_ALWAYS)
        journal__count(j, &j->stats.fsyncs, 0);
    if (err) {
        /* Also after a failed fsync: the client is told the batch failed and
         * will resend it, so the journal must not keep it. */
        if (ftruncate(j->fd, (off_t)j->seg_size) < 0)
            j->need_truncate = 1;
        else
            journal_prealloc_reset(&j->prealloc, j->seg_size);
        return err;
    }
    j->seg_size += g->len;
    if (j->policy != JOURNAL_FSYNC_ALWAYS && !j->dirty && g->len) {
        j->dirty = 1;
        j->sync_deadline = journal__now_ns() + j->interval_ns;
    }
    if (j->sync && g->len) /* starts the sync thread's clocks */
        journal_sync_wrote(j->sync, j->seg_size);
    if (g->barrier) {
        /* An empty segment needs no rotation: it already is "after N". A
         * failed rotation fails only the barrier; the records are written. */
        g->barrier_seg = j->seg_size ? j->seg_no : j->seg_no - 1;
        g->barrier_status = j->seg_size ? journal__rotate(j) : 0;
    }
    return 0;
}

static void *journal__writer_main(void *arg)
{
    journal *j = arg;
    int chain_err = 0;

    /* The interval policy's syncs run there, so groups never wait behind
     * one. Failing to start it costs only that: the writer syncs inline. */
    journal_sync_start(&j->sync, j->fd,
                       j->policy == JOURNAL_FSYNC_INTERVAL ? j->interval_ns : 0,
                       journal__sync_report, j);
    pthread_mutex_lock(&j->mu);
    for (;;) {
        journal__group *g;

        /* Checked before taking work so a steady stream of groups cannot
         * postpone the interval sync indefinitely. */
        if (j->policy == JOURNAL_FSYNC_INTERVAL && !j->sync && j->dirty &&
            journal__now_ns() >= j->sync_deadline) {
            pthread_mutex_unlock(&j->mu);
            journal__sync(j); /* failure counted; acked data can't be un-acked */
            pthread_mutex_lock(&j->mu);
            continue;
        }
        if ((g = journal__fifo_pop(&j->q, &j->q_tail))) {
            int err;
            pthread_mutex_unlock(&j->mu);
            /* A group queued behind a failed one (only journal_close queues
             * a second) fails with it, as in journal__fail_current. */
            err = chain_err ? chain_err : journal__write_group(j, g);
            pthread_mutex_lock(&j->mu);
            chain_err = err && j->q ? err : 0;
            j->stats.groups++;
            if (err) {
                j->stats.errors++;
                j->stats.last_error = err;
            } else {
                j->stats.records += g->ncb;
                j->stats.bytes += g->len;
            }
            g->status = err;
            journal__fifo_push(&j->done, &j->done_tail, g);
            pthread_mutex_unlock(&j->mu);
            uv_async_send(&j->async);
            pthread_mutex_lock(&j->mu);
            continue;
        }
        if (j->stop)
            break;
        if (j->policy == JOURNAL_FSYNC_INTERVAL && !j->sync && j->dirty) {
            struct timespec ts = {.tv_sec = (time_t)(j->sync_deadline / 1000000000u),
                                  .tv_nsec = (long)(j->sync_deadline % 1000000000u)};
            pthread_cond_timedwait(&j->cv, &j->mu, &ts);
        } else {
            pthread_cond_wait(&j->cv, &j->mu);
        }
    }
    pthread_mutex_unlock(&j->mu);
    /* Close promises everything written is on disk, whatever the policy.
     * j->dirty is cleared only by the writer's own syncs, so it covers
     * whatever the sync thread (stopped first) may not have synced. */
    journal_sync_stop(j->sync);
    j->sync = NULL;
    if (j->dirty)
        journal__sync(j);
    journal_prealloc_release(&j->prealloc, j->fd, j->seg_size);
    return NULL;
}

/* ---- Loop side ---- */

static void journal__free_group(journal__group *g)
{
    if (g) {
        free(g->buf);
        free(g->cbs);
        free(g);
    }
}

/* The journal keeps the loop alive only while it owes callbacks. */
static void journal__update_ref(journal *j)
{
    int want = (j->cur && j->cur->ncb) || j->inflight || j->ready || j->sealed;

    if (want && !j->reffed)
        uv_ref((uv_handle_t *)&j->async);
    else if (!want && j->reffed)
        uv_unref((uv_handle_t *)&j->async);
    j->reffed = want;
}

static void journal__push(journal *j, journal__group *g)
{
    j->inflight++;
    pthread_mutex_lock(&j->mu);
    journal__fifo_push(&j->q, &j->q_tail, g);
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

/* Move finished groups from the writer to the ready list. */
static void journal__collect(journal *j)
{
    journal__group *g;

    pthread_mutex_lock(&j->mu);
    while ((g = journal__fifo_pop(&j->done, &j->done_tail))) {
        j->inflight--;
        j->pending -= g->len;
        journal__fifo_push(&j->ready, &j->ready_tail, g);
    }
    pthread_mutex_unlock(&j->mu);
}

/* Run callbacks in append order. All state lives in j, so a callback may
 * append, or even call journal_close, without confusing this loop. */
static void journal__run_callbacks(journal *j)
{
    journal__group *g;

    while ((g = j->ready)) {
        if (g->ndone < g->ncb) {
            journal__cb cb = g->cbs[g->ndone++];
            if (cb.barrier)
                cb.barrier(cb.ctx, g->status ? g->status : g->barrier_status, g->barrier_seg);
            else if (cb.fn)
                cb.fn(cb.ctx, g->status);
            continue;
        }
        journal__fifo_pop(&j->ready, &j->ready_tail);
        if (!j->spare && !j->closing && g->cap <= JOURNAL__SPARE_MAX) {
            g->len = g->ncb = g->ndone = 0;
            g->status = g->barrier = g->barrier_status = 0;
            g->barrier_seg = 0;
            j->spare = g;
        } else {
            journal__free_group(g);
        }
    }
}

/* A failed group also fails the group still being filled: its records were
 * appended before the loop learned of the failure, and a client must never
 * see seq N fail while a later seq N+k it sent meanwhile is kept — its
 * resend of N would then look like a duplicate. Appends made after this
 * point start a fresh group and are tried again. */
static void journal__fail_current(journal *j)
{
    int status = 0;
    journal__group *g;

    for (g = j->ready; g; g = g->next)
        if (g->status)
            status = g->status;
    if (!status)
        return;
    /* Sealed barrier groups were appended before cur: they go first. */
    while ((g = journal__fifo_pop(&j->sealed, &j->sealed_tail)) || ((g = j->cur) && g->ncb)) {
        if (g == j->cur)
            j->cur = NULL;
        g->status = status;
        j->pending -= g->len;
        journal__fifo_push(&j->ready, &j->ready_tail, g);
    }
}

static void journal__on_async(uv_async_t *h)
{
    journal *j = h->data;

    journal__collect(j);
    journal__fail_current(j);
    journal__run_callbacks(j);
    if (!j->closing)
        journal__update_ref(j);
}

/* End of a loop iteration (check) or start of the next one (prepare):
 * hand the group to the writer if it is idle; otherwise keep filling it. */
static void journal__tick(journal *j)
{
    if (j->closing || j->inflight)
        return;
    if (j->sealed) { /* one group in flight still: barrier groups take turns */
        journal__push(j, journal__fifo_pop(&j->sealed, &j->sealed_tail));
        return;
    }
    if (!j->cur || !j->cur->ncb)
        return;
    journal__push(j, j->cur);
    j->cur = NULL;
}
static void journal__on_prepare(uv_prepare_t *h) { journal__tick(h->data); }
static void journal__on_check(uv_check_t *h) { journal__tick(h->data); }

/* The group being filled, started (from the spare if any) when there is none. */
static journal__group *journal__cur(journal *j)
{
    journal__group *g = j->cur;
    if (!g && (g = j->spare ? j->spare : calloc(1, sizeof(*g)))) {
        j->spare = NULL;
        j->cur = g;
    }
    return g;
}

static int journal__cb_room(journal__group *g)
{
    if (g->ncb == g->cbcap) {
        size_t cap = g->cbcap ? g->cbcap * 2 : 64;
        journal__cb *nc = realloc(g->cbs, cap * sizeof(*nc));
        if (!nc)
            return -ENOMEM;
        g->cbs = nc, g->cbcap = cap;
    }
    return 0;
}

int journal_rotate_barrier(journal *j, journal_barrier_fn fn, void *ctx)
{
    journal__group *g;

    if (!j || j->closing)
        return -ESHUTDOWN;
    if (!fn)
        return -EINVAL;
    if (!(g = journal__cur(j)) || journal__cb_room(g) < 0)
        return -ENOMEM;
    /* The barrier is the group's last callback, so it runs after every
     * record before it; the group is sealed, so nothing joins it after. */
    g->cbs[g->ncb++] = (journal__cb){.barrier = fn, .ctx = ctx};
    g->barrier = 1;
    j->cur = NULL;
    journal__fifo_push(&j->sealed, &j->sealed_tail, g);
    journal__update_ref(j);
    return 0;
}

int journal_append(journal *j, const char *client, size_t clen, uint64_t seq, const void *msg,
                   size_t len, journal_done_fn done, void *ctx)
{
    journal__group *g;
    size_t body = 2 + clen + 8 + len, need;
    uint8_t *p;

    if (!j || j->closing)
        return -ESHUTDOWN;
    if (clen > 255 || (clen && !client) || (len && !msg))
        return -EINVAL;
    if (len > JOURNAL_MAX_MSG)
        return -EMSGSIZE;
    if (!(g = journal__cur(j)))
        return -ENOMEM;
    need = g->len + JOURNAL__HDR + body;
    if (need > g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 64 * 1024;
        while (cap < need)
            cap *= 2;
        uint8_t *nb = realloc(g->buf, cap);
        if (!nb)
            return -ENOMEM;
        g->buf = nb, g->cap = cap;
    }
    if (journal__cb_room(g) < 0)
        return -ENOMEM;
    p = g->buf + g->len;
    journal__put32(p, (uint32_t)body);
    journal__put32(p + 4, 0); /* crc: the writer fills it in */
    p[8] = JOURNAL__TYPE_BATCH;
    p[9] = (uint8_t)clen;
    if (clen)
        memcpy(p + 10, client, clen);
    journal__put64(p + 10 + clen, seq);
    if (len)
        memcpy(p + 18 + clen, msg, len);
    g->len = need;
    g->cbs[g->ncb++] = (journal__cb){.fn = done, .ctx = ctx};
    j->pending += JOURNAL__HDR + body;
    journal__update_ref(j);
    return 0;
}

size_t journal_pending(const journal *j) { return j ? j->pending : 0; }

void journal_get_stats(const journal *j, journal_stats *st)
{
    /* The journal is never a const object; the const only promises the
     * caller that nothing observable changes. */
    journal *mj = (journal *)j;

    pthread_mutex_lock(&mj->mu);
    *st = j->stats;
    pthread_mutex_unlock(&mj->mu);
}

/* ---- Lifecycle ---- */

static void journal__destroy(journal *j)
{
    journal__free_group(j->cur);
    journal__free_group(j->spare);
    if (j->fd >= 0)
        close(j->fd);
    if (j->dirfd >= 0)
        close(j->dirfd); /* drops the flock */
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j->dir);
    free(j);
}

/* Let the writer drain its queue, sync and exit; wait for it. */
static void journal__stop_writer(journal *j)
{
    pthread_mutex_lock(&j->mu);
    j->stop = 1;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    pthread_join(j->thread, NULL);
}

static void journal__on_close(uv_handle_t *h)
{
    journal *j = h->data;
    if (--j->open_handles == 0)
        journal__destroy(j);
}

static int journal__mkdirs(const char *dir)
{
    char *p = strdup(dir);
    int rc = 0;

    if (!p)
        return -ENOMEM;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s)
            continue;
        char c = *s;
        *s = 0;
        if (mkdir(p, 0755) < 0 && errno != EEXIST) {
            rc = -errno;
            break;
        }
        *s = c;
        if (!c)
            break;
    }
    free(p);
    return rc;
}

/* Create (if needed), open and lock j->dir. */
static int journal__open_dir(journal *j, journal_replay_stats *st)
{
    int rc;

    if ((rc = journal__mkdirs(j->dir)) < 0)
        return rc;
    if ((j->dirfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return -errno;
    /* Two processes appending to one journal would interleave garbage. */
    if (flock(j->dirfd, LOCK_EX | LOCK_NB) < 0) {
        int rc2 = errno == EWOULDBLOCK ? -EBUSY : -errno;
        journal__note(st, "%s: journal is in use by another process", j->dir);
        return rc2;
    }
    return 0;
}

int journal_replay(const journal_config *cfg, journal_replay_fn fn, void *ctx,
                   journal_replay_stats *st)
{
    journal_replay_stats local;
    journal j = {.fd = -1, .dirfd = -1};
    journal__end end;
    int rc;

    if (!st)
        st = &local;
    memset(st, 0, sizeof(*st));
    if (!cfg || !cfg->dir || !*cfg->dir)
        return -EINVAL;
    j.dir = (char *)cfg->dir; /* borrowed: never freed here */
    if ((rc = journal__open_dir(&j, st)) == 0)
        rc = journal__replay(&j, cfg->salvage, 0, cfg->after_segment, fn, ctx, st, &end);
    if (j.dirfd >= 0)
        close(j.dirfd); /* drops the lock; journal_open takes it again */
    return rc;
}

int journal_open(journal **out, uv_loop_t *loop, const journal_config *cfg, journal_replay_fn fn,
                 void *ctx, journal_replay_stats *st)
{
    journal_replay_stats local;
    journal *j = NULL;
    pthread_condattr_t ca;
    sigset_t all, old;
    journal__end end;
    int rc = 0, thread_started = 0;

    if (!st)
        st = &local;
    memset(st, 0, sizeof(*st));
    *out = NULL;
    if (!loop || !cfg || !cfg->dir || !*cfg->dir)
        return -EINVAL;
    if (!(j = calloc(1, sizeof(*j))))
        return -ENOMEM;
    j->fd = j->dirfd = -1;
    j->loop = loop;
    j->policy = cfg->fsync;
    j->interval_ns = (uint64_t)(cfg->interval_ms ? cfg->interval_ms : 10) * 1000000u;
    j->segment_bytes = cfg->segment_bytes ? cfg->segment_bytes : (uint64_t)256 << 20;
    pthread_mutex_init(&j->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* matches journal__now_ns */
    pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (!(j->dir = strdup(cfg->dir))) {
        rc = -ENOMEM;
        goto cleanup;
    }
    if ((rc = journal__open_dir(j, st)) < 0)
        goto cleanup;
    /* Without fn nothing consumes the records, so only the tail needs
     * checking; journal_replay has read (and verified) the rest. */
    if ((rc = journal__replay(j, cfg->salvage, fn == NULL, cfg->after_segment, fn, ctx, st,
                              &end)) < 0)
        goto cleanup;
    j->stats.segments = end.files;
    if (end.last && end.last_size == 0) {
        /* An empty last segment (crash before its first write, or a tail
         * cut to nothing) is as good as a new one; reusing it keeps
         * restart loops from piling up empty files. */
        char name[64];
        journal_segment_name(name, sizeof(name), end.last);
        j->fd = openat(j->dirfd, name, O_WRONLY | O_CLOEXEC);
        j->seg_no = end.last;
        if (j->fd < 0) {
            rc = -errno;
            goto cleanup;
        }
    } else {
        /* end.last counts only segments above after_segment: with none,
         * numbering goes on above what the checkpoint covers, never reusing
         * a number replay would skip. */
        uint64_t no = (end.last ? end.last : cfg->after_segment) + 1;
        if (end.last) /* blocks a crash left reserved past its end */
            journal_prealloc_trim(j->dirfd, end.last, end.last_size);
        if ((j->fd = journal__create_seg(j, no)) < 0) {
            rc = j->fd;
            goto cleanup;
        }
        j->seg_no = no;
        j->stats.segments++;
    }

    /* The writer takes no signals: SIGXFSZ from a write past RLIMIT_FSIZE
     * is directed at the writing thread, and blocked it just stays pending
     * while write() returns EFBIG. Everything else belongs to the loop. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = -pthread_create(&j->thread, NULL, journal__writer_main, j);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc)
        goto cleanup;
    thread_started = 1;
    /* Initialised after the thread because it is the one step that needs
     * the loop to undo; nothing can fail after it. */
    if ((rc = uv_async_init(loop, &j->async, journal__on_async)) < 0)
        goto cleanup;
    uv_prepare_init(loop, &j->prepare);
    uv_check_init(loop, &j->check);
    j->async.data = j->prepare.data = j->check.data = j;
    uv_prepare_start(&j->prepare, journal__on_prepare);
    uv_check_start(&j->check, journal__on_check);
    uv_unref((uv_handle_t *)&j->async);
    uv_unref((uv_handle_t *)&j->prepare);
    uv_unref((uv_handle_t *)&j->check);
    j->open_handles = 3;
    *out = j;
    return 0;

cleanup:
    if (thread_started)
        journal__stop_writer(j);
    journal__destroy(j);
    return rc;
}

void journal_close(journal *j)
{
    journal__group *g;

    if (!j || j->closing)
        return;
    j->closing = 1;
    while ((g = journal__fifo_pop(&j->sealed, &j->sealed_tail)))
        journal__push(j, g);
    g = j->cur;
    j->cur = NULL;
    if (g && g->ncb)
        journal__push(j, g);
    else
        journal__free_group(g);
    journal__stop_writer(j);
    /* Release the files (and the directory lock) now, so the journal can be
     * reopened before the loop has run the close callbacks. */
    close(j->fd);
    close(j->dirfd);
    j->fd = j->dirfd = -1;
    /* The writer has finished everything; run the rest right here rather
     * than waiting for an async callback that will never come. */
    journal__collect(j);
    journal__run_callbacks(j);
    uv_close((uv_handle_t *)&j->async, journal__on_close);
    uv_close((uv_handle_t *)&j->prepare, journal__on_close);
    uv_close((uv_handle_t *)&j->check, journal__on_close);
}
