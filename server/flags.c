/* flags — parsing, --config, usage and defaults, all from SLOTD_FLAGS
 * (flags.h). One setter per type; the table says where a value lands. */
#include "flags.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "journal.h"
#include "kafka.h"
#include "log.h"
#include "token.h"

#define ROW(name, type, arg, def, min, max, opts, at, help) \
    {name, type, arg, def, (uint64_t)(min), (uint64_t)(max), opts, at, help},
const flag_def flags_table[] = {SLOTD_FLAGS(ROW)};
#undef ROW
const size_t flags_count = sizeof flags_table / sizeof flags_table[0];

/* An enum lands as the index of its word: the words are in enum order. */
_Static_assert(JOURNAL_FSYNC_ALWAYS == 0 && JOURNAL_FSYNC_INTERVAL == 1 && JOURNAL_FSYNC_NEVER == 2,
               "--fsync words are in journal_fsync order");
_Static_assert(SERVER_SOURCE_TCP == 0 && SERVER_SOURCE_KAFKA == 1, "--source words in order");
_Static_assert(LOG_ERROR == 0 && LOG_WARN == 1 && LOG_INFO == 2 && LOG_DEBUG == 3,
               "--log-level words are in log level order");

#define SHOWN 80 /* bytes of a bad value quoted back */

typedef struct ctx {
    server_config *cfg;
    char *msg;
    size_t cap;
    int depth;      /* --config nesting */
    uint64_t given; /* bit i: flags_table[i] came from the command line or a file */
} ctx;
_Static_assert(sizeof flags_table / sizeof flags_table[0] <= 64, "one 'given' bit per flag");

__attribute__((format(printf, 3, 4))) static int say(ctx *c, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (c->cap)
        vsnprintf(c->msg, c->cap, fmt, ap);
    va_end(ap);
    return rc;
}

/* "--NAME: 'VALUE' is not WHAT" */
static int not_a(ctx *c, const flag_def *f, const char *v, const char *what)
{
    return say(c, FLAGS_EVALUE, "--%s: '%.*s%s' is not %s", f->name, SHOWN, v,
               strlen(v) > SHOWN ? "..." : "", what);
}

/* ---- values ------------------------------------------------------------- */

static int parse_digits(const char *s, uint64_t *out, const char **end)
{
    unsigned __int128 v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++)
        if ((v = v * 10 + (unsigned)(*p - '0')) > UINT64_MAX)
            return -1;
    *end = p;
    *out = (uint64_t)v;
    return p == s ? -1 : 0;
}

/* SIZE: digits, then K, M, G or T (either case; "Ki", "KB", "KiB" too). */
static int parse_size(const char *s, uint64_t *out)
{
    const char *p;
    uint64_t v;
    int shift = 0;
    if (parse_digits(s, &v, &p) < 0)
        return -1;
    if (*p) {
        const char *sfx = strchr("kKmMgGtT", *p);
        if (!sfx)
            return -1;
        shift = 10 * (int)(1 + (sfx - "kKmMgGtT") / 2);
        p++;
        if (*p == 'i' || *p == 'B' || *p == 'b')
            p += (*p == 'i' && p[1] == 'B') ? 2 : 1;
    }
    if (*p || (shift && v > (UINT64_MAX >> shift)))
        return -1;
    *out = v << shift;
    return 0;
}

/* A bound as the flag's users write it: "7d", "16M", "10000000". */
static void show(const flag_def *f, uint64_t v, char *buf, size_t cap)
{
    if (f->type == FLAG_DUR_NS || f->type == FLAG_DUR_MS) {
        duration_format((int64_t)v, buf, cap);
        return;
    }
    static const char sfx[] = "KMGT";
    int i = -1;
    while (f->type == FLAG_SIZE && v && i < 3 && v % ((uint64_t)1 << (10 * (i + 2))) == 0)
        i++;
    if (i >= 0)
        snprintf(buf, cap, "%llu%c", (unsigned long long)(v >> (10 * (i + 1))), sfx[i]);
    else
        snprintf(buf, cap, "%llu", (unsigned long long)v);
}

