/* delete — see delete.h. */
#include "delete.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

typedef struct delete_op {
    server *srv;
    query_req q;
    delete_done_fn done;
    void *ctx;
} delete_op;

static void delete_fail(delete_done_fn done, void *ctx, const query_req *q, proto_code code,
                        const char *msg)
{
    proto_error err = {.code = code, .index = -1};
    snprintf(err.msg, sizeof err.msg, "%s", msg);
    done(ctx, q, 0, &err);
}

/* The store's side, the same live and in replay: a symbol emptied since
 * the request was checked has nothing left to delete. */
static uint64_t delete_apply(server *srv, const query_req *q)
{
    uint64_t n = 0;
    int rc = store_delete_range(srv->store, q->sym, q->symlen, q->from, q->to, &n);
    if (rc != STORE_OK && rc != STORE_ENOTFOUND)
        log_warn("delete_refused sym=%.*s err=%s", (int)q->symlen, q->sym, server_strerror(rc));
    return n;
}

static void delete_journaled(void *ctx, int status)
{
    delete_op *op = ctx;
    server *srv = op->srv;
    if (status != 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "journal write failed: %s; nothing deleted",
                 uv_strerror(status));
        log_warn("delete_journal_error sym=%.*s err=%s", (int)op->q.symlen, op->q.sym,
                 uv_strerror(status));
        metrics_error(&srv->metrics, PROTO_E_JOURNAL);
        delete_fail(op->done, op->ctx, &op->q, PROTO_E_JOURNAL, msg);
        free(op);
        return;
    }
    uint64_t n = delete_apply(srv, &op->q);
    log_info("delete sym=%.*s from=%lld to=%lld deleted=%llu", (int)op->q.symlen, op->q.sym,
             (long long)op->q.from, (long long)op->q.to, (unsigned long long)n);
    op->done(op->ctx, &op->q, n, NULL);
    free(op);
}

void delete_submit(server *srv, const query_req *q, delete_done_fn done, void *ctx)
{
    proto_error err = {0};
    store_symbol_info si;
    proto_buf msg = {0};
    delete_op *op = NULL;
    if (!srv->ready || srv->replaying) {
        delete_fail(done, ctx, q, PROTO_E_NOT_READY, "slotd is replaying its journal or stopping");
        return;
    }
    if (srv->cfg.source == SERVER_SOURCE_KAFKA) {
        /* Kafka is the journal here: a delete it does not hold would be
         * undone by the next replay of its partition. */
        delete_fail(done, ctx, q, PROTO_E_READ_ONLY, "this node is fed by Kafka: deletes are refused");
        return;
    }
    if (query_delete_check(q, &err) != 0) {
        done(ctx, q, 0, &err);
        return;
    }
    if (store_symbol(srv->store, q->sym, q->symlen, &si) != STORE_OK) {
        snprintf(err.msg, sizeof err.msg, "no symbol '%.*s'", (int)q->symlen, q->sym);
        err.code = PROTO_E_NOT_FOUND;
        err.index = -1;
        done(ctx, q, 0, &err);
        return;
    }
    if (!(op = calloc(1, sizeof *op)) || query_pack_delete(&msg, q) != 0) {
        free(op);
        proto_buf_free(&msg);
        delete_fail(done, ctx, q, PROTO_E_TOO_LARGE, "out of memory");
        return;
    }
    *op = (delete_op){.srv = srv, .q = *q, .done = done, .ctx = ctx};
    if (!srv->journal) { /* --no-journal: nothing is durable anyway */
        delete_journaled(op, 0);
    } else {
        /* No client name or seq: a delete is not a client's batch. */
        int rc = journal_append(srv->journal, "", 0, 0, msg.data, msg.len, delete_journaled, op);
        if (rc != 0)
            delete_journaled(op, rc);
    }
    proto_buf_free(&msg);
}

int delete_is_record(const uint8_t *msg, size_t len)
{
    return proto_msg_type(msg, len) == PROTO_MSG_D;
}

int delete_replay(server *srv, const uint8_t *msg, size_t len)
{
    query_req q;
    proto_error err = {0};
    if (query_decode_delete(msg, len, &q, &err) != 0) {
        log_error("replay_error delete record: %s", err.msg);
        return -1;
    }
    delete_apply(srv, &q);
    return 0;
}
