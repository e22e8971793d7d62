/* gateway_query — per-symbol queries forwarded to a node that owns the
 * symbol's partition (gateway.h, "queries").
 *
 *   nodes: --gateway-node I/N@HOST:PORT (repeatable): the node owns every
 *          partition p with p mod N = I, as its --kafka-node I/N says
 *   each node: one TCP connection, HELLO as "gateway-q-<pid>-<k>" (or as
 *          the credential's NAME, gateway_node_cred), then Q messages
 *          forwarded byte for byte; its replies come back in order
 *          (PROTOCOL.md §8), so a FIFO matches them to the queries
 *   which node: up, then not behind (gateway_lag.c), then fewest waiting
 *   a connection that fails: its queries go to another ready node of the
 *          partition, or are answered NOT_READY; so is a query the node
 *          has not answered in 3 s (GQ_FAN_TIMEOUT_MS); reconnect every 500 ms; a
 *          HELLO refused (UNAUTHORIZED, ...) is logged once and retried
 *          ever later (1 s, 2 s, ... 30 s): a wrong credential is not
 *          hammered against the node
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway_internal.h"
#include "log.h"
#include "query.h"
#include "relay.h"

#define GQ_RETRY_MS 500
#define GQ_REFUSED_MAX_MS 30000 /* the longest wait after HELLO refusals */
/* A question a node has not answered in this long is answered for it
 * (NOT_READY, retryable), so a node that is stuck (SIGSTOP, swapping)
 * leaves /stats and top partial, and a per-symbol query refused, rather
 * than hung while its connection stays open. */
#define GQ_FAN_TIMEOUT_MS 3000

typedef struct gq_write {
    uv_write_t req;
    size_t len;
    uint8_t data[];
} gq_write;

