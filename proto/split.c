/* split — a T message cut per partition (split.h). Two passes over the
 * trades: find each one's span and partition, then copy the spans into the
 * part of their partition behind a header written for its count. */
#include "split.h"

#include <stdlib.h>
#include <string.h>

#include "emit.h"
#include "mpread.h"

struct split_span {
    uint32_t off, len;
    int32_t part;
};

int split_init(split_out *o, int32_t nparts)
{
    memset(o, 0, sizeof *o);
    o->parts = calloc((size_t)nparts, sizeof *o->parts);
    o->counts = calloc((size_t)nparts, sizeof *o->counts);
    o->nparts = nparts;
    if (!o->parts || !o->counts) {
        split_free(o);
        return -1;
    }
    return 0;
}

void split_free(split_out *o)
{
    for (int32_t p = 0; o->parts && p < o->nparts; p++)
        proto_buf_free(&o->parts[p]);
    free(o->parts);
    free(o->counts);
    free(o->spans);
    memset(o, 0, sizeof *o);
}

/* A trade's symbol: the "sym" value of the map form, the first element of
 * the array form. Leaves *pp past the trade. */
static int trade_sym(const uint8_t **pp, const uint8_t *end, hdr *sym, uint32_t i, proto_error *err)
{
    hdr h, k;
    int found = 0;
    if (rd_hdr(pp, end, &h, err))
        return -1;
    if (h.t == T_ARR && h.n > 0) {
        if (rd_hdr(pp, end, sym, err))
            return -1;
        found = sym->t == T_STR;
        if (skip(pp, end, h.n - 1, err))
            return -1;
    } else if (h.t == T_MAP) {
        for (uint32_t j = 0; j < h.n; j++) {
            if (rd_hdr(pp, end, &k, err))
                return -1;
            if (k.t == T_ARR || k.t == T_MAP) { /* not a key the decoder takes; step over it */
                if (skip(pp, end, k.t == T_ARR ? k.n : 2 * (uint64_t)k.n, err) ||
                    skip(pp, end, 1, err))
                    return -1;
                continue;
            }
            if (!found && is_str(&k, "sym")) {
                if (rd_hdr(pp, end, sym, err))
                    return -1;
                if (sym->t == T_ARR || sym->t == T_MAP)
                    return proto_error_set(err, PROTO_E_MISSING_FIELD, i, "trade %u: no symbol", i);
                found = sym->t == T_STR;
                continue;
            }
            if (skip(pp, end, 1, err))
                return -1;
        }
    } else if (skip(pp, end, h.t == T_ARR ? h.n : 0, err)) {
        return -1;
    }
    if (!found)
        return proto_error_set(err, PROTO_E_MISSING_FIELD, i, "trade %u: no symbol", i);
    return 0;
}

static int put_u8(proto_buf *b, uint8_t c) { return proto_buf_append(b, &c, 1); }

/* A msgpack array header of n elements. */
static int put_array(proto_buf *b, uint32_t n)
{
    uint8_t h[5] = {0xdd, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    if (n < 16)
        return put_u8(b, (uint8_t)(0x90 | n));
    if (n < 65536) {
        h[2] = 0xdc;
        return proto_buf_append(b, h + 2, 3);
    }
    return proto_buf_append(b, h, 5);
}

int split_batch(const uint8_t *msg, size_t len, split_part_fn part, void *ctx, split_out *o,
                proto_error *err)
{
    const uint8_t *p = msg, *end = msg + len, *seq_at, *seq_end, *kind_at = NULL;
    hdr top, h, trades;
    for (int32_t i = 0; i < o->nparts; i++) {
        o->parts[i].len = 0;
        o->counts[i] = 0;
    }
    if (rd_hdr(&p, end, &top, err))
        return -1;
    if (top.t != T_ARR || top.n < 3 || top.n > 4 || rd_hdr(&p, end, &h, err) || !is_str(&h, "T"))
        return proto_error_set(err, PROTO_E_BAD_MESSAGE, -1, "not a T message");
    seq_at = p;
    if (skip(&p, end, 1, err))
        return -1;
    seq_end = p;
    if (rd_hdr(&p, end, &trades, err))
        return -1;
    if (trades.t != T_ARR)
        return proto_error_set(err, PROTO_E_BAD_MESSAGE, -1, "the trades are not an array");
    if (trades.n > o->spans_cap) {
        struct split_span *s = realloc(o->spans, trades.n * sizeof *s);
        if (!s)
            return proto_error_set(err, PROTO_E_TOO_LARGE, -1, "out of memory");
        o->spans = s;
        o->spans_cap = trades.n;
    }
    for (uint32_t i = 0; i < trades.n; i++) {
        const uint8_t *at = p;
        hdr sym;
        if (trade_sym(&p, end, &sym, i, err))
            return -1;
        int32_t q = part(ctx, (const char *)sym.data, sym.n);
        if (q < 0 || q >= o->nparts)
            return proto_error_set(err, PROTO_E_BAD_SYMBOL, i, "trade %u: no partition", i);
        o->spans[i] = (struct split_span){(uint32_t)(at - msg), (uint32_t)(p - at), q};
        o->counts[q]++;
    }
    if (top.n == 4) {
        kind_at = p;
        if (skip(&p, end, 1, err))
            return -1;
    }
    for (int32_t q = 0; q < o->nparts; q++) {
        proto_buf *b = &o->parts[q];
        if (!o->counts[q])
            continue;
        if (put_u8(b, (uint8_t)(0x90 | top.n)) || put_u8(b, 0xa1) || put_u8(b, 'T') ||
            proto_buf_append(b, seq_at, (size_t)(seq_end - seq_at)) || put_array(b, o->counts[q]))
            goto oom;
    }
    for (uint32_t i = 0; i < trades.n; i++)
        if (proto_buf_append(&o->parts[o->spans[i].part], msg + o->spans[i].off, o->spans[i].len))
            goto oom;
    for (int32_t q = 0; kind_at && q < o->nparts; q++)
        if (o->counts[q] && proto_buf_append(&o->parts[q], kind_at, (size_t)(p - kind_at)))
            goto oom;
    return 0;
oom:
    return proto_error_set(err, PROTO_E_TOO_LARGE, -1, "out of memory");
}
