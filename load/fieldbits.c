/* fieldbits — how far compact pages are from the information the trades
 * carry: bits per field that a W1 page stores, beside an entropy-style
 * lower bound for the same field.
 *
 * The trades of each symbol are cut into pages of the store's full-page
 * size (a max slab page's 32-byte slots), and each page is planned by
 * cpage_plan_page exactly as the store seals it; the widths it picks,
 * weighted by records, are "page bits". The bound for a field is the
 * order-0 entropy (Shannon, of the empirical distribution over the whole
 * run) of whichever is smaller: the field's value, or its change from the
 * symbol's previous trade. That is what a coder that sees one field of one
 * trade at a time, with the previous trade of the symbol as context, can
 * reach at best. ts and id also get their joint entropy: in W1 both move
 * with the number of trades of other symbols in between, so a coder that
 * codes them together needs less than the two apart.
 *
 *   fieldbits [trades] [symbols] [seed]     defaults 1000000 1000 1
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpage.h"
#include "kind.h"
#include "slab.h"
#include "workload.h"

typedef struct sym_trades {
    trade *t;
    uint32_t n, cap;
} sym_trades;

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "fieldbits: out of memory\n");
        exit(1);
    }
    return q;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Order-0 entropy in bits of the n values at v (sorted in place). */
static double entropy(uint64_t *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_u64);
    double h = 0;
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && v[j] == v[i]; j++)
            ;
        double p = (double)(j - i) / (double)n;
        h -= p * log2(p);
    }
    return h;
}

/* A trade's field f as its 64-bit slot value. */
static uint64_t field(const trade *t, unsigned f)
{
    int64_t v[KIND_MAX_FIELDS];
    kind_trade.unpack(t, v);
    return (uint64_t)v[f];
}

