/* http — the operator endpoints: connections, parsing, limits, routing.
 *
 * One http_conn per client, a fixed read buffer in it, and http-parser
 * driven over that buffer. The parser pauses after each complete request,
 * so requests are answered strictly in order, one at a time, even when a
 * client pipelines many: each answer is queued with uv_write (libuv keeps
 * write order), and when a client has more than HTTP_WRITE_HWM bytes of
 * answers unread we stop parsing and reading until it catches up. The
 * unparsed rest of the read buffer waits in place, so nothing grows.
 *
 * Limits are enforced while bytes arrive, never after buffering: the URL
 * (2 KiB, 414), the request head (8 KiB, 431), GET/HEAD only (405), no
 * body (400), a request head completed within 10 s of its first byte
 * (slow clients get 408), keep-alive connections idle for 30 s closed, and
 * 256 connections. A refused request gets its answer with "Connection:
 * close"; then the write side is shut down and input is drained briefly
 * ("lingering close") so the client reads the answer instead of a reset.
 *
 * Past the 256, HTTP_RESERVE_CONNS more connections are accepted as a
 * reserve for the probes: they serve /healthz and /readyz only (anything
 * else is 503 TOO_MANY_CONNECTIONS), one request each, with a 2 s head
 * timeout. So clients that keep 256 connections open (or busy) cannot turn
 * into a failed liveness probe and a restart. Evicting an idle keep-alive
 * connection instead was rejected: it cannot help when all 256 are busy
 * (slow heads, unread answers), and it cuts legitimate clients.
 *
 * With --token every endpoint not marked `open` in the endpoint table
 * (all but the probes and /metrics) needs "Authorization: Bearer <token>",
 * compared in constant time (token.h); else 401 with WWW-Authenticate.
 */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <http_parser.h>

#include "emit.h"
#include "log.h"
#include "delete.h"
#include "query.h"
#include "token.h"

#define HTTP_MAX_CONNS 256
#define HTTP_RESERVE_CONNS 16       /* beyond the budget, for /healthz and /readyz */
#define HTTP_RESERVE_HEAD_MS 2000   /* a reserve connection's request head, from accept */
#define HTTP_AUTH_MAX (16 + TOKEN_MAX) /* "Bearer " + token + some spaces */
#define HTTP_HNAME_MAX 16           /* enough of a header name to tell Authorization */
#define HTTP_URL_MAX 2048           /* request target bytes */
#define HTTP_HEAD_MAX 8192          /* request line + headers */
#define HTTP_HEAD_TIMEOUT_MS 10000  /* first byte of a request to its last header */
#define HTTP_IDLE_TIMEOUT_MS 30000  /* keep-alive idle, or answers not being read */
#define HTTP_LINGER_MS 2000
#define HTTP_LINGER_BYTES (256u << 10)
#define HTTP_WRITE_HWM (4u << 20)   /* unsent answer bytes before we stop parsing */
#define HTTP_RBUF 16384

typedef struct http_conn http_conn;

typedef struct http {
    uv_tcp_t listener;
    server *srv;
    http_conn *conns;     /* open connections, doubly linked */
    uint32_t nconns;      /* all of them, the reserve included */
    uint32_t nreserve;    /* of which reserve connections (probes only) */
    int stopping;
    int listener_open;
} http;

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shut;
    http *h;
    http_conn *prev, *next;
    http_parser parser;
    int handles;          /* open libuv handles; freed at 0 */
    /* the request being parsed */
    char url[HTTP_URL_MAX];
    size_t url_len;
    size_t head_bytes;
    int last_was_value;
    int refuse;           /* status to refuse it with (414, 431, 405, 400), else 0 */
    const char *refuse_msg;
    int in_request;       /* first byte seen, not complete */
    int waiting;          /* a DELETE is being journaled: its answer, then the next */
    int in_answer;        /* conn_answer is running (1), and a DELETE finished inside it (2) */
    int reserve;          /* accepted past the budget: probes only, one request */
    /* the request's Authorization header, collected across reads */
    char hname[HTTP_HNAME_MAX];
    size_t hname_len;     /* bytes of the current header's name (may exceed hname) */
    int in_auth;          /* the current header value is Authorization's */
    unsigned auth_seen;   /* Authorization headers in this request */
    char auth[HTTP_AUTH_MAX];
    size_t auth_len;      /* may exceed auth: then it cannot be a valid token */
    /* bytes read but not yet parsed (while paused for backpressure) */
    char rbuf[HTTP_RBUF];
    size_t roff, rlen;
    size_t unsent;        /* answer bytes queued in uv_write */
    unsigned writes;
    int reading;
    int closing;          /* uv_close called */
    int close_after;      /* close once answers are written */
    int lingering;        /* write side shut down, draining input */
    size_t lingered;
    proto_buf *capture;   /* http_serve_bytes: answers go here; no socket, no timer */
};

