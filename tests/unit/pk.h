/* pk — a message for a decoder under test, packed with msgpack-c directly
 * (an independent encoder: the tests do not pack with the code they test).
 * Shared by the unit tests of the TCP decoders and of the gateway. */
#ifndef SLOTD_TEST_PK_H
#define SLOTD_TEST_PK_H

#include <msgpack.h>
#include <string.h>

typedef struct pk {
    msgpack_sbuffer sb;
    msgpack_packer p;
} pk;

static inline void pk_init(pk *k)
{
    msgpack_sbuffer_init(&k->sb);
    msgpack_packer_init(&k->p, &k->sb, msgpack_sbuffer_write);
}

static inline void pk_str(pk *k, const char *s)
{
    msgpack_pack_str_with_body(&k->p, s, strlen(s));
}

/* [type, id, {...pairs to follow}]: the head of a SUB, Q or R message. */
static inline void pk_head(pk *k, const char *type, uint64_t id, uint32_t pairs)
{
    pk_init(k);
    msgpack_pack_array(&k->p, 3);
    pk_str(k, type);
    msgpack_pack_uint64(&k->p, id);
    msgpack_pack_map(&k->p, pairs);
}

#endif
