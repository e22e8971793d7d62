/* mpread — bounds-checked reading of msgpack bytes, shared by the decoders
 * (decode.c: batches; proto.c: HELLO). Internal to proto/: not an API.
 *
 * Every read checks the end of the buffer, so any byte string is safe;
 * running out is MALFORMED ("the message ends inside a msgpack value").
 */
#ifndef SLOTD_MPREAD_H
#define SLOTD_MPREAD_H

#include <stdint.h>
#include <string.h>

#include "proto.h"

enum { T_NIL, T_BOOL, T_UINT, T_NEG, T_F32, T_F64, T_STR, T_BIN, T_EXT, T_ARR, T_MAP };

static inline const char *mp_type_name(unsigned t)
{
    static const char *const names[] = {"nil",   "bool",   "integer",   "integer", "float", "float",
                                        "string", "binary", "extension", "array",   "map"};
    return t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

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

static inline uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t be64(const uint8_t *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t w;
    memcpy(&w, p, 8);
    return __builtin_bswap64(w);
#else
    return (uint64_t)be32(p) << 32 | be32(p + 4);
#endif
}

/* The -1 is returned here, not proto_error_set's: inlined into the readers
 * it shows the compiler that a failed read does not return 0. */
static inline int truncated(proto_error *err)
{
    proto_error_set(err, PROTO_E_MALFORMED, -1, "the message ends inside a msgpack value");
    return -1;
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
        if (c == 0xc1) {
            proto_error_set(err, PROTO_E_MALFORMED, -1, "invalid msgpack byte 0xc1");
            return -1;
        }
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
        default: /* 0xc1 returned above; every other byte 0xc0-0xdf has a case */
            __builtin_unreachable();
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
static inline int skip(const uint8_t **pp, const uint8_t *end, uint64_t todo, proto_error *err)
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

/* 8 bytes as a little-endian word, whatever the host. */
static inline uint64_t le64(const uint8_t *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
#else
    uint64_t w = 0;
    for (int i = 0; i < 8; i++)
        w |= (uint64_t)p[i] << (8 * i);
    return w;
#endif
}

static inline int is_str(const hdr *h, const char *s)
{
    size_t n = strlen(s);
    return h->t == T_STR && h->n == n && memcmp(h->data, s, n) == 0;
}

#endif
