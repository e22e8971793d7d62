/* cpage — see cpage.h for the layout and the contract.
 *
 * Where a slot lies in the wide record follows from the kind declaration:
 * slots are uint64_t bit-fields in declaration order, so the compiler puts
 * each in the current 64-bit word from its low bit up, opening a new word
 * when it does not fit (a derived kind's base fills whole words). cpage
 * computes the same positions from the field table; test_cpage checks them
 * against k->pack on a probe record.
 *
 * The step is the gcd of a field's offsets from its base. Dividing by it
 * would be a division per value; since the offsets are exact multiples, the
 * quotient is the offset times the inverse of the step's odd part modulo
 * 2^64, shifted by its power of two, and whether an offset is a multiple is
 * one multiply and compare too (the gcd is recomputed only when one is not).
 */
#include "cpage.h"

#include <assert.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "cpage lays records out little endian"
#endif

#define CPAGE__FIXED 8 /* magic, nf, rbits, stepmask, hdr bytes */

static inline uint64_t cpage__load(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline void cpage__store(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }

static inline uint64_t cpage__ones(unsigned w) { return w >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << w) - 1; }

static inline unsigned cpage__bits_for(uint64_t v) { return v ? 64u - (unsigned)__builtin_clzll(v) : 0u; }

/* `mask` bits at bit b of r: one unaligned 8-byte load and the byte after
 * (a field may straddle 9 bytes: CPAGE_PAD covers the last record's). */
static inline uint64_t cpage__get(const unsigned char *r, uint64_t b, uint64_t mask)
{
    const unsigned char *p = r + (b >> 3);
    unsigned sh = (unsigned)(b & 7);
    uint64_t lo = cpage__load(p), hi = p[8];
    return ((lo >> sh) | (hi << 1 << (63 - sh))) & mask;
}

/* OR v (at most 64 bits) in at bit b of r. */
static inline void cpage__put(unsigned char *r, uint64_t b, uint64_t v)
{
    unsigned char *p = r + (b >> 3);
    unsigned sh = (unsigned)(b & 7);
    cpage__store(p, cpage__load(p) | v << sh);
    p[8] |= (unsigned char)(v >> 1 >> (63 - sh));
}

/* Slot positions in the wide record (see the top). */
static void cpage__layout(const kind *k, uint8_t *word, uint8_t *shift)
{
    unsigned pos = 0;
    for (unsigned f = 0; f < k->nfields; f++) {
        unsigned bits = k->fields[f].bits;
        if (pos % 64 + bits > 64)
            pos = (pos + 63) / 64 * 64;
        word[f] = (uint8_t)(pos / 64);
        shift[f] = (uint8_t)(pos % 64);
        pos += bits;
    }
}

static inline uint64_t cpage__slot(const unsigned char *rec, unsigned word, unsigned shift,
                                   uint64_t fmask)
{
    return (cpage__load(rec + 8 * word) >> shift) & fmask;
}

/* ---- exact division by a step ------------------------------------------- */

typedef struct cpage__div {
    uint64_t inv;   /* inverse of the odd part, mod 2^64 */
    uint64_t limit; /* UINT64_MAX / odd part: the largest exact quotient */
    uint64_t low;   /* the bits below the step's lowest set bit */
    unsigned tz;    /* power of two in the step */
} cpage__div;

static cpage__div cpage__div_make(uint64_t step)
{
    cpage__div d;
    d.tz = (unsigned)__builtin_ctzll(step);
    d.low = cpage__ones(d.tz);
    uint64_t o = step >> d.tz, x = o; /* x*o == 1 mod 2^3; each round doubles */
    for (int i = 0; i < 5; i++)
        x *= 2 - o * x;
    d.inv = x;
    d.limit = UINT64_MAX / o;
    return d;
}

/* Is v a multiple of the step? Then *q = v / step. */
static inline int cpage__div_exact(const cpage__div *d, uint64_t v, uint64_t *q)
{
    if (v & d->low)
        return 0;
    uint64_t t = (v >> d->tz) * d->inv;
    *q = t;
    return t <= d->limit;
}

