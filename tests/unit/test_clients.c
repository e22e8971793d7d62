/* clients: the per-client-name sequence table — lookup, growth, the bound
 * and which names may be forgotten, backward-shift deletion, restore. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "clients.h"

#define SEC 1000000000ull

static client_rec *get(clients *t, const char *name, uint64_t now)
{
    return clients_get(t, name, strlen(name), now);
}

static void test_get_find_grow(void **state)
{
    (void)state;
    clients t = {0};
    char name[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "c-%d", i);
        client_rec *r = get(&t, name, 1);
        assert_non_null(r);
        r->durable_seq = (uint64_t)i + 1;
    }
    assert_int_equal(t.n, 5000);
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "c-%d", i);
        assert_int_equal(clients_last_seq(&t, name, strlen(name)), (uint64_t)i + 1);
    }
    assert_int_equal(clients_last_seq(&t, "nope", 4), 0);
    clients_free(&t);
}

static void test_bound_and_forgetting(void **state)
{
    (void)state;
    clients t = {.max = 4, .ttl_ns = 10 * SEC};
    client_rec *a = get(&t, "a", 1 * SEC), *b = get(&t, "b", 2 * SEC);
    client_rec *c = get(&t, "c", 3 * SEC), *d = get(&t, "d", 4 * SEC);
    assert_non_null(a);
    assert_non_null(d);
    a->durable_seq = a->accepted_seq = 1;
    a->last_used = 1 * SEC;
    b->durable_seq = b->accepted_seq = 1;
    b->owner = &t;                  /* held by a connection */
    c->durable_seq = c->accepted_seq = 5;
    c->held = 7;                    /* a refused seq is waiting */
    d->durable_seq = 3;
    d->accepted_seq = 4;            /* in flight */
    d->inflight = 1;
    /* Nothing is forgettable before the ttl (and b, c, d never are). */
    assert_null(get(&t, "e", 5 * SEC));
    /* A name that stored nothing is forgettable at once. */
    d->durable_seq = d->accepted_seq = 0;
    d->inflight = 0;
    client_rec *e = get(&t, "e", 5 * SEC);
    assert_non_null(e);
    assert_null(clients_find(&t, "d", 1));
    assert_int_equal(t.forgotten, 1);
    e->durable_seq = e->accepted_seq = 9;
    /* After the ttl, the least recently used idle name goes: a, not e. */
    assert_non_null(get(&t, "f", 12 * SEC));
    assert_null(clients_find(&t, "a", 1));
    assert_non_null(clients_find(&t, "b", 1));
    assert_non_null(clients_find(&t, "c", 1));
    assert_int_equal(clients_last_seq(&t, "e", 1), 9);
    assert_int_equal(t.n, 4);
    clients_free(&t);
}

/* Deleting from a full probe run must leave every other name findable. */
static void test_backward_shift(void **state)
{
    (void)state;
    clients t = {.max = 300, .ttl_ns = 0};
    char name[32];
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "n%d", i);
        client_rec *r = get(&t, name, (uint64_t)i + 1);
        r->durable_seq = r->accepted_seq = (uint64_t)i + 1;
        r->last_used = (uint64_t)i + 1;
    }
    for (int k = 0; k < 300; k++) { /* replace every name, oldest first */
        snprintf(name, sizeof name, "m%d", k);
        client_rec *r = get(&t, name, 1000 + (uint64_t)k);
        assert_non_null(r);
        r->durable_seq = r->accepted_seq = 1;
        r->last_used = 1000 + (uint64_t)k;
        for (int i = 0; i < 300; i++) {
            snprintf(name, sizeof name, "n%d", i);
            client_rec *f = clients_find(&t, name, strlen(name));
            if (i <= k)
                assert_null(f);
            else
                assert_true(f && f->durable_seq == (uint64_t)i + 1);
        }
        for (int j = 0; j <= k; j++) {
            snprintf(name, sizeof name, "m%d", j);
            assert_non_null(clients_find(&t, name, strlen(name)));
        }
    }
    clients_free(&t);
}

/* Start-up restores every name the server held, even past a lowered bound;
 * restored names count as used at start-up. */
static void test_restore(void **state)
{
    (void)state;
    clients t = {.max = 2, .ttl_ns = 10 * SEC, .started = 100 * SEC};
    assert_int_equal(clients_restore(&t, "a", 1, 5), 0);
    assert_int_equal(clients_restore(&t, "b", 1, 6), 0);
    assert_int_equal(clients_restore(&t, "c", 1, 7), 0);
    assert_int_equal(clients_restore(&t, "a", 1, 3), 0); /* never lowers */
    assert_int_equal(clients_last_seq(&t, "a", 1), 5);
    assert_int_equal(t.n, 3);
    assert_int_equal(clients_restore(&t, "", 0, 1), -1);
    assert_null(get(&t, "new", 105 * SEC));     /* within the ttl of start-up */
    assert_non_null(get(&t, "new", 111 * SEC)); /* past it */
    clients_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_find_grow),
        cmocka_unit_test(test_bound_and_forgetting),
        cmocka_unit_test(test_backward_shift),
        cmocka_unit_test(test_restore),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
