/* test_store_symbols — symbols are created by reserve, not by staging: a
 * batch refused at staging (reset) or by reserve (STORE_EFULL) leaves no
 * symbol behind (no kind fixed, no quota used, ids and table as before);
 * the batch's own table of new symbols (repeats, kinds, growth); batches
 * staged at the same time; snapshots unaffected; store_batch_symbols, the
 * walk over a staged batch's symbols.
 *
 * White-box where it matters: the table's slots are compared through
 * store_internal.h, to prove that removing symbols (backward-shift
 * deletion) restores the exact layout, with colliding hashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store_check.h"
#include "store_internal.h"

static store *open_sym(size_t max_memory, uint32_t max_symbols)
{
    store *s = NULL;
    store_config cfg = {.max_memory = max_memory, .max_symbols = max_symbols};
    assert_int_equal(store_open(&s, &cfg), STORE_OK);
    return s;
}

static int add_k(store *s, store_batch *b, const char *sym, const kind *k, uint64_t id)
{
    int64_t v[OPTION_TRADE_NFIELDS] = {TS0 + (int64_t)id, E8, E8, KIND_SIDE_BUY, (int64_t)id,
                                       42 * E8, TS0 + 86400LL * 1000000000LL, KIND_RIGHT_PUT};
    return store_batch_add(s, b, sym, strlen(sym), k, v);
}

static int add_t(store *s, store_batch *b, const char *sym, uint64_t id)
{
    return add_k(s, b, sym, &kind_trade, id);
}

static int commit(store *s, store_batch *b)
{
    int rc = store_batch_reserve(s, b);
    if (rc == STORE_OK)
        store_batch_commit(s, b);
    store_batch_reset(b);
    return rc;
}

static uint32_t id_of(const store *s, const char *sym)
{
    store_symbol_info si;
    assert_int_equal(store_symbol(s, sym, strlen(sym), &si), STORE_OK);
    return si.id;
}

/* ---- reset ---------------------------------------------------------------- */

static void test_reset_leaves_nothing(void **st)
{
    (void)st;
    store *s = open_sym(0, 10);
    store_batch b;
    store_batch_init(&b);
    assert_int_equal(add_t(s, &b, "OLD1", 1), STORE_OK);
    assert_int_equal(add_t(s, &b, "OLD2", 2), STORE_OK);
    assert_int_equal(add_t(s, &b, "OLD3", 3), STORE_OK);
    assert_int_equal(commit(s, &b), STORE_OK);

    /* Seven new symbols (with repeats), then a trade that fails. */
    char sym[16];
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < 7; i++) {
            snprintf(sym, sizeof sym, "N%d", i);
            assert_int_equal(add_t(s, &b, sym, (uint64_t)(r * 10 + i)), STORE_OK);
        }
    /* The store does not hold them; the batch does. */
    assert_null(store_symbol_kind(s, "N3", 2));
    assert_ptr_equal(store_batch_symbol_kind(s, &b, "N3", 2), &kind_trade);
    assert_ptr_equal(store_batch_symbol_kind(s, &b, "OLD1", 4), &kind_trade);
    assert_null(store_batch_symbol_kind(s, &b, "N7", 2));
    assert_int_equal(add_t(s, &b, "N7", 99), STORE_ESYMLIMIT); /* 3 + 7 = 10 */
    assert_int_equal(add_t(s, &b, "N1", 99), STORE_OK);        /* one of its own: fine */
    assert_int_equal(add_t(s, &b, "BAD\x01", 1), STORE_ESYMBOL);
    store_batch_reset(&b);
    assert_null(store_batch_symbol_kind(s, &b, "N3", 2));

    store_stats ss;
    store_get_stats(s, &ss);
    assert_int_equal(ss.symbols, 3);
    assert_int_equal(ss.trades, 3);
    for (int i = 0; i < 7; i++) {
        snprintf(sym, sizeof sym, "N%d", i);
        assert_null(store_symbol_kind(s, sym, strlen(sym)));
    }
    /* The quota is intact: seven new ones fit, as option_trade this time,
     * and the eighth is refused at its own trade. */
    for (int i = 0; i < 7; i++) {
        snprintf(sym, sizeof sym, "M%d", i);
        assert_int_equal(add_k(s, &b, sym, &kind_option_trade, (uint64_t)i), STORE_OK);
    }
    assert_int_equal(add_k(s, &b, "M7", &kind_option_trade, 7), STORE_ESYMLIMIT);
    assert_int_equal(b.n, 7);
    assert_int_equal(commit(s, &b), STORE_OK);
    store_get_stats(s, &ss);
    assert_int_equal(ss.symbols, 10);
    for (int i = 0; i < 7; i++) { /* ids follow the first OLD ones, in order */
        snprintf(sym, sizeof sym, "M%d", i);
        assert_int_equal(id_of(s, sym), 3u + (uint32_t)i);
    }
    store_batch_free(&b);
    store_close(s);
}

