/* The reply parser: server messages (PROTOCOL.md) into slotd__reply, and
 * what the sender does with each ERR code (docs/clients.md). Input is
 * whatever the socket delivered: nothing here trusts a length, a type or a
 * string's termination (tests/fuzz/fuzz_client_reply.c). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- msgpack, read by hand ------------------------------------------------
 * A small reader rather than msgpack-c's unpacker: that one allocates what
 * a header declares (an array32 of 2^32 elements asks for 64 GiB), and a
 * reply stream is the server's to make up. Here a value is measured in
 * place first, every declared length bounded by SLOTD__REPLY_MAX, nesting
 * by MP_DEPTH, and nothing is allocated but the stream buffer. */

enum { MP_DEPTH = 32 };

static uint64_t be(const uint8_t *p, int k)
{
    uint64_t v = 0;
    for (int i = 0; i < k; i++)
        v = v << 8 | p[i];
    return v;
}

/* The header at p: its size, 0 if incomplete, -1 if invalid (0xc1). */
int slotd__mp_head(const uint8_t *p, size_t n, slotd__mp *v)
{
    /* 0xc0..0xdf: type, then bytes of length (or value) that follow */
    static const struct {
        uint8_t t, k, extra;
    } tab[32] = {
        [0x00] = {SLOTD__MP_NIL, 0, 0}, [0x02] = {SLOTD__MP_BOOL, 0, 0},
        [0x03] = {SLOTD__MP_BOOL, 0, 0}, [0x04] = {SLOTD__MP_RAW, 1, 0},
        [0x05] = {SLOTD__MP_RAW, 2, 0}, [0x06] = {SLOTD__MP_RAW, 4, 0},
        [0x07] = {SLOTD__MP_RAW, 1, 1}, [0x08] = {SLOTD__MP_RAW, 2, 1},
        [0x09] = {SLOTD__MP_RAW, 4, 1}, [0x0a] = {SLOTD__MP_RAW, 0, 4},
        [0x0b] = {SLOTD__MP_RAW, 0, 8}, [0x0c] = {SLOTD__MP_UINT, 1, 0},
        [0x0d] = {SLOTD__MP_UINT, 2, 0}, [0x0e] = {SLOTD__MP_UINT, 4, 0},
        [0x0f] = {SLOTD__MP_UINT, 8, 0}, [0x10] = {SLOTD__MP_INT, 1, 0},
        [0x11] = {SLOTD__MP_INT, 2, 0}, [0x12] = {SLOTD__MP_INT, 4, 0},
        [0x13] = {SLOTD__MP_INT, 8, 0}, [0x14] = {SLOTD__MP_RAW, 0, 2},
        [0x15] = {SLOTD__MP_RAW, 0, 3}, [0x16] = {SLOTD__MP_RAW, 0, 5},
        [0x17] = {SLOTD__MP_RAW, 0, 9}, [0x18] = {SLOTD__MP_RAW, 0, 17},
        [0x19] = {SLOTD__MP_STR, 1, 0}, [0x1a] = {SLOTD__MP_STR, 2, 0},
        [0x1b] = {SLOTD__MP_STR, 4, 0}, [0x1c] = {SLOTD__MP_ARR, 2, 0},
        [0x1d] = {SLOTD__MP_ARR, 4, 0}, [0x1e] = {SLOTD__MP_MAP, 2, 0},
        [0x1f] = {SLOTD__MP_MAP, 4, 0},
    };
    if (n == 0)
        return 0;
    uint8_t c = p[0];
    memset(v, 0, sizeof *v);
    if (c <= 0x7f || c >= 0xe0) { /* fixints */
        v->t = c <= 0x7f ? SLOTD__MP_UINT : SLOTD__MP_INT;
        v->u = c <= 0x7f ? c : (uint64_t)(int64_t)(int8_t)c;
        return 1;
    }
    if (c < 0xc0) { /* fixmap, fixarray, fixstr */
        v->t = c >= 0xa0 ? SLOTD__MP_STR : c >= 0x90 ? SLOTD__MP_ARR : SLOTD__MP_MAP;
        v->len = c & (c >= 0xa0 ? 0x1f : 0x0f);
        return 1;
    }
    if (c == 0xc1)
        return -1;
    int k = tab[c - 0xc0].k;
    if (n < 1 + (size_t)k)
        return 0;
    v->t = tab[c - 0xc0].t;
    uint64_t x = be(p + 1, k);
    if (v->t == SLOTD__MP_UINT) {
        v->u = x;
    } else if (v->t == SLOTD__MP_INT) {
        /* a non-negative signed integer is the same number (PROTOCOL.md 1) */
        int64_t i = k == 1 ? (int8_t)x : k == 2 ? (int16_t)x : k == 4 ? (int32_t)x : (int64_t)x;
        v->u = (uint64_t)i;
        if (i >= 0)
            v->t = SLOTD__MP_UINT;
    } else if (v->t != SLOTD__MP_NIL && v->t != SLOTD__MP_BOOL) {
        v->len = x + tab[c - 0xc0].extra; /* ext: its type byte counts as payload */
    }
    return 1 + k;
}

