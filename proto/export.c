/* export — CSV and JSON Lines exports through the store's scan (export.h). */
#include "export.h"

#include <stdio.h>
#include <string.h>

#include "fixp.h"
#include "query.h"

#define fail(err, code, ...) proto_error_set((err), (code), -1, __VA_ARGS__)
#define SHOWN 40 /* bytes of a bad value quoted back */
#define SCAN_LIMIT 2048 /* trades per store_scan call: output per call stays ~0.5 MiB */
#define MAX_COLS (2 + 2 * KIND_MAX_FIELDS)

void export_req_init(export_req *r)
{
    memset(r, 0, sizeof *r);
    r->format = EXPORT_CSV;
    r->from = INT64_MIN;
    r->to = INT64_MAX;
}

static int set_syms(export_req *r, const char *val, size_t vlen, proto_error *err)
{
    if (vlen == 1 && val[0] == '*') {
        r->all = 1;
        return 0;
    }
    for (size_t i = 0; i <= vlen;) {
        size_t j = i;
        while (j < vlen && val[j] != ',')
            j++;
        size_t n = j - i;
        if (n == 0 || n > STORE_SYM_MAX)
            return fail(err, PROTO_E_BAD_QUERY,
                        "parameter 'syms': each symbol must be 1-%d bytes, comma-separated, or '*'",
                        STORE_SYM_MAX);
        if (r->nsyms == EXPORT_MAX_SYMS)
            return fail(err, PROTO_E_BAD_QUERY, "parameter 'syms': more than %d symbols",
                        EXPORT_MAX_SYMS);
        for (uint32_t k = 0; k < r->nsyms; k++)
            if (r->symlen[k] == n && memcmp(r->syms[k], val + i, n) == 0)
                return fail(err, PROTO_E_BAD_QUERY, "parameter 'syms': '%.*s' is named twice",
                            (int)n, val + i);
        memcpy(r->syms[r->nsyms], val + i, n);
        r->syms[r->nsyms][n] = 0;
        r->symlen[r->nsyms++] = (uint8_t)n;
        i = j + 1;
    }
    return 0;
}

int export_set_param(export_req *r, const char *name, size_t nlen, const char *val, size_t vlen,
                     proto_error *err)
{
#define IS(lit) (nlen == sizeof lit - 1 && memcmp(name, lit, nlen) == 0)
    if (IS("syms")) {
        if (r->has_syms)
            return fail(err, PROTO_E_BAD_QUERY, "parameter 'syms' given twice");
        r->has_syms = 1;
        return set_syms(r, val, vlen, err);
    }
    if (IS("from") || IS("to")) {
        if (query_parse_time(val, vlen, IS("from") ? &r->from : &r->to) < 0)
            return fail(err, PROTO_E_BAD_QUERY,
                        "parameter '%s': '%.*s%s' is not a time (ns since the epoch, or RFC 3339 "
                        "like 2026-01-01T00:00:00.5Z)",
                        IS("from") ? "from" : "to", (int)(vlen > SHOWN ? SHOWN : vlen), val,
                        vlen > SHOWN ? "..." : "");
        return 0;
    }
    if (IS("format")) {
        if (vlen == 3 && memcmp(val, "csv", 3) == 0)
            r->format = EXPORT_CSV;
        else if (vlen == 5 && memcmp(val, "jsonl", 5) == 0)
            r->format = EXPORT_JSONL;
        else
            return fail(err, PROTO_E_BAD_QUERY, "parameter 'format': '%.*s%s' is not csv or jsonl",
                        (int)(vlen > SHOWN ? SHOWN : vlen), val, vlen > SHOWN ? "..." : "");
        return 0;
    }
#undef IS
    return fail(err, PROTO_E_BAD_QUERY,
                "unknown parameter '%.*s%s' (export takes syms, from, to, format)",
                (int)(nlen > SHOWN ? SHOWN : nlen), name, nlen > SHOWN ? "..." : "");
}

int export_check(const store *s, const export_req *r, proto_error *err)
{
    if (!r->has_syms)
        return fail(err, PROTO_E_BAD_QUERY,
                    "parameter 'syms' is required: symbols comma-separated, or '*' for all");
    if (r->from >= r->to)
        return fail(err, PROTO_E_BAD_QUERY, "'from' must be before 'to'");
    store_symbol_info si;
    for (uint32_t i = 0; i < r->nsyms; i++)
        if (store_symbol(s, r->syms[i], r->symlen[i], &si) < 0)
            return fail(err, PROTO_E_NOT_FOUND, "no such symbol '%s'", r->syms[i]);
    return 0;
}

const char *export_content_type(const export_req *r)
{
    return r->format == EXPORT_JSONL ? "application/x-ndjson" : "text/csv; charset=utf-8";
}

/* ---- CSV ------------------------------------------------------------------- */

/* The CSV columns after symbol and kind: every kind's slot keys, first
 * seen first (a derived kind's base slots come first, so they are shared). */
typedef struct csv_cols {
    const char *key[MAX_COLS];
    int n;
} csv_cols;

static void csv_columns(csv_cols *c)
{
    c->n = 0;
    for (unsigned id = 0; id < kind_count(); id++) {
        const kind *k = kind_by_id(id);
        for (int i = 0; i < k->nfields; i++) {
            int seen = 0;
            for (int j = 0; j < c->n && !seen; j++)
                seen = strcmp(c->key[j], k->fields[i].key) == 0;
            if (!seen && c->n < MAX_COLS)
                c->key[c->n++] = k->fields[i].key;
        }
    }
}

