/* test_slab — size classes, alloc/free/reuse, the cap, stats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "slab.h"

#define MiB ((size_t)1 << 20)

/* The classes as slab.c documents them: 96, then x9/8 rounded up to 32 and
 * at least +32, the last one clamped to the max page. */
static void test_classes(void **st)
{
    (void)st;
    size_t maxp = slab_max_page();
    assert_int_equal(maxp, 2048);
    assert_int_equal(slab_class_size(0), 96);
    assert_int_equal(slab_class_size(1), 96);
    assert_int_equal(slab_class_size(96), 96);
    assert_int_equal(slab_class_size(97), 128);
    assert_int_equal(slab_class_size(maxp), maxp);
    assert_int_equal(slab_class_size(maxp - 1), maxp);
    assert_int_equal(slab_class_size(maxp + 1), 0);
    assert_int_equal(slab_class_size(SIZE_MAX), 0);

    size_t prev = slab_class_size(1), n = 1;
    while (prev < maxp) {
        size_t next = slab_class_size(prev + 1);
        size_t want = (prev * 9 + 8 * 32 - 1) / (8 * 32) * 32;
        if (want < prev + 32)
            want = prev + 32;
        if (want > maxp)
            want = maxp;
        assert_int_equal(next, want);
        assert_int_equal((next - SLAB_PAGE_HEADER) % 32, 0); /* no dead bytes for trades */
        assert_true(next > prev);
        /* Every size in between maps to the class above it. */
        assert_int_equal(slab_class_size(prev + (next - prev) / 2), next);
        prev = next;
        n++;
    }
    assert_true(n <= 64);
    /* A trade page of the first class holds two 32-byte slots. */
    slab_page pg = {.size = 96};
    assert_int_equal(slab_page_cap(&pg, 32), 2);
    assert_int_equal(slab_page_cap(&pg, 48), 1);
    assert_int_equal(SLAB_PAGE_HEADER, 32);
    assert_int_equal(offsetof(slab_page, slots) % 8, 0);
}

static void test_alloc_free_reuse(void **st)
{
    (void)st;
    slab *s;
    assert_int_equal(slab_open(&s, 64 * MiB), 0);

    slab_page *a = slab_alloc(s, 100);
    assert_non_null(a);
    assert_int_equal(a->size, 128);
    assert_null(a->next);
    assert_int_equal(a->count, 0);
    assert_int_equal(a->min_ts, 0);
    assert_int_equal(a->max_ts, 0);
    assert_int_equal((uintptr_t)a % 8, 0);
    memset(a->slots, 0xab, a->size - SLAB_PAGE_HEADER);
    a->count = 3;
    a->min_ts = 5;

    /* LIFO reuse, header zeroed again. */
    slab_free(s, a);
    slab_page *b = slab_alloc(s, 128);
    assert_ptr_equal(a, b);
    assert_int_equal(b->count, 0);
    assert_int_equal(b->min_ts, 0);
    assert_int_equal(b->size, 128);

    /* A free page one class larger serves a smaller request (its capacity
     * comes from its own size); one much larger does not while there is
     * room to carve. */
    slab_page *c = slab_alloc(s, 128);
    assert_int_equal(c->size, 128);
    slab_free(s, c);
    slab_page *d = slab_alloc(s, 96);
    assert_ptr_equal(c, d);
    assert_int_equal(d->size, 128);
    assert_int_equal(slab_page_cap(d, 32), 3);
    slab_page *big = slab_alloc(s, 1000);
    assert_int_equal(big->size, 1088);
    slab_free(s, big);
    slab_page *e = slab_alloc(s, 96);
    assert_ptr_not_equal(e, big);
    assert_int_equal(e->size, 96);

    /* Chains recycle the largest free page in range. */
    slab_page *p600 = slab_alloc(s, 600);
    assert_int_equal(p600->size, 640);
    slab_free(s, p600);
    slab_page *r = slab_alloc_reuse(s, 96, slab_max_page());
    assert_ptr_equal(r, big);
    r = slab_alloc_reuse(s, 96, slab_max_page());
    assert_ptr_equal(r, p600);
    r = slab_alloc_reuse(s, 96, slab_max_page()); /* nothing free: a max page */
    assert_int_equal(r->size, slab_max_page());
    slab_page *small = slab_alloc(s, 96);
    slab_free(s, small);
    r = slab_alloc_reuse(s, 200, slab_max_page()); /* below min: not taken */
    assert_ptr_not_equal(r, small);
    assert_int_equal(r->size, slab_max_page());

    /* Oversized requests fail. */
    assert_null(slab_alloc(s, slab_max_page() + 1));
    slab_close(s);
}

