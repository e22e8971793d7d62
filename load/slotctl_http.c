/* slotctl_http — one HTTP/1.1 GET over a plain socket, the body de-chunked
 * into a FILE as it arrives (an export may be far larger than memory). */
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "slotctl.h"

typedef struct rd {
    int fd;
    char buf[1 << 16];
    size_t off, len;
} rd;

/* Refill when empty: 1 with bytes available, 0 at EOF, -1 on error. */
static int rd_fill(rd *r)
{
    if (r->off < r->len)
        return 1;
    ssize_t n;
    do
        n = read(r->fd, r->buf, sizeof r->buf);
    while (n < 0 && errno == EINTR);
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
    r->fd = dial(o);
    if (r->fd < 0)
        goto cleanup;
    if (send_all(r->fd, req, (size_t)n) < 0 || rd_line(r, line, sizeof line) < 0 ||
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
    if (r->fd >= 0)
        close(r->fd);
    free(r);
    return status;
}
