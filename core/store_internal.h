/* store_internal — the store's representation, shared by the files that
 * implement it: store.c (symbols, restore), store_ingest.c (ingest, page
 * growth), store_query.c (queries), store_retain.c (retention) and
 * snapshot.c.
 * Not an API: nothing outside core/ includes it. See store.c for the
 * layout and the memory-cap argument. */
#ifndef SLOTD_STORE_INTERNAL_H
#define SLOTD_STORE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

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
    uint32_t resv;          /* what those records may ask of the slab, packed
                             * (store_ingest.c: store__need, STORE__RESV_*) */
    uint32_t npages;
    uint16_t room;          /* free slots in the tail page */
    uint8_t flags;          /* PART_* */
    uint8_t kind;           /* kind id, fixed when the symbol is created */
    store_agg agg;          /* committed trades only */
} part;

enum {
    PART_MARK = 1,    /* scratch flag for one pass over a batch */
    PART_CHAINED = 2, /* the next page is chained, not copied into */
    PART_FRESH = 4,   /* created by a reserve, no batch committed to it yet */
    PART_GONE = 8,    /* removed (a released batch's fresh symbol): its id is
                       * not in the table, holds nothing, and is never reused */
};

/* A deleted record stays in its slot as a tombstone, ts all ones (no valid
 * ts is above INT64_MAX, so read as int64 it is negative): records keep
 * their positions, so absolute indexes (scan cursors) stay valid. */
#define STORE__DEAD_TS UINT64_MAX
static inline int store__dead(int64_t ts) { return ts < 0; }

/* ---- compact pages (store_compact.c) --------------------------------------
 * A page of a chain that has filled and been chained past is sealed: its
 * slots never change again but for deletes. Compaction re-encodes it as a
 * compact page (cpage.h) of a smaller class and relinks it in its place;
 * the bit below in slab_page.size tells every reader. Slots are read
 * through store__slots, the one accessor: a wide page's own slots, a
 * compact page's decoded into the caller's buffer. */
#define STORE__CPAGE 0x80000000u /* in slab_page.size: the body is a compact page */
#define STORE__PAGE_BUF 2048     /* bytes of wide slots a page can hold, at least */

static inline int store__is_compact(const slab_page *pg) { return (pg->size & STORE__CPAGE) != 0; }

/* Decode compact page pg's records [from, count) into buf (at their own
 * offsets: slot i at buf + i * k->size); returns buf. */
const unsigned char *store__decode(const slab_page *pg, const kind *k, uint32_t from,
                                   unsigned char *buf);

/* Page pg's slots from `from` on as wide records: slot i (i >= from) at
 * the result + i * k->size. buf: STORE__PAGE_BUF bytes, 8-aligned. */
static inline const unsigned char *store__slots(const slab_page *pg, const kind *k, uint32_t from,
                                                unsigned char *buf)
{
    if (__builtin_expect(!store__is_compact(pg), 1))
        return pg->slots;
    return store__decode(pg, k, from, buf);
}

/* Make slot i of pg a tombstone (ts all ones), wide or compact: O(1). */
void store__kill(slab_page *pg, uint32_t i, size_t slot);
/* The bytes pg's used slots take (a compact page: its body). */
size_t store__page_bytes(const slab_page *pg, size_t slot);
/* Give pg back to the slab (clearing the compact mark), with the counts. */
void store__page_free(store *s, slab_page *pg);
/* Compact partition id's sealed pages past its frontier (no-op when the
 * store is plain). Bounded by the pages sealed since the last call: one per
 * chained page in steady state. Never fails: a page that does not
 * compress, or finds no memory, stays wide. `sealed`: the page the caller
 * has just sealed (the tail's predecessor), or NULL. */
void store__compact_part(store *s, uint32_t id, slab_page *sealed);
/* Could `bytes` be carved now without breaking a reservation? (store_ingest.c,
 * "memory cap"; compaction's allocation rule) */
int store__can_carve(const store *s, uint64_t bytes);

/* A symbol as stored: length byte, name, zero padding to 32 bytes, so
 * hashing and comparing are a few word operations, no byte loops. */
typedef struct store_key {
    uint64_t w[4];
} store_key;

