/* token — loading and comparing the shared secret (see token.h). */
#include "token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int token_check(const char *s, size_t len)
{
    if (len == 0)
        return TOKEN_EEMPTY;
    if (len > TOKEN_MAX)
        return TOKEN_ELONG;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return TOKEN_ECHAR;
    return TOKEN_OK;
}

/* The file's bytes up to TOKEN_MAX + 2 (a token and its "\r\n") plus one,
 * so that a longer file is seen to be longer, never cut to fit. */
static int read_token_file(const char *path, char *buf, size_t cap, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return TOKEN_EFILE;
    *len = fread(buf, 1, cap, f);
    int bad = ferror(f);
    fclose(f);
    return bad ? TOKEN_EFILE : TOKEN_OK;
}

int token_load(const char *arg, int is_file, char **out)
{
    char buf[TOKEN_MAX + 3];
    const char *s = arg;
    size_t len = strlen(arg);
    int rc;
    *out = NULL;
    if (is_file) {
        if ((rc = read_token_file(arg, buf, sizeof buf, &len)) != TOKEN_OK)
            return rc;
        /* One trailing newline is how editors and `echo` end a file. */
        if (len > 0 && buf[len - 1] == '\n')
            len -= len > 1 && buf[len - 2] == '\r' ? 2 : 1;
        s = buf;
    }
    if ((rc = token_check(s, len)) != TOKEN_OK)
        return rc;
    if (!(*out = malloc(len + 1)))
        return TOKEN_ENOMEM;
    memcpy(*out, s, len);
    (*out)[len] = '\0';
    return TOKEN_OK;
}

int token_equal(const char *expected, const char *got, size_t len)
{
    size_t n = strlen(expected);
    unsigned char d = (unsigned char)(n != len);
    /* Every byte of `expected` is looked at whatever `got` holds. */
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(expected[i] ^ (i < len ? got[i] : 0));
    return d == 0;
}
