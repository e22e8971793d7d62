/* test_fixp — exact decimal parsing, float rounding and formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixp.h"
#include "internal.h" /* the C client's slotd__fixed_text: the reference */

#define MAXU 92233720368LL /* INT64_MAX / FIXP_SCALE */

static uint64_t rng_state = 0x5107d5107dULL;

/* splitmix64: a local, seedable generator so failures reproduce. */
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int str_rc(const char *s, int64_t *v) { return fixp_from_str(s, strlen(s), v); }

static void expect_str(const char *s, int64_t want)
{
    int64_t v = -12345;
    int rc = str_rc(s, &v);
    if (rc != FIXP_OK || v != want)
        fail_msg("\"%s\": rc %d value %lld, want %lld", s, rc, (long long)v, (long long)want);
}

static void expect_str_err(const char *s, int want)
{
    int64_t v = -12345;
    int rc = str_rc(s, &v);
    if (rc != want)
        fail_msg("\"%s\": rc %d, want %d", s, rc, want);
    assert_int_equal(v, -12345); /* untouched on failure */
}

/* ---- strings ------------------------------------------------------------ */

static void test_str_valid(void **st)
{
    (void)st;
    expect_str("187.25", 18725000000LL);
    expect_str("0.00000001", 1);
    expect_str("42", 4200000000LL);
    expect_str("42.", 4200000000LL);
    expect_str(".5", 50000000);
    expect_str("0", 0);
    expect_str("0.0", 0);
    expect_str("000123.4500", 12345000000LL);
    expect_str("1.12345678", 112345678);
    expect_str("00000000000000000000000000001", FIXP_SCALE);
    /* Extra decimals are fine when they are zeros: the value is exact. */
    expect_str("1.000000000000", FIXP_SCALE);
    expect_str("0.123456780000000000000", 12345678);
    expect_str("92233720368.54775807", INT64_MAX);
    expect_str("92233720368.547758070", INT64_MAX);
    expect_str("92233720368", MAXU * FIXP_SCALE);
    /* "-0" is zero, as the float -0.0 is. */
    expect_str("-0", 0);
    expect_str("-0.000", 0);
    expect_str("-.0", 0);
}

