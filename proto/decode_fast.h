/* decode_fast — the common trade, staged without the general machinery.
 * Internal to proto/ (decode.c calls it): not an API. See decode_fast.c.
 */
#ifndef SLOTD_DECODE_FAST_H
#define SLOTD_DECODE_FAST_H

#include <stdint.h>

#include "store.h"

/* Can trades of a batch declaring kind `declared` (NULL: none) go through
 * dec_fast? */
int dec_fast_usable(const kind *declared);

/* Stage up to n trades starting at *p (bytes up to end), as long as each is
 * a plain `trade` in the shape clients send, its ts <= max_ts, and the store
 * takes it. Returns
 * how many were staged, *p moved past them; the trade at *p then is left
 * untouched (nothing read into the store, nothing staged) for the general
 * decoder, which decides it. */
uint32_t dec_fast(const uint8_t **p, const uint8_t *end, store *s, store_batch *b, uint32_t n,
                  int64_t max_ts);

#endif
