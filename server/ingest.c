/* ingest — the requests of the TCP side: HELLO, T batches through the
 * journal, Q queries (connections themselves: ingest_conn.c).
 *
 * Per connection, every request becomes an `op` in a FIFO; an op is done
 * when its reply is encoded. Replies are written strictly from the head of
 * the FIFO, so acks and errors come back in request order even though a
 * batch waits for the journal while a query or a bad batch after it is
 * answered at once.
 *
 *   read -> frame -> dispatch ---------------------------+
 *                      | T: decode+stage, reserve         |
 *                      v                                  v
 *                 journal_append ... (writer thread) ... done: commit, ACK
 *                                                         |
 *   conn: op -> op -> op -> ...  (pump: head done? -> out buffer -> uv_write)
 *
 * Output is double-buffered: one uv_write in flight, replies for the next
 * accumulate in the other buffer. Nothing here is unbounded: ops per
 * connection, reply bytes per connection and journal backlog each stop
 * reading when high and resume when drained.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "delete.h"
#include "emit.h"
#include "gateway.h"
#include "ingest_internal.h"
#include "kafka.h"
#include "query.h"
#include "subproto.h"
#include "subscribe.h"

static void conn_fence(conn *old);

/* ---- ops ----------------------------------------------------------------- */

/* An op from the pool (or new), not yet in any FIFO. */
static op *op_get(struct ingest *ing)
{
    op *o = ing->pool;
    if (o) {
        ing->pool = o->next;
        ing->npool--;
    } else {
        if (!(o = calloc(1, sizeof *o)))
            return NULL;
        store_batch_init(&o->batch);
    }
    o->next = NULL;
    o->ing = ing;
    o->c = NULL;
    o->cl = NULL;
    o->done = 0;
    o->seq = 0;
    o->t0 = now_ns();
    o->reply.len = 0;
    o->sub_start = NULL;
    return o;
}

static void op_queue(conn *c, op *o)
{
    o->c = c;
    if (c->tail)
        c->tail->next = o;
    else
        c->head = o;
    c->tail = o;
    c->nops++;
}

op *op_new(conn *c)
{
    op *o = op_get(c->ing);
    if (o)
        op_queue(c, o);
    return o;
}

void op_recycle(struct ingest *ing, op *o)
{
    store_batch_reset(&o->batch);
    if (ing->npool >= OP_POOL_MAX || o->batch.cap > BATCH_KEEP || o->reply.cap > BATCH_KEEP) {
        store_batch_free(&o->batch);
        proto_buf_free(&o->reply);
        free(o);
        return;
    }
    o->next = ing->pool;
    ing->pool = o;
    ing->npool++;
}

/* Mark an op answered (its reply is in o->reply) and let the connection
 * write whatever is now at the head of its FIFO. */
void op_finish(op *o)
{
    o->done = 1;
    conn_pump(o->c);
}

void op_error(server *srv, op *o, uint64_t id, const proto_error *err)
{
    metrics_error(&srv->metrics, err->code);
    o->reply.len = 0;
    if (proto_pack_err(&o->reply, id, err) != 0)
        o->reply.len = 0;
    log_debug("request_error peer=%s code=%s id=%llu msg=\"%s\"", o->c ? o->c->peer : "-",
              proto_code_name(err->code), (unsigned long long)id, err->msg);
    op_finish(o);
}

/* ---- batches ----------------------------------------------------------------- */

static void batch_journaled(void *ctx, int status);
static void batch_produced(void *ctx, const char *kafka_err);
static void batch_staged(conn *c, op *o, const uint8_t *msg, size_t len);

static void batch_ack(server *srv, op *o, uint64_t n)
{
    uint64_t t = now_ns();
    metrics_ack(&srv->metrics, t, t - o->t0, n);
    o->reply.len = 0;
    if (o->c && proto_pack_ack(&o->reply, o->seq, n) != 0)
        o->reply.len = 0;
}

/* A batch with this seq was refused: hold the name's later seqs back until
 * it is resent (clients.h). A seq at or below accepted_seq is a resend of
 * something stored or in flight, and holds nothing. */
