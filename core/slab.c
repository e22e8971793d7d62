/* slab — pages of fixed-size slots, carved from one large mmap'ed region.
 *
 *   region (one mmap, MAP_NORESERVE: address space until touched)
 *   +-----------+-----------+-----------+-----------+- - - - - - - - - -+
 *   | chunk 1M  | chunk 1M  | chunk 1M  | chunk 1M  |  not yet opened    |
 *   | class 96  | class 2048| class 96  | class 224 |                    |
 *   +-----------+-----------+-----------+-----------+- - - - - - - - - -+
 *     |pg|pg|pg|..           carved by a per-class bump pointer;
 *                            an open chunk's uncarved tail is never touched
 *
 * Accounting is in carved page bytes: a page handed out, or handed back and
 * sitting on a free list, is memory; the uncarved tail of a class's open
 * chunk is not (the kernel has not backed it). With 21 classes of 1 MiB
 * chunks, counting whole chunks would add ~10 MiB of phantom overhead per
 * store, a third of the memory a million trades take. So the cap bounds carved bytes and
 * the mapping is oversized by one chunk per class plus per-chunk rounding,
 * which makes "carved + size <= cap" the only condition for a carve.
 *
 * Free pages are kept per class (LIFO, linked through ->next, and back
 * through the header's min_ts while free) with a bitmap of non-empty
 * classes, so "smallest free page at least this big" and "largest free page
 * in this range" are a bit scan each.
 *
 * A chunk whose pages are all free again, once its class has moved on to
 * another chunk, leaves its class: its pages come off the free list, its
 * bytes stop counting as carved, and the next class to open a chunk takes
 * it (memcached's slab rebalancing, done at the free that empties it). So
 * pages freed in one class (retention dropping compact pages) become room
 * for any other (a new symbol's growing pages), and the cap holds for
 * whatever mix of classes a store goes through.
 *
 *   chunk_live[i]: live pages in chunk i     chunk_class[i]: its class, -1 none
 *   free_chunks[]: emptied chunks, taken before the region's next one
 */
#include "slab.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Page classes: 96 bytes (header + 2 trades), then x9/8 rounded up to 32
 * (at least +32), up to 2048. Multiples of 32 leave no dead bytes after a
 * page's 32-byte trade slots. Chosen by measurement (load/storebench, W1 and
 * W1-10k at 1M trades): the max page trades page-header overhead (32 B per
 * page) against the slack of each partition's half-full tail page, which
 * flattens out around 1.5-2 KiB (1 KiB and 4 KiB each cost one workload
 * ~0.4 B/trade); the fine x9/8 ladder cuts the slack of the thousands of
 * small partitions in W1-10k (x1.25 costs it ~0.45 B/trade, x1.5 ~1.3).
 * tests/unit/test_slab.c checks the table follows the rule. */
static const uint32_t slab_classes[] = {96,  128, 160, 192, 224,  256,  288,  352,  416,  480, 544,
                                        640, 736, 832, 960, 1088, 1248, 1408, 1600, 1824, 2048};
_Static_assert(sizeof(slab_classes) / sizeof(slab_classes[0]) == SLAB_NCLASSES,
               "slab.h's SLAB_NCLASSES is the table's length");
#define SLAB_MAX_PAGE 2048u

/* A request may take a free page up to this many classes larger before a
 * new page is carved for it: recycles freed pages without handing a small
 * partition a page it will never fill (any larger class: W1-10k +6 B/trade). */
#define SLAB_REUSE_UP 1

_Static_assert(SLAB_NCLASSES <= 64, "the free bitmap is one uint64_t");
_Static_assert(sizeof(slab_page) == 32, "the page header is 32 bytes");

typedef struct slab_class {
    unsigned char *cur, *end; /* carve window in the class's open chunk */
    uint32_t open;            /* index of the open chunk; valid once chunks > 0 */
    unsigned char *told;      /* the ahead hook was told up to here (slab_set_ahead) */
    uint32_t chunks;          /* chunks this class has opened */
    slab_page *free;          /* free list, linked through ->next */
    uint64_t nfree;
} slab_class;

