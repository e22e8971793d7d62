/* test_workload_pack — the W1 encoder writes what the workload generated, in
 * each of the four shapes (map/array x px text/float), read back through
 * msgpack-c's own parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "fixp.h"
#include "kind.h"
#include "workload_pack.h"

#define N 300

static const msgpack_object *field(const msgpack_object *t, int flags, int i, const char *key)
{
    if (flags & WORKLOAD_ARRAY) {
        assert_int_equal(t->type, MSGPACK_OBJECT_ARRAY);
        assert_int_equal(t->via.array.size, 6);
        return &t->via.array.ptr[i];
    }
    assert_int_equal(t->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(t->via.map.size, 6);
    const msgpack_object_kv *kv = &t->via.map.ptr[i];
    assert_int_equal(kv->key.type, MSGPACK_OBJECT_STR);
    assert_int_equal(kv->key.via.str.size, strlen(key));
    assert_memory_equal(kv->key.via.str.ptr, key, strlen(key));
    return &kv->val;
}

static void str_is(const msgpack_object *o, const char *s, size_t n)
{
    assert_int_equal(o->type, MSGPACK_OBJECT_STR);
    assert_int_equal(o->via.str.size, n);
    assert_memory_equal(o->via.str.ptr, s, n);
}

static void check_shape(int flags)
{
    workload gen, ref;
    assert_int_equal(workload_init(&gen, 50, 1.1, 7), 0);
    assert_int_equal(workload_init(&ref, 50, 1.1, 7), 0);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    workload_pack_batch(&pk, &gen, 42, N, flags);

    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, sb.size); /* one message, nothing after it */
    const msgpack_object *m = &u.data;
    assert_int_equal(m->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(m->via.array.size, 3);
    str_is(&m->via.array.ptr[0], "T", 1);
    assert_int_equal(m->via.array.ptr[1].via.u64, 42);
    const msgpack_object *trades = &m->via.array.ptr[2];
    assert_int_equal(trades->via.array.size, N);
    for (uint32_t i = 0; i < N; i++) {
        workload_trade t;
        workload_next(&ref, &t);
        const msgpack_object *o = &trades->via.array.ptr[i];
        char sym[16], px[FIXP_STRLEN];
        str_is(field(o, flags, 0, "sym"), sym, (size_t)workload_symbol(t.sym, sym));
        assert_int_equal(field(o, flags, 1, "ts")->via.i64, t.ts);
        const msgpack_object *p = field(o, flags, 2, "px");
        if (flags & WORKLOAD_PX_FLOAT) {
            assert_int_equal(p->type, MSGPACK_OBJECT_FLOAT64);
            int64_t back;
            assert_int_equal(fixp_from_double(p->via.f64, &back), FIXP_OK);
            assert_int_equal(back, t.px);
        } else {
            str_is(p, px, fixp_format(t.px, px));
        }
        assert_int_equal(field(o, flags, 3, "qty")->via.i64 * FIXP_SCALE, t.qty);
        str_is(field(o, flags, 4, "side"), t.side == KIND_SIDE_SELL ? "S" : "B", 1);
        assert_int_equal(field(o, flags, 5, "id")->via.u64, t.id);
    }
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    workload_free(&gen);
    workload_free(&ref);
}

static void test_map_text(void **st) { (void)st; check_shape(0); }
static void test_map_float(void **st) { (void)st; check_shape(WORKLOAD_PX_FLOAT); }
static void test_array_text(void **st) { (void)st; check_shape(WORKLOAD_ARRAY); }
static void test_array_float(void **st) { (void)st; check_shape(WORKLOAD_ARRAY | WORKLOAD_PX_FLOAT); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_text),
        cmocka_unit_test(test_map_float),
        cmocka_unit_test(test_array_text),
        cmocka_unit_test(test_array_float),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
