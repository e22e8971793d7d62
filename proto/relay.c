/* relay — node replies re-emitted and merged (relay.h). */
#include "relay.h"

#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "fixp.h"

#define KEY_MAX 32

static int obj_is(const msgpack_object *o, const char *lit)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(lit) &&
           memcmp(o->via.str.ptr, lit, o->via.str.size) == 0;
}

/* The value of key k in map m, or NULL. */
static const msgpack_object *map_get(const msgpack_object *m, const char *k, size_t klen)
{
    if (m->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *key = &m->via.map.ptr[i].key;
        if (key->type == MSGPACK_OBJECT_STR && key->via.str.size == klen &&
            memcmp(key->via.str.ptr, k, klen) == 0)
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

/* The exact text of a fixed-point value as query.c wrote it ("<key>_s"),
 * as a 1e-8 fixed-point number: 0, or -1 when absent or not exact at 1e-8
 * (trailing zeros beyond 8 decimals are exact). */
static int sibling_fix(const msgpack_object *m, const msgpack_object *key, int64_t *v)
{
    char name[KEY_MAX + 3], txt[64];
    if (key->type != MSGPACK_OBJECT_STR || key->via.str.size > KEY_MAX)
        return -1;
    memcpy(name, key->via.str.ptr, key->via.str.size);
    memcpy(name + key->via.str.size, "_s", 2);
    const msgpack_object *s = map_get(m, name, key->via.str.size + 2);
    if (!s || s->type != MSGPACK_OBJECT_STR || s->via.str.size >= sizeof txt)
        return -1;
    size_t n = s->via.str.size;
    memcpy(txt, s->via.str.ptr, n);
    if (memchr(txt, '.', n))
        while (n > 0 && txt[n - 1] == '0')
            n--;
    return fixp_from_str(txt, n, v) == 0 ? 0 : -1;
}

void relay_object(const msgpack_object *o, emit *e)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        e->nil(e);
        return;
    case MSGPACK_OBJECT_BOOLEAN:
        e->boolean(e, o->via.boolean);
        return;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        e->u64(e, o->via.u64);
        return;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        e->i64(e, o->via.i64);
        return;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        e->dbl(e, o->via.f64);
        return;
    case MSGPACK_OBJECT_STR:
        e->str(e, o->via.str.ptr, o->via.str.size);
        return;
    case MSGPACK_OBJECT_ARRAY:
        e->array(e, o->via.array.size);
        for (uint32_t i = 0; i < o->via.array.size; i++)
            relay_object(&o->via.array.ptr[i], e);
        e->end(e);
        return;
    case MSGPACK_OBJECT_MAP:
        e->map(e, o->via.map.size);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            char k[KEY_MAX + 1];
            int64_t fx;
            size_t kl = kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size <= KEY_MAX
                            ? kv->key.via.str.size
                            : 0;
            memcpy(k, kl ? kv->key.via.str.ptr : "", kl);
            k[kl] = '\0'; /* query.c's keys are short ASCII names */
            e->key(e, k);
            if (kv->val.type == MSGPACK_OBJECT_FLOAT64 && sibling_fix(o, &kv->key, &fx) == 0)
                e->fix(e, fx);
            else
                relay_object(&kv->val, e);
        }
        e->end(e);
        return;
    default: /* bin, ext: query.c writes none */
        e->nil(e);
        return;
    }
}

/* ---- replies ------------------------------------------------------------------ */

/* Unpack reply into u: 1 (R), 0 (ERR, err set), -1 (err MALFORMED). */
static int unpack_reply(msgpack_unpacked *u, const uint8_t *reply, size_t len, proto_error *err)
{
    size_t off = 0;
    if (msgpack_unpack_next(u, (const char *)reply, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        u->data.type != MSGPACK_OBJECT_ARRAY || u->data.via.array.size < 3)
        return proto_error_set(err, PROTO_E_MALFORMED, -1, "the node's reply is not a reply");
    const msgpack_object *a = u->data.via.array.ptr;
    if (obj_is(&a[0], "R"))
        return 1;
    if (obj_is(&a[0], "ERR") && u->data.via.array.size >= 4 && a[2].type == MSGPACK_OBJECT_STR &&
        a[3].type == MSGPACK_OBJECT_STR) {
        proto_code code = PROTO_E_BAD_MESSAGE; /* a code this build does not know */
        for (int c = 1; c < PROTO_NCODES; c++) {
            const char *name = proto_code_name((proto_code)c);
            if (strlen(name) == a[2].via.str.size &&
                memcmp(name, a[2].via.str.ptr, a[2].via.str.size) == 0)
                code = (proto_code)c;
        }
        proto_error_set(err, code, -1, "%.*s", (int)a[3].via.str.size, a[3].via.str.ptr);
        return 0;
    }
    return proto_error_set(err, PROTO_E_MALFORMED, -1, "the node's reply is not a reply");
}

int relay_status(const uint8_t *reply, size_t len, proto_error *err)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int rc = unpack_reply(&u, reply, len, err);
    msgpack_unpacked_destroy(&u);
    return rc;
}