/* PROTOCOL.md 3.1: the kind is fixed by the first batch that stores a trade
 * for the symbol, so a failed option_trade batch does not fix it. */
static void test_failed_kind_not_fixed(void **st)
{
    (void)st;
    store *s = open_sym(0, 0);
    store_batch b;
    store_batch_init(&b);
    assert_int_equal(add_k(s, &b, "NEWSYM", &kind_option_trade, 1), STORE_OK);
    assert_int_equal(add_k(s, &b, "NEWSYM", &kind_option_trade, 2), STORE_OK);
    /* Within the batch the kind holds, as it would for a stored symbol. */
    assert_int_equal(add_t(s, &b, "NEWSYM", 3), STORE_EKIND);
    assert_ptr_equal(store_batch_symbol_kind(s, &b, "NEWSYM", 6), &kind_option_trade);
    store_batch_reset(&b); /* e.g. a later trade was missing its strike */
    assert_null(store_symbol_kind(s, "NEWSYM", 6));
    assert_int_equal(add_t(s, &b, "NEWSYM", 4), STORE_OK);
    assert_int_equal(commit(s, &b), STORE_OK);
    assert_ptr_equal(store_symbol_kind(s, "NEWSYM", 6), &kind_trade);
    assert_int_equal(add_k(s, &b, "NEWSYM", &kind_option_trade, 5), STORE_EKIND);

    /* Released after reserve (a journal failure): no trace either. The
     * symbol is gone (kind not fixed, quota and table slot back), so a
     * kind-less trade for it later makes it a `trade`. */
    uint32_t nparts = s->nparts;
    uint64_t table[64];
    memcpy(table, s->table, sizeof table);
    assert_int_equal(add_k(s, &b, "REL", &kind_option_trade, 6), STORE_OK);
    assert_int_equal(store_batch_reserve(s, &b), STORE_OK);
    store_batch_release(s, &b);
    assert_null(store_symbol_kind(s, "REL", 3));
    assert_int_equal(s->nparts, nparts);
    assert_memory_equal(s->table, table, sizeof table);
    store_symbol_info si;
    assert_int_equal(store_symbol(s, "REL", 3, &si), STORE_ENOTFOUND);
    assert_int_equal(add_t(s, &b, "REL", 7), STORE_OK);
    assert_int_equal(commit(s, &b), STORE_OK);
    assert_ptr_equal(store_symbol_kind(s, "REL", 3), &kind_trade);
    store_batch_free(&b);
    store_close(s);
}

/* The server reserves batch N+1 while N is being journaled, and N+1 may
 * stage trades for a symbol N's reserve created. The symbol is removed only
 * when the last reserved batch holding it is released and none committed. */
