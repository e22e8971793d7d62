/* store — symbol table, per-symbol partitions of slab pages, aggregates,
 * open/close and restore. Two-phase ingest and page growth are in
 * store_ingest.c, queries in store_query.c, retention in store_retain.c.
 *
 * The symbol table maps a name to a dense id; the id indexes blocks of
 * partition records (blocks never move, so a partition pointer stays valid
 * while new symbols are created, and the index wastes at most one block):
 *
 *   table: open addressing,          blocks[id >> 8]: parts[256], keys[256]
 *   linear probing, <= 3/4 full      part (128 B, two cache lines)
 *   +-------------------------+      +---------------------------------------+
 *   | key word 0 | hash32     |      | tail, head -> pages (below)           |
 *   | id+1 (| not-trade bit) |-id-->| pending, resv: reserved batches       |
 *   | 0 = empty               |      | npages, room, flags, kind             |
 *   +-------------------------+      |                                       |
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
 * reservations <= cap guarantees commit never fails. Free-listed pages
 * (retention, deletes) also count, as far as they can serve those requests
 * (store_ingest.c, "memory cap"). No extra margin for
 * chunk granularity is needed: the slab caps carved page bytes and maps one
 * spare chunk per class, so a partly carved chunk costs no cap and no RSS.
 */
#include "store.h"

#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cpage.h"
#include "slab.h"
#include "store_internal.h"

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
    /* notional is at 1e-16, volume at 1e-8: the quotient is at 1e-8. It is
     * taken on the magnitude, so rounding is half away from zero whatever
     * the sign; a VWAP lies between the lowest and highest price, so it
     * fits an int64. */
    int neg = a->notional < 0;
    unsigned __int128 mag = neg ? -(unsigned __int128)a->notional : (unsigned __int128)a->notional;
    unsigned __int128 q = mag / a->volume, r = mag % a->volume;
    if (r >= a->volume - r) /* r >= volume / 2, without overflow */
        q++;
    return neg ? -(int64_t)q : (int64_t)q;
}

/* ---- symbols ------------------------------------------------------------ */

/* Valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF) and
 * no C0, DEL or C1 control characters: names end up in logs, JSON and
 * Prometheus labels. */
int store__valid_symbol(const unsigned char *s, size_t n)
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
    store_tabent *t = calloc(n, sizeof *t);
    if (!t)
        return STORE_ENOMEM;
    for (uint32_t i = 0; i <= s->tmask; i++) {
        const store_tabent *e = &s->table[i];
        if (!e->ref)
            continue;
        uint32_t j = e->hash & (n - 1);
        while (t[j].ref)
            j = (j + 1) & (n - 1);
        t[j] = *e;
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

int store__create(store *s, const store_key *key, uint32_t h, uint32_t pos, uint8_t kid,
                  uint32_t *id)
{
    int rc;
    /* Gone ids do not count against the limit; ids stay below STORE__NEW. */
    if (s->nparts - s->ngone >= s->max_symbols || s->nparts >= STORE__NEW - 1)
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
    p->kind = kid;
    *store__first(s, *id) = 0;
    *store__end(s, *id) = 0;
    *store__cfront(s, *id) = NULL;
    *store__cend(s, *id) = STORE__CEND_UNKNOWN;
    s->blocks[*id >> STORE__BLOCK_SHIFT]->keys[*id & (STORE__BLOCK - 1)] = *key;
    s->table[pos] = (store_tabent){key->w[0], h,
                                   (*id + 1) | (kid == kind_trade.id ? 0 : STORE__REF_OTHER)};
    return STORE_OK;
}

/* Take the entry of partition `id` (hash h) out of the table. Linear probing
 * has no tombstones: each entry after the hole, up to the next empty slot,
 * moves back into the hole when its home slot is not in the cyclic range
 * (hole, its slot], i.e. when the hole lies on its probe path; its old slot
 * becomes the hole. So every remaining key stays reachable from its home. */
static void store__table_del(store *s, uint32_t h, uint32_t id)
{
    const uint32_t mask = s->tmask;
    uint32_t i = h & mask;
    while (s->table[i].ref == 0 || store__ref_id(s->table[i].ref) != id)
        i = (i + 1) & mask; /* present: the caller created it */
    for (uint32_t j = (i + 1) & mask; s->table[j].ref; j = (j + 1) & mask) {
        uint32_t home = s->table[j].hash & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) { /* home at or before the hole */
            s->table[i] = s->table[j];
            i = j;
        }
    }
    s->table[i] = (store_tabent){0, 0, 0};
}

void store__pop(store *s, uint32_t base)
{
    while (s->nparts > base) {
        uint32_t id = --s->nparts;
        if (store__part(s, id)->flags & PART_GONE) /* out of the table already */
            s->ngone--;
        else
            store__table_del(s, store__key_hash(store__key_at(s, id)), id);
    }
    /* Blocks left empty go too (store__create adds one again when needed);
     * the table and the touched scratch keep their size. */
    while (s->nblocks > 0 && (s->nblocks - 1) * STORE__BLOCK >= s->nparts)
        free(s->blocks[--s->nblocks]);
}

void store__forget(store *s, uint32_t id)
{
    part *p = store__part(s, id);
    assert(!p->head && !p->pending && !p->agg.count && (p->flags & PART_FRESH));
    store__table_del(s, store__key_hash(store__key_at(s, id)), id);
    p->flags = PART_GONE;
    s->ngone++;
}

