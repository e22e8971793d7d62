/* store — symbol table, per-symbol partitions of slab pages, aggregates,
 * two-phase ingest and bounded queries.
 *
 * The symbol table maps a name to a dense id; the id indexes blocks of
 * partition records (blocks never move, so a partition pointer stays valid
 * while new symbols are created, and the index wastes at most one block):
 *
 *   table: open addressing,          blocks[id >> 8]: parts[256], keys[256]
 *   linear probing, <= 3/4 full      part (128 B, two cache lines)
 *   +-------------------+            +---------------------------------------+
 *   | hash32 | id+1     |---id------>| tail, head -> pages (below)           |
 *   | 0 = empty         |            | pending, resv8: reserved batches      |
 *   +-------------------+            | npages, room, flags, kind             |
 *                                    | agg: count volume notional ohlc ts    |
 *                                    +---------------------------------------+
 *                                    key (32 B): len, name[31], zero padding
 *
 * A partition's records live in slab pages, in arrival order. While it is
 * small it has one page, which is copied into the next larger class when it
 * fills (the old page goes back to the slab's free list for the next small
 * partition); once that page is a max page, pages are chained:
 *
 *   growing: head == tail               chained
 *   +--------+-------------+            +--------+----------+   +--------+-------+
 *   | header | s0 s1 .. sN |            | header | full     |-->| header | s.. __|
 *   +--------+-------------+            +--------+----------+   +--------+-------+
 *    96 -> 128 -> 160 -> ... -> 2048     max page (2 KiB)        tail: a recycled
 *    bytes, ~x9/8 (slab.c)                                       free page or a max page
 *
 * Each page header carries min_ts/max_ts over its slots, so scans and bars
 * skip pages that miss the range without reading them.
 *
 * Memory cap. A reserved batch holds, per touched partition, the bytes the
 * growth policy could carve for all of that partition's pending records
 * (store__need: walk the class ladder from the real tail, then whole max
 * pages). Requests the commit makes are a subset of that walk whatever page
 * the slab actually hands out (a larger recycled page only skips steps; a
 * recycled chain page carves nothing), so slab bytes + index bytes + all
 * reservations <= cap guarantees commit never fails. No extra margin for
 * chunk granularity is needed: the slab caps carved page bytes and maps one
 * spare chunk per class, so a partly carved chunk costs no cap and no RSS.
 */
#include "store.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "slab.h"

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
    store_ladder ladder[KIND_MAX];
};

/* ---- small helpers ------------------------------------------------------ */

static inline part *store__part(const store *s, uint32_t id)
{
    return &s->blocks[id >> STORE__BLOCK_SHIFT]->parts[id & (STORE__BLOCK - 1)];
}

static inline const store_key *store__key_at(const store *s, uint32_t id)
{
    return &s->blocks[id >> STORE__BLOCK_SHIFT]->keys[id & (STORE__BLOCK - 1)];
}

static inline const store_entry *store__entry_at(const store_batch *b, size_t off)
{
    return (const store_entry *)(b->buf + off);
}

/* One stage of commit's prefetch pipeline for the entry at *off, which
 * then moves on to the next entry. */
static inline void store__prefetch(const store *s, const store_batch *b, size_t *off, int stage)
{
    if (*off == 0 || *off >= b->len)
        return;
    const store_entry *e = store__entry_at(b, *off);
    const part *p = store__part(s, e->pid);
    if (stage == 2) {
        __builtin_prefetch(p, 1);
        __builtin_prefetch((const char *)p + 64, 1);
    } else if (stage == 1 && p->tail) {
        __builtin_prefetch(p->tail, 1);
    } else if (stage == 0 && p->room) {
        __builtin_prefetch(p->tail->slots + (size_t)p->tail->count * e->size, 1);
    }
    *off += sizeof *e + e->size;
}

static uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

