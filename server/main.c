/* slotd — start-up (store, HTTP, TCP, journal replay), signals and graceful
 * shutdown; flags are flags.c's. The work itself lives in ingest.c, http.c,
 * journal.c. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "auth.h"
#include "checkpoint.h"
#include "flags.h"
#include "http.h"
#include "ingest.h"
#include "gateway.h"
#include "journal.h"
#include "kafka.h"
#include "log.h"
#include "prefault.h"
#include "replay.h"
#include "retention.h"
#include "subscribe.h"
#include "server.h"
#include "tls.h"

/* ---- start-up and shutdown ---------------------------------------------- */

static server g_srv;
static uv_signal_t sig_int, sig_term, sig_hup;
static uv_work_t replay_req;
static replay_result replay_res;
static int exit_code;

/* The newest valid snapshot, then the journal segments after it. */
static void replay_work(uv_work_t *req) { replay_run(req->data, &replay_res); }

static void shutdown_begin(server *srv, int code);
static void kafka_failed(server *srv) { shutdown_begin(srv, 1); }

/* The store is final (replay may have replaced it): its new pages are
 * faulted in off the loop from now on. Only saves time, so a failure is a
 * warning. */
static void server_prefault_start(server *srv)
{
    int rc = prefault_start(&srv->prefault, srv->store);
    if (rc != 0)
        log_warn("prefault_start_failed err=%s", server_strerror(rc));
}

