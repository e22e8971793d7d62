/* decnum — short plain decimals ("187.25", "42", "0.5") straight to fixed
 * point, for the decoders' fast paths. Internal to proto/: not an API.
 *
 * Both readers accept digits with at most one '.', at least one digit
 * before it, at most 10 integer digits (so no overflow) and at most 8
 * decimals. They return 0 for anything else (a sign, ".5", "1e5", too long
 * or too precise), which fixp_from_str then parses or rejects with a
 * reason; for what they accept they agree with it (test_decode checks both
 * against fixp_from_str, and the differential tests check the decoders).
 */
#ifndef SLOTD_DECNUM_H
#define SLOTD_DECNUM_H

#include <stdint.h>
#include <string.h>

#include "fixp.h"

/* In the decoders' hot loops: inlined, whatever the size heuristics say. */
#define DECNUM_INLINE static inline __attribute__((always_inline))

static const int64_t decnum_scale[9] = {100000000, 10000000, 1000000, 100000, 10000,
                                        1000,      100,      10,      1};

/* Any length up to 19, one character at a time. */
static inline int quick_decimal(const uint8_t *s, uint32_t len, int64_t *out)
{
    /* All digits into one accumulator, then scale by the decimals. Unsigned:
     * the limits are checked after the loop, and 19 digits fit in 64 bits
     * unsigned but not signed; what is accepted has at most 10 + 8. */
    uint64_t acc = 0;
    uint32_t dot = len;
    if (len == 0 || len > 19)
        return 0;
    for (uint32_t i = 0; i < len; i++) {
        uint32_t dig = (uint32_t)s[i] - '0';
        if (dig <= 9) {
            acc = acc * 10 + dig;
        } else if (s[i] == '.' && dot == len) {
            dot = i;
        } else {
            return 0;
        }
    }
    uint32_t nd = dot == len ? 0 : len - dot - 1;
    if (dot == 0 || dot > 10 || nd > 8)
        return 0;
    *out = (int64_t)acc * decnum_scale[nd];
    return 1;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define DECNUM_SWAR 1
#define DECNUM_B(x) (0x0101010101010101ull * (x)) /* x in every byte */

/* The value of the 8 decimal digits in w, the first in the low byte (a
 * zero byte counts as a leading 0): pairs, quads, then octets combined, one
 * multiply each (x * (10 << 8 | 1) >> 8 puts 10 * d[i] + d[i+1] in byte i;
 * no lane overflows: 99, 9999, 99999999). */
static inline uint64_t decnum_digits8(uint64_t w)
{
    uint64_t v = ((w & DECNUM_B(0x0f)) * (10 << 8 | 1)) >> 8;
    v = ((v & 0x00ff00ff00ff00ffull) * (100 << 16 | 1)) >> 16;
    return ((v & 0x0000ffff0000ffffull) * (10000ull << 32 | 1)) >> 32;
}

/* quick_decimal for 1 <= len <= 8 (most prices), without a branch per
 * character. Reads 8 bytes at s, which the caller guarantees are there. */
DECNUM_INLINE int swar_decimal(const uint8_t *s, uint32_t len, int64_t *out)
{
    uint64_t w;
    memcpy(&w, s, 8);
    /* Left-aligned: the text in the top len bytes, zeros (leading 0s) below. */
    const unsigned sh = 64 - 8 * len;
    w <<= sh;
    /* Per byte, w & (w + 6) has high nibble 3 exactly for '0'-'9'. A byte
     * >= 0xfa carries into the next one, but it fails the test itself, and
     * carries only move towards later characters. x: bit 7 of each byte of
     * the text that is not a digit (high-nibble bits only, so no carry). */
    uint64_t x = ((w & (w + DECNUM_B(0x06))) & DECNUM_B(0xf0)) ^ DECNUM_B(0x30);
    uint64_t bad = ((x >> 1) + DECNUM_B(0x78)) & DECNUM_B(0x80) & (~0ull << sh);
    if (bad == 0) { /* an integer of at most 8 digits */
        *out = (int64_t)decnum_digits8(w) * decnum_scale[0];
        return 1;
    }
    /* One non-digit: a '.' after the first character. */
    const unsigned dot = (unsigned)__builtin_ctzll(bad) >> 3; /* its byte */
    if ((bad & (bad - 1)) || 8 * dot == sh || (uint8_t)(w >> (8 * dot)) != '.')
        return 0;
    /* Close the gap: the digits before the dot move up one byte. */
    const uint64_t upto = ~0ull >> (56 - 8 * dot); /* bytes 0..dot */
    w = ((w << 8) & upto) | (w & ~upto);
    *out = (int64_t)decnum_digits8(w) * decnum_scale[7 - dot];
    return 1;
}
#endif

/* A decimal of `len` bytes at s, `avail` bytes being readable from s. */
DECNUM_INLINE int fast_decimal(const uint8_t *s, uint32_t len, size_t avail, int64_t *out)
{
#ifdef DECNUM_SWAR
    if (len - 1 < 8 && avail >= 8)
        return swar_decimal(s, len, out);
#else
    (void)avail;
#endif
    return quick_decimal(s, len, out);
}

#endif
