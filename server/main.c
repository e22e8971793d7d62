/* slotd — flags, start-up (store, HTTP, TCP, journal replay), signals and
 * graceful shutdown. The work itself lives in ingest.c, http.c, journal.c. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "checkpoint.h"
#include "http.h"
#include "ingest.h"
#include "journal.h"
#include "log.h"
#include "replay.h"
#include "retention.h"
#include "server.h"
#include "token.h"

/* ---- flags ------------------------------------------------------------- */

enum {
    OPT_LISTEN = 1000, OPT_HTTP, OPT_DATA_DIR, OPT_FSYNC, OPT_FSYNC_MS, OPT_SEGMENT, OPT_SALVAGE,
    OPT_NO_JOURNAL, OPT_TOKEN, OPT_TOKEN_FILE, OPT_MAX_MSG, OPT_MAX_BATCH, OPT_MAX_DEPTH,
    OPT_MAX_CONN, OPT_IDLE, OPT_MAX_MEM, OPT_MAX_SYM, OPT_IGNORE_UNKNOWN, OPT_PORT_FILE,
    OPT_LOG_LEVEL, OPT_CKPT_BYTES, OPT_CKPT_INTERVAL, OPT_CKPT_EXIT, OPT_RETENTION, OPT_CONFIG,
    OPT_MAX_CLIENTS, OPT_CLIENT_TTL, OPT_HELLO_TIMEOUT, OPT_MAX_HANDSHAKES, OPT_MAX_BUFFERED,
    OPT_MAX_FUTURE, OPT_HELP, OPT_VERSION,
};