const char *store_strerror(int rc)
{
    switch (rc) {
    case STORE_OK: return "ok";
    case STORE_EFULL: return "STORE_FULL: the memory cap would be exceeded";
    case STORE_ESYMBOL: return "symbol must be 1-31 bytes of UTF-8 without control characters";
    case STORE_EKIND: return "symbol already holds another record kind";
    case STORE_ESYMLIMIT: return "too many distinct symbols";
    case STORE_ENOMEM: return "out of memory for the symbol table";
    case STORE_ENOTFOUND: return "no such symbol";
    case STORE_EINVAL: return "invalid query parameter";
    case STORE_ELIMIT: return "query exceeds a work bound: narrow it";
    }
    return "unknown store error";
}

/* ---- aggregates --------------------------------------------------------- */

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

void store_agg_add(store_agg *a, int64_t ts, int64_t px, int64_t qty)
{
    store__agg_add(a, ts, px, qty);
}

int64_t store_agg_vwap(const store_agg *a)
{
    if (a->volume == 0)
        return 0;
    /* notional is at 1e-16, volume at 1e-8: the quotient is at 1e-8. */
    unsigned __int128 q = a->notional / a->volume, r = a->notional % a->volume;
    if (r >= a->volume - r) /* r >= volume / 2, without overflow: half up */
        q++;
    return (int64_t)q;
}

/* ---- symbols ------------------------------------------------------------ */

/* Valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF) and
 * no C0, DEL or C1 control characters: names end up in logs, JSON and
 * Prometheus labels. */
static int store__valid_symbol(const unsigned char *s, size_t n)
{
    if (n == 0 || n > STORE_SYM_MAX)
        return 0;
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return 0;
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf)
            len = 2, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            len = 3, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            len = 4, cp = c & 0x07;
        else
            return 0; /* stray continuation, overlong lead C0/C1, or F5+ */
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp <= 0x9f)
            return 0;
        i += len;
    }
    return 1;
}

/* Caller has checked 1 <= len <= STORE_SYM_MAX. */
static uint32_t store__key_make(store_key *k, const char *sym, size_t len)
{
    unsigned char *b = (unsigned char *)k->w;
    memset(k->w, 0, sizeof k->w);
    b[0] = (unsigned char)len;
    memcpy(b + 1, sym, len);
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0, n = (len + 8) / 8; i < n; i++) { /* words holding the key */
        h = (h ^ k->w[i]) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    h *= 0xc4ceb9fe1a85ec53ULL;
    return (uint32_t)(h ^ (h >> 29));
}

static int store__key_eq(const store_key *a, const store_key *b)
{
    return ((a->w[0] ^ b->w[0]) | (a->w[1] ^ b->w[1]) | (a->w[2] ^ b->w[2]) |
            (a->w[3] ^ b->w[3])) == 0;
}

/* The id of the key, or -1 with *pos the empty slot where it would go. */
static int64_t store__find(const store *s, const store_key *k, uint32_t h, uint32_t *pos)
{
    for (uint32_t i = h & s->tmask;; i = (i + 1) & s->tmask) {
        uint64_t e = s->table[i];
        if (e == 0) {
            if (pos)
                *pos = i;
            return -1;
        }
        if ((uint32_t)(e >> 32) == h && store__key_eq(store__key_at(s, (uint32_t)e - 1), k))
            return (uint32_t)e - 1;
    }
}

static const part *store__lookup(const store *s, const char *sym, size_t len, uint32_t *id)
{
    store_key k;
    if (len == 0 || len > STORE_SYM_MAX)
        return NULL;
    uint32_t h = store__key_make(&k, sym, len);
    int64_t found = store__find(s, &k, h, NULL);
    if (found < 0)
        return NULL;
    if (id)
        *id = (uint32_t)found;
    return store__part(s, (uint32_t)found);
}

static int store__table_grow(store *s)
{
    uint32_t n = (s->tmask + 1) * 2;
    uint64_t *t = calloc(n, sizeof *t);
    if (!t)
        return STORE_ENOMEM;
    for (uint32_t i = 0; i <= s->tmask; i++) {
        uint64_t e = s->table[i];
        if (!e)
            continue;
        uint32_t j = (uint32_t)(e >> 32) & (n - 1);
        while (t[j])
            j = (j + 1) & (n - 1);
        t[j] = e;
    }
    free(s->table);
    s->table = t;
    s->tmask = n - 1;
    return STORE_OK;
}

