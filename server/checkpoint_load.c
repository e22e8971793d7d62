/* checkpoint_load — start-up: choose the newest usable snapshot, load it,
 * and check that the journal continues it (checkpoint.h has the rules).
 * Runs on the replay thread before journal_replay; nothing else touches
 * the store or the client table meanwhile.
 */
#define _GNU_SOURCE
#include "checkpoint_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "log.h"

/* Stats from checkpoint_load, before checkpoint_start takes them. */
static checkpoint *g_loaded;

checkpoint *ckpt_loaded_take(void)
{
    checkpoint *ck = g_loaded;
    g_loaded = NULL;
    return ck;
}

const checkpoint *ckpt_loaded_peek(void) { return g_loaded; }

void ckpt_loaded_free(void)
{
    free(g_loaded);
    g_loaded = NULL;
}

static int ckpt_fresh_store(server *srv, const store_config *sc)
{
    store_close(srv->store);
    srv->store = NULL;
    int rc = store_open(&srv->store, sc);
    if (rc != STORE_OK)
        log_error("store_open_failed err=%s", server_strerror(rc));
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
             size / 8 * 9 / (1 << 20) + 1, srv->cfg.store.max_symbols, srv->cfg.store.max_memory);
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
            ckpt_loaded_free(); /* a second load (replay's symbol count) replaces the first */
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
