/* test_crc32c — known CRC-32C vectors (RFC 3720 B.4) and hardware == software
 * on random buffers of every alignment and on lengths that cross the
 * three-way block sizes of the hardware path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crc32c.h"

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);
static const crc_fn impls[] = {crc32c, crc32c_sw, crc32c_hw};

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void)
{
    /* xorshift64*: deterministic so a failure reproduces. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static void test_known_vectors(void **state)
{
    (void)state;
    uint8_t buf[32];

    for (size_t i = 0; i < sizeof(impls) / sizeof(impls[0]); i++) {
        crc_fn f = impls[i];
        assert_int_equal(f(0, "123456789", 9), 0xE3069283u);
        assert_int_equal(f(0, "", 0), 0);
        assert_int_equal(f(0, "a", 1), 0xC1D04330u);
        memset(buf, 0, sizeof(buf));
        assert_int_equal(f(0, buf, 32), 0x8A9136AAu);
        memset(buf, 0xff, sizeof(buf));
        assert_int_equal(f(0, buf, 32), 0x62A8AB43u);
        for (int k = 0; k < 32; k++)
            buf[k] = (uint8_t)k;
        assert_int_equal(f(0, buf, 32), 0x46DD794Eu);
        for (int k = 0; k < 32; k++)
            buf[k] = (uint8_t)(31 - k);
        assert_int_equal(f(0, buf, 32), 0x113FDB5Cu);
    }
}

static void test_chaining(void **state)
{
    (void)state;
    const char *s = "The quick brown fox jumps over the lazy dog";
    size_t n = strlen(s);

    for (size_t i = 0; i < sizeof(impls) / sizeof(impls[0]); i++) {
        uint32_t whole = impls[i](0, s, n);
        assert_int_equal(whole, 0x22620404u);
        for (size_t cut = 0; cut <= n; cut++)
            assert_int_equal(impls[i](impls[i](0, s, cut), s + cut, n - cut), whole);
    }
}

static void test_hw_equals_sw_random(void **state)
{
    (void)state;
    /* Larger than 3 * 8192 so the long three-way path runs several times. */
    const size_t cap = 100000;
    uint8_t *buf = malloc(cap + 16);
    assert_non_null(buf);
    for (size_t i = 0; i < cap + 16; i++)
        buf[i] = (uint8_t)rng();

    /* Every alignment and every small length. */
    for (size_t off = 0; off < 16; off++)
        for (size_t n = 0; n < 1024; n++) {
            uint32_t seed = (uint32_t)rng();
            assert_int_equal(crc32c_hw(seed, buf + off, n), crc32c_sw(seed, buf + off, n));
        }
    /* Random lengths, including the block boundaries of the hw path. */
    const size_t edges[] = {767, 768, 769, 24575, 24576, 24577, 49152, 49153, cap};
    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
        for (size_t off = 0; off < 9; off++)
            assert_int_equal(crc32c_hw(0, buf + off, edges[i]), crc32c_sw(0, buf + off, edges[i]));
    for (int iter = 0; iter < 300; iter++) {
        size_t off = rng() % 16, n = rng() % cap;
        uint32_t seed = (uint32_t)rng();
        assert_int_equal(crc32c_hw(seed, buf + off, n), crc32c_sw(seed, buf + off, n));
        assert_int_equal(crc32c(seed, buf + off, n), crc32c_sw(seed, buf + off, n));
    }
    free(buf);
}

static void test_hw_reported(void **state)
{
    (void)state;
#if defined(__x86_64__)
    /* Every x86-64 CPU this service targets has SSE4.2; if this fails, the
     * dispatch is broken rather than the machine being old. */
    assert_true(crc32c_hw_available());
#else
    skip();
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_vectors),
        cmocka_unit_test(test_chaining),
        cmocka_unit_test(test_hw_equals_sw_random),
        cmocka_unit_test(test_hw_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
