/* token — the shared secret of --token / --token-file: one loader, one
 * rule, one comparison, used by TCP HELLO (ingest.c) and HTTP (http.c).
 *
 * The rule, whichever flag gives the token: 1 to TOKEN_MAX (256) bytes of
 * visible ASCII (0x21-0x7e). Visible ASCII because the same token must be
 * sendable in an HTTP `Authorization: Bearer` header, where control bytes
 * are not allowed and spaces would be trimmed. A file may end in one
 * newline ("\n" or "\r\n"), which is not part of the token; anything else
 * in it is, so a file with a longer token is refused rather than cut.
 */
#ifndef SLOTD_TOKEN_H
#define SLOTD_TOKEN_H

#include <stddef.h>

#include "proto.h"
#include "server_err.h"

#define TOKEN_MAX PROTO_TOKEN_MAX

/* Errors: 0 or a TOKEN_E* code, declared in server_err.h (server_strerror). */

/* The token given by --token ARG (is_file 0) or --token-file ARG (1):
 * *out is a malloc'd NUL-terminated copy, or nothing on error. */
int token_load(const char *arg, int is_file, char **out);

/* Does `got` (len bytes, need not be NUL-terminated) equal `expected`?
 * Constant time in the length of `expected`: how much of a guess is right
 * does not show in the time the comparison takes. */
int token_equal(const char *expected, const char *got, size_t len);

#endif
