/* ingest — TCP connections, HELLO, batches through the journal, queries.
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
#include "ingest.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <msgpack.h>

#include "emit.h"
#include "log.h"
#include "delete.h"
#include "query.h"

#define READ_CHUNK (64 * 1024)
#define OPS_HIGH 4096               /* in-flight requests per connection */
#define OPS_LOW 1024
#define OUT_HIGH (4u << 20)         /* unsent reply bytes per connection */
#define OUT_LOW (1u << 20)
#define JOURNAL_HIGH (256u << 20)   /* journal backlog that pauses all reading */
#define JOURNAL_LOW (64u << 20)
#define OP_POOL_MAX 1024
#define BATCH_KEEP (1u << 20)       /* staged-batch capacity a pooled op may keep */
#define FD_HEADROOM 8               /* warn when a new connection's fd is this near the limit */
#define HELLO_MSG_MAX 4096          /* largest message before HELLO (a HELLO needs < 400 bytes) */
#define HELLO_BUF 8192              /* read buffer before HELLO */
#define LINGER_NS 1000000000u       /* after the last reply: read and discard this long at most */
#define SWEEP_MS 250
#define RBUF_BASE (2 * READ_CHUNK)  /* read buffer every connection past HELLO may have */

typedef struct op op;
typedef struct conn conn;

struct ingest {
    server *srv;
    uv_tcp_t listener;
    int listening;
    uv_timer_t sweep;          /* idle, HELLO and linger deadlines */
    conn *conns;               /* doubly linked */
    conn *pend_head, *pend_tail; /* connections before HELLO, oldest first */
    uint32_t npending, nauthed;
    uint64_t rbuf_bytes;       /* read-buffer capacity of every connection (--max-buffered) */
    uint32_t nstarved;         /* connections waiting for read-buffer room */
    conn *overdraft;           /* the one connection allowed past --max-buffered */
    op *pool;                  /* recycled ops */
    uint32_t npool;
    int paused_all;            /* journal backlog high */
    void (*stopped)(server *srv);
    uint64_t nofile;           /* RLIMIT_NOFILE at start; 0 = unknown/unlimited */
    uint64_t fd_warned;        /* ns of the last fd_limit_near warning */
};

struct op {
    op *next;
    struct ingest *ing;
    conn *c;         /* NULL once its connection is gone */
    client_rec *cl;
    int done;
    uint64_t seq;
    uint64_t t0;     /* ns, when the request was read */
    store_batch batch;
    proto_buf reply;
};

struct conn {
    uv_tcp_t tcp;
    struct ingest *ing;
    conn *prev, *next;
    char peer[64];
    char client[PROTO_NAME_MAX + 1];
    char client_log[LOG_ESC_MAX(PROTO_NAME_MAX)]; /* escaped, for log lines */
    size_t clen;
    client_rec *cl;      /* the name this connection holds; NULL before HELLO or once fenced */
    conn *pend_prev, *pend_next;
    uint64_t opened;     /* ns, accept time (HELLO deadline) */
    int hello, pending;  /* pending: in the before-HELLO list */
    int starved;         /* reading stopped until --max-buffered has room */
    int lingering;       /* replies sent, write side shut: discarding input until EOF */
    uint64_t linger_until;
    uv_shutdown_t sreq;
    int reading, closing, close_after_flush;
    uint8_t *rbuf;
    size_t rlen, rcap;
    proto_framer framer;
    op *head, *tail;
    uint32_t nops;
    proto_buf out[2];   /* out[cur] accumulates; the other may be in a write */
    int cur, writing;
    uv_write_t wreq;
    uint64_t last_active;
    uint64_t msg_start;  /* ns: first byte of the incomplete message in rbuf; 0 = none */
};