int gateway_node_parse(const char *s, size_t len, uint32_t *i, uint32_t *n, char *host,
                       size_t hcap, int *port)
{
    char buf[GATEWAY_HOST_MAX + 32], *end;
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

/* The ready node of partition p that is least behind (gateway_lag_rank,
 * then fewer records), then has the fewest queries waiting; or NULL. */
static gq_node *pick(struct gq *q, int32_t p, const gq_node *not)
{
    gq_node *best = NULL;
    size_t best_n = 0;
    int best_rank = 0;
    int64_t best_lag = 0;
    uint64_t thr = q->srv->cfg.gateway_behind_records;
    for (size_t k = 0; k < q->n; k++) {
        gq_node *nd = &q->nodes[k];
        if (nd == not || nd->state != GQ_UP || (uint32_t)p % nd->n != nd->i)
            continue;
        size_t waiting = 0;
        for (gq_pending *x = nd->head; x; x = x->next)
            waiting++;
        int rank = gateway_lag_rank(nd, p, thr);
        int64_t lag = rank == 2 ? gateway_lag(nd, p) : 0;
        if (!best || rank < best_rank || (rank == best_rank && lag < best_lag) ||
            (rank == best_rank && lag == best_lag && waiting < best_n))
            best = nd, best_n = waiting, best_rank = rank, best_lag = lag;
    }
    return best;
}

/* " (I/N@HOST:PORT: why)" of the first node owning p that is down with a
 * reason, or "". Cut to fit an error message (proto_error, 200 bytes). */
static void down_reason(const struct gq *q, int32_t p, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (size_t k = 0; k < q->n; k++) {
        const gq_node *nd = &q->nodes[k];
        if ((uint32_t)p % nd->n == nd->i && nd->state != GQ_UP && nd->why[0]) {
            snprintf(buf, cap, " (%.64s: %.128s)", nd->name, nd->why);
            return;
        }
    }
}

/* x has no node to go to (nd: the one it was meant for, or NULL). */
static void no_node(struct gq *q, gq_pending *x, const gq_node *nd)
{
    proto_error err;
    char why[200];
    if (x->part < 0) { /* sent to one node (a fan-out to all): no other will do */
        proto_error_set(&err, PROTO_E_NOT_READY, -1, "the node does not answer%s%s",
                        nd && nd->why[0] ? ": " : "", nd ? nd->why : "");
    } else {
        down_reason(q, x->part, why, sizeof why);
        proto_error_set(&err, PROTO_E_NOT_READY, -1, "no node owning partition %d answers "
                        "(--gateway-node)%s; retry", (int)x->part, why);
    }
    x->done(x->ctx, NULL, 0, &err);
    free(x->msg);
    free(x);
}

/* Queue x on nd and send its bytes; 0, or -1 (nd failed: x not queued). */
static int enqueue(gq_node *nd, gq_pending *x)
{
    if (send_bytes(nd, x->msg, x->len) != 0)
        return -1;
    if (x->by)
        *x->by = nd->k;
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
    while (x->part >= 0 && (nd = pick(q, x->part, not))) {
        if (enqueue(nd, x) == 0)
            return;
        node_fail(nd, "write failed");
    }
    no_node(q, x, NULL);
}

int gq_send_to(gq_node *nd, gq_pending *x)
{
    if (nd->state != GQ_UP) {
        no_node(nd->q, x, nd);
        return -1;
    }
    if (enqueue(nd, x) != 0) {
        no_node(nd->q, x, nd);
        node_fail(nd, "write failed");
        return -1;
    }
    return 0;
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
        log_warn("gateway_node_down node=%s err=\"%s\"", nd->name, why);
    if (why != nd->why)
        snprintf(nd->why, sizeof nd->why, "%s", why);
    gateway_lag_forget(nd);
    nd->state = GQ_CLOSING;
    uv_close((uv_handle_t *)&nd->tcp, on_node_closed);
    free(nd->rbuf);
    nd->rbuf = NULL;
    nd->rlen = nd->rcap = 0;
    gq_pending *x = nd->head;
    nd->head = nd->tail = NULL;
    while (x) { /* its queries: another replica, or NOT_READY */
        gq_pending *next = x->next;
        if (x->answered)
            free(x->msg), free(x);
        else if (q->stopping)
            no_node(q, x, nd);
        else
            route(q, x, nd);
        x = next;
    }
}

/* The node refused the HELLO: logged when the reason is new (not at
 * each retry), and the next try waits twice as long as the last. */
static void hello_refused(gq_node *nd, const uint8_t *m, size_t len)
{
    proto_error e = {0};
    char why[sizeof nd->why];
    if (relay_status(m, len, &e) == 0)
        snprintf(why, sizeof why, "HELLO refused: %s: %s", proto_code_name(e.code), e.msg);
    else
        snprintf(why, sizeof why, "HELLO refused: not a WELCOME");
    unsigned shift = nd->refused < 6 ? nd->refused : 6;
    uint64_t wait = (uint64_t)GQ_RETRY_MS << (shift + 1);
    wait = wait < GQ_REFUSED_MAX_MS ? wait : GQ_REFUSED_MAX_MS;
    if (strcmp(why, nd->why) != 0)
        log_warn("gateway_node_refused node=%s err=\"%s\" (retried ever less often, up to "
                 "every %d s; logged again when this changes)", nd->name, why,
                 GQ_REFUSED_MAX_MS / 1000);
    nd->refused++;
    nd->retry_at = uv_now(nd->q->srv->loop) + wait;
    snprintf(nd->why, sizeof nd->why, "%s", why);
    node_fail(nd, nd->why);
}

static void node_message(gq_node *nd, const uint8_t *m, size_t len)
{
    static const uint8_t welcome[] = {0xa7, 'W', 'E', 'L', 'C', 'O', 'M', 'E'};
    if (nd->state == GQ_HELLO) {
        if (len < 1 + sizeof welcome || memcmp(m + 1, welcome, sizeof welcome) != 0) {
            hello_refused(nd, m, len);
            return;
        }
        nd->state = GQ_UP;
        nd->refused = 0;
        nd->why[0] = '\0';
        log_info("gateway_node_up node=%s", nd->name);
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
    if (x->answered) { /* too late: its deadline answered it */
        free(x->msg);
        free(x);
        return;
    }
    uint8_t *noted = NULL;
    size_t nlen = 0;
    if (x->annotate) /* answered by a node that is behind: say so */
        gateway_lag_note(nd, x->part, m, len, &noted, &nlen);
    x->done(x->ctx, noted ? noted : m, noted ? nlen : len, NULL);
    free(noted);
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
    proto_buf hello = {0};
    if (nd->state != GQ_CONNECTING)
        return;
    if (status < 0) {
        snprintf(nd->why, sizeof nd->why, "connect: %s", uv_strerror(status));
        nd->state = GQ_CLOSING;
        uv_close((uv_handle_t *)&nd->tcp, on_node_closed);
        return;
    }
    proto_framer_reset(&nd->fr);
    nd->state = GQ_HELLO;
    uv_tcp_nodelay(&nd->tcp, 1);
    if (gateway_node_hello(&hello, nd->q->srv->cfg.gateway_node_token, (int)getpid(), nd->k) != 0 ||
        send_bytes(nd, hello.data, hello.len) != 0 ||
        uv_read_start((uv_stream_t *)&nd->tcp, on_alloc, on_read) != 0)
        node_fail(nd, "cannot start the session");
    proto_buf_free(&hello);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    gq_node *nd = req->data;
    nd->state = GQ_DOWN;
    if (nd->q->stopping || status < 0 || !res) {
        if (status < 0)
            snprintf(nd->why, sizeof nd->why, "resolve: %s", uv_strerror(status));
        if (status < 0 && !nd->unresolved)
            log_warn("gateway_node_unresolved node=%s:%d err=\"%s\"", nd->host, nd->port,
                     uv_strerror(status));
        nd->unresolved = status < 0;
        uv_freeaddrinfo(res);
        return;
    }
    nd->unresolved = 0;
    const struct addrinfo *a = res; /* IPv4 first: "localhost" may list ::1 first */
    for (const struct addrinfo *x = res; x; x = x->ai_next)
        if (x->ai_family == AF_INET) {
            a = x;
            break;
        }
    uv_tcp_init(nd->q->srv->loop, &nd->tcp);
    nd->tcp.data = nd;
    nd->creq.data = nd;
    nd->state = GQ_CONNECTING;
    if (uv_tcp_connect(&nd->creq, &nd->tcp, a->ai_addr, on_connect) != 0) {
        nd->state = GQ_CLOSING;
        uv_close((uv_handle_t *)&nd->tcp, on_node_closed);
    }
    uv_freeaddrinfo(res);
}

/* Resolve the host anew each time (a pod's address changes), then connect. */
static void node_connect(gq_node *nd)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    char port[8];
    snprintf(port, sizeof port, "%d", nd->port);
    nd->gai.data = nd;
    nd->state = GQ_RESOLVING;
    if (uv_getaddrinfo(nd->q->srv->loop, &nd->gai, on_resolved, nd->host, port, &hints) != 0)
        nd->state = GQ_DOWN;
}

static void on_retry(uv_timer_t *t)
{
    struct gq *q = t->data;
    uint64_t now = uv_now(q->srv->loop);
    for (size_t k = 0; k < q->n; k++) {
        if (q->nodes[k].state == GQ_DOWN && now >= q->nodes[k].retry_at)
            node_connect(&q->nodes[k]);
        for (gq_pending *x = q->nodes[k].head; x; x = x->next)
            if (x->deadline && now >= x->deadline && !x->answered) {
                proto_error err;
                proto_error_set(&err, PROTO_E_NOT_READY, -1, "the node did not answer within "
                                "%d ms", GQ_FAN_TIMEOUT_MS);
                x->answered = 1;
                x->by = NULL; /* its fan-out may be gone once done ran */
                x->done(x->ctx, NULL, 0, &err);
            }
    }
    gateway_lag_refresh(q);
}

/* --gateway-node's lines, then --gateway-nodes-file's ('#' comments and
 * blank lines dropped), "\n"-separated; NULL (logged) when the file cannot
 * be read or a line is not I/N@HOST:PORT. */
static char *node_list(const server_config *cfg)
{
    proto_buf b = {0};
    char line[GATEWAY_HOST_MAX + 64], host[GATEWAY_HOST_MAX];
    uint32_t i, n;
    int port, bad = 0;
    for (const char *p = cfg->gateway_nodes; p && *p;) { /* flags.c checked them */
        size_t l = strcspn(p, "\n");
        if (l && proto_buf_printf(&b, "%.*s\n", (int)l, p) < 0)
            bad = 1;
        p += l + (p[l] == '\n');
    }
    FILE *f = cfg->gateway_nodes_file ? fopen(cfg->gateway_nodes_file, "r") : NULL;
    if (cfg->gateway_nodes_file && !f) {
        log_error("gateway_nodes_file_unreadable file=%s err=\"%s\"", cfg->gateway_nodes_file,
                  strerror(errno));
        bad = 1;
    }
    while (f && !bad && fgets(line, sizeof line, f)) {
        char *p = line + strspn(line, " \t");
        size_t l = strcspn(p, "#\r\n");
        while (l > 0 && (p[l - 1] == ' ' || p[l - 1] == '\t'))
            l--;
        if (l == 0)
            continue;
        if (gateway_node_parse(p, l, &i, &n, host, sizeof host, &port) != 0) {
            log_error("gateway_nodes_file_bad_line file=%s line=\"%.*s\" (I/N@HOST:PORT, 0 <= I < N)",
                      cfg->gateway_nodes_file, (int)(l > 80 ? 80 : l), p);
            bad = 1;
        } else if (proto_buf_printf(&b, "%.*s\n", (int)l, p) < 0) {
            bad = 1;
        }
    }
    if (f)
        fclose(f);
    if (bad || proto_buf_append(&b, "", 1) != 0) {
        proto_buf_free(&b);
        return NULL;
    }
    return b.data;
}

int gateway_query_start(server *srv)
{
    struct gq *q = calloc(1, sizeof *q);
    if (!q)
        return UV_ENOMEM;
    char *list = node_list(&srv->cfg);
    if (!list) {
        free(q);
        return UV_EINVAL;
    }
    q->list = list;
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
            return UV_EINVAL; /* node_list checked it */
        snprintf(nd->name, sizeof nd->name, "%u/%u@%s:%d", nd->i, nd->n, nd->host, nd->port);
        p += l + (p[l] == '\n');
    }
    /* The first connects once the loop runs: nothing is in flight if the
     * start fails after this (main.c then frees without running the loop). */
    uv_timer_init(srv->loop, &q->retry);
    q->retry.data = q;
    uv_timer_start(&q->retry, on_retry, 0, GQ_RETRY_MS);
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
    x->annotate = 1;
    x->deadline = uv_now(q->srv->loop) + GQ_FAN_TIMEOUT_MS;
    x->done = done;
    x->ctx = ctx;
    route(q, x, NULL);
    return 0;
}

