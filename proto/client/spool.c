/* The spool: sealed batches on disk before they are sent, so a producer
 * that crashes resumes exactly where it was (docs/clients.md, "Sequence
 * numbers and the spool", for the format both libraries share).
 *
 * Locking: flock(LOCK_EX | LOCK_NB) on the spool file itself (what
 * Python's fcntl.flock takes too). A compaction writes a new file, locks
 * it, and renames it over the spool, so the path always names a locked
 * file; a process that opened the old file and locked it after the rename
 * sees that its file is no longer the one at the path and opens again. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"

#define SPOOL_MAGIC "SLOTDSP1"
enum { REC_BATCH = 1, REC_ACKED = 2, REC_STATE = 3 };
enum { REC_HDR = 9 };          /* u32 len | u32 crc | u8 type */
enum { BATCH_FIXED = 8 + 8 + 4 + 1 }; /* seq, sealed, ntrades, kind_len */

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Writes every byte of iov (a short write is retried; an error is not). */
static int write_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

/* One record: header (len, crc over type + payload, type), then the payload
 * pieces. Appended at the end (O_APPEND). */
static int put_record(slotd__spool *sp, int type, const void *a, size_t alen, const void *b,
                      size_t blen, const void *c, size_t clen)
{
    unsigned char hdr[REC_HDR];
    uint32_t crc = slotd__crc32(0, (unsigned char[]){(unsigned char)type}, 1);
    crc = slotd__crc32(crc, a, alen);
    crc = slotd__crc32(crc, b, blen);
    crc = slotd__crc32(crc, c, clen);
    put_le(hdr, 1 + alen + blen + clen, 4);
    put_le(hdr + 4, crc, 4);
    hdr[8] = (unsigned char)type;
    struct iovec iov[4] = {{hdr, REC_HDR}, {(void *)a, alen}, {(void *)b, blen}, {(void *)c, clen}};
    if (write_all(sp->fd, iov, 4) != 0)
        return SLOTD_ESPOOL;
    sp->size += REC_HDR + alen + blen + clen;
    return 0;
}

int slotd__spool_batch(slotd__spool *sp, uint64_t seq, uint64_t sealed, uint32_t ntrades,
                       const char *kind, size_t kind_len, const char *body, size_t len)
{
    unsigned char fixed[BATCH_FIXED];
    put_le(fixed, seq, 8);
    put_le(fixed + 8, sealed, 8);
    put_le(fixed + 16, ntrades, 4);
    fixed[20] = (unsigned char)kind_len;
    int rc = put_record(sp, REC_BATCH, fixed, sizeof fixed, kind, kind_len, body, len);
    if (rc == 0 && sp->sync && fdatasync(sp->fd) != 0)
        rc = SLOTD_ESPOOL;
    if (rc == 0) {
        sp->last_seq = seq;
        sp->sealed = sealed;
        sp->history = 1;
    }
    return rc;
}

int slotd__spool_ack(slotd__spool *sp, uint64_t seq)
{
    /* Not synced: a lost ACKED only makes a restart resend a stored batch,
     * which the server acknowledges without storing it again (rule 1). */
    unsigned char p[8];
    put_le(p, seq, 8);
    int rc = put_record(sp, REC_ACKED, p, 8, NULL, 0, NULL, 0);
    if (rc == 0)
        sp->acked = seq;
    return rc;
}

static int fsync_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return -1;
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (dfd < 0)
        return -1;
    int rc = fsync(dfd);
    close(dfd);
    return rc;
}

