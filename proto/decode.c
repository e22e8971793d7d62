/* decode — the hot path: T batches read straight from the bytes.
 *
 * A batch is decoded in one forward pass with no msgpack object tree. Trades
 * in the shape clients send (a plain `trade`, keys in declaration order,
 * common encodings) go through dec_fast (decode_fast.c), straight into a
 * packed slot; the first one that does not, and only it, comes here. It
 * decides every verdict, so errors are this file's alone. Here each trade's
 * values go from the wire into an int64 slot array, through kind_check,
 * into store_batch_add. The pieces that make this cheap:
 *
 *  - map keys of up to 7 bytes (every declared slot name) are matched as one
 *    64-bit word (bytes + length) against a per-kind table, not by strcmp;
 *  - the trade's kind must be known before its keys can be judged, so the
 *    symbol is found first; when "sym" is the first key (what clients send)
 *    that costs nothing extra, otherwise the keys before it are skipped once;
 *  - only a batch that declares its kind (the 4th element, after the trades)
 *    pays for a skip over the trades to read that name first.
 *
 * Every read is bounds-checked, so any byte string is safe to decode, but
 * the input is meant to be one framed message (proto_frame): bytes that end
 * early or run past the value are MALFORMED.
 *
 * Rule order within a trade (the reference decoder in the tests applies the
 * same; PROTOCOL.md states it): the symbol first (MISSING_FIELD, WRONG_TYPE),
 * which fixes the kind; then keys / positions in wire order, each either
 * UNKNOWN_FIELD, duplicate (BAD_VALUE), WRONG_TYPE or BAD_VALUE; then
 * required slots (MISSING_FIELD, first in slot order) and ranges; then the
 * store's symbol checks.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "decnum.h"
#include "decode_fast.h"
#include "fixp.h"
#include "mpread.h"
#include "proto.h"

/* Key codes: bytes of a key of <= 7 bytes in a little-endian word, its length
 * in the top byte. Longer keys never match a code and go the slow way. */
#define KEY_LONG UINT64_MAX
#define KEY_NONE (UINT64_MAX - 1)

/* Per kind, built once at load time from the kind tables. */
typedef struct kinfo {
    uint64_t code[KIND_MAX_FIELDS]; /* key code of each slot */
    /* The slot's key as it is on the wire, fixstr header included, for a
     * single masked 8-byte compare: (load & wmask) == wire. wlen = bytes. */
    uint64_t wire[KIND_MAX_FIELDS], wmask[KIND_MAX_FIELDS];
    uint8_t wlen[KIND_MAX_FIELDS];
    uint64_t max[KIND_MAX_FIELDS];  /* largest valid value, as unsigned */
    uint32_t req;                   /* KIND_REQ slots */
    uint32_t narrow;                /* slots whose max is below INT64_MAX */
} kinfo;

static kinfo kinfos[KIND_MAX];
static uint64_t sym_code;
/* Every kind is `trade` or derives from it, so its slots start with trade's,
 * in trade's order, with trade's types: a trade can be decoded as `trade`
 * before its symbol's kind is known (see dec_map_trade). */
static int base_first;
/* fixstr "sym" as it is on the wire, little-endian: a3 73 79 6d */
#define SYM_WIRE 0x6d7973a3u

typedef struct dec {
    const uint8_t *p, *end;
    const proto_limits *lim;
    store *s;
    store_batch *b;
    proto_error *err;
    const kind *declared; /* the batch's kind, or NULL */
    int64_t idx;          /* trade being decoded */
    int64_t max_ts;       /* wall clock + lim->max_future_ns; INT64_MAX: no bound */
    int skipped;          /* a value was skipped unread (it may nest deeper than a trade) */
} dec;

/* One trade being decoded. */
typedef struct tstate {
    const kind *k;
    const kinfo *ki;
    int tentative;        /* k is `trade` by assumption, the symbol not yet asked */
    const uint8_t *sym, *symkey;
    uint32_t symlen;
    uint32_t present, seen;
    int64_t v[KIND_MAX_FIELDS];
} tstate;

/* A trade-level error: "trade 3: px: <why>". */
static int tfail(dec *d, proto_code code, const char *field, const char *fmt, ...)
{
    char why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (field)
        return proto_error_set(d->err, code, d->idx, "trade %lld: %s: %s", (long long)d->idx,
                               field, why);
    return proto_error_set(d->err, code, d->idx, "trade %lld: %s", (long long)d->idx, why);
}

