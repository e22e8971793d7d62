/* journal_writer — the writer thread: one write() (and fsync per policy)
 * per group, rotation to new segments, the interval policy when the sync
 * thread is missing. See journal_internal.h for the split, journal.h for
 * the contract.
 *
 * The writer owns the segment fd, its size and the dirty/sync state; it
 * meets the loop only under j->mu: it pops sealed groups from j->q, pushes
 * finished ones onto j->done and pokes the loop with uv_async_send.
 *
 * Segments are numbered from 1 and never reused, so a checkpoint records
 * "state as of the end of segment N", replay starts at N+1
 * (journal_config.after_segment) and the segments <= N can be deleted
 * (journal_seg.c). After writing a barrier group the writer moves to a new
 * segment (journal_rotate_barrier, journal.c), and a newer segment is only
 * created once the older one is durable.
 */
#define _GNU_SOURCE
#include "journal_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"

/* Writer-side counters, published under mu for journal_get_stats. */
static void journal__count(journal *j, uint64_t *field, int err)
{
    pthread_mutex_lock(&j->mu);
    if (field)
        (*field)++;
    if (err)
        j->stats.errors++, j->stats.last_error = err;
    pthread_mutex_unlock(&j->mu);
}

/* Create segment `no` and make its directory entry durable. */
int journal__create_seg(journal *j, uint64_t no)
{
    char name[64];
    int fd, rc = 0;

    journal_segment_name(name, sizeof(name), no);
    /* O_EXCL: a segment number is never reused, so an existing file means
     * something else is writing here. */
    fd = openat(j->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    if (fsync(j->dirfd) < 0) {
        rc = -errno;
        close(fd);
        unlinkat(j->dirfd, name, 0); /* so a retry can create it */
        return rc;
    }
    return fd;
}

static int journal__sync(journal *j)
{
    int err = fdatasync(j->fd) < 0 ? -errno : 0;

    journal__count(j, err ? NULL : &j->stats.fsyncs, err);
    j->dirty = 0; /* even on failure: the kernel has dropped those pages' error state */
    return err;
}

/* The sync thread's fdatasyncs, counted like the writer's own. */
static void journal__sync_report(void *ctx, int err)
{
    journal *j = ctx;
    journal__count(j, err ? NULL : &j->stats.fsyncs, err);
}

static int journal__rotate(journal *j)
{
    int fd;

    /* The old segment must be durable before a newer one can exist: replay
     * reads "bad record, then valid records in a later segment" as
     * mid-journal corruption rather than a torn tail. */
    if (j->dirty) {
        if (fdatasync(j->fd) < 0)
            return -errno; /* counted by the caller as this group's error */
        j->dirty = 0;
        journal__count(j, &j->stats.fsyncs, 0);
    }
    fd = journal__create_seg(j, j->seg_no + 1);
    if (fd < 0)
        return fd; /* stay on the old segment; the next group retries */
    if (j->sync) { /* it may be syncing the old fd right now: it closes it */
        journal_sync_switch(j->sync, fd, j->fd, j->seg_size, j->prealloc.end);
    } else {
        journal_prealloc_release(&j->prealloc, j->fd, j->seg_size);
        close(j->fd);
    }
    journal_prealloc_reset(&j->prealloc, 0);
    j->fd = fd;
    j->seg_no++;
    j->seg_size = 0;
    j->need_truncate = 0;
    journal__count(j, &j->stats.segments, 0);
    return 0;
}

/* One write (plus rotation and sync per policy) for a whole group. On
 * failure the segment is cut back to its size before the group, so it
 * never holds a partial record; the next group retries from there. */
static int journal__write_group(journal *j, journal__group *g)
{
    size_t done = 0;
    int err = 0;

    /* Checksums here rather than in journal_append: keeps the CPU work off
     * the event loop. */
    for (size_t off = 0; off < g->len;) {
        uint32_t blen = journal__get32(g->buf + off);
        journal__put32(g->buf + off + 4, crc32c(0, g->buf + off + JOURNAL__HDR, blen));
        off += JOURNAL__HDR + blen;
    }
    if (j->need_truncate) {
        if (ftruncate(j->fd, (off_t)j->seg_size) < 0)
            return -errno;
        j->need_truncate = 0;
        journal_prealloc_reset(&j->prealloc, j->seg_size);
    }
    if (j->seg_size > 0 && j->seg_size + g->len > j->segment_bytes) {
        err = journal__rotate(j);
        if (err)
            return err;
    }
    journal_prealloc_ensure(&j->prealloc, j->fd, j->seg_size + g->len, j->segment_bytes);
    /* pwrite at our own offset: after a cut-back the file position would
     * otherwise leave a hole. Loop for short writes (RLIMIT_FSIZE, signals). */
    while (done < g->len) {
        ssize_t w = pwrite(j->fd, g->buf + done, g->len - done, (off_t)(j->seg_size + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            err = w < 0 ? -errno : -EIO;
            break;
        }
        done += (size_t)w;
    }
    if (!err && j->policy == JOURNAL_FSYNC_ALWAYS && fdatasync(j->fd) < 0)
        err = -errno;
    else if (!err && j->policy == JOURNAL_FSYNC_ALWAYS)
        journal__count(j, &j->stats.fsyncs, 0);
    if (err) {
        /* Also after a failed fsync: the client is told the batch failed and
         * will resend it, so the journal must not keep it. */
        if (ftruncate(j->fd, (off_t)j->seg_size) < 0)
            j->need_truncate = 1;
        else
            journal_prealloc_reset(&j->prealloc, j->seg_size);
        return err;
    }
    j->seg_size += g->len;
    if (j->policy != JOURNAL_FSYNC_ALWAYS && !j->dirty && g->len) {
        j->dirty = 1;
        j->sync_deadline = journal__now_ns() + j->interval_ns;
    }
    if (j->sync && g->len) /* starts the sync thread's clocks */
        journal_sync_wrote(j->sync, j->seg_size);
    if (g->barrier) {
        /* An empty segment needs no rotation: it already is "after N". A
         * failed rotation fails only the barrier; the records are written. */
        g->barrier_seg = j->seg_size ? j->seg_no : j->seg_no - 1;
        g->barrier_status = j->seg_size ? journal__rotate(j) : 0;
    }
    return 0;
}

void *journal__writer_main(void *arg)
{
    journal *j = arg;
    int chain_err = 0;

    /* The interval policy's syncs run there, so groups never wait behind
     * one. Failing to start it costs only that: the writer syncs inline. */
    journal_sync_start(&j->sync, j->fd,
                       j->policy == JOURNAL_FSYNC_INTERVAL ? j->interval_ns : 0,
                       journal__sync_report, j);
    pthread_mutex_lock(&j->mu);
    for (;;) {
        journal__group *g;

        /* Checked before taking work so a steady stream of groups cannot
         * postpone the interval sync indefinitely. */
        if (j->policy == JOURNAL_FSYNC_INTERVAL && !j->sync && j->dirty &&
            journal__now_ns() >= j->sync_deadline) {
            pthread_mutex_unlock(&j->mu);
            journal__sync(j); /* failure counted; acked data can't be un-acked */
            pthread_mutex_lock(&j->mu);
            continue;
        }
        if ((g = journal__fifo_pop(&j->q, &j->q_tail))) {
            int err;
            pthread_mutex_unlock(&j->mu);
            /* A group queued behind a failed one (only journal_close queues
             * a second) fails with it, as in journal__fail_current. */
            err = chain_err ? chain_err : journal__write_group(j, g);
            pthread_mutex_lock(&j->mu);
            chain_err = err && j->q ? err : 0;
            j->stats.groups++;
            if (err) {
                j->stats.errors++;
                j->stats.last_error = err;
            } else {
                j->stats.records += g->ncb;
                j->stats.bytes += g->len;
            }
            g->status = err;
            journal__fifo_push(&j->done, &j->done_tail, g);
            pthread_mutex_unlock(&j->mu);
            uv_async_send(&j->async);
            pthread_mutex_lock(&j->mu);
            continue;
        }
        if (j->stop)
            break;
        if (j->policy == JOURNAL_FSYNC_INTERVAL && !j->sync && j->dirty) {
            struct timespec ts = {.tv_sec = (time_t)(j->sync_deadline / 1000000000u),
                                  .tv_nsec = (long)(j->sync_deadline % 1000000000u)};
            pthread_cond_timedwait(&j->cv, &j->mu, &ts);
        } else {
            pthread_cond_wait(&j->cv, &j->mu);
        }
    }
    pthread_mutex_unlock(&j->mu);
    /* Close promises everything written is on disk, whatever the policy.
     * j->dirty is cleared only by the writer's own syncs, so it covers
     * whatever the sync thread (stopped first) may not have synced. */
    journal_sync_stop(j->sync);
    j->sync = NULL;
    if (j->dirty)
        journal__sync(j);
    journal_prealloc_release(&j->prealloc, j->fd, j->seg_size);
    return NULL;
}
