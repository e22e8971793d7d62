/* decode_fx — the fixture the decoder tests share: a store, a staged batch,
 * the default limits and a msgpack buffer to build messages in. */
#ifndef SLOTD_DECODE_FX_H
#define SLOTD_DECODE_FX_H

#include <msgpack.h>
#include <stdlib.h>

#include "proto.h"

typedef struct fx {
    store *s;
    store_batch b;
    proto_limits lim;
    msgpack_sbuffer sb;
    msgpack_packer pk;
} fx;

/* A 64 MiB store allowing max_symbols symbols. */
static inline int fx_setup(void **state, uint32_t max_symbols)
{
    fx *f = calloc(1, sizeof(*f));
    store_config cfg = {.max_memory = 64u << 20, .max_symbols = max_symbols};
    assert_int_equal(store_open(&f->s, &cfg), STORE_OK);
    store_batch_init(&f->b);
    proto_limits_default(&f->lim);
    msgpack_sbuffer_init(&f->sb);
    msgpack_packer_init(&f->pk, &f->sb, msgpack_sbuffer_write);
    *state = f;
    return 0;
}

static inline int fx_teardown(void **state)
{
    fx *f = *state;
    store_batch_free(&f->b);
    store_close(f->s);
    msgpack_sbuffer_destroy(&f->sb);
    free(f);
    return 0;
}

#endif
