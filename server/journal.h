/* journal — durable, append-only log of accepted batches.
 *
 * Every batch slotd acknowledges is first appended here. Records are
 * length-prefixed and CRC32C-checksummed and carry the client name and batch
 * sequence, so replay rebuilds both the store and each client's last_seq:
 *
 *   record (little endian)
 *   +-----------+-----------+----------------------------------------------+
 *   | len   u32 | crc32c u32| body: type u8 | clen u8 | client | seq u64 |  |
 *   |           | (of body) |       msg (the raw msgpack T message)        |
 *   +-----------+-----------+----------------------------------------------+
 *
 * Files: <dir>/journal-<16 hex digit segment number>.log, rotated by size.
 *
 * Group commit: appends made during one loop iteration are written by one
 * write() (and one fsync when the policy asks) on a writer thread, so the
 * event loop never blocks on disk; each append's callback runs on the loop
 * thread, in append order, once its bytes are written (and synced per
 * policy). A failed write fails every append of that group with -errno; the
 * journal then truncates back to the last good record and accepts appends
 * again, so it recovers when space returns.
 *
 * Replay reads the segments in order. A torn or corrupt *tail* (a bad record
 * followed by nothing valid) is truncated to the last good record and
 * reported; corruption in the middle fails replay unless `salvage` is set.
 *
 * Segments are numbered from 1, consecutively: a new one is created only
 * after the previous one is durable and non-empty, so only the newest can
 * be empty. Replay checks exactly that for the segments it reads (those
 * above after_segment): the first is after_segment + 1, none is skipped,
 * none but the last is empty. A missing or emptied segment held
 * acknowledged batches, and replaying past it would also hide the loss from
 * the clients (their last_seq comes from later segments): replay fails
 * naming the file, unless `salvage` is set.
 */
#ifndef SLOTD_JOURNAL_H
#define SLOTD_JOURNAL_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef enum journal_fsync {
    JOURNAL_FSYNC_ALWAYS,   /* fsync before every ack: survives power loss */
    JOURNAL_FSYNC_INTERVAL, /* write before ack, fsync every interval_ms */
    JOURNAL_FSYNC_NEVER,    /* write before ack; the OS syncs when it likes (slotd
                             * starts writing the data out every 10 ms, but never
                             * syncs: no promise) */
} journal_fsync;

/* The largest message journal_append takes. The server's --max-message is
 * capped at it, so an accepted message can always be journaled; replay's
 * record length check is derived from it. */
#define JOURNAL_MAX_MSG ((size_t)64 << 20)

typedef struct journal_config {
    const char *dir;
    journal_fsync fsync;
    uint32_t interval_ms;   /* default 10 */
    uint64_t segment_bytes; /* rotate after this many bytes; default 256 MiB */
    int salvage;            /* replay: skip mid-journal corruption, and replay past
                             * missing or emptied segments, instead of failing */
    uint64_t after_segment; /* replay only segments numbered above this (a checkpoint
                             * holds the rest); new segments are numbered above it */
} journal_config;

typedef struct journal journal; /* opaque */

typedef struct journal_replay_stats {
    uint64_t records, bytes, segments;
    uint64_t total_bytes;      /* size of the segments to replay, set before the first record */
    uint64_t truncated_bytes;  /* torn tail dropped */
    uint64_t skipped_records;  /* salvage only */
    uint64_t missing_segments; /* salvage only: missing or emptied segments replayed past */
    char detail[256];          /* human text of what was truncated/skipped, if any */
} journal_replay_stats;

/* Called for each record in order during replay; return non-zero to abort
 * (journal_open then fails with that value if negative, else -ECANCELED).
 * client and msg point into the mapped segment: valid only during the call. */
typedef int (*journal_replay_fn)(void *ctx, const char *client, size_t clen, uint64_t seq,
                                 const uint8_t *msg, size_t len);
/* Called on the loop thread when an append is durable per policy (status 0)
 * or failed (-errno). */
typedef void (*journal_done_fn)(void *ctx, int status);
/* A rotate barrier's callback: status 0 and the segment number N such that
 * every record appended before the barrier is in a segment <= N and every
 * record appended after it is in a segment > N; or -errno (the group before
 * it failed, or the new segment could not be created). */
