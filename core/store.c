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
#include "store_internal.h"

/* ---- small helpers ------------------------------------------------------ */

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

/* The rule is store__agg_add (store_internal.h), inlined into commit, bars
 * and restore; this is the same code for callers outside core. */
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
static uint32_t store__key_make(store_key *k, const char *sym, size_t len)
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

const part *store__lookup(const store *s, const char *sym, size_t len, uint32_t *id)
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
    s->newest_ts = -1;
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

uint64_t store__index_bytes(const store *s)
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

/* Room for one more entry of `esz` bytes; out of line, growth is rare. */
static __attribute__((noinline)) int store__batch_grow(store_batch *b, size_t esz)
{
    size_t n = b->cap ? b->cap : 4096;
    while (n - b->len < esz)
        n *= 2;
    unsigned char *buf = realloc(b->buf, n);
    if (!buf)
        return STORE_ENOMEM;
    b->buf = buf;
    b->cap = n;
    return STORE_OK;
}

/* store_batch_add's checks, then one entry staged: where its k->size slot
 * bytes go, or NULL with *rc set (nothing staged). */
static inline unsigned char *store__stage(store *s, store_batch *b, const char *sym,
                                          size_t symlen, const kind *k, int *rc)
{
    if (b->reserved)
        return *rc = STORE_EINVAL, NULL;
    if (symlen == 0 || symlen > STORE_SYM_MAX)
        return *rc = STORE_ESYMBOL, NULL;
    if (k != &kind_trade && kind_by_id(k->id) != k) /* not one of the declared kinds */
        return *rc = STORE_EKIND, NULL;
    store_key key;
    uint32_t pos = 0, id, h = store__key_make(&key, sym, symlen);
    int64_t found = store__find(s, &key, h, &pos);
    if (found >= 0) {
        id = (uint32_t)found;
        if (store__part(s, id)->kind != k->id)
            return *rc = STORE_EKIND, NULL;
    } else if ((*rc = store__create(s, sym, symlen, &key, h, pos, k, &id)) != STORE_OK) {
        return NULL;
    }
    size_t esz = sizeof(store_entry) + k->size;
    if (b->cap - b->len < esz && (*rc = store__batch_grow(b, esz)) != STORE_OK)
        return NULL;
    store_entry *e = (store_entry *)(b->buf + b->len);
    e->pid = id;
    e->size = k->size;
    b->len += esz;
    b->n++;
    return (unsigned char *)(e + 1);
}

int store_batch_add(store *s, store_batch *b, const char *sym, size_t symlen, const kind *k,
                    const int64_t *v)
{
    int rc;
    unsigned char *slot = store__stage(s, b, sym, symlen, k, &rc);
    if (!slot)
        return rc;
    k->pack(slot, v);
    return STORE_OK;
}

/* store_batch_add_slot in general, out of line. */
static __attribute__((noinline)) int store__add_slot(store *s, store_batch *b, const char *sym,
                                                     size_t symlen, const kind *k,
                                                     const void *slot)
{
    int rc;
    unsigned char *dst = store__stage(s, b, sym, symlen, k, &rc);
    if (!dst)
        return rc;
    memcpy(dst, slot, k->size);
    return STORE_OK;
}

#ifdef STORE__SHORT_KEYS
/* store__add_slot for a `trade` whose name (1-7 bytes) is in key word w0:
 * the leaf path below falls back through here, so that it need not keep the
 * name's pointer and length live (fewer registers, no spills). */
static __attribute__((noinline)) int store__add_key(store *s, store_batch *b, uint64_t w0,
                                                    const void *slot)
{
    char name[8];
    memcpy(name, &w0, 8); /* little-endian: the length byte, then the name */
    return store__add_slot(s, b, name + 1, (size_t)(w0 & 0xff), &kind_trade, slot);
}
#endif

