/* query — parameters, the TCP Q decoder, and the one result writer.
 *
 * Both transports end in query_set_param (text values) and query_run (an
 * emitter), so a parameter means the same thing and a result has the same
 * shape over HTTP/JSON and TCP/msgpack. Every store call that can fail is
 * made before the first byte is emitted, so an error never leaves half a
 * result behind.
 */
#include "query.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "duration.h"
#include "fixp.h"

#define DEFAULT_LIMIT 1000
#define DEFAULT_TOP 10
#define DEFAULT_INTERVAL 60000000000LL /* bars: one minute */
#define NS_PER_SEC 1000000000LL

/* Parameters, as bits, and which ops take which. */
enum { P_FROM = 1, P_TO = 2, P_LIMIT = 4, P_CURSOR = 8, P_INTERVAL = 16, P_TOP = 32, P_BY = 64 };

static const struct {
    const char *name;
    unsigned params;
    int needs_sym;
} ops[] = {
    [QUERY_STATS] = {"stats", 0, 0},
    [QUERY_SYMBOL] = {"symbol", 0, 1},
    [QUERY_TRADES] = {"trades", P_FROM | P_TO | P_LIMIT | P_CURSOR, 1},
    [QUERY_BARS] = {"bars", P_FROM | P_TO | P_INTERVAL, 1},
    [QUERY_TOP] = {"top", P_TOP | P_BY, 0},
    [QUERY_SCHEMA] = {"schema", 0, 0},
    [QUERY_DELETE] = {"delete", P_FROM | P_TO, 1},
    [QUERY_OFFSETS] = {"offsets", 0, 0},
};
#define NOPS (sizeof ops / sizeof ops[0])

static const char *const by_names[] = {"count", "volume", "notional"};

/* A query error names no trade: index -1. */
#define fail(err, code, ...) proto_error_set((err), (code), -1, __VA_ARGS__)

void query_req_init(query_req *q, query_op op)
{
    memset(q, 0, sizeof *q);
    q->op = op;
    q->from = INT64_MIN; /* everything: timestamps are >= 0, but ranges may start earlier */
    q->to = INT64_MAX;
    q->interval = DEFAULT_INTERVAL;
    q->cursor = 0;
    q->limit = DEFAULT_LIMIT;
    q->top = DEFAULT_TOP;
    q->by = STORE_BY_COUNT;
}

int query_set_symbol(query_req *q, const char *sym, size_t len, proto_error *err)
{
    if (len == 0 || len > STORE_SYM_MAX)
        return fail(err, PROTO_E_BAD_QUERY, "symbol must be 1-%d bytes (got %zu)", STORE_SYM_MAX,
                    len);
    memcpy(q->sym, sym, len);
    q->sym[len] = 0;
    q->symlen = len;
    return 0;
}

/* ---- text parsing ------------------------------------------------------------ */

static int parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 20)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
            return -1;
    }
    *out = v;
    return 0;
}

static int parse_i64(const char *s, size_t len, int64_t *out)
{
    int neg = len > 0 && s[0] == '-';
    uint64_t u;
    if (parse_u64(s + neg, len - (size_t)neg, &u) < 0)
        return -1;
    if (neg ? u > (uint64_t)INT64_MAX + 1 : u > (uint64_t)INT64_MAX)
        return -1;
    *out = neg ? (int64_t)(0 - u) : (int64_t)u;
    return 0;
}

/* n decimal digits at s as an int, or -1. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil), exact for every year we accept. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

/* RFC 3339: YYYY-MM-DD('T'|'t'|' ')hh:mm:ss[.f{1,9}](Z|z|±hh:mm), or a bare
 * YYYY-MM-DD meaning midnight UTC. Leap seconds (ss = 60) are refused:
 * nanosecond epoch time cannot name them. */
