/* metrics — the server's counters, gauges and ack-latency histogram.
 * Updated by the ingest path, rendered by http.c as /stats JSON and
 * /metrics Prometheus text. Single-threaded: only the loop thread touches it.
 * Every now_ns is from one monotonic clock: uv_hrtime(). */
#ifndef SLOTD_METRICS_H
#define SLOTD_METRICS_H

#include <stdint.h>

#include "proto.h"

/* Ack latency bucket upper bounds in seconds (Prometheus `le`), + +Inf. */
#define METRICS_LATENCY_BOUNDS \
    {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0}
#define METRICS_NBUCKETS 14 /* 13 bounds + +Inf */
#define METRICS_RATE_SLOTS 64

typedef struct metrics {
    uint64_t start_ns;
    uint64_t trades_total;      /* stored (acknowledged) */
    uint64_t batches_total;     /* acknowledged, duplicates included */
    uint64_t duplicate_batches_total;
    uint64_t bytes_in_total;    /* TCP bytes read */
    uint64_t messages_total;
    uint64_t queries_total;
    uint64_t connections_total; /* accepted */
    uint64_t handshakes_evicted_total; /* closed before HELLO to make room (--max-handshakes) */
    uint32_t connections;       /* open now */
    uint64_t tls_handshakes_total; /* TLS handshakes completed (TCP and HTTP) */
    uint64_t auth_failures_total;  /* HELLO or HTTP requests refused: credentials or perms */
    uint64_t tls_failures_total;   /* TLS connections closed for a failed handshake or bad record */
    uint64_t errors_total[PROTO_NCODES];
    uint64_t ack_buckets[METRICS_NBUCKETS]; /* non-cumulative counts */
    uint64_t ack_count;
    double ack_sum;             /* seconds */
    uint64_t http_requests_total;
    uint64_t exports_total;       /* GET /export answers started */
    uint64_t export_trades_total; /* trades written by them */
    /* per-second trade counts for the 1 s / 10 s / 60 s ingest rates */
    uint64_t rate_slot[METRICS_RATE_SLOTS];
    uint64_t rate_sec;          /* the second rate_slot[rate_sec % SLOTS] counts */
} metrics;

void metrics_init(metrics *m, uint64_t now_ns);
/* The latency bucket (index into METRICS_LATENCY_BOUNDS, + +Inf) of ns. */
unsigned metrics_bucket(uint64_t ns);
void metrics_ack(metrics *m, uint64_t now_ns, uint64_t latency_ns, uint64_t trades);
void metrics_error(metrics *m, proto_code c);
/* Trades stored without an ACK (a Kafka record): counted and in the rates,
 * not in the ack histogram. */
void metrics_applied(metrics *m, uint64_t now_ns, uint64_t trades);
/* Trades per second over the last `window` complete seconds (1..60). */
double metrics_rate(metrics *m, uint64_t now_ns, unsigned window);

#endif
