/* gateway_lag — how far behind its partitions' end in Kafka each node is
 * (docs/cluster.md, "Nodes that are behind").
 *
 *   each tick (500 ms): every node that is up is asked ["Q", 0, {"op":
 *       "offsets"}] (its next offset per owned partition; one question in
 *       flight per node), and Kafka the topic's high watermarks
 *       (gateway_watermarks, from the gateway's own producer handle)
 *   lag(node, p) = high watermark(p) - the node's next offset(p)
 *
 * Why the gateway compares, rather than trusting a lag the node reports: a
 * node that is stuck (paused, swapping, its consumer wedged) does not
 * answer, or answers with the watermark its own consumer last saw, which
 * is as stale as the node. The node's last answer against a watermark the
 * gateway looked up itself grows while the node stands still, answer or
 * not. The watermark is looked up just after the offsets are asked for, so
 * a node keeping up shows as behind by at most what arrived in between.
 */
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "gateway_internal.h"
#include "log.h"
#include "relay.h"

/* ["Q", 0, {"op": "offsets"}] */
static const uint8_t offsets_msg[] = {0x93, 0xa1, 'Q', 0x00, 0x81, 0xa2, 'o', 'p',
                                      0xa7, 'o',  'f',  'f',  's',  'e', 't', 's'};

int64_t gateway_lag(const gq_node *nd, int32_t p)
{
    const struct gq *q = nd->q;
    if (!nd->next || !q->hw || p < 0 || p >= q->nhw || q->hw[p] < 0 || nd->next[p] < 0)
        return -1;
    return q->hw[p] > nd->next[p] ? q->hw[p] - nd->next[p] : 0;
}

int64_t gateway_lag_max(const gq_node *nd)
{
    int64_t most = -1;
    for (int32_t p = 0; p < nd->q->nhw; p++) {
        int64_t l = (uint32_t)p % nd->n == nd->i ? gateway_lag(nd, p) : -1;
        most = l > most ? l : most;
    }
    return most;
}

int gateway_lag_rank(const gq_node *nd, int32_t p, uint64_t threshold)
{
    int64_t l = gateway_lag(nd, p);
    return l < 0 ? 1 : (uint64_t)l > threshold ? 2 : 0;
}

/* {"partitions": [{"partition": p, "next_offset": n}, ...], ...} -> nd->next. */
static void offsets_replied(void *ctx, const uint8_t *reply, size_t len, const proto_error *err)
{
    gq_node *nd = ctx;
    int32_t np = gateway_partitions(nd->q->srv);
    nd->offsets_busy = 0;
    if (err || np <= 0 || nd->state != GQ_UP)
        return;
    if (!nd->next && !(nd->next = malloc((size_t)np * sizeof *nd->next)))
        return;
    for (int32_t p = 0; p < np; p++)
        nd->next[p] = -1;
    msgpack_unpacked u;
    size_t off = 0;
    msgpack_unpacked_init(&u);
    /* anything else (an ERR: a node from before the offsets query) leaves
     * every partition unknown */
    if (msgpack_unpack_next(&u, (const char *)reply, len, &off) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size == 3 &&
        u.data.via.array.ptr[2].type == MSGPACK_OBJECT_MAP) {
        const msgpack_object_map *m = &u.data.via.array.ptr[2].via.map;
        for (uint32_t i = 0; i < m->size; i++) {
            const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
            if (k->type != MSGPACK_OBJECT_STR || k->via.str.size != 10 ||
                memcmp(k->via.str.ptr, "partitions", 10) != 0 || v->type != MSGPACK_OBJECT_ARRAY)
                continue;
            for (uint32_t j = 0; j < v->via.array.size; j++) {
                const msgpack_object *e = &v->via.array.ptr[j];
                int64_t part = -1, next = -1;
                for (uint32_t f = 0; e->type == MSGPACK_OBJECT_MAP && f < e->via.map.size; f++) {
                    const msgpack_object *fk = &e->via.map.ptr[f].key, *fv = &e->via.map.ptr[f].val;
                    if (fk->type != MSGPACK_OBJECT_STR || fv->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
                        fv->via.u64 > INT64_MAX)
                        continue;
                    if (fk->via.str.size == 9 && memcmp(fk->via.str.ptr, "partition", 9) == 0)
                        part = (int64_t)fv->via.u64;
                    else if (fk->via.str.size == 11 && memcmp(fk->via.str.ptr, "next_offset", 11) == 0)
                        next = (int64_t)fv->via.u64;
                }
                if (part >= 0 && part < np)
                    nd->next[part] = next;
            }
        }
    }
    msgpack_unpacked_destroy(&u);
}

static void marks_in(server *srv, const int64_t *hw, int32_t n)
{
    struct gq *q = srv->gateway_q;
    if (!q || q->stopping)
        return;
    if (q->nhw != n) {
        int64_t *a = realloc(q->hw, (size_t)n * sizeof *a);
        if (!a)
            return;
        q->hw = a;
        q->nhw = n;
    }
    memcpy(q->hw, hw, (size_t)n * sizeof *hw);
}

void gateway_lag_refresh(struct gq *q)
{
    if (q->stopping)
        return;
    for (size_t k = 0; k < q->n; k++) {
        gq_node *nd = &q->nodes[k];
        if (nd->state != GQ_UP || nd->offsets_busy)
            continue;
        gq_pending *x = calloc(1, sizeof *x);
        if (!x || !(x->msg = malloc(sizeof offsets_msg))) {
            free(x);
            return;
        }
        memcpy(x->msg, offsets_msg, sizeof offsets_msg);
        x->len = sizeof offsets_msg;
        x->part = -1;
        x->done = offsets_replied;
        x->ctx = nd;
        nd->offsets_busy = 1; /* reset by offsets_replied, which runs whatever happens */
        gq_send_to(nd, x);
    }
    gateway_watermarks(q->srv, marks_in); /* -1: one is running already */
}

int gateway_lag_note(const gq_node *nd, int32_t p, const uint8_t *reply, size_t len,
                     uint8_t **out, size_t *outlen)
{
    int64_t lag = gateway_lag(nd, p);
    proto_buf b = {0};
    *out = NULL;
    *outlen = 0;
    if (lag < 0 || (uint64_t)lag <= nd->q->srv->cfg.gateway_behind_records)
        return 0;
    if (relay_add_behind(reply, len, &p, &lag, 1, &b) != 0) { /* an ERR: passed on as is */
        proto_buf_free(&b);
        return 0;
    }
    *out = (uint8_t *)b.data;
    *outlen = b.len;
    return 1;
}

void gateway_lag_forget(gq_node *nd)
{
    free(nd->next);
    nd->next = NULL;
}

void gateway_lag_free(struct gq *q)
{
    for (size_t k = 0; k < q->n; k++)
        gateway_lag_forget(&q->nodes[k]);
    free(q->hw);
    q->hw = NULL;
    q->nhw = 0;
}
