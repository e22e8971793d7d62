/* fuzz_cpage — the compact page codec on arbitrary pages.
 *
 * The input describes a page: byte 0 picks the kind (bit 0) and byte
 * alignment (bit 1), byte 1 the record count (1..63); then per field a
 * base and a multiplier (8 bytes each), then per record one byte per
 * field (the value is base + byte * multiplier, wrapping) and a tombstone
 * byte. Values are then made ones the kind accepts (kind_check passes), so
 * the pages range from W1-like to wild. Checks, besides ASan/UBSan:
 *  - cpage_plan_page either refuses (CPAGE_ENOGAIN) or plans fewer bytes
 *    than the wide page; cpage_encode writes exactly that many;
 *  - cpage_check accepts what cpage_encode wrote, and every way of reading
 *    (cpage_decode of all and of a middle run, cpage_get, cpage_ts) gives
 *    the wide records back bit for bit, tombstones included;
 *  - cpage_kill on some records equals setting their ts to all ones on the
 *    wide page;
 *  - the raw input as an untrusted body: cpage_check may refuse it, and
 *    when it accepts, decoding it is memory safe.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpage.h"
#include "kind.h"

#define MAXN 63
#define CHECK(c)                                                                   \
    do {                                                                           \
        if (!(c)) {                                                                \
            fprintf(stderr, "fuzz_cpage: check failed at line %d: %s\n", __LINE__, #c); \
            abort();                                                               \
        }                                                                          \
    } while (0)

typedef struct rd {
    const uint8_t *p;
    size_t n;
} rd;

static uint64_t take(rd *r, size_t bytes)
{
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; i++) {
        uint8_t b = r->n ? (r->n--, *r->p++) : 0;
        v |= (uint64_t)b << (8 * i);
    }
    return v;
}

/* The value as the kind accepts it (kind_check's rules). */
static int64_t tame(const kind_field *f, uint64_t x)
{
    if (f->type == KIND_SIDE)
        return (int64_t)(x % 3);
    if (f->type == KIND_RIGHT)
        return (int64_t)(1 + x % 2);
    if (f->flags & KIND_SIGNED)
        return (int64_t)x == INT64_MIN ? INT64_MIN + 1 : (int64_t)x;
    if (f->type == KIND_U64 && f->bits == 64)
        return (int64_t)x;
    return (int64_t)(x & ((f->bits < 64 ? (1ULL << f->bits) : (1ULL << 63)) - 1));
}

static void untrusted(const kind *k, const uint8_t *data, size_t size)
{
    static unsigned char body[8192];
    static unsigned char out[MAXN * 64];
    if (size < 2 || size > sizeof body)
        return;
    uint32_t n = 1 + data[size - 1] % MAXN;
    memcpy(body, data, size);
    if (cpage_check(k, body, size, n) != CPAGE_OK)
        return;
    cpage_view v;
    cpage_open(&v, k, body);
    cpage_decode(&v, 0, n, out);
    cpage_kill(body, n - 1);
    CHECK(cpage_ts(&v, n - 1) == UINT64_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned char slots[MAXN * 64], wide[MAXN * 64], out[MAXN * 64], body[8192];
    rd r = {data, size};
    unsigned mode = (unsigned)take(&r, 1);
    const kind *k = mode & 1 ? &kind_option_trade : &kind_trade;
    untrusted(k, data, size);
    uint32_t n = 1 + (uint32_t)(take(&r, 1) % MAXN);
    uint64_t base[KIND_MAX_FIELDS], mult[KIND_MAX_FIELDS];
    for (unsigned f = 0; f < k->nfields; f++) {
        base[f] = take(&r, 8);
        mult[f] = take(&r, 8);
    }
    for (uint32_t i = 0; i < n; i++) {
        int64_t v[KIND_MAX_FIELDS];
        for (unsigned f = 0; f < k->nfields; f++)
            v[f] = tame(&k->fields[f], base[f] + take(&r, 1) * mult[f]);
        int bad = -1;
        CHECK(kind_check(k, v, 0xffff, &bad) == KIND_OK);
        memset(slots + i * k->size, 0, k->size);
        k->pack(slots + i * k->size, v);
        if (take(&r, 1) == 0xff)
            ((trade *)(slots + i * k->size))->ts = UINT64_MAX;
    }

    cpage_plan pl;
    int bytes = cpage_plan_page(&pl, k, slots, n, mode & 2 ? CPAGE_BYTE_ALIGN : 0);
    if (bytes == CPAGE_ENOGAIN)
        return 0;
    CHECK(bytes > 0 && (size_t)bytes < (size_t)n * k->size);
    memset(body, 0xA5, sizeof body);
    cpage_encode(&pl, k, slots, body);
    CHECK(body[bytes] == 0xA5);
    CHECK(cpage_bytes(body, n) == (size_t)bytes);
    CHECK(cpage_check(k, body, (size_t)bytes, n) == CPAGE_OK);
    cpage_view v;
    cpage_open(&v, k, body);
    cpage_decode(&v, 0, n, out);
    CHECK(memcmp(out, slots, (size_t)n * k->size) == 0);
    if (n > 2) {
        cpage_decode(&v, 1, n - 2, out);
        CHECK(memcmp(out, slots + k->size, (size_t)(n - 2) * k->size) == 0);
    }
    for (uint32_t i = 0; i < n; i++) {
        cpage_get(&v, i, out);
        CHECK(memcmp(out, slots + (size_t)i * k->size, k->size) == 0);
        CHECK(cpage_ts(&v, i) == kind_trade_of(slots + (size_t)i * k->size)->ts);
    }
    /* Deletes in place. */
    memcpy(wide, slots, (size_t)n * k->size);
    for (uint32_t i = (mode >> 2) % n; i < n; i += 1 + (mode >> 5)) {
        cpage_kill(body, i);
        ((trade *)(wide + (size_t)i * k->size))->ts = UINT64_MAX;
    }
    cpage_decode(&v, 0, n, out);
    CHECK(memcmp(out, wide, (size_t)n * k->size) == 0);
    return 0;
}
