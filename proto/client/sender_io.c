/* The sender's connection: non-blocking connect, HELLO, writing the queue
 * within the window, reading replies and acting on each (docs/clients.md's
 * table), reconnects with back-off, and the poll() step the blocking calls
 * wait in. The socket is always non-blocking; "blocking mode" is this same
 * state machine driven by slotd__step from inside the calls.
 *
 * The queue: head .. tail in seq order. `reply` is the batch the next reply
 * answers (replies come in request order), `wr` the next batch with bytes
 * to write; [reply, wr] are in flight. A refusal stops new writes until
 * every reply in flight is in, then writing starts again from the head
 * (which is then the refused batch: everything before it was acknowledged). */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

static int backoff_next(int cur, const slotd_sender *s)
{
    int64_t n = (int64_t)cur * 2;
    return n > s->o.backoff_max_ms ? s->o.backoff_max_ms : (int)n;
}

static void build_hello(slotd_sender *s)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, &s->hello, slotd__buf_write);
    slotd__pack_hello(&pk, s->client, s->token);
}

void slotd__io_init(slotd_sender *s)
{
    s->fd = -1;
    s->state = SLOTD__IDLE;
    s->backoff_ms = s->retry_backoff_ms = s->o.backoff_min_ms;
    slotd__reader_init(&s->rd);
    build_hello(s);
}

static void close_fd(slotd_sender *s)
{
    if (s->fd < 0)
        return;
    if (s->o.on_socket)
        s->o.on_socket(s->o.user, s->fd, 0);
    slotd__tls_end(s);
    close(s->fd);
    s->fd = -1;
}

void slotd__io_close(slotd_sender *s)
{
    close_fd(s);
    slotd__tls_free(s);
    slotd__reader_destroy(&s->rd);
    free(s->hello.data);
    s->hello.data = NULL;
}

void slotd__stop(slotd_sender *s, int rc)
{
    if (s->state == SLOTD__STOPPED)
        return;
    close_fd(s);
    s->state = SLOTD__STOPPED;
    s->fatal_rc = rc;
    if (s->last.code != rc) /* callers set the details; a bare stop still says why */
        slotd__set_error(s, rc, NULL, 0, -1, "%s", slotd_strerror(rc));
    if (s->o.on_error)
        s->o.on_error(s->o.user, &s->last);
}

/* Forget the connection's position: everything unacknowledged is written
 * again, in order, from the head. */
static void restart_queue(slotd_sender *s)
{
    s->wr = s->head;
    s->wr_off = 0;
    s->reply = NULL;
    s->inflight = 0;
    s->rewind = 0;
}

/* The connection is gone (or refused for now): back off, then reconnect. */
__attribute__((format(printf, 2, 3))) static void conn_lost(slotd_sender *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->obstacle, sizeof s->obstacle, fmt, ap);
    va_end(ap);
    close_fd(s);
    s->state = SLOTD__IDLE;
    s->retry_at = slotd__now_ms() + (uint64_t)s->backoff_ms;
    s->backoff_ms = backoff_next(s->backoff_ms, s);
    s->st.reconnects++;
    restart_queue(s);
    slotd__reader_reset(&s->rd);
}

static void write_hello(slotd_sender *s);

static void start_connect(slotd_sender *s)
{
    struct addrinfo hints = {0}, *ai = NULL;
    char port[16];
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof port, "%d", s->o.port);
    int g = getaddrinfo(s->host, port, &hints, &ai);
    if (g != 0) {
        conn_lost(s, "disconnected: cannot resolve %s: %s", s->host, gai_strerror(g));
        return;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(ai);
        conn_lost(s, "disconnected: socket: %s", strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    int e = errno;
    freeaddrinfo(ai);
    s->fd = fd;
    if (s->o.on_socket)
        s->o.on_socket(s->o.user, fd, 1);
    if (rc == 0) {
        s->state = SLOTD__HELLO;
        s->hello_off = 0;
        if (slotd__tls_start(s) == 0)
            write_hello(s);
    } else if (e == EINPROGRESS) {
        s->state = SLOTD__CONNECTING;
    } else {
        conn_lost(s, "disconnected: connect to %s:%d: %s", s->host, s->o.port, strerror(e));
    }
}

static void write_hello(slotd_sender *s)
{
    while (s->hello_off < s->hello.len) {
        struct iovec iov = {s->hello.data + s->hello_off, s->hello.len - s->hello_off};
        ssize_t w = slotd__io_send(s, &iov, 1);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK && s->state != SLOTD__STOPPED)
                conn_lost(s, "disconnected: HELLO: %s", strerror(errno));
            return;
        }
        s->hello_off += (size_t)w;
    }
}

