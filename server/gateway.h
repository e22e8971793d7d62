/* gateway — slotd --gateway: the TCP protocol of a node in front of Kafka
 * (docs/cluster.md, "The gateway").
 *
 * Ingest (ingest.c hands every T batch that passed the decoder and the seq
 * rules to gateway_submit): the batch is cut per partition (split.h; the
 * partition of a symbol is murmur2 over the topic's partition count, the
 * same function the nodes check records with), and each part is produced
 * with the idempotent producer (acks=all) as one record: no key, an
 * explicit partition, value = a T message of that part's trades, headers
 * "client", "seq" (the batch's, decimal), "part" ("i/n") and "prev"
 * (below). The nodes de-duplicate per (client, partition) on (client,
 * seq): the parts of one batch land in distinct partitions, so each
 * (client, seq, partition) is one record. The batch is done when every part's delivery report is in:
 * success only if all succeeded.
 *
 * Pipelining, and why a resend never loses a part. A name's batches go to
 * Kafka as they come (many in flight), and are answered in seq order, each
 * once its own parts and every earlier batch are done (gw_pipe). The nodes
 * skip a part at or below the highest seq they hold for (client,
 * partition), so a later part must never be held where an earlier one of
 * the same name is missing — and Kafka can leave such a gap: the
 * idempotent producer keeps a partition's records in order without
 * duplicates, but a message that times out (message.timeout.ms) is
 * dropped while later ones may still be written. Three rules close it:
 *   1. every part carries header "prev": the seq of the part of the same
 *      name produced before it to the same partition, 0 for the first one of
 *      a pipeline; a node refuses (skips, counted as
 *      skipped_out_of_chain) a part whose prev is above what it holds;
 *   2. once any part of a name fails, every batch of the name not yet
 *      answered fails too, even if its own parts are in Kafka, and nothing
 *      more of the name is produced until its pipeline drains — so every
 *      refused part belongs to a batch the client is told to resend;
 *   3. a pipeline (and its prev[]) exists only while a batch of the name
 *      is unanswered; by the time a new one starts, ingest holds the name
 *      at its lowest failed seq (PROTOCOL.md §5), so the first parts it
 *      produces are the resends, lowest first, and nothing above a missing
 *      part can be produced without a prev naming it.
 * So in each partition the parts a node applies are, per name, in seq
 * order with none missing below the highest: a resend is skipped exactly
 * when its part is held.
 * Resume without local disk: once every part of batch N of client C is
 * acknowledged, the record (key C, value N in decimal) is produced to the
 * seq topic (--gateway-seq-topic, compacted; default "<topic>.seqs"). At
 * start the gateway reads that topic to its end (the highest N per C)
 * before it answers HELLO (NOT_READY until then), so WELCOME last_seq is
 * what was acknowledged — or lower, if the gateway died between the parts'
 * acknowledgement and the seq record's: the client then resends batches
 * whose parts are in Kafka already, and the nodes skip them.
 *
 * Loop thread only, except the metadata look-up (a uv worker thread).
 * librdkafka's delivery reports come through the producer's main queue,
 * whose event fd wakes the loop (rd_kafka_queue_io_event_enable + uv_poll).
 */
#ifndef SLOTD_GATEWAY_H
#define SLOTD_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#include "server.h"

/* The batch is done: err NULL when every part was acknowledged by Kafka,
 * else why not (some parts may be in Kafka: a resend is de-duplicated). */
typedef void (*gateway_done_fn)(void *ctx, const char *err);

/* Create the producer and the seq topic's reader; srv->ready is set once
 * the topics' partition counts are known and the seq topic is read to its
 * end. 0 or a negative code (logged); a later failure (a fatal producer
 * error) is logged and calls fail(srv). */
int gateway_start(server *srv, void (*fail)(server *srv));
/* Produce batch seq of client cl (msg: a T message the decoder accepted;
 * copied when it must wait). done runs exactly once on the loop thread,
 * possibly before this returns. cl->inflight must count the batch (ingest
 * does), so the name stays in the table until done. */
