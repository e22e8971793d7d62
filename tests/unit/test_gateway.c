/* test_gateway — the gateway's pure parts (server/gateway_cred.c,
 * gateway_lag.c): the credential for the nodes (token, NAME:SECRET, what is
 * refused) and the HELLO it makes, decoded by msgpack-c; how far behind a
 * node is and how it ranks for routing (known and within the threshold,
 * unknown, behind), and the note a per-symbol reply from a node that is
 * behind gets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway_internal.h"
#include "pk.h"
#include "relay.h"

static void test_cred(void **state)
{
    (void)state;
    char name[GATEWAY_CRED_NAME_MAX + 1];
    const char *secret;
    assert_int_equal(gateway_node_cred("s3cret", name, sizeof name, &secret), 0);
    assert_string_equal(name, "");
    assert_string_equal(secret, "s3cret");
    assert_int_equal(gateway_node_cred("gw-1:pa:ss", name, sizeof name, &secret), 0);
    assert_string_equal(name, "gw-1");
    assert_string_equal(secret, "pa:ss"); /* the first ':' ends the name */
    char longname[GATEWAY_CRED_NAME_MAX + 8];
    memset(longname, 'n', GATEWAY_CRED_NAME_MAX);
    strcpy(longname + GATEWAY_CRED_NAME_MAX, ":x");
    assert_int_equal(gateway_node_cred(longname, name, sizeof name, &secret), 0);
    assert_int_equal(strlen(name), GATEWAY_CRED_NAME_MAX);
    memmove(longname + 1, longname, strlen(longname) + 1); /* one byte too long */
    assert_int_equal(gateway_node_cred(longname, name, sizeof name, &secret), -1);
    assert_int_equal(gateway_node_cred(":secret", name, sizeof name, &secret), -1);
    assert_int_equal(gateway_node_cred("name:", name, sizeof name, &secret), -1);
    assert_int_equal(gateway_node_cred("", name, sizeof name, &secret), -1);
}