struct slab {
    unsigned char *base;
    size_t map_len;     /* bytes mapped: the cap plus chunk tails */
    size_t opened;      /* bytes of the mapping cut into chunks so far */
    uint64_t cap;       /* on carved page bytes */
    uint64_t carved;    /* live + free page bytes */
    uint64_t live;      /* live page bytes */
    uint64_t pages;     /* live pages */
    uint64_t freemask;  /* bit c: class c has a free page */
    slab_class cls[SLAB_NCLASSES];
    slab_ahead_fn ahead_fn; /* slab_set_ahead */
    void *ahead_ctx;
    size_t ahead;
    size_t next_told;   /* bytes told of the chunk at next_at (the next to open) */
    unsigned char *next_at;
    uint32_t *chunk_live;  /* per chunk of the region: live pages */
    int8_t *chunk_class;   /* per chunk: the class carving it, -1 none */
    uint32_t *free_chunks; /* emptied chunks (indexes), a stack */
    uint32_t nfree_chunks;
    uint64_t reclaimed;    /* chunks emptied and given back, ever */
};

_Static_assert(sizeof(slab_page *) <= sizeof(int64_t), "a free page's back link fits min_ts");

/* A free page's previous page on its class's free list, kept in min_ts
 * (meaningless while the page is free). */
static slab_page *slab__prev(const slab_page *p)
{
    slab_page *q;
    memcpy(&q, &p->min_ts, sizeof q);
    return q;
}

static void slab__set_prev(slab_page *p, slab_page *q) { memcpy(&p->min_ts, &q, sizeof q); }

static uint32_t slab__chunk_of(const slab *s, const void *p)
{
    return (uint32_t)(((const unsigned char *)p - s->base) / SLAB_CHUNK);
}

/* Where the next chunk to open starts: an emptied one, else the region's next. */
static unsigned char *slab__next_chunk(const slab *s)
{
    if (s->nfree_chunks)
        return s->base + (size_t)s->free_chunks[s->nfree_chunks - 1] * SLAB_CHUNK;
    return s->opened + SLAB_CHUNK <= s->map_len ? s->base + s->opened : NULL;
}

size_t slab_max_page(void) { return SLAB_MAX_PAGE; }