void gateway_submit(server *srv, client_rec *cl, uint64_t seq, const uint8_t *msg, size_t len,
                    gateway_done_fn done, void *ctx);
/* Graceful stop, once no batch is in flight: the seq records produced are
 * flushed (up to 5 s), handles closed. */
void gateway_stop(server *srv);
/* After the loop has ended. */
void gateway_free(server *srv);

/* 1 when ready; else 0 with why[cap] saying what it waits for. */
int gateway_ready(const server *srv, char *why, size_t cap);

struct emit;
/* The "gateway" section of /stats (a map). */
void gateway_stats_json(const server *srv, struct emit *e);

/* For /metrics: the produce-latency histogram (metrics.h buckets, not
 * cumulative), parts and batches that failed. */
void gateway_produce_stats(const server *srv, const uint64_t **buckets, double *sum,
                           uint64_t *count, uint64_t *failed_parts, uint64_t *failed_batches);

/* The partition of a symbol (murmur2 over the topic's partition count), or
 * -1 before the count is known. */
int32_t gateway_partition(const server *srv, const char *sym, size_t len);

/* The high watermark of every partition of the trades topic (-1: the
 * look-up failed), from the gateway's own producer handle. */
typedef void (*gateway_marks_fn)(server *srv, const int64_t *hw, int32_t n);
/* Look them up on a uv worker thread; done runs on the loop thread unless
 * the gateway stops first. 0, or -1 (not ready, stopping, or one look-up
 * is running already: done will not run). */
int gateway_watermarks(server *srv, gateway_marks_fn done);

/* ---- gateway_query.c: per-symbol queries to the nodes ----
 *
 * --gateway-node I/N@HOST:PORT (repeatable) and the lines of
 * --gateway-nodes-file (read at start) name a node and what it owns
 * (every partition p with p mod N = I, as its --kafka-node). A symbol,
 * trades or bars query goes byte for byte to a ready node owning the
 * symbol's partition (one not behind, gateway_lag.c; then the one with the
 * fewest queries waiting); the node's reply comes back as is, or with
 * "behind" added when every owner is behind. A node whose connection fails
 * hands its waiting queries to another ready node of their partition, else
 * they are answered NOT_READY (with why the owners are down); it is
 * reconnected every 500 ms, or ever later after its HELLO was refused.
 * Deletes are not routed (BAD_QUERY). */
#define GATEWAY_HOST_MAX 256 /* a DNS name (253) or an IP address, + NUL */
typedef void (*gateway_reply_fn)(void *ctx, const uint8_t *reply, size_t len,
                                 const proto_error *err);
/* "I/N@HOST:PORT" (len bytes) -> its parts. 0 or -1. HOST is resolved at
 * each connect (a StatefulSet pod's DNS name follows the pod). */
int gateway_node_parse(const char *s, size_t len, uint32_t *i, uint32_t *n, char *host,
                       size_t hcap, int *port);
int gateway_query_start(server *srv);
/* --gateway-node-token-file's credential (docs/cluster.md, "Nodes that need
 * credentials"): NAME:SECRET (a line of the nodes' --auth-file: HELLO as
 * NAME with token SECRET), or else the nodes' --token (no ':' in it: HELLO
 * as "gateway-q-<pid>-<k>" with it). 0 with name[cap] set ("" for a token)
 * and *secret pointing into cred; -1 when NAME or SECRET is empty or NAME
 * is longer than GATEWAY_CRED_NAME_MAX. */
#define GATEWAY_CRED_NAME_MAX 64 /* PROTO_NAME_MAX */
int gateway_node_cred(const char *cred, char *name, size_t cap, const char **secret);
/* The HELLO the gateway sends node k: credential cred (NULL: none) as
 * above. 0, or -1 (out of memory, or a credential gateway_node_cred
 * refuses). */
int gateway_node_hello(proto_buf *out, const char *cred, int pid, int k);
struct query_req;
/* Forward msg (the framed Q) for req's symbol: 0 and done runs exactly once
 * later (or now), or -1 with err set and done never runs. */
int gateway_query_forward(server *srv, const struct query_req *req, const uint8_t *msg, size_t len,
                          gateway_reply_fn done, void *ctx, proto_error *err);
