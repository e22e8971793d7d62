/* test_err — one error vocabulary per layer (core/err.h, server/server_err.h).
 *
 * Every code of both lists is distinct, lies in its layer's range and
 * outside -4095 .. -1 (-errno, UV_E*), and has a message of its own. The
 * bug this guards against: checkpoint codes once shared -1 .. -8 with the
 * snapshot codes, so a checkpoint child's -EINTR was logged as "snapshot
 * written by a build with different record kinds" and -EIO as "checksum
 * mismatch". The end-to-end case (a child's ENOENT in the log) is
 * test_checkpoint.py: test_child_error_reported_as_errno.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "err.h"
#include "server_err.h"

typedef struct code {
    int rc;
    const char *id, *name, *msg; /* name: server codes' log name; NULL for core's */
} code;

#define CORE_ROW(c, m) {c, #c, NULL, m},
#define SERVER_ROW(c, n, m) {c, #c, n, m},
static const code core_codes[] = {CORE_ERRORS(CORE_ROW)};
static const code server_codes[] = {SERVER_ERRORS(SERVER_ROW)};
#define NCORE (sizeof core_codes / sizeof core_codes[0])
#define NSERVER (sizeof server_codes / sizeof server_codes[0])

/* Both lists as one, core's first. */
static const code *nth(size_t i) { return i < NCORE ? &core_codes[i] : &server_codes[i - NCORE]; }

static void test_codes_distinct_in_range(void **state)
{
    (void)state;
    assert_int_equal(NCORE, CORE_ERR_COUNT);
    assert_int_equal(NSERVER, SERVER_ERR_COUNT);
    for (size_t i = 0; i < NCORE + NSERVER; i++) {
        const code *c = nth(i);
        int core = i < NCORE;
        if (c->rc >= -4095) /* -errno and UV_E* are -4095 .. -1; 0 is success */
            fail_msg("%s = %d meets -errno / UV_E*", c->id, c->rc);
        assert_true(core ? c->rc <= CORE_ERR_FIRST && c->rc > CORE_ERR_BASE - 100
                         : c->rc <= SERVER_ERR_FIRST && c->rc > SERVER_ERR_BASE - 100);
        assert_int_equal(core_err_is(c->rc), core);
        assert_int_equal(server_err_is(c->rc), !core);
        assert_true(strlen(c->msg) > 0);
        for (size_t j = 0; j < i; j++) {
            if (nth(j)->rc == c->rc)
                fail_msg("%s and %s are both %d", nth(j)->id, c->id, c->rc);
            if (!strcmp(nth(j)->msg, c->msg))
                fail_msg("%s and %s both read \"%s\"", nth(j)->id, c->id, c->msg);
        }
    }
    /* The ranges themselves, not only today's codes. */
    assert_true(CORE_ERR_FIRST < -4095 && SERVER_ERR_FIRST < CORE_ERR_BASE - 99);
}

static void test_core_strerror(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCORE; i++)
        assert_string_equal(core_strerror(core_codes[i].rc), core_codes[i].msg);
    assert_string_equal(core_strerror(CORE_OK), "ok");
    assert_int_equal(STORE_OK, 0);
    assert_non_null(strstr(core_strerror(STORE_EFULL), "STORE_FULL"));
    /* Unknown: the edges of the range, errno, server codes, anything. */
    static const int unknown[] = {CORE_ERR_BASE, CORE_ERR_LAST - 1, -1, -EINTR, -4095,
                                  SERVER_ERR_FIRST, 1, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        assert_string_equal(core_strerror(unknown[i]), "unknown error");
}

static void test_server_strerror_own_and_core(void **state)
{
    (void)state;
    for (size_t i = 0; i < NSERVER; i++) {
        const code *c = &server_codes[i];
        assert_string_equal(server_strerror(c->rc), c->msg);
        assert_string_equal(server_err_name(c->rc), c->name);
        assert_true(strlen(c->name) > 0 && !strchr(c->name, ' ')); /* a log token: err=NAME */
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(server_codes[j].name, c->name);
    }
    /* The replay names docs/operations.md lists and the tests grep for. */
    assert_string_equal(server_err_name(REPLAY_EGAP), "segment_missing");
    assert_string_equal(server_err_name(REPLAY_ECORRUPT), "corrupt_record");
    assert_string_equal(server_err_name(REPLAY_ENOMEM), "out_of_memory");
    /* A core code passed up reads as core's. */
    for (size_t i = 0; i < NCORE; i++) {
        assert_string_equal(server_strerror(core_codes[i].rc), core_codes[i].msg);
        assert_string_equal(server_err_name(core_codes[i].rc), "unknown");
    }
    assert_string_equal(server_strerror(SNAPSHOT_EKIND),
                        "snapshot written by a build with different record kinds");
    assert_string_equal(server_strerror(SNAPSHOT_ECRC),
                        "snapshot checksum mismatch: the file is damaged");
    assert_string_equal(server_strerror(0), "ok");
    assert_string_equal(server_err_name(0), "ok");
}

/* A checkpoint's -errno reads as itself, never as a snapshot code. */
static void test_server_strerror_errno(void **state)
{
    (void)state;
    assert_string_equal(server_strerror(-EINTR), strerror(EINTR));
    assert_string_equal(server_strerror(-EIO), strerror(EIO));
    assert_string_equal(server_strerror(-ENOENT), "No such file or directory");
    assert_string_not_equal(server_strerror(-EINTR), core_strerror(SNAPSHOT_EKIND));
    assert_string_not_equal(server_strerror(-EIO), core_strerror(SNAPSHOT_ECRC));
    for (int e = 1; e < 3000; e++) {
        char want[256]; /* strerror's text for an unknown errno lives until its next call */
        snprintf(want, sizeof want, "%s", strerror(e));
        assert_string_equal(server_strerror(-e), want);
        assert_string_equal(server_err_name(-e), "unknown");
    }
}

/* libuv's own codes (not -errno) read as libuv's; an unknown one in its
 * range is named without leaking (uv_strerror would; ASan checks). */
static void test_server_strerror_uv(void **state)
{
    (void)state;
    assert_string_equal(server_strerror(UV_EOF), uv_strerror(UV_EOF));
    assert_string_equal(server_strerror(UV_EAI_NONAME), uv_strerror(UV_EAI_NONAME));
    assert_string_equal(server_strerror(UV_ECHARSET), uv_strerror(UV_ECHARSET));
    assert_string_equal(server_strerror(-3500), "Unknown system error -3500");
    static const int unknown[] = {SERVER_ERR_BASE, SERVER_ERR_LAST - 1, CORE_ERR_BASE,
                                  -4096, -4199, 1, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_string_equal(server_strerror(unknown[i]), "unknown error");
        assert_string_equal(server_err_name(unknown[i]), "unknown");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes_distinct_in_range),
        cmocka_unit_test(test_core_strerror),
        cmocka_unit_test(test_server_strerror_own_and_core),
        cmocka_unit_test(test_server_strerror_errno),
        cmocka_unit_test(test_server_strerror_uv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