static uint64_t cpage__gcd(uint64_t a, uint64_t b)
{
    if (!a || !b)
        return a | b;
    unsigned s = (unsigned)__builtin_ctzll(a | b);
    a >>= __builtin_ctzll(a);
    do {
        b >>= __builtin_ctzll(b);
        if (a > b) {
            uint64_t t = a;
            a = b;
            b = t;
        }
        b -= a;
    } while (b);
    return a << s;
}

/* ---- encode --------------------------------------------------------------- */

/* The page's values as columns, col[f][i] = slot f of record i, and each
 * field's smallest and largest value (lo, hi: ordered as signed where the
 * slot is, by flipping the sign bit; field 0's tombstones left out; lo >
 * hi when there is none): plan and encode then run down one array per
 * field. The base trade kind's slots are read through the struct (its
 * layout is the compiler's) in one pass; any other kind's from the
 * positions cpage__layout computes. */
typedef uint64_t cpage__cols[KIND_MAX_FIELDS][CPAGE_MAX_RECS];

#define CPAGE__FLIP(flags) (((flags) & KIND_SIGNED) ? (uint64_t)1 << 63 : 0)
#define CPAGE__COL(name, type, bits, flags, doc)                                    \
    {                                                                               \
        uint64_t x = t[i].name;                                                     \
        col[f][i] = x;                                                              \
        if (f || x != dead) {                                                       \
            x ^= CPAGE__FLIP(flags);                                                \
            l[f] = x < l[f] ? x : l[f];                                             \
            h[f] = x > h[f] ? x : h[f];                                             \
        }                                                                           \
        f++;                                                                        \
    }

static void cpage__columns(const kind *k, const void *slots, uint32_t n, cpage__cols col,
                           uint64_t *lo, uint64_t *hi)
{
    const uint64_t dead = cpage__ones(k->fields[0].bits);
    if (k == &kind_trade) {
        const trade *t = slots;
        uint64_t l[TRADE_NFIELDS], h[TRADE_NFIELDS];
        for (unsigned f = 0; f < TRADE_NFIELDS; f++)
            l[f] = UINT64_MAX, h[f] = 0;
        for (uint32_t i = 0; i < n; i++) {
            unsigned f = 0;
            TRADE_SLOTS(CPAGE__COL)
        }
        memcpy(lo, l, sizeof l);
        memcpy(hi, h, sizeof h);
        return;
    }
    const unsigned char *in = slots;
    uint8_t word[KIND_MAX_FIELDS], shift[KIND_MAX_FIELDS];
    cpage__layout(k, word, shift);
    for (unsigned f = 0; f < k->nfields; f++) {
        const uint64_t fmask = cpage__ones(k->fields[f].bits), flip = CPAGE__FLIP(k->fields[f].flags);
        lo[f] = UINT64_MAX, hi[f] = 0;
        for (uint32_t i = 0; i < n; i++) {
            uint64_t x = col[f][i] = cpage__slot(in + (size_t)i * k->size, word[f], shift[f], fmask);
            if (f == 0 && x == dead)
                continue;
            x ^= flip;
            lo[f] = x < lo[f] ? x : lo[f];
            hi[f] = x > hi[f] ? x : hi[f];
        }
    }
}

