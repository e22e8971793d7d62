/* slotload_args — command-line flags, with the W1 defaults. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "secret.h"
#include "slotload.h"

static void sl_usage(FILE *f)
{
    fprintf(f,
        "usage: slotload [flags]\n"
        "Streams the deterministic W1 trade workload to slotd and reports throughput,\n"
        "ack latency and the server's memory per million trades.\n"
        "\n"
        "  --host HOST              slotd address                        [127.0.0.1]\n"
        "  --port N                 msgpack/TCP port                     [7400]\n"
        "  --http-port N            HTTP port for /stats, 0 = skip       [7401]\n"
        "  --workload w1|w1-10k     1,000 or 10,000 symbols, Zipf 1.1    [w1]\n"
        "  --symbols N              override the workload's symbols\n"
        "  --zipf S                 override the Zipf exponent\n"
        "  --seed N                 workload seed                        [1]\n"
        "  --trades N               send N trades (K, M suffixes)        [1M]\n"
        "  --duration DURATION      send for this long instead (90s, 500ms, 5m)\n"
        "  --connections N          TCP connections                      [4]\n"
        "  --inflight N             batches in flight per connection     [16]\n"
        "  --batch N                trades per batch                     [1000]\n"
        "  --rate TRADES_PER_S      open loop at this rate; latency from the scheduled\n"
        "                           send time (no coordinated omission); 0 = closed loop [0]\n"
        "  --form map|array         trade wire form                      [map]\n"
        "  --px text|float          px as decimal text or as float64     [text]\n"
        "  --client-prefix NAME     client names are NAME-pid-nonce-i    [slotload]\n"
        "  --client NAME            fixed client names instead: NAME with one connection,\n"
        "                           NAME-0 .. NAME-(N-1) with N (e.g. the names of an\n"
        "                           --auth-file; seqs go on after each name's last_seq)\n"
        "  --token-file FILE        slotd's --token, read from FILE's first line (a\n"
        "                           secret on the command line shows in ps)\n"
        "  --tls                    --port speaks TLS (slotd --tls-port)\n"
        "  --tls-ca FILE            CA that signed slotd's certificate  [the system's]\n"
        "  --tls-cert FILE          client certificate (mutual TLS)\n"
        "  --tls-key FILE           its key                              [in --tls-cert]\n"
        "  --tls-server-name NAME   name slotd's certificate must carry  [--host]\n"
        "  --pool N                 most trades pre-encoded for --duration;\n"
        "                           the pool is cycled if the run needs more [10M]\n"
        "  --stall-timeout DURATION give up when nothing is answered; 0 = never [30s]\n"
        "  --json                   final report as JSON on stdout\n"
        "  --csv FILE               per-second series: second,trades_per_s,acked,errors,p50_us,p99_us\n"
        "  --no-progress            no per-second progress\n"
        "  --export FORMAT:FILE     write the workload to FILE and exit (for the peer\n"
        "                           benchmarks): msgpack = the batch bodies slotload sends,\n"
        "                           resp = Redis XADD commands for redis-cli --pipe\n"
        "  --kafka BROKERS          produce the trades to Kafka instead (Kafka-fed nodes,\n"
        "                           docs/cluster.md): key = symbol, murmur2 partitioner\n"
        "  --kafka-topic TOPIC      the topic                            [trades]\n"
        "  --kafka-record trade|batch  a trade per record, or a T message of up to\n"
        "                           --batch trades of one symbol         [trade]\n"
        "  --help\n"
        "DURATION: a number with ns, us, ms, s, m, h or d, fractions allowed (1.5s); a bare\n"
        "number is seconds (slotd's grammar, core/duration.h).\n"
        "Exit status: 0 all batches acknowledged, 1 any batch failed, 2 usage or set-up error.\n");
}

static int sl_parse_count(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -1;
    if (*end == 'k' || *end == 'K')
        v *= 1e3, end++;
    else if (*end == 'm' || *end == 'M')
        v *= 1e6, end++;
    else if (*end == 'g' || *end == 'G')
        v *= 1e9, end++;
    if (*end || v > 1e15)
        return -1;
    *out = (uint64_t)llround(v);
    return 0;
}

static int sl_parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return errno || end == s || *end || !(*out >= 0) || isinf(*out) ? -1 : 0;
}

/* The one duration grammar (core/duration.h), as seconds; > 0 unless zero_ok. */
static int sl_parse_duration(const char *s, double *out, int zero_ok)
{
    int64_t ns;
    if (duration_parse(s, strlen(s), &ns) != DURATION_OK || (ns == 0 && !zero_ok))
        return -1;
    *out = (double)ns / DURATION_NS_PER_SEC;
    return 0;
}

