/* ingest — the TCP side of slotd: connections, HELLO, T batches and Q queries.
 *
 * A T batch goes decode -> stage (store_batch) -> reserve -> journal ->
 * commit -> ACK. It becomes visible to queries only once journaled, so an
 * ACK never refers to data a crash could lose and an ERR never to data that
 * was kept. Replies leave each connection in request order, whatever order
 * the work finishes in. Per-client last_seq makes a resent batch an ACK
 * without a second copy.
 *
 * Backpressure: a connection stops being read while it has too many
 * batches in flight or too many unsent reply bytes, and every connection
 * stops while the journal is behind; reading resumes when they drain.
 */
#ifndef SLOTD_INGEST_H
#define SLOTD_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "server.h"

int ingest_init(server *srv);
int ingest_start(server *srv);  /* listen; sets srv->tcp_port */
/* Graceful stop: close the listener, stop reading, let in-flight batches
 * finish and be acknowledged; `done` runs once every connection is closed. */
void ingest_stop(server *srv, void (*done)(server *srv));
void ingest_free(server *srv);

typedef struct ingest_stats {
    uint32_t pending;             /* connections before HELLO */
    uint32_t sessions;            /* connections past HELLO */
    uint64_t buffered;            /* read-buffer bytes counted against --max-buffered */
    uint32_t starved;             /* connections waiting for --max-buffered room */
} ingest_stats;
/* Loop thread. */
void ingest_get_stats(const server *srv, ingest_stats *st);

#endif
