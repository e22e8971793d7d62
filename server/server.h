/* server — the shared state of one slotd process and its configuration.
 * One libuv loop thread owns all of it; the journal's writer thread only
 * sees the bytes handed to journal_append. */
#ifndef SLOTD_SERVER_H
#define SLOTD_SERVER_H

#include <stdint.h>
#include <uv.h>

#include "clients.h"
#include "journal.h"
#include "metrics.h"
#include "proto.h"
#include "server_err.h"
#include "store.h"

#define SLOTD_VERSION "0.1.0"

typedef struct server_config {
    char listen_host[64];
    int listen_port;          /* 7400; 0 = ephemeral (tests) */
    char http_host[64];
    int http_port;            /* 7401; 0 = ephemeral, -1 = off */
    const char *data_dir;     /* ./data */
    const char *token;        /* NULL = no auth */
    const char *auth_file;    /* --auth-file: per-client credentials (auth.h); not with token */
    int http_probes_auth;     /* the open endpoints (probes, /metrics) need credentials too */
    const char *port_file;    /* if set: write "tcp_port http_port[ tls_port tls_http_port]\n" */
    int tls_port;             /* TCP protocol over TLS on listen_host; -1 = off, 0 = ephemeral */
    int tls_http_port;        /* HTTPS on http_host; -1 = off, 0 = ephemeral */
    char tls_host[64];        /* --tls-port HOST:PORT's host; "" = listen_host */
    char tls_http_host[64];   /* --tls-http-port HOST:PORT's host; "" = http_host */
    const char *tls_cert, *tls_key; /* PEM files (tls.h) */
    const char *tls_client_ca;      /* mutual TLS: NULL = no client certificates */
    int tls_client_names;           /* HELLO's name must be the client certificate's CN */
    proto_limits limits;
    uint32_t max_connections; /* 1024 */
    uint32_t idle_timeout_ms; /* 300000; 0 = none */
    uint32_t max_handshakes;  /* connections before HELLO; the oldest goes past it */
    uint32_t hello_timeout_ms;/* a connection without HELLO by then is closed */
    uint64_t max_buffered;    /* read-buffer bytes across all connections */
    uint32_t max_clients;     /* client names remembered */
    uint64_t client_ttl_ns;   /* a name unused this long may be forgotten */
    store_config store;       /* --max-memory, --max-symbols, --plain-pages */
    journal_config journal;
    int journal_off;          /* --no-journal (benchmarks only) */
    uint64_t checkpoint_bytes;       /* checkpoint after this much journal; 0 = not by size */
    uint64_t checkpoint_interval_ms; /* ... or this long since the last; 0 = not by time */
    int checkpoint_on_exit;          /* a last checkpoint at graceful shutdown */
    int64_t retention_ns;            /* drop trades older than newest - this; 0 = keep all */
    int log_level;
    /* --source kafka (kafka.h): a node fed by Kafka partitions, not TCP batches */
    int source;                      /* SERVER_SOURCE_TCP or SERVER_SOURCE_KAFKA */
    const char *kafka_brokers;       /* bootstrap.servers */
    const char *kafka_topic;
    const char *kafka_partitions;    /* "0,2,4-7": owned partitions ... */
    const char *kafka_node;          /* ... or "i/N": {p : p mod N = i} */
    const char *kafka_conf;          /* "key=value\n" per --kafka-conf, in order */
    int kafka_on_error;              /* KAFKA_ON_ERROR_SKIP or _STOP: a bad record */
    uint64_t kafka_ready_lag;        /* /readyz 503 while a partition is further behind */
    uint64_t checkpoint_records;     /* kafka: checkpoint after this many records; 0 = not */
    int gateway;                     /* --gateway (gateway.h): T batches go to Kafka */
    const char *gateway_seq_topic;   /* compacted topic of acknowledged seqs; NULL = <topic>.seqs */
    const char *gateway_nodes;       /* "I/N@IP:PORT\n" per --gateway-node: where queries go */
    const char *gateway_nodes_file;  /* --gateway-nodes-file: more of them, read at start */
    const char *gateway_node_token;  /* --gateway-node-token-file: TOKEN or NAME:SECRET for HELLO */
    uint64_t gateway_behind_records; /* a node further behind a partition's end is "behind" */
    uint64_t sub_stall_ns;           /* --sub-stall-timeout (subscribe_tcp.c) */
} server_config;

