/* auth — per-client credentials from --auth-file: who may connect under
 * which client name, with which secret, to do what.
 *
 * One line per client, '#' comments and blank lines ignored:
 *
 *     name:salt:sha256hex:perms
 *
 * name is the HELLO client name (1-64 bytes, no ':', not reserved);
 * sha256hex is SHA-256 over the bytes of salt followed by the secret, in
 * lower- or upper-case hex, so the file never holds a secret; perms is a
 * comma-separated subset of ingest, query, subscribe (none: an empty
 * field). The secret follows the --token rule (1-256 bytes of visible
 * ASCII). Make a line with:
 *
 *     salt=$(openssl rand -hex 16)
 *     echo "feed-1:$salt:$(printf '%s' "$salt$SECRET" | sha256sum | cut -d' ' -f1):ingest,query"
 *
 * A client authenticates as exactly one name (HELLO's, or the Bearer
 * token's "name:secret"), so it cannot act under another client's name.
 * Loaded at start and on SIGHUP (a table that does not load leaves the one
 * in use). Errors: 0 or a negative AUTH_E* (auth_strerror); messages name
 * the file and line, never a secret or hash.
 */
#ifndef SLOTD_AUTH_H
#define SLOTD_AUTH_H

#include <stddef.h>

enum {
    AUTH_INGEST = 1u,    /* T batches, and Q delete / HTTP DELETE */
    AUTH_QUERY = 2u,     /* Q queries, HTTP data endpoints */
    AUTH_SUBSCRIBE = 4u, /* reserved for subscriptions: parsed, not used yet */
    AUTH_ALL = 7u,
};

enum {
    AUTH_OK = 0,
    AUTH_E_NOMEM = -1,
    AUTH_E_FILE = -2,    /* cannot read the file */
    AUTH_E_SYNTAX = -3,  /* a line is not name:salt:sha256hex:perms */
    AUTH_E_DENIED = -4,  /* unknown name or wrong secret (which one is not said) */
};

typedef struct auth auth;

int auth_load(auth **out, const char *path, char *msg, size_t cap);
void auth_free(auth *a); /* NULL ok */
size_t auth_count(const auth *a);

/* Does secret (slen bytes) belong to name (nlen bytes)? *perms then.
 * Takes the same work for an unknown name as for a wrong secret, and
 * compares digests in constant time. */
int auth_check(const auth *a, const char *name, size_t nlen, const char *secret, size_t slen,
               unsigned *perms);

const char *auth_strerror(int rc);

#endif
