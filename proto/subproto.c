/* subproto — SUB/UNSUB decoding and the subscription messages (subproto.h).
 * SUB is read once per subscription: msgpack-c's object tree suffices. */
#include "subproto.h"

#include <assert.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixp.h"

#define fail(err, code, ...) proto_error_set((err), (code), -1, __VA_ARGS__)

static int obj_is(const msgpack_object *o, const char *lit)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(lit) &&
           memcmp(o->via.str.ptr, lit, o->via.str.size) == 0;
}

int subproto_is(const uint8_t *msg, size_t len, const char *type)
{
    size_t n = strlen(type);
    /* fixarray (SUB and UNSUB have 2 or 3 elements), then a fixstr */
    return len >= 2 + n && (msg[0] & 0xf0) == 0x90 && msg[1] == (0xa0 | n) &&
           memcmp(msg + 2, type, n) == 0;
}

/* A symbol: 1-31 bytes (the store checks UTF-8 when trades name it). */
static int get_sym(const msgpack_object *o, subproto_sym *out, const char *what,
                   proto_error *err)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0 ||
        o->via.str.size > STORE_SYM_MAX)
        return fail(err, PROTO_E_BAD_SUB, "%s: each symbol must be a string of 1-%d bytes", what,
                    STORE_SYM_MAX);
    memcpy(out->name, o->via.str.ptr, o->via.str.size);
    out->name[o->via.str.size] = 0;
    out->len = (uint8_t)o->via.str.size;
    return 0;
}

int subproto_sym_cmp(const void *a, const void *b)
{
    const subproto_sym *x = a, *y = b;
    int c = memcmp(x->name, y->name, x->len < y->len ? x->len : y->len);
    return c ? c : (int)x->len - (int)y->len;
}

static int dup_of(const subproto_sym *v, uint32_t n, const subproto_sym *s)
{
    for (uint32_t i = 0; i < n; i++)
        if (v[i].len == s->len && memcmp(v[i].name, s->name, s->len) == 0)
            return 1;
    return 0;
}

static int get_syms(const msgpack_object *o, subproto_req *r, proto_error *err)
{
    if (obj_is(o, "*")) {
        r->all = 1;
        return 0;
    }
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size == 0)
        return fail(err, PROTO_E_BAD_SUB, "syms: must be \"*\" or a non-empty list of symbols");
    if (o->via.array.size > SUBPROTO_MAX_SYMS)
        return fail(err, PROTO_E_BAD_SUB, "syms: more than %d symbols", SUBPROTO_MAX_SYMS);
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        subproto_sym *s = &r->syms[r->nsyms];
        if (get_sym(&o->via.array.ptr[i], s, "syms", err) < 0)
            return -1;
        if (dup_of(r->syms, r->nsyms, s))
            return fail(err, PROTO_E_BAD_SUB, "syms: '%s' is named twice", s->name);
        r->nsyms++;
    }
    return 0;
}

static int get_from(const msgpack_object *o, subproto_req *r, proto_error *err)
{
    if (obj_is(o, "now")) {
        r->from = SUBPROTO_NOW;
        return 0;
    }
    if (obj_is(o, "start")) {
        r->from = SUBPROTO_START;
        return 0;
    }
    if (o->type != MSGPACK_OBJECT_MAP)
        return fail(err, PROTO_E_BAD_SUB,
                    "from: must be \"now\", \"start\" or a cursor {symbol: position, ...}");
    if (o->via.map.size > SUBPROTO_MAX_SYMS)
        return fail(err, PROTO_E_BAD_SUB, "from: more than %d symbols", SUBPROTO_MAX_SYMS);
    r->from = SUBPROTO_MAP;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        subproto_sym *s = &r->fromv[r->nfrom];
        if (get_sym(&kv->key, s, "from", err) < 0)
            return -1;
        if (kv->val.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return fail(err, PROTO_E_BAD_SUB,
                        "from: the position of '%s' must be a non-negative integer", s->name);
        if (dup_of(r->fromv, r->nfrom, s))
            return fail(err, PROTO_E_BAD_SUB, "from: '%s' is named twice", s->name);
        s->pos = kv->val.via.u64;
        r->nfrom++;
    }
    return 0;
}

