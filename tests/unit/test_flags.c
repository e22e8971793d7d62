/* test_flags — the flag table (server/flags.h): defaults, every type, ranges,
 * the one-line messages, --config files, usage generated from the table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flags.h"
#include "log.h"

#define SEC 1000000000LL

static char msg[FLAGS_MSG_MAX];

static void ok(server_config *c, const char *name, const char *v)
{
    int rc = flags_set(c, name, v, msg, sizeof msg);
    if (rc != FLAGS_OK)
        fail_msg("--%s %s: rc %d '%s'", name, v ? v : "(none)", rc, msg);
}

/* Refused with rc and exactly this message. */
static void bad(const char *name, const char *v, int want_rc, const char *want)
{
    server_config c;
    flags_defaults(&c);
    msg[0] = '\0';
    int rc = flags_set(&c, name, v, msg, sizeof msg);
    if (rc != want_rc || strcmp(msg, want) != 0)
        fail_msg("--%s %s: rc %d '%s', want %d '%s'", name, v ? v : "(none)", rc, msg, want_rc, want);
    flags_free(&c);
}

static int parse(server_config *c, int argc, char **argv)
{
    flags_defaults(c);
    return flags_parse(c, argc, argv, msg, sizeof msg);
}

/* ---- defaults ------------------------------------------------------------- */

/* The values slotd started with before the table (config_default). */
static void test_defaults(void **st)
{
    (void)st;
    server_config c;
    flags_defaults(&c);
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.listen_port, 7400);
    assert_string_equal(c.http_host, "127.0.0.1");
    assert_int_equal(c.http_port, 7401);
    assert_string_equal(c.data_dir, "./data");
    assert_ptr_equal(c.journal.dir, c.data_dir);
    assert_null(c.token);
    assert_null(c.port_file);
    assert_int_equal(c.limits.max_msg, 16u << 20);
    assert_int_equal(c.limits.max_batch, 100000);
    assert_int_equal(c.limits.max_depth, 16);
    assert_int_equal(c.limits.ignore_unknown, 0);
    assert_true(c.limits.max_future_ns == 5 * 60 * SEC);
    assert_int_equal(c.max_connections, 1024);
    assert_int_equal(c.idle_timeout_ms, 300000);
    assert_int_equal(c.max_handshakes, 1024);
    assert_int_equal(c.hello_timeout_ms, 10000);
    assert_true(c.max_buffered == (uint64_t)1 << 30);
    assert_int_equal(c.max_clients, CLIENTS_DEFAULT_MAX);
    assert_true(c.client_ttl_ns == 7ull * 86400 * SEC);
    assert_true(c.store.max_memory == (size_t)4 << 30);
    assert_int_equal(c.store.max_symbols, 1000000);
    assert_int_equal(c.journal.fsync, JOURNAL_FSYNC_INTERVAL);
    assert_int_equal(c.journal.interval_ms, 10);
    assert_true(c.journal.segment_bytes == (uint64_t)256 << 20);
    assert_int_equal(c.journal.salvage, 0);
    assert_int_equal(c.journal_off, 0);
    assert_true(c.checkpoint_bytes == (uint64_t)1 << 30);
    assert_true(c.checkpoint_interval_ms == 0);
    assert_int_equal(c.checkpoint_on_exit, 0);
    assert_true(c.retention_ns == 0);
    assert_int_equal(c.log_level, LOG_INFO);
    flags_free(&c);
}

/* --help shows each default as the table has it, and every flag. */
static void test_usage_shows_the_defaults(void **st)
{
    (void)st;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    flags_usage(f);
    fclose(f);
    for (size_t i = 0; i < flags_count; i++) {
        char want[128];
        const flag_def *d = &flags_table[i];
        snprintf(want, sizeof want, "  --%s%s%s", d->name, d->arg ? " " : "", d->arg ? d->arg : "");
        if (!strstr(buf, want))
            fail_msg("usage lacks '%s'", want);
        if (d->def) { /* in the flag's own entry, before the next flag */
            const char *entry = strstr(buf, want), *next = strstr(entry + 1, "\n  --");
            snprintf(want, sizeof want, " [%s]\n", d->def);
            const char *at = strstr(entry, want);
            if (!at || (next && at > next))
                fail_msg("usage lacks the default%s of --%s", want, d->name);
        }
    }
    assert_non_null(strstr(buf, "[300s]"));
    assert_non_null(strstr(buf, "a bare\nnumber is seconds"));
    free(buf);
}