typedef struct http_write {
    uv_write_t req;
    http_conn *c;
    proto_buf head, body;
} http_write;

static void conn_feed(http_conn *c);

/* ---- connection lifetime --------------------------------------------------- */

static void http_free_if_done(http *h)
{
    if (h->stopping && !h->listener_open && h->nconns == 0) {
        h->srv->http = NULL;
        free(h);
    }
}

/* Drop one reference: a libuv handle closed, or a DELETE answered. */
static void conn_unref(http_conn *c)
{
    if (--c->handles > 0)
        return;
    http *h = c->h;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    h->nconns--;
    h->nreserve -= c->reserve ? 1 : 0;
    free(c);
    http_free_if_done(h);
}

static void on_handle_closed(uv_handle_t *hd) { conn_unref(hd->data); }

static void conn_close(http_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->capture)
        return; /* http_serve_bytes: no handles to close */
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_timeout(uv_timer_t *t);

static void arm_timer(http_conn *c, uint64_t ms)
{
    if (!c->closing && !c->capture)
        uv_timer_start(&c->timer, on_timeout, ms, 0);
}

static void on_alloc(uv_handle_t *hd, size_t hint, uv_buf_t *buf)
{
    http_conn *c = hd->data;
    /* Only called while nothing unparsed is waiting in rbuf (reading stops
     * whenever parsing pauses), so the whole buffer is free. */
    buf->base = c->rbuf;
    buf->len = sizeof c->rbuf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void read_start(http_conn *c)
{
    if (!c->reading && !c->closing && !c->capture &&
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = 1;
}

static void read_stop(http_conn *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    http_conn *c = req->data;
    if (status < 0)
        conn_close(c);
}

/* All answers are out and the connection must end: send FIN, then read and
 * discard until the client closes (or a short timeout), so unread request
 * bytes in our socket cannot turn into a reset that destroys the answer. */
static void conn_linger(http_conn *c)
{
    if (c->lingering || c->closing)
        return;
    c->lingering = 1;
    c->roff = c->rlen = 0;
    c->shut.data = c;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close(c);
        return;
    }
    arm_timer(c, HTTP_LINGER_MS);
    read_start(c);
}

/* ---- answers -------------------------------------------------------------- */

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    }
    return "Unknown";
}

static void on_write(uv_write_t *req, int status)
{
    http_write *w = req->data;
    http_conn *c = w->c;
    c->unsent -= w->head.len + w->body.len;
    c->writes--;
    proto_buf_free(&w->head);
    proto_buf_free(&w->body);
    free(w);
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->writes == 0 && c->close_after) {
        conn_linger(c);
        return;
    }
    if (!c->in_request)
        arm_timer(c, HTTP_IDLE_TIMEOUT_MS); /* progress: the client is reading */
    /* Parsing paused for backpressure resumes once the client has read. */
    if (!c->reading && c->unsent < HTTP_WRITE_HWM / 2)
        conn_feed(c);
}

/* Queue one answer; takes ownership of body. keep == 0 closes after it. */
static void conn_send(http_conn *c, int status, const char *ctype, proto_buf *body, int keep,
                      int head_only, const char *extra)
{
    http_write *w = calloc(1, sizeof *w);
    if (!w) {
        proto_buf_free(body);
        conn_close(c);
        return;
    }
    w->c = c;
    w->req.data = w;
    w->body = *body;
    memset(body, 0, sizeof *body);
    if (proto_buf_printf(&w->head,
                         "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                         "Cache-Control: no-store\r\nConnection: %s\r\n%s\r\n",
                         status, status_text(status), ctype, w->body.len,
                         keep ? "keep-alive" : "close", extra ? extra : "") < 0) {
        proto_buf_free(&w->body);
        free(w);
        conn_close(c);
        return;
    }
    if (c->capture) { /* http_serve_bytes: the bytes uv_write would send */
        int bad = proto_buf_append(c->capture, w->head.data, w->head.len) < 0 ||
                  (!head_only && proto_buf_append(c->capture, w->body.data, w->body.len) < 0);
        proto_buf_free(&w->head);
        proto_buf_free(&w->body);
        free(w);
        if (bad)
            conn_close(c);
        else if (!keep)
            c->close_after = 1;
        return;
    }
    uv_buf_t bufs[2] = {uv_buf_init(w->head.data, (unsigned)w->head.len),
                        uv_buf_init(w->body.data, (unsigned)w->body.len)};
    int nbufs = head_only || w->body.len == 0 ? 1 : 2;
    if (head_only)
        w->body.len = 0; /* what is in flight, for the unsent count */
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, (unsigned)nbufs, on_write) != 0) {
        proto_buf_free(&w->head);
        proto_buf_free(&w->body);
        free(w);
        conn_close(c);
        return;
    }
    c->unsent += w->head.len + w->body.len;
    c->writes++;
    if (!keep) {
        c->close_after = 1;
        read_stop(c);
    }
}