void store__trim(store *s)
{
    uint32_t n = s->nparts;
    while (n > 0 && (store__part(s, n - 1)->flags & PART_GONE))
        n--;
    store__pop(s, n);
}

const kind *store_symbol_kind(const store *s, const char *sym, size_t symlen)
{
    /* Also for a symbol with no committed trade left: one emptied by
     * retention or by deletes (its kind stays fixed). */
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
    if (s->max_symbols > STORE__NEW - 1) /* ids stay clear of the provisional bit */
        s->max_symbols = STORE__NEW - 1;
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
    s->compact = !(cfg && cfg->plain);
    *out = s;
    return STORE_OK;
fail:
    store_close(s);
    return rc;
}

void store_set_ahead(store *s, void (*fn)(void *ctx, void *from, size_t len), void *ctx,
                     size_t ahead)
{
    slab_set_ahead(s->slab, fn, ctx, ahead);
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
           ((uint64_t)s->tmask + 1) * sizeof(store_tabent);
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
    if (!store__valid_symbol((const unsigned char *)sym, len))
        return STORE_ESYMBOL;
    return store__create(s, &key, h, pos, k->id, id);
}

/* A page of `bytes` (a class size) linked after p's tail, or NULL at the
 * cap as ingest applies it: pages and the index together. */
static slab_page *store__restore_page(store *s, part *p, size_t bytes)
{
    slab_stats st;
    slab_get_stats(s->slab, &st);
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
    return n;
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
        slab_page *n = store__restore_page(s, p, bytes);
        if (!n)
            return NULL;
        store__set_tail(p, l, n);
    }
    *room = p->room;
    return p->tail->slots + (size_t)p->tail->count * l->slot;
}

/* Account n wide records at r, just added to t, the tail of p: page
 * count and min/max ts, the aggregates (folded in arrival order, as ingest
 * does), the store's counters; `bytes` is what they take in the page. */
static void store__restore_account(store *s, part *p, slab_page *t, const unsigned char *r,
                                   uint32_t n, uint64_t bytes)
{
    const size_t slot = s->ladder[p->kind].slot;
    int64_t lo = t->count ? t->min_ts : INT64_MAX, hi = t->count ? t->max_ts : INT64_MIN;
    uint64_t before = p->agg.count;
    for (uint32_t i = 0; i < n; i++, r += slot) {
        const trade *tr = kind_trade_of(r);
        int64_t ts = (int64_t)tr->ts;
        if (store__dead(ts)) /* a tombstone keeps its slot, and so its number */
            continue;
        lo = ts < lo ? ts : lo;
        hi = ts > hi ? ts : hi;
        store__agg_add(&p->agg, ts, (int64_t)tr->px, (int64_t)tr->qty);
    }
    if (n) {
        t->min_ts = lo;
        t->max_ts = hi;
        s->newest_ts = hi > s->newest_ts ? hi : s->newest_ts;
    }
    if (before == 0 && p->agg.count)
        s->visible++;
    t->count += n;
    s->trades += p->agg.count - before;
    s->slot_bytes += bytes;
}

void store__restore_fill(store *s, uint32_t id, uint32_t n)
{
    part *p = store__part(s, id);
    const size_t slot = s->ladder[p->kind].slot;
    slab_page *t = p->tail;
    store__restore_account(s, p, t, t->slots + (size_t)t->count * slot, n, (uint64_t)n * slot);
    p->room = (uint16_t)(p->room - n);
}

void *store__restore_cpage(store *s, uint32_t id, size_t bytes, uint32_t n)
{
    part *p = store__part(s, id);
    const store_ladder *l = &s->ladder[p->kind];
    size_t want = SLAB_PAGE_HEADER + bytes;
    /* A compact page replaced a wide one: never more records, never larger. */
    if (n == 0 || n > l->capmax || want >= slab_max_page())
        return NULL;
    slab_page *pg = store__restore_page(s, p, slab_class_size(want));
    if (!pg)
        return NULL;
    pg->size |= STORE__CPAGE;
    pg->count = 0; /* store__restore_cfill counts them */
    p->tail = pg;
    p->room = 0;
    p->flags |= PART_CHAINED; /* appends go to a new page */
    s->compact_pages++;
    return pg->slots;
}

int store__restore_cfill(store *s, uint32_t id, size_t bytes, uint32_t n)
{
    part *p = store__part(s, id);
    const kind *k = kind_by_id(p->kind);
    slab_page *t = p->tail;
    _Alignas(8) unsigned char buf[STORE__PAGE_BUF];
    if (cpage_check(k, t->slots, bytes, n) != CPAGE_OK)
        return STORE_EINVAL;
    t->count = n; /* what store__decode reads */
    store__decode(t, k, 0, buf);
    t->count = 0;
    store__restore_account(s, p, t, buf, n, bytes);
    *store__cfront(s, id) = t;
    *store__cend(s, id) = STORE__CEND_UNKNOWN; /* store__compact_part finds it */
    return STORE_OK;
}

void store__restore_seal(store *s, uint32_t id) { store__part(s, id)->room = 0; }

void store__restore_done(store *s, uint32_t id) { store__compact_part(s, id, NULL); }