/* Docs that quote a default quote the table's: "`--max-future DURATION`
 * (default `5m`". */
static void test_docs_agree(void **st)
{
    (void)st;
    char path[1024];
    snprintf(path, sizeof path, "%s", __FILE__);
    char *slash = strstr(path, "tests/unit/");
    assert_non_null(slash);
    strcpy(slash, "docs/operations.md");
    FILE *f = fopen(path, "r");
    if (!f)
        skip();
    char line[4096], text[1 << 16] = "";
    while (fgets(line, sizeof line, f) && strlen(text) + strlen(line) < sizeof text)
        strcat(text, line);
    fclose(f);
    int checked = 0;
    for (size_t i = 0; i < flags_count; i++) {
        char pat[128];
        snprintf(pat, sizeof pat, "`--%s", flags_table[i].name);
        for (const char *p = strstr(text, pat); p; p = strstr(p + 1, pat)) {
            const char *end = strchr(p + 1, '`'), *d = end ? strstr(end, "(default `") : NULL;
            if (!d || d - end > 2 || !(isspace((unsigned char)end[1]) || end[1] == ' '))
                continue;
            d += strlen("(default `");
            size_t n = strcspn(d, "`");
            if (!flags_table[i].def || strlen(flags_table[i].def) != n ||
                memcmp(d, flags_table[i].def, n) != 0)
                fail_msg("docs say --%s defaults to %.*s; the table says %s", flags_table[i].name,
                         (int)n, d, flags_table[i].def ? flags_table[i].def : "(none)");
            checked++;
        }
    }
    assert_true(checked >= 1); /* --max-future at least */
}

/* ---- types ------------------------------------------------------------------ */

static void test_types(void **st)
{
    (void)st;
    server_config c;
    flags_defaults(&c);
    ok(&c, "salvage", NULL); /* bool */
    assert_int_equal(c.journal.salvage, 1);
    ok(&c, "salvage", "false");
    assert_int_equal(c.journal.salvage, 0);
    ok(&c, "max-batch", "5000"); /* u32 */
    assert_int_equal(c.limits.max_batch, 5000);
    ok(&c, "max-memory", "64M"); /* size */
    assert_true(c.store.max_memory == 64u << 20);
    ok(&c, "max-buffered", "2GiB");
    assert_true(c.max_buffered == (uint64_t)2 << 30);
    ok(&c, "journal-segment", "1024k");
    assert_true(c.journal.segment_bytes == 1u << 20);
    ok(&c, "idle-timeout", "5m"); /* duration -> ms */
    assert_int_equal(c.idle_timeout_ms, 300000);
    ok(&c, "idle-timeout", "90"); /* bare: seconds */
    assert_int_equal(c.idle_timeout_ms, 90000);
    ok(&c, "idle-timeout", "0"); /* 0 = never */
    assert_int_equal(c.idle_timeout_ms, 0);
    ok(&c, "checkpoint-interval", "500ms");
    assert_true(c.checkpoint_interval_ms == 500);
    ok(&c, "hello-timeout", "1.5s");
    assert_int_equal(c.hello_timeout_ms, 1500);
    ok(&c, "retention", "12h"); /* duration -> ns */
    assert_true(c.retention_ns == 12 * 3600 * SEC);
    ok(&c, "client-ttl", "250us");
    assert_true(c.client_ttl_ns == 250000);
    ok(&c, "max-future", "0");
    assert_true(c.limits.max_future_ns == 0);
    ok(&c, "port-file", "/tmp/p"); /* string */
    assert_string_equal(c.port_file, "/tmp/p");
    ok(&c, "fsync", "always"); /* enum */
    assert_int_equal(c.journal.fsync, JOURNAL_FSYNC_ALWAYS);
    ok(&c, "log-level", "debug");
    assert_int_equal(c.log_level, LOG_DEBUG);
    ok(&c, "listen", "[::1]:0"); /* host:port */
    assert_string_equal(c.listen_host, "::1");
    assert_int_equal(c.listen_port, 0);
    ok(&c, "http", "off");
    assert_int_equal(c.http_port, -1);
    ok(&c, "http", "0.0.0.0:8080");
    assert_string_equal(c.http_host, "0.0.0.0");
    assert_int_equal(c.http_port, 8080);
    ok(&c, "data-dir", "/var/lib/slotd"); /* data dir: journal.dir follows */
    assert_string_equal(c.journal.dir, "/var/lib/slotd");
    ok(&c, "token", "s3cret"); /* token.h */
    assert_string_equal(c.token, "s3cret");
    flags_free(&c);
}

