/* checkpoint — taking checkpoints: the state machine on the loop thread,
 * the child it forks, lifecycle and stats. See checkpoint.h for the design,
 * checkpoint_internal.h for how the checkpoint code is split.
 *
 * One checkpoint at a time. Its phase changes only through ckpt_set_phase,
 * which asserts that the change is an edge of this diagram; each step
 * asserts the phase it expects on entry.
 *
 *             tick: a trigger; or stopping with --checkpoint-on-exit
 *        +--------------------------------------------------+
 *        |                                                  v
 *      IDLE <--- barrier error, nothing new, stopping, --- BARRIER
 *      ^  ^      extra/pipe/fork or in-process write error  |     |
 *      |  |                                                  |     |
 *      |  |                       barrier callback: fork     |     | barrier callback
 *      |  |                                                  v     | while stopping:
 *      |  +---- child killed, bad report, error --------- CHILD    | written in process
 *      |                                                     |     |
 *      |                     pipe EOF, waitpid, report ok    v     v
 *      +----- removed: segments <= N, old snapshots, temps - REMOVING
 *             (uv worker thread; in process when stopping)
 */
#define _GNU_SOURCE
#include "checkpoint_internal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "journal.h"
#include "kafka.h"
#include "log.h"
#include "retention.h"

#define CKPT_TICK_MS 200
#define CKPT_NICE 10 /* the child's CPU priority, below the loop's */
/* ioprio_set(2): glibc has no wrapper and no header for these. */
#define IOPRIO_WHO_PROCESS 1
#define IOPRIO_CLASS_IDLE 3
#define IOPRIO_CLASS_SHIFT 13
#define CKPT_RETRY_NS (10ull * 1000000000u) /* after a failure */

/* ---- taking a checkpoint (loop thread) ------------------------------------ */

static void ckpt_stop_continue(checkpoint *ck);
static void ckpt_begin(checkpoint *ck, uint64_t pos);

static uint64_t ckpt_dropped_total(const server *srv)
{
    retention_stats rs;
    retention_get_stats(srv, &rs);
    return rs.dropped_trades;
}

static int srv_is_kafka(const checkpoint *ck) { return ck->srv->cfg.source == SERVER_SOURCE_KAFKA; }

/* Has retention changed the store since the newest snapshot? */
static int ckpt_dropped(const checkpoint *ck) { return ckpt_dropped_total(ck->srv) != ck->dropped_at; }

/* The only way ck->phase changes: the edges of the diagram above, no other. */
static void ckpt_set_phase(checkpoint *ck, ckpt_phase to)
{
    ckpt_phase from = ck->phase;
    assert((from == CKPT_IDLE && to == CKPT_BARRIER) ||
           (from == CKPT_BARRIER && to != CKPT_BARRIER) ||
           (from == CKPT_CHILD && (to == CKPT_IDLE || to == CKPT_REMOVING)) ||
           (from == CKPT_REMOVING && to == CKPT_IDLE));
    (void)from;
    ck->phase = to;
}

static void ckpt_fail(checkpoint *ck, const char *stage, int rc)
{
    assert(ck->phase == CKPT_BARRIER || ck->phase == CKPT_CHILD);
    ck->st.failures++;
    ckpt_set_phase(ck, CKPT_IDLE);
    ck->retry_at = uv_hrtime() + CKPT_RETRY_NS;
    log_warn("checkpoint_failed segment=%" PRIu64 " stage=%s err=\"%s\" retry_seconds=%llu",
             ck->seg, stage, server_strerror(rc), CKPT_RETRY_NS / 1000000000u);
    ckpt_stop_continue(ck);
}

/* Segments <= N, older snapshots, leftover temp files. Any thread. */
static void ckpt_remove(checkpoint *ck)
{
    const char *dir = ck->srv->cfg.data_dir;
    static const char *const exts[2] = {"snap", "tmp"};
    ck->removed = 0;
    ck->remove_rc = journal_remove_through(dir, ck->seg, &ck->removed);
    for (int e = 0; e < 2; e++) {
        uint64_t *v = NULL;
        size_t n = 0;
        if (ckpt_list(dir, exts[e], &v, &n) < 0)
            continue;
        for (size_t i = 0; i < n; i++) {
            char path[4096];
            if (v[i] >= ck->seg)
                continue;
            ckpt_path(path, sizeof path, dir, v[i], exts[e]);
            if (unlink(path) < 0 && errno != ENOENT && !ck->remove_rc)
                ck->remove_rc = -errno;
        }
        free(v);
    }
}

