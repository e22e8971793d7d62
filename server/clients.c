/* clients — the per-client-name sequence table (clients.h). */
#include "clients.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static uint32_t name_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static uint32_t home(const clients *t, const client_rec *r)
{
    return name_hash(r->name, r->len) & (t->cap - 1);
}

client_rec *clients_find(const clients *t, const char *name, size_t n)
{
    if (!t->cap)
        return NULL;
    uint32_t mask = t->cap - 1;
    for (uint32_t i = name_hash(name, n) & mask;; i = (i + 1) & mask) {
        client_rec *r = t->tab[i];
        if (!r)
            return NULL;
        if (r->len == n && memcmp(r->name, name, n) == 0)
            return r;
    }
}

static void place(clients *t, client_rec *r)
{
    uint32_t i = home(t, r);
    while (t->tab[i])
        i = (i + 1) & (t->cap - 1);
    t->tab[i] = r;
}

static int grow(clients *t)
{
    uint32_t old = t->cap;
    client_rec **tab = t->tab;
    client_rec **nt = calloc(old ? old * 2 : 64, sizeof *nt);
    if (!nt)
        return -1;
    t->tab = nt;
    t->cap = old ? old * 2 : 64;
    for (uint32_t j = 0; j < old; j++)
        if (tab[j])
            place(t, tab[j]);
    free(tab);
    return 0;
}

/* Remove slot i, shifting back every later entry of its probe run whose
 * home does not lie (cyclically) in (i, j]: the table stays as if the
 * removed name had never been inserted. */
static void remove_at(clients *t, uint32_t i)
{
    uint32_t mask = t->cap - 1;
    free(t->tab[i]);
    t->tab[i] = NULL;
    t->n--;
    for (uint32_t j = (i + 1) & mask; t->tab[j]; j = (j + 1) & mask) {
        uint32_t h = home(t, t->tab[j]);
        int stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
        if (stays)
            continue;
        t->tab[i] = t->tab[j];
        t->tab[j] = NULL;
        i = j;
    }
}

int clients_reserved(const char *name, size_t n)
{
    return (n >= 6 && memcmp(name, "kafka:", 6) == 0) || (n >= 3 && memcmp(name, "gw:", 3) == 0);
}

static int forgettable(const clients *t, const client_rec *r, uint64_t now)
{
    /* A Kafka offset forgotten would replay its partition from the start. */
    if (clients_reserved(r->name, r->len))
        return 0;
    if (r->owner || r->inflight || r->held || r->accepted_seq != r->durable_seq)
        return 0;
    uint64_t used = r->last_used ? r->last_used : t->started;
    return r->durable_seq == 0 || now - used >= t->ttl_ns;
}

/* Forget the least recently used name that is safe to forget; -1 if none.
 * O(capacity), and only when the table is full. */
static int forget_one(clients *t, uint64_t now)
{
    uint32_t best = UINT32_MAX;
    for (uint32_t i = 0; i < t->cap; i++) {
        const client_rec *r = t->tab[i];
        if (r && forgettable(t, r, now) &&
            (best == UINT32_MAX || r->last_used < t->tab[best]->last_used)) /* 0 (restored) first */
            best = i;
    }
    if (best == UINT32_MAX)
        return -1;
    remove_at(t, best);
    t->forgotten++;
    return 0;
}

static client_rec *insert(clients *t, const char *name, size_t n)
{
    if ((t->n + 1) * 2 > t->cap && grow(t) != 0)
        return NULL;
    client_rec *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    memcpy(r->name, name, n);
    r->len = (uint8_t)n;
    place(t, r);
    t->n++;
    return r;
}

client_rec *clients_get(clients *t, const char *name, size_t n, uint64_t now)
{
    assert(n >= 1 && n <= CLIENTS_NAME_MAX);
    client_rec *r = clients_find(t, name, n);
    if (r)
        return r;
    uint32_t max = t->max ? t->max : CLIENTS_DEFAULT_MAX;
    if (t->n >= max && forget_one(t, now) != 0)
        return NULL;
    if ((r = insert(t, name, n)))
        r->last_used = now;
    return r;
}

uint64_t clients_last_seq(const clients *t, const char *name, size_t n)
{
    const client_rec *r = clients_find(t, name, n);
    return r ? r->durable_seq : 0;
}

int clients_restore(clients *t, const char *name, size_t n, uint64_t seq)
{
    if (n == 0 || n > CLIENTS_NAME_MAX)
        return -1;
    client_rec *r = clients_find(t, name, n);
    if (!r && !(r = insert(t, name, n)))
        return -1;
    if (seq > r->durable_seq)
        r->durable_seq = r->accepted_seq = seq;
    return 0;
}

void clients_foreach(const clients *t, clients_fn fn, void *ctx)
{
    for (uint32_t i = 0; i < t->cap; i++) {
        const client_rec *r = t->tab[i];
        if (r && r->durable_seq)
            fn(ctx, r->name, r->len, r->durable_seq);
    }
}

void clients_free(clients *t)
{
    for (uint32_t i = 0; i < t->cap; i++)
        free(t->tab[i]);
    free(t->tab);
    memset(t, 0, sizeof *t);
}
