/* gateway — batches to Kafka parts, delivery reports, the seq topic
 * (gateway.h).
 *
 *   ingest: T ok -> gateway_submit -> produce parts (headers client, seq, part, prev)
 *           -> the name's pipeline (cl->gw), answered oldest first
 *   librdkafka threads ... main queue --(first event)--> pipe byte
 *   loop: uv_poll -> rd_kafka_poll -> on_delivery per part
 *         last part of a job -> pipe_drain: every finished job at the head
 *                              -> done(ctx, err) -> seq record (ok)
 *   start: metadata (worker) -> assign the seq topic from the beginning ->
 *          records raise last_seq per client; end of every partition -> ready
 */
#define _GNU_SOURCE
#include "gateway.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "emit.h"
#include "kafka.h"
#include "log.h"
#include "split.h"

#define GW_TICK_MS 100    /* a poll in case a wake-up was missed */
#define GW_POLL_BUDGET 10000 /* events per loop iteration */

/* One batch of a client name, in Kafka or failed before it got there. */
typedef struct gw_job {
    struct gw_job *next;
    client_rec *cl;
    uint64_t seq;
    gateway_done_fn done;
    void *ctx;
    uint32_t parts_left;     /* delivery reports to come (+1 while producing) */
    rd_kafka_resp_err_t err; /* the first part's failure */
    const char *why;         /* a failure before Kafka (split, enqueue, stopping) */
    uint64_t t0;             /* uv_hrtime() when its parts were produced, 0 if never */
} gw_job;

/* A client name's batches, oldest first (cl->gw): they are answered in
 * that order, each when its own parts and every earlier batch are done.
 * It exists only while a batch of the name does, so prev[] starts afresh
 * whenever the name has nothing in Kafka (gateway.h: "prev"). */
typedef struct gw_pipe {
    gw_job *head, *tail;
    int broken;      /* a batch failed: nothing more is produced until it drains */
    int failed;      /* a failure was answered: every later batch fails too */
    uint64_t prev[]; /* per partition: seq of the last part produced there, 0 = none */
} gw_pipe;

/* A pipe the librdkafka queue writes a byte to, polled by the loop. */
typedef struct gw_wake {
    int fds[2];
    uv_poll_t poll;
    int on;
} gw_wake;

struct gateway {
    server *srv;
    void (*fail)(server *srv);
    rd_kafka_t *prod, *cons;
    rd_kafka_queue_t *mainq, *consq;
    rd_kafka_topic_t *rkt, *seq_rkt;
    char seq_topic[KAFKA_TOPIC_MAX + 16];
    gw_wake pw, cw;
    uv_timer_t tick;
    uv_work_t meta;
    int handles, stopping, failed;
    int marks_busy; /* a gateway_watermarks look-up is running */
    int32_t parts, seq_parts; /* partition counts; -1 until known */
    /* The metadata worker's (meta_work): its counts are copied to parts and
     * seq_parts by meta_done on the loop thread; its last error is read by
     * /readyz meanwhile, under meta_lock. */
    int32_t w_parts, w_seq_parts;
    pthread_mutex_t meta_lock;
    char meta_err[200];
    uint8_t *eof;            /* per seq partition: its end was reached */
    int32_t eof_left;
    int caught_up;
    split_out split;
    /* counters for /stats */
    uint64_t batches_ok, batches_failed, records, bytes, parts_failed;
    uint64_t seqs_read, seqs_bad, seqs_written, seqs_failed;
    uint64_t error_logged; /* ns of the last gateway_kafka_error line */
    uint64_t lat_buckets[METRICS_NBUCKETS]; /* produce latency (metrics.h buckets) */
    uint64_t lat_count;
    double lat_sum;
};

/* ---- the seq topic's records ----------------------------------------- */

/* key = client name, value = decimal seq. 0, or -1 when malformed. */
static int seq_record(const rd_kafka_message_t *m, uint64_t *seq)
{
    char digits[24], *end;
    if (!m->key || m->key_len == 0 || m->key_len > PROTO_NAME_MAX || !m->payload || m->len == 0 ||
        m->len >= sizeof digits || memchr(m->key, '\0', m->key_len) ||
        clients_reserved(m->key, m->key_len))
        return -1;
    memcpy(digits, m->payload, m->len);
    digits[m->len] = '\0';
    if (digits[0] < '0' || digits[0] > '9')
        return -1;
    errno = 0;
    *seq = strtoull(digits, &end, 10);
    return *end || errno ? -1 : 0;
}