static void test_bad_values(void **st)
{
    (void)st;
    bad("idle-timeout", "5x", FLAGS_EVALUE,
        "--idle-timeout: '5x' is not a duration (e.g. 90s, 500ms, 5m)");
    bad("idle-timeout", "-1s", FLAGS_EVALUE,
        "--idle-timeout: '-1s' is not a duration (e.g. 90s, 500ms, 5m)");
    bad("retention", "1.5ns", FLAGS_EVALUE,
        "--retention: '1.5ns' is not a duration (e.g. 90s, 500ms, 5m)");
    bad("max-memory", "4X", FLAGS_EVALUE,
        "--max-memory: '4X' is not a size (e.g. 4096, 512K, 16M, 4G)");
    bad("max-batch", "1e5", FLAGS_EVALUE, "--max-batch: '1e5' is not a whole number");
    bad("max-batch", "-1", FLAGS_EVALUE, "--max-batch: '-1' is not a whole number");
    bad("fsync", "sometimes", FLAGS_EVALUE, "--fsync: 'sometimes' is not one of always|interval|never");
    bad("log-level", "", FLAGS_EVALUE, "--log-level: '' is not one of error|warn|info|debug");
    bad("salvage", "maybe", FLAGS_EVALUE, "--salvage: 'maybe' is not a boolean (true or false)");
    bad("listen", "7400", FLAGS_EVALUE,
        "--listen: '7400' is not HOST:PORT (e.g. 127.0.0.1:7400, [::1]:7400)");
    bad("listen", "h:70000", FLAGS_EVALUE,
        "--listen: 'h:70000' is not HOST:PORT (e.g. 127.0.0.1:7400, [::1]:7400)");
    bad("http", "on", FLAGS_EVALUE,
        "--http: 'on' is not HOST:PORT or off (e.g. 127.0.0.1:7401, [::1]:7401)");
    bad("token", "has space", FLAGS_EVALUE, "--token: the token may hold only visible ASCII (no spaces or control bytes)");
    bad("max-batch", NULL, FLAGS_EVALUE, "--max-batch needs a value");
    bad("no-such", "1", FLAGS_EUNKNOWN, "unknown flag '--no-such' (see slotd --help)");
}

