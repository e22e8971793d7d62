/* gateway_query — per-symbol queries forwarded to a node that owns the
 * symbol's partition (gateway.h, "queries").
 *
 *   nodes: --gateway-node I/N@HOST:PORT (repeatable): the node owns every
 *          partition p with p mod N = I, as its --kafka-node I/N says
 *   each node: one TCP connection, HELLO as "gateway-q-<pid>-<k>", then
 *          Q messages forwarded byte for byte; its replies come back in
 *          order (PROTOCOL.md §8), so a FIFO matches them to the queries
 *   a connection that fails: its queries go to another ready node of the
 *          partition, or are answered NOT_READY; reconnect every 500 ms
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway.h"
#include "log.h"
#include "query.h"

#define GQ_RETRY_MS 500

enum { GQ_DOWN, GQ_CONNECTING, GQ_HELLO, GQ_UP, GQ_CLOSING };

typedef struct gq_pending {
    struct gq_pending *next;
    int32_t part;
    uint8_t *msg;
    size_t len;
    gateway_reply_fn done;
    void *ctx;
} gq_pending;

typedef struct gq_node {
    struct gq *q;
    int k;
    uint32_t i, n;
    char host[64];
    int port;
    int state;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uint8_t *rbuf;
    size_t rlen, rcap;
    proto_framer fr;
    gq_pending *head, *tail;
} gq_node;

struct gq {
    server *srv;
    gq_node *nodes;
    size_t n;
    uv_timer_t retry;
    int stopping;
};

typedef struct gq_write {
    uv_write_t req;
    size_t len;
    uint8_t data[];
} gq_write;

int gateway_node_parse(const char *s, size_t len, uint32_t *i, uint32_t *n, char *host,
                       size_t hcap, int *port)
{
    char buf[128], *end;
    unsigned a, b;
    int at = 0;
    if (len >= sizeof buf)
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    /* the port follows the last ':', so an IPv6 address needs no brackets */
    char *colon = strrchr(buf, ':');
    if (sscanf(buf, "%u/%u@%n", &a, &b, &at) != 2 || at == 0 || !colon || colon < buf + at)
        return -1;
    long p = strtol(colon + 1, &end, 10);
    size_t hl = (size_t)(colon - (buf + at));
    if (*end || colon[1] < '0' || colon[1] > '9' || p <= 0 || p > 65535 || b == 0 || a >= b ||
        hl == 0 || hl >= hcap || buf[0] < '0' || buf[0] > '9')
        return -1;
    *i = a;
    *n = b;
    *port = (int)p;
    memcpy(host, buf + at, hl);
    host[hl] = '\0';
    return 0;
}

static void node_connect(gq_node *nd);
static void node_fail(gq_node *nd, const char *why);

static void send_bytes_done(uv_write_t *req, int status)
{
    gq_write *w = (gq_write *)req;
    gq_node *nd = req->data;
    free(w);
    if (status < 0 && nd->state != GQ_CLOSING && nd->state != GQ_DOWN)
        node_fail(nd, uv_strerror(status));
}

static int send_bytes(gq_node *nd, const void *p, size_t len)
{
    gq_write *w = malloc(sizeof *w + len);
    if (!w)
        return UV_ENOMEM;
    memcpy(w->data, p, len);
    w->len = len;
    w->req.data = nd;
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&nd->tcp, &b, 1, send_bytes_done);
    if (rc != 0)
        free(w);
    return rc;
}

/* The ready node of partition p with the fewest queries waiting, or NULL. */
static gq_node *pick(struct gq *q, int32_t p, const gq_node *not)
{
    gq_node *best = NULL;
    size_t best_n = 0;
    for (size_t k = 0; k < q->n; k++) {
        gq_node *nd = &q->nodes[k];
        if (nd == not || nd->state != GQ_UP || (uint32_t)p % nd->n != nd->i)
            continue;
        size_t waiting = 0;
        for (gq_pending *x = nd->head; x; x = x->next)
            waiting++;
        if (!best || waiting < best_n)
            best = nd, best_n = waiting;
    }
    return best;
}

static void no_node(gq_pending *x)
{
    proto_error err;
    proto_error_set(&err, PROTO_E_NOT_READY, -1, "no node owning partition %d answers "
                    "(--gateway-node); retry", (int)x->part);
    x->done(x->ctx, NULL, 0, &err);
    free(x->msg);
    free(x);
}

/* Queue x on nd and send its bytes; 0, or -1 (nd failed: x not queued). */
static int enqueue(gq_node *nd, gq_pending *x)
{
    if (send_bytes(nd, x->msg, x->len) != 0)
        return -1;
    x->next = NULL;
    if (nd->tail)
        nd->tail->next = x;
    else
        nd->head = x;
    nd->tail = x;
    return 0;
}

