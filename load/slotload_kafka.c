/* slotload_kafka — slotload's Kafka sink (--kafka BROKERS): the same W1
 * trades produced to a topic with librdkafka, for Kafka-fed nodes
 * (docs/cluster.md).
 *
 * Key = the symbol; Kafka's default (Java) partitioner for the key,
 * murmur2, so the nodes own symbols as any other producer would place
 * them. Value: one trade (--form map|array) per record, or with
 * --kafka-record batch one T message of up to --batch trades of one
 * symbol (fewer, larger records: what a gateway or a batching feed sends).
 * Idempotent, acks=all; the run ends when every record is acknowledged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>
#include <msgpack.h>

#include "slotload.h"
#include "workload.h"
#include "workload_pack.h"

static uint64_t failed, delivered;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk, (void)opaque;
    if (m->err) {
        if (failed++ == 0)
            fprintf(stderr, "slotload: delivery failed: %s\n", rd_kafka_err2str(m->err));
    } else {
        delivered++;
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int produce(rd_kafka_t *rk, const char *topic, const char *key, size_t klen,
                   const void *val, size_t vlen)
{
    rd_kafka_resp_err_t err;
    while ((err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, klen),
                                    RD_KAFKA_V_VALUE((void *)val, vlen),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
        rd_kafka_poll(rk, 10);
    if (err) {
        fprintf(stderr, "slotload: produce: %s\n", rd_kafka_err2str(err));
        return -1;
    }
    rd_kafka_poll(rk, 0);
    return 0;
}

/* Per symbol: the trades of its T message being filled (batch records). */
typedef struct pending {
    msgpack_sbuffer body;
    uint32_t n;
} pending;

static int flush_symbol(rd_kafka_t *rk, const sl_config *cfg, uint32_t sym, pending *p,
                        uint64_t seq, msgpack_sbuffer *msg)
{
    char name[16];
    int sl = workload_symbol(sym, name);
    msgpack_packer pk;
    msgpack_sbuffer_clear(msg);
    msgpack_packer_init(&pk, msg, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    sl_pack_str(&pk, "T", 1);
    msgpack_pack_uint64(&pk, seq);
    msgpack_pack_array(&pk, p->n);
    msgpack_sbuffer_write(msg, p->body.data, p->body.size);
    msgpack_sbuffer_clear(&p->body);
    p->n = 0;
    return produce(rk, cfg->kafka_topic, name, (size_t)sl, msg->data, msg->size);
}

int sl_kafka_run(const sl_config *cfg)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *set[][2] = {{"bootstrap.servers", cfg->kafka_brokers},
                            {"partitioner", "murmur2_random"},
                            {"enable.idempotence", "true"},
                            {"acks", "all"},
                            {"linger.ms", "5"},
                            {"batch.num.messages", "10000"},
                            {"queue.buffering.max.messages", "1000000"}};
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++)
        if (rd_kafka_conf_set(conf, set[i][0], set[i][1], errstr, sizeof errstr)) {
            fprintf(stderr, "slotload: %s\n", errstr);
            rd_kafka_conf_destroy(conf);
            return 2;
        }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "slotload: %s\n", errstr);
        return 2;
    }
    workload w;
    pending *pend = cfg->kafka_batch ? calloc(cfg->symbols, sizeof *pend) : NULL;
    if ((cfg->kafka_batch && !pend) || workload_init(&w, cfg->symbols, cfg->zipf, cfg->seed) != 0) {
        fprintf(stderr, "slotload: workload: bad parameters or out of memory\n");
        free(pend);
        rd_kafka_destroy(rk); /* rk owns conf */
        return 2;
    }
    uint64_t trades = cfg->trades ? cfg->trades : sl_pool_trades(cfg), records = 0, bytes = 0;
    int flags = (cfg->form_array ? WORKLOAD_ARRAY : 0) | (cfg->px_float ? WORKLOAD_PX_FLOAT : 0);
    msgpack_sbuffer one, msg;
    msgpack_sbuffer_init(&one);
    msgpack_sbuffer_init(&msg);
    int rc = 0;
    double t0 = now_s();
    for (uint64_t i = 0; i < trades && rc == 0; i++) {
        workload_trade t;
        char name[16];
        workload_next(&w, &t);
        msgpack_packer pk;
        if (pend) { /* into its symbol's T message */
            pending *p = &pend[t.sym];
            msgpack_packer_init(&pk, &p->body, msgpack_sbuffer_write);
            workload_pack_trade(&pk, &t, flags);
            if (++p->n == cfg->batch) {
                rc = flush_symbol(rk, cfg, t.sym, p, ++records, &msg);
                bytes += msg.size;
            }
            continue;
        }
        msgpack_sbuffer_clear(&one);
        msgpack_packer_init(&pk, &one, msgpack_sbuffer_write);
        workload_pack_trade(&pk, &t, flags);
        int sl = workload_symbol(t.sym, name);
        rc = produce(rk, cfg->kafka_topic, name, (size_t)sl, one.data, one.size);
        records++;
        bytes += one.size;
    }
    for (uint32_t s = 0; pend && s < cfg->symbols && rc == 0; s++)
        if (pend[s].n) {
            rc = flush_symbol(rk, cfg, s, &pend[s], ++records, &msg);
            bytes += msg.size;
        }
    double t_queued = now_s() - t0;
    rd_kafka_flush(rk, 120000);
    double secs = now_s() - t0;
    uint64_t left = (uint64_t)rd_kafka_outq_len(rk);
    if (cfg->json)
        printf("{\"sink\": \"kafka\", \"topic\": \"%s\", \"trades\": %llu, \"records\": %llu, "
               "\"bytes\": %llu, \"seconds\": %.3f, \"queue_seconds\": %.3f, "
               "\"trades_per_second\": %.0f, \"records_per_second\": %.0f, \"delivered\": %llu, "
               "\"failed\": %llu}\n", cfg->kafka_topic, (unsigned long long)trades,
               (unsigned long long)records, (unsigned long long)bytes, secs, t_queued,
               (double)trades / secs, (double)records / secs, (unsigned long long)delivered,
               (unsigned long long)failed);
    else
        printf("slotload kafka sink: topic %s, %llu trades in %llu records (%s, %.1f MB)\n"
               "  produced and acknowledged in %.3f s (queued in %.3f s): %.0f trades/s, "
               "%.0f records/s\n  delivered %llu, failed %llu, undelivered %llu\n",
               cfg->kafka_topic, (unsigned long long)trades, (unsigned long long)records,
               pend ? "T messages by symbol" : "one trade each", (double)bytes / 1e6, secs,
               t_queued, (double)trades / secs, (double)records / secs,
               (unsigned long long)delivered, (unsigned long long)failed, (unsigned long long)left);
    for (uint32_t s = 0; pend && s < cfg->symbols; s++)
        msgpack_sbuffer_destroy(&pend[s].body);
    free(pend);
    msgpack_sbuffer_destroy(&one);
    msgpack_sbuffer_destroy(&msg);
    workload_free(&w);
    rd_kafka_destroy(rk);
    return rc || failed || left || delivered != records ? 1 : 0;
}
