/* kind — the tables and pack/unpack code generated from the slot lists. */
#include "kind.h"

#include <string.h>

#define FIELD(name, type, bits, flags, doc) {#name, sizeof(#name) - 1, type, bits, flags, doc},
#define PACK(name, type, bits, flags, doc) r->name = (uint64_t)v[i++];
#define UNPACK(name, type, bits, flags, doc) v[i++] = (int64_t)r->name;

/* A signed slot is a full int64: unpack reads it back without sign extension. */
#define SIGNED_WIDTH(name, type, bits, flags, doc) \
    _Static_assert(!((flags) & KIND_SIGNED) || (bits) == 64, #name ": a signed slot is 64 bits");
TRADE_SLOTS(SIGNED_WIDTH)
OPTION_TRADE_SLOTS(SIGNED_WIDTH)

static const kind_field trade_fields[] = {TRADE_SLOTS(FIELD)};
static const kind_field option_trade_fields[] = {TRADE_SLOTS(FIELD) OPTION_TRADE_SLOTS(FIELD)};

static void trade_pack(void *slot, const int64_t *v)
{
    trade *r = slot;
    int i = 0;
    TRADE_SLOTS(PACK)
}

static void trade_unpack(const void *slot, int64_t *v)
{
    const trade *r = slot;
    int i = 0;
    TRADE_SLOTS(UNPACK)
}

static void option_trade_pack(void *slot, const int64_t *v)
{
    option_trade *r = slot;
    int i = TRADE_NFIELDS;
    trade_pack(&r->base, v);
    OPTION_TRADE_SLOTS(PACK)
}

static void option_trade_unpack(const void *slot, int64_t *v)
{
    const option_trade *r = slot;
    int i = TRADE_NFIELDS;
    trade_unpack(&r->base, v);
    OPTION_TRADE_SLOTS(UNPACK)
}

const kind kind_trade = {"trade", 0, TRADE_NFIELDS, sizeof(trade), NULL,
                         trade_fields, trade_pack, trade_unpack};
const kind kind_option_trade = {"option_trade", 1, OPTION_TRADE_NFIELDS, sizeof(option_trade),
                                &kind_trade, option_trade_fields, option_trade_pack,
                                option_trade_unpack};

static const kind *const kinds[] = {&kind_trade, &kind_option_trade};

_Static_assert(OPTION_TRADE_NFIELDS <= KIND_MAX_FIELDS, "raise KIND_MAX_FIELDS");
_Static_assert(sizeof(kinds) / sizeof(kinds[0]) <= KIND_MAX, "raise KIND_MAX");

unsigned kind_count(void) { return sizeof(kinds) / sizeof(kinds[0]); }

const kind *kind_by_id(unsigned id) { return id < kind_count() ? kinds[id] : NULL; }

const kind *kind_by_name(const char *name, size_t len)
{
    for (unsigned i = 0; i < kind_count(); i++)
        if (strlen(kinds[i]->name) == len && memcmp(kinds[i]->name, name, len) == 0)
            return kinds[i];
    return NULL;
}

int kind_field_index(const kind *k, const char *key, size_t len)
{
    /* Linear: kinds have a handful of slots, and the first byte rejects most. */
    for (int i = 0; i < k->nfields; i++) {
        const kind_field *f = &k->fields[i];
        if (f->keylen == len && f->key[0] == key[0] && memcmp(f->key, key, len) == 0)
            return i;
    }
    return -1;
}

int kind_is_a(const kind *k, const kind *base)
{
    for (; k; k = k->base)
        if (k == base)
            return 1;
    return 0;
}

int kind_check(const kind *k, int64_t *v, uint32_t present, int *bad)
{
    for (int i = 0; i < k->nfields; i++) {
        const kind_field *f = &k->fields[i];
        if (!(present & (1u << i))) {
            if (f->flags & KIND_REQ) {
                *bad = i;
                return KIND_EMISSING;
            }
            v[i] = 0;
            continue;
        }
        /* U64 at full width may use all 64 bits, a signed slot (64 bits
         * wide) any int64 but INT64_MIN (fixp.h: the range is symmetric);
         * everything else is a non-negative int64 that must fit its
         * bit-field. */
        if (f->type == KIND_U64 && f->bits == 64)
            continue;
        if ((f->flags & KIND_SIGNED) && v[i] != INT64_MIN)
            continue;
        if (v[i] < 0 || (f->bits < 64 && (uint64_t)v[i] >> f->bits)) {
            *bad = i;
            return KIND_ERANGE;
        }
        if ((f->type == KIND_SIDE && v[i] > KIND_SIDE_SELL) ||
            (f->type == KIND_RIGHT && (v[i] < KIND_RIGHT_CALL || v[i] > KIND_RIGHT_PUT))) {
            *bad = i;
            return KIND_EVALUE;
        }
    }
    return KIND_OK;
}

static int text_is(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    if (n != len)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != lit[i])
            return 0;
    }
    return 1;
}

int kind_enum_parse(kind_type t, const char *s, size_t len, int64_t *out)
{
    if (t == KIND_SIDE) {
        if (len == 0 || text_is(s, len, "u") || text_is(s, len, "unknown"))
            *out = KIND_SIDE_UNKNOWN;
        else if (text_is(s, len, "b") || text_is(s, len, "buy"))
            *out = KIND_SIDE_BUY;
        else if (text_is(s, len, "s") || text_is(s, len, "sell"))
            *out = KIND_SIDE_SELL;
        else
            return KIND_EVALUE;
        return KIND_OK;
    }
    if (t == KIND_RIGHT) {
        if (text_is(s, len, "c") || text_is(s, len, "call"))
            *out = KIND_RIGHT_CALL;
        else if (text_is(s, len, "p") || text_is(s, len, "put"))
            *out = KIND_RIGHT_PUT;
        else
            return KIND_EVALUE;
        return KIND_OK;
    }
    return KIND_EVALUE;
}

const char *kind_enum_name(kind_type t, int64_t v)
{
    if (t == KIND_SIDE)
        return v == KIND_SIDE_BUY ? "B" : v == KIND_SIDE_SELL ? "S" : "";
    if (t == KIND_RIGHT)
        return v == KIND_RIGHT_CALL ? "C" : v == KIND_RIGHT_PUT ? "P" : "";
    return "";
}

const char *kind_type_name(kind_type t)
{
    switch (t) {
    case KIND_TS: return "timestamp_ns";
    case KIND_FIX: return "fixed8";
    case KIND_U64: return "uint64";
    case KIND_SIDE: return "side";
    case KIND_RIGHT: return "right";
    }
    return "?";
}
