/* What a subscription's connection receives, decoded (PROTOCOL.md §11):
 *
 *   ["R", qid, {"kinds": [{"name", "slots": [{"name", ...}, ...]}, ...]}]
 *   ["SUBOK", id, {sym: pos, ...}]
 *   ["S", id, sym, kind, next, [[slot, ...], ...]]
 *   ["GAP", id, sym, from, to]
 *   ["UNSUBOK", id]
 *   ["ERR", id, code, message, index]
 *
 * The same semantics as the Python client's Subscription: SUBOK sets the
 * cursor, each S moves cursor[sym] to next (its trades sit at
 * cursor[sym] .. next-1 unless deletes left holes), each GAP to its `to`.
 * Input is the server's to make up: every length, type and count is
 * checked against the bytes present before anything is allocated or
 * copied, and a bad message leaves the cursor as it was. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef slotd__mp mp;

int slotd__sub_error(slotd_batch_error *e, int code, const char *wire_code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    slotd__verror(e, code, wire_code, fmt, ap);
    va_end(ap);
    return code;
}

#define BAD(e, ...) slotd__sub_error(e, SLOTD_EPROTOCOL, NULL, __VA_ARGS__)

void slotd__subdec_init(slotd__subdec *d, uint64_t id)
{
    memset(d, 0, sizeof *d);
    d->id = id;
}

void slotd__subdec_free(slotd__subdec *d)
{
    slotd__cursor_free(&d->cur);
    free(d->vals);
    free(d->text);
    memset(d, 0, sizeof *d);
}

/* A map's next key/value pair, the key a str. */
static int kv(const uint8_t *p, size_t n, size_t *off, mp *k, mp *v)
{
    return slotd__mp_next(p, n, off, k) == 0 && k->t == SLOTD__MP_STR &&
                   slotd__mp_next(p, n, off, v) == 0
               ? 0
               : -1;
}

/* The header of the container at *off (entered, not skipped). */
static int enter(const uint8_t *p, size_t n, size_t *off, mp *v, int type)
{
    int h = *off < n ? slotd__mp_head(p + *off, n - *off, v) : -1;
    if (h <= 0 || v->t != type)
        return -1;
    *off += (size_t)h;
    return 0;
}

static int is_sym(const mp *v)
{
    return v->t == SLOTD__MP_STR && v->len >= 1 && v->len <= SLOTD__SYM_MAX &&
           !memchr(v->s, '\0', (size_t)v->len);
}

/* One slot: {"name": str, ...} into out. */
static int schema_slot(const uint8_t *p, size_t n, size_t *off, char *out, size_t cap)
{
    mp m, k, v;
    out[0] = '\0';
    if (enter(p, n, off, &m, SLOTD__MP_MAP) != 0)
        return -1;
    for (uint64_t i = 0; i < m.len; i++) {
        if (kv(p, n, off, &k, &v) != 0)
            return -1;
        if (slotd__mp_is(&k, "name")) {
            if (v.t != SLOTD__MP_STR || v.len == 0 || v.len >= cap)
                return -1;
            slotd__mp_copy(out, cap, &v);
        }
    }
    return out[0] ? 0 : -1;
}

/* One kind: {"name": str, "slots": [slot, ...], ...} */
static int schema_kind(const uint8_t *p, size_t n, size_t *off, slotd__kindnames *kn)
{
    mp m, k, v;
    memset(kn, 0, sizeof *kn);
    if (enter(p, n, off, &m, SLOTD__MP_MAP) != 0)
        return -1;
    for (uint64_t i = 0; i < m.len; i++) {
        if (slotd__mp_next(p, n, off, &k) != 0 || k.t != SLOTD__MP_STR)
            return -1;
        size_t at = *off; /* the value: containers are entered from here */
        if (slotd__mp_next(p, n, off, &v) != 0)
            return -1;
        if (slotd__mp_is(&k, "name")) {
            if (v.t != SLOTD__MP_STR || v.len == 0 || v.len >= sizeof kn->name)
                return -1;
            slotd__mp_copy(kn->name, sizeof kn->name, &v);
        } else if (slotd__mp_is(&k, "slots")) {
            if (v.t != SLOTD__MP_ARR || v.len == 0 || v.len > SLOTD__SLOTS_MAX)
                return -1;
            enter(p, n, &at, &v, SLOTD__MP_ARR);
            for (uint32_t j = 0; j < (uint32_t)v.len; j++) {
                if (schema_slot(p, n, &at, kn->slot[j], sizeof kn->slot[j]) != 0)
                    return -1;
                kn->ptr[j] = kn->slot[j];
            }
            kn->nslots = (uint32_t)v.len;
        }
    }
    return kn->name[0] && kn->nslots ? 0 : -1;
}

