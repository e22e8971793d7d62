/* http_stats — the /stats JSON and /metrics Prometheus bodies.
 *
 * Both read the same sources: srv->metrics (ingest counters), the store's
 * stats (through query_run(QUERY_STATS) for /stats, so the "store" section
 * is byte-for-byte what TCP {"op": "stats"} returns), the journal, and RSS.
 * While the journal replays on its worker thread the store belongs to that
 * thread, so neither body reads it then.
 */
#include "http.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "emit.h"
#include "ingest.h"
#include "gateway.h"
#include "kafka.h"
#include "retention.h"
#include "subscribe.h"
#include "query.h"

static double now_s(const server *srv)
{
    return (double)(uv_hrtime() - srv->metrics.start_ns) / 1e9;
}

static double replay_seconds(const server *srv)
{
    /* During replay replay_ns holds its start time, afterwards its length. */
    if (srv->replaying)
        return (double)(uv_hrtime() - srv->replay_ns) / 1e9;
    return (double)srv->replay_ns / 1e9;
}

static uint64_t replay_records(const server *srv)
{
    /* Written by the replay thread; a relaxed read gives a recent value. */
    return srv->replay_records;
}

static void kv_u64(emit *e, const char *k, uint64_t v)
{
    e->key(e, k);
    e->u64(e, v);
}

static void kv_dbl(emit *e, const char *k, double v)
{
    e->key(e, k);
    e->dbl(e, v);
}

/* ---- /stats ------------------------------------------------------------------ */

