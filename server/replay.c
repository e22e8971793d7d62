/* replay — start-up recovery (replay.h). */
#include "replay.h"

#include <errno.h>
#include <string.h>

#include "checkpoint.h"
#include "log.h"

typedef struct replay_ctx {
    server *srv;
    store_batch batch;
} replay_ctx;

int replay_apply(server *srv, store_batch *b, const char *client, size_t clen, uint64_t seq,
                 const uint8_t *msg, size_t len)
{
    proto_error err = {0};
    uint64_t mseq = 0;
    if (proto_decode_batch(msg, len, &srv->cfg.limits, srv->store, b, &mseq, &err)) {
        log_error("replay_error client=%.*s seq=%llu code=%s msg=\"%s\"", (int)clen, client,
                  (unsigned long long)seq, proto_code_name(err.code), err.msg);
        return -1;
    }
    if (store_batch_reserve(srv->store, b) != STORE_OK) {
        log_error("replay_error client=%.*s seq=%llu: the journal holds more than --max-memory",
                  (int)clen, client, (unsigned long long)seq);
        store_batch_reset(b);
        return -1;
    }
    store_batch_commit(srv->store, b);
    if (clients_restore(&srv->clients, client, clen, seq) != 0) {
        log_error("replay_error client=%.*s seq=%llu: the client table is full", (int)clen, client,
                  (unsigned long long)seq);
        return -1;
    }
    return 0;
}

static int replay_record(void *ctx, const char *client, size_t clen, uint64_t seq,
                         const uint8_t *msg, size_t len)
{
    replay_ctx *rc = ctx;
    server *srv = rc->srv;
    if (srv->stopping)
        return 1;
    if (len == 0) /* not a batch (e.g. a barrier); nothing to restore */
        return 0;
    srv->replay_records++;
    return replay_apply(srv, &rc->batch, client, clen, seq, msg, len);
}

void replay_run(server *srv, replay_result *out)
{
    memset(out, 0, sizeof *out);
    if (checkpoint_load(srv) != 0) {
        out->snapshot_failed = 1;
        out->rc = -EBADMSG;
        return;
    }
    replay_ctx ctx = {.srv = srv};
    store_batch_init(&ctx.batch);
    out->rc = journal_replay(&srv->cfg.journal, replay_record, &ctx, &out->st);
    store_batch_free(&ctx.batch);
}
