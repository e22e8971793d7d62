/* slotload — internal interfaces shared by slotload.c (flags, workload
 * encoding, the libuv client) and slotload_report.c (/stats over HTTP, the
 * final report, JSON, CSV and the progress line). Not a library API. */
#ifndef SLOTD_SLOTLOAD_H
#define SLOTD_SLOTLOAD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hist.h"

typedef struct sl_config {
    const char *host;
    int port, http_port;       /* 7400, 7401; http_port 0 = don't fetch /stats */
    const char *workload;      /* "w1", "w1-10k" or "custom" */
    uint32_t symbols;
    double zipf;
    uint64_t seed;
    uint64_t trades;           /* 0 with --duration */
    double duration;           /* seconds; 0 with --trades */
    uint32_t connections, inflight, batch;
    double rate;               /* trades/s; 0 = closed loop, as fast as acks allow */
    int form_array;            /* 0 map, 1 array */
    int px_float;              /* px as float64 (1) or exact decimal text (0) */
    const char *client_prefix;
    const char *client_name; /* --client: fixed names, or NULL */
    int json, progress;
    const char *csv;
    uint64_t pool;             /* most trades pre-encoded in --duration mode */
    double stall_timeout;      /* seconds without any reply before giving up */
    const char *export_format; /* --export FORMAT FILE: "msgpack" or "resp" */
    const char *export_path;
    const char *kafka_brokers; /* --kafka: produce to Kafka instead (slotload_kafka.c) */
    const char *kafka_topic;   /* "trades" */
    int kafka_batch;           /* 1: a T message per --batch trades of a symbol; 0: a trade a record */
    char token[256];           /* --token-file's secret, "" = none */
    int tls;                   /* --tls: the TCP port speaks TLS */
    const char *tls_ca, *tls_cert, *tls_key, *tls_server_name;
} sl_config;

/* What /stats said; ok = 0 when it could not be fetched or parsed. */
typedef struct sl_stats {
    int ok;
    uint64_t rss;              /* resident_memory_bytes */
    double mem_per_million;    /* the server's own memory_per_million_trades, < 0 if absent */
    uint64_t trades;           /* store.trades (or a top-level trades) */
    uint64_t bytes_reserved, bytes_used;
} sl_stats;

#define SL_MAX_CODES 32
typedef struct sl_errcount {
    char code[32];
    uint64_t batches;
} sl_errcount;

/* Everything the report prints, filled in by the client when the run ends. */
typedef struct sl_result {
    double seconds;            /* first send to last reply */
    double encode_seconds;     /* pre-encoding, not timed */
    double cpu_user, cpu_sys;  /* slotload's own CPU during the timed phase, s */
    uint64_t sent_batches, sent_trades, wire_bytes;
    uint64_t acked_batches, acked_trades;
    uint64_t err_batches;
    uint64_t lost_batches;     /* in flight when a connection died */
    sl_errcount errs[SL_MAX_CODES];
    int nerrs;
    int fatal;                 /* the run stopped early (connection, protocol, stall) */
    char fatal_msg[256];
    hist *lat;                 /* ack latency, ns */
    hist *lag;                 /* open loop: due time -> write, ns (client lag or backlog) */
    sl_stats before, after;
} sl_result;

/* slotload_args.c: 0, or -1 after printing what is wrong (--help exits). */
int sl_parse_args(int argc, char **argv, sl_config *c);
/* How many trades to pre-encode: all of them, or a pool cycled for --duration. */
uint64_t sl_pool_trades(const sl_config *c);

/* slotload_encode.c */
typedef struct sl_buf {
    char *data;
    size_t len, cap;
} sl_buf;
int sl_buf_write(void *data, const char *p, size_t n); /* a msgpack_packer callback */
struct msgpack_packer;
void sl_pack_str(struct msgpack_packer *pk, const char *s, size_t n);

/* All batch bodies back to back: body i is buf.data[off[i] .. off[i+1]). */
typedef struct sl_batches {
    sl_buf buf;
    size_t *off;
    uint32_t *ntrades;
    uint64_t n;
} sl_batches;
int sl_encode(const sl_config *cfg, uint64_t trades, sl_batches *bt);
void sl_batches_free(sl_batches *bt);
/* --export: write the workload instead of sending it, for the peer
 * benchmarks ("msgpack": the batch bodies; "resp": Redis XADD commands). */
int sl_export(const sl_config *cfg, const char *format, const char *path);

/* slotload_kafka.c: the Kafka sink; the exit status. */
int sl_kafka_run(const sl_config *cfg);

/* slotload_report.c */
int sl_fetch_stats(const char *host, int port, sl_stats *out);
void sl_report_text(FILE *f, const sl_config *cfg, const sl_result *r);
void sl_report_json(FILE *f, const sl_config *cfg, const sl_result *r);
/* One line per second: to a terminal as a \r-updated line, else plainly. */
void sl_progress(FILE *f, int tty, double t, double rate, uint64_t acked, uint64_t errors,
                 uint64_t p99_ns, uint64_t inflight);
void sl_progress_end(FILE *f, int tty);
void sl_csv_header(FILE *f);
void sl_csv_row(FILE *f, uint64_t second, double rate, uint64_t acked, uint64_t errors,
                const hist *sec);

#endif