int http_render_stats(server *srv, proto_buf *out)
{
    metrics *m = &srv->metrics;
    uint64_t now = uv_hrtime();
    int have_store = !srv->replaying;
    store_stats st = {0};
    if (have_store)
        store_get_stats(srv->store, &st);
    uint64_t rss = server_rss_bytes();

    emit e;
    emit_json_init(&e, out);
    e.map(&e, 31);
    e.key(&e, "version");
    emit_cstr(&e, SLOTD_VERSION);
    kv_dbl(&e, "uptime_seconds", now_s(srv));
    e.key(&e, "ready");
    e.boolean(&e, srv->ready);
    /* What the store holds (replayed + acknowledged since start). */
    e.key(&e, "trades");
    have_store ? e.u64(&e, st.trades) : e.nil(&e);
    e.key(&e, "symbols");
    have_store ? e.u64(&e, st.symbols) : e.nil(&e);
    e.key(&e, "batches");
    have_store ? e.u64(&e, st.batches) : e.nil(&e);
    /* Acknowledged by this process since it started. */
    kv_u64(&e, "trades_acked", m->trades_total);
    kv_u64(&e, "batches_acked", m->batches_total);
    kv_u64(&e, "duplicate_batches", m->duplicate_batches_total);
    kv_u64(&e, "bytes_in", m->bytes_in_total);
    kv_u64(&e, "messages", m->messages_total);
    kv_u64(&e, "queries", m->queries_total);
    kv_u64(&e, "http_requests", m->http_requests_total);
    e.key(&e, "ingest_rate");
    e.map(&e, 3);
    kv_dbl(&e, "1s", metrics_rate(m, now, 1));
    kv_dbl(&e, "10s", metrics_rate(m, now, 10));
    kv_dbl(&e, "60s", metrics_rate(m, now, 60));
    e.end(&e);
    kv_u64(&e, "connections", m->connections);
    kv_u64(&e, "connections_accepted", m->connections_total);
    ingest_stats is;
    ingest_get_stats(srv, &is);
    e.key(&e, "sessions");
    e.map(&e, 7);
    kv_u64(&e, "before_hello", is.pending);
    kv_u64(&e, "past_hello", is.sessions);
    kv_u64(&e, "evicted_before_hello", m->handshakes_evicted_total);
    kv_u64(&e, "read_buffer_bytes", is.buffered);
    kv_u64(&e, "waiting_for_buffer", is.starved);
    e.key(&e, "client_names");
    have_store ? e.u64(&e, srv->clients.n) : e.nil(&e);
    kv_u64(&e, "client_names_forgotten", srv->clients.forgotten);
    e.end(&e);
    e.key(&e, "errors");
    e.map(&e, PROTO_NCODES - 1);
    for (int c = 1; c < PROTO_NCODES; c++)
        kv_u64(&e, proto_code_name((proto_code)c), m->errors_total[c]);
    e.end(&e);
    e.key(&e, "ack_latency");
    e.map(&e, 3);
    kv_u64(&e, "count", m->ack_count);
    kv_dbl(&e, "sum_seconds", m->ack_sum);
    e.key(&e, "mean_seconds");
    m->ack_count ? e.dbl(&e, m->ack_sum / (double)m->ack_count) : e.nil(&e);
    e.end(&e);
    e.key(&e, "store");
    if (have_store) {
        query_req q;
        proto_error err;
        query_req_init(&q, QUERY_STATS);
        if (query_run(srv->store, &q, &e, &err) < 0)
            e.nil(&e); /* stats cannot fail; keep the document well formed */
    } else {
        e.nil(&e);
    }
    kv_u64(&e, "resident_memory_bytes", rss);
    kv_u64(&e, "baseline_memory_bytes", srv->rss_baseline);
    /* Growth over the start-up RSS per million stored trades: the figure
     * the design targets (journal buffers and loop state included). */
    e.key(&e, "memory_per_million_trades");
    if (have_store && st.trades)
        e.dbl(&e, (double)(rss > srv->rss_baseline ? rss - srv->rss_baseline : 0) * 1e6 /
                      (double)st.trades);
    else
        e.nil(&e);
    e.key(&e, "journal");
    if (srv->journal) {
        journal_stats js;
        journal_get_stats(srv->journal, &js);
        e.map(&e, 8);
        kv_u64(&e, "records", js.records);
        kv_u64(&e, "bytes", js.bytes);
        kv_u64(&e, "groups", js.groups);
        kv_u64(&e, "fsyncs", js.fsyncs);
        kv_u64(&e, "errors", js.errors);
        kv_u64(&e, "segments", js.segments);
        kv_u64(&e, "pending_bytes", journal_pending(srv->journal));
        e.key(&e, "last_error");
        js.last_error ? e.str(&e, uv_err_name((int)js.last_error), strlen(uv_err_name((int)js.last_error)))
                      : e.nil(&e);
        e.end(&e);
    } else {
        e.nil(&e);
    }
    e.key(&e, "replay");
    e.map(&e, 3);
    e.key(&e, "in_progress");
    e.boolean(&e, srv->replaying);
    kv_u64(&e, "records", replay_records(srv));
    kv_dbl(&e, "seconds", replay_seconds(srv));
    e.end(&e);
    checkpoint_stats cs;
    checkpoint_get_stats(srv, &cs);
    e.key(&e, "checkpoint");
    e.map(&e, 10);
    e.key(&e, "in_progress");
    e.boolean(&e, cs.in_progress);
    kv_u64(&e, "checkpoints", cs.total);
    kv_u64(&e, "failures", cs.failures);
    kv_u64(&e, "segment", cs.segment);             /* the newest snapshot covers <= this */
    kv_dbl(&e, "last_seconds", cs.last_seconds);
    kv_u64(&e, "last_bytes", cs.last_bytes);
    kv_u64(&e, "last_trades", cs.last_trades);
    kv_u64(&e, "segments_removed", cs.segments_removed);
    kv_dbl(&e, "load_seconds", cs.load_seconds);   /* start-up: reading the snapshot */
    kv_u64(&e, "loaded_trades", cs.loaded_trades);
    e.end(&e);
    retention_stats rs;
    retention_get_stats(srv, &rs);
    e.key(&e, "retention");
    e.map(&e, 4);
    e.key(&e, "horizon_seconds");
    rs.horizon_ns ? e.dbl(&e, (double)rs.horizon_ns / 1e9) : e.nil(&e);
    e.key(&e, "cutoff_ts");
    rs.cutoff_ts ? e.i64(&e, rs.cutoff_ts) : e.nil(&e);
    kv_u64(&e, "dropped_trades", rs.dropped_trades);
    kv_u64(&e, "dropped_pages", rs.dropped_pages);
    e.end(&e);
    e.key(&e, "stopping");
    e.boolean(&e, srv->stopping);
    e.key(&e, "source");
    emit_cstr(&e, srv->cfg.gateway ? "gateway" : srv->cfg.source == SERVER_SOURCE_KAFKA ? "kafka" : "tcp");
    e.key(&e, "kafka"); /* per-partition offsets, lag, rates (kafka_stats.c) */
    if (srv->cfg.source == SERVER_SOURCE_KAFKA)
        kafka_stats_json(srv, &e);
    else
        e.nil(&e);
    e.key(&e, "gateway"); /* produced batches and parts, the seq topic (gateway.c) */
    if (srv->cfg.gateway)
        gateway_stats_json(srv, &e);
    else
        e.nil(&e);
    e.end(&e);
    return e.err || e.depth ? -1 : 0;
}

