/* http_gateway — HTTP on a gateway (--gateway): what a node would answer
 * from its store, the gateway answers from the nodes (gateway.h), later
 * (http__answer_wait / http__answer_later):
 *
 *   /symbols/{sym}[/trades|/bars]  the TCP query (query_pack) to a ready
 *        node owning the symbol, its reply re-emitted as JSON (relay.h): the
 *        body a node's own endpoint gives
 *   /symbols?top=                  merged top-N (gateway_top), "partial"
 *   /stats, /metrics               the gateway's own, plus every node's
 *        store figures and their sum (gateway_cluster_json/_prom)
 */
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "http_internal.h"
#include "relay.h"

static void answer_err(http__answer *a, const proto_error *err)
{
    http__answer_proto_error(a, err);
}

/* A node's reply to a forwarded per-symbol query. */
static void symbol_replied(void *ctx, const uint8_t *reply, size_t len, const proto_error *err)
{
    http_conn *c = ctx;
    http__answer a = {.ctype = "application/json"};
    proto_error e = {0};
    if (err) {
        answer_err(&a, err);
    } else if (relay_status(reply, len, &e) != 1) {
        answer_err(&a, &e);
    } else {
        emit em;
        emit_json_init(&em, &a.body);
        relay_result(reply, len, &em);
        a.status = 200;
        if (em.err)
            http__answer_error(&a, 500, "INTERNAL", "out of memory writing the answer");
    }
    http__answer_later(c, &a);
}

/* The merged top-N, already JSON. */
static void top_replied(void *ctx, const uint8_t *body, size_t len, const proto_error *err)
{
    http_conn *c = ctx;
    http__answer a = {.ctype = "application/json"};
    if (err) {
        answer_err(&a, err);
    } else if (proto_buf_append(&a.body, body, len) != 0) {
        http__answer_error(&a, 500, "INTERNAL", "out of memory writing the answer");
    } else {
        a.status = 200;
    }
    http__answer_later(c, &a);
}

void http__gateway_query(http_conn *c, const query_req *q, http__answer *a)
{
    proto_error err = {0};
    proto_buf msg = {0};
    server *srv = c->h->srv;
    int rc;
    http__answer_wait(c);
    if (q->op == QUERY_TOP) {
        rc = gateway_top(srv, q, 0, 1, top_replied, c, &err);
    } else if (query_pack(&msg, 0, q) != 0) {
        rc = proto_error_set(&err, PROTO_E_TOO_LARGE, -1, "out of memory");
    } else {
        rc = gateway_query_forward(srv, q, (const uint8_t *)msg.data, msg.len, symbol_replied, c, &err);
    }
    proto_buf_free(&msg);
    if (rc != 0) { /* answered now, not later */
        answer_err(a, &err);
        http__answer_later(c, a);
    }
}

typedef struct stats_req {
    http_conn *c;
    int prom;
} stats_req;

static void stats_replied(void *ctx, const gateway_fan_result *res)
{
    stats_req *sr = ctx;
    http_conn *c = sr->c;
    server *srv = c->h->srv;
    http__answer a = {.ctype = sr->prom ? "text/plain; version=0.0.4; charset=utf-8"
                                        : "application/json"};
    int rc = sr->prom ? http_render_metrics(srv, &a.body) : http_render_stats(srv, &a.body);
    if (rc == 0 && !res->oom && sr->prom) {
        rc = gateway_cluster_prom(res, &a.body);
    } else if (rc == 0 && !res->oom) {
        /* The gateway's own /stats is one JSON map: "cluster" is added as
         * its last key. */
        emit e;
        assert(a.body.len > 0 && a.body.data[a.body.len - 1] == '}');
        a.body.len--;
        rc = proto_buf_printf(&a.body, ",\"cluster\":") < 0 ? -1 : 0;
        emit_json_init(&e, &a.body);
        gateway_cluster_json(res, &e);
        rc |= e.err || proto_buf_printf(&a.body, "}") < 0 ? -1 : 0;
    }
    a.status = rc == 0 && !res->oom ? 200 : 500;
    if (a.status == 500) {
        a.body.len = 0;
        http__answer_error(&a, 500, "INTERNAL", "out of memory writing the answer");
    }
    free(sr);
    http__answer_later(c, &a);
}

void http__gateway_stats(http_conn *c, int prom, http__answer *a)
{
    proto_error err = {0};
    server *srv = c->h->srv;
    stats_req *sr = calloc(1, sizeof *sr);
    http__answer_wait(c);
    if (!sr) {
        http__answer_error(a, 500, "INTERNAL", "out of memory");
    } else {
        *sr = (stats_req){c, prom};
        if (gateway_fan(srv, 1, gateway_stats_msg, sizeof gateway_stats_msg, stats_replied, sr, &err) == 0)
            return;
        free(sr);
        /* not ready (the partition count unknown yet): the gateway's own */
        a->status = (prom ? http_render_metrics(srv, &a->body) : http_render_stats(srv, &a->body))
                        ? 500 : 200;
        if (prom)
            a->ctype = "text/plain; version=0.0.4; charset=utf-8";
    }
    http__answer_later(c, a);
}
