/* journal_sync — see journal_sync.h. */
#define _GNU_SOURCE
#include "journal_sync.h"
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define JOURNAL_SYNC__PAGE ((uint64_t)4096)

void (*journal_sync_test_hook)(int fd);

/* ---- preallocation (writer thread) ---- */

void journal_prealloc_ensure(journal_prealloc *p, int fd, uint64_t need, uint64_t limit)
{
    uint64_t end;

    if (p->off || p->failed || need <= p->end)
        return;
    if (p->end == 0) {
        /* A fresh segment: reserve all of it now, while nothing is being
         * written back (later, fallocate waits for the inode's i_data_sem
         * behind writeback and unwritten-extent conversion). */
        end = limit < JOURNAL_PREALLOC_MAX ? limit : JOURNAL_PREALLOC_MAX;
    } else {
        end = (need + JOURNAL_PREALLOC_CHUNK - 1) / JOURNAL_PREALLOC_CHUNK * JOURNAL_PREALLOC_CHUNK;
        if (end > limit && need <= limit)
            end = limit;
    }
    if (end < need)
        end = need;
    if (fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)p->end, (off_t)(end - p->end)) == 0)
        p->end = end;
    else if (errno == EOPNOTSUPP || errno == ENOSYS)
        p->off = 1;
    else /* ENOSPC, EDQUOT...: write without, and don't retry before the next segment */
        p->failed = 1;
}

void journal_prealloc_reset(journal_prealloc *p, uint64_t size)
{
    p->end = size;
    if (size == 0)
        p->failed = 0;
}

void journal_prealloc_release(journal_prealloc *p, int fd, uint64_t size)
{
    if (p->end > size && fd >= 0)
        (void)!ftruncate(fd, (off_t)size); /* same size: frees blocks past EOF */
    p->end = size;
}

void journal_prealloc_trim(int dirfd, uint64_t no, uint64_t size)
{
    char name[64];
    struct stat sb;
    int fd;

    journal_segment_name(name, sizeof(name), no);
    if ((fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC)) < 0)
        return;
    /* Blocks past the end beyond what extent-tree blocks could explain. */
    if (fstat(fd, &sb) == 0 && (uint64_t)sb.st_blocks * 512 > size + ((uint64_t)1 << 20))
        (void)!ftruncate(fd, (off_t)size);
    close(fd);
}

/* ---- the sync thread ---- */

struct journal_sync {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    pthread_t thread;
    uint64_t sync_ns, kick_ns; /* periods; 0: not at all */
    journal_sync_report_fn report;
    void *ctx;

    /* under mu */
    int fd;                   /* current segment: the writer's */
    uint64_t gen;             /* bumped by every switch */
    int sync_due, kick_due;   /* written since the last sync / kick started */
    uint64_t sync_at, kick_at; /* ... so one is due then */
    uint64_t written;         /* end of the written bytes of fd */
    uint64_t dropped;         /* fd's pages below this are clean and dropped */
    int retire_fd;            /* handed over by a switch, -1 if none */
    uint64_t retire_size, retire_prealloc;
    int stop;
};

