/* The subscriber's public calls (slotd/client.h, PROTOCOL.md §11): open
 * (HELLO, the schema if names are wanted, SUB, all written at once, then
 * WELCOME, R and SUBOK read back), next, unsub, close. Decoding and the
 * cursor are sub_decode.c's and sub_cursor.c's, the socket sub_io.c's.
 * One subscription per connection, id 1: a connection's replies are in
 * order (§8), so the open sequence needs no matching beyond that. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum { SUB_ID = 1, SCHEMA_QID = 2 };
enum { SUB_OPEN = 1, SUB_ENDED };

struct slotd_sub {
    slotd__conn c;
    slotd__reader rd;
    slotd__subdec d;
    int state;
    int timeout_ms;
    slotd_batch_error err; /* what ended it; code 0 while open */
};

void slotd_sub_opts_init(slotd_sub_opts *o)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 7400;
    o->names = 1;
    o->timeout_ms = 10000;
}

static uint64_t deadline_of(int ms)
{
    return ms < 0 ? UINT64_MAX : slotd__now_ms() + (uint64_t)ms;
}

/* A packer's buffer that remembers running out of memory: msgpack-c's
 * packer goes on after a failed write, so the message would be cut. */
typedef struct req_buf {
    slotd__buf b;
    int oom;
} req_buf;

static int req_write(void *data, const char *p, size_t n)
{
    req_buf *r = data;
    if (slotd__buf_write(&r->b, p, n) != 0)
        r->oom = 1;
    return r->oom ? -1 : 0;
}

/* HELLO, [Q schema], SUB: the bytes of the open sequence. */
static int build_open(const slotd_sub_opts *o, const slotd__cursor *from, req_buf *b)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, req_write);
    slotd__pack_hello(&pk, o->client, o->token);
    if (o->names) {
        msgpack_pack_array(&pk, 3);
        msgpack_pack_str_with_body(&pk, "Q", 1);
        msgpack_pack_uint64(&pk, SCHEMA_QID);
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str_with_body(&pk, "op", 2);
        msgpack_pack_str_with_body(&pk, "schema", 6);
    }
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, "SUB", 3);
    msgpack_pack_uint64(&pk, SUB_ID);
    msgpack_pack_map(&pk, o->gaps ? 3 : 2);
    msgpack_pack_str_with_body(&pk, "syms", 4);
    if (!o->syms) {
        msgpack_pack_str_with_body(&pk, "*", 1);
    } else {
        msgpack_pack_array(&pk, (uint32_t)o->nsyms);
        for (size_t i = 0; i < o->nsyms; i++)
            msgpack_pack_str_with_body(&pk, o->syms[i], strlen(o->syms[i]));
    }
    msgpack_pack_str_with_body(&pk, "from", 4);
    const char *kw = !o->from || strcmp(o->from, "now") == 0 ? "now"
                     : strcmp(o->from, "start") == 0          ? "start"
                                                              : NULL;
    if (kw) {
        msgpack_pack_str_with_body(&pk, kw, strlen(kw));
    } else {
        msgpack_pack_map(&pk, (uint32_t)from->n);
        for (size_t i = 0; i < from->cap; i++) {
            const slotd__cpos *e = &from->e[i];
            if (!e->len)
                continue;
            msgpack_pack_str_with_body(&pk, e->sym, e->len);
            msgpack_pack_uint64(&pk, e->pos);
        }
    }
    if (o->gaps) {
        msgpack_pack_str_with_body(&pk, "gaps", 4);
        msgpack_pack_true(&pk);
    }
    return b->oom ? SLOTD_ENOMEM : 0;
}

static int check_opts(const slotd_sub_opts *o, slotd__cursor *from, slotd_batch_error *e)
{
    size_t n = o->client ? strlen(o->client) : 0;
    if (n < 1 || n > 64)
        return slotd__sub_error(e, SLOTD_EINVAL, NULL, "client: a name of 1-64 bytes is required");
    if (!o->host || o->port <= 0 || o->port > 65535)
        return slotd__sub_error(e, SLOTD_EINVAL, NULL, "host and port 1-65535 are required");
    if (o->syms && (o->nsyms == 0 || o->nsyms > 1024))
        return slotd__sub_error(e, SLOTD_EINVAL, NULL, "syms: 1-1024 symbols, or NULL for \"*\"");
    for (size_t i = 0; o->syms && i < o->nsyms; i++) {
        size_t k = o->syms[i] ? strlen(o->syms[i]) : 0;
        if (k < 1 || k > SLOTD__SYM_MAX)
            return slotd__sub_error(e, SLOTD_EINVAL, NULL, "syms[%zu]: not 1-31 bytes", i);
    }
    if (o->from && strcmp(o->from, "now") != 0 && strcmp(o->from, "start") != 0) {
        char why[200];
        int rc = slotd__cursor_parse(from, o->from, why, sizeof why);
        if (rc != 0)
            return slotd__sub_error(e, rc, NULL, "from: %s", rc == SLOTD_ENOMEM ? "out of memory"
                                                                                 : why);
    }
    return 0;
}