/* The batch's message, built when it is (re)written: ["T", seq, trades
 * (, kind)] in place in front of the trades array, or the empty batch that
 * settles a given-up seq. */
static void prepare(slotd__batch *b)
{
    char h[16], *p = h;
    *p++ = (char)(b->kind_len && !b->given_up ? 0x94 : 0x93);
    *p++ = (char)0xa1;
    *p++ = 'T';
    p = slotd__enc_uint(p, b->seq);
    size_t n = (size_t)(p - h);
    if (b->given_up) {
        memcpy(b->settle, h, n);
        b->settle[n] = (char)0x90;
        b->msg = b->settle;
        b->msg_len = n + 1;
        return;
    }
    b->msg = b->mem + b->body_off - n;
    memcpy(b->msg, h, n);
    b->msg_len = b->size - (b->body_off - n);
}

/* Writes what the window allows, without blocking. */
static void write_batches(slotd_sender *s)
{
    if (s->state != SLOTD__READY)
        return;
    s->want_write = 0;
    if (slotd__io_flush(s) != 0) { /* TLS: earlier ciphertext first */
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            s->want_write = 1;
        else
            conn_lost(s, "disconnected: send: %s", strerror(errno));
        return;
    }
    for (;;) {
        struct iovec iov[64];
        int n = 0;
        uint32_t fresh = 0;
        size_t off = s->wr_off;
        for (slotd__batch *b = s->wr; b && n < 64; b = b->next, off = 0) {
            if (off == 0) {
                if (s->rewind || s->inflight + fresh >= s->o.window || b->seq == 0)
                    break;
                if (s->retry_at && slotd__now_ms() < s->retry_at)
                    break; /* backing off after a transient refusal */
                prepare(b);
                fresh++;
            }
            iov[n].iov_base = b->msg + off;
            iov[n].iov_len = b->msg_len - off;
            n++;
        }
        if (n == 0)
            return;
        ssize_t w = slotd__io_send(s, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                s->want_write = 1;
            else if (s->state != SLOTD__STOPPED)
                conn_lost(s, "disconnected: send: %s", strerror(errno));
            return;
        }
        size_t left = (size_t)w;
        while (left > 0) {
            slotd__batch *b = s->wr;
            if (s->wr_off == 0) { /* its first byte: now in flight */
                s->inflight++;
                if (!s->reply)
                    s->reply = b;
                if (b->sent)
                    s->st.resent_batches++;
                b->sent = 1;
            }
            size_t rem = b->msg_len - s->wr_off;
            if (left >= rem) {
                left -= rem;
                s->wr = b->next;
                s->wr_off = 0;
            } else {
                s->wr_off += left;
                left = 0;
            }
        }
    }
}

/* Acknowledged batches leave the queue from the head. */
static void pop_done(slotd_sender *s)
{
    while (s->head && s->head->acked) {
        slotd__batch *b = s->head;
        s->head = b->next;
        if (!s->head)
            s->tail = NULL;
        if (s->wr == b) {
            s->wr = b->next;
            s->wr_off = 0;
        }
        s->queued_bytes -= b->size;
        s->queued_batches--;
        s->done_batches++;
        s->ack_to_spool = b->seq;
        slotd__batch_free(b);
    }
}

