/* test_auth — the --auth-file table: parsing, checks, perms, refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "auth.h"

static char path[] = "/tmp/slotd-auth-XXXXXX";

/* "name:salt:hex(sha256(salt secret)):perms\n" */
static void cred(FILE *f, const char *name, const char *salt, const char *secret, const char *perms)
{
    char buf[512];
    unsigned char md[32];
    snprintf(buf, sizeof buf, "%s%s", salt, secret);
    SHA256((const unsigned char *)buf, strlen(buf), md);
    fprintf(f, "%s:%s:", name, salt);
    for (int i = 0; i < 32; i++)
        fprintf(f, "%02x", md[i]);
    fprintf(f, ":%s\n", perms);
}

static int load_text(auth **a, const char *text, char *msg, size_t cap)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return auth_load(a, path, msg, cap);
}

static int setup(void **st)
{
    (void)st;
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    unlink(path);
    return 0;
}

static void test_check(void **st)
{
    (void)st;
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("# comment\n\n", f);
    cred(f, "feed-1", "a1b2", "s3cret", "ingest,query");
    cred(f, "reader", "zz", "r", "query");
    cred(f, "none", "x", "n", "");
    fclose(f);
    auth *a;
    char msg[256];
    assert_int_equal(auth_load(&a, path, msg, sizeof msg), AUTH_OK);
    assert_int_equal(auth_count(a), 3);
    unsigned perms = 99;
    assert_int_equal(auth_check(a, "feed-1", 6, "s3cret", 6, &perms), AUTH_OK);
    assert_int_equal(perms, AUTH_INGEST | AUTH_QUERY);
    assert_int_equal(auth_check(a, "reader", 6, "r", 1, &perms), AUTH_OK);
    assert_int_equal(perms, AUTH_QUERY);
    assert_int_equal(auth_check(a, "none", 4, "n", 1, &perms), AUTH_OK);
    assert_int_equal(perms, 0);
    perms = 99;
    assert_int_equal(auth_check(a, "feed-1", 6, "s3cre", 5, &perms), AUTH_E_DENIED);
    assert_int_equal(auth_check(a, "feed-1", 6, "s3cretX", 7, &perms), AUTH_E_DENIED);
    assert_int_equal(auth_check(a, "reader", 6, "s3cret", 6, &perms), AUTH_E_DENIED); /* another's */
    assert_int_equal(auth_check(a, "feed-", 5, "s3cret", 6, &perms), AUTH_E_DENIED);  /* a prefix */
    assert_int_equal(auth_check(a, "nobody", 6, "s3cret", 6, &perms), AUTH_E_DENIED);
    assert_int_equal(auth_check(a, "", 0, "", 0, &perms), AUTH_E_DENIED);
    assert_int_equal(perms, 99); /* untouched when refused */
    auth_free(a);
}

static void test_syntax(void **st)
{
    (void)st;
    static const char hash[] = "0123456789abcdef0123456789abcdef0123456789ABCDEF0123456789abcdef";
    char good[256], msg[256];
    auth *a = (auth *)1;
    snprintf(good, sizeof good, "n:salt:%s:ingest,subscribe\n", hash);
    assert_int_equal(load_text(&a, good, msg, sizeof msg), AUTH_OK);
    auth_free(a);
    const struct {
        const char *text, *why;
    } bad[] = {
        {"n:salt:abc:ingest\n", "64 hex"},
        {"n:salt\n", "4 ':'-separated"},
        {"n:salt:%s:write\n", "perms"},
        {"n:salt:%s:ingest,\n", "perms"},
        {":salt:%s:ingest\n", "name"},
        {"n::%s:ingest\n", "salt"},
        {"n:s:%s:query\nn:t:%s:query\n", "listed twice"},
        {"n:salt:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg:query\n", "64 hex"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, bad[i].text, hash, hash);
        a = (auth *)1;
        assert_int_equal(load_text(&a, text, msg, sizeof msg), AUTH_E_SYNTAX);
        assert_null(a);
        assert_non_null(strstr(msg, "line "));
        if (!strstr(msg, bad[i].why))
            fail_msg("case %zu: '%s' does not say '%s'", i, msg, bad[i].why);
        assert_null(strstr(msg, hash)); /* the line itself is not quoted */
    }
    assert_int_equal(auth_load(&a, "/nonexistent/auth", msg, sizeof msg), AUTH_E_FILE);
    assert_non_null(strstr(msg, "/nonexistent/auth"));
    assert_string_equal(auth_strerror(AUTH_E_DENIED), "unknown client name or wrong secret");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_syntax),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