static int cpage__plan(cpage_plan *pl, const kind *k, const cpage__cols col, const uint64_t *los,
                       const uint64_t *his, uint32_t n, unsigned flags)
{
    memset(pl, 0, sizeof *pl);
    pl->n = n;
    pl->nfields = k->nfields;
    const uint64_t dead = cpage__ones(k->fields[0].bits);
    unsigned rbits = 0, nsteps = 0;
    for (unsigned f = 0; f < k->nfields; f++) {
        const uint64_t *c = col[f], flip = CPAGE__FLIP(k->fields[f].flags);
        uint64_t lo = los[f], hi = his[f]; /* in signed order where the slot is signed */
        if (lo > hi) /* field 0 of a page of tombstones only */
            lo = hi = 0;
        const uint64_t base = lo ^ flip;
        /* The step divides hi - lo (the largest value's offset): start from
         * it, and take the gcd with each offset it does not divide. */
        uint64_t g = hi - lo, q;
        if (g > 1) {
            cpage__div d = cpage__div_make(g);
            for (uint32_t i = 0; i < n; i++) {
                const uint64_t x = c[i], off = x - base; /* mod 2^64: right for signed slots too */
                if (cpage__div_exact(&d, off, &q) || (f == 0 && x == dead))
                    continue;
                if ((g = cpage__gcd(g, off)) == 1)
                    break;
                d = cpage__div_make(g);
            }
        }
        const uint64_t step = g ? g : 1, qmax = (hi - lo) / step;
        unsigned w = cpage__bits_for(qmax);
        if (f == 0) { /* all ones is "dead": the largest live q must stay below it */
            if (qmax == UINT64_MAX)
                return CPAGE_ENOGAIN;
            w = cpage__bits_for(qmax + 1);
        }
        if ((flags & CPAGE_BYTE_ALIGN) && w % 8)
            w += 8 - w % 8;
        pl->width[f] = (uint8_t)w;
        pl->base[f] = base;
        pl->step[f] = step;
        if (step != 1) {
            pl->stepmask |= (uint16_t)(1u << f);
            nsteps++;
        }
        rbits += w;
    }
    pl->rbits = (uint16_t)rbits;
    pl->hdr = (uint16_t)(CPAGE__FIXED + (k->nfields + 7u) / 8 * 8 + 8u * k->nfields + 8u * nsteps);
    uint64_t bytes = pl->hdr + ((uint64_t)n * rbits + 7) / 8 + CPAGE_PAD;
    if (bytes >= (uint64_t)n * k->size)
        return CPAGE_ENOGAIN;
    pl->bytes = (uint32_t)bytes;
    return (int)bytes;
}

/* Append the low w bits of q (w <= 64, q < 2^w) to the bit stream at *out:
 * acc holds the *nacc (< 64) bits not yet past a whole word. No branch on
 * the data: the word is stored every time (a later store of the same word
 * is a superset) and *out moves on only once it is full, so the stores run
 * at most 8 bytes past the stream's last byte (CPAGE_PAD). */
static inline __attribute__((always_inline)) void cpage__push(unsigned char **out, uint64_t *acc,
                                                              unsigned *nacc, uint64_t q,
                                                              unsigned w)
{
    const unsigned n = *nacc, t = n + w;
    const uint64_t lo = *acc | q << n, hi = q >> 1 >> (63 - n); /* q's bits past the word */
    cpage__store(*out, lo);
    const int full = t >= 64;
    *out += full ? 8 : 0;
    *acc = full ? hi : lo;
    *nacc = t & 63;
}

#if defined(__GNUC__) && !defined(__clang__)
#define CPAGE__UNROLL _Pragma("GCC unroll 16") /* clang unrolls these on its own */
#else
#define CPAGE__UNROLL
#endif

/* A field's q placed at its offset in a record of up to 64 bits, from
 * its value x: (x - base) >> rs, times mul. The offset x - base is a
 * multiple of 2^tz, so ((x - base) >> tz) * inv << off, all mod 2^64, is
 * (x - base) * (inv << (off - tz)) when off >= tz: one multiply, no shift
 * (rs 0); else ((x - base) >> (tz - off)) * inv. No bit of the q is lost:
 * off + width <= 64. */
typedef struct cpage__place {
    uint64_t base, mul;
    unsigned rs;
} cpage__place;

/* Records of at most 64 bits (pl->rbits), each built in a register from its
 * fields' q's and pushed as one value. The q's are computed here, not in a
 * pass of their own: one load per value and nothing stored back. NF and
 * SHIFT (some field's rs is not 0) are constants at each call, so the field
 * loop unrolls and the per-field constants stay in registers. */