static void seq_refused(client_rec *cl, uint64_t seq)
{
    if (cl && seq > cl->accepted_seq && (cl->held == 0 || seq < cl->held))
        cl->held = seq;
}

static void batch_refuse(server *srv, op *o, client_rec *cl, const proto_error *err)
{
    store_batch_reset(&o->batch);
    seq_refused(cl, o->seq);
    op_error(srv, o, o->seq, err);
}

/* decode + stage -> seq rules -> reserve -> journal. The seq rules, in
 * order (PROTOCOL.md §5): stored (ACK 0), in flight (NOT_READY), held back
 * behind a refused seq (BLOCKED), new. */
static void dispatch_batch(conn *c, const uint8_t *msg, size_t len)
{
    server *srv = c->ing->srv;
    client_rec *cl = c->cl;
    op *o = op_new(c);
    proto_error err = {0};
    if (!o) {
        log_error("out_of_memory where=op_new peer=%s", c->peer);
        conn_close(c);
        return;
    }
    assert(cl && cl->owner == c);
    if (!(c->perms & AUTH_INGEST)) {
        perm_denied(c, o, 0, "send T batches");
        return;
    }
    if (proto_decode_batch(msg, len, &srv->cfg.limits, srv->store, &o->batch, &o->seq, &err) != 0) {
        batch_refuse(srv, o, cl, &err);
        return;
    }
    if (srv->cfg.source == SERVER_SOURCE_KAFKA) {
        /* Kafka is this node's only writer (kafka.h). Decoded first only to
         * echo the seq; nothing is held back: the batch is not the client's
         * fault, and another node may take it. */
        store_batch_reset(&o->batch);
        set_err(&err, PROTO_E_READ_ONLY, "this node is fed by Kafka (--source kafka): send "
                "trades to the topic, or to a TCP-fed slotd; queries work here");
        op_error(srv, o, o->seq, &err);
        return;
    }
    batch_staged(c, o, msg, len);
}

/* A T message not framed yet, decoded in the same pass that finds its end
 * (proto_decode_batch_prefix): what dispatch then dispatch_batch would do
 * for it. Returns the message's length, or 0 with nothing done — the
 * caller frames it, and dispatch decides. */
size_t dispatch_prefix(conn *c, const uint8_t *buf, size_t avail)
{
    struct ingest *ing = c->ing;
    server *srv = ing->srv;
    size_t len = 0;
    if (!c->hello || srv->cfg.source != SERVER_SOURCE_TCP || !(c->perms & AUTH_INGEST) ||
        proto_msg_type(buf, avail) != PROTO_MSG_T)
        return 0; /* dispatch_batch answers (a refusal too) */
    op *o = op_get(ing);
    if (!o)
        return 0;
    if (!proto_decode_batch_prefix(buf, avail, &srv->cfg.limits, srv->store, &o->batch, &o->seq,
                                   &len)) {
        op_recycle(ing, o);
        return 0;
    }
    srv->metrics.messages_total++;
    c->last_active = now_ns();
    op_queue(c, o);
    assert(c->cl && c->cl->owner == c);
    batch_staged(c, o, buf, len);
    return len;
}

