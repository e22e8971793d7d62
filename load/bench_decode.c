/* bench_decode — cost per trade of decoding a W1 batch.
 *
 *   bench_decode MODE FORM [PX] [ITERATIONS]
 *     MODE  direct  proto_decode_batch (the server's hot path)
 *           unpack  msgpack_unpack into an object tree only (no validation)
 *           tree    msgpack_unpack + the same rules on the tree (the test
 *                   suite's reference decoder)
 *     FORM  map | array
 *     PX    str (exact decimal text, what slotload sends) | float
 *
 * A 1000-trade batch of W1 (1000 Zipf-skewed symbols) is encoded once and
 * decoded ITERATIONS times (default 2000) into a store that is never
 * committed to, so every iteration does the same work. Prints ns/trade;
 * for instruction counts run under callgrind and read the inclusive cost of
 * run_direct / run_unpack / run_tree:
 *
 *   valgrind --tool=callgrind --toggle-collect=run_direct \
 *       ./bench_decode direct map str 200
 */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fixp.h"
#include "proto.h"
#include "ref_decode.h"
#include "workload_pack.h"

#define NTRADES 1000

/* A W1 batch of NTRADES in the wire form slotload sends (px as text), or
 * with px as float64. */
static void build(msgpack_sbuffer *sb, int array, int pxfloat)
{
    msgpack_packer pk;
    workload w;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (workload_init(&w, 1000, 1.1, 1) != 0) {
        fprintf(stderr, "workload_init failed\n");
        exit(1);
    }
    workload_pack_batch(&pk, &w, 1, NTRADES,
                        (array ? WORKLOAD_ARRAY : 0) | (pxfloat ? WORKLOAD_PX_FLOAT : 0));
    workload_free(&w);
}

typedef struct ctx {
    const uint8_t *msg;
    size_t len;
    proto_limits lim;
    store *s;
    store_batch b;
} ctx;

__attribute__((noinline)) static long run_direct(ctx *c, int iters)
{
    long n = 0;
    for (int i = 0; i < iters; i++) {
        uint64_t seq;
        proto_error e;
        if (proto_decode_batch(c->msg, c->len, &c->lim, c->s, &c->b, &seq, &e) != 0) {
            fprintf(stderr, "decode failed: %s %s\n", proto_code_name(e.code), e.msg);
            exit(1);
        }
        n += c->b.n;
    }
    return n;
}

__attribute__((noinline)) static long run_unpack(ctx *c, int iters)
{
    long n = 0;
    msgpack_zone z;
    msgpack_zone_init(&z, 1 << 16);
    for (int i = 0; i < iters; i++) {
        msgpack_object o;
        size_t off = 0;
        if (msgpack_unpack((const char *)c->msg, c->len, &off, &z, &o) != MSGPACK_UNPACK_SUCCESS)
            exit(1);
        n += o.via.array.ptr[2].via.array.size;
        msgpack_zone_clear(&z);
    }
    msgpack_zone_destroy(&z);
    return n;
}

__attribute__((noinline)) static long run_tree(ctx *c, int iters)
{
    long n = 0;
    for (int i = 0; i < iters; i++) {
        uint64_t seq;
        proto_error e;
        if (ref_decode_batch(c->msg, c->len, &c->lim, c->s, &c->b, &seq, &e) != 0) {
            fprintf(stderr, "decode failed: %s %s\n", proto_code_name(e.code), e.msg);
            exit(1);
        }
        n += c->b.n;
    }
    return n;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_decode direct|unpack|tree map|array [str|float] [iters]\n");
        return 2;
    }
    const char *mode = argv[1];
    int array = strcmp(argv[2], "array") == 0;
    int pxfloat = argc > 3 && strcmp(argv[3], "float") == 0;
    int iters = argc > 4 ? atoi(argv[4]) : 2000;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    build(&sb, array, pxfloat);

    ctx c = {(const uint8_t *)sb.data, sb.size, {0}, NULL, {0}};
    proto_limits_default(&c.lim);
    store_config cfg = {0};
    if (store_open(&c.s, &cfg) != STORE_OK)
        return 1;
    store_batch_init(&c.b);
    /* Warm up: the first pass's batch is committed, which creates the 1000
     * symbols in the store; later passes are never committed. */
    if (strcmp(mode, "unpack") != 0) {
        run_direct(&c, 1);
        if (store_batch_reserve(c.s, &c.b) != STORE_OK)
            return 1;
        store_batch_commit(c.s, &c.b);
    }

    long (*run)(ctx *, int) = strcmp(mode, "direct") == 0   ? run_direct
                              : strcmp(mode, "unpack") == 0 ? run_unpack
                              : strcmp(mode, "tree") == 0   ? run_tree
                                                            : NULL;
    if (!run) {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long n = run(&c, iters);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    printf("%s %s px=%s: %zu bytes/batch (%.1f B/trade), %ld trades, %.1f ns/trade\n", mode,
           array ? "array" : "map", pxfloat ? "float" : "str", sb.size,
           (double)sb.size / NTRADES, n, ns / (double)n);
    store_batch_free(&c.b);
    store_close(c.s);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}
