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

int ingest_init(server *srv);   /* client table, before replay */
int ingest_start(server *srv);  /* listen; sets srv->tcp_port */
/* Graceful stop: close the listener, stop reading, let in-flight batches
 * finish and be acknowledged; `done` runs once every connection is closed. */
void ingest_stop(server *srv, void (*done)(server *srv));
void ingest_free(server *srv);

/* Replay one journal record into the store and the client table. Runs on
 * the replay thread while nothing else touches either. 0 or -1. */
int ingest_replay(server *srv, const char *client, size_t clen, uint64_t seq,
                  const uint8_t *msg, size_t len);

/* Highest durably stored seq for a client name, 0 if none. */
uint64_t ingest_last_seq(server *srv, const char *client, size_t clen);

/* Checkpoints: every client with a durable seq (loop thread, in a rotate
 * barrier's callback: exactly the seqs of the segments it covers), and
 * setting one back at start-up (the replay thread, before the journal
 * replays on top). 0 or -1. */
typedef void (*ingest_client_fn)(void *ctx, const char *client, size_t clen, uint64_t seq);
void ingest_clients_foreach(server *srv, ingest_client_fn fn, void *ctx);
int ingest_client_restore(server *srv, const char *client, size_t clen, uint64_t seq);

#endif
