/* ref_decode — the reference batch decoder the direct decoder is checked
 * against (test_decode.c, tests/fuzz/fuzz_decode.c).
 *
 * Deliberately the obvious way: msgpack_unpack builds the object tree, and
 * the rules of PROTOCOL.md are applied to it in their stated order. It
 * shares nothing with proto/decode.c but the core (kind, fixp, store), so
 * a disagreement points at one of the two readings of the rules.
 */
#ifndef SLOTD_REF_DECODE_H
#define SLOTD_REF_DECODE_H

#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fixp.h"
#include "proto.h"

static int ref_fail(proto_error *err, proto_code code, int64_t index, const char *fmt, ...)
{
    va_list ap;
    err->code = code;
    err->index = index;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return -1;
}

static int ref_is_str(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, s, n) == 0;
}

/* 1 present, 0 absent, -1 error. */
static int ref_value(const msgpack_object *o, const kind_field *f, int64_t *out, int64_t i,
                     proto_error *err)
{
    int rc;
    if (o->type == MSGPACK_OBJECT_NIL)
        return 0;
    switch (f->type) {
    case KIND_FIX:
        if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            rc = fixp_from_u64(o->via.u64, out);
        else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            rc = fixp_from_i64(o->via.i64, out);
        else if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)
            rc = fixp_from_double(o->via.f64, out);
        else if (o->type == MSGPACK_OBJECT_STR)
            rc = fixp_from_str(o->via.str.ptr, o->via.str.size, out);
        else
            return ref_fail(err, PROTO_E_WRONG_TYPE, i, "trade %lld: %s: type", (long long)i,
                            f->key);
        /* PROTOCOL.md 3.4: prices (KIND_SIGNED) may be negative, qty not. */
        if (rc == FIXP_OK && *out < 0 && !(f->flags & KIND_SIGNED))
            rc = FIXP_ENEG;
        if (rc != FIXP_OK)
            return ref_fail(err, PROTO_E_BAD_VALUE, i, "trade %lld: %s: %s", (long long)i,
                            f->key, core_strerror(rc));
        return 1;
    case KIND_TS:
        if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            if (o->via.u64 > INT64_MAX)
                return ref_fail(err, PROTO_E_BAD_VALUE, i, "trade %lld: %s: range", (long long)i,
                                f->key);
            *out = (int64_t)o->via.u64;
            return 1;
        }
        if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            return ref_fail(err, PROTO_E_BAD_VALUE, i, "trade %lld: %s: negative", (long long)i,
                            f->key);
        if (o->type == MSGPACK_OBJECT_EXT && o->via.ext.type == -1) {
            msgpack_timestamp ts;
            if (!msgpack_object_to_timestamp(o, &ts) || ts.tv_sec < 0 ||
                ts.tv_nsec > 999999999 ||
                ts.tv_sec > (INT64_MAX - (int64_t)ts.tv_nsec) / 1000000000)
                return ref_fail(err, PROTO_E_BAD_VALUE, i, "trade %lld: %s: timestamp",
                                (long long)i, f->key);
            *out = ts.tv_sec * 1000000000 + ts.tv_nsec;
            return 1;
        }
        return ref_fail(err, PROTO_E_WRONG_TYPE, i, "trade %lld: %s: type", (long long)i, f->key);
    case KIND_U64:
        if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            *out = (int64_t)o->via.u64;
            return 1;
        }
        if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            return ref_fail(err, PROTO_E_BAD_VALUE, i, "trade %lld: %s: negative", (long long)i,
                            f->key);
        return ref_fail(err, PROTO_E_WRONG_TYPE, i, "trade %lld: %s: type", (long long)i, f->key);
    default: /* KIND_SIDE, KIND_RIGHT */
        if (o->type != MSGPACK_OBJECT_STR)
            return ref_fail(err, PROTO_E_WRONG_TYPE, i, "trade %lld: %s: type", (long long)i,
                            f->key);
        if (kind_enum_parse((kind_type)f->type, o->via.str.ptr, o->via.str.size, out) != KIND_OK)
            return ref_fail(err, PROTO_E_BAD_VALUE, i, "trade %lld: %s: enum", (long long)i,
                            f->key);
        return 1;
    }
}

static const kind *ref_kind(store *s, const store_batch *b, const kind *declared,
                            const msgpack_object *sym)
{
    if (declared)
        return declared;
    const kind *k = store_batch_symbol_kind(s, b, sym->via.str.ptr, sym->via.str.size);
    return k ? k : &kind_trade;
}