/* Many pages across chunks: distinct, aligned, writable without overlap. */
static void test_many_pages(void **st)
{
    (void)st;
    slab *s;
    assert_int_equal(slab_open(&s, 64 * MiB), 0);
    enum { N = 30000 };
    slab_page **pg = malloc(N * sizeof *pg);
    assert_non_null(pg);
    for (int i = 0; i < N; i++) {
        size_t want = 64 + (size_t)(i % 7) * 150;
        pg[i] = slab_alloc(s, want);
        assert_non_null(pg[i]);
        assert_true(pg[i]->size >= want);
        assert_int_equal((uintptr_t)pg[i] % 8, 0);
        memset(pg[i]->slots, i & 0xff, pg[i]->size - SLAB_PAGE_HEADER);
        pg[i]->count = (uint32_t)i;
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(pg[i]->count, (uint32_t)i);
        size_t n = pg[i]->size - SLAB_PAGE_HEADER;
        assert_int_equal(pg[i]->slots[0], i & 0xff);
        assert_int_equal(pg[i]->slots[n - 1], i & 0xff);
    }
    slab_stats ss;
    slab_get_stats(s, &ss);
    assert_int_equal(ss.pages, N);
    assert_int_equal(ss.bytes_free, 0);
    assert_int_equal(ss.bytes_reserved, ss.bytes_pages);
    assert_true(ss.bytes_chunks >= ss.bytes_reserved);
    assert_int_equal(ss.bytes_chunks % SLAB_CHUNK, 0);
    for (int i = 0; i < N; i += 2)
        slab_free(s, pg[i]);
    slab_get_stats(s, &ss);
    assert_int_equal(ss.pages, N / 2);
    assert_int_equal(ss.bytes_free + ss.bytes_pages, ss.bytes_reserved);
    free(pg);
    slab_close(s);
}

static void test_cap(void **st)
{
    (void)st;
    slab *s;
    size_t maxp = slab_max_page();
    assert_int_equal(slab_open(&s, 2 * maxp + 96), 0);
    slab_page *a = slab_alloc(s, maxp), *b = slab_alloc(s, maxp);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(slab_can_alloc(s, 96));
    slab_page *c = slab_alloc(s, 96);
    assert_non_null(c);
    /* Carved bytes are at the cap exactly. */
    assert_false(slab_can_alloc(s, 96));
    assert_null(slab_alloc(s, 96));
    assert_null(slab_alloc(s, maxp));
    assert_null(slab_alloc_reuse(s, 96, maxp));
    slab_stats ss;
    slab_get_stats(s, &ss);
    assert_int_equal(ss.bytes_cap, 2 * maxp + 96);
    assert_int_equal(ss.bytes_reserved, 2 * maxp + 96);
    assert_int_equal(ss.pages, 3);

    /* At the cap, a freed max page serves any request, however small. */
    slab_free(s, a);
    assert_true(slab_can_alloc(s, 96));
    assert_true(slab_can_alloc(s, maxp));
    slab_page *d = slab_alloc(s, 200);
    assert_ptr_equal(d, a);
    assert_int_equal(d->size, maxp);
    assert_null(slab_alloc(s, 96));
    slab_free(s, c);
    assert_ptr_equal(slab_alloc(s, 96), c);
    slab_close(s);

    /* A zero cap allocates nothing; a huge one fails cleanly or works. */
    assert_int_equal(slab_open(&s, 0), 0);
    assert_null(slab_alloc(s, 96));
    slab_close(s);
    assert_true(slab_open(&s, SIZE_MAX) < 0);
}

