/* gen_batch — random T batches for the differential tests: mostly valid,
 * with a tunable share of every kind of mistake (wrong types, bad values,
 * unknown / duplicate / missing keys, bad symbols and kinds, bad shapes).
 * Deterministic: a xorshift generator with a fixed seed. */
#ifndef SLOTD_GEN_BATCH_H
#define SLOTD_GEN_BATCH_H

#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <string.h>

#include "kind.h"

#ifndef TS0
#define TS0 1767225600000000000LL
#endif


static uint64_t rs = 88172645463325252ull;
static uint64_t rnd(void)
{
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return rs;
}
static int chance(int pct) { return (int)(rnd() % 100) < pct; }

typedef struct gen {
    msgpack_packer *pk;
    int valid; /* percent chance each choice is a valid one */
} gen;

static void gstr(gen *g, const char *s) { msgpack_pack_str_with_body(g->pk, s, strlen(s)); }

static void gen_junk(gen *g)
{
    switch (rnd() % 9) {
    case 0: msgpack_pack_true(g->pk); break;
    case 1: msgpack_pack_array(g->pk, 1), msgpack_pack_nil(g->pk); break;
    case 2: msgpack_pack_map(g->pk, 0); break;
    case 3: msgpack_pack_bin_with_body(g->pk, "12", 2); break;
    case 4: msgpack_pack_ext_with_body(g->pk, "abcd", 4, (int8_t)(rnd() % 3)); break;
    case 5: msgpack_pack_int64(g->pk, -(int64_t)(rnd() % 1000) - 1); break;
    case 6: msgpack_pack_double(g->pk, chance(50) ? NAN : -1.5); break;
    case 7: gstr(g, "zz"); break;
    default: msgpack_pack_nil(g->pk); break;
    }
}

static void gen_ts_ext(gen *g, int64_t ns)
{
    uint8_t b[12];
    int size = (int)(rnd() % 3);
    int64_t sec = ns / 1000000000;
    uint32_t nsec = (uint32_t)(ns % 1000000000);
    if (!chance(g->valid))
        nsec = chance(50) ? 1000000000u + (uint32_t)(rnd() % 10) : nsec,
        sec = chance(30) ? -sec : chance(30) ? INT64_MAX - (int64_t)(rnd() % 4) : sec;
    if (size == 0) {
        for (int i = 0; i < 4; i++)
            b[i] = (uint8_t)((uint64_t)sec >> (24 - 8 * i));
        msgpack_pack_ext_with_body(g->pk, b, 4, -1);
    } else if (size == 1) {
        uint64_t w = (uint64_t)(nsec & 0x3fffffff) << 34 | ((uint64_t)sec & 0x3ffffffffull);
        for (int i = 0; i < 8; i++)
            b[i] = (uint8_t)(w >> (56 - 8 * i));
        msgpack_pack_ext_with_body(g->pk, b, 8, -1);
    } else {
        for (int i = 0; i < 4; i++)
            b[i] = (uint8_t)(nsec >> (24 - 8 * i));
        for (int i = 0; i < 8; i++)
            b[4 + i] = (uint8_t)((uint64_t)sec >> (56 - 8 * i));
        msgpack_pack_ext_with_body(g->pk, b, chance(g->valid) ? 12 : 6, -1);
    }
}

static void gen_value(gen *g, const kind_field *fd)
{
    if (!chance(g->valid) && chance(50)) {
        gen_junk(g);
        return;
    }
    int ok = chance(g->valid);
    char txt[48];
    switch (fd->type) {
    case KIND_FIX:
        switch (rnd() % 6) {
        case 0: msgpack_pack_uint64(g->pk, ok ? rnd() % 100000 : rnd()); break;
        case 1: msgpack_pack_fix_int64(g->pk, ok ? (int64_t)(rnd() % 1000) : -5); break;
        case 2: msgpack_pack_double(g->pk, (double)(rnd() % 10000000) / 100.0 * (ok ? 1 : -1));
            break;
        case 3: msgpack_pack_float(g->pk, (float)(rnd() % 1000) / 4.0f); break;
        case 4: { /* a '-' now and then: valid for prices, not for qty */
            unsigned long long ip = rnd() % 100000, fp = rnd() % 100000;
            snprintf(txt, sizeof(txt), "%s%llu.%0*llu", chance(20) ? "-" : "", ip, ok ? 4 : 9, fp);
            gstr(g, txt);
            break;
        }
        default:
            gstr(g, ok ? "0.5" : (const char *[]){"", "1e5", "-2", ".", "99999999999"}[rnd() % 5]);
        }
        break;
    case KIND_TS: {
        int64_t ns = TS0 + (int64_t)(rnd() % 1000000000000ull);
        if (fd->bits < 64 && !ok && chance(50)) {
            msgpack_pack_uint64(g->pk, (1ull << 62) + rnd() % 5);
            break;
        }
        if (chance(40))
            gen_ts_ext(g, ns);
        else if (ok)
            msgpack_pack_int64(g->pk, ns);
        else
            msgpack_pack_uint64(g->pk, (uint64_t)INT64_MAX + 1 + rnd() % 100);
        break;
    }
    case KIND_U64:
        if (ok) {
            unsigned sh = (unsigned)(rnd() % 64);
            msgpack_pack_uint64(g->pk, rnd() >> sh);
        }
        else {
            msgpack_pack_int8(g->pk, -1);
        }
        break;
    case KIND_SIDE: {
        static const char *const good[] = {"B", "S", "buy", "SELL", "", "u"};
        if (ok && chance(20))
            msgpack_pack_nil(g->pk);
        else
            gstr(g, ok ? good[rnd() % 6] : "X");
        break;
    }
    case KIND_RIGHT: {
        static const char *const good[] = {"C", "P", "call", "Put"};
        gstr(g, ok ? good[rnd() % 4] : "");
        break;
    }
    }
}

