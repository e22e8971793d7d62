/* subscribe — live subscriptions: per-symbol read positions that pull
 * committed trades from the store (PROTOCOL.md §10).
 *
 * A subscription holds no trades: it is a read position (an absolute
 * record index, store.h) per symbol it covers, and a queue of the symbols
 * with something past their position. Before a batch commits, ingest calls
 * sub_note_batch (the batch's symbol ids mark those symbols pending in
 * every subscription covering them); after it, sub_committed tells each
 * newly pending subscription's owner (kick). The owner (a TCP connection,
 * an SSE stream) calls sub_fill only when what it wrote before has
 * drained, so each subscriber costs one output piece of memory however far
 * behind it is, and ingest never waits for it: a batch is visible here only
 * once committed, which is after it was journaled, so nothing pushed can be
 * taken back by a crash.
 *
 * Positions survive retention and restarts (the store's absolute indexes
 * are snapshotted and replayed); a position retention passed is either a
 * GAP notice (the subscriber asked for gaps) or CURSOR_GONE. Loop thread
 * only.
 */
#ifndef SLOTD_SUBSCRIBE_H
#define SLOTD_SUBSCRIBE_H

#include <stdint.h>

#include "emit.h"
#include "server.h"
#include "subproto.h"

typedef struct sub sub;

/* How a subscription's output is encoded (TCP msgpack, SSE text). */
typedef struct sub_enc {
    /* n trades of sym (kind k, packed slots k->size apart); next = the
     * resume position after them. 0, or -1: out of memory (nothing of it
     * may count as sent: the subscription ends). */
    int (*chunk)(sub *s, proto_buf *out, const char *sym, size_t len, const kind *k,
                 const unsigned char *slots, uint32_t n, uint64_t next);
    void (*gap)(sub *s, proto_buf *out, const char *sym, size_t len, uint64_t from, uint64_t to);
} sub_enc;

enum sub_drop { SUB_DROP_STALLED = 0, SUB_DROP_GONE, SUB_NDROPS };
extern const char *const sub_drop_names[SUB_NDROPS]; /* "stalled", "gone" */

int sub_init(server *srv);
void sub_free(server *srv);

/* Open a subscription for r (checked by subproto_decode_sub): positions
 * from r->from. kick(owner) is called when it may have something to send.
 * NULL with err (BAD_SUB: memory) on failure. */
sub *sub_open(server *srv, const subproto_req *r, const sub_enc *enc, void (*kick)(void *owner),
              void *owner, proto_error *err);
/* The start positions of every covered symbol that holds trades, as a
 * map {sym: pos}, closing the message (after subproto_begin_subok). */
void sub_emit_cursor(sub *s, emit *e);
/* A symbol list's cursor as text (subproto.h): every listed symbol with
 * its position now (an encoder's call sees the position after its
 * trades). 0 or -1 (memory). */
int sub_cursor_text(const sub *s, proto_buf *out);
/* "*": each symbol's position, those past 0 only (a symbol a cursor does
 * not name starts at 0), to fn; stops at fn's -1 and returns it. */
int sub_each_pos(const sub *s, subproto_cursor_fn fn, void *ctx, proto_error *err);
/* The owner given to sub_open (for the encoders' calls). */
void *sub_owner(const sub *s);
/* Encode pending trades into out until it holds `want` bytes or nothing is
 * pending. 1: more is pending; 0: nothing is; -1: a position retention
 * passed without gaps (err: CURSOR_GONE), or no memory to encode (err:
 * SLOW_SUBSCRIBER); the subscription is spent either way. */
int sub_fill(sub *s, proto_buf *out, size_t want, proto_error *err);
/* End it; `why` is counted in slotd_subscriber_drops_total unless
 * SUB_NDROPS (an UNSUB, or its owner went away by itself). */
void sub_close(sub *s, int why);
uint64_t sub_id(const sub *s);

/* Ingest: a reserved batch about to commit, then the commit done. */
void sub_note_batch(server *srv, const store_batch *b);
void sub_committed(server *srv);
static inline int sub_any(const server *srv) { return srv->subs != NULL && srv->nsubs > 0; }

/* Metrics: subscriptions open, drops by reason, trades pushed, and the
 * total lag (trades stored past every subscription's positions). */
typedef struct sub_stats {
    uint64_t subscribers, trades_total, lag;
    uint64_t drops[SUB_NDROPS];
} sub_stats;
void sub_get_stats(server *srv, sub_stats *st);
void sub_count_drop(server *srv, int why);

#endif
