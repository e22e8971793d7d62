/* store_ingest — two-phase ingest: staging, reserve, commit / release, and
 * the page growth commit drives. The symbol table and the memory-cap
 * argument are described at the top of store.c.
 *
 * Symbols are created lazily. Staging a trade of a symbol the store does
 * not hold records it in the batch's own table of new symbols (b->syms,
 * probed through b->sidx), and the staged entry gets a provisional id
 * (STORE__NEW | index into b->syms); later trades of the same symbol in the
 * batch find it there. Reserve creates the batch's new partitions, patches
 * the entries' ids, then checks the memory cap; if that (or the creation)
 * fails, what it created is removed again. So a batch rejected at staging
 * or at reserve leaves no symbol behind: no kind fixed, no quota used.
 */
#include "store.h"

#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "slab.h"
#include "store_internal.h"

/* A batch keeps its table of new symbols across resets up to this many
 * entries; a larger one (a batch that introduced thousands of symbols, a
 * rare event) is freed rather than kept by a pooled batch. */
#define STORE__SYMS_KEEP 1024u

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

/* ---- page growth -------------------------------------------------------- */

/* ---- memory cap ----------------------------------------------------------
 *
 * A reservation is what the pending records of a partition may ask of the
 * slab, walking the growth policy from the real tail: growth steps i0..i1-1
 * of the kind's ladder (one slab_alloc each), then `cs` records for chained
 * pages. Whatever page the slab actually hands out, the requests commit
 * makes are covered by that walk (a larger recycled page only skips steps;
 * a chained page holds as many records as it has slots).
 *
 * Reserve admits a batch when, with it, the reservations of all reserved
 * batches fit one of two rules (both are kept true by every commit, drop,
 * delete and release, so whichever held at the last reserve still holds
 * and commit never fails; see slab.h for what a request may get):
 *
 *  1. carving alone: used + pending_bytes <= cap, pending_bytes being the
 *     bytes of every growth step plus a max page per capmax chained
 *     records; free pages are not counted. The rule of a store that has
 *     never freed a page.
 *
 *  2. free pages counted as far as they can serve: with R = cap - used,
 *     k the largest class a pending request may need to find free (the
 *     largest growth step's class; for chained records the smallest page a
 *     chain takes), F(j) the free pages of class j, for that k
 *
 *        maxp * steps + chain  <=  R + sum over j >= k of v(j) F(j)
 *
 *     where steps counts the pending growth steps, chain = sum over kinds
 *     of maxp * records / capmax plus one max page per partition with
 *     chained records, and v(j) <= maxp is what a free page of class j is
 *     worth: maxp * its slots / capmax, for the kind with the fewest. Each
 *     request either carves (R falls by its size, the left side by at least
 *     as much) or takes one free page (the right side falls by at most its
 *     v; the left by at least as much: a growth step counts a max page,
 *     since at the cap even a small one may take the largest free page, and
 *     a chained page takes its slots' worth of the chain term). Pages freed
 *     (growth, drops, deletes) only add to the right; a free that empties
 *     a chunk, which the slab then gives back to every class, takes its n
 *     pages of class j off the right (n v(j)) and adds n size(j) >= n v(j)
 *     to R (v(j) <= size(j), asserted in store__page_worth). So it holds until the
 *     last request; and one of class c that failed would have found no free
 *     page of class >= c and R < size(c) <= maxp, against the inequality at
 *     k >= c. A free page of a class below every pending request's counts
 *     for nothing, and two reservations never count the same page: the
 *     left side is the sum of all of them.
 *
 * Rule 2 is checked only when rule 1 fails (near the cap): O(classes),
 * whatever the number of pages. */

/* part.resv: bits 0-4 first growth step, 5-9 end step, 10-31 the chained
 * records, exact below 2^21, else in units of 2^11 rounded up (flagged by
 * bit 21 of the field): counting more records is safe, and a partition
 * with millions pending loses nothing measurable. */
