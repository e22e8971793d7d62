/* http_subscribe — GET /subscribe?syms=A,B|*&from=now|start|CURSOR&gaps=true:
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
 * the cursor the subscription starts at. With syms=* the id is not the
 * whole cursor (one position per symbol would not fit a header) but a
 * stored base plus what moved since: sse_cursor.h. Pieces are made only when the
 * previous one was written (http_conn.c), so a slow client holds one piece;
 * one that reads nothing for HTTP_IDLE_TIMEOUT_MS is closed.
 */
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "sse_cursor.h"
#include "subscribe.h"

#define SSE_PIECE (64u << 10)

typedef struct sse {
    server *srv;
    http_conn *c;
    sub *s;
    int started, ended;
    int all;          /* syms=*: the id is cur's (sse_cursor.h) */
    ssecur cur;
    int cur_failed;   /* a base could not be written: cur_err ends the stream */
    proto_error cur_err;
} sse;

static void sse_id(sub *s, proto_buf *out)
{
    sse *x = sub_owner(s);
    proto_buf_append(out, "id: ", 4);
    if (x->all)
        ssecur_text(&x->cur, out);
    else
        sub_cursor_text(s, out);
    proto_buf_append(out, "\n", 1);
}

/* "*": the event about to be written moves sym to pos. 0, or -1: the
 * stream ends with cur_err (its id could not be made). */
static int sse_moved(sub *s, const char *sym, size_t len, uint64_t pos)
{
    sse *x = sub_owner(s);
    if (!x->all)
        return 0;
    if (!x->cur_failed && ssecur_moved(&x->cur, s, sym, len, pos, &x->cur_err) < 0)
        x->cur_failed = 1;
    return x->cur_failed ? -1 : 0;
}

static int sse_chunk(sub *s, proto_buf *out, const char *sym, size_t len, const kind *k,
                     const unsigned char *slots, uint32_t n, uint64_t next)
{
    emit e;
    uint32_t nkeys = query_record_keys(k);
    if (sse_moved(s, sym, len, next) < 0)
        return -1;
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
    if (sse_moved(s, sym, len, to) < 0)
        return; /* the stream ends at the next chunk or at sse_next */
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
    if (x->cur_failed) {
        err = x->cur_err;
        rc = -1;
    }
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
    ssecur_free(&x->cur);
    free(x);
}

typedef struct sse_params {
    subproto_req *r;
    char *star;       /* from=*...: a "*" cursor, taken once syms is known */
    size_t nstar;
} sse_params;

static int sse_param(void *ctx, const char *name, size_t nlen, const char *val, size_t vlen,
                     proto_error *err)
{
    sse_params *p = ctx;
    if (nlen == 4 && memcmp(name, "from", 4) == 0 && ssecur_is(val, vlen)) {
        free(p->star);
        if (!(p->star = malloc(vlen)))
            return proto_error_set(err, PROTO_E_BAD_QUERY, -1, "out of memory");
        memcpy(p->star, val, vlen);
        p->nstar = vlen;
        p->r->from = SUBPROTO_MAP;
        return 0;
    }
    return subproto_set_param(p->r, name, nlen, val, vlen, err);
}

/* Where a "*" stream starts: its cursor (the Last-Event-ID or from=), else
 * from=now|start. 0, or -1 with err. */
static int sse_star_from(sse *x, subproto_req *r, const char *cur, size_t n,
                         subproto_sym **map, proto_error *err)
{
    if (r->from == SUBPROTO_MAP && !cur)
        return proto_error_set(err, PROTO_E_BAD_QUERY, -1,
                               "cursor: with syms=* the cursor is an event id of a syms=* "
                               "stream (it starts with '*')");
    if (!cur)
        return 0;
    if (ssecur_parse(&x->cur, cur, n, map, &r->nfromx, err) < 0)
        return -1;
    r->fromx = *map;
    r->from = SUBPROTO_MAP;
    return 0;
}

void http__subscribe(server *srv, http_conn *c, const char *qs, size_t qlen, http__answer *a)
{
    proto_error err = {0};
    subproto_req *r = calloc(1, sizeof *r);
    sse *x = calloc(1, sizeof *x);
    sse_params p = {r, NULL, 0};
    subproto_sym *map = NULL;
    const char *cur = NULL; /* a "*" cursor */
    size_t ncur = 0;
    if (!r || !x) {
        a->status = 500;
        goto out;
    }
    r->from = SUBPROTO_NOW;
    if (http__parse_qs(a, qs, qlen, sse_param, &p) < 0)
        goto out;
    if (r->nsyms == 0 && !r->all) {
        http__answer_error(a, 400, "BAD_QUERY", "parameter 'syms' is required: '*', or up to 32 "
                           "symbols, comma-separated");
        goto out;
    }
    if (c->last_id_len > sizeof c->last_id) {
        http__answer_error(a, 400, "BAD_QUERY", "Last-Event-ID is longer than 4096 bytes");
        goto out;
    }
    if (c->last_id_len && ssecur_is(c->last_id, c->last_id_len)) {
        cur = c->last_id; /* the id takes the place of from */
        ncur = c->last_id_len;
    } else if (c->last_id_len) {
        if (subproto_cursor_parse(r, c->last_id, c->last_id_len, &err) < 0) {
            http__answer_proto_error(a, &err);
            goto out;
        }
    } else if (p.star) {
        cur = p.star;
        ncur = p.nstar;
    }
    if (cur && !r->all) {
        http__answer_error(a, 400, "BAD_QUERY", "cursor: a '*' cursor (an event id of a syms=* "
                           "stream) needs syms=*");
        goto out;
    }
    for (uint32_t i = 0; !r->all && r->from == SUBPROTO_MAP && i < r->nfrom; i++) {
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
    x->all = r->all;
    if (x->all) {
        ssecur_init(&x->cur, srv->cfg.data_dir);
        if (sse_star_from(x, r, cur, ncur, &map, &err) < 0) {
            http__answer_proto_error(a, &err);
            goto out;
        }
    }
    if (!(x->s = sub_open(srv, r, &sse_enc, sse_kick, x, &err))) {
        http__answer_proto_error(a, &err);
        goto out;
    }
    /* from=now: its start as a base, so that ids need not carry it */
    if (x->all && !cur && r->from == SUBPROTO_NOW && ssecur_rebase(&x->cur, x->s, &err) < 0) {
        http__answer_error(a, 500, proto_code_name(err.code), err.msg);
        goto out;
    }
    a->status = 200;
    a->ctype = "text/event-stream";
    a->extra = "X-Accel-Buffering: no\r\n";
    a->stream = (http__stream){sse_next, sse_done, x};
    x = NULL;
out:
    if (x && x->s)
        sub_close(x->s, SUB_NDROPS);
    if (x)
        ssecur_free(&x->cur);
    free(map);
    free(p.star);
    free(r);
    free(x);
}
