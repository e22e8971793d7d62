/* fuzz_http — the HTTP request path on arbitrary bytes.
 *
 * The input (after one knob byte) is what a client sends on one connection.
 * It goes through http_serve_bytes (http.h): slotd's own http-parser
 * settings and callbacks with their URL/header/method/body limits, the
 * parse-answer loop, route(), percent-decoding, query_set_param and
 * query_run, and the response formatting — everything a socket sees except
 * libuv itself. The store behind it holds symbols of both kinds (one with
 * '/', one with a space, one non-ASCII), so /symbols/{sym}, /trades with
 * paging and /bars return real data.
 *
 * Checks, for every input:
 *  - the output is a sequence of well-formed HTTP/1.1 responses: a known
 *    status with its reason, Content-Type, Content-Length matching the body
 *    (or no body at all: a HEAD answer), Cache-Control, Connection;
 *  - every JSON body is valid JSON (jansson, which also insists on valid
 *    UTF-8) and every error is {"error": CODE, "message": text};
 *  - no 500 (an internal error or an answer that was never produced);
 *  - nothing follows a "Connection: close" answer, and http_serve_bytes
 *    says the connection closes exactly when the last answer says so;
 *  - the same bytes arriving in other read sizes (1 byte at a time, and
 *    the knob's size) give the same answers: statuses, headers and bodies
 *    (answers to /stats and /metrics, which carry uptime and counters, and
 *    HEAD answers are compared by status only; a final refusal may be 400,
 *    414 or 431 depending on the reads, see below).
 * The knob picks the read size and sometimes serves while "replaying" (the
 * store must then be left alone: 503s) or while not ready.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "kind.h"
#include "store.h"

#define CHECK(c)                                                                   \
    do {                                                                           \
        if (!(c)) {                                                                \
            fprintf(stderr, "fuzz_http: check failed at line %d: %s\n", __LINE__, #c); \
            abort();                                                               \
        }                                                                          \
    } while (0)

#define T0 1767225600000000000LL /* 2026-01-01T00:00:00Z */
#define SEC 1000000000LL

static server srv;

static void add(store *s, store_batch *b, const char *sym, const kind *k, int64_t *v)
{
    int bad;
    CHECK(kind_check(k, v, k == &kind_trade ? 0x1f : 0xff, &bad) == KIND_OK);
    CHECK(store_batch_add(s, b, sym, strlen(sym), k, v) == STORE_OK);
}

static store *make_store(void)
{
    store *s;
    store_config cfg = {.max_memory = 64u << 20, .max_symbols = 1000};
    CHECK(store_open(&s, &cfg) == STORE_OK);
    store_batch b;
    store_batch_init(&b);
    for (int i = 0; i < 400; i++) { /* 400 trades, 10 s apart: ~67 one-minute bars */
        int64_t v[KIND_MAX_FIELDS] = {T0 + i * 10 * SEC, 18725000000LL + i * 1000000, 100000000LL * (1 + i % 7),
                                      1 + i % 2, 1000 + i};
        add(s, &b, "AAPL", &kind_trade, v);
    }
    for (int i = 0; i < 30; i++) {
        int64_t v[KIND_MAX_FIELDS] = {T0 + i * 3600 * SEC, 4200000000000LL + i * 123456789LL, 1234567LL, 2, (int64_t)(UINT64_MAX - (uint64_t)i)};
        add(s, &b, "BTC/USD", &kind_trade, v);
    }
    int64_t x[KIND_MAX_FIELDS] = {0, 1, 1, 0, 0};
    add(s, &b, "X", &kind_trade, x);
    int64_t u[KIND_MAX_FIELDS] = {T0, 99999999, 5, 0, 7};
    add(s, &b, "\xc3\x84pfel \xe2\x82\xac", &kind_trade, u);
    for (int i = 0; i < 50; i++) {
        int64_t v[KIND_MAX_FIELDS] = {T0 + i * 60 * SEC, 150000000 + i, 1000000000, 1 + i % 2, i,
                                      50000000000LL + i % 3 * 500000000LL, T0 + 86400 * SEC * 30, 1 + i % 2};
        add(s, &b, "SPY 260130C00500000", &kind_option_trade, v);
        add(s, &b, "OPA", &kind_option_trade, v);
    }
    CHECK(store_batch_reserve(s, &b) == STORE_OK);
    store_batch_commit(s, &b);
    store_batch_free(&b);
    return s;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    memset(&srv, 0, sizeof srv);
    srv.store = make_store();
    metrics_init(&srv.metrics, uv_hrtime());
    srv.ready = 1;
    srv.rss_baseline = server_rss_bytes();
    return 0;
}

