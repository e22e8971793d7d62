/* crc32c — see crc32c.h.
 *
 * Software: slicing-by-8 (eight 256-entry tables, 8 KiB), ~1-2 GB/s.
 * Hardware: the SSE4.2 crc32 instruction has a 3-cycle latency but a
 * 1-cycle throughput, so one dependent chain uses a third of the unit. For
 * long buffers we run three independent chains over adjacent blocks and
 * merge them with a "shift by N zero bytes" table (linearity of CRCs), the
 * technique of Mark Adler's crc32c.c; that triples the speed on big journal
 * records, which is what replay spends its time on.
 */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CRC32C_HAVE_X86 1
#else
#define CRC32C_HAVE_X86 0
#endif

#define CRC32C_POLY 0x82F63B78u /* reflected Castagnoli */

/* Blocks for the three-way hardware path; the shift tables are built for
 * exactly these sizes. */
#define CRC32C_LONG 8192
#define CRC32C_SHORT 256

static uint32_t crc32c_table[8][256];
static uint32_t crc32c_long_shift[4][256];
static uint32_t crc32c_short_shift[4][256];
static int crc32c_use_hw;
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

/* ---- GF(2) helpers used only to build the shift tables ------------------ */

static uint32_t gf2_matrix_times(const uint32_t *mat, uint32_t vec)
{
    uint32_t sum = 0;
    while (vec) {
        if (vec & 1)
            sum ^= *mat;
        vec >>= 1;
        mat++;
    }
    return sum;
}

static void gf2_matrix_square(uint32_t *square, const uint32_t *mat)
{
    for (int n = 0; n < 32; n++)
        square[n] = gf2_matrix_times(mat, mat[n]);
}

/* Operator (32x32 bit matrix) that appends len zero bytes to a raw CRC
 * register; len must be a power of two >= 1. */
static void crc32c_zeros_op(uint32_t *even, size_t len)
{
    uint32_t odd[32];
    uint32_t row = 1;

    odd[0] = CRC32C_POLY; /* one zero bit */
    for (int n = 1; n < 32; n++) {
        odd[n] = row;
        row <<= 1;
    }
    gf2_matrix_square(even, odd); /* 2 zero bits */
    gf2_matrix_square(odd, even); /* 4 zero bits */
    /* Each square doubles the count: the first one here gives 1 byte. */
    do {
        gf2_matrix_square(even, odd);
        len >>= 1;
        if (len == 0)
            return;
        gf2_matrix_square(odd, even);
        len >>= 1;
    } while (len);
    memcpy(even, odd, sizeof(odd));
}

static void crc32c_zeros(uint32_t zeros[4][256], size_t len)
{
    uint32_t op[32];

    crc32c_zeros_op(op, len);
    for (uint32_t n = 0; n < 256; n++) {
        zeros[0][n] = gf2_matrix_times(op, n);
        zeros[1][n] = gf2_matrix_times(op, n << 8);
        zeros[2][n] = gf2_matrix_times(op, n << 16);
        zeros[3][n] = gf2_matrix_times(op, n << 24);
    }
}

static void crc32c_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc32c_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = crc32c_table[0][n];
        for (int k = 1; k < 8; k++) {
            c = crc32c_table[0][c & 0xff] ^ (c >> 8);
            crc32c_table[k][n] = c;
        }
    }
    crc32c_zeros(crc32c_long_shift, CRC32C_LONG);
    crc32c_zeros(crc32c_short_shift, CRC32C_SHORT);
#if CRC32C_HAVE_X86
    __builtin_cpu_init(); /* we may run before the libgcc constructor */
    crc32c_use_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#endif
}

