/* workload — the deterministic reference workloads W1 and W1-10k.
 *
 * From a seed: `nsym` symbols named SYM0000.. (Zipf-skewed with exponent s,
 * 1.1 for W1); per-symbol price random walk starting near 100.00 with 2-4
 * decimals; qty uniform 1..10,000 whole units; side B/S; ts from
 * 2026-01-01T00:00:00Z increasing by ~1 us per trade; ids sequential from 1.
 * The same seed gives the same trades on every machine (no libc rand).
 */
#ifndef SLOTD_WORKLOAD_H
#define SLOTD_WORKLOAD_H

#include <stdint.h>

#define WORKLOAD_TS0 1767225600000000000LL /* 2026-01-01T00:00:00Z in ns */

typedef struct workload_trade {
    uint32_t sym;   /* symbol index, 0..nsym-1 */
    int64_t ts;     /* ns */
    int64_t px;     /* fixed point 1e-8 */
    int64_t qty;    /* fixed point 1e-8 */
    uint64_t id;
    int side;       /* KIND_SIDE_BUY / KIND_SIDE_SELL */
} workload_trade;

typedef struct workload {
    uint64_t rng[4];   /* xoshiro256** state */
    uint32_t nsym;
    double *cdf;       /* Zipf cumulative distribution, nsym entries */
    int64_t *px;       /* current price per symbol */
    uint8_t *decimals; /* 2..4 per symbol */
    int64_t ts;
    uint64_t id;
} workload;

int workload_init(workload *w, uint32_t nsym, double zipf_s, uint64_t seed);
void workload_free(workload *w);
void workload_next(workload *w, workload_trade *t);
/* "SYM0042": at least 4 digits. Returns the length; buf holds 16 bytes. */
int workload_symbol(uint32_t sym, char *buf);
uint64_t workload_rand(workload *w); /* the generator's next 64 random bits */

#endif
