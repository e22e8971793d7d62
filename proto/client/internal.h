/* The client library's internal interfaces (prefix slotd__): the batch
 * encoder (encode.c), the reply parser (reply.c), the spool (spool.c), the
 * CRC-32 (crc32.c), and the sender's state shared by sender.c (records,
 * batches, the public calls) and sender_io.c (socket, replies, waiting).
 * Nothing here is exported from the shared library. */
#ifndef SLOTD_CLIENT_INTERNAL_H
#define SLOTD_CLIENT_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <msgpack.h>

#include "slotd/client.h"

/* ---- crc32.c: CRC-32 as zlib computes it (the spool's checksum) --------- */
uint32_t slotd__crc32(uint32_t crc, const void *p, size_t n);

/* ---- encode.c ------------------------------------------------------------ */

typedef struct slotd__buf {
    char *data;
    size_t len, cap;
} slotd__buf;

/* Room for n more bytes: 0 or SLOTD_ENOMEM. */
int slotd__buf_reserve(slotd__buf *b, size_t n);
int slotd__buf_write(void *b, const char *p, size_t n); /* a msgpack_packer callback */

/* Bytes in front of a batch's body kept free for its message header
 * ["T", seq, <array header>: fixarray + "T" + uint64 + array32. */
#define SLOTD__PREFIX 24

/* Encoders writing at p (room for slotd__TRADE_MAX(symlen) bytes); each
 * returns the end. A trade in array form: [sym, ts, px, qty, side, id]. */
#define SLOTD__TRADE_MAX(symlen) (64 + (symlen))
char *slotd__enc_trade(char *p, const char *sym, size_t symlen, int64_t ts, double px, double qty,
                       int side, uint64_t id);
char *slotd__enc_trade_fixed(char *p, const char *sym, size_t symlen, int64_t ts, int64_t px_e8,
                             int64_t qty_e8, int side, uint64_t id);
char *slotd__enc_uint(char *p, uint64_t v);
char *slotd__enc_int(char *p, int64_t v);
char *slotd__enc_double(char *p, double d);
char *slotd__enc_str(char *p, const char *s, size_t n);
/* ["HELLO", {"client": client[, "token": token]}] (PROTOCOL.md 2). */
void slotd__pack_hello(msgpack_packer *pk, const char *client, const char *token);
/* A fixed-point count of 1e-8 as an exact decimal ("-37.63"): the length
 * written at p (at most 22 bytes). */
size_t slotd__fixed_text(char *p, int64_t v);
/* The header of a msgpack array of n elements, written to END at `end`
 * (so a body can be prefixed in place): its first byte. */
char *slotd__array_hdr_before(char *end, uint32_t n);

/* ---- reply.c ------------------------------------------------------------- */

/* msgpack read in place (reply.c): every declared length is checked
 * against the bytes present and SLOTD__REPLY_MAX, nothing is allocated. */
enum { SLOTD__MP_NIL = 1, SLOTD__MP_BOOL, SLOTD__MP_UINT, SLOTD__MP_INT, SLOTD__MP_STR,
       SLOTD__MP_RAW, SLOTD__MP_ARR, SLOTD__MP_MAP };
typedef struct slotd__mp {
    int t;
    uint64_t u;          /* SLOTD__MP_UINT (also a non-negative signed int); MP_INT: as int64 */
    uint64_t len;        /* STR, RAW: payload bytes; ARR, MAP: elements */
    const uint8_t *s;    /* STR: the bytes (set by slotd__mp_next) */
} slotd__mp;
/* The header at p: its size, 0 if incomplete, -1 if invalid. */
int slotd__mp_head(const uint8_t *p, size_t n, slotd__mp *v);
/* Bytes of the whole value at p: 0 if incomplete, -1 if invalid or past the limits. */
int64_t slotd__mp_skip(const uint8_t *p, size_t n, int depth);
/* The value at p + *off (containers skipped whole, their header in *v);
 * *off moves past it. -1 past the end or invalid. */