static void test_ranges(void **st)
{
    (void)st;
    bad("max-batch", "0", FLAGS_ERANGE, "--max-batch: '0' is out of range (1 to 10000000)");
    bad("max-batch", "10000001", FLAGS_ERANGE,
        "--max-batch: '10000001' is out of range (1 to 10000000)");
    bad("max-depth", "3", FLAGS_ERANGE, "--max-depth: '3' is out of range (4 to 32)");
    bad("max-clients", "99999999999", FLAGS_ERANGE,
        "--max-clients: '99999999999' is out of range (1 to 16777216)");
    bad("fsync-interval-ms", "0", FLAGS_ERANGE,
        "--fsync-interval-ms: '0' is out of range (1 to 60000)");
    bad("max-memory", "1M", FLAGS_ERANGE, "--max-memory: '1M' is out of range (at least 16M)");
    bad("checkpoint-bytes", "1K", FLAGS_ERANGE,
        "--checkpoint-bytes: '1K' is out of range (0 or at least 64K)");
    bad("max-message", "512", FLAGS_ERANGE, "--max-message: '512' is out of range (at least 1K)");
    bad("idle-timeout", "8d", FLAGS_ERANGE, "--idle-timeout: '8d' is out of range (0 or 1ms to 7d)");
    bad("idle-timeout", "1us", FLAGS_ERANGE,
        "--idle-timeout: '1us' is out of range (0 or 1ms to 7d)");
    bad("hello-timeout", "0", FLAGS_ERANGE, "--hello-timeout: '0' is out of range (1s to 1h)");
    bad("hello-timeout", "3601s", FLAGS_ERANGE,
        "--hello-timeout: '3601s' is out of range (1s to 1h)");
    bad("retention", "999999999d", FLAGS_ERANGE,
        "--retention: '999999999d' is out of range (at least 0)");
    bad("checkpoint-interval", "1us", FLAGS_ERANGE,
        "--checkpoint-interval: '1us' is out of range (0 or at least 1ms)");
    /* the bounds themselves are in */
    server_config c;
    flags_defaults(&c);
    ok(&c, "idle-timeout", "7d");
    ok(&c, "hello-timeout", "1h");
    ok(&c, "max-batch", "10000000");
    ok(&c, "max-clients", "16777216");
    flags_free(&c);
}

/* ---- the command line ------------------------------------------------------ */

static void test_command_line(void **st)
{
    (void)st;
    server_config c;
    char *argv[] = {"slotd", "--max-batch", "7", "--idle-timeout=2m", "--salvage", "--fsync=never"};
    assert_int_equal(parse(&c, 6, argv), FLAGS_OK);
    assert_int_equal(c.limits.max_batch, 7);
    assert_int_equal(c.idle_timeout_ms, 120000);
    assert_int_equal(c.journal.salvage, 1);
    assert_int_equal(c.journal.fsync, JOURNAL_FSYNC_NEVER);
    flags_free(&c);

    char *help[] = {"slotd", "--max-batch", "7", "-h"};
    assert_int_equal(parse(&c, 4, help), FLAGS_HELP);
    flags_free(&c);
    char *ver[] = {"slotd", "--version"};
    assert_int_equal(parse(&c, 2, ver), FLAGS_VERSION);
    flags_free(&c);
    char *stray[] = {"slotd", "extra"};
    assert_int_equal(parse(&c, 2, stray), FLAGS_EUNKNOWN);
    assert_string_equal(msg, "unexpected argument 'extra'");
    flags_free(&c);
    char *last[] = {"slotd", "--retention"};
    assert_int_equal(parse(&c, 2, last), FLAGS_EVALUE);
    assert_string_equal(msg, "--retention needs a value");
    flags_free(&c);
}

/* Refused by the checks across flags, with exactly this message. */
static void conflict(int argc, char **argv, const char *want)
{
    server_config c;
    assert_int_equal(parse(&c, argc, argv), FLAGS_ECONFLICT);
    assert_string_equal(msg, want);
    flags_free(&c);
}