static void test_str_invalid(void **st)
{
    (void)st;
    static const char *bad[] = {
        "", ".", "-", "-.", "+1", "+0", "1e5", "1E5", "1e-5", " 1", "1 ", "\t1", "12a",
        "1.2.3", "..1", "1..", "0x10", "1,5", "--1", "-+1", "+-1", "nan", "inf", "NaN",
        "Infinity", "١", "1_000", "- 1", "- 1", "99999999999999999999x", "0.0000000001x",
        "-abc", "1.5-",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_str_err(bad[i], FIXP_EINVAL);
    /* Length is explicit: an embedded NUL is a bad character, not the end. */
    int64_t v = -12345;
    assert_int_equal(fixp_from_str("1\0", 2, &v), FIXP_EINVAL);
    assert_int_equal(fixp_from_str("12", 1, &v), FIXP_OK); /* only "1" */
    assert_int_equal(v, FIXP_SCALE);
    assert_int_equal(fixp_from_str(NULL, 0, &v), FIXP_EINVAL);
}

static void test_str_precision(void **st)
{
    (void)st;
    expect_str_err("0.000000001", FIXP_EPRECISION);
    expect_str_err("1.123456789", FIXP_EPRECISION);
    expect_str_err("0.0000000010", FIXP_EPRECISION);
    expect_str_err("0.000000000000000001", FIXP_EPRECISION);
    expect_str_err("187.250000005", FIXP_EPRECISION);
}

static void test_str_range(void **st)
{
    (void)st;
    expect_str_err("92233720368.54775808", FIXP_ERANGE);
    expect_str_err("92233720368.6", FIXP_ERANGE);
    expect_str_err("92233720369", FIXP_ERANGE);
    expect_str_err("100000000000", FIXP_ERANGE);
    expect_str_err("99999999999999999999999", FIXP_ERANGE);
    expect_str_err("184467440737095516160", FIXP_ERANGE); /* 2^64 * 10: no wrap */
    expect_str_err("18446744073709551616", FIXP_ERANGE);
}

/* Prices are signed (WTI settled at -37.63 on 2020-04-20): a leading '-'
 * and the same digits as a positive value, the range symmetric around 0. */
static void test_str_negative(void **st)
{
    (void)st;
    expect_str("-1", -FIXP_SCALE);
    expect_str("-0.5", -50000000);
    expect_str("-37.63", -3763000000LL);
    expect_str("-.5", -50000000);
    expect_str("-0.00000001", -1);
    expect_str("-0", 0);
    expect_str("-0.000000000", 0);
    expect_str("-92233720368.54775807", -INT64_MAX);
    /* The same errors as without the sign. */
    expect_str_err("-0.000000001", FIXP_EPRECISION);
    expect_str_err("-92233720368.54775808", FIXP_ERANGE); /* INT64_MIN: not a value */
    expect_str_err("-99999999999999999999", FIXP_ERANGE);
    expect_str_err("-", FIXP_EINVAL);
    expect_str_err("--1", FIXP_EINVAL);
    expect_str_err("- 1", FIXP_EINVAL);
    expect_str_err("+1", FIXP_EINVAL);
    expect_str_err("1-", FIXP_EINVAL);
}

/* ---- whole units -------------------------------------------------------- */

static void test_units(void **st)
{
    (void)st;
    int64_t v = -1;
    assert_int_equal(fixp_from_i64(0, &v), FIXP_OK);
    assert_int_equal(v, 0);
    assert_int_equal(fixp_from_i64(1, &v), FIXP_OK);
    assert_int_equal(v, FIXP_SCALE);
    assert_int_equal(fixp_from_i64(10000, &v), FIXP_OK);
    assert_int_equal(v, 10000 * FIXP_SCALE);
    assert_int_equal(fixp_from_i64(MAXU, &v), FIXP_OK);
    assert_int_equal(v, MAXU * FIXP_SCALE);
    v = -7;
    assert_int_equal(fixp_from_i64(MAXU + 1, &v), FIXP_ERANGE);
    assert_int_equal(fixp_from_i64(INT64_MAX, &v), FIXP_ERANGE);
    assert_int_equal(fixp_from_i64(-MAXU - 1, &v), FIXP_ERANGE);
    assert_int_equal(fixp_from_i64(INT64_MIN, &v), FIXP_ERANGE);
    assert_int_equal(v, -7);
    assert_int_equal(fixp_from_i64(-1, &v), FIXP_OK);
    assert_int_equal(v, -FIXP_SCALE);
    assert_int_equal(fixp_from_i64(-MAXU, &v), FIXP_OK);
    assert_int_equal(v, -MAXU * FIXP_SCALE);

    assert_int_equal(fixp_from_u64(0, &v), FIXP_OK);
    assert_int_equal(v, 0);
    assert_int_equal(fixp_from_u64((uint64_t)MAXU, &v), FIXP_OK);
    assert_int_equal(v, MAXU * FIXP_SCALE);
    v = -7;
    assert_int_equal(fixp_from_u64((uint64_t)MAXU + 1, &v), FIXP_ERANGE);
    assert_int_equal(fixp_from_u64(UINT64_MAX, &v), FIXP_ERANGE);
    assert_int_equal(fixp_from_u64((uint64_t)INT64_MAX + 1, &v), FIXP_ERANGE);
    assert_int_equal(v, -7);
}

/* ---- doubles ------------------------------------------------------------ */

static void expect_dbl(double d, int64_t want)
{
    int64_t v = -12345;
    int rc = fixp_from_double(d, &v);
    if (rc != FIXP_OK || v != want)
        fail_msg("%.17g: rc %d value %lld, want %lld", d, rc, (long long)v, (long long)want);
}

static void expect_dbl_err(double d, int want)
{
    int64_t v = -12345;
    int rc = fixp_from_double(d, &v);
    if (rc != want)
        fail_msg("%.17g: rc %d value %lld, want rc %d", d, rc, (long long)v, want);
}

/* Reference for d < 2^26: glibc prints a double's exact binary expansion;
 * round that text to 8 decimals, half up, in decimal. */
static int64_t ref_round(double d)
{
    static char buf[1200];
    snprintf(buf, sizeof buf, "%.1100f", d);
    char *dot = strchr(buf, '.');
    int64_t units = strtoll(buf, NULL, 10);
    int64_t frac = 0;
    for (int i = 1; i <= 8; i++)
        frac = frac * 10 + (dot[i] - '0');
    int up = dot[9] >= '5'; /* half up: a 5 here is at least half */
    return units * FIXP_SCALE + frac + up;
}

static void test_double_basic(void **st)
{
    (void)st;
    expect_dbl(187.25, 18725000000LL);
    expect_dbl(0.1, 10000000);
    expect_dbl(0.29, 29000000);
    expect_dbl(0.3, 30000000);
    expect_dbl(1.005, 100500000);
    expect_dbl(99.99, 9999000000LL);
    expect_dbl(1e-8, 1);
    expect_dbl(2e-8, 2);
    expect_dbl(3e-8, 3);
    expect_dbl(0.00000007, 7);
    expect_dbl(4.9e-9, 0);
    expect_dbl(5.1e-9, 1);
    expect_dbl(0.0, 0);
    expect_dbl(-0.0, 0);
    expect_dbl(DBL_TRUE_MIN, 0);
    expect_dbl(DBL_MIN, 0);
    expect_dbl(1.0, FIXP_SCALE);
    expect_dbl(10000.0, 10000 * FIXP_SCALE);
    expect_dbl(0.99999999, 99999999);
    expect_dbl(0.999999995, ref_round(0.999999995));
    expect_dbl(0.9999999999, FIXP_SCALE); /* rounds up into the next unit */
    expect_dbl(123.456789015, ref_round(123.456789015));
    expect_dbl(5e-9, ref_round(5e-9));
    expect_dbl(1.5e-8, ref_round(1.5e-8));
}

static void test_double_half(void **st)
{
    (void)st;
    /* Exact binary halves of 1e-8: 1/512 = 195312.5e-8, 3/512 = 585937.5e-8.
     * Half away from zero rounds them up. */
    expect_dbl(0.001953125, 195313);
    expect_dbl(0.005859375, 585938);
    expect_dbl(1.001953125, FIXP_SCALE + 195313);
    expect_dbl(1000.001953125, 1000 * FIXP_SCALE + 195313);
    /* The double just below a half rounds down even though d * 1e8 may
     * round to the half in floating point. */
    double below = nextafter(0.001953125, 0);
    expect_dbl(below, 195312);
    expect_dbl(nextafter(0.001953125, 1), 195313);
    expect_dbl(nextafter(0.005859375, 0), 585937);
}

static void test_double_errors(void **st)
{
    (void)st;
    expect_dbl_err(NAN, FIXP_ENAN);
    expect_dbl_err(-NAN, FIXP_ENAN);
    expect_dbl_err(INFINITY, FIXP_ENAN);
    expect_dbl_err(-INFINITY, FIXP_ENAN);
    expect_dbl_err(92233720369.0, FIXP_ERANGE);
    expect_dbl_err(-92233720369.0, FIXP_ERANGE);
    expect_dbl_err(-1e19, FIXP_ERANGE);
    expect_dbl_err(-DBL_MAX, FIXP_ERANGE);
    expect_dbl_err(92233720368.54776, FIXP_ERANGE);
    expect_dbl_err(1e11, FIXP_ERANGE);
    expect_dbl_err(9.3e18, FIXP_ERANGE);
    expect_dbl_err(1e19, FIXP_ERANGE);
    expect_dbl_err(1.8446744073709552e19, FIXP_ERANGE);
    expect_dbl_err(DBL_MAX, FIXP_ERANGE);
}

/* A negative double is the negated value of its magnitude: rounding is half
 * away from zero on both sides, and the large-value rule is symmetric. */
static void test_double_negative(void **st)
{
    (void)st;
    expect_dbl(-37.63, -3763000000LL);
    expect_dbl(-1.0, -FIXP_SCALE);
    expect_dbl(-0.0, 0);
    expect_dbl(-1e-300, 0);
    expect_dbl(-DBL_TRUE_MIN, 0);
    expect_dbl(-0.000000005, -1); /* the double is just above 5e-9: away from zero */
    expect_dbl(-1234567890.12, -123456789012000000LL);
    for (int i = 0; i < 100000; i++) {
        double d = ldexp((double)(rnd() >> 11), -(int)(rnd() % 80)); /* < 2^53, many scales */
        int64_t pos = 0, neg = 0;
        int rp = fixp_from_double(d, &pos), rn = fixp_from_double(-d, &neg);
        assert_int_equal(rp, rn);
        if (rp == FIXP_OK)
            assert_int_equal(neg, -pos);
    }
}

/* One double through the fast path and the exact rule: the same verdict,
 * and for d < 2^26 the same value as the decimal reference. */
static void expect_fast_agrees(double d)
{
    int64_t fast = -12345, exact = -54321;
    int rf = fixp_from_double(d, &fast), re = fixp_from_double_exact(d, &exact);
    if (rf != re || (rf == FIXP_OK && fast != exact))
        fail_msg("%.17g: fast rc %d %lld, exact rc %d %lld", d, rf, (long long)fast, re,
                 (long long)exact);
    if (rf == FIXP_OK && fabs(d) < 67108864.0) {
        int64_t ref = ref_round(fabs(d));
        assert_int_equal(fast, d < 0 ? -ref : ref);
    }
}

/* The fast path's edges (fixp.h): the magnitude limit, d * 1e8 near a
 * half or not, and both signs. */
static void test_double_fast_path(void **st)
{
    (void)st;
    const double lim = FIXP_FAST_LIMIT;
    const double edge[] = {0.0, -0.0, 1e-8, 2e-8, 2.5e-9, 5e-9, 7.5e-9, 1.5e-8, 0.1, 0.29,
                           187.25, 1e-300, lim, nextafter(lim, 0), nextafter(lim, 1e9),
                           45035995.99999999, 45035995.999999985, 45035996.00000001,
                           67108863.99999999, 4503599627370495.0 / 1e8};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        expect_fast_agrees(edge[i]);
        expect_fast_agrees(-edge[i]);
    }
    /* d = (g + f) / 1e8 for f around the half, and the neighbouring
     * doubles of each, at every scale below the limit. */
    const double fr[] = {0, 0.2, 0.25, 0.3, 0.4999, 0.49999999, 0.5, 0.50000001, 0.5001, 0.75};
    for (int i = 0; i < 20000; i++) {
        uint64_t g = rnd() % (uint64_t)(lim * 1e8) >> (rnd() % 50);
        double f = fr[rnd() % (sizeof fr / sizeof fr[0])];
        double d = ((double)g + (rnd() & 1 ? f : -f)) / 1e8;
        if (d < 0)
            continue;
        expect_fast_agrees(d);
        expect_fast_agrees(nextafter(d, 0));
        expect_fast_agrees(-nextafter(d, 1e12));
    }
    /* Every decimal of <= 8 decimals below the limit takes the fast path's
     * answer, which must be that decimal. */
    for (int i = 0; i < 20000; i++) {
        int64_t g = (int64_t)(rnd() % (uint64_t)(lim * 1e8)) >> (rnd() % 50);
        expect_dbl((double)g / 1e8, g);
        expect_dbl(-(double)g / 1e8, -g);
    }
}

