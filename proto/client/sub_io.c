/* A subscription's connection: blocking I/O with deadlines over a
 * non-blocking socket and poll(), plain or through proto/tls.c's memory
 * BIOs. A subscriber mostly reads; it writes only HELLO, SUB and UNSUB, so
 * unlike the sender's there is no write queue: a write waits until the
 * socket took everything. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "tls.h"

#define LOST(e, ...) slotd__sub_error(e, SLOTD_EDISCONNECTED, NULL, __VA_ARGS__)

/* ms left until deadline (UINT64_MAX: none) as poll() takes it. */
static int left_ms(uint64_t deadline)
{
    if (deadline == UINT64_MAX)
        return -1;
    uint64_t now = slotd__now_ms();
    return now >= deadline ? 0 : deadline - now > 3600000 ? 3600000 : (int)(deadline - now);
}

/* 1 when fd is ready for `ev`, 0 when the deadline passed. */
static int wait_fd(int fd, short ev, uint64_t deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = ev};
        int t = left_ms(deadline);
        int r = poll(&p, 1, t);
        if (r > 0)
            return 1;
        if (r == 0 && t >= 0 && left_ms(deadline) == 0)
            return 0;
        /* EINTR, or poll woke early: go round */
    }
}

static int tls_failed(slotd_batch_error *e, int rc)
{
    char detail[200];
    tls_detail(detail, sizeof detail);
    return slotd__sub_error(e, SLOTD_ETLS, NULL, "TLS: %s (%s)", tls_strerror(rc), detail);
}

/* Send raw bytes, all of them, by deadline. */
static int send_all(slotd__conn *c, const char *p, size_t n, uint64_t deadline,
                    slotd_batch_error *e)
{
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            if (!wait_fd(c->fd, POLLOUT, deadline))
                return LOST(e, "timed out writing to the server");
        } else {
            return LOST(e, "send: %s", strerror(errno));
        }
    }
    return 0;
}