/* The rest of dispatch_batch, for a batch decoded and staged in o. */
static void batch_staged(conn *c, op *o, const uint8_t *msg, size_t len)
{
    struct ingest *ing = c->ing;
    server *srv = ing->srv;
    client_rec *cl = c->cl;
    proto_error err = {0};
    if (o->seq == 0) {
        set_err(&err, PROTO_E_BAD_MESSAGE, "batch seq must be > 0");
        batch_refuse(srv, o, cl, &err);
        return;
    }
    cl->last_used = o->t0;
    if (o->seq <= cl->durable_seq) { /* a resend of something we hold */
        store_batch_reset(&o->batch);
        srv->metrics.duplicate_batches_total++;
        batch_ack(srv, o, 0);
        op_finish(o);
        return;
    }
    if (o->seq <= cl->accepted_seq) {
        set_err(&err, PROTO_E_NOT_READY,
                "batch %llu of this client is still being journaled; resend after its ACK",
                (unsigned long long)o->seq);
        batch_refuse(srv, o, cl, &err);
        return;
    }
    if (cl->held && o->seq > cl->held) {
        set_err(&err, PROTO_E_BLOCKED,
                "batch %llu refused: batch %llu of this client was refused and must be resent "
                "first (corrected, or empty to give it up)",
                (unsigned long long)o->seq, (unsigned long long)cl->held);
        batch_refuse(srv, o, cl, &err);
        return;
    }
    if (srv->cfg.gateway) { /* Kafka stores it (gateway.h): nothing reserved here */
        o->cl = cl;
        cl->accepted_seq = o->seq;
        if (cl->held == o->seq)
            cl->held = 0;
        cl->inflight++;
        gateway_submit(srv, cl, o->seq, msg, len, batch_produced, o);
        return;
    }
    int rc = store_batch_reserve(srv->store, &o->batch);
    if (rc != STORE_OK) {
        set_err(&err, PROTO_E_STORE_FULL, "storing the batch would exceed the memory cap (%s)",
                server_strerror(rc));
        batch_refuse(srv, o, cl, &err);
        return;
    }
    o->cl = cl;
    cl->accepted_seq = o->seq;
    if (cl->held == o->seq)
        cl->held = 0;
    cl->inflight++;
    if (!srv->journal) { /* --no-journal: benchmarks of the store path alone */
        batch_journaled(o, 0);
        return;
    }
    rc = journal_append(srv->journal, c->client, c->clen, o->seq, msg, len, batch_journaled, o);
    if (rc != 0)
        batch_journaled(o, rc);
    else if (journal_pending(srv->journal) > JOURNAL_HIGH && !ing->paused_all) {
        ing->paused_all = 1;
        for (conn *x = ing->conns; x; x = x->next)
            conn_update_reading(x);
    }
}

/* The journal has the batch (status 0, why NULL) or failed to write it
 * (-errno, why: the client's message); with --gateway, Kafka has every
 * part of it or not. The journal fails every record appended before the
 * loop saw a failure (and the gateway every batch of the name queued behind
 * a failed one), so a failed seq is never followed by a stored higher seq
 * of the same client that was already in flight: resetting accepted_seq to
 * durable_seq is exact, and holding the name at the lowest failed seq keeps
 * every refused seq above every stored one. */
static void batch_done(op *o, int status, const char *why)
{
    struct ingest *ing = o->ing;
    server *srv = ing->srv;
    client_rec *cl = o->cl;
    assert(cl->inflight > 0);
    cl->inflight--;
    if (!why) {
        uint64_t n = o->batch.n;
        if (srv->cfg.gateway) /* nothing of it is kept here */
            store_batch_reset(&o->batch);
        else {
            sub_note_batch(srv, &o->batch);
            store_batch_commit(srv->store, &o->batch);
            sub_committed(srv); /* only now is it visible, and durable */
        }
        if (o->seq > cl->durable_seq)
            cl->durable_seq = o->seq;
        batch_ack(srv, o, n);
    } else {
        proto_error err;
        char name[LOG_ESC_MAX(CLIENTS_NAME_MAX)];
        store_batch_release(srv->store, &o->batch);
        store_batch_reset(&o->batch);
        cl->accepted_seq = cl->durable_seq;
        seq_refused(cl, o->seq);
        set_err(&err, PROTO_E_JOURNAL, "%s", why);
        if (!srv->cfg.gateway) /* (the gateway logs its own: gateway_batch_failed) */
            log_warn("journal_error seq=%llu client=%s err=%s", (unsigned long long)o->seq,
                     log_esc(name, sizeof name, cl->name, cl->len), uv_strerror(status));
        metrics_error(&srv->metrics, err.code);
        o->reply.len = 0;
        if (proto_pack_err(&o->reply, o->seq, &err) != 0)
            o->reply.len = 0;
    }
    /* A connection that went away still gets its batch committed (the journal
     * has it, so replay would restore it); only the reply is dropped. */
    if (o->c)
        op_finish(o);
    else
        op_recycle(ing, o);
    if (ing->paused_all && srv->journal && journal_pending(srv->journal) < JOURNAL_LOW) {
        ing->paused_all = 0;
        for (conn *x = ing->conns; x; x = x->next)
            conn_update_reading(x);
    }
}