static inline uint64_t key_code(const uint8_t *s, uint32_t len, const uint8_t *end)
{
    uint64_t w = 0;
    if (len > 7)
        return KEY_LONG;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (end - s >= 8) { /* one load, then drop the bytes past the key */
        static const uint64_t mask[8] = {0, 0xff, 0xffff, 0xffffff, 0xffffffff,
                                         0xffffffffff, 0xffffffffffff, 0xffffffffffffff};
        memcpy(&w, s, 8);
        return (w & mask[len]) | (uint64_t)len << 56;
    }
#endif
    for (uint32_t i = 0; i < len; i++)
        w |= (uint64_t)s[i] << (8 * i);
    return w | (uint64_t)len << 56;
}

static uint64_t wire_mask(unsigned n) { return n >= 8 ? UINT64_MAX : (1ull << (8 * n)) - 1; }

static uint64_t cstr_code(const char *s, size_t len)
{
    return len > 7 ? KEY_NONE : key_code((const uint8_t *)s, (uint32_t)len, (const uint8_t *)s);
}

/* Tables from the kind declarations; a constructor, so they exist before
 * any thread (the server replays on several) can decode. */
__attribute__((constructor)) static void decode_tables(void)
{
    sym_code = cstr_code("sym", 3);
    base_first = 1;
    for (unsigned id = 0; id < kind_count(); id++) {
        const kind *k = kind_by_id(id);
        kinfo *ki = &kinfos[k->id];
        base_first &= kind_is_a(k, &kind_trade);
        ki->req = ki->narrow = 0;
        for (int i = 0; i < k->nfields; i++) {
            const kind_field *f = &k->fields[i];
            uint64_t max = f->bits < 64 ? (1ull << f->bits) - 1 : INT64_MAX;
            if (f->type == KIND_U64 && f->bits == 64)
                max = UINT64_MAX;
            if (f->type == KIND_SIDE && max > KIND_SIDE_SELL)
                max = KIND_SIDE_SELL;
            if (f->type == KIND_RIGHT && max > KIND_RIGHT_PUT)
                max = KIND_RIGHT_PUT;
            ki->code[i] = cstr_code(f->key, f->keylen);
            ki->max[i] = max;
            if (max < INT64_MAX)
                ki->narrow |= 1u << i;
            if (f->flags & KIND_REQ)
                ki->req |= 1u << i;
            ki->wire[i] = 1, ki->wmask[i] = 0, ki->wlen[i] = 0; /* never matches */
            if (f->keylen <= 7) {
                uint8_t b[8] = {(uint8_t)(0xa0 | f->keylen)};
                memcpy(b + 1, f->key, f->keylen);
                ki->wlen[i] = (uint8_t)(1 + f->keylen);
                ki->wire[i] = le64(b) & wire_mask(ki->wlen[i]);
                ki->wmask[i] = wire_mask(ki->wlen[i]);
            }
        }
    }
}

/* ---- values ------------------------------------------------------------- */

static int wrong_type(dec *d, const kind_field *f, const hdr *h, const char *want)
{
    return tfail(d, PROTO_E_WRONG_TYPE, f->key, "expected %s, got %s", want, mp_type_name(h->t));
}

/* msgpack timestamp extension (type -1) to ns since the epoch. */
static int ts_from_ext(dec *d, const kind_field *f, const hdr *h, int64_t *out)
{
    uint64_t sec;
    uint32_t nsec;
    if (h->n == 4) {
        *out = (int64_t)be32(h->data) * 1000000000;
        return 1;
    }
    if (h->n == 8) {
        uint64_t w = be64(h->data);
        nsec = (uint32_t)(w >> 34);
        sec = w & ((1ull << 34) - 1);
    } else if (h->n == 12) {
        int64_t s = (int64_t)be64(h->data + 4);
        nsec = be32(h->data);
        if (s < 0)
            return tfail(d, PROTO_E_BAD_VALUE, f->key, "timestamp before 1970");
        sec = (uint64_t)s;
    } else {
        return tfail(d, PROTO_E_BAD_VALUE, f->key,
                     "timestamp extension of %u bytes (must be 4, 8 or 12)", h->n);
    }
    if (nsec > 999999999)
        return tfail(d, PROTO_E_BAD_VALUE, f->key, "timestamp nanoseconds above 999999999");
    if (sec > (uint64_t)(INT64_MAX - nsec) / 1000000000)
        return tfail(d, PROTO_E_BAD_VALUE, f->key, "timestamp beyond the int64 ns range");
    *out = (int64_t)(sec * 1000000000 + nsec);
    return 1;
}

