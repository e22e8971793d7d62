/* kafka_stats — the Kafka source in /stats ("kafka": totals and one entry
 * per owned partition) and /metrics (slotd_kafka_*{partition="p"}). */
#include <inttypes.h>
#include <string.h>

#include "emit.h"
#include "kafka_internal.h"

static const char *state_name(kpart_state s)
{
    return s == KPART_STORE_FULL || s == KPART_RETRY ? "store_full"
           : s == KPART_STOPPED                      ? "stopped"
                                                     : "running";
}

static int64_t lag_of(const kpart *p)
{
    int64_t next = (int64_t)p->cl->durable_seq;
    return p->high < 0 ? -1 : p->high > next ? p->high - next : 0;
}

static void kv_u64(emit *e, const char *k, uint64_t v)
{
    e->key(e, k);
    e->u64(e, v);
}

void kafka_stats_json(const server *srv, emit *e)
{
    const struct kafka *k = srv->kafka;
    char why[160];
    e->map(e, 7);
    e->key(e, "topic");
    emit_cstr(e, srv->cfg.kafka_topic);
    e->key(e, "assigned");
    e->boolean(e, k && k->assigned);
    e->key(e, "caught_up");
    e->boolean(e, kafka_ready(srv, why, sizeof why));
    kv_u64(e, "records", k ? k->records : 0);
    kv_u64(e, "bytes", k ? k->bytes : 0);
    kv_u64(e, "ready_lag", srv->cfg.kafka_ready_lag);
    e->key(e, "partitions");
    e->array(e, k ? (uint32_t)k->nparts : 0);
    for (size_t i = 0; k && i < k->nparts; i++) {
        const kpart *p = &k->parts[i];
        e->map(e, 13);
        kv_u64(e, "partition", (uint64_t)p->id);
        kv_u64(e, "next_offset", p->cl->durable_seq);
        e->key(e, "high_watermark");
        p->high < 0 ? e->nil(e) : e->i64(e, p->high);
        e->key(e, "lag");
        lag_of(p) < 0 ? e->nil(e) : e->i64(e, lag_of(p));
        kv_u64(e, "records", p->records);
        e->key(e, "records_per_s");
        e->dbl(e, p->rate);
        kv_u64(e, "trades", p->trades);
        kv_u64(e, "bad_records", p->bad);
        kv_u64(e, "skipped_duplicates", p->dups);
        kv_u64(e, "skipped_out_of_chain", p->unchained);
        kv_u64(e, "gap_offsets", p->gap_offsets);
        e->key(e, "paused");
        e->boolean(e, p->state != KPART_RUNNING);
        e->key(e, "state");
        emit_cstr(e, state_name(p->state));
        e->end(e);
    }
    e->end(e);
    e->end(e);
}

void kafka_offsets_emit(const server *srv, emit *e)
{
    const struct kafka *k = srv->kafka;
    e->map(e, 2);
    e->key(e, "topic");
    k ? emit_cstr(e, srv->cfg.kafka_topic) : e->nil(e);
    e->key(e, "partitions");
    e->array(e, k ? (uint32_t)k->nparts : 0);
    for (size_t i = 0; k && i < k->nparts; i++) {
        e->map(e, 2);
        kv_u64(e, "partition", (uint64_t)k->parts[i].id);
        kv_u64(e, "next_offset", k->parts[i].cl->durable_seq);
        e->end(e);
    }
    e->end(e);
    e->end(e);
}

/* One labelled gauge or counter per partition. */
#define PER_PART(name, type, help, fmt, expr)                                                      \
    do {                                                                                           \
        if (proto_buf_printf(out, "# HELP slotd_kafka_%s %s\n# TYPE slotd_kafka_%s %s\n", name,   \
                             help, name, type) < 0)                                                \
            err = -1;                                                                              \
        for (size_t i = 0; i < k->nparts; i++) {                                                   \
            const kpart *p = &k->parts[i];                                                         \
            if (proto_buf_printf(out, "slotd_kafka_%s{partition=\"%d\"} " fmt "\n", name,          \
                                 (int)p->id, expr) < 0)                                            \
                err = -1;                                                                          \
        }                                                                                          \
    } while (0)

int kafka_stats_prom(const server *srv, proto_buf *out)
{
    const struct kafka *k = srv->kafka;
    char why[160];
    int err = 0;
    if (proto_buf_printf(out, "# HELP slotd_kafka_caught_up 1 when every owned partition is "
                         "within --kafka-ready-lag.\n# TYPE slotd_kafka_caught_up gauge\n"
                         "slotd_kafka_caught_up %d\n", kafka_ready(srv, why, sizeof why)) < 0)
        err = -1;
    if (!k)
        return err;
    PER_PART("next_offset", "gauge", "Next offset to consume (all before it applied).", "%" PRIu64,
             p->cl->durable_seq);
    PER_PART("high_watermark", "gauge", "Partition high watermark last seen (-1 = not yet).",
             "%" PRId64, p->high);
    PER_PART("lag_records", "gauge", "High watermark minus next offset (-1 = not known).",
             "%" PRId64, lag_of(p));
    PER_PART("records_total", "counter", "Records applied since start.", "%" PRIu64, p->records);
    PER_PART("records_per_second", "gauge", "Records applied per second over the last second.",
             "%.1f", p->rate);
    PER_PART("bad_records_total", "counter", "Records refused by the decoder.", "%" PRIu64, p->bad);
    PER_PART("skipped_duplicates_total", "counter",
             "Records skipped as resends (gateway client and seq headers).", "%" PRIu64, p->dups);
    PER_PART("skipped_out_of_chain_total", "counter",
             "Gateway records skipped because the part before them is missing (resent by the "
             "client).", "%" PRIu64, p->unchained);
    PER_PART("gap_offsets_total", "counter",
             "Offsets passed over without a record (retention, compaction, markers).", "%" PRIu64,
             p->gap_offsets);
    PER_PART("paused", "gauge", "1 while the partition is paused (store full, or stopped).", "%d",
             p->state != KPART_RUNNING);
    return err;
}