/* A symbol as a CSV field: quoted, inner quotes doubled, when it needs it. */
static size_t csv_sym(const char *sym, char *out)
{
    size_t n = 0;
    if (!strpbrk(sym, ",\"\r\n")) {
        n = strlen(sym);
        memcpy(out, sym, n);
        return n;
    }
    out[n++] = '"';
    for (const char *p = sym; *p; p++) {
        if (*p == '"')
            out[n++] = '"';
        out[n++] = *p;
    }
    out[n++] = '"';
    return n;
}

/* ---- the scan visitor ----------------------------------------------------------- */

typedef struct fill_ctx {
    const export_req *r;
    proto_buf *out;
    emit e;                 /* JSONL: one emitter for every line */
    const char *sym;
    char symcsv[2 * STORE_SYM_MAX + 3];
    size_t symcsv_len;
    const csv_cols *cols;
    int colfield[MAX_COLS]; /* CSV: the column's slot index in this kind, or -1 */
    uint32_t nkeys;
    uint64_t n;             /* trades written by this scan */
    int err;
} fill_ctx;

static void csv_row(fill_ctx *f, const kind *k, const void *slot)
{
    int64_t v[KIND_MAX_FIELDS];
    char line[64 * MAX_COLS], *p = line;
    k->unpack(slot, v);
    memcpy(p, f->symcsv, f->symcsv_len);
    p += f->symcsv_len;
    *p++ = ',';
    p += strlen(strcpy(p, k->name));
    for (int c = 0; c < f->cols->n; c++) {
        *p++ = ',';
        int i = f->colfield[c];
        if (i < 0)
            continue;
        switch ((kind_type)k->fields[i].type) {
        case KIND_FIX:
            p += fixp_format(v[i], p);
            break;
        case KIND_U64:
            p += fixp_format_u64((uint64_t)v[i], p);
            break;
        case KIND_SIDE:
        case KIND_RIGHT:
            p += strlen(strcpy(p, kind_enum_name((kind_type)k->fields[i].type, v[i])));
            break;
        case KIND_TS:
        default:
            p += fixp_format_i64(v[i], p);
            break;
        }
    }
    *p++ = '\n';
    if (proto_buf_append(f->out, line, (size_t)(p - line)) < 0)
        f->err = 1;
}

static void fill_visit(void *ctx, const kind *k, const void *slot)
{
    fill_ctx *f = ctx;
    f->n++;
    if (f->r->format == EXPORT_CSV) {
        csv_row(f, k, slot);
        return;
    }
    query_emit_trade(&f->e, f->sym, k, slot, f->nkeys);
    if (f->e.err || proto_buf_append(f->out, "\n", 1) < 0)
        f->err = 1;
}

/* The symbol at the cursor, skipping ids with no trade ("*"); 0 when the
 * export is past its last symbol. */
static int cursor_symbol(const store *s, const export_req *r, export_cursor *c,
                         store_symbol_info *si)
{
    if (!r->all) {
        while (c->pos < r->nsyms) {
            if (store_symbol(s, r->syms[c->pos], r->symlen[c->pos], si) == 0)
                return 1;
            c->pos++, c->rec = 0; /* emptied or removed meanwhile */
        }
        return 0;
    }
    for (uint32_t lim = store_id_limit(s); c->pos < lim; c->pos++, c->rec = 0)
        if (store_symbol_by_id(s, c->pos, si) == 0)
            return 1;
    return 0;
}

int export_fill(const store *s, const export_req *r, export_cursor *c, proto_buf *out,
                size_t want)
{
    csv_cols cols;
    fill_ctx f = {.r = r, .out = out, .cols = &cols};
    csv_columns(&cols);
    emit_json_init(&f.e, out);
    if (!c->header_done && r->format == EXPORT_CSV) {
        if (proto_buf_append(out, "symbol,kind", 11) < 0)
            return -1;
        for (int i = 0; i < cols.n; i++)
            if (proto_buf_printf(out, ",%s", cols.key[i]) < 0)
                return -1;
        if (proto_buf_append(out, "\n", 1) < 0)
            return -1;
    }
    c->header_done = 1;
    store_symbol_info si;
    while (!c->done && out->len < want) {
        if (!cursor_symbol(s, r, c, &si)) {
            c->done = 1;
            break;
        }
        f.sym = si.name;
        f.symcsv_len = csv_sym(si.name, f.symcsv);
        f.nkeys = query_record_keys(si.kind);
        for (int i = 0; i < cols.n; i++)
            f.colfield[i] = kind_field_index(si.kind, cols.key[i], strlen(cols.key[i]));
        uint64_t next = STORE_CURSOR_END;
        f.n = 0;
        int rc = store_scan(s, si.name, strlen(si.name), r->from, r->to, c->rec, SCAN_LIMIT,
                            fill_visit, &f, &next);
        if (f.err)
            return -1;
        c->trades += f.n;
        if (rc < 0 || next == STORE_CURSOR_END) {
            c->pos++; /* this symbol is done (or gone) */
            c->rec = 0;
        } else {
            c->rec = next;
        }
    }
    return 0;
}