static void test_stats(void **st)
{
    (void)st;
    slab *s;
    slab_stats ss;
    assert_int_equal(slab_open(&s, 16 * MiB), 0);
    slab_get_stats(s, &ss);
    assert_int_equal(ss.pages, 0);
    assert_int_equal(ss.bytes_cap, 16 * MiB);
    assert_int_equal(ss.bytes_reserved, 0);
    assert_int_equal(ss.bytes_pages, 0);
    assert_int_equal(ss.bytes_free, 0);
    assert_int_equal(ss.bytes_chunks, 0);

    slab_page *a = slab_alloc(s, 96), *b = slab_alloc(s, 2048), *c = slab_alloc(s, 96);
    slab_get_stats(s, &ss);
    assert_int_equal(ss.pages, 3);
    assert_int_equal(ss.bytes_pages, 96 + 2048 + 96);
    assert_int_equal(ss.bytes_reserved, 96 + 2048 + 96);
    assert_int_equal(ss.bytes_chunks, 2 * SLAB_CHUNK); /* one chunk per class used */
    slab_free(s, b);
    slab_get_stats(s, &ss);
    assert_int_equal(ss.pages, 2);
    assert_int_equal(ss.bytes_pages, 192);
    assert_int_equal(ss.bytes_free, 2048);
    assert_int_equal(ss.bytes_reserved, 192 + 2048);
    slab_free(s, a);
    slab_free(s, c);
    slab_free(s, NULL);
    slab_get_stats(s, &ss);
    assert_int_equal(ss.pages, 0);
    assert_int_equal(ss.bytes_pages, 0);
    assert_int_equal(ss.bytes_free, ss.bytes_reserved);
    slab_close(s);
    slab_close(NULL);
}

/* ---- emptied chunks change class ------------------------------------------ */

/* Pages of class 96 fill one chunk and start a second; freeing every page
 * of the first gives it back (carved bytes fall by its pages, its pages
 * leave the free list) and the next chunk any class opens is that one.
 * The open chunk is not given back while its class carves in it, only once
 * the class has moved on. */