static int parse_rfc3339(const char *s, size_t len, int64_t *ns)
{
    if (len < 10 || s[4] != '-' || s[7] != '-')
        return -1;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int hh = 0, mi = 0, ss = 0, off = 0;
    int64_t frac = 0;
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return -1;
    if (len > 10) {
        size_t p = 19;
        if (len < 20 || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' ||
            s[16] != ':')
            return -1;
        hh = digits(s + 11, 2);
        mi = digits(s + 14, 2);
        ss = digits(s + 17, 2);
        if (hh < 0 || hh > 23 || mi < 0 || mi > 59 || ss < 0 || ss > 59)
            return -1;
        if (s[p] == '.') {
            int nd = 0;
            for (p++; p < len && s[p] >= '0' && s[p] <= '9'; p++, nd++) {
                if (nd >= 9)
                    return -1; /* finer than a nanosecond */
                frac = frac * 10 + (s[p] - '0');
            }
            if (nd == 0)
                return -1;
            for (; nd < 9; nd++)
                frac *= 10;
        }
        if (p == len - 1 && (s[p] == 'Z' || s[p] == 'z')) {
            off = 0;
        } else if (p + 6 == len && (s[p] == '+' || s[p] == '-') && s[p + 3] == ':') {
            int oh = digits(s + p + 1, 2), om = digits(s + p + 4, 2);
            if (oh < 0 || oh > 23 || om < 0 || om > 59)
                return -1;
            off = (oh * 60 + om) * 60 * (s[p] == '-' ? -1 : 1);
        } else {
            return -1;
        }
    }
    int64_t secs = days_from_civil(y, mo, d) * 86400 + hh * 3600 + mi * 60 + ss - off;
    /* secs * 1e9 + frac. Before 1970 the fraction is added to the next
     * second up, or the lowest second (1677-09-21T00:12:43, which only fits
     * with its .145224192 or more) would overflow on the way. */
    int64_t v, up = secs < 0 && frac > 0;
    if (__builtin_mul_overflow(secs + up, NS_PER_SEC, &v) ||
        __builtin_add_overflow(v, frac - up * NS_PER_SEC, &v))
        return -1; /* outside 1677-09-21T00:12:43.145224192Z .. 2262-04-11T23:47:16.854775807Z */
    *ns = v;
    return 0;
}

int query_parse_time(const char *s, size_t len, int64_t *ns)
{
    if (parse_i64(s, len, ns) == 0)
        return 0;
    return parse_rfc3339(s, len, ns);
}

/* The one duration grammar (core/duration.h): a bare number is seconds,
 * like every duration flag; the TCP wire's integer stays ns (decode_params). */
int query_parse_interval(const char *s, size_t len, int64_t *ns)
{
    int64_t v;
    if (duration_parse(s, len, &v) != DURATION_OK || v <= 0)
        return -1;
    *ns = v;
    return 0;
}

/* ---- parameters --------------------------------------------------------------- */

#define SHOWN 40 /* bytes of a bad name or value quoted back in a message */

static int bad_value(proto_error *err, const char *name, const char *val, size_t vlen,
                     const char *want)
{
    return fail(err, PROTO_E_BAD_QUERY, "parameter '%s': '%.*s%s' is not %s", name,
                (int)(vlen > SHOWN ? SHOWN : vlen), val, vlen > SHOWN ? "..." : "", want);
}

int query_set_param(query_req *q, const char *name, size_t nlen, const char *val, size_t vlen,
                    proto_error *err)
{
    static const struct {
        const char *name;
        unsigned bit;
    } params[] = {{"from", P_FROM},         {"to", P_TO},   {"limit", P_LIMIT}, {"cursor", P_CURSOR},
                  {"interval", P_INTERVAL}, {"top", P_TOP}, {"by", P_BY}};
    unsigned bit = 0;
    const char *pname = NULL;
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++)
        if (strlen(params[i].name) == nlen && memcmp(params[i].name, name, nlen) == 0) {
            bit = params[i].bit;
            pname = params[i].name;
        }
    const char *opname = (unsigned)q->op < NOPS && ops[q->op].name ? ops[q->op].name : "?";
    if (!bit)
        return fail(err, PROTO_E_BAD_QUERY, "unknown parameter '%.*s%s'",
                    (int)(nlen > SHOWN ? SHOWN : nlen), name, nlen > SHOWN ? "..." : "");
    if ((unsigned)q->op >= NOPS || !(ops[q->op].params & bit))
        return fail(err, PROTO_E_BAD_QUERY, "parameter '%s' does not apply to %s queries", pname,
                    opname);

    uint64_t u;
    switch (bit) {
    case P_FROM:
    case P_TO:
        if (query_parse_time(val, vlen, bit == P_FROM ? &q->from : &q->to) < 0)
            return bad_value(err, pname, val, vlen,
                             "a time (ns since the epoch, or RFC 3339 like 2026-01-01T00:00:00.5Z)");
        *(bit == P_FROM ? &q->has_from : &q->has_to) = 1;
        return 0;
    case P_LIMIT:
    case P_TOP:
        if (parse_u64(val, vlen, &u) < 0 || u == 0)
            return bad_value(err, pname, val, vlen, "a positive integer");
        /* Clamped, not refused: asking for "everything" gets the most one
         * call may return, and the cursor continues from there. */
        if (bit == P_LIMIT)
            q->limit = u > STORE_MAX_TRADES ? STORE_MAX_TRADES : (uint32_t)u;
        else
            q->top = u > STORE_MAX_TOP ? STORE_MAX_TOP : (uint32_t)u;
        return 0;
    case P_CURSOR:
        if (parse_u64(val, vlen, &q->cursor) < 0)
            return bad_value(err, pname, val, vlen, "a cursor (a non-negative integer)");
        return 0;
    case P_INTERVAL:
        if (query_parse_interval(val, vlen, &q->interval) < 0)
            return bad_value(err, pname, val, vlen,
                             "an interval (a positive duration: 1.5s, 500ms, 5m, 1h, 1d; "
                             "a bare number is seconds)");
        return 0;
    case P_BY:
        for (int i = 0; i < 3; i++)
            if (strlen(by_names[i]) == vlen && memcmp(by_names[i], val, vlen) == 0) {
                q->by = (store_by)i;
                return 0;
            }
        return bad_value(err, pname, val, vlen, "one of count, volume, notional");
    }
    return fail(err, PROTO_E_BAD_QUERY, "unknown parameter");
}