static void test_double_large(void **st)
{
    (void)st;
    /* Above 2^26 the double cannot hold every 1e-8 step; the value the
     * sender wrote comes back, not the binary approximation. */
    expect_dbl(1234567890.12, 123456789012000000LL);
    expect_dbl(12345678901.23, 1234567890123000000LL);
    expect_dbl(1000000000.12, 100000000012000000LL);
    expect_dbl(67108864.0, 67108864LL * FIXP_SCALE);
    expect_dbl(67108864.00000001, 67108864LL * FIXP_SCALE + 1);
    expect_dbl(nextafter(67108864.0, 0), 67108863LL * FIXP_SCALE + 99999999);
    expect_dbl(92233720368.0, MAXU * FIXP_SCALE);
    /* 16 digits are more than a double holds here: .54775 and .54774 give
     * the same double, and .54774 is nearer its exact value. */
    expect_dbl(92233720368.54775, 9223372036854774000LL);
    expect_dbl(92233720368.547, 9223372036854700000LL);
    expect_dbl(92233720368.5477, 9223372036854770000LL);
    expect_dbl(5e10, 50000000000LL * FIXP_SCALE);
    expect_dbl(68719476736.0, 68719476736LL * FIXP_SCALE); /* 2^36 */
    expect_dbl(68719476735.99999, 6871947673599999000LL);
}

