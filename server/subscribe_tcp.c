/* subscribe_tcp — SUB and UNSUB on a TCP connection (PROTOCOL.md §10).
 *
 * SUB is answered in order like any request (SUBOK through the op FIFO);
 * its S messages start once that SUBOK has left the FIFO, so a client
 * always sees SUBOK first. Pushes go straight into the connection's output
 * buffer, and only when it holds less than SUB_PIECE bytes: a connection's
 * pushes take one piece being written and one being filled, however many
 * trades wait. A write that has not completed for --sub-stall-timeout
 * means the peer is not reading: the subscriber is dropped (counted
 * "stalled"; it cannot be told why, it reads nothing) and ingest goes on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "ingest_internal.h"
#include "subscribe.h"

#define SUB_PIECE (64u << 10)
#define SUBS_PER_CONN 256

typedef struct sub_tcp {
    conn *c;
    sub *s;
    int live; /* SUBOK is out */
} sub_tcp;

static int tcp_chunk(sub *s, proto_buf *out, const char *sym, size_t len, const kind *k,
                     const unsigned char *slots, uint32_t n, uint64_t next)
{
    return subproto_pack_s(out, sub_id(s), sym, len, k, next, slots, n);
}

static void tcp_gap(sub *s, proto_buf *out, const char *sym, size_t len, uint64_t from,
                    uint64_t to)
{
    emit e;
    emit_msgpack_init(&e, out);
    subproto_gap(&e, sub_id(s), sym, len, from, to);
}

static const sub_enc tcp_enc = {tcp_chunk, tcp_gap};

static void tcp_kick(void *owner)
{
    sub_tcp *t = owner;
    if (t->live && !t->c->writing)
        conn_pump(t->c);
}

static sub_tcp *find(conn *c, uint64_t id, uint32_t *at)
{
    for (uint32_t i = 0; i < c->nsubs; i++)
        if (sub_id(c->subs[i]->s) == id) {
            if (at)
                *at = i;
            return c->subs[i];
        }
    return NULL;
}

/* Take subscription i off c (closing it, counted under `why`). */
static void drop(conn *c, uint32_t i, int why)
{
    sub_tcp *t = c->subs[i];
    for (op *o = c->head; o; o = o->next) /* a SUBOK not yet out */
        if (o->sub_start == t)
            o->sub_start = NULL;
    sub_close(t->s, why);
    free(t);
    c->subs[i] = c->subs[--c->nsubs];
}

static void unsub(conn *c, op *o, const uint8_t *msg, size_t len)
{
    server *srv = c->ing->srv;
    proto_error err;
    uint64_t id = 0;
    uint32_t at = 0;
    if (subproto_decode_unsub(msg, len, &id, &err) < 0) {
        op_error(srv, o, id, &err);
        return;
    }
    if (!find(c, id, &at)) {
        set_err(&err, PROTO_E_BAD_SUB, "no subscription with id %llu on this connection",
                (unsigned long long)id);
        op_error(srv, o, id, &err);
        return;
    }
    drop(c, at, SUB_NDROPS);
    emit e;
    emit_msgpack_init(&e, &o->reply);
    subproto_unsubok(&e, id);
    op_finish(o);
}