/* ---- /metrics ------------------------------------------------------------------- */

typedef struct prom {
    proto_buf *out;
    int err;
} prom;

static void prom_head(prom *p, const char *name, const char *type, const char *help)
{
    if (proto_buf_printf(p->out, "# HELP slotd_%s %s\n# TYPE slotd_%s %s\n", name, help, name,
                         type) < 0)
        p->err = 1;
}

static void prom_num(char *b, size_t size, double v)
{
    if (isnan(v))
        snprintf(b, size, "NaN");
    else if (isinf(v))
        snprintf(b, size, v > 0 ? "+Inf" : "-Inf");
    else
        emit_format_double(v, b, size);
}

static void prom_u64(prom *p, const char *name, const char *type, const char *help, uint64_t v)
{
    prom_head(p, name, type, help);
    if (proto_buf_printf(p->out, "slotd_%s %llu\n", name, (unsigned long long)v) < 0)
        p->err = 1;
}

static void prom_dbl(prom *p, const char *name, const char *type, const char *help, double v)
{
    char b[48];
    prom_num(b, sizeof b, v);
    prom_head(p, name, type, help);
    if (proto_buf_printf(p->out, "slotd_%s %s\n", name, b) < 0)
        p->err = 1;
}

static void prom_hist(prom *p, const char *name, const char *help, const uint64_t *buckets,
                      double sum, uint64_t count)
{
    static const double bounds[METRICS_NBUCKETS - 1] = METRICS_LATENCY_BOUNDS;
    char b[48];
    uint64_t cum = 0;
    prom_head(p, name, "histogram", help);
    for (int i = 0; i < METRICS_NBUCKETS; i++) {
        cum += buckets[i];
        if (i < METRICS_NBUCKETS - 1)
            prom_num(b, sizeof b, bounds[i]);
        else
            snprintf(b, sizeof b, "+Inf");
        if (proto_buf_printf(p->out, "slotd_%s_bucket{le=\"%s\"} %llu\n", name, b,
                             (unsigned long long)cum) < 0)
            p->err = 1;
    }
    prom_num(b, sizeof b, sum);
    if (proto_buf_printf(p->out, "slotd_%s_sum %s\nslotd_%s_count %llu\n", name, b, name,
                         (unsigned long long)count) < 0)
        p->err = 1;
}

#define COUNTER(name, help, v) prom_u64(&p, name, "counter", help, v)
#define GAUGE(name, help, v) prom_u64(&p, name, "gauge", help, v)
#define GAUGE_D(name, help, v) prom_dbl(&p, name, "gauge", help, v)