/* AAA..CCC and a 6th, DDD, hold `trade`; OPA and OPB `option_trade` (when
 * the data is valid). The store allows 5 symbols: DDD is rare, so
 * SYMBOL_LIMIT happens without rejecting most batches. */
static const char *const syms[] = {"AAA", "BBB", "CCC", "OPA", "OPB", "DDD", "", "\xc3\x28",
                                   "SYMBOL_OF_THIRTY_TWO_BYTES_LONG!"};

static void gen_trade(gen *g, const kind *k)
{
    const char *sym;
    if (!chance(g->valid))
        sym = syms[rnd() % 9];
    else if (k == &kind_option_trade)
        sym = syms[3 + rnd() % 2];
    else
        sym = syms[chance(98) ? rnd() % 3 : 5];
    int nf = k->nfields, minf = 0;
    for (int i = 0; i < nf; i++)
        if (k->fields[i].flags & KIND_REQ)
            minf = i + 1;
    if (chance(50)) { /* array form */
        int n = nf;
        if (chance(40)) /* trailing slots omitted */
            n = chance(g->valid) ? minf + (int)(rnd() % (unsigned)(nf - minf + 1))
                                 : (int)(rnd() % (unsigned)(nf + 1));
        if (!chance(g->valid))
            n = nf + 1 + (int)(rnd() % 2);
        msgpack_pack_array(g->pk, (size_t)n + 1);
        if (chance(g->valid))
            gstr(g, sym);
        else
            gen_junk(g);
        for (int i = 0; i < n; i++) {
            if (i < nf)
                gen_value(g, &k->fields[i]);
            else
                msgpack_pack_uint64(g->pk, 1);
        }
        return;
    }
    /* map form: a random subset, random order, sometimes sym elsewhere,
     * an unknown key, a duplicate or a non-string key */
    int order[KIND_MAX_FIELDS + 4], n = 0;
    for (int i = 0; i < nf; i++)
        if ((k->fields[i].flags & KIND_REQ) ? chance(g->valid + (100 - g->valid) / 2)
                                            : chance(60))
            order[n++] = i;
    if (chance(g->valid))
        order[n++] = -1; /* sym */
    if (!chance(g->valid))
        order[n++] = -2; /* unknown key */
    if (!chance(g->valid) && n > 0)
        order[n] = order[rnd() % (unsigned)n], n++; /* duplicate */
    if (!chance(g->valid))
        order[n++] = -3; /* non-string key */
    if (!chance(g->valid))
        order[n++] = -4; /* option slot name on whatever kind */
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rnd() % (unsigned)(i + 1)), t = order[i];
        order[i] = order[j], order[j] = t;
    }
    if (chance(60)) /* mostly sym first, as clients send it */
        for (int i = 0; i < n; i++)
            if (order[i] == -1) {
                order[i] = order[0], order[0] = -1;
                break;
            }
    msgpack_pack_map(g->pk, (size_t)n);
    for (int i = 0; i < n; i++) {
        switch (order[i]) {
        case -1:
            gstr(g, "sym");
            if (chance(g->valid))
                gstr(g, sym);
            else
                gen_junk(g);
            break;
        case -2: gstr(g, chance(50) ? "venue" : "a_key_longer_than_eight"); gen_junk(g); break;
        case -3: msgpack_pack_uint64(g->pk, 7); msgpack_pack_nil(g->pk); break;
        case -4: {
            const kind_field *fd = &kind_option_trade.fields[TRADE_NFIELDS + rnd() % 3];
            gstr(g, fd->key);
            gen_value(g, fd);
            break;
        }
        default:
            gstr(g, k->fields[order[i]].key);
            gen_value(g, &k->fields[order[i]]);
        }
    }
}

static void gen_batch(gen *g, uint64_t seq)
{
    int ntr = (int)(rnd() % 12);
    int nelem = chance(30) ? 4 : 3;
    const kind *k = chance(50) ? &kind_option_trade : &kind_trade;
    if (!chance(g->valid + 10))
        nelem = (int)(rnd() % 6);
    msgpack_pack_array(g->pk, (size_t)nelem);
    if (nelem == 0)
        return;
    gstr(g, chance(g->valid + 10) ? "T" : "Q");
    if (nelem == 1)
        return;
    if (chance(g->valid + 10))
        msgpack_pack_uint64(g->pk, seq);
    else
        gen_junk(g);
    if (nelem == 2)
        return;
    if (!chance(g->valid + 10)) {
        gen_junk(g);
    } else {
        msgpack_pack_array(g->pk, (size_t)ntr);
        for (int i = 0; i < ntr; i++)
            gen_trade(g, nelem == 4 ? k : chance(70) ? &kind_trade : &kind_option_trade);
    }
    for (int i = 3; i < nelem; i++) {
        if (i == 3 && chance(g->valid + 10))
            gstr(g, k->name);
        else if (chance(50))
            gstr(g, "no_such_kind");
        else
            gen_junk(g);
    }
}

#endif
