/* store_compact — sealed pages re-encoded compact (cpage.h), and the one
 * accessor every reader of slots goes through.
 *
 *   partition:  head                          frontier        tail (open, wide)
 *               [compact] -> [compact] -> ... [compact] -> [sealed] -> [s0 s1 .. __]
 *                                                          \_ compacted next _/
 *
 * When a chained partition's tail fills, commit chains a new tail
 * (store__grow) and the old one is sealed: only a delete writes to it
 * again. store__grow then calls store__compact_part, which compacts the
 * pages between the partition's frontier (store_block.cfront[].page) and the
 * tail — in steady state exactly the page just sealed — so the work rides
 * on the commit that sealed it: at most one page encode per page of
 * records committed (~63 trades), and commit's cost per trade stays flat
 * whatever the batch (a queue drained by a separate step would need the
 * server to call it, and lets a backlog of wide pages build up under load,
 * which is when memory matters). The sealed page is still hot in the cache
 * from the commit that filled it.
 *
 * Compacting a page: encode it into a buffer (cpage_compact: the slots
 * are read once for planning and encoding); take a slab page of the
 * smallest class holding the body; copy the body and the header (min/max
 * ts, count) in, mark it (STORE__CPAGE in ->size), link it in the wide page's
 * place and free the wide page, which the next chained tail takes back
 * (slab_alloc_reuse prefers the largest free page). A page that does not
 * compress, or whose class would not be smaller, or for which no memory
 * may be taken, stays wide, and the frontier moves past it: never an error.
 *
 * Memory cap. Compaction must never make a reservation fail later
 * (store_ingest.c, "memory cap": commit must not fail). Its allocation
 * either
 *  - takes a free page of a class j with c <= j < w, c the compact page's
 *    class and w the wide page's (the smallest such free page: at the cap,
 *    after drops, that is how compaction goes on): rule 1 does not count
 *    free pages; in rule 2 the page taken was worth v(j) and the wide page
 *    freed is worth v(w) >= v(j) (v grows with the class; if class j was
 *    counted, k <= j < w, so w is counted too). Both sides as before or
 *    better; or
 *  - carves size(c): only when, with those bytes carved and the wide page
 *    not counted as free, rule 1 or rule 2 still holds against the pending
 *    reservations as they stand (store__can_carve; mid-commit they still
 *    count the batch being committed, which only overstates the need).
 * It never takes the slab's fallback at the cap (a free page of any larger
 * class, which could be one a reservation counted on): a carve is only
 * attempted when store__can_carve says the cap has room, and a page handed
 * out no smaller than the wide one goes straight back. Reservations read
 * only partitions' tails, which compaction never touches.
 *
 * Pointers into a chain: the frontier (store_retain.c clears it when the
 * page it names is cut), and a retention fold in progress (its keep and pg
 * pages are moved to the compact page). Cursors are absolute indexes and
 * counts do not change, so they are untouched.
 */
#include <assert.h>
#include <string.h>

#include "cpage.h"
#include "slab.h"
#include "store_internal.h"

_Static_assert(STORE__DEAD_TS == UINT64_MAX, "cpage's tombstone is ts all ones");
_Static_assert(STORE__PAGE_BUF >= 2048 - sizeof(slab_page), "a max page's slots fit the buffer");

const unsigned char *store__decode(const slab_page *pg, const kind *k, uint32_t from,
                                   unsigned char *buf)
{
    cpage_view v;
    cpage_open(&v, k, pg->slots);
    if (from < pg->count)
        cpage_decode(&v, from, pg->count - from, buf + (size_t)from * k->size);
    return buf;
}

void store__kill(slab_page *pg, uint32_t i, size_t slot)
{
    if (store__is_compact(pg))
        cpage_kill(pg->slots, i);
    else
        ((trade *)(pg->slots + (size_t)i * slot))->ts = STORE__DEAD_TS;
}

size_t store__page_bytes(const slab_page *pg, size_t slot)
{
    return store__is_compact(pg) ? cpage_bytes(pg->slots, pg->count) : (size_t)pg->count * slot;
}

void store__page_free(store *s, slab_page *pg)
{
    if (store__is_compact(pg)) {
        pg->size &= ~STORE__CPAGE; /* the slab reads the class from ->size */
        s->compact_pages--;
    }
    slab_free(s->slab, pg);
}

