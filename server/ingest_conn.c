/* ingest_conn — the connection side of ingest: accept, read and frame,
 * the per-connection reply FIFO's output, budgets and deadlines, lingering
 * close. Requests themselves are ingest.c's (ingest_internal.h).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "emit.h"
#include "ingest_internal.h"

static void ingest_stopped(struct ingest *ing);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

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

void pending_remove(conn *c)
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

void conn_update_reading(conn *c)
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
    if (want) {
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        /* TLS input already read from the socket waits in c->tls, not in
         * the kernel: no read callback would come for it. */
        if (c->tls && tls_in_pending(c->tls))
            conn_tls_drain_later(c);
    } else {
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
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
    if (c->writing || c->closing || c->lingering)
        return;
    proto_buf *src = &c->out[c->cur];
    if (c->tls) {
        if (conn_tls_seal(c) != 0)
            return;
        src = &c->tout;
    }
    if (src->len == 0)
        return;
    uv_buf_t buf = uv_buf_init(src->data, (unsigned)src->len);
    c->writing = 1;
    c->write_since = now_ns();
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
    c->tout.len = 0;
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
    if (c->tls) { /* close_notify, best effort: nothing else is being written */
        tls_close_notify(c->tls);
        conn_tls_send_now(c);
    }
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
void conn_pump(conn *c)
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
        if (o->sub_start && !c->closing)
            sub_tcp_live(c, o->sub_start);
        op_recycle(ing, o);
    }
    if (c->closing || c->lingering)
        return;
    if (c->nsubs && !c->close_after_flush)
        sub_tcp_fill(c);
    if (c->closing)
        return;
    conn_flush(c);
    int drained = !c->head && !c->writing && conn_out_bytes(c) == 0;
    if (drained && (c->close_after_flush || ing->srv->stopping)) {
        conn_linger(c);
        return;
    }
    conn_update_reading(c);
}

/* The room one read should find. At least READ_CHUNK; for a connection
 * sending large messages, room for READ_AHEAD_MSGS of them (up to
 * READ_AHEAD_MAX), because a message split across two reads is walked
 * twice (framed as its first part arrives, then decoded) while a whole one
 * is decoded in one pass: with 57 KB batches and 64 KiB reads nearly every
 * message was split (docs/performance.md, lever 7). */
static size_t rbuf_want(const conn *c)
{
    if (!c->hello)
        return HELLO_BUF;
    size_t w = c->last_len < READ_AHEAD_MAX / READ_AHEAD_MSGS ? c->last_len * READ_AHEAD_MSGS
                                                              : READ_AHEAD_MAX;
    return w > READ_CHUNK ? w : READ_CHUNK;
}

/* Grow rbuf to at least `room` bytes after rlen (capped at `limit`) if the
 * read buffers' total stays within `budget`, or as the one overdraft. */
static void rbuf_grow(conn *c, size_t room, size_t limit, uint64_t budget, int may_overdraft)
{
    struct ingest *ing = c->ing;
    size_t cap = c->rcap ? c->rcap * 2 : (c->hello ? RBUF_BASE : HELLO_BUF);
    while (cap - c->rlen < room)
        cap *= 2;
    if (cap > limit)
        cap = limit;
    size_t more = rbuf_over(cap) - rbuf_over(c->rcap);
    int fits = more == 0 || ing->rbuf_bytes + more <= budget;
    /* Past the budget one connection at a time may still grow to finish
     * its message, so connections holding parts of messages can never all
     * wait for each other. */
    if (!fits && may_overdraft && !ing->overdraft)
        ing->overdraft = c;
    if (!fits && !(may_overdraft && ing->overdraft == c))
        return;
    uint8_t *p = realloc(c->rbuf, cap);
    if (!p)
        return;
    ing->rbuf_bytes += rbuf_over(cap) - rbuf_over(c->rcap);
    c->rbuf = p;
    c->rcap = cap;
}

/* Make room for one more read if the budgets allow: the room left after
 * rlen (0: none, wait). Read-ahead (rbuf_want) takes only the first half
 * of --max-buffered; past it, a connection grows only by what one read
 * needs (READ_CHUNK), from the whole budget or the overdraft, so
 * read-ahead never crowds out a message that must be finished. */
size_t rbuf_room(conn *c)
{
    const uint64_t budget = c->ing->srv->cfg.max_buffered;
    size_t need = c->hello ? READ_CHUNK : HELLO_BUF, want = rbuf_want(c);
    size_t limit = c->hello ? c->ing->srv->cfg.limits.max_msg + want : HELLO_BUF;
    if (c->rcap - c->rlen < want && c->rcap < limit)
        rbuf_grow(c, want, limit, budget / 2, 0);
    if (c->rcap - c->rlen < need && c->rcap < limit)
        rbuf_grow(c, need, limit, budget, 1);
    return c->rcap - c->rlen;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    /* Lingering input is discarded; TLS ciphertext is copied into c->tls
     * at once. Loop thread only, used by one read callback at a time. */
    static uint8_t scratch[READ_CHUNK];
    conn *c = h->data;
    if (c->lingering || c->tls) {
        *buf = uv_buf_init((char *)scratch, sizeof scratch);
        return;
    }
    size_t room = rbuf_room(c);
    /* no room at all: on_read gets UV_ENOBUFS */
    *buf = room ? uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)room) : uv_buf_init(NULL, 0);
}