/* Decimal text with at most 8 decimals and 15 significant digits: the float
 * of the text and the text itself give the same value, at any magnitude. */
static void test_double_matches_text(void **st)
{
    (void)st;
    char buf[64];
    for (int i = 0; i < 200000; i++) {
        int dec = (int)(rnd() % 9);
        int intdigits = 1 + (int)(rnd() % 11);
        if (intdigits + dec > 15)
            dec = 15 - intdigits;
        uint64_t ip = rnd() % (uint64_t)pow(10, intdigits);
        if (ip > (uint64_t)MAXU - 1)
            ip %= (uint64_t)MAXU;
        uint64_t fr = dec ? rnd() % (uint64_t)pow(10, dec) : 0;
        if (dec)
            snprintf(buf, sizeof buf, "%llu.%0*llu", (unsigned long long)ip, dec,
                     (unsigned long long)fr);
        else
            snprintf(buf, sizeof buf, "%llu", (unsigned long long)ip);
        int64_t a = 0, b = 0;
        assert_int_equal(fixp_from_str(buf, strlen(buf), &a), FIXP_OK);
        double d = strtod(buf, NULL);
        int rc = fixp_from_double(d, &b);
        if (rc != FIXP_OK || a != b)
            fail_msg("%s (%.17g): rc %d, %lld vs %lld", buf, d, rc, (long long)b,
                     (long long)a);
    }
}