#define STORE__RESV_STEP_BITS 5
#define STORE__RESV_EXACT ((uint64_t)1 << 21)
#define STORE__RESV_UNIT_SHIFT 11
_Static_assert(SLAB_NCLASSES < (1 << STORE__RESV_STEP_BITS), "a ladder step index fits 5 bits");

static uint64_t store__resv_chain(uint32_t resv)
{
    uint64_t code = resv >> (2 * STORE__RESV_STEP_BITS);
    if (code & STORE__RESV_EXACT)
        return (code & (STORE__RESV_EXACT - 1)) << STORE__RESV_UNIT_SHIFT;
    return code;
}

/* Pack a walk; nonzero when the records do not fit the field. */
static int store__resv_pack(uint32_t i0, uint32_t i1, uint64_t cs, uint32_t *resv)
{
    uint64_t code = cs;
    if (cs >= STORE__RESV_EXACT) {
        code = ceil_div(cs, (uint64_t)1 << STORE__RESV_UNIT_SHIFT);
        if (code >= STORE__RESV_EXACT)
            return 1;
        code |= STORE__RESV_EXACT;
    }
    *resv = i0 | i1 << STORE__RESV_STEP_BITS | (uint32_t)code << (2 * STORE__RESV_STEP_BITS);
    return 0;
}

/* The walk for appending `n` records to `p` (see above), packed into
 * *resv. Reads only the partition, not its pages. */
static int store__need(const store *s, const part *p, uint64_t n, uint32_t *resv)
{
    const store_ladder *l = &s->ladder[p->kind];
    uint32_t i = 0, i0;
    if (n <= p->room)
        return *resv = 0, 0;
    if (p->flags & PART_CHAINED)
        return store__resv_pack(0, 0, n - p->room, resv);
    /* Growing: the one page holds every record, so its capacity is its
     * slots + room (0 with no page yet). Its slots, not agg.count: deletes
     * leave tombstones in slots. Steps a larger recycled page skipped do
     * not count. */
    uint64_t used = p->tail ? p->tail->count : 0;
    uint64_t have = used + p->room, total = used + n;
    while (i < l->n && l->cap[i] <= have)
        i++;
    for (i0 = i; i < l->n && total > have; i++)
        have = l->cap[i];
    return store__resv_pack(i0, i, total > have ? total - have : 0, resv);
}

/* Add (dir = 1) or take back (dir = -1) a partition's reservation in the
 * store's totals. */
static void store__resv_count(store *s, const part *p, uint32_t resv, int dir)
{
    const store_ladder *l = &s->ladder[p->kind];
    const uint32_t mask = (1u << STORE__RESV_STEP_BITS) - 1;
    uint32_t i1 = (resv >> STORE__RESV_STEP_BITS) & mask;
    uint64_t cs = store__resv_chain(resv), bytes = 0, parts = cs != 0;
    for (uint32_t i = resv & mask; i < i1; i++) {
        int c = slab_class_index(l->size[i]);
        s->dem_steps[c] = dir > 0 ? s->dem_steps[c] + 1 : s->dem_steps[c] - 1;
        bytes += l->size[i];
    }
    bytes += ceil_div(cs, l->capmax) * slab_max_page();
    if (dir > 0) {
        s->dem_chain[p->kind] += cs;
        s->dem_chain_parts += parts;
        s->pending_bytes += bytes;
    } else {
        s->dem_chain[p->kind] -= cs;
        s->dem_chain_parts -= parts;
        s->pending_bytes -= bytes;
    }
}

/* Set p's reservation to what `n` pending records may ask for, keeping the
 * store's totals in step. Nonzero if it does not fit (refuse the batch). */
static int store__set_resv(store *s, part *p, uint64_t n)
{
    uint32_t resv = 0;
    int over = store__need(s, p, n, &resv);
    if (resv == p->resv)
        return over;
    store__resv_count(s, p, p->resv, -1);
    store__resv_count(s, p, resv, 1);
    p->resv = resv;
    return over;
}

