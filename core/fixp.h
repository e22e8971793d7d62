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
int fixp_from_double(double d, int64_t *out);

/* Shortest exact decimal text: "187.25", "0.00000001", "42". Returns length;
 * buf must hold FIXP_STRLEN bytes. Negative values (differences) are allowed. */
size_t fixp_format(int64_t v, char *buf);
double fixp_to_double(int64_t v);

#endif
