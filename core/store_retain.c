/* store_retain — removing records: retention drops whole pages of old
 * trades, deletes turn records into tombstones (store.h has both
 * contracts).
 *
 *   partition: head                                   tail
 *              [max < cut] -> [max < cut] -> [max >= cut] -> ... -> [..]
 *              \_____ dropped _________/     \____ kept: aggregates refolded ____/
 *
 * Only a prefix goes, so what stays is still in arrival order and page
 * max/min stay exact. Dropping needs the aggregates of what stays: count,
 * volume and notional could be subtracted, but high/low, open and the
 * first ts may all have lived in the dropped pages, and finding them again
 * means reading the kept slots. So the kept slots are folded afresh, in
 * arrival order (the ingest rule, so ties resolve the same), and the drop is
 * applied only when that fold reaches the end of the tail: until then the
 * partition keeps its pages and old aggregates, a consistent state that
 * queries and commits may see. The fold may span calls (a budget each):
 * pages other than the tail never change, and the tail only grows, which
 * the fold picks up since it reads the tail's count as it goes.
 *
 * Reservations stay valid: store__need reads only the tail (and, for a
 * partition still growing in one page, count + room, i.e. that page), and
 * a drop frees the tail only when no reserved batch is pending for it; a
 * partition so emptied starts again as a new one would.
 *
 * Absolute indexes: a partition's slots are numbered consecutively from
 * first[id] (store_internal.h), so removing pages from the head only moves
 * first[id] on, and emptying a partition moves it past the last slot; no
 * kept record is renumbered and no number is given out twice. That is why
 * a delete leaves tombstones instead of compacting pages, and frees only
 * pages at the head (and the whole chain once nothing is left).
 */
#include <string.h>

#include "store_internal.h"

/* Free the pages of partition `id` before `keep` (all of them when keep is
 * NULL: the partition is emptied) and install `agg`, the aggregates of what
 * stays. Returns the pages freed; *slots = the slots they held. */
static uint64_t store__cut_head(store *s, uint32_t id, slab_page *keep, const store_agg *agg,
                                uint64_t *slots)
{
    part *p = store__part(s, id);
    const size_t slot = s->ladder[p->kind].slot;
    slab_page **front = store__cfront(s, id);
    uint64_t n = 0, pages = 0, bytes = 0;
    for (slab_page *pg = p->head, *next; pg != keep; pg = next) {
        next = pg->next;
        n += pg->count;
        bytes += store__page_bytes(pg, slot);
        pages++;
        if (pg == *front) { /* the pages kept all lie past it: none dealt with yet */
            *front = NULL;
            *store__cend(s, id) = STORE__CEND_UNKNOWN;
        }
        store__page_free(s, pg);
    }
    p->head = keep;
    p->npages -= (uint32_t)pages;
    if (!keep) {
        p->tail = NULL;
        p->room = 0;
        p->flags &= (uint8_t)~PART_CHAINED; /* grows from the first class again */
    }
    if (p->agg.count && !agg->count)
        s->visible--;
    s->trades -= p->agg.count - agg->count; /* live records: tombstones were counted out */
    p->agg = *agg;
    *store__first(s, id) += n; /* the kept slots keep their numbers */
    s->slot_bytes -= bytes;
    *slots = n;
    return pages;
}

static void store__drop_apply(store *s, uint32_t id, slab_page *keep, const store_agg *agg,
                              store_drop_result *r)
{
    uint64_t live = store__part(s, id)->agg.count - agg->count, slots;
    r->pages += store__cut_head(s, id, keep, agg, &slots);
    r->trades += live;
    r->partitions++;
}

/* Continue the fold of s->drop; apply the drop when it reaches the end of
 * the tail. Returns 0 when the budget ran out first. */
static int store__drop_fold(store *s, uint64_t budget, store_drop_result *r)
{
    store_drop_state *d = &s->drop;
    part *p = store__part(s, d->pid);
    const kind *k = kind_by_id(p->kind);
    size_t slot = k->size;
    _Alignas(8) unsigned char buf[STORE__PAGE_BUF];
    for (;;) {
        uint32_t count = d->pg->count; /* the tail may have grown since the last call */
        while (d->i < count) {
            if (r->work >= budget)
                return 0;
            uint64_t n = count - d->i, room = budget - r->work;
            uint32_t start = d->i, end = start + (uint32_t)(n < room ? n : room);
            const unsigned char *slots = store__slots(d->pg, k, d->i, buf);
            for (const unsigned char *x = slots + (size_t)d->i * slot; d->i < end;
                 d->i++, x += slot) {
                const trade *t = kind_trade_of(x);
                if (!store__dead((int64_t)t->ts))
                    store__agg_add(&d->agg, (int64_t)t->ts, (int64_t)t->px, (int64_t)t->qty);
            }
            r->work += end - start;
        }
        if (!d->pg->next)
            break;
        d->pg = d->pg->next;
        d->i = 0;
    }
    store__drop_apply(s, d->pid, d->keep, &d->agg, r);
    d->active = 0;
    return 1;
}

