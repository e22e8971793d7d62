/* test_http — the HTTP module's lifecycle contracts on a real loop and a
 * real loopback listener: start and stop on the loop thread (the listener
 * closes and the state is freed), the bound port read back for IPv4 and
 * IPv6, and the "loop thread only" entry points asserted in debug builds.
 * Request handling is covered end to end by tests/integration/test_http*.py
 * and by fuzz_http (http_serve_bytes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "expect_abort.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "http.h"

static void srv_init(server *srv, uv_loop_t *loop, const char *host)
{
    memset(srv, 0, sizeof *srv);
    assert_int_equal(uv_loop_init(loop), 0);
    srv->loop = loop;
    snprintf(srv->cfg.http_host, sizeof srv->cfg.http_host, "%s", host);
    srv->cfg.http_port = 0; /* ephemeral */
}

static void srv_stop(server *srv, uv_loop_t *loop)
{
    http_stop(srv);
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    assert_null(srv->http); /* freed once the listener closed */
    assert_int_equal(uv_loop_close(loop), 0);
}

static void test_start_stop_ipv4(void **state)
{
    (void)state;
    uv_loop_t loop;
    server srv;
    srv_init(&srv, &loop, "127.0.0.1");
    assert_int_equal(http_start(&srv), 0);
    assert_non_null(srv.http);
    assert_true(srv.http_port > 0);
    srv_stop(&srv, &loop);
}

/* The bound port is read from a sockaddr_in6 for an IPv6 listener (a
 * sockaddr_in cast would read the flow info's bytes). */
static void test_start_stop_ipv6(void **state)
{
    (void)state;
    uv_loop_t loop;
    server srv;
    srv_init(&srv, &loop, "::1");
    int rc = http_start(&srv);
    if (rc == UV_EADDRNOTAVAIL || rc == UV_EAFNOSUPPORT) { /* no IPv6 loopback here */
        assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
        assert_int_equal(uv_loop_close(&loop), 0);
        skip();
    }
    assert_int_equal(rc, 0);
    uv_tcp_t probe;
    struct sockaddr_in6 to;
    assert_int_equal(uv_ip6_addr("::1", srv.http_port, &to), 0);
    assert_true(srv.http_port > 0);
    /* The port is the listener's: binding it again is refused. */
    assert_int_equal(uv_tcp_init(&loop, &probe), 0);
    assert_int_equal(uv_tcp_bind(&probe, (const struct sockaddr *)&to, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&probe, 1, NULL), UV_EADDRINUSE);
    uv_close((uv_handle_t *)&probe, NULL);
    srv_stop(&srv, &loop);
}

static void *stop_elsewhere(void *arg)
{
    http_stop(arg);
    return NULL;
}

/* http_stop from another thread would race the loop on every connection:
 * debug builds abort. In a child, so this process's state is untouched. */
static void stop_off_loop(void *ctx)
{
    (void)ctx;
    uv_loop_t loop;
    server srv;
    srv_init(&srv, &loop, "127.0.0.1");
    if (http_start(&srv) != 0)
        _exit(2);
    pthread_t t;
    if (pthread_create(&t, NULL, stop_elsewhere, &srv) != 0)
        _exit(3);
    pthread_join(t, NULL);
}

static void test_stop_off_loop_thread_asserted(void **state)
{
    (void)state;
    expect_abort(stop_off_loop, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_stop_ipv4),
        cmocka_unit_test(test_start_stop_ipv6),
        cmocka_unit_test(test_stop_off_loop_thread_asserted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