static void test_release_pipelined(void **st)
{
    (void)st;
    store *s = open_sym(0, 5);
    store_batch n0, n1, n2;
    store_batch_init(&n0);
    store_batch_init(&n1);
    store_batch_init(&n2);
    assert_int_equal(add_t(s, &n0, "OLD", 1), STORE_OK);
    assert_int_equal(commit(s, &n0), STORE_OK);
    uint64_t table[64];
    memcpy(table, s->table, sizeof table);

    /* N creates X; N+1 finds X in the table and creates Y. */
    assert_int_equal(add_k(s, &n0, "X", &kind_option_trade, 2), STORE_OK);
    assert_int_equal(store_batch_reserve(s, &n0), STORE_OK);
    assert_int_equal(add_k(s, &n1, "X", &kind_option_trade, 3), STORE_OK);
    assert_int_equal(add_t(s, &n1, "Y", 4), STORE_OK);
    assert_int_equal(store_batch_reserve(s, &n1), STORE_OK);
    /* Both fail, in order: X stays while N+1 holds it, then both go. */
    store_batch_release(s, &n0);
    assert_ptr_equal(store_symbol_kind(s, "X", 1), &kind_option_trade);
    store_batch_release(s, &n1);
    assert_null(store_symbol_kind(s, "X", 1));
    assert_null(store_symbol_kind(s, "Y", 1));
    assert_int_equal(s->nparts, 1);
    assert_memory_equal(s->table, table, sizeof table);

    /* N fails, N+1 commits: X stays, with N+1's trade only. */
    assert_int_equal(add_k(s, &n0, "X", &kind_option_trade, 5), STORE_OK);
    assert_int_equal(store_batch_reserve(s, &n0), STORE_OK);
    assert_int_equal(add_k(s, &n1, "X", &kind_option_trade, 6), STORE_OK);
    assert_int_equal(store_batch_reserve(s, &n1), STORE_OK);
    store_batch_release(s, &n0);
    store_batch_commit(s, &n1);
    store_symbol_info si;
    assert_int_equal(store_symbol(s, "X", 1, &si), STORE_OK);
    assert_int_equal(si.agg.count, 1);
    assert_int_equal(id_of(s, "X"), 1);

    /* A hole: N creates P and Q, N+1 creates R and commits, N fails. The
     * ids stay in creation order; the holes cost no quota (limit 5: OLD,
     * X, R, and two more). */
    assert_int_equal(add_t(s, &n0, "P", 7), STORE_OK);
    assert_int_equal(add_t(s, &n0, "Q", 8), STORE_OK);
    assert_int_equal(store_batch_reserve(s, &n0), STORE_OK);
    assert_int_equal(add_t(s, &n1, "R", 9), STORE_OK);
    assert_int_equal(store_batch_reserve(s, &n1), STORE_OK);
    store_batch_commit(s, &n1);
    store_batch_release(s, &n0);
    assert_null(store_symbol_kind(s, "P", 1));
    assert_null(store_symbol_kind(s, "Q", 1));
    assert_int_equal(id_of(s, "R"), 4);
    assert_int_equal(add_t(s, &n2, "S", 10), STORE_OK);
    assert_int_equal(add_t(s, &n2, "T", 11), STORE_OK);
    assert_int_equal(add_t(s, &n2, "U", 12), STORE_ESYMLIMIT);
    assert_int_equal(commit(s, &n2), STORE_OK);
    assert_true(id_of(s, "S") > id_of(s, "R"));
    /* A snapshot drops the hole and keeps the order. */
    ck_buf m = {0};
    snapshot_io io = ck_io(&m);
    snapshot_info info;
    assert_int_equal(snapshot_save(s, NULL, 0, &io, &info), SNAPSHOT_OK);
    assert_int_equal(info.partitions, 5);
    store *r = ck_open(0);
    m.pos = 0;
    assert_int_equal(snapshot_load(r, &io, NULL, NULL, NULL), SNAPSHOT_OK);
    static const char *const order[] = {"OLD", "X", "R", "S", "T"};
    for (uint32_t i = 0; i < 5; i++)
        assert_int_equal(id_of(r, order[i]), i);
    free(m.b);
    store_close(r);
    store_batch_free(&n0);
    store_batch_free(&n1);
    store_batch_free(&n2);
    store_close(s);
}