/* What a free page of class k is worth (see above): the max-page bytes
 * its slots stand for, for the kind with the fewest. */
static uint64_t store__page_worth(const store *s, int k)
{
    uint64_t size = slab_class_bytes(k), v = slab_max_page();
    for (unsigned i = 0; i < kind_count(); i++) {
        const store_ladder *l = &s->ladder[i];
        uint64_t slots = (size - SLAB_PAGE_HEADER) / l->slot;
        if (slots == 0) /* no request of this kind is this small */
            continue;
        uint64_t w = slab_max_page() * slots / l->capmax;
        v = w < v ? w : v;
    }
    assert(v <= size && "a chunk given back adds at least what its pages were worth");
    return v;
}

/* Rule 2 above, with `room` = cap - used. */
static int store__fits_free(const store *s, uint64_t room)
{
    const uint64_t maxp = slab_max_page();
    unsigned __int128 need = (unsigned __int128)s->dem_chain_parts * maxp;
    int k = 0;
    for (unsigned i = 0; i < kind_count(); i++) {
        const store_ladder *l = &s->ladder[i];
        if (!s->dem_chain[i])
            continue;
        need += ceil_div(s->dem_chain[i] * maxp, l->capmax);
        size_t min = SLAB_PAGE_HEADER + l->slot;
        int m = slab_class_index(min > STORE__CHAIN_MIN ? min : STORE__CHAIN_MIN);
        k = m > k ? m : k;
    }
    for (int c = 0; c < SLAB_NCLASSES; c++) {
        need += (unsigned __int128)s->dem_steps[c] * maxp;
        if (s->dem_steps[c])
            k = c > k ? c : k;
    }
    unsigned __int128 have = room;
    for (int j = k; j < SLAB_NCLASSES; j++)
        have += (unsigned __int128)slab_free_pages(s->slab, j) * store__page_worth(s, j);
    return need <= have;
}

/* Do the reservations of all reserved batches fit (rule 1 or 2 above)? */
static int store__fits(const store *s)
{
    slab_stats st;
    slab_get_stats(s->slab, &st);
    uint64_t used = st.bytes_reserved + store__index_bytes(s);
    if (used > s->cap)
        return 0;
    uint64_t room = s->cap - used;
    return s->pending_bytes <= room || store__fits_free(s, room);
}

int store__can_carve(const store *s, uint64_t bytes)
{
    slab_stats st;
    slab_get_stats(s->slab, &st);
    uint64_t used = st.bytes_reserved + store__index_bytes(s);
    if (used > s->cap || bytes > s->cap - used)
        return 0;
    uint64_t room = s->cap - used - bytes;
    return s->pending_bytes <= room || store__fits_free(s, room);
}

/* Give the tail room for one more record. The reservation guarantees the
 * slab has the page; running out anyway is a broken invariant, and storing
 * past it would corrupt memory, so it aborts. A chained page moved past is
 * sealed: compaction takes it (store_compact.c). */
static void store__grow(store *s, uint32_t id, part *p, const store_ladder *l)
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
        store__set_tail(p, l, n);
        store__compact_part(s, id, t);
        return;
    }
    store__set_tail(p, l, n);
}

static inline void store__append(store *s, uint32_t id, part *p, const store_ladder *l,
                                 const void *slot, int64_t ts)
{
    if (p->room == 0)
        store__grow(s, id, p, l);
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
    free(b->syms);
    free(b->sidx);
    memset(b, 0, sizeof *b);
}

void store_batch_reset(store_batch *b)
{
    b->len = 0;
    b->n = 0;
    b->need = 0;
    if (b->nsyms) { /* rare: only batches that introduce symbols */
        if (b->syms_cap > STORE__SYMS_KEEP) {
            free(b->syms);
            free(b->sidx);
            b->syms = NULL;
            b->sidx = NULL;
            b->syms_cap = b->smask = 0;
        } else {
            memset(b->sidx, 0, ((size_t)b->smask + 1) * sizeof *b->sidx);
        }
        b->nsyms = 0;
    }
}

