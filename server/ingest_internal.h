/* ingest_internal — what ingest.c (requests: HELLO, T, Q and their
 * replies) and ingest_conn.c (connections: accept, read, frame, write,
 * budgets, deadlines, close) share. Loop thread only, all of it.
 */
#ifndef SLOTD_INGEST_INTERNAL_H
#define SLOTD_INGEST_INTERNAL_H

#include <stdint.h>
#include <uv.h>

#include "clients.h"
#include "ingest.h"
#include "log.h"
#include "proto.h"
#include "tls.h"

#define READ_CHUNK (64 * 1024)     /* room every read finds at least */
#define READ_AHEAD_MSGS 8           /* ... and, for large messages, room for this many */
#define READ_AHEAD_MAX (1u << 20)   /* ... up to this much */
#define OPS_HIGH 4096               /* in-flight requests per connection */
#define OPS_LOW 1024
#define OUT_HIGH (4u << 20)         /* unsent reply bytes per connection */
#define OUT_LOW (1u << 20)
#define JOURNAL_HIGH (256u << 20)   /* journal backlog that pauses all reading */
#define JOURNAL_LOW (64u << 20)
#define OP_POOL_MAX 1024
#define BATCH_KEEP (1u << 20)       /* staged-batch capacity a pooled op may keep */
#define FD_HEADROOM 8               /* warn when a new connection's fd is this near the limit */
#define HELLO_MSG_MAX 4096          /* largest message before HELLO (a HELLO needs < 400 bytes) */
#define HELLO_BUF 8192              /* read buffer before HELLO */
#define LINGER_NS 1000000000u       /* after the last reply: read and discard this long at most */
#define SWEEP_MS 250
#define RBUF_BASE (2 * READ_CHUNK)  /* read buffer every connection past HELLO may have */

typedef struct op op;
typedef struct conn conn;

struct ingest {
    server *srv;
    uv_tcp_t listener;
    int listening;
    uv_tcp_t tls_listener;     /* --tls-port: the same protocol over TLS */
    int tls_listening;
    uv_idle_t tls_drain;       /* decrypts input buffered while a TLS connection paused */
    int tls_draining;
    uv_timer_t sweep;          /* idle, HELLO and linger deadlines */
    conn *conns;               /* doubly linked */
    conn *pend_head, *pend_tail; /* connections before HELLO, oldest first */
    uint32_t npending, nauthed;
    uint64_t rbuf_bytes;       /* read-buffer capacity of every connection (--max-buffered) */
    uint32_t nstarved;         /* connections waiting for read-buffer room */
    conn *overdraft;           /* the one connection allowed past --max-buffered */
    op *pool;                  /* recycled ops */
    uint32_t npool;
    int paused_all;            /* journal backlog high */
    void (*stopped)(server *srv);
    uint64_t nofile;           /* RLIMIT_NOFILE at start; 0 = unknown/unlimited */
    uint64_t fd_warned;        /* ns of the last fd_limit_near warning */
};

struct op {
    op *next;
    struct ingest *ing;
    conn *c;         /* NULL once its connection is gone */
    client_rec *cl;
    int done;
    uint64_t seq;
    uint64_t t0;     /* ns, when the request was read */
    store_batch batch;
    proto_buf reply;
    struct sub_tcp *sub_start; /* a SUBOK: its pushes may start once this reply is out */
};

