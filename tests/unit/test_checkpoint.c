/* test_checkpoint — the checkpoint error vocabulary (checkpoint.h).
 *
 * -errno from a checkpoint child (EINTR when it was killed, EIO from a
 * write or fsync) once fell into the SNAPSHOT_* range (-1 .. -8) and was
 * logged as "different record kinds" or "checksum mismatch". Every system
 * error must read as itself, every snapshot code as the snapshot's, and
 * the two ranges must never meet. The end-to-end case (a child's ENOENT in
 * the log) is test_checkpoint.py: test_child_error_reported_as_errno.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "checkpoint.h"
#include "snapshot.h"

static void test_errno_reads_as_errno(void **state)
{
    (void)state;
    for (int e = 1; e <= 4095; e++) {
        char got[256]; /* strerror's text for an unknown errno lives until its next call */
        snprintf(got, sizeof got, "%s", checkpoint_strerror(-e));
        assert_string_equal(got, strerror(e));
    }
    assert_string_equal(checkpoint_strerror(-EINTR), strerror(EINTR));
    assert_string_equal(checkpoint_strerror(-EIO), strerror(EIO));
}

static void test_snapshot_codes_read_as_snapshot(void **state)
{
    (void)state;
    assert_int_equal(checkpoint_from_snapshot(SNAPSHOT_OK), 0);
    assert_string_equal(checkpoint_strerror(0), "ok");
    for (int s = SNAPSHOT_EIO; s >= SNAPSHOT_EINVAL; s--) {
        int rc = checkpoint_from_snapshot(s);
        assert_true(rc < -4095); /* below every -errno */
        assert_string_equal(checkpoint_strerror(rc), snapshot_strerror(s));
    }
    assert_string_equal(checkpoint_strerror(checkpoint_from_snapshot(SNAPSHOT_ECRC)),
                        snapshot_strerror(SNAPSHOT_ECRC));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errno_reads_as_errno),
        cmocka_unit_test(test_snapshot_codes_read_as_snapshot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