/* To a ready node of its partition other than `not`, else NOT_READY. */
static void route(struct gq *q, gq_pending *x, gq_node *not)
{
    gq_node *nd;
    while ((nd = pick(q, x->part, not))) {
        if (enqueue(nd, x) == 0)
            return;
        node_fail(nd, "write failed");
    }
    no_node(x);
}

static void on_node_closed(uv_handle_t *h)
{
    gq_node *nd = h->data;
    nd->state = GQ_DOWN;
}

static void node_fail(gq_node *nd, const char *why)
{
    struct gq *q = nd->q;
    if (nd->state == GQ_DOWN || nd->state == GQ_CLOSING)
        return;
    if (nd->state == GQ_UP || nd->head)
        log_warn("gateway_node_down node=%u/%u@%s:%d err=\"%s\"", nd->i, nd->n, nd->host, nd->port,
                 why);
    nd->state = GQ_CLOSING;
    uv_close((uv_handle_t *)&nd->tcp, on_node_closed);
    free(nd->rbuf);
    nd->rbuf = NULL;
    nd->rlen = nd->rcap = 0;
    gq_pending *x = nd->head;
    nd->head = nd->tail = NULL;
    while (x) { /* its queries: another replica, or NOT_READY */
        gq_pending *next = x->next;
        if (q->stopping)
            no_node(x);
        else
            route(q, x, nd);
        x = next;
    }
}

static void node_message(gq_node *nd, const uint8_t *m, size_t len)
{
    static const uint8_t welcome[] = {0xa7, 'W', 'E', 'L', 'C', 'O', 'M', 'E'};
    if (nd->state == GQ_HELLO) {
        if (len < 1 + sizeof welcome || memcmp(m + 1, welcome, sizeof welcome) != 0) {
            node_fail(nd, "HELLO refused");
            return;
        }
        nd->state = GQ_UP;
        log_info("gateway_node_up node=%u/%u@%s:%d", nd->i, nd->n, nd->host, nd->port);
        return;
    }
    gq_pending *x = nd->head;
    if (!x) { /* a reply to nothing: the stream is not what we think */
        node_fail(nd, "unexpected reply");
        return;
    }
    nd->head = x->next;
    if (!nd->head)
        nd->tail = NULL;
    x->done(x->ctx, m, len, NULL);
    free(x->msg);
    free(x);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    gq_node *nd = h->data;
    (void)hint;
    if (nd->rcap - nd->rlen < 65536) {
        size_t cap = nd->rcap ? nd->rcap * 2 : 131072;
        uint8_t *p = realloc(nd->rbuf, cap);
        if (!p) {
            *buf = uv_buf_init(NULL, 0);
            return;
        }
        nd->rbuf = p;
        nd->rcap = cap;
    }
    *buf = uv_buf_init((char *)nd->rbuf + nd->rlen, (unsigned)(nd->rcap - nd->rlen));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    gq_node *nd = s->data;
    server *srv = nd->q->srv;
    (void)buf;
    if (nread < 0) {
        node_fail(nd, uv_strerror((int)nread));
        return;
    }
    nd->rlen += (size_t)nread;
    size_t pos = 0;
    while (nd->state != GQ_CLOSING && pos < nd->rlen) {
        size_t mlen;
        proto_error err;
        int rc = proto_frame(&nd->fr, nd->rbuf + pos, nd->rlen - pos, &srv->cfg.limits, &mlen, &err);
        if (rc == PROTO_FRAME_MORE)
            break;
        if (rc < 0) {
            node_fail(nd, err.msg);
            return;
        }
        proto_framer_reset(&nd->fr);
        node_message(nd, nd->rbuf + pos, mlen);
        pos += mlen;
    }
    if (nd->state == GQ_CLOSING)
        return;
    memmove(nd->rbuf, nd->rbuf + pos, nd->rlen - pos);
    nd->rlen -= pos;
}

