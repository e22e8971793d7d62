/* journal_sync — internal to the journal: what the writer thread must not
 * wait for.
 *
 * The sync thread. Under the interval policy the writer only writes and
 * completes groups (an ACK means "written"); this thread runs fdatasync on
 * the current segment at most interval after the first write it has not
 * yet covered, so a group never waits behind a sync. Where there is no
 * such sync every 10 ms (never, a long interval) it writes the new data
 * pages out every 10 ms with sync_file_range instead (not a sync: no
 * metadata, no cache flush), so the sync the writer itself must do when it
 * rotates (and at close) finds little left to write: an unsynced 256 MiB
 * segment took the writer 100+ ms. After each sync or write-out it drops
 * those pages from the page cache (POSIX_FADV_DONTNEED; whole pages below
 * the write offset only, the page being appended to stays): appends then
 * reuse a few recycled pages instead of growing the cache by the write
 * rate, which measured as the largest single gain in tail latency; replay
 * maps the files afresh anyway. It also retires segments the writer has
 * rotated away from: gives back their unused preallocation, drops their
 * pages and closes them.
 *
 * File descriptors. The writer owns the current segment's fd and keeps it
 * open while the thread may use it: on rotation it syncs the old segment
 * itself (a newer segment may only exist once the older one is durable),
 * then hands the old fd over with journal_sync_switch; only the sync thread
 * closes it, after any fdatasync of it that is still running, so an fd
 * number is never reused under a sync. journal_sync_stop joins the thread
 * before the writer's final sync and before journal_close closes the fd.
 *
 * Preallocation. A segment's blocks are reserved with
 * fallocate(FALLOC_FL_KEEP_SIZE) when its first group is written (while
 * nothing of it is being written back): with delayed allocation every
 * append reserves blocks under the inode's i_data_sem, which writeback
 * holds while it allocates, so appends stalled behind concurrent syncs;
 * appends into reserved blocks are also ~40% cheaper. KEEP_SIZE leaves
 * st_size alone: replay and the empty-segment checks see exactly the bytes
 * written. The unused tail is given back (ftruncate to the written size)
 * on rotation, at close, after a failed write, and at open for the segment
 * a crash left.
 */
#ifndef SLOTD_JOURNAL_SYNC_H
#define SLOTD_JOURNAL_SYNC_H

#include <stdint.h>

#define JOURNAL_PREALLOC_MAX ((uint64_t)1 << 30)    /* reserved when a segment starts */
#define JOURNAL_PREALLOC_CHUNK ((uint64_t)16 << 20) /* then, past that, in steps of this */

/* Writer-thread state for preallocation. */
typedef struct journal_prealloc {
    uint64_t end; /* blocks reserved below this offset of the current segment */
    int off;      /* the filesystem cannot (EOPNOTSUPP): stop trying */
    int failed;   /* it could not (ENOSPC...): not again in this segment */
} journal_prealloc;

/* Make sure [0, need) of fd is allocated, reserving up to the next chunk
 * boundary (but not past limit, the segment size, unless need is). Errors
 * are ignored: preallocation only saves time, and a real lack of space
 * shows up in the write that follows. */
void journal_prealloc_ensure(journal_prealloc *p, int fd, uint64_t need, uint64_t limit);
/* The segment was cut to size (ftruncate frees the unused reservation). */
void journal_prealloc_reset(journal_prealloc *p, uint64_t size);
/* Release fd's reservation beyond size (a finished segment). */
void journal_prealloc_release(journal_prealloc *p, int fd, uint64_t size);
/* Release what a crash left reserved past the end of segment no (size
 * bytes long) in dirfd. At open, before appends move to a new segment. */
void journal_prealloc_trim(int dirfd, uint64_t no, uint64_t size);

/* After every fdatasync the thread runs: 0 or -errno (stats only: acked
 * data cannot be un-acked). Runs on the sync thread. */
typedef void (*journal_sync_report_fn)(void *ctx, int err);

typedef struct journal_sync journal_sync;

#define JOURNAL_SYNC_WRITEBACK_NS ((uint64_t)10 * 1000000u)

/* Start the thread for segment fd. sync_ns: fdatasync at most this long
 * after a write (the interval policy); 0 for none (always: the writer
 * syncs each group; never). Where syncs are further apart than
 * JOURNAL_SYNC_WRITEBACK_NS, or there are none, the thread writes the data
 * pages out that often with sync_file_range — no metadata and no cache
 * flush, so it promises nothing, but it keeps the writer's own syncs
 * (rotation, close) short — and drops them from the page cache (under
 * always they are clean already and only dropped). 0 or -errno. */
int journal_sync_start(journal_sync **out, int fd, uint64_t sync_ns,
                       journal_sync_report_fn report, void *ctx);
/* Writer: bytes [0, end) of the current segment are written; the first
 * such call after a sync (or write-out) starts its period. */
void journal_sync_wrote(journal_sync *s, uint64_t end);
/* Writer, after rotating: old_fd (already synced by the writer, size bytes
 * long, blocks reserved up to prealloc_end) is the sync thread's to close;
 * from now on syncs go to new_fd. Waits only if the previous old fd has
 * not been retired yet. */
void journal_sync_switch(journal_sync *s, int new_fd, int old_fd, uint64_t size,
                         uint64_t prealloc_end);
/* Retire what was handed over and join the thread. The caller syncs what
 * is still unsynced (the writer's final sync). NULL is fine. */
void journal_sync_stop(journal_sync *s);

/* Tests only: called on the sync thread with the fd just before each
 * periodic fdatasync (e.g. to hold a sync open across a rotation). */
extern void (*journal_sync_test_hook)(int fd);

#endif