int main(int argc, char **argv)
{
    uint64_t trades = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    uint32_t nsym = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 1000;
    uint64_t seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 1;
    const unsigned nf = TRADE_NFIELDS;
    const uint32_t per_page = (uint32_t)((slab_max_page() - SLAB_PAGE_HEADER) / sizeof(trade));
    if (trades == 0 || nsym == 0) {
        fprintf(stderr, "usage: fieldbits [trades] [symbols] [seed]\n");
        return 2;
    }

    workload w;
    if (workload_init(&w, nsym, 1.1, seed) != 0)
        return 1;
    sym_trades *s = calloc(nsym, sizeof *s);
    if (!s)
        return 1;
    for (uint64_t i = 0; i < trades; i++) {
        workload_trade wt;
        workload_next(&w, &wt);
        int64_t v[TRADE_NFIELDS] = {wt.ts, wt.px, wt.qty, wt.side, (int64_t)wt.id};
        sym_trades *st = &s[wt.sym];
        if (st->n == st->cap) {
            st->cap = st->cap ? st->cap * 2 : 64;
            st->t = xrealloc(st->t, st->cap * sizeof *st->t);
        }
        kind_trade.pack(&st->t[st->n++], v);
    }
    workload_free(&w);

    /* Page bits: every full page of every symbol, planned as sealed. */
    double bits[KIND_MAX_FIELDS] = {0}, abits[KIND_MAX_FIELDS] = {0};
    uint64_t paged = 0, body = 0, abody = 0, pages = 0, wide = 0;
    for (uint32_t y = 0; y < nsym; y++)
        for (uint32_t at = 0; at + per_page <= s[y].n; at += per_page) {
            cpage_plan pl, al;
            pages++;
            /* The byte-aligned variant is planned beside: a page that gains
             * bit-packed gains byte-aligned too on W1 (or is counted wide). */
            if (cpage_plan_page(&pl, &kind_trade, s[y].t + at, per_page, 0) < 0 ||
                cpage_plan_page(&al, &kind_trade, s[y].t + at, per_page, CPAGE_BYTE_ALIGN) < 0) {
                wide++;
                continue;
            }
            for (unsigned f = 0; f < nf; f++) {
                bits[f] += (double)pl.width[f] * per_page;
                abits[f] += (double)al.width[f] * per_page;
            }
            paged += per_page;
            body += pl.bytes;
            abody += al.bytes;
        }

    /* Bounds: per field, the entropy of the value and of the change from
     * the symbol's previous trade (the first trade of a symbol: its value). */
    uint64_t *val = xrealloc(NULL, trades * sizeof *val), *del = xrealloc(NULL, trades * sizeof *del);
    double hv[KIND_MAX_FIELDS], hd[KIND_MAX_FIELDS];
    for (unsigned f = 0; f < nf; f++) {
        size_t n = 0;
        for (uint32_t y = 0; y < nsym; y++)
            for (uint32_t i = 0; i < s[y].n; i++, n++) {
                val[n] = field(&s[y].t[i], f);
                del[n] = i ? val[n] - field(&s[y].t[i - 1], f) : val[n];
            }
        hv[f] = entropy(val, n);
        hd[f] = entropy(del, n);
    }
    /* ts and id together: their changes paired into one value (ts change
     * times a prime past the id change's range, plus the id change). */
    size_t n = 0;
    for (uint32_t y = 0; y < nsym; y++)
        for (uint32_t i = 0; i < s[y].n; i++, n++) {
            const trade *t = &s[y].t[i], *p = i ? t - 1 : NULL;
            uint64_t dts = p ? (uint64_t)(t->ts - p->ts) : t->ts;
            uint64_t did = p ? (uint64_t)(t->id - p->id) : t->id;
            del[n] = dts * 1000000007u + did;
        }
    double h_joint = entropy(del, n);

    printf("fieldbits: %" PRIu64 " W1 trades, %u symbols, seed %" PRIu64 "; pages of %u records "
           "(%" PRIu64 " full pages, %" PRIu64 " kept wide)\n\n",
           trades, nsym, seed, per_page, pages, wide);
    printf("%-6s %10s %10s %10s %10s %10s\n", "field", "page bits", "byte-align", "H(value)",
           "H(change)", "bound");
    double tot_page = 0, tot_align = 0, tot_bound = 0;
    for (unsigned f = 0; f < nf; f++) {
        double pb = paged ? bits[f] / (double)paged : 0, b = hv[f] < hd[f] ? hv[f] : hd[f];
        double ab = paged ? abits[f] / (double)paged : 0;
        tot_page += pb;
        tot_align += ab;
        tot_bound += b;
        printf("%-6s %10.2f %10.2f %10.2f %10.2f %10.2f\n", kind_trade.fields[f].key, pb, ab, hv[f],
               hd[f], b);
    }
    double b_ts = hv[TRADE_ts] < hd[TRADE_ts] ? hv[TRADE_ts] : hd[TRADE_ts];
    double b_id = hv[TRADE_id] < hd[TRADE_id] ? hv[TRADE_id] : hd[TRADE_id];
    printf("%-6s %10.2f %10.2f %10s %10s %10.2f\n", "total", tot_page, tot_align, "", "",
           tot_bound);
    printf("%-6s %10s %10s %10s %10.2f %10.2f   (ts and id coded together)\n", "joint", "", "", "",
           h_joint, tot_bound - b_ts - b_id + h_joint);
    double per_rec = paged ? (double)body * 8 / (double)paged : 0;
    printf("\npage body incl. its header and padding: %.2f bits = %.2f bytes a record "
           "(records %.2f, header %.2f); + the 32-byte slab page header: %.2f bytes\n",
           per_rec, per_rec / 8, tot_page / 8, (per_rec - tot_page) / 8,
           (per_rec + 8.0 * (double)SLAB_PAGE_HEADER / per_page) / 8);
    printf("byte-aligned widths: %.2f bytes a record with the page's header and padding\n",
           paged ? (double)abody / (double)paged : 0);
    printf("bound: %.2f bytes a trade apart, %.2f with ts and id together\n", tot_bound / 8,
           (tot_bound - b_ts - b_id + h_joint) / 8);

    for (uint32_t y = 0; y < nsym; y++)
        free(s[y].t);
    free(s);
    free(val);
    free(del);
    return 0;
}