/* ---- TCP: ["Q", qid, {"op": ..., ...}] ----------------------------------------- */

static int obj_is(const msgpack_object *o, const char *lit)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(lit) &&
           memcmp(o->via.str.ptr, lit, o->via.str.size) == 0;
}

/* The op, from the request map; -1 with err when absent or unknown. */
static int decode_op(const msgpack_object_map *m, query_op *op, proto_error *err)
{
    for (uint32_t i = 0; i < m->size; i++) {
        if (!obj_is(&m->ptr[i].key, "op"))
            continue;
        const msgpack_object *v = &m->ptr[i].val;
        for (unsigned k = 1; k < NOPS && v->type == MSGPACK_OBJECT_STR; k++)
            if (obj_is(v, ops[k].name)) {
                *op = (query_op)k;
                return 0;
            }
        if (v->type != MSGPACK_OBJECT_STR)
            return fail(err, PROTO_E_BAD_QUERY, "'op' must be a string");
        return fail(err, PROTO_E_BAD_QUERY,
                    "unknown op '%.*s': one of stats, symbol, trades, bars, top, schema, delete, "
                    "offsets",
                    (int)(v->via.str.size > SHOWN ? SHOWN : v->via.str.size), v->via.str.ptr);
    }
    return fail(err, PROTO_E_BAD_QUERY, "the query map has no 'op'");
}

/* Every other key goes through query_set_param as text, so TCP and HTTP
 * accept exactly the same values. */
static int decode_params(const msgpack_object_map *m, query_req *q, proto_error *err)
{
    int have_sym = 0;
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
        char num[24];
        const char *val;
        size_t vlen;
        if (k->type != MSGPACK_OBJECT_STR)
            return fail(err, PROTO_E_BAD_QUERY, "query map keys must be strings");
        if (obj_is(k, "op"))
            continue;
        if (obj_is(k, "sym")) {
            if (!ops[q->op].needs_sym)
                return fail(err, PROTO_E_BAD_QUERY, "'sym' does not apply to %s queries",
                            ops[q->op].name);
            if (v->type != MSGPACK_OBJECT_STR)
                return fail(err, PROTO_E_BAD_QUERY, "'sym' must be a string");
            if (query_set_symbol(q, v->via.str.ptr, v->via.str.size, err) < 0)
                return -1;
            have_sym = 1;
            continue;
        }
        if (v->type == MSGPACK_OBJECT_STR) {
            val = v->via.str.ptr;
            vlen = v->via.str.size;
        } else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            /* An integer time on the wire is ns (ts, from, to): so is an
             * integer interval, while its text form is a duration. */
            vlen = (size_t)snprintf(num, sizeof num, "%llu%s", (unsigned long long)v->via.u64,
                                    obj_is(k, "interval") ? "ns" : "");
            val = num;
        } else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
            vlen = (size_t)snprintf(num, sizeof num, "%lld", (long long)v->via.i64);
            val = num;
        } else {
            return fail(err, PROTO_E_BAD_QUERY, "parameter '%.*s' must be an integer or a string",
                        (int)(k->via.str.size > SHOWN ? SHOWN : k->via.str.size), k->via.str.ptr);
        }
        if (query_set_param(q, k->via.str.ptr, k->via.str.size, val, vlen, err) < 0)
            return -1;
    }
    if (ops[q->op].needs_sym && !have_sym)
        return fail(err, PROTO_E_BAD_QUERY, "%s queries need 'sym'", ops[q->op].name);
    return 0;
}

int query_decode(const uint8_t *msg, size_t len, uint64_t *qid, query_req *q, proto_error *err)
{
    msgpack_unpacked u;
    size_t off = 0;
    int rc = -1;
    query_op op = QUERY_STATS;
    *qid = 0;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, (const char *)msg, len, &off) != MSGPACK_UNPACK_SUCCESS) {
        fail(err, PROTO_E_MALFORMED, "the Q message is not valid msgpack");
        goto cleanup;
    }
    const msgpack_object *o = &u.data;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 3 ||
        !obj_is(&o->via.array.ptr[0], "Q")) {
        fail(err, PROTO_E_BAD_MESSAGE, "a query is [\"Q\", qid, {\"op\": ..., ...}]");
        goto cleanup;
    }
    const msgpack_object *a = o->via.array.ptr;
    if (a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        fail(err, PROTO_E_BAD_MESSAGE, "the query id must be a non-negative integer");
        goto cleanup;
    }
    *qid = a[1].via.u64;
    if (a[2].type != MSGPACK_OBJECT_MAP) {
        fail(err, PROTO_E_BAD_MESSAGE, "the third element of Q must be a map");
        goto cleanup;
    }
    if (decode_op(&a[2].via.map, &op, err) < 0)
        goto cleanup;
    query_req_init(q, op);
    if (decode_params(&a[2].via.map, q, err) < 0)
        goto cleanup;
    rc = 0;
