/* pk — a message for a decoder under test, packed with msgpack-c directly
 * (an independent encoder: the tests do not pack with the code they test).
 * Shared by the unit tests of the TCP decoders. */
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

#endif
