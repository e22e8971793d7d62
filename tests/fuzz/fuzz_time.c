/* fuzz_time — query_parse_time, query_parse_interval and query_set_param
 * on arbitrary text, each against an independent reference.
 *
 *  - time: the input is accepted exactly when it is an int64 in decimal, or
 *    matches the RFC 3339 subset (a POSIX regex here) with a real calendar
 *    date (glibc timegm/gmtime_r here, not the parser's days_from_civil)
 *    and lands in the int64 ns range. An accepted RFC 3339 time, turned back
 *    into civil time by gmtime_r at the input's offset, gives the input's
 *    own fields; formatted back as "YYYY-MM-DDThh:mm:ss.nnnnnnnnnZ" it
 *    parses to the same ns.
 *  - interval: accepted exactly when it is the duration grammar (digits,
 *    an optional fraction, an optional unit: none = seconds) and the exact
 *    value is a positive whole int64 ns.
 *  - query_set_param: the input as the value of every parameter name for
 *    every op: accepted exactly when the parameter applies to the op and
 *    the value is valid (the same references; limit/top clamped); a refusal
 *    is BAD_QUERY with a NUL-terminated message and leaves the request as
 *    it was. The input as a parameter name is refused unless it is one.
 */
#define _GNU_SOURCE /* timegm */
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "query.h"

#define CHECK(c)                                                                   \
    do {                                                                           \
        if (!(c)) {                                                                \
            fprintf(stderr, "fuzz_time: check failed at line %d: %s\n", __LINE__, #c); \
            abort();                                                               \
        }                                                                          \
    } while (0)

static regex_t rfc3339;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (regcomp(&rfc3339,
                "^([0-9]{4})-([0-9]{2})-([0-9]{2})"
                "([Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\\.[0-9]{1,9})?([Zz]|[-+]([0-9]{2}):([0-9]{2})))?$",
                REG_EXTENDED) != 0)
        abort();
    return 0;
}

/* Unsigned decimal of 1..20 digits that fits uint64 (the documented form
 * of limits, cursors and intervals). */