static inline __attribute__((always_inline)) void
cpage__records(const cpage_plan *pl, const cpage__cols col, const cpage__place *pf,
               unsigned char **out, uint64_t *acc, unsigned *nacc, const uint64_t dead,
               unsigned nf, int shift)
{
    const uint64_t qdead = cpage__ones(pl->width[0]); /* field 0 is at offset 0 */
    for (uint32_t i = 0; i < pl->n; i++) {
        const uint64_t x = col[0][i];
        uint64_t r = x == dead ? qdead : ((x - pf[0].base) >> (shift ? pf[0].rs : 0)) * pf[0].mul;
        CPAGE__UNROLL
        for (unsigned f = 1; f < nf; f++)
            r |= ((col[f][i] - pf[f].base) >> (shift ? pf[f].rs : 0)) * pf[f].mul;
        cpage__push(out, acc, nacc, r, pl->rbits);
    }
}

/* cpage__records for records of 64 to 128 bits: built in two words. */
static inline __attribute__((always_inline)) void
cpage__records2(const cpage_plan *pl, const cpage__cols col, unsigned char **out, uint64_t *acc,
                unsigned *nacc, const uint64_t dead, unsigned nf)
{
    uint64_t base[KIND_MAX_FIELDS], inv[KIND_MAX_FIELDS];
    unsigned tz[KIND_MAX_FIELDS], off[KIND_MAX_FIELDS], o = 0;
    for (unsigned f = 0; f < nf; f++) {
        const cpage__div d = cpage__div_make(pl->step[f]);
        base[f] = pl->base[f], inv[f] = d.inv, tz[f] = d.tz;
        off[f] = o & 127; /* 128 only after the last bit: a field of width 0, q 0 */
        o += pl->width[f];
    }
    const uint64_t qdead = cpage__ones(pl->width[0]);
    for (uint32_t i = 0; i < pl->n; i++) {
        const uint64_t x = col[0][i];
        unsigned __int128 r = x == dead ? qdead : ((x - base[0]) >> tz[0]) * inv[0];
        CPAGE__UNROLL
        for (unsigned f = 1; f < nf; f++)
            r |= (unsigned __int128)(((col[f][i] - base[f]) >> tz[f]) * inv[f]) << off[f];
        cpage__push(out, acc, nacc, (uint64_t)r, 64);
        cpage__push(out, acc, nacc, (uint64_t)(r >> 64), pl->rbits - 64u);
    }
}

/* Write the body (col may be overwritten: its values become q's). */
static void cpage__encode(const cpage_plan *pl, const kind *k, cpage__cols col, void *body)
{
    unsigned char *b = body;
    const unsigned nf = pl->nfields;
    memset(b, 0, pl->bytes);
    b[0] = CPAGE_MAGIC;
    b[1] = pl->nfields;
    memcpy(b + 2, &pl->rbits, 2);
    memcpy(b + 4, &pl->stepmask, 2);
    memcpy(b + 6, &pl->hdr, 2);
    unsigned char *p = b + CPAGE__FIXED;
    memcpy(p, pl->width, nf);
    p += (nf + 7u) / 8 * 8;
    for (unsigned f = 0; f < nf; f++, p += 8)
        cpage__store(p, pl->base[f]);
    for (unsigned f = 0; f < nf; f++)
        if (pl->stepmask & (1u << f)) {
            cpage__store(p, pl->step[f]);
            p += 8;
        }
    /* The records, as one little endian bit stream (cpage__push): a record
     * built in registers and pushed whole (cpage__records) when it is the
     * base trade kind's of up to 128 bits or any kind's of up to 64; else
     * field by field, each column turned into its q's first. */
    const uint64_t dead = cpage__ones(k->fields[0].bits);
    unsigned char *out = b + pl->hdr;
    uint64_t acc = 0;
    unsigned nacc = 0; /* bits in acc, < 64 */
    if (pl->rbits <= 64) {
        cpage__place pf[KIND_MAX_FIELDS];
        unsigned o = 0, shift = 0;
        for (unsigned f = 0; f < nf; f++) {
            const cpage__div d = cpage__div_make(pl->step[f]);
            const unsigned off = o & 63; /* 64 only after the last bit: width 0, q 0 */
            pf[f].base = pl->base[f];
            pf[f].rs = d.tz > off ? d.tz - off : 0;
            pf[f].mul = d.tz > off ? d.inv : d.inv << (off - d.tz);
            shift |= pf[f].rs;
            o += pl->width[f];
        }
        if (nf == TRADE_NFIELDS && !shift)
            cpage__records(pl, col, pf, &out, &acc, &nacc, dead, TRADE_NFIELDS, 0);
        else if (nf == TRADE_NFIELDS)
            cpage__records(pl, col, pf, &out, &acc, &nacc, dead, TRADE_NFIELDS, 1);
        else
            cpage__records(pl, col, pf, &out, &acc, &nacc, dead, nf, 1);
    } else if (nf == TRADE_NFIELDS && pl->rbits <= 128) {
        cpage__records2(pl, col, &out, &acc, &nacc, dead, TRADE_NFIELDS);
    } else {
        for (unsigned f = 0; f < nf; f++) {
            const cpage__div d = cpage__div_make(pl->step[f]);
            const uint64_t base = pl->base[f], qmask = cpage__ones(pl->width[f]);
            uint64_t *c = col[f];
            for (uint32_t i = 0; i < pl->n; i++)
                c[i] = f == 0 && c[i] == dead ? qmask : ((c[i] - base) >> d.tz) * d.inv;
        }
        for (uint32_t i = 0; i < pl->n; i++)
            for (unsigned f = 0; f < nf; f++)
                cpage__push(&out, &acc, &nacc, col[f][i], pl->width[f]);
    }
    cpage__store(out, acc); /* the bits since the last full word, if any */
    assert(out + 8 <= b + pl->bytes);
}

