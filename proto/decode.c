/* decode — HELLO and the hot path: T batches read straight from the bytes.
 *
 * A batch is decoded in one forward pass with no msgpack object tree: each
 * trade's values go from the wire into an int64 slot array, through
 * kind_check, into store_batch_add. The pieces that make this cheap:
 *
 *  - map keys of up to 7 bytes (every declared slot name) are matched as one
 *    64-bit word (bytes + length) against a per-kind table, not by strcmp;
 *  - the trade's kind must be known before its keys can be judged, so the
 *    symbol is found first; when "sym" is the first key (what clients send)
 *    that costs nothing extra, otherwise the keys before it are skipped once;
 *  - only a batch that declares its kind (the 4th element, after the trades)
 *    pays for a skip over the trades to read that name first.
 *
 * Every read is bounds-checked, so any byte string is safe to decode, but
 * the input is meant to be one framed message (proto_frame): bytes that end
 * early or run past the value are MALFORMED.
 *
 * Rule order within a trade (the reference decoder in the tests applies the
 * same; PROTOCOL.md states it): the symbol first (MISSING_FIELD, WRONG_TYPE),
 * which fixes the kind; then keys / positions in wire order, each either
 * UNKNOWN_FIELD, duplicate (BAD_VALUE), WRONG_TYPE or BAD_VALUE; then
 * required slots (MISSING_FIELD, first in slot order) and ranges; then the
 * store's symbol checks.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fixp.h"
#include "proto.h"

/* ---- reading msgpack ---------------------------------------------------- */

enum { T_NIL, T_BOOL, T_UINT, T_NEG, T_F32, T_F64, T_STR, T_BIN, T_EXT, T_ARR, T_MAP };

static const char *const type_names[] = {"nil",    "bool",   "integer", "integer",
                                         "float",  "float",  "string",  "binary",
                                         "extension", "array", "map"};

/* One decoded msgpack header. Integers are normalised: T_UINT for any
 * non-negative value whatever its encoding (as msgpack-c does), T_NEG for
 * negative ones. For str/bin/ext the body has been consumed (data, n); for
 * arrays and maps only the header (n = element or pair count). */
typedef struct hdr {
    uint8_t t;
    int8_t ext;
    uint32_t n;
    uint64_t u;
    int64_t i;
    double f;
    const uint8_t *data;
} hdr;

/* Key codes: bytes of a key of <= 7 bytes in a little-endian word, its length
 * in the top byte. Longer keys never match a code and go the slow way. */
#define KEY_LONG UINT64_MAX
#define KEY_NONE (UINT64_MAX - 1)

typedef struct dec {
    const uint8_t *p, *end;
    const proto_limits *lim;
    store *s;
    store_batch *b;
    proto_error *err;
    const kind *declared; /* the batch's kind, or NULL */
    int64_t idx;          /* trade being decoded */
    uint64_t sym_code;
    uint64_t keys[KIND_MAX][KIND_MAX_FIELDS];
} dec;

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint64_t be64(const uint8_t *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }

static int vfail(proto_error *err, proto_code code, int64_t index, const char *fmt, va_list ap)
{
    err->code = code;
    err->index = index;
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    return -1;
}

static int fail(proto_error *err, proto_code code, int64_t index, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(err, code, index, fmt, ap);
    va_end(ap);
    return -1;
}

/* A trade-level error: "trade 3: px: <why>". */
static int tfail(dec *d, proto_code code, const char *field, const char *fmt, ...)
{
    char why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (field)
        return fail(d->err, code, d->idx, "trade %lld: %s: %s", (long long)d->idx, field, why);
    return fail(d->err, code, d->idx, "trade %lld: %s", (long long)d->idx, why);
}

static int truncated(proto_error *err)
{
    return fail(err, PROTO_E_MALFORMED, -1, "the message ends inside a msgpack value");
}

/* Read one header at *pp (< end). Returns 0, or -1 with err set when the
 * bytes end early or hold the never-used byte 0xc1. */
