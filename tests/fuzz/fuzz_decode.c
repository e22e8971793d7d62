/* fuzz_decode — the direct batch decoder against the msgpack-c reference.
 *
 * Input: one knob byte, then a byte stream. Each framed message is decoded
 * by proto_decode_batch (store A) and ref_decode_batch (store B); verdict,
 * code, trade index, echoed seq and the staged bytes must be identical.
 * proto_decode_batch_prefix, given the rest of the stream, must take the
 * message exactly when framing and decoding do (same length, same staged
 * bytes), short of a skipped value or a depth limit below 3.
 * Accepted batches are committed to both stores, so later messages meet
 * symbols whose kind is fixed. Bytes that do not frame are still given to
 * the direct decoder (it must be safe on anything) and HELLO decoding.
 */
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "ref_decode.h"

/* A store with one option_trade symbol already committed. */
static store *open_store(void)
{
    store *s;
    store_config cfg = {.max_memory = 8u << 20, .max_symbols = 6};
    if (store_open(&s, &cfg) != STORE_OK)
        abort();
    store_batch b;
    store_batch_init(&b);
    int64_t v[KIND_MAX_FIELDS] = {1, 100000000, 100000000, 1, 7, 19000000000, 2, 1};
    int bad;
    if (kind_check(&kind_option_trade, v, 0xff, &bad) != KIND_OK ||
        store_batch_add(s, &b, "OPA", 3, &kind_option_trade, v) != STORE_OK ||
        store_batch_reserve(s, &b) != STORE_OK)
        abort();
    store_batch_commit(s, &b);
    store_batch_free(&b);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    proto_limits lim;
    proto_limits_default(&lim);
    uint8_t knob = data[0];
    lim.ignore_unknown = knob & 1;
    lim.max_batch = knob & 2 ? (knob >> 2) % 8 : 100000;
    lim.max_msg = knob >> 6 == 2 ? 256 : 1u << 20;
    lim.max_depth = knob >> 6 == 1 ? 3 : knob >> 6 == 3 ? 2 : lim.max_depth;
    data++, size--;

    store *a = open_store(), *r = open_store();
    store_batch ba, br, bp;
    store_batch_init(&ba);
    store_batch_init(&br);
    store_batch_init(&bp);
    size_t pos = 0;
    while (pos < size) {
        proto_framer f;
        proto_error fe;
        size_t n = 0;
        proto_framer_reset(&f);
        size_t len = size - pos;
        uint8_t *msg = malloc(len);
        memcpy(msg, data + pos, len);
        int frc = proto_frame(&f, msg, len, &lim, &n, &fe);
        /* The one-pass path on the rest of the stream: it takes a message
         * only if framing takes it with the same length (and the decode
         * below must then accept it, staging the same bytes). */
        uint64_t sp = 0;
        size_t plen = 0;
        int took = proto_decode_batch_prefix(msg, len, &lim, a, &bp, &sp, &plen);
        if (took && (frc != PROTO_FRAME_DONE || plen != n))
            abort();
        if (!took && bp.n != 0)
            abort();
        if (frc != PROTO_FRAME_DONE) {
            uint64_t seq;
            proto_error e;
            proto_hello h;
            int rc = proto_decode_batch(msg, len, &lim, a, &ba, &seq, &e);
            /* Truncated or invalid msgpack is never a good batch (a value
             * the framer refuses as too deep may still decode). */
            if (rc == 0 && frc != -PROTO_E_TOO_LARGE)
                abort();
            if (rc != 0 && ba.n != 0)
                abort();
            proto_decode_hello(msg, len, &h, &e);
            free(msg);
            break;
        }
        /* Exactly the message, in its own allocation. */
        uint8_t *m = realloc(msg, n);
        if (!m)
            abort();
        uint64_t s1 = 0, s2 = 0;
        proto_error e1, e2;
        proto_hello h;
        int rc1 = proto_decode_batch(m, n, &lim, a, &ba, &s1, &e1);
        int rc2 = ref_decode_batch(m, n, &lim, r, &br, &s2, &e2);
        if (rc1 != rc2 || s1 != s2)
            abort();
        if (rc1 && (e1.code != e2.code || e1.index != e2.index || !memchr(e1.msg, 0, sizeof(e1.msg))))
            abort();
        if (ba.n != br.n || ba.len != br.len || (ba.len && memcmp(ba.buf, br.buf, ba.len)))
            abort();
        if (took && (rc1 != 0 || sp != s1 || bp.len != ba.len ||
                     (ba.len && memcmp(ba.buf, bp.buf, ba.len))))
            abort();
        /* Declining what framing and decoding accept: only a skipped value
         * (its depth unknown) or a depth limit below a trade's. */
        if (!took && rc1 == 0 && proto_msg_type(m, n) == PROTO_MSG_T && !lim.ignore_unknown &&
            lim.max_depth >= 3)
            abort();
        store_batch_reset(&bp);
        if (rc1 == 0 && ba.n) {
            if (store_batch_reserve(a, &ba) != STORE_OK || store_batch_reserve(r, &br) != STORE_OK)
                abort();
            store_batch_commit(a, &ba);
            store_batch_commit(r, &br);
        }
        proto_decode_hello(m, n, &h, &e1);
        (void)proto_msg_type(m, n);
        free(m);
        pos += n;
    }
    store_batch_free(&ba);
    store_batch_free(&br);
    store_batch_free(&bp);
    store_close(a);
    store_close(r);
    return 0;
}