static void mark_acked(slotd_sender *s, slotd__batch *b)
{
    if (b->acked)
        return;
    b->acked = 1;
    if (b->given_up)
        return; /* its error was reported when it was given up */
    s->st.acked_batches++;
    s->st.acked_trades += b->ntrades;
    if (s->o.on_ack)
        s->o.on_ack(s->o.user, b->seq, b->ntrades, b->user);
}

static void on_welcome(slotd_sender *s, uint64_t last_seq)
{
    if (!s->seq_known && slotd__assign_seqs(s, last_seq) != 0)
        return;
    /* Everything at or below last_seq is stored: done. */
    for (slotd__batch *b = s->head; b && b->seq <= last_seq; b = b->next)
        mark_acked(s, b);
    if (s->head && s->head->acked)
        s->t_progress = slotd__now_ms();
    pop_done(s);
    s->state = SLOTD__READY;
    s->backoff_ms = s->o.backoff_min_ms;
    restart_queue(s);
}

/* All replies in flight are in after a refusal: write again from the head,
 * after a back-off if the refusal was transient. */
static void rewind_queue(slotd_sender *s)
{
    restart_queue(s);
    if (s->rewind_backoff) {
        s->retry_at = slotd__now_ms() + (uint64_t)s->retry_backoff_ms;
        s->retry_backoff_ms = backoff_next(s->retry_backoff_ms, s);
        s->rewind_backoff = 0;
    }
}

static void fatal_reply(slotd_sender *s, int rc, const slotd__reply *r)
{
    slotd__set_error(s, rc, r->code, r->seq, r->index, "%s: %s", r->code, r->message);
    slotd__stop(s, rc);
}

static void protocol_error(slotd_sender *s, const char *what, uint64_t got)
{
    slotd__set_error(s, SLOTD_EPROTOCOL, NULL, got, -1, "%s (seq %llu, expected %llu)", what,
                     (unsigned long long)got, (unsigned long long)(s->reply ? s->reply->seq : 0));
    slotd__stop(s, SLOTD_EPROTOCOL);
}

/* The batch the reply answers: the oldest in flight, with its seq. */
static slotd__batch *answered(slotd_sender *s, const slotd__reply *r, const char *what)
{
    slotd__batch *b = s->reply;
    if (s->state != SLOTD__READY || !b || b->seq != r->seq) {
        protocol_error(s, what, r->seq);
        return NULL;
    }
    s->inflight--;
    s->reply = s->inflight ? b->next : NULL;
    return b;
}

static void on_batch_err(slotd_sender *s, slotd__batch *b, const slotd__reply *r)
{
    int fatal_rc, cls = slotd__code_class(r->code, 0, &fatal_rc);
    switch (cls) {
    case SLOTD__C_FATAL:
        fatal_reply(s, fatal_rc, r);
        return;
    case SLOTD__C_TRANSIENT:
        snprintf(s->obstacle, sizeof s->obstacle, "%s: %s", r->code, r->message);
        s->rewind_backoff = 1;
        break;
    case SLOTD__C_PERMANENT:
        if (b->given_up) { /* even the empty batch was refused: no way forward */
            fatal_reply(s, SLOTD_EPROTOCOL, r);
            return;
        }
        b->given_up = 1;
        s->batch_failed = 1;
        s->st.failed_batches++;
        slotd__set_error(s, SLOTD_EBATCH, r->code, r->seq, r->index, "%s", r->message);
        if (s->o.on_error)
            s->o.on_error(s->o.user, &s->last);
        break;
    default: /* BLOCKED: resent after the refused seq */
        break;
    }
    s->rewind = 1;
}

