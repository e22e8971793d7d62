/* The sender's public calls: options, records into the open batch, sealing
 * into the queue (and the spool), flush and close. The connection, the
 * replies and waiting are sender_io.c's. docs/clients.md is the contract. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

const char *slotd_strerror(int rc)
{
    switch (rc) {
#define SLOTD__ERR_TEXT(name, value, text) \
    case name:                             \
        return text;
        SLOTD_ERRORS(SLOTD__ERR_TEXT)
#undef SLOTD__ERR_TEXT
    case 0:
        return "success";
    default:
        return "unknown error";
    }
}

uint64_t slotd__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void slotd_sender_opts_init(slotd_sender_opts *o)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 7400;
    o->batch_size = 1000;
    o->linger_ms = 5;
    o->window = 32;
    o->max_buffered = (size_t)64 << 20;
    o->spool_sync = 1;
    o->backoff_min_ms = 50;
    o->backoff_max_ms = 2000;
    o->retry_timeout_ms = 60000;
}

void slotd__set_error(slotd_sender *s, int code, const char *wire_code, uint64_t seq, int64_t index,
                      const char *fmt, ...)
{
    slotd_batch_error *e = &s->last;
    va_list ap;
    va_start(ap, fmt);
    slotd__verror(e, code, wire_code, fmt, ap);
    va_end(ap);
    e->seq = seq;
    e->index = index;
    if (code == SLOTD_EBATCH)
        slotd__error_field(e->message, e->field, sizeof e->field);
}

void slotd__batch_free(slotd__batch *b)
{
    if (b) {
        free(b->mem);
        free(b);
    }
}

/* ---- batches into the queue ---------------------------------------------- */

static int spool_put(slotd_sender *s, slotd__batch *b)
{
    if (!s->has_spool)
        return 0;
    int rc = slotd__spool_batch(&s->spool, b->seq, b->sealed, b->ntrades, b->kind, b->kind_len,
                                b->mem + b->body_off, b->body_len);
    if (rc != 0) {
        slotd__set_error(s, rc, NULL, b->seq, -1, "spool %s: cannot append batch %llu",
                         s->spool.path, (unsigned long long)b->seq);
        slotd__stop(s, rc);
    }
    return rc;
}

int slotd__assign_seqs(slotd_sender *s, uint64_t last_seq)
{
    /* Without spool history the first WELCOME says where this name is:
     * seqs continue after its last_seq (docs/clients.md). */
    if (s->next_seq <= last_seq)
        s->next_seq = last_seq + 1;
    s->seq_known = 1;
    for (slotd__batch *b = s->head; b; b = b->next)
        if (b->seq == 0) {
            b->seq = s->next_seq++;
            int rc = spool_put(s, b);
            if (rc != 0)
                return rc;
        }
    return 0;
}

static int enqueue(slotd_sender *s, slotd__batch *b)
{
    s->sealed += b->ntrades;
    b->sealed = s->sealed;
    if (s->seq_known) {
        b->seq = s->next_seq++;
        /* Written (and synced) before it can be sent: exactly-once across
         * a crash of this process. */
        int rc = spool_put(s, b);
        if (rc != 0) {
            slotd__batch_free(b);
            return rc;
        }
    }
    if (!s->head)
        s->t_progress = slotd__now_ms(); /* the budget runs from now */
    if (s->tail)
        s->tail->next = b;
    else
        s->head = b;
    s->tail = b;
    if (!s->wr) {
        s->wr = b;
        s->wr_off = 0;
    }
    s->queued_bytes += b->size;
    s->queued_batches++;
    s->sealed_batches++;
    slotd__kick(s);
    return 0;
}

static int set_kind(slotd__batch *b, const char *kind)
{
    size_t n = strlen(kind);
    if (n >= sizeof b->kind)
        return SLOTD_EINVAL;
    memcpy(b->kind, kind, n + 1);
    b->kind_len = (uint8_t)n;
    return 0;
}

/* The kind's name after the body (a 4th element), when it is not trade. */
static void put_kind_tail(slotd__batch *b)
{
    if (b->kind_len) {
        char *end = slotd__enc_str(b->mem + b->size, b->kind, b->kind_len);
        b->size = (size_t)(end - b->mem);
    }
}

