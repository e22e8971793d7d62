/* slotctl_http — one HTTP/1.1 GET over a plain or a TLS socket (--tls: the
 * client side of proto/tls.h's memory-BIO pump on a blocking fd), the body
 * de-chunked into a FILE as it arrives (an export may be far larger than
 * memory). */
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "slotctl.h"
#include "tls.h"

typedef struct rd {
    int fd;
    tls_conn *tls;       /* --tls, else NULL */
    char buf[1 << 16];
    size_t off, len;
    char raw[1 << 14];   /* --tls: ciphertext in and out */
} rd;

static ssize_t raw_read(int fd, void *buf, size_t cap)
{
    ssize_t n;
    do
        n = read(fd, buf, cap);
    while (n < 0 && errno == EINTR);
    return n;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* --tls: send every byte of ciphertext the pump has made. */
static int tls_flush(rd *r)
{
    size_t n;
    while ((n = tls_take(r->tls, r->raw, sizeof r->raw)) > 0)
        if (send_all(r->fd, r->raw, n) < 0)
            return -1;
    return 0;
}

/* --tls: one turn of the pump: 0 with *got plaintext bytes in r->buf (0:
 * more ciphertext needed), 1 at close_notify, -1 on error (on stderr). */
static int tls_turn(rd *r, size_t *got)
{
    int rc = tls_read(r->tls, r->buf, sizeof r->buf, got);
    if (tls_flush(r) < 0)
        return -1;
    if (rc == TLS_OK || rc == TLS_CLOSED)
        return rc == TLS_CLOSED;
    char detail[200];
    tls_detail(detail, sizeof detail);
    fprintf(stderr, "slotctl: TLS: %s: %s\n", tls_strerror(rc), detail);
    return -1;
}

/* --tls: the next ciphertext from the socket into the pump; 0, or -1 at
 * EOF or an error. */
static int tls_more(rd *r)
{
    ssize_t n = raw_read(r->fd, r->raw, sizeof r->raw);
    return n > 0 && tls_feed(r->tls, r->raw, (size_t)n) == TLS_OK ? 0 : -1;
}

/* --tls: plaintext into r->buf: > 0 bytes, 0 at the end (close_notify or
 * EOF), -1 on error. */
static ssize_t tls_recv(rd *r)
{
    for (;;) {
        size_t got = 0;
        int rc = tls_turn(r, &got);
        if (rc != 0)
            return rc > 0 ? 0 : -1;
        if (got)
            return (ssize_t)got;
        if (tls_more(r) < 0)
            return 0; /* EOF without close_notify: the HTTP framing says if it was cut */
    }
}

/* The request, encrypted with --tls after the handshake (the server says
 * nothing before the request, so the handshake is driven on its own). */
static int send_req(rd *r, const char *p, size_t n)
{
    if (!r->tls)
        return send_all(r->fd, p, n);
    size_t got = 0;
    while (!tls_handshake_done(r->tls)) {
        if (tls_turn(r, &got) != 0 || tls_handshake_done(r->tls))
            break;
        if (tls_more(r) < 0) {
            fprintf(stderr, "slotctl: TLS: the server closed the connection in the handshake "
                            "(does the port speak TLS? a client certificate needed?)\n");
            return -1;
        }
    }
    r->len = got; /* plaintext that came with the last handshake flight, if any */
    if (!tls_handshake_done(r->tls))
        return -1;
    return tls_write(r->tls, p, n) == TLS_OK ? tls_flush(r) : -1;
}

/* Refill when empty: 1 with bytes available, 0 at EOF, -1 on error. */
static int rd_fill(rd *r)
{
    if (r->off < r->len)
        return 1;
    ssize_t n = r->tls ? tls_recv(r) : raw_read(r->fd, r->buf, sizeof r->buf);
    if (n < 0)
        return -1;
    r->off = 0;
    r->len = (size_t)n;
    return n > 0;
}

/* One line (CRLF or LF stripped) into line[cap]; -1 at EOF or too long. */
static int rd_line(rd *r, char *line, size_t cap)
{
    size_t n = 0;
    for (;;) {
        if (rd_fill(r) <= 0)
            return -1;
        char c = r->buf[r->off++];
        if (c == '\n')
            break;
        if (n + 1 >= cap)
            return -1;
        line[n++] = c;
    }
    if (n && line[n - 1] == '\r')
        n--;
    line[n] = 0;
    return 0;
}

/* Copy up to `want` bytes (SIZE_MAX: to EOF) to out; the count copied. */
static size_t rd_copy(rd *r, size_t want, FILE *out, int *bad)
{
    size_t got = 0;
    while (got < want) {
        int f = rd_fill(r);
        if (f <= 0) {
            *bad |= f < 0;
            break;
        }
        size_t n = r->len - r->off;
        if (n > want - got)
            n = want - got;
        if (fwrite(r->buf + r->off, 1, n, out) != n)
            *bad = 1;
        r->off += n;
        got += n;
    }
    return got;
}

static int dial(const slotctl_opts *o)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai, *a;
    char port[16];
    snprintf(port, sizeof port, "%d", o->http_port);
    int rc = getaddrinfo(o->host, port, &hints, &ai), fd = -1;
    if (rc != 0) {
        fprintf(stderr, "slotctl: %s: %s\n", o->host, gai_strerror(rc));
        return -1;
    }
    for (a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0)
        fprintf(stderr, "slotctl: cannot connect to %s:%d (HTTP): %s\n", o->host, o->http_port,
                strerror(errno));
    return fd;
}

