/* http_routes — the endpoint table, its handlers, and authentication.
 *
 *   GET /healthz /readyz /stats /metrics /schema /symbols?top=N&by=...
 *       /symbols/{sym} /symbols/{sym}/trades /symbols/{sym}/bars
 *       /export?syms=&from=&to=&format= (streamed: http_export.c) /clients
 *       /subscribe?syms=&from=&gaps= (Server-Sent Events: http_subscribe.c)
 *   DELETE /symbols/{sym}/trades?from=&to=
 *
 * A handler turns the request (path after its endpoint's prefix, query
 * string, method) into an answer: queries go through query.h (the same code
 * as the TCP Q message), so only the parameter syntax and the JSON encoding
 * live here. A DELETE is answered later, when journaled and applied.
 *
 * With --token every endpoint not marked `open` in the endpoint table
 * (all but the probes and /metrics) needs "Authorization: Bearer <token>",
 * compared in constant time (token.h); else 401 with WWW-Authenticate.
 * With --auth-file the token is "name:secret" (auth.h), and the client's
 * perms must allow the request (query; DELETE: ingest), else 403. Refusals
 * count in slotd_auth_failures_total. A reserve connection is served the
 * probes only (503 TOO_MANY_CONNECTIONS).
 */
#include "http_internal.h"
#include "gateway.h"
#include "kafka.h"

#include <stdio.h>
#include <stdlib.h>

#include "auth.h"
#include "delete.h"
#include "log.h"
#include "emit.h"
#include "export.h"

/* ---- routing ------------------------------------------------------------------- */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* %XX-decode src into dst (at least len bytes). '+' stays '+': times like
 * 2026-01-01T00:00:00+01:00 are then usable unescaped. */
static int pct_decode(const char *src, size_t len, char *dst, size_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] != '%') {
            dst[n++] = src[i];
            continue;
        }
        int hi = i + 2 < len ? hexval(src[i + 1]) : -1, lo = i + 2 < len ? hexval(src[i + 2]) : -1;
        if (hi < 0 || lo < 0)
            return -1;
        dst[n++] = (char)(hi << 4 | lo);
        i += 2;
    }
    *out = n;
    return 0;
}

void http__answer_error(http__answer *a, int status, const char *code, const char *msg)
{
    a->status = status;
    a->body.len = 0;
    a->ctype = "application/json";
    http__json_error(&a->body, code, msg);
}

void http__answer_proto_error(http__answer *a, const proto_error *err)
{
    int status = err->code == PROTO_E_NOT_FOUND       ? 404
                 : err->code == PROTO_E_NOT_READY ? 503
                 : err->code == PROTO_E_READ_ONLY ? 409
                                                  : 400;
    http__answer_error(a, status, proto_code_name(err->code), err->msg);
}

/* Each name=value of a query string, percent-decoded, to set(). 0, or -1
 * with the error answered. */
typedef int (*param_fn)(void *ctx, const char *name, size_t nlen, const char *val, size_t vlen,
                        proto_error *err);
int http__parse_qs(http__answer *a, const char *qs, size_t qlen, param_fn set, void *ctx)
{
    proto_error err = {0};
    char name[HTTP_URL_MAX], val[HTTP_URL_MAX];
    size_t nlen, vlen;
    for (size_t i = 0; i < qlen;) {
        size_t j = i;
        while (j < qlen && qs[j] != '&')
            j++;
        const char *eq = memchr(qs + i, '=', j - i);
        size_t klen = eq ? (size_t)(eq - (qs + i)) : j - i;
        if (j > i) { /* "a=1&&b=2": empty pairs are skipped */
            if (pct_decode(qs + i, klen, name, &nlen) < 0 ||
                (eq && pct_decode(eq + 1, (size_t)(qs + j - eq - 1), val, &vlen) < 0)) {
                http__answer_error(a, 400, "BAD_QUERY", "bad percent-encoding in the query string");
                return -1;
            }
            if (!eq)
                vlen = 0;
            if (set(ctx, name, nlen, val, vlen, &err) < 0) {
                http__answer_proto_error(a, &err);
                return -1;
            }
        }
        i = j + 1;
    }
    return 0;
}

static int replaying(server *srv, http__answer *a)
{
    if (srv->replaying)
        http__answer_error(a, 503, "NOT_READY", "slotd is replaying its journal; retry shortly");
    return srv->replaying;
}