/* Below 2^26, against the exact-binary reference. */
static void test_double_random_small(void **st)
{
    (void)st;
    for (int i = 0; i < 100000; i++) {
        double d;
        switch (i % 3) {
        case 0: d = ldexp((double)(rnd() >> 11), -53) * 67108864.0; break; /* [0, 2^26) */
        case 1: d = ldexp((double)(rnd() >> 11), -53) * 1000.0; break;
        default: d = ldexp((double)(rnd() >> 11), -53 - (int)(rnd() % 40)); break;
        }
        expect_dbl(d, ref_round(d));
    }
}

/* Above 2^26: the shortest decimal that reproduces the double, ties away
 * from zero like the rest of fixp (printf would break ties to even). Built
 * from the exact binary expansion, which "%.60f" prints in full here (a
 * double >= 2^26 has at most 26 fractional bits). */
static void shortest_text(double d, char out[static 64])
{
    char exact[128], digits[128];
    snprintf(exact, sizeof exact, "%.60f", d);
    int nd = 0, intlen = (int)(strchr(exact, '.') - exact);
    for (char *c = exact; *c; c++)
        if (*c != '.')
            digits[nd++] = *c;
    for (int p = 1; p <= 20; p++) {
        /* Round the digit string to p digits, half up, with carry. */
        char r[128];
        memcpy(r, digits, (size_t)p);
        int il = intlen;
        if (digits[p] >= '5') {
            int i = p - 1;
            while (i >= 0 && r[i] == '9')
                r[i--] = '0';
            if (i >= 0) {
                r[i]++;
            } else { /* 999 -> 1000: one more integer digit */
                memmove(r + 1, r, (size_t)p);
                r[0] = '1';
                il++;
            }
        }
        int rl = p + (il - intlen);
        /* d < 2^37 and p <= 20 fit in 64 bytes; the o bound tells gcc -O3 so. */
        int o = 0;
        for (int i = 0; i < il && o < 62; i++)
            out[o++] = i < rl ? r[i] : '0';
        if (rl > il) {
            out[o++] = '.';
            for (int i = il; i < rl && o < 63; i++)
                out[o++] = r[i];
        }
        out[o] = '\0';
        if (strtod(out, NULL) == d)
            return;
    }
    fail_msg("no shortest text for %.17g", d);
}