/* The general case of dec_value: any encoding, and every error. Kept out
 * of line so the fast paths stay small. */
__attribute__((noinline)) static int dec_value_slow(dec *d, const kind_field *f, int64_t *out)
{
    hdr h = {0}; /* rd_hdr sets what its type needs; gcc -O3 cannot see that (off the fast path) */
    int rc;
    if (rd_hdr(&d->p, d->end, &h, d->err))
        return -1;
    if (h.t == T_NIL)
        return 0;
    switch (f->type) {
    case KIND_FIX:
        if (h.t == T_F64 || h.t == T_F32)
            rc = fixp_from_double(h.f, out);
        else if (h.t == T_UINT)
            rc = fixp_from_u64(h.u, out);
        else if (h.t == T_STR)
            rc = fixp_from_str((const char *)h.data, h.n, out);
        else if (h.t == T_NEG)
            rc = fixp_from_i64(h.i, out);
        else
            return wrong_type(d, f, &h, "a number or a decimal string");
        /* The kind says whether the slot is signed (prices) or not (qty). */
        if (rc == FIXP_OK && *out < 0 && !(f->flags & KIND_SIGNED))
            rc = FIXP_ENEG;
        if (rc != FIXP_OK)
            return tfail(d, PROTO_E_BAD_VALUE, f->key, "%s", core_strerror(rc));
        return 1;
    case KIND_TS:
        if (h.t == T_UINT) {
            if (h.u > INT64_MAX)
                return tfail(d, PROTO_E_BAD_VALUE, f->key, "beyond the int64 ns range");
            *out = (int64_t)h.u;
            return 1;
        }
        if (h.t == T_NEG)
            return tfail(d, PROTO_E_BAD_VALUE, f->key, "negative timestamp");
        if (h.t == T_EXT && h.ext == -1)
            return ts_from_ext(d, f, &h, out);
        return wrong_type(d, f, &h, "integer ns or a msgpack timestamp");
    case KIND_U64:
        if (h.t == T_UINT) {
            *out = (int64_t)h.u; /* above INT64_MAX: the bit pattern, see kind.h */
            return 1;
        }
        if (h.t == T_NEG)
            return tfail(d, PROTO_E_BAD_VALUE, f->key, "negative");
        return wrong_type(d, f, &h, "a non-negative integer");
    case KIND_SIDE:
    case KIND_RIGHT:
        if (h.t != T_STR)
            return wrong_type(d, f, &h, "a string");
        if (kind_enum_parse((kind_type)f->type, (const char *)h.data, h.n, out) != KIND_OK)
            return tfail(d, PROTO_E_BAD_VALUE, f->key, "\"%.*s\" is not one of %s",
                         (int)(h.n > 16 ? 16 : h.n), (const char *)h.data,
                         f->type == KIND_SIDE ? "B, S, buy, sell, \"\"" : "C, P, call, put");
        return 1;
    }
    return tfail(d, PROTO_E_BAD_VALUE, f->key, "slot of unknown type");
}

/* The encodings clients actually send, decoded inline: returns the bytes
 * consumed with *out set, or 0 when dec_value_slow must look (any other
 * encoding, and every error). */
static inline __attribute__((always_inline)) size_t fast_value(const uint8_t *p, size_t avail,
                                                               uint8_t type, int64_t *out)
{
    _Static_assert(KIND_TS < KIND_U64 && KIND_FIX < KIND_U64 && KIND_SIDE > KIND_U64 &&
                       KIND_RIGHT > KIND_U64,
                   "integer slot types first");
    if (avail < 2)
        return 0;
    const uint8_t c = *p;
    if (type <= KIND_U64) { /* TS, FIX, U64: integers */
        uint64_t u;
        size_t n;
        if (c <= 0x7f) {
            u = c, n = 1;
        } else if ((c & 0xfc) == 0xcc && avail >= 9) {
            /* uint8/16/32/64: one big-endian load, shifted to the width */
            unsigned nb = 1u << (c & 3);
            u = be64(p + 1) >> (64 - 8 * nb);
            n = 1 + nb;
        } else {
            goto other;
        }
        if (type == KIND_FIX) {
            if (u > (uint64_t)(INT64_MAX / FIXP_SCALE))
                return 0;
            *out = (int64_t)u * FIXP_SCALE;
        } else {
            if (type == KIND_TS && u > INT64_MAX)
                return 0;
            *out = (int64_t)u;
        }
        return n;
    }
other:
    if (type == KIND_FIX) {
        uint32_t len = c & 0x1f;
        if ((c & 0xe0) == 0xa0 && len < avail && fast_decimal(p + 1, len, avail - 1, out))
            return 1 + len;
        if (c == 0xcb && avail >= 9) {
            uint64_t w = be64(p + 1);
            double x;
            memcpy(&x, &w, 8);
            /* Negative: dec_value_slow, which knows the slot's sign rule. */
            if (fixp_from_double(x, out) == FIXP_OK && *out >= 0)
                return 9;
        }
    } else if (type == KIND_SIDE && c == 0xa1) {
        const uint8_t ch = p[1] | 0x20; /* lower case */
        if (ch == 'b' || ch == 's') {
            *out = ch == 'b' ? KIND_SIDE_BUY : KIND_SIDE_SELL;
            return 2;
        }
    }
    return 0;
}