cleanup:
    msgpack_unpacked_destroy(&u);
    return rc;
}

/* ---- result writer ------------------------------------------------------------------ */

/* Exact decimal text of v * 10^-decimals, trailing zeros trimmed: the
 * 128-bit sums (volume at 1e-8, notional at 1e-16) as fixp_format would. */
static size_t fmt_u128(unsigned __int128 v, int decimals, char *out)
{
    char tmp[48];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v);
    while (n <= decimals)
        tmp[n++] = '0';
    size_t len = 0;
    for (int i = n - 1; i >= decimals; i--)
        out[len++] = tmp[i];
    int last = 0; /* lowest fractional digit that is not zero */
    while (last < decimals && tmp[last] == '0')
        last++;
    if (last < decimals) {
        out[len++] = '.';
        for (int i = decimals - 1; i >= last; i--)
            out[len++] = tmp[i];
    }
    out[len] = 0;
    return len;
}

static double u128_to_double(unsigned __int128 v, int decimals)
{
    unsigned __int128 scale = 1;
    for (int i = 0; i < decimals; i++)
        scale *= 10;
    return (double)(v / scale) + (double)(v % scale) / (double)scale;
}

static void kv_str(emit *e, const char *k, const char *v)
{
    e->key(e, k);
    emit_cstr(e, v);
}

static void kv_u64(emit *e, const char *k, uint64_t v)
{
    e->key(e, k);
    e->u64(e, v);
}

static void kv_i64(emit *e, const char *k, int64_t v)
{
    e->key(e, k);
    e->i64(e, v);
}

static void key_s(emit *e, const char *k)
{
    char kb[64];
    snprintf(kb, sizeof kb, "%s_s", k);
    e->key(e, kb);
}

/* A fixed-point value twice: as a number and as its exact text `<k>_s`. */
static void kv_fix(emit *e, const char *k, int64_t v)
{
    char b[FIXP_STRLEN];
    e->key(e, k);
    e->fix(e, v);
    key_s(e, k);
    e->str(e, b, fixp_format(v, b));
}

/* The same for a 128-bit sum at 10^-decimals (8 or 16), given as a sign
 * and a magnitude (notional is signed: prices may be negative). The number
 * is exact (a fix) whenever the value is representable at 1e-8 in 64 bits. */
static void kv_sum(emit *e, const char *k, int neg, unsigned __int128 v, int decimals)
{
    char b[50];
    unsigned __int128 at8 = v;
    int exact = 1;
    for (int i = 8; i < decimals; i++) {
        exact &= at8 % 10 == 0;
        at8 /= 10;
    }
    e->key(e, k);
    if (exact && at8 <= INT64_MAX)
        e->fix(e, neg ? -(int64_t)at8 : (int64_t)at8);
    else
        e->dbl(e, neg ? -u128_to_double(v, decimals) : u128_to_double(v, decimals));
    key_s(e, k);
    b[0] = '-';
    e->str(e, neg ? b : b + 1, fmt_u128(v, decimals, b + 1) + (neg ? 1 : 0));
}

static void kv_u128(emit *e, const char *k, unsigned __int128 v, int decimals)
{
    kv_sum(e, k, 0, v, decimals);
}

static void kv_i128(emit *e, const char *k, __int128 v, int decimals)
{
    kv_sum(e, k, v < 0, v < 0 ? -(unsigned __int128)v : (unsigned __int128)v, decimals);
}

static void run_stats(const store *s, emit *e)
{
    store_stats st;
    store_get_stats(s, &st);
    e->map(e, 13);
    kv_u64(e, "trades", st.trades);
    kv_u64(e, "symbols", st.symbols);
    kv_u64(e, "batches", st.batches);
    kv_u64(e, "pages", st.pages);
    kv_u64(e, "pages_compact", st.pages_compact);
    kv_u64(e, "bytes_cap", st.bytes_cap);
    kv_u64(e, "bytes_reserved", st.bytes_reserved);
    kv_u64(e, "bytes_used", st.bytes_used);
    kv_u64(e, "bytes_slots", st.bytes_slots);
    kv_u64(e, "bytes_index", st.bytes_index);
    kv_u64(e, "bytes_pending", st.bytes_pending);
    e->key(e, "fill");
    e->dbl(e, st.fill);
    /* Bytes the store occupies per trade (used, not reserved: `fill` says
     * how much of the reserve is still empty). */
    e->key(e, "bytes_per_trade");
    if (st.trades)
        e->dbl(e, (double)st.bytes_used / (double)st.trades);
    else
        e->nil(e);
    e->end(e);
}

