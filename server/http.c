/* http — the operator endpoints: the listener, its lifecycle and the
 * connection budgets. Connections are http_conn.c's, the endpoints
 * http_routes.c's (both through http_internal.h).
 *
 * 256 connections are served (HTTP_MAX_CONNS). Past them, HTTP_RESERVE_CONNS
 * more are accepted as a reserve for the probes: they serve /healthz and
 * /readyz only (anything else is 503 TOO_MANY_CONNECTIONS), one request
 * each, with a 2 s head timeout. So clients that keep 256 connections open
 * (or busy) cannot turn into a failed liveness probe and a restart.
 * Evicting an idle keep-alive connection instead was rejected: it cannot
 * help when all 256 are busy (slow heads, unread answers), and it cuts
 * legitimate clients. Past the reserve too, a connection gets a canned 503
 * and is closed.
 *
 * Loop thread only: http_start records the thread it runs on, and the
 * entry points (http_stop, accept, reads, a DELETE's completion) assert it
 * in debug builds.
 */
#include "http_internal.h"

#include <stdlib.h>

#include "log.h"

/* ---- lifetime ------------------------------------------------------------------- */

void http__free_if_done(http *h)
{
    if (h->stopping && !h->listener_open && !h->tls_listener_open && h->nconns == 0) {
        h->srv->http = NULL;
        free(h);
    }
}

/* ---- accept, start, stop ------------------------------------------------------- */

static void on_refused_closed(uv_handle_t *hd) { free(hd); }

/* Over the connection limit: a canned 503, best effort without queueing,
 * and close (HTTPS: just close, the 503 would need a handshake). No
 * per-connection state beyond the handle. */
static void refuse_connection(http *h, uv_stream_t *ls)
{
#define BUSY_BODY "{\"error\":\"TOO_MANY_CONNECTIONS\",\"message\":\"too many HTTP connections\"}\n"
    _Static_assert(sizeof BUSY_BODY - 1 == 71, "fix the Content-Length below");
    static const char msg[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                              "Content-Length: 71\r\nConnection: close\r\n\r\n" BUSY_BODY;
    uv_tcp_t *t = malloc(sizeof *t);
    if (!t)
        return;
    uv_tcp_init(h->listener.loop, t);
    if (uv_accept(ls, (uv_stream_t *)t) == 0 && ls == (uv_stream_t *)&h->listener) {
        uv_buf_t b = uv_buf_init((char *)msg, sizeof msg - 1);
        uv_try_write((uv_stream_t *)t, &b, 1);
    }
    server_close((uv_handle_t *)t, on_refused_closed);
}

static void on_connection(uv_stream_t *ls, int status)
{
    http *h = ls->data;
    HTTP__ASSERT_LOOP(h);
    if (status < 0 || h->stopping)
        return;
    int reserve = h->nconns - h->nreserve >= HTTP_MAX_CONNS;
    if (reserve && h->nreserve >= HTTP_RESERVE_CONNS) {
        log_warn("http_refused reason=max_connections conns=%u", h->nconns);
        refuse_connection(h, ls);
        return;
    }
    http__conn_accept(h, ls, reserve, ls == (uv_stream_t *)&h->tls_listener);
}

static void on_listener_closed(uv_handle_t *hd)
{
    http *h = hd->data;
    if (hd == (uv_handle_t *)&h->tls_listener)
        h->tls_listener_open = 0;
    else
        h->listener_open = 0;
    http__free_if_done(h);
}

/* Listen on --http's host at `port` (-1: not at all); *bound: the port. */
static int http_listen(http *h, uv_tcp_t *l, int *open, const char *host, int port, int *bound)
{
    *bound = -1;
    if (port < 0)
        return 0;
    return server_listen(h->srv->loop, l, h, host && *host ? host : h->srv->cfg.http_host, port, 128,
                         on_connection, open, bound);
}

int http_start(server *srv)
{
    int rc;
    http *h = calloc(1, sizeof *h);
    if (!h)
        return UV_ENOMEM;
    h->srv = srv;
    h->loop_thread = pthread_self();
    srv->http = h;
    /* HTTPS once main.c loaded a certificate (a config zeroed by hand has none). */
    int tls_port = srv->tls ? srv->cfg.tls_http_port : -1;
    if ((rc = http_listen(h, &h->listener, &h->listener_open, NULL, srv->cfg.http_port,
                          &srv->http_port)) != 0 ||
        (rc = http_listen(h, &h->tls_listener, &h->tls_listener_open, srv->cfg.tls_http_host,
                          tls_port, &srv->tls_http_port)) != 0) {
        http_stop(srv);
        return rc;
    }
    return 0;
}

void http_stop(server *srv)
{
    http *h = srv->http;
    if (!h)
        return;
    HTTP__ASSERT_LOOP(h);
    if (h->stopping)
        return;
    h->stopping = 1;
    if (h->listener_open)
        server_close((uv_handle_t *)&h->listener, on_listener_closed);
    if (h->tls_listener_open)
        server_close((uv_handle_t *)&h->tls_listener, on_listener_closed);
    for (http_conn *c = h->conns; c; c = c->next)
        http__conn_close(c);
    http__free_if_done(h); /* no listener was open, no connection is */
}
