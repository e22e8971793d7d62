/* checkpoint_file — snapshot files: their names, listing them, writing one
 * (in a fork()ed child, or in process at exit) and reading one back
 * through mmap, and the server's extra blob inside (core/snapshot.h
 * carries it opaquely). No libuv, no loop state: the child runs this.
 *
 * The extra blob, little endian:
 *
 *   0 magic "SLOTCKP1"   8 segment N u64   16 created, Unix ns u64
 *  24 clients u32       28 zero u32
 *  32 per client: name length u8 | name | durable seq u64
 */
#define _GNU_SOURCE
#include "checkpoint_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"

/* ---- file names ------------------------------------------------------- */

void ckpt_path(char *buf, size_t n, const char *dir, uint64_t seg, const char *ext)
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

int ckpt_list(const char *dir, const char *ext, uint64_t **out, size_t *n)
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
    uint64_t off;    /* bytes written to the file */
    uint64_t paced;  /* [0, paced) has been handed to writeback */
} ckpt_out;

/* Paced writes. Left to itself the kernel lets a snapshot's dirty pages
 * pile up (gigabytes) and writes them back in bursts, the last one in
 * fsync, saturating the disk the journal syncs on for seconds. Instead,
 * every CKPT_PACE bytes the window just written is handed to writeback,
 * and the child waits for the window before it to reach the disk (then
 * drops it from the page cache: nobody reads a snapshot being written).
 * So at most two windows are dirty or in flight at a time, and the
 * child, not the journal, waits for the disk. Errors are ignored: this
 * only shapes the I/O, and the final fsync reports any write error. */
#define CKPT_PACE ((uint64_t)8 << 20)

static void ckpt_pace(ckpt_out *o)
{
    while (o->off - o->paced >= CKPT_PACE) {
        uint64_t w = o->paced;
        sync_file_range(o->fd, (off64_t)w, CKPT_PACE, SYNC_FILE_RANGE_WRITE);
        if (w >= CKPT_PACE) {
            sync_file_range(o->fd, (off64_t)(w - CKPT_PACE), CKPT_PACE,
                            SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                SYNC_FILE_RANGE_WAIT_AFTER);
            posix_fadvise(o->fd, (off_t)(w - CKPT_PACE), CKPT_PACE, POSIX_FADV_DONTNEED);
        }
        o->paced = w + CKPT_PACE;
    }
}

/* Write p[0..n) at the file's end, then pace. */
static int ckpt_out_flush(ckpt_out *o, const void *p, size_t n)
{
    if ((o->err = ckpt_write_all(o->fd, p, n)) < 0)
        return -1;
    o->off += n;
    ckpt_pace(o);
    return 0;
}

int ckpt_write_all(int fd, const void *p, size_t n)
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
        if (ckpt_out_flush(o, o->buf, o->len) < 0)
            return -1;
        o->len = 0;
        if (n >= CKPT_WBUF)
            return ckpt_out_flush(o, p, n);
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
    return 0;
}

/* tmp -> fsync -> rename -> fsync dir. */
void ckpt_write_file(checkpoint *ck, ckpt_report *r)
{
    server *srv = ck->srv;
    ckpt_out o = {.fd = -1, .buf = ck->wbuf};
    snapshot_io io = {.write = ckpt_out_write, .crc = crc32c, .ctx = &o};
    snapshot_info info = {0};
    int dfd = -1, rc;

    memset(r, 0, sizeof *r);
    memcpy(r->stage, "open", 5);
    if ((o.fd = open(ck->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        r->rc = -errno;
        return;
    }
    memcpy(r->stage, "write", 6);
    rc = snapshot_save(srv->store, ck->extra, ck->extra_len, &io, &info);
    /* The writer's own -errno says more than "the write function failed". */
    r->rc = rc == SNAPSHOT_EIO && o.err ? o.err : rc;
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

/* Client table and segment, as of now: see checkpoint_internal.h. */
int ckpt_extra_build(checkpoint *ck, uint64_t seg)
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

/* Load snapshot `seg`: see checkpoint_internal.h. */
int ckpt_load_file(server *srv, uint64_t seg, const char **why, snapshot_info *info)
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
    *why = server_strerror(rc);
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
    if ((rc = snapshot_load(srv->store, &io, &extra, &elen, info))) {
        *why = server_strerror(rc);
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