/* The symbol as received, for a message: control bytes (a NUL from
 * "A%00B", newlines) as \xHH, so "A\0B" is not shown as "A". */
static const char *sym_shown(const query_req *q, char *buf, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < q->symlen && n + 5 <= cap; i++) {
        unsigned char ch = (unsigned char)q->sym[i];
        if (ch < 0x20 || ch == 0x7f)
            n += (size_t)snprintf(buf + n, cap - n, "\\x%02x", ch);
        else
            buf[n++] = (char)ch;
    }
    buf[n] = '\0';
    return buf;
}

static int store_fail(int rc, const query_req *q, proto_error *err)
{
    char shown[4 * STORE_SYM_MAX + 1];
    switch (rc) {
    case STORE_ENOTFOUND:
        return fail(err, PROTO_E_NOT_FOUND, "no symbol '%s'", sym_shown(q, shown, sizeof shown));
    case STORE_ELIMIT:
        return fail(err, PROTO_E_BAD_QUERY,
                    "the query would scan more than %u trades or return more than %u bars: "
                    "narrow from/to or widen the interval",
                    STORE_SCAN_BUDGET, STORE_MAX_BARS);
    case STORE_EINVAL:
        return fail(err, PROTO_E_BAD_QUERY, "invalid query parameters: %s", core_strerror(rc));
    default:
        return fail(err, PROTO_E_BAD_QUERY, "query failed: %s", core_strerror(rc));
    }
}

/* The aggregate fields shared by symbol, bars and top. */
static void emit_vol_notional_vwap(emit *e, const store_agg *a)
{
    kv_u128(e, "volume", a->volume, 8);
    kv_i128(e, "notional", a->notional, 16);
    kv_fix(e, "vwap", store_agg_vwap(a));
}

static void emit_ohlc(emit *e, const store_agg *a)
{
    kv_fix(e, "open", a->open);
    kv_fix(e, "high", a->high);
    kv_fix(e, "low", a->low);
    kv_fix(e, "close", a->close);
}

static int run_symbol(const store *s, const query_req *q, emit *e, proto_error *err)
{
    store_symbol_info si;
    int rc = store_symbol(s, q->sym, q->symlen, &si);
    if (rc < 0)
        return store_fail(rc, q, err);
    e->map(e, 20);
    kv_str(e, "symbol", si.name);
    kv_str(e, "kind", si.kind->name);
    kv_u64(e, "count", si.agg.count);
    emit_vol_notional_vwap(e, &si.agg);
    emit_ohlc(e, &si.agg);
    kv_i64(e, "first_ts", si.agg.first_ts);
    kv_i64(e, "last_ts", si.agg.last_ts);
    kv_u64(e, "pages", si.pages);
    e->end(e);
    return 0;
}

/* Trades are copied (packed) into a buffer of at most `limit` slots before
 * anything is emitted: msgpack needs the count up front, and an error must
 * leave no output. */
typedef struct collect {
    unsigned char *buf;
    uint32_t n, cap;
    uint16_t size;
} collect;

static void collect_visit(void *ctx, const kind *k, const void *slot)
{
    collect *c = ctx;
    if (c->n < c->cap && k->size == c->size)
        memcpy(c->buf + (size_t)c->n++ * c->size, slot, c->size);
}

uint32_t query_record_keys(const kind *k)
{
    uint32_t nkeys = k->nfields;
    for (int i = 0; i < k->nfields; i++)
        nkeys += k->fields[i].type == KIND_FIX; /* the _s twins */
    return nkeys;
}

/* One record, rendered from its kind's field table: a new slot needs no
 * code here. With sym (exports) the map starts with "symbol". */
static void emit_record(emit *e, const kind *k, const void *slot, uint32_t nkeys, const char *sym)
{
    int64_t v[KIND_MAX_FIELDS];
    k->unpack(slot, v);
    e->map(e, nkeys + (sym ? 2 : 0));
    if (sym) {
        kv_str(e, "symbol", sym);
        kv_str(e, "kind", k->name);
    }
    for (int i = 0; i < k->nfields; i++) {
        const kind_field *f = &k->fields[i];
        switch ((kind_type)f->type) {
        case KIND_FIX:
            kv_fix(e, f->key, v[i]);
            break;
        case KIND_U64:
            kv_u64(e, f->key, (uint64_t)v[i]);
            break;
        case KIND_SIDE:
        case KIND_RIGHT:
            kv_str(e, f->key, kind_enum_name((kind_type)f->type, v[i]));
            break;
        case KIND_TS:
        default:
            kv_i64(e, f->key, v[i]);
            break;
        }
    }
    e->end(e);
}