static int store__block_add(store *s)
{
    if (s->nblocks == s->blocks_cap) {
        uint32_t n = s->blocks_cap ? s->blocks_cap * 2 : 16;
        store_block **b = realloc(s->blocks, n * sizeof *b);
        if (!b)
            return STORE_ENOMEM;
        s->blocks = b;
        s->blocks_cap = n;
    }
    /* Grown with the blocks, so reserve never has to allocate. */
    uint32_t *t = realloc(s->touched, (size_t)(s->nblocks + 1) * STORE__BLOCK * sizeof *t);
    if (!t)
        return STORE_ENOMEM;
    s->touched = t;
    /* Cache-line aligned, so each partition is exactly two lines. */
    store_block *blk = aligned_alloc(64, sizeof *blk);
    if (!blk)
        return STORE_ENOMEM;
    s->blocks[s->nblocks++] = blk;
    return STORE_OK;
}

static int store__create(store *s, const char *sym, size_t len, const store_key *key,
                         uint32_t h, uint32_t pos, const kind *k, uint32_t *id)
{
    int rc;
    if (!store__valid_symbol((const unsigned char *)sym, len))
        return STORE_ESYMBOL;
    if (s->nparts >= s->max_symbols)
        return STORE_ESYMLIMIT;
    if ((uint64_t)(s->nparts + 1) * 4 > (uint64_t)(s->tmask + 1) * 3) {
        if ((rc = store__table_grow(s)) != STORE_OK)
            return rc;
        store__find(s, key, h, &pos);
    }
    if (s->nparts == s->nblocks * STORE__BLOCK && (rc = store__block_add(s)) != STORE_OK)
        return rc;
    *id = s->nparts++;
    part *p = store__part(s, *id);
    memset(p, 0, sizeof *p);
    p->kind = k->id;
    s->blocks[*id >> STORE__BLOCK_SHIFT]->keys[*id & (STORE__BLOCK - 1)] = *key;
    s->table[pos] = (uint64_t)h << 32 | (*id + 1);
    return STORE_OK;
}

const kind *store_symbol_kind(const store *s, const char *sym, size_t symlen)
{
    /* Also for a symbol with no committed trade yet: its kind is already
     * fixed, and decoders must agree with store_batch_add. */
    const part *p = store__lookup(s, sym, symlen, NULL);
    return p ? kind_by_id(p->kind) : NULL;
}

/* ---- open / close ------------------------------------------------------- */

static int store__ladder_build(store_ladder *l, uint32_t slot)
{
    size_t maxp = slab_max_page();
    if (slot == 0 || SLAB_PAGE_HEADER + slot > maxp)
        return STORE_EINVAL;
    l->slot = slot;
    l->capmax = (uint32_t)((maxp - SLAB_PAGE_HEADER) / slot);
    l->n = 0;
    if (l->capmax > UINT16_MAX) /* part.room */
        return STORE_EINVAL;
    for (uint64_t have = 0; have < l->capmax;) {
        size_t z = slab_class_size(SLAB_PAGE_HEADER + (have + 1) * slot);
        if (z == 0 || l->n == STORE__LADDER_MAX)
            return STORE_EINVAL;
        have = (z - SLAB_PAGE_HEADER) / slot;
        l->cap[l->n] = (uint32_t)have;
        l->size[l->n++] = (uint32_t)z;
    }
    return STORE_OK;
}