/* Bytes of the whole value at p: 0 if incomplete, -1 if invalid or past
 * the limits. */
int64_t slotd__mp_skip(const uint8_t *p, size_t n, int depth)
{
    /* the forms most of a subscriber's stream is made of, without the
     * general header: positive fixints (ids, small counts) and fixstrs
     * (decimals, sides) */
    if (n > 0 && p[0] <= 0x7f)
        return 1;
    if (n > 0 && (p[0] & 0xe0) == 0xa0)
        return n - 1 < (size_t)(p[0] & 0x1f) ? 0 : 1 + (int64_t)(p[0] & 0x1f);
    slotd__mp v;
    int h = slotd__mp_head(p, n, &v);
    if (h <= 0)
        return h;
    if (v.t == SLOTD__MP_STR || v.t == SLOTD__MP_RAW) {
        if (v.len > SLOTD__REPLY_MAX)
            return -1;
        return n - (size_t)h < v.len ? 0 : h + (int64_t)v.len;
    }
    if (v.t != SLOTD__MP_ARR && v.t != SLOTD__MP_MAP)
        return h;
    uint64_t count = v.t == SLOTD__MP_MAP ? v.len * 2 : v.len;
    if (depth >= MP_DEPTH || count > SLOTD__REPLY_MAX)
        return -1;
    size_t off = (size_t)h;
    for (uint64_t i = 0; i < count; i++) {
        int64_t k = slotd__mp_skip(p + off, n - off, depth + 1);
        if (k <= 0)
            return k;
        off += (size_t)k;
    }
    return (int64_t)off;
}

/* The next value of a measured message: *off moves past it. Containers
 * are skipped whole (their header is in *v). -1 past the end. */
int slotd__mp_next(const uint8_t *p, size_t n, size_t *off, slotd__mp *v)
{
    if (*off >= n || slotd__mp_head(p + *off, n - *off, v) <= 0)
        return -1;
    int64_t k = slotd__mp_skip(p + *off, n - *off, 1);
    if (k <= 0)
        return -1;
    if (v->t == SLOTD__MP_STR)
        v->s = p + *off + (k - (int64_t)v->len);
    *off += (size_t)k;
    return 0;
}

int slotd__mp_is(const slotd__mp *v, const char *s)
{
    size_t n = strlen(s);
    return v->t == SLOTD__MP_STR && v->len == n && memcmp(v->s, s, n) == 0;
}

/* A msgpack str into a NUL-terminated buffer, cut to fit. */
void slotd__mp_copy(char *dst, size_t cap, const slotd__mp *v)
{
    size_t n = v->len < cap - 1 ? (size_t)v->len : cap - 1;
    memcpy(dst, v->s, n);
    dst[n] = '\0';
}

static int bad(slotd__reply *r, const char *what)
{
    snprintf(r->message, sizeof r->message, "unexpected reply: %s", what);
    return SLOTD_EPROTOCOL;
}

