/* tls — TLS for slotd's sockets and its C client's through OpenSSL memory BIOs, so the libuv
 * loop keeps doing all socket I/O (no second loop, no thread per
 * connection): the caller reads ciphertext from its socket and feeds it in,
 * reads plaintext out; writes plaintext in and sends the ciphertext it
 * takes out. A tls_conn never touches a file descriptor.
 *
 *   socket --read--> tls_feed --> tls_read --> plaintext (protocol code)
 *   protocol code --> tls_write --> tls_take --write--> socket
 *
 * Handshake records (and alerts, session tickets) appear as output of
 * tls_feed/tls_read too: after either, send what tls_out_pending says.
 *
 * A tls_ctx is one certificate/key (and optional client CA: mutual TLS,
 * a client without a certificate is refused), TLS 1.2 minimum. Each
 * tls_conn holds its own reference to the SSL_CTX it was made from, so a
 * tls_ctx may be freed (replaced on SIGHUP) while its connections go on.
 *
 * Not thread-safe per object; different objects on different threads are.
 * Errors: 0 or a negative TLS_E* code (tls_strerror); details of the last
 * OpenSSL failure on this thread: tls_detail.
 */
#ifndef SLOTD_TLS_H
#define SLOTD_TLS_H

#include <stddef.h>

enum {
    TLS_OK = 0,
    TLS_CLOSED = 1,       /* tls_read: the peer sent close_notify */
    TLS_E_NOMEM = -1,
    TLS_E_CERT = -2,      /* certificate, key or CA file unusable */
    TLS_E_PROTO = -3,     /* handshake failed or the peer sent garbage */
    TLS_E_AGAIN = -4,     /* tls_write before the handshake finished */
};

typedef struct tls_ctx tls_ctx;
typedef struct tls_conn tls_conn;

/* Server context from PEM files; client_ca NULL = no client certificates
 * asked for. On error msg (cap bytes) says which file and why. */
int tls_ctx_server(tls_ctx **out, const char *cert, const char *key, const char *client_ca,
                   char *msg, size_t cap);
/* Client context (libslotd-client, tests): verifies the server against ca
 * (NULL: the system's CAs) and, if host is set, its name (an IP address:
 * the certificate's IP names; a host name is also sent as SNI); cert/key
 * (may be NULL; key NULL: in cert's file) are presented if asked. */
int tls_ctx_client(tls_ctx **out, const char *ca, const char *cert, const char *key,
                   const char *host, char *msg, size_t cap);
void tls_ctx_free(tls_ctx *ctx); /* NULL ok; connections made from it go on */

int tls_conn_new(tls_conn **out, const tls_ctx *ctx);
void tls_conn_free(tls_conn *t); /* NULL ok */

/* Ciphertext read from the socket. Always takes all of it (buffered). */
int tls_feed(tls_conn *t, const void *buf, size_t len);
/* Advance the handshake and decrypt into buf: *got bytes of plaintext
 * (0: more ciphertext needed). TLS_OK, TLS_CLOSED or an error. Call until
 * *got is 0 to drain what was fed. */
int tls_read(tls_conn *t, void *buf, size_t cap, size_t *got);
/* Encrypt all of buf. TLS_E_AGAIN before the handshake finished (nothing
 * taken: write again after a later tls_read). */
int tls_write(tls_conn *t, const void *buf, size_t len);
/* Queue close_notify (best effort; output to send follows). */
void tls_close_notify(tls_conn *t);

size_t tls_out_pending(const tls_conn *t); /* ciphertext bytes waiting to be sent */
size_t tls_take(tls_conn *t, void *buf, size_t cap); /* move up to cap of them into buf */
/* Ciphertext fed but not yet decrypted, or plaintext decrypted and not read. */
int tls_in_pending(const tls_conn *t);
int tls_handshake_done(const tls_conn *t);

/* The verified peer certificate's subject CN (mutual TLS), or "" */
void tls_peer_name(const tls_conn *t, char *buf, size_t cap);
/* The oldest queued OpenSSL error of this thread as text (queue cleared). */
void tls_detail(char *buf, size_t cap);
const char *tls_strerror(int rc);

#endif
