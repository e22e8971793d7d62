/* cpage — compact pages: the used slots of a full page of one kind,
 * re-encoded narrow, every record still the same width, so record i is
 * found by arithmetic (the __slots__ idea kept, only narrower, chosen per
 * page).
 *
 * Generic over the kind declaration (kind.h): every slot, whatever its
 * type, narrows the same way. Its values on the page (as 64-bit patterns;
 * a KIND_SIGNED slot ordered as signed) are stored as
 *
 *     value = base + q * step          q in [0, 2^width)
 *
 * base the page's smallest value, step the gcd of the offsets from it (a
 * price tick, a lot size; 1 for jittered ns times and climbing ids), width
 * the bits the largest q needs. So ts becomes an offset from the page's
 * first time, px ticks above the page's low, qty lots, id an offset, and
 * side (0..2) one bit or none. Field 0 (the base `trade`'s ts) reserves
 * the all-ones q as "dead": a tombstone (ts all ones, store_internal.h)
 * survives encoding and a delete on a compact page is one O(1) write
 * (cpage_kill), never a re-expansion. Widths are per page and per field,
 * chosen at encode time; records are bit-packed (measured against
 * byte-aligned widths: docs/performance.md, "compact pages").
 *
 *   compact page body (after the 32-byte slab_page header)
 *   +-------+----+-------+----------+-----------------+-----------------+
 *   | magic | nf | rbits | stepmask | hdr bytes (u16) |   8 B            |
 *   +-------+----+-------+----------+-----------------+-----------------+
 *   | width[nf] u8, zero-padded to 8                                     |
 *   | base[nf] u64                                                       |
 *   | step[popcount(stepmask)] u64  (fields whose step is not 1)         |
 *   +--------------------------------------------------------------------+
 *   | record 0 | record 1 | ... | record n-1 |  8 zero bytes             |
 *   +--------------------------------------------------------------------+
 *     rbits = sum of widths; record i starts at bit i * rbits, fields in
 *     kind order, LSB first (little endian), each q `width` bits:
 *
 *     record (W1 example, 58 bits)
 *     +-----------+--------+---------+------+-----------+
 *     | ts q  21  | px q 8 | qty q 14| sd 1 | id q  14  |
 *     +-----------+--------+---------+------+-----------+
 *
 * A page whose compact form would not be smaller than its wide slots is
 * refused with CPAGE_ENOGAIN: the caller keeps the wide page (a page with a
 * price jump across the whole int64 range, random ids...). Correctness
 * never depends on the data: every value of every slot the kind accepts
 * round-trips bit for bit (tests/unit/test_cpage.c, tests/fuzz/fuzz_cpage.c).
 *
 * Plain C11, no allocation, no I/O. Little-endian hosts.
 */
#ifndef SLOTD_CPAGE_H
#define SLOTD_CPAGE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "kind.h"

#define CPAGE_MAGIC 0xC5
#define CPAGE_PAD 8          /* zero bytes after the records: loads read 9 bytes */
#define CPAGE_MAX_RECS 256   /* records per compact page (a 2 KiB slab page holds 63) */
#define CPAGE_BYTE_ALIGN 1   /* cpage_plan flag: widths rounded up to whole bytes */

/* What an encode will write; cpage_plan fills it, cpage_encode uses it. */
typedef struct cpage_plan {
    uint32_t n;       /* records */
    uint32_t bytes;   /* body bytes, header and padding included */
    uint16_t hdr;     /* header bytes (the records start there) */
    uint16_t rbits;   /* bits per record */
    uint16_t stepmask;
    uint8_t nfields;
    uint8_t width[KIND_MAX_FIELDS];
    uint64_t base[KIND_MAX_FIELDS], step[KIND_MAX_FIELDS];
} cpage_plan;

/* A compact page opened for reading: the header parsed once, then any
 * record by index (cpage_get) or a run of them (cpage_decode). */
typedef struct cpage_field {
    uint64_t base, step, mask; /* mask: the q's width, all ones */
    uint64_t fmask;            /* the slot's width in the wide record, all ones */
    uint16_t off;              /* bit offset in the compact record */
    uint8_t word, shift;       /* where the slot lies in the wide record */
} cpage_field;

typedef struct cpage_view {
    const unsigned char *recs;
    uint32_t rbits;
    uint32_t nfields;
    uint32_t words; /* the wide record's size in uint64 words */
    cpage_field f[KIND_MAX_FIELDS];
} cpage_view;

/* Errors: 0 or CPAGE_ENOGAIN / CPAGE_EFORMAT (err.h, core_strerror). */

/* Plan the compact form of the `n` wide records at `slots` (k->size bytes
 * each, as k->pack lays them out; tombstones allowed). Returns the body
 * bytes (> 0), or CPAGE_ENOGAIN when they are not fewer than n * k->size
 * (or n is 0 or past CPAGE_MAX_RECS). flags: 0 or CPAGE_BYTE_ALIGN. */
int cpage_plan_page(cpage_plan *pl, const kind *k, const void *slots, uint32_t n, unsigned flags);
/* Write the planned body (pl->bytes) at `body`. */
void cpage_encode(const cpage_plan *pl, const kind *k, const void *slots, void *body);
/* Both at once (bit-packed), the slots read once: the body, pl->bytes, at
 * `body` (cap bytes). Returns the bytes, or CPAGE_ENOGAIN as
 * cpage_plan_page does, or when they would pass cap. */
int cpage_compact(cpage_plan *pl, const kind *k, const void *slots, uint32_t n, void *body,
                  size_t cap);

/* Open a body written by cpage_encode for kind k (trusted: the store's own
 * pages). */
void cpage_open(cpage_view *v, const kind *k, const void *body);
/* Check an untrusted body of `bytes` holding `n` records of kind k (a
 * snapshot's): 0, or CPAGE_EFORMAT. Every value it decodes to fits its
 * slot; a checked body is safe to open, read and kill. */
int cpage_check(const kind *k, const void *body, size_t bytes, uint32_t n);
/* Body bytes of an encoded page of n records (from its header). */
size_t cpage_bytes(const void *body, uint32_t n);

/* Records [from, from + n) as wide records (k->size bytes each) at out,
 * exactly the bytes that were encoded (tombstones: ts all ones). */
void cpage_decode(const cpage_view *v, uint32_t from, uint32_t n, void *out);
/* Record i as a wide record. */
void cpage_get(const cpage_view *v, uint32_t i, void *out);
/* Record i's ts (field 0) alone; all ones for a tombstone. */
uint64_t cpage_ts(const cpage_view *v, uint32_t i);
/* Make record i a tombstone in place: O(1), its other fields kept. */
void cpage_kill(void *body, uint32_t i);

#endif
