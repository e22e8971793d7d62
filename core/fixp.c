/* fixp — exact fixed-point numbers: parsing, rounding, formatting.
 *
 * Everything here is integer arithmetic except fixp_from_double, which needs
 * to know the exact binary value of a double; it uses frexp/fma/floor, which
 * are exact operations, so the result never depends on FPU rounding luck.
 */
#include "fixp.h"

#include <math.h>
#include <string.h>

/* Largest whole-unit count whose fixed-point value fits in int64. */
#define FIXP_MAX_UNITS (INT64_MAX / FIXP_SCALE) /* 92,233,720,368 */

static const int64_t pow10_tab[FIXP_DECIMALS + 1] = {
    1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000,
};

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* ---- decimal strings ---------------------------------------------------- */

/* Syntax only: digits, at most one '.', at least one digit, nothing else.
 * Checked before any value so "99999999999999999999x" is EINVAL, not ERANGE. */
static int check_syntax(const char *s, size_t len, size_t *dot)
{
    size_t ndigits = 0;
    *dot = len; /* no '.' */
    for (size_t i = 0; i < len; i++) {
        if (is_digit(s[i]))
            ndigits++;
        else if (s[i] == '.' && *dot == len)
            *dot = i;
        else
            return FIXP_EINVAL;
    }
    return ndigits ? FIXP_OK : FIXP_EINVAL;
}

/* An unsigned decimal, syntax already valid: integer digits s[0..dot),
 * fraction digits s(dot..len). */
static int parse_magnitude(const char *s, size_t len, size_t dot, int64_t *out)
{
    int64_t units = 0, frac = 0;
    for (size_t i = 0; i < dot; i++) {
        units = units * 10 + (s[i] - '0');
        if (units > FIXP_MAX_UNITS) /* checked per digit: no int64 overflow */
            return FIXP_ERANGE;
    }
    for (size_t i = dot + 1, n = 0; i < len; i++, n++) {
        if (n < FIXP_DECIMALS)
            frac += (s[i] - '0') * pow10_tab[FIXP_DECIMALS - 1 - n];
        else if (s[i] != '0') /* "1.000000000" is exact; "1.000000001" is not */
            return FIXP_EPRECISION;
    }
    if (units == FIXP_MAX_UNITS && frac > INT64_MAX % FIXP_SCALE)
        return FIXP_ERANGE;
    *out = units * FIXP_SCALE + frac;
    return FIXP_OK;
}

int fixp_from_str(const char *s, size_t len, int64_t *out)
{
    /* One leading '-', then the same digits as a positive value: the range
     * is symmetric, so negating the magnitude cannot overflow. "-0" is 0. */
    int neg = len > 0 && s[0] == '-';
    if (neg) {
        s++;
        len--;
    }
    size_t dot;
    int rc = check_syntax(s, len, &dot);
    if (rc != FIXP_OK)
        return rc;
    int64_t v = 0;
    rc = parse_magnitude(s, len, dot, &v);
    if (rc != FIXP_OK)
        return rc;
    *out = neg ? -v : v;
    return FIXP_OK;
}

/* ---- whole units -------------------------------------------------------- */

int fixp_from_i64(int64_t units, int64_t *out)
{
    if (units >= 0)
        return fixp_from_u64((uint64_t)units, out);
    if (units < -FIXP_MAX_UNITS)
        return FIXP_ERANGE;
    *out = units * FIXP_SCALE; /* >= -FIXP_MAX_UNITS * 1e8 > -INT64_MAX */
    return FIXP_OK;
}

int fixp_from_u64(uint64_t units, int64_t *out)
{
    if (units > (uint64_t)FIXP_MAX_UNITS)
        return FIXP_ERANGE;
    *out = (int64_t)units * FIXP_SCALE;
    return FIXP_OK;
}

/* ---- doubles ------------------------------------------------------------ */

/* Below 2^26 a double's spacing is under 1e-8, so every 1e-8 step has its own
 * double and rounding the exact binary value is what the sender meant
 * (0.29 is 0.28999999999999998 in binary and comes back as 0.29). */
#define FIXP_EXACT_LIMIT 67108864.0 /* 2^26 */

