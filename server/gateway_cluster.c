/* gateway_cluster — what the gateway answers from several nodes at once
 * (gateway.h, "cluster answers"): top-N merged over one ready node per
 * group of partitions, and every node's store figures for /stats and
 * /metrics. Missing partitions are always said, never left out.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "gateway.h"
#include "relay.h"

/* "behind": [{"partition", "records", "node"}, ...] */
static void behind_json(const gateway_fan_result *res, emit *e)
{
    e->key(e, "behind");
    e->array(e, (uint32_t)res->nbehind);
    for (size_t i = 0; i < res->nbehind; i++) {
        e->map(e, 3);
        e->key(e, "partition");
        e->i64(e, res->behind[i].partition);
        e->key(e, "records");
        e->i64(e, res->behind[i].records);
        e->key(e, "node");
        emit_cstr(e, res->behind[i].node);
        e->end(e);
    }
    e->end(e);
}

/* A query answered from several nodes (top, stats), and who waits for it. */
typedef struct top_req {
    store_by by;
    uint32_t n;
    uint64_t qid;
    int json;
    gateway_reply_fn done;
    void *ctx;
} top_req;

static void top_merged(void *ctx, const gateway_fan_result *res)
{
    top_req *t = ctx;
    proto_buf out = {0};
    proto_error err = {0};
    relay_top *m = res->oom ? NULL : relay_top_new(t->by, t->n);
    if (!m) {
        proto_error_set(&err, PROTO_E_TOO_LARGE, -1, "out of memory merging the nodes' answers");
        goto fail;
    }
    for (size_t k = 0; k < res->n; k++) {
        const gateway_fan_reply *r = &res->replies[k];
        /* an ERR reply or none: its partitions are in res->missing */
        if (r->reply && relay_status(r->reply, r->len, &err) == 1 &&
            relay_top_add(m, r->reply, r->len, &err) != 0)
            goto fail;
    }
    emit e;
    if (t->json) {
        emit_json_init(&e, &out);
    } else {
        emit_msgpack_init(&e, &out);
        e.array(&e, 3);
        emit_cstr(&e, "R");
        e.u64(&e, t->qid);
    }
    /* beside "partial": which partitions came from a node that is behind,
     * and why the nodes of the missing ones are down */
    relay_top_emit_open(m, res->missing, res->nmissing, (res->nbehind > 0) + (res->ndown > 0), &e);
    if (res->nbehind)
        behind_json(res, &e);
    if (res->ndown) {
        e.key(&e, "down_nodes");
        e.array(&e, (uint32_t)res->ndown);
        for (size_t i = 0; i < res->ndown; i++) {
            e.map(&e, 2);
            e.key(&e, "node");
            emit_cstr(&e, res->down[i].node);
            e.key(&e, "error");
            emit_cstr(&e, res->down[i].err);
            e.end(&e);
        }
        e.end(&e);
    }
    e.end(&e);
    if (!t->json)
        e.end(&e);
    if (e.err) {
        proto_error_set(&err, PROTO_E_TOO_LARGE, -1, "out of memory encoding the answer");
        goto fail;
    }
    t->done(t->ctx, (const uint8_t *)out.data, out.len, NULL);
    goto done;
fail:
    t->done(t->ctx, NULL, 0, &err);
done:
    relay_top_free(m);
    proto_buf_free(&out);
    free(t);
}

int gateway_top(server *srv, const query_req *q, uint64_t qid, int json, gateway_reply_fn done,
                void *ctx, proto_error *err)
{
    proto_buf msg = {0};
    top_req *t = calloc(1, sizeof *t);
    if (!t || query_pack(&msg, 0, q) != 0) {
        free(t);
        proto_buf_free(&msg);
        return proto_error_set(err, PROTO_E_TOO_LARGE, -1, "out of memory");
    }
    *t = (top_req){q->by, q->top, qid, json, done, ctx};
    int rc = gateway_fan(srv, 0, (const uint8_t *)msg.data, msg.len, top_merged, t, err);
    proto_buf_free(&msg);
    if (rc != 0)
        free(t);
    return rc;
}

/* ["Q", 0, {"op": "stats"}] */
const uint8_t gateway_stats_msg[14] = {0x93, 0xa1, 'Q', 0x00, 0x81, 0xa2, 'o',
                                       'p',  0xa5, 's', 't',  'a',  't',  's'};

/* ---- the nodes' figures ------------------------------------------------------------ */