static void on_connect(uv_connect_t *req, int status)
{
    gq_node *nd = req->data;
    char hello[128];
    if (nd->state != GQ_CONNECTING)
        return;
    if (status < 0) {
        nd->state = GQ_CLOSING;
        uv_close((uv_handle_t *)&nd->tcp, on_node_closed);
        return;
    }
    /* ["HELLO", {"client": "gateway-q-<pid>-<k>"}] */
    char name[48];
    int nl = snprintf(name, sizeof name, "gateway-q-%d-%d", (int)getpid(), nd->k);
    size_t len = 0;
    static const uint8_t head[] = {0x92, 0xa5, 'H', 'E', 'L', 'L', 'O', 0x81,
                                   0xa6, 'c', 'l', 'i', 'e', 'n', 't'};
    memcpy(hello, head, sizeof head);
    len = sizeof head;
    hello[len++] = (char)(0xa0 | nl);
    memcpy(hello + len, name, (size_t)nl);
    len += (size_t)nl;
    proto_framer_reset(&nd->fr);
    nd->state = GQ_HELLO;
    uv_tcp_nodelay(&nd->tcp, 1);
    if (send_bytes(nd, hello, len) != 0 ||
        uv_read_start((uv_stream_t *)&nd->tcp, on_alloc, on_read) != 0)
        node_fail(nd, "cannot start the session");
}

static void node_connect(gq_node *nd)
{
    struct sockaddr_storage addr;
    if (uv_ip4_addr(nd->host, nd->port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(nd->host, nd->port, (struct sockaddr_in6 *)&addr) != 0) {
        log_warn("gateway_node_bad_address node=%s:%d (an IP address is needed)", nd->host,
                 nd->port);
        return;
    }
    uv_tcp_init(nd->q->srv->loop, &nd->tcp);
    nd->tcp.data = nd;
    nd->creq.data = nd;
    nd->state = GQ_CONNECTING;
    if (uv_tcp_connect(&nd->creq, &nd->tcp, (struct sockaddr *)&addr, on_connect) != 0) {
        nd->state = GQ_CLOSING;
        uv_close((uv_handle_t *)&nd->tcp, on_node_closed);
    }
}

static void on_retry(uv_timer_t *t)
{
    struct gq *q = t->data;
    for (size_t k = 0; k < q->n; k++)
        if (q->nodes[k].state == GQ_DOWN)
            node_connect(&q->nodes[k]);
}

int gateway_query_start(server *srv)
{
    const char *list = srv->cfg.gateway_nodes;
    struct gq *q = calloc(1, sizeof *q);
    if (!q)
        return UV_ENOMEM;
    srv->gateway_q = q;
    q->srv = srv;
    for (const char *p = list; p && *p; p += strcspn(p, "\n") + (p[strcspn(p, "\n")] == '\n'))
        q->n++;
    if (q->n && !(q->nodes = calloc(q->n, sizeof *q->nodes)))
        return UV_ENOMEM;
    size_t k = 0;
    for (const char *p = list; p && *p; k++) {
        size_t l = strcspn(p, "\n");
        gq_node *nd = &q->nodes[k];
        nd->q = q;
        nd->k = (int)k;
        if (gateway_node_parse(p, l, &nd->i, &nd->n, nd->host, sizeof nd->host, &nd->port) != 0)
            return UV_EINVAL; /* flags.c checked it */
        node_connect(nd);
        p += l + (p[l] == '\n');
    }
    uv_timer_init(srv->loop, &q->retry);
    q->retry.data = q;
    uv_timer_start(&q->retry, on_retry, GQ_RETRY_MS, GQ_RETRY_MS);
    return 0;
}

int gateway_query_forward(server *srv, const query_req *req, const uint8_t *msg, size_t len,
                          gateway_reply_fn done, void *ctx, proto_error *err)
{
    struct gq *q = srv->gateway_q;
    int32_t p = gateway_partition(srv, req->sym, req->symlen);
    if (!q || p < 0 || q->stopping)
        return proto_error_set(err, PROTO_E_NOT_READY, -1, "the gateway is not ready");
    gq_pending *x = calloc(1, sizeof *x);
    if (!x || !(x->msg = malloc(len))) {
        free(x);
        return proto_error_set(err, PROTO_E_TOO_LARGE, -1, "out of memory");
    }
    memcpy(x->msg, msg, len);
    x->len = len;
    x->part = p;
    x->done = done;
    x->ctx = ctx;
    route(q, x, NULL);
    return 0;
}

void gateway_query_stop(server *srv)
{
    struct gq *q = srv->gateway_q;
    if (!q || q->stopping)
        return;
    q->stopping = 1;
    uv_close((uv_handle_t *)&q->retry, NULL);
    for (size_t k = 0; k < q->n; k++) {
        gq_node *nd = &q->nodes[k];
        if (nd->state == GQ_CONNECTING || nd->state == GQ_HELLO || nd->state == GQ_UP)
            node_fail(nd, "gateway stopping");
    }
}

void gateway_query_free(server *srv)
{
    struct gq *q = srv->gateway_q;
    if (!q)
        return;
    for (size_t k = 0; k < q->n; k++)
        free(q->nodes[k].rbuf);
    free(q->nodes);
    free(q);
    srv->gateway_q = NULL;
}
