/* subscribe — subscriptions as read positions over the store (subscribe.h).
 *
 * A subscription's slots: for "*", one per store symbol id (grown as
 * symbols appear); for a symbol list, one per listed symbol, bound to its
 * store id once the symbol exists. A slot is pending (mark set, in the
 * ring queue) when a commit touched its symbol and the slot's position has
 * not caught up; sub_fill serves pending slots round robin, at most
 * SUB_SCAN trades of one symbol per S message. The hub maps a store id to
 * the list subscriptions bound to it, so a commit costs one step per
 * symbol it touches per subscription that covers the symbol.
 */
#include "subscribe.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Trades per S message at most: as many as one store_scan gives. A scan
 * that does not start in the tail page walks the chain from its head
 * (store.h), so a subscriber a few pages behind pays that walk once per
 * this many trades (at 1,024 the walks were 43% of the loop's time with
 * one "*" subscriber under W1). */
#define SUB_SCAN STORE_MAX_TRADES
/* Owners are told of new trades at most this often: a subscriber that
 * keeps up gets one write per interval, not one per batch (100 of them at
 * 2,000 batches/s were 200,000 writes/s), for at most this much delay. */
#define SUB_COALESCE_MS 5
#define SLOT_MAX (KIND_MAX_FIELDS * 8)

const char *const sub_drop_names[SUB_NDROPS] = {"stalled", "gone"};

typedef struct sub_ref {
    sub *s;
    uint32_t slot;
} sub_ref;

typedef struct sub_refs {
    sub_ref *v;
    uint32_t n, cap;
} sub_refs;

typedef struct sub_hub {
    sub *head;                  /* every open subscription */
    sub *all_head;              /* the "*" ones (all_next): every commit marks them */
    sub_refs *byid;             /* store id -> list subscriptions bound to it */
    uint32_t byid_cap;
    uint32_t seen;              /* ids below this were offered to unbound slots */
    uint32_t unbound;           /* list slots whose symbol does not exist yet */
    sub *kick_head;             /* pending since the owners were last told */
    uv_timer_t kick_timer;      /* tells them (SUB_COALESCE_MS after a commit) */
    uint64_t trades_total;
    uint64_t drops[SUB_NDROPS];
    unsigned char scratch[SUB_SCAN * SLOT_MAX];
} sub_hub;

struct sub {
    server *srv;
    sub *prev, *next, *kick_next, *all_next;
    int kicked;
    uint64_t id;
    int all, gaps;
    const sub_enc *enc;
    void (*kick)(void *owner);
    void *owner;
    uint32_t nslot;          /* slots allocated (all) or listed */
    uint64_t *pos;
    store_mark *bm;          /* per slot: where the store's chain may be entered (store.h) */
    uint8_t *mark;
    uint32_t *sid;           /* lists: slot -> store id, UINT32_MAX unbound */
    subproto_sym *names;     /* lists: the symbols */
    uint32_t *q;             /* ring of pending slots, nslot long */
    uint32_t qhead, qlen;
};

int sub_init(server *srv)
{
    srv->subs = calloc(1, sizeof *srv->subs);
    if (!srv->subs)
        return -1;
    uv_timer_init(srv->loop, &srv->subs->kick_timer); /* closed with the loop's handles */
    srv->subs->kick_timer.data = srv;
    return 0;
}

void sub_free(server *srv)
{
    if (!srv->subs)
        return;
    while (srv->subs->head)
        sub_close(srv->subs->head, SUB_NDROPS);
    for (uint32_t i = 0; i < srv->subs->byid_cap; i++)
        free(srv->subs->byid[i].v);
    free(srv->subs->byid);
    free(srv->subs);
    srv->subs = NULL;
}

uint64_t sub_id(const sub *s) { return s->id; }

void sub_count_drop(server *srv, int why)
{
    if (why >= 0 && why < SUB_NDROPS)
        srv->subs->drops[why]++;
}

/* ---- slots ------------------------------------------------------------------ */

