/* replay — start-up recovery, run on a worker thread before the server is
 * ready: the newest valid snapshot (checkpoint_load), then every journal
 * record after it, each applied to the store and the client table exactly
 * as the live server applied it. Nothing else touches the store or the
 * client table meanwhile (srv->replaying).
 */
#ifndef SLOTD_REPLAY_H
#define SLOTD_REPLAY_H

#include "server.h"

typedef struct replay_result {
    int rc;                    /* 0, or -errno (-EBADMSG: see the log / st.detail) */
    int snapshot_failed;       /* checkpoint_load refused and logged why */
    journal_replay_stats st;
} replay_result;

/* Load, then replay. Stops early (rc -ECANCELED) once srv->stopping is set. */
void replay_run(server *srv, replay_result *out);

/* Apply one journal record (the raw T message it holds). 0 or -1 after
 * logging why. */
int replay_apply(server *srv, store_batch *b, const char *client, size_t clen, uint64_t seq,
                 const uint8_t *msg, size_t len);

#endif
