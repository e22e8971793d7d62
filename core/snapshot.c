/* snapshot — see snapshot.h for the stream layout and the trust rules.
 *
 * Save walks the partitions in id order and each page chain front to back,
 * handing the used slots of each page to the caller's write function as
 * they lie in memory, wide or compact: no per-record work, no allocation
 * (a fork()ed child can run it). Load reads each partition's wide slots
 * straight into pages the store sizes for the frame (store__restore_room),
 * and each compact page into a page of its class (store__restore_cpage),
 * then lets the store account them (store__restore_fill / _cfill: page
 * min/max ts and the aggregates, folded by the ingest rule; a compact body
 * is checked first, cpage_check). Once a partition is complete, the store
 * compacts its sealed wide pages (store__restore_done), so a version 1 or
 * 2 snapshot, or one a plain store wrote, loads compact. Partitions are created in id
 * order, so ids, and with them top-N tie order, come back the same.
 */
#include "snapshot.h"

#include <stdlib.h>
#include <string.h>

#include "kind.h"
#include "slab.h"
#include "store_internal.h"

#define SNAPSHOT__HCRC 60 /* header bytes covered by the header crc */

/* ---- little-endian fields ------------------------------------------------ */

static void snapshot__put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static void snapshot__put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static void snapshot__put128(unsigned char *p, unsigned __int128 v)
{
    snapshot__put64(p, (uint64_t)v);
    snapshot__put64(p + 8, (uint64_t)(v >> 64));
}
static uint32_t snapshot__get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}
static uint64_t snapshot__get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}
static unsigned __int128 snapshot__get128(const unsigned char *p)
{
    return (unsigned __int128)snapshot__get64(p + 8) << 64 | snapshot__get64(p);
}

/* ---- kind fingerprint ------------------------------------------------------ */

static uint64_t snapshot__fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL; /* FNV-1a 64 */
    return h;
}

static uint64_t snapshot__fnv_u64(uint64_t h, uint64_t v)
{
    unsigned char b[8];
    snapshot__put64(b, v);
    return snapshot__fnv(h, b, sizeof b);
}

uint64_t snapshot_kind_fingerprint(void)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    h = snapshot__fnv_u64(h, kind_count());
    for (unsigned id = 0; id < kind_count(); id++) {
        const kind *k = kind_by_id(id);
        h = snapshot__fnv_u64(h, strlen(k->name));
        h = snapshot__fnv(h, k->name, strlen(k->name));
        h = snapshot__fnv_u64(h, (uint64_t)k->id << 32 | (uint64_t)k->nfields << 16 | k->size);
        h = snapshot__fnv_u64(h, k->base ? k->base->id : 0xff);
        for (unsigned f = 0; f < k->nfields; f++) {
            const kind_field *kf = &k->fields[f];
            h = snapshot__fnv_u64(h, kf->keylen);
            h = snapshot__fnv(h, kf->key, kf->keylen);
            /* KIND_SIGNED widens which values a slot accepts, not how it is
             * stored (a 64-bit two's-complement field either way), so it
             * is left out: snapshots from before signed prices still load. */
            uint8_t flags = kf->flags & (uint8_t)~KIND_SIGNED;
            h = snapshot__fnv_u64(h, (uint64_t)kf->type << 16 | (uint64_t)kf->bits << 8 | flags);
        }
        /* The layout the compiler chose: a probe record, packed. Distinct
         * bytes in every value, so reordered or resized slots show. */
        uint64_t slot[32];
        int64_t v[KIND_MAX_FIELDS];
        memset(slot, 0, sizeof slot);
        for (unsigned f = 0; f < KIND_MAX_FIELDS; f++)
            v[f] = (int64_t)(0x0102030405060708ULL * (f + 1) + f);
        if (k->size <= sizeof slot) {
            k->pack(slot, v);
            h = snapshot__fnv(h, slot, k->size);
        }
    }
    return h;
}

/* ---- save ------------------------------------------------------------------ */

typedef struct snapshot__stream {
    const snapshot_io *io;
    uint32_t crc;
    uint64_t bytes;
} snapshot__stream;

static int snapshot__out(snapshot__stream *o, const void *p, size_t n)
{
    if (n == 0)
        return SNAPSHOT_OK;
    if (o->io->write(o->io->ctx, p, n) != 0)
        return SNAPSHOT_EIO;
    o->crc = o->io->crc(o->crc, p, n);
    o->bytes += n;
    return SNAPSHOT_OK;
}

static int snapshot__in(snapshot__stream *o, void *p, size_t n)
{
    if (n == 0)
        return SNAPSHOT_OK;
    if (o->io->read(o->io->ctx, p, n) != 0)
        return SNAPSHOT_EIO;
    o->crc = o->io->crc(o->crc, p, n);
    o->bytes += n;
    return SNAPSHOT_OK;
}