int slotd__mp_next(const uint8_t *p, size_t n, size_t *off, slotd__mp *v);
int slotd__mp_is(const slotd__mp *v, const char *s); /* a str equal to s */
void slotd__mp_copy(char *dst, size_t cap, const slotd__mp *v); /* a str, NUL-terminated, cut */

enum { SLOTD__R_ACK = 1, SLOTD__R_ERR, SLOTD__R_WELCOME, SLOTD__R_OTHER };

typedef struct slotd__reply {
    int type;
    uint64_t seq;        /* ACK: seq; ERR: id; WELCOME: last_seq */
    uint64_t n;          /* ACK: n_stored */
    int64_t index;       /* ERR: index of the first bad record, -1 nil */
    char code[32];       /* ERR: the server's code, cut to fit */
    char message[256];   /* ERR: the server's message, cut to fit */
} slotd__reply;

/* Replies larger than this (or declaring a larger string or container)
 * are a protocol error: query pages are the largest, about 1 MiB. */
#define SLOTD__REPLY_MAX ((uint64_t)64 << 20)

/* One whole reply message of n bytes: 0, or SLOTD_EPROTOCOL for anything
 * not shaped as PROTOCOL.md says (r->message then says what). */
int slotd__reply_parse(const char *msg, size_t n, slotd__reply *r);

/* e set to code, the server's wire_code (NULL: none), seq 0, index -1 and
 * the formatted message: the one way every error of the library is made. */
void slotd__verror(slotd_batch_error *e, int code, const char *wire_code, const char *fmt,
                   va_list ap);

/* What the sender does with an ERR code (docs/clients.md table). */
enum {
    SLOTD__C_BLOCKED = 1, /* resend after the refused seq */
    SLOTD__C_TRANSIENT,   /* back off, resend from that seq */
    SLOTD__C_PERMANENT,   /* give the batch up (settle with an empty batch) */
    SLOTD__C_RETRY_CONN,  /* session refused for now: reconnect with back-off */
    SLOTD__C_FATAL,       /* stop the sender */
};
/* The class of `code`; `seq0`: the error's id is 0 (a session or stream
 * error, not a batch's). Fatal codes set *fatal_rc. */
int slotd__code_class(const char *code, int seq0, int *fatal_rc);
/* The slot a record error names: "trade 3: px: ..." gives "px"; "" if none. */
void slotd__error_field(const char *message, char *field, size_t cap);

/* A stream of replies: bytes in, messages out, without allocating per
 * message (and never what a header merely declares). */
typedef struct slotd__reader {
    char *buf;
    size_t off, len, cap; /* unread bytes: buf[off .. len) */
} slotd__reader;
void slotd__reader_init(slotd__reader *r);
void slotd__reader_destroy(slotd__reader *r);
void slotd__reader_reset(slotd__reader *r);
/* Room for at least `want` more bytes (*cap: how many fit), NULL if out of
 * memory; then slotd__reader_commit(r, bytes received). */
char *slotd__reader_space(slotd__reader *r, size_t want, size_t *cap);
void slotd__reader_commit(slotd__reader *r, size_t n);
/* 1 with the next reply in *out, 0 when more bytes are needed, or
 * SLOTD_EPROTOCOL (invalid stream, limits exceeded, a malformed reply). */
int slotd__reader_next(slotd__reader *r, slotd__reply *out);
/* The next whole message, raw: 1 (*msg valid until the next reader call),
 * 0 when more bytes are needed, SLOTD_EPROTOCOL (invalid stream). */
int slotd__reader_msg(slotd__reader *r, const char **msg, size_t *len);

/* ---- spool.c ------------------------------------------------------------- */

