/* tsan_thrd — C11 thread creation through pthread_create, in the
 * ThreadSanitizer build only (server/CMakeLists.txt).
 *
 * librdkafka starts its threads with C11 thrd_create, and glibc (>= 2.34)
 * implements that without calling the exported pthread_create, which is
 * what GCC 12's libtsan intercepts. So TSan never registered librdkafka's
 * threads: the first allocation in one (getaddrinfo -> realloc in an
 * rdk:broker thread) segfaulted inside TSan's allocator (a thread cache at
 * address 0x8), and test_kafka had to be skipped. Defined in the
 * executable, these take precedence over glibc's for librdkafka too, and
 * create, join and detach through the intercepted pthread calls. The rest
 * of C11 threads (mtx_*, cnd_*) stays glibc's: TSan sees no sync inside
 * librdkafka, whose own interceptor calls tests/tsan.supp therefore ignores
 * (called_from_lib). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

typedef struct tsan_thrd_start {
    thrd_start_t fn;
    void *arg;
} tsan_thrd_start;

/* A C11 start function returns an int; pthread's returns a pointer. */
static void *tsan_thrd_run(void *p)
{
    tsan_thrd_start t = *(tsan_thrd_start *)p;
    free(p);
    return (void *)(intptr_t)t.fn(t.arg);
}

int thrd_create(thrd_t *thr, thrd_start_t fn, void *arg)
{
    tsan_thrd_start *t = malloc(sizeof *t);
    if (!t)
        return thrd_nomem;
    t->fn = fn;
    t->arg = arg;
    int rc = pthread_create(thr, NULL, tsan_thrd_run, t);
    if (rc == 0)
        return thrd_success;
    free(t);
    return rc == EAGAIN ? thrd_nomem : thrd_error;
}

int thrd_join(thrd_t thr, int *res)
{
    void *r;
    if (pthread_join(thr, &r) != 0)
        return thrd_error;
    if (res)
        *res = (int)(intptr_t)r;
    return thrd_success;
}

int thrd_detach(thrd_t thr) { return pthread_detach(thr) == 0 ? thrd_success : thrd_error; }