/* ---- checking the answers ------------------------------------------------------- */

typedef struct resp {
    int status;
    int close;
    int head_only;  /* headers only (HEAD) */
    int volatile_body; /* /stats or /metrics: uptime, counters */
    const char *hdr, *body;
    size_t hlen, blen;
} resp;

#define MAX_RESP 16384 /* > 64 KiB of the shortest requests */

static const char *find(const char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    for (size_t i = 0; i + l <= n; i++)
        if (memcmp(p + i, lit, l) == 0)
            return p + i;
    return NULL;
}

/* The header value of `name` in the head [h, h+n), NUL-terminated in out. */
static int header(const char *h, size_t n, const char *name, char *out, size_t size)
{
    char key[64];
    snprintf(key, sizeof key, "\r\n%s: ", name);
    const char *p = find(h, n, key);
    if (!p)
        return -1;
    p += strlen(key);
    const char *e = find(p, (size_t)(h + n - p), "\r\n");
    if (!e || (size_t)(e - p) >= size)
        return -1;
    memcpy(out, p, (size_t)(e - p));
    out[e - p] = 0;
    return 0;
}

static void check_json(const resp *r)
{
    json_error_t je;
    json_t *j = json_loadb(r->body, r->blen, 0, &je);
    if (!j) {
        fprintf(stderr, "invalid JSON body (%s): %.*s\n", je.text, (int)r->blen, r->body);
        abort();
    }
    CHECK(json_is_object(j));
    if (r->status != 200 && !(r->status == 503 && json_object_get(j, "status"))) {
        json_t *code = json_object_get(j, "error"), *msg = json_object_get(j, "message");
        CHECK(json_is_string(code) && json_is_string(msg) && json_object_size(j) == 2);
    }
    json_decref(j);
}

/* Split out into responses; abort on anything malformed. Returns how many. */
static size_t parse_responses(const char *p, size_t n, resp *rs)
{
    static const struct {
        int status;
        const char *text;
    } known[] = {{200, "OK"},
                 {400, "Bad Request"},
                 {404, "Not Found"},
                 {405, "Method Not Allowed"},
                 {414, "URI Too Long"},
                 {431, "Request Header Fields Too Large"},
                 {503, "Service Unavailable"}};
    size_t nr = 0, off = 0;
    while (off < n) {
        CHECK(nr < MAX_RESP);
        resp *r = &rs[nr++];
        memset(r, 0, sizeof *r);
        const char *s = p + off, *end = find(s, n - off, "\r\n\r\n");
        CHECK(end != NULL);
        r->hdr = s;
        r->hlen = (size_t)(end - s) + 2; /* through the last header's CRLF */
        CHECK(n - off > 13 && memcmp(s, "HTTP/1.1 ", 9) == 0);
        r->status = atoi(s + 9);
        int ok = 0;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
            char line[64];
            int l = snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", known[i].status, known[i].text);
            ok |= known[i].status == r->status && (size_t)l <= r->hlen && memcmp(s, line, (size_t)l) == 0;
        }
        if (!ok) {
            fprintf(stderr, "unexpected status line: %.*s\n", (int)(r->hlen < 80 ? r->hlen : 80), s);
            abort();
        }
        char ctype[80], clen[32], conn[32], cache[32];
        CHECK(header(s, r->hlen, "Content-Type", ctype, sizeof ctype) == 0);
        CHECK(header(s, r->hlen, "Content-Length", clen, sizeof clen) == 0);
        CHECK(header(s, r->hlen, "Connection", conn, sizeof conn) == 0);
        CHECK(header(s, r->hlen, "Cache-Control", cache, sizeof cache) == 0 && !strcmp(cache, "no-store"));
        CHECK(!strcmp(conn, "keep-alive") || !strcmp(conn, "close"));
        r->close = conn[0] == 'c';
        char *e;
        unsigned long long len = strtoull(clen, &e, 10);
        CHECK(*e == 0 && clen[0] >= '0' && clen[0] <= '9');
        off += (size_t)(end - s) + 4;
        /* A HEAD answer has no body: the next answer (or the end) follows. */
        if (len > 0 && (off == n || (n - off >= 9 && memcmp(p + off, "HTTP/1.1 ", 9) == 0))) {
            r->head_only = 1;
            r->volatile_body = 1; /* its Content-Length may be /stats' */
            r->body = p + off;
            continue;
        }
        CHECK(len <= n - off);
        r->body = p + off;
        r->blen = (size_t)len;
        off += (size_t)len;
        if (!strcmp(ctype, "application/json")) {
            CHECK(len > 0);
            check_json(r);
            r->volatile_body = r->status == 200 && find(r->body, r->blen, "\"uptime_seconds\":") != NULL;
        } else {
            CHECK(!strcmp(ctype, "text/plain; version=0.0.4; charset=utf-8") && r->status == 200);
            CHECK(r->blen > 0 && r->body[r->blen - 1] == '\n');
            r->volatile_body = 1;
        }
        /* A 405 names what is allowed: GET and HEAD everywhere, DELETE where
         * the method itself is unknown to slotd (trades accept it). */
        if (r->status == 405)
            CHECK(find(r->hdr, r->hlen, "\r\nAllow: GET, HEAD\r\n") != NULL ||
                  find(r->hdr, r->hlen, "\r\nAllow: GET, HEAD, DELETE\r\n") != NULL);
    }
    for (size_t i = 0; i + 1 < nr; i++)
        CHECK(!rs[i].close); /* nothing is answered after a close */
    return nr;
}