typedef struct slotd__spool {
    int fd;
    char *path;
    int sync;
    uint64_t size;      /* bytes in the file */
    uint64_t last_seq;  /* highest seq written (BATCH or STATE) */
    uint64_t sealed;    /* its sealed count */
    uint64_t acked;     /* highest ACKED written */
    int history;        /* the file held a BATCH or STATE: last_seq is known */
} slotd__spool;

/* A batch read back, not known to be acknowledged: 0 or an error code. */
typedef int (*slotd__spool_batch_fn)(void *u, uint64_t seq, uint64_t sealed, uint32_t ntrades,
                                     const char *kind, size_t kind_len, const char *body,
                                     size_t len);

/* Opens (creating) and locks the spool, cuts a torn tail, and hands every
 * unacknowledged batch to fn in seq order. 0, SLOTD_ELOCKED, SLOTD_ESPOOL
 * (err says the file, offset and what), SLOTD_ENOMEM. */
int slotd__spool_open(slotd__spool *sp, const char *path, int sync, slotd__spool_batch_fn fn,
                      void *u, char *err, size_t errlen);
int slotd__spool_batch(slotd__spool *sp, uint64_t seq, uint64_t sealed, uint32_t ntrades,
                       const char *kind, size_t kind_len, const char *body, size_t len);
int slotd__spool_ack(slotd__spool *sp, uint64_t seq);
/* Rewrites the file as header + STATE (call only when all is acknowledged). */
int slotd__spool_compact(slotd__spool *sp);
void slotd__spool_close(slotd__spool *sp);

/* ---- subscriptions: sub_cursor.c, sub_decode.c, sub_io.c, sub.c ---------- */

/* The cursor: symbol -> position, an open-addressing hash (a "*"
 * subscription covers every symbol of the store). */
#define SLOTD__SYM_MAX 31
typedef struct slotd__cpos {
    char sym[SLOTD__SYM_MAX + 1]; /* NUL-terminated; "" = a free slot */
    uint8_t len;
    uint64_t pos;
} slotd__cpos;
typedef struct slotd__cursor {
    slotd__cpos *e;
    size_t n, cap;                /* cap: 0 or a power of two */
} slotd__cursor;
int slotd__cursor_set(slotd__cursor *c, const char *sym, size_t len, uint64_t pos); /* 0, ENOMEM */
/* The position of sym; *found 0 (and 0 returned) if absent. */
uint64_t slotd__cursor_get(const slotd__cursor *c, const char *sym, size_t len, int *found);
void slotd__cursor_clear(slotd__cursor *c);
void slotd__cursor_free(slotd__cursor *c);
/* As slotd_sub_cursor documents. */
int64_t slotd__cursor_text(const slotd__cursor *c, char *buf, size_t cap);
/* Text back into c (cleared first): 0, SLOTD_EINVAL (err says where), SLOTD_ENOMEM. */
int slotd__cursor_parse(slotd__cursor *c, const char *text, char *err, size_t errlen);

/* The decoder of what a subscription's connection receives (sub_decode.c):
 * the schema's slot names, SUBOK, S, GAP, UNSUBOK and ERR, with the cursor.
 * Pure: bytes in, events out (tests/unit/test_client_sub.c). */
#define SLOTD__KINDS_MAX 8
#define SLOTD__SLOTS_MAX 16
typedef struct slotd__kindnames {
    char name[32];
    uint32_t nslots;
    char slot[SLOTD__SLOTS_MAX][32];
    const char *ptr[SLOTD__SLOTS_MAX]; /* slot[i], as slotd_sub_event.slot_names */
} slotd__kindnames;

typedef struct slotd__subdec {
    uint64_t id;                 /* the subscription's id */
    int named;                   /* the schema was read: kinds[] are known */
    int dropping;                /* after UNSUB: S and GAP are read, not handed out */
    uint32_t nkinds;
    slotd__kindnames kinds[SLOTD__KINDS_MAX];
    slotd__cursor cur;
    slotd_value *vals;           /* the last event's values */
    size_t vals_cap;
    char *text;                  /* their text, NUL-terminated */
    size_t text_cap;
    char sym[SLOTD__SYM_MAX + 1], kind[32];
    uint64_t trades;
} slotd__subdec;