enum {
    O_HOST = 1000, O_PORT, O_HTTP_PORT, O_WORKLOAD, O_SYMBOLS, O_ZIPF, O_SEED, O_TRADES,
    O_DURATION, O_CONNS, O_INFLIGHT, O_BATCH, O_RATE, O_FORM, O_PX, O_PREFIX, O_CLIENT, O_POOL, O_STALL,
    O_JSON, O_CSV, O_NO_PROGRESS, O_EXPORT, O_KAFKA, O_KAFKA_TOPIC, O_KAFKA_RECORD, O_HELP,
    O_TOKEN_FILE, O_TLS, O_TLS_CA, O_TLS_CERT, O_TLS_KEY, O_TLS_NAME,
};

static const struct option sl_options[] = {
    {"host", required_argument, 0, O_HOST},
    {"port", required_argument, 0, O_PORT},
    {"http-port", required_argument, 0, O_HTTP_PORT},
    {"workload", required_argument, 0, O_WORKLOAD},
    {"symbols", required_argument, 0, O_SYMBOLS},
    {"zipf", required_argument, 0, O_ZIPF},
    {"seed", required_argument, 0, O_SEED},
    {"trades", required_argument, 0, O_TRADES},
    {"duration", required_argument, 0, O_DURATION},
    {"connections", required_argument, 0, O_CONNS},
    {"inflight", required_argument, 0, O_INFLIGHT},
    {"batch", required_argument, 0, O_BATCH},
    {"rate", required_argument, 0, O_RATE},
    {"form", required_argument, 0, O_FORM},
    {"px", required_argument, 0, O_PX},
    {"client-prefix", required_argument, 0, O_PREFIX},
    {"client", required_argument, 0, O_CLIENT},
    {"pool", required_argument, 0, O_POOL},
    {"stall-timeout", required_argument, 0, O_STALL},
    {"json", no_argument, 0, O_JSON},
    {"csv", required_argument, 0, O_CSV},
    {"no-progress", no_argument, 0, O_NO_PROGRESS},
    {"export", required_argument, 0, O_EXPORT},
    {"kafka", required_argument, 0, O_KAFKA},
    {"kafka-topic", required_argument, 0, O_KAFKA_TOPIC},
    {"kafka-record", required_argument, 0, O_KAFKA_RECORD},
    {"help", no_argument, 0, O_HELP},
    {"token-file", required_argument, 0, O_TOKEN_FILE},
    {"tls", no_argument, 0, O_TLS},
    {"tls-ca", required_argument, 0, O_TLS_CA},
    {"tls-cert", required_argument, 0, O_TLS_CERT},
    {"tls-key", required_argument, 0, O_TLS_KEY},
    {"tls-server-name", required_argument, 0, O_TLS_NAME},
    {0, 0, 0, 0},
};