/* Nearest 1e-8 to d (0 <= d < 2^26), half away from zero, from the exact
 * binary value. d = ip + frac exactly (Sterbenz); frac * 1e8 < 2^27 so the
 * product p is off by at most half its ulp, and fma gives that error
 * exactly: it only matters when p lands on a half, where it decides. */
static int64_t round_small(double d)
{
    double ip = floor(d);
    double frac = d - ip;
    double p = frac * 1e8;
    double err = fma(frac, 1e8, -p);
    double fl = floor(p);
    double rem = p - fl; /* exact: fl and p are within a factor of 2 */
    int64_t r = (int64_t)fl;
    if (rem > 0.5 || (rem == 0.5 && err >= 0))
        r++;
    return (int64_t)ip * FIXP_SCALE + r;
}

/* From 2^26 up a double cannot tell neighbouring 1e-8 steps apart: 1e9+0.12
 * is stored as 1000000000.1199999809. Rounding that binary value would store
 * a price nobody sent, and a float would disagree with the same number sent
 * as a string. Instead take, among the 1e-8 steps that round to this very
 * double, the one with the fewest decimals (nearest d on a tie) — the
 * shortest text that reproduces the double, i.e. what the sender wrote. Any
 * decimal of <= 15 significant digits comes back unchanged.
 *
 * Exact integer arithmetic: d = M * 2^E, and the reals that round to d are
 * [d - ulp/2, d + ulp/2] (ulp/4 below a power of two; ends included when M is
 * even, as round-to-even gives them to d). In quarter-ulps of 2^(E-2):
 * lo4 < 4M < hi4; a step g (1e-8 units) is inside iff lo4*1e8 <= g << sh <=
 * hi4*1e8 with sh = 2 - E. */
static int round_large(double d, int64_t *out)
{
    int ex;
    double m = frexp(d, &ex); /* d = m * 2^ex, 0.5 <= m < 1 */
    uint64_t M = (uint64_t)ldexp(m, 53);
    int sh = 2 - (ex - 53); /* 18..28 for 2^26 <= d < 2^37 */
    typedef unsigned __int128 u128;
    u128 scale = (u128)FIXP_SCALE;
    u128 lo = (u128)(4 * M - (M == (1ull << 52) ? 1 : 2)) * scale;
    u128 hi = (u128)(4 * M + 2) * scale;
    u128 c = (u128)(4 * M) * scale; /* d itself, in the same units */
    int incl = (M & 1) == 0;
    for (int k = 0; k <= FIXP_DECIMALS; k++) {
        u128 step = (u128)pow10_tab[FIXP_DECIMALS - k] << sh;
        /* Nearest multiple of step to c, ties upward (away from zero). */
        u128 q = (c + step / 2) / step * step;
        u128 cand[2] = {q, q > c ? q - step : q + step};
        for (int j = 0; j < 2; j++) {
            u128 g = cand[j];
            if (incl ? (g >= lo && g <= hi) : (g > lo && g < hi)) {
                u128 v = g >> sh;
                if (v > (u128)INT64_MAX)
                    return FIXP_ERANGE;
                *out = (int64_t)v;
                return FIXP_OK;
            }
        }
    }
    /* Unreachable: above 2^26 the interval is wider than 1e-8. */
    return FIXP_ERANGE;
}

/* The magnitude (d >= 0, -0.0 included) to fixed point. */
static int from_magnitude(double d, int64_t *out)
{
    if (d < FIXP_EXACT_LIMIT) {
        *out = round_small(d);
        return FIXP_OK;
    }
    /* Well above the largest value; the exact boundary is decided below. */
    if (d >= (double)(FIXP_MAX_UNITS + 1))
        return FIXP_ERANGE;
    return round_large(d, out);
}

int fixp_from_double_exact(double d, int64_t *out)
{
    if (isnan(d) || isinf(d))
        return FIXP_ENAN;
    /* Negative: the magnitude's value, negated, so rounding is half away
     * from zero on both sides and -x is exactly -(x). The largest
     * magnitude is INT64_MAX: negating it cannot overflow. */
    int64_t v;
    int rc = from_magnitude(fabs(d), &v);
    if (rc != FIXP_OK)
        return rc;
    *out = d < 0 ? -v : v;
    return FIXP_OK;
}