struct conn {
    uv_tcp_t tcp;
    struct ingest *ing;
    conn *prev, *next;
    char peer[64];
    char client[PROTO_NAME_MAX + 1];
    char client_log[LOG_ESC_MAX(PROTO_NAME_MAX)]; /* escaped, for log lines */
    size_t clen;
    client_rec *cl;      /* the name this connection holds; NULL before HELLO or once fenced */
    conn *pend_prev, *pend_next;
    uint64_t opened;     /* ns, accept time (HELLO deadline) */
    int hello, pending;  /* pending: in the before-HELLO list */
    int starved;         /* reading stopped until --max-buffered has room */
    int lingering;       /* replies sent, write side shut: discarding input until EOF */
    uint64_t linger_until;
    uv_shutdown_t sreq;
    int reading, closing, close_after_flush;
    uint8_t *rbuf;
    size_t rlen, rcap;
    proto_framer framer;
    op *head, *tail;
    uint32_t nops;
    proto_buf out[2];   /* out[cur] accumulates; the other may be in a write */
    int cur, writing;
    uv_write_t wreq;
    uint64_t last_active;
    uint64_t msg_start;  /* ns: first byte of the incomplete message in rbuf; 0 = none */
    tls_conn *tls;       /* accepted on --tls-port: rbuf and out[] are plaintext */
    proto_buf tout;      /* TLS: the ciphertext being written */
    int tls_up;          /* handshake done (counted) */
    int tls_drain;       /* input left in tls to decrypt once reading resumes */
    size_t last_len;     /* bytes of the last message: a guess at whether the next is whole */
    unsigned perms;      /* AUTH_* this connection's client may use (HELLO sets it) */
    struct sub_tcp **subs; /* its subscriptions (subscribe_tcp.c) */
    uint32_t nsubs, subs_cap, subs_rr;
    uint64_t write_since; /* ns: the write in flight started (stalled subscribers) */
};

static inline uint64_t now_ns(void) { return uv_hrtime(); }

/* ingest.c: requests. */
void dispatch(conn *c, const uint8_t *msg, size_t len);   /* one framed message */
/* A message not framed yet (buf[0..avail) from its first byte): a T batch
 * complete in the buffer is decoded and dispatched in one pass, returning
 * its length; 0: nothing done, frame it and call dispatch. */
size_t dispatch_prefix(conn *c, const uint8_t *buf, size_t avail);
op *op_new(conn *c);                                      /* appended to c's FIFO */
void op_finish(op *o);                                    /* answered: o->reply holds it */
/* Refused by the client's --auth-file perms: UNAUTHORIZED, then close. */
void perm_denied(conn *c, op *o, uint64_t id, const char *what);
void op_recycle(struct ingest *ing, op *o);
void op_error(server *srv, op *o, uint64_t id, const proto_error *err);
/* An ingest error names no trade: proto_error_set with index -1. */
#define set_err(e, code, ...) proto_error_set((e), (code), -1, __VA_ARGS__)

/* ingest_conn.c: connections. */
void conn_pump(conn *c);            /* move finished replies out, write, read or close */
void conn_close(conn *c);           /* now: ops waiting for the journal outlive it */
void conn_update_reading(conn *c);  /* start or stop reading per the budgets */
void pending_remove(conn *c);       /* leave the before-HELLO list (HELLO done) */
/* Answer `err` (id 0) after the replies owed, then close: the stream cannot go on. */
void fatal_stream_error(conn *c, const proto_error *err);
size_t rbuf_room(conn *c);          /* grow rbuf per the budgets: bytes free after rlen */
void conn_starve(conn *c);          /* no rbuf room: stop reading until there is */
void conn_input(conn *c);           /* rbuf gained bytes: frame, dispatch, pump */

/* ingest_tls.c: --tls-port connections (c->tls set). */
void conn_tls_input(conn *c, const char *data, size_t n); /* ciphertext read (or none: drain) */
int conn_tls_seal(conn *c);         /* out[cur] -> tout with handshake records; -1: closed */
void conn_tls_fail(conn *c, int rc); /* log, count, send the alert, close */
void conn_tls_send_now(conn *c);    /* queued alert/close_notify, if the socket takes it now */
void conn_tls_drain_later(conn *c); /* input buffered in c->tls: decrypt once reading resumes */

/* subscribe_tcp.c: SUB / UNSUB on a connection (subscribe.h). */
void sub_tcp_dispatch(conn *c, const uint8_t *msg, size_t len, int unsub);
void sub_tcp_live(conn *c, struct sub_tcp *t); /* its SUBOK is out: pushes may follow */
void sub_tcp_fill(conn *c);         /* conn_pump: encode pushes into out[cur] if it has room */
void sub_tcp_closed(conn *c);       /* conn_close: its subscriptions end */
/* on_sweep: a write stalled past --sub-stall-timeout drops the subscriber. 1: closed. */
int sub_tcp_stalled(conn *c, uint64_t now);

#endif
