/* flags — slotd's command-line flags and --config files, declared once.
 *
 * Each flag is one line of SLOTD_FLAGS below (as core/kind.h declares
 * slots): its name, type, placeholder, default, range, where it lands in
 * server_config and its help. Usage, parsing, --config and the defaults are
 * all generated from that table, so a flag cannot be documented with one
 * default and start with another.
 *
 * Values: SIZE is bytes with an optional K, M, G or T (powers of 1024);
 * DURATION is the one duration grammar of core/duration.h (a bare number is
 * seconds). A bad value is reported as one line naming the flag, the value
 * and what is accepted ("--idle-timeout: '5x' is not a duration (e.g. 90s,
 * 500ms, 5m)"), never the whole usage. Checks across flags run once, after
 * everything is parsed (flags_parse).
 *
 * Strings in server_config (data_dir, port_file, token, tls_*) are owned by it
 * once flags_defaults ran: flags_free releases them.
 */
#ifndef SLOTD_FLAGS_H
#define SLOTD_FLAGS_H

#include <stddef.h>
#include <stdio.h>

#include "server.h"

typedef enum flag_type {
    FLAG_BOOL = 1, /* no value on the command line; in a file: none, true or false */
    FLAG_U32,      /* decimal, [min, max] */
    FLAG_U64,
    FLAG_SIZE,     /* bytes, K/M/G/T suffixes */
    FLAG_DUR_NS,   /* duration, lands as ns (range in ns) */
    FLAG_DUR_MS,   /* duration, lands as ms (range in ns; sub-ms parts dropped) */
    FLAG_STRING,   /* a malloc'd copy */
    FLAG_APPEND,   /* repeatable: each value and a '\n' appended to a malloc'd string */
    FLAG_ENUM,     /* one of the '|'-separated words of its placeholder: lands as its index */
    FLAG_LISTEN,   /* HOST:PORT -> listen_host, listen_port */
    FLAG_HTTP,     /* HOST:PORT or off -> http_host, http_port (-1 = off) */
    FLAG_TLS_PORT, /* PORT, HOST:PORT or off -> tls_(http_)port and tls_(http_)host */
    FLAG_DATA_DIR, /* data_dir and journal.dir */
    FLAG_TOKEN,    /* token.h, the value itself */
    FLAG_TOKEN_FILE, /* token.h, from a file */
    FLAG_CONFIG,   /* read more flags from a file */
    FLAG_HELP,     /* command line only */
    FLAG_VERSION,
} flag_type;

#define FLAG_ZERO_OK 1 /* 0 is accepted besides [min, max]: "0 = off" */

#define FLAG_K ((uint64_t)1 << 10)
#define FLAG_M ((uint64_t)1 << 20)
#define FLAG_NS_S 1000000000LL
#define FLAG_NS_MS 1000000LL
#define FLAG_AT(field) offsetof(server_config, field), sizeof(((server_config *)0)->field)
#define FLAG_NOWHERE 0, 0

/* X(name, type, placeholder, default, min, max, opts, FLAG_AT(field), help).
 * Help lines are separated by '\n'; the default is shown after the last. */