static inline int rd_hdr(const uint8_t **pp, const uint8_t *end, hdr *h, proto_error *err)
{
    const uint8_t *p = *pp;
    if (p >= end)
        return truncated(err);
    const uint8_t c = *p++;
    size_t avail = (size_t)(end - p);
    uint32_t len;
    if (c <= 0x7f) {
        h->t = T_UINT, h->u = c;
    } else if (c >= 0xe0) {
        h->t = T_NEG, h->i = (int8_t)c;
    } else if (c >= 0xa0 && c <= 0xbf) {
        len = c & 0x1f;
        h->t = T_STR;
        goto body;
    } else if (c <= 0x8f) {
        h->t = T_MAP, h->n = c & 0x0f;
    } else if (c <= 0x9f) {
        h->t = T_ARR, h->n = c & 0x0f;
    } else {
        /* Bytes after the type byte that the header needs. */
        static const uint8_t need[32] = {0, 0, 0, 0, 1, 2, 4, 2, 3, 5, 4, 8, 1, 2, 4, 8,
                                         1, 2, 4, 8, 2, 3, 5, 9, 17, 1, 2, 4, 2, 4, 2, 4};
        if (c == 0xc1)
            return fail(err, PROTO_E_MALFORMED, -1, "invalid msgpack byte 0xc1");
        if (avail < need[c - 0xc0])
            return truncated(err);
        switch (c) {
        case 0xc0: h->t = T_NIL; break;
        case 0xc2: case 0xc3: h->t = T_BOOL, h->u = c & 1; break;
        case 0xc4: h->t = T_BIN, len = p[0], p += 1; goto body;
        case 0xc5: h->t = T_BIN, len = be16(p), p += 2; goto body;
        case 0xc6: h->t = T_BIN, len = be32(p), p += 4; goto body;
        case 0xc7: h->t = T_EXT, len = p[0], h->ext = (int8_t)p[1], p += 2; goto body;
        case 0xc8: h->t = T_EXT, len = be16(p), h->ext = (int8_t)p[2], p += 3; goto body;
        case 0xc9: h->t = T_EXT, len = be32(p), h->ext = (int8_t)p[4], p += 5; goto body;
        case 0xca: {
            uint32_t w = be32(p);
            float fl;
            memcpy(&fl, &w, 4);
            h->t = T_F32, h->f = fl, p += 4;
            break;
        }
        case 0xcb: {
            uint64_t w = be64(p);
            memcpy(&h->f, &w, 8);
            h->t = T_F64, p += 8;
            break;
        }
        case 0xcc: h->t = T_UINT, h->u = p[0], p += 1; break;
        case 0xcd: h->t = T_UINT, h->u = be16(p), p += 2; break;
        case 0xce: h->t = T_UINT, h->u = be32(p), p += 4; break;
        case 0xcf: h->t = T_UINT, h->u = be64(p), p += 8; break;
        case 0xd0: h->i = (int8_t)p[0], p += 1; goto sint;
        case 0xd1: h->i = (int16_t)be16(p), p += 2; goto sint;
        case 0xd2: h->i = (int32_t)be32(p), p += 4; goto sint;
        case 0xd3: h->i = (int64_t)be64(p), p += 8; goto sint;
        case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
            h->t = T_EXT, len = 1u << (c - 0xd4), h->ext = (int8_t)p[0], p += 1;
            goto body;
        case 0xd9: h->t = T_STR, len = p[0], p += 1; goto body;
        case 0xda: h->t = T_STR, len = be16(p), p += 2; goto body;
        case 0xdb: h->t = T_STR, len = be32(p), p += 4; goto body;
        case 0xdc: h->t = T_ARR, h->n = be16(p), p += 2; break;
        case 0xdd: h->t = T_ARR, h->n = be32(p), p += 4; break;
        case 0xde: h->t = T_MAP, h->n = be16(p), p += 2; break;
        case 0xdf: h->t = T_MAP, h->n = be32(p), p += 4; break;
        }
    }
    *pp = p;
    return 0;
sint:
    if (h->i >= 0)
        h->t = T_UINT, h->u = (uint64_t)h->i;
    else
        h->t = T_NEG;
    *pp = p;
    return 0;
body:
    if ((size_t)(end - p) < len)
        return truncated(err);
    h->n = len;
    h->data = p;
    *pp = p + len;
    return 0;
}

