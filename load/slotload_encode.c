/* slotload_encode — the W1 workload as pre-encoded msgpack batch bodies.
 *
 * Encoding happens before the clock starts, so the generator is never the
 * bottleneck: each body is the msgpack array of a batch's trades, and all
 * bodies sit back to back in one buffer the writes point into. */
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "fixp.h"
#include "kind.h"
#include "slotload.h"
#include "workload.h"

int sl_buf_write(void *data, const char *p, size_t n)
{
    sl_buf *b = data;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 20;
        while (cap < b->len + n)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return -1;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void sl_pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* One trade in the wire form the brief fixes: px as exact decimal text,
 * qty as an integer count of whole units, side "B"/"S". */
static void sl_pack_trade(msgpack_packer *pk, const workload_trade *t, const char *sym,
                          size_t symlen, int array)
{
    char px[FIXP_STRLEN];
    size_t pxlen = fixp_format(t->px, px);
    const char *side = t->side == KIND_SIDE_SELL ? "S" : "B";
    int64_t qty = t->qty / FIXP_SCALE;
    if (array) {
        msgpack_pack_array(pk, 6);
        sl_pack_str(pk, sym, symlen);
        msgpack_pack_int64(pk, t->ts);
        sl_pack_str(pk, px, pxlen);
        msgpack_pack_int64(pk, qty);
        sl_pack_str(pk, side, 1);
        msgpack_pack_uint64(pk, t->id);
        return;
    }
    msgpack_pack_map(pk, 6);
    sl_pack_str(pk, "sym", 3);
    sl_pack_str(pk, sym, symlen);
    sl_pack_str(pk, "ts", 2);
    msgpack_pack_int64(pk, t->ts);
    sl_pack_str(pk, "px", 2);
    sl_pack_str(pk, px, pxlen);
    sl_pack_str(pk, "qty", 3);
    msgpack_pack_int64(pk, qty);
    sl_pack_str(pk, "side", 4);
    sl_pack_str(pk, side, 1);
    sl_pack_str(pk, "id", 2);
    msgpack_pack_uint64(pk, t->id);
}

/* Encode `trades` workload trades into batches of cfg->batch. */
int sl_encode(const sl_config *cfg, uint64_t trades, sl_batches *bt)
{
    workload w;
    if (workload_init(&w, cfg->symbols, cfg->zipf, cfg->seed) != 0)
        return -1;
    char(*names)[16] = malloc((size_t)cfg->symbols * sizeof *names);
    uint8_t *lens = malloc(cfg->symbols);
    bt->n = (trades + cfg->batch - 1) / cfg->batch;
    bt->off = malloc((bt->n + 1) * sizeof *bt->off);
    bt->ntrades = malloc(bt->n * sizeof *bt->ntrades);
    bt->buf.cap = (size_t)trades * (cfg->form_array ? 40 : 64) + 4096;
    bt->buf.data = malloc(bt->buf.cap);
    if (!names || !lens || !bt->off || !bt->ntrades || !bt->buf.data) {
        free(names);
        free(lens);
        workload_free(&w);
        return -1;
    }
    for (uint32_t s = 0; s < cfg->symbols; s++)
        lens[s] = (uint8_t)workload_symbol(s, names[s]);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &bt->buf, sl_buf_write);
    uint64_t left = trades;
    for (uint64_t i = 0; i < bt->n; i++) {
        uint32_t n = left < cfg->batch ? (uint32_t)left : cfg->batch;
        bt->off[i] = bt->buf.len;
        bt->ntrades[i] = n;
        msgpack_pack_array(&pk, n);
        for (uint32_t j = 0; j < n; j++) {
            workload_trade t;
            workload_next(&w, &t);
            sl_pack_trade(&pk, &t, names[t.sym], lens[t.sym], cfg->form_array);
        }
        left -= n;
    }
    bt->off[bt->n] = bt->buf.len;
    free(names);
    free(lens);
    workload_free(&w);
    return bt->buf.data ? 0 : -1;
}

void sl_batches_free(sl_batches *bt)
{
    free(bt->buf.data);
    free(bt->off);
    free(bt->ntrades);
}

