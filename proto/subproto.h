/* subproto — the wire side of live subscriptions (PROTOCOL.md §10):
 * decoding SUB and UNSUB, encoding SUBOK, UNSUBOK, S (a run of trades of
 * one symbol with its resume position) and GAP.
 *
 *   ["SUB", id, {"syms": [sym, ...] | "*", "from": "now" | "start" | {sym: pos, ...},
 *                "gaps": bool}]
 *   ["UNSUB", id]
 *   ["SUBOK", id, {sym: pos, ...}]            where each covered symbol starts
 *   ["S", id, sym, kind, next, [[slot, ...], ...]]
 *   ["GAP", id, sym, from, to]                 [from, to) was dropped unread
 *   ["UNSUBOK", id]
 *
 * A trade in S is the array form of a T trade without the symbol: the
 * kind's slots in declaration order, fixed point as exact decimal text,
 * side and right as their one-letter names (so it can be re-sent as is).
 * Positions are absolute record indexes (store.h, store_scan). No I/O.
 */
#ifndef SLOTD_SUBPROTO_H
#define SLOTD_SUBPROTO_H

#include <stddef.h>
#include <stdint.h>

#include "emit.h"
#include "proto.h"
#include "store.h"

#define SUBPROTO_MAX_SYMS 1024 /* named in one SUB, and entries of a "from" map */

typedef enum subproto_from { SUBPROTO_NOW = 0, SUBPROTO_START, SUBPROTO_MAP } subproto_from;

typedef struct subproto_sym {
    char name[STORE_SYM_MAX + 1]; /* NUL-terminated */
    uint8_t len;
    uint64_t pos;                 /* "from" map entries only */
} subproto_sym;

typedef struct subproto_req {
    uint64_t id;
    int all;                      /* syms = "*" */
    uint32_t nsyms;
    subproto_sym syms[SUBPROTO_MAX_SYMS];
    subproto_from from;
    uint32_t nfrom;               /* from == SUBPROTO_MAP */
    subproto_sym fromv[SUBPROTO_MAX_SYMS];
    int gaps;                     /* 1: skip dropped records with a GAP notice */
    /* from == SUBPROTO_MAP with "*" over SSE: a cursor of any size, sorted
     * by subproto_sym_cmp, owned by the caller; used in place of fromv */
    const subproto_sym *fromx;
    uint32_t nfromx;
} subproto_req;

/* Order of symbols in a sorted cursor (bytes, then length): qsort/bsearch. */
int subproto_sym_cmp(const void *a, const void *b);

/* Decode a SUB. 0, or -1 with err: BAD_MESSAGE (not ["SUB", id, map], id
 * not a non-negative integer), BAD_SUB (naming the bad key: syms not a
 * list of symbols or "*", a symbol twice, from not "now"/"start"/a map of
 * symbol -> non-negative integer, gaps not a boolean, unknown key).
 * r->id is set once the message got far enough to carry one. */
int subproto_decode_sub(const uint8_t *msg, size_t len, subproto_req *r, proto_error *err);
/* Decode ["UNSUB", id]. 0, or -1 with err (BAD_MESSAGE). */
int subproto_decode_unsub(const uint8_t *msg, size_t len, uint64_t *id, proto_error *err);
/* Is "UNSUB" / "SUB" the message's type? (proto_msg_type knows neither) */
int subproto_is(const uint8_t *msg, size_t len, const char *type);

/* ---- Server-Sent Events (GET /subscribe) ------------------------------------
 * A list's cursor as text, an SSE event id: "sym:pos,sym:pos,..." for
 * every listed symbol, each symbol with '%', ',' and ':' and bytes below
 * 0x21 percent-encoded. A list of at most SUBPROTO_SSE_MAX_SYMS keeps it
 * short enough for a Last-Event-ID header. "*" has its own cursor form
 * (server/sse_cursor.h), built from the same "sym:pos" entries. */
#define SUBPROTO_SSE_MAX_SYMS 32
#define SUBPROTO_CURSOR_TEXT_MAX 4096
/* A query parameter: syms (comma-separated, or "*": r->all), from (now |
 * start | list cursor text), gaps (true | false). 0, or -1 with err
 * (BAD_QUERY naming it). */
int subproto_set_param(subproto_req *r, const char *name, size_t nlen, const char *val,
                       size_t vlen, proto_error *err);
/* Parse list cursor text into r->fromv (from = SUBPROTO_MAP). 0, or -1 with err. */
int subproto_cursor_parse(subproto_req *r, const char *s, size_t n, proto_error *err);
/* Each "sym:pos" of cursor text s[0..n) to fn (which may refuse it: -1
 * with err). 0, or -1 with err (BAD_QUERY: the malformed entry). */
typedef int (*subproto_cursor_fn)(void *ctx, const subproto_sym *f, proto_error *err);
int subproto_cursor_each(const char *s, size_t n, subproto_cursor_fn fn, void *ctx,
                         proto_error *err);
/* Append one "sym:pos" (with a ',' before it unless first). 0 or -1 (memory). */
int subproto_cursor_append(proto_buf *out, const char *sym, size_t len, uint64_t pos, int first);

/* Encoders: append to out through e (emit_msgpack_init(e, out)). */
/* SUBOK: then e->map(e, n), n subproto_pos, subproto_end. */
void subproto_begin_subok(emit *e, uint64_t id);
void subproto_pos(emit *e, const char *sym, size_t len, uint64_t pos);
void subproto_end(emit *e); /* closes the map of SUBOK or the trades of S, then the message */
void subproto_begin_s(emit *e, uint64_t id, const char *sym, size_t len, const kind *k,
                      uint64_t next, uint32_t ntrades);        /* then ntrades subproto_trade */
void subproto_trade(emit *e, const kind *k, const void *slot);
/* The same S message (begin_s, n trades, end) in one call, written
 * straight into out: the push hot path (about 4x fewer cycles a trade than
 * through an emitter). 0, or -1 when memory ran out (out unchanged). */
int subproto_pack_s(proto_buf *out, uint64_t id, const char *sym, size_t len, const kind *k,
                    uint64_t next, const unsigned char *slots, uint32_t n);
void subproto_gap(emit *e, uint64_t id, const char *sym, size_t len, uint64_t from, uint64_t to);
void subproto_unsubok(emit *e, uint64_t id);

#endif