/* ---- fan-out: one query to several nodes ------------------------------------------ */

typedef struct gq_fan gq_fan;
typedef struct gq_sub {
    gq_fan *f;
    gateway_fan_reply r;
    uint32_t i, n; /* what the node asked owns */
    int by;        /* the k of the node it went to last (a failover moves it), -1 none */
} gq_sub;

struct gq_fan {
    server *srv;
    gateway_fan_fn done;
    void *ctx;
    int all;     /* every node asked (stats), not one per group of partitions (top) */
    size_t left; /* subs not answered yet, +1 while they are being sent */
    size_t nsubs;
    gq_sub subs[];
};

/* The (node, partition) pairs behind by more than the threshold: of every
 * node asked (stats: a node too stuck to answer is behind all the same),
 * or of those whose R is in the answer (top). */
static gateway_behind *fan_behind(struct gq *q, const gq_fan *f, int32_t np, size_t *nb)
{
    gateway_behind *b = calloc(f->nsubs * (size_t)(np > 0 ? np : 0) + 1, sizeof *b);
    *nb = 0;
    for (size_t k = 0; k < f->nsubs && b; k++) {
        const gq_sub *s = &f->subs[k];
        proto_error e;
        if (s->by < 0 || (!f->all && (!s->r.reply || relay_status(s->r.reply, s->r.len, &e) != 1)))
            continue;
        const gq_node *nd = &q->nodes[s->by];
        for (int32_t p = 0; p < np; p++) {
            int64_t lag = (uint32_t)p % nd->n == nd->i ? gateway_lag(nd, p) : -1;
            if (lag >= 0 && (uint64_t)lag > q->srv->cfg.gateway_behind_records) {
                b[*nb] = (gateway_behind){.partition = p, .records = lag};
                snprintf(b[(*nb)++].node, sizeof b->node, "%s", nd->name);
            }
        }
    }
    return b;
}