static void snapshot__agg_put(unsigned char *r, const store_agg *a)
{
    snapshot__put64(r + 40, a->count);
    snapshot__put128(r + 48, a->volume);
    snapshot__put128(r + 64, (unsigned __int128)a->notional); /* two's complement */
    snapshot__put64(r + 80, (uint64_t)a->open);
    snapshot__put64(r + 88, (uint64_t)a->high);
    snapshot__put64(r + 96, (uint64_t)a->low);
    snapshot__put64(r + 104, (uint64_t)a->close);
    snapshot__put64(r + 112, (uint64_t)a->first_ts);
    snapshot__put64(r + 120, (uint64_t)a->last_ts);
}

static void snapshot__agg_get(const unsigned char *r, store_agg *a)
{
    memset(a, 0, sizeof *a);
    a->count = snapshot__get64(r + 40);
    a->volume = snapshot__get128(r + 48);
    a->notional = (__int128)snapshot__get128(r + 64);
    a->open = (int64_t)snapshot__get64(r + 80);
    a->high = (int64_t)snapshot__get64(r + 88);
    a->low = (int64_t)snapshot__get64(r + 96);
    a->close = (int64_t)snapshot__get64(r + 104);
    a->first_ts = (int64_t)snapshot__get64(r + 112);
    a->last_ts = (int64_t)snapshot__get64(r + 120);
}

static int snapshot__agg_eq(const store_agg *a, const store_agg *b)
{
    if (a->count != b->count || a->volume != b->volume || a->notional != b->notional)
        return 0;
    if (a->count == 0) /* the other fields mean nothing yet */
        return 1;
    return a->open == b->open && a->high == b->high && a->low == b->low &&
           a->close == b->close && a->first_ts == b->first_ts && a->last_ts == b->last_ts;
}

static void snapshot__header(unsigned char *h, const snapshot_io *io, uint32_t nparts,
                             uint64_t trades, uint64_t batches, uint64_t extra_len)
{
    memset(h, 0, SNAPSHOT_HEADER_BYTES);
    memcpy(h, "SLOTSNAP", 8);
    snapshot__put32(h + 8, SNAPSHOT_VERSION);
    snapshot__put32(h + 12, SNAPSHOT_HEADER_BYTES);
    snapshot__put64(h + 16, snapshot_kind_fingerprint());
    snapshot__put32(h + 24, nparts);
    snapshot__put32(h + 28, kind_count());
    snapshot__put64(h + 32, trades);
    snapshot__put64(h + 40, batches);
    snapshot__put64(h + 48, extra_len);
    snapshot__put32(h + SNAPSHOT__HCRC, io->crc(0, h, SNAPSHOT__HCRC));
}

/* Written? Not a removed id, nor a symbol only uncommitted batches hold
 * (a replay of the journal after the snapshot creates it if one commits). */
static int snapshot__kept(const part *p) { return !(p->flags & (PART_GONE | PART_FRESH)); }

int snapshot_save(const store *s, const void *extra, size_t extra_len, const snapshot_io *io,
                  snapshot_info *info)
{
    snapshot__stream o = {.io = io};
    unsigned char buf[SNAPSHOT_PART_BYTES];
    uint32_t nkept = 0;
    int rc;

    if (!s || !io || !io->write || !io->crc || (extra_len && !extra) ||
        extra_len > SNAPSHOT_EXTRA_MAX)
        return SNAPSHOT_EINVAL;
    for (uint32_t id = 0; id < s->nparts; id++)
        nkept += (uint32_t)snapshot__kept(store__part(s, id));
    snapshot__header(buf, io, nkept, s->trades, s->batches, extra_len);
    if ((rc = snapshot__out(&o, buf, SNAPSHOT_HEADER_BYTES)) != SNAPSHOT_OK ||
        (rc = snapshot__out(&o, extra, extra_len)) != SNAPSHOT_OK)
        return rc;
    for (uint32_t id = 0; id < s->nparts; id++) {
        const part *p = store__part(s, id);
        if (!snapshot__kept(p))
            continue;
        const unsigned char *key = (const unsigned char *)store__key_at(s, id)->w;
        size_t slot = s->ladder[p->kind].slot;
        uint64_t slots = 0;
        for (const slab_page *pg = p->head; pg; pg = pg->next)
            slots += pg->count;
        memset(buf, 0, sizeof buf);
        buf[0] = key[0];
        buf[1] = p->kind;
        memcpy(buf + 8, key + 1, key[0]);
        snapshot__agg_put(buf, &p->agg);
        snapshot__put64(buf + 128, *store__first(s, id));
        snapshot__put64(buf + 136, slots);
        if ((rc = snapshot__out(&o, buf, SNAPSHOT_PART_BYTES)) != SNAPSHOT_OK)
            return rc;
        /* A frame per page: a compact page goes out as it lies in memory. */
        for (const slab_page *pg = p->head; pg; pg = pg->next) {
            if (pg->count == 0)
                continue;
            size_t bytes = store__page_bytes(pg, slot);
            unsigned char fr[SNAPSHOT_FRAME_BYTES];
            snapshot__put32(fr, pg->count);
            snapshot__put32(fr + 4, store__is_compact(pg) ? (uint32_t)bytes : 0);
            if ((rc = snapshot__out(&o, fr, sizeof fr)) != SNAPSHOT_OK ||
                (rc = snapshot__out(&o, pg->slots, bytes)) != SNAPSHOT_OK)
                return rc;
        }
    }
    memset(buf, 0, SNAPSHOT_TRAILER_BYTES);
    memcpy(buf, "SNAPEND1", 8);
    o.crc = io->crc(o.crc, buf, 8);
    snapshot__put32(buf + 8, o.crc);
    if (io->write(io->ctx, buf, SNAPSHOT_TRAILER_BYTES) != 0)
        return SNAPSHOT_EIO;
    o.bytes += SNAPSHOT_TRAILER_BYTES;
    if (info) {
        info->bytes = o.bytes;
        info->partitions = nkept;
        info->trades = s->trades;
        info->batches = s->batches;
        info->extra_bytes = extra_len;
    }
    return SNAPSHOT_OK;
}

