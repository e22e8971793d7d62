/* auth — the --auth-file table and its checks (see auth.h). */
#include "auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "proto.h"

#define AUTH_SALT_MAX 128
#define AUTH_LINE_MAX 1024

typedef struct auth_entry {
    char name[PROTO_NAME_MAX + 1];
    size_t nlen;
    char salt[AUTH_SALT_MAX + 1];
    size_t slen;
    unsigned char digest[32];
    unsigned perms;
} auth_entry;

struct auth {
    auth_entry *e;
    size_t n, cap;
};

const char *auth_strerror(int rc)
{
    switch (rc) {
    case AUTH_OK: return "ok";
    case AUTH_E_NOMEM: return "out of memory";
    case AUTH_E_FILE: return "the auth file cannot be read";
    case AUTH_E_SYNTAX: return "a line of the auth file is not name:salt:sha256hex:perms";
    case AUTH_E_DENIED: return "unknown client name or wrong secret";
    }
    return "unknown auth error";
}

static int hexval(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0'
           : (ch | 0x20) >= 'a' && (ch | 0x20) <= 'f' ? (ch | 0x20) - 'a' + 10
                                                      : -1;
}

static int parse_perms(const char *s, size_t len, unsigned *out)
{
    static const struct {
        const char *word;
        unsigned bit;
    } words[] = {{"ingest", AUTH_INGEST}, {"query", AUTH_QUERY}, {"subscribe", AUTH_SUBSCRIBE}};
    *out = 0;
    while (len) {
        size_t w = 0;
        while (w < len && s[w] != ',')
            w++;
        size_t i = 0;
        for (; i < sizeof words / sizeof words[0]; i++)
            if (strlen(words[i].word) == w && memcmp(words[i].word, s, w) == 0)
                break;
        if (i == sizeof words / sizeof words[0])
            return -1;
        *out |= words[i].bit;
        if (w == len)
            return 0;
        s += w + 1; /* past the comma: a word must follow */
        len -= w + 1;
        if (len == 0)
            return -1;
    }
    return 0;
}

/* One line (no newline) into e; -1 with why in msg. */
static int parse_line(char *line, auth_entry *e, char *why, size_t cap)
{
    char *f[4];
    f[0] = line;
    for (int i = 1; i < 4; i++) {
        char *colon = strchr(f[i - 1], ':');
        if (!colon) {
            snprintf(why, cap, "expected 4 ':'-separated fields");
            return -1;
        }
        *colon = 0;
        f[i] = colon + 1;
    }
    e->nlen = strlen(f[0]);
    e->slen = strlen(f[1]);
    /* No ':' in a name, so the reserved "kafka:" and "gw:" cannot be listed. */
    if (e->nlen == 0 || e->nlen > PROTO_NAME_MAX) {
        snprintf(why, cap, "the name must be 1-%d bytes", PROTO_NAME_MAX);
        return -1;
    }
    if (e->slen == 0 || e->slen > AUTH_SALT_MAX) {
        snprintf(why, cap, "the salt must be 1-%d bytes", AUTH_SALT_MAX);
        return -1;
    }
    if (strlen(f[2]) != 64) {
        snprintf(why, cap, "the hash must be 64 hex digits (SHA-256)");
        return -1;
    }
    for (int i = 0; i < 32; i++) {
        int hi = hexval(f[2][2 * i]), lo = hexval(f[2][2 * i + 1]);
        if (hi < 0 || lo < 0) {
            snprintf(why, cap, "the hash must be 64 hex digits (SHA-256)");
            return -1;
        }
        e->digest[i] = (unsigned char)(hi << 4 | lo);
    }
    if (parse_perms(f[3], strlen(f[3]), &e->perms) != 0) {
        snprintf(why, cap, "perms must be a comma-separated list of ingest, query, subscribe");
        return -1;
    }
    memcpy(e->name, f[0], e->nlen + 1);
    memcpy(e->salt, f[1], e->slen + 1);
    return 0;
}

static int add(auth *a, const auth_entry *e)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 16;
        auth_entry *p = realloc(a->e, cap * sizeof *p);
        if (!p)
            return AUTH_E_NOMEM;
        a->e = p;
        a->cap = cap;
    }
    a->e[a->n++] = *e;
    return AUTH_OK;
}

int auth_load(auth **out, const char *path, char *msg, size_t cap)
{
    int rc = AUTH_OK;
    unsigned lineno = 0;
    char line[AUTH_LINE_MAX + 2], why[160];
    *out = NULL;
    auth *a = calloc(1, sizeof *a);
    FILE *f = fopen(path, "r");
    if (!a || !f) {
        rc = a ? AUTH_E_FILE : AUTH_E_NOMEM;
        snprintf(msg, cap, "--auth-file '%s': %s", path, a ? strerror(errno) : "out of memory");
        goto done;
    }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len > AUTH_LINE_MAX) {
            rc = AUTH_E_SYNTAX;
            snprintf(msg, cap, "--auth-file '%s' line %u: longer than %d bytes", path, lineno,
                     AUTH_LINE_MAX);
            goto done;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (len == 0 || line[0] == '#')
            continue;
        auth_entry e;
        if (parse_line(line, &e, why, sizeof why) != 0) {
            rc = AUTH_E_SYNTAX; /* the line is not quoted: it holds a hash */
            snprintf(msg, cap, "--auth-file '%s' line %u: %s", path, lineno, why);
            goto done;
        }
        for (size_t i = 0; i < a->n; i++)
            if (a->e[i].nlen == e.nlen && memcmp(a->e[i].name, e.name, e.nlen) == 0) {
                rc = AUTH_E_SYNTAX;
                snprintf(msg, cap, "--auth-file '%s' line %u: the name is listed twice", path,
                         lineno);
                goto done;
            }
        if ((rc = add(a, &e)) != AUTH_OK) {
            snprintf(msg, cap, "--auth-file '%s': out of memory", path);
            goto done;
        }
    }
    if (ferror(f)) {
        rc = AUTH_E_FILE;
        snprintf(msg, cap, "--auth-file '%s': read error", path);
    }
done:
    if (f)
        fclose(f);
    if (rc != AUTH_OK) {
        auth_free(a);
        return rc;
    }
    *out = a;
    return AUTH_OK;
}

void auth_free(auth *a)
{
    if (!a)
        return;
    OPENSSL_cleanse(a->e, a->n * sizeof *a->e);
    free(a->e);
    free(a);
}

size_t auth_count(const auth *a) { return a ? a->n : 0; }

int auth_check(const auth *a, const char *name, size_t nlen, const char *secret, size_t slen,
               unsigned *perms)
{
    static const auth_entry none = {.salt = "-", .slen = 1};
    const auth_entry *e = &none;
    for (size_t i = 0; i < a->n; i++)
        if (a->e[i].nlen == nlen && memcmp(a->e[i].name, name, nlen) == 0)
            e = &a->e[i];
    /* An unknown name is hashed too: the time does not tell names apart. */
    unsigned char md[32];
    unsigned mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, e->salt, e->slen) == 1 &&
             EVP_DigestUpdate(ctx, secret, slen) == 1 && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return AUTH_E_NOMEM;
    int same = CRYPTO_memcmp(md, e->digest, sizeof md) == 0;
    OPENSSL_cleanse(md, sizeof md);
    if (!same || e == &none)
        return AUTH_E_DENIED;
    *perms = e->perms;
    return AUTH_OK;
}
