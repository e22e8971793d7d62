/* store — per-symbol partitions of fixed-slot records, running aggregates,
 * and bounded queries. Plain C11: no I/O, no threads, no wire formats.
 *
 *   symbol table (open addressing, symbol -> dense id)
 *        |
 *        v
 *   partition[id]: name, kind, aggregates, page chain
 *        |
 *        v
 *   slab page -> slab page -> ... (this symbol's slots only, arrival order)
 *
 * Ingest is two-phase, so a batch is all-or-nothing and becomes visible only
 * once the caller has made it durable:
 *
 *   store_batch_reset(b)
 *   store_batch_add(s, b, sym, kind, vals)   per trade: symbol + kind checks,
 *                                            the packed slot is staged in b
 *   store_batch_reserve(s, b)                creates the batch's new symbols,
 *                                            memory-cap check (STORE_EFULL);
 *                                            after success commit cannot fail
 *   ... journal the batch ...
 *   store_batch_commit(s, b)                 slots appended, aggregates updated
 *   or store_batch_release(s, b)             on any failure: nothing changes
 *
 * A symbol is created (its kind fixed, a max_symbols slot taken) by the
 * reserve of the first batch that stages a trade for it, never by staging:
 * a batch refused at staging or by reserve leaves no symbol behind. Nor
 * does a released one: a symbol a reserve created stays "fresh" until a
 * batch holding it commits; each reserved batch staging trades for it
 * holds it (the partition's pending count), and when the last of those is
 * released while it is still fresh, it is removed (kind, quota and name
 * all free again). So the store after any mix of commits and releases is
 * the store the committed batches alone, in commit order, would build —
 * what a journal replay builds. A symbol with no committed trade (left) is
 * invisible to every query and to the symbol count.
 *
 * Numbers: prices and quantities are fixed point 1e-8 (fixp.h); prices are
 * signed, quantities >= 0. Volume is summed in 128 bits at 1e-8, notional
 * (px*qty) in signed 128 bits at 1e-16, so VWAP over any realistic history
 * is exact. Open/close are the prices of the
 * earliest/latest timestamp (ties: first/last to arrive), so aggregates and
 * bars are right when trades arrive out of time order.
 *
 * Every query is bounded: results by their limit (capped at the STORE_MAX_*
 * values), scanning by STORE_SCAN_BUDGET records per call.
 */
#ifndef SLOTD_STORE_H
#define SLOTD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "kind.h"

#define STORE_SYM_MAX 31               /* bytes of UTF-8 */
#define STORE_MAX_TRADES 10000         /* per store_scan call */
#define STORE_MAX_BARS 10000           /* per store_bars call */
#define STORE_MAX_TOP 1000             /* per store_top call */
#define STORE_SCAN_BUDGET (1u << 22)   /* records examined per query call */
#define STORE_CURSOR_END UINT64_MAX

/* Errors: 0 or a STORE_E* code, declared in err.h (core_strerror). */

typedef struct store_config {
    size_t max_memory;    /* cap on slab + index bytes; 0 = 1 GiB */
    uint32_t max_symbols; /* 0 = 1,000,000; at most 2^31 - 1 */
    int plain;            /* 1: every page keeps its wide slots; 0 (default): a
                           * page that fills and is chained past is re-encoded
                           * compact (cpage.h, store_compact.c) */
} store_config;

typedef struct store store; /* opaque */

int store_open(store **out, const store_config *cfg);
void store_close(store *s);
/* The slab's memory-ahead hook (slab.h, slab_set_ahead): `fn` is told,
 * on the thread that ingests, which bytes new pages will come from next. */
void store_set_ahead(store *s, void (*fn)(void *ctx, void *from, size_t len), void *ctx,
                     size_t ahead);

/* ---- ingest ------------------------------------------------------------ */

/* A staged batch. Reused across batches: reset keeps the buffer. */
typedef struct store_batch {
    unsigned char *buf; /* entries: uint32 partition id, pad, packed slot */
    size_t len, cap;
    uint32_t n;         /* staged trades */
    uint64_t need;      /* bytes reserved against the cap (after reserve) */
    int reserved;
    /* Symbols the store does not hold that staged trades introduce; reserve
     * creates them. Private to the store (store_ingest.c). */
    struct store_newsym *syms;
    uint32_t *sidx;     /* open addressing over syms: index + 1, 0 = empty */
    uint32_t nsyms, syms_cap, smask;
} store_batch;