int store_open(store **out, const store_config *cfg)
{
    *out = NULL;
    store *s = calloc(1, sizeof *s);
    if (!s)
        return STORE_ENOMEM;
    s->cap = cfg && cfg->max_memory ? cfg->max_memory : STORE__DEFAULT_MEMORY;
    s->max_symbols = cfg && cfg->max_symbols ? cfg->max_symbols : STORE__DEFAULT_SYMBOLS;
    if (s->max_symbols > UINT32_MAX - 1)
        s->max_symbols = UINT32_MAX - 1;
    int rc = STORE_OK;
    for (unsigned i = 0; i < kind_count() && rc == STORE_OK; i++)
        rc = store__ladder_build(&s->ladder[i], kind_by_id(i)->size);
    if (rc != STORE_OK)
        goto fail;
    rc = STORE_ENOMEM;
    s->table = calloc(STORE__TABLE_MIN, sizeof *s->table);
    if (!s->table || slab_open(&s->slab, s->cap) != 0)
        goto fail;
    s->tmask = STORE__TABLE_MIN - 1;
    *out = s;
    return STORE_OK;
fail:
    store_close(s);
    return rc;
}

void store_close(store *s)
{
    if (!s)
        return;
    for (uint32_t i = 0; i < s->nblocks; i++)
        free(s->blocks[i]);
    free(s->blocks);
    free(s->touched);
    free(s->table);
    slab_close(s->slab);
    free(s);
}

static uint64_t store__index_bytes(const store *s)
{
    return sizeof *s + (uint64_t)s->nblocks * (sizeof(store_block) + STORE__BLOCK * 4) +
           (uint64_t)s->blocks_cap * sizeof(store_block *) +
           ((uint64_t)s->tmask + 1) * sizeof(uint64_t);
}

/* ---- page growth -------------------------------------------------------- */

/* Bytes appending `n` records to `p` could carve from the slab, whatever
 * free pages the slab hands out (see the top of the file). Reads only the
 * partition, not its pages. */
static uint64_t store__need(const store *s, const part *p, uint64_t n)
{
    const store_ladder *l = &s->ladder[p->kind];
    uint64_t maxp = slab_max_page();
    if (n <= p->room)
        return 0;
    if (p->flags & PART_CHAINED)
        return ceil_div(n - p->room, l->capmax) * maxp;
    /* Growing: the one page holds every record, so its capacity is
     * count + room (0 with no page yet). */
    uint64_t have = p->agg.count + p->room, total = p->agg.count + n, bytes = 0;
    for (uint32_t i = 0; i < l->n && total > have; i++) {
        if (l->cap[i] <= have) /* a larger recycled page skipped this step */
            continue;
        bytes += l->size[i];
        have = l->cap[i];
    }
    if (total > have)
        bytes += ceil_div(total - have, l->capmax) * maxp;
    return bytes;
}

/* Set p's reservation to `bytes`, keeping the store's total in step. */
static int store__set_resv(store *s, part *p, uint64_t bytes)
{
    uint64_t r8 = bytes >> 3; /* page sizes are multiples of 8 */
    int over = r8 > UINT32_MAX;
    if (over)
        r8 = UINT32_MAX;
    s->pending_bytes = s->pending_bytes - ((uint64_t)p->resv8 << 3) + (r8 << 3);
    p->resv8 = (uint32_t)r8;
    return over;
}

/* Make `n` the tail. A page that holds a max page's worth of slots ends the
 * growing phase: from then on pages are chained. */
static void store__set_tail(part *p, const store_ladder *l, slab_page *n)
{
    uint32_t cap = slab_page_cap(n, l->slot);
    p->tail = n;
    p->room = (uint16_t)(cap - n->count);
    if (cap >= l->capmax)
        p->flags |= PART_CHAINED;
}

/* Give the tail room for one more record. The reservation guarantees the
 * slab has the page; running out anyway is a broken invariant, and storing
 * past it would corrupt memory, so it aborts. */