/* ---- symbols new in a batch ------------------------------------------------ */

/* The index in b->syms of the key, or -1 with *pos the empty slot of
 * b->sidx where it would go. b->sidx must exist. */
static int64_t store__bfind(const store_batch *b, const store_key *k, uint32_t h, uint32_t *pos)
{
    for (uint32_t i = h & b->smask;; i = (i + 1) & b->smask) {
        uint32_t e = b->sidx[i];
        if (e == 0) {
            if (pos)
                *pos = i;
            return -1;
        }
        if (b->syms[e - 1].hash == h && store__key_eq(&b->syms[e - 1].key, k))
            return e - 1;
    }
}

/* Room for one more new symbol: syms doubles, sidx stays <= 1/2 full. */
static int store__bsyms_grow(store_batch *b)
{
    if (b->nsyms == b->syms_cap) {
        uint32_t n = b->syms_cap ? b->syms_cap * 2 : 16;
        store_newsym *ns = realloc(b->syms, n * sizeof *ns);
        if (!ns)
            return STORE_ENOMEM;
        b->syms = ns;
        b->syms_cap = n;
    }
    if (b->sidx && (b->nsyms + 1) * 2 <= b->smask + 1)
        return STORE_OK;
    uint32_t n = b->sidx ? (b->smask + 1) * 2 : 32;
    uint32_t *t = calloc(n, sizeof *t);
    if (!t)
        return STORE_ENOMEM;
    for (uint32_t i = 0; i < b->nsyms; i++) {
        uint32_t j = b->syms[i].hash & (n - 1);
        while (t[j])
            j = (j + 1) & (n - 1);
        t[j] = i + 1;
    }
    free(b->sidx);
    b->sidx = t;
    b->smask = n - 1;
    return STORE_OK;
}

/* A symbol the store does not hold: found among the batch's new symbols,
 * or checked and added to them. Out of line: the common trade is of a
 * symbol the store holds. */
static __attribute__((noinline)) int store__stage_new(const store *s, store_batch *b,
                                                      const char *sym, size_t symlen,
                                                      const store_key *key, uint32_t h,
                                                      const kind *k, uint32_t *id)
{
    uint32_t pos = 0;
    int64_t i = b->sidx ? store__bfind(b, key, h, &pos) : -1;
    if (i >= 0) {
        if (b->syms[i].kind != k->id)
            return STORE_EKIND;
        *id = STORE__NEW | (uint32_t)i;
        return STORE_OK;
    }
    /* Checked now, as if created now, so a refused trade keeps its index. */
    if (!store__valid_symbol((const unsigned char *)sym, symlen))
        return STORE_ESYMBOL;
    if ((uint64_t)s->nparts - s->ngone + b->nsyms >= s->max_symbols)
        return STORE_ESYMLIMIT;
    int rc;
    if (!b->sidx || (b->nsyms + 1) * 2 > b->smask + 1 || b->nsyms == b->syms_cap) {
        if ((rc = store__bsyms_grow(b)) != STORE_OK)
            return rc;
        store__bfind(b, key, h, &pos);
    }
    store_newsym *ns = &b->syms[b->nsyms];
    ns->key = *key;
    ns->hash = h;
    ns->pid = 0;
    ns->kind = k->id;
    b->sidx[pos] = ++b->nsyms;
    *id = STORE__NEW | (b->nsyms - 1);
    return STORE_OK;
}

const kind *store_batch_symbol_kind(const store *s, const store_batch *b, const char *sym,
                                    size_t symlen)
{
    const kind *k = store_symbol_kind(s, sym, symlen);
    if (k || !b || !b->nsyms || symlen == 0 || symlen > STORE_SYM_MAX)
        return k;
    store_key key;
    uint32_t h = store__key_make(&key, sym, symlen);
    int64_t i = store__bfind(b, &key, h, NULL);
    return i >= 0 ? kind_by_id(b->syms[i].kind) : NULL;
}