static resp ra[MAX_RESP], rb[MAX_RESP];

static int refusal(int status) { return status == 400 || status == 414 || status == 431; }

static size_t serve(const uint8_t *data, size_t size, size_t read_size, proto_buf *out, resp *rs)
{
    out->len = 0;
    int rc = http_serve_bytes(&srv, (const char *)data, size, read_size, out);
    CHECK(rc == 0 || rc == 1);
    size_t nr = parse_responses(out->data, out->len, rs);
    CHECK(rc == (nr > 0 && rs[nr - 1].close));
    return nr;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t reads[8] = {0, 1, 2, 3, 7, 64, 1000, 4096};
    if (size < 1)
        return 0;
    uint8_t knob = data[0];
    data++, size--;
    srv.replaying = (knob & 0x18) == 0x18;
    srv.ready = !srv.replaying && (knob & 0x60) != 0x60;
    srv.stopping = !srv.ready && (knob & 0x80);

    proto_buf a = {0}, b = {0};
    size_t na = serve(data, size, reads[knob & 7], &a, ra);
    size_t nb = serve(data, size, 1, &b, rb);
    if (na != nb) {
        fprintf(stderr, "%zu answers with reads of %zu bytes, %zu byte by byte:\n%.*s\n---\n%.*s\n",
                na, reads[knob & 7], nb, (int)(a.len < 4000 ? a.len : 4000), a.data,
                (int)(b.len < 4000 ? b.len : 4000), b.data);
        abort();
    }
    for (size_t i = 0; i < na; i++) {
        /* A request both over a limit and malformed is refused either way,
         * but which reason is found first depends on the reads: http-parser
         * reports the URL/header bytes it holds (on_url, on_header_*) at the
         * end of each read, or an invalid byte when the whole span is in one
         * read (400 "invalid URL" vs 414). */
        if (i == na - 1 && ra[i].close && rb[i].close && refusal(ra[i].status) &&
            refusal(rb[i].status))
            continue;
        if (ra[i].status != rb[i].status || ra[i].close != rb[i].close ||
            ra[i].head_only != rb[i].head_only || (!ra[i].volatile_body && (ra[i].hlen != rb[i].hlen || memcmp(ra[i].hdr, rb[i].hdr, ra[i].hlen) != 0 ||
            ra[i].blen != rb[i].blen || memcmp(ra[i].body, rb[i].body, ra[i].blen) != 0))) {
            fprintf(stderr, "answer %zu differs by read size:\n%.*s%.*s\n---\n%.*s%.*s\n", i,
                    (int)ra[i].hlen, ra[i].hdr, (int)ra[i].blen, ra[i].body, (int)rb[i].hlen,
                    rb[i].hdr, (int)rb[i].blen, rb[i].body);
            abort();
        }
    }
    proto_buf_free(&a);
    proto_buf_free(&b);
    return 0;
}