static void store__grow(store *s, part *p, const store_ladder *l)
{
    slab_page *t = p->tail, *n;
    if (!t) {
        if (!(n = slab_alloc(s->slab, SLAB_PAGE_HEADER + l->slot)))
            abort();
        p->head = n;
        p->npages = 1;
    } else if (!(p->flags & PART_CHAINED)) {
        uint32_t cap = slab_page_cap(t, l->slot);
        if (!(n = slab_alloc(s->slab, SLAB_PAGE_HEADER + (size_t)(cap + 1) * l->slot)))
            abort();
        memcpy(n->slots, t->slots, (size_t)t->count * l->slot);
        n->count = t->count;
        n->min_ts = t->min_ts;
        n->max_ts = t->max_ts;
        slab_free(s->slab, t);
        p->head = n;
    } else {
        size_t min = SLAB_PAGE_HEADER + l->slot;
        if (!(n = slab_alloc_reuse(s->slab, min > STORE__CHAIN_MIN ? min : STORE__CHAIN_MIN,
                                   slab_max_page())))
            abort();
        t->next = n;
        p->npages++;
    }
    store__set_tail(p, l, n);
}

static inline void store__append(store *s, part *p, const store_ladder *l, const void *slot,
                                 int64_t ts)
{
    if (p->room == 0)
        store__grow(s, p, l);
    slab_page *t = p->tail;
    unsigned char *dst = t->slots + (size_t)t->count * l->slot;
    /* Constant sizes let the compiler emit two or three vector moves. */
    if (l->slot == sizeof(trade))
        memcpy(dst, slot, sizeof(trade));
    else if (l->slot == sizeof(option_trade))
        memcpy(dst, slot, sizeof(option_trade));
    else
        memcpy(dst, slot, l->slot);
    if (t->count == 0) {
        t->min_ts = t->max_ts = ts;
    } else {
        if (ts < t->min_ts)
            t->min_ts = ts;
        if (ts > t->max_ts)
            t->max_ts = ts;
    }
    t->count++;
    p->room--;
}

/* ---- ingest ------------------------------------------------------------- */

void store_batch_init(store_batch *b) { memset(b, 0, sizeof *b); }

void store_batch_free(store_batch *b)
{
    free(b->buf);
    memset(b, 0, sizeof *b);
}

void store_batch_reset(store_batch *b)
{
    b->len = 0;
    b->n = 0;
    b->need = 0;
}

int store_batch_add(store *s, store_batch *b, const char *sym, size_t symlen, const kind *k,
                    const int64_t *v)
{
    if (b->reserved)
        return STORE_EINVAL;
    if (symlen == 0 || symlen > STORE_SYM_MAX)
        return STORE_ESYMBOL;
    if (kind_by_id(k->id) != k) /* not one of the declared kinds */
        return STORE_EKIND;
    store_key key;
    uint32_t pos = 0, id, h = store__key_make(&key, sym, symlen);
    int64_t found = store__find(s, &key, h, &pos);
    if (found >= 0) {
        id = (uint32_t)found;
        if (store__part(s, id)->kind != k->id)
            return STORE_EKIND;
    } else {
        int rc = store__create(s, sym, symlen, &key, h, pos, k, &id);
        if (rc != STORE_OK)
            return rc;
    }
    size_t esz = sizeof(store_entry) + k->size;
    if (b->cap - b->len < esz) {
        size_t n = b->cap ? b->cap : 4096;
        while (n - b->len < esz)
            n *= 2;
        unsigned char *buf = realloc(b->buf, n);
        if (!buf)
            return STORE_ENOMEM;
        b->buf = buf;
        b->cap = n;
    }
    store_entry *e = (store_entry *)(b->buf + b->len);
    e->pid = id;
    e->size = k->size;
    k->pack(e + 1, v);
    b->len += esz;
    b->n++;
    return STORE_OK;
}

/* Add (+1) or take back (-1) a batch's records in the pending counts, then
 * recompute each touched partition's reservation once. Returns nonzero if
 * one of them no longer fits its 32-bit field. */
static int store__pend(store *s, const store_batch *b, int dir)
{
    uint32_t nt = 0;
    int over = 0;
    for (size_t off = 0; off < b->len;) {
        const store_entry *e = store__entry_at(b, off);
        part *p = store__part(s, e->pid);
        p->pending += (uint32_t)dir; /* bounded by staged batch buffers: no wrap */
        if (!(p->flags & PART_MARK)) {
            p->flags |= PART_MARK;
            s->touched[nt++] = e->pid; /* room for every partition */
        }
        off += sizeof *e + e->size;
    }
    for (uint32_t i = 0; i < nt; i++) {
        part *p = store__part(s, s->touched[i]);
        p->flags &= (uint8_t)~PART_MARK;
        over |= store__set_resv(s, p, store__need(s, p, p->pending));
    }
    return over;
}

