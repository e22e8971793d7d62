/* proto — error-code tables, limits, message typing, HELLO decoding and the
 * reply packers.
 *
 * Replies are small and rare next to the batches they answer, so they are
 * packed with msgpack-c into a growable proto_buf. Every packer appends to
 * `out` (the server may gather several replies into one write) and, if it
 * fails half-way (out of memory), rolls `out` back to where it was, so a
 * reply is either wholly in the buffer or not at all.
 */
#include "proto.h"

#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emit.h"
#include "mpread.h"

#define PROTO__NAME(name, doc) #name,
#define PROTO__DOC(name, doc) doc,
static const char *const code_names[] = {"OK", PROTO_CODES(PROTO__NAME)};
static const char *const code_docs[] = {"no error", PROTO_CODES(PROTO__DOC)};
_Static_assert(sizeof(code_names) / sizeof(code_names[0]) == PROTO_NCODES, "code table");

const char *proto_code_name(proto_code c)
{
    return (unsigned)c < PROTO_NCODES ? code_names[c] : "UNKNOWN";
}

const char *proto_code_doc(proto_code c)
{
    return (unsigned)c < PROTO_NCODES ? code_docs[c] : "unknown error code";
}

int proto_error_set(proto_error *e, proto_code code, int64_t index, const char *fmt, ...)
{
    va_list ap;
    e->code = code;
    e->index = index;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

void proto_limits_default(proto_limits *l)
{
    l->max_msg = 16u << 20;
    l->max_batch = 100000;
    l->max_depth = 16;
    l->ignore_unknown = 0;
    l->max_future_ns = 0;
}

void proto_buf_free(proto_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* msgpack-c write callback: append, growing geometrically. Returns -1 when
 * memory runs out; msgpack-c passes that through as the packer's result. */
static int buf_write(void *data, const char *src, size_t n)
{
    return proto_buf_append(data, src, n);
}

static int pack_cstr(msgpack_packer *pk, const char *s)
{
    return msgpack_pack_str_with_body(pk, s, strlen(s));
}

int proto_pack_welcome(proto_buf *out, const char *version, uint64_t last_seq)
{
    msgpack_packer pk;
    size_t mark = out->len;
    msgpack_packer_init(&pk, out, buf_write);
    if (msgpack_pack_array(&pk, 2) || pack_cstr(&pk, "WELCOME") || msgpack_pack_map(&pk, 3) ||
        pack_cstr(&pk, "server") || pack_cstr(&pk, "slotd") || pack_cstr(&pk, "version") ||
        pack_cstr(&pk, version ? version : "") || pack_cstr(&pk, "last_seq") ||
        msgpack_pack_uint64(&pk, last_seq))
        goto fail;
    return 0;
fail:
    out->len = mark;
    return -1;
}

int proto_pack_ack(proto_buf *out, uint64_t seq, uint64_t n_stored)
{
    msgpack_packer pk;
    size_t mark = out->len;
    msgpack_packer_init(&pk, out, buf_write);
    if (msgpack_pack_array(&pk, 3) || pack_cstr(&pk, "ACK") || msgpack_pack_uint64(&pk, seq) ||
        msgpack_pack_uint64(&pk, n_stored))
        goto fail;
    return 0;
fail:
    out->len = mark;
    return -1;
}

int proto_pack_err(proto_buf *out, uint64_t id, const proto_error *err)
{
    msgpack_packer pk;
    size_t mark = out->len;
    /* err->msg is a fixed array: never read past it even if unterminated. */
    size_t mlen = strnlen(err->msg, sizeof(err->msg));
    msgpack_packer_init(&pk, out, buf_write);
    if (msgpack_pack_array(&pk, 5) || pack_cstr(&pk, "ERR") || msgpack_pack_uint64(&pk, id) ||
        pack_cstr(&pk, proto_code_name(err->code)) ||
        msgpack_pack_str_with_body(&pk, err->msg, mlen))
        goto fail;
    if (err->index < 0 ? msgpack_pack_nil(&pk) : msgpack_pack_int64(&pk, err->index))
        goto fail;
    return 0;
fail:
    out->len = mark;
    return -1;
}

/* Message typing reads only the array header and the type string; the
 * decoders check the rest. */
proto_msg proto_msg_type(const uint8_t *msg, size_t len)
{
    size_t off, n, slen;
    if (len < 2)
        return PROTO_MSG_UNKNOWN;
    if ((msg[0] & 0xf0) == 0x90) {
        n = msg[0] & 0x0f;
        off = 1;
    } else if (msg[0] == 0xdc && len >= 3) {
        n = (size_t)msg[1] << 8 | msg[2];
        off = 3;
    } else if (msg[0] == 0xdd && len >= 5) {
        n = (size_t)msg[1] << 24 | (size_t)msg[2] << 16 | (size_t)msg[3] << 8 | msg[4];
        off = 5;
    } else {
        return PROTO_MSG_UNKNOWN;
    }
    if (n < 1 || off >= len)
        return PROTO_MSG_UNKNOWN;
    if ((msg[off] & 0xe0) == 0xa0) {
        slen = msg[off] & 0x1f;
        off += 1;
    } else if (msg[off] == 0xd9 && off + 1 < len) {
        slen = msg[off + 1];
        off += 2;
    } else {
        return PROTO_MSG_UNKNOWN;
    }
    if (slen > len - off)
        return PROTO_MSG_UNKNOWN;
    const char *s = (const char *)msg + off;
    if (slen == 1 && s[0] == 'T')
        return PROTO_MSG_T;
    if (slen == 1 && s[0] == 'Q')
        return PROTO_MSG_Q;
    if (slen == 1 && s[0] == 'D')
        return PROTO_MSG_D;
    if (slen == 5 && memcmp(s, "HELLO", 5) == 0)
        return PROTO_MSG_HELLO;
    return PROTO_MSG_UNKNOWN;
}

/* HELLO is read once per connection: the general header reader suffices. */
int proto_decode_hello(const uint8_t *msg, size_t len, proto_hello *out, proto_error *err)
{
    const uint8_t *p = msg, *end = msg + len;
    hdr h;
    int have_client = 0;
    memset(out, 0, sizeof(*out));
    if (rd_hdr(&p, end, &h, err))
        return -1;
    if (h.t != T_ARR || h.n < 1)
        return proto_error_set(err, PROTO_E_NOT_HELLO, -1, "the first message must be HELLO");
    uint32_t nelem = h.n;
    if (rd_hdr(&p, end, &h, err))
        return -1;
    if (!is_str(&h, "HELLO"))
        return proto_error_set(err, PROTO_E_NOT_HELLO, -1, "the first message must be HELLO");
    if (nelem != 2)
        return proto_error_set(err, PROTO_E_BAD_MESSAGE, -1, "HELLO is [\"HELLO\", {\"client\": name}]");
    if (rd_hdr(&p, end, &h, err))
        return -1;
    if (h.t != T_MAP)
        return proto_error_set(err, PROTO_E_BAD_MESSAGE, -1, "HELLO's argument must be a map");
    for (uint32_t i = 0, n = h.n; i < n; i++) {
        hdr k, v;
        if (rd_hdr(&p, end, &k, err))
            return -1;
        int is_client = is_str(&k, "client"), is_token = is_str(&k, "token");
        if (!is_client && !is_token) { /* other keys are ignored: forward compatible */
            uint64_t rest = 1 + (k.t == T_ARR ? k.n : k.t == T_MAP ? 2 * (uint64_t)k.n : 0);
            if (skip(&p, end, rest, err))
                return -1;
            continue;
        }
        if (rd_hdr(&p, end, &v, err))
            return -1;
        if (is_token && v.t == T_NIL) {
            out->has_token = 0;
            continue;
        }
        if (v.t != T_STR)
            return proto_error_set(err, PROTO_E_BAD_MESSAGE, -1, "HELLO %s must be a string",
                        is_client ? "client" : "token");
        /* NUL inside would truncate the name or token as a C string. */
        if (memchr(v.data, 0, v.n))
            return proto_error_set(err, PROTO_E_BAD_MESSAGE, -1, "HELLO %s contains a NUL byte",
                        is_client ? "client" : "token");
        if (is_client) {
            if (v.n < 1 || v.n > PROTO_NAME_MAX)
                return proto_error_set(err, PROTO_E_BAD_MESSAGE, -1, "client name must be 1-%d bytes",
                            PROTO_NAME_MAX);
            memcpy(out->client, v.data, v.n);
            out->client[v.n] = 0;
            have_client = 1;
        } else {
            if (v.n > PROTO_TOKEN_MAX)
                return proto_error_set(err, PROTO_E_UNAUTHORIZED, -1, "token longer than %d bytes",
                            PROTO_TOKEN_MAX);
            memcpy(out->token, v.data, v.n);
            out->token[v.n] = 0;
            out->has_token = 1;
        }
    }
    if (!have_client)
        return proto_error_set(err, PROTO_E_BAD_MESSAGE, -1, "HELLO needs {\"client\": name}");
    if (p != end)
        return proto_error_set(err, PROTO_E_MALFORMED, -1, "bytes after the HELLO value");
    return 0;
}