/* A sealed batch holding a copy of a trades array (kind_len < 32). */
static slotd__batch *batch_copy(const char *kind, size_t kind_len, const void *body, size_t len,
                                uint32_t ntrades)
{
    slotd__batch *b = calloc(1, sizeof *b);
    if (!b || !(b->mem = malloc(SLOTD__PREFIX + len + 1 + kind_len))) {
        free(b);
        return NULL;
    }
    memcpy(b->kind, kind, kind_len);
    b->kind_len = (uint8_t)kind_len;
    memcpy(b->mem + SLOTD__PREFIX, body, len);
    b->body_off = SLOTD__PREFIX;
    b->body_len = len;
    b->size = SLOTD__PREFIX + len;
    b->ntrades = ntrades;
    put_kind_tail(b);
    return b;
}

int slotd__seal(slotd_sender *s)
{
    if (s->open_n == 0)
        return 0;
    slotd__batch *b = calloc(1, sizeof *b);
    char *fresh = malloc(s->open.cap); /* the next batch is likely as large */
    if (!b || !fresh || slotd__buf_reserve(&s->open, 1 + sizeof b->kind) != 0) {
        free(b);
        free(fresh);
        return SLOTD_ENOMEM;
    }
    set_kind(b, s->open_kind); /* fits: checked when the batch was opened */
    b->mem = s->open.data;
    b->ntrades = s->open_n;
    /* The trades array's header goes right in front of its records. */
    char *arr = slotd__array_hdr_before(b->mem + SLOTD__PREFIX, s->open_n);
    b->body_off = (size_t)(arr - b->mem);
    b->body_len = s->open.len - b->body_off;
    b->size = s->open.len;
    put_kind_tail(b);
    s->open.data = fresh;
    s->open.len = SLOTD__PREFIX;
    s->open_n = 0;
    return enqueue(s, b);
}

/* ---- back-pressure and the open batch ------------------------------------- */

static int stopped(const slotd_sender *s)
{
    return s->state == SLOTD__STOPPED;
}

/* Time left of the retry budget, ms (<= 0: spent). */
static int64_t budget_left(const slotd_sender *s, uint64_t now)
{
    if (!s->head)
        return s->o.retry_timeout_ms;
    return (int64_t)(s->t_progress + (uint64_t)s->o.retry_timeout_ms) - (int64_t)now;
}

static int budget_spent(slotd_sender *s, const char *what)
{
    slotd__set_error(s, SLOTD_ETIMEDOUT, NULL, s->head ? s->head->seq : 0, -1,
                     "%s: nothing acknowledged for %d ms (retry budget): %s", what,
                     s->o.retry_timeout_ms, s->obstacle[0] ? s->obstacle : "no reply from the server");
    return SLOTD_ETIMEDOUT;
}

/* Room in the queue for another batch: waits (blocking mode) or says
 * SLOTD_EAGAIN once what can be done without waiting was done. */
static int room(slotd_sender *s)
{
    while (s->queued_bytes >= s->o.max_buffered) {
        if (stopped(s))
            return s->fatal_rc;
        if (s->o.nonblocking) {
            slotd__step(s, 0);
            if (s->queued_bytes >= s->o.max_buffered)
                return stopped(s) ? s->fatal_rc : SLOTD_EAGAIN;
            break;
        }
        int64_t left = budget_left(s, slotd__now_ms());
        if (left <= 0)
            return budget_spent(s, "buffer full");
        slotd__step(s, left > 1000000 ? 1000000 : (int)left);
    }
    return stopped(s) ? s->fatal_rc : 0;
}

/* Before a record of `kind` ("" = trade): room, then seal the open batch if
 * its linger has passed or it holds another kind. */