/* Ciphertext TLS produced (handshake, alerts, records) out to the socket. */
static int flush_tls(slotd__conn *c, uint64_t deadline, slotd_batch_error *e)
{
    size_t pend;
    while (c->tls && (pend = tls_out_pending(c->tls)) > 0) {
        if (slotd__buf_reserve(&c->tx, pend) != 0)
            return slotd__sub_error(e, SLOTD_ENOMEM, NULL, "out of memory for TLS");
        size_t k = tls_take(c->tls, c->tx.data, pend);
        int rc = send_all(c, c->tx.data, k, deadline, e);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Raw bytes from the socket within the deadline: > 0, 0 in time, < 0 error. */
static int64_t recv_raw(slotd__conn *c, char *buf, size_t cap, uint64_t deadline,
                        slotd_batch_error *e)
{
    for (;;) {
        ssize_t r = recv(c->fd, buf, cap, 0);
        if (r > 0)
            return r;
        if (r == 0)
            return LOST(e, "the server closed the connection");
        if (errno == ECONNRESET)
            return LOST(e, "the server reset the connection");
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return LOST(e, "recv: %s", strerror(errno));
        if (!wait_fd(c->fd, POLLIN, deadline))
            return 0;
    }
}

int slotd__conn_open(slotd__conn *c, const slotd__conn_opts *o, uint64_t deadline,
                     slotd_batch_error *e)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    struct addrinfo hints = {0}, *ai = NULL;
    char port[16];
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof port, "%d", o->port);
    if (o->tls) {
        char msg[256];
        int rc = tls_ctx_client(&c->ctx, o->ca, o->cert, o->key,
                                o->server_name ? o->server_name : o->host, msg, sizeof msg);
        if (rc != TLS_OK)
            return slotd__sub_error(e, rc == TLS_E_NOMEM ? SLOTD_ENOMEM : SLOTD_ETLS, NULL, "%s",
                                    msg);
    }
    int g = getaddrinfo(o->host, port, &hints, &ai);
    if (g != 0)
        return LOST(e, "cannot resolve %s: %s", o->host, gai_strerror(g));
    c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        freeaddrinfo(ai);
        return LOST(e, "socket: %s", strerror(errno));
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = connect(c->fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (rc != 0 && errno != EINPROGRESS)
        return LOST(e, "connect to %s:%d: %s", o->host, o->port, strerror(errno));
    if (rc != 0) {
        if (!wait_fd(c->fd, POLLOUT, deadline))
            return LOST(e, "connect to %s:%d: timed out", o->host, o->port);
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err)
            return LOST(e, "connect to %s:%d: %s", o->host, o->port, strerror(err));
    }
    if (!c->ctx)
        return 0;
    size_t got;
    rc = tls_conn_new(&c->tls, c->ctx);
    if (rc == TLS_OK)
        rc = tls_read(c->tls, NULL, 0, &got); /* the ClientHello */
    if (rc != TLS_OK)
        return tls_failed(e, rc);
    /* The handshake, done here: the server says nothing before our HELLO,
     * so no plaintext can arrive while it runs. */
    while (!tls_handshake_done(c->tls)) {
        if ((rc = flush_tls(c, deadline, e)) != 0)
            return rc;
        char raw[16 << 10];
        int64_t r = recv_raw(c, raw, sizeof raw, deadline, e);
        if (r == 0)
            return LOST(e, "TLS handshake with %s:%d: timed out", o->host, o->port);
        if (r < 0) {
            char why[sizeof e->message];
            memcpy(why, e->message, sizeof why);
            return slotd__sub_error(e, SLOTD_ETLS, NULL,
                                    "TLS handshake with %s:%d: %s (a port without TLS?)", o->host,
                                    o->port, why);
        }
        if (tls_feed(c->tls, raw, (size_t)r) != TLS_OK)
            return slotd__sub_error(e, SLOTD_ENOMEM, NULL, "out of memory for TLS");
        char none[1];
        rc = tls_read(c->tls, none, 0, &got);
        if (rc < 0)
            return tls_failed(e, rc);
    }
    return flush_tls(c, deadline, e);
}

int slotd__conn_write(slotd__conn *c, const void *p, size_t n, uint64_t deadline,
                      slotd_batch_error *e)
{
    if (!c->tls)
        return send_all(c, p, n, deadline, e);
    int rc = tls_write(c->tls, p, n);
    if (rc != TLS_OK)
        return tls_failed(e, rc);
    return flush_tls(c, deadline, e);
}

int64_t slotd__conn_read(slotd__conn *c, char *buf, size_t cap, int wait_ms, slotd_batch_error *e)
{
    uint64_t deadline = wait_ms < 0 ? UINT64_MAX : slotd__now_ms() + (uint64_t)wait_ms;
    if (!c->tls)
        return recv_raw(c, buf, cap, deadline, e);
    for (;;) {
        size_t got = 0;
        int rc = tls_read(c->tls, buf, cap, &got);
        if (rc < 0)
            return tls_failed(e, rc);
        /* TLS may answer (alerts, key updates): out first, briefly */
        int f = flush_tls(c, slotd__now_ms() + 10000, e);
        if (f != 0)
            return f;
        if (got)
            return (int64_t)got;
        if (rc == TLS_CLOSED)
            return LOST(e, "the server closed the connection (TLS close_notify)");
        char raw[16 << 10];
        int64_t r = recv_raw(c, raw, sizeof raw, deadline, e);
        if (r <= 0)
            return r;
        if (tls_feed(c->tls, raw, (size_t)r) != TLS_OK)
            return slotd__sub_error(e, SLOTD_ENOMEM, NULL, "out of memory for TLS");
    }
}

void slotd__conn_close(slotd__conn *c)
{
    tls_conn_free(c->tls);
    tls_ctx_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
    free(c->tx.data);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}