int slotd__spool_compact(slotd__spool *sp)
{
    size_t plen = strlen(sp->path);
    char *tmp = malloc(plen + 5);
    int rc = SLOTD_ESPOOL, fd = -1;
    if (!tmp)
        return SLOTD_ENOMEM;
    memcpy(tmp, sp->path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0)
        goto cleanup;
    slotd__spool n = *sp;
    n.fd = fd;
    n.size = 0;
    unsigned char st[16];
    put_le(st, sp->last_seq, 8);
    put_le(st + 8, sp->sealed, 8);
    struct iovec iov[1] = {{SPOOL_MAGIC, 8}};
    if (write_all(fd, iov, 1) != 0 || put_record(&n, REC_STATE, st, 16, NULL, 0, NULL, 0) != 0)
        goto cleanup;
    /* Durable before it replaces the old file: the STATE is all that keeps
     * the next seq and `sealed` once the batches are gone. */
    if (fsync(fd) != 0 || rename(tmp, sp->path) != 0)
        goto cleanup;
    fsync_dir(sp->path);
    close(sp->fd);
    sp->fd = fd;
    sp->size = 8 + n.size;
    fd = -1;
    rc = 0;
cleanup:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

/* Open and lock the file at the path; 0, SLOTD_ELOCKED or SLOTD_ESPOOL. */
static int open_locked(slotd__spool *sp, char *err, size_t errlen)
{
    for (int tries = 0; tries < 100; tries++) {
        int fd = open(sp->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
            snprintf(err, errlen, "spool %s: %s", sp->path, strerror(errno));
            return SLOTD_ESPOOL;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            close(fd);
            snprintf(err, errlen, "spool %s: %s", sp->path,
                     e == EWOULDBLOCK ? "locked by another sender" : strerror(e));
            return e == EWOULDBLOCK ? SLOTD_ELOCKED : SLOTD_ESPOOL;
        }
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(sp->path, &b) == 0 && a.st_ino == b.st_ino &&
            a.st_dev == b.st_dev) {
            sp->fd = fd;
            return 0;
        }
        close(fd); /* a compaction replaced the file meanwhile: open the new one */
    }
    snprintf(err, errlen, "spool %s: keeps being replaced", sp->path);
    return SLOTD_ESPOOL;
}

static int read_file(int fd, unsigned char **out, uint64_t *size)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    unsigned char *d = malloc((size_t)st.st_size + 1);
    if (!d)
        return -1;
    uint64_t have = 0;
    while (have < (uint64_t)st.st_size) {
        ssize_t r = pread(fd, d + have, (size_t)st.st_size - have, (off_t)have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        have += (uint64_t)r;
    }
    *out = d;
    *size = have;
    return 0;
}