/* The nodes owning one of the missing partitions that are not up, and why. */
static gateway_fan_reply *fan_down(struct gq *q, const int32_t *missing, size_t nmissing,
                                   size_t *nd_out)
{
    gateway_fan_reply *d = calloc(q->n + 1, sizeof *d);
    *nd_out = 0;
    for (size_t k = 0; k < q->n && d; k++) {
        const gq_node *nd = &q->nodes[k];
        int owns = 0;
        for (size_t m = 0; m < nmissing && !owns; m++)
            owns = (uint32_t)missing[m] % nd->n == nd->i;
        if (!owns || nd->state == GQ_UP)
            continue;
        gateway_fan_reply *r = &d[(*nd_out)++];
        r->lag = -1;
        snprintf(r->node, sizeof r->node, "%s", nd->name);
        snprintf(r->err, sizeof r->err, "%.200s", nd->why[0] ? nd->why : "not connected yet");
    }
    return d;
}

static void fan_finish(gq_fan *f)
{
    struct gq *q = f->srv->gateway_q;
    int32_t np = gateway_partitions(f->srv);
    gateway_fan_result res = {0};
    gateway_fan_reply *rs = calloc(f->nsubs + 1, sizeof *rs);
    int32_t *missing = np > 0 ? calloc((size_t)np, sizeof *missing) : NULL;
    res.replies = rs;
    res.nparts = np;
    res.missing = missing;
    for (size_t k = 0; k < f->nsubs && rs; k++) {
        gq_sub *s = &f->subs[k];
        if (s->by >= 0) /* the node that answered, which a failover may have changed */
            snprintf(s->r.node, sizeof s->r.node, "%s", q->nodes[s->by].name);
        s->r.lag = s->by >= 0 ? gateway_lag_max(&q->nodes[s->by]) : -1;
        rs[res.n++] = s->r;
    }
    /* A partition is answered for when some node owning it gave an R. */
    for (int32_t p = 0; p < np && missing; p++) {
        int ok = 0;
        for (size_t k = 0; k < f->nsubs && !ok; k++) {
            const gq_sub *s = &f->subs[k];
            proto_error e;
            ok = s->r.reply && (uint32_t)p % s->n == s->i &&
                 relay_status(s->r.reply, s->r.len, &e) == 1;
        }
        if (!ok)
            missing[res.nmissing++] = p;
    }
    gateway_behind *behind = fan_behind(q, f, np, &res.nbehind);
    gateway_fan_reply *down = missing ? fan_down(q, missing, res.nmissing, &res.ndown) : NULL;
    res.behind = behind;
    res.down = down;
    if (!rs || (np > 0 && !missing) || !behind || !down)
        res.n = 0, res.oom = 1;
    f->done(f->ctx, &res);
    free(behind);
    free(down);
    for (size_t k = 0; k < f->nsubs; k++)
        free((void *)f->subs[k].r.reply);
    free(rs);
    free(missing);
    free(f);
}

