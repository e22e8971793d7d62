/* decode_fast — the common trade, staged without the general machinery.
 *
 * Nearly every trade clients send is a plain `trade` in one shape: a fixmap
 * whose keys are sym, ts, px, qty[, side[, id]] in declaration order (or the
 * fixarray of the same values), a fixstr symbol, integers in their shortest
 * encoding, px and qty as integers, short decimal strings or float64, side
 * "B"/"S". dec_fast takes exactly that and decodes it straight into a packed
 * `trade` slot: a fixed sequence of compares with the keys (header byte
 * included) as immediates, no key lookup, no per-slot type dispatch, no
 * int64 value array, and one bounds check per trade.
 *
 * It never decides a verdict. Anything else — another shape or encoding, a
 * value the fast readers do not take or that is out of range, a store
 * refusal (an undeclared trade whose symbol holds a derived kind, a bad
 * symbol, the symbol limit) — leaves the trade to the general decoder in
 * decode.c, which reads it again from its first byte and decides, so every
 * verdict and message is the general one's. That is also why `trade` is
 * the right kind to try when the batch declares none: if the symbol holds
 * another kind the store says so (STORE_EKIND) and the general decoder
 * takes over; otherwise its kind is `trade`, or it is new and becomes one.
 */
#include "decode_fast.h"

#include <string.h>

#include "decnum.h"
#include "mpread.h"

/* The trade's keys as they are on the wire (fixstr header, then the name),
 * little-endian, so a key is one load, mask and compare. decode_fast_check
 * verifies at load time that they are kind_trade's keys, in its order, with
 * the types and widths the readers below assume; if not, dec_fast is off. */
#define KEY_SYM 0x6d7973a3u       /* a3 "sym" */
#define KEY_TS 0x7374a2u          /* a2 "ts" */
#define KEY_PX 0x7870a2u          /* a2 "px" */
#define KEY_QTY 0x797471a3u       /* a3 "qty" */
#define KEY_SIDE 0x65646973a4ull  /* a4 "side" */
#define KEY_ID 0x6469a2u          /* a2 "id" */

/* The most bytes one trade can take in the accepted shapes, plus the 8 a
 * reader may load past the end of its value: map header 1, a3 "sym" 4 +
 * fixstr 32, ts 3 + 9, px 3 + 32, qty 4 + 32, side 5 + 2, id 3 + 9 = 139.
 * With this many bytes left no read needs a check; closer to the end the
 * trade is read from a zero-padded copy. */
#define WINDOW 160

static int usable;

/* Everything below is inlined into dec_fast's loop: one function, the trade
 * in registers and one stack record, no calls but the store's. */
#define INLINE static inline __attribute__((always_inline))

_Static_assert(TRADE_ts == 0 && TRADE_px == 1 && TRADE_qty == 2 && TRADE_side == 3 &&
                   TRADE_id == 4 && TRADE_NFIELDS == 5,
               "decode_fast reads trade's five slots in this order");

static uint64_t wire_key(const kind_field *f)
{
    uint64_t w = 0xa0u | f->keylen;
    for (unsigned i = 0; i < f->keylen && i < 7; i++)
        w |= (uint64_t)(uint8_t)f->key[i] << (8 * (i + 1));
    return w;
}

__attribute__((constructor)) static void decode_fast_check(void)
{
    static const struct {
        uint64_t key;
        uint8_t type, bits, flags;
    } want[TRADE_NFIELDS] = {
        {KEY_TS, KIND_TS, 64, KIND_REQ},
        {KEY_PX, KIND_FIX, 64, KIND_REQ | KIND_SIGNED}, /* a float may be negative */
        {KEY_QTY, KIND_FIX, 62, KIND_REQ}, /* not signed: a negative float fails the width test */
        {KEY_SIDE, KIND_SIDE, 2, 0},
        {KEY_ID, KIND_U64, 64, 0},
    };
    const kind *k = &kind_trade;
    usable = k->nfields == TRADE_NFIELDS && k->size == sizeof(trade);
    for (int i = 0; usable && i < TRADE_NFIELDS; i++) {
        const kind_field *f = &k->fields[i];
        usable = f->keylen <= 4 && wire_key(f) == want[i].key && f->type == want[i].type &&
                 f->bits == want[i].bits && f->flags == want[i].flags;
    }
}