static int run_trades(const store *s, const query_req *q, emit *e, proto_error *err)
{
    store_symbol_info si;
    collect c = {0};
    uint64_t next = STORE_CURSOR_END;
    int rc = store_symbol(s, q->sym, q->symlen, &si);
    if (rc < 0)
        return store_fail(rc, q, err);
    c.size = si.kind->size;
    c.cap = q->limit > STORE_MAX_TRADES ? STORE_MAX_TRADES : q->limit;
    if (c.cap == 0)
        c.cap = 1;
    c.buf = malloc((size_t)c.cap * c.size);
    if (!c.buf)
        return fail(err, PROTO_E_BAD_QUERY, "out of memory for %u trades: lower the limit", c.cap);
    rc = store_scan(s, q->sym, q->symlen, q->from, q->to, q->cursor, c.cap, collect_visit, &c,
                    &next);
    if (rc < 0) {
        free(c.buf);
        return store_fail(rc, q, err);
    }
    uint32_t nkeys = query_record_keys(si.kind);
    e->map(e, 5);
    kv_str(e, "symbol", si.name);
    kv_str(e, "kind", si.kind->name);
    e->key(e, "trades");
    e->array(e, c.n);
    for (uint32_t i = 0; i < c.n; i++)
        emit_record(e, si.kind, c.buf + (size_t)i * c.size, nkeys, NULL);
    e->end(e);
    e->key(e, "next_cursor");
    if (next == STORE_CURSOR_END)
        e->nil(e);
    else
        e->u64(e, next);
    kv_u64(e, "count", c.n);
    e->end(e);
    free(c.buf);
    return 0;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t d = a / b;
    return (a % b != 0 && a < 0) ? d - 1 : d;
}

static int run_bars(const store *s, const query_req *q, emit *e, proto_error *err)
{
    store_symbol_info si;
    store_bar *bars = NULL;
    uint32_t nbars = 0;
    int rc = store_symbol(s, q->sym, q->symlen, &si);
    if (rc < 0)
        return store_fail(rc, q, err);
    /* Only the symbol's own time span can hold bars: clamping to it lets the
     * default range ("everything") work without tripping the bar limit. */
    int64_t from = q->from > si.agg.first_ts ? q->from : si.agg.first_ts;
    int64_t to = q->to;
    if (si.agg.last_ts < INT64_MAX && to > si.agg.last_ts + 1)
        to = si.agg.last_ts + 1;
    if (from < to) {
        int64_t first = floor_div(from, q->interval), last = floor_div(to - 1, q->interval);
        uint64_t span = (uint64_t)(last - first) + 1;
        if (span > STORE_MAX_BARS)
            return fail(err, PROTO_E_BAD_QUERY,
                        "the range holds %llu intervals of %lld ns; at most %u bars per query: "
                        "narrow from/to or widen the interval",
                        (unsigned long long)span, (long long)q->interval, STORE_MAX_BARS);
        bars = malloc((size_t)span * sizeof *bars);
        if (!bars)
            return fail(err, PROTO_E_BAD_QUERY, "out of memory for %llu bars",
                        (unsigned long long)span);
        rc = store_bars(s, q->sym, q->symlen, from, to, q->interval, bars, (uint32_t)span, &nbars);
        if (rc < 0) {
            free(bars);
            return store_fail(rc, q, err);
        }
    }
    e->map(e, 3);
    kv_str(e, "symbol", si.name);
    kv_i64(e, "interval", q->interval);
    e->key(e, "bars");
    e->array(e, nbars);
    for (uint32_t i = 0; i < nbars; i++) {
        const store_agg *a = &bars[i].agg;
        e->map(e, 14);
        kv_i64(e, "start", bars[i].start);
        emit_ohlc(e, a);
        kv_u128(e, "volume", a->volume, 8);
        kv_fix(e, "vwap", store_agg_vwap(a));
        kv_u64(e, "count", a->count);
        e->end(e);
    }
    e->end(e);
    e->end(e);
    free(bars);
    return 0;
}

static int run_top(const store *s, const query_req *q, emit *e, proto_error *err)
{
    uint32_t ids[STORE_MAX_TOP], n = 0;
    uint32_t want = q->top > STORE_MAX_TOP ? STORE_MAX_TOP : q->top;
    int rc = store_top(s, q->by, want, ids, &n);
    if (rc < 0)
        return store_fail(rc, q, err);
    e->map(e, 2);
    kv_str(e, "by", by_names[q->by <= STORE_BY_NOTIONAL ? q->by : 0]);
    e->key(e, "symbols");
    e->array(e, n);
    for (uint32_t i = 0; i < n; i++) {
        store_symbol_info si;
        /* Cannot fail for an id store_top just returned (one thread). */
        if (store_symbol_by_id(s, ids[i], &si) < 0)
            memset(&si, 0, sizeof si);
        e->map(e, 8);
        kv_str(e, "symbol", si.name);
        kv_u64(e, "count", si.agg.count);
        emit_vol_notional_vwap(e, &si.agg);
        e->end(e);
    }
    e->end(e);
    e->end(e);
    return 0;
}