static void ckpt_remove_work(uv_work_t *w) { ckpt_remove(w->data); }

/* The snapshot of ck->seg is durable and what it covers removed. */
static void ckpt_done(checkpoint *ck)
{
    assert(ck->phase == CKPT_REMOVING);
    ck->st.total++;
    ck->st.segment = ck->seg;
    ck->st.last_seconds = (double)(uv_hrtime() - ck->t0) / 1e9;
    ck->st.last_bytes = ck->report.bytes;
    ck->st.last_trades = ck->report.trades;
    ck->st.segments_removed += ck->removed;
    ck->pos_at_last = ck->pos_pending;
    ck->rec_at_last = ck->rec_pending;
    ck->dropped_at = ck->dropped_pending;
    if (srv_is_kafka(ck))
        kafka_checkpoint_done(ck->srv); /* offsets to Kafka, for lag monitors */
    if (ck->remove_rc)
        log_warn("checkpoint_cleanup_failed segment=%" PRIu64 " err=\"%s\" (retried next time)",
                 ck->seg, server_strerror(ck->remove_rc));
    log_info("checkpoint_done file=%s segment=%" PRIu64 " trades=%" PRIu64 " bytes=%" PRIu64
             " seconds=%.3f segments_removed=%" PRIu64, ck->snap_path, ck->seg,
             ck->report.trades, ck->report.bytes, ck->st.last_seconds, ck->removed);
    ckpt_set_phase(ck, CKPT_IDLE);
    ckpt_stop_continue(ck);
}

static void ckpt_removed(uv_work_t *w, int status)
{
    (void)status;
    ckpt_done(w->data);
}

static void ckpt_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char scratch[256];
    (void)h, (void)hint;
    *buf = uv_buf_init(scratch, sizeof scratch);
}

static void ckpt_pipe_closed(uv_handle_t *h)
{
    checkpoint *ck = h->data;
    int status = 0;
    pid_t p;
    assert(ck->phase == CKPT_CHILD);
    /* EOF: the child has exited (it never closes the pipe otherwise), so
     * this wait is for a process already on its way out. */
    while ((p = waitpid(ck->child, &status, 0)) < 0 && errno == EINTR)
        ;
    ck->child = 0;
    if (p < 0)
        return ckpt_fail(ck, "waitpid", -errno);
    if (!WIFEXITED(status)) {
        log_warn("checkpoint_child_killed signal=%d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        return ckpt_fail(ck, "child", -EINTR);
    }
    if (ck->report_len != sizeof ck->report)
        return ckpt_fail(ck, "child", -EPIPE);
    if (ck->report.rc != 0 || WEXITSTATUS(status) != 0)
        return ckpt_fail(ck, ck->report.stage, ck->report.rc ? ck->report.rc : -EIO);
    ckpt_set_phase(ck, CKPT_REMOVING);
    ck->work.data = ck;
    int rc = uv_queue_work(ck->srv->loop, &ck->work, ckpt_remove_work, ckpt_removed);
    if (rc != 0) { /* cannot happen with a live loop; do it here then */
        ckpt_remove(ck);
        ckpt_done(ck);
    }
}

static void ckpt_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    checkpoint *ck = s->data;
    if (nread > 0) {
        size_t room = sizeof ck->report - ck->report_len, n = (size_t)nread;
        n = n < room ? n : room;
        memcpy((char *)&ck->report + ck->report_len, buf->base, n);
        ck->report_len += n;
        return;
    }
    if (nread < 0) {
        uv_read_stop(s);
        server_close((uv_handle_t *)s, ckpt_pipe_closed);
    }
}

/* The child: write the snapshot, report, exit. See checkpoint.h. */
__attribute__((noreturn)) static void ckpt_child(checkpoint *ck, int wfd, pid_t parent)
{
    struct sigaction dfl;
    sigset_t none;
    ckpt_report r;

    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    /* The parent's handlers (libuv's write to the parent's signal pipe)
     * must not run here: a SIGTERM for the child would look like one for
     * slotd. Ignored signals (SIGPIPE, SIGXFSZ) stay ignored. */
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction old;
        if (sig != SIGKILL && sig != SIGSTOP && sigaction(sig, NULL, &old) == 0 &&
            old.sa_handler != SIG_IGN && old.sa_handler != SIG_DFL)
            sigaction(sig, &dfl, NULL);
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) /* the parent died before prctl took */
        _exit(3);
    if (wfd != 3 && dup2(wfd, 3) < 0)
        _exit(4);
    /* Sockets, the journal's locked directory fd, epoll: none are ours. */
    if (close_range(4, ~0u, 0) < 0)
        for (int fd = 4; fd < 65536; fd++)
            close(fd);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* Behind the loop for the disk and the CPU: idle I/O class (heeded by
     * the bfq and mq-deadline schedulers; "none" ignores it, and the
     * paced writes of checkpoint_file.c are what bound the child's I/O
     * there) and a lower CPU priority. Failures change nothing else. */
    syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT);
    setpriority(PRIO_PROCESS, 0, CKPT_NICE);
    ckpt_write_file(ck, &r);
    ckpt_write_all(3, &r, sizeof r);
    _exit(r.rc == 0 ? 0 : 1);
}