int relay_result(const uint8_t *reply, size_t len, emit *e)
{
    msgpack_unpacked u;
    proto_error err;
    msgpack_unpacked_init(&u);
    int rc = unpack_reply(&u, reply, len, &err);
    if (rc == 1)
        relay_object(&u.data.via.array.ptr[2], e);
    msgpack_unpacked_destroy(&u);
    return rc == 1 ? 0 : -1;
}

/* ---- top-N merge ---------------------------------------------------------------- */

/* An exact decimal: sign, whole part, 18 decimals. */
typedef struct dec {
    int neg;
    unsigned __int128 whole;
    uint64_t frac;
} dec;

static int dec_parse(const char *s, size_t n, dec *d)
{
    size_t i = 0;
    memset(d, 0, sizeof *d);
    if (i < n && s[i] == '-')
        d->neg = 1, i++;
    if (i == n)
        return -1;
    for (; i < n && s[i] != '.'; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        d->whole = d->whole * 10 + (unsigned)(s[i] - '0');
    }
    uint64_t scale = 100000000000000000ull; /* 1e17: the first decimal's weight */
    if (i < n)
        i++;
    for (; i < n; i++, scale /= 10) {
        if (s[i] < '0' || s[i] > '9' || scale == 0)
            return -1;
        d->frac += (uint64_t)(s[i] - '0') * scale;
    }
    if (d->whole == 0 && d->frac == 0)
        d->neg = 0;
    return 0;
}

/* <0, 0, >0 as a < b. */
static int dec_cmp(const dec *a, const dec *b)
{
    if (a->neg != b->neg)
        return a->neg ? -1 : 1;
    int m = a->whole != b->whole ? (a->whole < b->whole ? -1 : 1)
            : a->frac != b->frac ? (a->frac < b->frac ? -1 : 1)
                                 : 0;
    return a->neg ? -m : m;
}

typedef struct top_entry {
    const msgpack_object *map;
    const char *sym;
    uint32_t symlen;
    dec key;
} top_entry;

struct relay_top {
    store_by by;
    uint32_t n;
    msgpack_unpacked *replies;
    size_t nreplies;
    top_entry *ents;
    size_t nents;
};

relay_top *relay_top_new(store_by by, uint32_t n)
{
    relay_top *t = calloc(1, sizeof *t);
    if (t) {
        t->by = by;
        t->n = n > STORE_MAX_TOP ? STORE_MAX_TOP : n;
    }
    return t;
}

void relay_top_free(relay_top *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nreplies; i++)
        msgpack_unpacked_destroy(&t->replies[i]);
    free(t->replies);
    free(t->ents);
    free(t);
}

static const char *const by_names[] = {"count", "volume", "notional"};