int store_batch_reserve(store *s, store_batch *b)
{
    if (b->reserved)
        return STORE_OK;
    uint64_t before = s->pending_bytes;
    int over = store__pend(s, b, 1);
    slab_stats st;
    slab_get_stats(s->slab, &st);
    uint64_t need = s->pending_bytes - before;
    uint64_t total = st.bytes_reserved + store__index_bytes(s) + s->pending_bytes;
    /* A batch that needs no new page costs nothing, even past the cap. */
    if (over || (need > 0 && total > s->cap)) {
        store__pend(s, b, -1);
        return STORE_EFULL;
    }
    b->need = need;
    b->reserved = 1;
    s->nreserved++;
    return STORE_OK;
}

void store_batch_release(store *s, store_batch *b)
{
    if (!b->reserved)
        return;
    store__pend(s, b, -1);
    b->reserved = 0;
    b->need = 0;
    s->nreserved--;
}

void store_batch_commit(store *s, store_batch *b)
{
    if (!b->reserved) /* contract: reserve first; an unreserved batch is not stored */
        return;
    /* Partitions and tail pages are scattered over megabytes and most slot
     * writes start a line never touched before: a three-stage pipeline
     * prefetches the partition 3D entries ahead, its tail page header 2D
     * ahead and the slot to write D ahead, each stage reading only what the
     * previous one brought in (-25% commit time at W1). */
    size_t ahead[3] = {0, 0, 0}; /* entries D, 2D, 3D ahead; 0 = none */
    for (size_t off = 0, i = 0; off < b->len && i <= 3 * STORE__AHEAD;
         off += sizeof(store_entry) + store__entry_at(b, off)->size, i++)
        if (i && i % STORE__AHEAD == 0)
            ahead[i / STORE__AHEAD - 1] = off;
    for (size_t off = 0; off < b->len;) {
        const store_entry *e = store__entry_at(b, off);
        for (int stage = 2; stage >= 0; stage--)
            store__prefetch(s, b, &ahead[stage], stage);
        part *p = store__part(s, e->pid);
        const store_ladder *l = &s->ladder[p->kind];
        const trade *t = kind_trade_of(e + 1);
        int64_t ts = (int64_t)t->ts;
        store__append(s, p, l, e + 1, ts);
        if (p->agg.count == 0)
            s->visible++;
        store__agg_add(&p->agg, ts, (int64_t)t->px, (int64_t)t->qty);
        if (--p->pending == 0 && p->resv8)
            store__set_resv(s, p, 0);
        off += sizeof *e + e->size;
    }
    s->slot_bytes += b->len - (size_t)b->n * sizeof(store_entry);
    /* Partitions other reserved batches still append to: their worst case
     * is recomputed from the new tail, which never raises the total. */
    if (s->nreserved > 1) {
        for (size_t off = 0; off < b->len;) {
            const store_entry *e = store__entry_at(b, off);
            part *p = store__part(s, e->pid);
            if (p->pending)
                store__set_resv(s, p, store__need(s, p, p->pending));
            off += sizeof *e + e->size;
        }
    }
    s->nreserved--;
    s->trades += b->n;
    s->batches++;
    b->reserved = 0;
    store_batch_reset(b);
}

/* ---- queries ------------------------------------------------------------ */

/* The partition of a symbol with at least one committed trade. */
static const part *store__visible(const store *s, const char *sym, size_t len, int *rc,
                                  uint32_t *id)
{
    const part *p = store__lookup(s, sym, len, id);
    *rc = len == 0 || len > STORE_SYM_MAX ? STORE_ESYMBOL
          : p && p->agg.count            ? STORE_OK
                                         : STORE_ENOTFOUND;
    return *rc == STORE_OK ? p : NULL;
}

