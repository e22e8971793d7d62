/* workload_pack — W1 trades and batches as msgpack (see workload_pack.h). */
#include "workload_pack.h"

#include "fixp.h"
#include "kind.h"

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str_with_body(pk, s, n);
}

/* The map key before a value (map form only). */
static void pack_key(msgpack_packer *pk, int flags, const char *k, size_t n)
{
    if (!(flags & WORKLOAD_ARRAY))
        pack_str(pk, k, n);
}

void workload_pack_trade(msgpack_packer *pk, const workload_trade *t, int flags)
{
    char sym[16], px[FIXP_STRLEN];
    int symlen = workload_symbol(t->sym, sym);
    if (flags & WORKLOAD_ARRAY)
        msgpack_pack_array(pk, 6);
    else
        msgpack_pack_map(pk, 6);
    pack_key(pk, flags, "sym", 3);
    pack_str(pk, sym, (size_t)symlen);
    pack_key(pk, flags, "ts", 2);
    msgpack_pack_int64(pk, t->ts);
    pack_key(pk, flags, "px", 2);
    if (flags & WORKLOAD_PX_FLOAT)
        msgpack_pack_double(pk, fixp_to_double(t->px));
    else
        pack_str(pk, px, fixp_format(t->px, px));
    pack_key(pk, flags, "qty", 3);
    msgpack_pack_int64(pk, t->qty / FIXP_SCALE);
    pack_key(pk, flags, "side", 4);
    pack_str(pk, t->side == KIND_SIDE_SELL ? "S" : "B", 1);
    pack_key(pk, flags, "id", 2);
    msgpack_pack_uint64(pk, t->id);
}

void workload_pack_trades(msgpack_packer *pk, workload *w, uint32_t n, int flags)
{
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++) {
        workload_trade t;
        workload_next(w, &t);
        workload_pack_trade(pk, &t, flags);
    }
}

void workload_pack_batch(msgpack_packer *pk, workload *w, uint64_t seq, uint32_t n, int flags)
{
    msgpack_pack_array(pk, 3);
    pack_str(pk, "T", 1);
    msgpack_pack_uint64(pk, seq);
    workload_pack_trades(pk, w, n, flags);
}