/* STORE__BLOCK partitions and their names; blocks never move. first[i]
 * is the absolute index (arrival number, 0 = the partition's first record
 * ever) of the first slot of partition i's head page: the chain's slots
 * have consecutive indexes from it, since pages only leave from the head
 * (retention, deletes) or all at once (first moves past the end). Kept
 * apart from the partition: ingest never reads or writes it. */
typedef struct store_block {
    part parts[STORE__BLOCK];
    store_key keys[STORE__BLOCK];
    uint64_t first[STORE__BLOCK];
    /* end[i]: one past the absolute index of partition i's last record
     * (its arrivals): first[i] + the chain's counts, kept by commit and
     * restore so that readers at the tail (subscriptions) find it, and the
     * tail page (at end - tail->count), without walking the chain. */
    uint64_t end[STORE__BLOCK];
    /* Compaction's frontier (store_compact.c), one entry per partition:
     * page, the last page of partition i that compaction has dealt with
     * (compacted, or left wide); the pages after it up to the tail are
     * sealed and wide. NULL: none yet, start at the head. end, the
     * absolute index one past that page's last slot (its slot 0's is
     * end - page->count), or STORE__CEND_UNKNOWN (restore sets the
     * frontier without it; the next compaction pass finds it). The chain
     * from the frontier to the tail is a few pages, and the pages before
     * it never move but for drops from the head, so a scan from a cursor
     * at or past the frontier starts there instead of walking from the
     * head (store_scan). Both words share a line, and compaction needs
     * nothing else from the frontier page in steady state (its header is a
     * cold line: store_compact.c). */
    struct {
        slab_page *page;
        uint64_t end;
    } cfront[STORE__BLOCK];
} store_block;

/* A symbol table entry. The key's first word and the partition's kind
 * ride in it so that ingest's lookup of a known `trade` symbol of up to 7
 * bytes reads one line: at 10,000 symbols the table, the key array and the
 * partitions were three cache misses per trade (perf: ~18% of the loop). */
typedef struct store_tabent {
    uint64_t w0;   /* the key's first word: length byte and name bytes 0-6 */
    uint32_t hash; /* store__key_make's */
    uint32_t ref;  /* id + 1, | STORE__REF_OTHER unless the kind is `trade`; 0 = empty */
} store_tabent;
#define STORE__REF_OTHER 0x80000000u /* ids stay below STORE__NEW (bit 31) */

static inline uint32_t store__ref_id(uint32_t ref) { return (ref & ~STORE__REF_OTHER) - 1; }

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
    uint32_t pid;  /* partition id, or STORE__NEW | index into the batch's syms */
    uint32_t size; /* slot bytes that follow */
} store_entry;

/* A staged entry's id names a symbol new in its batch until reserve creates
 * it. Ids stay below this bit: max_symbols is capped under it. */
#define STORE__NEW 0x80000000u

/* A symbol a staged batch introduces (store_batch.syms). */
typedef struct store_newsym {
    store_key key;
    uint32_t hash; /* store__key_make's */
    uint32_t pid;  /* its partition, once reserve has created it */
    uint8_t kind;
} store_newsym;


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
    uint32_t nparts;    /* created, visible or not, PART_GONE included */
    uint32_t ngone;     /* PART_GONE ids below nparts (only ever the last ids
                         * are handed back) */
    store_block **blocks;
    uint32_t nblocks, blocks_cap;
    uint32_t *touched;  /* scratch: one slot per partition (see store__pend) */
    store_tabent *table; /* ref 0 = empty */
    uint32_t tmask;
    uint64_t trades, batches, visible, slot_bytes;
    uint64_t pending_bytes; /* page bytes the reservations may carve (sum of
                             * their growth steps and max pages) */
    /* The same reservations as slab requests (store_ingest.c, "memory
     * cap"): growth steps per slab class, and records bound for chained
     * pages per kind with the number of partitions holding such records. */
    uint64_t dem_steps[SLAB_NCLASSES];
    uint64_t dem_chain[KIND_MAX];
    uint64_t dem_chain_parts;
    uint32_t nreserved;     /* batches reserved and not yet committed/released */
    int64_t newest_ts;      /* largest ts ever committed or restored; -1 = none */
    int compact;            /* compact sealed pages (store_config.plain unset) */
    uint64_t compact_pages; /* live compact pages */
    uint32_t drop_next;     /* retention: the next partition to look at */
    store_drop_state drop;
    store_ladder ladder[KIND_MAX];
};