#define SLOTD_FLAGS(X)                                                                              \
    X("listen", FLAG_LISTEN, "HOST:PORT", "127.0.0.1:7400", 0, 0, 0, FLAG_AT(listen_host),          \
      "msgpack/TCP ingest address")                                                                 \
    X("http", FLAG_HTTP, "HOST:PORT|off", "127.0.0.1:7401", 0, 0, 0, FLAG_AT(http_host),            \
      "HTTP operator endpoints\n(any address but loopback must be given explicitly)")               \
    X("data-dir", FLAG_DATA_DIR, "DIR", "./data", 0, 0, 0, FLAG_AT(data_dir), "journal directory")  \
    X("fsync", FLAG_ENUM, "always|interval|never", "interval", 0, 0, 0, FLAG_AT(journal.fsync),     \
      "when an ACK is sent (see README)")                                                           \
    X("fsync-interval-ms", FLAG_U32, "N", "10", 1, 60000, 0, FLAG_AT(journal.interval_ms),          \
      "fsync period for 'interval', in ms")                                                         \
    X("journal-segment", FLAG_SIZE, "SIZE", "256M", FLAG_M, UINT64_MAX, 0,                          \
      FLAG_AT(journal.segment_bytes), "rotate journal files at this size")                          \
    X("salvage", FLAG_BOOL, NULL, NULL, 0, 0, 0, FLAG_AT(journal.salvage),                          \
      "replay past mid-journal corruption and missing\n"                                            \
      "segments or snapshot (what they held is lost)")                                              \
    X("checkpoint-bytes", FLAG_SIZE, "SIZE", "1G", 64 * FLAG_K, UINT64_MAX, FLAG_ZERO_OK,           \
      FLAG_AT(checkpoint_bytes),                                                                    \
      "snapshot the store after this much journal, then\n"                                          \
      "remove the segments it covers; 0 = not by size")                                             \
    X("checkpoint-interval", FLAG_DUR_MS, "DURATION", "0", FLAG_NS_MS, INT64_MAX, FLAG_ZERO_OK,     \
      FLAG_AT(checkpoint_interval_ms), "... or this long after the last one; 0 = never")            \
    X("checkpoint-on-exit", FLAG_BOOL, NULL, NULL, 0, 0, 0, FLAG_AT(checkpoint_on_exit),            \
      "take a last snapshot at graceful shutdown")                                                  \
    X("retention", FLAG_DUR_NS, "DURATION", "0", 0, INT64_MAX, 0, FLAG_AT(retention_ns),            \
      "drop trades older than the newest stored trade's ts\n"                                       \
      "minus DURATION (whole pages); 0 = keep all")                                                 \
    X("max-future", FLAG_DUR_NS, "DURATION", "5m", 0, INT64_MAX, 0,                                 \
      FLAG_AT(limits.max_future_ns),                                                                \
      "refuse trades stamped more than DURATION ahead of the\n"                                     \
      "wall clock (BAD_VALUE); 0 = no bound")                                                       \
    X("no-journal", FLAG_BOOL, NULL, NULL, 0, 0, 0, FLAG_AT(journal_off),                           \
      "keep nothing on disk (benchmarks only: ACK = in memory)")                                    \
    X("token", FLAG_TOKEN, "TOKEN", NULL, 0, 0, 0, FLAG_AT(token),                                  \
      "TCP HELLO and HTTP (Authorization: Bearer) must carry\n"                                     \
      "this token: 1-256 bytes of visible ASCII; default none")                                     \
    X("token-file", FLAG_TOKEN_FILE, "FILE", NULL, 0, 0, 0, FLAG_AT(token),                         \
      "read the token from FILE (keeps it out of ps); one\n"                                        \
      "trailing newline is not part of it; not with --token")                                       \
    X("tls-port", FLAG_TLS_PORT, "[HOST:]PORT|off", "off", 0, 0, 0, FLAG_AT(tls_port),              \
      "msgpack/TCP ingest over TLS, on --listen's host unless\n"                                    \
      "HOST is given (needs --tls-cert and --tls-key)")                                             \
    X("tls-http-port", FLAG_TLS_PORT, "[HOST:]PORT|off", "off", 0, 0, 0, FLAG_AT(tls_http_port),    \
      "HTTPS, on --http's host unless HOST is given")                                               \
    X("tls-cert", FLAG_STRING, "FILE", NULL, 0, 0, 0, FLAG_AT(tls_cert),                            \
      "the server's certificate chain, PEM (re-read on SIGHUP)")                                    \
    X("tls-key", FLAG_STRING, "FILE", NULL, 0, 0, 0, FLAG_AT(tls_key),                              \
      "its private key, PEM, unencrypted (re-read on SIGHUP)")                                      \
    X("tls-client-ca", FLAG_STRING, "FILE", NULL, 0, 0, 0, FLAG_AT(tls_client_ca),                  \
      "mutual TLS: clients must present a certificate\nsigned by a CA in FILE (PEM)")               \
    X("tls-client-names", FLAG_BOOL, NULL, NULL, 0, 0, 0, FLAG_AT(tls_client_names),                \
      "with --tls-client-ca: a client on --tls-port may only\n"                                    \
      "use the name its certificate's subject CN carries")                                          \
    X("auth-file", FLAG_STRING, "FILE", NULL, 0, 0, 0, FLAG_AT(auth_file),                          \
      "per-client credentials, name:salt:sha256hex:perms per\n"                                     \
      "line (docs/operations.md; re-read on SIGHUP); not with\n--token")                           \
    X("http-probes-auth", FLAG_BOOL, NULL, NULL, 0, 0, 0, FLAG_AT(http_probes_auth),                \
      "/healthz, /readyz and /metrics need --token or\n"                                             \
      "--auth-file credentials too (default: open, for\nprobes and Prometheus scrapes)")            \
    X("max-message", FLAG_SIZE, "SIZE", "16M", FLAG_K, UINT64_MAX, 0, FLAG_AT(limits.max_msg),      \
      "largest message; at most 64M, the journal's\nlargest record")                                \
    X("max-batch", FLAG_U32, "N", "100000", 1, 10000000, 0, FLAG_AT(limits.max_batch),              \
      "most trades in one batch")                                                                   \
    X("max-depth", FLAG_U32, "N", "16", 4, 32, 0, FLAG_AT(limits.max_depth),                        \
      "deepest msgpack nesting")                                                                    \
    X("max-connections", FLAG_U32, "N", "1024", 1, 1000000, 0, FLAG_AT(max_connections),            \
      "most TCP connections past HELLO")                                                            \
    X("max-handshakes", FLAG_U32, "N", "1024", 1, 1000000, 0, FLAG_AT(max_handshakes),              \
      "most TCP connections still before HELLO; a new one\npast it closes the oldest")              \
    X("hello-timeout", FLAG_DUR_MS, "DURATION", "10s", FLAG_NS_S, 3600 * FLAG_NS_S, 0,              \
      FLAG_AT(hello_timeout_ms), "close a connection without HELLO by then")                        \
    X("max-buffered", FLAG_SIZE, "SIZE", "1G", FLAG_M, UINT64_MAX, 0, FLAG_AT(max_buffered),        \
      "read-buffer bytes across all connections")                                                   \
    X("max-clients", FLAG_U32, "N", "65536", 1, 1 << 24, 0, FLAG_AT(max_clients),                   \
      "most client names remembered (see PROTOCOL.md 5)")                                           \
    X("client-ttl", FLAG_DUR_NS, "DURATION", "7d", 0, INT64_MAX, 0, FLAG_AT(client_ttl_ns),         \
      "a name unused this long may be forgotten when the\ntable is full")                           \
    X("idle-timeout", FLAG_DUR_MS, "DURATION", "300s", FLAG_NS_MS, 7 * 86400 * FLAG_NS_S,           \
      FLAG_ZERO_OK, FLAG_AT(idle_timeout_ms),                                                       \
      "close connections silent this long, or whose message\n"                                      \
      "is not complete this long after its first byte;\n0 = never")                                 \
    X("max-memory", FLAG_SIZE, "SIZE", "4G", 16 * FLAG_M, UINT64_MAX, 0, FLAG_AT(store.max_memory), \
      "cap on the store (slots + index)")                                                           \
    X("max-symbols", FLAG_U32, "N", "1000000", 1, 100000000, 0, FLAG_AT(store.max_symbols),         \
      "most distinct symbols")                                                                      \
    X("plain-pages", FLAG_BOOL, NULL, NULL, 0, 0, 0, FLAG_AT(store.plain),                          \
      "keep every page's 32-byte slots: no compact pages\n"                                         \
      "(scans ~1.3x faster, ~2.5x the memory per trade)")                                           \
    X("ignore-unknown-fields", FLAG_BOOL, NULL, NULL, 0, 0, 0, FLAG_AT(limits.ignore_unknown),      \
      "skip undeclared trade keys instead of rejecting the batch")                                  \
    X("port-file", FLAG_STRING, "FILE", NULL, 0, 0, 0, FLAG_AT(port_file),                          \
      "write \"TCP_PORT HTTP_PORT\\n\" once listening (tests)")                                     \
    X("source", FLAG_ENUM, "tcp|kafka", "tcp", 0, 0, 0, FLAG_AT(source),                            \
      "where trades come from: TCP T batches, or Kafka\n"                                           \
      "partitions (docs/cluster.md; TCP T batches are then\nrefused READ_ONLY)")                    \
    X("kafka-brokers", FLAG_STRING, "HOST:PORT,...", NULL, 0, 0, 0, FLAG_AT(kafka_brokers),         \
      "Kafka bootstrap servers (--source kafka)")                                                   \
    X("kafka-topic", FLAG_STRING, "TOPIC", NULL, 0, 0, 0, FLAG_AT(kafka_topic),                     \
      "the topic this node consumes")                                                               \
    X("kafka-partitions", FLAG_STRING, "LIST", NULL, 0, 0, 0, FLAG_AT(kafka_partitions),            \
      "partitions this node owns, e.g. 0,2,4-7 (or --kafka-node)")                                  \
    X("kafka-node", FLAG_STRING, "I/N", NULL, 0, 0, 0, FLAG_AT(kafka_node),                         \
      "own every partition p with p mod N = I")                                                     \
    X("kafka-conf", FLAG_APPEND, "KEY=VALUE", NULL, 0, 0, 0, FLAG_AT(kafka_conf),                   \
      "a librdkafka setting (repeatable), e.g.\nsecurity.protocol=SSL")                             \
    X("kafka-on-error", FLAG_ENUM, "skip|stop", "skip", 0, 0, 0, FLAG_AT(kafka_on_error),           \
      "a bad record: count, log and skip it, or stop its\npartition (the others go on)")            \
    X("kafka-ready-lag", FLAG_U64, "N", "1000", 0, UINT64_MAX, 0, FLAG_AT(kafka_ready_lag),         \
      "/readyz is 503 while a partition is more than N\nrecords behind its high watermark")         \
    X("checkpoint-records", FLAG_U64, "N", "0", 0, UINT64_MAX, 0, FLAG_AT(checkpoint_records),      \
      "--source kafka: snapshot after N records applied\n"                                          \
      "(--checkpoint-bytes counts record bytes there); 0 = not\nby count")                          \
    X("gateway", FLAG_BOOL, NULL, NULL, 0, 0, 0, FLAG_AT(gateway),                                  \
      "be a gateway (docs/cluster.md): T batches are cut per\n"                                     \
      "partition and produced to --kafka-topic; no local disk")                                      \
    X("gateway-seq-topic", FLAG_STRING, "TOPIC", NULL, 0, 0, 0, FLAG_AT(gateway_seq_topic),         \
      "--gateway: compacted topic of acknowledged seqs\n[default: <kafka-topic>.seqs]")               \
    X("gateway-node", FLAG_APPEND, "I/N@HOST:PORT", NULL, 0, 0, 0, FLAG_AT(gateway_nodes),            \
      "--gateway: a node owning partitions p mod N = I\n"                                           \
      "(repeatable; replicas too): per-symbol queries go there")                                   \
    X("gateway-nodes-file", FLAG_STRING, "FILE", NULL, 0, 0, 0, FLAG_AT(gateway_nodes_file),       \
      "--gateway: more nodes, one I/N@HOST:PORT a line ('#'\n"                                       \
      "comments); HOST may be a DNS name (resolved at each connect)")                              \
    X("gateway-node-token-file", FLAG_TOKEN_FILE, "FILE", NULL, 0, 0, 0,                            \
      FLAG_AT(gateway_node_token),                                                                  \
      "--gateway: the credential for the nodes' HELLO: their\n"                                     \
      "--token, or NAME:SECRET of their --auth-file (HELLO as\nNAME); read like --token-file")       \
    X("gateway-behind-records", FLAG_U64, "N", "1000", 0, UINT64_MAX, 0,                             \
      FLAG_AT(gateway_behind_records),                                                              \
      "--gateway: a node more than N records behind a\n"                                            \
      "partition's end is behind: queries prefer a replica\nthat is not, answers say so")            \
    X("sub-stall-timeout", FLAG_DUR_NS, "DURATION", "10s", FLAG_NS_MS, INT64_MAX, FLAG_ZERO_OK,      \
      FLAG_AT(sub_stall_ns), "drop a subscriber whose pushes have not drained\n"                    \
      "for this long (it is not reading); 0 = never")                                               \
    X("log-level", FLAG_ENUM, "error|warn|info|debug", "info", 0, 0, 0, FLAG_AT(log_level),         \
      "how much to log")                                                                            \
    X("config", FLAG_CONFIG, "FILE", NULL, 0, 0, 0, FLAG_NOWHERE,                                   \
      "read flags from FILE: one 'flag value' per line,\n'#' comments, at most 4 files deep")       \
    X("help", FLAG_HELP, NULL, NULL, 0, 0, 0, FLAG_NOWHERE, "this text (also -h)")                  \
    X("version", FLAG_VERSION, NULL, NULL, 0, 0, 0, FLAG_NOWHERE, "the version")