/* ---- STORE_EFULL ------------------------------------------------------------ */

/* Enough trades of one symbol that no 1 MiB store can take them. */
#define BULK 40000

static void stage_bulk(store *s, store_batch *b, const char *sym)
{
    for (uint64_t i = 0; i < BULK; i++)
        assert_int_equal(add_t(s, b, sym, i), STORE_OK);
}

static uint32_t home(const store *s, const char *sym)
{
    store_key k;
    return store__key_make(&k, sym, strlen(sym)) & s->tmask;
}

/* Names whose hashes share home slots: clusters in the 64-slot table. */
static void colliding(const store *s, uint32_t slot, int n, char names[][16])
{
    for (int i = 0, c = 0; c < n; i++) {
        snprintf(names[c], 16, "C%d", i);
        if (home(s, names[c]) == slot)
            c++;
    }
}

static void test_efull_pops_symbols(void **st)
{
    (void)st;
    store *s = open_sym(1 << 20, 0);
    store_batch b;
    store_batch_init(&b);
    assert_int_equal(s->tmask, 63u);
    /* Two clusters that run into each other: homes 62 and 63 (so probing
     * wraps to 0 and 1) and home 0. */
    char h62[6][16], h63[6][16], h0[4][16];
    colliding(s, 62, 6, h62);
    colliding(s, 63, 6, h63);
    colliding(s, 0, 4, h0);
    /* Every other one exists; the rest will be new, interleaved in the
     * clusters. */
    for (int i = 0; i < 6; i += 2) {
        assert_int_equal(add_t(s, &b, h62[i], 1), STORE_OK);
        assert_int_equal(add_t(s, &b, h63[i], 1), STORE_OK);
    }
    assert_int_equal(add_t(s, &b, h0[0], 1), STORE_OK);
    assert_int_equal(commit(s, &b), STORE_OK);
    uint32_t nparts = s->nparts, nblocks = s->nblocks;
    assert_int_equal(nparts, 7);
    uint64_t table[64];
    memcpy(table, s->table, sizeof table);
    store_stats s0, s1;
    store_get_stats(s, &s0);

    for (int round = 0; round < 3; round++) {
        for (int i = 1; i < 6; i += 2) {
            assert_int_equal(add_t(s, &b, h63[i], 2), STORE_OK);
            assert_int_equal(add_t(s, &b, h62[i], 2), STORE_OK);
        }
        for (int i = 1; i < 4; i++)
            assert_int_equal(add_k(s, &b, h0[i], &kind_option_trade, 2), STORE_OK);
        assert_int_equal(add_t(s, &b, h62[0], 2), STORE_OK); /* an existing one too */
        stage_bulk(s, &b, round == 0 ? h62[1] : round == 1 ? h62[0] : "BULK");
        assert_int_equal(store_batch_reserve(s, &b), STORE_EFULL);
        assert_false(b.reserved);
        /* Exactly as before: ids, table slots, blocks, stats. */
        assert_int_equal(s->nparts, nparts);
        assert_int_equal(s->nblocks, nblocks);
        assert_int_equal(s->tmask, 63u);
        assert_memory_equal(s->table, table, sizeof table);
        store_get_stats(s, &s1);
        assert_memory_equal(&s0, &s1, sizeof s0);
        for (int i = 0; i < 6; i++) {
            assert_true((store_symbol_kind(s, h62[i], strlen(h62[i])) != NULL) == (i % 2 == 0));
            assert_true((store_symbol_kind(s, h63[i], strlen(h63[i])) != NULL) == (i % 2 == 0));
        }
        assert_null(store_symbol_kind(s, h0[1], strlen(h0[1])));
        assert_int_equal(id_of(s, h0[0]), 6);
        /* Retrying the same batch fails the same way (ids provisional again). */
        if (round == 0) {
            assert_int_equal(store_batch_reserve(s, &b), STORE_EFULL);
            assert_memory_equal(s->table, table, sizeof table);
        }
        store_batch_reset(&b);
    }
    /* Enough new ones that reserve grows the table first: in the rehashed
     * layout popping them must move entries back (backward shift). */
    char e[16];
    for (int i = 0; i < 45; i++) {
        snprintf(e, sizeof e, "E%d", i);
        assert_int_equal(add_t(s, &b, e, 4), STORE_OK);
        if (i % 9 == 0)
            assert_int_equal(add_t(s, &b, h63[1 + i % 4], 4), STORE_OK);
    }
    stage_bulk(s, &b, "E0");
    assert_int_equal(store_batch_reserve(s, &b), STORE_EFULL);
    store_batch_reset(&b);
    assert_int_equal(s->tmask, 127u);
    assert_int_equal(s->nparts, nparts);
    for (int i = 0; i < 6; i += 2) {
        assert_int_equal(id_of(s, h62[i]), (uint32_t)i);
        assert_int_equal(id_of(s, h63[i]), (uint32_t)i + 1);
    }
    assert_int_equal(id_of(s, h0[0]), 6);
    for (int i = 0; i < 45; i++) {
        snprintf(e, sizeof e, "E%d", i);
        assert_null(store_symbol_kind(s, e, strlen(e)));
    }
    assert_null(store_symbol_kind(s, h63[1], strlen(h63[1])));
    /* The next creation takes the ids the popped ones had. */
    assert_int_equal(add_t(s, &b, h63[5], 3), STORE_OK);
    assert_int_equal(add_t(s, &b, h63[1], 3), STORE_OK);
    assert_int_equal(commit(s, &b), STORE_OK);
    assert_int_equal(id_of(s, h63[5]), 7);
    assert_int_equal(id_of(s, h63[1]), 8);
    for (int i = 0; i < 6; i += 2)
        assert_int_equal(id_of(s, h62[i]), (uint32_t)i);
    store_batch_free(&b);
    store_close(s);
}