static const struct option options[] = {
    {"listen", required_argument, 0, OPT_LISTEN},
    {"http", required_argument, 0, OPT_HTTP},
    {"data-dir", required_argument, 0, OPT_DATA_DIR},
    {"fsync", required_argument, 0, OPT_FSYNC},
    {"fsync-interval-ms", required_argument, 0, OPT_FSYNC_MS},
    {"journal-segment", required_argument, 0, OPT_SEGMENT},
    {"salvage", no_argument, 0, OPT_SALVAGE},
    {"no-journal", no_argument, 0, OPT_NO_JOURNAL},
    {"token", required_argument, 0, OPT_TOKEN},
    {"token-file", required_argument, 0, OPT_TOKEN_FILE},
    {"max-message", required_argument, 0, OPT_MAX_MSG},
    {"max-batch", required_argument, 0, OPT_MAX_BATCH},
    {"max-depth", required_argument, 0, OPT_MAX_DEPTH},
    {"max-connections", required_argument, 0, OPT_MAX_CONN},
    {"idle-timeout", required_argument, 0, OPT_IDLE},
    {"max-memory", required_argument, 0, OPT_MAX_MEM},
    {"max-symbols", required_argument, 0, OPT_MAX_SYM},
    {"ignore-unknown-fields", no_argument, 0, OPT_IGNORE_UNKNOWN},
    {"port-file", required_argument, 0, OPT_PORT_FILE},
    {"log-level", required_argument, 0, OPT_LOG_LEVEL},
    {"checkpoint-bytes", required_argument, 0, OPT_CKPT_BYTES},
    {"checkpoint-interval", required_argument, 0, OPT_CKPT_INTERVAL},
    {"checkpoint-on-exit", no_argument, 0, OPT_CKPT_EXIT},
    {"retention", required_argument, 0, OPT_RETENTION},
    {"config", required_argument, 0, OPT_CONFIG},
    {"max-clients", required_argument, 0, OPT_MAX_CLIENTS},
    {"client-ttl", required_argument, 0, OPT_CLIENT_TTL},
    {"hello-timeout", required_argument, 0, OPT_HELLO_TIMEOUT},
    {"max-handshakes", required_argument, 0, OPT_MAX_HANDSHAKES},
    {"max-buffered", required_argument, 0, OPT_MAX_BUFFERED},
    {"max-future", required_argument, 0, OPT_MAX_FUTURE},
    {"help", no_argument, 0, OPT_HELP},
    {"version", no_argument, 0, OPT_VERSION},
    {0, 0, 0, 0},
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: slotd [flags]\n"
        "Trade ingestion: msgpack batches over TCP into fixed-slot records; HTTP for operators.\n"
        "\n"
        "  --listen HOST:PORT         msgpack/TCP ingest address          [127.0.0.1:7400]\n"
        "  --http HOST:PORT|off       HTTP operator endpoints             [127.0.0.1:7401]\n"
        "                             (any address but loopback must be given explicitly)\n"
        "  --data-dir DIR             journal directory                   [./data]\n"
        "  --fsync always|interval|never\n"
        "                             when an ACK is sent (see README)     [interval]\n"
        "  --fsync-interval-ms N      fsync period for 'interval'         [10]\n"
        "  --journal-segment SIZE     rotate journal files at this size   [256M]\n"
        "  --salvage                  replay past mid-journal corruption and missing\n"
        "                             segments or snapshot (what they held is lost)\n"
        "  --checkpoint-bytes SIZE    snapshot the store after this much journal, then\n"
        "                             remove the segments it covers; 0 = not by size [1G]\n"
        "  --checkpoint-interval DURATION\n"
        "                             ... or this long after the last one; 0 = never [0]\n"
        "  --checkpoint-on-exit       take a last snapshot at graceful shutdown\n"
        "  --retention DURATION       drop trades older than the newest stored trade's ts\n"
        "                             minus DURATION (whole pages); 0 = keep all  [0]\n"
        "  --max-future DURATION      refuse trades stamped more than DURATION ahead of the\n"
        "                             wall clock (BAD_VALUE); 0 = no bound        [5m]\n"
        "  --no-journal               keep nothing on disk (benchmarks only: ACK = in memory)\n"
        "  --token TOKEN              TCP HELLO and HTTP (Authorization: Bearer) must carry\n"
        "                             this token: 1-256 bytes of visible ASCII  [none]\n"
        "  --token-file FILE          read the token from FILE (keeps it out of ps); one\n"
        "                             trailing newline is not part of it\n"
        "  --max-message SIZE         largest message; at most 64M, the journal's\n"
        "                             largest record                      [16M]\n"
        "  --max-batch N              most trades in one batch            [100000]\n"
        "  --max-depth N              deepest msgpack nesting             [16]\n"
        "  --max-connections N        most TCP connections past HELLO     [1024]\n"
        "  --max-handshakes N         most TCP connections still before HELLO; a new one\n"
        "                             past it closes the oldest            [1024]\n"
        "  --hello-timeout DURATION   close a connection without HELLO by then [10s]\n"
        "  --max-buffered SIZE        read-buffer bytes across all connections [1G]\n"
        "  --max-clients N            most client names remembered (see PROTOCOL.md 5) [65536]\n"
        "  --client-ttl DURATION      a name unused this long may be forgotten when the\n"
        "                             table is full                         [7d]\n"
        "  --idle-timeout SECONDS     close connections silent this long, or whose message\n"
        "                             is not complete this long after its first byte;\n"
        "                             0 = never                           [300]\n"
        "  --max-memory SIZE          cap on the store (slots + index)    [4G]\n"
        "  --max-symbols N            most distinct symbols               [1000000]\n"
        "  --ignore-unknown-fields    skip undeclared trade keys instead of rejecting the batch\n"
        "  --port-file FILE           write \"TCP_PORT HTTP_PORT\\n\" once listening (tests)\n"
        "  --log-level error|warn|info|debug                             [info]\n"
        "  --config FILE              read flags from FILE: one 'flag value' per line, '#' comments\n"
        "  --help, --version\n"
        "SIZE accepts K, M, G suffixes (powers of 1024). DURATION: a number with s, m, h\n"
        "or d (seconds without a suffix), e.g. 90s, 12h, 7d.\n");
}

static int parse_u64(const char *s, uint64_t *out, int sizes)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-')
        return -1;
    int shift = 0;
    if (sizes && *end) {
        switch (*end) {
        case 'k': case 'K': shift = 10; break;
        case 'm': case 'M': shift = 20; break;
        case 'g': case 'G': shift = 30; break;
        case 't': case 'T': shift = 40; break;
        default: return -1;
        }
        end++;
        if (*end == 'i' || *end == 'B' || *end == 'b')
            end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
    }
    if (*end || (shift && v > (UINT64_MAX >> shift)))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

/* "7d", "12h", "30m", "90s", "45" (seconds) -> ns. */
static int parse_duration_ns(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    uint64_t unit = 1;
    if (errno || end == s || *s == '-')
        return -1;
    switch (*end) {
    case 'd': unit = 86400; end++; break;
    case 'h': unit = 3600; end++; break;
    case 'm': unit = 60; end++; break;
    case 's': end++; break;
    case '\0': break;
    default: return -1;
    }
    if (*end || v > (uint64_t)INT64_MAX / 1000000000u / unit)
        return -1;
    *out = (int64_t)(v * unit * 1000000000u);
    return 0;
}