int store_symbol_by_id(const store *s, uint32_t id, store_symbol_info *out)
{
    if (id >= s->nparts || store__part(s, id)->agg.count == 0)
        return STORE_ENOTFOUND;
    const part *p = store__part(s, id);
    const unsigned char *key = (const unsigned char *)store__key_at(s, id)->w;
    memset(out, 0, sizeof *out);
    out->id = id;
    memcpy(out->name, key + 1, key[0]);
    out->kind = kind_by_id(p->kind);
    out->agg = p->agg;
    out->pages = p->npages;
    return STORE_OK;
}

int store_symbol(const store *s, const char *sym, size_t symlen, store_symbol_info *out)
{
    int rc;
    uint32_t id = 0;
    return store__visible(s, sym, symlen, &rc, &id) ? store_symbol_by_id(s, id, out) : rc;
}

int store_scan(const store *s, const char *sym, size_t symlen, int64_t from, int64_t to,
               uint64_t cursor, uint32_t limit, store_visit_fn fn, void *ctx, uint64_t *next)
{
    int rc;
    *next = STORE_CURSOR_END;
    const part *p = store__visible(s, sym, symlen, &rc, NULL);
    if (!p)
        return rc;
    if (from >= to || limit == 0 || !fn)
        return STORE_EINVAL;
    if (limit > STORE_MAX_TRADES)
        limit = STORE_MAX_TRADES;
    const kind *k = kind_by_id(p->kind);
    size_t slot = k->size;
    uint64_t base = 0, examined = 0;
    uint32_t matched = 0;
    for (const slab_page *pg = p->head; pg; base += pg->count, pg = pg->next) {
        if (base + pg->count <= cursor || pg->max_ts < from || pg->min_ts >= to)
            continue; /* before the cursor, or outside the range: not read */
        for (uint32_t i = cursor > base ? (uint32_t)(cursor - base) : 0; i < pg->count; i++) {
            if (examined == STORE_SCAN_BUDGET) {
                *next = base + i;
                return STORE_OK;
            }
            examined++;
            const unsigned char *r = pg->slots + (size_t)i * slot;
            int64_t ts = (int64_t)kind_trade_of(r)->ts;
            if (ts < from || ts >= to)
                continue;
            fn(ctx, k, r);
            if (++matched == limit) {
                if (base + i + 1 < p->agg.count)
                    *next = base + i + 1;
                return STORE_OK;
            }
        }
    }
    return STORE_OK;
}

int store_bars(const store *s, const char *sym, size_t symlen, int64_t from, int64_t to,
               int64_t interval, store_bar *out, uint32_t max_bars, uint32_t *nbars)
{
    int rc;
    *nbars = 0;
    const part *p = store__visible(s, sym, symlen, &rc, NULL);
    if (!p)
        return rc;
    if (interval <= 0 || from >= to || max_bars == 0)
        return STORE_EINVAL;
    if (max_bars > STORE_MAX_BARS)
        max_bars = STORE_MAX_BARS;
    if (from < 0) /* timestamps are >= 0: nothing lies before 0 */
        from = 0;
    if (to <= from)
        return STORE_OK;
    int64_t first = from / interval, last = (to - 1) / interval; /* both >= 0: floors */
    if ((uint64_t)(last - first) >= max_bars)
        return STORE_ELIMIT;
    uint32_t nb = (uint32_t)(last - first) + 1;
    /* Bound the work before doing any: records in pages that overlap. */
    uint64_t examine = 0;
    for (const slab_page *pg = p->head; pg; pg = pg->next)
        if (pg->max_ts >= from && pg->min_ts < to)
            examine += pg->count;
    if (examine > STORE_SCAN_BUDGET)
        return STORE_ELIMIT;
    /* `out` doubles as the dense bucket array; empty bars are squeezed out. */
    memset(out, 0, (size_t)nb * sizeof *out);
    size_t slot = kind_by_id(p->kind)->size;
    for (const slab_page *pg = p->head; pg; pg = pg->next) {
        if (pg->max_ts < from || pg->min_ts >= to)
            continue;
        for (uint32_t i = 0; i < pg->count; i++) {
            const trade *t = kind_trade_of(pg->slots + (size_t)i * slot);
            int64_t ts = (int64_t)t->ts;
            if (ts < from || ts >= to)
                continue;
            store__agg_add(&out[ts / interval - first].agg, ts, (int64_t)t->px, (int64_t)t->qty);
        }
    }
    uint32_t n = 0;
    for (uint32_t j = 0; j < nb; j++) {
        if (out[j].agg.count == 0)
            continue;
        out[n] = out[j];
        out[n++].start = (first + (int64_t)j) * interval;
    }
    *nbars = n;
    return STORE_OK;
}