static void test_reclaim(void **st)
{
    (void)st;
    slab *s;
    slab_stats ss;
    const size_t per = SLAB_CHUNK / 96;
    slab_page **pg = calloc(2 * per, sizeof *pg);
    assert_int_equal(slab_open(&s, 8 * MiB), 0);
    for (size_t i = 0; i < per + 10; i++)
        assert_non_null(pg[i] = slab_alloc(s, 96));
    const unsigned char *chunk0 = (const unsigned char *)pg[0];
    for (size_t i = 0; i < per; i++)
        slab_free(s, pg[i]);
    slab_get_stats(s, &ss);
    assert_int_equal(ss.chunks_reclaimed, 1);
    assert_int_equal(ss.bytes_reserved, 10 * 96);
    assert_int_equal(slab_free_pages(s, 0), 0);
    assert_int_equal(ss.bytes_free, 0);
    /* Class 2048 opens its first chunk: the one given back. */
    slab_page *big = slab_alloc(s, 2048);
    assert_ptr_equal(big, chunk0);
    /* The open chunk of class 96 emptied: kept while open... */
    for (size_t i = per; i < per + 10; i++)
        slab_free(s, pg[i]);
    slab_get_stats(s, &ss);
    assert_int_equal(ss.chunks_reclaimed, 1);
    assert_int_equal(slab_free_pages(s, 0), 10);
    /* ...its free pages are taken again, and once the class has carved
     * the rest and moved on to a new chunk, the emptied one goes back. */
    for (size_t i = 0; i < per; i++)
        assert_non_null(pg[i] = slab_alloc(s, 96));
    for (size_t i = 0; i < per; i++)
        slab_free(s, pg[i]);
    slab_get_stats(s, &ss);
    assert_int_equal(ss.chunks_reclaimed, 1); /* still its open chunk */
    assert_non_null(pg[0] = slab_alloc(s, 96)); /* a free page first */
    for (size_t i = 1; i < per + 2; i++)
        assert_non_null(pg[i] = slab_alloc(s, 96));
    slab_get_stats(s, &ss);
    assert_true(ss.bytes_reserved == ss.bytes_pages + ss.bytes_free);
    assert_int_equal(ss.chunks_reclaimed, 1);
    for (size_t i = 0; i < per; i++) /* the second chunk, now behind its class */
        slab_free(s, pg[i]);
    slab_get_stats(s, &ss);
    assert_int_equal(ss.chunks_reclaimed, 2);
    assert_int_equal(ss.bytes_reserved, 2 * 96 + 2048);
    slab_free(s, big); /* class 2048's open chunk: kept */
    slab_get_stats(s, &ss);
    assert_int_equal(ss.chunks_reclaimed, 2);
    slab_close(s);
    free(pg);
}

/* Random churn over every class at a small cap: carved bytes are always
 * the live pages plus the free-listed ones, a class's free count is what
 * it hands out, and allocation at the cap succeeds whenever the rule of
 * slab.h says it must. */
static void test_reclaim_churn(void **st)
{
    (void)st;
    enum { N = 20000 };
    slab *s;
    slab_page **live = calloc(N, sizeof *live);
    uint32_t n = 0, seed = 12345;
    assert_int_equal(slab_open(&s, 6 * MiB), 0);
    for (int step = 0; step < 400000; step++) {
        seed = seed * 1103515245u + 12345u;
        uint32_t r = seed >> 8;
        /* Phases of growth and of mass freeing, so chunks empty out. */
        uint32_t grow = (step / 20000) % 2 ? 10 : 80;
        if (n < N && (r % 100 < grow || n == 0)) {
            static const int cls[] = {0, 7, 13, SLAB_NCLASSES - 1}; /* few: chunks fill */
            size_t bytes = slab_class_bytes(cls[r % 4]);
            int must = slab_can_alloc(s, bytes);
            slab_page *p = slab_alloc(s, bytes);
            assert_true(!must || p);
            if (p) {
                assert_true(p->size >= bytes);
                live[n++] = p;
            }
        } else {
            uint32_t i = r % n;
            slab_free(s, live[i]);
            live[i] = live[--n];
        }
        if (step % 997 == 0) {
            slab_stats ss;
            uint64_t free_bytes = 0;
            slab_get_stats(s, &ss);
            for (int c = 0; c < SLAB_NCLASSES; c++)
                free_bytes += slab_free_pages(s, c) * slab_class_bytes(c);
            assert_true(ss.bytes_reserved == ss.bytes_pages + free_bytes);
            assert_true(ss.bytes_reserved <= ss.bytes_cap);
        }
    }
    slab_stats ss;
    slab_get_stats(s, &ss);
    assert_true(ss.chunks_reclaimed > 0);
    while (n)
        slab_free(s, live[--n]);
    slab_close(s);
    free(live);
}

/* ---- memory ahead (slab_set_ahead) ----------------------------------------- */

#define AHEAD_MAX 4096
typedef struct told {
    size_t n;
    unsigned char *from[AHEAD_MAX];
    size_t len[AHEAD_MAX];
} told;

static void record(void *ctx, void *from, size_t len)
{
    told *t = ctx;
    assert_true(t->n < AHEAD_MAX);
    t->from[t->n] = from;
    t->len[t->n++] = len;
}