int http_render_metrics(server *srv, proto_buf *out)
{
    metrics *m = &srv->metrics;
    prom p = {out, 0};

    COUNTER("trades_total", "Trades stored and acknowledged since start.", m->trades_total);
    COUNTER("batches_total", "Batches acknowledged since start, duplicates included.",
            m->batches_total);
    COUNTER("duplicate_batches_total", "Batches acknowledged again without storing (resent seq).",
            m->duplicate_batches_total);
    COUNTER("bytes_received_total", "Bytes read from TCP ingest connections.", m->bytes_in_total);
    COUNTER("messages_total", "Messages received on TCP ingest connections.", m->messages_total);
    COUNTER("queries_total", "Queries received as TCP Q messages.", m->queries_total);
    COUNTER("connections_accepted_total", "TCP ingest connections accepted.", m->connections_total);
    COUNTER("http_requests_total", "HTTP requests answered, refused ones included.",
            m->http_requests_total);
    COUNTER("exports_total", "GET /export answers started.", m->exports_total);
    COUNTER("export_trades_total", "Trades written by GET /export answers.",
            m->export_trades_total);
    sub_stats ss;
    sub_get_stats(srv, &ss);
    GAUGE("subscribers", "Open subscriptions (TCP SUB and GET /subscribe).", ss.subscribers);
    COUNTER("subscriber_trades_total", "Trades pushed to subscribers.", ss.trades_total);
    GAUGE("subscriber_lag_trades", "Trades stored past the subscribers' positions, summed.",
          ss.lag);
    prom_head(&p, "subscriber_drops_total", "counter",
              "Subscribers dropped by the server, by reason (stalled: not reading; gone: "
              "retention passed its position).");
    for (int r = 0; r < SUB_NDROPS; r++)
        if (proto_buf_printf(out, "slotd_subscriber_drops_total{reason=\"%s\"} %llu\n",
                             sub_drop_names[r], (unsigned long long)ss.drops[r]) < 0)
            p.err = 1;

    prom_head(&p, "errors_total", "counter", "Errors sent to clients, by wire error code.");
    for (int c = 1; c < PROTO_NCODES; c++)
        if (proto_buf_printf(out, "slotd_errors_total{code=\"%s\"} %llu\n",
                             proto_code_name((proto_code)c),
                             (unsigned long long)m->errors_total[c]) < 0)
            p.err = 1;

    journal_stats js = {0};
    if (srv->journal)
        journal_get_stats(srv->journal, &js);
    COUNTER("journal_records_total", "Records appended to the journal.", js.records);
    COUNTER("journal_bytes_total", "Bytes written to the journal.", js.bytes);
    COUNTER("journal_fsyncs_total", "fsync calls made by the journal.", js.fsyncs);
    COUNTER("journal_errors_total", "Journal write or sync failures.", js.errors);

    GAUGE("connections", "Open TCP ingest connections.", m->connections);
    ingest_stats is;
    ingest_get_stats(srv, &is);
    GAUGE("connections_before_hello", "TCP ingest connections that have not sent HELLO.",
          is.pending);
    COUNTER("connections_evicted_total",
            "Connections closed before HELLO to make room (--max-handshakes).",
            m->handshakes_evicted_total);
    COUNTER("auth_failures_total",
            "Refused authentications: HELLO or HTTP without valid credentials, or a client "
            "acting beyond its --auth-file perms.", m->auth_failures_total);
    COUNTER("tls_handshakes_total", "TLS handshakes completed (TCP and HTTPS).",
            m->tls_handshakes_total);
    COUNTER("tls_failures_total",
            "TLS connections closed for a failed handshake (plain client, bad or "
            "missing certificate, garbage) or a bad record.", m->tls_failures_total);
    GAUGE("read_buffer_bytes", "Read-buffer bytes counted against --max-buffered.", is.buffered);
    COUNTER("client_names_forgotten_total", "Idle client names forgotten (--max-clients).",
            srv->clients.forgotten);
    if (!srv->replaying) {
        store_stats st;
        store_get_stats(srv->store, &st);
        GAUGE("symbols", "Symbols holding at least one trade.", st.symbols);
        GAUGE("store_trades", "Trades held by the store.", st.trades);
        GAUGE("store_pages", "Slab pages in use.", st.pages);
        GAUGE("store_pages_compact", "Of the pages in use, compact (re-encoded narrow) ones.",
              st.pages_compact);
        GAUGE("store_bytes_reserved", "Bytes reserved by the store (slab chunks and index).",
              st.bytes_reserved);
        GAUGE("store_bytes_used", "Bytes used by the store (page headers, slots, index).",
              st.bytes_used);
        GAUGE("store_bytes_cap", "The store's memory cap (--max-memory).", st.bytes_cap);
        GAUGE_D("store_fill_ratio", "Used slot bytes over page bytes.", st.fill);
    }
    GAUGE("resident_memory_bytes", "Resident memory of the slotd process.", server_rss_bytes());
    GAUGE("ready", "1 when ready to ingest (replay done, not stopping).", srv->ready ? 1 : 0);
    GAUGE("replay_in_progress", "1 while the journal is being replayed.", srv->replaying ? 1 : 0);
    GAUGE_D("replay_seconds", "Duration of the journal replay (so far, while it runs).",
            replay_seconds(srv));
    checkpoint_stats cs;
    checkpoint_get_stats(srv, &cs);
    COUNTER("checkpoints_total", "Checkpoints completed (snapshot durable, covered segments "
            "removed) since start.", cs.total);
    COUNTER("checkpoint_failures_total", "Checkpoints that failed since start (retried).",
            cs.failures);
    GAUGE("checkpoint_in_progress", "1 while a checkpoint is being taken.", cs.in_progress ? 1 : 0);
    GAUGE_D("checkpoint_seconds", "Duration of the last completed checkpoint.", cs.last_seconds);
    GAUGE("checkpoint_bytes", "Size of the last snapshot written.", cs.last_bytes);
    GAUGE("checkpoint_segment", "Journal segment the newest snapshot covers (0 = none).",
          cs.segment);
    GAUGE_D("snapshot_load_seconds", "Time start-up took to load the snapshot.", cs.load_seconds);
    COUNTER("journal_segments_removed_total", "Journal segments removed behind checkpoints.",
            cs.segments_removed);
    retention_stats rs;
    retention_get_stats(srv, &rs);
    COUNTER("retention_dropped_trades_total", "Trades dropped by --retention since start.",
            rs.dropped_trades);
    GAUGE_D("uptime_seconds", "Seconds since slotd started.", now_s(srv));
    if (srv->cfg.source == SERVER_SOURCE_KAFKA && kafka_stats_prom(srv, out) != 0)
        p.err = 1;
    prom_head(&p, "build_info", "gauge", "Build information; the value is always 1.");
    if (proto_buf_printf(out, "slotd_build_info{version=\"%s\"} 1\n", SLOTD_VERSION) < 0)
        p.err = 1;

    prom_hist(&p, "ack_latency_seconds", "Time from a batch's arrival to its ACK being queued.",
              m->ack_buckets, m->ack_sum, m->ack_count);
    if (srv->cfg.gateway) {
        const uint64_t *buckets;
        double sum;
        uint64_t count, failed_parts, failed_batches;
        gateway_produce_stats(srv, &buckets, &sum, &count, &failed_parts, &failed_batches);
        prom_hist(&p, "gateway_produce_seconds",
                  "--gateway: time from a batch's first part produced to the last part's "
                  "delivery report (acks=all), successes and failures.", buckets, sum, count);
        COUNTER("gateway_produce_errors_total",
                "--gateway: parts Kafka did not acknowledge (or refused to enqueue).", failed_parts);
        COUNTER("gateway_batches_failed_total",
                "--gateway: batches answered ERR JOURNAL because a part failed.", failed_batches);
    }
    return p.err ? -1 : 0;
}