static void test_double_random_large(void **st)
{
    (void)st;
    char txt[64];
    for (int i = 0; i < 100000; i++) {
        double lo = 67108864.0, hi = 92233720368.0;
        double d = lo + ldexp((double)(rnd() >> 11), -53) * (hi - lo);
        if (i % 2)
            d = ldexp(1.0, 26 + (int)(rnd() % 10)) * (1.0 + ldexp((double)(rnd() >> 11), -53));
        if (d >= hi)
            continue;
        shortest_text(d, txt);
        int64_t want = 0, got = 0;
        assert_int_equal(fixp_from_str(txt, strlen(txt), &want), FIXP_OK);
        int rc = fixp_from_double(d, &got);
        if (rc != FIXP_OK || got != want)
            fail_msg("%.17g (%s): rc %d, %lld want %lld", d, txt, rc, (long long)got,
                     (long long)want);
    }
}

/* ---- formatting --------------------------------------------------------- */

static void expect_fmt(int64_t v, const char *want)
{
    char buf[FIXP_STRLEN];
    memset(buf, 'x', sizeof buf);
    size_t n = fixp_format(v, buf);
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));
}

static void test_format(void **st)
{
    (void)st;
    expect_fmt(0, "0");
    expect_fmt(1, "0.00000001");
    expect_fmt(10, "0.0000001");
    expect_fmt(18725000000LL, "187.25");
    expect_fmt(4200000000LL, "42");
    expect_fmt(FIXP_SCALE, "1");
    expect_fmt(FIXP_SCALE + 1, "1.00000001");
    expect_fmt(50000000, "0.5");
    expect_fmt(12345678, "0.12345678");
    expect_fmt(1000000000000LL, "10000");
    expect_fmt(INT64_MAX, "92233720368.54775807");
    expect_fmt(-1, "-0.00000001");
    expect_fmt(-18725000000LL, "-187.25");
    expect_fmt(-FIXP_SCALE, "-1");
    expect_fmt(INT64_MIN, "-92233720368.54775808");
    expect_fmt(INT64_MIN + 1, "-92233720368.54775807");
}

/* Plain integers: the digits printf gives, at the edges too. */
static void test_format_ints(void **st)
{
    (void)st;
    char buf[FIXP_STRLEN], want[FIXP_STRLEN];
    const uint64_t u[] = {0, 1, 9, 10, 99, 100, 1767225600000000000ull, UINT64_MAX - 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        snprintf(want, sizeof want, "%llu", (unsigned long long)u[i]);
        assert_int_equal(fixp_format_u64(u[i], buf), strlen(want));
        assert_string_equal(buf, want);
    }
    const int64_t v[] = {0, -1, 1, -10, 42, INT64_MIN, INT64_MIN + 1, INT64_MAX};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        snprintf(want, sizeof want, "%lld", (long long)v[i]);
        assert_int_equal(fixp_format_i64(v[i], buf), strlen(want));
        assert_string_equal(buf, want);
    }
}

static void test_format_roundtrip(void **st)
{
    (void)st;
    char buf[FIXP_STRLEN], neg[FIXP_STRLEN];
    for (int i = 0; i < 300000; i++) {
        /* Spread over magnitudes and over trailing-zero counts. */
        int64_t v = (int64_t)(rnd() >> (1 + rnd() % 63));
        if (i % 4 == 0)
            v -= v % (int64_t)pow(10, (double)(rnd() % 9));
        size_t n = fixp_format(v, buf);
        assert_true(n < FIXP_STRLEN);
        assert_int_equal(n, strlen(buf));
        assert_true(n == 1 || buf[n - 1] != '0' || strchr(buf, '.') == NULL);
        int64_t back = -1;
        assert_int_equal(fixp_from_str(buf, n, &back), FIXP_OK);
        assert_int_equal(back, v);
        if (v > 0) {
            size_t m = fixp_format(-v, neg);
            assert_int_equal(m, n + 1);
            assert_int_equal(neg[0], '-');
            assert_string_equal(neg + 1, buf);
            assert_int_equal(fixp_from_str(neg, m, &back), FIXP_OK);
            assert_int_equal(back, -v);
        }
    }
}

/* The reference fixp_format must match byte for byte: the C client's
 * formatter (proto/client), the digit-at-a-time code (a divide per digit)
 * fixp_format had before it went to a digit-pair table. One agreement
 * checks both: what the server pushes is the text the client sends. */
