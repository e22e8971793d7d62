/* fuzz_frame — the incremental framer on arbitrary bytes.
 *
 * Checks, for every input: no crash or overread (ASan/UBSan); feeding the
 * bytes in pieces gives the same verdict as one call; a framed value is
 * exactly what msgpack-c's unpacker reads as one value, and MORE means
 * msgpack-c also wants more. Back-to-back messages are framed in turn.
 * The first byte picks the limits, so TOO_LARGE and depth paths are hit.
 */
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

static int frame_pieces(const uint8_t *buf, size_t len, const proto_limits *l,
                        const uint8_t *cuts, size_t ncuts, size_t *n, proto_error *e)
{
    proto_framer f;
    proto_framer_reset(&f);
    size_t have = 0, ci = 0;
    int rc = PROTO_FRAME_MORE;
    while (have < len) {
        size_t step = ncuts ? (size_t)cuts[ci++ % ncuts] % 17 + 1 : 1;
        have = have + step > len ? len : have + step;
        /* An exact-size copy: reading past what has arrived is caught. */
        uint8_t *copy = malloc(have);
        memcpy(copy, buf, have);
        rc = proto_frame(&f, copy, have, l, n, e);
        free(copy);
        if (rc != PROTO_FRAME_MORE)
            break;
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    proto_limits l;
    proto_limits_default(&l);
    uint8_t knob = data[0];
    l.max_msg = knob & 1 ? 64 + (knob >> 1) * 8 : 1u << 16;
    l.max_depth = knob & 2 ? (knob >> 2) % 32 : 16; /* msgpack-c nests 32 at most */
    data++, size--;

    msgpack_zone z;
    msgpack_zone_init(&z, 4096);
    size_t pos = 0;
    for (int msgs = 0; msgs < 64 && pos < size; msgs++) {
        const uint8_t *buf = data + pos;
        size_t len = size - pos, n1 = 0, n2 = 0;
        proto_framer f;
        proto_error e1, e2;
        proto_framer_reset(&f);
        uint8_t *copy = malloc(len);
        memcpy(copy, buf, len);
        int rc1 = proto_frame(&f, copy, len, &l, &n1, &e1);
        int rc2 = frame_pieces(copy, len, &l, data, size < 8 ? size : 8, &n2, &e2);
        if (rc1 != rc2 || (rc1 == PROTO_FRAME_DONE && n1 != n2))
            abort();
        msgpack_object o;
        size_t off = 0;
        if (rc1 == PROTO_FRAME_DONE) {
            if (n1 < 1 || n1 > len || n1 > l.max_msg)
                abort();
            int u = msgpack_unpack((const char *)copy, n1, &off, &z, &o);
            if (u != MSGPACK_UNPACK_SUCCESS || off != n1)
                abort();
            pos += n1;
        } else if (rc1 == PROTO_FRAME_MORE) {
            if (len > l.max_msg)
                abort(); /* a message past the limit is refused, not waited on */
            if (msgpack_unpack((const char *)copy, len, &off, &z, &o) != MSGPACK_UNPACK_CONTINUE)
                abort();
            pos = size;
        } else {
            if (rc1 != -PROTO_E_MALFORMED && rc1 != -PROTO_E_TOO_LARGE)
                abort();
            if (e1.code != (proto_code)-rc1 || e1.index != -1 || !memchr(e1.msg, 0, sizeof(e1.msg)))
                abort();
            pos = size;
        }
        free(copy);
        msgpack_zone_clear(&z);
    }
    msgpack_zone_destroy(&z);
    return 0;
}