/* Read the n slots into col and plan them: cpage_plan_page's contract. */
static int cpage__read_plan(cpage_plan *pl, const kind *k, const void *slots, uint32_t n,
                            unsigned flags, cpage__cols col)
{
    assert(k->size % 8 == 0 && k->nfields <= KIND_MAX_FIELDS);
    if (n == 0 || n > CPAGE_MAX_RECS)
        return CPAGE_ENOGAIN;
    uint64_t lo[KIND_MAX_FIELDS], hi[KIND_MAX_FIELDS];
    cpage__columns(k, slots, n, col, lo, hi);
    return cpage__plan(pl, k, col, lo, hi, n, flags);
}

int cpage_plan_page(cpage_plan *pl, const kind *k, const void *slots, uint32_t n, unsigned flags)
{
    cpage__cols col;
    return cpage__read_plan(pl, k, slots, n, flags, col);
}

void cpage_encode(const cpage_plan *pl, const kind *k, const void *slots, void *body)
{
    cpage__cols col;
    uint64_t lo[KIND_MAX_FIELDS], hi[KIND_MAX_FIELDS];
    cpage__columns(k, slots, pl->n, col, lo, hi);
    cpage__encode(pl, k, col, body);
}

int cpage_compact(cpage_plan *pl, const kind *k, const void *slots, uint32_t n, void *body,
                  size_t cap)
{
    cpage__cols col;
    int bytes = cpage__read_plan(pl, k, slots, n, 0, col);
    if (bytes < 0 || (size_t)bytes > cap)
        return CPAGE_ENOGAIN;
    cpage__encode(pl, k, col, body);
    return bytes;
}

/* ---- decode --------------------------------------------------------------- */

/* Header fields of a body (trusted or already checked). */
static const unsigned char *cpage__header(const unsigned char *b, unsigned *nf, uint16_t *rbits,
                                          uint16_t *stepmask, uint16_t *hdr)
{
    *nf = b[1];
    memcpy(rbits, b + 2, 2);
    memcpy(stepmask, b + 4, 2);
    memcpy(hdr, b + 6, 2);
    return b + CPAGE__FIXED;
}