static int query_param(void *ctx, const char *name, size_t nlen, const char *val, size_t vlen,
                       proto_error *err)
{
    return query_set_param(ctx, name, nlen, val, vlen, err);
}

/* The request as a query_req: symbol (may be NULL) from the path,
 * parameters from the query string. 0, or -1 with the error answered. */
static int route_parse(server *srv, http__answer *a, query_op op, const char *sym, size_t symlen,
                       const char *qs, size_t qlen, query_req *qp)
{
    query_req q;
    proto_error err = {0};
    char sbuf[HTTP_URL_MAX];
    size_t n;
    if (replaying(srv, a))
        return -1;
    query_req_init(&q, op);
    if (sym) {
        if (pct_decode(sym, symlen, sbuf, &n) < 0) {
            http__answer_error(a, 400, "BAD_QUERY", "bad percent-encoding in the symbol");
            return -1;
        }
        if (query_set_symbol(&q, sbuf, n, &err) < 0) {
            http__answer_proto_error(a, &err);
            return -1;
        }
    }
    if (http__parse_qs(a, qs, qlen, query_param, &q) < 0)
        return -1;
    *qp = q;
    return 0;
}

static int export_param(void *ctx, const char *name, size_t nlen, const char *val, size_t vlen,
                        proto_error *err)
{
    return export_set_param(ctx, name, nlen, val, vlen, err);
}

/* What a handler gets: the path after its endpoint's prefix, the query
 * string, the method. */
typedef struct http_req {
    server *srv;
    int method;           /* http_parser's HTTP_GET, HTTP_HEAD, ... */
    const char *rest, *qs;
    size_t rlen, qlen;
    http_conn *conn;      /* for an answer given later (DELETE) */
} http_req;

/* A query endpoint: route_parse, then the shared query code. */
static void route_query(const http_req *r, http__answer *a, query_op op, const char *sym,
                        size_t symlen)
{
    query_req q;
    proto_error err = {0};
    server *srv = r->srv;
    if (route_parse(srv, a, op, sym, symlen, r->qs, r->qlen, &q) < 0)
        return;
    if (srv->cfg.gateway && op != QUERY_SCHEMA) { /* the nodes hold the data */
        http__gateway_query(r->conn, &q, a);
        return;
    }
    emit e;
    emit_json_init(&e, &a->body);
    if (query_run(srv->store, &q, &e, &err) < 0) {
        http__answer_proto_error(a, &err);
        return;
    }
    if (e.err) {
        http__answer_error(a, 500, "INTERNAL", "out of memory writing the answer");
        return;
    }
    a->status = 200;
}

static void route_readyz(server *srv, http__answer *a)
{
    const char *reason = NULL;
    char msg[160];
    if (srv->replaying) {
        reason = "replaying the journal";
    } else if (!srv->ready && srv->cfg.gateway && !srv->stopping && !gateway_ready(srv, msg, sizeof msg)) {
        reason = msg;
    } else if (!srv->ready) {
        reason = srv->stopping ? "shutting down" : "starting";
    } else {
        store_stats st;
        store_get_stats(srv->store, &st);
        /* Near the cap new batches would be refused with STORE_FULL: take
         * this instance out of rotation before that happens. */
        if (st.bytes_cap && (double)(st.bytes_reserved + st.bytes_pending) >= 0.99 * (double)st.bytes_cap) {
            snprintf(msg, sizeof msg, "store at %.1f%% of its memory cap (%llu bytes)",
                     100.0 * (double)(st.bytes_reserved + st.bytes_pending) / (double)st.bytes_cap,
                     (unsigned long long)st.bytes_cap);
            reason = msg;
        }
        /* A Kafka-fed node answers for its partitions only once it has
         * caught up with them (--kafka-ready-lag). */
        if (!reason && srv->cfg.source == SERVER_SOURCE_KAFKA && !kafka_ready(srv, msg, sizeof msg))
            reason = msg;
        /* A gateway answers queries only while each partition has a node. */
        if (!reason && srv->cfg.gateway && !gateway_nodes_ready(srv, msg, sizeof msg))
            reason = msg;
    }
    emit e;
    emit_json_init(&e, &a->body);
    e.map(&e, 2);
    e.key(&e, "status");
    emit_cstr(&e, reason ? "not_ready" : "ready");
    e.key(&e, "reason");
    if (reason)
        emit_cstr(&e, reason);
    else
        e.nil(&e);
    e.end(&e);
    a->status = reason ? 503 : 200;
}

