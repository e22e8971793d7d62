/* http_conn — one HTTP connection: reads, http-parser callbacks and the
 * limits they enforce, the parse/answer loop, writes, keep-alive, timeouts,
 * lingering close, and the reserve connections' one-request rule.
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
 * (2 KiB, 414), the request head (8 KiB, 431), GET/HEAD/DELETE only (405),
 * no body (400), a request head completed within 10 s of its first byte
 * (slow clients get 408), keep-alive connections idle for 30 s closed. A
 * refused request gets its answer with "Connection: close"; then the write
 * side is shut down and input is drained briefly ("lingering close") so the
 * client reads the answer instead of a reset.
 *
 * A reserve connection (accepted past the budget, see http.c) serves one
 * request with a 2 s head timeout from accept; http_routes.c limits it to
 * the probes.
 *
 * A connection is freed when its last reference goes: each open libuv
 * handle holds one, and so does a DELETE waiting for its journal write.
 */
#include "http_internal.h"

#include <stdlib.h>

#include "emit.h"
#include "log.h"

typedef struct http_write {
    uv_write_t req;
    http_conn *c;
    proto_buf head, body;
    proto_buf wire;  /* HTTPS: head and body encrypted, or handshake records alone */
} http_write;

static void conn_feed(http_conn *c);
static void stream_pump(http_conn *c);
static void tls_pump(http_conn *c);

/* ---- connection lifetime --------------------------------------------------- */

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
    if (c->stream.done) /* closed mid-stream */
        c->stream.done(c->stream.ctx);
    tls_conn_free(c->tls);
    free(c);
    http__free_if_done(h);
}

static void on_handle_closed(uv_handle_t *hd) { conn_unref(hd->data); }

void http__conn_close(http_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->capture)
        return; /* http_serve_bytes: no handles to close */
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    server_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_timeout(uv_timer_t *t);

static void arm_timer(http_conn *c, uint64_t ms)
{
    if (!c->closing && !c->capture)
        uv_timer_start(&c->timer, on_timeout, ms, 0);
}

static void on_alloc(uv_handle_t *hd, size_t hint, uv_buf_t *buf)
{
    /* HTTPS ciphertext goes into c->tls at once (loop thread only). */
    static char scratch[HTTP_RBUF];
    http_conn *c = hd->data;
    /* Only called while nothing unparsed is waiting in rbuf (reading stops
     * whenever parsing pauses), so the whole buffer is free. */
    buf->base = c->tls ? scratch : c->rbuf;
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
        http__conn_close(c);
}

/* HTTPS: ciphertext OpenSSL queued (an alert, close_notify), written now
 * if the socket takes it: best effort, for a connection about to end. */