static void conn_pump(conn *c);
static void conn_close(conn *c);
static void conn_fence(conn *old);
static void pending_remove(conn *c);
static void fatal_stream_error(conn *c, const proto_error *err);
static void ingest_stopped(struct ingest *ing);
static void conn_update_reading(conn *c);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static uint64_t now_ns(void) { return uv_hrtime(); }

/* ---- ops ----------------------------------------------------------------- */

static op *op_new(conn *c)
{
    struct ingest *ing = c->ing;
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
    o->c = c;
    o->cl = NULL;
    o->done = 0;
    o->seq = 0;
    o->t0 = now_ns();
    o->reply.len = 0;
    if (c->tail)
        c->tail->next = o;
    else
        c->head = o;
    c->tail = o;
    c->nops++;
    return o;
}

static void op_recycle(struct ingest *ing, op *o)
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
static void op_finish(op *o)
{
    o->done = 1;
    conn_pump(o->c);
}

static void op_error(server *srv, op *o, uint64_t id, const proto_error *err)
{
    metrics_error(&srv->metrics, err->code);
    o->reply.len = 0;
    if (proto_pack_err(&o->reply, id, err) != 0)
        o->reply.len = 0;
    log_debug("request_error peer=%s code=%s id=%llu msg=\"%s\"", o->c ? o->c->peer : "-",
              proto_code_name(err->code), (unsigned long long)id, err->msg);
    op_finish(o);
}

