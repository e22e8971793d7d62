/* journal_replay — reading the journal back: record parsing, torn tails,
 * mid-journal corruption (salvage), the segment gap checks, and the
 * directory lock. See journal.h for the rules it enforces.
 *
 * It works on its own context (journal__rctx: directory, lock fd, options)
 * rather than a journal handle, so journal_replay can run on any thread
 * without building a journal it would only half initialise; journal_open
 * passes the same context for its own (tail) replay.
 */
#define _GNU_SOURCE
#include "journal_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"

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

static int journal__map_open(const journal__rctx *r, uint64_t no, journal__map *m)
{
    char name[64];
    struct stat sb;

    m->fd = -1, m->base = NULL, m->size = 0;
    journal_segment_name(name, sizeof(name), no);
    m->fd = openat(r->dirfd, name, O_RDONLY | O_CLOEXEC);
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
static int journal__later_valid(const journal__rctx *r, const uint64_t *segs, size_t nsegs, size_t i)
{
    for (size_t k = i + 1; k < nsegs; k++) {
        journal__map m;
        int found = 0;
        if (journal__map_open(r, segs[k], &m) < 0) {
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
static int journal__drop_after(const journal__rctx *r, const uint64_t *segs, size_t nsegs, size_t i,
                               uint64_t *cut)
{
    for (size_t k = nsegs; k-- > i + 1;) {
        struct stat sb;
        char later[64];
        journal_segment_name(later, sizeof(later), segs[k]);
        if (fstatat(r->dirfd, later, &sb, 0) == 0)
            *cut += (uint64_t)sb.st_size;
        if (unlinkat(r->dirfd, later, 0) < 0 && errno != ENOENT)
            return -errno;
    }
    return nsegs > i + 1 && fsync(r->dirfd) < 0 ? -errno : 0;
}

static int journal__truncate_seg(const journal__rctx *r, uint64_t no, uint64_t size)
{
    char name[64];
    int fd, rc = 0;

    journal_segment_name(name, sizeof(name), no);
    fd = openat(r->dirfd, name, O_WRONLY | O_CLOEXEC);
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
static int journal__check_segments(const journal__rctx *r, const uint64_t *segs, size_t n, uint64_t after,
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
        if (fstatat(r->dirfd, name, &sb, 0) < 0) {
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

/* Replay the segments through r->fn (from the last non-empty one only,
 * when r->tail_only: enough to make the tail safe to append to). */
int journal__replay(const journal__rctx *r, journal__end *end)
{
    journal_replay_stats *st = r->st;
    int salvage = r->salvage;
    journal_replay_fn fn = r->fn;
    void *ctx = r->ctx;
    uint64_t *segs = NULL;
    size_t nsegs = 0, first = 0, covered = 0;
    journal__map m = {.fd = -1};
    int rc = journal_segments(r->dir, &segs, &nsegs);

    /* Segments a checkpoint covers are not read at all (not even for a
     * torn tail: the checkpoint was taken after they were complete). */
    while (covered < nsegs && segs[covered] <= r->after)
        covered++;
    memmove(segs, segs + covered, (nsegs - covered) * sizeof(*segs));
    nsegs -= covered;
    end->last = nsegs ? segs[nsegs - 1] : 0;
    end->last_size = 0;
    end->files = nsegs;
    if (rc == 0)
        rc = journal__check_segments(r, segs, nsegs, r->after, salvage, st);
    for (first = nsegs; r->tail_only && first > 0; first--) {
        struct stat sb;
        char name[64];
        journal_segment_name(name, sizeof(name), segs[first - 1]);
        if (fstatat(r->dirfd, name, &sb, 0) < 0 || sb.st_size > 0)
            break;
    }
    first = r->tail_only && first > 0 ? first - 1 : 0;
    for (size_t i = first; rc == 0 && i < nsegs; i++) {
        char name[64];
        size_t off = 0;

        journal_segment_name(name, sizeof(name), segs[i]);
        rc = journal__map_open(r, segs[i], &m);
        if (rc < 0) {
            journal__note(st, "%s: cannot read: %s", name, strerror(-rc));
            break;
        }
        st->segments++;
        while (off < m.size) {
            size_t reclen = 0, next;
            const char *why = "";
            journal__rec kind = journal__parse(m.base, m.size, off, &reclen, &why);

            if (kind == JOURNAL__REC_OK) {
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
            if (kind == JOURNAL__REC_ALIEN) {
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
            if (next == m.size && !journal__later_valid(r, segs, nsegs, i)) {
                /* Torn tail: nothing valid follows, so it was never whole. */
                uint64_t cut = m.size - off;
                journal__map_close(&m);
                rc = journal__drop_after(r, segs, nsegs, i, &cut);
                if (rc == 0)
                    rc = journal__truncate_seg(r, segs[i], off);
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

/* ---- The directory ---- */

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

/* Another process appending to the same journal would interleave garbage:
 * the directory's flock keeps it to one. */
int journal__lock_dir(const char *dir, journal_replay_stats *st)
{
    int fd, rc;

    if ((rc = journal__mkdirs(dir)) < 0)
        return rc;
    if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return -errno;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        journal__note(st, "%s: journal is in use by another process", dir);
        close(fd);
        return rc;
    }
    return fd;
}

int journal_replay(const journal_config *cfg, journal_replay_fn fn, void *ctx,
                   journal_replay_stats *st)
{
    journal_replay_stats local;
    journal__rctx r = {.dirfd = -1, .fn = fn, .ctx = ctx, .st = st ? st : &local};
    journal__end end;
    int rc;

    memset(r.st, 0, sizeof(*r.st));
    if (!cfg || !cfg->dir || !*cfg->dir)
        return -EINVAL;
    r.dir = cfg->dir;
    r.salvage = cfg->salvage;
    r.after = cfg->after_segment;
    if ((rc = r.dirfd = journal__lock_dir(r.dir, r.st)) < 0)
        return rc;
    rc = journal__replay(&r, &end);
    close(r.dirfd); /* drops the lock; journal_open takes it again */
    return rc;
}