static int parse_hostport(const char *s, char *host, size_t hcap, int *port)
{
    const char *colon = strrchr(s, ':');
    uint64_t p;
    if (!colon || colon == s || (size_t)(colon - s) >= hcap || parse_u64(colon + 1, &p, 0) || p > 65535)
        return -1;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') { /* [::1]:7400 */
        h++;
        hl -= 2;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

/* --token and --token-file: one loader, one rule (token.h). */
static int apply_token(server_config *cfg, const char *arg, int is_file)
{
    char *tok;
    int rc = token_load(arg, is_file, &tok);
    if (rc != TOKEN_OK) {
        fprintf(stderr, "slotd: --token%s: %s%s%s\n", is_file ? "-file" : "", token_strerror(rc),
                rc == TOKEN_EFILE ? ": " : "", rc == TOKEN_EFILE ? strerror(errno) : "");
        return -1;
    }
    free((char *)cfg->token);
    cfg->token = tok;
    return 0;
}

static int load_config(server_config *cfg, const char *path, int depth);

/* Apply one flag; shared by the command line and --config files. */
static int apply_flag(server_config *cfg, int opt, const char *arg, int depth)
{
    uint64_t v;
    switch (opt) {
    case OPT_LISTEN:
        return parse_hostport(arg, cfg->listen_host, sizeof cfg->listen_host, &cfg->listen_port);
    case OPT_HTTP:
        if (strcmp(arg, "off") == 0) {
            cfg->http_port = -1;
            return 0;
        }
        return parse_hostport(arg, cfg->http_host, sizeof cfg->http_host, &cfg->http_port);
    case OPT_DATA_DIR: cfg->data_dir = strdup(arg); cfg->journal.dir = cfg->data_dir; return 0;
    case OPT_FSYNC:
        if (strcmp(arg, "always") == 0) cfg->journal.fsync = JOURNAL_FSYNC_ALWAYS;
        else if (strcmp(arg, "interval") == 0) cfg->journal.fsync = JOURNAL_FSYNC_INTERVAL;
        else if (strcmp(arg, "never") == 0) cfg->journal.fsync = JOURNAL_FSYNC_NEVER;
        else return -1;
        return 0;
    case OPT_FSYNC_MS:
        if (parse_u64(arg, &v, 0) || v == 0 || v > 60000) return -1;
        cfg->journal.interval_ms = (uint32_t)v;
        return 0;
    case OPT_SEGMENT:
        if (parse_u64(arg, &v, 1) || v < (1u << 20)) return -1;
        cfg->journal.segment_bytes = v;
        return 0;
    case OPT_SALVAGE: cfg->journal.salvage = 1; return 0;
    case OPT_NO_JOURNAL: cfg->journal_off = 1; return 0;
    case OPT_TOKEN: return apply_token(cfg, arg, 0);
    case OPT_TOKEN_FILE: return apply_token(cfg, arg, 1);
    case OPT_MAX_MSG:
        if (parse_u64(arg, &v, 1) || v < 1024) return -1;
        if (v > JOURNAL_MAX_MSG) { /* an accepted message must fit one journal record */
            fprintf(stderr, "slotd: --max-message %s (%llu bytes) is more than the journal can "
                    "hold in one record: at most %zu (%zuM)\n", arg, (unsigned long long)v,
                    JOURNAL_MAX_MSG, JOURNAL_MAX_MSG >> 20);
            return -1;
        }
        cfg->limits.max_msg = v;
        return 0;
    case OPT_MAX_BATCH:
        if (parse_u64(arg, &v, 0) || v == 0 || v > 10000000) return -1;
        cfg->limits.max_batch = (uint32_t)v;
        return 0;
    case OPT_MAX_DEPTH:
        if (parse_u64(arg, &v, 0) || v < 4 || v > 32) return -1;
        cfg->limits.max_depth = (uint32_t)v;
        return 0;
    case OPT_MAX_CONN:
        if (parse_u64(arg, &v, 0) || v == 0 || v > 1000000) return -1;
        cfg->max_connections = (uint32_t)v;
        return 0;
    case OPT_IDLE:
        if (parse_u64(arg, &v, 0) || v > 86400 * 7) return -1;
        cfg->idle_timeout_ms = (uint32_t)(v * 1000);
        return 0;
    case OPT_MAX_MEM:
        if (parse_u64(arg, &v, 1) || v < (16u << 20)) return -1;
        cfg->max_memory = v;
        return 0;
    case OPT_MAX_SYM:
        if (parse_u64(arg, &v, 0) || v == 0 || v > 100000000) return -1;
        cfg->max_symbols = (uint32_t)v;
        return 0;
    case OPT_IGNORE_UNKNOWN: cfg->limits.ignore_unknown = 1; return 0;
    case OPT_PORT_FILE: cfg->port_file = strdup(arg); return 0;
    case OPT_LOG_LEVEL: return (cfg->log_level = log_level_parse(arg)) < 0 ? -1 : 0;
    case OPT_CKPT_BYTES:
        if (parse_u64(arg, &v, 1) || (v && v < (64u << 10))) return -1;
        cfg->checkpoint_bytes = v;
        return 0;
    case OPT_CKPT_INTERVAL: {
        int64_t ns;
        if (parse_duration_ns(arg, &ns)) return -1;
        cfg->checkpoint_interval_ms = (uint64_t)ns / 1000000u;
        return 0;
    }
    case OPT_CKPT_EXIT: cfg->checkpoint_on_exit = 1; return 0;
    case OPT_RETENTION: return parse_duration_ns(arg, &cfg->retention_ns);
    case OPT_MAX_FUTURE: return parse_duration_ns(arg, &cfg->limits.max_future_ns);
    case OPT_MAX_CLIENTS:
        if (parse_u64(arg, &v, 0) || v == 0 || v > (1u << 24)) return -1;
        cfg->max_clients = (uint32_t)v;
        return 0;
    case OPT_CLIENT_TTL: {
        int64_t ns;
        if (parse_duration_ns(arg, &ns)) return -1;
        cfg->client_ttl_ns = (uint64_t)ns;
        return 0;
    }
    case OPT_HELLO_TIMEOUT: {
        int64_t ns;
        if (parse_duration_ns(arg, &ns) || ns < 1000000000 || ns > 3600 * 1000000000ll) return -1;
        cfg->hello_timeout_ms = (uint32_t)(ns / 1000000);
        return 0;
    }
    case OPT_MAX_HANDSHAKES:
        if (parse_u64(arg, &v, 0) || v == 0 || v > 1000000) return -1;
        cfg->max_handshakes = (uint32_t)v;
        return 0;
    case OPT_MAX_BUFFERED:
        if (parse_u64(arg, &v, 1) || v < (1u << 20)) return -1;
        cfg->max_buffered = v;
        return 0;
    case OPT_CONFIG: return load_config(cfg, arg, depth + 1);
    }
    return -1;
}

static int load_config(server_config *cfg, const char *path, int depth)
{
    FILE *f = depth > 4 ? NULL : fopen(path, "r");
    char line[1024];
    int lineno = 0, rc = 0;
    if (!f) {
        fprintf(stderr, "slotd: cannot read config %s: %s\n", path, strerror(errno));
        return -1;
    }
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line, *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        char *end = p + strlen(p);
        while (end > p && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (!*p)
            continue;
        if (p[0] == '-' && p[1] == '-')
            p += 2;
        char *val = p + strcspn(p, " \t=");
        if (*val)
            *val++ = '\0';
        while (*val == ' ' || *val == '\t' || *val == '=')
            val++;
        const struct option *o = options;
        while (o->name && strcmp(o->name, p) != 0)
            o++;
        if (!o->name || o->val == OPT_HELP || o->val == OPT_VERSION ||
            (o->has_arg == required_argument && !*val) ||
            apply_flag(cfg, o->val, val, depth) != 0) {
            fprintf(stderr, "slotd: %s:%d: bad setting '%s'\n", path, lineno, p);
            rc = -1;
        }
    }
    fclose(f);
    return rc;
}

static void config_default(server_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    strcpy(cfg->listen_host, "127.0.0.1");
    cfg->listen_port = 7400;
    strcpy(cfg->http_host, "127.0.0.1");
    cfg->http_port = 7401;
    cfg->data_dir = "./data";
    proto_limits_default(&cfg->limits);
    /* Clocks of producers that sync at all are seconds apart; a ts minutes
     * ahead is a wrong clock, a local time sent as UTC (hours) or a unit or
     * typo error (years), and under --retention it would age everything
     * else: refused (and retention's "now" bounded by it). */
    cfg->limits.max_future_ns = 5ll * 60 * 1000000000;
    cfg->max_connections = 1024;
    cfg->idle_timeout_ms = 300 * 1000;
    cfg->max_handshakes = 1024;
    cfg->hello_timeout_ms = 10 * 1000;
    cfg->max_buffered = (uint64_t)1 << 30;
    cfg->max_clients = CLIENTS_DEFAULT_MAX;
    cfg->client_ttl_ns = 7ull * 86400 * 1000000000;
    cfg->max_memory = (size_t)4 << 30;
    cfg->max_symbols = 1000000;
    cfg->journal.dir = cfg->data_dir;
    cfg->journal.fsync = JOURNAL_FSYNC_INTERVAL;
    cfg->journal.interval_ms = 10;
    cfg->journal.segment_bytes = (uint64_t)256 << 20;
    cfg->checkpoint_bytes = (uint64_t)1 << 30;
    cfg->log_level = LOG_INFO;
}

static int parse_args(server_config *cfg, int argc, char **argv)
{
    int opt;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (opt == OPT_HELP || opt == 'h') {
            usage(stdout);
            exit(0);
        }
        if (opt == OPT_VERSION) {
            printf("slotd %s\n", SLOTD_VERSION);
            exit(0);
        }
        if (opt == '?' || apply_flag(cfg, opt, optarg, 0) != 0) {
            if (opt != '?')
                fprintf(stderr, "slotd: bad value for --%s: '%s'\n", options[opt - OPT_LISTEN].name,
                        optarg ? optarg : "");
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "slotd: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

/* ---- start-up and shutdown ---------------------------------------------- */

static server g_srv;
static uv_signal_t sig_int, sig_term;
static uv_work_t replay_req;
static replay_result replay_res;
static int exit_code;

/* The newest valid snapshot, then the journal segments after it. */
static void replay_work(uv_work_t *req) { replay_run(req->data, &replay_res); }

static void shutdown_begin(server *srv, int code);

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
            log_error("replay_failed err=%s detail=\"%s\" hint=\"%s\"", replay_strerror(replay_rc),
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
    fprintf(f, "%d %d\n", srv->tcp_port, srv->http_port);
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, srv->cfg.port_file);
}

int main(int argc, char **argv)
{
    server *srv = &g_srv;
    int rc;
    config_default(&srv->cfg);
    if (parse_args(&srv->cfg, argc, argv) != 0)
        return 2;
    log_level = srv->cfg.log_level;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* a file-size limit must fail a write, not kill us */
    raise_fd_limit(&srv->cfg);

    srv->loop = uv_default_loop();
    metrics_init(&srv->metrics, uv_hrtime());
    srv->rss_baseline = server_rss_bytes();
    store_config sc = {.max_memory = srv->cfg.max_memory, .max_symbols = srv->cfg.max_symbols};
    if ((rc = store_open(&srv->store, &sc)) != 0) {
        log_error("store_open_failed err=%s max_memory=%zu", store_strerror(rc), srv->cfg.max_memory);
        return 1;
    }
    if ((rc = ingest_init(srv)) != 0)
        goto fail;
    if (srv->cfg.http_port >= 0 && (rc = http_start(srv)) != 0) {
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
    log_info("listening tcp=%s:%d http=%s:%d data_dir=%s fsync=%s max_memory=%zu version=%s",
             srv->cfg.listen_host, srv->tcp_port, srv->cfg.http_host, srv->http_port,
             srv->cfg.journal_off ? "(none)" : srv->cfg.data_dir,
             srv->cfg.journal.fsync == JOURNAL_FSYNC_ALWAYS     ? "always"
             : srv->cfg.journal.fsync == JOURNAL_FSYNC_INTERVAL ? "interval"
                                                                 : "never",
             srv->cfg.max_memory, SLOTD_VERSION);
    if (srv->cfg.port_file && write_port_file(srv) != 0) {
        log_error("port_file_failed path=%s err=%s", srv->cfg.port_file, strerror(errno));
        rc = -1;
        goto fail;
    }
    if (srv->cfg.journal_off) {
        if ((rc = retention_start(srv)) != 0) /* no checkpoints without a journal */
            goto fail;
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
    checkpoint_free(srv);
    retention_free(srv);
    ingest_free(srv);
    clients_free(&srv->clients);
    store_close(srv->store);
    return exit_code;
fail:
    checkpoint_free(srv);
    retention_free(srv);
    ingest_free(srv);
    clients_free(&srv->clients);
    store_close(srv->store);
    return 1;
}