static void set_err(proto_error *e, proto_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(proto_error *e, proto_code code, const char *fmt, ...)
{
    va_list ap;
    e->code = code;
    e->index = -1;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
}

/* ---- batches ----------------------------------------------------------------- */

static void batch_journaled(void *ctx, int status);

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
    struct ingest *ing = c->ing;
    server *srv = ing->srv;
    client_rec *cl = c->cl;
    op *o = op_new(c);
    proto_error err = {0};
    if (!o) {
        log_error("out_of_memory where=op_new peer=%s", c->peer);
        conn_close(c);
        return;
    }
    assert(cl && cl->owner == c);
    if (proto_decode_batch(msg, len, &srv->cfg.limits, srv->store, &o->batch, &o->seq, &err) != 0) {
        batch_refuse(srv, o, cl, &err);
        return;
    }
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
    int rc = store_batch_reserve(srv->store, &o->batch);
    if (rc != STORE_OK) {
        set_err(&err, PROTO_E_STORE_FULL, "storing the batch would exceed the memory cap (%s)",
                store_strerror(rc));
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

/* The journal has the batch (status 0) or failed to write it (-errno). The
 * journal fails every record appended before the loop saw a failure, so a
 * failed seq is never followed by a journaled higher seq of the same client
 * that was already in flight: resetting accepted_seq to durable_seq is
 * exact, and holding the name at the lowest failed seq keeps every refused
 * seq above every stored one. */
static void batch_journaled(void *ctx, int status)
{
    op *o = ctx;
    struct ingest *ing = o->ing;
    server *srv = ing->srv;
    client_rec *cl = o->cl;
    assert(cl->inflight > 0);
    cl->inflight--;
    if (status == 0) {
        uint64_t n = o->batch.n;
        store_batch_commit(srv->store, &o->batch);
        if (o->seq > cl->durable_seq)
            cl->durable_seq = o->seq;
        batch_ack(srv, o, n);
    } else {
        proto_error err;
        char name[LOG_ESC_MAX(PROTO_NAME_MAX)];
        store_batch_release(srv->store, &o->batch);
        store_batch_reset(&o->batch);
        cl->accepted_seq = cl->durable_seq;
        seq_refused(cl, o->seq);
        set_err(&err, PROTO_E_JOURNAL, "journal write failed: %s; batch not stored",
                uv_strerror(status));
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
    if (srv->cfg.token && (!h.has_token || !token_equal(srv->cfg.token, h.token))) {
        set_err(&err, PROTO_E_UNAUTHORIZED, "missing or wrong token");
        c->close_after_flush = 1;
        char name[LOG_ESC_MAX(PROTO_NAME_MAX)];
        log_warn("auth_failed peer=%s client=%s", c->peer,
                 log_esc(name, sizeof name, h.client, strlen(h.client)));
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
    if (query_run(srv->store, &q, &e, &err) != 0) {
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

static void dispatch(conn *c, const uint8_t *msg, size_t len)
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
    } else {
        op *o = op_new(c);
        proto_error err;
        if (!o) {
            conn_close(c);
            return;
        }
        set_err(&err, PROTO_E_BAD_MESSAGE, "expected an array starting with \"HELLO\", \"T\" or \"Q\"");
        op_error(srv, o, 0, &err);
    }
}

/* ---- connection I/O ----------------------------------------------------- */

/*   accept -> pending (before HELLO: small buffer, HELLO deadline, at most
 *             --max-handshakes of them, a new one pushes out the oldest)
 *          -> authed  (HELLO: at most --max-connections)
 *          -> closing after the last reply: write side shut down, input
 *             read and discarded until EOF or LINGER_NS (lingering), so a
 *             peer still sending is not reset before it reads what it is owed
 *          -> closed
 * Read buffers of all connections share --max-buffered (plus one message
 * in progress: the overdraft); a connection that needs more than is left
 * stops reading (starved) until some is freed. */

static size_t conn_out_bytes(const conn *c) { return c->out[0].len + c->out[1].len; }

static void pending_remove(conn *c)
{
    struct ingest *ing = c->ing;
    if (!c->pending)
        return;
    if (c->pend_prev)
        c->pend_prev->pend_next = c->pend_next;
    else
        ing->pend_head = c->pend_next;
    if (c->pend_next)
        c->pend_next->pend_prev = c->pend_prev;
    else
        ing->pend_tail = c->pend_prev;
    c->pend_prev = c->pend_next = NULL;
    c->pending = 0;
    ing->npending--;
}

static void pending_add(conn *c)
{
    struct ingest *ing = c->ing;
    c->pending = 1;
    c->pend_prev = ing->pend_tail;
    if (ing->pend_tail)
        ing->pend_tail->pend_next = c;
    else
        ing->pend_head = c;
    ing->pend_tail = c;
    ing->npending++;
}

static void conn_update_reading(conn *c)
{
    server *srv = c->ing->srv;
    if (c->lingering || c->closing)
        return;
    int want = !c->close_after_flush && !srv->stopping && !c->ing->paused_all && !c->starved &&
               c->nops < (c->reading ? OPS_HIGH : OPS_LOW) &&
               conn_out_bytes(c) < (c->reading ? OUT_HIGH : OUT_LOW);
    if (want == c->reading)
        return;
    c->reading = want;
    if (want && c->msg_start)
        c->msg_start = now_ns(); /* the pause was ours: restart the message's clock */
    if (want)
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    else
        uv_read_stop((uv_stream_t *)&c->tcp);
}

/* Read-buffer bytes were given back: connections waiting for room retry. */
static void rbuf_released(struct ingest *ing)
{
    if (!ing->nstarved)
        return;
    for (conn *x = ing->conns; x; x = x->next)
        if (x->starved) {
            x->starved = 0;
            ing->nstarved--;
            conn_update_reading(x);
        }
}

/* What a read buffer of `cap` bytes counts against --max-buffered: only
 * what lies past the base buffer every connection has (bounded anyway by
 * the connection limits), so a spent budget never stops a HELLO or a
 * small message, only the growth that large messages need. */
static size_t rbuf_over(size_t cap) { return cap > RBUF_BASE ? cap - RBUF_BASE : 0; }

static void rbuf_free(conn *c)
{
    if (c->ing->overdraft == c)
        c->ing->overdraft = NULL;
    c->ing->rbuf_bytes -= rbuf_over(c->rcap);
    free(c->rbuf);
    c->rbuf = NULL;
    c->rcap = 0;
}

static void write_done(uv_write_t *req, int status);

static void conn_flush(conn *c)
{
    if (c->writing || c->closing || c->lingering || c->out[c->cur].len == 0)
        return;
    uv_buf_t buf = uv_buf_init(c->out[c->cur].data, (unsigned)c->out[c->cur].len);
    c->writing = 1;
    c->cur ^= 1;
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &buf, 1, write_done);
    if (rc != 0) {
        c->writing = 0;
        c->out[c->cur ^ 1].len = 0;
        conn_close(c);
    }
}

static void write_done(uv_write_t *req, int status)
{
    conn *c = req->data;
    c->writing = 0;
    c->out[c->cur ^ 1].len = 0;
    if (status != 0) {
        conn_close(c);
        return;
    }
    conn_pump(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn *c = req->data;
    if (status != 0 && status != UV_ECANCELED)
        conn_close(c);
}

/* Everything owed is written: send FIN, then discard what the peer still
 * sends until it closes too (or LINGER_NS), so its unread ACKs are not
 * destroyed by a reset. */
static void conn_linger(conn *c)
{
    if (c->lingering || c->closing)
        return;
    c->lingering = 1;
    c->linger_until = now_ns() + LINGER_NS;
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close(c);
        return;
    }
    if (c->starved) {
        c->starved = 0;
        c->ing->nstarved--;
    }
    c->reading = 1;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* Move finished replies from the head of the FIFO to the output buffer,
 * write, and decide whether the connection should read or close. */
static void conn_pump(conn *c)
{
    struct ingest *ing = c->ing;
    while (c->head && c->head->done) {
        op *o = c->head;
        c->head = o->next;
        if (!c->head)
            c->tail = NULL;
        c->nops--;
        if (!c->closing && o->reply.len &&
            proto_buf_append(&c->out[c->cur], o->reply.data, o->reply.len) != 0)
            c->close_after_flush = 1; /* cannot even queue a reply: give up on the peer */
        op_recycle(ing, o);
    }
    if (c->closing || c->lingering)
        return;
    conn_flush(c);
    int drained = !c->head && !c->writing && conn_out_bytes(c) == 0;
    if (drained && (c->close_after_flush || ing->srv->stopping)) {
        conn_linger(c);
        return;
    }
    conn_update_reading(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static uint8_t discard[READ_CHUNK]; /* lingering input: loop thread only */
    conn *c = h->data;
    struct ingest *ing = c->ing;
    if (c->lingering) {
        *buf = uv_buf_init((char *)discard, sizeof discard);
        return;
    }
    size_t chunk = c->hello ? READ_CHUNK : HELLO_BUF;
    size_t limit = c->hello ? c->ing->srv->cfg.limits.max_msg + READ_CHUNK : HELLO_BUF;
    if (c->rcap - c->rlen < chunk && c->rcap < limit) {
        size_t cap = c->rcap ? c->rcap * 2 : (c->hello ? RBUF_BASE : HELLO_BUF);
        while (cap - c->rlen < chunk)
            cap *= 2;
        if (cap > limit)
            cap = limit;
        uint8_t *p = NULL;
        size_t more = rbuf_over(cap) - rbuf_over(c->rcap);
        int fits = more == 0 || ing->rbuf_bytes + more <= ing->srv->cfg.max_buffered;
        /* Past the budget one connection at a time may still grow to finish
         * its message, so connections holding parts of messages can never
         * all wait for each other. */
        if (!fits && !ing->overdraft)
            ing->overdraft = c;
        if (fits || ing->overdraft == c)
            p = realloc(c->rbuf, cap);
        if (p) {
            ing->rbuf_bytes += rbuf_over(cap) - rbuf_over(c->rcap);
            c->rbuf = p;
            c->rcap = cap;
        }
    }
    if (c->rcap == c->rlen) { /* no room at all: on_read gets UV_ENOBUFS */
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void fatal_stream_error(conn *c, const proto_error *err)
{
    op *o = op_new(c);
    c->close_after_flush = 1;
    if (!o) {
        conn_close(c);
        return;
    }
    log_warn("stream_error peer=%s client=%s code=%s msg=\"%s\"", c->peer, c->client_log,
             proto_code_name(err->code), err->msg);
    op_error(c->ing->srv, o, 0, err);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = s->data;
    server *srv = c->ing->srv;
    if (nread == UV_ENOBUFS && !c->lingering) {
        /* --max-buffered is spent: wait for room (rbuf_released). The
         * message deadline keeps running, so waiting cannot last forever. */
        uv_read_stop(s);
        c->reading = 0;
        if (!c->starved) {
            c->starved = 1;
            c->ing->nstarved++;
        }
        return;
    }
    if (nread < 0) {
        if (nread != UV_EOF && !c->lingering)
            log_info("conn_error peer=%s err=%s", c->peer, uv_strerror((int)nread));
        /* The peer is gone or half-closed: finish nothing more for it. */
        conn_close(c);
        return;
    }
    if (nread == 0 || c->lingering)
        return;
    c->rlen += (size_t)nread;
    srv->metrics.bytes_in_total += (uint64_t)nread;
    c->last_active = now_ns();
    size_t pos = 0;
    while (!c->closing && !c->close_after_flush && pos < c->rlen) {
        size_t mlen = 0;
        proto_error err = {0};
        proto_limits hello_limits, *lim = &srv->cfg.limits;
        if (!c->hello) { /* before HELLO only a small message is accepted */
            hello_limits = *lim;
            hello_limits.max_msg = HELLO_MSG_MAX;
            lim = &hello_limits;
        }
        int rc = proto_frame(&c->framer, c->rbuf + pos, c->rlen - pos, lim, &mlen, &err);
        if (rc == PROTO_FRAME_MORE)
            break;
        if (rc < 0) {
            fatal_stream_error(c, &err);
            break;
        }
        dispatch(c, c->rbuf + pos, mlen);
        pos += mlen;
        proto_framer_reset(&c->framer);
    }
    if (c->closing)
        return;
    if (pos) {
        memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
        c->rlen -= pos;
    }
    /* A message must arrive whole within the idle timeout of its first byte
     * (on_sweep), so a byte-a-second sender cannot hold a connection. */
    if (c->rlen == 0)
        c->msg_start = 0;
    else if (pos || !c->msg_start)
        c->msg_start = c->last_active;
    /* A large buffer kept for one huge message is given back once it is done. */
    if (c->rlen == 0 && c->rcap > 4 * READ_CHUNK) {
        rbuf_free(c);
        rbuf_released(c->ing);
    }
    conn_pump(c);
}

static void on_conn_closed(uv_handle_t *h)
{
    conn *c = h->data;
    struct ingest *ing = c->ing;
    rbuf_free(c);
    proto_buf_free(&c->out[0]);
    proto_buf_free(&c->out[1]);
    free(c);
    rbuf_released(ing);
    if (ing->srv->stopping && !ing->conns && ing->stopped)
        ingest_stopped(ing);
}

static void conn_close(conn *c)
{
    struct ingest *ing = c->ing;
    if (c->closing)
        return;
    c->closing = 1;
    ing->srv->metrics.connections--;
    if (c->pending)
        pending_remove(c);
    else if (c->hello)
        ing->nauthed--;
    if (c->starved) {
        c->starved = 0;
        ing->nstarved--;
    }
    if (c->cl && c->cl->owner == c)
        c->cl->owner = NULL;
    c->cl = NULL;
    /* Ops still waiting for the journal outlive the connection; the rest go. */
    op *o = c->head;
    while (o) {
        op *next = o->next;
        if (o->done) {
            op_recycle(ing, o);
        } else {
            o->c = NULL; /* batch_journaled recycles it */
        }
        o = next;
    }
    c->head = c->tail = NULL;
    c->nops = 0;
    if (c->prev)
        c->prev->next = c->next;
    else
        ing->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    log_info("conn_close peer=%s client=%s conns=%u", c->peer, c->client_log,
             ing->srv->metrics.connections);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void conn_peer_name(conn *c)
{
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    char host[48] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof host);
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof host);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    snprintf(c->peer, sizeof c->peer, "%s:%d", host, port);
}

static void on_accept_failed(uv_handle_t *h) { free(h->data); }

static void on_connection(uv_stream_t *l, int status)
{
    struct ingest *ing = l->data;
    server *srv = ing->srv;
    if (status < 0) {
        log_warn("accept_error err=%s", uv_strerror(status));
        return;
    }
    conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->ing = ing;
    c->tcp.data = c;
    c->wreq.data = c;
    uv_tcp_init(srv->loop, &c->tcp);
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_accept_failed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    /* Past RLIMIT_NOFILE libuv accepts and closes new connections itself
     * (its EMFILE reserve fd) without telling us: say so while near it. */
    uv_os_fd_t fd;
    if (ing->nofile && uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0 &&
        (uint64_t)fd + FD_HEADROOM >= ing->nofile && now_ns() - ing->fd_warned > 5000000000u) {
        ing->fd_warned = now_ns();
        log_warn("fd_limit_near fd=%d nofile=%llu conns=%u: connections past the fd limit are "
                 "closed unanswered; raise ulimit -n (LimitNOFILE) or lower --max-connections",
                 fd, (unsigned long long)ing->nofile, srv->metrics.connections + 1);
    }
    conn_peer_name(c);
    c->opened = c->last_active = now_ns();
    c->next = ing->conns;
    if (ing->conns)
        ing->conns->prev = c;
    ing->conns = c;
    srv->metrics.connections++;
    srv->metrics.connections_total++;
    /* Connections that have not said HELLO are cheap to open and prove
     * nothing: they get their own small budget, and a flood of them pushes
     * out the oldest, never an authenticated client. */
    if (ing->npending >= srv->cfg.max_handshakes) {
        log_debug("conn_evicted peer=%s reason=max_handshakes", ing->pend_head->peer);
        srv->metrics.handshakes_evicted_total++;
        conn_close(ing->pend_head);
    }
    pending_add(c);
    log_debug("conn_open peer=%s conns=%u", c->peer, srv->metrics.connections);
    c->reading = 1;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* Deadlines: a HELLO within --hello-timeout of accept; nothing read for
 * idle_timeout with nothing in flight; a message still incomplete
 * idle_timeout after its first byte (while we were reading it, or waiting
 * for buffer room: a pause for backpressure restarts its clock); the end of
 * a linger. */
static void on_sweep(uv_timer_t *t)
{
    struct ingest *ing = t->data;
    server *srv = ing->srv;
    uint64_t now = now_ns(), hello_limit = (uint64_t)srv->cfg.hello_timeout_ms * 1000000u;
    proto_error err;
    while (ing->pend_head && now - ing->pend_head->opened >= hello_limit) {
        conn *c = ing->pend_head;
        pending_remove(c); /* oldest first: the list is in accept order */
        if (c->close_after_flush)
            continue;
        set_err(&err, PROTO_E_IDLE_TIMEOUT, "no HELLO within --hello-timeout");
        fatal_stream_error(c, &err);
    }
    uint64_t limit = (uint64_t)srv->cfg.idle_timeout_ms * 1000000u;
    for (conn *c = ing->conns, *next; c; c = next) {
        next = c->next;
        if (c->lingering) {
            if (now >= c->linger_until)
                conn_close(c);
            continue;
        }
        if (!limit || c->closing || c->close_after_flush)
            continue;
        int stalled = c->msg_start && (c->reading || c->starved) && now - c->msg_start >= limit;
        if (!stalled && (c->head || now - c->last_active < limit))
            continue;
        set_err(&err, PROTO_E_IDLE_TIMEOUT, stalled ? "a message was not completed within the "
                "idle timeout of its first byte" : "no message within the idle timeout");
        fatal_stream_error(c, &err);
    }
}

/* ---- lifecycle ------------------------------------------------------------ */

int ingest_init(server *srv)
{
    struct ingest *ing = calloc(1, sizeof *ing);
    if (!ing)
        return UV_ENOMEM;
    ing->srv = srv;
    srv->ingest = ing;
    srv->clients.max = srv->cfg.max_clients;
    srv->clients.ttl_ns = srv->cfg.client_ttl_ns;
    srv->clients.started = now_ns();
    return 0;
}

int ingest_start(server *srv)
{
    struct ingest *ing = srv->ingest;
    struct sockaddr_storage addr;
    int rc;
    if ((rc = uv_ip4_addr(srv->cfg.listen_host, srv->cfg.listen_port, (struct sockaddr_in *)&addr)) &&
        (rc = uv_ip6_addr(srv->cfg.listen_host, srv->cfg.listen_port, (struct sockaddr_in6 *)&addr)))
        return rc;
    uv_tcp_init(srv->loop, &ing->listener);
    ing->listener.data = ing;
    ing->listening = 1;
    if ((rc = uv_tcp_bind(&ing->listener, (struct sockaddr *)&addr, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&ing->listener, 1024, on_connection)) != 0)
        return rc;
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    uv_tcp_getsockname(&ing->listener, (struct sockaddr *)&bound, &blen);
    srv->tcp_port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                                : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        ing->nofile = rl.rlim_cur;
    uint64_t every = SWEEP_MS;
    if (srv->cfg.idle_timeout_ms && srv->cfg.idle_timeout_ms / 4 < every)
        every = srv->cfg.idle_timeout_ms / 4 ? srv->cfg.idle_timeout_ms / 4 : 1;
    uv_timer_init(srv->loop, &ing->sweep);
    ing->sweep.data = ing;
    uv_timer_start(&ing->sweep, on_sweep, every, every);
    return 0;
}

/* Every connection is gone: the sweep timer goes too, then `stopped`. */
static void ingest_stopped(struct ingest *ing)
{
    void (*done)(server *) = ing->stopped;
    ing->stopped = NULL;
    if (uv_is_active((uv_handle_t *)&ing->sweep))
        uv_close((uv_handle_t *)&ing->sweep, NULL);
    done(ing->srv);
}

void ingest_stop(server *srv, void (*done)(server *srv))
{
    struct ingest *ing = srv->ingest;
    ing->stopped = done;
    if (ing->listening) {
        uv_close((uv_handle_t *)&ing->listener, NULL);
        ing->listening = 0;
    }
    if (!ing->conns) {
        ingest_stopped(ing);
        return;
    }
    /* Stop reading everywhere; each connection closes once its replies are
     * out and its linger is over. */
    for (conn *c = ing->conns, *next; c; c = next) {
        next = c->next;
        conn_pump(c);
    }
}

void ingest_get_stats(const server *srv, ingest_stats *st)
{
    const struct ingest *ing = srv->ingest;
    memset(st, 0, sizeof *st);
    if (!ing)
        return;
    st->pending = ing->npending;
    st->sessions = ing->nauthed;
    st->buffered = ing->rbuf_bytes;
    st->starved = ing->nstarved;
}

void ingest_free(server *srv)
{
    struct ingest *ing = srv->ingest;
    if (!ing)
        return;
    while (ing->pool) {
        op *o = ing->pool;
        ing->pool = o->next;
        store_batch_free(&o->batch);
        proto_buf_free(&o->reply);
        free(o);
    }
    free(ing);
    srv->ingest = NULL;
}