/* ---- trades ------------------------------------------------------------- */

static void set_kind(tstate *t, const kind *k, int tentative)
{
    t->k = k;
    t->ki = &kinfos[k->id];
    t->tentative = tentative;
}

/* The kind the symbol holds, in the store or as new in this batch (or
 * `trade` for a new one); the symbol is known. */
static void resolve(dec *d, tstate *t)
{
    const kind *k = store_batch_symbol_kind(d->s, d->b, (const char *)t->sym, t->symlen);
    set_kind(t, k ? k : &kind_trade, 0);
}

/* Find the first "sym" key of the map whose pairs start at `first`, without
 * moving d->p. Used only when the symbol is needed before the main pass has
 * reached it; its errors are the trade's first (PROTOCOL.md 3.5). */
static int find_sym(dec *d, const uint8_t *first, uint32_t npairs, tstate *t)
{
    const uint8_t *p = first;
    hdr h;
    for (uint32_t j = 0; j < npairs; j++) {
        const uint8_t *kp = p;
        if (rd_hdr(&p, d->end, &h, d->err))
            return -1;
        if (h.t == T_STR && h.n == 3 && memcmp(h.data, "sym", 3) == 0) {
            if (rd_hdr(&p, d->end, &h, d->err))
                return -1;
            if (h.t != T_STR)
                return tfail(d, PROTO_E_WRONG_TYPE, "sym", "expected a string, got %s",
                             mp_type_name(h.t));
            t->sym = h.data;
            t->symlen = h.n;
            t->symkey = kp;
            return 0;
        }
        uint64_t rest = 1 + (h.t == T_ARR ? h.n : h.t == T_MAP ? 2 * (uint64_t)h.n : 0);
        if (skip(&p, d->end, rest, d->err))
            return -1;
    }
    return tfail(d, PROTO_E_MISSING_FIELD, NULL, "missing sym");
}

/* d->err holds an error found before the symbol was seen; a missing or
 * mistyped symbol outranks it. */
static int fail_sym_first(dec *d, const uint8_t *first, uint32_t npairs, tstate *t)
{
    if (!t->sym)
        find_sym(d, first, npairs, t);
    return -1;
}

static int stage_failed(dec *d, tstate *t, int rc);

/* The bound on ts for this batch: one clock read per batch, not per trade. */
static int64_t max_ts_of(const proto_limits *lim)
{
    if (lim->max_future_ns <= 0)
        return INT64_MAX;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    return lim->max_future_ns > INT64_MAX - ns ? INT64_MAX : ns + lim->max_future_ns;
}

/* BAD_VALUE for a ts beyond d->max_ts, the bound written as the flag is. */
static __attribute__((noinline)) int ts_too_far(dec *d)
{
    static const struct {
        int64_t ns;
        const char *unit;
    } units[] = {{86400000000000LL, "d"}, {3600000000000LL, "h"}, {60000000000LL, "m"},
                 {1000000000LL, "s"},     {1000000LL, "ms"},      {1, "ns"}};
    int64_t f = d->lim->max_future_ns;
    size_t u = 0;
    while (f % units[u].ns)
        u++;
    return tfail(d, PROTO_E_BAD_VALUE, "ts", "more than %lld%s ahead of the wall clock",
                 (long long)(f / units[u].ns), units[u].unit);
}

