/* clients — the per-client-name sequence table.
 *
 * Each client name has a record: the highest seq that is durable
 * (journaled and in the store), the highest seq accepted into the pipeline
 * (reserved, being journaled), and the lowest seq refused since, which
 * holds back every later seq of the name (PROTOCOL.md §5):
 *
 *      durable_seq  <=  accepted_seq  <  held      (held = 0: none)
 *   ---------------|-----------------|---------------------------->
 *     stored: a     in flight:         refused: nothing above it
 *     resend is     a resend is        is taken until it is resent
 *     ACK n=0       NOT_READY          (corrected, or empty)
 *
 * Invariant: a refused seq is never below a stored one, so restarting
 * (which forgets `held`) loses nothing: the client resends everything
 * above last_seq, in order.
 *
 * The journal (replay) and snapshots (checkpoint.c) rebuild the durable
 * seqs; ingest consults and advances the rest.
 *
 * Reserved names (clients_reserved: the prefixes "kafka:" and "gw:") are
 * the Kafka source's offsets and de-duplication seqs (kafka.h): a TCP
 * HELLO may not take one, and they are never forgotten.
 *
 * Bounded: at most `max` names. A new name past it takes the place of the
 * least recently used name that is safe to forget: no connection holds it,
 * nothing of it is in flight or held, and it either stored nothing or was
 * last used `ttl_ns` ago or more. Forgetting a name forgets its last_seq
 * (a client resuming under it later starts from 0).
 *
 *   tab[]: open addressing (FNV-1a, linear probing, backward-shift
 *          deletion), power-of-two capacity, at most half full; records
 *          are allocated one by one, so a pointer to one stays valid
 *          while the table grows (not once it is forgotten).
 *
 * One thread at a time: the replay thread before the server is ready, the
 * loop thread after.
 */
#ifndef SLOTD_CLIENTS_H
#define SLOTD_CLIENTS_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* Names in the table: a TCP client's (PROTO_NAME_MAX) or a reserved one
 * of the Kafka source (kafka.h), which may be longer. */
#define CLIENTS_NAME_MAX 128

typedef struct client_rec {
    char name[CLIENTS_NAME_MAX + 1];
    uint8_t len;
    uint64_t durable_seq;  /* highest seq journaled and stored */
    uint64_t accepted_seq; /* highest seq accepted into the pipeline (>= durable_seq) */
    uint64_t held;         /* lowest seq refused above accepted_seq; 0 = none */
    uint32_t inflight;     /* batches accepted whose journal write is pending */
    void *owner;           /* the connection holding the name (HELLO), or NULL */
    void *gw;              /* --gateway: its batches in Kafka, oldest first (gateway.c) */
    uint64_t last_used;    /* monotonic ns of the last HELLO or batch */
} client_rec;

typedef struct clients {
    client_rec **tab;
    uint32_t n, cap;
    uint32_t max;          /* most names held; 0 = CLIENTS_DEFAULT_MAX */
    uint64_t ttl_ns;       /* idle time after which a name that stored may be forgotten */
    uint64_t forgotten;    /* names forgotten since start */
    uint64_t started;      /* monotonic ns: names restored from disk count as used then */
} clients;

#define CLIENTS_DEFAULT_MAX 65536

/* The record of a name, or NULL. */
client_rec *clients_find(const clients *t, const char *name, size_t n);
/* The record of a name, created (seqs 0) if new, forgetting one name as
 * above when the table is full. NULL when no name can be forgotten or
 * memory is short. n is 1..CLIENTS_NAME_MAX; now is monotonic ns. */
client_rec *clients_get(clients *t, const char *name, size_t n, uint64_t now);
/* Is this one of the Kafka source's reserved names? */
int clients_reserved(const char *name, size_t n);
/* Highest durable seq of a name, 0 if none. */
uint64_t clients_last_seq(const clients *t, const char *name, size_t n);
/* Raise a name's durable (and accepted) seq to at least `seq` (replay,
 * snapshot load): a name the server held is restored even past `max`.
 * 0, or -1 (bad name, no memory). */
int clients_restore(clients *t, const char *name, size_t n, uint64_t seq);
/* Every name with a durable seq, in table order. */
typedef void (*clients_fn)(void *ctx, const char *name, size_t n, uint64_t seq);
void clients_foreach(const clients *t, clients_fn fn, void *ctx);
void clients_free(clients *t);

#endif