static inline part *store__part(const store *s, uint32_t id)
{
    return &s->blocks[id >> STORE__BLOCK_SHIFT]->parts[id & (STORE__BLOCK - 1)];
}

static inline uint64_t *store__first(const store *s, uint32_t id)
{
    return &s->blocks[id >> STORE__BLOCK_SHIFT]->first[id & (STORE__BLOCK - 1)];
}

static inline uint64_t *store__end(const store *s, uint32_t id)
{
    return &s->blocks[id >> STORE__BLOCK_SHIFT]->end[id & (STORE__BLOCK - 1)];
}

#define STORE__CEND_UNKNOWN UINT64_MAX
static inline uint64_t *store__cend(const store *s, uint32_t id)
{
    return &s->blocks[id >> STORE__BLOCK_SHIFT]->cfront[id & (STORE__BLOCK - 1)].end;
}

static inline slab_page **store__cfront(const store *s, uint32_t id)
{
    return &s->blocks[id >> STORE__BLOCK_SHIFT]->cfront[id & (STORE__BLOCK - 1)].page;
}

static inline const store_key *store__key_at(const store *s, uint32_t id)
{
    return &s->blocks[id >> STORE__BLOCK_SHIFT]->keys[id & (STORE__BLOCK - 1)];
}

/* ---- keys and the symbol table (store.c, store_ingest.c) -------------- */

static inline uint64_t store__hash_word(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0xff51afd7ed558ccdULL;
    return h ^ (h >> 32);
}

static inline uint32_t store__hash_end(uint64_t h)
{
    h *= 0xc4ceb9fe1a85ec53ULL;
    return (uint32_t)(h ^ (h >> 29));
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define STORE__SHORT_KEYS 1
/* The first two key words of a name of 1-15 bytes (the other two are zero):
 * every ingested trade comes through here, so it is built in registers from
 * overlapping loads of exactly sym[0..len), with no memset or memcpy call. */
static inline void store__key2(const char *sym, size_t len, uint64_t *w0, uint64_t *w1)
{
    const unsigned char *p = (const unsigned char *)sym;
    uint64_t lo, hi = 0; /* name bytes 0-7, 8-14 */
    uint32_t a, c;
    if (len >= 8) {
        memcpy(&lo, p, 8);
        memcpy(&hi, p + len - 8, 8); /* bytes len-8 .. len-1 */
        hi = (hi >> 8) >> (8 * (15 - len));
    } else if (len >= 4) {
        memcpy(&a, p, 4);
        memcpy(&c, p + len - 4, 4);
        lo = a | (uint64_t)c << (8 * (len - 4));
    } else {
        lo = p[0] | (uint64_t)p[len / 2] << (8 * (len / 2)) |
             (uint64_t)p[len - 1] << (8 * (len - 1));
    }
    *w0 = len | lo << 8;
    *w1 = lo >> 56 | hi << 8;
}

/* store__key_make's hash of such a key: it covers the words holding it. */
static inline uint32_t store__hash2(uint64_t w0, uint64_t w1, size_t len)
{
    uint64_t h = store__hash_word(0x9e3779b97f4a7c15ULL, w0);
    return store__hash_end(len >= 8 ? store__hash_word(h, w1) : h);
}
#endif

/* Caller has checked 1 <= len <= STORE_SYM_MAX. */
static inline uint32_t store__key_make(store_key *k, const char *sym, size_t len)
{
#ifdef STORE__SHORT_KEYS
    if (len <= 15) {
        store__key2(sym, len, &k->w[0], &k->w[1]);
        k->w[2] = k->w[3] = 0;
        return store__hash2(k->w[0], k->w[1], len);
    }
#endif
    unsigned char *b = (unsigned char *)k->w;
    memset(k->w, 0, sizeof k->w);
    b[0] = (unsigned char)len;
    memcpy(b + 1, sym, len);
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0, n = (len + 8) / 8; i < n; i++) /* words holding the key */
        h = store__hash_word(h, k->w[i]);
    return store__hash_end(h);
}