/* {"error": CODE, "message": "..."} through the JSON emitter (escaping). */
static void json_error(proto_buf *body, const char *code, const char *msg)
{
    emit e;
    emit_json_init(&e, body);
    e.map(&e, 2);
    e.key(&e, "error");
    emit_cstr(&e, code);
    e.key(&e, "message");
    emit_cstr(&e, msg);
    e.end(&e);
}

static void send_error(http_conn *c, int status, const char *code, const char *msg, int keep,
                       int head_only, const char *extra)
{
    proto_buf body = {0};
    json_error(&body, code, msg);
    conn_send(c, status, "application/json", &body, keep, head_only, extra);
}

/* ---- http-parser callbacks ------------------------------------------------------ */

static int refuse(http_conn *c, int status, const char *msg)
{
    c->refuse = status;
    c->refuse_msg = msg;
    return -1; /* makes http_parser_execute stop with an error */
}

static int on_message_begin(http_parser *p)
{
    http_conn *c = p->data;
    c->url_len = 0;
    c->head_bytes = 0;
    c->last_was_value = 1;
    c->refuse = 0;
    c->in_request = 1;
    c->hname_len = c->auth_len = 0;
    c->in_auth = 0;
    c->auth_seen = 0;
    /* The request's head must be complete within the timeout from its first
     * byte; trickling bytes does not extend it (slow-loris). A reserve
     * connection's one request keeps the deadline it got at accept. */
    if (!c->reserve)
        arm_timer(c, HTTP_HEAD_TIMEOUT_MS);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    c->head_bytes += len;
    if (len > sizeof c->url - c->url_len)
        return refuse(c, 414, "the request URL is longer than 2048 bytes");
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    return 0;
}

static int head_grow(http_conn *c, size_t len)
{
    c->head_bytes += len;
    if (c->head_bytes > HTTP_HEAD_MAX)
        return refuse(c, 431, "the request headers are larger than 8192 bytes");
    return 0;
}

/* Append a piece of a header name or value (callbacks may split either at
 * any byte, across reads) to buf; past its size only the length grows. */
static void collect(char *buf, size_t cap, size_t *len, const char *at, size_t n)
{
    if (*len < cap)
        memcpy(buf + *len, at, n < cap - *len ? n : cap - *len);
    *len += n;
}

static int name_is(const char *s, size_t len, const char *lit)
{
    if (len != strlen(lit))
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((s[i] | 0x20) != lit[i]) /* lit is lower case letters */
            return 0;
    return 1;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    if (c->last_was_value) { /* a new header starts */
        c->head_bytes += 4; /* ": " and CRLF: many empty headers still count */
        c->hname_len = 0;
    }
    c->last_was_value = 0;
    collect(c->hname, sizeof c->hname, &c->hname_len, at, len);
    return head_grow(c, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    if (!c->last_was_value) { /* the name is complete: is it ours? */
        c->in_auth = name_is(c->hname, c->hname_len, "authorization");
        if (c->in_auth) {
            c->auth_seen++;
            c->auth_len = 0;
        }
    }
    c->last_was_value = 1;
    if (c->in_auth)
        collect(c->auth, sizeof c->auth, &c->auth_len, at, len);
    return head_grow(c, len);
}

static int on_headers_complete(http_parser *p)
{
    http_conn *c = p->data;
    if (p->method != HTTP_GET && p->method != HTTP_HEAD && p->method != HTTP_DELETE)
        return refuse(c, 405, "only GET, HEAD and DELETE are supported");
    if ((p->flags & F_CHUNKED) || (p->content_length > 0 && p->content_length != ULLONG_MAX))
        return refuse(c, 400, "a request body is not accepted");
    if (p->upgrade)
        return refuse(c, 400, "protocol upgrades are not supported");
    return 0;
}

static int on_message_complete(http_parser *p)
{
    http_conn *c = p->data;
    c->in_request = 0;
    /* Stop here: conn_feed answers this request before parsing the next. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

/* ---- routing ------------------------------------------------------------------- */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* %XX-decode src into dst (at least len bytes). '+' stays '+': times like
 * 2026-01-01T00:00:00+01:00 are then usable unescaped. */
static int pct_decode(const char *src, size_t len, char *dst, size_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] != '%') {
            dst[n++] = src[i];
            continue;
        }
        int hi = i + 2 < len ? hexval(src[i + 1]) : -1, lo = i + 2 < len ? hexval(src[i + 2]) : -1;
        if (hi < 0 || lo < 0)
            return -1;
        dst[n++] = (char)(hi << 4 | lo);
        i += 2;
    }
    *out = n;
    return 0;
}

