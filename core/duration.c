/* duration — see duration.h for the grammar. Exact integer arithmetic
 * (128-bit): "0.1s" is 100000000 ns, not a float's neighbour of it. */
#include "duration.h"

#include <assert.h>
#include <string.h>

static const struct {
    const char *name;
    int64_t ns;
} units[] = {
    /* Largest first: duration_format takes the first that divides. */
    {"d", 86400 * DURATION_NS_PER_SEC}, {"h", 3600 * DURATION_NS_PER_SEC},
    {"m", 60 * DURATION_NS_PER_SEC},    {"s", DURATION_NS_PER_SEC},
    {"ms", 1000000},                    {"us", 1000},
    {"\xc2\xb5s", 1000},                {"ns", 1},
};
#define NUNITS (sizeof units / sizeof units[0])

/* The unit named by s[0..len); a bare number is seconds. 0 if none. */
static int64_t unit_ns(const char *s, size_t len)
{
    if (len == 0)
        return DURATION_NS_PER_SEC;
    for (size_t i = 0; i < NUNITS; i++)
        if (strlen(units[i].name) == len && memcmp(units[i].name, s, len) == 0)
            return units[i].ns;
    return 0;
}

/* Digits at s[*p..len) into *v; how many. Past INT64_MAX the value stays
 * above it (only a range error can follow) instead of wrapping. */
static size_t digits(const char *s, size_t len, size_t *p, unsigned __int128 *v)
{
    size_t n = 0;
    for (; *p < len && s[*p] >= '0' && s[*p] <= '9'; (*p)++, n++)
        if (*v <= (unsigned __int128)INT64_MAX)
            *v = *v * 10 + (unsigned)(s[*p] - '0');
    return n;
}

int duration_parse(const char *s, size_t len, int64_t *ns)
{
    unsigned __int128 whole = 0, frac = 0, scale = 1;
    size_t p = 0;
    if (digits(s, len, &p, &whole) == 0)
        return DURATION_ESYNTAX;
    if (p < len && s[p] == '.') {
        size_t f0 = ++p;
        size_t nf = digits(s, len, &p, &frac);
        if (nf == 0 || nf > 18)
            return DURATION_ESYNTAX;
        for (size_t i = f0; i < p; i++)
            scale *= 10;
    }
    int64_t unit = unit_ns(s + p, len - p);
    if (!unit)
        return DURATION_ESYNTAX;
    if (whole > (unsigned __int128)INT64_MAX)
        return DURATION_ERANGE;
    unsigned __int128 fns = frac * (unsigned __int128)unit; /* < 1e18 * 8.64e13: fits */
    if (fns % scale)
        return DURATION_EPRECISION;
    unsigned __int128 v = whole * (unsigned __int128)unit + fns / scale;
    if (v > (unsigned __int128)INT64_MAX)
        return DURATION_ERANGE;
    *ns = (int64_t)v;
    return DURATION_OK;
}

void duration_format(int64_t ns, char *buf, size_t cap)
{
    assert(ns >= 0 && cap > 0);
    size_t i = 0;
    while (ns && i < NUNITS - 1 && ns % units[i].ns)
        i++;
    int64_t v = ns ? ns / units[i].ns : 0;
    /* digits, then the unit ("0" has none) */
    char tmp[24];
    size_t n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) && n < sizeof tmp);
    size_t o = 0;
    while (n && o + 1 < cap)
        buf[o++] = tmp[--n];
    for (const char *u = ns ? units[i].name : ""; *u && o + 1 < cap; u++)
        buf[o++] = *u;
    buf[o] = '\0';
}