static void tls_send_now(http_conn *c)
{
    char buf[256];
    uv_buf_t b = uv_buf_init(buf, (unsigned)tls_take(c->tls, buf, sizeof buf));
    if (b.len)
        (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
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
    if (c->tls) { /* close_notify, best effort: every answer is written */
        tls_close_notify(c->tls);
        tls_send_now(c);
    }
    c->shut.data = c;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        http__conn_close(c);
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
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
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
    int handshake = w->head.len == 0; /* TLS records only: no answer was read */
    proto_buf_free(&w->head);
    proto_buf_free(&w->body);
    proto_buf_free(&w->wire);
    free(w);
    if (c->closing)
        return;
    if (status < 0) {
        http__conn_close(c);
        return;
    }
    if (c->stream.next && c->writes == 0) { /* the client took the last piece */
        arm_timer(c, HTTP_IDLE_TIMEOUT_MS);
        stream_pump(c);
        return;
    }
    if (c->writes == 0 && c->close_after) {
        conn_linger(c);
        return;
    }
    if (handshake)
        return; /* the head deadline from accept stands: a stalled handshake ends there */
    if (!c->in_request)
        arm_timer(c, HTTP_IDLE_TIMEOUT_MS); /* progress: the client is reading */
    /* Parsing paused for backpressure resumes once the client has read. */
    if (!c->reading && c->unsent < HTTP_WRITE_HWM / 2) {
        conn_feed(c);
        tls_pump(c);
    }
}

/* HTTPS: encrypt w's head (and body unless head_only) into w->wire, with
 * any handshake records before them. -1: out of memory or a TLS error. */
static int tls_seal(http_conn *c, http_write *w, int head_only)
{
    if ((w->head.len && tls_write(c->tls, w->head.data, w->head.len) != TLS_OK) ||
        (!head_only && w->body.len && tls_write(c->tls, w->body.data, w->body.len) != TLS_OK))
        return -1;
    size_t n = tls_out_pending(c->tls);
    if (n && !(w->wire.data = malloc(n)))
        return -1;
    w->wire.cap = n;
    w->wire.len = tls_take(c->tls, w->wire.data, n);
    return 0;
}

/* Queue head and body (head_only: the body is dropped); takes ownership
 * of both. 0, or -1 with the connection closing. */
static int conn_write(http_conn *c, proto_buf *head, proto_buf *body, int head_only)
{
    http_write *w = calloc(1, sizeof *w);
    if (!w) {
        proto_buf_free(head);
        proto_buf_free(body);
        http__conn_close(c);
        return -1;
    }
    w->c = c;
    w->req.data = w;
    w->head = *head;
    w->body = *body;
    memset(head, 0, sizeof *head);
    memset(body, 0, sizeof *body);
    if (c->capture) { /* http_serve_bytes: the bytes uv_write would send */
        int bad = proto_buf_append(c->capture, w->head.data, w->head.len) < 0 ||
                  (!head_only && proto_buf_append(c->capture, w->body.data, w->body.len) < 0);
        proto_buf_free(&w->head);
        proto_buf_free(&w->body);
        free(w);
        if (bad)
            http__conn_close(c);
        return bad ? -1 : 0;
    }
    if (head_only)
        w->body.len = 0; /* what is in flight, for the unsent count */
    uv_buf_t bufs[2];
    unsigned nbufs = 0;
    if (w->head.len)
        bufs[nbufs++] = uv_buf_init(w->head.data, (unsigned)w->head.len);
    if (w->body.len)
        bufs[nbufs++] = uv_buf_init(w->body.data, (unsigned)w->body.len);
    if (c->tls && nbufs) { /* one buffer of ciphertext instead */
        int sealed = tls_seal(c, w, head_only) == 0;
        bufs[0] = uv_buf_init(w->wire.data, (unsigned)w->wire.len);
        nbufs = sealed ? 1 : 0; /* 0 fails below */
    }
    if (nbufs == 0 ||
        uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, nbufs, on_write) != 0) {
        proto_buf_free(&w->head);
        proto_buf_free(&w->body);
        proto_buf_free(&w->wire);
        free(w);
        http__conn_close(c);
        return -1;
    }
    c->unsent += w->head.len + w->body.len;
    c->writes++;
    return 0;
}

/* After the answer: keep == 0 closes the connection once it is written. */
static void conn_after(http_conn *c, int keep)
{
    if (keep)
        return;
    c->close_after = 1;
    read_stop(c);
}

/* Queue one answer; takes ownership of body. keep == 0 closes after it. */
static void conn_send(http_conn *c, int status, const char *ctype, proto_buf *body, int keep,
                      int head_only, const char *extra)
{
    proto_buf head = {0};
    if (proto_buf_printf(&head,
                         "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                         "Cache-Control: no-store\r\nConnection: %s\r\n%s\r\n",
                         status, status_text(status), ctype, body->len,
                         keep ? "keep-alive" : "close", extra ? extra : "") < 0) {
        proto_buf_free(body);
        http__conn_close(c);
        return;
    }
    if (conn_write(c, &head, body, head_only) == 0)
        conn_after(c, keep);
}

/* ---- streamed answers (chunked) ------------------------------------------------- */