int dec_fast_usable(const kind *declared)
{
    return usable && (!declared || declared == &kind_trade);
}

static inline uint32_t ld32(const uint8_t *p)
{
    uint32_t w;
    memcpy(&w, p, 4);
    return w;
}

/* ---- values: each returns the byte after the value, or NULL --------------- */

/* A non-negative integer as msgpack-c packs one: positive fixint, uint 8-64
 * (cc-cf: one big-endian load, shifted down to the width). */
INLINE const uint8_t *rd_uint(const uint8_t *p, uint64_t *u)
{
    static const uint8_t shift[4] = {56, 48, 32, 0}, size[4] = {2, 3, 5, 9};
    const uint8_t c = *p;
    if (c <= 0x7f) {
        *u = c;
        return p + 1;
    }
    if ((c & 0xfc) != 0xcc)
        return NULL;
    *u = be64(p + 1) >> shift[c & 3];
    return p + size[c & 3];
}

/* Nanoseconds: nearly always a uint64 (cf), so that first. */
INLINE const uint8_t *rd_ts(const uint8_t *p, int64_t *v)
{
    uint64_t u;
    if (*p == 0xcf)
        u = be64(p + 1), p += 9;
    else if (!(p = rd_uint(p, &u)))
        return NULL;
    if (u > INT64_MAX)
        return NULL;
    *v = (int64_t)u;
    return p;
}

/* Fixed point: a short decimal string, a whole number, or a float64. */
INLINE const uint8_t *rd_fix(const uint8_t *p, int64_t *v)
{
    const uint8_t c = *p;
    if ((c & 0xe0) == 0xa0) {
        uint32_t len = c & 0x1f;
        return fast_decimal(p + 1, len, 8 /* in the window */, v) ? p + 1 + len : NULL;
    }
    if (c == 0xcb) {
        uint64_t w = be64(p + 1);
        double x;
        memcpy(&x, &w, 8);
        return fixp_from_double(x, v) == FIXP_OK ? p + 9 : NULL;
    }
    uint64_t u;
    if (!(p = rd_uint(p, &u)) || u > (uint64_t)(INT64_MAX / FIXP_SCALE))
        return NULL;
    *v = (int64_t)u * FIXP_SCALE;
    return p;
}

/* "B" / "S" in either case, or nil (absent: unknown). */
INLINE const uint8_t *rd_side(const uint8_t *p, int64_t *v)
{
    static const uint8_t side[256] = {['B'] = KIND_SIDE_BUY,  ['b'] = KIND_SIDE_BUY,
                                      ['S'] = KIND_SIDE_SELL, ['s'] = KIND_SIDE_SELL};
    if (*p == 0xa1 && side[p[1]]) {
        *v = side[p[1]];
        return p + 2;
    }
    if (*p != 0xc0)
        return NULL;
    *v = KIND_SIDE_UNKNOWN;
    return p + 1;
}

/* ---- trades ------------------------------------------------------------- */

typedef struct rec {
    const uint8_t *sym;
    uint32_t symlen;
    int64_t v[TRADE_NFIELDS]; /* side and id 0 when absent */
} rec;

/* The symbol as a fixstr: the map's "sym" value or the array's first. */
INLINE const uint8_t *rd_sym(const uint8_t *p, rec *r)
{
    if ((*p & 0xe0) != 0xa0)
        return NULL;
    r->symlen = *p & 0x1f;
    r->sym = p + 1;
    return r->sym + r->symlen;
}