/* Index of the smallest class holding `bytes`, or -1. */
static int slab__class_of(size_t bytes)
{
    if (bytes > SLAB_MAX_PAGE)
        return -1;
    int lo = 0, hi = SLAB_NCLASSES - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (slab_classes[mid] >= bytes)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

size_t slab_class_size(size_t bytes)
{
    int c = slab__class_of(bytes);
    return c < 0 ? 0 : slab_classes[c];
}

int slab_class_index(size_t bytes) { return slab__class_of(bytes); }

size_t slab_class_bytes(int c)
{
    return c >= 0 && c < SLAB_NCLASSES ? slab_classes[c] : 0;
}

uint64_t slab_free_pages(const slab *s, int c)
{
    return c >= 0 && c < SLAB_NCLASSES ? s->cls[c].nfree : 0;
}

int slab_open(slab **out, size_t cap)
{
    *out = NULL;
    /* Chunks a carved total of `cap` can need: each chunk of class c holds
     * floor(CHUNK / size) pages, so it wastes less than one max page; and
     * every class may have one partly carved chunk. */
    size_t per_chunk = SLAB_CHUNK - SLAB_MAX_PAGE;
    size_t nchunks = cap / per_chunk + 1 + SLAB_NCLASSES;
    if (nchunks > SIZE_MAX / SLAB_CHUNK)
        return -ENOMEM;
    slab *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->map_len = nchunks * SLAB_CHUNK;
    void *p = mmap(NULL, s->map_len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        int err = errno;
        free(s);
        return -err;
    }
    s->base = p;
    s->cap = cap;
    s->chunk_live = calloc(nchunks, sizeof *s->chunk_live);
    s->chunk_class = malloc(nchunks);
    s->free_chunks = malloc(nchunks * sizeof *s->free_chunks);
    if (!s->chunk_live || !s->chunk_class || !s->free_chunks) {
        slab_close(s);
        return -ENOMEM;
    }
    memset(s->chunk_class, -1, nchunks);
    *out = s;
    return 0;
}

void slab_close(slab *s)
{
    if (!s)
        return;
    munmap(s->base, s->map_len);
    free(s->chunk_live);
    free(s->chunk_class);
    free(s->free_chunks);
    free(s);
}

/* Lowest class >= c with a free page, or -1. */
static int slab__free_from(const slab *s, int c)
{
    uint64_t m = s->freemask & (~(uint64_t)0 << c);
    return m ? __builtin_ctzll(m) : -1;
}

static slab_page *slab__hand_out(slab *s, slab_page *p, uint32_t size)
{
    memset(p, 0, sizeof *p);
    p->size = size;
    s->live += size;
    s->pages++;
    s->chunk_live[slab__chunk_of(s, p)]++;
    return p;
}

/* Take p off class c's free list. */
static void slab__unlink(slab *s, int c, slab_page *p)
{
    slab_class *k = &s->cls[c];
    slab_page *prev = slab__prev(p);
    if (prev)
        prev->next = p->next;
    else
        k->free = p->next;
    if (p->next)
        slab__set_prev(p->next, prev);
    if (--k->nfree == 0)
        s->freemask &= ~((uint64_t)1 << c);
}

static slab_page *slab__pop(slab *s, int c)
{
    slab_page *p = s->cls[c].free;
    slab__unlink(s, c, p);
    return slab__hand_out(s, p, slab_classes[c]);
}

/* Chunk i (of class c, not its open chunk) has no live page: every page
 * it was cut into is on c's free list. Give it back (see the top). */
static void slab__reclaim(slab *s, uint32_t i, int c)
{
    const uint32_t size = slab_classes[c], n = (uint32_t)(SLAB_CHUNK / size);
    unsigned char *at = s->base + (size_t)i * SLAB_CHUNK;
    assert(s->chunk_live[i] == 0 && s->chunk_class[i] == c);
    assert(s->cls[c].chunks == 0 || s->cls[c].open != i);
    for (uint32_t j = 0; j < n; j++)
        slab__unlink(s, c, (slab_page *)(at + (size_t)j * size));
    s->carved -= (uint64_t)n * size;
    s->chunk_class[i] = -1;
    s->free_chunks[s->nfree_chunks++] = i;
    s->reclaimed++;
}

/* Tell the ahead hook the next bytes class k will carve, up to `ahead`
 * past its carve pointer, once less than half of that is told. */
static inline void slab__ahead(slab *s, slab_class *k)
{
    /* Only a class on its second chunk or later: one that has filled a
     * chunk is likely to fill more, while the many classes a growing symbol
     * passes through once would each leave `ahead` bytes touched unused. */
    if (!s->ahead_fn || k->chunks < 2)
        return;
    unsigned char *from = k->told > k->cur ? k->told : k->cur; /* told: maybe an old chunk */
    if (from >= k->end || (size_t)(from - k->cur) >= s->ahead / 2)
        return;
    size_t room = (size_t)(k->end - k->cur);
    unsigned char *to = k->cur + (s->ahead < room ? s->ahead : room);
    s->ahead_fn(s->ahead_ctx, from, (size_t)(to - from));
    k->told = to;
    /* Near its chunk's end, the class will open the next chunk and carve
     * its first page at once, before any thread could fault it in: the
     * head of the next chunk (whichever class opens it) is told now. */
    unsigned char *next = slab__next_chunk(s);
    if (room <= s->ahead && next && next != s->next_at) {
        s->ahead_fn(s->ahead_ctx, next, s->ahead);
        s->next_at = next;
        s->next_told = s->ahead;
    }
}

void slab_set_ahead(slab *s, slab_ahead_fn fn, void *ctx, size_t ahead)
{
    s->ahead_fn = fn;
    s->ahead_ctx = ctx;
    s->ahead = ahead;
    for (int c = 0; c < SLAB_NCLASSES; c++)
        slab__ahead(s, &s->cls[c]);
}

/* A new page of class c from its open chunk (opening one if needed). */
static slab_page *slab__carve(slab *s, int c)
{
    uint32_t size = slab_classes[c];
    slab_class *k = &s->cls[c];
    if (s->carved + size > s->cap)
        return NULL;
    if ((size_t)(k->end - k->cur) < size) {
        /* Cannot run out: open() sized the mapping for the cap, and emptied
         * chunks are taken first. */
        unsigned char *at = slab__next_chunk(s);
        if (!at)
            return NULL;
        if (s->nfree_chunks) /* slab__next_chunk's order: emptied ones first */
            s->nfree_chunks--;
        else
            s->opened += SLAB_CHUNK;
        uint32_t old = k->open, i = slab__chunk_of(s, at);
        int had = k->chunks > 0;
        k->cur = at;
        k->end = at + SLAB_CHUNK / size * size;
        k->told = at == s->next_at ? at + s->next_told : at; /* maybe told before it was opened */
        if (at == s->next_at)
            s->next_at = NULL, s->next_told = 0;
        k->open = i;
        s->chunk_class[i] = (int8_t)c;
        k->chunks++;
        /* The chunk left behind may have emptied while it was open. */
        if (had && s->chunk_live[old] == 0)
            slab__reclaim(s, old, c);
    }
    slab__ahead(s, k);
    slab_page *p = (slab_page *)k->cur;
    k->cur += size;
    s->carved += size;
    return slab__hand_out(s, p, size);
}

slab_page *slab_alloc(slab *s, size_t bytes)
{
    int c = slab__class_of(bytes);
    if (c < 0)
        return NULL;
    int f = slab__free_from(s, c);
    if (f >= 0 && f <= c + SLAB_REUSE_UP)
        return slab__pop(s, f);
    slab_page *p = slab__carve(s, c);
    if (!p && f >= 0) /* at the cap: any larger free page beats failing */
        p = slab__pop(s, f);
    return p;
}

slab_page *slab_alloc_reuse(slab *s, size_t min_bytes, size_t bytes)
{
    int lo = slab__class_of(min_bytes), hi = slab__class_of(bytes);
    if (lo >= 0 && hi >= lo) {
        uint64_t range = (~(uint64_t)0 << lo) & (~(uint64_t)0 >> (63 - hi));
        uint64_t m = s->freemask & range;
        if (m)
            return slab__pop(s, 63 - __builtin_clzll(m));
    }
    return slab_alloc(s, bytes);
}

void slab_free(slab *s, slab_page *p)
{
    if (!p)
        return;
    int c = slab__class_of(p->size);
    slab_class *k = &s->cls[c];
    uint32_t i = slab__chunk_of(s, p);
    assert(c >= 0 && s->chunk_class[i] == c && s->chunk_live[i] > 0);
    p->next = k->free;
    slab__set_prev(p, NULL);
    if (k->free)
        slab__set_prev(k->free, p);
    k->free = p;
    k->nfree++;
    s->freemask |= (uint64_t)1 << c;
    s->live -= p->size;
    s->pages--;
    if (--s->chunk_live[i] == 0 && k->open != i)
        slab__reclaim(s, i, c);
}

int slab_can_alloc(const slab *s, size_t bytes)
{
    int c = slab__class_of(bytes);
    if (c < 0)
        return 0;
    return slab__free_from(s, c) >= 0 || s->carved + slab_classes[c] <= s->cap;
}

void slab_get_stats(const slab *s, slab_stats *st)
{
    st->pages = s->pages;
    st->bytes_cap = s->cap;
    st->bytes_reserved = s->carved;
    st->bytes_pages = s->live;
    st->bytes_free = s->carved - s->live;
    st->bytes_chunks = s->opened;
    st->chunks_reclaimed = s->reclaimed;
}