enum { SERVER_SOURCE_TCP = 0, SERVER_SOURCE_KAFKA = 1 };

typedef struct server {
    uv_loop_t *loop;
    server_config cfg;
    store *store;
    journal *journal;         /* NULL with --no-journal */
    metrics metrics;
    clients clients;          /* per-client-name seqs (clients.h) */
    int ready;                /* replay finished, not shutting down */
    int replaying;            /* journal replay running on a worker thread: the
                               * store must not be touched by the loop thread */
    _Atomic int stopping;     /* set by the loop, read by the replay thread too */
    _Atomic uint64_t replay_records; /* counted by the replay thread, read by /stats */
    uint64_t replay_ns;
    uint64_t rss_baseline;    /* RSS at start-up, before replay: memory/million base */
    int tcp_port, http_port;  /* bound ports (after listen) */
    int tls_port, tls_http_port; /* bound TLS ports; -1 = none */
    struct tls_ctx *tls;      /* certificate and key for new TLS connections (SIGHUP replaces it) */
    struct auth *auth;        /* --auth-file's table (SIGHUP replaces it); NULL: none */
    struct ingest *ingest;    /* TCP side (ingest.c) */
    struct http *http;        /* HTTP side (http.c) */
    struct checkpoint *checkpoint; /* snapshots (checkpoint.c) */
    struct retention *retention;   /* --retention (retention.c) */
    struct prefault *prefault;     /* new slab pages faulted in off the loop (prefault.c) */
    struct kafka *kafka;           /* --source kafka: the consumer (source_kafka.c) */
    struct gateway *gateway;       /* --gateway: the producer (gateway.c) */
    struct gq *gateway_q;          /* --gateway: queries to the nodes (gateway_query.c) */
    struct sub_hub *subs;          /* live subscriptions (subscribe.c) */
    uint32_t nsubs;                /* open ones: ingest notes batches only when > 0 */
} server;

/* uv_close for every handle that owns a descriptor (TCP, pipe). libuv
 * closes descriptors with syscall(SYS_close), which ThreadSanitizer does not
 * see (google/sanitizers#1376): when a thread then opens a file and gets the
 * socket's old number, TSan reports a race on the descriptor. Under TSan the
 * close is announced through the sanitizer's syscall hooks right after
 * uv_close, which for these handles stops polling and closes the descriptor
 * before it returns. */
#if defined(__SANITIZE_THREAD__)
void __sanitizer_syscall_pre_impl_close(long fd);
void __sanitizer_syscall_post_impl_close(long res, long fd);
#endif
static inline void server_close(uv_handle_t *h, uv_close_cb cb)
{
#if defined(__SANITIZE_THREAD__)
    uv_os_fd_t fd;
    int have = uv_fileno(h, &fd) == 0;
    uv_close(h, cb); /* streams and pipes: epoll_ctl and SYS_close happen in here */
    if (have) {
        __sanitizer_syscall_pre_impl_close(fd);
        __sanitizer_syscall_post_impl_close(0, fd);
    }
#else
    uv_close(h, cb);
#endif
}

/* Bind and listen on host:port (an IPv4 or IPv6 literal) with l, which is
 * initialised here with data; *open is set once l must be closed (even if
 * a later step fails); *bound: the port bound (port 0: the one the kernel
 * chose). 0 or a libuv error. */
int server_listen(uv_loop_t *loop, uv_tcp_t *l, void *data, const char *host, int port,
                  int backlog, uv_connection_cb cb, int *open, int *bound);

/* Current resident memory of this process in bytes (from /proc/self/statm). */
uint64_t server_rss_bytes(void);

#endif