static int parse_welcome(const uint8_t *p, size_t n, size_t off, uint32_t nel, slotd__reply *r)
{
    slotd__mp m, k, v;
    if (nel < 2 || off >= n || slotd__mp_head(p + off, n - off, &m) <= 0 || m.t != SLOTD__MP_MAP)
        return bad(r, "WELCOME without a map");
    off += (size_t)slotd__mp_head(p + off, n - off, &m);
    for (uint64_t i = 0; i < m.len; i++) {
        if (slotd__mp_next(p, n, &off, &k) != 0 || slotd__mp_next(p, n, &off, &v) != 0)
            return bad(r, "WELCOME map cut short");
        if (slotd__mp_is(&k, "last_seq")) {
            if (v.t != SLOTD__MP_UINT)
                return bad(r, "WELCOME last_seq is not a non-negative integer");
            r->seq = v.u;
            r->type = SLOTD__R_WELCOME;
            return 0;
        }
    }
    return bad(r, "WELCOME without last_seq");
}

static int parse_err(const uint8_t *p, size_t n, size_t off, uint32_t nel, slotd__reply *r)
{
    /* ["ERR", id, code, message, index] */
    slotd__mp id, code, msg, index;
    if (nel < 4 || slotd__mp_next(p, n, &off, &id) != 0 || slotd__mp_next(p, n, &off, &code) != 0 ||
        slotd__mp_next(p, n, &off, &msg) != 0 || id.t != SLOTD__MP_UINT ||
        code.t != SLOTD__MP_STR || code.len == 0 ||
        memchr(code.s, '\0', (size_t)code.len))
        return bad(r, "ERR not shaped [\"ERR\", id, code, message, index]");
    r->type = SLOTD__R_ERR;
    r->seq = id.u;
    slotd__mp_copy(r->code, sizeof r->code, &code);
    if (msg.t == SLOTD__MP_STR)
        slotd__mp_copy(r->message, sizeof r->message, &msg);
    if (nel >= 5 && slotd__mp_next(p, n, &off, &index) == 0 && index.t == SLOTD__MP_UINT &&
        index.u <= INT64_MAX)
        r->index = (int64_t)index.u;
    return 0;
}

int slotd__reply_parse(const char *msg, size_t n, slotd__reply *r)
{
    const uint8_t *p = (const uint8_t *)msg;
    slotd__mp a, t, x, y;
    size_t off = 0;
    memset(r, 0, sizeof *r);
    r->index = -1;
    int h = slotd__mp_head(p, n, &a);
    if (h <= 0 || a.t != SLOTD__MP_ARR || a.len == 0)
        return bad(r, "not an array");
    off = (size_t)h;
    uint32_t nel = a.len > UINT32_MAX ? UINT32_MAX : (uint32_t)a.len;
    if (slotd__mp_next(p, n, &off, &t) != 0 || t.t != SLOTD__MP_STR)
        return bad(r, "the first element is not a string");
    if (slotd__mp_is(&t, "ACK")) {
        if (nel < 3 || slotd__mp_next(p, n, &off, &x) != 0 || slotd__mp_next(p, n, &off, &y) != 0 ||
            x.t != SLOTD__MP_UINT || y.t != SLOTD__MP_UINT)
            return bad(r, "ACK not shaped [\"ACK\", seq, n]");
        r->type = SLOTD__R_ACK;
        r->seq = x.u;
        r->n = y.u;
        return 0;
    }
    if (slotd__mp_is(&t, "ERR"))
        return parse_err(p, n, off, nel, r);
    if (slotd__mp_is(&t, "WELCOME"))
        return parse_welcome(p, n, off, nel, r);
    r->type = SLOTD__R_OTHER; /* an R nobody asked for: ignored */
    return 0;
}

void slotd__verror(slotd_batch_error *e, int code, const char *wire_code, const char *fmt,
                   va_list ap)
{
    memset(e, 0, sizeof *e);
    e->code = code;
    e->index = -1;
    if (wire_code)
        snprintf(e->wire_code, sizeof e->wire_code, "%s", wire_code);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
}

