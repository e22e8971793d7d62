/* snapshot — a store as one byte stream, and back.
 *
 * Plain C11 and no I/O: bytes leave through the caller's write function
 * and come back through its read function, and the checksum is the
 * caller's too (the server passes its hardware CRC32C), so core links no
 * file, socket or CRC code. The format is this module's alone:
 *
 *   stream (integers little endian; slots as the kinds lay them out)
 *   +------------------------------------------------------------------+
 *   | header, 64 B                                                     |
 *   |   0 magic "SLOTSNAP"      8 version u32 (3)   12 header bytes u32 |
 *   |  16 kinds fingerprint u64 24 partitions u32   28 kinds u32        |
 *   |  32 trades u64            40 batches u64      48 extra bytes u64  |
 *   |  56 reserved u32 (0)      60 crc u32 of bytes 0..59               |
 *   +------------------------------------------------------------------+
 *   | extra: the caller's blob, `extra bytes` long (opaque here)       |
 *   +------------------------------------------------------------------+
 *   | partition 0, in id order:                                        |
 *   |   record, 144 B (version 1: 128, without the last two fields)    |
 *   |     0 name len u8   1 kind id u8   2 zero[6]   8 name[32] (0-padded)
 *   |    40 count u64    48 volume u128  64 notional u128              |
 *   |    80 open i64  88 high  96 low  104 close  112 first ts  120 last ts
 *   |   128 first index u64 (absolute index of the first slot)         |
 *   |   136 slots u64 (count live records + tombstones; v1: = count)   |
 *   |   page frames, in arrival order, `slots` records in all:         |
 *   |     0 records n u32 (>= 1)   4 compact bytes u32 (0: wide)       |
 *   |     wide: n x slot bytes of the kind, the page's used slots      |
 *   |     compact: the page body as it lies in memory (cpage.h), n     |
 *   |       records in `compact bytes`                                 |
 *   |   (versions 1, 2: no frames, the slots x slot bytes back to back)|
 *   |   tombstones included, so absolute indexes (cursors) survive     |
 *   | partition 1 ...                                                  |
 *   +------------------------------------------------------------------+
 *   | trailer, 16 B: 0 magic "SNAPEND1"  8 crc u32 (stream bytes       |
 *   |   before it, trailer magic included)  12 zero u32                |
 *   +------------------------------------------------------------------+
 *
 * A compact page's body is checked (cpage_check) before it is read from;
 * its records are folded into the recomputed aggregates like any others.
 *
 * Slots are raw struct bytes, so a snapshot is only loadable by a build
 * whose kinds lay slots out the same way: the fingerprint hashes every
 * kind's declaration (names, ids, sizes, slot names, types, widths, flags)
 * and the bytes a probe record packs to (bit-field order, endianness). A
 * mismatch is refused with SNAPSHOT_EKIND, before anything is loaded.
 *
 * Loading trusts nothing before the trailer's checksum: every count and
 * length is checked against what the store can hold, names go through the
 * store's symbol rules, and the aggregates, which the load recomputes from
 * the slots (it reads each slot anyway to rebuild page min/max ts), must
 * equal the recorded ones. A failed load leaves the store half built: the
 * caller must close it and start again from an empty one.
 *
 * Per-client sequence numbers, journal positions and the like belong to
 * the caller: they travel in the extra blob. Retention-dropped pages simply
 * are not there; pending (reserved, uncommitted) batches are not written,
 * nor are symbols only they created (store.h: fresh symbols), nor removed
 * ids: partitions are renumbered densely, in the same order.
 */
#ifndef SLOTD_SNAPSHOT_H
#define SLOTD_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define SNAPSHOT_VERSION 3   /* written; versions 1 and 2 are still read */
#define SNAPSHOT_FRAME_BYTES 8 /* a page frame's header (version 3) */
#define SNAPSHOT_HEADER_BYTES 64
#define SNAPSHOT_PART_BYTES 144
#define SNAPSHOT_PART_BYTES_V1 128
#define SNAPSHOT_TRAILER_BYTES 16
#define SNAPSHOT_EXTRA_MAX ((uint64_t)1 << 30) /* a larger one is corruption */

/* Errors: 0 or a SNAPSHOT_E* code, declared in err.h (core_strerror). */

typedef struct snapshot_io {
    /* Consume exactly n bytes / produce exactly n bytes into p: 0, or
     * negative (reported as SNAPSHOT_EIO; the caller keeps the detail). */
    int (*write)(void *ctx, const void *p, size_t n);
    int (*read)(void *ctx, void *p, size_t n);
    /* CRC32C (Castagnoli) with chaining: crc(crc(0, a), b) == crc(0, a||b). */
    uint32_t (*crc)(uint32_t crc, const void *p, size_t n);
    void *ctx;
} snapshot_io;

typedef struct snapshot_info {
    uint64_t bytes;      /* stream length, trailer included */
    uint64_t partitions; /* written or loaded (visible or not) */
    uint64_t trades;
    uint64_t batches;
    uint64_t extra_bytes;
} snapshot_info;

/* The fingerprint of this build's record kinds (see above). */
uint64_t snapshot_kind_fingerprint(void);

/* Stream out every committed trade of `s` and the extra blob. Reads the
 * store only (no allocation): safe in a fork()ed child of the process
 * that owns it. info may be NULL. */
int snapshot_save(const store *s, const void *extra, size_t extra_len, const snapshot_io *io,
                  snapshot_info *info);

/* Rebuild into `s`, which must never have held a symbol. On success the
 * extra blob is returned in a malloc'ed *extra (free it; NULL when empty)
 * and every query on `s` answers as on the store that was saved. On failure
 * nothing is returned, and `s` must be closed. info may be NULL. */
int snapshot_load(store *s, const snapshot_io *io, void **extra, size_t *extra_len,
                  snapshot_info *info);

#endif