/* "*": make room for slot `n - 1` (new symbols start at position 0). */
static int grow(sub *s, uint32_t n)
{
    if (n <= s->nslot)
        return 0;
    uint32_t cap = s->nslot ? s->nslot : 64;
    while (cap < n)
        cap *= 2;
    uint64_t *pos = realloc(s->pos, cap * sizeof *pos);
    if (pos)
        s->pos = pos;
    store_mark *bm = realloc(s->bm, cap * sizeof *bm);
    if (bm)
        s->bm = bm;
    uint8_t *mark = realloc(s->mark, cap);
    if (mark)
        s->mark = mark;
    uint32_t *q = malloc(cap * sizeof *q);
    if (!pos || !bm || !mark || !q) {
        free(q);
        return -1;
    }
    for (uint32_t i = 0; i < s->qlen; i++) /* unwrap the ring into the new one */
        q[i] = s->q[(s->qhead + i) % s->nslot];
    free(s->q);
    s->q = q;
    s->qhead = 0;
    memset(s->pos + s->nslot, 0, (cap - s->nslot) * sizeof *pos);
    memset(s->bm + s->nslot, 0, (cap - s->nslot) * sizeof *bm);
    memset(s->mark + s->nslot, 0, cap - s->nslot);
    s->nslot = cap;
    return 0;
}

static void mark(sub *s, uint32_t slot)
{
    if (s->mark[slot])
        return;
    s->mark[slot] = 1;
    s->q[(s->qhead + s->qlen++) % s->nslot] = slot;
    if (!s->kicked) {
        s->kicked = 1;
        s->kick_next = s->srv->subs->kick_head;
        s->srv->subs->kick_head = s;
    }
}

static int bind_slot(sub_hub *h, sub *s, uint32_t slot, uint32_t id)
{
    if (id >= h->byid_cap) {
        uint32_t cap = h->byid_cap ? h->byid_cap : 1024;
        while (cap <= id)
            cap *= 2;
        sub_refs *v = realloc(h->byid, cap * sizeof *v);
        if (!v)
            return -1;
        memset(v + h->byid_cap, 0, (cap - h->byid_cap) * sizeof *v);
        h->byid = v;
        h->byid_cap = cap;
    }
    sub_refs *r = &h->byid[id];
    if (r->n == r->cap) {
        uint32_t cap = r->cap ? r->cap * 2 : 2;
        sub_ref *v = realloc(r->v, cap * sizeof *v);
        if (!v)
            return -1;
        r->v = v;
        r->cap = cap;
    }
    r->v[r->n++] = (sub_ref){s, slot};
    s->sid[slot] = id;
    return 0;
}

static void unbind_slots(sub_hub *h, sub *s)
{
    for (uint32_t i = 0; i < s->nslot; i++) {
        if (s->sid[i] == UINT32_MAX) {
            h->unbound--;
            continue;
        }
        sub_refs *r = &h->byid[s->sid[i]];
        for (uint32_t j = 0; j < r->n; j++)
            if (r->v[j].s == s) {
                r->v[j] = r->v[--r->n];
                break;
            }
    }
}

/* Offer ids [h->seen, limit) to the list slots still unbound. */
static void bind_new(server *srv)
{
    sub_hub *h = srv->subs;
    uint32_t limit = store_id_limit(srv->store);
    for (; h->seen < limit && h->unbound; h->seen++) {
        store_span sp;
        if (store_symbol_span(srv->store, h->seen, &sp) != STORE_OK)
            continue;
        for (sub *s = h->head; s; s = s->next)
            for (uint32_t i = 0; !s->all && i < s->nslot; i++)
                if (s->sid[i] == UINT32_MAX && s->names[i].len == sp.len &&
                    memcmp(s->names[i].name, sp.name, sp.len) == 0 &&
                    bind_slot(h, s, i, h->seen) == 0)
                    h->unbound--;
    }
    h->seen = limit;
}

/* ---- open, close -------------------------------------------------------------- */

static const subproto_sym *find(const subproto_sym *v, uint32_t n, const char *name, size_t len)
{
    for (uint32_t i = 0; i < n; i++)
        if (v[i].len == len && memcmp(v[i].name, name, len) == 0)
            return &v[i];
    return NULL;
}