/* One flag; -1 when its value is invalid. */
static int sl_apply(sl_config *c, int opt, const char *a, uint64_t *symbols, double *zipf)
{
    uint64_t v = 0;
    switch (opt) {
    case O_HOST: c->host = a; return 0;
    case O_PORT: return sl_parse_count(a, &v) || v == 0 || v > 65535 ? -1 : (c->port = (int)v, 0);
    case O_HTTP_PORT: return sl_parse_count(a, &v) || v > 65535 ? -1 : (c->http_port = (int)v, 0);
    case O_WORKLOAD:
        if (strcmp(a, "w1") == 0 || strcmp(a, "W1") == 0)
            c->workload = "w1", c->symbols = 1000;
        else if (strcmp(a, "w1-10k") == 0 || strcmp(a, "W1-10k") == 0)
            c->workload = "w1-10k", c->symbols = 10000;
        else
            return -1;
        return 0;
    case O_SYMBOLS: return sl_parse_count(a, symbols) || *symbols == 0 || *symbols > 10000000 ? -1 : 0;
    case O_ZIPF: return sl_parse_double(a, zipf);
    case O_SEED: return sl_parse_count(a, &c->seed);
    case O_TRADES: return sl_parse_count(a, &c->trades) || c->trades == 0 ? -1 : (c->duration = 0, 0);
    case O_DURATION:
        return sl_parse_duration(a, &c->duration, 0) ? -1 : (c->trades = 0, 0);
    case O_CONNS: return sl_parse_count(a, &v) || v == 0 || v > 10000 ? -1 : (c->connections = (uint32_t)v, 0);
    case O_INFLIGHT: return sl_parse_count(a, &v) || v == 0 || v > 100000 ? -1 : (c->inflight = (uint32_t)v, 0);
    case O_BATCH: return sl_parse_count(a, &v) || v == 0 || v > 10000000 ? -1 : (c->batch = (uint32_t)v, 0);
    case O_RATE: return sl_parse_double(a, &c->rate);
    case O_FORM:
        if (strcmp(a, "map") && strcmp(a, "array"))
            return -1;
        c->form_array = strcmp(a, "array") == 0;
        return 0;
    case O_PX:
        if (strcmp(a, "text") && strcmp(a, "float"))
            return -1;
        c->px_float = strcmp(a, "float") == 0;
        return 0;
    case O_PREFIX: c->client_prefix = a; return *a ? 0 : -1;
    case O_CLIENT: c->client_name = a; return *a && strlen(a) <= 40 ? 0 : -1;
    case O_POOL: return sl_parse_count(a, &c->pool) || c->pool == 0 ? -1 : 0;
    case O_STALL: return sl_parse_duration(a, &c->stall_timeout, 1);
    case O_JSON: c->json = 1; return 0;
    case O_CSV: c->csv = a; return 0;
    case O_NO_PROGRESS: c->progress = 0; return 0;
    case O_EXPORT: /* FORMAT:FILE */
        if (strncmp(a, "msgpack:", 8) == 0)
            c->export_format = "msgpack", c->export_path = a + 8;
        else if (strncmp(a, "resp:", 5) == 0)
            c->export_format = "resp", c->export_path = a + 5;
        else
            return -1;
        return *c->export_path ? 0 : -1;
    case O_KAFKA: c->kafka_brokers = a; return *a ? 0 : -1;
    case O_KAFKA_TOPIC: c->kafka_topic = a; return *a ? 0 : -1;
    case O_KAFKA_RECORD:
        if (strcmp(a, "trade") && strcmp(a, "batch"))
            return -1;
        c->kafka_batch = strcmp(a, "batch") == 0;
        return 0;
    case O_TOKEN_FILE: {
        char err[512];
        if (secret_read(a, c->token, sizeof c->token, err, sizeof err) != 0) {
            fprintf(stderr, "slotload: --token-file %s\n", err);
            return -1;
        }
        return 0;
    }
    case O_TLS: c->tls = 1; return 0;
    case O_TLS_CA: c->tls_ca = a; return 0;
    case O_TLS_CERT: c->tls_cert = a; return 0;
    case O_TLS_KEY: c->tls_key = a; return 0;
    case O_TLS_NAME: c->tls_server_name = a; return 0;
    }
    return -1;
}

int sl_parse_args(int argc, char **argv, sl_config *c)
{
    *c = (sl_config){.host = "127.0.0.1", .port = 7400, .http_port = 7401, .workload = "w1",
                     .symbols = 1000, .zipf = 1.1, .seed = 1, .trades = 1000000, .connections = 4,
                     .inflight = 16, .batch = 1000, .client_prefix = "slotload", .progress = 1,
                     .pool = 10000000, .stall_timeout = 30,
                     .kafka_topic = "trades"};
    uint64_t symbols = 0;
    double zipf = -1;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", sl_options, NULL)) != -1) {
        if (opt == 'h' || opt == O_HELP) {
            sl_usage(stdout);
            exit(0);
        }
        if (opt == '?' || sl_apply(c, opt, optarg, &symbols, &zipf) != 0) {
            if (opt == O_DURATION || opt == O_STALL) /* what is accepted, not the usage */
                fprintf(stderr, "slotload: --%s: '%s' is not a duration (%s)\n",
                        sl_options[opt - O_HOST].name, optarg, DURATION_EXAMPLES);
            else if (opt != '?')
                fprintf(stderr, "slotload: bad value for --%s: '%s'\n", sl_options[opt - O_HOST].name,
                        optarg ? optarg : "");
            if (opt == '?' || (opt != O_DURATION && opt != O_STALL))
                fprintf(stderr, "slotload: see slotload --help\n");
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "slotload: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if ((c->tls_ca || c->tls_cert || c->tls_key || c->tls_server_name) && !c->tls) {
        fprintf(stderr, "slotload: --tls-ca/--tls-cert/--tls-key/--tls-server-name need --tls\n");
        return -1;
    }
    if (symbols)
        c->symbols = (uint32_t)symbols, c->workload = "custom";
    if (zipf >= 0)
        c->zipf = zipf, c->workload = zipf == 1.1 ? c->workload : "custom";
    return 0;
}

/* How many trades to pre-encode: all of them, or a pool cycled for --duration. */
uint64_t sl_pool_trades(const sl_config *c)
{
    if (c->trades)
        return c->trades;
    double want = c->rate > 0 ? c->rate * c->duration + c->batch : (double)c->pool;
    uint64_t n = want < (double)c->pool ? (uint64_t)want : c->pool;
    return n < c->batch ? c->batch : n;
}

