/* test_duration — the one duration grammar (core/duration.h): units, bare
 * numbers (seconds), exact fractions, range, refusals, format round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "duration.h"

#define S DURATION_NS_PER_SEC

static void expect(const char *s, int64_t want)
{
    int64_t ns = -7;
    int rc = duration_parse(s, strlen(s), &ns);
    if (rc != DURATION_OK || ns != want)
        fail_msg("'%s': rc %d ns %lld, want %lld", s, rc, (long long)ns, (long long)want);
}

static void expect_err(const char *s, int want)
{
    int64_t ns = -7;
    int rc = duration_parse(s, strlen(s), &ns);
    if (rc != want || ns != -7)
        fail_msg("'%s': rc %d ns %lld, want rc %d and ns untouched", s, rc, (long long)ns, want);
}

static void test_units(void **st)
{
    (void)st;
    expect("100ns", 100);
    expect("250us", 250000);
    expect("250\xc2\xb5s", 250000);
    expect("500ms", 500000000);
    expect("1s", S);
    expect("5m", 300 * S);
    expect("12h", 43200 * S);
    expect("7d", 7 * 86400 * S);
    expect("0", 0);
    expect("0ms", 0);
    expect("007s", 7 * S);
}

static void test_bare_number_is_seconds(void **st)
{
    (void)st;
    expect("300", 300 * S);
    expect("1", S);
    expect("2.5", 2500000000LL);
}

static void test_fractions(void **st)
{
    (void)st;
    expect("1.5s", 1500000000LL);
    expect("0.25ms", 250000);
    expect("0.5m", 30 * S);
    expect("1.000000001s", S + 1);
    expect("0.00001d", 864000000); /* 18 fraction digits at most, exact */
    expect("0.100000000000000000s", S / 10);
}

static void test_precision(void **st)
{
    (void)st;
    expect_err("1.5ns", DURATION_EPRECISION);
    expect_err("1.0001us", DURATION_EPRECISION);
    expect_err("0.0000000001s", DURATION_EPRECISION);
    expect_err("0.000000000000000001d", DURATION_EPRECISION);
    expect("1.0ns", 1);
    expect("1.001us", 1001);
}

static void test_syntax(void **st)
{
    (void)st;
    static const char *bad[] = {"", "s", "5x", "-1s", "+1s", " 1s", "1s ", "1 s", "1S", "1M",
                                "1e3", "1e3s", "1.", ".5s", "1..5s", "1.5.s", "1sm", "1ss",
                                "1s5", "0x10", "1.0000000000000000001s", "\xc2\xb5s", "1\xc2s"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_err(bad[i], DURATION_ESYNTAX);
    assert_string_equal(core_strerror(DURATION_ESYNTAX), "not a duration");
}

static void test_range(void **st)
{
    (void)st;
    expect("9223372036854775807ns", INT64_MAX);
    expect_err("9223372036854775808ns", DURATION_ERANGE);
    expect_err("99999999999999999999999999ns", DURATION_ERANGE);
    expect("106751d", 106751LL * 86400 * S);
    expect_err("106752d", DURATION_ERANGE);
    expect_err("999999999999d", DURATION_ERANGE);
    expect_err("9223372036.854775808", DURATION_ERANGE);
    expect("9223372036.854775807", INT64_MAX);
}

/* Only the first len bytes are read: a query value is not NUL-terminated. */
static void test_length_bound(void **st)
{
    (void)st;
    int64_t ns = 0;
    assert_int_equal(duration_parse("5mjunk", 2, &ns), DURATION_OK);
    assert_true(ns == 300 * S);
    assert_int_equal(duration_parse("15", 1, &ns), DURATION_OK);
    assert_true(ns == S);
}

static void test_format_round_trip(void **st)
{
    (void)st;
    static const struct {
        int64_t ns;
        const char *text;
    } want[] = {{0, "0"},           {1, "1ns"},        {1000, "1us"},       {1500000, "1500us"},
                {500000000, "500ms"}, {300 * S, "5m"},  {90 * S, "90s"},     {7 * 86400 * S, "7d"},
                {36 * 3600 * S, "36h"}, {INT64_MAX, "9223372036854775807ns"}};
    char buf[32];
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        duration_format(want[i].ns, buf, sizeof buf);
        assert_string_equal(buf, want[i].text);
        expect(buf, want[i].ns);
    }
    duration_format(7 * 86400 * S, buf, 2); /* truncated, terminated */
    assert_string_equal(buf, "7");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_units),     cmocka_unit_test(test_bare_number_is_seconds),
        cmocka_unit_test(test_fractions), cmocka_unit_test(test_precision),
        cmocka_unit_test(test_syntax),    cmocka_unit_test(test_range),
        cmocka_unit_test(test_length_bound), cmocka_unit_test(test_format_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
