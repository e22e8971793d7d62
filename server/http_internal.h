/* http_internal — what http.c (listener, lifecycle, budgets), http_conn.c
 * (connection I/O, parser callbacks, keep-alive, the reserve) and
 * http_routes.c (the endpoint table and handlers) share. Private to them.
 *
 * Everything here runs on the loop thread that called http_start (or
 * http_serve_bytes): the entry points assert it in debug builds.
 */
#ifndef SLOTD_HTTP_INTERNAL_H
#define SLOTD_HTTP_INTERNAL_H

#include <assert.h>
#include <pthread.h>
#include <string.h>

#include <http_parser.h>

#include "http.h"
#include "query.h"
#include "tls.h"
#include "token.h"

#define HTTP_MAX_CONNS 256
#define HTTP_RESERVE_CONNS 16       /* beyond the budget, for /healthz and /readyz */
#define HTTP_RESERVE_HEAD_MS 2000   /* a reserve connection's request head, from accept */
/* "Bearer " + token, or + name:secret (--auth-file), + some spaces */
#define HTTP_AUTH_MAX (16 + PROTO_NAME_MAX + 1 + TOKEN_MAX)
#define HTTP_HNAME_MAX 16           /* enough of a header name to tell Authorization */
#define HTTP_LAST_ID_MAX 4096       /* Last-Event-ID (GET /subscribe): a cursor */
#define HTTP_URL_MAX 2048           /* request target bytes */
#define HTTP_HEAD_MAX 8192          /* request line + headers */
#define HTTP_HEAD_TIMEOUT_MS 10000  /* first byte of a request to its last header */
#define HTTP_IDLE_TIMEOUT_MS 30000  /* keep-alive idle, or answers not being read */
#define HTTP_LINGER_MS 2000
#define HTTP_LINGER_BYTES (256u << 10)
#define HTTP_WRITE_HWM (4u << 20)   /* unsent answer bytes before we stop parsing */
#define HTTP_RBUF 16384
typedef struct http_conn http_conn;

/* A streamed answer (Transfer-Encoding: chunked): next() appends the next
 * piece to buf and sets *done with the last; it is called only once the
 * previous piece has been written to the socket, so a slow reader holds
 * one piece, never the whole answer. -1 (memory) ends the connection
 * without the final chunk, so the client sees the answer is incomplete.
 * done() frees ctx, whether or not the stream finished. A live stream
 * (GET /subscribe) may return 1 with nothing appended: nothing yet; the
 * connection waits (a comment line every HTTP_IDLE_TIMEOUT_MS keeps
 * proxies from closing it) until http__stream_wake. */
typedef struct http__stream {
    int (*next)(void *ctx, proto_buf *buf, int *done);
    void (*done)(void *ctx);
    void *ctx;
} http__stream;


typedef struct http {
    uv_tcp_t listener;
    uv_tcp_t tls_listener;  /* --tls-http-port: HTTPS */
    server *srv;
    http_conn *conns;     /* open connections, doubly linked */
    uint32_t nconns;      /* all of them, the reserve included */
    uint32_t nreserve;    /* of which reserve connections (probes only) */
    int stopping;
    int listener_open;
    int tls_listener_open;
    pthread_t loop_thread; /* the thread that started it: see HTTP__ASSERT_LOOP */
} http;

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shut;
    http *h;
    http_conn *prev, *next;
    http_parser parser;
    int handles;          /* open libuv handles; freed at 0 */
    /* the request being parsed */
    char url[HTTP_URL_MAX];
    size_t url_len;
    size_t head_bytes;
    int last_was_value;
    int refuse;           /* status to refuse it with (414, 431, 405, 400), else 0 */
    const char *refuse_msg;
    int in_request;       /* first byte seen, not complete */
    int waiting;          /* a DELETE is being journaled: its answer, then the next */
    int in_answer;        /* conn_answer is running (1), and a DELETE finished inside it (2) */
    int reserve;          /* accepted past the budget: probes only, one request */
    http__stream stream;  /* a streamed answer in progress (stream.next set) */
    int stream_keep;      /* keep-alive after it */
    int stream_parked;    /* its next() had nothing yet: http__stream_wake resumes it */
    char last_id[HTTP_LAST_ID_MAX]; /* the request's Last-Event-ID header */
    size_t last_id_len;   /* may exceed last_id: then it is refused */
    int in_last_id;
    /* the request's Authorization header, collected across reads */
    char hname[HTTP_HNAME_MAX];
    size_t hname_len;     /* bytes of the current header's name (may exceed hname) */
    int in_auth;          /* the current header value is Authorization's */
    unsigned auth_seen;   /* Authorization headers in this request */
    char auth[HTTP_AUTH_MAX];
    size_t auth_len;      /* may exceed auth: then it cannot be a valid token */
    /* bytes read but not yet parsed (while paused for backpressure) */
    char rbuf[HTTP_RBUF];
    size_t roff, rlen;
    size_t unsent;        /* answer bytes queued in uv_write */
    unsigned writes;
    int reading;
    int closing;          /* uv_close called */
    int close_after;      /* close once answers are written */
    int lingering;        /* write side shut down, draining input */
    size_t lingered;
    proto_buf *capture;   /* http_serve_bytes: answers go here; no socket, no timer */
    tls_conn *tls;        /* HTTPS: rbuf holds plaintext, answers are encrypted */
    int tls_up;           /* handshake done (counted) */
};