/* A message's type and id: ["TYPE", id, ...]; *off past the id. */
static int head(const uint8_t *p, size_t n, size_t *off, mp *arr, mp *type, mp *id)
{
    *off = 0;
    if (enter(p, n, off, arr, SLOTD__MP_ARR) != 0 || arr->len < 2 ||
        slotd__mp_next(p, n, off, type) != 0 || type->t != SLOTD__MP_STR ||
        slotd__mp_next(p, n, off, id) != 0)
        return -1;
    return 0;
}

static int err_reply(slotd__subdec *d, const char *msg, size_t n, uint64_t id, slotd_batch_error *e)
{
    slotd__reply r;
    if (slotd__reply_parse(msg, n, &r) != 0 || r.type != SLOTD__R_ERR)
        return BAD(e, "ERR not shaped [\"ERR\", id, code, message, index]");
    int fatal;
    int cls = slotd__code_class(r.code, id != d->id, &fatal);
    int code = fatal ? fatal
               : id != d->id
                   ? (cls == SLOTD__C_RETRY_CONN ? SLOTD_EDISCONNECTED : SLOTD_EPROTOCOL)
               : strcmp(r.code, "CURSOR_GONE") == 0 ? SLOTD_ECURSOR_GONE
                                                   : SLOTD_ESUB;
    return slotd__sub_error(e, code, r.code, "%s", r.message);
}

int slotd__subdec_schema(slotd__subdec *d, uint64_t qid, const char *msg, size_t n,
                         slotd_batch_error *e)
{
    const uint8_t *p = (const uint8_t *)msg;
    mp a, t, id, m, k, v;
    size_t off;
    if (head(p, n, &off, &a, &t, &id) != 0)
        return BAD(e, "schema: not an array [type, id, ...]");
    if (slotd__mp_is(&t, "ERR"))
        return err_reply(d, msg, n, id.t == SLOTD__MP_UINT ? id.u : 0, e);
    if (!slotd__mp_is(&t, "R") || id.t != SLOTD__MP_UINT || id.u != qid ||
        enter(p, n, &off, &m, SLOTD__MP_MAP) != 0)
        return BAD(e, "schema: expected [\"R\", %llu, {...}]", (unsigned long long)qid);
    for (uint64_t i = 0; i < m.len; i++) {
        if (slotd__mp_next(p, n, &off, &k) != 0)
            return BAD(e, "schema: the map is cut short");
        size_t at = off;
        if (slotd__mp_next(p, n, &off, &v) != 0)
            return BAD(e, "schema: the map is cut short");
        if (!slotd__mp_is(&k, "kinds"))
            continue;
        if (v.t != SLOTD__MP_ARR || v.len == 0 || v.len > SLOTD__KINDS_MAX)
            return BAD(e, "schema: kinds is not a list of 1-%d kinds", SLOTD__KINDS_MAX);
        enter(p, n, &at, &v, SLOTD__MP_ARR);
        for (uint32_t j = 0; j < (uint32_t)v.len; j++)
            if (schema_kind(p, n, &at, &d->kinds[j]) != 0)
                return BAD(e, "schema: kind %u is not {\"name\": str, \"slots\": [{\"name\": "
                              "str}, ...]} with at most %d slots",
                           j, SLOTD__SLOTS_MAX);
        d->nkinds = (uint32_t)v.len;
        d->named = 1;
        return 0;
    }
    return BAD(e, "schema: no kinds");
}

static int subok(slotd__subdec *d, const uint8_t *p, size_t n, size_t off, slotd_batch_error *e)
{
    mp m, k, v;
    if (enter(p, n, &off, &m, SLOTD__MP_MAP) != 0)
        return BAD(e, "SUBOK without a map of positions");
    slotd__cursor fresh = {0};
    for (uint64_t i = 0; i < m.len; i++) {
        if (kv(p, n, &off, &k, &v) != 0 || !is_sym(&k) || v.t != SLOTD__MP_UINT) {
            slotd__cursor_free(&fresh);
            return BAD(e, "SUBOK: entry %llu is not symbol: position", (unsigned long long)i);
        }
        if (slotd__cursor_set(&fresh, (const char *)k.s, (size_t)k.len, v.u) != 0) {
            slotd__cursor_free(&fresh);
            return slotd__sub_error(e, SLOTD_ENOMEM, NULL, "out of memory for the cursor");
        }
    }
    slotd__cursor_free(&d->cur);
    d->cur = fresh;
    return SLOTD__SUB_SUBOK;
}

static const slotd__kindnames *kind_of(const slotd__subdec *d, const mp *k)
{
    for (uint32_t i = 0; i < d->nkinds; i++)
        if (slotd__mp_is(k, d->kinds[i].name))
            return &d->kinds[i];
    return NULL;
}