/* The result map of an R reply, unpacked into u; NULL when it is not one. */
static const msgpack_object *stats_map(msgpack_unpacked *u, const gateway_fan_reply *r)
{
    size_t off = 0;
    if (!r->reply ||
        msgpack_unpack_next(u, (const char *)r->reply, r->len, &off) != MSGPACK_UNPACK_SUCCESS ||
        u->data.type != MSGPACK_OBJECT_ARRAY || u->data.via.array.size != 3 ||
        u->data.via.array.ptr[2].type != MSGPACK_OBJECT_MAP)
        return NULL;
    return &u->data.via.array.ptr[2];
}

/* Sum (max for a time) over the nodes that answered: the integer figures
 * of the first answer, in its order. */
#define SUM_MAX 32
typedef struct sums {
    char key[SUM_MAX][32];
    uint64_t v[SUM_MAX];
    size_t n;
    size_t up;
} sums;

static void sums_add(sums *s, const msgpack_object *m)
{
    s->up++;
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key, *v = &m->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size >= sizeof s->key[0] ||
            v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            continue;
        size_t j = 0;
        while (j < s->n && (strlen(s->key[j]) != k->via.str.size ||
                            memcmp(s->key[j], k->via.str.ptr, k->via.str.size) != 0))
            j++;
        if (j == s->n) {
            if (s->n == SUM_MAX)
                continue;
            memcpy(s->key[j], k->via.str.ptr, k->via.str.size);
            s->key[j][k->via.str.size] = '\0';
            s->n++;
        }
        int is_ts = k->via.str.size > 3 && memcmp(k->via.str.ptr + k->via.str.size - 3, "_ts", 3) == 0;
        s->v[j] = is_ts ? (v->via.u64 > s->v[j] ? v->via.u64 : s->v[j]) : s->v[j] + v->via.u64;
    }
}

void gateway_cluster_json(const gateway_fan_result *res, emit *e)
{
    sums s = {0};
    e->map(e, 6);
    e->key(e, "partial");
    e->boolean(e, res->nmissing != 0);
    e->key(e, "missing_partitions");
    e->array(e, (uint32_t)res->nmissing);
    for (size_t i = 0; i < res->nmissing; i++)
        e->i64(e, res->missing[i]);
    e->end(e);
    behind_json(res, e);
    e->key(e, "partitions");
    e->i64(e, res->nparts);
    e->key(e, "nodes");
    e->array(e, (uint32_t)res->n);
    for (size_t k = 0; k < res->n; k++) {
        const gateway_fan_reply *r = &res->replies[k];
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        const msgpack_object *m = stats_map(&u, r);
        e->map(e, 4);
        e->key(e, "node");
        emit_cstr(e, r->node);
        e->key(e, "up");
        e->boolean(e, m != NULL);
        e->key(e, "lag_records"); /* the most it is behind a partition's end; nil: unknown */
        r->lag < 0 ? e->nil(e) : e->i64(e, r->lag);
        if (m) {
            e->key(e, "stats");
            relay_object(m, e);
            sums_add(&s, m);
        } else {
            proto_error err = {0};
            e->key(e, "error");
            if (r->reply && relay_status(r->reply, r->len, &err) == 0)
                emit_cstr(e, err.msg);
            else
                emit_cstr(e, r->err[0] ? r->err : "not a stats answer");
        }
        e->end(e);
        msgpack_unpacked_destroy(&u);
    }
    e->end(e);
    /* Summed over every node that answered: replicas each count (memory is
     * real per node; trades are held once per replica group). */
    e->key(e, "sum");
    e->map(e, (uint32_t)s.n + 1);
    e->key(e, "nodes_up");
    e->u64(e, s.up);
    for (size_t j = 0; j < s.n; j++) {
        e->key(e, s.key[j]);
        e->u64(e, s.v[j]);
    }
    e->end(e);
    e->end(e);
}

