/* test_sse_cursor — a "*" SSE cursor: parsing ids (with and without a
 * base file, each refusal's code and message), the positions an id stands
 * for, the id text, and moved entries kept in order. Rebases need a live
 * subscription: tests/integration/test_sse.py covers them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "sse_cursor.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/test_sse_cursor.XXXXXX");
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/sse", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A base file tok holding body; crc_delta != 0 damages its check. */
static void put_base(const char *tok, const char *body, unsigned crc_delta)
{
    char path[128];
    snprintf(path, sizeof path, "%s/sse/%s.cur", dir, tok);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "slotd-sse-base 1 %zu %08x\n%s", strlen(body),
            crc32c(0, body, strlen(body)) + crc_delta, body);
    fclose(f);
}

static int parse(ssecur *c, const char *text, subproto_sym **map, uint32_t *n, proto_error *err)
{
    ssecur_init(c, dir);
    *map = NULL;
    *n = 0;
    return ssecur_parse(c, text, strlen(text), map, n, err);
}

static char *text_of(const ssecur *c)
{
    static char buf[4096];
    proto_buf b = {0};
    assert_int_equal(ssecur_text(c, &b), 0);
    snprintf(buf, sizeof buf, "%.*s", (int)b.len, b.data);
    proto_buf_free(&b);
    return buf;
}

static uint64_t pos_of(const subproto_sym *map, uint32_t n, const char *sym)
{
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(map[i].name, sym) == 0)
            return map[i].pos;
    return UINT64_MAX;
}

static void test_ids(void **state)
{
    (void)state;
    ssecur c;
    subproto_sym *map;
    uint32_t n;
    proto_error err;

    assert_true(ssecur_is("*", 1));
    assert_false(ssecur_is("A:1", 3));
    assert_false(ssecur_is("", 0));

    assert_int_equal(parse(&c, "*", &map, &n, &err), 0); /* from=start */
    assert_int_equal(n, 0);
    assert_string_equal(text_of(&c), "*");
    ssecur_free(&c);
    free(map);

    /* no base: what moved is the whole map; the id keeps its order */
    assert_int_equal(parse(&c, "*,MSFT:7,AAPL:42,A%2CB:1", &map, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(pos_of(map, n, "AAPL"), 42);
    assert_int_equal(pos_of(map, n, "A,B"), 1);
    assert_string_equal(text_of(&c), "*,MSFT:7,AAPL:42,A%2CB:1");
    ssecur_free(&c);
    free(map);

    /* a base, overridden by what moved since, extended by a new symbol */
    put_base("00000000000000aa", "AAPL:10,MSFT:5,IBM:3", 0);
    assert_int_equal(parse(&c, "*@00000000000000aa,MSFT:9,NEW:2", &map, &n, &err), 0);
    assert_int_equal(n, 4);
    assert_int_equal(pos_of(map, n, "AAPL"), 10);
    assert_int_equal(pos_of(map, n, "MSFT"), 9);
    assert_int_equal(pos_of(map, n, "IBM"), 3);
    assert_int_equal(pos_of(map, n, "NEW"), 2);
    for (uint32_t i = 1; i < n; i++) /* sorted: subproto_req.fromx is searched */
        assert_true(subproto_sym_cmp(&map[i - 1], &map[i]) < 0);
    assert_string_equal(text_of(&c), "*@00000000000000aa,MSFT:9,NEW:2");
    /* moving a symbol already moved changes it in place; a new one goes last */
    assert_int_equal(ssecur_moved(&c, NULL, "NEW", 3, 5, &err), 0);
    assert_int_equal(ssecur_moved(&c, NULL, "IBM", 3, 4, &err), 0);
    assert_string_equal(text_of(&c), "*@00000000000000aa,MSFT:9,NEW:5,IBM:4");
    ssecur_free(&c);
    free(map);
}

static void test_refusals(void **state)
{
    (void)state;
    put_base("00000000000000bb", "AAPL:10", 1);  /* check fails */
    put_base("00000000000000cc", "AAPL:x", 0);   /* intact, not a cursor */
    const struct {
        const char *text, *msg;
        proto_code code;
    } bad[] = {
        {"*x", "a '*' cursor is '*' or '*@'", PROTO_E_BAD_QUERY},
        {"*,", "a '*' cursor is '*' or '*@'", PROTO_E_BAD_QUERY},
        {"*@", "a '*' cursor is '*' or '*@'", PROTO_E_BAD_QUERY},
        {"*@00000000000000a", "a '*' cursor is '*' or '*@'", PROTO_E_BAD_QUERY},
        {"*@00000000000000AA", "a '*' cursor is '*' or '*@'", PROTO_E_BAD_QUERY},
        {"*@00000000000000aaX", "a '*' cursor is '*' or '*@'", PROTO_E_BAD_QUERY},
        {"*,A:1,B:2,A:3", "'A' is named twice", PROTO_E_BAD_QUERY},
        {"*,A", "expected sym:position", PROTO_E_BAD_QUERY},
        {"*,A:1x", "position of 'A' is not", PROTO_E_BAD_QUERY},
        {"*@0123456789abcdef", "is not stored here", PROTO_E_CURSOR_GONE},
        {"*@00000000000000bb,A:1", "is damaged", PROTO_E_CURSOR_GONE},
        {"*@00000000000000cc", "position of 'AAPL' is not", PROTO_E_BAD_QUERY},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ssecur c;
        subproto_sym *map;
        uint32_t n;
        proto_error err = {0};
        assert_int_equal(parse(&c, bad[i].text, &map, &n, &err), -1);
        if (err.code != bad[i].code || !strstr(err.msg, bad[i].msg))
            fail_msg("%s: %s (%d)", bad[i].text, err.msg, err.code);
        assert_null(map);
        assert_string_equal(text_of(&c), "*"); /* nothing of it kept */
        ssecur_free(&c);
    }
}

static void test_ttl_sweep(void **state)
{
    (void)state;
    char old[128], fresh[128];
    put_base("00000000000000dd", "A:1", 0);
    put_base("00000000000000ee", "A:1", 0);
    snprintf(old, sizeof old, "%s/sse/00000000000000dd.cur", dir);
    snprintf(fresh, sizeof fresh, "%s/sse/00000000000000ee.cur", dir);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "touch -d '-25 hours' '%s'", old);
    assert_int_equal(system(cmd), 0);
    ssecur c;
    ssecur_init(&c, dir); /* removes bases unused for SSECUR_TTL_S */
    assert_int_equal(access(old, F_OK), -1);
    assert_int_equal(access(fresh, F_OK), 0);
    ssecur_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_ttl_sweep),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
