/* proto — the slotd wire protocol (see PROTOCOL.md, the normative spec).
 *
 * A connection carries back-to-back msgpack values, each an array whose
 * first element names the message. This module frames the byte stream into
 * messages, decodes HELLO / T / Q, and encodes WELCOME / ACK / ERR / R.
 * It does no I/O: the server feeds it bytes and writes what it returns.
 *
 * Decoding a T batch is the hot path: proto_decode_batch reads the msgpack
 * bytes directly (no object tree) and stages each trade into a store_batch,
 * validating as it goes. msgpack-c is the encoder and the reference decoder
 * the direct decoder is differentially tested against.
 */
#ifndef SLOTD_PROTO_H
#define SLOTD_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "kind.h"
#include "store.h"

/* Error codes: wire name = the enum name without PROTO_E_. */
#define PROTO_CODES(X)                                                              \
    X(MALFORMED, "the byte stream is not valid msgpack; the connection closes")     \
    X(BAD_MESSAGE, "a well-formed value that is not a known message of this shape") \
    X(NOT_HELLO, "the first message must be HELLO")                                 \
    X(UNAUTHORIZED, "missing or wrong token; the connection closes")                \
    X(UNKNOWN_FIELD, "a trade carries a key its kind does not declare")             \
    X(MISSING_FIELD, "a trade lacks a required slot")                               \
    X(WRONG_TYPE, "a value has the wrong msgpack type for its slot")                \
    X(BAD_VALUE, "a value has the right type but is out of range or invalid")       \
    X(BAD_SYMBOL, "the symbol is not 1-31 bytes of UTF-8")                          \
    X(UNKNOWN_KIND, "the batch names a kind slotd does not declare")                \
    X(KIND_MISMATCH, "the symbol already holds records of another kind")            \
    X(TOO_LARGE, "a message, batch, string or nesting depth exceeds a limit")       \
    X(SYMBOL_LIMIT, "more distinct symbols than the server allows")                 \
    X(STORE_FULL, "storing the batch would exceed the memory cap")                  \
    X(JOURNAL, "the batch could not be journaled; it was not stored")               \
    X(NOT_READY, "the server is replaying its journal or shutting down")            \
    X(BAD_QUERY, "a query names an unknown op or has a bad parameter")              \
    X(NOT_FOUND, "the query names an unknown symbol")                               \
    X(IDLE_TIMEOUT, "no message within the idle timeout; the connection closes")    \
    X(TOO_MANY_CONNECTIONS, "the server is at its connection limit")                \
    X(BLOCKED, "an earlier refused batch of this client must be resent first")      \
    X(FENCED, "a newer connection took over this client name; this one closes")     \
    X(TOO_MANY_CLIENTS, "the client-name table is full of names in use")           \
    X(READ_ONLY, "this node is fed by Kafka: T batches and deletes are refused")      \
    X(BAD_SUB, "a SUB or UNSUB is malformed, or names an id in use or unknown")       \
    X(CURSOR_GONE, "retention dropped trades a subscription had not read yet")        \
    X(SLOW_SUBSCRIBER, "a subscriber fell behind its limits; the connection closes")

#define PROTO__ENUM(name, doc) PROTO_E_##name,
typedef enum proto_code { PROTO_OK = 0, PROTO_CODES(PROTO__ENUM) PROTO_NCODES } proto_code;
const char *proto_code_name(proto_code c); /* "MALFORMED", ... */
const char *proto_code_doc(proto_code c);

typedef struct proto_limits {
    size_t max_msg;     /* bytes per message; default 16 MiB */
    uint32_t max_batch; /* trades per T; default 100,000 */
    uint32_t max_depth; /* msgpack nesting; default 16 */
    int ignore_unknown; /* 1: skip undeclared keys instead of UNKNOWN_FIELD */
    /* A trade whose ts is more than this many ns ahead of the wall clock
     * (CLOCK_REALTIME, read once per batch) is refused with BAD_VALUE; 0 =
     * no bound (the default here; the server sets --max-future, replay 0). */
    int64_t max_future_ns;
} proto_limits;
void proto_limits_default(proto_limits *l);

/* What went wrong, for an ERR reply. index = first bad trade or -1. */
typedef struct proto_error {
    proto_code code;
    int64_t index;
    char msg[200];
} proto_error;