/* The compact copy of wide page pg, or NULL: it stays wide (see the top). */
static slab_page *store__compact_page(store *s, const kind *k, const slab_page *pg)
{
    cpage_plan pl;
    _Alignas(8) unsigned char body[STORE__PAGE_BUF];
    if (store__is_compact(pg) || cpage_compact(&pl, k, pg->slots, pg->count, body, sizeof body) < 0)
        return NULL;
    const size_t want = SLAB_PAGE_HEADER + pl.bytes;
    const int c = slab_class_index(want), w = slab_class_index(pg->size);
    if (c < 0 || c >= w)
        return NULL;
    /* The smallest free page below the wide page's class, else a carve
     * (slab_alloc takes a free page of class j first, and carves only when
     * there is none of class j or j + 1). */
    int j = c;
    while (j < w && slab_free_pages(s->slab, j) == 0)
        j++;
    if (j == w && !store__can_carve(s, slab_class_bytes(c)))
        return NULL;
    slab_page *n = slab_alloc(s->slab, j < w ? slab_class_bytes(j) : want);
    if (!n)
        return NULL;
    if (n->size >= pg->size) { /* a free page of the wide page's class: no gain */
        slab_free(s->slab, n);
        return NULL;
    }
    memcpy(n->slots, body, pl.bytes);
    n->min_ts = pg->min_ts;
    n->max_ts = pg->max_ts;
    n->count = pg->count;
    n->size |= STORE__CPAGE;
    s->slot_bytes = s->slot_bytes - (uint64_t)pg->count * k->size + pl.bytes;
    s->compact_pages++;
    return n;
}

/* Compact page cur, prev's successor (prev NULL: the head), in place:
 * returns the page now there (cur itself when it stays wide). */
static slab_page *store__compact_at(store *s, uint32_t id, const kind *k, part *p,
                                    slab_page *prev, slab_page *cur)
{
    slab_page *n = store__compact_page(s, k, cur);
    if (!n)
        return cur;
    n->next = cur->next;
    if (prev)
        prev->next = n;
    else
        p->head = n;
    store_drop_state *d = &s->drop;
    if (d->active && d->pid == id) { /* a retention fold holds pages of this chain */
        d->keep = d->keep == cur ? n : d->keep;
        d->pg = d->pg == cur ? n : d->pg;
    }
    slab_free(s->slab, cur);
    return n;
}

void store__compact_part(store *s, uint32_t id, slab_page *sealed)
{
    if (!s->compact)
        return;
    part *p = store__part(s, id);
    const kind *k = kind_by_id(p->kind);
    slab_page **front = store__cfront(s, id), *prev = *front, *cur;
    uint64_t *cend = store__cend(s, id), base; /* base: cur's slot 0 */
    if (prev && sealed && *cend != STORE__CEND_UNKNOWN && sealed->next == p->tail &&
        *cend == *store__end(s, id) - p->tail->count - sealed->count) {
        /* Steady state: the frontier ends where the page just sealed
         * starts, so that page is the frontier's successor (pages between
         * the frontier and the tail are full: none is empty). Known
         * without reading the frontier page, whose header is a cold line
         * by now (perf, W1-10k: the loads of prev->next and prev->count
         * were 1.7% of slotd's samples). prev->next is only written. */
        assert(prev->next == sealed);
        cur = store__compact_at(s, id, k, p, prev, sealed);
        *front = cur;
        *cend += cur->count;
        return;
    }
    if (!prev) {
        base = *store__first(s, id);
        cur = p->head;
    } else if (*cend == STORE__CEND_UNKNOWN) { /* after a restore: found once */
        base = *store__first(s, id);
        for (const slab_page *pg = p->head; pg != prev; pg = pg->next)
            base += pg->count;
        base += prev->count;
        cur = prev->next;
    } else {
        base = *cend;
        cur = prev->next;
    }
    while (cur && cur != p->tail) {
        cur = store__compact_at(s, id, k, p, prev, cur);
        prev = cur;
        base += cur->count;
        cur = cur->next;
    }
    if (prev)
        *cend = base;
    *front = prev;
}
