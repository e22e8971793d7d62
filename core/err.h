/* err — core/'s one error vocabulary (libuv's convention): a core function
 * returns 0 or a negative code from enum core_err, and core_strerror names
 * any of them.
 *
 * Every code is declared once, in CORE_ERRORS below (name, message; the
 * comment says when it is returned). The values lie in CORE_ERR_FIRST ..
 * CORE_ERR_LAST (-4201 .. at most -4299): below -4095, so no code can be
 * mistaken for a -errno (Linux keeps those in -4095 .. -1) or one of
 * libuv's UV_E* (-4095 .. -1 as well), and above server/'s own range
 * (server_err.h, -4301 ...), so a caller one layer up can pass a core code
 * through and still tell it apart. The per-module names (STORE_EFULL,
 * SNAPSHOT_ECRC, FIXP_EINVAL, ...) are the codes; the value of a code is
 * its position in the list, so compare by name, never by number.
 *
 * Messages are what operators and clients read (the ERR message of a
 * refused batch quotes some of them): whole phrases, no trailing period.
 */
#ifndef SLOTD_ERR_H
#define SLOTD_ERR_H

/* X(NAME, message) */
#define CORE_ERRORS(X)                                                                             \
    /* store.h */                                                                                  \
    X(STORE_EFULL, "STORE_FULL: the memory cap would be exceeded")                                 \
    /* not 1..31 bytes of valid UTF-8, or has control characters */                                \
    X(STORE_ESYMBOL, "symbol must be 1-31 bytes of UTF-8 without control characters")              \
    X(STORE_EKIND, "symbol already holds another record kind")                                     \
    /* more distinct symbols than max_symbols */                                                   \
    X(STORE_ESYMLIMIT, "too many distinct symbols")                                                \
    /* the OS refused memory for the symbol table */                                               \
    X(STORE_ENOMEM, "out of memory for the symbol table")                                          \
    /* no such symbol, or it has no trades yet */                                                  \
    X(STORE_ENOTFOUND, "no such symbol")                                                           \
    X(STORE_EINVAL, "invalid query parameter")                                                     \
    X(STORE_ELIMIT, "query exceeds a work bound: narrow it")                                       \
    /* snapshot.h: the read or write function failed (or the stream ended) */                      \
    X(SNAPSHOT_EIO, "read or write failed, or the stream ended early")                             \
    /* not a snapshot, or a field that cannot be right */                                          \
    X(SNAPSHOT_EFORMAT, "not a slotd snapshot, or damaged")                                        \
    X(SNAPSHOT_EVERSION, "snapshot format version not supported by this build")                    \
    /* the kind fingerprint differs (snapshot.h) */                                                \
    X(SNAPSHOT_EKIND, "snapshot written by a build with different record kinds")                   \
    X(SNAPSHOT_ECRC, "snapshot checksum mismatch: the file is damaged")                            \
    /* the store's memory cap or symbol limit is too small */                                      \
    X(SNAPSHOT_EFULL, "snapshot does not fit --max-memory / --max-symbols")                        \
    X(SNAPSHOT_ENOMEM, "out of memory loading the snapshot")                                       \
    /* bad arguments, or loading into a non-empty store */                                         \
    X(SNAPSHOT_EINVAL, "invalid argument (or the store is not empty)")                             \
    /* fixp.h: "", "1e5", "12a", " 1" */                                                           \
    X(FIXP_EINVAL, "not a decimal number")                                                         \
    /* a non-zero 9th decimal */                                                                   \
    X(FIXP_EPRECISION, "more than 8 decimal places")                                               \
    /* |value| > INT64_MAX units of 1e-8 */                                                        \
    X(FIXP_ERANGE, "number out of range (magnitude at most 92233720368.54775807)")                 \
    /* said by callers; the parsers never say it */                                                \
    X(FIXP_ENEG, "negative number where only values >= 0 are allowed")                             \
    X(FIXP_ENAN, "NaN or infinity")                                                                \
    /* kind.h (kind_check) */                                                                      \
    X(KIND_EMISSING, "a required field is missing")                                                \
    X(KIND_ERANGE, "a value does not fit its field")                                               \
    X(KIND_EVALUE, "not a valid value for the field's type")                                       \
    /* duration.h: "", "5x", "-1s", "1 s", "1e3s" */                                               \
    X(DURATION_ESYNTAX, "not a duration")                                                          \
    /* not a whole number of ns: "1.5ns" */                                                        \
    X(DURATION_EPRECISION, "finer than a nanosecond")                                              \
    /* more than INT64_MAX ns */                                                                   \
    X(DURATION_ERANGE, "longer than ~292 years (int64 ns)")                                       \
    /* cpage.h: the compact form would not be smaller (the page stays wide) */                     \
    X(CPAGE_ENOGAIN, "page does not compress")                                                     \
    /* a compact page body that cpage_encode cannot have written */                                \
    X(CPAGE_EFORMAT, "damaged compact page")

#define CORE_ERR_BASE (-4200) /* the first code is CORE_ERR_BASE - 1 */

/* Positions in the list, for the values below and core_strerror's table. */
enum core_err_index {
#define CORE_ERR__INDEX(name, msg) CORE_ERR__I_##name,
    CORE_ERRORS(CORE_ERR__INDEX)
#undef CORE_ERR__INDEX
    CORE_ERR_COUNT
};

enum core_err {
    CORE_OK = 0,
    /* Success under each module's old name, so call sites read as before. */
    STORE_OK = 0,
    SNAPSHOT_OK = 0,
    FIXP_OK = 0,
    KIND_OK = 0,
    DURATION_OK = 0,
    CPAGE_OK = 0,
#define CORE_ERR__VALUE(name, msg) name = CORE_ERR_BASE - 1 - CORE_ERR__I_##name,
    CORE_ERRORS(CORE_ERR__VALUE)
#undef CORE_ERR__VALUE
};

#define CORE_ERR_FIRST (CORE_ERR_BASE - 1)
#define CORE_ERR_LAST (CORE_ERR_BASE - CORE_ERR_COUNT)

_Static_assert(CORE_ERR_FIRST < -4095, "core codes must lie below every -errno and UV_E* code");
_Static_assert(CORE_ERR_LAST > CORE_ERR_BASE - 100, "core codes must stay within -4201 .. -4299");

/* Is rc one of the codes above (0 is not)? */
static inline int core_err_is(int rc) { return rc <= CORE_ERR_FIRST && rc >= CORE_ERR_LAST; }

/* The message of a core code; "ok" for 0, "unknown error" for anything
 * else. Never NULL; a static string. */
const char *core_strerror(int rc);

#endif