/* ---- load ------------------------------------------------------------------ */

static int snapshot__store_rc(int rc)
{
    switch (rc) {
    case STORE_ESYMLIMIT:
    case STORE_EFULL: return SNAPSHOT_EFULL;
    case STORE_ENOMEM: return SNAPSHOT_ENOMEM;
    default: return SNAPSHOT_EFORMAT; /* a bad or repeated name, a bad kind */
    }
}

/* One partition: its record, then its slots straight into store pages. */
static int snapshot__load_part(store *s, snapshot__stream *in, uint32_t want_id, uint64_t *total,
                               uint64_t limit, uint32_t version)
{
    unsigned char r[SNAPSHOT_PART_BYTES];
    store_agg agg;
    uint32_t id;
    int rc;

    memset(r, 0, sizeof r);
    if ((rc = snapshot__in(in, r, version == 1 ? SNAPSHOT_PART_BYTES_V1 : SNAPSHOT_PART_BYTES)) !=
        SNAPSHOT_OK)
        return rc;
    uint8_t len = r[0];
    if (len == 0 || len > STORE_SYM_MAX || r[1] >= kind_count())
        return SNAPSHOT_EFORMAT;
    for (size_t i = 2; i < 8; i++)
        if (r[i])
            return SNAPSHOT_EFORMAT;
    for (size_t i = 8 + len; i < 40; i++)
        if (r[i])
            return SNAPSHOT_EFORMAT;
    snapshot__agg_get(r, &agg);
    /* Checked before any page is taken: garbage counts stop here. */
    if (agg.count > limit - *total)
        return SNAPSHOT_EFORMAT;
    *total += agg.count;
    uint64_t first = snapshot__get64(r + 128), slots = snapshot__get64(r + 136);
    if (version == 1)
        slots = agg.count; /* no tombstones then, numbered from 0 */
    if (slots < agg.count || first > UINT64_MAX - slots)
        return SNAPSHOT_EFORMAT;
    const kind *k = kind_by_id(r[1]);
    if ((rc = store__restore_part(s, (const char *)r + 8, len, k, &id)) != STORE_OK)
        return snapshot__store_rc(rc);
    if (id != want_id)
        return SNAPSHOT_EFORMAT;
    *store__first(s, id) = first;
    *store__end(s, id) = first + slots;
    /* Too many slots for the memory cap ends in SNAPSHOT_EFULL below. */
    for (uint64_t left = slots; left > 0;) {
        uint64_t frame = left; /* versions 1 and 2: one run of wide slots */
        if (version >= 3) {
            unsigned char fr[SNAPSHOT_FRAME_BYTES];
            if ((rc = snapshot__in(in, fr, sizeof fr)) != SNAPSHOT_OK)
                return rc;
            uint32_t n = snapshot__get32(fr), bytes = snapshot__get32(fr + 4);
            if (n == 0 || n > left)
                return SNAPSHOT_EFORMAT;
            left -= n;
            if (bytes) { /* a compact page */
                void *dst = store__restore_cpage(s, id, bytes, n);
                if (!dst)
                    return bytes < slab_max_page() ? SNAPSHOT_EFULL : SNAPSHOT_EFORMAT;
                if ((rc = snapshot__in(in, dst, bytes)) != SNAPSHOT_OK)
                    return rc;
                if (store__restore_cfill(s, id, bytes, n) != STORE_OK)
                    return SNAPSHOT_EFORMAT;
                continue;
            }
            frame = n;
        } else {
            left = 0;
        }
        while (frame > 0) {
            uint32_t room;
            void *dst = store__restore_room(s, id, frame, &room);
            if (!dst)
                return SNAPSHOT_EFULL;
            uint32_t n = frame < room ? (uint32_t)frame : room;
            if ((rc = snapshot__in(in, dst, (size_t)n * k->size)) != SNAPSHOT_OK)
                return rc;
            store__restore_fill(s, id, n);
            frame -= n;
        }
        if (left) /* version 3: the next frame is the next page, as saved */
            store__restore_seal(s, id);
    }
    store__restore_done(s, id);
    /* The store refolded the aggregates from the slots; they must agree. */
    return snapshot__agg_eq(&agg, &store__part(s, id)->agg) ? SNAPSHOT_OK : SNAPSHOT_EFORMAT;
}