void sub_tcp_dispatch(conn *c, const uint8_t *msg, size_t len, int is_unsub)
{
    server *srv = c->ing->srv;
    proto_error err;
    op *o = op_new(c);
    if (!o) {
        conn_close(c);
        return;
    }
    if (is_unsub) {
        unsub(c, o, msg, len);
        return;
    }
    subproto_req *r = malloc(sizeof *r);
    sub_tcp *t = NULL;
    if (!r) {
        set_err(&err, PROTO_E_BAD_SUB, "out of memory for the subscription");
        op_error(srv, o, 0, &err);
        return;
    }
    if (subproto_decode_sub(msg, len, r, &err) < 0)
        goto fail;
    if (!(c->perms & AUTH_SUBSCRIBE)) {
        perm_denied(c, o, r->id, "subscribe");
        free(r);
        return;
    }
    if (srv->cfg.gateway) {
        set_err(&err, PROTO_E_BAD_SUB, "this is a gateway (--gateway): it stores no trades; "
                "subscribe at the nodes that own the symbols (docs/cluster.md)");
        goto fail;
    }
    if (find(c, r->id, NULL)) {
        set_err(&err, PROTO_E_BAD_SUB, "subscription id %llu is already open on this connection",
                (unsigned long long)r->id);
        goto fail;
    }
    if (c->nsubs == SUBS_PER_CONN) {
        set_err(&err, PROTO_E_BAD_SUB, "more than %d subscriptions on one connection",
                SUBS_PER_CONN);
        goto fail;
    }
    if (c->nsubs == c->subs_cap) {
        uint32_t cap = c->subs_cap ? c->subs_cap * 2 : 4;
        sub_tcp **v = realloc(c->subs, cap * sizeof *v);
        if (!v) {
            set_err(&err, PROTO_E_BAD_SUB, "out of memory for the subscription");
            goto fail;
        }
        c->subs = v;
        c->subs_cap = cap;
    }
    if (!(t = calloc(1, sizeof *t))) {
        set_err(&err, PROTO_E_BAD_SUB, "out of memory for the subscription");
        goto fail;
    }
    t->c = c;
    if (!(t->s = sub_open(srv, r, &tcp_enc, tcp_kick, t, &err))) {
        free(t);
        goto fail;
    }
    c->subs[c->nsubs++] = t;
    emit e;
    emit_msgpack_init(&e, &o->reply);
    subproto_begin_subok(&e, r->id);
    sub_emit_cursor(t->s, &e);
    char n[16];
    snprintf(n, sizeof n, "%u", r->nsyms);
    log_info("subscribe peer=%s client=%s id=%llu syms=%s", c->peer, c->client_log,
             (unsigned long long)r->id, r->all ? "*" : n);
    free(r);
    o->sub_start = t;
    op_finish(o);
    return;
fail:
    op_error(srv, o, r->id, &err);
    free(r);
}

void sub_tcp_live(conn *c, sub_tcp *t)
{
    (void)c;
    t->live = 1;
}

void sub_tcp_fill(conn *c)
{
    proto_buf *out = &c->out[c->cur];
    proto_error err;
    for (uint32_t k = 0; k < c->nsubs && out->len < SUB_PIECE; k++) {
        uint32_t i = (c->subs_rr + k) % c->nsubs;
        sub_tcp *t = c->subs[i];
        if (!t->live)
            continue;
        if (sub_fill(t->s, out, SUB_PIECE, &err) < 0) {
            int why = err.code == PROTO_E_CURSOR_GONE ? SUB_DROP_GONE : SUB_DROP_STALLED;
            c->ing->srv->metrics.errors_total[err.code]++;
            log_warn("subscriber_dropped peer=%s client=%s id=%llu reason=%s msg=\"%s\"", c->peer,
                     c->client_log, (unsigned long long)sub_id(t->s), sub_drop_names[why],
                     err.msg);
            if (proto_pack_err(out, sub_id(t->s), &err) != 0)
                c->close_after_flush = 1;
            drop(c, i, why);
            k--; /* slot i holds another subscription now */
        }
    }
    if (c->nsubs)
        c->subs_rr = (c->subs_rr + 1) % c->nsubs;
}

void sub_tcp_closed(conn *c)
{
    while (c->nsubs)
        drop(c, c->nsubs - 1, SUB_NDROPS);
    free(c->subs);
    c->subs = NULL;
    c->subs_cap = 0;
}

int sub_tcp_stalled(conn *c, uint64_t now)
{
    server *srv = c->ing->srv;
    uint64_t limit = srv->cfg.sub_stall_ns;
    if (!c->writing || !limit || now - c->write_since < limit)
        return 0;
    log_warn("subscriber_dropped peer=%s client=%s subscriptions=%u reason=stalled "
             "(a write pending for --sub-stall-timeout: the peer is not reading)",
             c->peer, c->client_log, c->nsubs);
    srv->metrics.errors_total[PROTO_E_SLOW_SUBSCRIBER]++;
    while (c->nsubs)
        drop(c, c->nsubs - 1, SUB_DROP_STALLED);
    conn_close(c);
    return 1;
}