/* Skip `todo` whole values without recursion: containers add their
 * elements to the count. Each element takes a byte, so a count beyond the
 * bytes left is already a truncation. */
static int skip(const uint8_t **pp, const uint8_t *end, uint64_t todo, proto_error *err)
{
    hdr h;
    while (todo) {
        if (rd_hdr(pp, end, &h, err))
            return -1;
        todo--;
        if (h.t == T_ARR)
            todo += h.n;
        else if (h.t == T_MAP)
            todo += 2 * (uint64_t)h.n;
        if (todo > (uint64_t)(end - *pp))
            return truncated(err);
    }
    return 0;
}

static inline uint64_t key_code(const uint8_t *s, uint32_t len, const uint8_t *end)
{
    uint64_t w = 0;
    if (len > 7)
        return KEY_LONG;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (end - s >= 8) { /* one load, then drop the bytes past the key */
        memcpy(&w, s, 8);
        w &= len ? UINT64_MAX >> (64 - 8 * len) : 0;
        return w | (uint64_t)len << 56;
    }
#endif
    for (uint32_t i = 0; i < len; i++)
        w |= (uint64_t)s[i] << (8 * i);
    return w | (uint64_t)len << 56;
}

static void dec_init(dec *d, const uint8_t *msg, size_t len)
{
    d->p = msg;
    d->end = msg + len;
    d->sym_code = key_code((const uint8_t *)"sym", 3, (const uint8_t *)"sym");
    for (unsigned k = 0; k < kind_count(); k++) {
        const kind *kd = kind_by_id(k);
        for (int i = 0; i < kd->nfields; i++) {
            const kind_field *f = &kd->fields[i];
            d->keys[k][i] = f->keylen > 7 ? KEY_NONE
                                          : key_code((const uint8_t *)f->key, f->keylen,
                                                     (const uint8_t *)f->key + f->keylen);
        }
    }
}

/* ---- values ------------------------------------------------------------- */

static int wrong_type(dec *d, const kind_field *f, const hdr *h, const char *want)
{
    return tfail(d, PROTO_E_WRONG_TYPE, f->key, "expected %s, got %s", want, type_names[h->t]);
}

/* msgpack timestamp extension (type -1) to ns since the epoch. */
static int ts_from_ext(dec *d, const kind_field *f, const hdr *h, int64_t *out)
{
    uint64_t sec;
    uint32_t nsec;
    if (h->n == 4) {
        *out = (int64_t)be32(h->data) * 1000000000;
        return 1;
    }
    if (h->n == 8) {
        uint64_t w = be64(h->data);
        nsec = (uint32_t)(w >> 34);
        sec = w & ((1ull << 34) - 1);
    } else if (h->n == 12) {
        int64_t s = (int64_t)be64(h->data + 4);
        nsec = be32(h->data);
        if (s < 0)
            return tfail(d, PROTO_E_BAD_VALUE, f->key, "timestamp before 1970");
        sec = (uint64_t)s;
    } else {
        return tfail(d, PROTO_E_BAD_VALUE, f->key,
                     "timestamp extension of %u bytes (must be 4, 8 or 12)", h->n);
    }
    if (nsec > 999999999)
        return tfail(d, PROTO_E_BAD_VALUE, f->key, "timestamp nanoseconds above 999999999");
    if (sec > (uint64_t)(INT64_MAX - nsec) / 1000000000)
        return tfail(d, PROTO_E_BAD_VALUE, f->key, "timestamp beyond the int64 ns range");
    *out = (int64_t)(sec * 1000000000 + nsec);
    return 1;
}