/* Finish a trade: required slots and ranges, then stage it. */
static inline int stage(dec *d, tstate *t)
{
    const kind *k = t->k;
    const kinfo *ki = t->ki;
    int64_t *v = t->v;
    /* kind_check's verdict, cheaply: the decoders above only produce values
     * valid for their type (negative only in a KIND_SIGNED slot, which is
     * 64 bits wide), so what is left is presence and width. Anything off
     * goes to kind_check for the error. */
    const uint32_t all = (uint32_t)((1ull << k->nfields) - 1);
    int ok = (t->present & ki->req) == ki->req;
    for (uint32_t m = all & ~t->present; m; m &= m - 1) /* absent: 0 */
        v[__builtin_ctz(m)] = 0;
    for (uint32_t m = ki->narrow & t->present; ok && m; m &= m - 1) {
        int i = __builtin_ctz(m);
        ok = (uint64_t)v[i] <= ki->max[i];
    }
    if (!ok) {
        int bad = 0;
        int rc = kind_check(k, v, t->present, &bad);
        if (rc == KIND_EMISSING)
            return tfail(d, PROTO_E_MISSING_FIELD, NULL, "missing %s", k->fields[bad].key);
        if (rc != KIND_OK)
            return tfail(d, PROTO_E_BAD_VALUE, k->fields[bad].key,
                         "out of range for its %u-bit slot", k->fields[bad].bits);
    }
    if (v[TRADE_ts] > d->max_ts)
        return ts_too_far(d);
    int rc = store_batch_add(d->s, d->b, (const char *)t->sym, t->symlen, k, v);
    if (rc == STORE_OK)
        return 0;
    return stage_failed(d, t, rc);
}

/* store_batch_add said no: a derived kind to retry with, or the error. */
static int stage_failed(dec *d, tstate *t, int rc)
{
    const kind *k = t->k;
    if (rc == STORE_EKIND && t->tentative) {
        /* Decoded as `trade`, but the symbol holds a derived kind: judge the
         * same values by that kind (its own slots are all absent). */
        resolve(d, t);
        if (t->k != k)
            return stage(d, t);
    }
    int n = (int)(t->symlen > 40 ? 40 : t->symlen);
    const char *sym = (const char *)t->sym;
    switch (rc) {
    case STORE_ESYMBOL:
        return tfail(d, PROTO_E_BAD_SYMBOL, "sym", "not 1-%d bytes of UTF-8", STORE_SYM_MAX);
    case STORE_EKIND: {
        const kind *have = store_batch_symbol_kind(d->s, d->b, sym, t->symlen);
        return tfail(d, PROTO_E_KIND_MISMATCH, NULL, "symbol %.*s holds kind %s, not %s", n, sym,
                     have ? have->name : "?", k->name);
    }
    case STORE_ESYMLIMIT:
        return tfail(d, PROTO_E_SYMBOL_LIMIT, NULL, "symbol %.*s would exceed the symbol limit",
                     n, sym);
    default:
        return tfail(d, PROTO_E_STORE_FULL, NULL, "%s", core_strerror(rc));
    }
}

/* Slot index of a key code, trying the slot after the previous match first:
 * clients send keys in declaration order, so that nearly always hits. */
static inline int match_key(const tstate *t, uint64_t code, int *hint)
{
    const uint64_t *codes = t->ki->code;
    int nf = t->k->nfields, h = *hint;
    if (h < nf && codes[h] == code) {
        *hint = h + 1;
        return h;
    }
    for (int i = 0; i < nf; i++)
        if (codes[i] == code) {
            *hint = i + 1;
            return i;
        }
    return -1;
}

/* A map trade in one pass. Without a declared kind it is decoded as
 * `trade` (when base_first holds) and the store is asked for the symbol's
 * kind only if a key is not a trade slot or staging reports another kind;
 * since a derived kind starts with trade's slots, the verdict is the same
 * as resolving the kind first, which is what PROTOCOL.md specifies. */