static int reserve(void **buf, size_t *cap, size_t want)
{
    if (*cap >= want)
        return 0;
    void *b = realloc(*buf, want);
    if (!b)
        return -1;
    *buf = b;
    *cap = want;
    return 0;
}

/* One slot value at p + *off into val (its text copied to *txt). The
 * message was measured whole (slotd__mp_skip), so a header is complete;
 * a string's length is still checked against n. The common one-byte
 * forms are read here, the rest through slotd__mp_head: this loop is the
 * subscriber's cost per trade. 0, or -1 for anything but an integer or
 * a string. */
static int value(const uint8_t *p, size_t n, size_t *off, slotd_value *val, char **txt)
{
    uint8_t c = p[*off];
    uint64_t len;
    if (c <= 0x7f) { /* positive fixint */
        *off += 1;
        val->type = SLOTD_UINT;
        val->u = c;
        val->i = c;
        val->text = NULL;
        val->len = 0;
        return 0;
    }
    if ((c & 0xe0) == 0xa0) { /* fixstr */
        len = c & 0x1f;
        *off += 1;
    } else {
        mp v;
        int h = slotd__mp_head(p + *off, n - *off, &v);
        if (h <= 0)
            return -1;
        if (v.t == SLOTD__MP_UINT || v.t == SLOTD__MP_INT) {
            *off += (size_t)h;
            val->type = v.t == SLOTD__MP_UINT ? SLOTD_UINT : SLOTD_INT;
            val->u = v.t == SLOTD__MP_UINT ? v.u : 0;
            val->i = v.t == SLOTD__MP_INT || v.u <= INT64_MAX ? (int64_t)v.u : 0;
            val->text = NULL;
            val->len = 0;
            return 0;
        }
        if (v.t != SLOTD__MP_STR)
            return -1;
        len = v.len;
        *off += (size_t)h;
    }
    if (len > n - *off)
        return -1;
    val->type = SLOTD_TEXT;
    val->u = 0;
    val->i = 0;
    memcpy(*txt, p + *off, (size_t)len);
    (*txt)[len] = '\0';
    val->text = *txt;
    val->len = (size_t)len;
    *txt += len + 1;
    *off += (size_t)len;
    return 0;
}

/* The trades of an S into d->vals / d->text: nslots values each. */
static int trades(slotd__subdec *d, const uint8_t *p, size_t n, size_t off, uint32_t nt,
                  uint32_t *nslots, slotd_batch_error *e)
{
    mp row;
    if (*nslots == UINT32_MAX) { /* no schema: the first trade says */
        size_t peek = off;
        if (enter(p, n, &peek, &row, SLOTD__MP_ARR) != 0)
            return BAD(e, "S: trade 0 is not an array");
        *nslots = row.len <= SLOTD__SLOTS_MAX ? (uint32_t)row.len : 0;
    }
    /* every value takes at least a byte of the message, and its text at
     * most its bytes + a NUL: room for all of it before anything is read */
    uint64_t nval = (uint64_t)nt * *nslots;
    if (nval > n)
        return BAD(e, "S: %u trades of %u slots in %zu bytes", nt, *nslots, n);
    if (reserve((void **)&d->vals, &d->vals_cap, (size_t)nval * sizeof *d->vals) != 0 ||
        reserve((void **)&d->text, &d->text_cap, 2 * n) != 0)
        return slotd__sub_error(e, SLOTD_ENOMEM, NULL, "out of memory for a push of %zu bytes", n);
    slotd_value *val = d->vals;
    char *txt = d->text;
    for (uint32_t i = 0; i < nt; i++) {
        if (enter(p, n, &off, &row, SLOTD__MP_ARR) != 0)
            return BAD(e, "S: trade %u is not an array", i);
        if (row.len != *nslots || row.len == 0)
            return BAD(e, "S: trade %u has %llu slots, the kind %u", i,
                       (unsigned long long)row.len, *nslots);
        for (uint32_t j = 0; j < *nslots; j++, val++) {
            if (off >= n)
                return BAD(e, "S: trade %u is cut short", i);
            if (value(p, n, &off, val, &txt) != 0)
                return BAD(e, "S: trade %u slot %u is not an integer or a string (or is cut "
                              "short)",
                           i, j);
        }
    }
    return 0;
}

