/* journal_internal — what journal.c, journal_writer.c and journal_replay.c
 * share. Not for use outside the journal (journal.h is its interface).
 *
 * Files and their one job each (no cycles: journal.c calls into the other
 * two, they never call back):
 *   journal.c         loop side: append, groups, barriers, callbacks,
 *                     open/close
 *   journal_writer.c  the writer thread: checksums, write, fsync, rotation
 *   journal_replay.c  reading segments: record parsing, torn tails, gap
 *                     checks, the directory lock (no journal handle: its own
 *                     context, journal__rctx)
 *   journal_seg.c     segment names, listing, removal (journal.h)
 *   journal_sync.c    the writer's helper thread (journal_sync.h)
 *
 * Ownership of struct journal's fields by thread is marked below; the
 * loop-thread-only entry points assert it (JOURNAL__ASSERT_LOOP).
 */
#ifndef SLOTD_JOURNAL_INTERNAL_H
#define SLOTD_JOURNAL_INTERNAL_H

#include <assert.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "journal.h"
#include "journal_sync.h"

#define JOURNAL__HDR 8u /* len u32 + crc u32 */
#define JOURNAL__TYPE_BATCH 1
#define JOURNAL__MIN_BODY 10u /* type + clen + seq, empty client and msg */
/* Derived from JOURNAL_MAX_MSG, so every record journal_append can write
 * passes replay's length check. */
#define JOURNAL__MAX_BODY (JOURNAL__MIN_BODY + 255u + JOURNAL_MAX_MSG)
_Static_assert(JOURNAL__MAX_BODY <= UINT32_MAX, "a record length must fit its u32 header");
#define JOURNAL__SPARE_MAX (8u << 20) /* don't keep a burst-sized buffer around */
#define JOURNAL__EARLY (16u << 10)    /* hand a group over mid-iteration at this size */

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
    pthread_t loop_thread; /* the thread that opened it: see JOURNAL__ASSERT_LOOP */
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

static inline uint64_t journal__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Loop-thread-only entry points check their caller (debug builds). */
#define JOURNAL__ASSERT_LOOP(j) assert(pthread_equal(pthread_self(), (j)->loop_thread))

/* Append g to a singly linked FIFO. */
static inline void journal__fifo_push(journal__group **head, journal__group **tail,
                                      journal__group *g)
{
    g->next = NULL;
    if (*tail)
        (*tail)->next = g;
    else
        *head = g;
    *tail = g;
}

static inline journal__group *journal__fifo_pop(journal__group **head, journal__group **tail)
{
    journal__group *g = *head;
    if (g && !(*head = g->next))
        *tail = NULL;
    return g;
}

/* ---- journal_writer.c ---- */

/* The writer thread's body; arg is the journal. */
void *journal__writer_main(void *arg);
/* Create segment `no` in j->dirfd and make its directory entry durable:
 * the fd, or -errno. Writer thread, or journal_open before it starts. */
int journal__create_seg(journal *j, uint64_t no);

/* ---- journal_replay.c ---- */

/* Replay's own context: the directory and how to read it. No journal
 * handle, so journal_replay never builds a partial one. */
typedef struct journal__rctx {
    const char *dir;          /* borrowed */
    int dirfd;                /* open and locked (journal__lock_dir) */
    int salvage;              /* journal_config.salvage */
    int tail_only;            /* read from the last non-empty segment only */
    uint64_t after;           /* journal_config.after_segment */
    journal_replay_fn fn;     /* may be NULL */
    void *ctx;
    journal_replay_stats *st; /* zeroed by the caller */
} journal__rctx;

/* What journal_open needs to know to start appending. */
typedef struct journal__end {
    uint64_t last;      /* highest segment number, 0 if none */
    uint64_t last_size; /* its size after any truncation */
    uint64_t files;     /* segment files present */
} journal__end;

/* Replay the segments through r->fn (see journal.h for the checks, the
 * truncation and the errors). The records before a mid-journal error have
 * already been passed to fn: the caller must throw away what it built when
 * this fails. 0 or -errno. */
int journal__replay(const journal__rctx *r, journal__end *end);
/* Create dir (and its parents) if needed, open it and take its exclusive
 * lock: the fd, or -errno (-EBUSY while another journal holds it, noted in
 * st->detail). Closing the fd drops the lock. */
int journal__lock_dir(const char *dir, journal_replay_stats *st);

#endif