static void test_cross_checks(void **st)
{
    (void)st;
    server_config c;
    char tf[] = "/tmp/test_flags_tokXXXXXX";
    int fd = mkstemp(tf);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "abc\n", 4), 4);
    close(fd);
    char *both[] = {"slotd", "--token", "x", "--token-file", tf};
    assert_int_equal(parse(&c, 5, both), FLAGS_ECONFLICT);
    assert_string_equal(msg, "--token and --token-file both given: use one");
    flags_free(&c);
    char *one[] = {"slotd", "--token-file", tf};
    assert_int_equal(parse(&c, 3, one), FLAGS_OK);
    assert_string_equal(c.token, "abc");
    flags_free(&c);
    unlink(tf);
    char *big[] = {"slotd", "--max-message", "65M"};
    assert_int_equal(parse(&c, 3, big), FLAGS_ERANGE);
    assert_string_equal(msg, "--max-message: 68157440 bytes is more than the journal can hold in one "
                             "record: at most 67108864 (64M)");
    flags_free(&c);
    char *fits[] = {"slotd", "--max-message", "64M"};
    assert_int_equal(parse(&c, 3, fits), FLAGS_OK);
    flags_free(&c);
    /* --gateway: brokers and topic, no node flags, not a node itself */
    char *gw[] = {"slotd", "--gateway", "--kafka-brokers", "b:9092", "--kafka-topic", "trades",
                  "--gateway-seq-topic", "trades.acked"};
    assert_int_equal(parse(&c, 8, gw), FLAGS_OK);
    assert_true(c.gateway);
    assert_string_equal(c.gateway_seq_topic, "trades.acked");
    flags_free(&c);
    char *gw_bare[] = {"slotd", "--gateway", "--kafka-topic", "trades"};
    conflict(4, gw_bare, "--gateway needs --kafka-brokers and --kafka-topic");
    char *gw_node[] = {"slotd", "--gateway", "--kafka-brokers", "b", "--kafka-topic", "t",
                       "--kafka-node", "0/2"};
    conflict(8, gw_node, "--kafka-node is for nodes (--source kafka), not --gateway");
    char *gw_src[] = {"slotd", "--gateway", "--source", "kafka", "--kafka-brokers", "b",
                      "--kafka-topic", "t", "--kafka-node", "0/2"};
    conflict(10, gw_src, "--gateway and --source kafka: a gateway feeds Kafka, a node reads it; "
                         "use one");
    char *seq_alone[] = {"slotd", "--gateway-seq-topic", "x"};
    conflict(3, seq_alone, "--gateway-seq-topic needs --gateway");
    char *bad_seq[] = {"slotd", "--gateway", "--kafka-brokers", "b", "--kafka-topic", "t",
                       "--gateway-seq-topic", "a b"};
    conflict(8, bad_seq, "--gateway-seq-topic: 'a b' is not 1-100 of [a-zA-Z0-9._-]");
    /* --gateway-node-token-file: read like --token-file, into its own field */
    char nf[] = "/tmp/test_flags_ntokXXXXXX";
    fd = mkstemp(nf);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "gw-a:s3c:r\n", 11), 11);
    close(fd);
    char *ntok[] = {"slotd", "--gateway", "--kafka-brokers", "b", "--kafka-topic", "t",
                    "--gateway-node-token-file", nf};
    assert_int_equal(parse(&c, 8, ntok), FLAGS_OK);
    assert_string_equal(c.gateway_node_token, "gw-a:s3c:r");
    assert_null(c.token);
    assert_int_equal(c.gateway_behind_records, 1000);
    flags_free(&c);
    conflict(3, (char *[]){"slotd", "--gateway-node-token-file", nf},
             "--gateway-node-token-file needs --gateway");
    fd = open(nf, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, ":secret", 7), 7); /* no NAME: refused, the file not quoted */
    close(fd);
    conflict(8, ntok, "--gateway-node-token-file: NAME:SECRET needs a NAME of 1-64 bytes and a "
                      "SECRET (the file is not quoted: it holds a secret)");
    unlink(nf);
    char *node_alone[] = {"slotd", "--gateway-node", "0/2@127.0.0.1:7400"};
    conflict(3, node_alone, "--gateway-node needs --gateway");
    char *bad_node[] = {"slotd", "--gateway", "--kafka-brokers", "b", "--kafka-topic", "t",
                        "--gateway-node", "0/2@127.0.0.1:7400", "--gateway-node", "2/2@h:1"};
    conflict(10, bad_node, "--gateway-node: '2/2@h:1' is not I/N@HOST:PORT with 0 <= I < N");
    char *file_alone[] = {"slotd", "--gateway-nodes-file", "/nodes"};
    conflict(3, file_alone, "--gateway-nodes-file needs --gateway");
    char *nodes[] = {"slotd", "--gateway", "--kafka-brokers", "b", "--kafka-topic", "t",
                     "--gateway-node", "0/2@127.0.0.1:7400", "--gateway-node", "1/2@::1:7401"};
    assert_int_equal(parse(&c, 10, nodes), FLAGS_OK);
    assert_string_equal(c.gateway_nodes, "0/2@127.0.0.1:7400\n1/2@::1:7401\n");
    flags_free(&c);
}

