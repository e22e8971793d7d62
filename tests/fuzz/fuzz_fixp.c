/* fuzz_fixp — fixed-point parsing, rounding and formatting on arbitrary input.
 *
 * Checks, for every input (besides ASan/UBSan finding nothing):
 *  - fixp_from_str on the raw bytes gives exactly the verdict of an
 *    independent reference (syntax, then ERANGE on the integer part, then
 *    EPRECISION, then ERANGE on the whole value; a leading '-' negates the
 *    value, the range being symmetric), and on success fixp_format prints
 *    the canonical text of the input (no leading zeros, no trailing
 *    fraction zeros, "-" unless zero), which parses back to the same value;
 *  - fixp_from_double on the first 8 bytes read as a double: NaN/inf are
 *    ENAN, a negative double is exactly the negated value of its magnitude
 *    (same verdict); below 2^26 the result is the nearest 1e-8 step
 *    (checked in exact integer arithmetic, ties away from zero); from 2^26
 *    up the result's text converts back (strtod, correctly rounded) to the
 *    very same double and no shorter decimal does; ERANGE only past the
 *    largest value; and its inline fast path agrees with
 *    fixp_from_double_exact (verdict and value);
 *  - fixp_from_i64/u64 on the same 8 bytes: ERANGE exactly at the
 *    (symmetric) bounds, the two agree where both apply, and the value is
 *    units * 1e8;
 *  - fixp_format on the 8 bytes as any int64 (negatives, INT64_MIN) fits
 *    FIXP_STRLEN and every value but INT64_MIN parses back.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixp.h"

#define MAX_UNITS 92233720368LL /* INT64_MAX / 1e8 */
#define CHECK(c)                                                                   \
    do {                                                                           \
        if (!(c)) {                                                                \
            fprintf(stderr, "fuzz_fixp: check failed at line %d: %s\n", __LINE__, #c); \
            abort();                                                               \
        }                                                                          \
    } while (0)

/* The reference verdict for a decimal string, and its canonical text. */
static int ref_from_str(const char *s, size_t len, char *canon, size_t canon_size)
{
    int neg = len > 0 && s[0] == '-';
    s += neg, len -= (size_t)neg;
    size_t dot = len, ndig = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] >= '0' && s[i] <= '9')
            ndig++;
        else if (s[i] == '.' && dot == len)
            dot = i;
        else
            return FIXP_EINVAL;
    }
    if (ndig == 0)
        return FIXP_EINVAL;
    /* Integer digits without leading zeros, fraction without trailing. */
    size_t ib = 0, fe = len;
    while (ib < dot && s[ib] == '0')
        ib++;
    while (fe > dot + 1 && s[fe - 1] == '0')
        fe--;
    size_t ilen = dot - ib, flen = fe > dot ? fe - dot - 1 : 0;
    int zero = ilen == 0 && flen == 0;
    int rc = FIXP_OK;
    /* 1e-8 units as a digit string: integer digits, then 8 fraction digits. */
    char units[64];
    if (ilen > 11 || (ilen == 11 && memcmp(s + ib, "92233720368", 11) > 0))
        rc = FIXP_ERANGE;
    else if (flen > 8)
        rc = FIXP_EPRECISION;
    else {
        size_t n = 0;
        memcpy(units, s + ib, ilen);
        n = ilen;
        for (size_t i = 0; i < 8; i++)
            units[n++] = i < flen ? s[dot + 1 + i] : '0';
        /* strip leading zeros, compare to INT64_MAX */
        size_t b = 0;
        while (b < n && units[b] == '0')
            b++;
        if (n - b > 19 || (n - b == 19 && memcmp(units + b, "9223372036854775807", 19) > 0))
            rc = FIXP_ERANGE;
    }
    if (rc == FIXP_OK) {
        CHECK(ilen + flen + 4 <= canon_size);
        size_t n = 0;
        if (neg && !zero)
            canon[n++] = '-';
        if (ilen == 0)
            canon[n++] = '0';
        memcpy(canon + n, s + ib, ilen);
        n += ilen;
        if (flen) {
            canon[n++] = '.';
            memcpy(canon + n, s + dot + 1, flen);
            n += flen;
        }
        canon[n] = 0;
    }
    return rc;
}

static void check_str(const char *s, size_t len)
{
    int64_t v = -12345;
    char canon[64], text[FIXP_STRLEN + 8];
    int rc = fixp_from_str(s, len, &v);
    int ref = ref_from_str(s, len, canon, sizeof canon);
    if (rc != ref) {
        fprintf(stderr, "fixp_from_str(\"%.*s\") = %d, reference %d\n", (int)len, s, rc, ref);
        abort();
    }
    if (rc != FIXP_OK)
        return;
    CHECK(v != INT64_MIN && (v <= 0 || s[0] != '-') && (v >= 0 || s[0] == '-'));
    size_t n = fixp_format(v, text);
    CHECK(n < FIXP_STRLEN && strlen(text) == n);
    if (strcmp(text, canon) != 0) {
        fprintf(stderr, "fixp_format(%lld) = \"%s\", canonical input \"%s\"\n", (long long)v,
                text, canon);
        abort();
    }
    int64_t back = -1;
    CHECK(fixp_from_str(text, n, &back) == FIXP_OK && back == v);
}

/* |d * 1e8 - v| <= 1/2 (ties: v the one away from zero), exactly, for
 * 0 <= d < 2^26. */