static int ref_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return -1;
    unsigned __int128 v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > UINT64_MAX)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static int num(const char *s, const regmatch_t *m)
{
    int v = 0;
    for (regoff_t i = m->rm_so; i < m->rm_eo; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

/* The reference time parser: 0 and *ns, or -1. */
static int ref_time(const char *s, size_t len, int64_t *ns)
{
    int neg = len > 0 && s[0] == '-';
    uint64_t u;
    if (ref_u64(s + neg, len - (size_t)neg, &u) == 0) {
        if (neg ? u <= (uint64_t)INT64_MAX + 1 : u <= (uint64_t)INT64_MAX) {
            *ns = neg ? (int64_t)(0 - u) : (int64_t)u;
            return 0;
        }
        return -1;
    }
    char buf[64];
    regmatch_t m[12];
    if (len >= sizeof buf || memchr(s, 0, len))
        return -1;
    memcpy(buf, s, len);
    buf[len] = 0;
    if (regexec(&rfc3339, buf, 12, m, 0) != 0)
        return -1;
    struct tm t = {0};
    t.tm_year = num(buf, &m[1]) - 1900;
    t.tm_mon = num(buf, &m[2]) - 1;
    t.tm_mday = num(buf, &m[3]);
    long off = 0, frac = 0;
    if (m[4].rm_so >= 0) {
        t.tm_hour = num(buf, &m[5]);
        t.tm_min = num(buf, &m[6]);
        t.tm_sec = num(buf, &m[7]);
        if (t.tm_hour > 23 || t.tm_min > 59 || t.tm_sec > 59)
            return -1;
        if (m[8].rm_so >= 0) {
            int nd = 0;
            for (regoff_t i = m[8].rm_so + 1; i < m[8].rm_eo; i++, nd++)
                frac = frac * 10 + (buf[i] - '0');
            for (; nd < 9; nd++)
                frac *= 10;
        }
        if (m[10].rm_so >= 0) {
            int oh = num(buf, &m[10]), om = num(buf, &m[11]);
            if (oh > 23 || om > 59)
                return -1;
            off = (oh * 60L + om) * 60 * (buf[m[9].rm_so] == '-' ? -1 : 1);
        }
    }
    if (t.tm_mon > 11 || t.tm_mday < 1)
        return -1;
    struct tm want = t, back;
    time_t secs = timegm(&t);
    if (!gmtime_r(&secs, &back) || back.tm_year != want.tm_year || back.tm_mon != want.tm_mon ||
        back.tm_mday != want.tm_mday)
        return -1; /* 2025-02-29 and the like: timegm normalised it */
    __int128 v = ((__int128)secs - off) * 1000000000 + frac;
    if (v > INT64_MAX || v < INT64_MIN)
        return -1;
    *ns = (int64_t)v;
    return 0;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && a < 0);
}

static void check_time(const char *s, size_t len)
{
    int64_t got = 0x5a5a5a5a, want = 0;
    int rc = query_parse_time(s, len, &got);
    int ref = ref_time(s, len, &want);
    if (rc != ref || (rc == 0 && got != want)) {
        fprintf(stderr, "query_parse_time(\"%.*s\") = %d (%lld), reference %d (%lld)\n", (int)len,
                s, rc, (long long)got, ref, (long long)want);
        abort();
    }
    if (rc != 0)
        return;
    /* Format back as UTC with nanoseconds; it must parse to the same. */
    time_t secs = (time_t)floor_div(got, 1000000000);
    long nsec = (long)(got % 1000000000);
    if (nsec < 0)
        nsec += 1000000000;
    struct tm t;
    char text[64];
    CHECK(gmtime_r(&secs, &t) != NULL);
    int n = snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", t.tm_year + 1900,
                     t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, nsec);
    CHECK(n > 0 && (size_t)n < sizeof text);
    int64_t again = 0;
    if (t.tm_year + 1900 >= 0 && t.tm_year + 1900 <= 9999) {
        if (query_parse_time(text, (size_t)n, &again) != 0 || again != got) {
            fprintf(stderr, "'%.*s' -> %lld -> '%s' -> %lld\n", (int)len, s, (long long)got, text,
                    (long long)again);
            abort();
        }
    }
}

/* The duration grammar (core/duration.h): digits, an optional '.' and 1-18
 * digits, an optional unit (none = seconds); exact, positive, int64 ns. */
static int ref_interval(const char *s, size_t len, int64_t *ns)
{
    static const struct {
        const char *unit;
        int64_t ns;
    } units[] = {{"", 1000000000LL}, {"ns", 1},          {"us", 1000},          {"\xc2\xb5s", 1000},
                 {"ms", 1000000},    {"s", 1000000000LL}, {"m", 60000000000LL}, {"h", 3600000000000LL},
                 {"d", 86400000000000LL}};
    size_t n = 0, f = 0, nf = 0;
    while (n < len && s[n] >= '0' && s[n] <= '9')
        n++;
    uint64_t u;
    size_t z = 0; /* leading zeros */
    while (z + 1 < n && s[z] == '0')
        z++;
    if (n == 0 || n - z > 19 || ref_u64(s + z, n - z, &u) < 0 || u > INT64_MAX)
        return -1; /* 20+ significant digits: out of range whatever the unit */
    unsigned __int128 frac = 0, scale = 1;
    if (n < len && s[n] == '.') {
        for (f = n + 1; f + nf < len && s[f + nf] >= '0' && s[f + nf] <= '9'; nf++) {
            frac = frac * 10 + (unsigned)(s[f + nf] - '0');
            scale *= 10;
        }
        if (nf == 0 || nf > 18)
            return -1;
        n = f + nf;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strlen(units[i].unit) == len - n && memcmp(units[i].unit, s + n, len - n) == 0) {
            unsigned __int128 fns = frac * (uint64_t)units[i].ns;
            if (fns % scale)
                return -1;
            unsigned __int128 v = (unsigned __int128)u * (uint64_t)units[i].ns + fns / scale;
            if (v == 0 || v > INT64_MAX)
                return -1;
            *ns = (int64_t)v;
            return 0;
        }
    return -1;
}