static void fan_sub_done(void *ctx, const uint8_t *reply, size_t len, const proto_error *err)
{
    gq_sub *s = ctx;
    if (err) {
        snprintf(s->r.err, sizeof s->r.err, "%s", err->msg);
    } else if ((s->r.reply = malloc(len ? len : 1))) {
        memcpy((void *)s->r.reply, reply, len);
        s->r.len = len;
    } else {
        snprintf(s->r.err, sizeof s->r.err, "out of memory");
    }
    if (--s->f->left == 0)
        fan_finish(s->f);
}

/* Send msg to nd for sub s (part: the partition it stands for, -1: that
 * node only). */
static void fan_send(struct gq *q, gq_node *nd, gq_sub *s, int32_t part, const uint8_t *msg,
                     size_t len)
{
    proto_error err;
    gq_pending *x = calloc(1, sizeof *x);
    s->i = nd->i;
    s->n = nd->n;
    s->by = -1;
    snprintf(s->r.node, sizeof s->r.node, "%s", nd->name);
    if (!x || !(x->msg = malloc(len))) {
        free(x);
        proto_error_set(&err, PROTO_E_TOO_LARGE, -1, "out of memory");
        fan_sub_done(s, NULL, 0, &err);
        return;
    }
    memcpy(x->msg, msg, len);
    x->len = len;
    x->part = part;
    x->by = &s->by;
    x->deadline = uv_now(q->srv->loop) + GQ_FAN_TIMEOUT_MS;
    x->done = fan_sub_done;
    x->ctx = s;
    if (part >= 0)
        route(q, x, NULL);
    else
        gq_send_to(nd, x);
}