/* ---- output ------------------------------------------------------------- */

/* "00" "01" .. "99": two digits per lookup, so a value is written with a
 * few multiplies (the compiler's for division by a constant) and table
 * loads instead of a divide per digit. This is the push hot path: every
 * px and qty pushed to a subscriber goes through here (issue #17), where
 * the digit-at-a-time version was ~150 instructions a call. */
static const char digit_pairs[201] = "00010203040506070809101112131415161718192021222324"
                                     "25262728293031323334353637383940414243444546474849"
                                     "50515253545556575859606162636465666768697071727374"
                                     "75767778798081828384858687888990919293949596979899";

/* 10^0 .. 10^19: a value's width in digits, so it is written backwards in
 * place (a copy through a scratch buffer was a memcpy call per value). */
static const uint64_t pow10_u[20] = {
    1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000,
    10000000000, 100000000000, 1000000000000, 10000000000000, 100000000000000,
    1000000000000000, 10000000000000000, 100000000000000000, 1000000000000000000u,
    10000000000000000000u};

static void put_pair(char *p, uint32_t v) { memcpy(p, digit_pairs + 2 * v, 2); }

static size_t dec_width(uint64_t v)
{
    size_t w = 1;
    while (w < 20 && v >= pow10_u[w])
        w++;
    return w;
}

/* v's dec_width(v) digits, ending just before `end`, two at a time. */
static void put_digits(char *end, uint64_t v)
{
    while (v >= 100) {
        end -= 2;
        put_pair(end, (uint32_t)(v % 100));
        v /= 100;
    }
    if (v >= 10)
        put_pair(end - 2, (uint32_t)v);
    else
        end[-1] = (char)('0' + v);
}

size_t fixp_format_u64(uint64_t v, char *buf)
{
    size_t w = dec_width(v);
    put_digits(buf + w, v);
    buf[w] = '\0';
    return w;
}

size_t fixp_format_i64(int64_t v, char *buf)
{
    if (v >= 0)
        return fixp_format_u64((uint64_t)v, buf);
    buf[0] = '-';
    return 1 + fixp_format_u64(0 - (uint64_t)v, buf + 1); /* INT64_MIN too */
}

size_t fixp_format(int64_t v, char *buf)
{
    /* Magnitude in unsigned arithmetic so INT64_MIN needs no special case. */
    uint64_t mag = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    uint64_t units = mag / FIXP_SCALE;
    uint32_t frac = (uint32_t)(mag - units * FIXP_SCALE);
    char *p = buf;
    if (v < 0)
        *p++ = '-';
    /* Whole units: at most 11 digits (92,233,720,368). */
    size_t w = dec_width(units);
    put_digits(p + w, units);
    p += w;
    if (frac) {
        /* All eight decimals, then the trailing zeros dropped (shortest
         * text). buf has room: FIXP_STRLEN is well past 21 + 1 bytes. */
        uint32_t hi = frac / 10000, lo = frac % 10000;
        *p++ = '.';
        put_pair(p, hi / 100);
        put_pair(p + 2, hi % 100);
        if (lo) { /* prices on a cent or coarser tick have no last four */
            put_pair(p + 4, lo / 100);
            put_pair(p + 6, lo % 100);
        }
        /* Decimals kept: up to the last non-zero digit (frac != 0). */
        p += lo ? (lo % 100 ? (lo % 10 ? 8 : 7) : (lo % 1000 ? 6 : 5))
                : (hi % 100 ? (hi % 10 ? 4 : 3) : (hi % 1000 ? 2 : 1));
    }
    *p = '\0';
    return (size_t)(p - buf);
}

double fixp_to_double(int64_t v)
{
    /* Below 2^53 the integer is exact and one division rounds correctly;
     * above, split so the whole part keeps its digits. */
    if (v > -(1LL << 53) && v < (1LL << 53))
        return (double)v / (double)FIXP_SCALE;
    return (double)(v / FIXP_SCALE) + (double)(v % FIXP_SCALE) / (double)FIXP_SCALE;
}