static inline uint64_t crc32c_load64le(const uint8_t *p)
{
    /* The byte form compiles to one load on little-endian targets and keeps
     * the table code correct on big-endian ones. */
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

/* ---- software ----------------------------------------------------------- */

static uint32_t crc32c_sw_raw(uint32_t crc, const uint8_t *p, size_t n)
{
    while (n && ((uintptr_t)p & 7)) {
        crc = crc32c_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        n--;
    }
    while (n >= 8) {
        uint64_t w = crc32c_load64le(p) ^ crc;
        crc = crc32c_table[7][w & 0xff] ^ crc32c_table[6][(w >> 8) & 0xff] ^
              crc32c_table[5][(w >> 16) & 0xff] ^ crc32c_table[4][(w >> 24) & 0xff] ^
              crc32c_table[3][(w >> 32) & 0xff] ^ crc32c_table[2][(w >> 40) & 0xff] ^
              crc32c_table[1][(w >> 48) & 0xff] ^ crc32c_table[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = crc32c_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

uint32_t crc32c_sw(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&crc32c_once, crc32c_init);
    return ~crc32c_sw_raw(~crc, p, n);
}

/* ---- hardware ----------------------------------------------------------- */

#if CRC32C_HAVE_X86
static inline uint32_t crc32c_shift(const uint32_t zeros[4][256], uint32_t crc)
{
    return zeros[0][crc & 0xff] ^ zeros[1][(crc >> 8) & 0xff] ^ zeros[2][(crc >> 16) & 0xff] ^
           zeros[3][crc >> 24];
}

__attribute__((target("sse4.2"))) static uint32_t crc32c_hw_raw(uint32_t crc, const uint8_t *p,
                                                                size_t n)
{
    uint64_t c0 = crc;

    while (n && ((uintptr_t)p & 7)) {
        c0 = __builtin_ia32_crc32qi((uint32_t)c0, *p++);
        n--;
    }
    /* Three chains over three adjacent blocks, merged by shifting. */
    while (n >= 3 * CRC32C_LONG) {
        uint64_t c1 = 0, c2 = 0;
        const uint8_t *end = p + CRC32C_LONG;
        do {
            uint64_t w0, w1, w2;
            memcpy(&w0, p, 8);
            memcpy(&w1, p + CRC32C_LONG, 8);
            memcpy(&w2, p + 2 * CRC32C_LONG, 8);
            c0 = __builtin_ia32_crc32di(c0, w0);
            c1 = __builtin_ia32_crc32di(c1, w1);
            c2 = __builtin_ia32_crc32di(c2, w2);
            p += 8;
        } while (p < end);
        c0 = crc32c_shift(crc32c_long_shift, (uint32_t)c0) ^ c1;
        c0 = crc32c_shift(crc32c_long_shift, (uint32_t)c0) ^ c2;
        p += 2 * CRC32C_LONG;
        n -= 3 * CRC32C_LONG;
    }
    while (n >= 3 * CRC32C_SHORT) {
        uint64_t c1 = 0, c2 = 0;
        const uint8_t *end = p + CRC32C_SHORT;
        do {
            uint64_t w0, w1, w2;
            memcpy(&w0, p, 8);
            memcpy(&w1, p + CRC32C_SHORT, 8);
            memcpy(&w2, p + 2 * CRC32C_SHORT, 8);
            c0 = __builtin_ia32_crc32di(c0, w0);
            c1 = __builtin_ia32_crc32di(c1, w1);
            c2 = __builtin_ia32_crc32di(c2, w2);
            p += 8;
        } while (p < end);
        c0 = crc32c_shift(crc32c_short_shift, (uint32_t)c0) ^ c1;
        c0 = crc32c_shift(crc32c_short_shift, (uint32_t)c0) ^ c2;
        p += 2 * CRC32C_SHORT;
        n -= 3 * CRC32C_SHORT;
    }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c0 = __builtin_ia32_crc32di(c0, w);
        p += 8;
        n -= 8;
    }
    while (n--)
        c0 = __builtin_ia32_crc32qi((uint32_t)c0, *p++);
    return (uint32_t)c0;
}
#endif

int crc32c_hw_available(void)
{
    pthread_once(&crc32c_once, crc32c_init);
    return crc32c_use_hw;
}

uint32_t crc32c_hw(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&crc32c_once, crc32c_init);
#if CRC32C_HAVE_X86
    if (crc32c_use_hw)
        return ~crc32c_hw_raw(~crc, p, n);
#endif
    return ~crc32c_sw_raw(~crc, p, n);
}

uint32_t crc32c(uint32_t crc, const void *p, size_t n)
{
    return crc32c_hw(crc, p, n);
}