static int all_zero(const unsigned char *p, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* The whole records from offset 8 on: *end is where they stop. 0 when
 * whatever follows is a torn tail; SLOTD_ESPOOL for damage elsewhere. */
static int scan(slotd__spool *sp, const unsigned char *d, uint64_t size, uint64_t *end, char *err,
                size_t errlen)
{
    uint64_t off = 8;
    while (off < size) {
        uint64_t left = size - off;
        if (left < REC_HDR)
            break; /* a header cut short: torn */
        uint64_t len = get_le(d + off, 4);
        if (len == 0) {
            if (all_zero(d + off, left))
                break; /* zeros the crash left behind */
            snprintf(err, errlen, "spool %s: record of length 0 at offset %llu", sp->path,
                     (unsigned long long)off);
            return SLOTD_ESPOOL;
        }
        if (8 + len > left)
            break; /* runs past the end: the last write was torn */
        const unsigned char *rec = d + off + 8;
        if (slotd__crc32(0, rec, len) != (uint32_t)get_le(d + off + 4, 4)) {
            if (off + 8 + len == size)
                break; /* the last record, torn */
            snprintf(err, errlen, "spool %s: bad checksum at offset %llu", sp->path,
                     (unsigned long long)off);
            return SLOTD_ESPOOL;
        }
        int type = rec[0];
        int ok = (type == REC_ACKED && len == 9) || (type == REC_STATE && len == 17) ||
                 (type == REC_BATCH && len >= 1 + BATCH_FIXED && len >= 1u + BATCH_FIXED + rec[21]);
        if (!ok) {
            snprintf(err, errlen, "spool %s: unknown record (type %d, length %llu) at offset %llu",
                     sp->path, type, (unsigned long long)len, (unsigned long long)off);
            return SLOTD_ESPOOL;
        }
        if (type == REC_ACKED) {
            uint64_t seq = get_le(rec + 1, 8);
            sp->acked = seq > sp->acked ? seq : sp->acked;
        } else {
            sp->last_seq = get_le(rec + 1, 8);
            sp->sealed = get_le(rec + 9, 8);
            sp->history = 1;
        }
        off += 8 + len;
    }
    *end = off;
    return 0;
}

/* Every BATCH between 8 and end with seq above the last ACKED, to fn. */
static int replay(slotd__spool *sp, const unsigned char *d, uint64_t end, slotd__spool_batch_fn fn,
                  void *u)
{
    for (uint64_t off = 8; off < end;) {
        uint64_t len = get_le(d + off, 4);
        const unsigned char *rec = d + off + 8;
        off += 8 + len;
        if (rec[0] != REC_BATCH || get_le(rec + 1, 8) <= sp->acked)
            continue;
        size_t kl = rec[21];
        const char *kind = (const char *)rec + 1 + BATCH_FIXED;
        int rc = fn(u, get_le(rec + 1, 8), get_le(rec + 9, 8), (uint32_t)get_le(rec + 17, 4), kind, kl,
                    kind + kl, len - 1 - BATCH_FIXED - kl);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int slotd__spool_open(slotd__spool *sp, const char *path, int sync, slotd__spool_batch_fn fn,
                      void *u, char *err, size_t errlen)
{
    unsigned char *d = NULL;
    uint64_t size = 0, end = 8;
    memset(sp, 0, sizeof *sp);
    sp->fd = -1;
    sp->sync = sync;
    sp->path = strdup(path);
    if (!sp->path)
        return SLOTD_ENOMEM;
    int rc = open_locked(sp, err, errlen);
    if (rc != 0)
        goto fail;
    rc = SLOTD_ESPOOL;
    if (read_file(sp->fd, &d, &size) != 0) {
        snprintf(err, errlen, "spool %s: cannot read: %s", path, strerror(errno));
        goto fail;
    }
    if (size < 8) {
        /* New, or a header torn while being created. */
        if (memcmp(d, SPOOL_MAGIC, (size_t)size) != 0) {
            snprintf(err, errlen, "spool %s: not a spool (bad header at offset 0)", path);
            goto fail;
        }
        struct iovec iov[1] = {{SPOOL_MAGIC, 8}};
        if (ftruncate(sp->fd, 0) != 0 || write_all(sp->fd, iov, 1) != 0 || fsync(sp->fd) != 0) {
            snprintf(err, errlen, "spool %s: cannot write: %s", path, strerror(errno));
            goto fail;
        }
        sp->size = 8;
        free(d);
        return 0;
    }
    if (memcmp(d, SPOOL_MAGIC, 8) != 0) {
        snprintf(err, errlen, "spool %s: not a spool (bad header at offset 0)", path);
        goto fail;
    }
    if ((rc = scan(sp, d, size, &end, err, errlen)) != 0)
        goto fail;
    if (end < size && (ftruncate(sp->fd, (off_t)end) != 0 || fsync(sp->fd) != 0)) {
        snprintf(err, errlen, "spool %s: cannot cut the torn tail at offset %llu: %s", path,
                 (unsigned long long)end, strerror(errno));
        rc = SLOTD_ESPOOL;
        goto fail;
    }
    sp->size = end;
    if ((rc = replay(sp, d, end, fn, u)) != 0)
        goto fail;
    free(d);
    return 0;
fail:
    free(d);
    slotd__spool_close(sp);
    return rc;
}

void slotd__spool_close(slotd__spool *sp)
{
    if (sp->fd >= 0)
        close(sp->fd); /* releases the lock */
    sp->fd = -1;
    free(sp->path);
    sp->path = NULL;
}
