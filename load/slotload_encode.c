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
#include "workload_pack.h"

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

/* Encode `trades` workload trades into batches of cfg->batch. */
int sl_encode(const sl_config *cfg, uint64_t trades, sl_batches *bt)
{
    workload w;
    if (workload_init(&w, cfg->symbols, cfg->zipf, cfg->seed) != 0)
        return -1;
    bt->n = (trades + cfg->batch - 1) / cfg->batch;
    bt->off = malloc((bt->n + 1) * sizeof *bt->off);
    bt->ntrades = malloc(bt->n * sizeof *bt->ntrades);
    bt->buf.cap = (size_t)trades * (cfg->form_array ? 40 : 64) + 4096;
    bt->buf.data = malloc(bt->buf.cap);
    if (!bt->off || !bt->ntrades || !bt->buf.data) {
        workload_free(&w);
        return -1;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, &bt->buf, sl_buf_write);
    uint64_t left = trades;
    for (uint64_t i = 0; i < bt->n; i++) {
        uint32_t n = left < cfg->batch ? (uint32_t)left : cfg->batch;
        bt->off[i] = bt->buf.len;
        bt->ntrades[i] = n;
        workload_pack_trades(&pk, &w, n, (cfg->form_array ? WORKLOAD_ARRAY : 0) |
                                             (cfg->px_float ? WORKLOAD_PX_FLOAT : 0));
        left -= n;
    }
    bt->off[bt->n] = bt->buf.len;
    workload_free(&w);
    return bt->buf.data ? 0 : -1;
}

void sl_batches_free(sl_batches *bt)
{
    free(bt->buf.data);
    free(bt->off);
    free(bt->ntrades);
}


/* ---- export for the peer benchmarks --------------------------------------- */

/* RESP bulk string: $len\r\nbytes\r\n */
static void sl_resp_bulk(FILE *f, const char *s, size_t n)
{
    fprintf(f, "$%zu\r\n", n);
    fwrite(s, 1, n, f);
    fputs("\r\n", f);
}

/* The same trades as XADD commands for `redis-cli --pipe`: one stream per
 * symbol, fields ts px qty side id, entry ids chosen by Redis ("*"). */
static int sl_export_resp(const sl_config *cfg, uint64_t trades, FILE *f)
{
    workload w;
    if (workload_init(&w, cfg->symbols, cfg->zipf, cfg->seed) != 0)
        return -1;
    for (uint64_t i = 0; i < trades; i++) {
        workload_trade t;
        char sym[16], px[FIXP_STRLEN], num[3][24];
        workload_next(&w, &t);
        int sl = workload_symbol(t.sym, sym);
        size_t pl = fixp_format(t.px, px);
        int tl = snprintf(num[0], sizeof num[0], "%lld", (long long)t.ts);
        int ql = snprintf(num[1], sizeof num[1], "%lld", (long long)(t.qty / FIXP_SCALE));
        int il = snprintf(num[2], sizeof num[2], "%llu", (unsigned long long)t.id);
        fputs("*13\r\n$4\r\nXADD\r\n", f);
        sl_resp_bulk(f, sym, (size_t)sl);
        fputs("$1\r\n*\r\n$2\r\nts\r\n", f);
        sl_resp_bulk(f, num[0], (size_t)tl);
        fputs("$2\r\npx\r\n", f);
        sl_resp_bulk(f, px, pl);
        fputs("$3\r\nqty\r\n", f);
        sl_resp_bulk(f, num[1], (size_t)ql);
        fputs("$4\r\nside\r\n", f);
        sl_resp_bulk(f, t.side == KIND_SIDE_SELL ? "S" : "B", 1);
        fputs("$2\r\nid\r\n", f);
        sl_resp_bulk(f, num[2], (size_t)il);
    }
    workload_free(&w);
    return 0;
}

int sl_export(const sl_config *cfg, const char *format, const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "wb");
    if (!f)
        return -1;
    static char vbuf[1 << 20];
    setvbuf(f, vbuf, _IOFBF, sizeof vbuf);
    int rc = -1;
    uint64_t trades = sl_pool_trades(cfg);
    if (strcmp(format, "resp") == 0) {
        rc = sl_export_resp(cfg, trades, f);
    } else if (strcmp(format, "msgpack") == 0) {
        /* The very batch bodies slotload sends: back-to-back msgpack arrays
         * of trades in --form, one per --batch trades. */
        sl_batches bt = {0};
        rc = sl_encode(cfg, trades, &bt);
        if (rc == 0 && fwrite(bt.buf.data, 1, bt.buf.len, f) != bt.buf.len)
            rc = -1;
        sl_batches_free(&bt);
    }
    if (fflush(f) != 0)
        rc = -1;
    if (f != stdout && fclose(f) != 0)
        rc = -1;
    return rc;
}