typedef struct flag_def {
    const char *name; /* without the leading "--" */
    flag_type type;
    const char *arg;  /* placeholder in usage; NULL: takes no value */
    const char *def;  /* default, as text, parsed like a given value; NULL: none */
    uint64_t min, max;
    unsigned opts;    /* FLAG_ZERO_OK */
    size_t off, size; /* where it lands in server_config */
    const char *help;
} flag_def;

extern const flag_def flags_table[];
extern const size_t flags_count;

enum {
    FLAGS_OK = 0,
    FLAGS_HELP = 1,        /* --help or -h: print flags_usage, exit 0 */
    FLAGS_VERSION = 2,     /* --version */
    /* errors: a FLAGS_E* code, declared in server_err.h (server_strerror) */
};

#define FLAGS_MSG_MAX 512
#define FLAGS_CONFIG_DEPTH 4 /* a --config may name another, this many files deep */

/* Zero *cfg and apply every default of the table (and proto_limits_default
 * for what no flag sets). */
void flags_defaults(server_config *cfg);

/* Apply argv[1..argc) over *cfg, then the checks across flags. On error
 * msg (cap bytes) holds one line without the "slotd: " prefix. */
int flags_parse(server_config *cfg, int argc, char **argv, char *msg, size_t cap);

/* One flag by name (no "--"), as from the command line or a file; value
 * NULL for a bool. For tests and flags_parse. */
int flags_set(server_config *cfg, const char *name, const char *value, char *msg, size_t cap);

void flags_usage(FILE *f);
void flags_free(server_config *cfg);

#endif