static int decode_opts(const msgpack_object_map *m, subproto_req *r, proto_error *err)
{
    int have_syms = 0;
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
        if (obj_is(k, "syms")) {
            if (get_syms(v, r, err) < 0)
                return -1;
            have_syms = 1;
        } else if (obj_is(k, "from")) {
            if (get_from(v, r, err) < 0)
                return -1;
        } else if (obj_is(k, "gaps")) {
            if (v->type != MSGPACK_OBJECT_BOOLEAN)
                return fail(err, PROTO_E_BAD_SUB, "gaps: must be true or false");
            r->gaps = v->via.boolean;
        } else if (k->type == MSGPACK_OBJECT_STR) {
            return fail(err, PROTO_E_BAD_SUB, "unknown key '%.*s' (syms, from, gaps)",
                        (int)(k->via.str.size > 40 ? 40 : k->via.str.size), k->via.str.ptr);
        } else {
            return fail(err, PROTO_E_BAD_SUB, "keys must be strings (syms, from, gaps)");
        }
    }
    if (!have_syms)
        return fail(err, PROTO_E_BAD_SUB, "syms is required: a list of symbols or \"*\"");
    if (r->all == 0 && r->from == SUBPROTO_MAP)
        for (uint32_t i = 0; i < r->nfrom; i++)
            if (!dup_of(r->syms, r->nsyms, &r->fromv[i]))
                return fail(err, PROTO_E_BAD_SUB, "from: '%s' is not in syms", r->fromv[i].name);
    return 0;
}

/* Unpack msg as [type, id(, map)]; returns the array or NULL with err. */
static const msgpack_object *unpack(msgpack_unpacked *u, const uint8_t *msg, size_t len,
                                    uint32_t n, uint64_t *id, proto_error *err, const char *shape)
{
    size_t off = 0;
    *id = 0;
    if (msgpack_unpack_next(u, (const char *)msg, len, &off) != MSGPACK_UNPACK_SUCCESS) {
        fail(err, PROTO_E_MALFORMED, "the message is not valid msgpack");
        return NULL;
    }
    const msgpack_object *o = &u->data;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != n ||
        o->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        fail(err, PROTO_E_BAD_MESSAGE, "expected %s with id a non-negative integer", shape);
        return NULL;
    }
    *id = o->via.array.ptr[1].via.u64;
    return o->via.array.ptr;
}

int subproto_decode_sub(const uint8_t *msg, size_t len, subproto_req *r, proto_error *err)
{
    msgpack_unpacked u;
    int rc = -1;
    memset(r, 0, offsetof(subproto_req, syms));
    r->nfrom = 0;
    r->gaps = 0;
    r->fromx = NULL;
    r->nfromx = 0;
    r->from = SUBPROTO_NOW;
    msgpack_unpacked_init(&u);
    const msgpack_object *a =
        unpack(&u, msg, len, 3, &r->id, err, "[\"SUB\", id, {\"syms\": ..., \"from\": ...}]");
    if (!a)
        goto cleanup;
    if (a[2].type != MSGPACK_OBJECT_MAP) {
        fail(err, PROTO_E_BAD_MESSAGE, "the third element of SUB must be a map");
        goto cleanup;
    }
    rc = decode_opts(&a[2].via.map, r, err);
cleanup:
    msgpack_unpacked_destroy(&u);
    return rc;
}

int subproto_decode_unsub(const uint8_t *msg, size_t len, uint64_t *id, proto_error *err)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    const msgpack_object *a = unpack(&u, msg, len, 2, id, err, "[\"UNSUB\", id]");
    msgpack_unpacked_destroy(&u);
    return a ? 0 : -1;
}