/* Decode one slot value. Returns 1 (present), 0 (nil: absent) or -1. */
static inline int dec_value(dec *d, const kind_field *f, int64_t *out)
{
    hdr h;
    int rc;
    /* The common encodings first, without the general header reader. */
    const uint8_t c = d->p < d->end ? *d->p : 0xc1;
    if (c <= 0x7f && f->type != KIND_SIDE && f->type != KIND_RIGHT) {
        d->p++;
        *out = f->type == KIND_FIX ? (int64_t)c * FIXP_SCALE : (int64_t)c;
        return 1;
    }
    if (rd_hdr(&d->p, d->end, &h, d->err))
        return -1;
    if (h.t == T_NIL)
        return 0;
    switch (f->type) {
    case KIND_FIX:
        if (h.t == T_F64 || h.t == T_F32)
            rc = fixp_from_double(h.f, out);
        else if (h.t == T_UINT)
            rc = fixp_from_u64(h.u, out);
        else if (h.t == T_STR)
            rc = fixp_from_str((const char *)h.data, h.n, out);
        else if (h.t == T_NEG)
            rc = FIXP_ENEG;
        else
            return wrong_type(d, f, &h, "a number or a decimal string");
        if (rc != FIXP_OK)
            return tfail(d, PROTO_E_BAD_VALUE, f->key, "%s", fixp_strerror(rc));
        return 1;
    case KIND_TS:
        if (h.t == T_UINT) {
            if (h.u > INT64_MAX)
                return tfail(d, PROTO_E_BAD_VALUE, f->key, "beyond the int64 ns range");
            *out = (int64_t)h.u;
            return 1;
        }
        if (h.t == T_NEG)
            return tfail(d, PROTO_E_BAD_VALUE, f->key, "negative timestamp");
        if (h.t == T_EXT && h.ext == -1)
            return ts_from_ext(d, f, &h, out);
        return wrong_type(d, f, &h, "integer ns or a msgpack timestamp");
    case KIND_U64:
        if (h.t == T_UINT) {
            *out = (int64_t)h.u; /* above INT64_MAX: the bit pattern, see kind.h */
            return 1;
        }
        if (h.t == T_NEG)
            return tfail(d, PROTO_E_BAD_VALUE, f->key, "negative");
        return wrong_type(d, f, &h, "a non-negative integer");
    case KIND_SIDE:
    case KIND_RIGHT:
        if (h.t != T_STR)
            return wrong_type(d, f, &h, "a string");
        if (kind_enum_parse((kind_type)f->type, (const char *)h.data, h.n, out) != KIND_OK)
            return tfail(d, PROTO_E_BAD_VALUE, f->key, "\"%.*s\" is not one of %s",
                         (int)(h.n > 16 ? 16 : h.n), (const char *)h.data,
                         f->type == KIND_SIDE ? "B, S, buy, sell, \"\"" : "C, P, call, put");
        return 1;
    }
    return tfail(d, PROTO_E_BAD_VALUE, f->key, "slot of unknown type");
}

/* ---- trades ------------------------------------------------------------- */

static const kind *trade_kind(dec *d, const uint8_t *sym, uint32_t symlen)
{
    if (d->declared)
        return d->declared;
    const kind *k = store_symbol_kind(d->s, (const char *)sym, symlen);
    return k ? k : &kind_trade;
}

/* Finish a trade: required slots and ranges, then stage it. */
static int stage(dec *d, const kind *k, int64_t *v, uint32_t present, const uint8_t *sym,
                 uint32_t symlen)
{
    int bad = 0;
    int rc = kind_check(k, v, present, &bad);
    if (rc == KIND_EMISSING)
        return tfail(d, PROTO_E_MISSING_FIELD, NULL, "missing %s", k->fields[bad].key);
    if (rc != KIND_OK)
        return tfail(d, PROTO_E_BAD_VALUE, k->fields[bad].key, "out of range for its %u-bit slot",
                     k->fields[bad].bits);
    rc = store_batch_add(d->s, d->b, (const char *)sym, symlen, k, v);
    if (rc == STORE_OK)
        return 0;
    int n = (int)(symlen > 40 ? 40 : symlen);
    switch (rc) {
    case STORE_ESYMBOL:
        return tfail(d, PROTO_E_BAD_SYMBOL, "sym", "not 1-%d bytes of UTF-8", STORE_SYM_MAX);
    case STORE_EKIND: {
        const kind *have = store_symbol_kind(d->s, (const char *)sym, symlen);
        return tfail(d, PROTO_E_KIND_MISMATCH, NULL, "symbol %.*s holds kind %s, not %s", n,
                     (const char *)sym, have ? have->name : "?", k->name);
    }
    case STORE_ESYMLIMIT:
        return tfail(d, PROTO_E_SYMBOL_LIMIT, NULL, "symbol %.*s would exceed the symbol limit",
                     n, (const char *)sym);
    default:
        return tfail(d, PROTO_E_STORE_FULL, NULL, "%s", store_strerror(rc));
    }
}