static int pre_record(slotd_sender *s, const char *kind)
{
    if (stopped(s))
        return s->fatal_rc;
    if (s->in_record)
        return SLOTD_ESTATE;
    int rc = room(s);
    if (rc != 0)
        return rc;
    uint64_t now = 0;
    if (s->o.linger_ms > 0)
        now = slotd__now_ms(); /* a vDSO call: cheap next to a record */
    if (s->open_n && (strcmp(s->open_kind, kind) != 0 ||
                      (now && now - s->open_t0 >= (uint64_t)s->o.linger_ms))) {
        if ((rc = slotd__seal(s)) != 0)
            return rc;
    }
    if (s->open_n == 0) {
        size_t n = strlen(kind);
        if (n >= sizeof s->open_kind)
            return SLOTD_EINVAL;
        memcpy(s->open_kind, kind, n + 1);
        s->open_t0 = now ? now : slotd__now_ms();
    }
    return 0;
}

static int post_record(slotd_sender *s)
{
    if (++s->open_n >= s->o.batch_size)
        return slotd__seal(s);
    return 0;
}

int slotd_trade(slotd_sender *s, const char *sym, int64_t ts_ns, double px, double qty, int side,
                uint64_t id)
{
    size_t n = strlen(sym);
    int rc = pre_record(s, "");
    if (rc != 0 || (rc = slotd__buf_reserve(&s->open, SLOTD__TRADE_MAX(n))) != 0)
        return rc;
    char *end = slotd__enc_trade(s->open.data + s->open.len, sym, n, ts_ns, px, qty, side, id);
    s->open.len = (size_t)(end - s->open.data);
    return post_record(s);
}

int slotd_trade_fixed(slotd_sender *s, const char *sym, int64_t ts_ns, int64_t px_e8, int64_t qty_e8,
                      int side, uint64_t id)
{
    size_t n = strlen(sym);
    int rc = pre_record(s, "");
    if (rc != 0 || (rc = slotd__buf_reserve(&s->open, SLOTD__TRADE_MAX(n) + 48)) != 0)
        return rc;
    char *end = slotd__enc_trade_fixed(s->open.data + s->open.len, sym, n, ts_ns, px_e8, qty_e8, side, id);
    s->open.len = (size_t)(end - s->open.data);
    return post_record(s);
}

/* ---- generic records (map form) ------------------------------------------ */

int slotd_record_begin(slotd_sender *s, const char *kind, const char *sym)
{
    if (!kind || strcmp(kind, "trade") == 0)
        kind = "";
    size_t n = strlen(sym);
    int rc = pre_record(s, kind);
    if (rc != 0 || (rc = slotd__buf_reserve(&s->open, 3 + 4 + 5 + n)) != 0)
        return rc;
    s->rec_start = s->open.len;
    char *p = s->open.data + s->open.len + 3; /* map16 header, patched at the end */
    p = slotd__enc_str(p, "sym", 3);
    p = slotd__enc_str(p, sym, n);
    s->open.len = (size_t)(p - s->open.data);
    s->rec_fields = 1;
    s->in_record = 1;
    return 0;
}

/* The slot's key; the value's room (vmax bytes) reserved too. */
static int record_key(slotd_sender *s, const char *slot, size_t vmax)
{
    if (stopped(s))
        return s->fatal_rc;
    if (!s->in_record)
        return SLOTD_ESTATE;
    size_t n = strlen(slot);
    int rc = slotd__buf_reserve(&s->open, 5 + n + vmax);
    if (rc != 0)
        return rc;
    char *p = slotd__enc_str(s->open.data + s->open.len, slot, n);
    s->open.len = (size_t)(p - s->open.data);
    s->rec_fields++;
    return 0;
}

static void advance(slotd_sender *s, char *end)
{
    s->open.len = (size_t)(end - s->open.data);
}

int slotd_record_i64(slotd_sender *s, const char *slot, int64_t v)
{
    int rc = record_key(s, slot, 9);
    if (rc == 0)
        advance(s, slotd__enc_int(s->open.data + s->open.len, v));
    return rc;
}

int slotd_record_u64(slotd_sender *s, const char *slot, uint64_t v)
{
    int rc = record_key(s, slot, 9);
    if (rc == 0)
        advance(s, slotd__enc_uint(s->open.data + s->open.len, v));
    return rc;
}