static void expect_ref(int64_t v)
{
    char got[FIXP_STRLEN], want[FIXP_STRLEN];
    memset(got, 'x', sizeof got);
    size_t n = fixp_format(v, got), m = slotd__fixed_text(want, v);
    want[m] = '\0';
    if (n != m || strcmp(got, want) != 0)
        fail_msg("%lld: \"%s\" (%zu), want \"%s\" (%zu)", (long long)v, got, n, want, m);
}

static void test_format_matches_reference(void **st)
{
    (void)st;
    static const int64_t edge[] = {0, 1, -1, 9, 10, 99, 100, FIXP_SCALE - 1, FIXP_SCALE,
                                   FIXP_SCALE + 1, INT64_MAX, INT64_MIN, INT64_MIN + 1,
                                   INT64_MAX - 1, MAXU * FIXP_SCALE, -MAXU * FIXP_SCALE};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++)
        expect_ref(edge[i]);
    /* Every power of ten (every units width, every decimal position), its
     * neighbours, and both signs. */
    for (int64_t p = 1, k = 0; k <= 18; k++, p = k <= 18 ? p * 10 : p) /* 10^18: the last */
        for (int64_t d = -1; d <= 1; d++) {
            expect_ref(p + d);
            expect_ref(-(p + d));
        }
    /* Every count of decimals (0..8) over units of every width. */
    for (int i = 0; i < 200000; i++) {
        int dec = (int)(rnd() % (FIXP_DECIMALS + 1)), width = (int)(rnd() % 12);
        int64_t units = (int64_t)(rnd() % (uint64_t)pow(10, width));
        if (units > MAXU - 1)
            units = MAXU - 1;
        int64_t step = (int64_t)pow(10, FIXP_DECIMALS - dec);
        int64_t frac = (int64_t)(rnd() % (uint64_t)(FIXP_SCALE / step)) * step;
        int64_t v = units * FIXP_SCALE + frac;
        expect_ref(rnd() & 1 ? -v : v);
    }
    /* Raw 64-bit values: the whole range, either sign. */
    for (int i = 0; i < 200000; i++) {
        int64_t v = (int64_t)(rnd() >> (rnd() % 64));
        expect_ref(rnd() & 1 && v != INT64_MIN ? -v : v);
    }
    for (int i = 0; i < 100000; i++)
        expect_ref((int64_t)rnd());
}

static void test_to_double(void **st)
{
    (void)st;
    assert_true(fixp_to_double(18725000000LL) == 187.25);
    assert_true(fixp_to_double(1) == 1e-8);
    assert_true(fixp_to_double(0) == 0.0);
    assert_true(fixp_to_double(29000000) == 0.29);
    assert_true(fixp_to_double(-18725000000LL) == -187.25);
    assert_true(fabs(fixp_to_double(INT64_MAX) - 92233720368.54775807) < 1e-4);
    assert_true(fabs(fixp_to_double(INT64_MIN) + 92233720368.54775808) < 1e-4);
    /* Below 2^26 whole units every value survives a trip through a double. */
    for (int i = 0; i < 100000; i++) {
        int64_t v = (int64_t)(rnd() % (67108864ULL * FIXP_SCALE));
        int64_t back = -1;
        assert_int_equal(fixp_from_double(fixp_to_double(v), &back), FIXP_OK);
        assert_int_equal(back, v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_ints),
        cmocka_unit_test(test_str_valid),
        cmocka_unit_test(test_str_invalid),
        cmocka_unit_test(test_str_precision),
        cmocka_unit_test(test_str_range),
        cmocka_unit_test(test_str_negative),
        cmocka_unit_test(test_units),
        cmocka_unit_test(test_double_basic),
        cmocka_unit_test(test_double_half),
        cmocka_unit_test(test_double_errors),
        cmocka_unit_test(test_double_negative),
        cmocka_unit_test(test_double_large),
        cmocka_unit_test(test_double_matches_text),
        cmocka_unit_test(test_double_random_small),
        cmocka_unit_test(test_double_fast_path),
        cmocka_unit_test(test_double_random_large),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_roundtrip),
        cmocka_unit_test(test_format_matches_reference),
        cmocka_unit_test(test_to_double),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