/* 1 when every partition has a ready node (or no --gateway-node is given:
 * an ingest-only gateway); else 0 with why[cap] naming one that has none. */
int gateway_nodes_ready(const server *srv, char *why, size_t cap);
/* The topic's partition count, or -1 before it is known. */
int32_t gateway_partitions(const server *srv);

/* ---- fan-out (gateway_query.c): one query to several nodes ----
 * all = 0: one ready node per group of partitions (the first ready owner of
 * each partition not yet covered, least behind first; a node that fails
 * hands its query to another owner of the partition it stands for); all =
 * 1: every --gateway-node, down ones included (their reply NULL). A node
 * that has not answered within 3 s counts as not answering. done runs once,
 * with every node's reply, the partitions no node answered an R for, the
 * ones behind and the down nodes of the missing ones. */
typedef struct gateway_fan_reply {
    char node[GATEWAY_HOST_MAX + 32]; /* "I/N@HOST:PORT" */
    int64_t lag;           /* records behind, max over its partitions; -1 unknown */
    const uint8_t *reply;  /* the node's reply (R or ERR), or NULL: err says why */
    size_t len;
    char err[208];
} gateway_fan_reply;
/* A partition answered from a node behind its end in Kafka by more than
 * --gateway-behind-records (gateway_lag.c). */
typedef struct gateway_behind {
    int32_t partition;
    int64_t records;       /* the high watermark minus the node's next offset */
    char node[GATEWAY_HOST_MAX + 32];
} gateway_behind;
typedef struct gateway_fan_result {
    const gateway_fan_reply *replies;
    size_t n;
    const int32_t *missing; /* ascending */
    size_t nmissing;
    /* all = 0: the partitions whose answer came from a node that is behind;
     * all = 1: every (node, partition) that is behind */
    const gateway_behind *behind;
    size_t nbehind;
    /* the nodes owning a missing partition that are down, and why (err) */
    const gateway_fan_reply *down;
    size_t ndown;
    int32_t nparts;
    int oom;                /* out of memory: nothing else is set */
} gateway_fan_result;
typedef void (*gateway_fan_fn)(void *ctx, const gateway_fan_result *res);
/* 0 and done runs exactly once (possibly now), or -1 with err (not ready). */
int gateway_fan(server *srv, int all, const uint8_t *msg, size_t len, gateway_fan_fn done,
                void *ctx, proto_error *err);
/* ---- gateway_cluster.c: answers from several nodes ----
 * top: asked of one ready node per group of partitions (gateway_fan), the
 * answers merged (relay.h: exact, each symbol lives in one partition); with
 * "partial": true and "missing_partitions" when some partition had no node
 * answering. json: done gets the JSON body (HTTP); else ["R", qid, result].
 * 0 and done runs once, or -1 with err. */
int gateway_top(server *srv, const struct query_req *q, uint64_t qid, int json, gateway_reply_fn done,
                void *ctx, proto_error *err);
/* The TCP stats query: every node asked; done gets ["R", qid, the
 * "cluster" map below]. 0, or -1 with err. */
int gateway_stats_query(server *srv, uint64_t qid, gateway_reply_fn done, void *ctx,
                        proto_error *err);
/* The stats query message the fan-outs send, ["Q", 0, {"op": "stats"}]. */
extern const uint8_t gateway_stats_msg[14];
/* The "cluster" section of a gateway's /stats from a fan-out of the stats
 * query to every node: {"partial", "missing_partitions", "partitions",
 * "nodes": [{"node", "up", "stats" | "error"}], "sum": {...}}. */
void gateway_cluster_json(const gateway_fan_result *res, struct emit *e);
/* The same as /metrics lines (slotd_gateway_node_*{node=...},
 * slotd_gateway_cluster_*, slotd_gateway_partitions_missing). 0 or -1. */
int gateway_cluster_prom(const gateway_fan_result *res, proto_buf *out);

/* Graceful stop: connections closed, queries still waiting answered NOT_READY. */
void gateway_query_stop(server *srv);
void gateway_query_free(server *srv);

#endif