/* At exit, in process: nothing else runs, so no fork is needed. */
static void ckpt_final(checkpoint *ck)
{
    assert(ck->phase == CKPT_BARRIER);
    ckpt_write_file(ck, &ck->report);
    if (ck->report.rc != 0)
        return ckpt_fail(ck, ck->report.stage, ck->report.rc);
    ckpt_set_phase(ck, CKPT_REMOVING);
    ckpt_remove(ck);
    ckpt_done(ck);
}

static void ckpt_on_barrier(void *ctx, int status, uint64_t seg)
{
    checkpoint *ck = ctx;
    server *srv = ck->srv;
    int fds[2], rc;
    sigset_t all, old;

    assert(ck->phase == CKPT_BARRIER);
    ck->seg = seg;
    if (status)
        return ckpt_fail(ck, "barrier", status);
    if ((ck->stopping && !ck->final_done) || (seg <= ck->st.segment && !ckpt_dropped(ck))) {
        /* Stopping (a last one comes separately, if asked for), or the
         * newest snapshot already covers all of it. */
        ckpt_set_phase(ck, CKPT_IDLE);
        ck->pos_at_last = ck->pos_pending;
        ck->rec_at_last = ck->rec_pending;
        return ckpt_stop_continue(ck);
    }
    /* The client table holds a Kafka-fed node's offsets (kafka.h): taken
     * here with the store, in the same loop iteration as the fork. */
    if ((rc = ckpt_extra_build(ck, seg)) != 0)
        return ckpt_fail(ck, "extra", rc);
    if (srv_is_kafka(ck))
        kafka_checkpoint_barrier(srv);
    ckpt_path(ck->tmp_path, sizeof ck->tmp_path, srv->cfg.data_dir, seg, "tmp");
    ckpt_path(ck->snap_path, sizeof ck->snap_path, srv->cfg.data_dir, seg, "snap");
    ck->dropped_pending = ckpt_dropped_total(srv); /* the snapshot holds drops up to here */
    memset(&ck->report, 0, sizeof ck->report);
    ck->report_len = 0;
    if (ck->stopping)
        return ckpt_final(ck);
    if (pipe2(fds, O_CLOEXEC) < 0)
        return ckpt_fail(ck, "pipe", -errno);
    pid_t parent = getpid(), pid;
    uint64_t f0 = uv_hrtime();
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    /* The loop stops for as long as fork copies the page tables (a few ms
     * per GB resident); it is logged, as fork_ms. */
    pid = fork();
    if (pid == 0)
        ckpt_child(ck, fds[1], parent);
    rc = pid < 0 ? -errno : 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(fds[1]);
    if (rc) {
        close(fds[0]);
        return ckpt_fail(ck, "fork", rc);
    }
    ck->child = pid;
    ckpt_set_phase(ck, CKPT_CHILD);
    uv_pipe_init(srv->loop, &ck->pipe, 0);
    ck->pipe.data = ck;
    if ((rc = uv_pipe_open(&ck->pipe, fds[0])) == 0)
        rc = uv_read_start((uv_stream_t *)&ck->pipe, ckpt_on_alloc, ckpt_on_read);
    if (rc != 0) { /* cannot watch it: wait for it instead */
        log_warn("checkpoint_watch_failed err=%s action=wait", uv_strerror(rc));
        server_close((uv_handle_t *)&ck->pipe, ckpt_pipe_closed);
    }
    log_info("checkpoint_started segment=%" PRIu64 " pid=%d fork_ms=%.2f", seg, (int)pid,
             (double)(uv_hrtime() - f0) / 1e6);
}

static void ckpt_begin(checkpoint *ck, uint64_t pos)
{
    ckpt_set_phase(ck, CKPT_BARRIER);
    ck->t0 = ck->last_start_ns = uv_hrtime();
    ck->pos_pending = pos;
    ck->rec_pending = kafka_applied_records(ck->srv);
    int rc = srv_is_kafka(ck) ? kafka_checkpoint_mark(ck->srv) : 0;
    if (rc == 0)
        rc = journal_rotate_barrier(ck->srv->journal, ckpt_on_barrier, ck);
    if (rc != 0)
        ckpt_fail(ck, "barrier", rc);
}