int slotd_record_f64(slotd_sender *s, const char *slot, double v)
{
    int rc = record_key(s, slot, 9);
    if (rc == 0)
        advance(s, slotd__enc_double(s->open.data + s->open.len, v));
    return rc;
}

int slotd_record_str(slotd_sender *s, const char *slot, const char *v)
{
    size_t n = strlen(v);
    int rc = record_key(s, slot, 5 + n);
    if (rc == 0)
        advance(s, slotd__enc_str(s->open.data + s->open.len, v, n));
    return rc;
}

int slotd_record_decimal(slotd_sender *s, const char *slot, const char *v)
{
    return slotd_record_str(s, slot, v); /* a decimal travels as its text */
}

int slotd_record_end(slotd_sender *s)
{
    if (stopped(s))
        return s->fatal_rc;
    if (!s->in_record)
        return SLOTD_ESTATE;
    char *h = s->open.data + s->rec_start;
    if (s->rec_fields < 16) { /* fixmap: close the 2-byte gap */
        h[0] = (char)(0x80 | s->rec_fields);
        memmove(h + 1, h + 3, s->open.len - s->rec_start - 3);
        s->open.len -= 2;
    } else {
        h[0] = (char)0xde;
        h[1] = (char)(s->rec_fields >> 8);
        h[2] = (char)s->rec_fields;
    }
    s->in_record = 0;
    return post_record(s);
}

int slotd_send_raw(slotd_sender *s, const char *kind, const void *trades, size_t len, uint32_t ntrades,
                   void *batch_user)
{
    if (stopped(s))
        return s->fatal_rc;
    if (s->in_record)
        return SLOTD_ESTATE;
    if (!kind || strcmp(kind, "trade") == 0)
        kind = "";
    int rc = slotd__seal(s);
    if (rc != 0 || (rc = room(s)) != 0)
        return rc;
    if (strlen(kind) >= sizeof s->open_kind)
        return SLOTD_EINVAL;
    slotd__batch *b = batch_copy(kind, strlen(kind), trades, len, ntrades);
    if (!b)
        return SLOTD_ENOMEM;
    b->user = batch_user;
    return enqueue(s, b);
}

/* ---- flush, close, getters ------------------------------------------------ */

int slotd_flush(slotd_sender *s, int timeout_ms)
{
    if (stopped(s))
        return s->fatal_rc;
    if (s->in_record)
        return SLOTD_ESTATE;
    int rc = slotd__seal(s);
    if (rc != 0)
        return rc;
    uint64_t target = s->sealed_batches;
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : slotd__now_ms() + (uint64_t)timeout_ms;
    for (int waited = 0; s->done_batches < target; waited = 1) {
        if (stopped(s))
            return s->fatal_rc;
        uint64_t now = slotd__now_ms();
        int64_t left = budget_left(s, now);
        if (left <= 0)
            return budget_spent(s, "flush");
        if (now >= deadline && waited)
            return SLOTD_EAGAIN; /* the caller's own timeout: not done yet */
        uint64_t wait = deadline - (now < deadline ? now : deadline);
        if (wait > (uint64_t)left)
            wait = (uint64_t)left;
        slotd__step(s, wait > 1000000 ? 1000000 : (int)wait);
    }
    if (stopped(s))
        return s->fatal_rc;
    if (s->batch_failed) {
        s->batch_failed = 0;
        return SLOTD_EBATCH;
    }
    return 0;
}

static void sender_free(slotd_sender *s)
{
    slotd__io_close(s);
    while (s->head) {
        slotd__batch *b = s->head;
        s->head = b->next;
        slotd__batch_free(b);
    }
    if (s->has_spool)
        slotd__spool_close(&s->spool);
    free(s->open.data);
    free(s->host);
    free(s->client);
    free(s->token);
    free(s);
}

int slotd_sender_close(slotd_sender *s, int timeout_ms)
{
    if (!s)
        return 0;
    if (s->in_record) { /* an unfinished record is dropped */
        s->open.len = s->rec_start;
        s->in_record = 0;
    }
    int rc = slotd_flush(s, timeout_ms);
    if (s->has_spool && !stopped(s)) {
        if (s->ack_to_spool > s->spool.acked)
            slotd__spool_ack(&s->spool, s->ack_to_spool);
        if (!s->head && s->spool.size > 8 + 64)
            slotd__spool_compact(&s->spool);
    }
    sender_free(s);
    return rc;
}

