/* prefault — the store's next slab pages faulted in off the loop thread.
 *
 * The first write to each 4 KiB page of new slab memory is a page fault,
 * taken by whoever writes first; on this kind of VM that was a third of
 * the loop thread's time under load (issue #13). The slab tells, as it
 * carves, which bytes it will carve next (slab.h, slab_set_ahead); this
 * module hands each such range to its own thread, which faults it in with
 * madvise(MADV_POPULATE_WRITE): pages are allocated and zeroed there,
 * their contents never changed, so it is safe while the loop is already
 * writing into the range. Where the kernel lacks it (before Linux 5.14)
 * the thread stops and the loop takes its faults as before.
 *
 * Ranges are queued in a small ring; when the ring is full the oldest
 * range not yet started is dropped (the loop then faults it itself), so
 * the loop never waits. prefault_attach may be called from the thread that
 * owns the store; the hook then runs on that thread.
 */
#ifndef SLOTD_PREFAULT_H
#define SLOTD_PREFAULT_H

#include <stddef.h>

#include "store.h"

/* Bytes ahead of each slab class's carve pointer kept faulted in. */
#define PREFAULT_AHEAD ((size_t)128 << 10)

typedef struct prefault prefault;

/* Start the thread and attach it to s. 0 or -errno. */
int prefault_start(prefault **out, store *s);
/* Detach from the store (if it is still open: pass NULL otherwise), stop
 * and join the thread, free. NULL is a no-op. */
void prefault_stop(prefault *p, store *s);
/* Bytes faulted in so far (for tests and /stats-like checks). */
size_t prefault_done_bytes(prefault *p);

#endif
