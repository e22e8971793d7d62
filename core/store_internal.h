/* store_internal — the store's representation, shared by the files that
 * implement it: store.c (symbols, ingest, page growth, restore),
 * store_query.c (queries), store_retain.c (retention) and snapshot.c.
 * Not an API: nothing outside core/ includes it. See store.c for the
 * layout and the memory-cap argument. */
#ifndef SLOTD_STORE_INTERNAL_H
#define SLOTD_STORE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "slab.h"
#include "store.h"

#define STORE__BLOCK_SHIFT 8
#define STORE__BLOCK (1u << STORE__BLOCK_SHIFT)
#define STORE__TABLE_MIN 64u
#define STORE__DEFAULT_MEMORY ((size_t)1 << 30)
#define STORE__DEFAULT_SYMBOLS 1000000u
/* A chain page may be any free page of at least this many bytes: a freed
 * 640-byte page holding 19 trades under a 32-byte header beats a new 2 KiB
 * page while the free one strands. Measured with storebench: recycling every
 * size beats a 160-byte floor (W1-10k -0.3 B/trade) and no recycling
 * (W1 -1 B/trade). */
#define STORE__CHAIN_MIN 96u
#define STORE__LADDER_MAX 64
#define STORE__AHEAD 8 /* commit's prefetch distance, in entries */

/* A partition is two cache lines: reserve reads the first, commit both.
 * Its name lives apart, in the block's key array, read only by lookups. */
typedef struct part {
    slab_page *tail, *head; /* NULL until the first commit */
    uint32_t pending;       /* records of reserved, uncommitted batches */
    uint32_t resv8;         /* bytes / 8 those records may carve (store__need) */
    uint32_t npages;
    uint16_t room;          /* free slots in the tail page */
    uint8_t flags;          /* PART_* */
    uint8_t kind;           /* kind id, fixed when the symbol is created */
    store_agg agg;          /* committed trades only */
} part;

enum {
    PART_MARK = 1,    /* scratch flag for one pass over a batch */
    PART_CHAINED = 2, /* the next page is chained, not copied into */
};

/* A symbol as stored: length byte, name, zero padding to 32 bytes, so
 * hashing and comparing are a few word operations, no byte loops. */
typedef struct store_key {
    uint64_t w[4];
} store_key;

/* STORE__BLOCK partitions and their names; blocks never move. */
typedef struct store_block {
    part parts[STORE__BLOCK];
    store_key keys[STORE__BLOCK];
} store_block;

_Static_assert(sizeof(part) == 128, "a partition is two cache lines");
_Static_assert(sizeof(store_key) == STORE_SYM_MAX + 1, "length byte + name");

/* The pages a partition of one kind grows through: step i is the page it
 * moves to when the previous step's page is full. */
typedef struct store_ladder {
    uint32_t slot;   /* slot bytes of the kind */
    uint32_t capmax; /* slots in a max page */
    uint32_t n;
    uint32_t cap[STORE__LADDER_MAX], size[STORE__LADDER_MAX];
} store_ladder;

/* A staged trade in store_batch.buf. */
typedef struct store_entry {
    uint32_t pid;
    uint32_t size; /* slot bytes that follow */
} store_entry;


/* A drop (store_retain.c) in progress over one partition: the aggregates
 * of the pages it keeps are being recomputed, a budget at a time. */
typedef struct store_drop_state {
    int active;
    uint32_t pid;        /* the partition */
    slab_page *keep;     /* its first page to keep; the pages before it go */
    slab_page *pg;       /* next page to fold into agg */
    uint32_t i;          /* next slot of pg */
    store_agg agg;       /* of the kept slots before (pg, i), in arrival order */
} store_drop_state;

struct store {
    slab *slab;
    uint64_t cap;
    uint32_t max_symbols;
    uint32_t nparts;    /* created, visible or not */
    store_block **blocks;
    uint32_t nblocks, blocks_cap;
    uint32_t *touched;  /* scratch: one slot per partition (see store__pend) */
    uint64_t *table;    /* (hash << 32) | (id + 1); 0 = empty */
    uint32_t tmask;
    uint64_t trades, batches, visible, slot_bytes;
    uint64_t pending_bytes; /* sum of resv8 * 8 */
    uint32_t nreserved;     /* batches reserved and not yet committed/released */
    int64_t newest_ts;      /* largest ts ever committed or restored; -1 = none */
    uint32_t drop_next;     /* retention: the next partition to look at */
    store_drop_state drop;
    store_ladder ladder[KIND_MAX];
};

static inline part *store__part(const store *s, uint32_t id)
{
    return &s->blocks[id >> STORE__BLOCK_SHIFT]->parts[id & (STORE__BLOCK - 1)];
}

static inline const store_key *store__key_at(const store *s, uint32_t id)
{
    return &s->blocks[id >> STORE__BLOCK_SHIFT]->keys[id & (STORE__BLOCK - 1)];
}

/* The rule, inlined into commit and bars; store_agg_add is the same code. */
static inline void store__agg_add(store_agg *a, int64_t ts, int64_t px, int64_t qty)
{
    if (a->count == 0) {
        a->open = a->high = a->low = a->close = px;
        a->first_ts = a->last_ts = ts;
    } else {
        if (px > a->high)
            a->high = px;
        if (px < a->low)
            a->low = px;
        if (ts < a->first_ts) { /* ties keep the first arrival */
            a->first_ts = ts;
            a->open = px;
        }
        if (ts >= a->last_ts) { /* ties take the last arrival */
            a->last_ts = ts;
            a->close = px;
        }
    }
    a->count++;
    a->volume += (uint64_t)qty;
    a->notional += (unsigned __int128)(uint64_t)px * (uint64_t)qty;
}

/* The partition of `sym`, visible or not (id set when found). */
const part *store__lookup(const store *s, const char *sym, size_t len, uint32_t *id);
/* Bytes of the symbol table and partition blocks (counted against the cap). */
uint64_t store__index_bytes(const store *s);

/* ---- restore (snapshot.c) ----------------------------------------------
 * Rebuilds a store partition by partition, in id order, into a store that
 * has never ingested anything. Pages are sized for the partition's final
 * count (one page of the right class while it fits, else max pages and a
 * tail page sized to the remainder), so a restored store takes no more
 * memory than the one it was taken from. */

/* Create the next partition id for `sym` of kind k. STORE_ESYMBOL,
 * STORE_ESYMLIMIT, STORE_ENOMEM, or STORE_EINVAL when the name exists. */
int store__restore_part(store *s, const char *sym, size_t len, const kind *k, uint32_t *id);
/* Where the next slots of partition `id` go, and how many fit there
 * (*room >= 1), `left` being the slots still to restore for it. NULL when
 * the memory cap is reached. */
void *store__restore_room(store *s, uint32_t id, uint64_t left, uint32_t *room);
/* Account the n slots just written at the room pointer: page count and
 * min/max ts, the partition's aggregates (folded in arrival order, as
 * ingest does), the store's counters. */
void store__restore_fill(store *s, uint32_t id, uint32_t n);

#endif