static void stream_end(http_conn *c)
{
    http__stream st = c->stream;
    memset(&c->stream, 0, sizeof c->stream);
    st.done(st.ctx);
}

/* Write the stream's next piece as one chunk (with the last, the final
 * empty chunk). Called when nothing of it is in flight: once at the start,
 * then from on_write; so one piece at a time is held, whatever the client's
 * speed. Without a socket (http_serve_bytes) the whole stream is written
 * at once. */
static void stream_pump(http_conn *c)
{
    do {
        proto_buf head = {0}, data = {0};
        int done = 0, bad = 0;
        while (!bad && !done && data.len == 0) {
            int rc = c->stream.next(c->stream.ctx, &data, &done);
            bad = rc < 0;
            if (rc == 1 && data.len == 0 && !done) { /* a live stream with nothing yet */
                proto_buf_free(&data);
                c->stream_parked = 1;
                read_start(c); /* to see the client go (EOF) while nothing is written */
                return;
            }
        }
        if (!bad && data.len)
            bad = proto_buf_printf(&head, "%zx\r\n", data.len) < 0 ||
                  proto_buf_append(&data, "\r\n", 2) < 0;
        if (!bad && done)
            bad = proto_buf_append(&data, "0\r\n\r\n", 5) < 0;
        if (bad) {
            proto_buf_free(&head);
            proto_buf_free(&data);
            stream_end(c);
            http__conn_close(c); /* no final chunk: the client sees it incomplete */
            return;
        }
        if (done)
            stream_end(c);
        if (conn_write(c, &head, &data, 0) < 0)
            return;
        if (done)
            conn_after(c, c->stream_keep);
    } while (c->capture && c->stream.next && !c->closing);
}

void http__stream_wake(http_conn *c)
{
    if (!c->stream_parked || c->closing || !c->stream.next)
        return;
    c->stream_parked = 0;
    if (c->writes == 0)
        stream_pump(c);
}

/* A parked stream idle for a while: an SSE comment line, so that proxies
 * and the client see the connection alive (on_write parks it again). */
static int stream_heartbeat(http_conn *c)
{
    proto_buf head = {0}, data = {0};
    if (proto_buf_append(&data, "e\r\n: keep-alive\n\n\r\n", 19) < 0)
        return -1;
    c->stream_parked = 0;
    return conn_write(c, &head, &data, 0);
}

/* Start a streamed answer: the head now, the chunks as the client reads. */
static void stream_begin(http_conn *c, http__answer *a, int keep, int head_only)
{
    proto_buf head = {0}, none = {0};
    if (proto_buf_printf(&head,
                         "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n"
                         "Cache-Control: no-store\r\nConnection: %s\r\n%s\r\n",
                         a->ctype, keep ? "keep-alive" : "close", a->extra ? a->extra : "") < 0) {
        a->stream.done(a->stream.ctx);
        http__conn_close(c);
        return;
    }
    if (head_only) {
        a->stream.done(a->stream.ctx);
        if (conn_write(c, &head, &none, 1) == 0)
            conn_after(c, keep);
        return;
    }
    c->stream = a->stream;
    c->stream_keep = keep;
    if (conn_write(c, &head, &none, 0) == 0 && c->capture)
        stream_pump(c); /* with a socket, on_write pumps */
}

void http__json_error(proto_buf *body, const char *code, const char *msg)
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
    http__json_error(&body, code, msg);
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
    c->hname_len = c->auth_len = c->last_id_len = 0;
    c->in_auth = c->in_last_id = 0;
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
        c->in_auth = http__name_is(c->hname, c->hname_len, "authorization");
        c->in_last_id = http__name_is(c->hname, c->hname_len, "last-event-id");
        if (c->in_last_id)
            c->last_id_len = 0;
        if (c->in_auth) {
            c->auth_seen++;
            c->auth_len = 0;
        }
    }
    c->last_was_value = 1;
    if (c->in_auth)
        collect(c->auth, sizeof c->auth, &c->auth_len, at, len);
    if (c->in_last_id)
        collect(c->last_id, sizeof c->last_id, &c->last_id_len, at, len);
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