static int push(slotd__subdec *d, const uint8_t *p, size_t n, size_t off, uint32_t nel,
                slotd_sub_event *ev, slotd_batch_error *e)
{
    mp sym, kind, next, arr;
    if (nel != 6 || slotd__mp_next(p, n, &off, &sym) != 0 ||
        slotd__mp_next(p, n, &off, &kind) != 0 || slotd__mp_next(p, n, &off, &next) != 0 ||
        !is_sym(&sym) || kind.t != SLOTD__MP_STR ||
        kind.len == 0 || kind.len >= sizeof d->kind || next.t != SLOTD__MP_UINT ||
        enter(p, n, &off, &arr, SLOTD__MP_ARR) != 0 || arr.len == 0 || arr.len > n)
        return BAD(e, "S not shaped [\"S\", id, sym, kind, next, [trade, ...]]");
    const slotd__kindnames *kn = NULL;
    if (d->named && !(kn = kind_of(d, &kind)))
        return BAD(e, "S: kind '%.*s' is not in the schema", (int)kind.len, (const char *)kind.s);
    int found;
    uint64_t start = slotd__cursor_get(&d->cur, (const char *)sym.s, (size_t)sym.len, &found);
    if (next.u < start + arr.len)
        return BAD(e, "S: %llu trades of %.*s end at %llu, before the cursor's %llu",
                   (unsigned long long)arr.len, (int)sym.len, (const char *)sym.s,
                   (unsigned long long)next.u, (unsigned long long)start);
    if (d->dropping)
        return SLOTD__SUB_DROPPED;
    uint32_t nslots = kn ? kn->nslots : UINT32_MAX;
    int rc = trades(d, p, n, off, (uint32_t)arr.len, &nslots, e);
    if (rc != 0)
        return rc;
    if (slotd__cursor_set(&d->cur, (const char *)sym.s, (size_t)sym.len, next.u) != 0)
        return slotd__sub_error(e, SLOTD_ENOMEM, NULL, "out of memory for the cursor");
    slotd__mp_copy(d->sym, sizeof d->sym, &sym);
    slotd__mp_copy(d->kind, sizeof d->kind, &kind);
    memset(ev, 0, sizeof *ev);
    ev->type = SLOTD_SUB_TRADES;
    ev->sym = d->sym;
    ev->kind = d->kind;
    ev->ntrades = (uint32_t)arr.len;
    ev->nslots = nslots;
    ev->slot_names = kn ? kn->ptr : NULL;
    ev->values = d->vals;
    ev->first = start;
    ev->next = next.u;
    ev->exact = next.u - start == arr.len; /* else deletes left holes in the run */
    d->trades += arr.len;
    return SLOTD__SUB_EVENT;
}

static int gap(slotd__subdec *d, const uint8_t *p, size_t n, size_t off, uint32_t nel,
               slotd_sub_event *ev, slotd_batch_error *e)
{
    mp sym, from, to;
    if (nel != 5 || slotd__mp_next(p, n, &off, &sym) != 0 ||
        slotd__mp_next(p, n, &off, &from) != 0 || slotd__mp_next(p, n, &off, &to) != 0 ||
        !is_sym(&sym) || from.t != SLOTD__MP_UINT || to.t != SLOTD__MP_UINT || to.u < from.u)
        return BAD(e, "GAP not shaped [\"GAP\", id, sym, from, to]");
    if (d->dropping)
        return SLOTD__SUB_DROPPED;
    if (slotd__cursor_set(&d->cur, (const char *)sym.s, (size_t)sym.len, to.u) != 0)
        return slotd__sub_error(e, SLOTD_ENOMEM, NULL, "out of memory for the cursor");
    slotd__mp_copy(d->sym, sizeof d->sym, &sym);
    memset(ev, 0, sizeof *ev);
    ev->type = SLOTD_SUB_GAP;
    ev->sym = d->sym;
    ev->kind = "";
    ev->first = from.u;
    ev->next = to.u;
    return SLOTD__SUB_EVENT;
}

int slotd__subdec_msg(slotd__subdec *d, const char *msg, size_t n, slotd_sub_event *ev,
                      slotd_batch_error *e)
{
    const uint8_t *p = (const uint8_t *)msg;
    mp a, t, id;
    size_t off;
    if (head(p, n, &off, &a, &t, &id) != 0)
        return BAD(e, "a message not shaped [type, id, ...]");
    if (slotd__mp_is(&t, "ERR"))
        return err_reply(d, msg, n, id.t == SLOTD__MP_UINT ? id.u : 0, e);
    if (id.t != SLOTD__MP_UINT || id.u != d->id)
        return BAD(e, "a %.*s message for id %llu, not this subscription's %llu", (int)t.len,
                   (const char *)t.s, (unsigned long long)id.u, (unsigned long long)d->id);
    uint32_t nel = a.len > 8 ? 8 : (uint32_t)a.len;
    if (slotd__mp_is(&t, "S"))
        return push(d, p, n, off, nel, ev, e);
    if (slotd__mp_is(&t, "GAP"))
        return gap(d, p, n, off, nel, ev, e);
    if (slotd__mp_is(&t, "SUBOK") && nel == 3)
        return subok(d, p, n, off, e);
    if (slotd__mp_is(&t, "UNSUBOK") && nel == 2)
        return SLOTD__SUB_UNSUBOK;
    return BAD(e, "unexpected message '%.*s' in a subscription", (int)t.len, (const char *)t.s);
}