static void caught_up(struct gateway *g)
{
    server *srv = g->srv;
    g->caught_up = 1;
    /* Later records are this gateway's own (or another replica's, whose
     * clients resend what they lack here: a last_seq too low is safe). */
    rd_kafka_assign(g->cons, NULL);
    if (g->cw.on)
        uv_poll_stop(&g->cw.poll);
    srv->ready = !srv->stopping;
    log_info("ready gateway topic=%s partitions=%d seq_topic=%s clients=%" PRIu64
             " seq_records=%" PRIu64, srv->cfg.kafka_topic, (int)g->parts, g->seq_topic,
             (uint64_t)srv->clients.n, g->seqs_read);
}

static void seq_drain(struct gateway *g)
{
    rd_kafka_message_t *msgs[256];
    ssize_t n;
    while (!g->caught_up && !g->stopping &&
           (n = rd_kafka_consume_batch_queue(g->consq, 0, msgs, 256)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = msgs[i];
            uint64_t seq;
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                if (m->partition >= 0 && m->partition < g->seq_parts && !g->eof[m->partition]) {
                    g->eof[m->partition] = 1;
                    g->eof_left--;
                }
            } else if (m->err) {
                log_warn("gateway_seq_read_error partition=%d err=%s", (int)m->partition,
                         rd_kafka_err2name(m->err));
            } else if (seq_record(m, &seq) != 0) {
                g->seqs_bad++;
                log_warn("gateway_seq_bad_record topic=%s partition=%d offset=%" PRId64,
                         g->seq_topic, (int)m->partition, m->offset);
            } else {
                g->seqs_read++;
                if (clients_restore(&g->srv->clients, m->key, m->key_len, seq) != 0)
                    log_warn("gateway_seq_restore_failed offset=%" PRId64, m->offset);
            }
            rd_kafka_message_destroy(m);
        }
        if (g->eof_left == 0) {
            caught_up(g);
            return;
        }
        if (n < 256)
            return;
    }
}

/* ---- producing ------------------------------------------------------------ */

static int32_t part_of(void *ctx, const char *sym, size_t len)
{
    struct gateway *g = ctx;
    return rd_kafka_msg_partitioner_murmur2(g->rkt, sym, len, g->parts, NULL, NULL);
}

static void seq_write(struct gateway *g, const client_rec *cl, uint64_t seq)
{
    char v[24];
    int n = snprintf(v, sizeof v, "%" PRIu64, seq);
    int32_t p = rd_kafka_msg_partitioner_murmur2(g->seq_rkt, cl->name, cl->len, g->seq_parts, NULL,
                                                 NULL);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        g->prod, RD_KAFKA_V_RKT(g->seq_rkt), RD_KAFKA_V_PARTITION(p),
        RD_KAFKA_V_KEY(cl->name, cl->len), RD_KAFKA_V_VALUE(v, (size_t)n),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(NULL), RD_KAFKA_V_END);
    if (err) { /* the parts are in Kafka: a restart has a lower last_seq, resends are skipped */
        g->seqs_failed++;
        log_warn("gateway_seq_write_failed seq=%" PRIu64 " err=%s", seq, rd_kafka_err2name(err));
    }
}

/* Answer every finished batch at the head of the name's pipeline, in
 * order; free the pipeline once it is empty. */
static void pipe_drain(struct gateway *g, client_rec *cl)
{
    gw_pipe *pp = cl->gw;
    gw_job *j;
    char msg[256];
    while ((j = pp->head) && j->parts_left == 0) {
        const char *why = j->why ? j->why : j->err ? rd_kafka_err2str(j->err) : NULL;
        if (!why && pp->failed) /* its parts may be in Kafka: the resend is skipped there */
            why = "an earlier batch of this client failed";
        pp->head = j->next;
        if (!pp->head)
            pp->tail = NULL;
        if (j->t0) { /* produced: how long Kafka took, success or not */
            uint64_t ns = uv_hrtime() - j->t0;
            g->lat_buckets[metrics_bucket(ns)]++;
            g->lat_count++;
            g->lat_sum += (double)ns / 1e9;
        }
        if (why) {
            pp->failed = pp->broken = 1;
            g->batches_failed++;
            snprintf(msg, sizeof msg, "Kafka did not acknowledge every part of the batch (%s); "
                     "resend it: parts already written are skipped by the nodes", why);
            log_warn("gateway_batch_failed seq=%" PRIu64 " err=\"%s\"", j->seq, why);
        } else {
            g->batches_ok++;
            seq_write(g, cl, j->seq);
        }
        j->done(j->ctx, why ? msg : NULL); /* cl stays valid: ingest counts it inflight */
        free(j);
    }
    if (!pp->head) {
        free(pp);
        cl->gw = NULL;
    }
}