/* Random clusters, many rounds: after every refused batch each stored
 * symbol is found under its id and no new one is; now and then a small
 * batch of new symbols goes in, taking the next ids. */
static void test_efull_stress(void **st)
{
    (void)st;
    store *s = open_sym(1 << 20, 0);
    store_batch b;
    store_batch_init(&b);
    enum { MAXS = 1500 };
    static char names[MAXS][16];
    uint32_t have = 0;
    ck_rng = 4242;
    for (int round = 0; round < 60; round++) {
        uint64_t tbefore = (uint64_t)s->tmask + 1;
        uint32_t nnew = (uint32_t)(1 + ck_below(round % 3 ? 40 : 400));
        if (have + nnew > MAXS)
            nnew = MAXS - have;
        for (uint32_t i = 0; i < nnew; i++) {
            snprintf(names[have + i], 16, "S%u-%u", (unsigned)round, (unsigned)i);
            assert_int_equal(add_t(s, &b, names[have + i], i), STORE_OK);
            if (have && ck_below(2)) /* an existing symbol in between */
                assert_int_equal(add_t(s, &b, names[ck_below(have)], i), STORE_OK);
        }
        if (round % 4 == 3) {
            assert_int_equal(commit(s, &b), STORE_OK);
            for (uint32_t i = 0; i < nnew; i++)
                assert_int_equal(id_of(s, names[have + i]), have + i);
            have += nnew;
        } else {
            uint64_t *copy = malloc(tbefore * sizeof *copy);
            assert_non_null(copy);
            memcpy(copy, s->table, tbefore * sizeof *copy);
            stage_bulk(s, &b, names[have]);
            assert_int_equal(store_batch_reserve(s, &b), STORE_EFULL);
            store_batch_reset(&b);
            assert_int_equal(s->nparts, have);
            if ((uint64_t)s->tmask + 1 == tbefore) /* did not grow for the new ones */
                assert_memory_equal(s->table, copy, tbefore * sizeof *copy);
            free(copy);
            for (uint32_t i = 0; i < nnew; i++)
                assert_null(store_symbol_kind(s, names[have + i], strlen(names[have + i])));
        }
        for (uint32_t i = 0; i < have; i++)
            assert_int_equal(id_of(s, names[i]), i);
        store_stats ss;
        store_get_stats(s, &ss);
        assert_int_equal(ss.symbols, have);
        assert_int_equal(ss.bytes_pending, 0);
        if (have == MAXS)
            break;
    }
    assert_true(have > 500);
    store_batch_free(&b);
    store_close(s);
}

