/* slotload_report — the server's /stats over a plain socket, and everything
 * slotload prints: the final table, --json, --csv and the progress line.
 *
 * /stats is fetched only before and after the timed phase, with a blocking
 * socket: one request each, so an HTTP library would be dead weight. */
#define _GNU_SOURCE /* strcasestr */
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>

#include "slotload.h"

/* ---- GET /stats ---------------------------------------------------------- */

static int sl_http_connect(const char *host, int port)
{
    struct addrinfo hints = {0}, *ai, *p;
    char ps[16];
    int fd = -1;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(ps, sizeof ps, "%d", port);
    if (getaddrinfo(host, ps, &hints, &ai) != 0)
        return -1;
    for (p = ai; p && fd < 0; p = p->ai_next) {
        fd = socket(p->ai_family, p->ai_socktype, p->ai_protocol);
        if (fd < 0)
            continue;
        struct timeval tv = {10, 0}; /* a wedged server must not hang the report */
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, p->ai_addr, p->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    return fd;
}

/* Undo Transfer-Encoding: chunked in place; returns the body length. */
static size_t sl_unchunk(char *body, size_t len)
{
    size_t in = 0, out = 0;
    while (in < len) {
        char *end;
        unsigned long n = strtoul(body + in, &end, 16);
        char *crlf = strstr(end, "\r\n");
        if (!crlf || n == 0)
            break;
        in = (size_t)(crlf - body) + 2;
        if (in + n > len)
            n = len - in;
        memmove(body + out, body + in, n);
        out += n;
        in += n + 2;
    }
    return out;
}

/* GET path with Connection: close; the body (NUL-terminated, malloc'd) or NULL. */
static char *sl_http_get(const char *host, int port, const char *path, size_t *blen)
{
    int fd = sl_http_connect(host, port);
    if (fd < 0)
        return NULL;
    char req[256];
    int rl = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n",
                      path, host, port);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf || write(fd, req, (size_t)rl) != rl) {
        free(buf);
        close(fd);
        return NULL;
    }
    for (;;) {
        if (len == cap) {
            char *nb = cap < (64u << 20) ? realloc(buf, cap * 2 + 1) : NULL;
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    char *hdr_end = strstr(buf, "\r\n\r\n");
    if (!hdr_end || strncmp(buf, "HTTP/1.", 7) != 0 || strncmp(buf + 9, "200", 3) != 0) {
        free(buf);
        return NULL;
    }
    *hdr_end = '\0';
    char *body = hdr_end + 4;
    size_t bl = len - (size_t)(body - buf);
    if (strcasestr(buf, "transfer-encoding: chunked"))
        bl = sl_unchunk(body, bl);
    memmove(buf, body, bl);
    buf[bl] = '\0';
    *blen = bl;
    return buf;
}

/* A number under `key` in `o` or, failing that, anywhere below it (depth
 * first): the /stats layout may nest process figures. */
static json_t *sl_find(json_t *o, const char *key, int depth)
{
    json_t *v = json_object_get(o, key);
    if (v && json_is_number(v))
        return v;
    if (depth <= 0)
        return NULL;
    const char *k;
    json_t *child;
    json_object_foreach(o, k, child) {
        if (json_is_object(child) && (v = sl_find(child, key, depth - 1)))
            return v;
    }
    return NULL;
}

static uint64_t sl_num(json_t *o, const char *key, int depth)
{
    json_t *v = o ? sl_find(o, key, depth) : NULL;
    return v ? (uint64_t)json_number_value(v) : 0;
}

int sl_fetch_stats(const char *host, int port, sl_stats *out)
{
    memset(out, 0, sizeof *out);
    out->mem_per_million = -1;
    size_t len;
    char *body = sl_http_get(host, port, "/stats", &len);
    if (!body)
        return -1;
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    free(body);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return -1;
    }
    json_t *store = json_object_get(root, "store");
    out->rss = sl_num(root, "resident_memory_bytes", 2);
    json_t *mpm = sl_find(root, "memory_per_million_trades", 2);
    if (mpm)
        out->mem_per_million = json_number_value(mpm);
    out->trades = store && json_object_get(store, "trades") ? sl_num(store, "trades", 0)
                                                            : sl_num(root, "trades", 0);
    out->bytes_reserved = sl_num(store ? store : root, "bytes_reserved", 1);
    out->bytes_used = sl_num(store ? store : root, "bytes_used", 1);
    out->ok = 1;
    json_decref(root);
    return 0;
}