/* ---- --config ------------------------------------------------------------------ */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_config_file(void **st)
{
    (void)st;
    server_config c;
    const char *a = "/tmp/test_flags_a.conf", *b = "/tmp/test_flags_b.conf";
    write_file(b, "max-depth 8\n");
    char text[512];
    snprintf(text, sizeof text,
             "# comment line\n\n  max-batch 5000   # trailing comment\n--idle-timeout=90s\n"
             "salvage\ncheckpoint-on-exit true\nfsync\talways\r\nconfig %s\n", b);
    write_file(a, text);
    char *argv[] = {"slotd", "--max-batch", "1", "--config", (char *)a};
    assert_int_equal(parse(&c, 5, argv), FLAGS_OK);
    assert_int_equal(c.limits.max_batch, 5000); /* later wins: the file came after */
    assert_int_equal(c.idle_timeout_ms, 90000);
    assert_int_equal(c.journal.salvage, 1);
    assert_int_equal(c.checkpoint_on_exit, 1);
    assert_int_equal(c.journal.fsync, JOURNAL_FSYNC_ALWAYS);
    assert_int_equal(c.limits.max_depth, 8);
    flags_free(&c);

    write_file(a, "max-batch 5\nbogus 1\n");
    char *u[] = {"slotd", "--config", (char *)a};
    assert_int_equal(parse(&c, 3, u), FLAGS_EUNKNOWN);
    assert_string_equal(msg, "/tmp/test_flags_a.conf:2: unknown flag '--bogus' (see slotd --help)");
    flags_free(&c);

    write_file(a, "idle-timeout 5x\n");
    assert_int_equal(parse(&c, 3, u), FLAGS_EVALUE);
    assert_string_equal(msg, "/tmp/test_flags_a.conf:1: --idle-timeout: '5x' is not a duration "
                             "(e.g. 90s, 500ms, 5m)");
    flags_free(&c);

    write_file(a, "max-batch\n");
    assert_int_equal(parse(&c, 3, u), FLAGS_EVALUE);
    assert_string_equal(msg, "/tmp/test_flags_a.conf:1: --max-batch needs a value");
    flags_free(&c);

    write_file(a, "help\n");
    assert_int_equal(parse(&c, 3, u), FLAGS_EUNKNOWN);
    flags_free(&c);

    /* a file naming itself: refused past FLAGS_CONFIG_DEPTH files, not a loop */
    snprintf(text, sizeof text, "config %s\n", a);
    write_file(a, text);
    assert_int_equal(parse(&c, 3, u), FLAGS_ECONFIG);
    assert_non_null(strstr(msg, "nests more than 4 files deep"));
    assert_int_equal(strncmp(msg, "/tmp/test_flags_a.conf:1: /tmp/test_flags_a.conf:1: ", 52), 0);
    flags_free(&c);

    char *missing[] = {"slotd", "--config", "/nonexistent/x.conf"};
    assert_int_equal(parse(&c, 3, missing), FLAGS_ECONFIG);
    assert_string_equal(msg, "--config: cannot read '/nonexistent/x.conf': No such file or directory");
    flags_free(&c);
    unlink(a);
    unlink(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),      cmocka_unit_test(test_usage_shows_the_defaults),
        cmocka_unit_test(test_docs_agree),    cmocka_unit_test(test_types),
        cmocka_unit_test(test_bad_values),    cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_command_line),  cmocka_unit_test(test_cross_checks),
        cmocka_unit_test(test_config_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
