/* store_retain — retention: drop whole pages of old trades (store.h has
 * the contract).
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
 */
#include <string.h>

#include "store_internal.h"

/* Free the pages before `keep` and install the aggregates of what stays
 * (`agg`, all zero when keep is NULL: the partition is emptied). */
static void store__drop_apply(store *s, part *p, slab_page *keep, const store_agg *agg,
                              store_drop_result *r)
{
    uint64_t n = 0, pages = 0;
    for (slab_page *pg = p->head, *next; pg != keep; pg = next) {
        next = pg->next;
        n += pg->count;
        pages++;
        slab_free(s->slab, pg);
    }
    p->head = keep;
    p->npages -= (uint32_t)pages;
    if (!keep) {
        p->tail = NULL;
        p->room = 0;
        p->flags &= (uint8_t)~PART_CHAINED; /* grows from the first class again */
        s->visible--;
    }
    p->agg = *agg;
    s->trades -= n;
    s->slot_bytes -= n * s->ladder[p->kind].slot;
    r->trades += n;
    r->pages += pages;
    r->partitions++;
}

/* Continue the fold of s->drop; apply the drop when it reaches the end of
 * the tail. Returns 0 when the budget ran out first. */
static int store__drop_fold(store *s, uint64_t budget, store_drop_result *r)
{
    store_drop_state *d = &s->drop;
    part *p = store__part(s, d->pid);
    size_t slot = s->ladder[p->kind].slot;
    for (;;) {
        uint32_t count = d->pg->count; /* the tail may have grown since the last call */
        while (d->i < count) {
            if (r->work >= budget)
                return 0;
            uint64_t n = count - d->i, room = budget - r->work;
            uint32_t start = d->i, end = start + (uint32_t)(n < room ? n : room);
            for (const unsigned char *x = d->pg->slots + (size_t)d->i * slot; d->i < end;
                 d->i++, x += slot) {
                const trade *t = kind_trade_of(x);
                store__agg_add(&d->agg, (int64_t)t->ts, (int64_t)t->px, (int64_t)t->qty);
            }
            r->work += end - start;
        }
        if (!d->pg->next)
            break;
        d->pg = d->pg->next;
        d->i = 0;
    }
    store__drop_apply(s, p, d->keep, &d->agg, r);
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
            store__drop_apply(s, p, NULL, &none, r);
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
