/* emit — the msgpack and JSON encoders behind emit.h.
 *
 * msgpack goes through msgpack-c's packer. JSON is a small streaming writer
 * rather than jansson: jansson would build a json_t tree of every trade
 * (10,000 per page, ~20 nodes each) only to serialise and free it, while the
 * query layer already produces values in output order. The writer keeps one
 * byte of state per nesting level (first element? map or array?) and is
 * tested by parsing its output back with jansson (tests/unit/test_emit.c).
 */
#include "emit.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "fixp.h"

/* ---- proto_buf ------------------------------------------------------------ */

int proto_buf_reserve(proto_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    if (extra > SIZE_MAX / 2 - b->len)
        return -1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int proto_buf_append(proto_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (proto_buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int proto_buf_printf(proto_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof small)
        return proto_buf_append(b, small, (size_t)n);
    /* Long output: format straight into the buffer (vsnprintf needs room
     * for the NUL, which is then not counted). */
    if (proto_buf_reserve(b, (size_t)n + 1) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void emit_cstr(emit *e, const char *s) { e->str(e, s, strlen(s)); }

/* ---- declared counts (debug builds) ---------------------------------------- */

#define COUNT_LEVELS ((uint32_t)(sizeof(((emit *)0)->declared) / sizeof(uint64_t)))

/* One element (a key, a value, or a container being opened) written at the
 * current level. Called before depth changes for an opened container. */
static void count_element(emit *e)
{
#ifndef NDEBUG
    if (e->err || e->depth == 0 || e->depth >= COUNT_LEVELS)
        return;
    assert(e->written[e->depth] < e->declared[e->depth] &&
           "more elements than the container declared (emit.h)");
    e->written[e->depth]++;
#else
    (void)e;
#endif
}

/* A container just opened (depth already incremented) declaring n. */
static void count_open(emit *e, uint32_t n, int is_map)
{
#ifndef NDEBUG
    if (e->depth >= COUNT_LEVELS)
        return;
    e->declared[e->depth] = is_map ? 2 * (uint64_t)n : n;
    e->written[e->depth] = 0;
#else
    (void)e, (void)n, (void)is_map;
#endif
}

/* The innermost container is closing (depth not yet decremented). */
static void count_close(emit *e)
{
#ifndef NDEBUG
    if (e->err || e->depth == 0 || e->depth >= COUNT_LEVELS)
        return;
    assert(e->written[e->depth] == e->declared[e->depth] &&
           "fewer elements than the container declared (emit.h)");
#else
    (void)e;
#endif
}

/* ---- msgpack ---------------------------------------------------------------- */

static int mp_write(void *data, const char *buf, size_t len)
{
    emit *e = data;
    if (proto_buf_append(e->out, buf, len) < 0) {
        e->err = 1;
        return -1;
    }
    return 0;
}

/* The packer is two words (data, callback): building one per call costs
 * nothing and keeps emit free of an allocation. */
#define MP(e) msgpack_packer pk = {(e), mp_write}

static void mp_map(emit *e, uint32_t n)
{
    MP(e);
    count_element(e);
    msgpack_pack_map(&pk, n);
    e->depth++;
    count_open(e, n, 1);
}

static void mp_array(emit *e, uint32_t n)
{
    MP(e);
    count_element(e);
    msgpack_pack_array(&pk, n);
    e->depth++;
    count_open(e, n, 0);
}

static void mp_end(emit *e)
{
    if (e->depth == 0) {
        e->err = 1; /* end without an open container: caller bug */
        return;
    }
    count_close(e);
    e->depth--;
}

static void mp_str(emit *e, const char *s, size_t len)
{
    MP(e);
    count_element(e);
    msgpack_pack_str_with_body(&pk, s, len);
}

static void mp_key(emit *e, const char *k) { mp_str(e, k, strlen(k)); }

static void mp_i64(emit *e, int64_t v)
{
    MP(e);
    count_element(e);
    msgpack_pack_int64(&pk, v);
}

static void mp_u64(emit *e, uint64_t v)
{
    MP(e);
    count_element(e);
    msgpack_pack_uint64(&pk, v);
}

static void mp_dbl(emit *e, double v)
{
    MP(e);
    count_element(e);
    msgpack_pack_double(&pk, v);
}

static void mp_fix(emit *e, int64_t v) { mp_dbl(e, fixp_to_double(v)); }

static void mp_bool(emit *e, int v)
{
    MP(e);
    count_element(e);
    if (v)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
}

static void mp_nil(emit *e)
{
    MP(e);
    count_element(e);
    msgpack_pack_nil(&pk);
}

static void emit_reset(emit *e, proto_buf *out)
{
    memset(e, 0, sizeof *e);
    e->out = out;
}

void emit_msgpack_init(emit *e, proto_buf *out)
{
    emit_reset(e, out);
    e->map = mp_map;
    e->array = mp_array;
    e->end = mp_end;
    e->key = mp_key;
    e->str = mp_str;
    e->i64 = mp_i64;
    e->u64 = mp_u64;
    e->dbl = mp_dbl;
    e->fix = mp_fix;
    e->boolean = mp_bool;
    e->nil = mp_nil;
}

/* ---- JSON ------------------------------------------------------------------- */

#define JSON_MAX_DEPTH ((uint32_t)sizeof(((emit *)0)->first) - 1)

static void js_raw(emit *e, const char *s, size_t n)
{
    if (!e->err && proto_buf_append(e->out, s, n) < 0)
        e->err = 1;
}

/* Separator before a value: nothing after a key (the key wrote ':'), a comma
 * between array elements. */
static void js_sep(emit *e)
{
    if (e->after_key) {
        e->after_key = 0;
        return;
    }
    if (e->depth == 0)
        return;
    if (!e->first[e->depth])
        js_raw(e, ",", 1);
    e->first[e->depth] = 0;
}

static void js_open(emit *e, char c, uint32_t n, int is_map)
{
    js_sep(e);
    count_element(e);
    js_raw(e, &c, 1);
    if (e->depth >= JSON_MAX_DEPTH) {
        /* Query results nest four deep; this is a caller bug, not input. */
        e->err = 1;
        return;
    }
    e->depth++;
    e->first[e->depth] = 1;
    e->is_map[e->depth] = (uint8_t)is_map;
    count_open(e, n, is_map);
}

static void js_map(emit *e, uint32_t n) { js_open(e, '{', n, 1); }
static void js_array(emit *e, uint32_t n) { js_open(e, '[', n, 0); }

static void js_end(emit *e)
{
    if (e->depth == 0 || e->depth > JSON_MAX_DEPTH) { /* the latter cannot be: tells gcc */
        e->err = 1;
        return;
    }
    count_close(e);
    js_raw(e, e->is_map[e->depth] ? "}" : "]", 1);
    e->depth--;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if it is not one:
 * overlong forms, surrogates and code points above U+10FFFF are invalid. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* Writes a JSON string. Control characters are escaped; each byte that does
 * not start a valid UTF-8 sequence becomes U+FFFD, so the output is always
 * valid JSON text whatever the input (symbols are validated at ingest, but
 * messages may quote client bytes). U+2028/2029 are escaped for the benefit
 * of JavaScript consumers. */
static void js_string(emit *e, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0; /* run: start of bytes to copy verbatim */
    js_raw(e, "\"", 1);
    while (i < len) {
        unsigned c = p[i];
        const char *esc = NULL;
        char ubuf[6];
        size_t n = 1, esclen = 2;
        if (c < 0x80) {
            switch (c) {
            case '"': esc = "\\\""; break;
            case '\\': esc = "\\\\"; break;
            case '\n': esc = "\\n"; break;
            case '\r': esc = "\\r"; break;
            case '\t': esc = "\\t"; break;
            case '\b': esc = "\\b"; break;
            case '\f': esc = "\\f"; break;
            default:
                if (c < 0x20 || c == 0x7F) {
                    memcpy(ubuf, "\\u00", 4);
                    ubuf[4] = hex[c >> 4];
                    ubuf[5] = hex[c & 15];
                    esc = ubuf;
                    esclen = 6;
                }
            }
        } else {
            n = utf8_seq(p + i, len - i);
            if (n == 0) {
                esc = "\\ufffd";
                esclen = 6;
                n = 1;
            } else if (n == 3 && c == 0xE2 && p[i + 1] == 0x80 &&
                       (p[i + 2] == 0xA8 || p[i + 2] == 0xA9)) {
                esc = p[i + 2] == 0xA8 ? "\\u2028" : "\\u2029";
                esclen = 6;
            }
        }
        if (esc) {
            js_raw(e, s + run, i - run);
            js_raw(e, esc, esclen);
            run = i + n;
        }
        i += n;
    }
    js_raw(e, s + run, len - run);
    js_raw(e, "\"", 1);
}

static void js_str(emit *e, const char *s, size_t len)
{
    js_sep(e);
    count_element(e);
    js_string(e, s, len);
}

static void js_key(emit *e, const char *k)
{
    if (e->depth == 0 || !e->is_map[e->depth]) {
        e->err = 1; /* a key outside a map: caller bug */
        return;
    }
    count_element(e);
    if (!e->first[e->depth])
        js_raw(e, ",", 1);
    e->first[e->depth] = 0;
    js_string(e, k, strlen(k));
    js_raw(e, ":", 1);
    e->after_key = 1;
}

static void js_text(emit *e, const char *s, int n)
{
    js_sep(e);
    count_element(e);
    if (n > 0)
        js_raw(e, s, (size_t)n);
}

static void js_i64(emit *e, int64_t v)
{
    char b[24];
    js_text(e, b, (int)fixp_format_i64(v, b));
}

static void js_u64(emit *e, uint64_t v)
{
    char b[24];
    js_text(e, b, (int)fixp_format_u64(v, b));
}

/* Shortest %g text that reads back as the same double (what Python's repr
 * does), so 0.1 prints as 0.1 and not 0.10000000000000001. */
size_t emit_format_double(double v, char *buf, size_t size)
{
    int n = 0;
    for (int prec = 1; prec <= 17; prec++) {
        n = snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return n > 0 ? (size_t)n : 0;
}

static void js_dbl(emit *e, double v)
{
    if (!isfinite(v)) {
        js_text(e, "null", 4); /* JSON has no NaN or Infinity */
        return;
    }
    char b[40];
    js_text(e, b, (int)emit_format_double(v, b, sizeof b));
}

static void js_fix(emit *e, int64_t v)
{
    char b[FIXP_STRLEN];
    js_text(e, b, (int)fixp_format(v, b));
}

static void js_bool(emit *e, int v)
{
    if (v)
        js_text(e, "true", 4);
    else
        js_text(e, "false", 5);
}

static void js_nil(emit *e) { js_text(e, "null", 4); }

void emit_json_init(emit *e, proto_buf *out)
{
    emit_reset(e, out);
    e->map = js_map;
    e->array = js_array;
    e->end = js_end;
    e->key = js_key;
    e->str = js_str;
    e->i64 = js_i64;
    e->u64 = js_u64;
    e->dbl = js_dbl;
    e->fix = js_fix;
    e->boolean = js_bool;
    e->nil = js_nil;
}