int snapshot_load(store *s, const snapshot_io *io, void **extra, size_t *extra_len,
                  snapshot_info *info)
{
    snapshot__stream in = {.io = io};
    unsigned char h[SNAPSHOT_HEADER_BYTES];
    void *blob = NULL;
    uint64_t total = 0;
    int rc;

    if (extra)
        *extra = NULL;
    if (extra_len)
        *extra_len = 0;
    if (!s || !io || !io->read || !io->crc)
        return SNAPSHOT_EINVAL;
    if (s->nparts != 0 || s->trades != 0)
        return SNAPSHOT_EINVAL;
    if ((rc = snapshot__in(&in, h, sizeof h)) != SNAPSHOT_OK)
        return rc;
    if (memcmp(h, "SLOTSNAP", 8) != 0)
        return SNAPSHOT_EFORMAT;
    if (io->crc(0, h, SNAPSHOT__HCRC) != snapshot__get32(h + SNAPSHOT__HCRC))
        return SNAPSHOT_ECRC;
    uint32_t version = snapshot__get32(h + 8);
    if (version < 1 || version > SNAPSHOT_VERSION)
        return SNAPSHOT_EVERSION;
    if (snapshot__get32(h + 12) != SNAPSHOT_HEADER_BYTES || snapshot__get32(h + 56) != 0)
        return SNAPSHOT_EFORMAT;
    if (snapshot__get32(h + 28) != kind_count() ||
        snapshot__get64(h + 16) != snapshot_kind_fingerprint())
        return SNAPSHOT_EKIND;
    uint32_t nparts = snapshot__get32(h + 24);
    uint64_t trades = snapshot__get64(h + 32), batches = snapshot__get64(h + 40);
    uint64_t blen = snapshot__get64(h + 48);
    if (blen > SNAPSHOT_EXTRA_MAX)
        return SNAPSHOT_EFORMAT;
    if (blen && !(blob = malloc(blen)))
        return SNAPSHOT_ENOMEM;
    if ((rc = snapshot__in(&in, blob, blen)) != SNAPSHOT_OK)
        goto cleanup;
    for (uint32_t id = 0; id < nparts; id++)
        if ((rc = snapshot__load_part(s, &in, id, &total, trades, version)) != SNAPSHOT_OK)
            goto cleanup;
    rc = SNAPSHOT_EFORMAT;
    if (total != trades)
        goto cleanup;
    unsigned char t[SNAPSHOT_TRAILER_BYTES];
    uint32_t crc_before = 0;
    if ((rc = snapshot__in(&in, t, 8)) != SNAPSHOT_OK)
        goto cleanup;
    crc_before = in.crc;
    if (io->read(io->ctx, t + 8, SNAPSHOT_TRAILER_BYTES - 8) != 0) {
        rc = SNAPSHOT_EIO;
        goto cleanup;
    }
    in.bytes += SNAPSHOT_TRAILER_BYTES - 8;
    rc = memcmp(t, "SNAPEND1", 8) != 0 || snapshot__get32(t + 12) != 0 ? SNAPSHOT_EFORMAT
         : snapshot__get32(t + 8) != crc_before                           ? SNAPSHOT_ECRC
                                                                          : SNAPSHOT_OK;
    if (rc != SNAPSHOT_OK)
        goto cleanup;
    s->batches = batches;
    if (info) {
        info->bytes = in.bytes;
        info->partitions = nparts;
        info->trades = trades;
        info->batches = batches;
        info->extra_bytes = blen;
    }
    if (extra) {
        *extra = blob;
        blob = NULL;
    }
    if (extra_len)
        *extra_len = (size_t)blen;
cleanup:
    free(blob);
    return rc;
}