static uint64_t type_max(const flag_def *f)
{
    return f->type == FLAG_U32 ? UINT32_MAX : f->type == FLAG_U64 || f->type == FLAG_SIZE ? UINT64_MAX
                                                                                        : INT64_MAX;
}

static int out_of_range(ctx *c, const flag_def *f, const char *v)
{
    char lo[32], hi[32];
    show(f, f->min, lo, sizeof lo);
    show(f, f->max, hi, sizeof hi);
    const char *zero = f->opts & FLAG_ZERO_OK ? "0 or " : "";
    if (f->max >= type_max(f))
        return say(c, FLAGS_ERANGE, "--%s: '%.*s' is out of range (%sat least %s)", f->name, SHOWN,
                   v, zero, lo);
    return say(c, FLAGS_ERANGE, "--%s: '%.*s' is out of range (%s%s to %s)", f->name, SHOWN, v,
               zero, lo, hi);
}

/* A number of the flag's type, in its range: u32, u64, size, duration (ns). */
static int parse_number(ctx *c, const flag_def *f, const char *v, uint64_t *out)
{
    const char *end;
    int64_t ns;
    switch (f->type) {
    case FLAG_SIZE:
        if (parse_size(v, out) < 0)
            return not_a(c, f, v, "a size (e.g. 4096, 512K, 16M, 4G)");
        break;
    case FLAG_DUR_NS:
    case FLAG_DUR_MS: {
        int rc = duration_parse(v, strlen(v), &ns);
        if (rc == DURATION_ERANGE)
            return out_of_range(c, f, v);
        if (rc != DURATION_OK)
            return not_a(c, f, v, "a duration (" DURATION_EXAMPLES ")");
        *out = (uint64_t)ns;
        break;
    }
    default:
        if (parse_digits(v, out, &end) < 0 || *end)
            return not_a(c, f, v, "a whole number");
        if (*out > type_max(f))
            return out_of_range(c, f, v);
    }
    if ((*out < f->min || *out > f->max) && !(*out == 0 && (f->opts & FLAG_ZERO_OK)))
        return out_of_range(c, f, v);
    return FLAGS_OK;
}

static void land_uint(server_config *cfg, const flag_def *f, uint64_t v)
{
    char *at = (char *)cfg + f->off;
    if (f->size == sizeof(uint32_t)) {
        assert(v <= UINT32_MAX);
        uint32_t v32 = (uint32_t)v;
        memcpy(at, &v32, sizeof v32);
    } else {
        assert(f->size == sizeof(uint64_t));
        memcpy(at, &v, sizeof v);
    }
}

/* The index of v among the '|'-separated words of f->arg, or -1. */
static int enum_index(const flag_def *f, const char *v)
{
    size_t vl = strlen(v);
    int i = 0;
    for (const char *w = f->arg; *w; i++) {
        size_t wl = strcspn(w, "|");
        if (wl == vl && vl && memcmp(w, v, vl) == 0)
            return i;
        w += wl + (w[wl] == '|');
    }
    return -1;
}

static int parse_bool(const char *v)
{
    static const char *const yes[] = {"", "true", "yes", "on", "1"},
                             *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (!strcmp(v, yes[i]))
            return 1;
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (!strcmp(v, no[i]))
            return 0;
    return -1;
}

