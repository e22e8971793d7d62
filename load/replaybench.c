/* replaybench — how fast slotd restarts.
 *
 *   replaybench [records=5000] [payload_bytes=40000] [dir=/tmp]
 *   replaybench w1 [trades=2000000] [dir=/tmp] [symbols=1000]
 *
 * The first form: how fast journal_open replays (read + CRC32C check, no-op
 * record callback), the lower bound on restart time per GB of journal.
 * Writes the records (a ~1000-trade batch is ~40 KB of msgpack) through the
 * journal itself, then replays them several times from the page cache
 * ("hot") and once after asking the kernel to drop the files' cached pages
 * ("cold", which then measures the disk).
 *
 * "w1": restart end to end, in trades/s. W1 trades in 1,000-trade map-form
 * batches (px as decimal text, what slotload sends) are journaled, then
 * replayed through the server's own path (journal_replay -> replay_apply:
 * decode, stage, reserve, commit) into a fresh store; then that store is
 * written as a snapshot (core/snapshot.c, CRC32C) and loaded back the way
 * checkpoint.c does at start-up (mmap + snapshot_load), hot and cold. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "crc32c.h"
#include "fixp.h"
#include "replay.h"
#include "journal.h"
#include "server.h"
#include "snapshot.h"
#include "workload_pack.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int noop(void *ctx, const char *client, size_t clen, uint64_t seq, const uint8_t *msg,
                size_t len)
{
    (void)ctx, (void)client, (void)clen, (void)seq, (void)msg, (void)len;
    return 0;
}

static void on_done(void *ctx, int status)
{
    if (status) {
        fprintf(stderr, "append failed: %d\n", status);
        exit(1);
    }
    (*(size_t *)ctx)++;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* Drop the segments' clean pages from the page cache (no root needed). */
static void drop_cache(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, "journal-", 8))
            continue;
        int fd = openat(dirfd(d), e->d_name, O_RDONLY);
        if (fd >= 0) {
            fdatasync(fd);
            posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
            close(fd);
        }
    }
    if (d)
        closedir(d);
}

static double replay_once(uv_loop_t *loop, const journal_config *c, journal_replay_stats *st)
{
    journal *j;
    double t0 = now_s();
    int rc = journal_open(&j, loop, c, noop, NULL, st);
    double dt = now_s() - t0;
    if (rc) {
        fprintf(stderr, "journal_open: %d %s\n", rc, st->detail);
        exit(1);
    }
    journal_close(j);
    uv_run(loop, UV_RUN_DEFAULT);
    return dt;
}

/* ---- w1: end to end ------------------------------------------------------ */

static store_batch w1_staged;

static int w1_record(void *ctx, const char *client, size_t clen, uint64_t seq, const uint8_t *msg,
                     size_t len)
{
    return replay_apply(ctx, &w1_staged, client, clen, seq, msg, len);
}

static void w1_server(server *srv)
{
    store_config sc = {.max_memory = (size_t)16 << 30};
    memset(srv, 0, sizeof *srv);
    proto_limits_default(&srv->cfg.limits);
    srv->cfg.store.max_memory = sc.max_memory;
    store_batch_init(&w1_staged);
    if (store_open(&srv->store, &sc) != STORE_OK) {
        fprintf(stderr, "store_open failed\n");
        exit(1);
    }
}

static void w1_server_free(server *srv)
{
    store_batch_free(&w1_staged);
    clients_free(&srv->clients);
    store_close(srv->store);
}

typedef struct w1_file {
    int fd;
    char *buf;
    size_t len;
} w1_file;

static int w1_file_write(void *ctx, const void *p, size_t n)
{
    w1_file *f = ctx;
    if (f->len + n > (1u << 20)) {
        if (write(f->fd, f->buf, f->len) != (ssize_t)f->len)
            return -1;
        f->len = 0;
    }
    if (n > (1u << 20))
        return write(f->fd, p, n) == (ssize_t)n ? 0 : -1;
    memcpy(f->buf + f->len, p, n);
    f->len += n;
    return 0;
}

typedef struct w1_map {
    const unsigned char *p;
    size_t size, pos;
} w1_map;

static int w1_map_read(void *ctx, void *dst, size_t n)
{
    w1_map *m = ctx;
    if (n > m->size - m->pos)
        return -1;
    memcpy(dst, m->p + m->pos, n);
    m->pos += n;
    return 0;
}