static void replay_done(uv_work_t *req, int status)
{
    server *srv = req->data;
    srv->replaying = 0;
    srv->replay_ns = uv_hrtime() - srv->replay_ns;
    /* status != 0: the work was cancelled, i.e. never ran. */
    int replay_rc = replay_res.rc ? replay_res.rc : status ? REPLAY_ECANCELED : REPLAY_OK;
    journal_replay_stats replay_stats = replay_res.st;
    if (replay_rc != REPLAY_OK) {
        /* snapshot_missing: checkpoint_load logged start_refused already. */
        if (!srv->stopping && replay_rc != REPLAY_ESNAPSHOT)
            log_error("replay_failed err=%s detail=\"%s\" hint=\"%s\"", server_err_name(replay_rc),
                      replay_res.detail, replay_hint(replay_rc));
        shutdown_begin(srv, srv->stopping ? 0 : 1);
        return;
    }
    if (replay_stats.truncated_bytes || replay_stats.skipped_records ||
        replay_stats.missing_segments)
        log_warn("replay_repaired truncated_bytes=%llu skipped_records=%llu missing_segments=%llu "
                 "detail=\"%s\"", (unsigned long long)replay_stats.truncated_bytes,
                 (unsigned long long)replay_stats.skipped_records,
                 (unsigned long long)replay_stats.missing_segments, replay_stats.detail);
    int rc = journal_open(&srv->journal, srv->loop, &srv->cfg.journal, NULL, NULL, NULL);
    if (rc != 0) {
        log_error("journal_open_failed dir=%s err=%s", srv->cfg.journal.dir, strerror(-rc));
        shutdown_begin(srv, 1);
        return;
    }
    if ((rc = checkpoint_start(srv, replay_stats.bytes)) != 0) {
        log_error("checkpoint_start_failed err=%s", uv_strerror(rc));
        shutdown_begin(srv, 1);
        return;
    }
    if ((rc = retention_start(srv)) != 0) {
        log_error("retention_start_failed err=%s", uv_strerror(rc));
        shutdown_begin(srv, 1);
        return;
    }
    /* Kafka-fed: consume from the offsets the snapshot (and so the client
     * table) holds; queries are served meanwhile, /readyz waits for the
     * partitions to catch up. */
    if (srv->cfg.source == SERVER_SOURCE_KAFKA && !srv->stopping &&
        (rc = kafka_start(srv, kafka_failed)) != 0) {
        log_error("kafka_start_failed err=%s", server_strerror(rc));
        shutdown_begin(srv, 1);
        return;
    }
    server_prefault_start(srv);
    srv->ready = !srv->stopping;
    store_stats st;
    store_get_stats(srv->store, &st);
    log_info("ready records=%llu trades=%llu symbols=%llu replay_ms=%.1f",
             (unsigned long long)srv->replay_records, (unsigned long long)st.trades,
             (unsigned long long)st.symbols, (double)srv->replay_ns / 1e6);
    if (srv->stopping)
        shutdown_begin(srv, 0);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void checkpoint_stopped(server *srv)
{
    if (srv->journal) {
        journal_close(srv->journal); /* writes, syncs and acknowledges what is left */
        srv->journal = NULL;
    }
    http_stop(srv);
    uv_walk(srv->loop, close_walk, NULL);
    log_info("stopped exit=%d", exit_code);
}

/* Connections are done: let a checkpoint in flight (and a last one, if
 * asked for) finish before the journal closes. */
static void ingest_stopped(server *srv)
{
    retention_stop(srv);
    kafka_stop(srv); /* nothing more applied: a last checkpoint holds it all */
    gateway_stop(srv); /* no batch in flight: the last seq records go out */
    gateway_query_stop(srv);
    checkpoint_stop(srv, checkpoint_stopped);
}

static int shutdown_started;

/* Stop taking work, let in-flight batches finish, flush, exit. A replay in
 * progress is finished first (replay_done comes back here). */
static void shutdown_begin(server *srv, int code)
{
    if (code > exit_code)
        exit_code = code;
    srv->stopping = 1;
    srv->ready = 0;
    if (srv->replaying || shutdown_started)
        return;
    shutdown_started = 1;
    ingest_stop(srv, ingest_stopped);
}

static void on_signal(uv_signal_t *h, int signum)
{
    server *srv = h->data;
    log_info("signal name=%s action=graceful_stop", signum == SIGINT ? "SIGINT" : "SIGTERM");
    if (shutdown_started) {
        log_warn("signal_again action=exit_now");
        exit(exit_code ? exit_code : 1);
    }
    shutdown_begin(srv, 0);
}

/* --tls-cert/--tls-key (and --tls-client-ca) into srv->tls, replacing the
 * context new TLS connections get; connections already open keep theirs. */
static int tls_load(server *srv)
{
    tls_ctx *ctx;
    char msg[512];
    int rc = tls_ctx_server(&ctx, srv->cfg.tls_cert, srv->cfg.tls_key, srv->cfg.tls_client_ca, msg,
                            sizeof msg);
    if (rc != TLS_OK) {
        log_error("tls_load_failed err=\"%s\" detail=\"%s\"", tls_strerror(rc), msg);
        return rc;
    }
    tls_ctx_free(srv->tls);
    srv->tls = ctx;
    return 0;
}

/* --auth-file into srv->auth, replacing the table in use. */
static int auth_file_load(server *srv)
{
    auth *a;
    char msg[512];
    int rc = auth_load(&a, srv->cfg.auth_file, msg, sizeof msg);
    if (rc != AUTH_OK) {
        log_error("auth_load_failed err=\"%s\" detail=\"%s\"", auth_strerror(rc), msg);
        return rc;
    }
    auth_free(srv->auth);
    srv->auth = a;
    log_info("auth_loaded file=%s clients=%zu", srv->cfg.auth_file, auth_count(a));
    return 0;
}

/* SIGHUP: re-read the certificate and key (a renewed certificate) and the
 * auth file. A file that does not load leaves the one in use in place. */
static void on_hup(uv_signal_t *h, int signum)
{
    server *srv = h->data;
    (void)signum;
    if (!srv->tls && !srv->auth) {
        log_info("signal name=SIGHUP action=none");
        return;
    }
    if (srv->tls && tls_load(srv) == 0)
        log_info("signal name=SIGHUP action=tls_reloaded cert=%s", srv->cfg.tls_cert);
    else if (srv->tls)
        log_warn("signal name=SIGHUP action=tls_reload_failed: the previous certificate stays");
    if (srv->auth && auth_file_load(srv) != 0)
        log_warn("signal name=SIGHUP action=auth_reload_failed: the previous table stays");
}

/* Every connection is a file descriptor. Lift the soft RLIMIT_NOFILE (often
 * 1024) toward the hard one so --max-connections is reachable, and warn when
 * it is not: past the fd limit libuv accepts and closes connections unanswered. */
static void raise_fd_limit(const server_config *cfg)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)cfg->max_connections + 320; /* + 256 HTTP, listeners, journal */
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
    if (rl.rlim_cur > old && setrlimit(RLIMIT_NOFILE, &rl) != 0)
        rl.rlim_cur = old;
    if (rl.rlim_cur < want)
        log_warn("fd_limit nofile=%llu max_connections=%u: the fd limit comes first; connections "
                 "past it are closed unanswered; raise ulimit -n (LimitNOFILE) or lower "
                 "--max-connections", (unsigned long long)rl.rlim_cur, cfg->max_connections);
    else
        log_info("fd_limit_raised nofile=%llu->%llu", (unsigned long long)old,
                 (unsigned long long)rl.rlim_cur);
}

static int write_port_file(const server *srv)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", srv->cfg.port_file);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    if (srv->tls)
        fprintf(f, "%d %d %d %d\n", srv->tcp_port, srv->http_port, srv->tls_port, srv->tls_http_port);
    else
        fprintf(f, "%d %d\n", srv->tcp_port, srv->http_port);
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, srv->cfg.port_file);
}

