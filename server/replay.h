/* replay — start-up recovery, run on a worker thread before the server is
 * ready: the newest valid snapshot (checkpoint_load), then every journal
 * record after it, each applied to the store and the client table exactly
 * as the live server applied it. Nothing else touches the store or the
 * client table meanwhile (srv->replaying).
 *
 * What was acknowledged is replayed under the rules it was accepted under,
 * not under today's flags: records are decoded with permissive limits
 * (replay_limits: any message or batch size, unknown fields skipped, no
 * wall-clock bound). That is safe because each record's checksum proves it
 * is a batch slotd accepted, and it is needed because flags change between
 * runs. Two limits bound the store itself and stay: --max-memory and
 * --max-symbols. When the journal needs more, replay fails naming the flag
 * and the value that works. With --retention, replay drops what retention
 * would have dropped as it goes (periodically, and before giving up on a
 * full store), so whatever ran within --max-memory can restart.
 *
 * Errors: the REPLAY_E* codes of server_err.h (server_err_name is the
 * log's err=, server_strerror the text); replay_result.detail says what
 * exactly (the file and offset, the flag and the value needed) and
 * replay_hint what the operator can do. Only REPLAY_ECORRUPT and
 * REPLAY_EGAP are what --salvage is for.
 */
#ifndef SLOTD_REPLAY_H
#define SLOTD_REPLAY_H

#include "server.h"

/* What the operator can do about a REPLAY_E* code ("" for others). */
const char *replay_hint(int rc);

typedef struct replay_result {
    int rc;                  /* REPLAY_OK or a REPLAY_E* code */
    char detail[768];        /* the cause: file and offset, flag and value needed */
    journal_replay_stats st; /* the journal's side (records, truncated, skipped) */
} replay_result;

/* Load, then replay. Stops early (REPLAY_ECANCELED) once srv->stopping is set. */
void replay_run(server *srv, replay_result *out);

/* The limits records are decoded under: every proto_limits field at its
 * most permissive. */
void replay_limits(proto_limits *l);

/* Apply one journal record (the raw T message it holds) with replay_limits.
 * 0, or REPLAY_EMEMORY / REPLAY_ESYMBOLS (replay_run names the value
 * needed), REPLAY_ERECORD / REPLAY_ENOMEM after logging why
 * (replay_error). With --retention a full store is first trimmed the way
 * retention would, and the batch tried again. */
int replay_apply(server *srv, store_batch *b, const char *client, size_t clen, uint64_t seq,
                 const uint8_t *msg, size_t len);

#endif