typedef void (*journal_barrier_fn)(void *ctx, int status, uint64_t segment);

/* Open (creating dir if needed) and replay the existing segments through fn
 * before returning; new appends go to a fresh segment. 0 or -errno:
 * -EBADMSG for mid-journal corruption, -ENODATA for a missing or emptied
 * segment (st->detail names the file), or what fn returned. With
 * fn == NULL only the last non-empty segment is read (its torn tail cut),
 * which is all appending needs: the pattern is journal_replay, then
 * journal_open(fn = NULL), without reading the journal twice. */
int journal_open(journal **out, uv_loop_t *loop, const journal_config *cfg,
                 journal_replay_fn fn, void *ctx, journal_replay_stats *st);
/* Replay without opening for appends: safe on any thread (touches no loop),
 * so the server can replay on a worker while its loop answers /readyz.
 * Same checks, truncation and errors as journal_open's replay.
 * Takes the directory lock for its duration (-EBUSY while a journal is
 * open on it). */
int journal_replay(const journal_config *cfg, journal_replay_fn fn, void *ctx,
                   journal_replay_stats *st);
/* Loop thread only. 0: done (may be NULL) will run exactly once, on the loop
 * thread; -errno (-EINVAL clen > 255, -EMSGSIZE len > JOURNAL_MAX_MSG, -ESHUTDOWN
 * after journal_close, -ENOMEM): it never runs. The bytes are copied.
 * If a group fails, the group being filled behind it fails with the same
 * status (a client must never see batch N fail and a later N+k kept). */
int journal_append(journal *j, const char *client, size_t clen, uint64_t seq, const void *msg,
                   size_t len, journal_done_fn done, void *ctx);
/* Loop thread only. Cut the journal: the group being filled is sealed,
 * appends made after this call start a new group, and after writing the
 * sealed group the writer moves to a new segment (unless the current one is
 * still empty). fn runs once, on the loop thread, after the callback of
 * every record appended before the call, and before any appended after it:
 * at that moment whatever those callbacks did (e.g. commit to the store)
 * reflects exactly the records in segments <= N. A checkpoint taken then
 * covers segments <= N, which may be removed once it is durable.
 * 0, or -ESHUTDOWN / -EINVAL / -ENOMEM (fn will not run). */
int journal_rotate_barrier(journal *j, journal_barrier_fn fn, void *ctx);
/* Bytes appended whose callbacks have not run yet (queued, being written or
 * synced): the server stops reading clients while this is above its
 * high-water mark. */
size_t journal_pending(const journal *j);
/* Write and sync everything pending, run the callbacks, stop the thread.
 * Loop thread only; may be called from inside a journal_done_fn (appends
 * made by callbacks it runs get -ESHUTDOWN). Synchronous for the data:
 * on return every callback has run, the files are closed and the directory
 * can be reopened. j must not be used again. Its libuv handles close
 * asynchronously and its memory is freed by their close callbacks, so the
 * caller must run the loop afterwards (e.g. uv_run(loop, UV_RUN_DEFAULT))
 * before uv_loop_close(). The journal holds a loop reference only while
 * callbacks are owed, so an idle journal never keeps uv_run from returning. */
void journal_close(journal *j);

/* ---- segment files (journal_seg.c): no journal handle, any thread ---- */

/* "journal-<16 hex digits>.log" */
void journal_segment_name(char *buf, size_t n, uint64_t no);
/* Segment numbers present in dir, ascending, in a malloc'ed array. 0 or -errno. */
int journal_segments(const char *dir, uint64_t **segs, size_t *n);
/* Remove segments numbered <= through (oldest first), then fsync the
 * directory. The caller guarantees none of them is still being written
 * (a barrier's N is below the segment appends go to). 0 or -errno. */
int journal_remove_through(const char *dir, uint64_t through, uint64_t *removed);

typedef struct journal_stats {
    uint64_t records, bytes, groups, fsyncs, errors, segments;
    int64_t last_error; /* -errno of the last failure, 0 if none */
} journal_stats;
void journal_get_stats(const journal *j, journal_stats *st);

#endif