/* ---- answering ------------------------------------------------------------------ */

static void answer_send(http_conn *c, http__answer *a);

/* DELETE /symbols/{sym}/trades is done (delete.h): 200 {"deleted": N, ...}
 * or the error. Unless it finished inside conn_answer, parsing resumes
 * with the requests that came after it. */
void http__deleted(void *ctx, const query_req *q, uint64_t deleted, const proto_error *err)
{
    http_conn *c = ctx;
    HTTP__ASSERT_LOOP(c->h);
    http__answer a = {.ctype = "application/json"};
    if (!c->closing) {
        if (err) {
            http__answer_proto_error(&a, err);
            if (err->code == PROTO_E_JOURNAL)
                a.status = 503; /* the server's trouble, not the request's */
        } else {
            emit e;
            emit_json_init(&e, &a.body);
            query_emit_deleted(&e, q, deleted);
            a.status = e.err ? 500 : 200;
            if (e.err)
                http__answer_error(&a, 500, "INTERNAL", "out of memory writing the answer");
        }
    }
    http__answer_later(c, &a);
}

void http__answer_later(http_conn *c, http__answer *a)
{
    HTTP__ASSERT_LOOP(c->h);
    c->waiting = 0;
    if (!c->closing) {
        answer_send(c, a);
        if (c->in_answer) {
            c->in_answer = 2; /* done inside conn_answer: it sends nothing more */
        } else {
            conn_feed(c);
            tls_pump(c);
        }
    } else {
        proto_buf_free(&a->body);
    }
    if (!c->capture)
        conn_unref(c); /* the reference http__answer_wait took */
}

void http__answer_wait(http_conn *c)
{
    c->waiting = 1;
    if (!c->capture)
        c->handles++; /* the connection outlives a close until the answer */
}

/* Send the answer to the request the parser completed last. A reserve
 * connection gets one answer, then closes. */
static void answer_send(http_conn *c, http__answer *a)
{
    int keep = http_should_keep_alive(&c->parser) && !c->h->stopping && !c->reserve;
    int head_only = c->parser.method == HTTP_HEAD;
    if (a->stream.next) {
        proto_buf_free(&a->body);
        stream_begin(c, a, keep, head_only);
        return;
    }
    if (a->status == 0)
        http__answer_error(a, 500, "INTERNAL", "no answer was produced");
    conn_send(c, a->status, a->ctype, &a->body, keep, head_only, a->extra);
}

/* Answer the request the parser just completed (a DELETE: later, see
 * route_delete, unless it is already done). */