static int dec_map_trade(dec *d, uint32_t npairs)
{
    int64_t v[KIND_MAX_FIELDS];
    uint32_t present = 0, seen = 0, j = 0;
    const uint8_t *first = d->p, *symkey = NULL, *sym = NULL;
    uint32_t symlen = 0;
    hdr h;

    /* The symbol first: it decides the kind that judges every other key. */
    for (; j < npairs; j++) {
        const uint8_t *kp = d->p;
        if (rd_hdr(&d->p, d->end, &h, d->err))
            return -1;
        if (h.t == T_STR && h.n == 3 && memcmp(h.data, "sym", 3) == 0) {
            symkey = kp;
            if (rd_hdr(&d->p, d->end, &h, d->err))
                return -1;
            if (h.t != T_STR)
                return tfail(d, PROTO_E_WRONG_TYPE, "sym", "expected a string, got %s",
                             type_names[h.t]);
            sym = h.data;
            symlen = h.n;
            break;
        }
        uint64_t rest = 1 + (h.t == T_ARR ? h.n : h.t == T_MAP ? 2 * (uint64_t)h.n : 0);
        if (skip(&d->p, d->end, rest, d->err))
            return -1;
    }
    if (!symkey)
        return tfail(d, PROTO_E_MISSING_FIELD, NULL, "missing sym");
    const kind *k = trade_kind(d, sym, symlen);
    const uint64_t *codes = d->keys[k->id];
    const int nf = k->nfields;

    /* Then every key in wire order. When "sym" led, carry on after it. */
    if (symkey == first)
        j = 1;
    else
        d->p = first, j = 0;
    for (; j < npairs; j++) {
        const uint8_t *kp = d->p;
        const uint8_t *key;
        uint32_t klen;
        uint64_t code;
        if (kp < d->end && (*kp & 0xe0) == 0xa0 && (*kp & 0x1f) < (uint32_t)(d->end - kp)) {
            klen = *kp & 0x1f; /* fixstr: nearly every key */
            key = kp + 1;
            d->p = key + klen;
        } else {
            if (rd_hdr(&d->p, d->end, &h, d->err))
                return -1;
            if (h.t != T_STR)
                return tfail(d, PROTO_E_WRONG_TYPE, NULL, "map key is a %s, not a string",
                             type_names[h.t]);
            key = h.data;
            klen = h.n;
        }
        code = key_code(key, klen, d->end);
        int fi = -1;
        for (int i = 0; i < nf; i++)
            if (codes[i] == code) {
                fi = i;
                break;
            }
        if (fi < 0) {
            if (code == d->sym_code) {
                if (kp != symkey)
                    return tfail(d, PROTO_E_BAD_VALUE, "sym", "duplicate key");
                if (skip(&d->p, d->end, 1, d->err))
                    return -1;
                continue;
            }
            if (code == KEY_LONG || code == KEY_NONE)
                fi = kind_field_index(k, (const char *)key, klen);
            if (fi < 0) {
                if (d->lim->ignore_unknown) {
                    if (skip(&d->p, d->end, 1, d->err))
                        return -1;
                    continue;
                }
                return tfail(d, PROTO_E_UNKNOWN_FIELD, NULL, "kind %s has no field \"%.*s\"",
                             k->name, (int)(klen > 40 ? 40 : klen), (const char *)key);
            }
        }
        if (seen >> fi & 1)
            return tfail(d, PROTO_E_BAD_VALUE, k->fields[fi].key, "duplicate key");
        seen |= 1u << fi;
        int r = dec_value(d, &k->fields[fi], &v[fi]);
        if (r < 0)
            return -1;
        present |= (uint32_t)r << fi;
    }
    return stage(d, k, v, present, sym, symlen);
}