static void run_schema(emit *e)
{
    unsigned nk = kind_count();
    e->map(e, 2);
    e->key(e, "kinds");
    e->array(e, nk);
    for (unsigned i = 0; i < nk; i++) {
        const kind *k = kind_by_id(i);
        e->map(e, 4);
        kv_str(e, "name", k->name);
        e->key(e, "base");
        if (k->base)
            emit_cstr(e, k->base->name);
        else
            e->nil(e);
        kv_u64(e, "slot_bytes", k->size);
        e->key(e, "slots");
        e->array(e, k->nfields);
        for (int j = 0; j < k->nfields; j++) {
            const kind_field *f = &k->fields[j];
            e->map(e, 6);
            kv_str(e, "name", f->key);
            kv_str(e, "type", kind_type_name((kind_type)f->type));
            kv_u64(e, "bits", f->bits);
            e->key(e, "required");
            e->boolean(e, (f->flags & KIND_REQ) != 0);
            e->key(e, "signed"); /* may be negative (prices); else >= 0 */
            e->boolean(e, (f->flags & KIND_SIGNED) != 0);
            kv_str(e, "doc", f->doc);
            e->end(e);
        }
        e->end(e);
        e->end(e);
    }
    e->end(e);
    kv_u64(e, "fixed_point_decimals", FIXP_DECIMALS);
    e->end(e);
}

int query_run(const store *s, const query_req *q, emit *e, proto_error *err)
{
    switch (q->op) {
    case QUERY_STATS:
        run_stats(s, e);
        return 0;
    case QUERY_SYMBOL:
        return run_symbol(s, q, e, err);
    case QUERY_TRADES:
        if (q->from >= q->to)
            return fail(err, PROTO_E_BAD_QUERY, "'from' must be before 'to'");
        return run_trades(s, q, e, err);
    case QUERY_BARS:
        if (q->from >= q->to)
            return fail(err, PROTO_E_BAD_QUERY, "'from' must be before 'to'");
        if (q->interval <= 0)
            return fail(err, PROTO_E_BAD_QUERY, "'interval' must be positive");
        return run_bars(s, q, e, err);
    case QUERY_TOP:
        return run_top(s, q, e, err);
    case QUERY_SCHEMA:
        run_schema(e);
        return 0;
    case QUERY_OFFSETS: /* a store has no Kafka offsets: a Kafka node answers it itself */
        e->map(e, 2);
        e->key(e, "topic");
        e->nil(e);
        e->key(e, "partitions");
        e->array(e, 0);
        e->end(e);
        e->end(e);
        return 0;
    case QUERY_DELETE:
        break; /* a write: server/delete.c journals it, then applies it */
    }
    return fail(err, PROTO_E_BAD_QUERY, "unknown query op %d", (int)q->op);
}

/* ---- deletes ------------------------------------------------------------------------ */

int query_delete_check(const query_req *q, proto_error *err)
{
    /* Both bounds explicit: "delete everything" must be said, not implied. */
    if (!q->has_from || !q->has_to)
        return fail(err, PROTO_E_BAD_QUERY, "delete needs both 'from' and 'to'");
    if (q->from >= q->to)
        return fail(err, PROTO_E_BAD_QUERY, "'from' must be before 'to'");
    return 0;
}

static int query__buf_write(void *data, const char *buf, size_t len)
{
    return proto_buf_append(data, buf, len);
}

