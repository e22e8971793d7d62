/* The batch encoder: records straight into the open batch's buffer, by
 * hand for the typed trade (the hot path: no packer call per field, no
 * malloc per record), msgpack-c's packer for the generic records. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int slotd__buf_reserve(slotd__buf *b, size_t n)
{
    if (b->len + n <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d)
        return SLOTD_ENOMEM;
    b->data = d;
    b->cap = cap;
    return 0;
}

int slotd__buf_write(void *data, const char *p, size_t n)
{
    slotd__buf *b = data;
    if (slotd__buf_reserve(b, n) != 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static char *put_be(char *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        *p++ = (char)(v >> (i * 8));
    return p;
}

char *slotd__enc_uint(char *p, uint64_t v)
{
    if (v < 128) {
        *p++ = (char)v;
    } else if (v <= 0xff) {
        *p++ = (char)0xcc;
        *p++ = (char)v;
    } else if (v <= 0xffff) {
        *p++ = (char)0xcd;
        p = put_be(p, v, 2);
    } else if (v <= 0xffffffffu) {
        *p++ = (char)0xce;
        p = put_be(p, v, 4);
    } else {
        *p++ = (char)0xcf;
        p = put_be(p, v, 8);
    }
    return p;
}

char *slotd__enc_int(char *p, int64_t v)
{
    if (v >= 0)
        return slotd__enc_uint(p, (uint64_t)v);
    if (v >= -32) {
        *p++ = (char)(uint8_t)(int8_t)v; /* negative fixint */
        return p;
    }
    *p++ = (char)0xd3; /* int64: always valid */
    return put_be(p, (uint64_t)v, 8);
}

char *slotd__enc_str(char *p, const char *s, size_t n)
{
    if (n < 32) {
        *p++ = (char)(0xa0 | n);
    } else if (n <= 0xff) {
        *p++ = (char)0xd9;
        *p++ = (char)n;
    } else if (n <= 0xffff) {
        *p++ = (char)0xda;
        p = put_be(p, n, 2);
    } else {
        *p++ = (char)0xdb;
        p = put_be(p, n, 4);
    }
    memcpy(p, s, n);
    return p + n;
}

char *slotd__enc_double(char *p, double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    *p++ = (char)0xcb;
    return put_be(p, u, 8);
}

static char *enc_side(char *p, int side)
{
    if (side == 'B' || side == 'b')
        return slotd__enc_str(p, "B", 1);
    if (side == 'S' || side == 's')
        return slotd__enc_str(p, "S", 1);
    *p++ = (char)0xc0; /* nil: unknown */
    return p;
}

char *slotd__array_hdr_before(char *end, uint32_t n)
{
    if (n < 16) {
        end[-1] = (char)(0x90 | n);
        return end - 1;
    }
    if (n <= 0xffff) {
        put_be(end - 3, 0xdc0000u | n, 3);
        return end - 3;
    }
    end[-5] = (char)0xdd;
    put_be(end - 4, n, 4);
    return end - 5;
}

char *slotd__enc_trade(char *p, const char *sym, size_t symlen, int64_t ts, double px, double qty,
                       int side, uint64_t id)
{
    *p++ = (char)0x96;
    p = slotd__enc_str(p, sym, symlen);
    p = slotd__enc_int(p, ts);
    p = slotd__enc_double(p, px);
    p = slotd__enc_double(p, qty);
    p = enc_side(p, side);
    return slotd__enc_uint(p, id);
}

size_t slotd__fixed_text(char *p, int64_t v)
{
    /* The magnitude as unsigned: INT64_MIN has no positive int64. */
    uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    uint64_t whole = m / 100000000u, frac = m % 100000000u;
    char tmp[24];
    size_t n = 0, k = 0;
    if (v < 0)
        p[n++] = '-';
    do {
        tmp[k++] = (char)('0' + whole % 10);
        whole /= 10;
    } while (whole);
    while (k)
        p[n++] = tmp[--k];
    if (frac) {
        int digits = 8;
        while (frac % 10 == 0) { /* drop trailing zeros: "187.25" */
            frac /= 10;
            digits--;
        }
        p[n++] = '.';
        for (int i = digits - 1; i >= 0; i--) {
            p[n + (size_t)i] = (char)('0' + frac % 10);
            frac /= 10;
        }
        n += (size_t)digits;
    }
    return n;
}

char *slotd__enc_trade_fixed(char *p, const char *sym, size_t symlen, int64_t ts, int64_t px_e8,
                             int64_t qty_e8, int side, uint64_t id)
{
    char num[24];
    *p++ = (char)0x96;
    p = slotd__enc_str(p, sym, symlen);
    p = slotd__enc_int(p, ts);
    p = slotd__enc_str(p, num, slotd__fixed_text(num, px_e8));
    p = slotd__enc_str(p, num, slotd__fixed_text(num, qty_e8));
    p = enc_side(p, side);
    return slotd__enc_uint(p, id);
}

void slotd__pack_hello(msgpack_packer *pk, const char *client, const char *token)
{
    msgpack_pack_array(pk, 2);
    msgpack_pack_str_with_body(pk, "HELLO", 5);
    msgpack_pack_map(pk, token ? 2 : 1);
    msgpack_pack_str_with_body(pk, "client", 6);
    msgpack_pack_str_with_body(pk, client, strlen(client));
    if (token) {
        msgpack_pack_str_with_body(pk, "token", 5);
        msgpack_pack_str_with_body(pk, token, strlen(token));
    }
}
