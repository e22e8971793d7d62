/* slotctl_json — flat JSON objects as text pairs (slotctl.h). Numbers stay
 * text, so ids past 2^63 and exact decimals are never rounded. */
#include <string.h>

#include "slotctl.h"

static void skip_ws(const char **p)
{
    while (**p == ' ' || **p == '\t' || **p == '\r' || **p == '\n')
        (*p)++;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            v |= (unsigned)((c | 0x20) - 'a' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Append c to the buffer; -1 when full (one byte stays for the NUL). */
static int put(jflat *j, size_t *len, char c)
{
    if (*len + 1 >= sizeof j->buf)
        return -1;
    j->buf[(*len)++] = c;
    return 0;
}

static int put_utf8(jflat *j, size_t *len, unsigned cp)
{
    if (cp < 0x80)
        return put(j, len, (char)cp);
    if (cp < 0x800)
        return put(j, len, (char)(0xc0 | cp >> 6)) | put(j, len, (char)(0x80 | (cp & 0x3f)));
    if (cp < 0x10000)
        return put(j, len, (char)(0xe0 | cp >> 12)) | put(j, len, (char)(0x80 | (cp >> 6 & 0x3f))) |
               put(j, len, (char)(0x80 | (cp & 0x3f)));
    return put(j, len, (char)(0xf0 | cp >> 18)) | put(j, len, (char)(0x80 | (cp >> 12 & 0x3f))) |
           put(j, len, (char)(0x80 | (cp >> 6 & 0x3f))) | put(j, len, (char)(0x80 | (cp & 0x3f)));
}

/* A string at *p (on its opening quote), unescaped into the buffer. */
static char *string(const char **p, jflat *j, size_t *len)
{
    char *start = j->buf + *len;
    const char *s = *p + 1;
    for (;;) {
        char c = *s++;
        if (c == '"')
            break;
        if (c == 0 || (unsigned char)c < 0x20)
            return NULL;
        if (c != '\\') {
            if (put(j, len, c) < 0)
                return NULL;
            continue;
        }
        unsigned cp, lo;
        char e = *s++;
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            if (put(j, len, "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"]) < 0)
                return NULL;
            continue;
        }
        if (e != 'u' || hex4(s, &cp) < 0)
            return NULL;
        s += 4;
        if (cp >= 0xd800 && cp < 0xdc00) { /* a surrogate pair */
            if (s[0] != '\\' || s[1] != 'u' || hex4(s + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
                return NULL;
            s += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        if (put_utf8(j, len, cp) < 0)
            return NULL;
    }
    if (put(j, len, 0) < 0)
        return NULL;
    *p = s;
    return start;
}

/* A number or literal, copied as written. */
static char *scalar(const char **p, jflat *j, size_t *len)
{
    char *start = j->buf + *len;
    const char *s = *p;
    while (*s && strchr("+-.0123456789eEtruefalsn", *s))
        if (put(j, len, *s++) < 0)
            return NULL;
    if (s == *p || put(j, len, 0) < 0)
        return NULL;
    *p = s;
    return start;
}

int jflat_parse(const char **p, jflat *j)
{
    size_t len = 0;
    j->n = 0;
    skip_ws(p);
    if (**p != '{')
        return -1;
    (*p)++;
    skip_ws(p);
    if (**p == '}') {
        (*p)++;
        return 0;
    }
    for (;;) {
        if (j->n == JFLAT_MAX || **p != '"' || !(j->key[j->n] = string(p, j, &len)))
            return -1;
        skip_ws(p);
        if (**p != ':')
            return -1;
        (*p)++;
        skip_ws(p);
        j->is_str[j->n] = **p == '"';
        j->val[j->n] = j->is_str[j->n] ? string(p, j, &len) : scalar(p, j, &len);
        if (!j->val[j->n])
            return -1;
        j->n++;
        skip_ws(p);
        if (**p == '}') {
            (*p)++;
            return 0;
        }
        if (**p != ',')
            return -1;
        (*p)++;
        skip_ws(p);
    }
}

const char *jflat_get(const jflat *j, const char *key)
{
    for (int i = 0; i < j->n; i++)
        if (strcmp(j->key[i], key) == 0)
            return j->val[i];
    return NULL;
}
