/* replay — start-up recovery (replay.h). */
#include "replay.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "delete.h"
#include "log.h"
#include "retention.h"

#define REPLAY_DROP_BUDGET (1u << 20) /* records read per store_drop_before call */
#define REPLAY_NO_SYMBOL_LIMIT 0x7ffffffeu /* store_config's largest max_symbols */

typedef struct replay_ctx {
    server *srv;
    store_batch batch;
    const journal_replay_stats *st; /* the journal's running counts */
    int err;                        /* the REPLAY_E* code that aborted the replay */
    int jrc;                        /* journal_replay's result (-errno) */
    uint64_t fail_len;              /* the length of the record that did */
    uint64_t base_bytes;            /* store bytes after the snapshot, before the journal */
    uint64_t drop_at;               /* journal bytes at which retention runs next */
} replay_ctx;

const char *replay_hint(int rc)
{
    switch (rc) {
    case REPLAY_ECORRUPT:
        return "fix or move the damaged segment, or start with --salvage to skip the damaged "
               "records (their batches are lost)";
    case REPLAY_EGAP:
        return "restore the named segment file(s) from a backup; if they are gone for good, "
               "start with --salvage to replay past them (the batches they held are lost)";
    case REPLAY_ESNAPSHOT:
        return "see start_refused";
    case REPLAY_EMEMORY:
        return "restart with the --max-memory named in the detail; nothing was changed on disk";
    case REPLAY_ESYMBOLS:
        return "restart with the --max-symbols named in the detail; nothing was changed on disk";
    case REPLAY_ERECORD:
        return "the journal holds a batch this build cannot store (see replay_error): run the "
               "build that wrote it; --salvage does not skip it";
    case REPLAY_ENOMEM:
        return "give the process more memory";
    case REPLAY_EIO:
        return "check the data directory: permissions, the disk, no other slotd using it";
    }
    return "";
}

void replay_limits(proto_limits *l)
{
    /* Field by field, so a new proto_limits field is a decision here. */
    proto_limits_default(l);
    l->max_msg = SIZE_MAX;      /* a record is as long as the message that was accepted */
    l->max_batch = UINT32_MAX;  /* ... and holds as many trades */
    l->max_depth = 32;          /* the framer's cap; decoding a T needs 3 */
    l->ignore_unknown = 1;      /* a key it holds was either valid or ignored then */
    l->max_future_ns = 0;       /* the wall clock moved on; the ts was fine then */
}

/* What retention would have dropped by now (it runs on a timer live):
 * every pass to the end. Replay thread, which owns the store. */
static void replay_retain(server *srv)
{
    int64_t cutoff = retention_cutoff(srv);
    store_drop_result r = {0};

    if (cutoff <= 0)
        return;
    do {
        if (store_drop_before(srv->store, cutoff, REPLAY_DROP_BUDGET, &r) != STORE_OK)
            return;
    } while (!r.done);
}

/* Decode error -> replay code; logs what a code alone cannot say. */
static int replay_decode_failed(const proto_error *err, const char *client, size_t clen,
                                uint64_t seq)
{
    if (err->code == PROTO_E_SYMBOL_LIMIT)
        return REPLAY_ESYMBOLS;
    log_error("replay_error client=%.*s seq=%" PRIu64 " code=%s msg=\"%s\"", (int)clen, client,
              seq, proto_code_name(err->code), err->msg);
    return REPLAY_ERECORD;
}

