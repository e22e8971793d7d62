/* test_tls — the memory-BIO pump: a server and a client tls_conn talking
 * through nothing but the bytes the test carries between them. Keys and
 * certificates are made here with OpenSSL (a CA, a server certificate for
 * "localhost" and a client certificate it signed; a second, unrelated CA). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tls.h"

static char dir[] = "/tmp/slotd-tls-XXXXXX";
static char path_buf[8][512];

static const char *path(int i, const char *name)
{
    snprintf(path_buf[i], sizeof path_buf[i], "%s/%s", dir, name);
    return path_buf[i];
}

/* A P-256 key and a certificate for cn signed by (ca, ca_key), or self-signed. */
static void make_cert(const char *cn, X509 *ca, EVP_PKEY *ca_key, int is_ca, X509 **xo, EVP_PKEY **ko)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    assert_non_null(k);
    X509 *x = X509_new();
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(random() & 0x7fffffff));
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, ca ? X509_get_subject_name(ca) : n);
    X509V3_CTX v;
    X509V3_set_ctx_nodb(&v);
    X509V3_set_ctx(&v, ca ? ca : x, x, NULL, NULL, 0);
    const char *ext[][2] = {{"basicConstraints", is_ca ? "critical,CA:TRUE" : "CA:FALSE"},
                            {"subjectAltName", is_ca ? NULL : "DNS:localhost,IP:127.0.0.1"}};
    for (size_t i = 0; i < 2; i++) {
        if (!ext[i][1])
            continue;
        X509_EXTENSION *e = X509V3_EXT_conf(NULL, &v, ext[i][0], ext[i][1]);
        assert_non_null(e);
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    assert_true(X509_sign(x, ca_key ? ca_key : k, EVP_sha256()) > 0);
    *xo = x;
    *ko = k;
}

