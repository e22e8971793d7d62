/* prefault — see prefault.h. */
#include "prefault.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14; older headers lack it */
#endif

#define PREFAULT_RING 64 /* ranges queued; one per PREFAULT_AHEAD / 2 carved */

typedef struct range {
    void *from;
    size_t len;
} range;

struct prefault {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    range ring[PREFAULT_RING];
    unsigned head, n; /* queued: ring[head .. head + n) mod PREFAULT_RING */
    int stop;
    size_t done; /* bytes faulted in; under mu */
};

/* The slab's hook: queue, never wait for the thread. */
static void prefault_hook(void *ctx, void *from, size_t len)
{
    prefault *p = ctx;
    pthread_mutex_lock(&p->mu);
    if (p->n == PREFAULT_RING) { /* the thread is behind: the oldest goes */
        p->head = (p->head + 1) % PREFAULT_RING;
        p->n--;
    }
    p->ring[(p->head + p->n) % PREFAULT_RING] = (range){from, len};
    p->n++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* One load per page through this process's own mapping. madvise faults
 * the pages in from inside the kernel; a hypervisor that shadows the
 * guest's page tables (this VM's) still builds its entry for each page
 * at the first access from user space, which would otherwise be the
 * loop's. A load never changes a byte; it is in assembly so that the
 * compiler, and ThreadSanitizer, see no access (the loop may be writing
 * the same page: a plain read would be a data race in C's terms). */
static void prefault_touch(uintptr_t a, uintptr_t e)
{
    for (uintptr_t p = a; p < e; p += 4096) {
#if defined(__x86_64__)
        unsigned char v;
        __asm__ volatile("movb (%1), %0" : "=q"(v) : "r"(p) : "memory");
#elif defined(__aarch64__)
        unsigned v;
        __asm__ volatile("ldrb %w0, [%1]" : "=r"(v) : "r"(p) : "memory");
#endif
    }
}

static void *prefault_main(void *arg)
{
    prefault *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->n && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop)
            break;
        range r = p->ring[p->head];
        p->head = (p->head + 1) % PREFAULT_RING;
        p->n--;
        pthread_mutex_unlock(&p->mu);
        /* The slab's ranges are page-aligned only by chance: whole pages
         * around them (the page the range starts in is the slab's too). */
        uintptr_t a = (uintptr_t)r.from & ~(uintptr_t)4095;
        uintptr_t e = ((uintptr_t)r.from + r.len + 4095) & ~(uintptr_t)4095;
        int rc = madvise((void *)a, e - a, MADV_POPULATE_WRITE);
        int err = rc ? errno : 0;
        if (!rc)
            prefault_touch(a, e);
        pthread_mutex_lock(&p->mu);
        if (err == EINVAL || err == ENOSYS) /* no MADV_POPULATE_WRITE: the loop faults */
            break;
        if (!rc)
            p->done += e - a;
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int prefault_start(prefault **out, store *s)
{
    *out = NULL;
    prefault *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    int rc = pthread_create(&p->thread, NULL, prefault_main, p);
    if (rc != 0) {
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return -rc;
    }
    store_set_ahead(s, prefault_hook, p, PREFAULT_AHEAD);
    *out = p;
    return 0;
}

void prefault_stop(prefault *p, store *s)
{
    if (!p)
        return;
    if (s)
        store_set_ahead(s, NULL, NULL, 0);
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

size_t prefault_done_bytes(prefault *p)
{
    pthread_mutex_lock(&p->mu);
    size_t d = p->done;
    pthread_mutex_unlock(&p->mu);
    return d;
}