int store_drop_before(store *s, int64_t cutoff, uint64_t budget, store_drop_result *r)
{
    store_drop_state *d = &s->drop;
    memset(r, 0, sizeof *r);
    if (budget == 0)
        return STORE_EINVAL;
    for (;;) {
        if (d->active && !store__drop_fold(s, budget, r))
            return STORE_OK;
        if (r->work >= budget)
            return STORE_OK;
        if (s->drop_next >= s->nparts) {
            s->drop_next = 0;
            r->done = 1;
            return STORE_OK;
        }
        uint32_t id = s->drop_next++;
        part *p = store__part(s, id);
        r->work += STORE_DROP_PART_COST;
        if (!p->head || p->head->max_ts >= cutoff)
            continue;
        slab_page *keep = p->head;
        while (keep != p->tail && keep->max_ts < cutoff)
            keep = keep->next;
        if (keep == p->tail && keep->max_ts < cutoff && p->pending == 0) {
            static const store_agg none;
            store__drop_apply(s, id, NULL, &none, r);
            continue;
        }
        if (keep == p->head)
            continue;
        memset(d, 0, sizeof *d);
        d->active = 1;
        d->pid = id;
        d->keep = d->pg = keep;
    }
}

/* ---- deletes -------------------------------------------------------------- */

/* Tombstone the live slots of `pg` with from <= ts < to and recompute its
 * min/max ts over the live ones (none: min > max, so every range query
 * and retention pass skips or drops it unread). Returns how many; *hit is
 * set when one of them held the store's newest ts. */
static uint64_t store__delete_page(store *s, slab_page *pg, const kind *k, int64_t from,
                                   int64_t to, int *hit)
{
    uint64_t n = 0;
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    _Alignas(8) unsigned char buf[STORE__PAGE_BUF];
    const unsigned char *slots = store__slots(pg, k, 0, buf);
    for (uint32_t i = 0; i < pg->count; i++) {
        int64_t ts = (int64_t)kind_trade_of(slots + (size_t)i * k->size)->ts;
        if (store__dead(ts))
            continue;
        if (ts >= from && ts < to) {
            store__kill(pg, i, k->size);
            *hit |= ts == s->newest_ts;
            n++;
            continue;
        }
        lo = ts < lo ? ts : lo;
        hi = ts > hi ? ts : hi;
    }
    pg->min_ts = lo;
    pg->max_ts = hi;
    return n;
}

/* The aggregates of p's live slots, folded in arrival order (the ingest
 * rule, so ties resolve as they did). */
static void store__refold(const part *p, const kind *k, store_agg *a)
{
    _Alignas(8) unsigned char buf[STORE__PAGE_BUF];
    memset(a, 0, sizeof *a);
    for (const slab_page *pg = p->head; pg; pg = pg->next) {
        if (pg->max_ts < pg->min_ts)
            continue; /* no live slot */
        const unsigned char *slots = store__slots(pg, k, 0, buf);
        for (uint32_t i = 0; i < pg->count; i++) {
            const trade *t = kind_trade_of(slots + (size_t)i * k->size);
            if (!store__dead((int64_t)t->ts))
                store__agg_add(a, (int64_t)t->ts, (int64_t)t->px, (int64_t)t->qty);
        }
    }
}

/* The store's newest ts over what is stored now. */
static int64_t store__newest(const store *s)
{
    int64_t newest = -1;
    for (uint32_t id = 0; id < s->nparts; id++) {
        const part *p = store__part(s, id);
        if (p->agg.count && p->agg.last_ts > newest)
            newest = p->agg.last_ts;
    }
    return newest;
}

int store_delete_range(store *s, const char *sym, size_t symlen, int64_t from, int64_t to,
                       uint64_t *deleted)
{
    uint32_t id = 0;
    *deleted = 0;
    if (symlen == 0 || symlen > STORE_SYM_MAX)
        return STORE_ESYMBOL;
    const part *found = store__lookup(s, sym, symlen, &id);
    if (!found || found->agg.count == 0)
        return STORE_ENOTFOUND;
    if (from >= to)
        return STORE_EINVAL;
    part *p = store__part(s, id);
    const kind *k = kind_by_id(p->kind);
    uint64_t n = 0;
    int hit = 0;
    for (slab_page *pg = p->head; pg; pg = pg->next)
        if (pg->max_ts >= from && pg->min_ts < to)
            n += store__delete_page(s, pg, k, from, to, &hit);
    if (n == 0)
        return STORE_OK;
    /* A retention fold in progress here read slots that may be dead now:
     * it starts again on a later pass. */
    if (s->drop.active && s->drop.pid == id)
        s->drop.active = 0;
    store_agg agg;
    store__refold(p, k, &agg);
    /* Head pages with nothing live go; the tail stays for appends unless
     * nothing is left and no reserved batch will append (store__need reads
     * the tail, which is unchanged, so reservations stay exact). */
    slab_page *keep = p->head;
    while (keep != p->tail && keep->max_ts < keep->min_ts)
        keep = keep->next;
    if (keep == p->tail && agg.count == 0 && p->pending == 0)
        keep = NULL;
    uint64_t slots;
    store__cut_head(s, id, keep, &agg, &slots);
    if (hit)
        s->newest_ts = store__newest(s);
    *deleted = n;
    return STORE_OK;
}