static void check_interval(const char *s, size_t len)
{
    int64_t got = 0x5a5a, want = 0;
    int rc = query_parse_interval(s, len, &got);
    int ref = ref_interval(s, len, &want);
    if (rc != ref || (rc == 0 && got != want)) {
        fprintf(stderr, "query_parse_interval(\"%.*s\") = %d (%lld), reference %d (%lld)\n",
                (int)len, s, rc, (long long)got, ref, (long long)want);
        abort();
    }
}

static const char *const names[] = {"from", "to", "limit", "cursor", "interval", "top", "by"};

static int applies(query_op op, const char *name)
{
    switch (op) {
    case QUERY_TRADES:
        return !strcmp(name, "from") || !strcmp(name, "to") || !strcmp(name, "limit") ||
               !strcmp(name, "cursor");
    case QUERY_BARS:
        return !strcmp(name, "from") || !strcmp(name, "to") || !strcmp(name, "interval");
    case QUERY_TOP:
        return !strcmp(name, "top") || !strcmp(name, "by");
    default:
        return 0;
    }
}

/* What q must look like after a good value, or -1 for a refusal. */
static int ref_param(query_req *q, const char *name, const char *v, size_t len)
{
    uint64_t u;
    if (!strcmp(name, "from") || !strcmp(name, "to")) { /* a given bound is marked given */
        int from = name[0] == 'f';
        if (ref_time(v, len, from ? &q->from : &q->to) < 0)
            return -1;
        *(from ? &q->has_from : &q->has_to) = 1;
        return 0;
    }
    if (!strcmp(name, "interval"))
        return ref_interval(v, len, &q->interval);
    if (!strcmp(name, "cursor"))
        return ref_u64(v, len, &q->cursor);
    if (!strcmp(name, "limit") || !strcmp(name, "top")) {
        if (ref_u64(v, len, &u) < 0 || u == 0)
            return -1;
        if (name[0] == 'l')
            q->limit = u > STORE_MAX_TRADES ? STORE_MAX_TRADES : (uint32_t)u;
        else
            q->top = u > STORE_MAX_TOP ? STORE_MAX_TOP : (uint32_t)u;
        return 0;
    }
    static const char *const by[] = {"count", "volume", "notional"};
    for (int i = 0; i < 3; i++)
        if (strlen(by[i]) == len && !memcmp(by[i], v, len)) {
            q->by = (store_by)i;
            return 0;
        }
    return -1;
}

static void check_err(const proto_error *e)
{
    CHECK(e->code == PROTO_E_BAD_QUERY);
    CHECK(memchr(e->msg, 0, sizeof e->msg) != NULL);
}

static void check_params(const char *s, size_t len)
{
    for (int op = QUERY_STATS; op <= QUERY_SCHEMA; op++) {
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            query_req q, before, want;
            proto_error e;
            memset(&e, 0x5a, sizeof e);
            query_req_init(&q, (query_op)op);
            before = want = q;
            int rc = query_set_param(&q, names[i], strlen(names[i]), s, len, &e);
            int ref = applies((query_op)op, names[i]) ? ref_param(&want, names[i], s, len) : -1;
            if (rc != ref) {
                fprintf(stderr, "query_set_param(op %d, %s, \"%.*s\") = %d, reference %d\n", op,
                        names[i], (int)len, s, rc, ref);
                abort();
            }
            if (rc == 0) {
                CHECK(memcmp(&q, &want, sizeof q) == 0);
            } else {
                check_err(&e);
                CHECK(memcmp(&q, &before, sizeof q) == 0);
            }
        }
        /* The input as a name. */
        query_req q;
        proto_error e;
        query_req_init(&q, (query_op)op);
        int known = 0;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            known |= strlen(names[i]) == len && !memcmp(names[i], s, len);
        if (query_set_param(&q, s, len, "1", 1, &e) != 0)
            check_err(&e);
        else
            CHECK(known);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    check_time(s, size);
    check_interval(s, size);
    check_params(s, size);
    return 0;
}
