/* expect_abort — run fn(ctx) in a forked child and assert that it dies of
 * SIGABRT: how the tests check a debug-build assertion (a contract the
 * caller broke) without losing the test process. Include after cmocka.h.
 * Under NDEBUG, where the assertion is compiled out, the test is skipped. */
#ifndef SLOTD_TEST_EXPECT_ABORT_H
#define SLOTD_TEST_EXPECT_ABORT_H

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static inline void expect_abort(void (*fn)(void *ctx), void *ctx)
{
#ifdef NDEBUG
    (void)fn, (void)ctx;
    skip();
#else
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, 2); /* the assertion message is expected */
        fn(ctx);
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
#endif
}

#endif