/* ---- the batch's table ------------------------------------------------------- */

static void test_many_new_symbols(void **st)
{
    (void)st;
    store *s = open_sym(0, 0);
    store_batch b;
    store_batch_init(&b);
    enum { N = 20000, T = 100000 };
    static uint32_t count[N], order[N];
    static char name[N][24];
    uint32_t seen = 0;
    ck_rng = 777;
    for (uint32_t i = 0; i < N; i++) /* long and short names: both key paths */
        snprintf(name[i], sizeof name[i], i % 3 ? "N%u" : "LONGER-NAME-%u", (unsigned)i);
    for (uint32_t t = 0; t < T; t++) {
        uint32_t i = (uint32_t)ck_below(t < N ? N : 2000); /* later: repeats */
        const kind *k = i % 7 == 0 ? &kind_option_trade : &kind_trade;
        if (count[i]++ == 0)
            order[seen++] = i;
        assert_int_equal(add_k(s, &b, name[i], k, t), STORE_OK);
        if (t % 997 == 0) { /* the other kind is refused, the kind is seen */
            const kind *other = k == &kind_trade ? &kind_option_trade : &kind_trade;
            assert_int_equal(add_k(s, &b, name[i], other, t), STORE_EKIND);
            assert_ptr_equal(store_batch_symbol_kind(s, &b, name[i], strlen(name[i])), k);
            assert_null(store_symbol_kind(s, name[i], strlen(name[i])));
        }
    }
    assert_int_equal(b.n, T);
    assert_int_equal(b.nsyms, seen);
    assert_int_equal(commit(s, &b), STORE_OK);
    /* A large table of new symbols is not kept by the reset batch. */
    assert_null(b.syms);
    store_stats ss;
    store_get_stats(s, &ss);
    assert_int_equal(ss.symbols, seen);
    assert_int_equal(ss.trades, T);
    for (uint32_t j = 0; j < seen; j++) { /* ids in order of first trade */
        store_symbol_info si;
        uint32_t i = order[j];
        assert_int_equal(store_symbol(s, name[i], strlen(name[i]), &si), STORE_OK);
        assert_int_equal(si.id, j);
        assert_int_equal(si.agg.count, count[i]);
        assert_ptr_equal(si.kind, i % 7 == 0 ? &kind_option_trade : &kind_trade);
    }
    /* A small table is kept and cleared: the same names are new again in
     * a batch on another store. */
    store *s2 = open_sym(0, 0);
    for (int r = 0; r < 3; r++) {
        for (uint32_t i = 0; i < 100; i++)
            assert_int_equal(add_t(s2, &b, name[i * 7 + 1 + (uint32_t)r], i), STORE_OK);
        assert_int_equal(b.nsyms, 100);
        store_batch_reset(&b);
        assert_int_equal(b.nsyms, 0);
        assert_non_null(b.sidx);
        assert_null(store_batch_symbol_kind(s2, &b, name[1], strlen(name[1])));
    }
    store_close(s2);
    store_batch_free(&b);
    store_close(s);
}

