/* journal — the loop side: append, groups, rotate barriers, callbacks,
 * open and close. See journal.h for the format and the contract, and
 * journal_internal.h for how the journal is split across files.
 *
 * Threads. The loop thread owns `cur` (the group being filled), the list of
 * completed groups whose callbacks still have to run, and `pending`. The
 * writer thread owns the segment fd and its size. They meet under `mu`: the
 * loop pushes sealed groups onto `q`, the writer pushes finished ones onto
 * `done` and pokes the loop with uv_async_send. The writer's helper, the
 * sync thread (journal_sync.c), runs the interval policy's fdatasync (so a
 * group never waits behind one), writes data out early where nothing else
 * does, drops written pages from the page cache and closes rotated-away
 * segments.
 *
 * Group commit. At most one group is in flight: the loop seals `cur` at the
 * end of an iteration (check handle; also prepare, for appends made after
 * the check ran) only when the writer is idle. While the writer is busy
 * writing or syncing, every append lands in the same `cur`, so the next
 * write() and fsync cover all of them — batches grow exactly as much as the
 * disk is slow, and no timer adds latency when it is fast. Within a long
 * iteration (a closed-loop client's whole window can arrive in one) `cur`
 * is also handed over once it holds JOURNAL__EARLY bytes and the writer is
 * free, so the writer works while the loop decodes the rest instead of
 * after it.
 *
 * Barriers. journal_rotate_barrier seals the group being filled with the
 * barrier as its last callback; sealed groups go to the writer ahead of
 * cur (still one group in flight, so a failure fails everything behind it
 * as before), and the writer moves to a new segment right after writing a
 * barrier group (journal_writer.c).
 */
#define _GNU_SOURCE
#include "journal_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- Loop side ---- */

static void journal__free_group(journal__group *g)
{
    if (g) {
        free(g->buf);
        free(g->cbs);
        free(g);
    }
}

/* The journal keeps the loop alive only while it owes callbacks. */
static void journal__update_ref(journal *j)
{
    int want = (j->cur && j->cur->ncb) || j->inflight || j->ready || j->sealed;

    if (want && !j->reffed)
        uv_ref((uv_handle_t *)&j->async);
    else if (!want && j->reffed)
        uv_unref((uv_handle_t *)&j->async);
    j->reffed = want;
}

