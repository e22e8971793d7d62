/* query — the one query implementation behind HTTP and the TCP Q message.
 *
 * A request is parsed from either transport into a query_req, run against
 * the store, and written through an emitter (emit.h); only the encoding and
 * the parameter syntax differ between HTTP and TCP. Parameters are checked
 * here, once: limits are clamped to the store's bounds, times accept ns
 * integers or RFC 3339 text.
 */
#ifndef SLOTD_QUERY_H
#define SLOTD_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "emit.h"
#include "proto.h"
#include "store.h"

typedef enum query_op {
    QUERY_STATS = 1, /* global store stats (the server adds its own in /stats) */
    QUERY_SYMBOL,    /* one symbol's aggregates */
    QUERY_TRADES,    /* trades in [from, to), limit, cursor */
    QUERY_BARS,      /* OHLCV bars at interval over [from, to) */
    QUERY_TOP,       /* top N symbols by count | volume | notional */
    QUERY_SCHEMA,    /* record kinds and their slots */
    QUERY_DELETE,    /* delete a symbol's trades in [from, to): a write, see below */
    QUERY_OFFSETS,   /* a Kafka node's next offset per owned partition (the server answers) */
} query_op;

typedef struct query_req {
    query_op op;
    char sym[STORE_SYM_MAX + 1];
    size_t symlen;
    int64_t from, to;   /* default: everything */
    int has_from, has_to; /* given explicitly (delete needs both) */
    int64_t interval;   /* ns, bars only */
    uint64_t cursor;
    uint32_t limit;     /* trades; default 1000, max STORE_MAX_TRADES */
    uint32_t top;       /* default 10, max STORE_MAX_TOP */
    store_by by;
} query_req;

void query_req_init(query_req *q, query_op op);
/* Parse one parameter given as text (HTTP query string values, after
 * percent-decoding): name in from|to|limit|cursor|interval|top|by. Returns 0
 * or -1 with err (BAD_QUERY) naming the parameter. */
int query_set_param(query_req *q, const char *name, size_t nlen, const char *val, size_t vlen,
                    proto_error *err);
/* Set the symbol (HTTP path segment after percent-decoding, TCP "sym"):
 * 1..STORE_SYM_MAX bytes, else -1 with err (BAD_QUERY). */
int query_set_symbol(query_req *q, const char *sym, size_t len, proto_error *err);
/* Parse a time: ns integer or RFC 3339 ("2026-01-01T00:00:00.5Z", offsets). */
int query_parse_time(const char *s, size_t len, int64_t *ns);
/* Parse an interval: a positive duration (core/duration.h: "1.5s", "500ms",
 * "5m"; a bare number is seconds). */
int query_parse_interval(const char *s, size_t len, int64_t *ns);

/* Decode the TCP form ["Q", qid, {"op": "symbol", "sym": ..., ...}]. */
int query_decode(const uint8_t *msg, size_t len, uint64_t *qid, query_req *q, proto_error *err);

/* Run q and emit its result. Returns 0, or -1 with err (NOT_FOUND, BAD_QUERY)
 * and nothing emitted. QUERY_DELETE is not run here (it is a write the
 * server journals first: server/delete.c): BAD_QUERY. */
int query_run(const store *s, const query_req *q, emit *e, proto_error *err);

/* The TCP form of q, ["Q", qid, {...}], that query_decode reads back as q
 * (the gateway forwards HTTP queries to the nodes with it). 0 or -1 (memory). */
int query_pack(proto_buf *out, uint64_t qid, const query_req *q);

/* ---- one trade, for exports ------------------------------------------------
 * The map a trade has in a QUERY_TRADES answer, preceded by "symbol" and
 * "kind": the same field names and values (fixed point as a number and as
 * its exact text "<key>_s"). nkeys = query_record_keys(k), computed once. */
uint32_t query_record_keys(const kind *k);
void query_emit_trade(emit *e, const char *sym, const kind *k, const void *slot, uint32_t nkeys);

/* ---- deletes ---------------------------------------------------------------
 * A delete is journaled like a batch, as the message
 *   ["D", {"sym": SYM, "from": FROM_NS, "to": TO_NS}]
 * (PROTO_MSG_D; never accepted from a client), and replayed from it. */

/* Is the delete request complete? 0, or -1 with err (BAD_QUERY: 'from' and
 * 'to' are both required, from < to). */
int query_delete_check(const query_req *q, proto_error *err);
/* The journal message for q (a checked QUERY_DELETE). 0 or -1 (memory). */
int query_pack_delete(proto_buf *out, const query_req *q);
/* Decode a journaled ["D", {...}] into q. 0, or -1 with err. */
int query_decode_delete(const uint8_t *msg, size_t len, query_req *q, proto_error *err);
/* The reply: {"symbol": SYM, "from": .., "to": .., "deleted": N}. */
void query_emit_deleted(emit *e, const query_req *q, uint64_t deleted);

#endif