static void on_reply(slotd_sender *s, const slotd__reply *r)
{
    slotd__batch *b;
    int fatal_rc;
    switch (r->type) {
    case SLOTD__R_WELCOME:
        if (s->state != SLOTD__HELLO) {
            protocol_error(s, "WELCOME out of turn", r->seq);
            return;
        }
        on_welcome(s, r->seq);
        return;
    case SLOTD__R_ACK:
        if (!(b = answered(s, r, "ACK for a batch not in flight")))
            return;
        mark_acked(s, b);
        s->t_progress = slotd__now_ms();
        s->retry_backoff_ms = s->o.backoff_min_ms;
        s->obstacle[0] = '\0';
        pop_done(s);
        break;
    case SLOTD__R_ERR:
        if (r->seq == 0) { /* about the session or the stream: it closes */
            if (slotd__code_class(r->code, 1, &fatal_rc) == SLOTD__C_FATAL) {
                fatal_reply(s, fatal_rc, r);
                return;
            }
            conn_lost(s, "%s: %s", r->code, r->message);
            return;
        }
        if (!(b = answered(s, r, "ERR for a batch not in flight")))
            return;
        on_batch_err(s, b, r);
        break;
    default:
        return; /* an R nobody asked for */
    }
    if (s->rewind && s->inflight == 0 && s->state == SLOTD__READY)
        rewind_queue(s);
}

static void read_replies(slotd_sender *s)
{
    /* TLS may hold decrypted bytes no socket event will announce: drain. */
    for (int round = 0; (round < 16 || slotd__io_more(s)) &&
                        (s->state == SLOTD__HELLO || s->state == SLOTD__READY);
         round++) {
        size_t cap;
        char *buf = slotd__reader_space(&s->rd, 64 << 10, &cap);
        if (!buf) {
            slotd__set_error(s, SLOTD_ENOMEM, NULL, 0, -1, "out of memory for replies");
            slotd__stop(s, SLOTD_ENOMEM);
            return;
        }
        ssize_t n = slotd__io_recv(s, buf, cap);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0 && s->state == SLOTD__STOPPED)
            return;
        if (n <= 0) {
            conn_lost(s, "disconnected: %s", n == 0 ? "closed by the server" : strerror(errno));
            return;
        }
        slotd__reader_commit(&s->rd, (size_t)n);
        slotd__reply r;
        int rc;
        while ((rc = slotd__reader_next(&s->rd, &r)) == 1) {
            on_reply(s, &r);
            if (s->state != SLOTD__READY && s->state != SLOTD__HELLO)
                return;
        }
        if (rc < 0) {
            slotd__set_error(s, SLOTD_EPROTOCOL, NULL, 0, -1, "%s", r.message);
            slotd__stop(s, SLOTD_EPROTOCOL);
            return;
        }
        if ((size_t)n < cap && !slotd__io_more(s))
            break;
    }
    /* One ACKED record per read, not per batch. */
    if (s->has_spool && s->ack_to_spool > s->spool.acked &&
        slotd__spool_ack(&s->spool, s->ack_to_spool) != 0) {
        slotd__set_error(s, SLOTD_ESPOOL, NULL, s->ack_to_spool, -1, "spool %s: cannot append",
                         s->spool.path);
        slotd__stop(s, SLOTD_ESPOOL);
        return;
    }
    if (s->has_spool && !s->head && s->spool.size > (1u << 20) && slotd__spool_compact(&s->spool) != 0) {
        slotd__set_error(s, SLOTD_ESPOOL, NULL, 0, -1, "spool %s: cannot compact", s->spool.path);
        slotd__stop(s, SLOTD_ESPOOL);
    }
}

static void connected(slotd_sender *s)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err != 0) {
        conn_lost(s, "disconnected: connect to %s:%d: %s", s->host, s->o.port, strerror(err));
        return;
    }
    s->state = SLOTD__HELLO;
    s->hello_off = 0;
    if (slotd__tls_start(s) == 0)
        write_hello(s);
}

/* Linger: the open batch seals this long after its first record. */
static int64_t linger_left(const slotd_sender *s, uint64_t now)
{
    if (s->open_n == 0 || s->in_record || s->o.linger_ms <= 0)
        return -1;
    int64_t left = (int64_t)(s->open_t0 + (uint64_t)s->o.linger_ms) - (int64_t)now;
    return left > 0 ? left : 0;
}