/* The one formatter of proto_error (decoders, framer, query layer, ingest):
 * sets code and index (-1: no trade) and formats msg, cut to fit and always
 * NUL-terminated. Returns -1, so a decoder can `return proto_error_set(..)`. */
int proto_error_set(proto_error *e, proto_code code, int64_t index, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- framing ----------------------------------------------------------- */

/* Finds where each msgpack value ends, incrementally: bytes already scanned
 * are not scanned again when more arrive, so a 16 MiB message read in 64 KiB
 * pieces costs one pass. Never allocates; rejects a declared length or
 * nesting beyond the limits as soon as it is seen. */
#define PROTO_DEPTH_CAP 32 /* the framer's nesting limit, whatever max_depth says */
typedef struct proto_framer {
    size_t off;        /* bytes of the current message scanned so far */
    uint32_t depth;
    uint32_t left[PROTO_DEPTH_CAP]; /* elements still to skip at each open level */
} proto_framer;

enum { PROTO_FRAME_MORE = 0, PROTO_FRAME_DONE = 1 };
void proto_framer_reset(proto_framer *f);
/* buf[0..len) is the current message's bytes so far (from its first byte).
 * Returns PROTO_FRAME_DONE with *msg_len set, PROTO_FRAME_MORE, or a
 * negative -proto_code (MALFORMED or TOO_LARGE) with err filled. */
int proto_frame(proto_framer *f, const uint8_t *buf, size_t len, const proto_limits *lim,
                size_t *msg_len, proto_error *err);

/* ---- decoding ---------------------------------------------------------- */

/* PROTO_MSG_D: a journaled delete (query.h); clients never send it. */
typedef enum proto_msg {
    PROTO_MSG_UNKNOWN,
    PROTO_MSG_HELLO,
    PROTO_MSG_T,
    PROTO_MSG_Q,
    PROTO_MSG_D
} proto_msg;
/* The type of a framed message; PROTO_MSG_UNKNOWN if it is not an array
 * starting with a known type string. */
proto_msg proto_msg_type(const uint8_t *msg, size_t len);

#define PROTO_NAME_MAX 64
#define PROTO_TOKEN_MAX 256
typedef struct proto_hello {
    char client[PROTO_NAME_MAX + 1];
    char token[PROTO_TOKEN_MAX + 1];
    int has_token;
} proto_hello;
int proto_decode_hello(const uint8_t *msg, size_t len, proto_hello *out, proto_error *err);

/* Decode ["T", seq, [trade, ...]] or ["T", seq, [trade, ...], kind_name] and
 * stage every trade into b (reset first). A trade's kind is the batch's
 * declared kind, else the kind its symbol already holds, else `trade`.
 * Returns 0, or -1 with err filled (code, index of the first bad trade, a
 * message naming the field); b is then left reset. *seq is set whenever the
 * message got far enough to carry one (else 0) so the ERR can echo it. */
int proto_decode_batch(const uint8_t *msg, size_t len, const proto_limits *lim, store *s,
                       store_batch *b, uint64_t *seq, proto_error *err);

/* One pass instead of two for a T batch already complete in the buffer:
 * buf[0..avail) is what has arrived from a message's first byte on, its end
 * not yet known. Returns 1 when it starts with a T message that
 * proto_frame (under lim) would frame as buf[0..*msg_len) and
 * proto_decode_batch would accept: b and *seq are then exactly what those
 * two calls give. Returns 0 otherwise — not a T, not complete yet, any
 * error, or a limit only the framer checks — with b reset and nothing
 * reported: the caller frames and decodes the usual way, which decides. */
int proto_decode_batch_prefix(const uint8_t *buf, size_t avail, const proto_limits *lim,
                              store *s, store_batch *b, uint64_t *seq, size_t *msg_len);

/* ---- encoding (msgpack-c) ------------------------------------------------ */

/* A growable output buffer; the server writes its bytes to the socket. */
typedef struct proto_buf {
    char *data;
    size_t len, cap;
} proto_buf;
void proto_buf_free(proto_buf *b);

int proto_pack_welcome(proto_buf *out, const char *version, uint64_t last_seq);
int proto_pack_ack(proto_buf *out, uint64_t seq, uint64_t n_stored);
/* ["ERR", id, code, message, index]; index nil when err->index < 0. */
int proto_pack_err(proto_buf *out, uint64_t id, const proto_error *err);

#endif