/* Load `path` into a fresh store as checkpoint.c does; seconds. */
static double w1_load(const char *path, uint64_t want_trades)
{
    store_config sc = {.max_memory = (size_t)16 << 30};
    store *s;
    struct stat sb;
    int fd = open(path, O_RDONLY);
    if (fd < 0 || fstat(fd, &sb) < 0 || store_open(&s, &sc) != STORE_OK)
        exit(1);
    double t0 = now_s();
    void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED)
        exit(1);
    madvise(p, (size_t)sb.st_size, MADV_SEQUENTIAL);
    w1_map m = {p, (size_t)sb.st_size, 0};
    snapshot_io io = {.read = w1_map_read, .crc = crc32c, .ctx = &m};
    snapshot_info info;
    void *extra;
    size_t elen;
    int rc = snapshot_load(s, &io, &extra, &elen, &info);
    double dt = now_s() - t0;
    if (rc != SNAPSHOT_OK || info.trades != want_trades) {
        fprintf(stderr, "snapshot_load: %s\n", core_strerror(rc));
        exit(1);
    }
    free(extra);
    munmap(p, (size_t)sb.st_size);
    close(fd);
    store_close(s);
    return dt;
}

static int w1_main(uint64_t trades, const char *base, uint32_t nsym)
{
    char dir[4096], snap[4200];
    snprintf(dir, sizeof dir, "%s/slotd-replaybench-XXXXXX", base);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    /* Journal the batches. */
    workload w;
    msgpack_sbuffer msg;
    msgpack_packer pk;
    msgpack_sbuffer_init(&msg);
    msgpack_packer_init(&pk, &msg, msgpack_sbuffer_write);
    if (workload_init(&w, nsym, 1.1, 42) != 0)
        return 1;
    uv_loop_t loop;
    uv_loop_init(&loop);
    journal_config c = {.dir = dir, .fsync = JOURNAL_FSYNC_NEVER};
    journal *j;
    size_t done = 0;
    if (journal_open(&j, &loop, &c, NULL, NULL, NULL))
        return 1;
    uint64_t seq = 0;
    for (uint64_t left = trades; left;) {
        uint32_t n = left < 1000 ? (uint32_t)left : 1000;
        msgpack_sbuffer_clear(&msg);
        workload_pack_batch(&pk, &w, ++seq, n, 0);
        if (journal_append(j, "bench", 5, seq, msg.data, msg.size, on_done, &done))
            return 1;
        if (journal_pending(j) > (64u << 20))
            uv_run(&loop, UV_RUN_ONCE);
        left -= n;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    journal_stats js;
    journal_get_stats(j, &js);
    journal_close(j);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    workload_free(&w);
    msgpack_sbuffer_destroy(&msg);
    printf("W1 %u symbols: %llu trades in %llu batches, journal %.1f MB (%.1f B/trade)\n", nsym,
           (unsigned long long)trades, (unsigned long long)seq, (double)js.bytes / 1e6,
           (double)js.bytes / (double)trades);

    /* Replay end to end, best of 3, each into a fresh store. */
    double best = 1e9;
    server srv;
    journal_replay_stats st;
    for (int r = 0; r < 3; r++) {
        w1_server(&srv);
        double t0 = now_s();
        int rc = journal_replay(&c, w1_record, &srv, &st);
        double dt = now_s() - t0;
        store_stats ss;
        store_get_stats(srv.store, &ss);
        if (rc || ss.trades != trades) {
            fprintf(stderr, "replay failed: %d %s (%llu trades)\n", rc, st.detail,
                    (unsigned long long)ss.trades);
            return 1;
        }
        best = dt < best ? dt : best;
        if (r < 2)
            w1_server_free(&srv);
    }
    printf("journal replay (read, CRC32C, decode, stage, commit): best of 3 %.3f s = "
           "%.2f M trades/s (%.0f MB/s of journal)\n", best, (double)trades / best / 1e6,
           (double)st.bytes / best / 1e6);

    /* Snapshot of the replayed store, as the checkpoint child writes it. */
    snprintf(snap, sizeof snap, "%s/snapshot-0000000000000001.snap", dir);
    w1_file f = {.fd = open(snap, O_WRONLY | O_CREAT | O_TRUNC, 0644), .buf = malloc(1u << 20)};
    snapshot_io io = {.write = w1_file_write, .crc = crc32c, .ctx = &f};
    snapshot_info info;
    double t0 = now_s();
    if (f.fd < 0 || !f.buf || snapshot_save(srv.store, "x", 1, &io, &info) != SNAPSHOT_OK ||
        write(f.fd, f.buf, f.len) != (ssize_t)f.len || fsync(f.fd) != 0)
        return 1;
    double save = now_s() - t0;
    close(f.fd);
    free(f.buf);
    w1_server_free(&srv);
    printf("snapshot write (+fsync): %.3f s = %.2f M trades/s, %.1f MB (%.1f B/trade)\n", save,
           (double)trades / save / 1e6, (double)info.bytes / 1e6,
           (double)info.bytes / (double)trades);
    best = 1e9;
    for (int r = 0; r < 3; r++) {
        double dt = w1_load(snap, trades);
        best = dt < best ? dt : best;
    }
    printf("snapshot load hot (mmap, CRC32C, pages rebuilt, aggregates checked): best of 3 "
           "%.3f s = %.2f M trades/s\n", best, (double)trades / best / 1e6);
    drop_cache(dir);
    int fd = open(snap, O_RDONLY);
    if (fd >= 0) {
        fdatasync(fd);
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    double cold = w1_load(snap, trades);
    printf("snapshot load cold (after POSIX_FADV_DONTNEED): %.3f s = %.2f M trades/s\n", cold,
           (double)trades / cold / 1e6);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "w1") == 0)
        return w1_main(argc > 2 ? strtoull(argv[2], NULL, 10) : 2000000, argc > 3 ? argv[3] : "/tmp",
                       argc > 4 ? (uint32_t)strtoul(argv[4], NULL, 10) : 1000);
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 5000;
    size_t plen = argc > 2 ? strtoull(argv[2], NULL, 10) : 40000;
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/slotd-replaybench-XXXXXX", argc > 3 ? argv[3] : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }

    /* CRC throughput alone, for context. */
    uint8_t *buf = malloc(plen);
    for (size_t i = 0; i < plen; i++)
        buf[i] = (uint8_t)(i * 2654435761u >> 13);
    for (int hw = 0; hw < 2; hw++) {
        uint32_t acc = 0;
        size_t reps = (size_t)(2e9 / (double)plen) / (hw ? 1 : 4);
        double t0 = now_s();
        for (size_t r = 0; r < reps; r++)
            acc ^= hw ? crc32c_hw(acc, buf, plen) : crc32c_sw(acc, buf, plen);
        double dt = now_s() - t0;
        printf("crc32c %s: %.0f MB/s%s (%x)\n", hw ? "hw" : "sw", (double)(reps * plen) / dt / 1e6,
               hw && !crc32c_hw_available() ? " (no SSE4.2: software)" : "", acc);
    }

    uv_loop_t loop;
    uv_loop_init(&loop);
    journal_config c = {.dir = dir, .fsync = JOURNAL_FSYNC_NEVER};
    journal_replay_stats st;
    journal *j;
    if (journal_open(&j, &loop, &c, NULL, NULL, &st)) {
        fprintf(stderr, "journal_open failed\n");
        return 1;
    }
    size_t done = 0;
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        buf[i % plen] ^= 1; /* every record differs */
        if (journal_append(j, "bench", 5, i + 1, buf, plen, on_done, &done)) {
            fprintf(stderr, "append failed\n");
            return 1;
        }
        if (journal_pending(j) > (64u << 20)) /* like the server's high-water mark */
            uv_run(&loop, UV_RUN_ONCE);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    journal_stats js;
    journal_get_stats(j, &js);
    journal_close(j);
    uv_run(&loop, UV_RUN_DEFAULT);
    double wt = now_s() - t0;
    printf("write (fsync=never, sync at close): %zu records x %zu B = %.1f MB in %.3f s, "
           "%.0f MB/s, %llu groups\n",
           done, plen, (double)js.bytes / 1e6, wt, (double)js.bytes / wt / 1e6,
           (unsigned long long)js.groups);

    double best = 1e9;
    for (int r = 0; r < 5; r++) {
        double dt = replay_once(&loop, &c, &st);
        best = dt < best ? dt : best;
    }
    printf("replay hot:  %llu records, %.1f MB, %llu segments, best of 5 %.3f s = %.0f MB/s, "
           "%.0f records/s\n",
           (unsigned long long)st.records, (double)st.bytes / 1e6,
           (unsigned long long)st.segments, best, (double)st.bytes / best / 1e6,
           (double)st.records / best);
    drop_cache(dir);
    double cold = replay_once(&loop, &c, &st);
    printf("replay cold: %.3f s = %.0f MB/s (after POSIX_FADV_DONTNEED)\n", cold,
           (double)st.bytes / cold / 1e6);

    uv_loop_close(&loop);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(buf);
    return 0;
}