void store_batch_init(store_batch *b);
void store_batch_free(store_batch *b);
/* Forget staged trades; must not be called while reserved (release first). */
void store_batch_reset(store_batch *b);
/* Stage one trade. `v` must have passed kind_check for `k`. Fails with
 * STORE_ESYMBOL, STORE_EKIND, STORE_ESYMLIMIT or STORE_ENOMEM. A symbol the
 * store does not hold is checked (name; STORE_ESYMLIMIT at the trade that
 * would take the store's symbols plus this batch's new ones past
 * max_symbols) and recorded in the batch, not created; its later trades in
 * the batch must be of the same kind (STORE_EKIND). */
int store_batch_add(store *s, store_batch *b, const char *sym, size_t symlen,
                    const kind *k, const int64_t *v);
/* store_batch_add for a record the caller has packed already (k->size
 * bytes, as k->pack writes them, values checked as for store_batch_add):
 * the same checks and results. The decoder's fast path packs as it reads. */
int store_batch_add_slot(store *s, store_batch *b, const char *sym, size_t symlen,
                         const kind *k, const void *slot);
/* Create the batch's new symbols, then hold the memory its trades may take.
 * STORE_EFULL (or STORE_ENOMEM) leaves the store as it was, without the new
 * symbols. Pages retention or deletes freed count as room, but only as far
 * as the slab will hand them out for what the reserved batches may ask
 * (a free page never serves a larger page class; two reservations never
 * count the same page), so commit cannot fail (store_ingest.c, "memory
 * cap"). A new symbol that another batch, staged at the same time, has
 * created since is used if its kind agrees: else STORE_EKIND, and
 * STORE_ESYMLIMIT if the symbols created since leave no room (neither
 * happens when, as in the server, each batch is staged and reserved before
 * the next is staged). */
int store_batch_reserve(store *s, store_batch *b);
/* Commit empties the batch (ready for the next add). Only a reserved batch
 * may be committed: asserted in debug builds (NDEBUG unset); with NDEBUG an
 * unreserved batch stores nothing. Release empties it too, undoing the
 * reservation and removing the fresh symbols no other reserved batch
 * holds (see above); releasing a batch that is not reserved only resets it. */
void store_batch_commit(store *s, store_batch *b);
void store_batch_release(store *s, store_batch *b);

/* The kind a symbol holds, or NULL if the store has no such symbol. A
 * symbol with no trade left (retention or deletes emptied it) has its kind
 * fixed all the same, so it answers too; so does one a reserved, not yet
 * committed batch created. */
const kind *store_symbol_kind(const store *s, const char *sym, size_t symlen);
/* The same, and for a symbol new in batch `b` (staged, not yet created) the
 * kind it has there. Decoders use it to decode a trade that names no kind,
 * so they agree with store_batch_add. */
const kind *store_batch_symbol_kind(const store *s, const store_batch *b, const char *sym,
                                    size_t symlen);
/* Walk the symbols a staged (or reserved, not yet committed) batch names:
 * fn(ctx, index, sym, len) for its first trade and for each trade whose
 * symbol differs from the trade before it (index = the trade's position in
 * the batch; sym is not NUL-terminated). The first non-zero fn result
 * stops the walk and is returned; 0 when every call returned 0. Nothing
 * changes. A Kafka-fed node checks each record's symbols against its key
 * and partition this way, before reserve creates any symbol. */
typedef int (*store_symbol_fn)(void *ctx, uint32_t index, const char *sym, size_t len);
int store_batch_symbols(const store *s, const store_batch *b, store_symbol_fn fn, void *ctx);

/* ---- queries ----------------------------------------------------------- */

typedef struct store_agg {
    uint64_t count;
    unsigned __int128 volume;   /* sum of qty (qty >= 0), 1e-8 */
    __int128 notional;          /* sum of px*qty, 1e-16; signed: prices may be negative */
    int64_t open, high, low, close;
    int64_t first_ts, last_ts;  /* min and max ts */
} store_agg;

/* VWAP at 1e-8, rounded half away from zero (-0.000000005 -> -0.00000001,
 * as 0.000000005 -> 0.00000001); 0 when the volume is 0. */
int64_t store_agg_vwap(const store_agg *a);
/* Fold one trade into an aggregate (the one rule used by ingest and bars). */
void store_agg_add(store_agg *a, int64_t ts, int64_t px, int64_t qty);