/* An answer being built by a handler: status, body, content type; or a
 * stream (stream.next set: status 200, the body comes from it). */
typedef struct http__answer {
    int status;
    proto_buf body;
    const char *ctype;
    const char *extra; /* more header lines */
    http__stream stream;
} http__answer;

/* Loop-thread-only entry points: libuv handles and the connection list
 * are not thread-safe, so a call from another thread is a caller bug. */
#define HTTP__ASSERT_LOOP(h) assert(pthread_equal(pthread_self(), (h)->loop_thread))

/* Header names are matched case-insensitively; lit is lower case letters. */
static inline int http__name_is(const char *s, size_t len, const char *lit)
{
    if (len != strlen(lit))
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((s[i] | 0x20) != lit[i])
            return 0;
    return 1;
}

/* http.c */
void http__free_if_done(http *h); /* stopped, listener closed, no conns: free */

/* http_conn.c */
/* A new connection; tls: accepted on --tls-http-port. */
void http__conn_accept(http *h, uv_stream_t *ls, int reserve, int tls);
void http__conn_close(http_conn *c);
/* {"error": CODE, "message": "..."} through the JSON emitter (escaping). */
void http__json_error(proto_buf *body, const char *code, const char *msg);
/* delete_submit's callback (delete.h): answers the DELETE, resumes parsing. */
void http__deleted(void *ctx, const query_req *q, uint64_t deleted, const proto_error *err);
/* An answer given later (a DELETE, a gateway's query to its nodes):
 * http__answer_wait while routing the request stops parsing (and keeps the
 * connection) until http__answer_later sends a (which it takes). */
void http__answer_wait(http_conn *c);
void http__answer_later(http_conn *c, http__answer *a);

/* http_gateway.c: with --gateway, queries, /stats and /metrics are answered
 * by the nodes (gateway.h). q: a parsed query (op not SCHEMA/DELETE). */
void http__gateway_query(http_conn *c, const query_req *q, http__answer *a);
void http__gateway_stats(http_conn *c, int prom, http__answer *a);

/* A parked stream has something again: pump it (if nothing is in flight). */
void http__stream_wake(http_conn *c);

/* http_subscribe.c: GET /subscribe, Server-Sent Events, for the request
 * whose query string is qs and connection c. */
void http__subscribe(server *srv, http_conn *c, const char *qs, size_t qlen, http__answer *a);
int http__parse_qs(http__answer *a, const char *qs, size_t qlen,
                   int (*set)(void *ctx, const char *name, size_t nlen, const char *val,
                              size_t vlen, proto_error *err),
                   void *ctx);

/* http_export.c: a GET /export answer streaming the checked request q
 * (freed with the stream). 0, or -1 (memory; q freed). */
struct export_req;
int http__export_stream(server *srv, struct export_req *q, http__answer *a);

/* http_routes.c */
void http__route(http_conn *c, http__answer *a); /* the completed request's answer */
void http__answer_error(http__answer *a, int status, const char *code, const char *msg);
void http__answer_proto_error(http__answer *a, const proto_error *err);

#endif
