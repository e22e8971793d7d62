/* ingest_tls — the TCP protocol over TLS (--tls-port) at ingest_conn.c's
 * read/write seam: reads feed ciphertext to c->tls and decrypt into rbuf,
 * then the same framing as a plain connection (conn_input); out[cur] is
 * encrypted into tout when it is written. The protocol code never sees TLS.
 *
 * The handshake runs before HELLO, so --hello-timeout and --max-handshakes
 * bound it like any connection that has not said HELLO (slow loris). */
#include <stdlib.h>

#include "ingest_internal.h"

/* Ciphertext OpenSSL has queued (an alert, close_notify), written now if
 * the socket takes it: best effort, for a connection about to end. */
void conn_tls_send_now(conn *c)
{
    char buf[256];
    uv_buf_t b = uv_buf_init(buf, (unsigned)tls_take(c->tls, buf, sizeof buf));
    if (b.len)
        (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
}

/* A TLS failure: say why (never the data), send the alert OpenSSL queued if
 * the socket takes it now, close. */
void conn_tls_fail(conn *c, int rc)
{
    char detail[200];
    tls_detail(detail, sizeof detail);
    c->ing->srv->metrics.tls_failures_total++;
    log_info("tls_error peer=%s err=\"%s\" detail=\"%s\"", c->peer, tls_strerror(rc), detail);
    if (!c->writing)
        conn_tls_send_now(c);
    conn_close(c);
}

/* Encrypt what out[cur] holds and gather every ciphertext byte waiting
 * (handshake records too) into tout. A reply queued before the handshake
 * finished (a HELLO timeout) cannot be sent: it is dropped. -1: closed. */
int conn_tls_seal(conn *c)
{
    proto_buf *p = &c->out[c->cur];
    int rc = p->len ? tls_write(c->tls, p->data, p->len) : TLS_OK;
    if (rc == TLS_E_AGAIN)
        p->len = 0;
    else if (rc != TLS_OK) {
        conn_tls_fail(c, rc);
        return -1;
    }
    size_t n = tls_out_pending(c->tls);
    if (n > c->tout.cap) {
        char *d = realloc(c->tout.data, n);
        if (!d) {
            conn_close(c);
            return -1;
        }
        c->tout.data = d;
        c->tout.cap = n;
    }
    c->tout.len = tls_take(c->tls, c->tout.data, n);
    return 0;
}

/* Ciphertext from the socket (or none: input that waited while reading
 * was paused): decrypt into rbuf while reading is wanted, as a plain read
 * would fill it. Sends what the handshake produces. */
void conn_tls_input(conn *c, const char *data, size_t n)
{
    int rc = n ? tls_feed(c->tls, data, n) : TLS_OK;
    while (rc == TLS_OK && c->reading && !c->closing && !c->close_after_flush) {
        size_t room = rbuf_room(c), got = 0;
        if (!room) {
            conn_starve(c);
            break;
        }
        rc = tls_read(c->tls, c->rbuf + c->rlen, room, &got);
        if (!c->tls_up && tls_handshake_done(c->tls)) {
            c->tls_up = 1;
            c->ing->srv->metrics.tls_handshakes_total++;
            char who[128];
            tls_peer_name(c->tls, who, sizeof who);
            log_debug("tls_up peer=%s subject_cn=\"%s\"", c->peer, who);
        }
        if (rc != TLS_OK || got == 0)
            break;
        c->rlen += got;
        conn_input(c);
    }
    if (rc == TLS_CLOSED) { /* close_notify: as EOF on a plain connection */
        conn_close(c);
        return;
    }
    if (rc != TLS_OK) {
        conn_tls_fail(c, rc);
        return;
    }
    if (!c->closing)
        conn_pump(c); /* handshake records to send, if nothing else */
}

/* Connections whose buffered TLS input waits for reading to resume. One
 * pass: a connection marked again meanwhile starts the next. */
static void on_tls_drain(uv_idle_t *h)
{
    struct ingest *ing = h->data;
    uv_idle_stop(h);
    ing->tls_draining = 0;
    for (conn *c = ing->conns, *next; c; c = next) {
        next = c->next;
        if (!c->tls_drain)
            continue;
        c->tls_drain = 0;
        /* Paused again: conn_update_reading marks it when it resumes. */
        if (c->reading && !c->closing)
            conn_tls_input(c, NULL, 0);
    }
}

void conn_tls_drain_later(conn *c)
{
    struct ingest *ing = c->ing;
    c->tls_drain = 1;
    if (!ing->tls_draining) {
        ing->tls_draining = 1;
        uv_idle_start(&ing->tls_drain, on_tls_drain);
    }
}
