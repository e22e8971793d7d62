/* split — one T message cut into one T message per partition (the
 * gateway, docs/cluster.md): the trades of each part keep their bytes and
 * their order, and every part carries the batch's seq and kind name.
 *
 * For a message proto_decode_batch accepted: the walk here checks only what
 * it reads (any byte string is safe), not the trades' contents.
 */
#ifndef SLOTD_SPLIT_H
#define SLOTD_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* The partition of a symbol: 0 .. nparts-1. */
typedef int32_t (*split_part_fn)(void *ctx, const char *sym, size_t len);

typedef struct split_out {
    proto_buf *parts;   /* parts[p]: the T message of partition p (len 0: no trades) */
    uint32_t *counts;   /* trades per partition */
    int32_t nparts;
    /* scratch: each trade's span and partition */
    struct split_span *spans;
    size_t spans_cap;
} split_out;

/* An empty result for nparts partitions. 0 or -1 (out of memory). */
int split_init(split_out *o, int32_t nparts);
void split_free(split_out *o);

/* Cut msg (["T", seq, [trade...]] or with a 4th element, the kind name)
 * into o->parts, each ["T", seq, [its trades...]] (+ the kind name, same
 * bytes). An empty batch yields no part. 0, or -1 with err set (a message
 * shaped otherwise, a trade without a symbol, out of memory). */
int split_batch(const uint8_t *msg, size_t len, split_part_fn part, void *ctx, split_out *o,
                proto_error *err);

#endif