/* A part of j failed, or j did before Kafka: nothing more of the name is
 * produced until its pipeline drains (gateway.h). */
static void job_fail(gw_job *j, const char *why, rd_kafka_resp_err_t err)
{
    gw_pipe *pp = j->cl->gw;
    pp->broken = 1;
    if (why && !j->why)
        j->why = why;
    if (err && !j->err)
        j->err = err;
}

static void job_produce(struct gateway *g, gw_job *j, const uint8_t *msg, size_t len)
{
    gw_pipe *pp = j->cl->gw;
    proto_error err = {0};
    char seq[24], part[32], prev[24];
    int sn = snprintf(seq, sizeof seq, "%" PRIu64, j->seq);
    uint32_t total = 0, i = 0;
    if (pp->broken)
        return job_fail(j, "an earlier batch of this client failed", 0);
    if (g->stopping || g->failed)
        return job_fail(j, "the gateway is stopping", 0);
    if (split_batch(msg, len, part_of, g, &g->split, &err) != 0) {
        log_warn("gateway_split_failed seq=%" PRIu64 " msg=\"%s\"", j->seq, err.msg);
        return job_fail(j, "the batch could not be cut per partition", 0);
    }
    for (int32_t p = 0; p < g->parts; p++)
        total += g->split.counts[p] != 0;
    j->t0 = uv_hrtime();
    for (int32_t p = 0; p < g->parts && !j->err; p++) {
        proto_buf *b = &g->split.parts[p];
        if (!g->split.counts[p])
            continue;
        int pn = snprintf(part, sizeof part, "%u/%u", i++, total);
        int vn = snprintf(prev, sizeof prev, "%" PRIu64, pp->prev[p]);
        rd_kafka_resp_err_t e = rd_kafka_producev(
            g->prod, RD_KAFKA_V_RKT(g->rkt), RD_KAFKA_V_PARTITION(p),
            RD_KAFKA_V_VALUE(b->data, b->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADER("client", j->cl->name, (ssize_t)j->cl->len),
            RD_KAFKA_V_HEADER("seq", seq, (ssize_t)sn),
            RD_KAFKA_V_HEADER("part", part, (ssize_t)pn),
            RD_KAFKA_V_HEADER("prev", prev, (ssize_t)vn), /* "0": the pipeline's first here */
            RD_KAFKA_V_OPAQUE(j), RD_KAFKA_V_END);
        if (e) {
            g->parts_failed++;
            job_fail(j, NULL, e);
        } else {
            pp->prev[p] = j->seq;
            j->parts_left++;
            g->records++;
            g->bytes += b->len;
        }
    }
}

void gateway_submit(server *srv, client_rec *cl, uint64_t seq, const uint8_t *msg, size_t len,
                    gateway_done_fn done, void *ctx)
{
    struct gateway *g = srv->gateway;
    gw_pipe *pp = cl->gw;
    gw_job *j = calloc(1, sizeof *j);
    assert(g->parts > 0); /* ingest answers NOT_READY until the topics are known */
    if (!pp && (pp = calloc(1, sizeof *pp + (size_t)g->parts * sizeof pp->prev[0])))
        cl->gw = pp;
    if (!j || !pp) {
        free(j);
        /* The name's earlier batches, if any, are answered first: fail this
         * one after them would need the memory we lack; nothing of it is
         * in Kafka, and the pipeline stops producing. */
        if (pp)
            pp->broken = 1;
        done(ctx, "out of memory");
        return;
    }
    j->cl = cl;
    j->seq = seq;
    j->done = done;
    j->ctx = ctx;
    if (pp->tail)
        pp->tail->next = j;
    else
        pp->head = j;
    pp->tail = j;
    j->parts_left = 1; /* held while its parts are produced */
    job_produce(g, j, msg, len);
    j->parts_left--;
    pipe_drain(g, cl);
}

/* ---- librdkafka -> loop ------------------------------------------------- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct gateway *g = opaque;
    gw_job *j = m->_private;
    (void)rk;
    if (!j) { /* a seq record */
        if (m->err) {
            g->seqs_failed++;
            log_warn("gateway_seq_write_failed err=%s", rd_kafka_err2name(m->err));
        } else {
            g->seqs_written++;
        }
        return;
    }
    if (m->err) {
        g->parts_failed++;
        job_fail(j, NULL, m->err);
    }
    if (--j->parts_left == 0)
        pipe_drain(g, j->cl);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct gateway *g = opaque;
    char fatal[512];
    if (err != RD_KAFKA_RESP_ERR__FATAL) {
        uint64_t now = uv_hrtime();
        if (now - g->error_logged < 1000000000u) /* a broker down repeats itself */
            return;
        g->error_logged = now;
        log_warn("gateway_kafka_error err=%s reason=\"%s\"", rd_kafka_err2name(err), reason);
        return;
    }
    /* The idempotent producer cannot go on (its guarantees would break):
     * stop; a restart resumes from the seq topic. */
    rd_kafka_fatal_error(rk, fatal, sizeof fatal);
    log_error("gateway_kafka_fatal err=\"%s\"", fatal);
    if (!g->failed) {
        g->failed = 1;
        g->fail(g->srv);
    }
}