/* The chunked body: size lines, data, CRLF, until the 0-size chunk. */
static int dechunk(rd *r, FILE *out)
{
    char line[128];
    int bad = 0;
    for (;;) {
        if (rd_line(r, line, sizeof line) < 0)
            return -1;
        char *end;
        unsigned long long size = strtoull(line, &end, 16);
        if (end == line)
            return -1;
        if (size == 0)
            return rd_line(r, line, sizeof line); /* the CRLF after the last chunk */
        if (rd_copy(r, size, out, &bad) != size || bad || rd_line(r, line, sizeof line) < 0 ||
            line[0])
            return -1;
    }
}

int slotctl_http_get(const slotctl_opts *o, const char *path, FILE *out)
{
    char req[4096 + 512], line[8192];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s%s%s\r\n", path,
                     o->host, o->token ? "Authorization: Bearer " : "", o->token ? o->token : "",
                     o->token ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof req) {
        fprintf(stderr, "slotctl: the request is too long\n");
        return -1;
    }
    rd *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    int status = -1, chunked = 0, bad = 0;
    long long length = -1;
    tls_ctx *ctx = NULL;
    r->fd = dial(o);
    if (r->fd < 0)
        goto cleanup;
    if (o->tls) {
        char msg[256];
        if (tls_ctx_client(&ctx, o->tls_ca, o->tls_cert, o->tls_key,
                           o->tls_server_name ? o->tls_server_name : o->host, msg,
                           sizeof msg) != TLS_OK ||
            tls_conn_new(&r->tls, ctx) != TLS_OK) {
            fprintf(stderr, "slotctl: TLS: %s\n", ctx ? "out of memory" : msg);
            goto cleanup;
        }
    }
    if (send_req(r, req, (size_t)n) < 0 || rd_line(r, line, sizeof line) < 0 ||
        sscanf(line, "HTTP/1.%*d %d", &status) != 1) {
        fprintf(stderr, "slotctl: no HTTP answer from %s:%d\n", o->host, o->http_port);
        status = -1;
        goto cleanup;
    }
    for (;;) { /* headers */
        if (rd_line(r, line, sizeof line) < 0) {
            status = -1;
            goto cleanup;
        }
        if (!line[0])
            break;
        if (strncasecmp(line, "transfer-encoding:", 18) == 0 && strstr(line + 18, "chunked"))
            chunked = 1;
        else if (strncasecmp(line, "content-length:", 15) == 0)
            length = atoll(line + 15);
    }
    if (chunked) {
        bad = dechunk(r, out) < 0;
    } else {
        size_t got = rd_copy(r, length < 0 ? SIZE_MAX : (size_t)length, out, &bad);
        bad |= length >= 0 && got != (size_t)length;
    }
    if (bad || fflush(out) != 0) {
        fprintf(stderr, "slotctl: the answer to GET %s ended early: incomplete\n", path);
        status = -1;
    }
cleanup:
    tls_conn_free(r->tls);
    tls_ctx_free(ctx);
    if (r->fd >= 0)
        close(r->fd);
    free(r);
    return status;
}