/* ---- batches staged at the same time (not the server's way) ------------------- */

static void test_concurrent_staging(void **st)
{
    (void)st;
    store *s = open_sym(0, 4);
    store_batch a, b;
    store_batch_init(&a);
    store_batch_init(&b);
    assert_int_equal(add_t(s, &a, "X", 1), STORE_OK);
    assert_int_equal(add_t(s, &b, "X", 2), STORE_OK);
    assert_int_equal(add_t(s, &b, "Y", 3), STORE_OK);
    assert_int_equal(store_batch_reserve(s, &a), STORE_OK);
    assert_int_equal(store_batch_reserve(s, &b), STORE_OK); /* X is a's now: shared */
    store_batch_commit(s, &b);
    store_batch_commit(s, &a);
    assert_int_equal(id_of(s, "X"), 0);
    assert_int_equal(id_of(s, "Y"), 1);
    store_symbol_info si;
    assert_int_equal(store_symbol(s, "X", 1, &si), STORE_OK);
    assert_int_equal(si.agg.count, 2);

    /* Kinds disagree: the later reserve is refused and creates nothing. */
    assert_int_equal(add_t(s, &a, "Z", 4), STORE_OK);
    assert_int_equal(add_t(s, &b, "W", 5), STORE_OK);
    assert_int_equal(add_k(s, &b, "Z", &kind_option_trade, 6), STORE_OK);
    assert_int_equal(commit(s, &a), STORE_OK);
    assert_int_equal(commit(s, &b), STORE_EKIND);
    assert_null(store_symbol_kind(s, "W", 1));
    /* Room for one more symbol, two batches each want their own. */
    assert_int_equal(add_t(s, &a, "P", 7), STORE_OK);
    assert_int_equal(add_t(s, &b, "Q", 8), STORE_OK);
    assert_int_equal(commit(s, &a), STORE_OK);
    assert_int_equal(commit(s, &b), STORE_ESYMLIMIT);
    assert_null(store_symbol_kind(s, "Q", 1));
    store_stats ss;
    store_get_stats(s, &ss);
    assert_int_equal(ss.symbols, 4);
    store_batch_free(&a);
    store_batch_free(&b);
    store_close(s);
}

/* ---- snapshots ---------------------------------------------------------------- */

/* Refused batches between the good ones change nothing a snapshot holds:
 * the same bytes as a store that never saw them, and a round trip answers
 * the same. */
static void test_snapshot_identical(void **st)
{
    (void)st;
    store *a = open_sym(1 << 20, 0), *c = open_sym(1 << 20, 0);
    store_batch b;
    store_batch_init(&b);
    char sym[16];
    uint64_t id = 1;
    ck_rng = 99; /* the same random fill in both */
    ck_fill(a, 40, 5000, TS0, &id);
    ck_rng = 99, id = 1;
    ck_fill(c, 40, 5000, TS0, &id);
    for (int round = 0; round < 20; round++) {
        for (store *x = a; x; x = x == a ? c : NULL) {
            for (int i = 0; i < 30; i++) {
                snprintf(sym, sizeof sym, "G%d", (round * 7 + i) % 90);
                assert_int_equal(add_t(x, &b, sym, (uint64_t)(round * 100 + i)), STORE_OK);
            }
            assert_int_equal(commit(x, &b), STORE_OK);
        }
        /* Refused in a only: reset at staging, and STORE_EFULL. */
        snprintf(sym, sizeof sym, "F%d", round);
        assert_int_equal(add_k(a, &b, sym, &kind_option_trade, 1), STORE_OK);
        store_batch_reset(&b);
        assert_int_equal(add_t(a, &b, sym, 1), STORE_OK);
        stage_bulk(a, &b, "G1");
        assert_int_equal(commit(a, &b), STORE_EFULL);
    }
    ck_buf ma = {0}, mc = {0};
    snapshot_io ia = ck_io(&ma), ic = ck_io(&mc);
    snapshot_info si;
    assert_int_equal(snapshot_save(a, NULL, 0, &ia, &si), SNAPSHOT_OK);
    assert_int_equal(snapshot_save(c, NULL, 0, &ic, NULL), SNAPSHOT_OK);
    assert_int_equal(si.partitions, 130);
    assert_int_equal(ma.len, mc.len);
    assert_memory_equal(ma.b, mc.b, ma.len);
    store *r = ck_open(0);
    ma.pos = 0;
    void *extra;
    size_t elen;
    assert_int_equal(snapshot_load(r, &ia, &extra, &elen, NULL), SNAPSHOT_OK);
    free(extra);
    ck_equal(a, r, 140);
    free(ma.b);
    free(mc.b);
    store_batch_free(&b);
    store_close(r);
    store_close(c);
    store_close(a);
}