static int ref_trade(const msgpack_object *t, int64_t i, const proto_limits *lim, store *s,
                     store_batch *b, const kind *declared, proto_error *err)
{
    int64_t v[KIND_MAX_FIELDS];
    uint32_t present = 0, seen = 0;
    const msgpack_object *sym = NULL;
    const kind *k;
    if (t->type == MSGPACK_OBJECT_MAP) {
        uint32_t n = t->via.map.size, symat = 0;
        const msgpack_object_kv *kv = t->via.map.ptr;
        for (uint32_t j = 0; j < n && !sym; j++)
            if (ref_is_str(&kv[j].key, "sym")) {
                if (kv[j].val.type != MSGPACK_OBJECT_STR)
                    return ref_fail(err, PROTO_E_WRONG_TYPE, i, "trade %lld: sym: type",
                                    (long long)i);
                sym = &kv[j].val;
                symat = j;
            }
        if (!sym)
            return ref_fail(err, PROTO_E_MISSING_FIELD, i, "trade %lld: missing sym",
                            (long long)i);
        k = ref_kind(s, b, declared, sym);
        for (uint32_t j = 0; j < n; j++) {
            if (kv[j].key.type != MSGPACK_OBJECT_STR)
                return ref_fail(err, PROTO_E_WRONG_TYPE, i, "trade %lld: key type", (long long)i);
            if (ref_is_str(&kv[j].key, "sym")) {
                if (j != symat)
                    return ref_fail(err, PROTO_E_BAD_VALUE, i, "trade %lld: sym: duplicate",
                                    (long long)i);
                continue;
            }
            int fi = kind_field_index(k, kv[j].key.via.str.ptr, kv[j].key.via.str.size);
            if (fi < 0) {
                if (lim->ignore_unknown)
                    continue;
                return ref_fail(err, PROTO_E_UNKNOWN_FIELD, i, "trade %lld: unknown",
                                (long long)i);
            }
            if (seen >> fi & 1)
                return ref_fail(err, PROTO_E_BAD_VALUE, i, "trade %lld: duplicate", (long long)i);
            seen |= 1u << fi;
            int r = ref_value(&kv[j].val, &k->fields[fi], &v[fi], i, err);
            if (r < 0)
                return -1;
            present |= (uint32_t)r << fi;
        }
    } else if (t->type == MSGPACK_OBJECT_ARRAY) {
        uint32_t n = t->via.array.size;
        const msgpack_object *a = t->via.array.ptr;
        if (n == 0)
            return ref_fail(err, PROTO_E_MISSING_FIELD, i, "trade %lld: missing sym",
                            (long long)i);
        if (a[0].type != MSGPACK_OBJECT_STR)
            return ref_fail(err, PROTO_E_WRONG_TYPE, i, "trade %lld: sym: type", (long long)i);
        sym = &a[0];
        k = ref_kind(s, b, declared, sym);
        if (n - 1 > k->nfields && !lim->ignore_unknown)
            return ref_fail(err, PROTO_E_UNKNOWN_FIELD, i, "trade %lld: too many values",
                            (long long)i);
        for (uint32_t j = 1; j < n && j - 1 < k->nfields; j++) {
            int r = ref_value(&a[j], &k->fields[j - 1], &v[j - 1], i, err);
            if (r < 0)
                return -1;
            present |= (uint32_t)r << (j - 1);
        }
    } else {
        return ref_fail(err, PROTO_E_WRONG_TYPE, i, "trade %lld: not a map or array",
                        (long long)i);
    }
    int bad = 0, rc = kind_check(k, v, present, &bad);
    if (rc == KIND_EMISSING)
        return ref_fail(err, PROTO_E_MISSING_FIELD, i, "trade %lld: missing %s", (long long)i,
                        k->fields[bad].key);
    if (rc != KIND_OK)
        return ref_fail(err, PROTO_E_BAD_VALUE, i, "trade %lld: %s: range", (long long)i,
                        k->fields[bad].key);
    rc = store_batch_add(s, b, sym->via.str.ptr, sym->via.str.size, k, v);
    switch (rc) {
    case STORE_OK: return 0;
    case STORE_ESYMBOL: return ref_fail(err, PROTO_E_BAD_SYMBOL, i, "sym");
    case STORE_EKIND: return ref_fail(err, PROTO_E_KIND_MISMATCH, i, "kind");
    case STORE_ESYMLIMIT: return ref_fail(err, PROTO_E_SYMBOL_LIMIT, i, "limit");
    default: return ref_fail(err, PROTO_E_STORE_FULL, i, "full");
    }
}

static int ref_decode_batch(const uint8_t *msg, size_t len, const proto_limits *lim, store *s,
                            store_batch *b, uint64_t *seq, proto_error *err)
{
    msgpack_zone z;
    msgpack_object o;
    size_t off = 0;
    int rc = -1;
    *seq = 0;
    store_batch_reset(b);
    msgpack_zone_init(&z, 4096);
    if (msgpack_unpack((const char *)msg, len, &off, &z, &o) != MSGPACK_UNPACK_SUCCESS) {
        ref_fail(err, PROTO_E_MALFORMED, -1, "unpack");
        goto out;
    }
    if (o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size < 3 || o.via.array.size > 4 ||
        !ref_is_str(&o.via.array.ptr[0], "T")) {
        ref_fail(err, PROTO_E_BAD_MESSAGE, -1, "shape");
        goto out;
    }
    const msgpack_object *a = o.via.array.ptr;
    if (a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[1].via.u64 == 0) {
        ref_fail(err, PROTO_E_BAD_MESSAGE, -1, "seq");
        goto out;
    }
    *seq = a[1].via.u64;
    if (a[2].type != MSGPACK_OBJECT_ARRAY) {
        ref_fail(err, PROTO_E_BAD_MESSAGE, -1, "trades");
        goto out;
    }
    if (a[2].via.array.size > lim->max_batch) {
        ref_fail(err, PROTO_E_TOO_LARGE, -1, "batch");
        goto out;
    }
    const kind *declared = NULL;
    if (o.via.array.size == 4) {
        if (a[3].type == MSGPACK_OBJECT_STR) {
            declared = kind_by_name(a[3].via.str.ptr, a[3].via.str.size);
            if (!declared) {
                ref_fail(err, PROTO_E_UNKNOWN_KIND, -1, "kind");
                goto out;
            }
        } else if (a[3].type != MSGPACK_OBJECT_NIL) {
            ref_fail(err, PROTO_E_BAD_MESSAGE, -1, "kind type");
            goto out;
        }
    }
    for (uint32_t i = 0; i < a[2].via.array.size; i++)
        if (ref_trade(&a[2].via.array.ptr[i], i, lim, s, b, declared, err))
            goto out;
    rc = 0;
out:
    if (rc)
        store_batch_reset(b);
    msgpack_zone_destroy(&z);
    return rc;
}

#endif
