/* source_kafka — the Kafka consumer of a Kafka-fed node (kafka.h):
 * settings, assignment at the stored offsets, the libuv wiring, applying
 * records, pauses, and the checkpoint hooks.
 *
 *   librdkafka threads ... consumer queue --(first element)--> pipe byte
 *                                                                  |
 *   loop: uv_poll on the pipe -> drain: consume_batch_queue, at most
 *         KAFKA_DRAIN_BUDGET records, then uv_idle if there is more
 *         per record: decode (proto/) -> reserve -> commit -> next offset
 *   tick (1 s): watermarks, rates, store-full retries, a drain in case a
 *               wake-up was missed
 *
 * A record is applied only at or past its partition's next offset: after a
 * seek or a retry librdkafka may hand over records already applied, and
 * they are passed over. Offsets may skip (compaction, transaction
 * markers), so a later offset is taken as the next.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "emit.h"
#include "kafka_internal.h"
#include "log.h"
#include "subscribe.h"

#define ERRSTR 512

static void kafka_drain(struct kafka *k);
static void on_more(uv_idle_t *h);
static void watermarks(struct kafka *k);

/* ---- settings ------------------------------------------------------------- */

/* slotd's settings, then every --kafka-conf in order (the user's win). */
static rd_kafka_conf_t *conf_build(const server_config *cfg)
{
    char group[KAFKA_TOPIC_MAX + 16];
    snprintf(group, sizeof group, "slotd-%s", cfg->kafka_topic);
    /* Offsets are slotd's (snapshots); Kafka's copy is for lag monitors. */
    const char *set[][2] = {{"bootstrap.servers", cfg->kafka_brokers},
                            {"group.id", group},
                            {"enable.auto.commit", "false"},
                            {"enable.auto.offset.store", "false"},
                            {"auto.offset.reset", "earliest"},
                            {"enable.partition.eof", "false"}};
    return kafka_conf_new(set, sizeof set / sizeof set[0], cfg->kafka_conf);
}

/* ---- partitions --------------------------------------------------------------- */

static kpart *part_of(struct kafka *k, int32_t id)
{
    if (id < 0 || id >= k->index_len || !k->index[id])
        return NULL;
    return &k->parts[k->index[id] - 1];
}

static int64_t next_offset(const kpart *p)
{
    return p->cl->durable_seq ? (int64_t)p->cl->durable_seq : RD_KAFKA_OFFSET_BEGINNING;
}

/* A list of one partition (offset: its next), or of every owned one. */
static rd_kafka_topic_partition_list_t *plist(struct kafka *k, const kpart *only)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(only ? 1 : (int)k->nparts);
    for (size_t i = 0; i < k->nparts; i++) {
        const kpart *p = only ? only : &k->parts[i];
        rd_kafka_topic_partition_list_add(l, k->srv->cfg.kafka_topic, p->id)->offset = next_offset(p);
        if (only)
            break;
    }
    return l;
}