/* ---- derived figures ----------------------------------------------------- */

typedef struct sl_derived {
    double trades_per_s, mb_per_s;
    double rss_growth_per_million; /* bytes; < 0 when unknown */
    double store_bytes_per_trade;  /* bytes_reserved / trades; < 0 when unknown */
    double used_bytes_per_trade;
    uint64_t stored;               /* trades the store gained during the run */
} sl_derived;

static void sl_derive(const sl_result *r, sl_derived *d)
{
    memset(d, 0, sizeof *d);
    d->trades_per_s = r->seconds > 0 ? (double)r->acked_trades / r->seconds : 0;
    d->mb_per_s = r->seconds > 0 ? (double)r->wire_bytes / r->seconds / 1e6 : 0;
    d->rss_growth_per_million = d->store_bytes_per_trade = d->used_bytes_per_trade = -1;
    if (!r->before.ok || !r->after.ok)
        return;
    d->stored = r->after.trades > r->before.trades ? r->after.trades - r->before.trades : 0;
    if (d->stored)
        d->rss_growth_per_million =
            ((double)r->after.rss - (double)r->before.rss) * 1e6 / (double)d->stored;
    if (r->after.trades) {
        d->store_bytes_per_trade = (double)r->after.bytes_reserved / (double)r->after.trades;
        d->used_bytes_per_trade = (double)r->after.bytes_used / (double)r->after.trades;
    }
}

/* ---- text report --------------------------------------------------------- */

/* 12345678 -> "12,345,678" */
static const char *sl_commas(uint64_t v, char *buf)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v), o = 0;
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = '\0';
    return buf;
}

static double sl_ms(uint64_t ns) { return (double)ns / 1e6; }
static double sl_mib(double bytes) { return bytes / (1024.0 * 1024.0); }

static void sl_report_lat(FILE *f, const hist *h)
{
    fprintf(f, "  %-26s p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (mean %.3f)\n",
            "ack latency, ms", sl_ms(hist_quantile(h, 0.5)), sl_ms(hist_quantile(h, 0.9)),
            sl_ms(hist_quantile(h, 0.99)), sl_ms(hist_quantile(h, 0.999)), sl_ms(h->max),
            hist_mean(h) / 1e6);
}

static void sl_report_memory(FILE *f, const sl_result *r, const sl_derived *d, int http_port)
{
    char a[32];
    if (!r->before.ok || !r->after.ok) {
        fprintf(f, "  %-26s %s\n", "server memory",
                http_port ? "unavailable (GET /stats failed)" : "not fetched (--http-port 0)");
        return;
    }
    fprintf(f, "  %-26s %.1f MiB -> %.1f MiB\n", "server RSS before -> after", sl_mib((double)r->before.rss),
            sl_mib((double)r->after.rss));
    fprintf(f, "  %-26s %s\n", "trades stored (server)", sl_commas(d->stored, a));
    if (d->rss_growth_per_million >= 0)
        fprintf(f, "  %-26s %.2f MiB  (RSS growth x 1e6 / trades stored)\n", "memory per million trades",
                sl_mib(d->rss_growth_per_million));
    if (r->after.mem_per_million >= 0)
        fprintf(f, "  %-26s %.2f MiB  (/stats memory_per_million_trades)\n", "  as the server counts it",
                sl_mib(r->after.mem_per_million));
    if (d->store_bytes_per_trade >= 0)
        fprintf(f, "  %-26s %.1f reserved, %.1f used  (store bytes / store trades)\n",
                "store bytes per trade", d->store_bytes_per_trade, d->used_bytes_per_trade);
}

