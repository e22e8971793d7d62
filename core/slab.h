/* slab — pages of fixed-size slots, carved from one large mmap'ed region.
 *
 * The store asks for pages; a page holds the slots of one partition and a
 * small header (chain link, slot count, min/max timestamp so range queries
 * can skip it). There is no per-record header and no malloc per record.
 *
 * Memory comes from a single virtual reservation
 * (mmap PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE) made
 * at init: the kernel backs it lazily, and once init has succeeded a page
 * allocation is a pointer bump or a free-list pop — it never calls the OS,
 * and it fails only when the cap is reached. The region is cut into 1 MiB
 * chunks; each chunk serves one size class (memcached-style). Classes grow
 * geometrically from a small first page so that 10,000 small partitions do
 * not strand a large page each; a freed page returns to its class's free
 * list and may also serve a smaller request.
 *
 * What a request may get (the rule reservations are built on, store.c):
 * slab_alloc of class c takes a free page of class c or c+1, else carves
 * one of class c, else (at the cap) takes any free page of a class >= c;
 * slab_alloc_reuse takes the largest free page in its range, else is
 * slab_alloc. So a request of class c fails only when no free page of a
 * class >= c is left AND carving size(c) would pass the cap; a free page
 * never serves a request of a larger class. slab_free_pages tells, per
 * class, how many free pages there are, for callers that count them.
 *
 * The cap counts page bytes carved from chunks (live pages + free-listed
 * pages). A class's open chunk has an uncarved tail that is never touched;
 * the reservation is made larger than the cap by one chunk per class (plus
 * per-chunk rounding) so that those tails cost address space, not memory,
 * and never make an allocation under the cap fail.
 *
 *   page (one size class, 8-aligned)
 *   +------+--------+--------+-------+-----+---------------------------+
 *   | next | min_ts | max_ts | count | cap | slot 0 | slot 1 | ... slack |
 *   +------+--------+--------+-------+-----+---------------------------+
 *    32-byte header                          cap = (size - 32) / slot size
 */
#ifndef SLOTD_SLAB_H
#define SLOTD_SLAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct slab_page {
    struct slab_page *next; /* next page of the same partition */
    int64_t min_ts, max_ts; /* over the page's used slots */
    uint32_t count;         /* used slots */
    uint32_t size;          /* page bytes, header included (the class size) */
    unsigned char slots[];  /* 8-aligned */
} slab_page;

#define SLAB_PAGE_HEADER ((size_t)sizeof(slab_page))
#define SLAB_CHUNK ((size_t)1 << 20)

typedef struct slab_stats {
    uint64_t pages;          /* pages handed out and not freed */
    uint64_t bytes_cap;      /* the cap on carved page bytes */
    uint64_t bytes_reserved; /* page bytes carved from chunks: live + free-listed */
    uint64_t bytes_pages;    /* sum of live page sizes */
    uint64_t bytes_free;     /* bytes in free-listed pages */
    uint64_t bytes_chunks;   /* address space of the chunks opened (tails untouched) */
    uint64_t chunks_reclaimed; /* chunks emptied and given back to every class, ever */
} slab_stats;

typedef struct slab slab; /* opaque */

/* Cap carved page bytes at `cap` and reserve the address space for it. 0 or -errno. */
int slab_open(slab **out, size_t cap);
void slab_close(slab *s);

/* A page of at least `bytes` bytes (header included), or NULL at the cap.
 * The header is zeroed and ->size set to the class size actually given. */
slab_page *slab_alloc(slab *s, size_t bytes);
/* A page for `bytes`, recycling first: the largest free page whose class lies
 * between those of `min_bytes` and `bytes`, else as slab_alloc. For page
 * chains, where any page that holds a few slots is better than a new one. */
slab_page *slab_alloc_reuse(slab *s, size_t min_bytes, size_t bytes);
void slab_free(slab *s, slab_page *p);

/* The page size a request for `bytes` would get (its class), or 0 if larger
 * than the largest class. */
size_t slab_class_size(size_t bytes);
size_t slab_max_page(void);
/* Size classes: SLAB_NCLASSES of them, index 0 the smallest. */
#define SLAB_NCLASSES 21
/* Index of the class a request for `bytes` gets, or -1 if too large. */
int slab_class_index(size_t bytes);
size_t slab_class_bytes(int c);
/* Free-listed pages of class c (0 <= c < SLAB_NCLASSES). */
uint64_t slab_free_pages(const slab *s, int c);
/* Could `bytes` be allocated without exceeding the cap? */
int slab_can_alloc(const slab *s, size_t bytes);

void slab_get_stats(const slab *s, slab_stats *st);

/* Memory ahead of need. Each class carves its open chunk front to back, so
 * the bytes its next pages will take are known: `fn` is told them, about
 * `ahead` bytes past the class's carve pointer (never past its chunk), each
 * time the part already told runs below half of that, and when a chunk is
 * opened — for the classes that have filled a chunk already (the busy
 * ones: a class a growing symbol passes through once is left alone). And
 * once a busy class has `ahead` bytes or less left in its chunk, `fn` is
 * told the first `ahead` bytes of the next chunk to be opened (by whichever
 * class opens it), so that a chunk's first pages are not faulted in by the
 * allocating thread as it opens it. It runs on the thread that allocates,
 * inside slab_alloc, and must only hand the range on: the server
 * pre-faults it on another thread, so that carving a new page seldom costs
 * the allocating thread a page fault. The range may be written by the
 * allocator at any time after the call: whoever touches it must not change
 * its bytes. Memory cost: at most `ahead` bytes per busy class, plus
 * `ahead` of the next chunk, touched before they are carved. fn NULL: off. */
typedef void (*slab_ahead_fn)(void *ctx, void *from, size_t len);
void slab_set_ahead(slab *s, slab_ahead_fn fn, void *ctx, size_t ahead);

static inline uint32_t slab_page_cap(const slab_page *p, size_t slot_size)
{
    return (uint32_t)((p->size - SLAB_PAGE_HEADER) / slot_size);
}

#endif
