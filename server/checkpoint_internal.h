/* checkpoint_internal — what checkpoint.c, checkpoint_file.c and
 * checkpoint_load.c share. Not for use outside the checkpoint code
 * (checkpoint.h is its interface).
 *
 * Files and their one job each (no cycles: checkpoint.c and
 * checkpoint_load.c call into checkpoint_file.c, which calls neither):
 *   checkpoint.c       the state machine on the loop thread (triggers,
 *                      barrier, fork, child watch, removal), lifecycle, stats
 *   checkpoint_file.c  snapshot files: names, listing, the writer (fit for a
 *                      fork()ed child), the mmap reader, the extra blob
 *   checkpoint_load.c  start-up: which snapshot to load, and whether the
 *                      journal continues it
 *
 * Errors: checkpoint.h's (-errno, or a SNAPSHOT_E* code); every function
 * here returns 0 or one of those.
 */
#ifndef SLOTD_CHECKPOINT_INTERNAL_H
#define SLOTD_CHECKPOINT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "checkpoint.h"
#include "snapshot.h"

#define CKPT_WBUF (1u << 20) /* the writer's buffer */
#define CKPT_EXTRA_HDR 32

/* The phases of one checkpoint (the diagram is in checkpoint.c). */
typedef enum ckpt_phase { CKPT_IDLE, CKPT_BARRIER, CKPT_CHILD, CKPT_REMOVING } ckpt_phase;

/* What the child reports through its pipe (same binary: a raw struct). */
typedef struct ckpt_report {
    int rc;           /* 0, -errno or a SNAPSHOT_E* code (server_strerror); see stage */
    char stage[16];   /* where it failed */
    uint64_t bytes, trades;
} ckpt_report;

typedef struct checkpoint {
    server *srv;
    ckpt_phase phase; /* change it with ckpt_set_phase only */
    int stopping, final_done;
    void (*stopped)(server *srv);
    uv_timer_t tick;
    uv_pipe_t pipe;
    uv_work_t work;
    pid_t child;
    uint64_t seg;            /* N being taken */
    uint64_t t0;             /* hrtime the checkpoint started */
    uint64_t replayed;       /* journal bytes replayed at start-up, above the snapshot */
    uint64_t pos_at_last;    /* journal position covered by the last checkpoint */
    uint64_t pos_pending;    /* ... by the one being taken */
    uint64_t rec_at_last;    /* --source kafka: records applied the last checkpoint covers */
    uint64_t rec_pending;    /* ... the one being taken */
    uint64_t dropped_at;     /* retention's drop count the newest snapshot reflects */
    uint64_t dropped_pending; /* ... the one being taken */
    uint64_t last_start_ns, retry_at;
    ckpt_report report;
    size_t report_len;
    unsigned char *wbuf;     /* allocated before fork: the child never allocates */
    unsigned char *extra;
    size_t extra_len, extra_cap;
    char tmp_path[4096], snap_path[4096];
    int remove_rc;
    uint64_t removed;
    checkpoint_stats st;
} checkpoint;

static inline void ckpt_put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static inline uint64_t ckpt_get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* ---- checkpoint_file.c ---- */

/* <dir>/snapshot-<16 hex digits seg>.<ext> */
void ckpt_path(char *buf, size_t n, const char *dir, uint64_t seg, const char *ext);
/* Snapshot numbers in dir (ext "snap" or "tmp"), newest first, in a
 * malloc'ed array (none when dir is missing). 0 or -errno. */
int ckpt_list(const char *dir, const char *ext, uint64_t **out, size_t *n);
/* All of p to fd, retrying short writes and EINTR. 0 or -errno. */
int ckpt_write_all(int fd, const void *p, size_t n);
/* Write ck->srv->store and ck->extra to ck->tmp_path, fsync, rename to
 * ck->snap_path, fsync the directory. No allocation, no stdio: fit for a
 * fork()ed child of a multithreaded process. The outcome goes to *r. */
void ckpt_write_file(checkpoint *ck, ckpt_report *r);
/* The client table and segment seg into ck->extra, as of now (the barrier
 * callback). 0 or -ENOMEM. */
int ckpt_extra_build(checkpoint *ck, uint64_t seg);
/* Load snapshot seg into srv->store (fresh) and apply its client table.
 * 0 or a checkpoint error code (the store then needs replacing); *why says
 * what in words. */
int ckpt_load_file(server *srv, uint64_t seg, const char **why, snapshot_info *info);

/* ---- checkpoint_load.c ---- */

/* The stats of the snapshot checkpoint_load chose live here until
 * checkpoint_start takes them (the replay thread hands them to the loop
 * thread through replay_done). NULL when none. */
checkpoint *ckpt_loaded_take(void);
const checkpoint *ckpt_loaded_peek(void);
void ckpt_loaded_free(void);

#endif