void sl_report_text(FILE *f, const sl_config *cfg, const sl_result *r)
{
    sl_derived d;
    char a[32], b[32];
    sl_derive(r, &d);
    fprintf(f, "\nslotload: %s (%u symbols, zipf %.2f, seed %llu), %s form, px %s, %u conn x %u in flight, "
               "batch %u, %s\n",
            cfg->workload, cfg->symbols, cfg->zipf, (unsigned long long)cfg->seed,
            cfg->form_array ? "array" : "map", cfg->px_float ? "float" : "text", cfg->connections, cfg->inflight, cfg->batch,
            cfg->rate > 0 ? "open loop" : "closed loop");
    if (cfg->rate > 0)
        fprintf(f, "  %-26s %s trades/s\n", "target rate", sl_commas((uint64_t)cfg->rate, a));
    fprintf(f, "  %-26s %s  (%s batches)\n", "trades acked", sl_commas(r->acked_trades, a),
            sl_commas(r->acked_batches, b));
    fprintf(f, "  %-26s %.3f\n", "seconds", r->seconds);
    fprintf(f, "  %-26s %s\n", "trades/s", sl_commas((uint64_t)(d.trades_per_s + 0.5), a));
    fprintf(f, "  %-26s %.1f  (%.1f MB sent)\n", "MB/s on the wire", d.mb_per_s, (double)r->wire_bytes / 1e6);
    if (r->seconds > 0)
        fprintf(f, "  %-26s %.2f s user + %.2f s sys = %.0f%% of one core\n", "slotload CPU (timed)",
                r->cpu_user, r->cpu_sys, 100 * (r->cpu_user + r->cpu_sys) / r->seconds);
    sl_report_lat(f, r->lat);
    if (cfg->rate > 0)
        fprintf(f, "  %-26s p50 %.3f  p99 %.3f  max %.3f  (due time -> write: client or backlog)\n",
                "send lag, ms", sl_ms(hist_quantile(r->lag, 0.5)), sl_ms(hist_quantile(r->lag, 0.99)),
                sl_ms(r->lag->max));
    sl_report_memory(f, r, &d, cfg->http_port);
    uint64_t failed = r->err_batches + r->lost_batches;
    fprintf(f, "  %-26s %s batches\n", "errors", sl_commas(failed, a));
    for (int i = 0; i < r->nerrs; i++)
        fprintf(f, "    %-24s %s\n", r->errs[i].code, sl_commas(r->errs[i].batches, a));
    if (r->fatal)
        fprintf(f, "  %-26s %s\n", "run stopped early", r->fatal_msg);
    fflush(f);
}

/* ---- JSON report --------------------------------------------------------- */

static json_t *sl_json_stats(const sl_stats *s)
{
    if (!s->ok)
        return json_null();
    json_t *o = json_object();
    json_object_set_new(o, "resident_memory_bytes", json_integer((json_int_t)s->rss));
    json_object_set_new(o, "store_trades", json_integer((json_int_t)s->trades));
    json_object_set_new(o, "store_bytes_reserved", json_integer((json_int_t)s->bytes_reserved));
    json_object_set_new(o, "store_bytes_used", json_integer((json_int_t)s->bytes_used));
    json_object_set_new(o, "memory_per_million_trades",
                        s->mem_per_million >= 0 ? json_real(s->mem_per_million) : json_null());
    return o;
}

static json_t *sl_json_or_null(double v) { return v >= 0 ? json_real(v) : json_null(); }