void cpage_open(cpage_view *v, const kind *k, const void *body)
{
    const unsigned char *b = body;
    unsigned nf;
    uint16_t rbits, stepmask, hdr;
    const unsigned char *w = cpage__header(b, &nf, &rbits, &stepmask, &hdr);
    const unsigned char *bases = w + (nf + 7u) / 8 * 8, *steps = bases + 8 * nf;
    uint8_t word[KIND_MAX_FIELDS], shift[KIND_MAX_FIELDS];
    assert(b[0] == CPAGE_MAGIC && nf == k->nfields);
    cpage__layout(k, word, shift);
    v->recs = b + hdr;
    v->rbits = rbits;
    v->nfields = nf;
    v->words = k->size / 8;
    unsigned off = 0;
    for (unsigned f = 0; f < nf; f++) {
        cpage_field *c = &v->f[f];
        c->base = cpage__load(bases + 8 * f);
        c->step = 1;
        if (stepmask & (1u << f)) {
            c->step = cpage__load(steps);
            steps += 8;
        }
        c->mask = cpage__ones(w[f]);
        c->fmask = cpage__ones(k->fields[f].bits);
        c->off = (uint16_t)off;
        c->word = word[f];
        c->shift = shift[f];
        off += w[f];
    }
}

/* One record into wide words; NF and WORDS constant in the common case so
 * the loops unroll. Field 0's all-ones q is a tombstone: ts all ones. */
static inline __attribute__((always_inline)) void cpage__rec(const cpage_view *v, uint32_t i,
                                                             unsigned char *out, unsigned nf,
                                                             unsigned words)
{
    uint64_t w[2 * KIND_MAX_FIELDS];
    const uint64_t at = (uint64_t)i * v->rbits;
    for (unsigned j = 0; j < words; j++)
        w[j] = 0;
    for (unsigned f = 0; f < nf; f++) {
        const cpage_field *c = &v->f[f];
        uint64_t q = cpage__get(v->recs, at + c->off, c->mask);
        uint64_t x = c->base + q * c->step;
        if (f == 0 && q == c->mask)
            x = c->fmask;
        w[c->word] |= (x & c->fmask) << c->shift;
    }
    memcpy(out, w, (size_t)words * 8);
}

/* The base trade kind's records, the pages nearly every scan reads: a
 * record is read as one 128-bit window (two loads) and its fields taken by
 * shifts, then written through the struct, whose layout the compiler
 * knows (no byte of it is padding, so the bytes are exactly cpage__rec's).
 * Used while the window stays inside the records and CPAGE_PAD: `end` is
 * the byte after the padding of the first from + n records. Returns the
 * records decoded; the rest go through cpage__rec. */
#define KIND__BITS(name, type, bits, flags, doc) +(bits)
_Static_assert(0 TRADE_SLOTS(KIND__BITS) == 8 * sizeof(trade), "trade has no padding bits");
#define CPAGE__VAL(name, type, bits, flags, doc)                                    \
    {                                                                               \
        const cpage_field *c = &v->f[f++];                                          \
        uint64_t q = (uint64_t)(r >> c->off) & c->mask;                             \
        t.name = (c->base + q * c->step) & c->fmask;                                \
    }

static uint32_t cpage__trades(const cpage_view *v, uint32_t from, uint32_t n, trade *out)
{
    const uint64_t rbits = v->rbits, end = ((from + (uint64_t)n) * rbits + 7) / 8 + CPAGE_PAD;
    if (rbits + 7 > 128)
        return 0;
    uint32_t i = 0;
    for (uint64_t at = from * rbits; i < n && (at >> 3) + 16 <= end; i++, at += rbits) {
        const unsigned char *p = v->recs + (at >> 3);
        const unsigned __int128 r =
            ((unsigned __int128)cpage__load(p + 8) << 64 | cpage__load(p)) >> (at & 7);
        trade t;
        unsigned f = 0;
        TRADE_SLOTS(CPAGE__VAL)
        if ((uint64_t)(r & v->f[0].mask) == v->f[0].mask) /* a tombstone */
            t.ts = v->f[0].fmask;
        out[i] = t;
    }
    return i;
}

void cpage_decode(const cpage_view *v, uint32_t from, uint32_t n, void *out)
{
    unsigned char *o = out;
    const size_t size = (size_t)v->words * 8;
    if (v->nfields == TRADE_NFIELDS && v->words == sizeof(trade) / 8) {
        uint32_t i = cpage__trades(v, from, n, out);
        for (o += (size_t)i * size; i < n; i++, o += size)
            cpage__rec(v, from + i, o, TRADE_NFIELDS, sizeof(trade) / 8);
        return;
    }
    for (uint32_t i = 0; i < n; i++, o += size)
        cpage__rec(v, from + i, o, v->nfields, v->words);
}

