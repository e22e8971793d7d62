/* clients — the per-client-name sequence table (clients.h). */
#include "clients.h"

#include <stdlib.h>
#include <string.h>

static uint32_t name_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
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

static int clients_grow(clients *t)
{
    uint32_t cap = t->cap ? t->cap * 2 : 64;
    client_rec **tab = calloc(cap, sizeof *tab);
    if (!tab)
        return -1;
    for (uint32_t j = 0; j < t->cap; j++) {
        client_rec *e = t->tab[j];
        if (!e)
            continue;
        uint32_t i = name_hash(e->name, e->len) & (cap - 1);
        while (tab[i])
            i = (i + 1) & (cap - 1);
        tab[i] = e;
    }
    free(t->tab);
    t->tab = tab;
    t->cap = cap;
    return 0;
}

client_rec *clients_get(clients *t, const char *name, size_t n)
{
    client_rec *r = clients_find(t, name, n);
    uint32_t max = t->max ? t->max : CLIENTS_DEFAULT_MAX;
    if (r || t->n >= max || n == 0 || n > PROTO_NAME_MAX)
        return r;
    if ((t->n + 1) * 2 > t->cap && clients_grow(t) != 0)
        return NULL;
    if (!(r = calloc(1, sizeof *r)))
        return NULL;
    memcpy(r->name, name, n);
    r->len = (uint8_t)n;
    uint32_t i = name_hash(name, n) & (t->cap - 1);
    while (t->tab[i])
        i = (i + 1) & (t->cap - 1);
    t->tab[i] = r;
    t->n++;
    return r;
}

uint64_t clients_last_seq(const clients *t, const char *name, size_t n)
{
    const client_rec *r = clients_find(t, name, n);
    return r ? r->durable_seq : 0;
}

int clients_restore(clients *t, const char *name, size_t n, uint64_t seq)
{
    client_rec *r = clients_get(t, name, n);
    if (!r)
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