/* A batch read back from the spool: queued with its seq, not spooled again. */
static int spool_batch(void *u, uint64_t seq, uint64_t sealed, uint32_t ntrades, const char *kind,
                       size_t kind_len, const char *body, size_t len)
{
    slotd_sender *s = u;
    if (kind_len >= sizeof s->open_kind)
        return SLOTD_ESPOOL;
    slotd__batch *b = batch_copy(kind, kind_len, body, len, ntrades);
    if (!b)
        return SLOTD_ENOMEM;
    b->seq = seq;
    b->sealed = sealed;
    if (s->tail)
        s->tail->next = b;
    else
        s->head = s->wr = b;
    s->tail = b;
    s->queued_bytes += b->size;
    s->queued_batches++;
    s->sealed_batches++;
    return 0;
}

static char *dup_opt(const char *v, int *bad)
{
    if (!v)
        return NULL;
    char *d = strdup(v);
    if (!d)
        *bad = 1;
    return d;
}

int slotd_sender_new(const slotd_sender_opts *o, slotd_sender **out)
{
    *out = NULL;
    if (!o || !o->client || !o->client[0] || strlen(o->client) > 64 || !o->host || o->port <= 0 ||
        o->port > 65535 || o->batch_size == 0)
        return SLOTD_EINVAL;
    slotd_sender *s = calloc(1, sizeof *s);
    if (!s)
        return SLOTD_ENOMEM;
    int nomem = 0, rc;
    s->o = *o;
    if (s->o.window == 0)
        s->o.window = 1;
    if (s->o.backoff_max_ms < s->o.backoff_min_ms)
        s->o.backoff_max_ms = s->o.backoff_min_ms;
    s->host = dup_opt(o->host, &nomem);
    s->client = dup_opt(o->client, &nomem);
    s->token = dup_opt(o->token, &nomem);
    s->o.host = s->host;
    s->o.client = s->client;
    s->o.token = s->token;
    s->o.spool = NULL; /* the spool keeps its own copy of the path */
    s->next_seq = 1;
    s->open.len = SLOTD__PREFIX;
    slotd__io_init(s);
    if (nomem || slotd__buf_reserve(&s->open, 64 << 10) != 0) {
        rc = SLOTD_ENOMEM;
        goto fail;
    }
    if (o->tls) {
        char err[sizeof s->last.message];
        if ((rc = slotd__tls_init(s, err, sizeof err)) != 0) {
            if (o->errbuf && o->errbuf_len)
                snprintf(o->errbuf, o->errbuf_len, "%s", err);
            goto fail;
        }
    }
    if (o->spool) {
        char err[sizeof s->last.message];
        rc = slotd__spool_open(&s->spool, o->spool, o->spool_sync, spool_batch, s, err, sizeof err);
        if (rc != 0) {
            if (o->errbuf && o->errbuf_len)
                snprintf(o->errbuf, o->errbuf_len, "%s", err);
            goto fail;
        }
        s->has_spool = 1;
        s->sealed = s->spool.sealed;
        if (s->spool.history) { /* seqs continue the spool's */
            s->seq_known = 1;
            s->next_seq = s->spool.last_seq + 1;
        }
        if (s->head)
            s->t_progress = slotd__now_ms();
    }
    slotd__kick(s); /* start connecting */
    *out = s;
    return 0;
fail:
    sender_free(s);
    return rc;
}

uint64_t slotd_sender_sealed(const slotd_sender *s)
{
    return s->sealed;
}

const slotd_batch_error *slotd_sender_last_error(const slotd_sender *s)
{
    return &s->last;
}

void slotd_sender_stats_get(const slotd_sender *s, slotd_sender_stats *out)
{
    *out = s->st;
    out->queued_batches = s->queued_batches;
    out->queued_bytes = s->queued_bytes;
    out->inflight = s->inflight;
}
