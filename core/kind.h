/* kind — record kinds, declared once.
 *
 * A kind is what __slots__ is to a Python class: a fixed list of named
 * slots, and nothing else per record. Each kind is one X-macro list below;
 * from it come the packed C struct, the field table decoders use (wire key
 * -> slot index, type, width), pack/unpack, and the /schema description.
 * Adding a slot is one line.
 *
 * A derived kind lists only its own slots and embeds its base as the first
 * member, so a pointer to a derived record is a valid pointer to its base
 * record and its field table starts with the base's fields in the same
 * order: anything that works on a `trade` works on an `option_trade`.
 *
 * Slots are uint64_t bit-fields so narrow slots share a word: `qty` (62
 * bits) and `side` (2 bits) fill one, which brings a trade to 32 bytes.
 * Every slot value travels as int64_t through decode, check and pack
 * (an id above INT64_MAX travels as its two's-complement bit pattern).
 *
 *   struct trade, 32 bytes, no header, no symbol (the partition implies it)
 *   +--------+--------+-----------------+--------+
 *   | ts  64 | px  64 | qty 62 | side 2 | id  64 |
 *   +--------+--------+-----------------+--------+
 *   struct option_trade, 48 bytes
 *   +-----------------+------------+------------------------+
 *   | struct trade 32 | strike  64 | expiry 62 | right 2    |
 *   +-----------------+------------+------------------------+
 */
#ifndef SLOTD_KIND_H
#define SLOTD_KIND_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef enum kind_type {
    KIND_TS = 1, /* ns since Unix epoch, >= 0; wire: int or msgpack timestamp */
    KIND_FIX,    /* fixed point 1e-8 (fixp.h), >= 0 unless KIND_SIGNED; wire: int, float, string */
    KIND_U64,    /* unsigned integer; wire: non-negative int */
    KIND_SIDE,   /* 0 unknown, 1 buy, 2 sell; wire: "B"/"S"/"buy"/"sell"/"" */
    KIND_RIGHT,  /* 1 call, 2 put; wire: "C"/"P"/"call"/"put" */
} kind_type;

enum { KIND_SIDE_UNKNOWN = 0, KIND_SIDE_BUY = 1, KIND_SIDE_SELL = 2 };
enum { KIND_RIGHT_CALL = 1, KIND_RIGHT_PUT = 2 };

#define KIND_REQ 1    /* slot flag: the record must carry this slot */
#define KIND_SIGNED 2 /* slot flag: negative values are valid (prices); the slot must be
                       * 64 bits wide (unpack does not sign-extend). Without it a slot
                       * holds values >= 0 (quantities, ids, times). */

/* X(name, type, bits, flags, doc) — slot order is struct order and the
 * order of the array wire form (after the symbol). */
#define TRADE_SLOTS(X)                                                                   \
    X(ts, KIND_TS, 64, KIND_REQ, "exchange time, ns since the Unix epoch")              \
    X(px, KIND_FIX, 64, KIND_REQ | KIND_SIGNED, "price, fixed point, 8 decimals, signed") \
    X(qty, KIND_FIX, 62, KIND_REQ, "quantity, fixed point, 8 decimals, >= 0")           \
    X(side, KIND_SIDE, 2, 0, "aggressor side: B (buy), S (sell) or unknown")            \
    X(id, KIND_U64, 64, 0, "trade id")

#define OPTION_TRADE_SLOTS(X)                                                            \
    X(strike, KIND_FIX, 64, KIND_REQ | KIND_SIGNED,                                      \
      "strike price, fixed point, 8 decimals, signed")                                   \
    X(expiry, KIND_TS, 62, KIND_REQ, "expiry, ns since the Unix epoch")                 \
    X(right, KIND_RIGHT, 2, KIND_REQ, "C (call) or P (put)")

#define KIND__MEMBER(name, type, bits, flags, doc) uint64_t name : bits;
#define KIND__INDEX_TRADE(name, type, bits, flags, doc) TRADE_##name,
#define KIND__INDEX_OPTION(name, type, bits, flags, doc) OPTION_TRADE_##name,

typedef struct trade {
    TRADE_SLOTS(KIND__MEMBER)
} trade;

typedef struct option_trade {
    trade base;
    OPTION_TRADE_SLOTS(KIND__MEMBER)
} option_trade;

_Static_assert(sizeof(trade) == 32, "trade slot must stay 32 bytes");
_Static_assert(sizeof(option_trade) == 48, "option_trade slot must stay 48 bytes");

/* Field indexes into a kind's value array. A derived kind's own indexes
 * continue after its base's. */
enum trade_field { TRADE_SLOTS(KIND__INDEX_TRADE) TRADE_NFIELDS };
enum option_trade_field {
    OPTION_TRADE__FIRST = TRADE_NFIELDS - 1,
    OPTION_TRADE_SLOTS(KIND__INDEX_OPTION) OPTION_TRADE_NFIELDS
};

#define KIND_MAX_FIELDS 16
#define KIND_MAX 8

typedef struct kind_field {
    const char *key; /* slot name, also the wire map key */
    uint8_t keylen;
    uint8_t type;    /* kind_type */
    uint8_t bits;    /* storage width */
    uint8_t flags;   /* KIND_REQ, KIND_SIGNED */
    const char *doc;
} kind_field;

typedef struct kind {
    const char *name;
    uint8_t id;               /* dense, stable: 0 = trade, 1 = option_trade */
    uint8_t nfields;          /* including the base's, which come first */
    uint16_t size;            /* slot bytes */
    const struct kind *base;  /* NULL for a root kind */
    const kind_field *fields;
    void (*pack)(void *slot, const int64_t *v);
    void (*unpack)(const void *slot, int64_t *v);
} kind;

extern const kind kind_trade;
extern const kind kind_option_trade;

/* Errors: 0 or a KIND_E* code, declared in err.h (core_strerror). */

const kind *kind_by_id(unsigned id);                      /* NULL past the last */
const kind *kind_by_name(const char *name, size_t len);   /* NULL if unknown */
unsigned kind_count(void);
/* Slot index of `key`, or -1 when the kind does not declare it. */
int kind_field_index(const kind *k, const char *key, size_t len);
/* Is `k` the kind `base` or derived from it? */
int kind_is_a(const kind *k, const kind *base);

/* Validate a value array before pack: every required slot present (bit i of
 * `present` set), every value in range for its type and width (negative
 * only in a KIND_SIGNED slot). Absent optional slots are set to 0. On
 * failure *bad is the offending index. */
int kind_check(const kind *k, int64_t *v, uint32_t present, int *bad);

/* Enumerated slots (KIND_SIDE, KIND_RIGHT): wire text <-> value. */
int kind_enum_parse(kind_type t, const char *s, size_t len, int64_t *out);
const char *kind_enum_name(kind_type t, int64_t v); /* "B", "S", "", "C", "P" */
const char *kind_type_name(kind_type t);            /* "ts", "fixed8", ... */

/* Base trade slots of any record, whatever its kind. */
static inline const trade *kind_trade_of(const void *slot) { return (const trade *)slot; }

#endif