/* The ordering value of one symbol's map. 0 or -1. */
static int entry_key(const relay_top *t, const msgpack_object *m, dec *d)
{
    if (t->by == STORE_BY_COUNT) {
        const msgpack_object *c = map_get(m, "count", 5);
        if (!c || c->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return -1;
        memset(d, 0, sizeof *d);
        d->whole = c->via.u64;
        return 0;
    }
    char k[16];
    size_t kl = strlen(by_names[t->by]);
    memcpy(k, by_names[t->by], kl);
    memcpy(k + kl, "_s", 2);
    const msgpack_object *s = map_get(m, k, kl + 2);
    if (!s || s->type != MSGPACK_OBJECT_STR)
        return -1;
    return dec_parse(s->via.str.ptr, s->via.str.size, d);
}

int relay_top_add(relay_top *t, const uint8_t *reply, size_t len, proto_error *err)
{
    msgpack_unpacked *r = realloc(t->replies, (t->nreplies + 1) * sizeof *r);
    if (!r)
        return proto_error_set(err, PROTO_E_TOO_LARGE, -1, "out of memory");
    t->replies = r;
    msgpack_unpacked *u = &r[t->nreplies++];
    msgpack_unpacked_init(u);
    if (unpack_reply(u, reply, len, err) != 1)
        return -1;
    const msgpack_object *syms = map_get(&u->data.via.array.ptr[2], "symbols", 7);
    if (!syms || syms->type != MSGPACK_OBJECT_ARRAY)
        return proto_error_set(err, PROTO_E_MALFORMED, -1, "the node's reply is not a top answer");
    top_entry *e = realloc(t->ents, (t->nents + syms->via.array.size + 1) * sizeof *e);
    if (!e)
        return proto_error_set(err, PROTO_E_TOO_LARGE, -1, "out of memory");
    t->ents = e;
    for (uint32_t i = 0; i < syms->via.array.size; i++) {
        const msgpack_object *m = &syms->via.array.ptr[i];
        const msgpack_object *s = map_get(m, "symbol", 6);
        top_entry *x = &t->ents[t->nents];
        if (!s || s->type != MSGPACK_OBJECT_STR || entry_key(t, m, &x->key) != 0)
            return proto_error_set(err, PROTO_E_MALFORMED, -1, "a top entry without its symbol "
                                   "or its %s", by_names[t->by]);
        x->map = m;
        x->sym = s->via.str.ptr;
        x->symlen = s->via.str.size;
        t->nents++;
    }
    return 0;
}

static int ent_cmp(const void *pa, const void *pb)
{
    const top_entry *a = pa, *b = pb;
    int c = dec_cmp(&b->key, &a->key); /* largest first */
    if (c)
        return c;
    uint32_t n = a->symlen < b->symlen ? a->symlen : b->symlen;
    c = memcmp(a->sym, b->sym, n);
    return c ? c : (a->symlen > b->symlen) - (a->symlen < b->symlen);
}

void relay_top_emit(relay_top *t, const int32_t *missing, size_t nmissing, emit *e)
{
    relay_top_emit_open(t, missing, nmissing, 0, e);
    e->end(e);
}

void relay_top_emit_open(relay_top *t, const int32_t *missing, size_t nmissing, uint32_t extra,
                         emit *e)
{
    if (t->nents)
        qsort(t->ents, t->nents, sizeof *t->ents, ent_cmp);
    /* Keep the first (largest) of each symbol, up to n. */
    size_t kept = 0;
    for (size_t i = 0; i < t->nents && kept < t->n; i++) {
        int dup = 0;
        for (size_t j = 0; j < kept && !dup; j++)
            dup = t->ents[j].symlen == t->ents[i].symlen &&
                  memcmp(t->ents[j].sym, t->ents[i].sym, t->ents[i].symlen) == 0;
        if (!dup)
            t->ents[kept++] = t->ents[i];
    }
    e->map(e, (nmissing ? 4 : 2) + extra);
    e->key(e, "by");
    emit_cstr(e, by_names[t->by <= STORE_BY_NOTIONAL ? t->by : 0]);
    e->key(e, "symbols");
    e->array(e, (uint32_t)kept);
    for (size_t i = 0; i < kept; i++)
        relay_object(t->ents[i].map, e);
    e->end(e);
    if (nmissing) {
        e->key(e, "partial");
        e->boolean(e, 1);
        e->key(e, "missing_partitions");
        e->array(e, (uint32_t)nmissing);
        for (size_t i = 0; i < nmissing; i++)
            e->i64(e, missing[i]);
        e->end(e);
    }
}

/* Bytes of the msgpack integer whose first byte is b, or 0 if it is none. */
static size_t int_size(uint8_t b)
{
    if (b <= 0x7f || b >= 0xe0)
        return 1;
    switch (b) {
    case 0xcc: case 0xd0: return 2;
    case 0xcd: case 0xd1: return 3;
    case 0xce: case 0xd2: return 5;
    case 0xcf: case 0xd3: return 9;
    default: return 0;
    }
}

int relay_add_behind(const uint8_t *reply, size_t len, const int32_t *parts,
                     const int64_t *records, size_t n, proto_buf *out)
{
    /* ["R", qid, result]: fixarray 3, fixstr "R", an integer, the map */
    if (len < 5 || reply[0] != 0x93 || reply[1] != 0xa1 || reply[2] != 'R')
        return -1;
    size_t pos = 3 + int_size(reply[3]);
    if (pos == 3 || pos >= len)
        return -1;
    uint32_t nkeys;
    size_t hl;
    uint8_t b = reply[pos];
    if ((b & 0xf0) == 0x80) {
        nkeys = b & 0x0f, hl = 1;
    } else if (b == 0xde && pos + 3 <= len) {
        nkeys = (uint32_t)reply[pos + 1] << 8 | reply[pos + 2], hl = 3;
    } else if (b == 0xdf && pos + 5 <= len) {
        nkeys = (uint32_t)reply[pos + 1] << 24 | (uint32_t)reply[pos + 2] << 16 |
                (uint32_t)reply[pos + 3] << 8 | reply[pos + 4], hl = 5;
    } else {
        return -1;
    }
    if (nkeys == UINT32_MAX)
        return -1;
    nkeys++;
    uint8_t head[5];
    size_t headlen;
    if (nkeys <= 15) {
        head[0] = (uint8_t)(0x80 | nkeys), headlen = 1;
    } else if (nkeys <= 0xffff) {
        head[0] = 0xde, head[1] = (uint8_t)(nkeys >> 8), head[2] = (uint8_t)nkeys, headlen = 3;
    } else {
        head[0] = 0xdf, head[1] = (uint8_t)(nkeys >> 24), head[2] = (uint8_t)(nkeys >> 16);
        head[3] = (uint8_t)(nkeys >> 8), head[4] = (uint8_t)nkeys, headlen = 5;
    }
    /* The result is the message's last element: its entries run to the end. */
    if (proto_buf_append(out, reply, pos) != 0 || proto_buf_append(out, head, headlen) != 0 ||
        proto_buf_append(out, reply + pos + hl, len - pos - hl) != 0)
        return -1;
    emit e;
    emit_msgpack_init(&e, out);
    e.key(&e, "behind");
    e.array(&e, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        e.map(&e, 2);
        e.key(&e, "partition");
        e.i64(&e, parts[i]);
        e.key(&e, "records");
        e.i64(&e, records[i]);
        e.end(&e);
    }
    e.end(&e);
    return e.err ? -1 : 0;
}