static void part_pause(struct kafka *k, kpart *p, kpart_state why)
{
    rd_kafka_topic_partition_list_t *l = plist(k, p);
    p->state = why;
    rd_kafka_resp_err_t err = rd_kafka_pause_partitions(k->rk, l);
    if (err)
        log_warn("kafka_pause_failed partition=%d err=\"%s\"", (int)p->id, rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(l);
}

/* Back to its next offset (records fetched past it are purged), then on. */
static void part_resume(struct kafka *k, kpart *p)
{
    rd_kafka_topic_partition_list_t *l = plist(k, p);
    rd_kafka_error_t *e = rd_kafka_seek_partitions(k->rk, l, 0);
    if (e) {
        log_warn("kafka_seek_failed partition=%d err=\"%s\"", (int)p->id, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    rd_kafka_resp_err_t err = rd_kafka_resume_partitions(k->rk, l);
    if (err)
        log_warn("kafka_resume_failed partition=%d err=\"%s\"", (int)p->id, rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(l);
    p->state = KPART_RETRY;
}

/* The owned partitions, their offset names, and rd_kafka_assign. */
static int kafka_assign(struct kafka *k)
{
    server *srv = k->srv;
    char msg[256], name[CLIENTS_NAME_MAX + 1];
    int32_t *ids = NULL;
    size_t n = 0;
    if (kafka_owned(&srv->cfg, k->topic_parts, &ids, &n, msg, sizeof msg) != 0) {
        log_error("kafka_assign_failed err=\"%s\"", msg);
        return -1;
    }
    if (n == 0) {
        log_error("kafka_assign_failed err=\"no partition of topic %s (%d partitions) is owned by "
                  "--kafka-node %s\"", srv->cfg.kafka_topic, (int)k->topic_parts, srv->cfg.kafka_node);
        free(ids);
        return -1;
    }
    if (ids[n - 1] >= k->topic_parts) { /* a list naming a partition the topic lacks */
        log_error("kafka_assign_failed err=\"--kafka-partitions names partition %d; topic %s has "
                  "%d\"", (int)ids[n - 1], srv->cfg.kafka_topic, (int)k->topic_parts);
        free(ids);
        return -1;
    }
    k->index_len = ids[n - 1] + 1;
    k->parts = calloc(n, sizeof *k->parts);
    k->index = calloc((size_t)k->index_len, sizeof *k->index);
    if (!k->parts || !k->index) {
        free(ids);
        log_error("kafka_assign_failed err=\"out of memory\"");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        kpart *p = &k->parts[i];
        size_t len = kafka_offset_name(name, sizeof name, srv->cfg.kafka_topic, ids[i]);
        p->id = ids[i];
        p->high = -1;
        if (!len || !(p->cl = clients_get(&srv->clients, name, len, uv_hrtime()))) {
            log_error("kafka_assign_failed partition=%d err=\"no room in the client table "
                      "(--max-clients)\"", (int)ids[i]);
            free(ids);
            return -1;
        }
        k->index[ids[i]] = (int32_t)i + 1;
    }
    k->nparts = n;
    free(ids);
    rd_kafka_topic_partition_list_t *l = plist(k, NULL);
    rd_kafka_resp_err_t err = rd_kafka_assign(k->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        log_error("kafka_assign_failed err=\"%s\"", rd_kafka_err2str(err));
        return -1;
    }
    k->assigned = 1;
    char list[1024];
    size_t off = 0;
    for (size_t i = 0; i < n && off < sizeof list - 48; i++)
        off += (size_t)snprintf(list + off, sizeof list - off, "%s%d@%" PRIu64, i ? "," : "",
                                (int)k->parts[i].id, k->parts[i].cl->durable_seq);
    log_info("kafka_assigned topic=%s partitions=%zu next_offsets=%s", srv->cfg.kafka_topic, n, list);
    kafka_drain(k);
    return 0;
}

/* ---- records ------------------------------------------------------------------ */

static void advance(struct kafka *k, kpart *p, const rd_kafka_message_t *m)
{
    /* Offsets passed over: compaction, transaction markers, or records the
     * topic's retention removed before this node read them (lost to it).
     * A node with no state expects offset 0: one that starts after the
     * topic's retention began would otherwise lose its head silently. */
    if ((uint64_t)m->offset > p->cl->durable_seq) {
        uint64_t gap = (uint64_t)m->offset - p->cl->durable_seq;
        if (p->gap_offsets == 0 || gap > 1)
            log_warn("kafka_offset_gap topic=%s partition=%d expected=%" PRIu64 " got=%" PRId64
                     " (records removed by retention or compaction before this node read them)",
                     k->srv->cfg.kafka_topic, (int)p->id, p->cl->durable_seq, m->offset);
        p->gap_offsets += gap;
    }
    p->cl->durable_seq = p->cl->accepted_seq = (uint64_t)m->offset + 1;
    p->records++;
    p->bytes += m->len;
    k->records++;
    k->bytes += m->len;
}

/* A header's value as a decimal number (0 refused unless zero_ok): 0, or
 * -1 when it is not one. */
static int header_u64(const void *v, size_t n, int zero_ok, uint64_t *out)
{
    char digits[24], *end;
    if (!v || n == 0 || n >= sizeof digits)
        return -1;
    memcpy(digits, v, n);
    digits[n] = '\0';
    errno = 0;
    unsigned long long x = strtoull(digits, &end, 10);
    if (*end || errno || (x == 0 && !zero_ok) || digits[0] < '0' || digits[0] > '9')
        return -1;
    *out = x;
    return 0;
}

/* The gateway's headers (kafka.h): "client" and "seq" (decimal), and
 * "prev" (decimal, optional; 0 = none, as when absent). 1 with *rec, *seq and *prev
 * set, 0 without client and seq, -1 (err set) when malformed. */
static int dedupe_of(struct kafka *k, const kpart *p, rd_kafka_message_t *m, client_rec **rec,
                     uint64_t *seq, uint64_t *prev, proto_error *err)
{
    rd_kafka_headers_t *h = NULL;
    const void *cv, *sv, *pv;
    size_t cn, sn, pn;
    char name[CLIENTS_NAME_MAX + 1];
    uint64_t v;
    *prev = 0;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    int has_c = rd_kafka_header_get_last(h, "client", &cv, &cn) == RD_KAFKA_RESP_ERR_NO_ERROR;
    int has_s = rd_kafka_header_get_last(h, "seq", &sv, &sn) == RD_KAFKA_RESP_ERR_NO_ERROR;
    if (!has_c && !has_s)
        return 0;
    if (!has_c || !has_s || !cv)
        return proto_error_set(err, PROTO_E_BAD_MESSAGE, -1,
                               "headers 'client' and 'seq' must come together, seq in decimal");
    if (header_u64(sv, sn, 0, &v) != 0)
        return proto_error_set(err, PROTO_E_BAD_MESSAGE, -1, "header 'seq' is not a positive "
                               "decimal number");
    if (rd_kafka_header_get_last(h, "prev", &pv, &pn) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        (header_u64(pv, pn, 1, prev) != 0 || *prev >= v))
        return proto_error_set(err, PROTO_E_BAD_MESSAGE, -1, "header 'prev' is not a decimal "
                               "number below 'seq'");
    size_t len = kafka_dedupe_name(name, sizeof name, cv, cn, p->id);
    if (!len || memchr(cv, '\0', cn))
        return proto_error_set(err, PROTO_E_BAD_MESSAGE, -1, "header 'client' is not a client "
                               "name (1-%d bytes, no NUL)", PROTO_NAME_MAX);
    if (!(*rec = clients_get(&k->srv->clients, name, len, uv_hrtime())))
        return proto_error_set(err, PROTO_E_TOO_MANY_CLIENTS, -1, "no room in the client table "
                               "for '%s' (--max-clients)", name);
    *seq = v;
    return 1;
}

/* Each symbol must live in one partition, hence on one node per replica
 * group (docs/cluster.md, "Records"): a record's trades are all of its key's
 * symbol when it has a key, and every symbol is one that Kafka's default
 * partitioner (murmur2 over the topic's partition count) puts in the
 * record's partition. A record failing either would give a symbol two
 * owners. */
typedef struct route {
    struct kafka *k;
    const rd_kafka_message_t *m;
    proto_error *err;
    const char *code; /* the log's code= for the refusal */
} route;

static int route_symbol(void *ctx, uint32_t index, const char *sym, size_t len)
{
    route *r = ctx;
    const rd_kafka_message_t *m = r->m;
    if (m->key && (m->key_len != len || memcmp(m->key, sym, len) != 0)) {
        r->code = "KEY_MISMATCH";
        return proto_error_set(r->err, PROTO_E_BAD_VALUE, index, "trade %u: symbol '%.*s' is not "
                               "the record's key '%.*s'", index, (int)len, sym,
                               (int)(m->key_len > 64 ? 64 : m->key_len), (const char *)m->key);
    }
    int32_t want = rd_kafka_msg_partitioner_murmur2(r->k->rkt, sym, len, r->k->topic_parts, NULL,
                                                    NULL);
    if (want != m->partition) {
        r->code = "WRONG_PARTITION";
        return proto_error_set(r->err, PROTO_E_BAD_VALUE, index, "trade %u: symbol '%.*s' belongs "
                               "in partition %d (murmur2 of %d partitions), not %d", index,
                               (int)len, sym, (int)want, (int)r->k->topic_parts, (int)m->partition);
    }
    return 0;
}

/* The value into k->batch: a T message, else one trade (as ["T", 1, [v]]). */
static int decode(struct kafka *k, const rd_kafka_message_t *m, proto_error *err)
{
    static const uint8_t head[] = {0x93, 0xa1, 'T', 0x01, 0x91};
    store *s = k->srv->store;
    uint64_t seq;
    if (!m->payload || !m->len)
        return proto_error_set(err, PROTO_E_BAD_MESSAGE, -1, "empty record value");
    int is_t = proto_msg_type(m->payload, m->len) == PROTO_MSG_T;
    if (is_t && proto_decode_batch(m->payload, m->len, &k->limits, s, &k->batch, &seq, err) == 0)
        return 0;
    proto_error first = *err;
    k->wrap.len = 0;
    if (proto_buf_append(&k->wrap, head, sizeof head) != 0 ||
        proto_buf_append(&k->wrap, m->payload, m->len) != 0)
        return proto_error_set(err, PROTO_E_TOO_LARGE, -1, "out of memory");
    if (proto_decode_batch((const uint8_t *)k->wrap.data, k->wrap.len, &k->limits, s, &k->batch,
                           &seq, err) == 0)
        return 0;
    if (is_t) /* shaped as a T message: its error says more than the trade's */
        *err = first;
    return -1;
}

/* code: the log's name for the refusal; NULL = the decoder's code. */
/* gw, seq: the record's gateway client and seq, or NULL. */
static void bad_record(struct kafka *k, kpart *p, rd_kafka_message_t *m, const proto_error *err,
                       const char *code, client_rec *gw, uint64_t seq)
{
    char esc[LOG_ESC_MAX(sizeof err->msg)];
    int stop = k->srv->cfg.kafka_on_error == KAFKA_ON_ERROR_STOP;
    p->bad++;
    log_warn("kafka_bad_record topic=%s partition=%d offset=%" PRId64 " code=%s msg=\"%s\" "
             "action=%s", k->srv->cfg.kafka_topic, (int)p->id, m->offset,
             code ? code : proto_code_name(err->code),
             log_esc(esc, sizeof esc, err->msg, strlen(err->msg)), stop ? "stop_partition" : "skip");
    if (!stop) {
        advance(k, p, m);
        /* Passed over like an applied one: the next part of its pipeline
         * names it as prev, and would otherwise be refused (apply). */
        if (gw && seq > gw->durable_seq)
            gw->durable_seq = gw->accepted_seq = seq;
        return;
    }
    part_pause(k, p, KPART_STOPPED);
    log_error("kafka_partition_stopped topic=%s partition=%d offset=%" PRId64 " (restart after "
              "fixing the record, or use --kafka-on-error skip)", k->srv->cfg.kafka_topic,
              (int)p->id, m->offset);
}

/* No room: pause, retry from the same offset every tick (kafka_on_tick). */
static void store_full(struct kafka *k, kpart *p, const rd_kafka_message_t *m, const char *why)
{
    part_pause(k, p, KPART_STORE_FULL);
    if (p->retries == 0)
        log_warn("kafka_paused topic=%s partition=%d offset=%" PRId64 " reason=%s action=retry "
                 "every %d ms", k->srv->cfg.kafka_topic, (int)p->id, m->offset, why, KAFKA_TICK_MS);
}

static void apply(struct kafka *k, kpart *p, rd_kafka_message_t *m)
{
    server *srv = k->srv;
    proto_error err = {0};
    client_rec *gw = NULL;
    uint64_t gseq = 0, gprev = 0;
    if (p->state == KPART_STORE_FULL || p->state == KPART_STOPPED ||
        m->offset < (int64_t)p->cl->durable_seq)
        return; /* paused (refetched on resume), or applied already */
    int d = dedupe_of(k, p, m, &gw, &gseq, &gprev, &err);
    if (d < 0 && err.code == PROTO_E_TOO_MANY_CLIENTS) /* capacity: wait, never skip */
        return store_full(k, p, m, "max_clients");
    if (d < 0)
        return bad_record(k, p, m, &err, NULL, NULL, 0);
    if (d > 0 && gseq <= gw->durable_seq) { /* a resend the node holds */
        p->dups++;
        srv->metrics.duplicate_batches_total++;
        advance(k, p, m);
        return;
    }
    if (d > 0 && gprev > gw->durable_seq) {
        /* The part the gateway produced here before this one (seq gprev) is
         * not here: Kafka lost it (a timed-out message leaves a gap even
         * with the idempotent producer). The gateway failed that batch and
         * every later one of the name (gateway.h), so the client resends
         * them all, in order: applying this one now would make the resend
         * of gprev look like a duplicate. (gprev below what is held: the
         * name's resends came through another gateway meanwhile, which
         * resent gprev's batch first; nothing is missing.) */
        uint64_t n = ++p->unchained;
        if ((n & (n - 1)) == 0) /* the 1st, 2nd, 4th, ...: a pipeline's worth of lines */
            log_warn("kafka_out_of_chain topic=%s partition=%d offset=%" PRId64 " seq=%" PRIu64
                     " prev=%" PRIu64 " have=%" PRIu64 " skipped=%" PRIu64
                     " action=skip (the client resends it)", srv->cfg.kafka_topic, (int)p->id,
                     m->offset, gseq, gprev, gw->durable_seq, p->unchained);
        advance(k, p, m);
        return;
    }
    if (decode(k, m, &err) != 0) {
        if (err.code == PROTO_E_SYMBOL_LIMIT) /* capacity, not the record's fault */
            return store_full(k, p, m, "symbol_limit");
        return bad_record(k, p, m, &err, NULL, gw, gseq);
    }
    route r = {k, m, &err, NULL};
    if (store_batch_symbols(srv->store, &k->batch, route_symbol, &r) != 0) {
        store_batch_reset(&k->batch); /* staged only: no symbol was created */
        return bad_record(k, p, m, &err, r.code, gw, gseq);
    }
    int rc = store_batch_reserve(srv->store, &k->batch);
    if (rc != STORE_OK) {
        store_batch_release(srv->store, &k->batch);
        return store_full(k, p, m, rc == STORE_EFULL ? "store_full" : server_err_name(rc));
    }
    uint64_t n = k->batch.n;
    sub_note_batch(srv, &k->batch);
    store_batch_commit(srv->store, &k->batch);
    sub_committed(srv); /* a record Kafka holds: replayed from it the same way after a crash */
    /* The store and the offsets move in one step of the loop thread: a
     * checkpoint barrier sees both or neither. */
    advance(k, p, m);
    if (gw)
        gw->durable_seq = gw->accepted_seq = gseq;
    p->trades += n;
    metrics_applied(&srv->metrics, uv_hrtime(), n);
    if (p->state == KPART_RETRY) {
        p->state = KPART_RUNNING;
        log_info("kafka_resumed topic=%s partition=%d offset=%" PRId64 " retries=%" PRIu64,
                 srv->cfg.kafka_topic, (int)p->id, m->offset, p->retries);
        p->retries = 0;
    }
}

static void consumer_error(struct kafka *k, const rd_kafka_message_t *m)
{
    static uint64_t last_ns;
    uint64_t now = uv_hrtime();
    if (now - last_ns < 1000000000u) /* a broker going down repeats itself */
        return;
    last_ns = now;
    log_warn("kafka_consumer_error partition=%d err=%s msg=\"%s\"", (int)m->partition,
             rd_kafka_err2name(m->err), rd_kafka_message_errstr(m));
    (void)k;
}

static void kafka_drain(struct kafka *k)
{
    rd_kafka_message_t *msgs[KAFKA_BATCH];
    size_t done = 0;
    if (k->stopping || !k->assigned)
        return;
    while (done < KAFKA_DRAIN_BUDGET) {
        ssize_t n = rd_kafka_consume_batch_queue(k->q, 0, msgs, KAFKA_BATCH);
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = msgs[i];
            kpart *p;
            if (m->err)
                consumer_error(k, m);
            else if ((p = part_of(k, m->partition)))
                apply(k, p, m);
            rd_kafka_message_destroy(m);
        }
        done += (size_t)n;
        if ((size_t)n < KAFKA_BATCH)
            break; /* empty now: the next record writes the pipe */
    }
    if (done)
        watermarks(k); /* /readyz follows the records, not the tick */
    if (done >= KAFKA_DRAIN_BUDGET)
        uv_idle_start(&k->more, on_more); /* let the loop breathe, then go on */
    else
        uv_idle_stop(&k->more);
}

static void on_more(uv_idle_t *h) { kafka_drain(h->data); }

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct kafka *k = h->data;
    char buf[256];
    (void)events;
    if (status < 0)
        log_warn("kafka_poll_error err=%s", uv_strerror(status));
    while (read(k->fds[0], buf, sizeof buf) > 0)
        ;
    kafka_drain(k);
}

/* The high watermarks librdkafka last saw in fetch responses (a cached
 * read, no request). */
static void watermarks(struct kafka *k)
{
    for (size_t i = 0; i < k->nparts; i++) {
        int64_t lo, hi;
        if (rd_kafka_get_watermark_offsets(k->rk, k->srv->cfg.kafka_topic, k->parts[i].id, &lo,
                                           &hi) == RD_KAFKA_RESP_ERR_NO_ERROR && hi >= 0)
            k->parts[i].high = hi;
    }
}

/* Watermarks and rates; store-full retries; a drain in case a wake-up was
 * missed (cheap: one empty consume). */
static void on_tick(uv_timer_t *t)
{
    struct kafka *k = t->data;
    uint64_t now = uv_hrtime();
    double secs = k->last_tick ? (double)(now - k->last_tick) / 1e9 : 0;
    if (k->stopping)
        return;
    k->last_tick = now;
    watermarks(k);
    for (size_t i = 0; i < k->nparts; i++) {
        kpart *p = &k->parts[i];
        if (secs > 0)
            p->rate = (double)(p->records - p->rate_mark) / secs;
        p->rate_mark = p->records;
        if (p->state == KPART_STORE_FULL) {
            p->retries++;
            part_resume(k, p);
        }
    }
    kafka_drain(k);
}

/* ---- lifecycle ------------------------------------------------------------------ */

/* The topic's partition count, on a worker thread (a metadata request may
 * wait for brokers); retried until it comes or slotd stops. --kafka-node
 * derives the owned partitions from it, and every record's routing check
 * (route_symbol) hashes over it, so both kinds of node ask. */
static void meta_work(uv_work_t *w)
{
    struct kafka *k = w->data;
    const char *topic = k->srv->cfg.kafka_topic;
    rd_kafka_topic_t *rkt = k->rkt;
    for (int tries = 0; !k->stopping; tries++) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(k->rk, 0, rkt, &md, 2000);
        if (!err && md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt > 0)
            k->topic_parts = md->topics[0].partition_cnt;
        else
            snprintf(k->meta_err, sizeof k->meta_err, "%s",
                     rd_kafka_err2str(err ? err : md->topic_cnt ? md->topics[0].err
                                                                 : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
        if (md)
            rd_kafka_metadata_destroy(md);
        if (k->topic_parts > 0)
            break;
        if (tries % 10 == 0)
            log_warn("kafka_metadata_retry topic=%s err=\"%s\"", topic, k->meta_err);
        usleep(500 * 1000);
    }
}

static void (*kafka_fail)(server *srv);

static void meta_done(uv_work_t *w, int status)
{
    struct kafka *k = w->data;
    if (status || k->stopping)
        return;
    if (k->topic_parts <= 0 || kafka_assign(k) != 0) {
        log_error("kafka_start_failed topic=%s err=\"%s\"", k->srv->cfg.kafka_topic,
                  k->topic_parts <= 0 ? k->meta_err : "assignment failed");
        kafka_fail(k->srv);
    }
}

int kafka_start(server *srv, void (*fail)(server *srv))
{
    char errstr[ERRSTR];
    struct kafka *k = calloc(1, sizeof *k);
    if (!k)
        return UV_ENOMEM;
    srv->kafka = k;
    kafka_fail = fail;
    k->srv = srv;
    k->fds[0] = k->fds[1] = -1;
    k->topic_parts = -1;
    store_batch_init(&k->batch);
    /* A record's fate must not depend on when it is read: no wall-clock
     * bound (replicas and replays read it at other times). */
    k->limits = srv->cfg.limits;
    k->limits.max_future_ns = 0;
    rd_kafka_conf_t *conf = conf_build(&srv->cfg);
    if (!conf)
        return UV_EINVAL;
    if (!(k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr))) {
        rd_kafka_conf_destroy(conf);
        log_error("kafka_start_failed err=\"%s\"", errstr);
        return UV_EINVAL;
    }
    rd_kafka_poll_set_consumer(k->rk); /* errors and callbacks come with the records */
    if (!(k->rkt = rd_kafka_topic_new(k->rk, srv->cfg.kafka_topic, NULL))) {
        log_error("kafka_start_failed err=\"%s\"", rd_kafka_err2str(rd_kafka_last_error()));
        return UV_EINVAL;
    }
    k->q = rd_kafka_queue_get_consumer(k->rk);
    int rc;
    if (pipe2(k->fds, O_NONBLOCK | O_CLOEXEC) < 0)
        return -errno;
    rd_kafka_queue_io_event_enable(k->q, k->fds[1], "1", 1);
    if ((rc = uv_poll_init(srv->loop, &k->poll, k->fds[0])) != 0)
        return rc;
    uv_timer_init(srv->loop, &k->tick);
    uv_idle_init(srv->loop, &k->more);
    k->poll.data = k->tick.data = k->more.data = k;
    k->handles = 1;
    uv_poll_start(&k->poll, UV_READABLE, on_poll);
    uv_timer_start(&k->tick, on_tick, KAFKA_TICK_MS, KAFKA_TICK_MS);
    log_info("kafka_started brokers=%s topic=%s %s=%s on_error=%s", srv->cfg.kafka_brokers,
             srv->cfg.kafka_topic, srv->cfg.kafka_node ? "node" : "partitions",
             srv->cfg.kafka_node ? srv->cfg.kafka_node : srv->cfg.kafka_partitions,
             srv->cfg.kafka_on_error == KAFKA_ON_ERROR_STOP ? "stop" : "skip");
    k->meta.data = k;
    return uv_queue_work(srv->loop, &k->meta, meta_work, meta_done);
}

void kafka_stop(server *srv)
{
    struct kafka *k = srv->kafka;
    if (!k || k->stopping)
        return;
    k->stopping = 1;
    if (k->handles) {
        uv_poll_stop(&k->poll);
        uv_close((uv_handle_t *)&k->poll, NULL);
        uv_close((uv_handle_t *)&k->tick, NULL);
        uv_close((uv_handle_t *)&k->more, NULL);
    }
}

void kafka_free(server *srv)
{
    struct kafka *k = srv->kafka;
    if (!k)
        return;
    if (k->q) {
        rd_kafka_queue_io_event_enable(k->q, -1, NULL, 0);
        rd_kafka_queue_destroy(k->q);
    }
    if (k->rkt)
        rd_kafka_topic_destroy(k->rkt);
    /* Static assignment, no group to leave: nothing to wait for. */
    if (k->rk)
        rd_kafka_destroy_flags(k->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    for (int i = 0; i < 2; i++)
        if (k->fds[i] >= 0)
            close(k->fds[i]);
    store_batch_free(&k->batch);
    proto_buf_free(&k->wrap);
    free(k->parts);
    free(k->index);
    free(k);
    srv->kafka = NULL;
}

int kafka_ready(const server *srv, char *why, size_t cap)
{
    const struct kafka *k = srv->kafka;
    if (!k || !k->assigned) {
        snprintf(why, cap, "Kafka partitions not assigned yet");
        return 0;
    }
    for (size_t i = 0; i < k->nparts; i++) {
        const kpart *p = &k->parts[i];
        int64_t next = (int64_t)p->cl->durable_seq;
        if (p->high < 0) {
            snprintf(why, cap, "partition %d: high watermark not known yet", (int)p->id);
            return 0;
        }
        if (p->high > next && (uint64_t)(p->high - next) > srv->cfg.kafka_ready_lag) {
            snprintf(why, cap, "partition %d is %" PRId64 " records behind (--kafka-ready-lag %"
                     PRIu64 ")", (int)p->id, p->high - next, srv->cfg.kafka_ready_lag);
            return 0;
        }
    }
    return 1;
}

uint64_t kafka_applied_records(const server *srv) { return srv->kafka ? srv->kafka->records : 0; }
uint64_t kafka_applied_bytes(const server *srv) { return srv->kafka ? srv->kafka->bytes : 0; }

#define MARK_NAME "kafka:checkpoint"

static void mark_journaled(void *ctx, int status)
{
    client_rec *cl = ctx;
    if (status == 0 && cl->accepted_seq > cl->durable_seq)
        cl->durable_seq = cl->accepted_seq;
}

/* Needed, not an artefact: a snapshot is named by the journal segment its
 * barrier sealed, a barrier rotates only a segment holding a record
 * (journal_rotate_barrier: idle TCP nodes make no empty segments), and a
 * barrier whose segment the newest snapshot already covers takes none
 * (checkpoint.c, ckpt_on_barrier). A Kafka-fed node journals nothing
 * else, so without this record its segment never moves and no snapshot is
 * ever taken (tried: 0 checkpoints over 6 due, every restart replays the
 * topic from offset 0). Each checkpoint appends one empty T batch of a
 * reserved name: replayed as nothing, its seq restored like any client's.
 * Cost: 47 journal bytes and one fsync per checkpoint. */
int kafka_checkpoint_mark(server *srv)
{
    uint8_t msg[16] = {0x93, 0xa1, 'T', 0xcf};
    client_rec *cl = clients_get(&srv->clients, MARK_NAME, sizeof MARK_NAME - 1, uv_hrtime());
    if (!cl || !srv->journal)
        return UV_ENOMEM;
    uint64_t seq = ++cl->accepted_seq;
    for (int i = 0; i < 8; i++)
        msg[4 + i] = (uint8_t)(seq >> (56 - 8 * i));
    msg[12] = 0x90;
    return journal_append(srv->journal, MARK_NAME, sizeof MARK_NAME - 1, seq, msg, 13,
                          mark_journaled, cl);
}

void kafka_checkpoint_barrier(server *srv)
{
    struct kafka *k = srv->kafka;
    for (size_t i = 0; k && i < k->nparts; i++)
        k->parts[i].snap_next = (int64_t)k->parts[i].cl->durable_seq;
}

void kafka_checkpoint_done(server *srv)
{
    struct kafka *k = srv->kafka;
    if (!k || !k->assigned || k->stopping)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)k->nparts);
    for (size_t i = 0; i < k->nparts; i++)
        if (k->parts[i].snap_next > 0)
            rd_kafka_topic_partition_list_add(l, srv->cfg.kafka_topic, k->parts[i].id)->offset =
                k->parts[i].snap_next;
    rd_kafka_resp_err_t err = l->cnt ? rd_kafka_commit(k->rk, l, 1) : RD_KAFKA_RESP_ERR_NO_ERROR;
    if (err)
        log_warn("kafka_commit_failed err=\"%s\" (offsets in Kafka are for monitoring only)",
                 rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(l);
}