typedef struct answer {
    int status;
    proto_buf body;
    const char *ctype;
    const char *extra; /* more header lines */
} answer;

static void answer_error(answer *a, int status, const char *code, const char *msg)
{
    a->status = status;
    a->body.len = 0;
    a->ctype = "application/json";
    json_error(&a->body, code, msg);
}

static void answer_proto_error(answer *a, const proto_error *err)
{
    int status = err->code == PROTO_E_NOT_FOUND ? 404 : err->code == PROTO_E_NOT_READY ? 503 : 400;
    answer_error(a, status, proto_code_name(err->code), err->msg);
}

/* The request as a query_req: symbol (may be NULL) from the path,
 * parameters from the query string. 0, or -1 with the error answered. */
static int route_parse(server *srv, answer *a, query_op op, const char *sym, size_t symlen,
                       const char *qs, size_t qlen, query_req *qp)
{
    query_req q;
    proto_error err = {0};
    char sbuf[HTTP_URL_MAX], name[HTTP_URL_MAX], val[HTTP_URL_MAX];
    size_t n, nlen, vlen;
    if (srv->replaying) {
        answer_error(a, 503, "NOT_READY", "slotd is replaying its journal; retry shortly");
        return -1;
    }
    query_req_init(&q, op);
    if (sym) {
        if (pct_decode(sym, symlen, sbuf, &n) < 0) {
            answer_error(a, 400, "BAD_QUERY", "bad percent-encoding in the symbol");
            return -1;
        }
        if (query_set_symbol(&q, sbuf, n, &err) < 0) {
            answer_proto_error(a, &err);
            return -1;
        }
    }
    for (size_t i = 0; i < qlen;) {
        size_t j = i;
        while (j < qlen && qs[j] != '&')
            j++;
        const char *eq = memchr(qs + i, '=', j - i);
        size_t klen = eq ? (size_t)(eq - (qs + i)) : j - i;
        if (j > i) { /* "a=1&&b=2": empty pairs are skipped */
            if (pct_decode(qs + i, klen, name, &nlen) < 0 ||
                (eq && pct_decode(eq + 1, (size_t)(qs + j - eq - 1), val, &vlen) < 0)) {
                answer_error(a, 400, "BAD_QUERY", "bad percent-encoding in the query string");
                return -1;
            }
            if (!eq)
                vlen = 0;
            if (query_set_param(&q, name, nlen, val, vlen, &err) < 0) {
                answer_proto_error(a, &err);
                return -1;
            }
        }
        i = j + 1;
    }
    *qp = q;
    return 0;
}

/* A query endpoint: route_parse, then the shared query code. */
static void route_query(server *srv, answer *a, query_op op, const char *sym, size_t symlen,
                        const char *qs, size_t qlen)
{
    query_req q;
    proto_error err = {0};
    if (route_parse(srv, a, op, sym, symlen, qs, qlen, &q) < 0)
        return;
    emit e;
    emit_json_init(&e, &a->body);
    if (query_run(srv->store, &q, &e, &err) < 0) {
        answer_proto_error(a, &err);
        return;
    }
    if (e.err) {
        answer_error(a, 500, "INTERNAL", "out of memory writing the answer");
        return;
    }
    a->status = 200;
}

static void route_readyz(server *srv, answer *a)
{
    const char *reason = NULL;
    char msg[160];
    if (srv->replaying) {
        reason = "replaying the journal";
    } else if (!srv->ready) {
        reason = srv->stopping ? "shutting down" : "starting";
    } else {
        store_stats st;
        store_get_stats(srv->store, &st);
        /* Near the cap new batches would be refused with STORE_FULL: take
         * this instance out of rotation before that happens. */
        if (st.bytes_cap && (double)(st.bytes_reserved + st.bytes_pending) >= 0.99 * (double)st.bytes_cap) {
            snprintf(msg, sizeof msg, "store at %.1f%% of its memory cap (%llu bytes)",
                     100.0 * (double)(st.bytes_reserved + st.bytes_pending) / (double)st.bytes_cap,
                     (unsigned long long)st.bytes_cap);
            reason = msg;
        }
    }
    emit e;
    emit_json_init(&e, &a->body);
    e.map(&e, 2);
    e.key(&e, "status");
    emit_cstr(&e, reason ? "not_ready" : "ready");
    e.key(&e, "reason");
    if (reason)
        emit_cstr(&e, reason);
    else
        e.nil(&e);
    e.end(&e);
    a->status = reason ? 503 : 200;
}

