/* store_query — the store's bounded queries: per-symbol stats, range
 * scans, OHLCV bars, top-N, store stats. Read-only over the partitions
 * and pages store.c builds (store_internal.h); see store.h for contracts. */
#include <assert.h>
#include <stddef.h>
#include <string.h>

#include "store_internal.h"

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

uint32_t store_id_limit(const store *s) { return s->nparts; }

int store_symbol(const store *s, const char *sym, size_t symlen, store_symbol_info *out)
{
    int rc;
    uint32_t id = 0;
    return store__visible(s, sym, symlen, &rc, &id) ? store_symbol_by_id(s, id, out) : rc;
}

int store_symbol_span(const store *s, uint32_t id, store_span *out)
{
    if (id >= s->nparts || (store__part(s, id)->flags & PART_GONE))
        return STORE_ENOTFOUND;
    const part *p = store__part(s, id);
    const unsigned char *key = (const unsigned char *)store__key_at(s, id)->w;
    out->first = *store__first(s, id);
    out->end = *store__end(s, id);
#ifndef NDEBUG
    uint64_t n = out->first;
    for (const slab_page *pg = p->head; pg; pg = pg->next)
        n += pg->count;
    assert(n == out->end && "store_internal.h: end = first + the chain's counts");
    const slab_page *front = *store__cfront(s, id);
    n = out->first;
    for (const slab_page *pg = p->head; pg && front; n += pg->count, pg = pg->next)
        if (pg == front)
            assert((*store__cend(s, id) == STORE__CEND_UNKNOWN ||
                    *store__cend(s, id) == n + pg->count) &&
                   "store_internal.h: cend = one past the frontier's last absolute index");
#endif
    out->len = key[0];
    memcpy(out->name, key + 1, key[0]);
    out->name[key[0]] = 0;
    out->kind = kind_by_id(p->kind);
    return STORE_OK;
}

int store_scan(const store *s, const char *sym, size_t symlen, int64_t from, int64_t to,
               uint64_t cursor, uint32_t limit, store_visit_fn fn, void *ctx, uint64_t *next)
{
    return store_scan_mark(s, sym, symlen, from, to, cursor, limit, fn, ctx, next, NULL);
}

/* Where a scan from `cursor` starts: the tail page, a mark (a page before
 * the compaction frontier: such pages are never relinked, and freed only
 * from the head, which moves first[]), the frontier, or the head. */
static const slab_page *scan_start(const store *s, uint32_t id, const part *p, uint64_t cursor,
                                   const store_mark *m, uint64_t *base)
{
    const slab_page *front = *store__cfront(s, id);
    uint64_t fend = *store__cend(s, id), end = *store__end(s, id), first = *store__first(s, id);
    if (p->tail && cursor >= end - p->tail->count) { /* a reader at the tail */
        *base = end - p->tail->count;
        return p->tail;
    }
    if (front && fend != STORE__CEND_UNKNOWN && cursor >= fend - front->count) {
        *base = fend - front->count; /* past the frontier: a few pages from the tail */
        return front;
    }
    if (m && m->pg && m->first == first && cursor >= m->base) {
        *base = m->base;
        return m->pg;
    }
    *base = first;
    return p->head;
}

int store_scan_mark(const store *s, const char *sym, size_t symlen, int64_t from, int64_t to,
                    uint64_t cursor, uint32_t limit, store_visit_fn fn, void *ctx,
                    uint64_t *next, store_mark *m)
{
    int rc;
    uint32_t id = 0;
    *next = STORE_CURSOR_END;
    const part *p = store__visible(s, sym, symlen, &rc, &id);
    if (!p)
        return rc;
    if (from >= to || limit == 0 || !fn)
        return STORE_EINVAL;
    if (limit > STORE_MAX_TRADES)
        limit = STORE_MAX_TRADES;
    const kind *k = kind_by_id(p->kind);
    size_t slot = k->size;
    uint64_t base, examined = 0; /* base: absolute index of pg's slot 0 */
    uint32_t matched = 0;
    _Alignas(8) unsigned char buf[STORE__PAGE_BUF];
    const slab_page *pg = scan_start(s, id, p, cursor, m, &base);
    /* The last page visited at or before the frontier: the next mark. */
    const slab_page *front = *store__cfront(s, id), *stable = NULL;
    uint64_t stable_base = 0;
    int past = !front || pg == p->tail;
    for (; pg; base += pg->count, pg = pg->next) {
        if (!past) {
            stable = pg;
            stable_base = base;
            past = pg == front;
        }
        if (base + pg->count <= cursor || pg->max_ts < from || pg->min_ts >= to)
            continue; /* before the cursor, or outside the range: not read */
        uint32_t i = cursor > base ? (uint32_t)(cursor - base) : 0;
        const unsigned char *slots = store__slots(pg, k, i, buf);
        for (; i < pg->count; i++) {
            if (examined == STORE_SCAN_BUDGET) {
                *next = base + i;
                goto out;
            }
            examined++;
            const unsigned char *r = slots + (size_t)i * slot;
            int64_t ts = (int64_t)kind_trade_of(r)->ts;
            if (ts < from || ts >= to || store__dead(ts))
                continue;
            fn(ctx, k, r);
            if (++matched == limit) {
                if (i + 1 < pg->count || pg->next)
                    *next = base + i + 1;
                goto out;
            }
        }
    }
out:
    if (m && stable)
        *m = (store_mark){stable, stable_base, *store__first(s, id)};
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
    const kind *k = kind_by_id(p->kind);
    size_t slot = k->size;
    _Alignas(8) unsigned char buf[STORE__PAGE_BUF];
    for (const slab_page *pg = p->head; pg; pg = pg->next) {
        if (pg->max_ts < from || pg->min_ts >= to)
            continue;
        const unsigned char *slots = store__slots(pg, k, 0, buf);
        for (uint32_t i = 0; i < pg->count; i++) {
            const trade *t = kind_trade_of(slots + (size_t)i * slot);
            int64_t ts = (int64_t)t->ts;
            if (ts < from || ts >= to) /* tombstones too: from >= 0 */
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
    /* notional is signed: flipping its sign bit makes unsigned order the
     * signed order (most negative lowest). */
    return by == STORE_BY_COUNT    ? a->count
           : by == STORE_BY_VOLUME ? a->volume
                                   : (unsigned __int128)a->notional ^ ((unsigned __int128)1 << 127);
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
    st->pages_compact = s->compact_pages;
    st->newest_ts = s->newest_ts;
    st->fill = ss.bytes_pages ? (double)s->slot_bytes / (double)ss.bytes_pages : 0.0;
}