static void ckpt_on_tick(uv_timer_t *t)
{
    checkpoint *ck = t->data;
    server *srv = ck->srv;
    uint64_t now = uv_hrtime();
    journal_stats js;
    if (ck->phase != CKPT_IDLE || ck->stopping || !srv->ready || !srv->journal ||
        now < ck->retry_at)
        return;
    journal_get_stats(srv->journal, &js);
    /* A Kafka-fed node journals nothing: its input is the records applied. */
    uint64_t pos = srv_is_kafka(ck) ? kafka_applied_bytes(srv) : ck->replayed + js.bytes,
             grown = pos - ck->pos_at_last,
             recs = kafka_applied_records(srv) - ck->rec_at_last;
    int by_size = srv->cfg.checkpoint_bytes && grown >= srv->cfg.checkpoint_bytes;
    int by_records = srv->cfg.checkpoint_records && recs >= srv->cfg.checkpoint_records;
    int by_time = srv->cfg.checkpoint_interval_ms && (grown || ckpt_dropped(ck)) &&
                  now - ck->last_start_ns >= srv->cfg.checkpoint_interval_ms * 1000000u;
    if (by_size || by_time || by_records)
        ckpt_begin(ck, pos);
}

/* ---- lifecycle --------------------------------------------------------------- */

int checkpoint_start(server *srv, uint64_t replayed_bytes)
{
    checkpoint *ck = ckpt_loaded_take();
    if (!ck && !(ck = calloc(1, sizeof *ck)))
        return UV_ENOMEM;
    srv->checkpoint = ck;
    ck->srv = srv;
    ck->replayed = replayed_bytes;
    ck->last_start_ns = uv_hrtime();
    uv_timer_init(srv->loop, &ck->tick); /* first: checkpoint_stop stops it */
    ck->tick.data = ck;
    int want = srv->journal && (srv->cfg.checkpoint_bytes || srv->cfg.checkpoint_interval_ms ||
                                srv->cfg.checkpoint_records || srv->cfg.checkpoint_on_exit);
    if (want && !(ck->wbuf = malloc(CKPT_WBUF)))
        return UV_ENOMEM;
    if (want && (srv->cfg.checkpoint_bytes || srv->cfg.checkpoint_interval_ms ||
                 srv->cfg.checkpoint_records))
        uv_timer_start(&ck->tick, ckpt_on_tick, CKPT_TICK_MS, CKPT_TICK_MS);
    return 0;
}

static void ckpt_stop_continue(checkpoint *ck)
{
    server *srv = ck->srv;
    if (!ck->stopping || ck->phase != CKPT_IDLE || !ck->stopped)
        return;
    if (srv->cfg.checkpoint_on_exit && srv->journal && ck->wbuf && !ck->final_done) {
        journal_stats js;
        journal_get_stats(srv->journal, &js);
        ck->final_done = 1;
        return ckpt_begin(ck, ck->replayed + js.bytes);
    }
    void (*done)(server *) = ck->stopped;
    ck->stopped = NULL;
    done(srv);
}

void checkpoint_stop(server *srv, void (*done)(server *srv))
{
    checkpoint *ck = srv->checkpoint;
    if (!ck) {
        done(srv);
        return;
    }
    ck->stopping = 1;
    ck->stopped = done;
    uv_timer_stop(&ck->tick);
    if (ck->phase != CKPT_IDLE)
        log_info("checkpoint_wait phase=%s", ck->phase == CKPT_CHILD ? "child" : "barrier");
    ckpt_stop_continue(ck);
}

void checkpoint_get_stats(const server *srv, checkpoint_stats *st)
{
    /* While replaying, the loaded stats belong to the replay thread. */
    const checkpoint *ck = srv->checkpoint ? srv->checkpoint
                           : srv->replaying ? NULL
                                            : ckpt_loaded_peek();
    if (ck)
        *st = ck->st;
    else
        memset(st, 0, sizeof *st);
    st->in_progress = ck && ck->phase != CKPT_IDLE;
}

void checkpoint_free(server *srv)
{
    checkpoint *ck = srv->checkpoint;
    if (ck) {
        free(ck->wbuf);
        free(ck->extra);
        free(ck);
    }
    srv->checkpoint = NULL;
    ckpt_loaded_free();
}