static void journal__push(journal *j, journal__group *g)
{
    j->inflight++;
    pthread_mutex_lock(&j->mu);
    journal__fifo_push(&j->q, &j->q_tail, g);
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

/* Move finished groups from the writer to the ready list. */
static void journal__collect(journal *j)
{
    journal__group *g;

    pthread_mutex_lock(&j->mu);
    while ((g = journal__fifo_pop(&j->done, &j->done_tail))) {
        j->inflight--;
        j->pending -= g->len;
        journal__fifo_push(&j->ready, &j->ready_tail, g);
    }
    pthread_mutex_unlock(&j->mu);
}

/* Run callbacks in append order. All state lives in j, so a callback may
 * append, or even call journal_close, without confusing this loop. */
static void journal__run_callbacks(journal *j)
{
    journal__group *g;

    while ((g = j->ready)) {
        if (g->ndone < g->ncb) {
            journal__cb cb = g->cbs[g->ndone++];
            if (cb.barrier)
                cb.barrier(cb.ctx, g->status ? g->status : g->barrier_status, g->barrier_seg);
            else if (cb.fn)
                cb.fn(cb.ctx, g->status);
            continue;
        }
        journal__fifo_pop(&j->ready, &j->ready_tail);
        if (!j->spare && !j->closing && g->cap <= JOURNAL__SPARE_MAX) {
            g->len = g->ncb = g->ndone = 0;
            g->status = g->barrier = g->barrier_status = 0;
            g->barrier_seg = 0;
            j->spare = g;
        } else {
            journal__free_group(g);
        }
    }
}

/* A failed group also fails the group still being filled: its records were
 * appended before the loop learned of the failure, and a client must never
 * see seq N fail while a later seq N+k it sent meanwhile is kept — its
 * resend of N would then look like a duplicate. Appends made after the
 * failed group's callbacks ran start a fresh group and are tried again.
 * Returns the failure (0: none waiting in ready). */
static int journal__fail_current(journal *j)
{
    int status = 0;
    journal__group *g;

    for (g = j->ready; g; g = g->next)
        if (g->status)
            status = g->status;
    if (!status)
        return 0;
    /* Sealed barrier groups were appended before cur: they go first. */
    while ((g = journal__fifo_pop(&j->sealed, &j->sealed_tail)) || ((g = j->cur) && g->ncb)) {
        if (g == j->cur)
            j->cur = NULL;
        g->status = status;
        j->pending -= g->len;
        journal__fifo_push(&j->ready, &j->ready_tail, g);
    }
    return status;
}

static void journal__on_async(uv_async_t *h)
{
    journal *j = h->data;

    JOURNAL__ASSERT_LOOP(j);
    journal__collect(j);
    journal__fail_current(j);
    journal__run_callbacks(j);
    if (!j->closing)
        journal__update_ref(j);
}

/* Hand the next group to the writer if it is idle; otherwise keep filling
 * it. A group the writer has finished but the loop has not collected yet
 * is collected here; its callbacks still run from journal__on_async. Until
 * a failed group's callbacks have run, nothing is handed over and cur
 * fails with it: the appends in it were made by callers that had not yet
 * been told of the failure (journal__fail_current). */
static void journal__tick(journal *j)
{
    JOURNAL__ASSERT_LOOP(j);
    if (j->closing)
        return;
    if (j->inflight)
        journal__collect(j);
    if (journal__fail_current(j) || j->inflight)
        return;
    if (j->sealed) { /* one group in flight still: barrier groups take turns */
        journal__push(j, journal__fifo_pop(&j->sealed, &j->sealed_tail));
        return;
    }
    if (!j->cur || !j->cur->ncb)
        return;
    journal__push(j, j->cur);
    j->cur = NULL;
}
static void journal__on_prepare(uv_prepare_t *h) { journal__tick(h->data); }
static void journal__on_check(uv_check_t *h) { journal__tick(h->data); }

/* The group being filled, started (from the spare if any) when there is none. */
static journal__group *journal__cur(journal *j)
{
    journal__group *g = j->cur;
    if (!g && (g = j->spare ? j->spare : calloc(1, sizeof(*g)))) {
        j->spare = NULL;
        j->cur = g;
    }
    return g;
}

static int journal__cb_room(journal__group *g)
{
    if (g->ncb == g->cbcap) {
        size_t cap = g->cbcap ? g->cbcap * 2 : 64;
        journal__cb *nc = realloc(g->cbs, cap * sizeof(*nc));
        if (!nc)
            return -ENOMEM;
        g->cbs = nc, g->cbcap = cap;
    }
    return 0;
}

int journal_rotate_barrier(journal *j, journal_barrier_fn fn, void *ctx)
{
    journal__group *g;

    if (!j || j->closing)
        return -ESHUTDOWN;
    JOURNAL__ASSERT_LOOP(j);
    if (!fn)
        return -EINVAL;
    if (!(g = journal__cur(j)) || journal__cb_room(g) < 0)
        return -ENOMEM;
    /* The barrier is the group's last callback, so it runs after every
     * record before it; the group is sealed, so nothing joins it after. */
    g->cbs[g->ncb++] = (journal__cb){.barrier = fn, .ctx = ctx};
    g->barrier = 1;
    j->cur = NULL;
    journal__fifo_push(&j->sealed, &j->sealed_tail, g);
    journal__update_ref(j);
    return 0;
}

int journal_append(journal *j, const char *client, size_t clen, uint64_t seq, const void *msg,
                   size_t len, journal_done_fn done, void *ctx)
{
    journal__group *g;
    size_t body = 2 + clen + 8 + len, need;
    uint8_t *p;

    if (!j || j->closing)
        return -ESHUTDOWN;
    JOURNAL__ASSERT_LOOP(j);
    if (clen > 255 || (clen && !client) || (len && !msg))
        return -EINVAL;
    if (len > JOURNAL_MAX_MSG)
        return -EMSGSIZE;
    if (!(g = journal__cur(j)))
        return -ENOMEM;
    need = g->len + JOURNAL__HDR + body;
    if (need > g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 64 * 1024;
        while (cap < need)
            cap *= 2;
        uint8_t *nb = realloc(g->buf, cap);
        if (!nb)
            return -ENOMEM;
        g->buf = nb, g->cap = cap;
    }
    if (journal__cb_room(g) < 0)
        return -ENOMEM;
    p = g->buf + g->len;
    journal__put32(p, (uint32_t)body);
    journal__put32(p + 4, 0); /* crc: the writer fills it in */
    p[8] = JOURNAL__TYPE_BATCH;
    p[9] = (uint8_t)clen;
    if (clen)
        memcpy(p + 10, client, clen);
    journal__put64(p + 10 + clen, seq);
    if (len)
        memcpy(p + 18 + clen, msg, len);
    /* Each JOURNAL__EARLY bytes appended, offer the group to the writer:
     * once per step, not per append, since a busy writer costs a lock. */
    int step = need / JOURNAL__EARLY != g->len / JOURNAL__EARLY;
    g->len = need;
    g->cbs[g->ncb++] = (journal__cb){.fn = done, .ctx = ctx};
    j->pending += JOURNAL__HDR + body;
    if (step)
        journal__tick(j);
    journal__update_ref(j);
    return 0;
}

size_t journal_pending(const journal *j)
{
    if (!j)
        return 0;
    JOURNAL__ASSERT_LOOP(j);
    return j->pending;
}

void journal_get_stats(const journal *j, journal_stats *st)
{
    /* The journal is never a const object; the const only promises the
     * caller that nothing observable changes. */
    journal *mj = (journal *)j;

    pthread_mutex_lock(&mj->mu);
    *st = j->stats;
    pthread_mutex_unlock(&mj->mu);
}

/* ---- Lifecycle ---- */

static void journal__destroy(journal *j)
{
    journal__free_group(j->cur);
    journal__free_group(j->spare);
    if (j->fd >= 0)
        close(j->fd);
    if (j->dirfd >= 0)
        close(j->dirfd); /* drops the flock */
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j->dir);
    free(j);
}