int store_batch_symbols(const store *s, const store_batch *b, store_symbol_fn fn, void *ctx)
{
    uint32_t last = 0, i = 0;
    for (size_t off = 0; off < b->len; i++) {
        const store_entry *e = store__entry_at(b, off);
        off += sizeof *e + e->size;
        if (i > 0 && e->pid == last)
            continue;
        last = e->pid;
        /* Before reserve a new symbol's entry names it in the batch's own
         * table; after, every id is a partition. */
        const store_key *key = e->pid & STORE__NEW ? &b->syms[e->pid & ~STORE__NEW].key
                                                   : store__key_at(s, e->pid);
        const unsigned char *kb = (const unsigned char *)key->w;
        int rc = fn(ctx, i, (const char *)kb + 1, kb[0]);
        if (rc)
            return rc;
    }
    return 0;
}

/* Undo store__create_new from `base`, the first id it created: staged ids
 * back to provisional, the partitions popped. */
static void store__uncreate_new(store *s, store_batch *b, uint32_t base)
{
    if (s->nparts == base)
        return;
    /* Created ids base.. follow the order of b->syms: map them back through
     * the scratch array, which has a slot per partition. */
    for (uint32_t i = 0; i < b->nsyms; i++)
        if (b->syms[i].pid >= base)
            s->touched[b->syms[i].pid - base] = i;
    for (size_t off = 0; off < b->len;) {
        store_entry *e = (store_entry *)(b->buf + off);
        if (e->pid >= base)
            e->pid = STORE__NEW | s->touched[e->pid - base];
        off += sizeof *e + e->size;
    }
    store__pop(s, base);
}

/* Create the batch's new symbols (ids from s->nparts up, in b->syms order)
 * and give its staged entries their real ids. All or nothing. */