/* ---- SSE: query parameters and cursor text ------------------------------------ */

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Percent-decode s[0..n) as a symbol into out. */
static int sym_text(const char *s, size_t n, subproto_sym *out, proto_error *err)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1, lo = hi >= 0 ? hexval(s[i + 2]) : -1;
            if (lo < 0)
                return fail(err, PROTO_E_BAD_QUERY, "bad percent-encoding in a cursor symbol");
            c = hi * 16 + lo;
            i += 2;
        }
        if (len == STORE_SYM_MAX)
            return fail(err, PROTO_E_BAD_QUERY, "a symbol is longer than %d bytes", STORE_SYM_MAX);
        out->name[len++] = (char)c;
    }
    if (len == 0)
        return fail(err, PROTO_E_BAD_QUERY, "an empty symbol");
    out->name[len] = 0;
    out->len = (uint8_t)len;
    return 0;
}

int subproto_cursor_each(const char *s, size_t n, subproto_cursor_fn fn, void *ctx,
                         proto_error *err)
{
    for (size_t i = 0; i < n;) {
        size_t j = i, colon = SIZE_MAX;
        while (j < n && s[j] != ',')
            if (s[j++] == ':')
                colon = j - 1;
        if (colon == SIZE_MAX || colon + 1 == j)
            return fail(err, PROTO_E_BAD_QUERY, "cursor: expected sym:position[,sym:position...]");
        subproto_sym f;
        if (sym_text(s + i, colon - i, &f, err) < 0)
            return -1;
        uint64_t pos = 0;
        for (size_t k = colon + 1; k < j; k++) {
            uint64_t d = (uint64_t)(s[k] - '0');
            if (s[k] < '0' || s[k] > '9' || pos > UINT64_MAX / 10 || pos * 10 > UINT64_MAX - d)
                return fail(err, PROTO_E_BAD_QUERY,
                            "cursor: the position of '%s' is not a non-negative integer", f.name);
            pos = pos * 10 + d;
        }
        f.pos = pos;
        if (fn(ctx, &f, err) < 0)
            return -1;
        i = j + 1;
    }
    return 0;
}

static int cursor_add(void *ctx, const subproto_sym *f, proto_error *err)
{
    subproto_req *r = ctx;
    if (r->nfrom == SUBPROTO_MAX_SYMS)
        return fail(err, PROTO_E_BAD_QUERY, "cursor: more than %d symbols", SUBPROTO_MAX_SYMS);
    if (dup_of(r->fromv, r->nfrom, f))
        return fail(err, PROTO_E_BAD_QUERY, "cursor: '%s' is named twice", f->name);
    r->fromv[r->nfrom++] = *f;
    return 0;
}

int subproto_cursor_parse(subproto_req *r, const char *s, size_t n, proto_error *err)
{
    r->from = SUBPROTO_MAP;
    r->nfrom = 0;
    return subproto_cursor_each(s, n, cursor_add, r, err);
}

int subproto_set_param(subproto_req *r, const char *name, size_t nlen, const char *val,
                       size_t vlen, proto_error *err)
{
#define IS(lit) (nlen == sizeof lit - 1 && memcmp(name, lit, nlen) == 0)
#define VAL(lit) (vlen == sizeof lit - 1 && memcmp(val, lit, vlen) == 0)
    if (IS("syms")) {
        r->nsyms = 0;
        r->all = VAL("*");
        if (r->all)
            return 0;
        for (size_t i = 0; i <= vlen;) {
            size_t j = i;
            while (j < vlen && val[j] != ',')
                j++;
            if (r->nsyms == SUBPROTO_SSE_MAX_SYMS)
                return fail(err, PROTO_E_BAD_QUERY, "parameter 'syms': more than %d symbols",
                            SUBPROTO_SSE_MAX_SYMS);
            subproto_sym *s = &r->syms[r->nsyms];
            if (j == i || j - i > STORE_SYM_MAX)
                return fail(err, PROTO_E_BAD_QUERY,
                            "parameter 'syms': each symbol must be 1-%d bytes, comma-separated",
                            STORE_SYM_MAX);
            memcpy(s->name, val + i, j - i);
            s->name[j - i] = 0;
            s->len = (uint8_t)(j - i);
            if (dup_of(r->syms, r->nsyms, s))
                return fail(err, PROTO_E_BAD_QUERY, "parameter 'syms': '%s' is named twice",
                            s->name);
            r->nsyms++;
            i = j + 1;
        }
        return 0;
    }
    if (IS("from")) {
        if (VAL("now"))
            r->from = SUBPROTO_NOW;
        else if (VAL("start"))
            r->from = SUBPROTO_START;
        else
            return subproto_cursor_parse(r, val, vlen, err);
        return 0;
    }
    if (IS("gaps")) {
        if (!VAL("true") && !VAL("false"))
            return fail(err, PROTO_E_BAD_QUERY, "parameter 'gaps': true or false");
        r->gaps = VAL("true");
        return 0;
    }
    return fail(err, PROTO_E_BAD_QUERY, "unknown parameter '%.*s' (syms, from, gaps)",
                (int)(nlen > 40 ? 40 : nlen), name);
#undef IS
#undef VAL
}