int slotd__code_class(const char *code, int seq0, int *fatal_rc)
{
    static const char *const transient[] = {"STORE_FULL", "JOURNAL", "NOT_READY"};
    static const char *const conn_retry[] = {"NOT_READY", "TOO_MANY_CONNECTIONS", "TOO_MANY_CLIENTS",
                                             "IDLE_TIMEOUT"};
    *fatal_rc = 0;
    if (strcmp(code, "UNAUTHORIZED") == 0) {
        *fatal_rc = SLOTD_EUNAUTHORIZED;
        return SLOTD__C_FATAL;
    }
    if (strcmp(code, "FENCED") == 0) {
        *fatal_rc = SLOTD_EFENCED;
        return SLOTD__C_FATAL;
    }
    if (seq0) { /* a session or stream error: the connection closes */
        for (size_t i = 0; i < sizeof conn_retry / sizeof *conn_retry; i++)
            if (strcmp(code, conn_retry[i]) == 0)
                return SLOTD__C_RETRY_CONN;
        *fatal_rc = SLOTD_EPROTOCOL; /* MALFORMED, BAD_MESSAGE, TOO_LARGE, NOT_HELLO, ... */
        return SLOTD__C_FATAL;
    }
    if (strcmp(code, "BLOCKED") == 0)
        return SLOTD__C_BLOCKED;
    for (size_t i = 0; i < sizeof transient / sizeof *transient; i++)
        if (strcmp(code, transient[i]) == 0)
            return SLOTD__C_TRANSIENT;
    if (strcmp(code, "MALFORMED") == 0 || strcmp(code, "BAD_MESSAGE") == 0) {
        *fatal_rc = SLOTD_EPROTOCOL; /* a bug in the library, not in the data */
        return SLOTD__C_FATAL;
    }
    /* Data errors, TOO_LARGE for trades per batch, and codes this library
     * does not know: the batch cannot be stored as it is. */
    return SLOTD__C_PERMANENT;
}

void slotd__error_field(const char *message, char *field, size_t cap)
{
    /* PROTOCOL.md 3.5: "trade <index>: <slot>: <what>" */
    const char *p = message;
    field[0] = '\0';
    if (strncmp(p, "trade ", 6) != 0)
        return;
    p += 6;
    if (*p < '0' || *p > '9')
        return;
    while (*p >= '0' && *p <= '9')
        p++;
    if (p[0] != ':' || p[1] != ' ')
        return;
    p += 2;
    const char *end = strstr(p, ": ");
    if (!end || end == p)
        return;
    size_t n = (size_t)(end - p) < cap - 1 ? (size_t)(end - p) : cap - 1;
    memcpy(field, p, n);
    field[n] = '\0';
}

void slotd__reader_init(slotd__reader *r)
{
    memset(r, 0, sizeof *r);
}

void slotd__reader_destroy(slotd__reader *r)
{
    free(r->buf);
    memset(r, 0, sizeof *r);
}

void slotd__reader_reset(slotd__reader *r)
{
    r->off = r->len = 0; /* a new connection starts a new stream */
}

char *slotd__reader_space(slotd__reader *r, size_t want, size_t *cap)
{
    if (r->off > 0 && r->cap - r->len < want) { /* move the unread bytes to the front */
        memmove(r->buf, r->buf + r->off, r->len - r->off);
        r->len -= r->off;
        r->off = 0;
    }
    if (r->cap - r->len < want) {
        size_t c = r->cap ? r->cap : want;
        while (c - r->len < want)
            c *= 2;
        char *b = realloc(r->buf, c);
        if (!b)
            return NULL;
        r->buf = b;
        r->cap = c;
    }
    *cap = r->cap - r->len;
    return r->buf + r->len;
}

void slotd__reader_commit(slotd__reader *r, size_t n)
{
    r->len += n;
}

int slotd__reader_msg(slotd__reader *r, const char **msg, size_t *len)
{
    if (r->off == r->len)
        return 0;
    int64_t k = slotd__mp_skip((const uint8_t *)r->buf + r->off, r->len - r->off, 0);
    if (k == 0 && r->len - r->off <= SLOTD__REPLY_MAX)
        return 0;
    if (k <= 0)
        return SLOTD_EPROTOCOL;
    *msg = r->buf + r->off;
    *len = (size_t)k;
    r->off += (size_t)k;
    if (r->off == r->len) /* the bytes stay until the next reader_space */
        r->off = r->len = 0;
    return 1;
}

int slotd__reader_next(slotd__reader *r, slotd__reply *out)
{
    const char *msg;
    size_t n;
    int k = slotd__reader_msg(r, &msg, &n);
    if (k <= 0) {
        if (k < 0) {
            memset(out, 0, sizeof *out);
            snprintf(out->message, sizeof out->message,
                     "the reply stream is not valid msgpack or exceeds the library's limits");
        }
        return k;
    }
    int rc = slotd__reply_parse(msg, n, out);
    return rc < 0 ? rc : 1;
}