/* Was [p, p + n) told, in one range? */
static int covered(const told *t, const void *p, size_t n)
{
    const unsigned char *a = p;
    for (size_t i = 0; i < t->n; i++)
        if (a >= t->from[i] && a + n <= t->from[i] + t->len[i])
            return 1;
    return 0;
}

/* The hook is told the bytes a class will carve next, ahead of its carve
 * pointer and inside its chunk, only once the class has filled a chunk;
 * a class carving a few pages is never told anything. */
static void test_ahead(void **st)
{
    (void)st;
    slab *s;
    told *t = calloc(1, sizeof *t);
    const size_t ahead = 64 << 10;
    assert_int_equal(slab_open(&s, 64 * MiB), 0);
    slab_set_ahead(s, record, t, ahead);
    assert_int_equal(t->n, 0); /* nothing carved yet */
    /* A few small pages: a class on its first chunk. */
    for (int i = 0; i < 100; i++)
        assert_non_null(slab_alloc(s, 96));
    assert_int_equal(t->n, 0);
    /* Fill the 2048 class's first chunk: nothing told; from its second
     * chunk on, every page carved was told before it was handed out. */
    size_t per_chunk = SLAB_CHUNK / 2048, second = 0, opened_warm = 0;
    for (size_t i = 0; i < 5 * per_chunk; i++) {
        size_t before = t->n;
        slab_page *p = slab_alloc(s, 2048);
        assert_non_null(p);
        if (i < per_chunk) {
            assert_int_equal(t->n, 0);
            continue;
        }
        second++;
        assert_true(covered(t, p, 2048));
        /* The first page of a chunk opened from the third on was told
         * before the call that opened it (the next chunk's head). */
        if (i >= 2 * per_chunk && i % per_chunk == 0) {
            told prior = *t;
            prior.n = before;
            assert_true(covered(&prior, p, 2048));
            opened_warm++;
        }
        /* Each range told: inside the page's chunk, at most `ahead` past
         * the page; or the head of the next chunk, at most `ahead` long. */
        for (size_t j = before; j < t->n; j++) {
            const unsigned char *a = t->from[j], *e = a + t->len[j];
            int next = a > (const unsigned char *)p && (size_t)(a - t->from[0]) % SLAB_CHUNK == 0;
            assert_true(next ? t->len[j] == ahead : e <= (const unsigned char *)p + ahead);
        }
    }
    assert_int_equal(second, 4 * per_chunk);
    assert_int_equal(opened_warm, 3);
    /* Told once per half of `ahead` carved, give or take a chunk's start
     * and the next chunk's head. */
    assert_true(t->n >= 4 * SLAB_CHUNK / ahead && t->n <= 4 * (SLAB_CHUNK / (ahead / 2) + 2));
    /* No range crosses a chunk boundary (the first starts a chunk). */
    for (size_t i = 0; i < t->n; i++) {
        uintptr_t a = (uintptr_t)t->from[i], e = a + t->len[i] - 1;
        assert_true((a - (uintptr_t)t->from[0]) / SLAB_CHUNK ==
                    (e - (uintptr_t)t->from[0]) / SLAB_CHUNK);
    }
    /* Off: nothing more is told. */
    size_t n = t->n;
    slab_set_ahead(s, NULL, NULL, 0);
    for (size_t i = 0; i < per_chunk; i++)
        assert_non_null(slab_alloc(s, 2048));
    assert_int_equal(t->n, n);
    slab_close(s);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes),    cmocka_unit_test(test_alloc_free_reuse),
        cmocka_unit_test(test_many_pages), cmocka_unit_test(test_cap),
        cmocka_unit_test(test_stats),      cmocka_unit_test(test_ahead),
        cmocka_unit_test(test_reclaim),    cmocka_unit_test(test_reclaim_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