/* The next whole message within the deadline: 1, 0 (none in time), < 0. */
static int next_msg(slotd_sub *s, const char **msg, size_t *len, uint64_t deadline)
{
    for (;;) {
        int k = slotd__reader_msg(&s->rd, msg, len);
        if (k < 0)
            return slotd__sub_error(&s->err, SLOTD_EPROTOCOL, NULL,
                                    "the stream from the server is not valid msgpack or exceeds "
                                    "the library's limits");
        if (k > 0)
            return 1;
        size_t cap;
        /* room for a whole push (~300 KB) at once: an incomplete message
         * is measured again from its start after every read */
        char *space = slotd__reader_space(&s->rd, 256 << 10, &cap);
        if (!space)
            return slotd__sub_error(&s->err, SLOTD_ENOMEM, NULL, "out of memory for the stream");
        int wait = deadline == UINT64_MAX ? -1
                   : deadline <= slotd__now_ms() ? 0
                                                  : (int)(deadline - slotd__now_ms());
        int64_t r = slotd__conn_read(&s->c, space, cap, wait, &s->err);
        if (r < 0)
            return (int)r;
        if (r == 0)
            return 0;
        slotd__reader_commit(&s->rd, (size_t)r);
    }
}

static int end(slotd_sub *s, int rc)
{
    assert(rc < 0 && s->err.code == rc);
    s->state = SUB_ENDED;
    return rc;
}

/* WELCOME, then (names) the schema's R, then SUBOK. */
static int read_open(slotd_sub *s, int names, uint64_t deadline)
{
    const char *msg;
    size_t len;
    for (int step = 0; step < 3; step++) {
        if (step == 1 && !names)
            continue;
        int k = next_msg(s, &msg, &len, deadline);
        if (k == 0)
            return slotd__sub_error(&s->err, SLOTD_EDISCONNECTED, NULL,
                                    "no %s from the server in time",
                                    step == 0 ? "WELCOME" : step == 1 ? "schema" : "SUBOK");
        if (k < 0)
            return k;
        if (step == 0) {
            slotd__reply r;
            if (slotd__reply_parse(msg, len, &r) != 0)
                return slotd__sub_error(&s->err, SLOTD_EPROTOCOL, NULL, "HELLO: %s", r.message);
            if (r.type == SLOTD__R_ERR) {
                int fatal, cls = slotd__code_class(r.code, 1, &fatal);
                int code = cls == SLOTD__C_RETRY_CONN ? SLOTD_EDISCONNECTED : fatal;
                return slotd__sub_error(&s->err, code, r.code, "HELLO: %s", r.message);
            }
            if (r.type != SLOTD__R_WELCOME)
                return slotd__sub_error(&s->err, SLOTD_EPROTOCOL, NULL,
                                        "HELLO: not answered by WELCOME");
        } else if (step == 1) {
            int rc = slotd__subdec_schema(&s->d, SCHEMA_QID, msg, len, &s->err);
            if (rc != 0)
                return rc;
        } else {
            slotd_sub_event ev;
            int rc = slotd__subdec_msg(&s->d, msg, len, &ev, &s->err);
            if (rc < 0)
                return rc;
            if (rc != SLOTD__SUB_SUBOK)
                return slotd__sub_error(&s->err, SLOTD_EPROTOCOL, NULL,
                                        "SUB: not answered by SUBOK");
        }
    }
    return 0;
}

int slotd_sub_open(const slotd_sub_opts *o, slotd_sub **out, slotd_batch_error *err)
{
    slotd_batch_error scratch;
    if (!err)
        err = &scratch;
    memset(err, 0, sizeof *err);
    *out = NULL;
    slotd__cursor from = {0};
    req_buf req = {{0}, 0};
    int rc = check_opts(o, &from, err);
    if (rc != 0)
        goto cleanup;
    rc = build_open(o, &from, &req);
    if (rc != 0) {
        slotd__sub_error(err, rc, NULL, "out of memory");
        goto cleanup;
    }
    slotd_sub *s = calloc(1, sizeof *s);
    if (!s) {
        rc = slotd__sub_error(err, SLOTD_ENOMEM, NULL, "out of memory");
        goto cleanup;
    }
    slotd__reader_init(&s->rd);
    slotd__subdec_init(&s->d, SUB_ID);
    s->timeout_ms = o->timeout_ms;
    uint64_t deadline = deadline_of(o->timeout_ms);
    slotd__conn_opts co = {o->host, o->port, o->tls, o->tls_ca, o->tls_cert, o->tls_key,
                           o->tls_server_name};
    rc = slotd__conn_open(&s->c, &co, deadline, &s->err);
    if (rc == 0)
        rc = slotd__conn_write(&s->c, req.b.data, req.b.len, deadline, &s->err);
    if (rc == 0)
        rc = read_open(s, o->names, deadline);
    if (rc != 0) {
        *err = s->err;
        s->state = SUB_ENDED;
        slotd_sub_close(s, 0);
        goto cleanup;
    }
    s->state = SUB_OPEN;
    *out = s;
cleanup:
    slotd__cursor_free(&from);
    free(req.b.data);
    return rc;
}

