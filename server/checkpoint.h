/* checkpoint — snapshots that bound replay time.
 *
 * Taking one never stops ingest (Redis BGSAVE style):
 *
 *   loop thread                                   child (fork)
 *   trigger (journal bytes / interval)
 *   journal_rotate_barrier ......................
 *   barrier callback: store == segments <= N
 *     client table -> extra blob, pipe, fork() -> snapshot-N.tmp (the store
 *   ingest goes on (copy-on-write)                as of the fork), fsync,
 *                                                 rename -> snapshot-N.snap,
 *                                                 fsync dir, report, _exit
 *   pipe EOF -> waitpid -> ok?
 *   worker: remove journal segments <= N, older snapshots and temp files
 *
 * The child reads memory and writes one file: no libuv, no journal, no
 * allocation, no stdio; it closes every inherited descriptor but its pipe
 * (so a listening socket or the journal's directory lock never outlives
 * the parent through it) and dies with the parent (PR_SET_PDEATHSIG).
 *
 * Start-up (checkpoint_load, on the replay thread) loads the newest valid
 * snapshot and sets journal.after_segment = N so only later segments are
 * replayed. A damaged snapshot (bad CRC, wrong kinds, too large for
 * --max-memory, ...) is logged and skipped for an older one, or for a full
 * replay, but only while the journal still holds every segment after the
 * one chosen; otherwise start-up fails, naming the file and the gap. The
 * journal must also continue the snapshots: a checkpoint at N always
 * leaves segment N + 1 (the barrier creates it first), and without any
 * snapshot the journal must start at segment 1. A journal starting later
 * means a snapshot was deleted (or segment N + 1 was): start-up fails
 * naming the missing file, unless --salvage accepts the loss.
 *
 * Files: <data-dir>/snapshot-<16 hex digits N>.snap (core/snapshot.h
 * format; the extra blob is the server's, below), .tmp while being written.
 *
 * Retention (retention.c) has its own lifecycle (the server starts and
 * stops it); a checkpoint is also due when retention dropped something
 * since the last one (with --checkpoint-interval), so disk follows memory.
 *
 * Errors: 0, or negative: -errno for a system error, or a SNAPSHOT_E* code
 * (core/err.h) for the snapshot format's own. The ranges never overlap
 * (server_err.h), so a child's -EINTR or -EIO is never read as a snapshot
 * code; server_strerror names either.
 */
#ifndef SLOTD_CHECKPOINT_H
#define SLOTD_CHECKPOINT_H

#include <stdint.h>

#include "server.h"

typedef struct checkpoint_stats {
    int in_progress;
    uint64_t total;            /* completed since start */
    uint64_t failures;         /* since start */
    uint64_t segment;          /* N of the newest snapshot (written or loaded); 0 = none */
    double last_seconds;       /* the last completed checkpoint, trigger to files removed */
    uint64_t last_bytes;       /* its size on disk */
    uint64_t last_trades;
    uint64_t segments_removed; /* journal segments removed since start */
    double load_seconds;       /* start-up: reading the snapshot */
    uint64_t loaded_trades;
} checkpoint_stats;

/* Start-up, on the replay thread before journal_replay (nothing else
 * touches the store or the client table): see above. May replace
 * srv->store by a fresh one opened with sc. 0, or -1 after logging why
 * start-up cannot go on (start_refused, or checkpoint_load_failed). */
int checkpoint_load(server *srv, const store_config *sc);

/* Once ready (loop thread): start the triggers (not retention:
 * retention_start).
 * `replayed_bytes`: journal bytes replayed on top of the snapshot, which
 * count toward the next size trigger. */
int checkpoint_start(server *srv, uint64_t replayed_bytes);

/* Graceful stop (loop thread), before journal_close: waits for a child
 * still writing (and finishes its clean-up), takes a last checkpoint in
 * process when --checkpoint-on-exit asks, closes its handles, then calls
 * done (perhaps later, from the loop). Retention is the caller's to stop. */
void checkpoint_stop(server *srv, void (*done)(server *srv));

void checkpoint_get_stats(const server *srv, checkpoint_stats *st);
void checkpoint_free(server *srv);

#endif