int main(int argc, char **argv)
{
    server *srv = &g_srv;
    int rc;
    char msg[FLAGS_MSG_MAX];
    flags_defaults(&srv->cfg); /* the flag table's defaults (flags.h) */
    switch ((rc = flags_parse(&srv->cfg, argc, argv, msg, sizeof msg))) {
    case FLAGS_OK: break;
    case FLAGS_HELP: flags_usage(stdout); return 0;
    case FLAGS_VERSION: printf("slotd %s\n", SLOTD_VERSION); return 0;
    default: fprintf(stderr, "slotd: %s\n", msg); return 2; /* one line, not the usage */
    }
    log_level = srv->cfg.log_level;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* a file-size limit must fail a write, not kill us */
    raise_fd_limit(&srv->cfg);

    srv->loop = uv_default_loop();
    metrics_init(&srv->metrics, uv_hrtime());
    srv->rss_baseline = server_rss_bytes();
    if ((rc = store_open(&srv->store, &srv->cfg.store)) != 0) {
        log_error("store_open_failed err=%s max_memory=%zu", server_strerror(rc),
                  srv->cfg.store.max_memory);
        return 1;
    }
    srv->tls_port = srv->tls_http_port = -1;
    if ((srv->cfg.tls_port >= 0 || srv->cfg.tls_http_port >= 0) && (rc = tls_load(srv)) != 0)
        goto fail;
    if (srv->cfg.auth_file && (rc = auth_file_load(srv)) != 0)
        goto fail;
    if ((rc = ingest_init(srv)) != 0 || (rc = sub_init(srv)) != 0)
        goto fail;
    if ((srv->cfg.http_port >= 0 || srv->cfg.tls_http_port >= 0) && (rc = http_start(srv)) != 0) {
        log_error("http_listen_failed addr=%s:%d err=%s", srv->cfg.http_host, srv->cfg.http_port,
                  uv_strerror(rc));
        goto fail;
    }
    if ((rc = ingest_start(srv)) != 0) {
        log_error("listen_failed addr=%s:%d err=%s", srv->cfg.listen_host, srv->cfg.listen_port,
                  uv_strerror(rc));
        goto fail;
    }
    uv_signal_init(srv->loop, &sig_int);
    uv_signal_init(srv->loop, &sig_term);
    sig_int.data = sig_term.data = srv;
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_init(srv->loop, &sig_hup);
    sig_hup.data = srv;
    uv_signal_start(&sig_hup, on_hup, SIGHUP);
    log_info("listening tcp=%s:%d http=%s:%d data_dir=%s fsync=%s max_memory=%zu version=%s",
             srv->cfg.listen_host, srv->tcp_port, srv->cfg.http_host, srv->http_port,
             srv->cfg.journal_off ? "(none)" : srv->cfg.data_dir,
             srv->cfg.journal.fsync == JOURNAL_FSYNC_ALWAYS     ? "always"
             : srv->cfg.journal.fsync == JOURNAL_FSYNC_INTERVAL ? "interval"
                                                                 : "never",
             srv->cfg.store.max_memory, SLOTD_VERSION);
    if (srv->tls)
        log_info("listening_tls tcp=%s:%d https=%s:%d mutual=%s",
                 srv->cfg.tls_host[0] ? srv->cfg.tls_host : srv->cfg.listen_host, srv->tls_port,
                 srv->cfg.tls_http_host[0] ? srv->cfg.tls_http_host : srv->cfg.http_host,
                 srv->tls_http_port,
                 srv->cfg.tls_client_ca ? "yes" : "no");
    if (srv->cfg.port_file && write_port_file(srv) != 0) {
        log_error("port_file_failed path=%s err=%s", srv->cfg.port_file, strerror(errno));
        rc = -1;
        goto fail;
    }
    if (srv->cfg.gateway) {
        /* No local disk: ready once the seq topic is read (gateway.h). */
        /* The node list first: a bad one is refused before any Kafka work
         * (gateway_start's metadata look-up runs on a worker thread). */
        if ((rc = gateway_query_start(srv)) != 0 || (rc = gateway_start(srv, kafka_failed)) != 0) {
            log_error("gateway_start_failed err=%s", server_strerror(rc));
            goto fail;
        }
    } else if (srv->cfg.journal_off) {
        if ((rc = retention_start(srv)) != 0) /* no checkpoints without a journal */
            goto fail;
        server_prefault_start(srv);
        srv->ready = 1;
        log_warn("journal_off: acknowledged trades live only in memory");
    } else {
        /* Replay on a worker thread so /healthz and /readyz answer meanwhile;
         * nothing on the loop touches the store until replay_done. */
        srv->replaying = 1;
        srv->replay_ns = uv_hrtime();
        replay_req.data = srv;
        uv_queue_work(srv->loop, &replay_req, replay_work, replay_done);
    }
    uv_run(srv->loop, UV_RUN_DEFAULT);
    uv_loop_close(srv->loop);
    kafka_free(srv);
    gateway_free(srv);
    gateway_query_free(srv);
    prefault_stop(srv->prefault, srv->store);
    checkpoint_free(srv);
    retention_free(srv);
    ingest_free(srv);
    sub_free(srv);
    clients_free(&srv->clients);
    store_close(srv->store);
    tls_ctx_free(srv->tls);
    auth_free(srv->auth);
    return exit_code;
fail:
    kafka_free(srv);
    gateway_free(srv);
    gateway_query_free(srv);
    prefault_stop(srv->prefault, srv->store);
    checkpoint_free(srv);
    retention_free(srv);
    ingest_free(srv);
    sub_free(srv);
    clients_free(&srv->clients);
    store_close(srv->store);
    tls_ctx_free(srv->tls);
    auth_free(srv->auth);
    return 1;
}