static void batch_journaled(void *ctx, int status)
{
    char why[128];
    if (status != 0)
        snprintf(why, sizeof why, "journal write failed: %s; batch not stored",
                 uv_strerror(status));
    batch_done(ctx, status, status == 0 ? NULL : why);
}

/* --gateway: every part of the batch is in Kafka (kafka_err NULL), or not.
 * The gateway fails every batch of the name queued behind a failed one, so
 * as with the journal no later seq is delivered past a failed one. */
static void batch_produced(void *ctx, const char *kafka_err)
{
    batch_done(ctx, kafka_err ? UV_EIO : 0, kafka_err);
}

/* ---- HELLO and queries --------------------------------------------------- */

static int token_equal(const char *a, const char *b)
{
    /* Constant time in the length of the expected token. */
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++)
        d |= (unsigned char)(a[i] ^ (i < lb ? b[i] : 0));
    return d == 0;
}

/* Does HELLO h carry valid credentials: --token's, or --auth-file's for
 * its client name (*perms then)? Without either, anyone may do anything. */
static int hello_authorized(server *srv, const proto_hello *h, unsigned *perms)
{
    *perms = AUTH_ALL;
    if (srv->cfg.token)
        return h->has_token && token_equal(srv->cfg.token, h->token);
    if (srv->auth)
        return h->has_token && auth_check(srv->auth, h->client, strlen(h->client), h->token,
                                          strlen(h->token), perms) == AUTH_OK;
    return 1;
}

/* The client's --auth-file perms do not cover `what`: refused and counted,
 * then closed (UNAUTHORIZED always closes). */
void perm_denied(conn *c, op *o, uint64_t id, const char *what)
{
    server *srv = c->ing->srv;
    proto_error err;
    srv->metrics.auth_failures_total++;
    log_warn("auth_denied peer=%s client=%s action=\"%s\"", c->peer, c->client_log, what);
    set_err(&err, PROTO_E_UNAUTHORIZED, "client '%s' may not %s (--auth-file perms)", c->client,
            what);
    c->close_after_flush = 1;
    op_error(srv, o, id, &err);
}

