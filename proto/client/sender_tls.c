/* The sender's bytes through TLS (o.tls): proto/tls.c's memory-BIO pump on
 * the sender's own non-blocking socket, so blocking and non-blocking modes
 * and their poll() step stay as they are. Plaintext written is encrypted
 * at most TX_CHUNK at a time and only once earlier ciphertext is out, so
 * what waits for the socket stays bounded. Without TLS these are send and
 * recv. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"
#include "tls.h"

#define TX_CHUNK (256u << 10)

int slotd__tls_init(slotd_sender *s, char *err, size_t errlen)
{
    if (!s->o.tls)
        return 0;
    const char *name = s->o.tls_server_name ? s->o.tls_server_name : s->host;
    int rc = tls_ctx_client(&s->tls_ctx, s->o.tls_ca, s->o.tls_cert, s->o.tls_key, name, err,
                            errlen);
    return rc == TLS_OK ? 0 : rc == TLS_E_NOMEM ? SLOTD_ENOMEM : SLOTD_ETLS;
}

void slotd__tls_free(slotd_sender *s)
{
    slotd__tls_end(s);
    tls_ctx_free(s->tls_ctx);
    s->tls_ctx = NULL;
    free(s->tx.data);
    s->tx.data = NULL;
}

void slotd__tls_end(slotd_sender *s)
{
    tls_conn_free(s->tls);
    s->tls = NULL;
    s->tx.len = s->tx_off = 0;
}

static void tls_fail(slotd_sender *s, int rc)
{
    char detail[200];
    tls_detail(detail, sizeof detail);
    slotd__set_error(s, SLOTD_ETLS, NULL, 0, -1, "TLS with %s:%d: %s (%s)", s->host, s->o.port,
                     tls_strerror(rc), detail);
    slotd__stop(s, SLOTD_ETLS);
    errno = EPIPE;
}

int slotd__io_flush(slotd_sender *s)
{
    if (!s->tls)
        return 0;
    size_t pend = tls_out_pending(s->tls);
    if (pend) {
        if (slotd__buf_reserve(&s->tx, pend) != 0) {
            errno = ENOMEM;
            return -1;
        }
        s->tx.len += tls_take(s->tls, s->tx.data + s->tx.len, pend);
    }
    while (s->tx_off < s->tx.len) {
        ssize_t w = send(s->fd, s->tx.data + s->tx_off, s->tx.len - s->tx_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        s->tx_off += (size_t)w;
    }
    s->tx.len = s->tx_off = 0;
    return 0;
}

int slotd__tls_start(slotd_sender *s)
{
    if (!s->tls_ctx)
        return 0;
    int rc = tls_conn_new(&s->tls, s->tls_ctx);
    size_t got;
    if (rc == TLS_OK)
        rc = tls_read(s->tls, NULL, 0, &got); /* the ClientHello */
    if (rc != TLS_OK) {
        tls_fail(s, rc);
        return -1;
    }
    if (slotd__io_flush(s) != 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        return -1;
    return 0;
}

ssize_t slotd__io_send(slotd_sender *s, const struct iovec *iov, int n)
{
    if (!s->tls) {
        struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
        return sendmsg(s->fd, &mh, MSG_NOSIGNAL);
    }
    if (slotd__io_flush(s) != 0)
        return -1; /* EAGAIN: earlier ciphertext first */
    if (!tls_handshake_done(s->tls)) {
        errno = EAGAIN;
        return -1;
    }
    size_t took = 0;
    for (int i = 0; i < n && took < TX_CHUNK; i++) {
        size_t len = iov[i].iov_len < TX_CHUNK - took ? iov[i].iov_len : TX_CHUNK - took;
        int rc = tls_write(s->tls, iov[i].iov_base, len);
        if (rc != TLS_OK) {
            tls_fail(s, rc);
            return -1;
        }
        took += len;
    }
    if (slotd__io_flush(s) != 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        return -1;
    return (ssize_t)took; /* taken: what the socket refused waits in tx */
}

ssize_t slotd__io_recv(slotd_sender *s, char *buf, size_t cap)
{
    if (!s->tls)
        return recv(s->fd, buf, cap, 0);
    for (;;) {
        size_t got = 0;
        int rc = tls_read(s->tls, buf, cap, &got);
        if (rc < 0) {
            tls_fail(s, rc);
            return -1;
        }
        /* handshake records, alerts: out before anything else */
        if (slotd__io_flush(s) != 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (rc == TLS_CLOSED)
            return 0;
        if (got)
            return (ssize_t)got;
        char raw[16 << 10];
        ssize_t r = recv(s->fd, raw, sizeof raw, 0);
        if (r <= 0)
            return r;
        if (tls_feed(s->tls, raw, (size_t)r) != TLS_OK) {
            errno = ENOMEM;
            return -1;
        }
    }
}

int slotd__io_open(const slotd_sender *s)
{
    return !s->tls || tls_handshake_done(s->tls);
}

int slotd__io_backlog(const slotd_sender *s)
{
    return s->tls && (s->tx_off < s->tx.len || tls_out_pending(s->tls) > 0);
}

int slotd__io_more(const slotd_sender *s)
{
    return s->tls && tls_in_pending(s->tls);
}