int store_batch_add_slot(store *s, store_batch *b, const char *sym, size_t symlen,
                         const kind *k, const void *slot)
{
#ifdef STORE__SHORT_KEYS
    /* The decoder's common case, a `trade` of a known symbol of up to 7
     * bytes (nearly every ticker) with room in the buffer, as a leaf with
     * few live values: the key is one word, and a stored key equal in its
     * first word is equal (the length is in it, the rest is zero); the
     * partition is read through the block the key was found in. Anything
     * else (a new, longer or mismatched symbol, growth, a reserved batch)
     * goes through store__stage, which decides. */
    const size_t esz = sizeof(store_entry) + sizeof(trade);
    if (k == &kind_trade && symlen - 1 < 7 && !b->reserved && b->cap - b->len >= esz) {
        uint64_t w0, w1;
        store__key2(sym, symlen, &w0, &w1);
        const uint32_t h = store__hash2(w0, 0, symlen), mask = s->tmask;
        for (uint32_t i = h & mask;; i = (i + 1) & mask) {
            const uint64_t e = s->table[i];
            if (e == 0)
                break;
            const uint32_t id = (uint32_t)e - 1, j = id & (STORE__BLOCK - 1);
            const store_block *blk = s->blocks[id >> STORE__BLOCK_SHIFT];
            if ((uint32_t)(e >> 32) != h || blk->keys[j].w[0] != w0)
                continue;
            if (blk->parts[j].kind != k->id)
                break;
            store_entry *en = (store_entry *)(b->buf + b->len);
            *en = (store_entry){id, sizeof(trade)};
            memcpy(en + 1, slot, sizeof(trade));
            b->len += esz;
            b->n++;
            return STORE_OK;
        }
        return store__add_key(s, b, w0, slot);
    }
#endif
    return store__add_slot(s, b, sym, symlen, k, slot);
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
    int64_t newest = s->newest_ts;
    for (size_t off = 0; off < b->len;) {
        const store_entry *e = store__entry_at(b, off);
        for (int stage = 2; stage >= 0; stage--)
            store__prefetch(s, b, &ahead[stage], stage);
        part *p = store__part(s, e->pid);
        const store_ladder *l = &s->ladder[p->kind];
        const trade *t = kind_trade_of(e + 1);
        int64_t ts = (int64_t)t->ts;
        store__append(s, p, l, e + 1, ts);
        newest = ts > newest ? ts : newest;
        if (p->agg.count == 0)
            s->visible++;
        store__agg_add(&p->agg, ts, (int64_t)t->px, (int64_t)t->qty);
        if (--p->pending == 0 && p->resv8)
            store__set_resv(s, p, 0);
        off += sizeof *e + e->size;
    }
    s->slot_bytes += b->len - (size_t)b->n * sizeof(store_entry);
    s->newest_ts = newest;
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

/* ---- restore (snapshot.c) ------------------------------------------------ */

int store__restore_part(store *s, const char *sym, size_t len, const kind *k, uint32_t *id)
{
    store_key key;
    uint32_t pos = 0, h;
    if (len == 0 || len > STORE_SYM_MAX)
        return STORE_ESYMBOL;
    if (!k || kind_by_id(k->id) != k)
        return STORE_EKIND;
    h = store__key_make(&key, sym, len);
    if (store__find(s, &key, h, &pos) >= 0)
        return STORE_EINVAL; /* a name twice: the snapshot is not one we wrote */
    return store__create(s, sym, len, &key, h, pos, k, id);
}

void *store__restore_room(store *s, uint32_t id, uint64_t left, uint32_t *room)
{
    part *p = store__part(s, id);
    const store_ladder *l = &s->ladder[p->kind];
    if (p->room == 0) {
        /* The whole partition in one page while it fits one (the class the
         * growth ladder would have ended on); else max pages, and a last
         * page just big enough for the remainder (a chained tail may be any
         * size: growth chains a new page when it fills). */
        uint64_t want = p->tail ? left : p->agg.count + left;
        want = want > l->capmax ? l->capmax : want ? want : 1;
        size_t bytes = slab_class_size(SLAB_PAGE_HEADER + want * l->slot);
        slab_stats st;
        slab_get_stats(s->slab, &st);
        /* The cap as ingest applies it: pages and the index together. */
        if (st.bytes_reserved + store__index_bytes(s) + bytes > s->cap)
            return NULL;
        slab_page *n = slab_alloc(s->slab, bytes);
        if (!n)
            return NULL;
        if (p->tail) {
            p->tail->next = n;
            p->npages++;
            p->flags |= PART_CHAINED; /* more than one page: chained, whatever the sizes */
        } else {
            p->head = n;
            p->npages = 1;
        }
        store__set_tail(p, l, n);
    }
    *room = p->room;
    return p->tail->slots + (size_t)p->tail->count * l->slot;
}

void store__restore_fill(store *s, uint32_t id, uint32_t n)
{
    part *p = store__part(s, id);
    const store_ladder *l = &s->ladder[p->kind];
    slab_page *t = p->tail;
    const unsigned char *r = t->slots + (size_t)t->count * l->slot;
    int64_t lo = t->count ? t->min_ts : INT64_MAX, hi = t->count ? t->max_ts : INT64_MIN;
    if (n && p->agg.count == 0)
        s->visible++;
    for (uint32_t i = 0; i < n; i++, r += l->slot) {
        const trade *tr = kind_trade_of(r);
        int64_t ts = (int64_t)tr->ts;
        lo = ts < lo ? ts : lo;
        hi = ts > hi ? ts : hi;
        store__agg_add(&p->agg, ts, (int64_t)tr->px, (int64_t)tr->qty);
    }
    if (n) {
        t->min_ts = lo;
        t->max_ts = hi;
        s->newest_ts = hi > s->newest_ts ? hi : s->newest_ts;
    }
    t->count += n;
    p->room = (uint16_t)(p->room - n);
    s->trades += n;
    s->slot_bytes += (uint64_t)n * l->slot;
}