static void dispatch_hello(conn *c, const uint8_t *msg, size_t len)
{
    server *srv = c->ing->srv;
    op *o = op_new(c);
    proto_hello h;
    proto_error err = {0};
    if (!o) {
        conn_close(c);
        return;
    }
    if (c->hello) {
        set_err(&err, PROTO_E_BAD_MESSAGE, "HELLO was already sent on this connection");
        op_error(srv, o, 0, &err);
        return;
    }
    if (proto_decode_hello(msg, len, &h, &err) != 0) {
        c->close_after_flush = 1;
        op_error(srv, o, 0, &err);
        return;
    }
    if (clients_reserved(h.client, strlen(h.client))) {
        set_err(&err, PROTO_E_BAD_MESSAGE, "client names starting with 'kafka:' or 'gw:' are "
                "reserved for the Kafka source");
        c->close_after_flush = 1;
        op_error(srv, o, 0, &err);
        return;
    }
    unsigned perms;
    const char *refused = NULL;
    char cn[PROTO_NAME_MAX + 2];
    if (!hello_authorized(srv, &h, &perms)) /* which of name and secret: not said, nor logged */
        refused = srv->auth ? "unknown client name or wrong secret" : "missing or wrong token";
    else if (srv->cfg.tls_client_names && c->tls &&
             (tls_peer_name(c->tls, cn, sizeof cn), strcmp(cn, h.client) != 0))
        /* --tls-client-names: one producer's certificate cannot speak for
         * another's name */
        refused = "the client certificate does not name this client";
    if (refused) {
        set_err(&err, PROTO_E_UNAUTHORIZED, "%s", refused);
        srv->metrics.auth_failures_total++;
        c->close_after_flush = 1;
        char name[LOG_ESC_MAX(PROTO_NAME_MAX)];
        log_warn("auth_failed peer=%s client=%s reason=\"%s\"", c->peer,
                 log_esc(name, sizeof name, h.client, strlen(h.client)), refused);
        op_error(srv, o, 0, &err);
        return;
    }
    if (!srv->ready) {
        set_err(&err, PROTO_E_NOT_READY, "slotd is replaying its journal or stopping; retry");
        c->close_after_flush = 1;
        op_error(srv, o, 0, &err);
        return;
    }
    struct ingest *ing = c->ing;
    if (ing->nauthed >= srv->cfg.max_connections) {
        set_err(&err, PROTO_E_TOO_MANY_CONNECTIONS, "slotd is at --max-connections (%u)",
                srv->cfg.max_connections);
        log_warn("conn_refused peer=%s reason=max_connections conns=%u", c->peer, ing->nauthed);
        c->close_after_flush = 1;
        op_error(srv, o, 0, &err);
        return;
    }
    size_t clen = strlen(h.client);
    client_rec *cl = clients_get(&srv->clients, h.client, clen, o->t0);
    if (!cl) {
        set_err(&err, PROTO_E_TOO_MANY_CLIENTS, "slotd remembers --max-clients (%u) names and "
                "none can be forgotten yet (see --client-ttl)", srv->cfg.max_clients);
        log_warn("conn_refused peer=%s reason=max_clients clients=%u", c->peer, srv->clients.n);
        c->close_after_flush = 1;
        op_error(srv, o, 0, &err);
        return;
    }
    c->clen = clen;
    c->perms = perms;
    memcpy(c->client, h.client, clen + 1);
    log_esc(c->client_log, sizeof c->client_log, c->client, c->clen);
    if (cl->owner)
        conn_fence(cl->owner);
    cl->owner = c;
    cl->last_used = o->t0;
    c->cl = cl;
    c->hello = 1;
    pending_remove(c);
    ing->nauthed++;
    if (proto_pack_welcome(&o->reply, SLOTD_VERSION, cl->durable_seq) != 0)
        o->reply.len = 0;
    log_info("hello peer=%s client=%s last_seq=%llu", c->peer, c->client_log,
             (unsigned long long)cl->durable_seq);
    op_finish(o);
}

/* A newer connection took the name: this one finishes what it accepted,
 * answers FENCED and closes. It reads nothing more, so it can store
 * nothing more under the name (one writer per name: PROTOCOL.md §5). */
static void conn_fence(conn *old)
{
    proto_error err;
    log_info("conn_fenced peer=%s client=%s", old->peer, old->client_log);
    old->cl = NULL;
    set_err(&err, PROTO_E_FENCED, "a newer connection took over client name '%s'", old->client);
    fatal_stream_error(old, &err);
}

/* A Q "delete" is done (delete.h): ["R", qid, {deleted...}] or the ERR.
 * Like a batch, the op outlives a closed connection until this runs. */
static void query_deleted(void *ctx, const query_req *q, uint64_t deleted, const proto_error *err)
{
    op *o = ctx;
    server *srv = o->ing->srv;
    if (!o->c) {
        if (err)
            metrics_error(&srv->metrics, err->code);
        op_recycle(o->ing, o);
        return;
    }
    if (err) {
        op_error(srv, o, o->seq, err);
        return;
    }
    emit e;
    emit_msgpack_init(&e, &o->reply);
    e.array(&e, 3);
    emit_cstr(&e, "R");
    e.u64(&e, o->seq);
    query_emit_deleted(&e, q, deleted);
    op_finish(o);
}

/* --gateway: a node's reply to a forwarded query, or why there is none. */
static void query_forwarded(void *ctx, const uint8_t *reply, size_t len, const proto_error *err)
{
    op *o = ctx;
    server *srv = o->ing->srv;
    if (!o->c) { /* the connection went away meanwhile */
        op_recycle(o->ing, o);
        return;
    }
    if (err) {
        op_error(srv, o, o->seq, err);
        return;
    }
    o->reply.len = 0;
    if (proto_buf_append(&o->reply, reply, len) != 0) {
        proto_error e;
        set_err(&e, PROTO_E_TOO_LARGE, "out of memory copying the node's reply");
        op_error(srv, o, o->seq, &e);
        return;
    }
    op_finish(o);
}