static int dec_map_trade(dec *d, uint32_t npairs)
{
    tstate t;
    const uint8_t *first = d->p;
    int hint = 0;
    hdr h;
    t.sym = t.symkey = NULL;
    t.symlen = 0;
    t.present = t.seen = 0;
    if (d->declared) {
        set_kind(&t, d->declared, 0);
    } else if (base_first) {
        set_kind(&t, &kind_trade, 1);
    } else {
        if (find_sym(d, first, npairs, &t))
            return -1;
        resolve(d, &t);
    }
    /* p lives in a register; d->p is brought up to date before any call
     * that reads it (the slow paths). */
    const uint8_t *p = d->p, *const end = d->end;
    const kinfo *ki = t.ki;
    uint32_t j = 0;
    /* "sym" first with a fixstr value, as clients send it: take it here. */
    if (npairs && end - p >= 8 && (le64(p) & 0xffffffff) == SYM_WIRE && (p[4] & 0xe0) == 0xa0 &&
        (p[4] & 0x1fu) < (size_t)(end - p - 4)) {
        t.symkey = p;
        t.sym = p + 5;
        t.symlen = p[4] & 0x1f;
        p = t.sym + t.symlen;
        j = 1;
    }
    /* Then slots in declaration order, each value in a common encoding: a
     * tight loop (in-order keys cannot repeat). The first key or value that
     * is anything else is left to the general loop below. */
    {
        const kind_field *fields = t.k->fields;
        const int nf = t.k->nfields;
        uint32_t got = 0;
        int fi = 0;
        while (j < npairs && fi < nf && end - p >= 8 &&
               (le64(p) & ki->wmask[fi]) == ki->wire[fi]) {
            const uint8_t *vp = p + ki->wlen[fi];
            size_t n = fast_value(vp, (size_t)(end - vp), fields[fi].type, &t.v[fi]);
            if (!n)
                break;
            p = vp + n;
            got |= 1u << fi;
            fi++, j++;
        }
        t.present = t.seen = got;
        hint = fi;
    }
    for (; j < npairs; j++) {
        const uint8_t *kp = p, *key;
        uint32_t klen;
        int fi;
        /* The key expected next (declaration order), in one compare. */
        if (hint < t.k->nfields && end - p >= 8 && (le64(p) & ki->wmask[hint]) == ki->wire[hint]) {
            fi = hint++;
            p += ki->wlen[fi];
            goto value;
        }
        if (p < end && (*p & 0xe0) == 0xa0 && (*p & 0x1fu) < (size_t)(end - p)) {
            klen = *p & 0x1f; /* fixstr: nearly every key */
            key = p + 1;
            p = key + klen;
        } else {
            d->p = p;
            if (rd_hdr(&d->p, end, &h, d->err))
                return fail_sym_first(d, first, npairs, &t);
            if (h.t != T_STR) {
                tfail(d, PROTO_E_WRONG_TYPE, NULL, "map key is a %s, not a string",
                      mp_type_name(h.t));
                return fail_sym_first(d, first, npairs, &t);
            }
            p = d->p;
            key = h.data;
            klen = h.n;
        }
        uint64_t code = key_code(key, klen, end);
        fi = match_key(&t, code, &hint);
        if (fi < 0) {
            d->p = p;
            if (code == sym_code) {
                if (t.symkey == kp) { /* found ahead by find_sym */
                    if (skip(&d->p, end, 1, d->err))
                        return -1;
                    p = d->p;
                    continue;
                }
                if (t.sym)
                    return tfail(d, PROTO_E_BAD_VALUE, "sym", "duplicate key");
                if (rd_hdr(&d->p, end, &h, d->err))
                    return -1;
                if (h.t != T_STR)
                    return tfail(d, PROTO_E_WRONG_TYPE, "sym", "expected a string, got %s",
                                 mp_type_name(h.t));
                t.sym = h.data;
                t.symlen = h.n;
                t.symkey = kp;
                p = d->p;
                continue;
            }
            if (code >= KEY_NONE)
                fi = kind_field_index(t.k, (const char *)key, klen);
            if (fi < 0 && t.tentative) { /* maybe a slot of the symbol's kind */
                if (!t.sym && find_sym(d, first, npairs, &t))
                    return -1;
                resolve(d, &t);
                ki = t.ki;
                fi = code >= KEY_NONE ? kind_field_index(t.k, (const char *)key, klen)
                                      : match_key(&t, code, &hint);
            }
            if (fi < 0) {
                if (!t.sym && find_sym(d, first, npairs, &t))
                    return -1;
                if (d->lim->ignore_unknown) {
                    d->skipped = 1;
                    if (skip(&d->p, end, 1, d->err))
                        return -1;
                    p = d->p;
                    continue;
                }
                return tfail(d, PROTO_E_UNKNOWN_FIELD, NULL, "kind %s has no field \"%.*s\"",
                             t.k->name, (int)(klen > 40 ? 40 : klen), (const char *)key);
            }
        }
    value:
        if (t.seen >> fi & 1) {
            tfail(d, PROTO_E_BAD_VALUE, t.k->fields[fi].key, "duplicate key");
            return fail_sym_first(d, first, npairs, &t);
        }
        t.seen |= 1u << fi;
        const kind_field *f = &t.k->fields[fi];
        size_t n = fast_value(p, (size_t)(end - p), f->type, &t.v[fi]);
        if (n) {
            p += n;
            t.present |= 1u << fi;
        } else {
            d->p = p;
            int r = dec_value_slow(d, f, &t.v[fi]);
            if (r < 0)
                return fail_sym_first(d, first, npairs, &t);
            p = d->p;
            t.present |= (uint32_t)r << fi;
        }
    }
    d->p = p;
    if (!t.sym)
        return tfail(d, PROTO_E_MISSING_FIELD, NULL, "missing sym");
    return stage(d, &t);
}

