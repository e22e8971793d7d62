/* tls — OpenSSL behind two memory BIOs per connection (see tls.h). */
#include "tls.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

struct tls_ctx {
    SSL_CTX *ctx;
    char *sni; /* client: the host name sent in the ClientHello, or NULL */
};

struct tls_conn {
    SSL *ssl;
    BIO *in, *out; /* owned by ssl: in = ciphertext from the peer, out = to it */
};

const char *tls_strerror(int rc)
{
    switch (rc) {
    case TLS_OK: return "ok";
    case TLS_CLOSED: return "closed by the peer";
    case TLS_E_NOMEM: return "out of memory";
    case TLS_E_CERT: return "certificate, key or CA unusable";
    case TLS_E_PROTO: return "TLS handshake or record error";
    case TLS_E_AGAIN: return "TLS handshake not finished";
    }
    return "unknown TLS error";
}

void tls_detail(char *buf, size_t cap)
{
    unsigned long e = ERR_get_error();
    if (cap == 0)
        return;
    if (e == 0)
        snprintf(buf, cap, "no detail");
    else
        ERR_error_string_n(e, buf, cap);
    ERR_clear_error(); /* the rest is about the same failure */
}

/* "what 'path': openssl's reason" into msg, and the error code. */
static int ctx_fail(SSL_CTX *ctx, int rc, const char *what, const char *path, char *msg, size_t cap)
{
    char detail[256];
    tls_detail(detail, sizeof detail);
    if (cap)
        snprintf(msg, cap, "%s '%s': %s", what, path ? path : "", detail);
    SSL_CTX_free(ctx);
    return rc;
}

static int ctx_new(tls_ctx **out, SSL_CTX *ctx, const char *sni, char *msg, size_t cap)
{
    tls_ctx *t = calloc(1, sizeof *t);
    if (!t || (sni && !(t->sni = strdup(sni)))) {
        free(t);
        SSL_CTX_free(ctx);
        if (cap)
            snprintf(msg, cap, "out of memory");
        return TLS_E_NOMEM;
    }
    t->ctx = ctx;
    *out = t;
    return TLS_OK;
}

/* What both sides share: TLS 1.2 minimum, no renegotiation (a CPU lever
 * for a peer), and memory BIO writes that may be retried from elsewhere. */
static SSL_CTX *ctx_base(const SSL_METHOD *m)
{
    SSL_CTX *ctx = SSL_CTX_new(m);
    if (!ctx)
        return NULL;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return ctx;
}

static int ctx_cert(SSL_CTX *ctx, const char *cert, const char *key, char *msg, size_t cap)
{
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        return ctx_fail(ctx, TLS_E_CERT, "--tls-cert", cert, msg, cap);
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        return ctx_fail(ctx, TLS_E_CERT, "--tls-key", key, msg, cap);
    if (SSL_CTX_check_private_key(ctx) != 1)
        return ctx_fail(ctx, TLS_E_CERT, "--tls-key does not match --tls-cert", key, msg, cap);
    return TLS_OK;
}

int tls_ctx_server(tls_ctx **out, const char *cert, const char *key, const char *client_ca,
                   char *msg, size_t cap)
{
    assert(out && cert && key);
    int rc;
    ERR_clear_error();
    SSL_CTX *ctx = ctx_base(TLS_server_method());
    if (!ctx)
        return ctx_fail(NULL, TLS_E_NOMEM, "TLS context", "", msg, cap);
    if ((rc = ctx_cert(ctx, cert, key, msg, cap)) != TLS_OK)
        return rc;
    if (client_ca) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca);
        if (!names || SSL_CTX_load_verify_locations(ctx, client_ca, NULL) != 1) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            return ctx_fail(ctx, TLS_E_CERT, "--tls-client-ca", client_ca, msg, cap);
        }
        SSL_CTX_set_client_CA_list(ctx, names); /* takes names */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    /* No session cache shared across connections: every handshake is
     * checked in full (client certificates included), and a reload cannot
     * resume into an old context's sessions. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
    return ctx_new(out, ctx, NULL, msg, cap);
}

int tls_ctx_client(tls_ctx **out, const char *ca, const char *cert, const char *key,
                   const char *host, char *msg, size_t cap)
{
    assert(out);
    int rc;
    ERR_clear_error();
    SSL_CTX *ctx = ctx_base(TLS_client_method());
    if (!ctx)
        return ctx_fail(NULL, TLS_E_NOMEM, "TLS context", "", msg, cap);
    if ((ca ? SSL_CTX_load_verify_locations(ctx, ca, NULL) : SSL_CTX_set_default_verify_paths(ctx)) != 1)
        return ctx_fail(ctx, TLS_E_CERT, "CA", ca ? ca : "(system default)", msg, cap);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (cert && (rc = ctx_cert(ctx, cert, key ? key : cert, msg, cap)) != TLS_OK)
        return rc;
    const char *sni = NULL;
    if (host) {
        /* An address is checked against the certificate's IP names (and is
         * not sent as SNI, which names hosts only). */
        unsigned char addr[16];
        int ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
        X509_VERIFY_PARAM *p = SSL_CTX_get0_param(ctx);
        if ((ip ? X509_VERIFY_PARAM_set1_ip_asc(p, host) : X509_VERIFY_PARAM_set1_host(p, host, 0)) != 1)
            return ctx_fail(ctx, TLS_E_NOMEM, "host", host, msg, cap);
        sni = ip ? NULL : host;
    }
    return ctx_new(out, ctx, sni, msg, cap);
}