static void conn_answer(http_conn *c)
{
    server *srv = c->h->srv;
    http__answer a = {0};
    srv->metrics.http_requests_total++;
    c->in_answer = 1;
    http__route(c, &a);
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
    HTTP__ASSERT_LOOP(c->h);
    while (c->roff < c->rlen && !c->closing && !c->close_after && !c->waiting && !c->stream.next) {
        size_t n = http_parser_execute(&c->parser, &parser_settings, c->rbuf + c->roff,
                                       c->rlen - c->roff);
        c->roff += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            conn_answer(c);
            if (c->waiting || c->stream.next) { /* a DELETE: nothing more until its answer
                                                 * (http_deleted); a stream: until its end */
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
    if (!c->closing && !c->close_after && !c->waiting && !c->stream.next &&
        c->unsent < HTTP_WRITE_HWM)
        read_start(c);
}

/* ---- HTTPS at the read/write seam --------------------------------------------------- */

/* Handshake records (and alerts) not sent with an answer: a write of their
 * own, with no answer bytes (on_write tells them apart by that). */
static void tls_send_records(http_conn *c)
{
    if (c->closing || tls_out_pending(c->tls) == 0)
        return;
    http_write *w = calloc(1, sizeof *w);
    if (w) {
        w->c = c;
        w->req.data = w;
    }
    if (!w || tls_seal(c, w, 1) != 0 ||
        uv_write(&w->req, (uv_stream_t *)&c->tcp,
                 &(uv_buf_t){.base = w->wire.data, .len = w->wire.len}, 1, on_write) != 0) {
        if (w)
            proto_buf_free(&w->wire);
        free(w);
        http__conn_close(c);
        return;
    }
    c->writes++;
}

/* A TLS failure: logged without data, the queued alert sent if the socket
 * takes it now, closed. */
static void tls_fail(http_conn *c, int rc)
{
    char detail[200];
    tls_detail(detail, sizeof detail);
    c->h->srv->metrics.tls_failures_total++;
    log_info("http_tls_error err=\"%s\" detail=\"%s\"", tls_strerror(rc), detail);
    if (!c->writes)
        tls_send_now(c);
    http__conn_close(c);
}

/* Decrypt buffered input into rbuf and parse it, while the parser wants
 * more (reading: rbuf is empty then); then send what the handshake made. */
static void tls_pump(http_conn *c)
{
    int rc = TLS_OK;
    while (c->tls && !c->closing && !c->lingering && c->reading && c->rlen == 0) {
        size_t got = 0;
        rc = tls_read(c->tls, c->rbuf, sizeof c->rbuf, &got);
        if (!c->tls_up && tls_handshake_done(c->tls)) {
            c->tls_up = 1;
            c->h->srv->metrics.tls_handshakes_total++;
        }
        if (rc != TLS_OK || got == 0)
            break;
        c->roff = 0;
        c->rlen = got;
        conn_feed(c);
    }
    if (!c->tls || c->closing)
        return;
    if (rc == TLS_CLOSED) { /* close_notify: as EOF */
        read_stop(c);
        if (c->writes == 0)
            http__conn_close(c);
        else
            c->close_after = 1;
        return;
    }
    if (rc != TLS_OK) {
        tls_fail(c, rc);
        return;
    }
    tls_send_records(c);
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
            http__conn_close(c);
        else
            c->close_after = 1;
        return;
    }
    if (c->lingering) {
        c->lingered += (size_t)nread;
        if (c->lingered > HTTP_LINGER_BYTES)
            http__conn_close(c);
        return;
    }
    if (c->tls) {
        if (tls_feed(c->tls, buf->base, (size_t)nread) != TLS_OK)
            tls_fail(c, TLS_E_NOMEM);
        else
            tls_pump(c);
        return;
    }
    c->roff = 0;
    c->rlen = (size_t)nread;
    conn_feed(c);
}

static void on_timeout(uv_timer_t *t)
{
    http_conn *c = t->data;
    HTTP__ASSERT_LOOP(c->h);
    if (c->stream.next && c->stream_parked && c->writes == 0 && !c->closing) {
        if (stream_heartbeat(c) == 0)
            return;
    }
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
    http__conn_close(c);
}

/* ---- accept ---------------------------------------------------------------------- */

/* http.c decided to take the connection (reserve: past the budget, probes
 * only, one request with a deadline from accept). */
void http__conn_accept(http *h, uv_stream_t *ls, int reserve, int tls)
{
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
        http__conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (tls && tls_conn_new(&c->tls, h->srv->tls) != TLS_OK) {
        http__conn_close(c);
        return;
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    arm_timer(c, reserve ? HTTP_RESERVE_HEAD_MS : HTTP_HEAD_TIMEOUT_MS);
    read_start(c);
}

/* ---- without a socket ------------------------------------------------------------ */

int http_serve_bytes(server *srv, const char *in, size_t len, size_t read_size, proto_buf *out)
{
    http h = {0};
    http_conn *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    h.srv = srv;
    h.loop_thread = pthread_self(); /* the caller's thread is this "loop" */
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
    if (c->stream.done) /* a write failed mid-stream */
        c->stream.done(c->stream.ctx);
    free(c);
    return rc;
}