static int seg_is(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

/* ---- endpoints ------------------------------------------------------------------ */


static void ep_healthz(const http_req *r, http__answer *a)
{
    a->status = 200;
    proto_buf_printf(&a->body, "{\"status\":\"ok\"}");
}

static void ep_readyz(const http_req *r, http__answer *a) { route_readyz(r->srv, a); }

static void ep_stats(const http_req *r, http__answer *a)
{
    if (r->srv->cfg.gateway) {
        http__gateway_stats(r->conn, 0, a);
        return;
    }
    a->status = http_render_stats(r->srv, &a->body) == 0 ? 200 : 500;
}

static void ep_metrics(const http_req *r, http__answer *a)
{
    a->ctype = "text/plain; version=0.0.4; charset=utf-8";
    if (r->srv->cfg.gateway) {
        http__gateway_stats(r->conn, 1, a);
        return;
    }
    a->status = http_render_metrics(r->srv, &a->body) == 0 ? 200 : 500;
}

static void ep_schema(const http_req *r, http__answer *a)
{
    route_query(r, a, QUERY_SCHEMA, NULL, 0);
}

static void ep_top(const http_req *r, http__answer *a)
{
    route_query(r, a, QUERY_TOP, NULL, 0);
}

/* DELETE where only GET and HEAD are served. */
static void answer_405(http__answer *a)
{
    http__answer_error(a, 405, "METHOD_NOT_ALLOWED", "DELETE is for /symbols/{sym}/trades only");
    a->extra = "Allow: GET, HEAD\r\n";
}

/* A write: journaled first, answered when applied (delete.h). The
 * connection parses nothing more meanwhile, so answers stay in order. */
static void route_delete(const http_req *r, http__answer *a, const char *sym, size_t symlen)
{
    query_req q;
    http_conn *c = r->conn;
    if (route_parse(r->srv, a, QUERY_DELETE, sym, symlen, r->qs, r->qlen, &q) < 0)
        return;
    http__answer_wait(c);
    delete_submit(r->srv, &q, http__deleted, c);
}

/* /symbols/{sym}[/trades|/bars]; the symbol is one segment, so a symbol
 * containing '/' is written %2F. DELETE on /trades deletes. */
static void ep_symbol(const http_req *r, http__answer *a)
{
    const char *sym = r->rest, *slash = memchr(sym, '/', r->rlen);
    size_t symlen = slash ? (size_t)(slash - sym) : r->rlen;
    const char *rest = slash ? slash : "";
    size_t rlen = slash ? (size_t)(r->rest + r->rlen - slash) : 0;
    if (r->method == HTTP_DELETE) {
        if (r->srv->cfg.gateway) /* a write the nodes cannot take from here (READ_ONLY) */
            http__answer_error(a, 501, "NOT_SUPPORTED", "this is a gateway (--gateway): deletes "
                               "are not routed to the nodes");
        else if (symlen && seg_is(rest, rlen, "/trades"))
            route_delete(r, a, sym, symlen);
        else
            answer_405(a);
        return;
    }
    if (symlen == 0)
        http__answer_error(a, 404, "NOT_FOUND", "no such path");
    else if (rlen == 0)
        route_query(r, a, QUERY_SYMBOL, sym, symlen);
    else if (seg_is(rest, rlen, "/trades"))
        route_query(r, a, QUERY_TRADES, sym, symlen);
    else if (seg_is(rest, rlen, "/bars"))
        route_query(r, a, QUERY_BARS, sym, symlen);
    else
        http__answer_error(a, 404, "NOT_FOUND", "no such path");
}

/* GET /export: checked here, then streamed (http_export.c). */
static void ep_export(const http_req *r, http__answer *a)
{
    proto_error err = {0};
    if (replaying(r->srv, a))
        return;
    if (r->srv->cfg.gateway) { /* its store is empty: never export that */
        http__answer_error(a, 501, "NOT_SUPPORTED", "this is a gateway (--gateway): export from "
                           "one node of each group of partitions (docs/cluster.md)");
        return;
    }
    export_req *q = malloc(sizeof *q);
    if (!q) {
        a->status = 500;
        return;
    }
    export_req_init(q);
    if (http__parse_qs(a, r->qs, r->qlen, export_param, q) < 0 ||
        export_check(r->srv->store, q, &err) < 0) {
        if (err.code)
            http__answer_proto_error(a, &err);
        free(q);
        return;
    }
    if (http__export_stream(r->srv, q, a) < 0) /* takes q */
        a->status = 500;
}

/* GET /subscribe: Server-Sent Events (http_subscribe.c). */
static void ep_subscribe(const http_req *r, http__answer *a)
{
    if (!replaying(r->srv, a))
        http__subscribe(r->srv, r->conn, r->qs, r->qlen, a);
}

/* GET /clients: every client name with its last durable seq (the seq a
 * resuming producer's WELCOME would carry), in table order. */
typedef struct clients_out {
    emit *e;
    uint32_t n;
} clients_out;

static void clients_count(void *ctx, const char *name, size_t n, uint64_t seq)
{
    (void)name, (void)n, (void)seq;
    ((clients_out *)ctx)->n++;
}

static void clients_emit(void *ctx, const char *name, size_t n, uint64_t seq)
{
    emit *e = ((clients_out *)ctx)->e;
    e->map(e, 2);
    e->key(e, "name");
    e->str(e, name, n);
    e->key(e, "last_seq");
    e->u64(e, seq);
    e->end(e);
}

static void ep_clients(const http_req *r, http__answer *a)
{
    if (replaying(r->srv, a))
        return;
    if (r->qlen) {
        http__answer_error(a, 400, "BAD_QUERY", "/clients takes no parameters");
        return;
    }
    emit e;
    clients_out co = {&e, 0};
    emit_json_init(&e, &a->body);
    clients_foreach(&r->srv->clients, clients_count, &co);
    e.map(&e, 2);
    e.key(&e, "clients");
    e.array(&e, co.n);
    clients_foreach(&r->srv->clients, clients_emit, &co);
    e.end(&e);
    e.key(&e, "count");
    e.u64(&e, co.n);
    e.end(&e);
    a->status = e.err ? 500 : 200;
}

/* The endpoint table. `open`: served without the token (the probes, and
 * /metrics: counters and gauges only, no trades or symbol names, so a
 * Prometheus scrape needs no secret), unless --http-probes-auth: then any
 * valid credential (no perm needed). `probe`: served on a reserve
 * connection too. `perm`: the --auth-file perm a GET needs (a DELETE needs
 * ingest). Anything else, unknown paths included, needs the token when
 * --token is set. */
static const struct endpoint {
    const char *path;     /* exact, or a prefix when it ends in '/' */
    uint8_t open, probe;
    unsigned perm;
    void (*fn)(const http_req *r, http__answer *a);
} endpoints[] = {
    {"/healthz", 1, 1, 0, ep_healthz},
    {"/readyz", 1, 1, 0, ep_readyz},
    {"/metrics", 1, 0, 0, ep_metrics},
    {"/stats", 0, 0, AUTH_QUERY, ep_stats},
    {"/schema", 0, 0, AUTH_QUERY, ep_schema},
    {"/symbols", 0, 0, AUTH_QUERY, ep_top},
    {"/export", 0, 0, AUTH_QUERY, ep_export},
    {"/clients", 0, 0, AUTH_QUERY, ep_clients},
    {"/subscribe", 0, 0, AUTH_SUBSCRIBE, ep_subscribe},
    {"/symbols/", 0, 0, AUTH_QUERY, ep_symbol},
};

static const struct endpoint *endpoint_find(const char *path, size_t plen, size_t *prefix)
{
    for (size_t i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++) {
        const struct endpoint *ep = &endpoints[i];
        size_t n = strlen(ep->path);
        if (ep->path[n - 1] == '/' ? plen > n && memcmp(path, ep->path, n) == 0
                                   : seg_is(path, plen, ep->path)) {
            *prefix = n;
            return ep;
        }
    }
    return NULL;
}

/* What may the request do (AUTH_* perms), or -1: no valid credentials.
 * Without --token and --auth-file everything. Else "Authorization: Bearer
 * <token>" exactly once (the scheme case-insensitive, RFC 7235; spaces
 * around the token are not part of it): --token's, compared in constant
 * time, may do everything; with --auth-file the token is "name:secret" and
 * may do what that client's line allows. */
static int http_perms(const http_conn *c)
{
    const server *srv = c->h->srv;
    const char *tok = srv->cfg.token;
    if (!tok && !srv->auth)
        return AUTH_ALL;
    if (c->auth_seen != 1 || c->auth_len > sizeof c->auth)
        return -1;
    const char *v = c->auth, *end = c->auth + c->auth_len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    if (end - v < 7 || !http__name_is(v, 6, "bearer") || (v[6] != ' ' && v[6] != '\t'))
        return -1;
    v += 7;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (tok)
        return token_equal(tok, v, (size_t)(end - v)) ? AUTH_ALL : -1;
    const char *colon = memchr(v, ':', (size_t)(end - v));
    unsigned perms;
    if (!colon || auth_check(srv->auth, v, (size_t)(colon - v), colon + 1,
                             (size_t)(end - colon - 1), &perms) != AUTH_OK)
        return -1;
    return (int)perms;
}

/* A refused request: counted; logged at most every 10 s with how many
 * (a flood of guesses cannot flood the log), never with the credentials. */
static void http_auth_failed(server *srv, int status)
{
    static uint64_t last_ns, unlogged;
    uint64_t now = uv_hrtime();
    srv->metrics.auth_failures_total++;
    unlogged++;
    if (last_ns && now - last_ns < 10000000000u)
        return;
    log_warn("http_auth_failed status=%d count=%llu", status, (unsigned long long)unlogged);
    last_ns = now;
    unlogged = 0;
}

static void answer_unauthorized(const http_conn *c, http__answer *a)
{
    http__answer_error(a, 401, "UNAUTHORIZED",
                 c->auth_seen ? "wrong token, or not one 'Authorization: Bearer <token>' header"
                              : "this endpoint needs 'Authorization: Bearer <token>' (--token)");
    /* RFC 6750: which scheme, and whether a token was tried and refused. */
    a->extra = c->auth_seen ? "WWW-Authenticate: Bearer realm=\"slotd\", error=\"invalid_token\"\r\n"
                            : "WWW-Authenticate: Bearer realm=\"slotd\"\r\n";
}

void http__route(http_conn *c, http__answer *a)
{
    struct http_parser_url u;
    const char *url = c->url;
    http_parser_url_init(&u);
    if (http_parser_parse_url(url, c->url_len, 0, &u) != 0) {
        http__answer_error(a, 400, "BAD_REQUEST", "the request URL cannot be parsed");
        return;
    }
    http_req r = {c->h->srv, c->parser.method, "", "", 0, 0, c};
    const char *path = "/";
    size_t plen = 1, prefix = 0;
    if (u.field_set & (1 << UF_PATH)) {
        path = url + u.field_data[UF_PATH].off;
        plen = u.field_data[UF_PATH].len;
    }
    if (u.field_set & (1 << UF_QUERY)) {
        r.qs = url + u.field_data[UF_QUERY].off;
        r.qlen = u.field_data[UF_QUERY].len;
    }
    a->ctype = "application/json";
    const struct endpoint *ep = endpoint_find(path, plen, &prefix);
    int perms = AUTH_ALL;
    int open = ep && ep->open && !r.srv->cfg.http_probes_auth;
    if (c->reserve && !(ep && ep->probe)) {
        http__answer_error(a, 503, "TOO_MANY_CONNECTIONS",
                     "too many HTTP connections: only /healthz and /readyz are served now");
    } else if (!open && (perms = http_perms(c)) < 0) {
        answer_unauthorized(c, a); /* before 404: paths are not probed without it */
        http_auth_failed(r.srv, 401);
    } else if (!ep) {
        http__answer_error(a, 404, "NOT_FOUND",
                     "no such path; try /healthz /readyz /stats /metrics /schema /symbols /export "
                     "/clients /subscribe");
    } else if (!ep->open && !(perms & (r.method == HTTP_DELETE ? AUTH_INGEST : ep->perm))) {
        http__answer_error(a, 403, "FORBIDDEN", r.method == HTTP_DELETE ? "this client may not "
                           "delete (--auth-file perms)" : ep->perm == AUTH_SUBSCRIBE
                           ? "this client may not subscribe (--auth-file perms)"
                           : "this client may not query (--auth-file perms)");
        http_auth_failed(r.srv, 403);
    } else {
        r.rest = path + prefix;
        r.rlen = plen - prefix;
        if (r.method == HTTP_DELETE && ep->fn != ep_symbol)
            answer_405(a);
        else
            ep->fn(&r, a);
    }
    if (a->status == 500 && a->body.len == 0)
        http__answer_error(a, 500, "INTERNAL", "out of memory writing the answer");
}