void tls_ctx_free(tls_ctx *ctx)
{
    if (!ctx)
        return;
    SSL_CTX_free(ctx->ctx); /* connections keep their own reference (SSL_new) */
    free(ctx->sni);
    free(ctx);
}

int tls_conn_new(tls_conn **out, const tls_ctx *ctx)
{
    assert(out && ctx);
    tls_conn *t = calloc(1, sizeof *t);
    if (!t)
        return TLS_E_NOMEM;
    t->ssl = SSL_new(ctx->ctx);
    t->in = BIO_new(BIO_s_mem());
    t->out = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->in || !t->out) {
        BIO_free(t->in);
        BIO_free(t->out);
        SSL_free(t->ssl);
        free(t);
        return TLS_E_NOMEM;
    }
    /* An empty input BIO means "no more yet", not end of stream: SSL_read
     * then says WANT_READ instead of failing. */
    BIO_set_mem_eof_return(t->in, -1);
    BIO_set_mem_eof_return(t->out, -1);
    SSL_set_bio(t->ssl, t->in, t->out); /* ssl owns both now */
    if (SSL_is_server(t->ssl)) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        if (ctx->sni && SSL_set_tlsext_host_name(t->ssl, ctx->sni) != 1) {
            SSL_free(t->ssl);
            free(t);
            return TLS_E_NOMEM;
        }
    }
    *out = t;
    return TLS_OK;
}

void tls_conn_free(tls_conn *t)
{
    if (!t)
        return;
    SSL_free(t->ssl);
    free(t);
}

int tls_feed(tls_conn *t, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        int n = len > INT_MAX ? INT_MAX : (int)len;
        int w = BIO_write(t->in, p, n);
        if (w <= 0)
            return TLS_E_NOMEM; /* a memory BIO fails only to grow */
        p += w;
        len -= (size_t)w;
    }
    return TLS_OK;
}

/* SSL_read/SSL_write/SSL_do_handshake's r as our code. */
static int ssl_result(tls_conn *t, int r)
{
    switch (SSL_get_error(t->ssl, r)) {
    case SSL_ERROR_NONE:
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: /* memory BIOs: never really, but harmless */
        return TLS_OK;
    case SSL_ERROR_ZERO_RETURN:
        return TLS_CLOSED;
    }
    return TLS_E_PROTO;
}

int tls_read(tls_conn *t, void *buf, size_t cap, size_t *got)
{
    *got = 0;
    ERR_clear_error(); /* SSL_get_error reads this thread's queue */
    if (!SSL_is_init_finished(t->ssl)) {
        int r = SSL_do_handshake(t->ssl);
        if (r != 1)
            return ssl_result(t, r);
    }
    if (cap == 0)
        return TLS_OK;
    size_t n = 0;
    int r = SSL_read_ex(t->ssl, buf, cap, &n);
    if (r == 1) {
        *got = n;
        return TLS_OK;
    }
    return ssl_result(t, r);
}

int tls_write(tls_conn *t, const void *buf, size_t len)
{
    if (!SSL_is_init_finished(t->ssl))
        return TLS_E_AGAIN;
    if (len == 0)
        return TLS_OK;
    ERR_clear_error();
    size_t n = 0;
    /* The output BIO grows as needed, so all of it is taken at once. */
    int r = SSL_write_ex(t->ssl, buf, len, &n);
    if (r == 1 && n == len)
        return TLS_OK;
    int rc = ssl_result(t, r);
    return rc == TLS_OK ? TLS_E_PROTO : rc;
}

void tls_close_notify(tls_conn *t)
{
    ERR_clear_error();
    if (SSL_is_init_finished(t->ssl))
        (void)SSL_shutdown(t->ssl); /* only queues the alert here */
    ERR_clear_error();
}

size_t tls_out_pending(const tls_conn *t) { return BIO_ctrl_pending(t->out); }

size_t tls_take(tls_conn *t, void *buf, size_t cap)
{
    size_t n = 0;
    if (cap && BIO_read_ex(t->out, buf, cap, &n) != 1)
        return 0;
    return n;
}

int tls_in_pending(const tls_conn *t)
{
    return BIO_ctrl_pending(t->in) > 0 || SSL_pending(t->ssl) > 0;
}

int tls_handshake_done(const tls_conn *t) { return SSL_is_init_finished(t->ssl); }

void tls_peer_name(const tls_conn *t, char *buf, size_t cap)
{
    if (cap == 0)
        return;
    buf[0] = 0;
    X509 *x = SSL_get0_peer_certificate(t->ssl);
    if (!x || SSL_get_verify_result(t->ssl) != X509_V_OK)
        return;
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, (int)cap) < 0)
        buf[0] = 0;
}