/* --max-buffered is spent: wait for room (rbuf_released). The message
 * deadline keeps running, so waiting cannot last forever. */
void conn_starve(conn *c)
{
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
    if (!c->starved) {
        c->starved = 1;
        c->ing->nstarved++;
    }
}

void fatal_stream_error(conn *c, const proto_error *err)
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
        conn_starve(c);
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
    srv->metrics.bytes_in_total += (uint64_t)nread;
    c->last_active = now_ns();
    if (c->tls) {
        conn_tls_input(c, buf->base, (size_t)nread);
        return;
    }
    c->rlen += (size_t)nread;
    conn_input(c);
}

/* rbuf gained bytes: frame and dispatch every whole message, keep the
 * rest, then write and decide on reading. */
void conn_input(conn *c)
{
    server *srv = c->ing->srv;
    size_t pos = 0;
    while (!c->closing && !c->close_after_flush && pos < c->rlen) {
        size_t mlen = 0;
        proto_error err = {0};
        /* A message not started yet is most likely whole when at least as
         * many bytes as the last one took are here: then decoding it finds
         * its end too, one pass instead of frame then decode. (A guess
         * only: a wrong one costs a partial decode, then the framer.) */
        if (c->framer.off == 0 && c->rlen - pos >= c->last_len &&
            (mlen = dispatch_prefix(c, c->rbuf + pos, c->rlen - pos)) != 0) {
            pos += mlen;
            c->last_len = mlen;
            continue;
        }
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
        c->last_len = mlen;
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
    /* A large buffer kept for one huge message is given back once it is
     * done; one sized for read-ahead is kept (freeing it at every pause
     * would fault its pages in again). */
    if (c->rlen == 0 && c->rcap > 4 * rbuf_want(c)) {
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
    proto_buf_free(&c->tout);
    tls_conn_free(c->tls);
    free(c);
    rbuf_released(ing);
    if (ing->srv->stopping && !ing->conns && ing->stopped)
        ingest_stopped(ing);
}

void conn_close(conn *c)
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
    sub_tcp_closed(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        ing->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    log_info("conn_close peer=%s client=%s conns=%u", c->peer, c->client_log,
             ing->srv->metrics.connections);
    server_close((uv_handle_t *)&c->tcp, on_conn_closed);
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
        server_close((uv_handle_t *)&c->tcp, on_accept_failed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (l == (uv_stream_t *)&ing->tls_listener && tls_conn_new(&c->tls, srv->tls) != TLS_OK) {
        server_close((uv_handle_t *)&c->tcp, on_accept_failed);
        return;
    }
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
        if (c->nsubs && !c->closing && sub_tcp_stalled(c, now))
            continue;
        if (!limit || c->closing || c->close_after_flush)
            continue;
        int stalled = c->msg_start && (c->reading || c->starved) && now - c->msg_start >= limit;
        if (!stalled && (c->head || c->nsubs || now - c->last_active < limit))
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

/* Listen on host (""/NULL: --listen's) at `port`; *bound: the port bound. */
static int ingest_listen(struct ingest *ing, uv_tcp_t *l, int *listening, const char *host, int port,
                         int *bound)
{
    return server_listen(ing->srv->loop, l, ing, host && *host ? host : ing->srv->cfg.listen_host,
                         port, 1024, on_connection, listening, bound);
}

int ingest_start(server *srv)
{
    struct ingest *ing = srv->ingest;
    int rc;
    srv->tls_port = -1;
    uv_idle_init(srv->loop, &ing->tls_drain);
    ing->tls_drain.data = ing;
    if ((rc = ingest_listen(ing, &ing->listener, &ing->listening, NULL, srv->cfg.listen_port,
                            &srv->tcp_port)) != 0)
        return rc;
    /* TLS once main.c loaded a certificate (a config zeroed by hand has none). */
    if (srv->tls && srv->cfg.tls_port >= 0 &&
        (rc = ingest_listen(ing, &ing->tls_listener, &ing->tls_listening, srv->cfg.tls_host,
                            srv->cfg.tls_port, &srv->tls_port)) != 0)
        return rc;
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
    if (!uv_is_closing((uv_handle_t *)&ing->tls_drain))
        uv_close((uv_handle_t *)&ing->tls_drain, NULL);
    done(ing->srv);
}

void ingest_stop(server *srv, void (*done)(server *srv))
{
    struct ingest *ing = srv->ingest;
    ing->stopped = done;
    if (ing->listening) {
        server_close((uv_handle_t *)&ing->listener, NULL);
        ing->listening = 0;
    }
    if (ing->tls_listening) {
        server_close((uv_handle_t *)&ing->tls_listener, NULL);
        ing->tls_listening = 0;
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

