/* gateway_internal — what gateway_query.c (the nodes' connections and the
 * routing) and gateway_lag.c (how far behind each node is) share. Loop
 * thread only. */
#ifndef SLOTD_GATEWAY_INTERNAL_H
#define SLOTD_GATEWAY_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "gateway.h"

enum { GQ_DOWN, GQ_RESOLVING, GQ_CONNECTING, GQ_HELLO, GQ_UP, GQ_CLOSING };

typedef struct gq_pending {
    struct gq_pending *next;
    int32_t part;   /* the partition it stands for; -1: this node only */
    int annotate;   /* a per-symbol reply: say "behind" in it (gateway_lag_note) */
    int *by;        /* NULL, or set to the k of the node it is sent to */
    uint64_t deadline; /* uv_now() past which it is answered NOT_READY (0: never) */
    int answered;   /* done ran (the deadline passed): the node's reply is dropped */
    uint8_t *msg;
    size_t len;
    gateway_reply_fn done;
    void *ctx;
} gq_pending;

typedef struct gq_node {
    struct gq *q;
    int k;
    uint32_t i, n;
    char host[GATEWAY_HOST_MAX];
    int port;
    char name[GATEWAY_HOST_MAX + 32]; /* "I/N@HOST:PORT" */
    int state;
    int unresolved;   /* the last look-up failed (logged once) */
    char why[256];    /* why it is not up ("" before the first try) */
    unsigned refused; /* HELLO refusals in a row: the next try waits longer */
    uint64_t retry_at; /* uv_now() before which it is not tried again */
    int64_t *next;    /* per partition of the topic: its next offset, -1 unknown */
    int offsets_busy; /* an offsets query is waiting for its answer */
    uv_getaddrinfo_t gai;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uint8_t *rbuf;
    size_t rlen, rcap;
    proto_framer fr;
    gq_pending *head, *tail;
} gq_node;

struct gq {
    server *srv;
    char *list; /* the node lines (node_list) */
    gq_node *nodes;
    size_t n;
    uv_timer_t retry;
    int stopping;
    int64_t *hw;  /* per partition: the high watermark last looked up, -1 unknown */
    int32_t nhw;
};

/* Send x to nd, bypassing routing (x->part -1): 0, or -1 (nd is not up or
 * the write failed: x was answered NOT_READY). */
int gq_send_to(gq_node *nd, gq_pending *x);

/* ---- gateway_lag.c ---- */

/* Records node nd is behind partition p's end: -1 when not known (no
 * watermark or no offsets answer yet, or a node without Kafka). */
int64_t gateway_lag(const gq_node *nd, int32_t p);
/* The most nd is behind over its partitions, -1 when none is known. */
int64_t gateway_lag_max(const gq_node *nd);
/* Routing order for partition p: 0 known and within the threshold, 1 not
 * known, 2 behind (then the fewer records behind the better). */
int gateway_lag_rank(const gq_node *nd, int32_t p, uint64_t threshold);
/* Ask every node that is up for its offsets, and Kafka for the watermarks
 * (a refresh: each tick of the retry timer). */
void gateway_lag_refresh(struct gq *q);
/* A per-symbol reply from nd for partition p: when nd is behind, a copy
 * with "behind" added to the result (*out, malloc'd); else *out NULL. */
int gateway_lag_note(const gq_node *nd, int32_t p, const uint8_t *reply, size_t len,
                     uint8_t **out, size_t *outlen);
/* A node went down: what it said of its offsets is forgotten. */
void gateway_lag_forget(gq_node *nd);
void gateway_lag_free(struct gq *q);

#endif
