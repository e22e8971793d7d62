/* kafka_internal — what source_kafka.c (the consumer) and kafka_stats.c
 * (its /stats and /metrics) share. Loop thread only. */
#ifndef SLOTD_KAFKA_INTERNAL_H
#define SLOTD_KAFKA_INTERNAL_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <uv.h>

#include "clients.h"
#include "kafka.h"
#include "proto.h"

typedef enum kpart_state {
    KPART_RUNNING = 0,
    KPART_STORE_FULL, /* paused: retried every KAFKA_TICK_MS from its next offset */
    KPART_RETRY,      /* resumed for a retry: still full until a record fits */
    KPART_STOPPED,    /* paused for good by a bad record (--kafka-on-error stop) */
} kpart_state;

/* One owned partition. */
typedef struct kpart {
    int32_t id;
    client_rec *cl;          /* "kafka:<topic>:<id>": durable_seq = next offset to consume */
    kpart_state state;
    int64_t high;            /* high watermark last seen; -1 = not known yet */
    int64_t snap_next;       /* the next offset the snapshot being taken holds */
    uint64_t records, bytes, trades; /* applied since start */
    uint64_t bad, dups;      /* bad records; skipped duplicates (gateway seq) */
    uint64_t unchained;      /* gateway records skipped: the part before them is missing */
    uint64_t gap_offsets;    /* offsets passed over without a record (kafka_offset_gap) */
    uint64_t rate_mark;      /* records at the last rate tick */
    double rate;             /* records/s over the last tick */
    uint64_t retries;        /* store-full retries since the pause */
} kpart;

struct kafka {
    server *srv;
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    rd_kafka_topic_t *rkt;   /* the topic: metadata, and murmur2 for the routing check */
    int fds[2];              /* the consumer queue writes a byte to fds[1] when it fills */
    uv_poll_t poll;
    uv_timer_t tick;         /* rates, watermarks, store-full retries, missed wake-ups */
    uv_idle_t more;          /* a drain hit its budget: go on next iteration */
    uv_work_t meta;          /* the topic's partition count, off the loop */
    _Atomic int stopping;
    int handles;             /* poll, tick and more initialised */
    int assigned;
    int32_t topic_parts;     /* from metadata (before assignment); -1 = not known yet */
    char meta_err[200];
    kpart *parts;
    size_t nparts;
    int32_t *index;          /* partition id -> parts[] index + 1 (0 = not owned) */
    int32_t index_len;
    store_batch batch;
    proto_buf wrap;          /* a single-trade record as a T message */
    proto_limits limits;
    uint64_t records, bytes; /* applied since start (checkpoint triggers) */
    uint64_t last_tick;
};

#define KAFKA_DRAIN_BUDGET 4096 /* records per loop iteration */
#define KAFKA_BATCH 256          /* records per rd_kafka_consume_batch_queue */
#define KAFKA_TICK_MS 250

#endif