int subproto_cursor_append(proto_buf *out, const char *sym, size_t len, uint64_t pos, int first)
{
    char buf[STORE_SYM_MAX * 3 + 32];
    size_t n = 0;
    if (!first)
        buf[n++] = ',';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)sym[i];
        if (c < 0x21 || c == '%' || c == ',' || c == ':')
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%%%02X", c);
        else
            buf[n++] = (char)c;
    }
    buf[n++] = ':';
    n += fixp_format_u64(pos, buf + n); /* not snprintf: an SSE id has ~300 of these */
    return proto_buf_append(out, buf, n);
}

/* ---- encoders ------------------------------------------------------------- */

void subproto_begin_subok(emit *e, uint64_t id)
{
    e->array(e, 3);
    emit_cstr(e, "SUBOK");
    e->u64(e, id);
}

void subproto_pos(emit *e, const char *sym, size_t len, uint64_t pos)
{
    e->str(e, sym, len);
    e->u64(e, pos);
}

void subproto_end(emit *e)
{
    e->end(e); /* the map or the trades */
    e->end(e); /* the message */
}

void subproto_begin_s(emit *e, uint64_t id, const char *sym, size_t len, const kind *k,
                      uint64_t next, uint32_t ntrades)
{
    e->array(e, 6);
    emit_cstr(e, "S");
    e->u64(e, id);
    e->str(e, sym, len);
    emit_cstr(e, k->name);
    e->u64(e, next);
    e->array(e, ntrades);
}

void subproto_trade(emit *e, const kind *k, const void *slot)
{
    int64_t v[KIND_MAX_FIELDS];
    char buf[FIXP_STRLEN];
    k->unpack(slot, v);
    e->array(e, (uint32_t)k->nfields);
    for (int i = 0; i < k->nfields; i++) {
        kind_type t = (kind_type)k->fields[i].type;
        if (t == KIND_FIX)
            e->str(e, buf, fixp_format(v[i], buf));
        else if (t == KIND_SIDE || t == KIND_RIGHT)
            emit_cstr(e, kind_enum_name(t, v[i]));
        else if (t == KIND_U64)
            e->u64(e, (uint64_t)v[i]);
        else
            e->i64(e, v[i]);
    }
    e->end(e);
}

/* ---- the S fast path: msgpack written by hand ---------------------------------- */

static inline unsigned char *put_be(unsigned char *p, uint64_t v, int bytes)
{
    /* Whole-word stores: every ts and id in a push is 8 bytes, and a
     * byte-at-a-time loop was ~30 instructions each. */
    switch (bytes) {
    case 8: {
        unsigned char b[8] = {(unsigned char)(v >> 56), (unsigned char)(v >> 48),
                              (unsigned char)(v >> 40), (unsigned char)(v >> 32),
                              (unsigned char)(v >> 24), (unsigned char)(v >> 16),
                              (unsigned char)(v >> 8),  (unsigned char)v};
        memcpy(p, b, 8);
        return p + 8;
    }
    case 4: {
        unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                              (unsigned char)(v >> 8), (unsigned char)v};
        memcpy(p, b, 4);
        return p + 4;
    }
    case 2:
        p[0] = (unsigned char)(v >> 8);
        p[1] = (unsigned char)v;
        return p + 2;
    default:
        assert(bytes == 1);
        p[0] = (unsigned char)v;
        return p + 1;
    }
}