static int dec_array_trade(dec *d, uint32_t n)
{
    tstate t;
    hdr h;
    if (n == 0)
        return tfail(d, PROTO_E_MISSING_FIELD, NULL, "missing sym (empty array)");
    const uint8_t *q = d->p;
    if (q < d->end && (*q & 0xe0) == 0xa0 && (*q & 0x1fu) < (size_t)(d->end - q)) {
        t.sym = q + 1; /* fixstr */
        t.symlen = *q & 0x1f;
        d->p = t.sym + t.symlen;
    } else {
        if (rd_hdr(&d->p, d->end, &h, d->err))
            return -1;
        if (h.t != T_STR)
            return tfail(d, PROTO_E_WRONG_TYPE, "sym", "expected a string, got %s",
                         mp_type_name(h.t));
        t.sym = h.data;
        t.symlen = h.n;
    }
    t.present = 0;
    uint32_t nv = n - 1;
    if (d->declared)
        set_kind(&t, d->declared, 0);
    else if (base_first && nv <= kind_trade.nfields) /* as in dec_map_trade */
        set_kind(&t, &kind_trade, 1);
    else
        resolve(d, &t);
    uint32_t nf = t.k->nfields;
    if (nv > nf && !d->lim->ignore_unknown)
        return tfail(d, PROTO_E_UNKNOWN_FIELD, NULL, "%u values after sym, kind %s has %u slots",
                     nv, t.k->name, nf);
    uint32_t m = nv < nf ? nv : nf;
    const uint8_t *p = d->p, *const end = d->end;
    for (uint32_t i = 0; i < m; i++) {
        const kind_field *f = &t.k->fields[i];
        size_t k = fast_value(p, (size_t)(end - p), f->type, &t.v[i]);
        if (k) {
            p += k;
            t.present |= 1u << i;
            continue;
        }
        d->p = p;
        int r = dec_value_slow(d, f, &t.v[i]);
        if (r < 0)
            return -1;
        p = d->p;
        t.present |= (uint32_t)r << i;
    }
    d->p = p;
    if (nv > nf) {
        d->skipped = 1;
        if (skip(&d->p, d->end, nv - nf, d->err))
            return -1;
    }
    return stage(d, &t);
}

static int dec_trade(dec *d)
{
    const uint8_t *p = d->p;
    /* fixmap / fixarray inline; the general reader for the rest. */
    if (p < d->end && (*p & 0xe0) == 0x80) {
        d->p++;
        return (*p & 0x10) ? dec_array_trade(d, *p & 0x0f) : dec_map_trade(d, *p & 0x0f);
    }
    hdr h;
    if (rd_hdr(&d->p, d->end, &h, d->err))
        return -1;
    if (h.t == T_MAP)
        return dec_map_trade(d, h.n);
    if (h.t == T_ARR)
        return dec_array_trade(d, h.n);
    return tfail(d, PROTO_E_WRONG_TYPE, NULL, "a trade is a map or an array, not a %s",
                 mp_type_name(h.t));
}

/* ---- messages ----------------------------------------------------------- */

/* The message at msg, decoded and staged. framed: msg[0..len) is exactly one
 * message (proto_frame found its end). Unframed: msg[0..len) is what has
 * arrived, the message's end unknown; it is wherever the decode stops, so
 * there is no check for trailing bytes, and *msg_len is set on success. */
