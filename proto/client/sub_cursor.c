/* A subscription's cursor (PROTOCOL.md §11): symbol -> the position of its
 * next trade to read, and its text form. The text is the one GET
 * /subscribe uses as an SSE event id ("sym:pos,sym:pos", symbols with '%',
 * ',', ':' and bytes below 0x21 percent-encoded), so one saved cursor
 * resumes over either protocol. A "*" subscription may cover every symbol
 * of a store, so the map is a hash, not a list searched per push. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static slotd__cpos *find(const slotd__cursor *c, const char *sym, size_t len)
{
    if (c->cap == 0)
        return NULL;
    for (size_t i = hash(sym, len) & (c->cap - 1);; i = (i + 1) & (c->cap - 1)) {
        slotd__cpos *e = &c->e[i];
        if (e->len == 0 || (e->len == len && memcmp(e->sym, sym, len) == 0))
            return e; /* the entry, or the free slot it would take */
    }
}

static int grow(slotd__cursor *c)
{
    size_t cap = c->cap ? c->cap * 2 : 64;
    slotd__cursor n = {calloc(cap, sizeof *n.e), 0, cap};
    if (!n.e)
        return SLOTD_ENOMEM;
    for (size_t i = 0; i < c->cap; i++)
        if (c->e[i].len)
            *find(&n, c->e[i].sym, c->e[i].len) = c->e[i];
    n.n = c->n;
    free(c->e);
    *c = n;
    return 0;
}

int slotd__cursor_set(slotd__cursor *c, const char *sym, size_t len, uint64_t pos)
{
    if (len == 0 || len > SLOTD__SYM_MAX)
        return SLOTD_EINVAL;
    if ((c->n + 1) * 4 > c->cap * 3 && grow(c) != 0) /* load at most 3/4: probes end */
        return SLOTD_ENOMEM;
    slotd__cpos *e = find(c, sym, len);
    if (e->len == 0) {
        memcpy(e->sym, sym, len);
        e->sym[len] = '\0';
        e->len = (uint8_t)len;
        c->n++;
    }
    e->pos = pos;
    return 0;
}

uint64_t slotd__cursor_get(const slotd__cursor *c, const char *sym, size_t len, int *found)
{
    const slotd__cpos *e = find(c, sym, len);
    *found = e && e->len != 0;
    return *found ? e->pos : 0;
}

void slotd__cursor_clear(slotd__cursor *c)
{
    if (c->e)
        memset(c->e, 0, c->cap * sizeof *c->e);
    c->n = 0;
}

void slotd__cursor_free(slotd__cursor *c)
{
    free(c->e);
    memset(c, 0, sizeof *c);
}

static int escaped(unsigned char ch)
{
    return ch < 0x21 || ch == '%' || ch == ',' || ch == ':';
}

int64_t slotd__cursor_text(const slotd__cursor *c, char *buf, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
#define PUT(ch)                                                                                    \
    do {                                                                                           \
        if (o + 1 < cap)                                                                           \
            buf[o] = (char)(ch);                                                                   \
        o++;                                                                                       \
    } while (0)
    int first = 1;
    for (size_t i = 0; i < c->cap; i++) {
        const slotd__cpos *e = &c->e[i];
        if (!e->len)
            continue;
        if (!first)
            PUT(',');
        first = 0;
        for (size_t k = 0; k < e->len; k++) {
            unsigned char ch = (unsigned char)e->sym[k];
            if (escaped(ch)) {
                PUT('%');
                PUT(hex[ch >> 4]);
                PUT(hex[ch & 15]);
            } else {
                PUT(ch);
            }
        }
        char num[24];
        int k = snprintf(num, sizeof num, ":%llu", (unsigned long long)e->pos);
        for (int j = 0; j < k; j++)
            PUT(num[j]);
    }
#undef PUT
    if (cap)
        buf[o < cap ? o : cap - 1] = '\0';
    return (int64_t)o;
}

static int unhex(char ch)
{
    return ch >= '0' && ch <= '9'   ? ch - '0'
           : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
           : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                    : -1;
}

static int perr(char *err, size_t errlen, size_t at, const char *what)
{
    if (errlen)
        snprintf(err, errlen, "cursor text, byte %zu: %s", at, what);
    return SLOTD_EINVAL;
}

int slotd__cursor_parse(slotd__cursor *c, const char *text, char *err, size_t errlen)
{
    slotd__cursor_clear(c);
    const char *p = text;
    while (*p) {
        char sym[SLOTD__SYM_MAX + 1];
        size_t len = 0;
        for (; *p && *p != ':'; p++) {
            int ch = (unsigned char)*p;
            if (*p == ',')
                return perr(err, errlen, (size_t)(p - text), "',' before the symbol's ':pos'");
            if (*p == '%') {
                int h = unhex(p[1]), l = h < 0 ? -1 : unhex(p[2]);
                if (l < 0)
                    return perr(err, errlen, (size_t)(p - text),
                                "'%' not followed by 2 hex digits");
                ch = h << 4 | l;
                p += 2;
            }
            if (len == SLOTD__SYM_MAX)
                return perr(err, errlen, (size_t)(p - text), "a symbol longer than 31 bytes");
            sym[len++] = (char)ch;
        }
        if (len == 0 || *p != ':')
            return perr(err, errlen, (size_t)(p - text), "expected 'sym:pos'");
        p++;
        if (*p < '0' || *p > '9')
            return perr(err, errlen, (size_t)(p - text), "the position is not a number");
        uint64_t pos = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (pos > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
                return perr(err, errlen, (size_t)(p - text), "the position is too large");
            pos = pos * 10 + (uint64_t)(*p - '0');
        }
        if (*p && *p != ',')
            return perr(err, errlen, (size_t)(p - text), "expected ',' after a position");
        int found;
        slotd__cursor_get(c, sym, len, &found);
        if (found)
            return perr(err, errlen, (size_t)(p - text), "a symbol twice");
        if (slotd__cursor_set(c, sym, len, pos) != 0)
            return SLOTD_ENOMEM;
        if (*p == ',' && *++p == '\0')
            return perr(err, errlen, (size_t)(p - text), "a trailing ','");
    }
    return 0;
}