static int dec_array_trade(dec *d, uint32_t n)
{
    int64_t v[KIND_MAX_FIELDS];
    uint32_t present = 0;
    hdr h;
    if (n == 0)
        return tfail(d, PROTO_E_MISSING_FIELD, NULL, "missing sym (empty array)");
    if (rd_hdr(&d->p, d->end, &h, d->err))
        return -1;
    if (h.t != T_STR)
        return tfail(d, PROTO_E_WRONG_TYPE, "sym", "expected a string, got %s", type_names[h.t]);
    const uint8_t *sym = h.data;
    uint32_t symlen = h.n;
    const kind *k = trade_kind(d, sym, symlen);
    uint32_t nv = n - 1, nf = k->nfields;
    if (nv > nf && !d->lim->ignore_unknown)
        return tfail(d, PROTO_E_UNKNOWN_FIELD, NULL, "%u values after sym, kind %s has %u slots",
                     nv, k->name, nf);
    uint32_t m = nv < nf ? nv : nf;
    for (uint32_t i = 0; i < m; i++) {
        int r = dec_value(d, &k->fields[i], &v[i]);
        if (r < 0)
            return -1;
        present |= (uint32_t)r << i;
    }
    if (nv > nf && skip(&d->p, d->end, nv - nf, d->err))
        return -1;
    return stage(d, k, v, present, sym, symlen);
}

static int dec_trade(dec *d)
{
    const uint8_t *p = d->p;
    /* fixmap / fixarray inline; the general reader for the rest. */
    if (p < d->end && (*p & 0xf0) == 0x80) {
        d->p++;
        return dec_map_trade(d, *p & 0x0f);
    }
    hdr h;
    if (rd_hdr(&d->p, d->end, &h, d->err))
        return -1;
    if (h.t == T_MAP)
        return dec_map_trade(d, h.n);
    if (h.t == T_ARR)
        return dec_array_trade(d, h.n);
    return tfail(d, PROTO_E_WRONG_TYPE, NULL, "a trade is a map or an array, not a %s",
                 type_names[h.t]);
}

/* ---- messages ----------------------------------------------------------- */

static int is_str(const hdr *h, const char *s)
{
    size_t n = strlen(s);
    return h->t == T_STR && h->n == n && memcmp(h->data, s, n) == 0;
}

