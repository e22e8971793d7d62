/* workload_pack — the W1 workload on the wire: the one encoder of trades
 * and batches that slotload, the benchmarks and the tests share.
 *
 * A trade is a map {"sym","ts","px","qty","side","id"} (or, with
 * WORKLOAD_ARRAY, the array form in slot order: [sym, ts, px, qty, side, id]),
 * px as exact decimal text ("187.25") or, with WORKLOAD_PX_FLOAT, as a
 * float64; qty as an integer count of whole units; side "B"/"S". Buffers
 * are msgpack-c's msgpack_sbuffer (msgpack_sbuffer_write as the packer's
 * callback). */
#ifndef SLOTD_WORKLOAD_PACK_H
#define SLOTD_WORKLOAD_PACK_H

#include <stdint.h>

#include <msgpack.h>

#include "workload.h"

enum {
    WORKLOAD_ARRAY = 1,    /* array form instead of map form */
    WORKLOAD_PX_FLOAT = 2, /* px as float64 instead of decimal text */
};

void workload_pack_trade(msgpack_packer *pk, const workload_trade *t, int flags);
/* The next n trades of w as a msgpack array: the body of a batch. */
void workload_pack_trades(msgpack_packer *pk, workload *w, uint32_t n, int flags);
/* ["T", seq, [the next n trades of w]]: a whole batch message. */
void workload_pack_batch(msgpack_packer *pk, workload *w, uint64_t seq, uint32_t n, int flags);

#endif