void cpage_get(const cpage_view *v, uint32_t i, void *out) { cpage_decode(v, i, 1, out); }

uint64_t cpage_ts(const cpage_view *v, uint32_t i)
{
    const cpage_field *c = &v->f[0];
    uint64_t q = cpage__get(v->recs, (uint64_t)i * v->rbits, c->mask);
    return q == c->mask ? c->fmask : (c->base + q * c->step) & c->fmask;
}

void cpage_kill(void *body, uint32_t i)
{
    unsigned char *b = body;
    unsigned nf;
    uint16_t rbits, stepmask, hdr;
    const unsigned char *w = cpage__header(b, &nf, &rbits, &stepmask, &hdr);
    /* Field 0 is first in the record: OR its all-ones q in. */
    cpage__put(b + hdr, (uint64_t)i * rbits, cpage__ones(w[0]));
}

size_t cpage_bytes(const void *body, uint32_t n)
{
    unsigned nf;
    uint16_t rbits, stepmask, hdr;
    cpage__header(body, &nf, &rbits, &stepmask, &hdr);
    return hdr + ((uint64_t)n * rbits + 7) / 8 + CPAGE_PAD;
}

int cpage_check(const kind *k, const void *body, size_t bytes, uint32_t n)
{
    const unsigned char *b = body;
    unsigned nf;
    uint16_t rbits, stepmask, hdr;
    if (bytes < CPAGE__FIXED || b[0] != CPAGE_MAGIC || n == 0 || n > CPAGE_MAX_RECS)
        return CPAGE_EFORMAT;
    const unsigned char *w = cpage__header(b, &nf, &rbits, &stepmask, &hdr);
    if (nf != k->nfields || (stepmask >> nf) != 0)
        return CPAGE_EFORMAT;
    unsigned sum = 0;
    for (unsigned f = 0; f < nf; f++) {
        if (w[f] > 64 || (f == 0 && w[f] == 0)) /* values are checked below */
            return CPAGE_EFORMAT;
        sum += w[f];
    }
    unsigned want = CPAGE__FIXED + (nf + 7u) / 8 * 8 + 8u * nf +
                    8u * (unsigned)__builtin_popcount(stepmask);
    if (sum != rbits || hdr != want || bytes != cpage_bytes(body, n))
        return CPAGE_EFORMAT;
    for (size_t i = nf; i < (nf + 7u) / 8 * 8; i++) /* width padding */
        if (w[i])
            return CPAGE_EFORMAT;
    /* Every value must fit its slot as the kind stores it: decode them all
     * and compare each with its slot's mask (a value past it would not come
     * back as encoded). A step of 0 is refused: it would not be one. */
    cpage_view v;
    cpage_open(&v, k, body);
    for (unsigned f = 0; f < nf; f++) {
        const cpage_field *c = &v.f[f];
        if (c->step == 0 || (c->step == 1 && (stepmask & (1u << f))))
            return CPAGE_EFORMAT;
        /* A signed slot is 64 bits: in its ordered form (sign bit flipped)
         * base + q * step must not wrap; any other must fit its width. */
        const uint64_t flip = (k->fields[f].flags & KIND_SIGNED) ? (uint64_t)1 << 63 : 0;
        for (uint32_t i = 0; i < n; i++) {
            uint64_t q = cpage__get(v.recs, (uint64_t)i * v.rbits + c->off, c->mask);
            if (f == 0 && q == c->mask)
                continue;
            unsigned __int128 x = (unsigned __int128)(c->base ^ flip) +
                                  (unsigned __int128)q * c->step;
            if (x > c->fmask)
                return CPAGE_EFORMAT;
        }
    }
    for (size_t i = hdr + ((uint64_t)n * rbits + 7) / 8; i < bytes; i++) /* the padding */
        if (b[i])
            return CPAGE_EFORMAT;
    return CPAGE_OK;
}