static void dispatch_query(conn *c, const uint8_t *msg, size_t len)
{
    server *srv = c->ing->srv;
    op *o = op_new(c);
    uint64_t qid = 0;
    query_req q;
    proto_error err = {0};
    if (!o) {
        conn_close(c);
        return;
    }
    srv->metrics.queries_total++;
    if (query_decode(msg, len, &qid, &q, &err) != 0) {
        op_error(srv, o, qid, &err);
        return;
    }
    unsigned need = q.op == QUERY_DELETE ? AUTH_INGEST : AUTH_QUERY;
    if (!(c->perms & need)) {
        perm_denied(c, o, qid, q.op == QUERY_DELETE ? "delete" : "query");
        return;
    }
    if (srv->cfg.gateway && q.op != QUERY_SCHEMA) {
        o->seq = qid;
        int rc = -1;
        if (q.op == QUERY_TOP) /* merged over the nodes */
            rc = gateway_top(srv, &q, qid, 0, query_forwarded, o, &err);
        else if (q.op == QUERY_STATS) /* every node's figures and their sum */
            rc = gateway_stats_query(srv, qid, query_forwarded, o, &err);
        else if (q.op == QUERY_DELETE) /* say so rather than delete from an empty store */
            set_err(&err, PROTO_E_BAD_QUERY, "this is a gateway (--gateway): deletes are not "
                    "routed to the nodes; ask a node");
        else if (q.op == QUERY_OFFSETS)
            set_err(&err, PROTO_E_BAD_QUERY, "this is a gateway (--gateway): it owns no "
                    "partitions; ask a node (the gateway's /stats lists how far behind each is)");
        else
            rc = gateway_query_forward(srv, &q, msg, len, query_forwarded, o, &err);
        if (rc == 0)
            return;
        op_error(srv, o, qid, &err);
        return;
    }
    if (q.op == QUERY_DELETE) { /* a write: journaled, answered when applied */
        o->seq = qid;
        delete_submit(srv, &q, query_deleted, o);
        return;
    }
    /* ["R", qid, result]: the header is packed here, the result by query_run. */
    emit e;
    emit_msgpack_init(&e, &o->reply);
    e.array(&e, 3);
    emit_cstr(&e, "R");
    e.u64(&e, qid);
    if (q.op == QUERY_OFFSETS && srv->kafka) /* the store knows no offsets: the source does */
        kafka_offsets_emit(srv, &e);
    else if (query_run(srv->store, &q, &e, &err) != 0) {
        op_error(srv, o, qid, &err);
        return;
    }
    if (e.err) {
        set_err(&err, PROTO_E_TOO_LARGE, "out of memory encoding the result");
        op_error(srv, o, qid, &err);
        return;
    }
    op_finish(o);
}

void dispatch(conn *c, const uint8_t *msg, size_t len)
{
    server *srv = c->ing->srv;
    proto_msg t = proto_msg_type(msg, len);
    srv->metrics.messages_total++;
    c->last_active = now_ns();
    if (t == PROTO_MSG_HELLO) {
        dispatch_hello(c, msg, len);
        return;
    }
    if (!c->hello) {
        op *o = op_new(c);
        proto_error err;
        if (!o) {
            conn_close(c);
            return;
        }
        set_err(&err, PROTO_E_NOT_HELLO, "the first message must be HELLO");
        c->close_after_flush = 1;
        op_error(srv, o, 0, &err);
        return;
    }
    if (t == PROTO_MSG_T) {
        dispatch_batch(c, msg, len);
    } else if (t == PROTO_MSG_Q) {
        dispatch_query(c, msg, len);
    } else if (subproto_is(msg, len, "SUB") || subproto_is(msg, len, "UNSUB")) {
        sub_tcp_dispatch(c, msg, len, subproto_is(msg, len, "UNSUB"));
    } else {
        op *o = op_new(c);
        proto_error err;
        if (!o) {
            conn_close(c);
            return;
        }
        set_err(&err, PROTO_E_BAD_MESSAGE, "expected an array starting with \"HELLO\", \"T\", \"Q\", \"SUB\" or "
                "\"UNSUB\"");
        op_error(srv, o, 0, &err);
    }
}