enum { SLOTD__SUB_EVENT = 1, SLOTD__SUB_SUBOK, SLOTD__SUB_UNSUBOK, SLOTD__SUB_DROPPED };
void slotd__subdec_init(slotd__subdec *d, uint64_t id);
void slotd__subdec_free(slotd__subdec *d);
/* The R reply to {"op": "schema"} (query id qid): 0, or an error code with e filled. */
int slotd__subdec_schema(slotd__subdec *d, uint64_t qid, const char *msg, size_t n,
                         slotd_batch_error *e);
/* One message: SLOTD__SUB_EVENT (*ev filled, the cursor moved), _SUBOK
 * (the cursor set from it), _UNSUBOK, _DROPPED; or a negative code with e
 * filled (ERR for the subscription, a session ERR, a malformed message). */
int slotd__subdec_msg(slotd__subdec *d, const char *msg, size_t n, slotd_sub_event *ev,
                      slotd_batch_error *e);
/* e filled with code and a formatted message (wire code, seq 0, index -1). */
int slotd__sub_error(slotd_batch_error *e, int code, const char *wire_code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A blocking connection with a deadline, plain or TLS (sub_io.c). */
typedef struct slotd__conn {
    int fd;
    struct tls_ctx *ctx;
    struct tls_conn *tls;
    slotd__buf tx;               /* ciphertext the socket has not taken */
} slotd__conn;
typedef struct slotd__conn_opts {
    const char *host;
    int port;
    int tls;
    const char *ca, *cert, *key, *server_name;
} slotd__conn_opts;
/* Connects (and completes the TLS handshake) by deadline (ms, slotd__now_ms).
 * 0, or SLOTD_EDISCONNECTED / SLOTD_ETLS / SLOTD_ENOMEM with e filled. */
int slotd__conn_open(slotd__conn *c, const slotd__conn_opts *o, uint64_t deadline,
                     slotd_batch_error *e);
/* All n bytes by deadline: 0 or a code with e filled. */
int slotd__conn_write(slotd__conn *c, const void *p, size_t n, uint64_t deadline,
                      slotd_batch_error *e);
/* Bytes received within wait_ms (-1: no limit): > 0, 0 (none in time), or
 * a negative code with e filled (SLOTD_EDISCONNECTED when closed). */
int64_t slotd__conn_read(slotd__conn *c, char *buf, size_t cap, int wait_ms, slotd_batch_error *e);
void slotd__conn_close(slotd__conn *c);

/* ---- the sender ---------------------------------------------------------- */

typedef struct slotd__batch {
    struct slotd__batch *next;
    uint64_t seq;       /* 0 until known (first WELCOME without spool history) */
    uint64_t sealed;    /* trades sealed up to and including this batch */
    uint32_t ntrades;
    uint8_t given_up;   /* refused: travels as ["T", seq, []] */
    uint8_t acked;
    uint8_t sent;       /* written at least once (a later write is a resend) */
    uint8_t kind_len;
    char kind[32];
    void *user;
    char *mem;          /* free bytes for the header, the trades array, the kind tail */
    size_t body_off, body_len; /* the trades array */
    size_t size;        /* bytes of mem in use */
    char *msg;          /* the message to write, set when it is first written */
    size_t msg_len;
    char settle[16];    /* ["T", seq, []] for a given-up batch */
} slotd__batch;

enum { SLOTD__IDLE, SLOTD__CONNECTING, SLOTD__HELLO, SLOTD__READY, SLOTD__STOPPED };

struct slotd_sender {
    slotd_sender_opts o;
    char *host, *client, *token; /* copies of the options' strings */

    /* the open batch */
    slotd__buf open;             /* SLOTD__PREFIX free bytes, then records */
    uint32_t open_n;
    char open_kind[32];          /* "" = trade */
    uint64_t open_t0;            /* ms: its first record (linger) */
    size_t rec_start;            /* slotd_record_*: the open record's map header */
    uint32_t rec_fields;
    int in_record;

    /* the queue: sealed batches not yet done, in seq order */
    slotd__batch *head, *tail;
    slotd__batch *wr;            /* the next batch with bytes to write */
    size_t wr_off;
    slotd__batch *reply;         /* the batch the next reply answers */
    uint32_t inflight;
    uint64_t queued_bytes, queued_batches;
    uint64_t next_seq;
    int seq_known;
    uint64_t sealed, sealed_batches, done_batches;
    int rewind;                  /* a refusal: resend from the head once replies drain */
    int rewind_backoff;          /* ... after a transient one, backing off first */

    /* the connection */
    int state, fd;
    int want_write;              /* the socket refused bytes: wait for POLLOUT */
    int in_io;                   /* inside process/kick: no re-entry */
    slotd__reader rd;
    slotd__buf hello;
    size_t hello_off;
    uint64_t retry_at;           /* ms: next connect (IDLE) or resend (rewind) */
    int backoff_ms, retry_backoff_ms;
    int fatal_rc;
    uint64_t t_progress;         /* ms: last ACK, or when the queue last became non-empty */
    char obstacle[320];          /* why batches are not being acknowledged */
    uint64_t ack_to_spool;       /* highest seq acknowledged, not yet in the spool */

    /* TLS (o.tls): the context, this connection's session, and ciphertext
     * taken from it not yet accepted by the socket: tx[tx_off .. len) */
    struct tls_ctx *tls_ctx;
    struct tls_conn *tls;
    slotd__buf tx;
    size_t tx_off;

    slotd__spool spool;
    int has_spool;
    int batch_failed;            /* a batch given up since the last flush */
    slotd_batch_error last;
    slotd_sender_stats st;
};

uint64_t slotd__now_ms(void);
/* sender.c */
int slotd__seal(slotd_sender *s);
int slotd__assign_seqs(slotd_sender *s, uint64_t last_seq);
void slotd__batch_free(slotd__batch *b);
void slotd__set_error(slotd_sender *s, int code, const char *wire_code, uint64_t seq, int64_t index,
                      const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* sender_io.c */
void slotd__io_init(slotd_sender *s);
void slotd__io_close(slotd_sender *s);
/* Write what the window allows without blocking; then try a connect if due. */
void slotd__kick(slotd_sender *s);
/* One round: poll up to wait_ms (-1: until an event or timer), process. */
int slotd__step(slotd_sender *s, int wait_ms);
void slotd__stop(slotd_sender *s, int rc);

/* sender_tls.c: the connection's bytes, through TLS when o.tls. The I/O
 * calls return as send/recv do (-1 with errno); a TLS failure stops the
 * sender (SLOTD_ETLS) first, so after -1 check for SLOTD__STOPPED. */
int slotd__tls_init(slotd_sender *s, char *err, size_t errlen); /* 0 or SLOTD_ETLS/ENOMEM */
void slotd__tls_free(slotd_sender *s);
int slotd__tls_start(slotd_sender *s); /* connected: start the handshake; 0, or -1 (stopped) */
void slotd__tls_end(slotd_sender *s);  /* the socket is closing */
ssize_t slotd__io_send(slotd_sender *s, const struct iovec *iov, int n);
ssize_t slotd__io_recv(slotd_sender *s, char *buf, size_t cap);
int slotd__io_flush(slotd_sender *s);     /* send queued ciphertext: 0, or -1 (errno) */
int slotd__io_open(const slotd_sender *s);    /* plaintext can be written (handshake done) */
int slotd__io_backlog(const slotd_sender *s); /* ciphertext waits for POLLOUT */
int slotd__io_more(const slotd_sender *s);    /* bytes buffered in TLS: read again first */

#endif