static void check_small(double d, int64_t v)
{
    CHECK(v >= 0 && v <= 6710886400000000LL);
    if (d < 0x1p-20) {
        /* d * 1e8 < 96; long double makes the product's error ~1e-17. */
        long double diff = (long double)d * 1e8L - (long double)v;
        CHECK(diff <= 0.5L + 1e-12L && diff >= -0.5L - 1e-12L);
        return;
    }
    int ex;
    double m = frexp(d, &ex);
    uint64_t M = (uint64_t)ldexp(m, 53);
    int sh = 53 - ex; /* d = M / 2^sh, 27 <= sh <= 73 */
    CHECK(sh >= 27 && sh <= 73);
    typedef unsigned __int128 u128;
    u128 a = (u128)M * 100000000u * 2;  /* 2 * d*1e8 * 2^sh  (< 2^81) */
    u128 b = (u128)v << (sh + 1);       /* 2 * v * 2^sh      (< 2^127) */
    u128 half = (u128)1 << sh;          /* 2 * 1/2 * 2^sh */
    if (a >= b)
        CHECK(a - b < half); /* d*1e8 above v by less than 1/2: a tie goes up */
    else
        CHECK(b - a <= half);
}

static int reproduces(int64_t v, double d)
{
    char text[FIXP_STRLEN];
    fixp_format(v, text);
    return strtod(text, NULL) == d;
}

static void check_double(double d)
{
    int64_t v = -7, x = -9;
    int rc = fixp_from_double(d, &v);
    /* The inline fast path and the full rule: one verdict, one value. */
    int rx = fixp_from_double_exact(d, &x);
    CHECK(rx == rc && (rc != FIXP_OK || x == v));
    if (isnan(d) || isinf(d)) {
        CHECK(rc == FIXP_ENAN);
        return;
    }
    if (d < 0 || (d == 0 && signbit(d))) {
        int64_t m = -7;
        CHECK(fixp_from_double(-d, &m) == rc);
        CHECK(rc != FIXP_OK || v == -m);
        return;
    }
    if (d < 0x1p26) {
        CHECK(rc == FIXP_OK);
        check_small(d, v);
        return;
    }
    if (rc == FIXP_ERANGE) {
        /* The shortest decimal of d is past 92233720368.54775807: d itself
         * lies above the largest value less half its ulp (2^-16 up there). */
        CHECK(d > 92233720368.54775807 - 0x1p-15);
        return;
    }
    CHECK(rc == FIXP_OK && v > 0);
    if (!reproduces(v, d)) {
        char text[FIXP_STRLEN];
        fixp_format(v, text);
        fprintf(stderr, "fixp_from_double(%.17g) = %s, which is not that double\n", d, text);
        abort();
    }
    char text[FIXP_STRLEN];
    int64_t back = -1;
    size_t n = fixp_format(v, text);
    CHECK(fixp_from_str(text, n, &back) == FIXP_OK && back == v);
    /* Shortest: no decimal with one digit fewer reproduces d. */
    int64_t step = 1;
    while (v % (step * 10) == 0 && step < FIXP_SCALE)
        step *= 10;
    if (step < FIXP_SCALE) {
        int64_t coarse = step * 10, lo = v / coarse * coarse, hi = lo + coarse;
        if (reproduces(lo, d) || (hi > 0 && reproduces(hi, d))) {
            fprintf(stderr, "fixp_from_double(%.17g) = %s is not the shortest\n", d, text);
            abort();
        }
    }
}

static void check_units(int64_t i)
{
    int64_t a = -3, b = -3;
    int ra = fixp_from_i64(i, &a), rb = fixp_from_u64((uint64_t)i, &b);
    if (i < 0) {
        CHECK(rb == FIXP_ERANGE); /* as unsigned it is >= 2^63 */
        CHECK(i < -MAX_UNITS ? ra == FIXP_ERANGE : ra == FIXP_OK && a == i * FIXP_SCALE);
        return;
    }
    if (i > MAX_UNITS) {
        CHECK(ra == FIXP_ERANGE && rb == FIXP_ERANGE);
        return;
    }
    CHECK(ra == FIXP_OK && rb == FIXP_OK && a == b && a == i * FIXP_SCALE);
    char text[FIXP_STRLEN], want[32];
    fixp_format(a, text);
    snprintf(want, sizeof want, "%lld", (long long)i);
    CHECK(strcmp(text, want) == 0);
}

static void check_format(int64_t v)
{
    char text[FIXP_STRLEN + 16];
    memset(text, 'x', sizeof text);
    size_t n = fixp_format(v, text);
    CHECK(n < FIXP_STRLEN && text[n] == 0 && memchr(text, 'x', n) == NULL);
    int64_t back = -1;
    if (v >= 0) {
        CHECK(fixp_from_str(text, n, &back) == FIXP_OK && back == v);
    } else {
        int rc = fixp_from_str(text, n, &back);
        CHECK(text[0] == '-' && (v == INT64_MIN ? rc == FIXP_ERANGE : rc == FIXP_OK && back == v));
        if (v != INT64_MIN) {
            char pos[FIXP_STRLEN];
            fixp_format(-v, pos);
            CHECK(strcmp(text + 1, pos) == 0);
        } else {
            CHECK(strcmp(text, "-92233720368.54775808") == 0);
        }
    }
    /* to_double is within a couple of ulps of the text's value */
    double d = fixp_to_double(v), t = strtod(text, NULL);
    CHECK(fabs(d - t) <= 4 * fabs(t) * 0x1p-52);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_str((const char *)data, size);
    if (size >= 8) {
        double d;
        int64_t i;
        memcpy(&d, data, 8);
        memcpy(&i, data, 8);
        check_double(d);
        check_units(i);
        check_format(i);
        /* The same bits as a double near the scale where rounding changes. */
        check_double(ldexp(fabs(d) - floor(fabs(d)), (int)(data[0] % 40)));
    }
    return 0;
}
