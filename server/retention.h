/* retention — --retention DURATION: keep only recent trades.
 *
 * A timer drops whole pages of trades older than "now" minus the horizon,
 * "now" being the newest trade's ts in the store (exchange time, not the
 * wall clock: deterministic, and a replay of the same data drops the same
 * way), but never later than the wall clock plus --max-future: one trade
 * stamped far in the future must not make everything else old. Ingest
 * refuses such a trade anyway (BAD_VALUE, proto_limits.max_future_ns), so
 * for live data the bound never binds; it guards data that came in with
 * the check off or a clock that was wrong. With --max-future 0 there is no
 * bound. store_drop_before does the work, a bounded amount
 * per tick (about a millisecond), resuming where it stopped, so the loop
 * keeps serving; a pass over every partition happens at most once a second.
 *
 * Aggregates then cover the trades still stored (store.h). Memory freed
 * goes back to the slab for reuse. Disk follows at the next checkpoint,
 * which no longer holds the dropped pages and removes the journal segments
 * behind it (checkpoint.c triggers one when retention dropped anything and
 * --checkpoint-interval is set).
 */
#ifndef SLOTD_RETENTION_H
#define SLOTD_RETENTION_H

#include <stdint.h>

#include "server.h"

typedef struct retention_stats {
    int64_t horizon_ns;      /* 0 = off */
    int64_t cutoff_ts;       /* pages below this were last dropped; 0 = none yet */
    uint64_t dropped_trades; /* since start */
    uint64_t dropped_pages;
} retention_stats;

/* The cutoff retention applies now: trades with ts below it may be
 * dropped. min(newest stored ts, wall clock + --max-future) - --retention;
 * 0 = drop nothing (retention off, an empty store, or a cutoff <= 0).
 * Reads the store: loop thread, or the replay thread while it owns it. */
int64_t retention_cutoff(const server *srv);
/* Its own lifecycle, run by the server (main.c), not by checkpoint.
 * Loop thread, once ready: starts the timer when --retention is set.
 * 0 or UV_ENOMEM. */
int retention_start(server *srv);
/* Loop thread, at shutdown: stops the timer (its handle closes with the
 * loop's); retention_free after the loop has closed. */
void retention_stop(server *srv);
void retention_get_stats(const server *srv, retention_stats *st);
void retention_free(server *srv);

#endif