int gateway_cluster_prom(const gateway_fan_result *res, proto_buf *out)
{
    int err = 0;
    sums s = {0};
    err |= proto_buf_printf(out, "# HELP slotd_gateway_partitions_missing Partitions no node "
                            "answered for (a query over them is partial).\n# TYPE "
                            "slotd_gateway_partitions_missing gauge\n"
                            "slotd_gateway_partitions_missing %zu\n", res->nmissing) < 0;
    err |= proto_buf_printf(out, "# HELP slotd_gateway_node_up 1 when the node answered the "
                            "gateway's stats query.\n# TYPE slotd_gateway_node_up gauge\n") < 0;
    for (size_t k = 0; k < res->n; k++) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        const msgpack_object *m = stats_map(&u, &res->replies[k]);
        err |= proto_buf_printf(out, "slotd_gateway_node_up{node=\"%s\"} %d\n",
                                res->replies[k].node, m != NULL) < 0;
        msgpack_unpacked_destroy(&u);
    }
    err |= proto_buf_printf(out, "# HELP slotd_gateway_node_lag_records Records the node is "
                            "behind its partitions' end in Kafka (the most over them; -1 = not "
                            "known).\n# TYPE slotd_gateway_node_lag_records gauge\n") < 0;
    for (size_t k = 0; k < res->n; k++)
        err |= proto_buf_printf(out, "slotd_gateway_node_lag_records{node=\"%s\"} %" PRId64 "\n",
                                res->replies[k].node, res->replies[k].lag) < 0;
    err |= proto_buf_printf(out, "# HELP slotd_gateway_partitions_behind (node, partition) pairs "
                            "more than --gateway-behind-records behind.\n# TYPE "
                            "slotd_gateway_partitions_behind gauge\n"
                            "slotd_gateway_partitions_behind %zu\n", res->nbehind) < 0;
    /* Per node, then the sum: slotd_gateway_node_<figure>{node=...}. */
    for (size_t k = 0; k < res->n; k++) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        const msgpack_object *m = stats_map(&u, &res->replies[k]);
        if (m)
            sums_add(&s, m);
        msgpack_unpacked_destroy(&u);
    }
    for (size_t j = 0; j < s.n; j++) {
        err |= proto_buf_printf(out, "# HELP slotd_gateway_node_%s The node's store figure %s "
                                "(TCP stats query).\n# TYPE slotd_gateway_node_%s gauge\n",
                                s.key[j], s.key[j], s.key[j]) < 0;
        for (size_t k = 0; k < res->n; k++) {
            msgpack_unpacked u;
            msgpack_unpacked_init(&u);
            const msgpack_object *m = stats_map(&u, &res->replies[k]);
            for (uint32_t i = 0; m && i < m->via.map.size; i++) {
                const msgpack_object *kk = &m->via.map.ptr[i].key, *v = &m->via.map.ptr[i].val;
                if (kk->type == MSGPACK_OBJECT_STR && strlen(s.key[j]) == kk->via.str.size &&
                    memcmp(s.key[j], kk->via.str.ptr, kk->via.str.size) == 0 &&
                    v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                    err |= proto_buf_printf(out, "slotd_gateway_node_%s{node=\"%s\"} %" PRIu64
                                            "\n", s.key[j], res->replies[k].node, v->via.u64) < 0;
            }
            msgpack_unpacked_destroy(&u);
        }
        err |= proto_buf_printf(out, "# HELP slotd_gateway_cluster_%s The nodes' %s summed over "
                                "the nodes that answered (max for a time).\n# TYPE "
                                "slotd_gateway_cluster_%s gauge\nslotd_gateway_cluster_%s %" PRIu64
                                "\n", s.key[j], s.key[j], s.key[j], s.key[j], s.v[j]) < 0;
    }
    return err ? -1 : 0;
}

/* ---- the stats query over TCP ------------------------------------------------------ */

static void stats_answered(void *ctx, const gateway_fan_result *res)
{
    top_req *s = ctx;
    proto_buf out = {0};
    emit e;
    emit_msgpack_init(&e, &out);
    e.array(&e, 3);
    emit_cstr(&e, "R");
    e.u64(&e, s->qid);
    if (!res->oom)
        gateway_cluster_json(res, &e);
    else
        e.nil(&e);
    e.end(&e);
    if (res->oom || e.err) {
        proto_error err;
        proto_error_set(&err, PROTO_E_TOO_LARGE, -1, "out of memory encoding the answer");
        s->done(s->ctx, NULL, 0, &err);
    } else {
        s->done(s->ctx, (const uint8_t *)out.data, out.len, NULL);
    }
    proto_buf_free(&out);
    free(s);
}

int gateway_stats_query(server *srv, uint64_t qid, gateway_reply_fn done, void *ctx,
                        proto_error *err)
{
    top_req *s = calloc(1, sizeof *s);
    if (!s)
        return proto_error_set(err, PROTO_E_TOO_LARGE, -1, "out of memory");
    *s = (top_req){.qid = qid, .done = done, .ctx = ctx};
    int rc = gateway_fan(srv, 1, gateway_stats_msg, sizeof gateway_stats_msg, stats_answered, s, err);
    if (rc != 0)
        free(s);
    return rc;
}