/* The HELLO's "client" and "token" (NULL when absent). */
static void hello_of(const char *cred, int pid, int k, char *client, char *token)
{
    proto_buf b = {0};
    msgpack_unpacked u;
    size_t off = 0;
    assert_int_equal(gateway_node_hello(&b, cred, pid, k), 0);
    msgpack_unpacked_init(&u);
    assert_int_equal(msgpack_unpack_next(&u, b.data, b.len, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, b.len);
    const msgpack_object *a = u.data.via.array.ptr;
    assert_int_equal(u.data.via.array.size, 2);
    assert_memory_equal(a[0].via.str.ptr, "HELLO", 5);
    client[0] = token[0] = '\0';
    for (uint32_t i = 0; i < a[1].via.map.size; i++) {
        const msgpack_object_kv *kv = &a[1].via.map.ptr[i];
        char *to = kv->key.via.str.size == 6 ? client : token;
        memcpy(to, kv->val.via.str.ptr, kv->val.via.str.size);
        to[kv->val.via.str.size] = '\0';
    }
    msgpack_unpacked_destroy(&u);
    proto_buf_free(&b);
}

static void test_hello(void **state)
{
    (void)state;
    char client[80], token[300];
    hello_of(NULL, 42, 3, client, token);
    assert_string_equal(client, "gateway-q-42-3");
    assert_string_equal(token, "");
    hello_of("tok", 42, 3, client, token); /* --token: the name stays one per connection */
    assert_string_equal(client, "gateway-q-42-3");
    assert_string_equal(token, "tok");
    hello_of("gw-a:s3cret", 42, 3, client, token); /* --auth-file: the line's name */
    assert_string_equal(client, "gw-a");
    assert_string_equal(token, "s3cret");
    proto_buf b = {0};
    assert_int_equal(gateway_node_hello(&b, ":x", 1, 1), -1);
    proto_buf_free(&b);
}

/* A gateway of 4 partitions and two replicas of 0/2, without a loop. */
typedef struct fx {
    server srv;
    struct gq q;
    gq_node nodes[2];
    int64_t hw[4], next[2][4];
} fx;

static void fx_init(fx *f)
{
    memset(f, 0, sizeof *f);
    f->srv.cfg.gateway_behind_records = 10;
    f->q.srv = &f->srv;
    f->q.nodes = f->nodes;
    f->q.n = 2;
    f->q.hw = f->hw;
    f->q.nhw = 4;
    for (int k = 0; k < 2; k++) {
        f->nodes[k] = (gq_node){.q = &f->q, .k = k, .i = 0, .n = 2, .state = GQ_UP};
        f->nodes[k].next = f->next[k];
        for (int p = 0; p < 4; p++)
            f->next[k][p] = -1;
    }
    for (int p = 0; p < 4; p++)
        f->hw[p] = -1;
}

static void test_lag(void **state)
{
    (void)state;
    fx f;
    fx_init(&f);
    gq_node *a = &f.nodes[0], *b = &f.nodes[1];
    /* nothing known: unknown, ranked after a node known to keep up */
    assert_int_equal(gateway_lag(a, 0), -1);
    assert_int_equal(gateway_lag_max(a), -1);
    assert_int_equal(gateway_lag_rank(a, 0, 10), 1);
    f.hw[0] = 100, f.hw[2] = 50;
    assert_int_equal(gateway_lag(a, 0), -1); /* a watermark, no offsets answer yet */
    f.next[0][0] = 90, f.next[0][2] = 50;
    assert_int_equal(gateway_lag(a, 0), 10);
    assert_int_equal(gateway_lag_rank(a, 0, 10), 0); /* at the threshold: not behind */
    assert_int_equal(gateway_lag_rank(a, 0, 9), 2);
    f.next[0][2] = 60; /* the node read past the watermark looked up: 0, not negative */
    assert_int_equal(gateway_lag(a, 2), 0);
    f.next[1][0] = 40, f.next[1][2] = 10;
    assert_int_equal(gateway_lag_max(b), 60);
    f.next[1][1] = 0, f.hw[1] = 1000; /* partition 1 is not b's: not counted */
    assert_int_equal(gateway_lag_max(b), 60);
    assert_int_equal(gateway_lag(b, 5), -1); /* past the partitions known */
    f.hw[0] = -1; /* the look-up failed: unknown again */
    assert_int_equal(gateway_lag(a, 0), -1);
    b->next = NULL; /* down: forgotten */
    assert_int_equal(gateway_lag_max(b), -1);
}

static void test_note(void **state)
{
    (void)state;
    fx f;
    fx_init(&f);
    gq_node *a = &f.nodes[0];
    pk k;
    uint8_t *out;
    size_t len;
    pk_head(&k, "R", 9, 1);
    pk_str(&k, "symbol");
    pk_str(&k, "AAPL");
    f.hw[2] = 500, f.next[0][2] = 495;
    assert_int_equal(gateway_lag_note(a, 2, (uint8_t *)k.sb.data, k.sb.size, &out, &len), 0);
    assert_null(out); /* within the threshold: the reply as it is */
    f.next[0][2] = 400;
    assert_int_equal(gateway_lag_note(a, 2, (uint8_t *)k.sb.data, k.sb.size, &out, &len), 1);
    assert_non_null(out);
    msgpack_unpacked u;
    size_t off = 0;
    msgpack_unpacked_init(&u);
    assert_int_equal(msgpack_unpack_next(&u, (const char *)out, len, &off), MSGPACK_UNPACK_SUCCESS);
    const msgpack_object_map *m = &u.data.via.array.ptr[2].via.map;
    assert_int_equal(m->size, 2);
    const msgpack_object *e = &m->ptr[1].val.via.array.ptr[0];
    assert_int_equal(e->via.map.ptr[0].val.via.i64, 2);
    assert_int_equal(e->via.map.ptr[1].val.via.i64, 100);
    msgpack_unpacked_destroy(&u);
    free(out);
    k.sb.data[1] = (char)0xa1, k.sb.data[2] = 'X'; /* not an R: passed on as it is */
    assert_int_equal(gateway_lag_note(a, 2, (uint8_t *)k.sb.data, k.sb.size, &out, &len), 0);
    assert_null(out);
    msgpack_sbuffer_destroy(&k.sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cred),
        cmocka_unit_test(test_hello),
        cmocka_unit_test(test_lag),
        cmocka_unit_test(test_note),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
