/* clients — the per-client-name sequence table.
 *
 * Each client name that stored a batch has a record: the highest seq that
 * is durable (journaled and in the store) and the highest seq accepted into
 * the pipeline (reserved, being journaled). The journal (replay) and
 * snapshots (checkpoint.c) rebuild it; ingest consults and advances it.
 *
 *   tab[]: open addressing (FNV-1a, linear probing), power-of-two capacity,
 *          at most half full; entries are individually allocated records,
 *          so a pointer to one stays valid while the table grows.
 *
 * One thread at a time: the replay thread before the server is ready, the
 * loop thread after.
 */
#ifndef SLOTD_CLIENTS_H
#define SLOTD_CLIENTS_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

typedef struct client_rec {
    char name[PROTO_NAME_MAX + 1];
    uint8_t len;
    uint64_t durable_seq;  /* highest seq journaled and stored */
    uint64_t accepted_seq; /* highest seq accepted into the pipeline (>= durable_seq) */
} client_rec;

typedef struct clients {
    client_rec **tab;
    uint32_t n, cap;
    uint32_t max;          /* most names held; 0 = CLIENTS_DEFAULT_MAX */
} clients;

#define CLIENTS_DEFAULT_MAX 65536

/* The record of a name, or NULL. */
client_rec *clients_find(const clients *t, const char *name, size_t n);
/* The record of a name, created (seqs 0) if new. NULL when the table holds
 * `max` names already or memory is short. n is 1..PROTO_NAME_MAX. */
client_rec *clients_get(clients *t, const char *name, size_t n);
/* Highest durable seq of a name, 0 if none. */
uint64_t clients_last_seq(const clients *t, const char *name, size_t n);
/* Raise a name's durable (and accepted) seq to at least `seq` (replay,
 * snapshot load). 0, or -1 (bad name, table full, no memory). */
int clients_restore(clients *t, const char *name, size_t n, uint64_t seq);
/* Every name with a durable seq, in table order. */
typedef void (*clients_fn)(void *ctx, const char *name, size_t n, uint64_t seq);
void clients_foreach(const clients *t, clients_fn fn, void *ctx);
void clients_free(clients *t);

#endif