static int decode_batch(const uint8_t *msg, size_t len, int framed, const proto_limits *lim,
                        store *s, store_batch *b, uint64_t *seq, size_t *msg_len,
                        proto_error *err)
{
    dec d;
    hdr h;
    uint32_t ntrades;
    *seq = 0;
    store_batch_reset(b);
    d.p = msg, d.end = msg + len;
    d.lim = lim, d.s = s, d.b = b, d.err = err, d.declared = NULL, d.idx = -1;
    d.max_ts = max_ts_of(lim);
    d.skipped = 0;

    if (rd_hdr(&d.p, d.end, &h, err))
        goto fail;
    if (h.t != T_ARR || h.n < 3 || h.n > 4) {
        proto_error_set(err, PROTO_E_BAD_MESSAGE, -1, "a batch is [\"T\", seq, [trades...], kind?]");
        goto fail;
    }
    uint32_t nelem = h.n;
    if (rd_hdr(&d.p, d.end, &h, err))
        goto fail;
    if (!is_str(&h, "T")) {
        proto_error_set(err, PROTO_E_BAD_MESSAGE, -1, "not a T message");
        goto fail;
    }
    if (rd_hdr(&d.p, d.end, &h, err))
        goto fail;
    if (h.t != T_UINT || h.u == 0) {
        proto_error_set(err, PROTO_E_BAD_MESSAGE, -1, "seq must be a positive integer");
        goto fail;
    }
    *seq = h.u;
    if (rd_hdr(&d.p, d.end, &h, err))
        goto fail;
    if (h.t != T_ARR) {
        proto_error_set(err, PROTO_E_BAD_MESSAGE, -1, "the trades must be an array, not a %s",
             mp_type_name(h.t));
        goto fail;
    }
    ntrades = h.n;
    if (ntrades > lim->max_batch) {
        proto_error_set(err, PROTO_E_TOO_LARGE, -1,
             "%u trades in a batch, more than the limit of %u (--max-batch)", ntrades,
             lim->max_batch);
        goto fail;
    }
    if (nelem == 4) {
        /* The kind name follows the trades, and it decides how they read. */
        const uint8_t *trades = d.p;
        if (skip(&d.p, d.end, ntrades, err) || rd_hdr(&d.p, d.end, &h, err))
            goto fail;
        if (h.t == T_STR) {
            d.declared = kind_by_name((const char *)h.data, h.n);
            if (!d.declared) {
                proto_error_set(err, PROTO_E_UNKNOWN_KIND, -1, "unknown kind \"%.*s\"",
                     (int)(h.n > 40 ? 40 : h.n), (const char *)h.data);
                goto fail;
            }
        } else if (h.t != T_NIL) {
            proto_error_set(err, PROTO_E_BAD_MESSAGE, -1, "the kind must be a string, not a %s",
                 mp_type_name(h.t));
            goto fail;
        }
        if (framed && d.p != d.end)
            goto trailing;
        d.end = d.p; /* unframed: the message's end is now known */
        d.p = trades;
    }
    /* Trades in the common shape go through dec_fast; the first that does
     * not, and only it, through the general decoder, which decides it. */
    int fast = dec_fast_usable(d.declared);
    for (uint32_t i = 0; i < ntrades; i++) {
        if (fast && (i += dec_fast(&d.p, d.end, s, b, ntrades - i, d.max_ts)) == ntrades)
            break;
        d.idx = i;
        if (dec_trade(&d))
            goto fail;
    }
    if (nelem == 4)
        skip(&d.p, d.end, 1, err); /* the kind, already checked */
    if (framed && d.p != d.end)
        goto trailing;
    if (!framed)
        *msg_len = (size_t)(d.p - msg);
    return d.skipped ? 1 : 0;

trailing:
    proto_error_set(err, PROTO_E_MALFORMED, -1, "%zu bytes after the message's value",
         (size_t)(d.end - d.p));
fail:
    store_batch_reset(b);
    return -1;
}

int proto_decode_batch(const uint8_t *msg, size_t len, const proto_limits *lim, store *s,
                       store_batch *b, uint64_t *seq, proto_error *err)
{
    return decode_batch(msg, len, 1, lim, s, b, seq, NULL, err) < 0 ? -1 : 0;
}

/* Sound because a decode that succeeds has read every byte of the message
 * as msgpack (rd_hdr's rules are the framer's, 0xc1 included), so the value
 * ends where the decode stopped and proto_frame would find that end. What
 * the decode does not check is the framer's limits: the length against
 * max_msg (every framer limit holds for a value that ends within it), and
 * nesting, which is outer array, trades array, trade — three levels —
 * unless a value was skipped unread (ignore_unknown), whose depth is not
 * known. Those cases, and every failure (a message not complete yet
 * included), go back to the caller, which frames and decides. */
int proto_decode_batch_prefix(const uint8_t *buf, size_t avail, const proto_limits *lim,
                              store *s, store_batch *b, uint64_t *seq, size_t *msg_len)
{
    proto_error scratch;
    size_t n = 0;
    /* (PROTO_DEPTH_CAP is more than 3.) */
    if (lim->max_depth < 3 || decode_batch(buf, avail, 0, lim, s, b, seq, &n, &scratch) != 0 ||
        n > lim->max_msg) {
        store_batch_reset(b);
        *seq = 0;
        return 0;
    }
    *msg_len = n;
    return 1;
}