int proto_decode_batch(const uint8_t *msg, size_t len, const proto_limits *lim, store *s,
                       store_batch *b, uint64_t *seq, proto_error *err)
{
    dec d;
    hdr h;
    uint32_t ntrades;
    *seq = 0;
    store_batch_reset(b);
    dec_init(&d, msg, len);
    d.lim = lim, d.s = s, d.b = b, d.err = err, d.declared = NULL, d.idx = -1;

    if (rd_hdr(&d.p, d.end, &h, err))
        goto fail;
    if (h.t != T_ARR || h.n < 3 || h.n > 4) {
        fail(err, PROTO_E_BAD_MESSAGE, -1, "a batch is [\"T\", seq, [trades...], kind?]");
        goto fail;
    }
    uint32_t nelem = h.n;
    if (rd_hdr(&d.p, d.end, &h, err))
        goto fail;
    if (!is_str(&h, "T")) {
        fail(err, PROTO_E_BAD_MESSAGE, -1, "not a T message");
        goto fail;
    }
    if (rd_hdr(&d.p, d.end, &h, err))
        goto fail;
    if (h.t != T_UINT || h.u == 0) {
        fail(err, PROTO_E_BAD_MESSAGE, -1, "seq must be a positive integer");
        goto fail;
    }
    *seq = h.u;
    if (rd_hdr(&d.p, d.end, &h, err))
        goto fail;
    if (h.t != T_ARR) {
        fail(err, PROTO_E_BAD_MESSAGE, -1, "the trades must be an array, not a %s",
             type_names[h.t]);
        goto fail;
    }
    ntrades = h.n;
    if (ntrades > lim->max_batch) {
        fail(err, PROTO_E_TOO_LARGE, -1, "%u trades in a batch, the limit is %u", ntrades,
             lim->max_batch);
        goto fail;
    }
    if (nelem == 4) {
        /* The kind name follows the trades, and it decides how they read. */
        const uint8_t *trades = d.p;
        if (skip(&d.p, d.end, ntrades, err) || rd_hdr(&d.p, d.end, &h, err))
            goto fail;
        if (h.t == T_STR) {
            d.declared = kind_by_name((const char *)h.data, h.n);
            if (!d.declared) {
                fail(err, PROTO_E_UNKNOWN_KIND, -1, "unknown kind \"%.*s\"",
                     (int)(h.n > 40 ? 40 : h.n), (const char *)h.data);
                goto fail;
            }
        } else if (h.t != T_NIL) {
            fail(err, PROTO_E_BAD_MESSAGE, -1, "the kind must be a string, not a %s",
                 type_names[h.t]);
            goto fail;
        }
        if (d.p != d.end)
            goto trailing;
        d.end = d.p;
        d.p = trades;
    }
    for (uint32_t i = 0; i < ntrades; i++) {
        d.idx = i;
        if (dec_trade(&d))
            goto fail;
    }
    if (nelem == 4)
        skip(&d.p, d.end, 1, err); /* the kind, already checked */
    if (d.p != d.end)
        goto trailing;
    return 0;

trailing:
    fail(err, PROTO_E_MALFORMED, -1, "%zu bytes after the message's value",
         (size_t)(d.end - d.p));
fail:
    store_batch_reset(b);
    return -1;
}

int proto_decode_hello(const uint8_t *msg, size_t len, proto_hello *out, proto_error *err)
{
    const uint8_t *p = msg, *end = msg + len;
    hdr h;
    int have_client = 0;
    memset(out, 0, sizeof(*out));
    if (rd_hdr(&p, end, &h, err))
        return -1;
    if (h.t != T_ARR || h.n < 1)
        return fail(err, PROTO_E_NOT_HELLO, -1, "the first message must be HELLO");
    uint32_t nelem = h.n;
    if (rd_hdr(&p, end, &h, err))
        return -1;
    if (!is_str(&h, "HELLO"))
        return fail(err, PROTO_E_NOT_HELLO, -1, "the first message must be HELLO");
    if (nelem != 2)
        return fail(err, PROTO_E_BAD_MESSAGE, -1, "HELLO is [\"HELLO\", {\"client\": name}]");
    if (rd_hdr(&p, end, &h, err))
        return -1;
    if (h.t != T_MAP)
        return fail(err, PROTO_E_BAD_MESSAGE, -1, "HELLO's argument must be a map");
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
            return fail(err, PROTO_E_BAD_MESSAGE, -1, "HELLO %s must be a string",
                        is_client ? "client" : "token");
        /* NUL inside would truncate the name or token as a C string. */
        if (memchr(v.data, 0, v.n))
            return fail(err, PROTO_E_BAD_MESSAGE, -1, "HELLO %s contains a NUL byte",
                        is_client ? "client" : "token");
        if (is_client) {
            if (v.n < 1 || v.n > PROTO_NAME_MAX)
                return fail(err, PROTO_E_BAD_MESSAGE, -1, "client name must be 1-%d bytes",
                            PROTO_NAME_MAX);
            memcpy(out->client, v.data, v.n);
            out->client[v.n] = 0;
            have_client = 1;
        } else {
            if (v.n > PROTO_TOKEN_MAX)
                return fail(err, PROTO_E_UNAUTHORIZED, -1, "token longer than %d bytes",
                            PROTO_TOKEN_MAX);
            memcpy(out->token, v.data, v.n);
            out->token[v.n] = 0;
            out->has_token = 1;
        }
    }
    if (!have_client)
        return fail(err, PROTO_E_BAD_MESSAGE, -1, "HELLO needs {\"client\": name}");
    if (p != end)
        return fail(err, PROTO_E_MALFORMED, -1, "bytes after the HELLO value");
    return 0;
}