typedef struct store_symbol_info {
    uint32_t id;
    char name[STORE_SYM_MAX + 1]; /* NUL-terminated */
    const kind *kind;
    store_agg agg;
    uint64_t pages;   /* pages in its chain */
} store_symbol_info;

int store_symbol(const store *s, const char *sym, size_t symlen, store_symbol_info *out);
int store_symbol_by_id(const store *s, uint32_t id, store_symbol_info *out);
/* Every symbol id is below this (ids are dense, from 0; ids of symbols with
 * no trade answer STORE_ENOTFOUND): walking 0 .. store_id_limit() - 1 with
 * store_symbol_by_id visits every symbol, including ones created meanwhile. */
uint32_t store_id_limit(const store *s);

/* Visit the records of `sym` with from <= ts < to, in arrival order, from
 * absolute record index `cursor` (0 = start). A record's absolute index is
 * its arrival number in the symbol (0 = the first it ever stored) and never
 * changes: retention drops and deletes remove records without renumbering
 * the others, and snapshots keep the numbers. So paging with *next never
 * skips a record that is still stored, nor returns one twice, whatever is
 * dropped or deleted between calls. Stops after `limit` matches (capped at
 * STORE_MAX_TRADES) or STORE_SCAN_BUDGET examined records; *next is the
 * cursor to resume at, STORE_CURSOR_END when the range is exhausted. Pages
 * whose [min_ts, max_ts] misses the range are skipped unread. The visitor
 * gets the packed slot (use k->unpack, or kind_trade_of for base slots).
 * STORE_EINVAL when from >= to or limit is 0. */
typedef void (*store_visit_fn)(void *ctx, const kind *k, const void *slot);
int store_scan(const store *s, const char *sym, size_t symlen, int64_t from, int64_t to,
               uint64_t cursor, uint32_t limit, store_visit_fn fn, void *ctx, uint64_t *next);

/* A symbol's span of absolute record indexes (store_scan cursors):
 * first = the index of its first record still stored, end = the index its
 * next record will get (its arrivals so far). Records in [first, end) are
 * stored but for deletes (tombstones, which scans skip); a reader at
 * position pos < first has lost [pos, first) to retention. A symbol whose
 * records are all dropped has first == end. STORE_ENOTFOUND for an id no
 * symbol holds (never created, or removed). Cost: one step per page. */
typedef struct store_span {
    uint64_t first, end;
    char name[STORE_SYM_MAX + 1]; /* NUL-terminated */
    uint8_t len;
    const kind *kind;
} store_span;
int store_symbol_span(const store *s, uint32_t id, store_span *out);

/* For a reserved batch (pids known), before its commit: fn(ctx, id) for
 * its first trade and each trade whose symbol differs from the one before
 * (so an id may come more than once). Lets the caller learn which symbols
 * a commit touches — subscriptions — without another lookup. */
void store_batch_ids(const store_batch *b, void (*fn)(void *ctx, uint32_t id), void *ctx);

/* store_scan for a reader that comes back (a subscription): *m, zeroed
 * before the first call and kept by the caller between calls for the same
 * symbol, remembers a page the chain will keep (one before the compaction
 * frontier, valid while nothing is dropped from the head), so the next
 * scan from a later cursor starts there instead of walking the chain
 * (2 KiB pages: a symbol of 1M trades has ~16,000) from its head. The
 * results are store_scan's. */
typedef struct store_mark {
    const void *pg;
    uint64_t base, first;
} store_mark;
int store_scan_mark(const store *s, const char *sym, size_t symlen, int64_t from, int64_t to,
                    uint64_t cursor, uint32_t limit, store_visit_fn fn, void *ctx,
                    uint64_t *next, store_mark *m);

/* OHLCV bars of `interval` ns aligned to multiples of interval (UTC epoch),
 * covering [from, to). Only bars holding trades are returned, in time order.
 * STORE_ELIMIT when the range spans more than max_bars (<= STORE_MAX_BARS)
 * intervals or its overlapping pages hold more than STORE_SCAN_BUDGET
 * records; STORE_EINVAL when interval <= 0, from >= to or max_bars is 0.
 * Timestamps are >= 0, so a negative `from` counts as 0. */
