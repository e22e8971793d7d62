/* duration — the one duration grammar: server flags, the query `interval`
 * and slotload's --duration all parse with duration_parse, so "5m" or
 * "1.5s" means the same everywhere.
 *
 *   duration = digits [ "." digits ] [ unit ]
 *   unit     = ns | us | µs | ms | s | m | h | d
 *
 * A bare number is SECONDS (what an operator means by `--idle-timeout 300`).
 * A fraction is allowed when the result is a whole number of nanoseconds
 * ("1.5s", "0.25ms"; not "1.5ns"); at most 18 fraction digits. No sign, no
 * spaces, no exponent, units are lower case ("M" could be a month). The
 * result is int64 ns, 0 included: each user bounds it (a flag's range, a
 * positive interval). Plain C, no I/O (core/).
 */
#ifndef SLOTD_DURATION_H
#define SLOTD_DURATION_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define DURATION_NS_PER_SEC 1000000000LL

/* What is accepted, for error messages: "'5x' is not a duration (e.g. ...)". */
#define DURATION_EXAMPLES "e.g. 90s, 500ms, 5m"

/* Errors: 0 or a DURATION_E* code, declared in err.h (core_strerror). */

/* Parse s[0..len) into *ns; on error *ns is untouched. */
int duration_parse(const char *s, size_t len, int64_t *ns);

/* ns >= 0 in its largest exact unit ("0", "1500ms", "7d", "300s" -> "5m"):
 * what duration_parse reads back to the same value. cap >= 24 always fits. */
void duration_format(int64_t ns, char *buf, size_t cap);

#endif