int slotd_sub_next(slotd_sub *s, slotd_sub_event *ev, int timeout_ms)
{
    if (s->state != SUB_OPEN)
        return s->err.code;
    uint64_t deadline = deadline_of(timeout_ms);
    for (;;) {
        const char *msg;
        size_t len;
        int k = next_msg(s, &msg, &len, deadline);
        if (k <= 0)
            return k < 0 ? end(s, k) : 0;
        int rc = slotd__subdec_msg(&s->d, msg, len, ev, &s->err);
        if (rc < 0)
            return end(s, rc);
        if (rc == SLOTD__SUB_EVENT)
            return 1;
        /* a second SUBOK or an UNSUBOK nobody asked for */
        return end(s, slotd__sub_error(&s->err, SLOTD_EPROTOCOL, NULL,
                                       "an unexpected %s in a subscription",
                                       rc == SLOTD__SUB_SUBOK ? "SUBOK" : "UNSUBOK"));
    }
}

const slotd_value *slotd_sub_slot(const slotd_sub_event *ev, uint32_t i, const char *name)
{
    if (ev->type != SLOTD_SUB_TRADES || !ev->slot_names || i >= ev->ntrades)
        return NULL;
    for (uint32_t j = 0; j < ev->nslots; j++)
        if (strcmp(ev->slot_names[j], name) == 0)
            return &ev->values[(size_t)i * ev->nslots + j];
    return NULL;
}

int64_t slotd_sub_cursor(const slotd_sub *s, char *buf, size_t cap)
{
    return slotd__cursor_text(&s->d.cur, buf, cap);
}

uint64_t slotd_sub_position(const slotd_sub *s, const char *sym)
{
    int found;
    return slotd__cursor_get(&s->d.cur, sym, strlen(sym), &found);
}

int slotd_sub_unsub(slotd_sub *s, int timeout_ms)
{
    if (s->state != SUB_OPEN)
        return s->err.code == SLOTD_ECLOSED ? 0 : s->err.code;
    static const char unsub[] = {(char)0x92, (char)0xa5, 'U', 'N', 'S', 'U', 'B', SUB_ID};
    uint64_t deadline = deadline_of(timeout_ms);
    int rc = slotd__conn_write(&s->c, unsub, sizeof unsub, deadline, &s->err);
    if (rc != 0)
        return end(s, rc);
    s->d.dropping = 1; /* what is on its way is read, not handed out */
    for (;;) {
        const char *msg;
        size_t len;
        slotd_sub_event ev;
        int k = next_msg(s, &msg, &len, deadline);
        if (k == 0)
            k = slotd__sub_error(&s->err, SLOTD_EDISCONNECTED, NULL, "UNSUB: no UNSUBOK in time");
        if (k < 0)
            return end(s, k);
        rc = slotd__subdec_msg(&s->d, msg, len, &ev, &s->err);
        if (rc < 0)
            return end(s, rc);
        if (rc == SLOTD__SUB_UNSUBOK) {
            slotd__sub_error(&s->err, SLOTD_ECLOSED, NULL, "the subscription was closed (UNSUB)");
            s->state = SUB_ENDED;
            return 0;
        }
    }
}

int slotd_sub_close(slotd_sub *s, int timeout_ms)
{
    if (!s)
        return 0;
    int rc = slotd_sub_unsub(s, timeout_ms);
    slotd__conn_close(&s->c);
    slotd__reader_destroy(&s->rd);
    slotd__subdec_free(&s->d);
    free(s);
    return rc;
}

int slotd_sub_fd(const slotd_sub *s)
{
    return s->c.fd;
}

const slotd_batch_error *slotd_sub_last_error(const slotd_sub *s)
{
    return &s->err;
}

uint64_t slotd_sub_trades(const slotd_sub *s)
{
    return s->d.trades;
}