static unsigned __int128 store__key(const store *s, uint32_t id, store_by by)
{
    const store_agg *a = &store__part(s, id)->agg;
    return by == STORE_BY_COUNT ? a->count : by == STORE_BY_VOLUME ? a->volume : a->notional;
}

/* Does `a` rank before `b`? Larger key first, ties by lower id. */
static int store__before(const store *s, store_by by, uint32_t a, uint32_t b)
{
    unsigned __int128 ka = store__key(s, a, by), kb = store__key(s, b, by);
    return ka > kb || (ka == kb && a < b);
}

/* Restore the heap (lowest-ranked id at the root) below node i. */
static void store__sift(const store *s, store_by by, uint32_t *h, uint32_t n, uint32_t i)
{
    for (uint32_t w = i;; i = w) {
        uint32_t l = 2 * i + 1, r = l + 1;
        if (l < n && store__before(s, by, h[w], h[l]))
            w = l;
        if (r < n && store__before(s, by, h[w], h[r]))
            w = r;
        if (w == i)
            return;
        uint32_t t = h[i];
        h[i] = h[w];
        h[w] = t;
    }
}

int store_top(const store *s, store_by by, uint32_t n, uint32_t *ids, uint32_t *nout)
{
    *nout = 0;
    if (by != STORE_BY_COUNT && by != STORE_BY_VOLUME && by != STORE_BY_NOTIONAL)
        return STORE_EINVAL;
    n = n < STORE_MAX_TOP ? n : STORE_MAX_TOP;
    uint32_t m = 0;
    for (uint32_t id = 0; id < s->nparts && n > 0; id++) {
        if (store__part(s, id)->agg.count == 0)
            continue;
        if (m < n) { /* filling: heapify once full */
            ids[m++] = id;
            for (uint32_t i = m == n ? n / 2 : 0; i-- > 0;)
                store__sift(s, by, ids, m, i);
        } else if (store__before(s, by, id, ids[0])) { /* beats the worst kept */
            ids[0] = id;
            store__sift(s, by, ids, m, 0);
        }
    }
    for (uint32_t i = m < n ? m / 2 : 0; i-- > 0;)
        store__sift(s, by, ids, m, i);
    /* Heap sort: the lowest-ranked goes last, so ids ends best first. */
    for (uint32_t end = m; end > 1; end--) {
        uint32_t t = ids[0];
        ids[0] = ids[end - 1];
        ids[end - 1] = t;
        store__sift(s, by, ids, end - 1, 0);
    }
    *nout = m;
    return STORE_OK;
}

void store_get_stats(const store *s, store_stats *st)
{
    slab_stats ss;
    slab_get_stats(s->slab, &ss);
    uint64_t index = store__index_bytes(s);
    memset(st, 0, sizeof *st);
    st->trades = s->trades;
    st->symbols = s->visible;
    st->batches = s->batches;
    st->pages = ss.pages;
    st->bytes_cap = s->cap;
    st->bytes_reserved = ss.bytes_reserved + index;
    st->bytes_used = ss.pages * SLAB_PAGE_HEADER + s->slot_bytes + index;
    st->bytes_slots = s->slot_bytes;
    st->bytes_index = index;
    st->bytes_pending = s->pending_bytes;
    st->fill = ss.bytes_pages ? (double)s->slot_bytes / (double)ss.bytes_pages : 0.0;
}