static void wake_drain(int fd)
{
    char buf[256];
    while (read(fd, buf, sizeof buf) > 0)
        ;
}

static void gw_poll(struct gateway *g)
{
    for (int i = 0; i < GW_POLL_BUDGET && rd_kafka_poll(g->prod, 0) > 0; i++)
        ;
}

static void on_prod_wake(uv_poll_t *h, int status, int events)
{
    struct gateway *g = h->data;
    (void)status, (void)events;
    wake_drain(g->pw.fds[0]);
    gw_poll(g);
}

static void on_cons_wake(uv_poll_t *h, int status, int events)
{
    struct gateway *g = h->data;
    (void)status, (void)events;
    wake_drain(g->cw.fds[0]);
    seq_drain(g);
}

static void on_tick(uv_timer_t *t)
{
    struct gateway *g = t->data;
    gw_poll(g);
    if (g->cons && !g->caught_up && g->eof)
        seq_drain(g);
}

static int wake_init(struct gateway *g, gw_wake *w, rd_kafka_queue_t *q, uv_poll_cb cb)
{
    int rc;
    if (pipe2(w->fds, O_NONBLOCK | O_CLOEXEC) < 0)
        return -errno;
    rd_kafka_queue_io_event_enable(q, w->fds[1], "1", 1);
    if ((rc = uv_poll_init(g->srv->loop, &w->poll, w->fds[0])) != 0)
        return rc;
    w->poll.data = g;
    w->on = 1;
    return uv_poll_start(&w->poll, UV_READABLE, cb);
}

/* ---- start: partition counts, then the seq topic -------------------------- */