void slotd__kick(slotd_sender *s)
{
    if (s->in_io)
        return;
    s->in_io = 1;
    uint64_t now = slotd__now_ms();
    if (s->state == SLOTD__IDLE && now >= s->retry_at)
        start_connect(s);
    if (s->state == SLOTD__CONNECTING) { /* done connecting? (no waiting) */
        struct pollfd p = {.fd = s->fd, .events = POLLOUT};
        if (poll(&p, 1, 0) > 0)
            connected(s);
    }
    if (s->state == SLOTD__HELLO) { /* the WELCOME may be in: then batches can go */
        write_hello(s);
        read_replies(s);
        if (s->state == SLOTD__HELLO)
            write_hello(s); /* TLS: the handshake may have just finished */
    }
    if (s->state == SLOTD__READY) {
        if (s->retry_at && now >= s->retry_at)
            s->retry_at = 0;
        write_batches(s);
        if (s->inflight)
            read_replies(s); /* without waiting: ACKs free the window */
        write_batches(s);
    }
    s->in_io = 0;
}

int slotd_sender_process(slotd_sender *s, int revents)
{
    if (s->state == SLOTD__STOPPED)
        return s->fatal_rc;
    s->in_io = 1;
    if (s->state == SLOTD__CONNECTING && (revents & (POLLOUT | POLLERR | POLLHUP)))
        connected(s);
    else if (s->state == SLOTD__HELLO || s->state == SLOTD__READY) {
        if (revents & POLLOUT)
            write_hello(s);
        if (revents & (POLLIN | POLLERR | POLLHUP))
            read_replies(s);
    }
    s->in_io = 0;
    if (linger_left(s, slotd__now_ms()) == 0 && slotd__seal(s) != 0 && s->state != SLOTD__STOPPED) {
        slotd__set_error(s, SLOTD_ENOMEM, NULL, 0, -1, "out of memory sealing a batch");
        slotd__stop(s, SLOTD_ENOMEM);
    }
    slotd__kick(s);
    return s->state == SLOTD__STOPPED ? s->fatal_rc : 0;
}

int slotd_sender_fd(const slotd_sender *s)
{
    return s->fd;
}

int slotd_sender_events(const slotd_sender *s)
{
    switch (s->state) {
    case SLOTD__CONNECTING:
        return POLLOUT;
    case SLOTD__HELLO:
        return POLLIN | ((s->hello_off < s->hello.len && slotd__io_open(s)) ||
                                 slotd__io_backlog(s)
                             ? POLLOUT
                             : 0);
    case SLOTD__READY:
        return POLLIN | (s->want_write || slotd__io_backlog(s) ? POLLOUT : 0);
    default:
        return 0;
    }
}

int slotd_sender_timeout_ms(const slotd_sender *s)
{
    uint64_t now = slotd__now_ms();
    int64_t t = linger_left(s, now);
    int64_t retry = -1;
    if (s->state == SLOTD__IDLE || (s->state == SLOTD__READY && s->retry_at && s->wr))
        retry = s->retry_at > now ? (int64_t)(s->retry_at - now) : 0;
    if (retry >= 0 && (t < 0 || retry < t))
        t = retry;
    return t > 1000000 ? 1000000 : (int)t;
}

int slotd__step(slotd_sender *s, int wait_ms)
{
    if (s->state == SLOTD__STOPPED)
        return s->fatal_rc;
    int t = slotd_sender_timeout_ms(s);
    if (t < 0 || (wait_ms >= 0 && wait_ms < t))
        t = wait_ms;
    struct pollfd p = {.fd = s->fd, .events = (short)slotd_sender_events(s)};
    int revents = 0;
    if (p.fd >= 0 && p.events) {
        if (poll(&p, 1, t) > 0)
            revents = p.revents;
    } else if (t != 0) {
        poll(NULL, 0, t < 0 ? 1000 : t); /* nothing to watch: a timer is due */
    }
    return slotd_sender_process(s, revents);
}