void sl_report_json(FILE *f, const sl_config *cfg, const sl_result *r)
{
    sl_derived d;
    sl_derive(r, &d);
    json_t *o = json_object(), *c = json_object(), *lat = json_object(), *errs = json_object();
    json_object_set_new(c, "workload", json_string(cfg->workload));
    json_object_set_new(c, "symbols", json_integer(cfg->symbols));
    json_object_set_new(c, "zipf", json_real(cfg->zipf));
    json_object_set_new(c, "seed", json_integer((json_int_t)cfg->seed));
    json_object_set_new(c, "form", json_string(cfg->form_array ? "array" : "map"));
    json_object_set_new(c, "px", json_string(cfg->px_float ? "float" : "text"));
    json_object_set_new(c, "connections", json_integer(cfg->connections));
    json_object_set_new(c, "inflight", json_integer(cfg->inflight));
    json_object_set_new(c, "batch", json_integer(cfg->batch));
    json_object_set_new(c, "rate", json_real(cfg->rate));
    json_object_set_new(o, "config", c);
    json_object_set_new(o, "trades", json_integer((json_int_t)r->acked_trades));
    json_object_set_new(o, "batches", json_integer((json_int_t)r->acked_batches));
    json_object_set_new(o, "sent_trades", json_integer((json_int_t)r->sent_trades));
    json_object_set_new(o, "seconds", json_real(r->seconds));
    json_object_set_new(o, "encode_seconds", json_real(r->encode_seconds));
    json_object_set_new(o, "trades_per_s", json_real(d.trades_per_s));
    json_object_set_new(o, "wire_bytes", json_integer((json_int_t)r->wire_bytes));
    json_object_set_new(o, "mb_per_s", json_real(d.mb_per_s));
    json_object_set_new(o, "client_cpu_user_s", json_real(r->cpu_user));
    json_object_set_new(o, "client_cpu_sys_s", json_real(r->cpu_sys));
    static const struct { const char *k; double q; } qs[] = {
        {"p50_us", 0.5}, {"p90_us", 0.9}, {"p99_us", 0.99}, {"p999_us", 0.999}, {"max_us", 1.0}};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++)
        json_object_set_new(lat, qs[i].k, json_real((double)hist_quantile(r->lat, qs[i].q) / 1e3));
    json_object_set_new(lat, "mean_us", json_real(hist_mean(r->lat) / 1e3));
    json_object_set_new(o, "ack_latency", lat);
    if (cfg->rate > 0) {
        json_t *lag = json_object();
        json_object_set_new(lag, "p50_us", json_real((double)hist_quantile(r->lag, 0.5) / 1e3));
        json_object_set_new(lag, "p99_us", json_real((double)hist_quantile(r->lag, 0.99) / 1e3));
        json_object_set_new(lag, "max_us", json_real((double)r->lag->max / 1e3));
        json_object_set_new(o, "send_lag", lag);
    }
    json_object_set_new(o, "server_before", sl_json_stats(&r->before));
    json_object_set_new(o, "server_after", sl_json_stats(&r->after));
    json_object_set_new(o, "trades_stored", json_integer((json_int_t)d.stored));
    json_object_set_new(o, "memory_per_million_trades", sl_json_or_null(d.rss_growth_per_million));
    json_object_set_new(o, "store_bytes_per_trade", sl_json_or_null(d.store_bytes_per_trade));
    json_object_set_new(o, "store_used_bytes_per_trade", sl_json_or_null(d.used_bytes_per_trade));
    for (int i = 0; i < r->nerrs; i++)
        json_object_set_new(errs, r->errs[i].code, json_integer((json_int_t)r->errs[i].batches));
    json_object_set_new(o, "errors", json_integer((json_int_t)(r->err_batches + r->lost_batches)));
    json_object_set_new(o, "errors_by_code", errs);
    json_object_set_new(o, "fatal", r->fatal ? json_string(r->fatal_msg) : json_null());
    json_dumpf(o, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    fputc('\n', f);
    fflush(f);
    json_decref(o);
}

/* ---- progress and CSV ---------------------------------------------------- */

void sl_progress(FILE *f, int tty, double t, double rate, uint64_t acked, uint64_t errors,
                 uint64_t p99_ns, uint64_t inflight)
{
    char a[32], b[32];
    fprintf(f, "%s%7.1fs  %11s trades/s  acked %13s  errors %llu  p99 %8.3f ms  in flight %llu%s",
            tty ? "\r" : "", t, sl_commas((uint64_t)(rate + 0.5), a), sl_commas(acked, b),
            (unsigned long long)errors, sl_ms(p99_ns), (unsigned long long)inflight, tty ? "\033[K" : "\n");
    fflush(f);
}

void sl_progress_end(FILE *f, int tty)
{
    if (tty)
        fputc('\n', f);
    fflush(f);
}

void sl_csv_header(FILE *f) { fputs("second,trades_per_s,acked,errors,p50_us,p99_us\n", f); }

void sl_csv_row(FILE *f, uint64_t second, double rate, uint64_t acked, uint64_t errors, const hist *sec)
{
    fprintf(f, "%llu,%.0f,%llu,%llu,%.1f,%.1f\n", (unsigned long long)second, rate,
            (unsigned long long)acked, (unsigned long long)errors,
            (double)hist_quantile(sec, 0.5) / 1e3, (double)hist_quantile(sec, 0.99) / 1e3);
    fflush(f);
}
