/* frame — find where each msgpack value of a byte stream ends.
 *
 * TCP delivers a message in arbitrary pieces, so the framer is resumable:
 * proto_framer keeps how far the current message has been scanned (`off`)
 * and how many elements each open array/map still owes (`left`). A call
 * continues from `off`; only a header cut by the end of the data (at most 9
 * bytes) is read twice. String, bin and ext bodies are never read at all:
 * `off` jumps over them, possibly past the bytes received so far.
 *
 * Limits are enforced from headers alone, before any body arrives: a str,
 * bin or ext whose declared length cannot fit in max_msg, or an array/map
 * declaring more elements than max_msg has bytes left (each element takes
 * at least one byte), is TOO_LARGE at once. So is a container opened deeper
 * than max_depth. Nothing here allocates.
 */
#include "proto.h"



void proto_framer_reset(proto_framer *f)
{
    f->off = 0;
    f->depth = 0;
}

static uint32_t be16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Messages name the limit that was exceeded, its value and its flag (what
 * the client can act on), then what tripped it. */
#define frame_fail(f, err, code, ...) \
    (proto_error_set((err), (code), -1, __VA_ARGS__), proto_framer_reset(f), -(int)(code))

#define TOO_LONG "message larger than the %zu-byte limit (--max-message)"

int proto_frame(proto_framer *f, const uint8_t *buf, size_t len, const proto_limits *lim,
                size_t *msg_len, proto_error *err)
{
    const size_t max = lim->max_msg;
    const uint32_t maxd = lim->max_depth < PROTO_DEPTH_CAP ? lim->max_depth : PROTO_DEPTH_CAP;
    size_t off = f->off;
    uint32_t depth = f->depth;

    /* off > 0 at depth 0: the value is complete but its last body was still
     * arriving when we last returned. */
    if (off > 0 && depth == 0)
        goto complete;

    while (off < len) {
        const uint8_t c = buf[off];
        size_t hdr = 1;    /* header bytes, including the type byte */
        uint64_t body = 0; /* opaque bytes after the header */
        uint64_t elems = 0;
        int container = 0;

        if (c <= 0x7f || c >= 0xe0) {
            /* positive / negative fixint */
        } else if (c <= 0x8f) {
            container = 1;
            elems = 2u * (c & 0x0f);
        } else if (c <= 0x9f) {
            container = 1;
            elems = c & 0x0f;
        } else if (c <= 0xbf) {
            body = c & 0x1f;
        } else {
            /* Header length first, so a cut header is waited for. */
            static const uint8_t hlen[32] = {
                /* c0 nil */ 1, /* c1 */ 1, /* c2 c3 bool */ 1, 1,
                /* c4-c6 bin */ 2, 3, 5, /* c7-c9 ext */ 3, 4, 6,
                /* ca cb float */ 5, 9, /* cc-cf uint */ 2, 3, 5, 9,
                /* d0-d3 int */ 2, 3, 5, 9, /* d4-d8 fixext */ 2, 2, 2, 2, 2,
                /* d9-db str */ 2, 3, 5, /* dc dd array */ 3, 5, /* de df map */ 3, 5};
            if (c == 0xc1)
                return frame_fail(f, err, PROTO_E_MALFORMED,
                                  "invalid msgpack byte 0xc1 at offset %zu", off);
            hdr = hlen[c - 0xc0];
            const uint8_t *p = buf + off + 1;
            if (len - off < hdr) {
                if (hdr > max - off)
                    goto too_long;
                /* An ext's length precedes its type byte: judge it now. */
                if (c >= 0xc7 && c <= 0xc9 && len - off == hdr - 1) {
                    body = c == 0xc7 ? p[0] : c == 0xc8 ? be16(p) : be32(p);
                    if (body > max - off - hdr)
                        goto body_too_long;
                }
                break; /* wait for the rest of the header */
            }
            switch (c) {
            case 0xc4: case 0xd9: body = p[0]; break;
            case 0xc5: case 0xda: body = be16(p); break;
            case 0xc6: case 0xdb: body = be32(p); break;
            case 0xc7: body = p[0]; break;
            case 0xc8: body = be16(p); break;
            case 0xc9: body = be32(p); break;
            case 0xd4: body = 1; break;
            case 0xd5: body = 2; break;
            case 0xd6: body = 4; break;
            case 0xd7: body = 8; break;
            case 0xd8: body = 16; break;
            case 0xdc: container = 1; elems = be16(p); break;
            case 0xdd: container = 1; elems = be32(p); break;
            case 0xde: container = 1; elems = 2u * be16(p); break;
            case 0xdf: container = 1; elems = 2u * (uint64_t)be32(p); break;
            default: break; /* scalars: the header is the whole value */
            }
        }

        /* Invariant: off <= max, so max - off does not wrap. */
        if (hdr > max - off)
            goto too_long;
        if (body > max - off - hdr) {
        body_too_long:
            return frame_fail(f, err, PROTO_E_TOO_LARGE,
                              TOO_LONG ": a %llu-byte value at byte %zu cannot fit", max,
                              (unsigned long long)body, off);
        }
        off += hdr + (size_t)body;

        if (container) {
            /* Each element takes a byte at least: more than are left
             * means the message cannot end within the limit. */
            if (elems > max - off || elems > UINT32_MAX) {
                int map = c <= 0x8f || c >= 0xde;
                return frame_fail(f, err, PROTO_E_TOO_LARGE,
                                  TOO_LONG ": %s of %llu %s after byte %zu cannot fit", max,
                                  map ? "a map" : "an array",
                                  (unsigned long long)(map ? elems / 2 : elems),
                                  map ? "pairs" : "elements", off);
            }
            if (depth >= maxd)
                return frame_fail(f, err, PROTO_E_TOO_LARGE,
                                  "msgpack nesting deeper than the limit of %u levels (--max-depth)",
                                  maxd);
            if (elems > 0) {
                f->left[depth++] = (uint32_t)elems;
                continue;
            }
        }
        /* One value done: it completes an element of each enclosing
         * container whose last element it was. */
        while (depth > 0 && --f->left[depth - 1] == 0)
            depth--;
        if (depth == 0)
            goto complete;
    }
    f->off = off;
    f->depth = depth;
    return PROTO_FRAME_MORE;

complete:
    if (off > len) { /* the final body is still arriving */
        f->off = off;
        f->depth = 0;
        return PROTO_FRAME_MORE;
    }
    *msg_len = off;
    proto_framer_reset(f);
    return PROTO_FRAME_DONE;

too_long:
    return frame_fail(f, err, PROTO_E_TOO_LARGE, TOO_LONG, max);
}