/* Where a symbol with this span starts for r. */
static uint64_t start_pos(const subproto_req *r, const store_span *sp)
{
    if (r->from == SUBPROTO_NOW)
        return sp->end;
    if (r->from == SUBPROTO_MAP && r->fromx) {
        subproto_sym key;
        memcpy(key.name, sp->name, sp->len);
        key.len = (uint8_t)sp->len;
        const subproto_sym *f = bsearch(&key, r->fromx, r->nfromx, sizeof key, subproto_sym_cmp);
        return f ? f->pos : 0;
    }
    if (r->from == SUBPROTO_MAP) {
        const subproto_sym *f = find(r->fromv, r->nfrom, sp->name, sp->len);
        if (f)
            return f->pos;
    }
    return 0;
}

static int open_all(sub *s, const subproto_req *r)
{
    store *st = s->srv->store;
    uint32_t limit = store_id_limit(st);
    if (grow(s, limit ? limit : 1) < 0)
        return -1;
    for (uint32_t id = 0; id < limit; id++) {
        store_span sp;
        if (store_symbol_span(st, id, &sp) != STORE_OK)
            continue;
        s->pos[id] = start_pos(r, &sp);
        if (s->pos[id] < sp.end || s->pos[id] < sp.first)
            mark(s, id);
    }
    return 0;
}

/* The id of a symbol the store holds (trades or not: retention may have
 * emptied it), UINT32_MAX if none. */
static uint32_t find_id(store *st, const subproto_sym *y)
{
    store_symbol_info si;
    if (!store_symbol_kind(st, y->name, y->len))
        return UINT32_MAX;
    if (store_symbol(st, y->name, y->len, &si) == STORE_OK)
        return si.id;
    store_span sp; /* emptied, or fresh: rare, a walk over the ids */
    for (uint32_t id = 0, lim = store_id_limit(st); id < lim; id++)
        if (store_symbol_span(st, id, &sp) == STORE_OK && sp.len == y->len &&
            memcmp(sp.name, y->name, sp.len) == 0)
            return id;
    return UINT32_MAX;
}

static int open_list(sub *s, const subproto_req *r)
{
    sub_hub *h = s->srv->subs;
    uint32_t n = r->nsyms;
    s->pos = calloc(n, sizeof *s->pos);
    s->bm = calloc(n, sizeof *s->bm);
    s->mark = calloc(n, 1);
    s->sid = malloc(n * sizeof *s->sid);
    s->q = malloc(n * sizeof *s->q);
    s->names = malloc(n * sizeof *s->names);
    if (!s->pos || !s->bm || !s->mark || !s->sid || !s->q || !s->names)
        return -1;
    memcpy(s->names, r->syms, n * sizeof *s->names);
    s->nslot = n;
    for (uint32_t i = 0; i < n; i++) /* all unbound until bound: sub_close can undo any prefix */
        s->sid[i] = UINT32_MAX;
    h->unbound += n;
    for (uint32_t i = 0; i < n; i++) {
        const subproto_sym *y = &r->syms[i];
        store_span sp;
        uint32_t id = find_id(s->srv->store, y);
        if (id == UINT32_MAX || store_symbol_span(s->srv->store, id, &sp) != STORE_OK ||
            sp.end == 0) {
            /* Not there, or only created by a batch not committed yet (which
             * may still be released): bound by the commit that stores its
             * first trade (bind_new looks at ids from h->seen on). */
            const subproto_sym *f = find(r->fromv, r->nfrom, y->name, y->len);
            s->pos[i] = r->from == SUBPROTO_MAP && f ? f->pos : 0;
            if (id != UINT32_MAX && id < h->seen)
                h->seen = id;
            continue;
        }
        if (bind_slot(h, s, i, id) < 0)
            return -1;
        h->unbound--;
        s->pos[i] = start_pos(r, &sp);
        if (s->pos[i] < sp.end || s->pos[i] < sp.first)
            mark(s, i);
    }
    return 0;
}