static int seg_is(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

/* ---- endpoints ------------------------------------------------------------------ */

/* What a handler gets: the path after its endpoint's prefix, the query
 * string, the method. */
typedef struct http_req {
    server *srv;
    int method;           /* http_parser's HTTP_GET, HTTP_HEAD, ... */
    const char *rest, *qs;
    size_t rlen, qlen;
    http_conn *conn;      /* for an answer given later (DELETE) */
} http_req;

static void ep_healthz(const http_req *r, answer *a)
{
    a->status = 200;
    proto_buf_printf(&a->body, "{\"status\":\"ok\"}");
}

static void ep_readyz(const http_req *r, answer *a) { route_readyz(r->srv, a); }

static void ep_stats(const http_req *r, answer *a)
{
    a->status = http_render_stats(r->srv, &a->body) == 0 ? 200 : 500;
}

static void ep_metrics(const http_req *r, answer *a)
{
    a->ctype = "text/plain; version=0.0.4; charset=utf-8";
    a->status = http_render_metrics(r->srv, &a->body) == 0 ? 200 : 500;
}

static void ep_schema(const http_req *r, answer *a)
{
    route_query(r->srv, a, QUERY_SCHEMA, NULL, 0, r->qs, r->qlen);
}

static void ep_top(const http_req *r, answer *a)
{
    route_query(r->srv, a, QUERY_TOP, NULL, 0, r->qs, r->qlen);
}

static void answer_send(http_conn *c, answer *a);

/* DELETE where only GET and HEAD are served. */
static void answer_405(answer *a)
{
    answer_error(a, 405, "METHOD_NOT_ALLOWED", "DELETE is for /symbols/{sym}/trades only");
    a->extra = "Allow: GET, HEAD\r\n";
}

/* DELETE /symbols/{sym}/trades is done (delete.h): 200 {"deleted": N, ...}
 * or the error. Unless it finished inside conn_answer, parsing resumes
 * with the requests that came after it. */
static void http_deleted(void *ctx, const query_req *q, uint64_t deleted, const proto_error *err)
{
    http_conn *c = ctx;
    answer a = {.ctype = "application/json"};
    c->waiting = 0;
    if (!c->closing) {
        if (err) {
            answer_proto_error(&a, err);
            if (err->code == PROTO_E_JOURNAL)
                a.status = 503; /* the server's trouble, not the request's */
        } else {
            emit e;
            emit_json_init(&e, &a.body);
            query_emit_deleted(&e, q, deleted);
            a.status = e.err ? 500 : 200;
            if (e.err)
                answer_error(&a, 500, "INTERNAL", "out of memory writing the answer");
        }
        answer_send(c, &a);
        if (c->in_answer)
            c->in_answer = 2; /* done inside conn_answer: it sends nothing more */
        else
            conn_feed(c);
    } else {
        proto_buf_free(&a.body);
    }
    if (!c->capture)
        conn_unref(c); /* the reference route_delete took */
}

/* A write: journaled first, answered when applied (delete.h). The
 * connection parses nothing more meanwhile, so answers stay in order. */
static void route_delete(const http_req *r, answer *a, const char *sym, size_t symlen)
{
    query_req q;
    http_conn *c = r->conn;
    if (route_parse(r->srv, a, QUERY_DELETE, sym, symlen, r->qs, r->qlen, &q) < 0)
        return;
    c->waiting = 1;
    if (!c->capture)
        c->handles++; /* the connection outlives a close until the answer */
    delete_submit(r->srv, &q, http_deleted, c);
}

/* /symbols/{sym}[/trades|/bars]; the symbol is one segment, so a symbol
 * containing '/' is written %2F. DELETE on /trades deletes. */
static void ep_symbol(const http_req *r, answer *a)
{
    const char *sym = r->rest, *slash = memchr(sym, '/', r->rlen);
    size_t symlen = slash ? (size_t)(slash - sym) : r->rlen;
    const char *rest = slash ? slash : "";
    size_t rlen = slash ? (size_t)(r->rest + r->rlen - slash) : 0;
    if (r->method == HTTP_DELETE) {
        if (symlen && seg_is(rest, rlen, "/trades"))
            route_delete(r, a, sym, symlen);
        else
            answer_405(a);
        return;
    }
    if (symlen == 0)
        answer_error(a, 404, "NOT_FOUND", "no such path");
    else if (rlen == 0)
        route_query(r->srv, a, QUERY_SYMBOL, sym, symlen, r->qs, r->qlen);
    else if (seg_is(rest, rlen, "/trades"))
        route_query(r->srv, a, QUERY_TRADES, sym, symlen, r->qs, r->qlen);
    else if (seg_is(rest, rlen, "/bars"))
        route_query(r->srv, a, QUERY_BARS, sym, symlen, r->qs, r->qlen);
    else
        answer_error(a, 404, "NOT_FOUND", "no such path");
}

/* The endpoint table. `open`: served without the token (the probes, and
 * /metrics: counters and gauges only, no trades or symbol names, so a
 * Prometheus scrape needs no secret). `probe`: served on a reserve
 * connection too. Anything else, unknown paths included, needs the token
 * when --token is set. */
static const struct endpoint {
    const char *path;     /* exact, or a prefix when it ends in '/' */
    uint8_t open, probe;
    void (*fn)(const http_req *r, answer *a);
} endpoints[] = {
    {"/healthz", 1, 1, ep_healthz},
    {"/readyz", 1, 1, ep_readyz},
    {"/metrics", 1, 0, ep_metrics},
    {"/stats", 0, 0, ep_stats},
    {"/schema", 0, 0, ep_schema},
    {"/symbols", 0, 0, ep_top},
    {"/symbols/", 0, 0, ep_symbol},
};

static const struct endpoint *endpoint_find(const char *path, size_t plen, size_t *prefix)
{
    for (size_t i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++) {
        const struct endpoint *ep = &endpoints[i];
        size_t n = strlen(ep->path);
        if (ep->path[n - 1] == '/' ? plen > n && memcmp(path, ep->path, n) == 0
                                   : seg_is(path, plen, ep->path)) {
            *prefix = n;
            return ep;
        }
    }
    return NULL;
}

/* Does the request carry the server's token? Always yes without --token.
 * "Authorization: Bearer <token>" exactly once; the scheme is
 * case-insensitive (RFC 7235), spaces around the token are not part of
 * it. The token is compared in constant time. */
static int http_authorized(const http_conn *c)
{
    const char *tok = c->h->srv->cfg.token;
    if (!tok)
        return 1;
    if (c->auth_seen != 1 || c->auth_len > sizeof c->auth)
        return 0;
    const char *v = c->auth, *end = c->auth + c->auth_len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    if (end - v < 7 || !name_is(v, 6, "bearer") || (v[6] != ' ' && v[6] != '\t'))
        return 0;
    v += 7;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return token_equal(tok, v, (size_t)(end - v));
}

static void answer_unauthorized(const http_conn *c, answer *a)
{
    answer_error(a, 401, "UNAUTHORIZED",
                 c->auth_seen ? "wrong token, or not one 'Authorization: Bearer <token>' header"
                              : "this endpoint needs 'Authorization: Bearer <token>' (--token)");
    /* RFC 6750: which scheme, and whether a token was tried and refused. */
    a->extra = c->auth_seen ? "WWW-Authenticate: Bearer realm=\"slotd\", error=\"invalid_token\"\r\n"
                            : "WWW-Authenticate: Bearer realm=\"slotd\"\r\n";
}

static void route(http_conn *c, answer *a)
{
    struct http_parser_url u;
    const char *url = c->url;
    http_parser_url_init(&u);
    if (http_parser_parse_url(url, c->url_len, 0, &u) != 0) {
        answer_error(a, 400, "BAD_REQUEST", "the request URL cannot be parsed");
        return;
    }
    http_req r = {c->h->srv, c->parser.method, "", "", 0, 0, c};
    const char *path = "/";
    size_t plen = 1, prefix = 0;
    if (u.field_set & (1 << UF_PATH)) {
        path = url + u.field_data[UF_PATH].off;
        plen = u.field_data[UF_PATH].len;
    }
    if (u.field_set & (1 << UF_QUERY)) {
        r.qs = url + u.field_data[UF_QUERY].off;
        r.qlen = u.field_data[UF_QUERY].len;
    }
    a->ctype = "application/json";
    const struct endpoint *ep = endpoint_find(path, plen, &prefix);
    if (c->reserve && !(ep && ep->probe)) {
        answer_error(a, 503, "TOO_MANY_CONNECTIONS",
                     "too many HTTP connections: only /healthz and /readyz are served now");
    } else if (!(ep && ep->open) && !http_authorized(c)) {
        answer_unauthorized(c, a); /* before 404: paths are not probed without it */
    } else if (!ep) {
        answer_error(a, 404, "NOT_FOUND",
                     "no such path; try /healthz /readyz /stats /metrics /schema /symbols");
    } else {
        r.rest = path + prefix;
        r.rlen = plen - prefix;
        if (r.method == HTTP_DELETE && ep->fn != ep_symbol)
            answer_405(a);
        else
            ep->fn(&r, a);
    }
    if (a->status == 500 && a->body.len == 0)
        answer_error(a, 500, "INTERNAL", "out of memory writing the answer");
}

/* Send the answer to the request the parser completed last. A reserve
 * connection gets one answer, then closes. */
static void answer_send(http_conn *c, answer *a)
{
    int keep = http_should_keep_alive(&c->parser) && !c->h->stopping && !c->reserve;
    int head_only = c->parser.method == HTTP_HEAD;
    if (a->status == 0)
        answer_error(a, 500, "INTERNAL", "no answer was produced");
    conn_send(c, a->status, a->ctype, &a->body, keep, head_only, a->extra);
}

/* Answer the request the parser just completed (a DELETE: later, see
 * route_delete, unless it is already done). */
static void conn_answer(http_conn *c)
{
    server *srv = c->h->srv;
    answer a = {0};
    srv->metrics.http_requests_total++;
    c->in_answer = 1;
    route(c, &a);
    int answered = c->in_answer == 2;
    c->in_answer = 0;
    if (c->waiting || answered) { /* http_deleted answers, or did */
        proto_buf_free(&a.body);
        return;
    }
    answer_send(c, &a);
}

/* Parse what is in rbuf, answering each complete request in turn. Stops
 * early (leaving the rest in rbuf, not reading) when answers pile up. */
static void conn_feed(http_conn *c)
{
    while (c->roff < c->rlen && !c->closing && !c->close_after && !c->waiting) {
        size_t n = http_parser_execute(&c->parser, &parser_settings, c->rbuf + c->roff,
                                       c->rlen - c->roff);
        c->roff += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            conn_answer(c);
            if (c->waiting) { /* a DELETE: nothing more until its answer (http_deleted) */
                read_stop(c);
                return;
            }
            if (!c->in_request)
                arm_timer(c, HTTP_IDLE_TIMEOUT_MS);
            if (c->unsent >= HTTP_WRITE_HWM) {
                log_debug("http_paused unsent=%zu", c->unsent);
                read_stop(c); /* on_write resumes us */
                return;
            }
            continue;
        }
        if (e != HPE_OK) {
            int status = c->refuse ? c->refuse : 400;
            const char *msg = c->refuse ? c->refuse_msg : http_errno_description(e);
            const char *code = status == 414   ? "URI_TOO_LONG"
                               : status == 431 ? "HEADERS_TOO_LARGE"
                               : status == 405 ? "METHOD_NOT_ALLOWED"
                                               : "BAD_REQUEST";
            c->h->srv->metrics.http_requests_total++;
            send_error(c, status, code, msg, 0, 0, status == 405 ? "Allow: GET, HEAD, DELETE\r\n" : NULL);
            return;
        }
    }
    if (c->roff >= c->rlen)
        c->roff = c->rlen = 0;
    if (!c->closing && !c->close_after && !c->waiting && c->unsent < HTTP_WRITE_HWM)
        read_start(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    http_conn *c = s->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        /* EOF or error. Answers still queued are written first (a client may
         * half-close after sending its requests). */
        read_stop(c);
        if (c->writes == 0 || nread != UV_EOF || c->lingering)
            conn_close(c);
        else
            c->close_after = 1;
        return;
    }
    if (c->lingering) {
        c->lingered += (size_t)nread;
        if (c->lingered > HTTP_LINGER_BYTES)
            conn_close(c);
        return;
    }
    c->roff = 0;
    c->rlen = (size_t)nread;
    conn_feed(c);
}