static inline int store__key_eq(const store_key *a, const store_key *b)
{
    return ((a->w[0] ^ b->w[0]) | (a->w[1] ^ b->w[1]) | (a->w[2] ^ b->w[2]) |
            (a->w[3] ^ b->w[3])) == 0;
}

/* The id of the key, or -1 with *pos the empty slot where it would go. */
static inline int64_t store__find(const store *s, const store_key *k, uint32_t h, uint32_t *pos)
{
    for (uint32_t i = h & s->tmask;; i = (i + 1) & s->tmask) {
        const store_tabent *e = &s->table[i];
        if (e->ref == 0) {
            if (pos)
                *pos = i;
            return -1;
        }
        /* Equal first words of names of up to 7 bytes are equal names. */
        if (e->hash == h && e->w0 == k->w[0] &&
            ((k->w[0] & 0xff) <= 7 || store__key_eq(store__key_at(s, store__ref_id(e->ref)), k)))
            return store__ref_id(e->ref);
    }
}

/* store__key_make's hash of a key already made. */
static inline uint32_t store__key_hash(const store_key *k)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0, n = ((k->w[0] & 0xff) + 8) / 8; i < n; i++)
        h = store__hash_word(h, k->w[i]);
    return store__hash_end(h);
}

/* Make `n` the tail. A page that holds a max page's worth of slots ends the
 * growing phase: from then on pages are chained. */
static inline void store__set_tail(part *p, const store_ladder *l, slab_page *n)
{
    uint32_t cap = slab_page_cap(n, l->slot);
    p->tail = n;
    p->room = (uint16_t)(cap - n->count);
    if (cap >= l->capmax)
        p->flags |= PART_CHAINED;
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
    /* |px * qty| < 2^63 * 2^62 fits; the sum wraps (two's complement, no
     * UB) only past ~4 trades at both limits, which no history reaches. */
    a->notional = (__int128)((unsigned __int128)a->notional +
                             (unsigned __int128)((__int128)px * qty));
}

/* 1-31 bytes of valid UTF-8 without control characters. */
int store__valid_symbol(const unsigned char *sym, size_t n);
/* Create the next partition id for a key not in the table, `pos` being the
 * empty slot store__find gave for it. STORE_ESYMLIMIT or STORE_ENOMEM. */
int store__create(store *s, const store_key *key, uint32_t h, uint32_t pos, uint8_t kid,
                  uint32_t *id);
/* Remove partitions base .. nparts-1, the last ones created, which must be
 * empty and referenced by nothing: ids and table entries as before their
 * creation (the table keeps its size). */
void store__pop(store *s, uint32_t base);
/* Remove partition `id`, empty and fresh: out of the table (its name may be
 * created again, under a new id), marked PART_GONE. Then store__trim pops
 * the trailing gone ids (and blocks). Ids in the middle stay as holes so
 * that the order of the others (top-N ties, snapshot order) is creation
 * order, as a replay makes it. */
void store__forget(store *s, uint32_t id);
void store__trim(store *s);


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
/* A compact page of `bytes` body bytes holding n records, linked as the
 * tail of partition id (room 0: the next slots go to a new page); returns
 * its body for the caller to fill, NULL at the memory cap (or when n or
 * bytes could not be a compact page's). Then store__restore_cfill accounts
 * it as store__restore_fill does, or returns STORE_EINVAL when the body is
 * not a valid compact page of n records. */
void *store__restore_cpage(store *s, uint32_t id, size_t bytes, uint32_t n);
int store__restore_cfill(store *s, uint32_t id, size_t bytes, uint32_t n);
/* End the tail page here: the next slots go to a new page (a version 3
 * snapshot keeps page boundaries, so compaction finds the same pages). */
void store__restore_seal(store *s, uint32_t id);
/* The partition is complete: compact its sealed pages (a snapshot written
 * before compaction, or by a plain store, comes back compact). */
void store__restore_done(store *s, uint32_t id);

#endif