sub *sub_open(server *srv, const subproto_req *r, const sub_enc *enc, void (*kick)(void *owner),
              void *owner, proto_error *err)
{
    sub_hub *h = srv->subs;
    sub *s = calloc(1, sizeof *s);
    if (!s) {
        proto_error_set(err, PROTO_E_BAD_SUB, -1, "out of memory for the subscription");
        return NULL;
    }
    s->srv = srv;
    s->id = r->id;
    s->all = r->all;
    s->gaps = r->gaps;
    s->enc = enc;
    s->kick = kick;
    s->owner = owner;
    s->next = h->head; /* linked first: mark() and sub_close need the hub's view */
    if (h->head)
        h->head->prev = s;
    h->head = s;
    if (s->all) {
        s->all_next = h->all_head;
        h->all_head = s;
    }
    srv->nsubs++;
    if ((r->all ? open_all(s, r) : open_list(s, r)) < 0) {
        sub_close(s, SUB_NDROPS);
        proto_error_set(err, PROTO_E_BAD_SUB, -1, "out of memory for the subscription");
        return NULL;
    }
    /* Pending from the start: the owner is told at the next commit, or
     * fills right after its SUBOK. */
    return s;
}

void sub_close(sub *s, int why)
{
    sub_hub *h = s->srv->subs;
    sub_count_drop(s->srv, why);
    if (!s->all && s->sid)
        unbind_slots(h, s);
    if (s->prev)
        s->prev->next = s->next;
    else
        h->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    for (sub **p = &h->all_head; s->all && *p; p = &(*p)->all_next)
        if (*p == s) {
            *p = s->all_next;
            break;
        }
    if (s->kicked) /* out of the kick list */
        for (sub **p = &h->kick_head; *p; p = &(*p)->kick_next)
            if (*p == s) {
                *p = s->kick_next;
                break;
            }
    s->srv->nsubs--;
    free(s->pos);
    free(s->bm);
    free(s->mark);
    free(s->sid);
    free(s->q);
    free(s->names);
    free(s);
}

/* ---- the cursor and the pump ---------------------------------------------------- */

/* The store id of slot i, UINT32_MAX if none. */
static uint32_t slot_id(const sub *s, uint32_t i) { return s->all ? i : s->sid[i]; }

void sub_emit_cursor(sub *s, emit *e)
{
    uint32_t n = 0;
    store_span sp;
    for (int pass = 0; pass < 2; pass++) {
        if (pass)
            e->map(e, n);
        for (uint32_t i = 0; i < s->nslot; i++) {
            uint32_t id = slot_id(s, i);
            if (id == UINT32_MAX || store_symbol_span(s->srv->store, id, &sp) != STORE_OK ||
                sp.first == sp.end)
                continue;
            if (pass)
                subproto_pos(e, sp.name, sp.len, s->pos[i]);
            else
                n++;
        }
    }
    subproto_end(e);
}

int sub_cursor_text(const sub *s, proto_buf *out)
{
    assert(!s->all && "a '*' cursor is a map: sub_emit_cursor");
    for (uint32_t i = 0; i < s->nslot; i++)
        if (subproto_cursor_append(out, s->names[i].name, s->names[i].len, s->pos[i], i == 0) < 0)
            return -1;
    return 0;
}

int sub_each_pos(const sub *s, subproto_cursor_fn fn, void *ctx, proto_error *err)
{
    assert(s->all && "a list's cursor: sub_cursor_text");
    store_span sp;
    for (uint32_t id = 0; id < s->nslot; id++) {
        if (s->pos[id] == 0 || store_symbol_span(s->srv->store, id, &sp) != STORE_OK)
            continue;
        subproto_sym f;
        memcpy(f.name, sp.name, sp.len);
        f.name[sp.len] = 0;
        f.len = (uint8_t)sp.len;
        f.pos = s->pos[id];
        if (fn(ctx, &f, err) < 0)
            return -1;
    }
    return 0;
}

void *sub_owner(const sub *s) { return s->owner; }

static void collect(void *ctx, const kind *k, const void *slot)
{
    unsigned char **p = ctx;
    memcpy(*p, slot, k->size);
    *p += k->size;
}