static int32_t topic_parts(rd_kafka_t *rk, rd_kafka_topic_t *rkt, char *err, size_t cap)
{
    const struct rd_kafka_metadata *md = NULL;
    int32_t n = -1;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 2000);
    if (!e && md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt > 0)
        n = md->topics[0].partition_cnt;
    else
        snprintf(err, cap, "%s: %s", rd_kafka_topic_name(rkt),
                 rd_kafka_err2str(e ? e : md->topic_cnt ? md->topics[0].err
                                                         : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
    if (md)
        rd_kafka_metadata_destroy(md);
    return n;
}

/* Worker thread: both topics' partition counts, retried until they come
 * (a topic not created yet) or slotd stops. */
static void meta_work(uv_work_t *w)
{
    struct gateway *g = w->data;
    char err[sizeof g->meta_err] = "";
    for (int tries = 0; !g->srv->stopping; tries++) {
        if (g->w_parts <= 0)
            g->w_parts = topic_parts(g->prod, g->rkt, err, sizeof err);
        if (g->w_parts > 0 && g->w_seq_parts <= 0)
            g->w_seq_parts = topic_parts(g->prod, g->seq_rkt, err, sizeof err);
        if (g->w_parts > 0 && g->w_seq_parts > 0)
            return;
        pthread_mutex_lock(&g->meta_lock);
        memcpy(g->meta_err, err, sizeof err);
        pthread_mutex_unlock(&g->meta_lock);
        if (tries % 10 == 0)
            log_warn("gateway_metadata_retry err=\"%s\"", err);
        usleep(500 * 1000);
    }
}

static void meta_done(uv_work_t *w, int status)
{
    struct gateway *g = w->data;
    rd_kafka_topic_partition_list_t *l = NULL;
    g->parts = g->w_parts; /* the worker is done: its writes are visible */
    g->seq_parts = g->w_seq_parts;
    if (status || g->srv->stopping || g->parts <= 0 || g->seq_parts <= 0)
        return;
    if (split_init(&g->split, g->parts) != 0 || !(g->eof = calloc((size_t)g->seq_parts, 1)))
        goto fail;
    g->eof_left = g->seq_parts;
    l = rd_kafka_topic_partition_list_new(g->seq_parts);
    for (int32_t p = 0; p < g->seq_parts; p++)
        rd_kafka_topic_partition_list_add(l, g->seq_topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t err = rd_kafka_assign(g->cons, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        log_error("gateway_start_failed err=\"assign %s: %s\"", g->seq_topic,
                  rd_kafka_err2str(err));
        goto fail;
    }
    log_info("gateway_reading_seqs topic=%s partitions=%d seq_topic=%s seq_partitions=%d",
             g->srv->cfg.kafka_topic, (int)g->parts, g->seq_topic, (int)g->seq_parts);
    seq_drain(g);
    return;
fail:
    g->failed = 1;
    g->fail(g->srv);
}

int gateway_start(server *srv, void (*fail)(server *srv))
{
    char errstr[512];
    struct gateway *g = calloc(1, sizeof *g);
    int rc;
    if (!g)
        return UV_ENOMEM;
    srv->gateway = g;
    g->srv = srv;
    g->fail = fail;
    g->parts = g->seq_parts = g->w_parts = g->w_seq_parts = -1;
    pthread_mutex_init(&g->meta_lock, NULL);
    g->pw.fds[0] = g->pw.fds[1] = g->cw.fds[0] = g->cw.fds[1] = -1;
    if (srv->cfg.gateway_seq_topic)
        snprintf(g->seq_topic, sizeof g->seq_topic, "%s", srv->cfg.gateway_seq_topic);
    else
        snprintf(g->seq_topic, sizeof g->seq_topic, "%s.seqs", srv->cfg.kafka_topic);
    /* Idempotent (acks=all, ordered, no duplicates from retries); a short
     * linger: a client waits for its batch's acknowledgement. Topics are
     * never created by the gateway: the seq topic must be compacted, and
     * the trades topic's partition count is the cluster's layout. */
    const char *pset[][2] = {{"bootstrap.servers", srv->cfg.kafka_brokers},
                             {"enable.idempotence", "true"},
                             {"acks", "all"},
                             {"linger.ms", "1"},
                             {"allow.auto.create.topics", "false"}};
    const char *cset[][2] = {{"bootstrap.servers", srv->cfg.kafka_brokers},
                             {"group.id", "slotd-gateway"},
                             {"enable.auto.commit", "false"},
                             {"enable.auto.offset.store", "false"},
                             {"enable.partition.eof", "true"}};
    rd_kafka_conf_t *pc = kafka_conf_new(pset, sizeof pset / sizeof pset[0], srv->cfg.kafka_conf);
    rd_kafka_conf_t *cc = kafka_conf_new(cset, sizeof cset / sizeof cset[0], srv->cfg.kafka_conf);
    if (!pc || !cc)
        goto conf_fail;
    rd_kafka_conf_set_opaque(pc, g);
    rd_kafka_conf_set_dr_msg_cb(pc, on_delivery);
    rd_kafka_conf_set_error_cb(pc, on_error);
    if (!(g->prod = rd_kafka_new(RD_KAFKA_PRODUCER, pc, errstr, sizeof errstr)))
        goto new_fail;
    pc = NULL;
    if (!(g->cons = rd_kafka_new(RD_KAFKA_CONSUMER, cc, errstr, sizeof errstr)))
        goto new_fail;
    cc = NULL;
    rd_kafka_poll_set_consumer(g->cons);
    g->rkt = rd_kafka_topic_new(g->prod, srv->cfg.kafka_topic, NULL);
    g->seq_rkt = rd_kafka_topic_new(g->prod, g->seq_topic, NULL);
    if (!g->rkt || !g->seq_rkt) {
        log_error("gateway_start_failed err=\"%s\"", rd_kafka_err2str(rd_kafka_last_error()));
        return UV_EINVAL;
    }
    g->mainq = rd_kafka_queue_get_main(g->prod);
    g->consq = rd_kafka_queue_get_consumer(g->cons);
    g->handles = 1;
    if ((rc = wake_init(g, &g->pw, g->mainq, on_prod_wake)) != 0 ||
        (rc = wake_init(g, &g->cw, g->consq, on_cons_wake)) != 0)
        return rc;
    uv_timer_init(srv->loop, &g->tick);
    g->tick.data = g;
    uv_timer_start(&g->tick, on_tick, GW_TICK_MS, GW_TICK_MS);
    log_info("gateway_started brokers=%s topic=%s seq_topic=%s", srv->cfg.kafka_brokers,
             srv->cfg.kafka_topic, g->seq_topic);
    g->meta.data = g;
    return uv_queue_work(srv->loop, &g->meta, meta_work, meta_done);
new_fail:
    log_error("gateway_start_failed err=\"%s\"", errstr);
conf_fail:
    if (pc)
        rd_kafka_conf_destroy(pc);
    if (cc)
        rd_kafka_conf_destroy(cc);
    return UV_EINVAL;
}

void gateway_stop(server *srv)
{
    struct gateway *g = srv->gateway;
    if (!g || g->stopping)
        return;
    g->stopping = 1;
    if (g->prod) {
        rd_kafka_resp_err_t err = rd_kafka_flush(g->prod, 5000); /* the seq records */
        if (err)
            log_warn("gateway_flush_failed err=%s (seq records lost: clients resend, nodes skip)",
                     rd_kafka_err2name(err));
    }
    if (!g->handles)
        return;
    if (g->pw.on)
        uv_close((uv_handle_t *)&g->pw.poll, NULL);
    if (g->cw.on)
        uv_close((uv_handle_t *)&g->cw.poll, NULL);
    uv_close((uv_handle_t *)&g->tick, NULL);
}

static void queue_free(rd_kafka_queue_t *q)
{
    if (!q)
        return;
    rd_kafka_queue_io_event_enable(q, -1, NULL, 0);
    rd_kafka_queue_destroy(q);
}

void gateway_free(server *srv)
{
    struct gateway *g = srv->gateway;
    if (!g)
        return;
    queue_free(g->consq);
    queue_free(g->mainq);
    if (g->rkt)
        rd_kafka_topic_destroy(g->rkt);
    if (g->seq_rkt)
        rd_kafka_topic_destroy(g->seq_rkt);
    if (g->cons)
        rd_kafka_destroy_flags(g->cons, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    if (g->prod)
        rd_kafka_destroy(g->prod);
    for (int i = 0; i < 2; i++) {
        if (g->pw.fds[i] >= 0)
            close(g->pw.fds[i]);
        if (g->cw.fds[i] >= 0)
            close(g->cw.fds[i]);
    }
    split_free(&g->split);
    free(g->eof);
    pthread_mutex_destroy(&g->meta_lock);
    free(g);
    srv->gateway = NULL;
}

/* ---- high watermarks, for the nodes' lag (gateway_query.c) ------------------ */

typedef struct gw_marks {
    uv_work_t w;
    struct gateway *g;
    gateway_marks_fn done;
    int32_t n;
    int64_t hw[];
} gw_marks;

/* Worker thread: one ListOffsets round trip per partition (the producer
 * has no consumer's cached watermarks; librdkafka's calls are thread-safe). */
static void marks_work(uv_work_t *w)
{
    gw_marks *m = w->data;
    for (int32_t p = 0; p < m->n; p++) {
        int64_t lo, hi;
        m->hw[p] = m->g->srv->stopping ||
                           rd_kafka_query_watermark_offsets(m->g->prod, m->g->srv->cfg.kafka_topic,
                                                            p, &lo, &hi, 1000) != 0
                       ? -1 : hi;
    }
}

static void marks_done(uv_work_t *w, int status)
{
    gw_marks *m = w->data;
    m->g->marks_busy = 0;
    if (status == 0 && !m->g->stopping)
        m->done(m->g->srv, m->hw, m->n);
    free(m);
}

int gateway_watermarks(server *srv, gateway_marks_fn done)
{
    struct gateway *g = srv->gateway;
    if (!g || g->parts <= 0 || g->stopping || g->marks_busy)
        return -1;
    gw_marks *m = calloc(1, sizeof *m + (size_t)g->parts * sizeof(int64_t));
    if (!m)
        return -1;
    *m = (gw_marks){.g = g, .done = done, .n = g->parts};
    m->w.data = m;
    if (uv_queue_work(srv->loop, &m->w, marks_work, marks_done) != 0) {
        free(m);
        return -1;
    }
    g->marks_busy = 1;
    return 0;
}

int32_t gateway_partition(const server *srv, const char *sym, size_t len)
{
    const struct gateway *g = srv->gateway;
    if (!g || g->parts <= 0)
        return -1;
    return rd_kafka_msg_partitioner_murmur2(g->rkt, sym, len, g->parts, NULL, NULL);
}

int32_t gateway_partitions(const server *srv)
{
    const struct gateway *g = srv->gateway;
    return g && g->parts > 0 ? g->parts : -1;
}

int gateway_ready(const server *srv, char *why, size_t cap)
{
    const struct gateway *g = srv->gateway;
    if (!g || g->parts <= 0 || g->seq_parts <= 0) {
        char err[sizeof g->meta_err] = "";
        if (g) {
            pthread_mutex_lock((pthread_mutex_t *)&g->meta_lock);
            memcpy(err, g->meta_err, sizeof err);
            pthread_mutex_unlock((pthread_mutex_t *)&g->meta_lock);
        }
        snprintf(why, cap, "waiting for the topics' metadata%s%s", err[0] ? ": " : "", err);
        return 0;
    }
    if (!g->caught_up) {
        snprintf(why, cap, "reading the seq topic %s: %d of %d partitions to go", g->seq_topic,
                 (int)g->eof_left, (int)g->seq_parts);
        return 0;
    }
    return 1;
}

void gateway_produce_stats(const server *srv, const uint64_t **buckets, double *sum,
                           uint64_t *count, uint64_t *failed_parts, uint64_t *failed_batches)
{
    static const uint64_t none[METRICS_NBUCKETS];
    const struct gateway *g = srv->gateway;
    *buckets = g ? g->lat_buckets : none;
    *sum = g ? g->lat_sum : 0;
    *count = g ? g->lat_count : 0;
    *failed_parts = g ? g->parts_failed : 0;
    *failed_batches = g ? g->batches_failed : 0;
}

void gateway_stats_json(const server *srv, emit *e)
{
    const struct gateway *g = srv->gateway;
    e->map(e, 12);
    e->key(e, "topic");
    emit_cstr(e, srv->cfg.kafka_topic);
    e->key(e, "partitions");
    e->i64(e, g ? g->parts : -1);
    e->key(e, "seq_topic");
    emit_cstr(e, g ? g->seq_topic : "");
    e->key(e, "ready");
    e->boolean(e, g && g->caught_up);
    const struct {
        const char *key;
        uint64_t v;
    } n[] = {{"batches_acked", g ? g->batches_ok : 0},
             {"batches_failed", g ? g->batches_failed : 0},
             {"records_produced", g ? g->records : 0},
             {"bytes_produced", g ? g->bytes : 0},
             {"parts_failed", g ? g->parts_failed : 0},
             {"seq_records_read", g ? g->seqs_read : 0},
             {"seq_records_written", g ? g->seqs_written : 0},
             {"seq_records_failed", g ? g->seqs_failed : 0}};
    for (size_t i = 0; i < sizeof n / sizeof n[0]; i++) {
        e->key(e, n[i].key);
        e->u64(e, n[i].v);
    }
    e->end(e);
}