static uint64_t journal_sync__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A finished segment: cut the unused reservation, drop its pages, close. */
static void journal_sync__retire(int fd, uint64_t size, uint64_t prealloc_end)
{
    journal_prealloc p = {.end = prealloc_end};
    journal_prealloc_release(&p, fd, size);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

/* One sync (fdatasync, reported) or kick (write the data pages out and
 * wait for them: no metadata, no cache flush, so no durability is implied),
 * then drop the pages it made clean. Called and returns with mu held. */
static void journal_sync__run(journal_sync *s, int sync)
{
    /* Cleared before it starts: a write that completes meanwhile may not be
     * covered, so it starts a new period. A sync covers a kick. */
    int fd = s->fd, err;
    uint64_t gen = s->gen, from = s->dropped, end = s->written & ~(JOURNAL_SYNC__PAGE - 1);

    s->kick_due = 0;
    if (sync)
        s->sync_due = 0;
    else if (end <= from)
        return; /* less than a page since the last one: nothing to drop */
    pthread_mutex_unlock(&s->mu);
    if (sync) {
        if (journal_sync_test_hook)
            journal_sync_test_hook(fd);
        err = fdatasync(fd) < 0 ? -errno : 0;
        s->report(s->ctx, err);
    } else {
        err = sync_file_range(fd, (off_t)from, (off_t)(end - from),
                              SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                  SYNC_FILE_RANGE_WAIT_AFTER) < 0
                  ? -errno
                  : 0;
    }
    pthread_mutex_lock(&s->mu);
    /* fd is still open: only this thread closes what the writer hands
     * over. After a switch the offsets belong to the new fd (the old one's
     * pages go when it is retired). Whole pages below the write offset
     * only: dropping the one being appended to would make the next write
     * read it back from disk. */
    if (err || gen != s->gen || end <= s->dropped)
        return;
    from = s->dropped;
    s->dropped = end;
    pthread_mutex_unlock(&s->mu);
    posix_fadvise(fd, (off_t)from, (off_t)(end - from), POSIX_FADV_DONTNEED);
    pthread_mutex_lock(&s->mu);
}

static void *journal_sync__main(void *arg)
{
    journal_sync *s = arg;

    pthread_mutex_lock(&s->mu);
    for (;;) {
        uint64_t now = journal_sync__now(), wake = 0;

        if (s->retire_fd >= 0) {
            int fd = s->retire_fd;
            uint64_t size = s->retire_size, pre = s->retire_prealloc;
            pthread_mutex_unlock(&s->mu);
            journal_sync__retire(fd, size, pre);
            pthread_mutex_lock(&s->mu);
            s->retire_fd = -1;
            pthread_cond_broadcast(&s->cv); /* a switch may be waiting for the slot */
            continue;
        }
        if (s->sync_due && now >= s->sync_at) {
            journal_sync__run(s, 1);
            continue;
        }
        if (s->kick_due && now >= s->kick_at) {
            journal_sync__run(s, 0);
            continue;
        }
        if (s->stop)
            break;
        if (s->sync_due)
            wake = s->sync_at;
        if (s->kick_due && (!wake || s->kick_at < wake))
            wake = s->kick_at;
        if (wake) {
            struct timespec ts = {.tv_sec = (time_t)(wake / 1000000000u),
                                  .tv_nsec = (long)(wake % 1000000000u)};
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        } else {
            pthread_cond_wait(&s->cv, &s->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int journal_sync_start(journal_sync **out, int fd, uint64_t sync_ns,
                       journal_sync_report_fn report, void *ctx)
{
    journal_sync *s = calloc(1, sizeof(*s));
    pthread_condattr_t ca;
    int rc;

    *out = NULL;
    if (!s)
        return -ENOMEM;
    s->fd = fd;
    s->retire_fd = -1;
    s->sync_ns = sync_ns;
    /* Write-outs only where syncs are further apart: a sync writes the
     * data too. */
    if (!sync_ns || sync_ns > JOURNAL_SYNC_WRITEBACK_NS)
        s->kick_ns = JOURNAL_SYNC_WRITEBACK_NS;
    s->report = report;
    s->ctx = ctx;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    /* Started from the writer, whose signal mask (everything blocked) it
     * inherits. */
    if ((rc = pthread_create(&s->thread, NULL, journal_sync__main, s)) != 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return -rc;
    }
    *out = s;
    return 0;
}

void journal_sync_wrote(journal_sync *s, uint64_t end)
{
    uint64_t now;
    int wake = 0;

    now = journal_sync__now();
    pthread_mutex_lock(&s->mu);
    s->written = end;
    if (s->sync_ns && !s->sync_due) {
        s->sync_due = wake = 1;
        s->sync_at = now + s->sync_ns;
    }
    if (s->kick_ns && !s->kick_due) {
        s->kick_due = wake = 1;
        s->kick_at = now + s->kick_ns;
    }
    if (wake)
        pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void journal_sync_switch(journal_sync *s, int new_fd, int old_fd, uint64_t size,
                         uint64_t prealloc_end)
{
    pthread_mutex_lock(&s->mu);
    while (s->retire_fd >= 0) /* one rotation per sync period is already a lot */
        pthread_cond_wait(&s->cv, &s->mu);
    s->retire_fd = old_fd;
    s->retire_size = size;
    s->retire_prealloc = prealloc_end;
    s->fd = new_fd;
    s->gen++;
    s->sync_due = s->kick_due = 0; /* the writer synced the old segment; the new one is empty */
    s->written = s->dropped = 0;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void journal_sync_stop(journal_sync *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    s->sync_due = s->kick_due = 0; /* the writer's final sync covers it */
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