static unsigned char *put_uint(unsigned char *p, uint64_t v)
{
    if (v < 128) {
        *p++ = (unsigned char)v;
        return p;
    }
    int bytes = v <= 0xff ? 1 : v <= 0xffff ? 2 : v <= 0xffffffffu ? 4 : 8;
    *p++ = bytes == 1 ? 0xcc : bytes == 2 ? 0xcd : bytes == 4 ? 0xce : 0xcf;
    return put_be(p, v, bytes);
}

static unsigned char *put_int(unsigned char *p, int64_t v)
{
    if (v >= 0)
        return put_uint(p, (uint64_t)v);
    if (v >= -32) {
        *p++ = (unsigned char)(int8_t)v;
        return p;
    }
    *p++ = 0xd3;
    return put_be(p, (uint64_t)v, 8);
}

/* A str header for n (< 2^32) bytes. */
static unsigned char *put_strhead(unsigned char *p, size_t n)
{
    if (n < 32) {
        *p++ = (unsigned char)(0xa0 | n);
        return p;
    }
    if (n <= 0xff) {
        *p++ = 0xd9;
        return put_be(p, n, 1);
    }
    *p++ = n <= 0xffff ? 0xda : 0xdb;
    return put_be(p, n, n <= 0xffff ? 2 : 4);
}

static unsigned char *put_str(unsigned char *p, const char *s, size_t n)
{
    p = put_strhead(p, n);
    memcpy(p, s, n);
    return p + n;
}

int subproto_pack_s(proto_buf *out, uint64_t id, const char *sym, size_t len, const kind *k,
                    uint64_t next, const unsigned char *slots, uint32_t n)
{
    /* Worst case: a value is at most 1 + FIXP_STRLEN bytes; a trade adds
     * its array header; the message header is under 100 bytes. */
    size_t per = 1 + (size_t)k->nfields * (1 + FIXP_STRLEN);
    if (proto_buf_reserve(out, 128 + len + (size_t)n * per) < 0)
        return -1;
    unsigned char *p = (unsigned char *)out->data + out->len;
    *p++ = 0x96;
    p = put_str(p, "S", 1);
    p = put_uint(p, id);
    p = put_str(p, sym, len);
    p = put_str(p, k->name, strlen(k->name));
    p = put_uint(p, next);
    if (n < 16) {
        *p++ = (unsigned char)(0x90 | n);
    } else {
        *p++ = n <= 0xffff ? 0xdc : 0xdd;
        p = put_be(p, n, n <= 0xffff ? 2 : 4);
    }
    int64_t v[KIND_MAX_FIELDS];
    for (uint32_t t = 0; t < n; t++) {
        k->unpack(slots + (size_t)t * k->size, v);
        *p++ = (unsigned char)(0x90 | k->nfields);
        for (int i = 0; i < k->nfields; i++) {
            kind_type ty = (kind_type)k->fields[i].type;
            if (ty == KIND_FIX) {
                /* Formatted in place after a fixstr header (the text is at
                 * most 21 bytes, room reserved above): no copy. */
                size_t tl = fixp_format(v[i], (char *)p + 1);
                assert(tl < 32 && "a fixstr");
                *p = (unsigned char)(0xa0 | tl);
                p += 1 + tl;
            } else if (ty == KIND_SIDE || ty == KIND_RIGHT) {
                /* The names are one letter or empty (kind.h): no strlen call. */
                const char *name = kind_enum_name(ty, v[i]);
                p = put_str(p, name, !name[0] ? 0 : !name[1] ? 1 : strlen(name));
            } else if (ty == KIND_U64) {
                p = put_uint(p, (uint64_t)v[i]);
            } else {
                p = put_int(p, v[i]);
            }
        }
    }
    out->len = (size_t)((char *)p - out->data);
    return 0;
}

void subproto_gap(emit *e, uint64_t id, const char *sym, size_t len, uint64_t from, uint64_t to)
{
    e->array(e, 5);
    emit_cstr(e, "GAP");
    e->u64(e, id);
    e->str(e, sym, len);
    e->u64(e, from);
    e->u64(e, to);
    e->end(e);
}

void subproto_unsubok(emit *e, uint64_t id)
{
    e->array(e, 2);
    emit_cstr(e, "UNSUBOK");
    e->u64(e, id);
    e->end(e);
}