/* HOST:PORT, [V6]:PORT; the host must fit host[cap]. */
static int parse_hostport(const char *s, char *host, size_t cap, int *port)
{
    const char *colon = strrchr(s, ':'), *end;
    uint64_t p;
    if (!colon || colon == s || (size_t)(colon - s) >= cap || parse_digits(colon + 1, &p, &end) < 0 ||
        *end || p > 65535)
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

static int set_string(ctx *c, const char **slot, const char *v)
{
    char *copy = strdup(v);
    if (!copy)
        return say(c, FLAGS_ENOMEM, "out of memory");
    free((char *)*slot);
    *slot = copy;
    return FLAGS_OK;
}

static int append_string(ctx *c, const char **slot, const char *v)
{
    size_t had = *slot ? strlen(*slot) : 0, n = strlen(v);
    if (strchr(v, '\n'))
        return say(c, FLAGS_EVALUE, "'%.*s' holds a line break", SHOWN, v);
    char *s = realloc((char *)*slot, had + n + 2);
    if (!s)
        return say(c, FLAGS_ENOMEM, "out of memory");
    memcpy(s + had, v, n);
    memcpy(s + had + n, "\n", 2);
    *slot = s;
    return FLAGS_OK;
}

/* --token and --token-file: one loader, one rule (token.h). The value is
 * a secret: never quoted back. */
static int set_token(ctx *c, const flag_def *f, const char *v)
{
    char *tok;
    int rc = token_load(v, f->type == FLAG_TOKEN_FILE, &tok);
    if (rc != TOKEN_OK)
        return say(c, rc == TOKEN_ENOMEM ? FLAGS_ENOMEM : FLAGS_EVALUE, "--%s: %s%s%s", f->name,
                   server_strerror(rc), rc == TOKEN_EFILE ? ": " : "",
                   rc == TOKEN_EFILE ? strerror(errno) : "");
    char **slot = (char **)((char *)c->cfg + f->off); /* --token's, or the gateway's for nodes */
    free(*slot);
    *slot = tok;
    return FLAGS_OK;
}

static int load_config(ctx *c, const char *path);

/* ---- one flag ----------------------------------------------------------- */

static int apply(ctx *c, const flag_def *f, const char *v)
{
    server_config *cfg = c->cfg;
    uint64_t n;
    int rc, i;
    switch (f->type) {
    case FLAG_BOOL:
        if ((i = parse_bool(v ? v : "")) < 0)
            return not_a(c, f, v, "a boolean (true or false)");
        memcpy((char *)cfg + f->off, &i, sizeof i);
        return FLAGS_OK;
    case FLAG_U32:
    case FLAG_U64:
    case FLAG_SIZE:
    case FLAG_DUR_NS:
        if ((rc = parse_number(c, f, v, &n)) != FLAGS_OK)
            return rc;
        land_uint(cfg, f, n);
        return FLAGS_OK;
    case FLAG_DUR_MS:
        if ((rc = parse_number(c, f, v, &n)) != FLAGS_OK)
            return rc;
        land_uint(cfg, f, n / (uint64_t)FLAG_NS_MS);
        return FLAGS_OK;
    case FLAG_STRING: return set_string(c, (const char **)((char *)cfg + f->off), v);
    case FLAG_APPEND: return append_string(c, (const char **)((char *)cfg + f->off), v);
    case FLAG_ENUM:
        if ((i = enum_index(f, v)) < 0)
            return say(c, FLAGS_EVALUE, "--%s: '%.*s' is not one of %s", f->name, SHOWN, v, f->arg);
        memcpy((char *)cfg + f->off, &i, sizeof i);
        return FLAGS_OK;
    case FLAG_LISTEN:
        if (parse_hostport(v, cfg->listen_host, sizeof cfg->listen_host, &cfg->listen_port) < 0)
            return not_a(c, f, v, "HOST:PORT (e.g. 127.0.0.1:7400, [::1]:7400)");
        return FLAGS_OK;
    case FLAG_HTTP:
        if (strcmp(v, "off") == 0) {
            cfg->http_port = -1;
            return FLAGS_OK;
        }
        if (parse_hostport(v, cfg->http_host, sizeof cfg->http_host, &cfg->http_port) < 0)
            return not_a(c, f, v, "HOST:PORT or off (e.g. 127.0.0.1:7401, [::1]:7401)");
        return FLAGS_OK;
    case FLAG_TLS_PORT: { /* a host of its own: e.g. loopback plain, external TLS */
        char *host = f->off == offsetof(server_config, tls_port) ? cfg->tls_host : cfg->tls_http_host;
        host[0] = '\0';
        if (strcmp(v, "off") == 0) {
            i = -1;
        } else if (strchr(v, ':')) {
            if (parse_hostport(v, host, sizeof cfg->tls_host, &i) < 0)
                return not_a(c, f, v, "PORT, HOST:PORT or off (e.g. 7443, 0.0.0.0:7443)");
        } else {
            const char *end;
            if (parse_digits(v, &n, &end) < 0 || *end || n > 65535)
                return not_a(c, f, v, "PORT, HOST:PORT or off (e.g. 7443, 0.0.0.0:7443)");
            i = (int)n;
        }
        memcpy((char *)cfg + f->off, &i, sizeof i);
        return FLAGS_OK;
    }
    case FLAG_DATA_DIR:
        if (!*v)
            return not_a(c, f, v, "a directory");
        if ((rc = set_string(c, &cfg->data_dir, v)) != FLAGS_OK)
            return rc;
        cfg->journal.dir = cfg->data_dir;
        return FLAGS_OK;
    case FLAG_TOKEN:
    case FLAG_TOKEN_FILE: return set_token(c, f, v);
    case FLAG_CONFIG: return load_config(c, v);
    case FLAG_HELP: return FLAGS_HELP;
    case FLAG_VERSION: return FLAGS_VERSION;
    }
    assert(!"flag type without a setter");
    return FLAGS_EVALUE;
}

static const flag_def *lookup(const char *name, size_t len)
{
    for (size_t i = 0; i < flags_count; i++)
        if (strlen(flags_table[i].name) == len && memcmp(flags_table[i].name, name, len) == 0)
            return &flags_table[i];
    return NULL;
}

/* The flag `name` (len bytes) with value v (NULL: none given). */
static int set_named(ctx *c, const char *name, size_t len, const char *v)
{
    const flag_def *f = lookup(name, len);
    if (!f)
        return say(c, FLAGS_EUNKNOWN, "unknown flag '--%.*s' (see slotd --help)",
                   (int)(len > SHOWN ? SHOWN : len), name);
    if (f->arg && !v)
        return say(c, FLAGS_EVALUE, "--%s needs a value", f->name);
    int rc = apply(c, f, v);
    if (rc == FLAGS_OK)
        c->given |= (uint64_t)1 << (f - flags_table);
    return rc;
}

/* ---- --config ----------------------------------------------------------- */

/* One line: blank, a '#' comment, or "[--]flag[ =]value" (a bool alone). */
static int config_line(ctx *c, char *line)
{
    char *p = line, *hash = strchr(line, '#');
    if (hash)
        *hash = '\0';
    while (*p == ' ' || *p == '\t')
        p++;
    char *end = p + strlen(p);
    while (end > p && strchr("\r\n \t", end[-1]))
        *--end = '\0';
    if (!*p)
        return FLAGS_OK;
    if (p[0] == '-' && p[1] == '-')
        p += 2;
    size_t nlen = strcspn(p, " \t=");
    char *val = p + nlen;
    while (*val == ' ' || *val == '\t' || *val == '=')
        val++;
    const flag_def *f = lookup(p, nlen);
    if (f && (f->type == FLAG_HELP || f->type == FLAG_VERSION))
        return say(c, FLAGS_EUNKNOWN, "--%s belongs on the command line, not in a file", f->name);
    return set_named(c, p, nlen, *val || (f && !f->arg) ? val : NULL);
}

static int load_config(ctx *c, const char *path)
{
    char line[1024];
    int lineno = 0, rc = FLAGS_OK;
    if (c->depth >= FLAGS_CONFIG_DEPTH)
        return say(c, FLAGS_ECONFIG, "--config: '%.*s' nests more than %d files deep (a file "
                   "including itself?)", SHOWN, path, FLAGS_CONFIG_DEPTH);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return say(c, FLAGS_ECONFIG, "--config: cannot read '%.*s': %s", SHOWN, path, strerror(errno));
    c->depth++;
    while (rc == FLAGS_OK && fgets(line, sizeof line, fp)) {
        lineno++;
        if ((rc = config_line(c, line)) != FLAGS_OK && c->cap) {
            /* prefix file:line; the inner message may already name a nested file */
            char inner[FLAGS_MSG_MAX];
            snprintf(inner, sizeof inner, "%s", c->msg);
            snprintf(c->msg, c->cap, "%.*s:%d: %s", SHOWN, path, lineno, inner);
        }
    }
    c->depth--;
    fclose(fp);
    return rc;
}

/* ---- public --------------------------------------------------------------- */

void flags_defaults(server_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    proto_limits_default(&cfg->limits); /* what no flag sets */
    ctx c = {.cfg = cfg};
    for (size_t i = 0; i < flags_count; i++)
        if (flags_table[i].def) {
            int rc = apply(&c, &flags_table[i], flags_table[i].def);
            assert(rc == FLAGS_OK && "every default parses");
            (void)rc;
        }
}

/* TLS flags come together: a TLS port needs a certificate and its key, and
 * a certificate without a TLS port (or a client CA without a certificate)
 * would be a TLS setup silently not used. */
static int validate_tls(ctx *c)
{
    const server_config *cfg = c->cfg;
    int ports = cfg->tls_port >= 0 || cfg->tls_http_port >= 0;
    if (ports && (!cfg->tls_cert || !cfg->tls_key))
        return say(c, FLAGS_ECONFLICT, "--tls-port/--tls-http-port need --tls-cert and --tls-key");
    if (cfg->tls_client_names && !cfg->tls_client_ca)
        return say(c, FLAGS_ECONFLICT, "--tls-client-names needs --tls-client-ca");
    if (!ports && (cfg->tls_cert || cfg->tls_key || cfg->tls_client_ca))
        return say(c, FLAGS_ECONFLICT, "--tls-cert, --tls-key and --tls-client-ca need "
                   "--tls-port or --tls-http-port");
    if (cfg->tls_port >= 0 && cfg->tls_port == cfg->listen_port && cfg->tls_port != 0 &&
        (!cfg->tls_host[0] || strcmp(cfg->tls_host, cfg->listen_host) == 0))
        return say(c, FLAGS_ECONFLICT, "--tls-port %d is --listen's port too", cfg->tls_port);
    if (cfg->tls_http_port >= 0 && cfg->tls_http_port == cfg->http_port && cfg->tls_http_port != 0)
        return say(c, FLAGS_ECONFLICT, "--tls-http-port %d is --http's port too",
                   cfg->tls_http_port);
    return FLAGS_OK;
}

/* Checks across flags, or against limits of other modules, once all are in. */
static int validate(ctx *c)
{
    const uint64_t tok = (uint64_t)1 << (lookup("token", 5) - flags_table),
                   tokf = (uint64_t)1 << (lookup("token-file", 10) - flags_table);
    if ((c->given & tok) && (c->given & tokf))
        return say(c, FLAGS_ECONFLICT, "--token and --token-file both given: use one");
    if (c->cfg->token && c->cfg->auth_file)
        return say(c, FLAGS_ECONFLICT, "--auth-file and --token/--token-file both given: use one "
                   "(a shared token can be one line of the auth file)");
    if (c->cfg->limits.max_msg > JOURNAL_MAX_MSG) /* an accepted message must fit one record */
        return say(c, FLAGS_ERANGE, "--max-message: %zu bytes is more than the journal can hold "
                   "in one record: at most %zu (%zuM)", c->cfg->limits.max_msg, JOURNAL_MAX_MSG,
                   JOURNAL_MAX_MSG >> 20);
    if (kafka_config_check(c->cfg, c->msg, c->cap) != 0)
        return FLAGS_ECONFLICT;
    return validate_tls(c);
}

int flags_set(server_config *cfg, const char *name, const char *value, char *msg, size_t cap)
{
    ctx c = {.cfg = cfg, .msg = msg, .cap = cap};
    return set_named(&c, name, strlen(name), value);
}

int flags_parse(server_config *cfg, int argc, char **argv, char *msg, size_t cap)
{
    ctx c = {.cfg = cfg, .msg = msg, .cap = cap};
    int rc = FLAGS_OK;
    for (int i = 1; i < argc && rc == FLAGS_OK; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0)
            return FLAGS_HELP;
        if (a[0] != '-' || a[1] != '-' || !a[2])
            return say(&c, FLAGS_EUNKNOWN, "unexpected argument '%.*s'", SHOWN, a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const flag_def *f = lookup(name, len);
        const char *v = eq ? eq + 1 : f && f->arg && i + 1 < argc ? argv[++i] : NULL;
        rc = set_named(&c, name, len, v);
    }
    return rc == FLAGS_OK ? validate(&c) : rc;
}

/* "  --name ARG" padded to the help column, help lines, "[default]". */
static void usage_flag(FILE *fp, const flag_def *f)
{
    enum { COL = 29 };
    int w = fprintf(fp, "  --%s%s%s", f->name, f->arg ? " " : "", f->arg ? f->arg : "");
    const char *h = f->help;
    if (w >= COL || !*h) {
        fputc('\n', fp);
        w = 0;
    }
    do {
        size_t n = strcspn(h, "\n");
        fprintf(fp, "%*s%.*s", COL - w, "", (int)n, h);
        h += n;
        if (*h == '\n')
            h++, fputc('\n', fp), w = 0;
    } while (*h);
    if (f->def)
        fprintf(fp, " [%s]", f->def);
    fputc('\n', fp);
}

void flags_usage(FILE *fp)
{
    fputs("usage: slotd [flags]\n"
          "Trade ingestion: msgpack batches over TCP into fixed-slot records; HTTP for operators.\n"
          "\n", fp);
    for (size_t i = 0; i < flags_count; i++)
        usage_flag(fp, &flags_table[i]);
    fputs("--flag=value works too. SIZE: bytes, or with K, M, G, T (powers of 1024), e.g. 16M.\n"
          "DURATION: a number with ns, us, ms, s, m, h or d; fractions are fine (1.5s); a bare\n"
          "number is seconds. E.g. 90s, 500ms, 12h, 7d. A bad value exits with status 2.\n", fp);
}

void flags_free(server_config *cfg)
{
    free((char *)cfg->data_dir);
    free((char *)cfg->port_file);
    free((char *)cfg->token);
    free((char *)cfg->kafka_brokers);
    free((char *)cfg->kafka_topic);
    free((char *)cfg->kafka_partitions);
    free((char *)cfg->kafka_node);
    free((char *)cfg->kafka_conf);
    free((char *)cfg->gateway_seq_topic);
    free((char *)cfg->gateway_nodes);
    free((char *)cfg->gateway_nodes_file);
    free((char *)cfg->gateway_node_token);
    cfg->gateway_seq_topic = cfg->gateway_nodes = cfg->gateway_nodes_file = NULL;
    cfg->gateway_node_token = NULL;
    free((char *)cfg->tls_cert);
    free((char *)cfg->tls_key);
    free((char *)cfg->tls_client_ca);
    free((char *)cfg->auth_file);
    cfg->auth_file = NULL;
    cfg->tls_cert = cfg->tls_key = cfg->tls_client_ca = NULL;
    cfg->data_dir = cfg->port_file = cfg->token = NULL;
    cfg->kafka_brokers = cfg->kafka_topic = cfg->kafka_partitions = cfg->kafka_node = NULL;
    cfg->kafka_conf = NULL;
    cfg->journal.dir = NULL;
}