int query_pack(proto_buf *out, uint64_t qid, const query_req *q)
{
    msgpack_packer pk;
    assert((unsigned)q->op < NOPS && ops[q->op].name);
    unsigned pm = ops[q->op].params;
    uint32_t n = 1 + (uint32_t)ops[q->op].needs_sym + ((pm & P_FROM) && q->has_from) +
                 ((pm & P_TO) && q->has_to) + !!(pm & P_LIMIT) + !!(pm & P_CURSOR) +
                 !!(pm & P_INTERVAL) + !!(pm & P_TOP) + !!(pm & P_BY);
    out->len = 0;
    msgpack_packer_init(&pk, out, query__buf_write);
    int rc = msgpack_pack_array(&pk, 3) | msgpack_pack_str_with_body(&pk, "Q", 1) |
             msgpack_pack_uint64(&pk, qid) | msgpack_pack_map(&pk, n) |
             msgpack_pack_str_with_body(&pk, "op", 2) |
             msgpack_pack_str_with_body(&pk, ops[q->op].name, strlen(ops[q->op].name));
    if (ops[q->op].needs_sym)
        rc |= msgpack_pack_str_with_body(&pk, "sym", 3) |
              msgpack_pack_str_with_body(&pk, q->sym, q->symlen);
    if ((pm & P_FROM) && q->has_from)
        rc |= msgpack_pack_str_with_body(&pk, "from", 4) | msgpack_pack_int64(&pk, q->from);
    if ((pm & P_TO) && q->has_to)
        rc |= msgpack_pack_str_with_body(&pk, "to", 2) | msgpack_pack_int64(&pk, q->to);
    if (pm & P_LIMIT)
        rc |= msgpack_pack_str_with_body(&pk, "limit", 5) | msgpack_pack_uint32(&pk, q->limit);
    if (pm & P_CURSOR)
        rc |= msgpack_pack_str_with_body(&pk, "cursor", 6) | msgpack_pack_uint64(&pk, q->cursor);
    if (pm & P_INTERVAL) /* an integer interval is ns on the wire */
        rc |= msgpack_pack_str_with_body(&pk, "interval", 8) |
              msgpack_pack_int64(&pk, q->interval);
    if (pm & P_TOP)
        rc |= msgpack_pack_str_with_body(&pk, "top", 3) | msgpack_pack_uint32(&pk, q->top);
    if (pm & P_BY) {
        const char *by = by_names[q->by <= STORE_BY_NOTIONAL ? q->by : 0];
        rc |= msgpack_pack_str_with_body(&pk, "by", 2) | msgpack_pack_str_with_body(&pk, by, strlen(by));
    }
    return rc ? -1 : 0;
}

int query_pack_delete(proto_buf *out, const query_req *q)
{
    msgpack_packer pk;
    out->len = 0;
    msgpack_packer_init(&pk, out, query__buf_write);
    int rc = msgpack_pack_array(&pk, 2) | msgpack_pack_str_with_body(&pk, "D", 1) |
             msgpack_pack_map(&pk, 3) | msgpack_pack_str_with_body(&pk, "sym", 3) |
             msgpack_pack_str_with_body(&pk, q->sym, q->symlen) |
             msgpack_pack_str_with_body(&pk, "from", 4) | msgpack_pack_int64(&pk, q->from) |
             msgpack_pack_str_with_body(&pk, "to", 2) | msgpack_pack_int64(&pk, q->to);
    return rc ? -1 : 0;
}

int query_decode_delete(const uint8_t *msg, size_t len, query_req *q, proto_error *err)
{
    msgpack_unpacked u;
    size_t off = 0;
    int rc = -1;
    query_req_init(q, QUERY_DELETE);
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, (const char *)msg, len, &off) != MSGPACK_UNPACK_SUCCESS) {
        fail(err, PROTO_E_MALFORMED, "the D record is not valid msgpack");
        goto cleanup;
    }
    const msgpack_object *o = &u.data;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2 ||
        !obj_is(&o->via.array.ptr[0], "D") || o->via.array.ptr[1].type != MSGPACK_OBJECT_MAP) {
        fail(err, PROTO_E_BAD_MESSAGE, "a delete record is [\"D\", {sym, from, to}]");
        goto cleanup;
    }
    const msgpack_object_map *m = &o->via.array.ptr[1].via.map;
    int have_sym = 0;
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
        int is_int = v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
                     v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
        if (obj_is(k, "sym") && v->type == MSGPACK_OBJECT_STR) {
            if (query_set_symbol(q, v->via.str.ptr, v->via.str.size, err) < 0)
                goto cleanup;
            have_sym = 1;
        } else if (obj_is(k, "from") && is_int) {
            q->from = v->via.i64, q->has_from = 1; /* written by query_pack_delete: int64 */
        } else if (obj_is(k, "to") && is_int) {
            q->to = v->via.i64, q->has_to = 1;
        } else {
            fail(err, PROTO_E_BAD_MESSAGE, "a delete record holds sym, from and to");
            goto cleanup;
        }
    }
    if (!have_sym) {
        fail(err, PROTO_E_BAD_MESSAGE, "a delete record names its symbol");
        goto cleanup;
    }
    rc = query_delete_check(q, err);
cleanup:
    msgpack_unpacked_destroy(&u);
    return rc;
}

void query_emit_deleted(emit *e, const query_req *q, uint64_t deleted)
{
    e->map(e, 4);
    e->key(e, "symbol");
    e->str(e, q->sym, q->symlen);
    e->key(e, "from");
    e->i64(e, q->from);
    e->key(e, "to");
    e->i64(e, q->to);
    e->key(e, "deleted");
    e->u64(e, deleted);
    e->end(e);
}

void query_emit_trade(emit *e, const char *sym, const kind *k, const void *slot, uint32_t nkeys)
{
    emit_record(e, k, slot, nkeys, sym);
}