/* {sym, ts, px, qty[, side[, id]]}, keys in that order. */
INLINE const uint8_t *rd_map(const uint8_t *p, uint32_t n, rec *r)
{
    if (ld32(p) != KEY_SYM || !(p = rd_sym(p + 4, r)))
        return NULL;
    if ((ld32(p) & 0xffffff) != KEY_TS || !(p = rd_ts(p + 3, &r->v[TRADE_ts])))
        return NULL;
    if ((ld32(p) & 0xffffff) != KEY_PX || !(p = rd_fix(p + 3, &r->v[TRADE_px])))
        return NULL;
    if (ld32(p) != KEY_QTY || !(p = rd_fix(p + 4, &r->v[TRADE_qty])))
        return NULL;
    n -= 4;
    if (n && (le64(p) & 0xffffffffffull) == KEY_SIDE) {
        if (!(p = rd_side(p + 5, &r->v[TRADE_side])))
            return NULL;
        n--;
    }
    if (n && (ld32(p) & 0xffffff) == KEY_ID) {
        uint64_t u;
        if (!(p = rd_uint(p + 3, &u)))
            return NULL;
        r->v[TRADE_id] = (int64_t)u; /* any uint64: the bit pattern, see kind.h */
        n--;
    }
    return n ? NULL : p;
}

/* [sym, ts, px, qty[, side[, id]]]. */
INLINE const uint8_t *rd_array(const uint8_t *p, uint32_t n, rec *r)
{
    uint64_t u;
    if (!(p = rd_sym(p, r)) || !(p = rd_ts(p, &r->v[TRADE_ts])) ||
        !(p = rd_fix(p, &r->v[TRADE_px])) || !(p = rd_fix(p, &r->v[TRADE_qty])))
        return NULL;
    if (n > 4 && !(p = rd_side(p, &r->v[TRADE_side])))
        return NULL;
    if (n > 5) {
        if (!(p = rd_uint(p, &u)))
            return NULL;
        r->v[TRADE_id] = (int64_t)u;
    }
    return p;
}

/* One trade at p, WINDOW bytes readable from p, the message ending at end:
 * staged, returning the byte after it, or NULL (nothing staged). */
INLINE const uint8_t *fast_trade(const uint8_t *p, const uint8_t *end, store *s, store_batch *b,
                                 int64_t max_ts)
{
    rec r;
    const uint8_t c = *p;
    r.v[TRADE_side] = r.v[TRADE_id] = 0;
    /* fixmap of 4-6 pairs, fixarray of 4-6 values */
    if (c >= 0x84 && c <= 0x86)
        p = rd_map(p + 1, c & 0x0f, &r);
    else if (c >= 0x94 && c <= 0x96)
        p = rd_array(p + 1, c & 0x0f, &r);
    else
        return NULL;
    /* The ranges stage() checks: the readers give ts and px in range (px
     * is signed); qty is a 62-bit slot, >= 0 (a negative float fails).
     * The trade must end inside the message. */
    if (!p || p > end || (uint64_t)r.v[TRADE_qty] >> 62 || r.v[TRADE_ts] > max_ts)
        return NULL;
    trade t;
    t.ts = (uint64_t)r.v[TRADE_ts];
    t.px = (uint64_t)r.v[TRADE_px];
    t.qty = (uint64_t)r.v[TRADE_qty];
    t.side = (uint64_t)r.v[TRADE_side];
    t.id = (uint64_t)r.v[TRADE_id];
    if (store_batch_add_slot(s, b, (const char *)r.sym, r.symlen, &kind_trade, &t) != STORE_OK)
        return NULL;
    return p;
}

/* A trade in the last WINDOW bytes, read from a zero-padded copy; only
 * bytes it consumed count, and those are the message's (p <= end above). */
static __attribute__((noinline)) const uint8_t *fast_tail(const uint8_t *p, const uint8_t *end,
                                                          store *s, store_batch *b, int64_t max_ts)
{
    uint8_t pad[WINDOW] = {0};
    size_t left = (size_t)(end - p);
    if (left == 0)
        return NULL;
    memcpy(pad, p, left);
    const uint8_t *q = fast_trade(pad, pad + left, s, b, max_ts);
    return q ? p + (q - pad) : NULL;
}

uint32_t dec_fast(const uint8_t **pp, const uint8_t *end, store *s, store_batch *b, uint32_t n,
                  int64_t max_ts)
{
    const uint8_t *p = *pp, *q;
    uint32_t i = 0;
    for (; i < n; i++, p = q) {
        q = (size_t)(end - p) >= WINDOW ? fast_trade(p, end, s, b, max_ts)
                                        : fast_tail(p, end, s, b, max_ts);
        if (!q)
            break;
    }
    *pp = p;
    return i;
}