/* ---- store_batch_symbols ------------------------------------------------ */

typedef struct walk {
    char seen[16][40]; /* "index:symbol" */
    int n, stop_at;
} walk;

static int walk_fn(void *ctx, uint32_t index, const char *sym, size_t len)
{
    walk *w = ctx;
    assert_true(w->n < 16);
    snprintf(w->seen[w->n], sizeof w->seen[0], "%u:%.*s", index, (int)len, sym);
    return ++w->n == w->stop_at ? 7 : 0;
}

/* Every symbol of a staged batch, known or new, once per run, with the
 * index of the run's first trade; the same after reserve; a non-zero
 * result stops the walk. Nothing changes. */
static void test_batch_symbols_walk(void **st)
{
    (void)st;
    store *s = open_sym(0, 0);
    store_batch b;
    store_batch_init(&b);
    assert_int_equal(add_t(s, &b, "OLD", 1), STORE_OK);
    assert_int_equal(commit(s, &b), STORE_OK);
    const char *seq[] = {"OLD", "OLD", "NEW1", "NEW1", "NEW1", "OLD", "NEW2", "NEW1"};
    for (uint64_t i = 0; i < 8; i++)
        assert_int_equal(add_t(s, &b, seq[i], 10 + i), STORE_OK);
    const char *want[] = {"0:OLD", "2:NEW1", "5:OLD", "6:NEW2", "7:NEW1"};
    for (int reserved = 0; reserved < 2; reserved++) {
        walk w = {.stop_at = -1};
        assert_int_equal(store_batch_symbols(s, &b, walk_fn, &w), 0);
        assert_int_equal(w.n, 5);
        for (int i = 0; i < 5; i++)
            assert_string_equal(w.seen[i], want[i]);
        walk w2 = {.stop_at = 3};
        assert_int_equal(store_batch_symbols(s, &b, walk_fn, &w2), 7);
        assert_int_equal(w2.n, 3);
        if (!reserved)
            assert_int_equal(store_batch_reserve(s, &b), STORE_OK);
    }
    store_batch_commit(s, &b);
    walk w = {.stop_at = -1};
    assert_int_equal(store_batch_symbols(s, &b, walk_fn, &w), 0); /* empty now */
    assert_int_equal(w.n, 0);
    store_symbol_info si; /* the walks left the batch whole: NEW1's 4 trades */
    assert_int_equal(store_symbol(s, "NEW1", 4, &si), STORE_OK);
    assert_int_equal(si.agg.count, 4);
    store_batch_free(&b);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reset_leaves_nothing), cmocka_unit_test(test_failed_kind_not_fixed),
        cmocka_unit_test(test_efull_pops_symbols),   cmocka_unit_test(test_efull_stress),
        cmocka_unit_test(test_many_new_symbols),     cmocka_unit_test(test_concurrent_staging),
        cmocka_unit_test(test_snapshot_identical),   cmocka_unit_test(test_release_pipelined),
        cmocka_unit_test(test_batch_symbols_walk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
