/* replaybench — how fast journal_open replays (read + CRC32C check, no-op
 * record callback): the lower bound on slotd's restart time per GB of
 * journal.
 *
 *   replaybench [records=5000] [payload_bytes=40000] [dir=/tmp]
 *
 * Writes the records (a ~1000-trade batch is ~40 KB of msgpack) through the
 * journal itself, then replays them several times from the page cache
 * ("hot") and once after asking the kernel to drop the files' cached pages
 * ("cold", which then measures the disk). */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "journal.h"

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

int main(int argc, char **argv)
{
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