int gateway_fan(server *srv, int all, const uint8_t *msg, size_t len, gateway_fan_fn done,
                void *ctx, proto_error *err)
{
    struct gq *q = srv->gateway_q;
    int32_t np = gateway_partitions(srv);
    if (!q || np <= 0 || q->stopping)
        return proto_error_set(err, PROTO_E_NOT_READY, -1, "the gateway is not ready");
    gq_fan *f = calloc(1, sizeof *f + (q->n + 1) * sizeof(gq_sub));
    uint8_t *covered = calloc((size_t)np, 1);
    if (!f || !covered) {
        free(f);
        free(covered);
        return proto_error_set(err, PROTO_E_TOO_LARGE, -1, "out of memory");
    }
    f->srv = srv;
    f->all = all;
    f->done = done;
    f->ctx = ctx;
    f->left = 1;
    if (all) { /* every node, as configured */
        for (size_t k = 0; k < q->n; k++) {
            gq_sub *s = &f->subs[f->nsubs++];
            s->f = f;
            f->left++;
            fan_send(q, &q->nodes[k], s, -1, msg, len);
        }
    } else { /* one ready node per group of partitions not yet covered */
        for (int32_t p = 0; p < np; p++) {
            gq_node *nd = covered[p] ? NULL : pick(q, p, NULL);
            if (!nd || f->nsubs == q->n)
                continue;
            for (int32_t o = 0; o < np; o++)
                covered[o] |= (uint32_t)o % nd->n == nd->i;
            gq_sub *s = &f->subs[f->nsubs++];
            s->f = f;
            f->left++;
            fan_send(q, nd, s, p, msg, len);
        }
    }
    free(covered);
    if (--f->left == 0)
        fan_finish(f);
    return 0;
}

int gateway_nodes_ready(const server *srv, char *why, size_t cap)
{
    const struct gq *q = srv->gateway_q;
    int32_t np = gateway_partitions(srv);
    if (!q || q->n == 0) /* no --gateway-node: an ingest-only gateway */
        return 1;
    for (int32_t p = 0; p < np; p++)
        if (!pick((struct gq *)q, p, NULL)) {
            char reason[200];
            down_reason(q, p, reason, sizeof reason);
            snprintf(why, cap, "no node owning partition %d answers (--gateway-node)%s", (int)p,
                     reason);
            return 0;
        }
    return 1;
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
    gateway_lag_free(q);
    free(q->nodes);
    free(q->list);
    free(q);
    srv->gateway_q = NULL;
}