int replay_apply(server *srv, store_batch *b, const char *client, size_t clen, uint64_t seq,
                 const uint8_t *msg, size_t len)
{
    proto_limits lim;
    proto_error err = {0};
    uint64_t mseq = 0;
    int rc;

    if (delete_is_record(msg, len)) /* a journaled delete (delete.h): no client, no seq */
        return delete_replay(srv, msg, len) == 0 ? 0 : REPLAY_ERECORD;
    replay_limits(&lim);
    if (proto_decode_batch(msg, len, &lim, srv->store, b, &mseq, &err))
        return replay_decode_failed(&err, client, clen, seq);
    rc = store_batch_reserve(srv->store, b);
    if (rc == STORE_EFULL && srv->cfg.retention_ns > 0) {
        /* Live, retention would have made room by now. */
        replay_retain(srv);
        rc = store_batch_reserve(srv->store, b);
    }
    if (rc != STORE_OK) {
        store_batch_reset(b);
        if (rc == STORE_EFULL)
            return REPLAY_EMEMORY;
        if (rc == STORE_ESYMLIMIT)
            return REPLAY_ESYMBOLS;
        if (rc == STORE_ENOMEM)
            return REPLAY_ENOMEM;
        log_error("replay_error client=%.*s seq=%" PRIu64 " err=\"%s\"", (int)clen, client, seq,
                  server_strerror(rc));
        return REPLAY_ERECORD;
    }
    store_batch_commit(srv->store, b);
    if (clients_restore(&srv->clients, client, clen, seq) != 0) {
        log_error("replay_error client=%.*s seq=%" PRIu64 ": no memory for the client table",
                  (int)clen, client, seq);
        return REPLAY_ENOMEM;
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
    /* Keep memory near the live figure: retention every 1/8 of the cap's
     * worth of journal (a trade takes about as many bytes there as here). */
    if (srv->cfg.retention_ns > 0 && rc->st->bytes >= rc->drop_at) {
        replay_retain(srv);
        rc->drop_at = rc->st->bytes + srv->cfg.store.max_memory / 8;
    }
    rc->err = replay_apply(srv, &rc->batch, client, clen, seq, msg, len);
    rc->fail_len = len;
    return rc->err;
}

/* The journal's -errno as a replay code. */
static int replay_journal_rc(int jrc)
{
    switch (jrc) {
    case 0: return REPLAY_OK;
    case -EBADMSG: return REPLAY_ECORRUPT;
    case -ENODATA: return REPLAY_EGAP;
    case -ECANCELED: return REPLAY_ECANCELED;
    case -ENOMEM: return REPLAY_ENOMEM;
    }
    return REPLAY_EIO;
}

/* Append to out->detail, "; "-separated. */
__attribute__((format(printf, 2, 3))) static void replay_note(replay_result *out,
                                                             const char *fmt, ...)
{
    size_t used = strlen(out->detail);
    va_list ap;

    if (used && used + 2 < sizeof out->detail) {
        memcpy(out->detail + used, "; ", 3);
        used += 2;
    }
    if (used + 1 >= sizeof out->detail)
        return;
    va_start(ap, fmt);
    vsnprintf(out->detail + used, sizeof out->detail - used, fmt, ap);
    va_end(ap);
}

static uint64_t replay_store_bytes(const server *srv)
{
    store_stats ss;
    store_get_stats(srv->store, &ss);
    return ss.bytes_reserved;
}

/* --max-memory is too small: estimate what the whole journal needs from
 * what the part replayed took, with an eighth to spare, in MiB. */
static void replay_memory_detail(const server *srv, const replay_ctx *c, replay_result *out)
{
    uint64_t cap = srv->cfg.store.max_memory, now = replay_store_bytes(srv);
    uint64_t done = out->st.bytes + c->fail_len;
    uint64_t total = out->st.total_bytes > done ? out->st.total_bytes : done;
    uint64_t grown = now + c->fail_len - (c->base_bytes < now ? c->base_bytes : now);
    double need = (double)c->base_bytes + (double)grown * ((double)total / (double)done);
    uint64_t mib = (uint64_t)(need * 1.125 / (1 << 20)) + 1;

    if (mib <= cap >> 20)
        mib = (cap >> 20) + 1;
    replay_note(out,
                "start with --max-memory %" PRIu64 "M or more: --max-memory %" PRIu64
                " (bytes) cannot hold the acknowledged trades: the store reached %" PRIu64
                " bytes with %.0f%% of the journal replayed",
                mib, cap, now, 100.0 * (double)done / (double)total);
}

/* The snapshot, then the journal, into srv->store (fresh stores opened
 * with sc). The REPLAY_* code; out->st and, for journal errors, its detail. */
static int replay_recover(server *srv, const store_config *sc, replay_ctx *ctx,
                          replay_result *out)
{
    int rc;

    if (checkpoint_load(srv, sc) != 0)
        return REPLAY_ESNAPSHOT;
    memset(ctx, 0, sizeof *ctx);
    ctx->srv = srv;
    ctx->st = &out->st;
    ctx->base_bytes = replay_store_bytes(srv);
    store_batch_init(&ctx->batch);
    rc = journal_replay(&srv->cfg.journal, replay_record, ctx, &out->st);
    ctx->jrc = rc;
    store_batch_free(&ctx->batch);
    return ctx->err ? ctx->err : replay_journal_rc(rc);
}

/* --max-symbols is too small: replay again with no symbol limit, to name
 * the value that works. Costs a second replay, on a start that fails. */
static void replay_symbols_detail(server *srv, replay_result *out)
{
    store_config sc = srv->cfg.store;
    replay_result again;
    replay_ctx ctx;
    store_stats ss;
    int rc;

    sc.max_symbols = REPLAY_NO_SYMBOL_LIMIT;
    memset(&again, 0, sizeof again);
    store_close(srv->store);
    srv->store = NULL;
    if (store_open(&srv->store, &sc) != STORE_OK) {
        replay_note(out, "the journal holds more symbols than --max-symbols %" PRIu32,
                    srv->cfg.store.max_symbols);
        return;
    }
    rc = replay_recover(srv, &sc, &ctx, &again);
    store_get_stats(srv->store, &ss);
    replay_note(out,
                "start with --max-symbols %" PRIu64 " or more: the acknowledged trades hold %s%" PRIu64
                " distinct symbols, more than --max-symbols %" PRIu32 " allows",
                ss.symbols, rc ? "at least " : "", ss.symbols, srv->cfg.store.max_symbols);
}

void replay_run(server *srv, replay_result *out)
{
    store_config sc = srv->cfg.store;
    replay_ctx ctx;
    int rc;

    memset(out, 0, sizeof *out);
    memset(&ctx, 0, sizeof ctx);
    rc = replay_recover(srv, &sc, &ctx, out);
    if (rc == REPLAY_EMEMORY)
        replay_memory_detail(srv, &ctx, out);
    else if (rc == REPLAY_ESYMBOLS)
        replay_symbols_detail(srv, out);
    if (out->st.detail[0])
        replay_note(out, "%s", out->st.detail);
    else if (rc == REPLAY_EIO || (rc == REPLAY_ENOMEM && ctx.jrc))
        replay_note(out, "%s: %s", srv->cfg.journal.dir, strerror(-ctx.jrc));
    out->rc = rc;
}