int sub_fill(sub *s, proto_buf *out, size_t want, proto_error *err)
{
    sub_hub *h = s->srv->subs;
    store *st = s->srv->store;
    while (out->len < want && s->qlen) {
        uint32_t i = s->q[s->qhead];
        s->qhead = (s->qhead + 1) % s->nslot;
        s->qlen--;
        store_span sp;
        if (store_symbol_span(st, slot_id(s, i), &sp) != STORE_OK) {
            s->mark[i] = 0;
            continue;
        }
        if (s->pos[i] < sp.first) {
            if (!s->gaps) {
                proto_error_set(err, PROTO_E_CURSOR_GONE, -1,
                                "retention dropped trades of '%s' from position %llu to %llu "
                                "before they were read; resubscribe from %llu, or with gaps",
                                sp.name, (unsigned long long)s->pos[i],
                                (unsigned long long)sp.first, (unsigned long long)sp.first);
                return -1;
            }
            uint64_t from = s->pos[i];
            s->pos[i] = sp.first; /* before the encoder: it may write the cursor */
            s->enc->gap(s, out, sp.name, sp.len, from, sp.first);
        }
        uint64_t next = STORE_CURSOR_END;
        unsigned char *p = h->scratch;
        if (s->pos[i] < sp.end &&
            store_scan_mark(st, sp.name, sp.len, INT64_MIN, INT64_MAX, s->pos[i], SUB_SCAN,
                            collect, &p, &next, &s->bm[i]) != STORE_OK)
            next = sp.end; /* emptied: nothing to read up to its end */
        if (next == STORE_CURSOR_END || next > sp.end)
            next = sp.end;
        uint32_t n = (uint32_t)((size_t)(p - h->scratch) / sp.kind->size);
        s->pos[i] = next;
        if (n && s->enc->chunk(s, out, sp.name, sp.len, sp.kind, h->scratch, n, next) < 0) {
            proto_error_set(err, PROTO_E_SLOW_SUBSCRIBER, -1,
                            "out of memory encoding pushes; resubscribe from your cursor");
            return -1;
        }
        h->trades_total += n;
        if (next < sp.end) /* more: back of the queue, round robin */
            s->q[(s->qhead + s->qlen++) % s->nslot] = i;
        else
            s->mark[i] = 0;
    }
    return s->qlen ? 1 : 0;
}

/* ---- ingest's hooks ------------------------------------------------------------ */

static void note_id(void *ctx, uint32_t id)
{
    server *srv = ctx;
    sub_hub *h = srv->subs;
    if (id >= h->seen && h->unbound)
        bind_new(srv);
    for (sub *s = h->all_head; s; s = s->all_next)
        if (id < s->nslot || grow(s, id + 1) == 0)
            mark(s, id);
    if (id < h->byid_cap)
        for (uint32_t j = 0; j < h->byid[id].n; j++)
            mark(h->byid[id].v[j].s, h->byid[id].v[j].slot);
}

void sub_note_batch(server *srv, const store_batch *b)
{
    if (srv->nsubs)
        store_batch_ids(b, note_id, srv);
}

static void kick_all(uv_timer_t *t)
{
    server *srv = t->data;
    sub_hub *h = srv->subs;
    while (h->kick_head) {
        sub *s = h->kick_head;
        h->kick_head = s->kick_next;
        s->kicked = 0;
        s->kick(s->owner); /* may close s */
    }
}

void sub_committed(server *srv)
{
    sub_hub *h = srv->subs;
    if (h && h->kick_head && !uv_is_active((uv_handle_t *)&h->kick_timer) &&
        !uv_is_closing((uv_handle_t *)&h->kick_timer))
        uv_timer_start(&h->kick_timer, kick_all, SUB_COALESCE_MS, 0);
}

void sub_get_stats(server *srv, sub_stats *st)
{
    memset(st, 0, sizeof *st);
    sub_hub *h = srv->subs;
    if (!h)
        return;
    st->subscribers = srv->nsubs;
    st->trades_total = h->trades_total;
    memcpy(st->drops, h->drops, sizeof st->drops);
    for (sub *s = h->head; s; s = s->next)
        for (uint32_t k = 0; k < s->qlen; k++) {
            uint32_t i = s->q[(s->qhead + k) % s->nslot];
            store_span sp;
            if (store_symbol_span(srv->store, slot_id(s, i), &sp) == STORE_OK && sp.end > s->pos[i])
                st->lag += sp.end - s->pos[i];
        }
}
