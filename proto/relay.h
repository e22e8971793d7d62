/* relay — a node's query reply, as the gateway passes it on (docs/cluster.md,
 * "The gateway"): re-emitted in another encoding, or merged with the other
 * nodes' replies.
 *
 * A reply is the bytes of ["R", qid, result] or ["ERR", qid, code, msg, x].
 * relay_result() re-emits the result through any emitter (emit.h), so a
 * msgpack reply becomes the JSON body a node's HTTP endpoint would give:
 * query.c writes every fixed-point number twice, as a float64 and as its
 * exact text under "<key>_s"; the float is re-emitted as a fixed-point value
 * when that text is exact at 1e-8 (what query.c did on the node), else as
 * the same float.
 *
 * Top-N merge: each node answers `top` for its own symbols; a symbol lives
 * in one partition, so the global top N is the N largest of the union —
 * exact. Entries are ordered by the value asked for (count, or the exact
 * text of volume/notional), ties by symbol name (a single node breaks ties
 * by the order symbols first arrived, which a cluster does not know). A
 * symbol answered by two nodes (two replicas, or nodes whose partition sets
 * overlap) is kept once.
 */
#ifndef SLOTD_RELAY_H
#define SLOTD_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "emit.h"
#include "proto.h"
#include "query.h"

/* Is reply an R? 1 (R), 0 (ERR: err set to its code and message), -1
 * (neither, or malformed: err MALFORMED). */
int relay_status(const uint8_t *reply, size_t len, proto_error *err);

/* Re-emit the result of an R reply through e. 0, or -1 (not an R). */
int relay_result(const uint8_t *reply, size_t len, emit *e);

typedef struct relay_top relay_top;
/* A merge for a top query of n symbols by `by`; NULL when out of memory. */
relay_top *relay_top_new(store_by by, uint32_t n);
void relay_top_free(relay_top *t);
/* Add one node's R reply to a top query (kept: the bytes are copied). 0, or
 * -1 with err (not an R reply of a top query, or out of memory). */
int relay_top_add(relay_top *t, const uint8_t *reply, size_t len, proto_error *err);
/* The merged result, shaped as a node's: {"by", "symbols": [...]}, and when
 * some partitions did not answer, "partial": true and "missing_partitions"
 * (ascending). */
void relay_top_emit(relay_top *t, const int32_t *missing, size_t nmissing, emit *e);

/* The same, with extra more entries left open in the map: the caller
 * emits extra key/value pairs, then e->end (the gateway's "behind" and
 * "down_nodes", gateway_cluster.c). */
void relay_top_emit_open(relay_top *t, const int32_t *missing, size_t nmissing, uint32_t extra,
                         emit *e);

/* A per-symbol R reply ["R", qid, {...}] with one more entry in its
 * result map: "behind": [{"partition": parts[i], "records": records[i]}]
 * (n of them), the rest byte for byte, appended to out. 0, or -1 (not an R
 * with a map result, or out of memory: out may hold a part). */
int relay_add_behind(const uint8_t *reply, size_t len, const int32_t *parts,
                     const int64_t *records, size_t n, proto_buf *out);

/* Re-emit one msgpack value (a whole message's element) through e. */
struct msgpack_object;
void relay_object(const struct msgpack_object *o, emit *e);

#endif