static void on_timeout(uv_timer_t *t)
{
    http_conn *c = t->data;
    int answered = c->writes || c->close_after || c->lingering;
    if (c->in_request && !answered) {
        c->h->srv->metrics.http_requests_total++;
        send_error(c, 408, "TIMEOUT", "the request was not complete within 10 s", 0, 0, NULL);
        return;
    }
    if (c->reserve && !answered) { /* said nothing: the slot goes to the next probe */
        send_error(c, 503, "TOO_MANY_CONNECTIONS",
                   "too many HTTP connections: only /healthz and /readyz are served now", 0, 0,
                   NULL);
        return;
    }
    conn_close(c);
}

/* ---- accept, start, stop ------------------------------------------------------- */

static void on_refused_closed(uv_handle_t *hd) { free(hd); }

/* Over the connection limit: a canned 503, best effort without queueing,
 * and close. No per-connection state beyond the handle. */
static void refuse_connection(http *h)
{
#define BUSY_BODY "{\"error\":\"TOO_MANY_CONNECTIONS\",\"message\":\"too many HTTP connections\"}\n"
    _Static_assert(sizeof BUSY_BODY - 1 == 71, "fix the Content-Length below");
    static const char msg[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                              "Content-Length: 71\r\nConnection: close\r\n\r\n" BUSY_BODY;
    uv_tcp_t *t = malloc(sizeof *t);
    if (!t)
        return;
    uv_tcp_init(h->listener.loop, t);
    if (uv_accept((uv_stream_t *)&h->listener, (uv_stream_t *)t) == 0) {
        uv_buf_t b = uv_buf_init((char *)msg, sizeof msg - 1);
        uv_try_write((uv_stream_t *)t, &b, 1);
    }
    uv_close((uv_handle_t *)t, on_refused_closed);
}

static void on_connection(uv_stream_t *ls, int status)
{
    http *h = ls->data;
    if (status < 0 || h->stopping)
        return;
    int reserve = h->nconns - h->nreserve >= HTTP_MAX_CONNS;
    if (reserve && h->nreserve >= HTTP_RESERVE_CONNS) {
        log_warn("http_refused reason=max_connections conns=%u", h->nconns);
        refuse_connection(h);
        return;
    }
    http_conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->h = h;
    uv_tcp_init(ls->loop, &c->tcp);
    uv_timer_init(ls->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    c->reserve = reserve;
    h->nreserve += (uint32_t)reserve;
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    arm_timer(c, reserve ? HTTP_RESERVE_HEAD_MS : HTTP_HEAD_TIMEOUT_MS);
    read_start(c);
}

static void on_listener_closed(uv_handle_t *hd)
{
    http *h = hd->data;
    h->listener_open = 0;
    http_free_if_done(h);
}

int http_start(server *srv)
{
    struct sockaddr_storage addr;
    int rc;
    http *h = calloc(1, sizeof *h);
    if (!h)
        return UV_ENOMEM;
    h->srv = srv;
    if ((rc = uv_ip4_addr(srv->cfg.http_host, srv->cfg.http_port, (struct sockaddr_in *)&addr)) != 0 &&
        (rc = uv_ip6_addr(srv->cfg.http_host, srv->cfg.http_port, (struct sockaddr_in6 *)&addr)) != 0) {
        free(h);
        return rc;
    }
    uv_tcp_init(srv->loop, &h->listener);
    h->listener.data = h;
    h->listener_open = 1;
    srv->http = h;
    if ((rc = uv_tcp_bind(&h->listener, (struct sockaddr *)&addr, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&h->listener, 128, on_connection)) != 0)
        goto fail;
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    if ((rc = uv_tcp_getsockname(&h->listener, (struct sockaddr *)&bound, &blen)) != 0)
        goto fail;
    srv->http_port = ntohs(bound.ss_family == AF_INET6
                               ? ((struct sockaddr_in6 *)&bound)->sin6_port
                               : ((struct sockaddr_in *)&bound)->sin_port);
    return 0;
fail:
    http_stop(srv);
    return rc;
}

void http_stop(server *srv)
{
    http *h = srv->http;
    if (!h || h->stopping)
        return;
    h->stopping = 1;
    uv_close((uv_handle_t *)&h->listener, on_listener_closed);
    for (http_conn *c = h->conns; c; c = c->next)
        conn_close(c);
}

/* ---- without a socket ------------------------------------------------------------ */

int http_serve_bytes(server *srv, const char *in, size_t len, size_t read_size, proto_buf *out)
{
    http h = {0};
    http_conn *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    h.srv = srv;
    c->h = &h;
    c->capture = out;
    c->tcp.data = c;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    if (read_size == 0 || read_size > sizeof c->rbuf)
        read_size = sizeof c->rbuf;
    /* What on_alloc + a socket read would do: each read fills rbuf from the
     * start, then on_read parses and answers it. */
    for (size_t off = 0; off < len && !c->closing && !c->close_after;) {
        size_t n = len - off < read_size ? len - off : read_size;
        memcpy(c->rbuf, in + off, n);
        off += n;
        uv_buf_t b = uv_buf_init(c->rbuf, (unsigned)n);
        on_read((uv_stream_t *)&c->tcp, (ssize_t)n, &b);
    }
    int rc = c->closing && !c->close_after ? -1 : c->close_after ? 1 : 0;
    free(c);
    return rc;
}
