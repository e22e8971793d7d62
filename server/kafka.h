/* kafka — a slotd node fed by Kafka (--source kafka; docs/cluster.md).
 *
 * The node owns some partitions of one topic (--kafka-partitions LIST, or
 * --kafka-node I/N: every p with p mod N = I) and consumes them by static
 * assignment (rd_kafka_assign: no consumer group rebalancing, which would
 * move a partition to a node holding none of its state). Each record goes
 * through the decode -> reserve -> commit path of a TCP batch, without the
 * journal: Kafka is the journal.
 *
 * Offsets live in the client table (clients.h): owned partition p of topic
 * T is the pseudo-client "kafka:T:p", whose durable seq is the next offset
 * to consume (offset + 1 of the last applied record). The store and the
 * seq move together on the loop thread, in one step per record, and a
 * checkpoint captures both at its barrier, so a snapshot holds the state
 * and the offsets of one instant, with no change of format. Restart loads
 * the snapshot and assigns each partition at its stored offset (the
 * beginning when none): every record applied exactly once.
 *
 * A record carrying headers "client" (a name) and "seq" (decimal) — what
 * the gateway writes — is also de-duplicated: "gw:<client>:<p>" holds the
 * highest seq applied from that client in partition p, and a record at or
 * below it is skipped and counted; so is one whose "prev" (the gateway's
 * previous part of that client in p, gateway.h) is above it: its
 * predecessor is missing, and the client resends both. Names with the
 * prefixes "kafka:" and "gw:" are reserved (clients_reserved): a TCP HELLO
 * cannot take them and the table never forgets them.
 *
 * A record: key = symbol; value = one msgpack trade (map or array form, as
 * in a T batch) or a whole T message (its seq is ignored). Every trade's
 * symbol must be the key when the record has one (KEY_MISMATCH), and must
 * be one Kafka's default partitioner (murmur2 over the topic's partition
 * count) puts in the record's partition (WRONG_PARTITION): else a symbol
 * could have two owners. A bad record is counted and logged (topic,
 * partition, offset, the decoder's or the check's message), then skipped
 * (--kafka-on-error skip) or its partition stops (stop), the others go on.
 * STORE_FULL pauses the partition and retries every 250 ms; nothing is
 * dropped.
 *
 * Loop thread only, except the metadata look-up of the topic's partition
 * count (a uv worker thread, before anything is assigned).
 */
#ifndef SLOTD_KAFKA_H
#define SLOTD_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include "server.h"

enum { KAFKA_ON_ERROR_SKIP = 0, KAFKA_ON_ERROR_STOP = 1 };

#define KAFKA_TOPIC_MAX 100 /* bytes; keeps "kafka:<topic>:<p>" within CLIENTS_NAME_MAX */
#define KAFKA_PARTITIONS_MAX 100000

/* ---- kafka_conf.c: flags -> settings ---- */

/* The flags that matter to Kafka agree with each other and with
 * --source (flags.c's validate). 0, or -1 with one line in msg. */
int kafka_config_check(const server_config *cfg, char *msg, size_t cap);

/* The owned partitions of a topic of `count` partitions (count < 0:
 * unknown, only for an explicit list), sorted, in a malloc'd array. 0 or
 * -1 with msg set. */
int kafka_owned(const server_config *cfg, int32_t count, int32_t **out, size_t *n, char *msg,
                size_t cap);

/* The client-table names: "kafka:<topic>:<p>" and "gw:<client>:<p>".
 * Return the length, or 0 if it would not fit cap (or CLIENTS_NAME_MAX). */
size_t kafka_offset_name(char *buf, size_t cap, const char *topic, int32_t p);
size_t kafka_dedupe_name(char *buf, size_t cap, const char *client, size_t clen, int32_t p);

/* A librdkafka configuration: `set` in order, then every --kafka-conf
 * line of `user` ("key=value\n"...) in order, so the user's win. NULL
 * (logged) when a setting is refused. */
struct rd_kafka_conf_s;
struct rd_kafka_conf_s *kafka_conf_new(const char *set[][2], size_t n, const char *user);

/* ---- source_kafka.c: the consumer ---- */

/* Once the snapshot is loaded (loop thread): create the consumer; then,
 * once the brokers have told the topic's partition count, find the owned
 * partitions and assign them at their stored offsets. 0 or a negative code
 * (logged). A failure found later (the metadata look-up, a listed partition
 * the topic lacks) is logged and calls fail(srv). */
int kafka_start(server *srv, void (*fail)(server *srv));
/* Graceful stop: nothing more is consumed; handles closed. */
void kafka_stop(server *srv);
/* After the loop has ended: destroy the consumer. */
void kafka_free(server *srv);

/* 1 when every owned partition is assigned and within --kafka-ready-lag of
 * its high watermark; else 0 with why[cap] saying which is behind. */
int kafka_ready(const server *srv, char *why, size_t cap);

/* Record and byte counts applied since start (checkpoint triggers). */
uint64_t kafka_applied_records(const server *srv);
uint64_t kafka_applied_bytes(const server *srv);

/* Checkpoint hooks (checkpoint.c): the snapshot being taken holds the
 * offsets of now; once it is durable they are committed to Kafka (for lag
 * monitoring only: slotd never reads them back). */
void kafka_checkpoint_barrier(server *srv);
/* Before the barrier: the journal's one record of a Kafka-fed node (so it
 * rotates and numbers the snapshot). 0 or -errno. */
int kafka_checkpoint_mark(server *srv);
void kafka_checkpoint_done(server *srv);

/* ---- kafka_stats.c ---- */
struct emit;
struct proto_buf;
/* The "kafka" section of /stats (a map), and the slotd_kafka_* metrics. */
void kafka_stats_json(const server *srv, struct emit *e);
int kafka_stats_prom(const server *srv, struct proto_buf *out);
/* The answer to the TCP query {"op": "offsets"} (a gateway asks it to see
 * how far behind the node is, docs/cluster.md): {"topic", "partitions":
 * [{"partition", "next_offset"}, ...]}; topic nil and no partitions on a
 * slotd without --source kafka, or before the partitions are assigned. */
void kafka_offsets_emit(const server *srv, struct emit *e);

#endif
