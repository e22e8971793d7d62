/* emit — one tree-shaped output, two encodings.
 *
 * Query results are written once, against this interface; the msgpack
 * emitter (TCP `R` replies) and the JSON emitter (HTTP bodies) turn the same
 * calls into bytes. Containers announce their element count up front because
 * msgpack needs it; JSON ignores it. A map's elements are key/value pairs
 * (call key() then one value). Fixed-point values are emitted as numbers
 * (JSON: exact decimal text; msgpack: float64) — callers that must give the
 * exact decimal too emit a second `<key>_s` string (see query.c).
 *
 * Contract, asserted in debug builds (NDEBUG unset) for both encoders: a
 * container gets exactly the elements it declared (a key and its value are
 * two of a map's 2n). A wrong count would corrupt msgpack silently: the
 * reader takes the next value as the missing element. Once err is set the
 * output is abandoned and no longer checked.
 */
#ifndef SLOTD_EMIT_H
#define SLOTD_EMIT_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

typedef struct emit emit;
struct emit {
    void (*map)(emit *e, uint32_t n);
    void (*array)(emit *e, uint32_t n);
    void (*end)(emit *e);                     /* closes the innermost map/array */
    void (*key)(emit *e, const char *k);      /* NUL-terminated ASCII */
    void (*str)(emit *e, const char *s, size_t len);
    void (*i64)(emit *e, int64_t v);
    void (*u64)(emit *e, uint64_t v);
    void (*dbl)(emit *e, double v);
    void (*fix)(emit *e, int64_t v);          /* fixed point 1e-8 */
    void (*boolean)(emit *e, int v);
    void (*nil)(emit *e);
    proto_buf *out;                           /* where bytes go */
    int err;                                  /* set on allocation failure */
    /* private to the encoders */
    uint32_t depth;
    uint8_t first[64];                        /* JSON: next element is first */
    uint8_t is_map[64];
    uint8_t after_key;
    void *impl;
    /* Debug builds (NDEBUG unset): elements each open container declared
     * (a map's pairs count twice: key and value) and has been given, per
     * level; a miscount is asserted at the extra element or at end(). The
     * fields exist in every build so the struct has one layout. */
    uint64_t declared[64];
    uint64_t written[64];
};

/* Both append to `out` (not cleared). */
void emit_msgpack_init(emit *e, proto_buf *out);
void emit_json_init(emit *e, proto_buf *out);
void emit_cstr(emit *e, const char *s); /* e->str(e, s, strlen(s)) */

/* JSON helpers shared by the HTTP layer. proto_buf_reserve: room for
 * `extra` more bytes (doubling); 0, or -1 (out of memory, b unchanged). */
int proto_buf_reserve(proto_buf *b, size_t extra);
int proto_buf_append(proto_buf *b, const void *p, size_t n);
int proto_buf_printf(proto_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Shortest text that reads back as the same double ("0.1", "1e+20"); used
 * for JSON and Prometheus numbers. Returns the length; size >= 32. */
size_t emit_format_double(double v, char *buf, size_t size);

#endif