static void save(X509 *x, EVP_PKEY *k, const char *cert_path, const char *key_path)
{
    FILE *f = fopen(cert_path, "w");
    assert_non_null(f);
    assert_true(PEM_write_X509(f, x) == 1);
    fclose(f);
    if (key_path) {
        f = fopen(key_path, "w");
        assert_non_null(f);
        assert_true(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1);
        fclose(f);
    }
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    X509 *ca, *srv, *cli, *other;
    EVP_PKEY *cak, *srvk, *clik, *otherk;
    make_cert("test-ca", NULL, NULL, 1, &ca, &cak);
    make_cert("localhost", ca, cak, 0, &srv, &srvk);
    make_cert("feed-1", ca, cak, 0, &cli, &clik);
    make_cert("other-ca", NULL, NULL, 1, &other, &otherk);
    save(ca, cak, path(0, "ca.pem"), NULL);
    save(srv, srvk, path(1, "server.pem"), path(2, "server.key"));
    save(cli, clik, path(3, "client.pem"), path(4, "client.key"));
    save(other, otherk, path(5, "other.pem"), path(6, "other.key"));
    X509 *xs[] = {ca, srv, cli, other};
    EVP_PKEY *ks[] = {cak, srvk, clik, otherk};
    for (int i = 0; i < 4; i++) {
        X509_free(xs[i]);
        EVP_PKEY_free(ks[i]);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    const char *names[] = {"ca.pem", "server.pem", "server.key", "client.pem",
                           "client.key", "other.pem", "other.key"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        unlink(path(7, names[i]));
    rmdir(dir);
    return 0;
}

/* Move what `from` has to send into `to`, in small pieces (as a socket
 * might deliver it). Returns bytes moved. */
static size_t carry(tls_conn *from, tls_conn *to)
{
    char buf[300];
    size_t total = 0, n;
    while ((n = tls_take(from, buf, sizeof buf)) > 0) {
        assert_int_equal(tls_feed(to, buf, n), TLS_OK);
        total += n;
    }
    assert_int_equal(tls_out_pending(from), 0);
    return total;
}

/* Pump both ways until neither side has anything to send; the first error
 * of either side is returned (plaintext read is appended to got[]). */
static int pump(tls_conn *s, tls_conn *c, char *sgot, size_t *slen, char *cgot, size_t *clen)
{
    for (int round = 0; round < 50; round++) {
        size_t n;
        int rc;
        do {
            rc = tls_read(c, cgot + *clen, 4096, &n);
            *clen += n;
        } while (rc == TLS_OK && n);
        if (rc < 0)
            return rc;
        size_t moved = carry(c, s);
        do {
            rc = tls_read(s, sgot + *slen, 4096, &n);
            *slen += n;
        } while (rc == TLS_OK && n);
        if (rc < 0)
            return rc;
        moved += carry(s, c);
        if (!moved && !tls_in_pending(s) && !tls_in_pending(c))
            return TLS_OK;
    }
    return TLS_OK;
}

static char sgot[1 << 20], cgot[1 << 20];

static void test_roundtrip(void **state)
{
    (void)state;
    tls_ctx *sctx, *cctx;
    tls_conn *s, *c;
    char msg[256];
    assert_int_equal(tls_ctx_server(&sctx, path(0, "server.pem"), path(1, "server.key"), NULL, msg,
                                    sizeof msg), TLS_OK);
    assert_int_equal(tls_ctx_client(&cctx, path(0, "ca.pem"), NULL, NULL, "localhost", msg,
                                    sizeof msg), TLS_OK);
    assert_int_equal(tls_conn_new(&s, sctx), TLS_OK);
    assert_int_equal(tls_conn_new(&c, cctx), TLS_OK);
    /* The server context may go (a reload) while its connection goes on. */
    tls_ctx_free(sctx);
    assert_int_equal(tls_write(c, "x", 1), TLS_E_AGAIN); /* no handshake yet */
    size_t slen = 0, clen = 0;
    assert_int_equal(pump(s, c, sgot, &slen, cgot, &clen), TLS_OK);
    assert_true(tls_handshake_done(s) && tls_handshake_done(c));
    assert_int_equal(slen + clen, 0);
    /* Both ways, more than one record (16 KiB each). */
    static char big[100000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(i * 7);
    assert_int_equal(tls_write(c, big, sizeof big), TLS_OK);
    assert_int_equal(tls_write(s, "hello", 5), TLS_OK);
    assert_true(tls_out_pending(c) > sizeof big);
    assert_int_equal(pump(s, c, sgot, &slen, cgot, &clen), TLS_OK);
    assert_int_equal(slen, sizeof big);
    assert_memory_equal(sgot, big, sizeof big);
    assert_int_equal(clen, 5);
    assert_memory_equal(cgot, "hello", 5);
    /* close_notify reads as TLS_CLOSED on the other side. */
    tls_close_notify(c);
    carry(c, s);
    size_t n;
    assert_int_equal(tls_read(s, sgot, sizeof sgot, &n), TLS_CLOSED);
    assert_int_equal(n, 0);
    tls_conn_free(s);
    tls_conn_free(c);
    tls_ctx_free(cctx);
}

/* Handshake between a server (client_ca may be NULL) and a client
 * presenting cert/key (may be NULL) that trusts `ca`: the first error. */
static int handshake(const char *client_ca, const char *ca, const char *cert, const char *key,
                     char *peer, size_t peer_cap)
{
    tls_ctx *sctx, *cctx;
    tls_conn *s, *c;
    char msg[256];
    assert_int_equal(tls_ctx_server(&sctx, path(0, "server.pem"), path(1, "server.key"), client_ca,
                                    msg, sizeof msg), TLS_OK);
    assert_int_equal(tls_ctx_client(&cctx, ca, cert, key, "localhost", msg, sizeof msg), TLS_OK);
    assert_int_equal(tls_conn_new(&s, sctx), TLS_OK);
    assert_int_equal(tls_conn_new(&c, cctx), TLS_OK);
    size_t slen = 0, clen = 0;
    int rc = pump(s, c, sgot, &slen, cgot, &clen);
    /* TLS 1.3: the server decides on the client's certificate after the
     * client thinks it is done; a byte of data shows the verdict. */
    if (rc == TLS_OK && tls_write(c, "x", 1) == TLS_OK)
        rc = pump(s, c, sgot, &slen, cgot, &clen);
    if (rc == TLS_OK && slen != 1)
        rc = TLS_E_PROTO;
    if (peer)
        tls_peer_name(s, peer, peer_cap);
    tls_conn_free(s);
    tls_conn_free(c);
    tls_ctx_free(sctx);
    tls_ctx_free(cctx);
    return rc;
}

static void test_mutual(void **state)
{
    (void)state;
    char peer[64];
    char ca[512], cli[512], clik[512], other[512], otherk[512];
    strcpy(ca, path(0, "ca.pem"));
    strcpy(cli, path(1, "client.pem"));
    strcpy(clik, path(2, "client.key"));
    strcpy(other, path(3, "other.pem"));
    strcpy(otherk, path(4, "other.key"));
    assert_int_equal(handshake(ca, ca, cli, clik, peer, sizeof peer), TLS_OK);
    assert_string_equal(peer, "feed-1");
    assert_true(handshake(ca, ca, NULL, NULL, NULL, 0) < 0);       /* no client certificate */
    assert_true(handshake(ca, ca, other, otherk, NULL, 0) < 0);    /* one from another CA */
    assert_int_equal(handshake(NULL, other, NULL, NULL, NULL, 0), TLS_E_PROTO); /* client distrusts */
    char d[256];
    tls_detail(d, sizeof d); /* drained by then: no stale errors leak to the next call */
    assert_int_equal(handshake(NULL, ca, NULL, NULL, peer, sizeof peer), TLS_OK);
    assert_string_equal(peer, "");
}

static void test_garbage(void **state)
{
    (void)state;
    tls_ctx *sctx;
    tls_conn *s;
    char msg[256];
    assert_int_equal(tls_ctx_server(&sctx, path(0, "server.pem"), path(1, "server.key"), NULL, msg,
                                    sizeof msg), TLS_OK);
    assert_int_equal(tls_conn_new(&s, sctx), TLS_OK);
    const char *plain = "[\"HELLO\", {\"client\": \"x\"}] GET / HTTP/1.1\r\n\r\n";
    assert_int_equal(tls_feed(s, plain, strlen(plain)), TLS_OK);
    size_t n;
    assert_int_equal(tls_read(s, sgot, sizeof sgot, &n), TLS_E_PROTO);
    assert_int_equal(n, 0);
    tls_detail(msg, sizeof msg);
    assert_true(strlen(msg) > 0);
    assert_false(tls_handshake_done(s));
    tls_conn_free(s);
    tls_ctx_free(sctx);
}

static void test_bad_files(void **state)
{
    (void)state;
    tls_ctx *ctx = NULL;
    char msg[512];
    assert_int_equal(tls_ctx_server(&ctx, path(0, "missing.pem"), path(1, "server.key"), NULL, msg,
                                    sizeof msg), TLS_E_CERT);
    assert_non_null(strstr(msg, "--tls-cert"));
    assert_non_null(strstr(msg, "missing.pem"));
    /* A key that is not the certificate's. */
    assert_int_equal(tls_ctx_server(&ctx, path(0, "server.pem"), path(1, "client.key"), NULL, msg,
                                    sizeof msg), TLS_E_CERT);
    assert_non_null(strstr(msg, "--tls-key"));
    assert_int_equal(tls_ctx_server(&ctx, path(0, "server.pem"), path(1, "server.key"),
                                    path(2, "nope.pem"), msg, sizeof msg), TLS_E_CERT);
    assert_non_null(strstr(msg, "--tls-client-ca"));
    assert_null(ctx);
    assert_string_equal(tls_strerror(TLS_E_CERT), "certificate, key or CA unusable");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_mutual),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
