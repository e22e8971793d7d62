/* test_prefault — the server's slab pre-faulting thread: attached to a
 * store, it is handed the busy class's next bytes as trades are committed
 * and faults them in; detached and stopped cleanly, the store unchanged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sched.h>
#include <string.h>

#include "prefault.h"

/* Commit n trades of one symbol: its pages chain through the 2048 class. */
static void commit_trades(store *s, int n)
{
    store_batch b;
    store_batch_init(&b);
    for (int i = 0; i < n; i++) {
        int64_t v[KIND_MAX_FIELDS] = {1000 + i, 100000000, 100000000, 1, (int64_t)i};
        assert_int_equal(store_batch_add(s, &b, "PF", 2, &kind_trade, v), STORE_OK);
    }
    assert_int_equal(store_batch_reserve(s, &b), STORE_OK);
    store_batch_commit(s, &b);
    store_batch_free(&b);
}

static void test_prefault_runs(void **st)
{
    (void)st;
    store *s;
    /* Plain: compacting, the one symbol's wide pages are recycled as its
     * tails and no class would be busy enough to be told anything. */
    store_config cfg = {.max_memory = 256u << 20, .max_symbols = 16, .plain = 1};
    assert_int_equal(store_open(&s, &cfg), STORE_OK);
    prefault *p;
    assert_int_equal(prefault_start(&p, s), 0);
    /* 200k trades: ~6 MiB of 2048-byte pages, several chunks. */
    for (int i = 0; i < 20; i++)
        commit_trades(s, 10000);
    /* The thread works on its own time: wait for it (no timing bound). */
    for (long spin = 0; prefault_done_bytes(p) == 0 && spin < 100000000; spin++)
        sched_yield();
    assert_true(prefault_done_bytes(p) > 0);
    prefault_stop(p, s);
    store_stats stt;
    store_get_stats(s, &stt);
    assert_int_equal(stt.trades, 200000);
    /* Detached: more trades tell nobody (a stopped prefault would be used
     * after free, which the sanitizer builds catch). */
    commit_trades(s, 40000);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefault_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