typedef struct store_bar {
    int64_t start;
    store_agg agg;
} store_bar;
int store_bars(const store *s, const char *sym, size_t symlen, int64_t from, int64_t to,
               int64_t interval, store_bar *out, uint32_t max_bars, uint32_t *nbars);

typedef enum store_by { STORE_BY_COUNT, STORE_BY_VOLUME, STORE_BY_NOTIONAL } store_by;
/* Up to n (<= STORE_MAX_TOP) symbol ids, largest first, ties by lower id. */
int store_top(const store *s, store_by by, uint32_t n, uint32_t *ids, uint32_t *nout);

/* ---- deletes ------------------------------------------------------------ */

/* Delete the records of `sym` with from <= ts < to; *deleted = how many.
 * STORE_ENOTFOUND when the symbol holds no trade, STORE_EINVAL when
 * from >= to. A deleted record becomes a tombstone in its slot (absolute
 * indexes stay: see store_scan); pages left with no live record are freed
 * from the head of the chain (the rest go when retention or a later delete
 * reaches them; the tail page stays for appends), and a symbol left with no
 * record at all gives back every page. Aggregates are refolded from what
 * stays, exactly as if only that had been ingested; the store's newest ts
 * is recomputed when the deleted records held it. A symbol emptied keeps
 * its kind (as after retention). Pending reservations stay valid.
 * Cost: reads every slot of the symbol once (the refold; about 1-4 ns a
 * record, so ~10-40 ms for 10M) plus, when newest ts is recomputed, one
 * look at each symbol: the caller runs it on a thread that may block. */
int store_delete_range(store *s, const char *sym, size_t symlen, int64_t from, int64_t to,
                       uint64_t *deleted);

typedef struct store_stats {
    uint64_t trades;       /* committed */
    uint64_t symbols;      /* with at least one trade */
    uint64_t batches;      /* committed */
    uint64_t pages;
    uint64_t bytes_cap;       /* max_memory */
    uint64_t bytes_reserved;  /* slab pages carved (live + free-listed) + index */
    uint64_t bytes_used;      /* page headers + used slots + index */
    uint64_t bytes_slots;     /* used slots only (a compact page's whole body) */
    uint64_t bytes_index;     /* symbol table + partitions */
    uint64_t bytes_pending;   /* reserved by batches not yet committed */
    uint64_t pages_compact;   /* of `pages`, compact ones (cpage.h) */
    double fill;              /* used slots / page bytes */
    int64_t newest_ts;        /* largest ts stored (kept by drops, recomputed by deletes); -1 = none */
} store_stats;
void store_get_stats(const store *s, store_stats *st);

/* ---- retention ----------------------------------------------------------- */

/* Drop old trades a whole page at a time: in each partition, the longest
 * run of pages from the head whose max_ts < cutoff (the tail page too when
 * no reserved batch is pending for the partition). Every trade with
 * ts >= cutoff stays; an older one stays while it shares a page with a
 * newer one or sits behind a page that does (out-of-order arrivals).
 *
 * Aggregates then cover the trades still stored, exactly as if only those
 * had been ingested (in the same order): count, volume and notional, and
 * open/high/low/close and first/last ts. A partition with nothing left
 * becomes invisible (as a symbol with no trade); its kind stays fixed.
 * Freed pages go back to the slab for reuse (reserved bytes do not shrink,
 * but reserve counts free pages: see store_batch_reserve).
 * Absolute record indexes (scan cursors) of the records kept do not change.
 *
 * Work is bounded: a call reads about `budget` records (a partition looked
 * at counts as STORE_DROP_PART_COST) and resumes where the previous call
 * stopped, round robin over the partitions; recomputing the aggregates of a
 * partition too large for one budget spreads over calls, its old aggregates
 * and pages staying in place (consistent) until the last one applies the
 * drop. r->done is set when a call completes a pass over every partition:
 * call again later (with a later cutoff); when not set, call again soon. */
#define STORE_DROP_PART_COST 8
typedef struct store_drop_result {
    uint64_t trades;     /* dropped by this call */
    uint64_t pages;      /* freed by this call */
    uint64_t partitions; /* partitions that lost pages in this call */
    uint64_t work;       /* records read + partitions looked at (weighted) */
    int done;            /* this call finished a pass over all partitions */
} store_drop_result;
int store_drop_before(store *s, int64_t cutoff, uint64_t budget, store_drop_result *r);

#endif
