/* fixp — exact fixed-point numbers for prices and quantities.
 *
 * A value is a signed int64 count of 1e-8 units: 187.25 is stored as
 * 18'725'000'000, -37.63 as -3'763'000'000. Eight decimals fit equity prices
 * and fractional crypto quantities; the range is symmetric, +-INT64_MAX
 * units (+-92,233,720,368.54775807), so negating a value never overflows
 * (INT64_MIN is never produced). Prices may be negative (spreads, some
 * futures, rates); whether a slot accepts negatives is its kind's business
 * (kind.h KIND_SIGNED), not the parsers'.
 *
 * Every parser either yields the exact value or fails with one of the
 * FIXP_E* codes (err.h, core_strerror); nothing is silently truncated.
 * Floats are rounded to the nearest 1e-8 (half away from zero); decimal
 * strings are parsed exactly and rejected if they carry a non-zero ninth
 * decimal.
 */
#ifndef SLOTD_FIXP_H
#define SLOTD_FIXP_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define FIXP_DECIMALS 8
#define FIXP_SCALE 100000000LL
#define FIXP_STRLEN 32 /* enough for any formatted value plus NUL */

/* Parse a decimal string "187.25", "0.00000001", "42", "42.", ".5",
 * "-37.63": digits with at most one '.', optionally after one '-'. */
int fixp_from_str(const char *s, size_t len, int64_t *out);
/* Whole units (a msgpack integer) to fixed point. */
int fixp_from_i64(int64_t units, int64_t *out);
int fixp_from_u64(uint64_t units, int64_t *out);
/* A float rounded to the nearest 1e-8. From 2^26 (67,108,864) up, where a
 * double cannot tell neighbouring 1e-8 steps apart, the shortest decimal that
 * reproduces the double is taken instead, so 1234567890.12 stays exactly that
 * (a float and the same number as a string agree up to 15 digits). */
static inline int fixp_from_double(double d, int64_t *out);
/* The same rule for every double, without fixp_from_double's fast path. */
int fixp_from_double_exact(double d, int64_t *out);

/* Below this magnitude (2^52 / 1e8) d * 1e8 is below 2^52, where every
 * half-integer is a double. */
#define FIXP_FAST_LIMIT 45035996.0

/* The fast path: p = d * 1e8 rounded, g the integer nearest p. Rounding is
 * monotone and g +- 1/2 are doubles, so if p lies strictly between them so
 * does the exact product, whose nearest integer — the exact rule's answer,
 * no tie possible — is then g. Only p exactly on a half (or d too large,
 * or NaN, which fails both compares) goes the exact way. What clients send
 * (187.25, 0.1: the nearest double to a decimal of <= 8 decimals) lands
 * within a hair of g. Inline: a multiply and a few compares in the
 * decoder's loop instead of floor, fma and a call. */
static inline int fixp_from_double(double d, int64_t *out)
{
    double a = d < 0 ? -d : d;
    if (a < FIXP_FAST_LIMIT) {
        double p = a * 1e8;
        int64_t g = (int64_t)(p + 0.5); /* any integer near p will do: checked next */
        double off = p - (double)g;      /* exact: both below 2^52 and close */
        if (off > -0.5 && off < 0.5) {
            *out = d < 0 ? -g : g;
            return FIXP_OK;
        }
    }
    return fixp_from_double_exact(d, out);
}

/* Shortest exact decimal text: "187.25", "0.00000001", "42". Returns length;
 * buf must hold FIXP_STRLEN bytes. Negative values (differences) are allowed. */
size_t fixp_format(int64_t v, char *buf);
/* A plain integer as decimal text into buf (21 bytes at most with the
 * NUL): the same digits as printf's %llu / %lld, without its cost (the
 * exports' and pushes' ts and id columns). Returns the length. */
size_t fixp_format_u64(uint64_t v, char *buf);
size_t fixp_format_i64(int64_t v, char *buf);
double fixp_to_double(int64_t v);

#endif
