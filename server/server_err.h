/* server_err — server/'s one error vocabulary (libuv's convention): a
 * server function returns 0 or a negative code, and server_strerror names
 * any code one can return:
 *
 *   -4301 .. at most -4399   server/'s own, SERVER_ERRORS below
 *   -4201 .. at most -4299   core/'s, passed through (err.h, core_strerror)
 *   -4095 .. -1              -errno and libuv's UV_E* (on Linux UV_E* is
 *                            -errno, and libuv's own, UV_EOF, UV_EAI_*...,
 *                            lie in -4095 .. -3000)
 *
 * The ranges never meet, so no code is read as another's: a checkpoint
 * child's -EINTR or -EIO once fell into the snapshot codes and was logged
 * as "different record kinds" or "checksum mismatch". A checkpoint error is
 * simply -errno or a SNAPSHOT_E* code.
 *
 * Each code is declared once, in SERVER_ERRORS: its name, the short name a
 * log line gives it (err=segment_missing; docs/operations.md lists the
 * replay ones, so they are an interface) and the message. Compare codes by
 * name, never by number. proto/'s vocabulary is another thing: proto_code,
 * the wire's error codes (proto.h).
 */
#ifndef SLOTD_SERVER_ERR_H
#define SLOTD_SERVER_ERR_H

#include "err.h"

/* X(NAME, log name, message) */
#define SERVER_ERRORS(X)                                                                           \
    /* token.h */                                                                                  \
    X(TOKEN_EEMPTY, "token_empty", "the token is empty")                                           \
    /* more than TOKEN_MAX bytes */                                                                \
    X(TOKEN_ELONG, "token_too_long", "the token is longer than 256 bytes")                         \
    /* a byte outside 0x21-0x7e */                                                                 \
    X(TOKEN_ECHAR, "token_bad_byte",                                                               \
      "the token may hold only visible ASCII (no spaces or control bytes)")                        \
    /* errno says why */                                                                           \
    X(TOKEN_EFILE, "token_file_unreadable", "the token file cannot be read")                       \
    X(TOKEN_ENOMEM, "token_out_of_memory", "out of memory for the token")                          \
    /* flags.h: no such flag, or a stray argument */                                               \
    X(FLAGS_EUNKNOWN, "unknown_flag", "unknown flag")                                              \
    /* a value of the wrong form, or a missing one */                                              \
    X(FLAGS_EVALUE, "bad_flag_value", "bad flag value")                                            \
    /* well formed, out of the flag's range */                                                     \
    X(FLAGS_ERANGE, "flag_out_of_range", "flag value out of range")                                \
    X(FLAGS_ECONFIG, "config_unreadable", "config file cannot be read, or nests too deep")         \
    X(FLAGS_ECONFLICT, "flags_conflict", "flags contradict each other")                            \
    X(FLAGS_ENOMEM, "flags_out_of_memory", "out of memory for the flags")                          \
    /* replay.h (only REPLAY_ECORRUPT and REPLAY_EGAP are what --salvage is for) */                \
    X(REPLAY_ECORRUPT, "corrupt_record", "a damaged journal record with valid records after it")   \
    X(REPLAY_EGAP, "segment_missing", "a journal segment is missing or was emptied")               \
    /* logged by checkpoint_load as start_refused */                                               \
    X(REPLAY_ESNAPSHOT, "snapshot_missing", "no usable snapshot where the journal needs one")      \
    X(REPLAY_EMEMORY, "max_memory_too_small",                                                      \
      "the acknowledged trades need more than --max-memory")                                       \
    X(REPLAY_ESYMBOLS, "max_symbols_too_small",                                                    \
      "the acknowledged trades hold more distinct symbols than --max-symbols")                     \
    /* not even under replay's permissive limits */                                                \
    X(REPLAY_ERECORD, "record_not_applicable", "a journal record this build cannot apply")         \
    /* the OS refused memory (client table, store index) */                                        \
    X(REPLAY_ENOMEM, "out_of_memory", "out of memory during replay")                               \
    X(REPLAY_EIO, "data_dir_unreadable", "the data directory cannot be read, or is in use")        \
    X(REPLAY_ECANCELED, "canceled", "shutdown began during replay")

#define SERVER_ERR_BASE (-4300) /* the first code is SERVER_ERR_BASE - 1 */

enum server_err_index {
#define SERVER_ERR__INDEX(name, log, msg) SERVER_ERR__I_##name,
    SERVER_ERRORS(SERVER_ERR__INDEX)
#undef SERVER_ERR__INDEX
    SERVER_ERR_COUNT
};

enum server_err {
    SERVER_OK = 0,
    /* Success under each module's old name (FLAGS_OK is flags.h's). */
    TOKEN_OK = 0,
    REPLAY_OK = 0,
#define SERVER_ERR__VALUE(name, log, msg) name = SERVER_ERR_BASE - 1 - SERVER_ERR__I_##name,
    SERVER_ERRORS(SERVER_ERR__VALUE)
#undef SERVER_ERR__VALUE
};

#define SERVER_ERR_FIRST (SERVER_ERR_BASE - 1)
#define SERVER_ERR_LAST (SERVER_ERR_BASE - SERVER_ERR_COUNT)

_Static_assert(SERVER_ERR_FIRST < CORE_ERR_BASE - 99, "server codes must lie below core's range");
_Static_assert(SERVER_ERR_LAST > SERVER_ERR_BASE - 100,
               "server codes must stay within -4301 .. -4399");

/* Is rc one of server/'s own codes (0 is not)? */
static inline int server_err_is(int rc) { return rc <= SERVER_ERR_FIRST && rc >= SERVER_ERR_LAST; }

/* The message of any code a server function returns: "ok" for 0, its own,
 * core_strerror's, strerror(-rc) for -errno (what the logs always said:
 * "No such file or directory"), uv_strerror's for libuv's own, else
 * "unknown error". Never NULL. The text of an unknown libuv code lives in
 * a per-thread buffer until the thread's next call (glibc keeps strerror's
 * for an unknown errno the same way); every other is a static string. */
const char *server_strerror(int rc);

/* The log name of one of server/'s own codes (err=segment_missing), "ok"
 * for 0, "unknown" for anything else. Never NULL; a static string. */
const char *server_err_name(int rc);

#endif
