/* http_subscribe — GET /subscribe?syms=A,B&from=now|start|CURSOR&gaps=true:
 * a subscription (subscribe.h) as Server-Sent Events on the streamed-answer
 * plumbing (http_conn.c).
 *
 * Each run of a symbol's trades is one event:
 *
 *   id: AAPL:42,MSFT:7                      the cursor after it
 *   event: trades
 *   data: {"symbol":"AAPL","kind":"trade","next":42,"trades":[{...}, ...]}
 *
 * (trades as GET /symbols/{sym}/trades gives them), a dropped range
 * `event: gap` with {"symbol","from","to"}, and CURSOR_GONE `event: error`
 * with {"code","message"}, which ends the stream. A reconnecting client
 * (browsers do it by themselves) sends Last-Event-ID: the cursor, which
 * takes the place of `from`. The first event, `event: subscribed`, carries
 * the cursor the subscription starts at. Pieces are made only when the
 * previous one was written (http_conn.c), so a slow client holds one piece;
 * one that reads nothing for HTTP_IDLE_TIMEOUT_MS is closed.
 */
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "subscribe.h"

#define SSE_PIECE (64u << 10)

typedef struct sse {
    server *srv;
    http_conn *c;
    sub *s;
    int started, ended;
} sse;

static void sse_id(sub *s, proto_buf *out)
{
    proto_buf_append(out, "id: ", 4);
    sub_cursor_text(s, out);
    proto_buf_append(out, "\n", 1);
}

static int sse_chunk(sub *s, proto_buf *out, const char *sym, size_t len, const kind *k,
                     const unsigned char *slots, uint32_t n, uint64_t next)
{
    emit e;
    uint32_t nkeys = query_record_keys(k);
    sse_id(s, out);
    proto_buf_append(out, "event: trades\ndata: ", 20);
    emit_json_init(&e, out);
    e.map(&e, 4);
    e.key(&e, "symbol");
    e.str(&e, sym, len);
    e.key(&e, "kind");
    emit_cstr(&e, k->name);
    e.key(&e, "next");
    e.u64(&e, next);
    e.key(&e, "trades");
    e.array(&e, n);
    for (uint32_t i = 0; i < n; i++)
        query_emit_trade(&e, NULL, k, slots + (size_t)i * k->size, nkeys);
    e.end(&e);
    e.end(&e);
    return e.err || proto_buf_append(out, "\n\n", 2) < 0 ? -1 : 0;
}

static void sse_gap(sub *s, proto_buf *out, const char *sym, size_t len, uint64_t from,
                    uint64_t to)
{
    emit e;
    sse_id(s, out);
    proto_buf_append(out, "event: gap\ndata: ", 17);
    emit_json_init(&e, out);
    e.map(&e, 3);
    e.key(&e, "symbol");
    e.str(&e, sym, len);
    e.key(&e, "from");
    e.u64(&e, from);
    e.key(&e, "to");
    e.u64(&e, to);
    e.end(&e);
    proto_buf_append(out, "\n\n", 2);
}

static const sub_enc sse_enc = {sse_chunk, sse_gap};

static void sse_kick(void *owner)
{
    sse *x = owner;
    http__stream_wake(x->c);
}

static int sse_next(void *ctx, proto_buf *buf, int *done)
{
    sse *x = ctx;
    proto_error err;
    if (x->ended) {
        *done = 1;
        return 0;
    }
    if (!x->started) { /* the start: where the cursor begins */
        x->started = 1;
        sse_id(x->s, buf);
        proto_buf_append(buf, "event: subscribed\ndata: {}\n\n", 28);
    }
    int rc = sub_fill(x->s, buf, SSE_PIECE, &err);
    if (rc < 0) {
        emit e;
        proto_buf_append(buf, "event: error\ndata: ", 19);
        emit_json_init(&e, buf);
        e.map(&e, 2);
        e.key(&e, "code");
        emit_cstr(&e, proto_code_name(err.code));
        e.key(&e, "message");
        emit_cstr(&e, err.msg);
        e.end(&e);
        proto_buf_append(buf, "\n\n", 2);
        sub_close(x->s, err.code == PROTO_E_CURSOR_GONE ? SUB_DROP_GONE : SUB_DROP_STALLED);
        x->s = NULL;
        x->ended = 1;
        *done = 1;
        return 0;
    }
    return buf->len ? 0 : 1; /* nothing yet: parked until sse_kick */
}

static void sse_done(void *ctx)
{
    sse *x = ctx;
    if (x->s)
        sub_close(x->s, SUB_NDROPS);
    free(x);
}

static int sse_param(void *ctx, const char *name, size_t nlen, const char *val, size_t vlen,
                     proto_error *err)
{
    return subproto_set_param(ctx, name, nlen, val, vlen, err);
}

void http__subscribe(server *srv, http_conn *c, const char *qs, size_t qlen, http__answer *a)
{
    proto_error err = {0};
    subproto_req *r = calloc(1, sizeof *r);
    sse *x = calloc(1, sizeof *x);
    if (!r || !x) {
        a->status = 500;
        goto out;
    }
    r->from = SUBPROTO_NOW;
    if (http__parse_qs(a, qs, qlen, sse_param, r) < 0)
        goto out;
    if (r->nsyms == 0) {
        http__answer_error(a, 400, "BAD_QUERY", "parameter 'syms' is required: up to 32 symbols, "
                           "comma-separated");
        goto out;
    }
    if (c->last_id_len > sizeof c->last_id) {
        http__answer_error(a, 400, "BAD_QUERY", "Last-Event-ID is longer than 4096 bytes");
        goto out;
    }
    if (c->last_id_len && subproto_cursor_parse(r, c->last_id, c->last_id_len, &err) < 0) {
        http__answer_proto_error(a, &err);
        goto out;
    }
    for (uint32_t i = 0; r->from == SUBPROTO_MAP && i < r->nfrom; i++) {
        int listed = 0;
        for (uint32_t j = 0; j < r->nsyms && !listed; j++)
            listed = r->syms[j].len == r->fromv[i].len &&
                     memcmp(r->syms[j].name, r->fromv[i].name, r->fromv[i].len) == 0;
        if (!listed) {
            proto_error_set(&err, PROTO_E_BAD_QUERY, -1, "cursor: '%s' is not in syms",
                            r->fromv[i].name);
            http__answer_proto_error(a, &err);
            goto out;
        }
    }
    if (srv->cfg.gateway) {
        http__answer_error(a, 400, "BAD_SUB", "this is a gateway (--gateway): it stores no trades; "
                           "subscribe at the nodes that own the symbols");
        goto out;
    }
    x->srv = srv;
    x->c = c;
    if (!(x->s = sub_open(srv, r, &sse_enc, sse_kick, x, &err))) {
        http__answer_proto_error(a, &err);
        goto out;
    }
    a->status = 200;
    a->ctype = "text/event-stream";
    a->extra = "X-Accel-Buffering: no\r\n";
    a->stream = (http__stream){sse_next, sse_done, x};
    x = NULL;
out:
    free(r);
    free(x);
}