/* Let the writer drain its queue, sync and exit; wait for it. */
static void journal__stop_writer(journal *j)
{
    pthread_mutex_lock(&j->mu);
    j->stop = 1;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    pthread_join(j->thread, NULL);
}

static void journal__on_close(uv_handle_t *h)
{
    journal *j = h->data;
    if (--j->open_handles == 0)
        journal__destroy(j);
}

int journal_open(journal **out, uv_loop_t *loop, const journal_config *cfg, journal_replay_fn fn,
                 void *ctx, journal_replay_stats *st)
{
    journal_replay_stats local;
    journal *j = NULL;
    pthread_condattr_t ca;
    sigset_t all, old;
    journal__end end;
    int rc = 0, thread_started = 0;

    if (!st)
        st = &local;
    memset(st, 0, sizeof(*st));
    *out = NULL;
    if (!loop || !cfg || !cfg->dir || !*cfg->dir)
        return -EINVAL;
    if (!(j = calloc(1, sizeof(*j))))
        return -ENOMEM;
    j->fd = j->dirfd = -1;
    j->loop = loop;
    j->loop_thread = pthread_self();
    j->policy = cfg->fsync;
    j->interval_ns = (uint64_t)(cfg->interval_ms ? cfg->interval_ms : 10) * 1000000u;
    j->segment_bytes = cfg->segment_bytes ? cfg->segment_bytes : (uint64_t)256 << 20;
    pthread_mutex_init(&j->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* matches journal__now_ns */
    pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (!(j->dir = strdup(cfg->dir))) {
        rc = -ENOMEM;
        goto cleanup;
    }
    if ((rc = j->dirfd = journal__lock_dir(j->dir, st)) < 0)
        goto cleanup;
    /* Without fn nothing consumes the records, so only the tail needs
     * checking; journal_replay has read (and verified) the rest. */
    journal__rctx r = {.dir = j->dir, .dirfd = j->dirfd, .salvage = cfg->salvage,
                       .tail_only = fn == NULL, .after = cfg->after_segment, .fn = fn,
                       .ctx = ctx, .st = st};
    if ((rc = journal__replay(&r, &end)) < 0)
        goto cleanup;
    j->stats.segments = end.files;
    if (end.last && end.last_size == 0) {
        /* An empty last segment (crash before its first write, or a tail
         * cut to nothing) is as good as a new one; reusing it keeps
         * restart loops from piling up empty files. */
        char name[64];
        journal_segment_name(name, sizeof(name), end.last);
        j->fd = openat(j->dirfd, name, O_WRONLY | O_CLOEXEC);
        j->seg_no = end.last;
        if (j->fd < 0) {
            rc = -errno;
            goto cleanup;
        }
    } else {
        /* end.last counts only segments above after_segment: with none,
         * numbering goes on above what the checkpoint covers, never reusing
         * a number replay would skip. */
        uint64_t no = (end.last ? end.last : cfg->after_segment) + 1;
        if (end.last) /* blocks a crash left reserved past its end */
            journal_prealloc_trim(j->dirfd, end.last, end.last_size);
        if ((j->fd = journal__create_seg(j, no)) < 0) {
            rc = j->fd;
            goto cleanup;
        }
        j->seg_no = no;
        j->stats.segments++;
    }

    /* The writer takes no signals: SIGXFSZ from a write past RLIMIT_FSIZE
     * is directed at the writing thread, and blocked it just stays pending
     * while write() returns EFBIG. Everything else belongs to the loop. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = -pthread_create(&j->thread, NULL, journal__writer_main, j);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc)
        goto cleanup;
    thread_started = 1;
    /* Initialised after the thread because it is the one step that needs
     * the loop to undo; nothing can fail after it. */
    if ((rc = uv_async_init(loop, &j->async, journal__on_async)) < 0)
        goto cleanup;
    uv_prepare_init(loop, &j->prepare);
    uv_check_init(loop, &j->check);
    j->async.data = j->prepare.data = j->check.data = j;
    uv_prepare_start(&j->prepare, journal__on_prepare);
    uv_check_start(&j->check, journal__on_check);
    uv_unref((uv_handle_t *)&j->async);
    uv_unref((uv_handle_t *)&j->prepare);
    uv_unref((uv_handle_t *)&j->check);
    j->open_handles = 3;
    *out = j;
    return 0;

cleanup:
    if (thread_started)
        journal__stop_writer(j);
    journal__destroy(j);
    return rc;
}

void journal_close(journal *j)
{
    journal__group *g;

    if (!j || j->closing)
        return;
    JOURNAL__ASSERT_LOOP(j);
    j->closing = 1;
    while ((g = journal__fifo_pop(&j->sealed, &j->sealed_tail)))
        journal__push(j, g);
    g = j->cur;
    j->cur = NULL;
    if (g && g->ncb)
        journal__push(j, g);
    else
        journal__free_group(g);
    journal__stop_writer(j);
    /* Release the files (and the directory lock) now, so the journal can be
     * reopened before the loop has run the close callbacks. */
    close(j->fd);
    close(j->dirfd);
    j->fd = j->dirfd = -1;
    /* The writer has finished everything; run the rest right here rather
     * than waiting for an async callback that will never come. */
    journal__collect(j);
    journal__run_callbacks(j);
    uv_close((uv_handle_t *)&j->async, journal__on_close);
    uv_close((uv_handle_t *)&j->prepare, journal__on_close);
    uv_close((uv_handle_t *)&j->check, journal__on_close);
}