static int store__create_new(store *s, store_batch *b)
{
    const uint32_t base = s->nparts;
    int rc = STORE_OK;
    for (uint32_t i = 0; i < b->nsyms && rc == STORE_OK; i++) {
        store_newsym *ns = &b->syms[i];
        uint32_t pos = 0;
        int64_t found = store__find(s, &ns->key, ns->hash, &pos);
        if (found < 0) {
            rc = store__create(s, &ns->key, ns->hash, pos, ns->kind, &ns->pid);
            continue;
        }
        /* Another batch, staged at the same time as this one, created it
         * since (the server stages and reserves one batch at a time, so
         * only direct users of the store see this). */
        ns->pid = (uint32_t)found;
        if (store__part(s, ns->pid)->kind != ns->kind)
            rc = STORE_EKIND;
    }
    for (uint32_t i = 0; i < b->nsyms && rc == STORE_OK; i++)
        store__part(s, b->syms[i].pid)->flags |= PART_FRESH; /* until a commit */
    if (rc != STORE_OK) {
        /* Nothing is patched yet: the partitions just go. */
        for (uint32_t i = 0; i < b->nsyms; i++)
            b->syms[i].pid = 0;
        store__pop(s, base);
        return rc;
    }
    for (size_t off = 0; off < b->len;) {
        store_entry *e = (store_entry *)(b->buf + off);
        if (e->pid & STORE__NEW)
            e->pid = b->syms[e->pid & ~STORE__NEW].pid;
        off += sizeof *e + e->size;
    }
    return STORE_OK;
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
    uint32_t id, h = store__key_make(&key, sym, symlen);
    int64_t found = store__find(s, &key, h, NULL);
    if (found >= 0) {
        id = (uint32_t)found;
        if (store__part(s, id)->kind != k->id)
            return *rc = STORE_EKIND, NULL;
    } else if ((*rc = store__stage_new(s, b, sym, symlen, &key, h, k, &id)) != STORE_OK) {
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
     * few live values: the key is one word, a table entry equal in its
     * first word is the symbol (the length is in it, the rest is zero), and
     * the entry says whether the symbol's kind is `trade`, so the lookup
     * reads one cache line (store_tabent). Anything
     * else (a new, longer or mismatched symbol, growth, a reserved batch)
     * goes through store__stage, which decides. */
    const size_t esz = sizeof(store_entry) + sizeof(trade);
    if (k == &kind_trade && symlen - 1 < 7 && !b->reserved && b->cap - b->len >= esz) {
        uint64_t w0, w1;
        store__key2(sym, symlen, &w0, &w1);
        const uint32_t h = store__hash2(w0, 0, symlen), mask = s->tmask;
        for (uint32_t i = h & mask;; i = (i + 1) & mask) {
            const store_tabent *e = &s->table[i];
            if (e->ref == 0)
                break;
            if (e->hash != h || e->w0 != w0)
                continue;
            if (e->ref & STORE__REF_OTHER) /* not a `trade` symbol */
                break;
            const uint32_t id = e->ref - 1;
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
        over |= store__set_resv(s, p, p->pending);
    }
    return over;
}

int store_batch_reserve(store *s, store_batch *b)
{
    if (b->reserved)
        return STORE_OK;
    const uint32_t base = s->nparts;
    int rc;
    if (b->nsyms && (rc = store__create_new(s, b)) != STORE_OK)
        return rc;
    uint64_t before = s->pending_bytes;
    int over = store__pend(s, b, 1);
    uint64_t need = s->pending_bytes - before;
    /* A batch that needs no new page costs nothing, even past the cap. */
    if (over || (need > 0 && !store__fits(s))) {
        store__pend(s, b, -1);
        store__uncreate_new(s, b, base); /* no trace: not even the new symbols */
        return STORE_EFULL;
    }
    b->need = need;
    b->reserved = 1;
    s->nreserved++;
    return STORE_OK;
}

void store_batch_release(store *s, store_batch *b)
{
    if (!b->reserved) {
        store_batch_reset(b);
        return;
    }
    store__pend(s, b, -1);
    /* A fresh symbol no reserved batch holds any more goes: nothing was
     * ever committed to it. One that another reserved batch still stages
     * trades for (pending > 0) stays for that batch; the last of them to be
     * released removes it, the first to commit keeps it. */
    for (size_t off = 0; off < b->len;) {
        const store_entry *e = store__entry_at(b, off);
        const part *p = store__part(s, e->pid);
        if ((p->flags & PART_FRESH) && p->pending == 0)
            store__forget(s, e->pid);
        off += sizeof *e + e->size;
    }
    store__trim(s);
    b->reserved = 0;
    s->nreserved--;
    store_batch_reset(b);
}

void store_batch_commit(store *s, store_batch *b)
{
    assert(b->reserved && "store_batch_commit: reserve first (store.h)");
    if (!b->reserved) /* NDEBUG builds: an unreserved batch is not stored */
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
        store__append(s, e->pid, p, l, e + 1, ts);
        ++*store__end(s, e->pid);
        newest = ts > newest ? ts : newest;
        if (p->agg.count == 0) {
            s->visible++;
            p->flags &= (uint8_t)~PART_FRESH; /* a committed trade: it stays */
        }
        store__agg_add(&p->agg, ts, (int64_t)t->px, (int64_t)t->qty);
        if (--p->pending == 0 && p->resv)
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
                store__set_resv(s, p, p->pending);
            off += sizeof *e + e->size;
        }
    }
    s->nreserved--;
    s->trades += b->n;
    s->batches++;
    b->reserved = 0;
    store_batch_reset(b);
}

void store_batch_ids(const store_batch *b, void (*fn)(void *ctx, uint32_t id), void *ctx)
{
    assert(b->reserved && "store_batch_ids: pids are known after reserve");
    uint32_t last = UINT32_MAX;
    for (size_t off = 0; off < b->len;) {
        const store_entry *e = store__entry_at(b, off);
        if (e->pid != last)
            fn(ctx, last = e->pid);
        off += sizeof *e + e->size;
    }
}
