/* slotd/client.h — the official C client of slotd (libslotd-client).
 *
 * A sender streams records to one slotd under one client name and holds
 * the promise of docs/clients.md: a record handed to it is stored exactly
 * once, or the caller is told which record failed and why. Framing, the
 * window of batches in flight, sequence numbers, resends, reconnects with
 * back-off and the meaning of every server error code are the library's.
 *
 *   slotd_sender_opts o;
 *   slotd_sender_opts_init(&o);
 *   o.host = "127.0.0.1"; o.port = 7400; o.client = "feed-1";
 *   slotd_sender *s;
 *   if (slotd_sender_new(&o, &s) == 0) {
 *       slotd_trade(s, "AAPL", ts_ns, 187.25, 100, 'B', 1);
 *       int rc = slotd_flush(s, -1);      // 0: everything so far is stored
 *       slotd_sender_close(s, 5000);
 *   }
 *
 * Every call returns 0 (or a count) on success, or one negative SLOTD_E*
 * code; slotd_strerror names it and slotd_sender_last_error carries the
 * details (the server's code and message, the batch's seq, the index and
 * field of the first bad record).
 *
 * Threads: a sender is used by one thread at a time. Nothing runs in the
 * background: in blocking mode the I/O happens inside the calls (a record
 * that seals a batch writes it out at once; flush and close wait), so a
 * `linger_ms` deadline is acted on at the next call; in non-blocking mode
 * the application's own loop drives slotd_sender_process.
 */
#ifndef SLOTD_CLIENT_H
#define SLOTD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SLOTD_CLIENT_BUILD) && defined(__GNUC__)
#define SLOTD_API __attribute__((visibility("default")))
#else
#define SLOTD_API
#endif

/* X(name, value, text). Values sit far from -errno and libuv's -1..-4095,
 * so an application can keep them apart from its own codes. */
#define SLOTD_ERRORS(X)                                                                          \
    X(SLOTD_EINVAL, -5001, "invalid argument")                                                   \
    X(SLOTD_ENOMEM, -5002, "out of memory")                                                      \
    X(SLOTD_EAGAIN, -5003, "would block: max_buffered bytes of batches await acknowledgement")  \
    X(SLOTD_ETIMEDOUT, -5004, "not acknowledged in time (retry budget or the call's timeout)")  \
    X(SLOTD_EBATCH, -5005, "a batch was refused by the server and given up")                   \
    X(SLOTD_EUNAUTHORIZED, -5006, "the server refused the token (UNAUTHORIZED)")               \
    X(SLOTD_EFENCED, -5007, "another connection took this client name (FENCED)")               \
    X(SLOTD_EPROTOCOL, -5008, "protocol error (the server's MALFORMED, BAD_MESSAGE, TOO_LARGE, " \
                              "or a reply the library cannot read)")                              \
    X(SLOTD_ESPOOL, -5009, "the spool file is damaged or cannot be read or written")           \
    X(SLOTD_ELOCKED, -5010, "the spool is held by another sender")                             \
    X(SLOTD_ESTATE, -5011, "call out of order (no open record, or one still open)")            \
    X(SLOTD_ECLOSED, -5012, "the sender stopped after a fatal error")                          \
    X(SLOTD_ETLS, -5013, "TLS failed: the server's certificate is not trusted, ours was "        \
                         "refused, or the port does not speak TLS")                              \
    X(SLOTD_ESUB, -5014, "the server refused or ended the subscription (BAD_SUB, ...)")          \
    X(SLOTD_ECURSOR_GONE, -5015, "retention dropped trades the subscription had not read "       \
                                 "(CURSOR_GONE)")                                                \
    X(SLOTD_EDISCONNECTED, -5016, "the connection was lost or timed out: re-open the "           \
                                  "subscription from its saved cursor")

#define SLOTD__ERR_ENUM(name, value, text) name = value,
enum slotd_error { SLOTD_ERRORS(SLOTD__ERR_ENUM) };
#undef SLOTD__ERR_ENUM

/* The text of any SLOTD_E* code; "unknown error" for anything else. */
SLOTD_API const char *slotd_strerror(int rc);

/* What went wrong, typed. For a refused batch: code SLOTD_EBATCH, the
 * server's code ("BAD_VALUE"), the batch's seq, the index of its first bad
 * record (-1 if the error concerns the whole batch), the slot named by the
 * server's message (PROTOCOL.md 3.5: "trade <index>: <slot>: ..."), and the
 * message. For other errors: code is the SLOTD_E* code, seq 0, index -1,
 * wire_code the server's code if it sent one, message the details. */
typedef struct slotd_batch_error {
    int code;
    char wire_code[32];
    uint64_t seq;
    int64_t index;
    char field[64];
    char message[256];
} slotd_batch_error;

typedef struct slotd_sender slotd_sender;

typedef struct slotd_sender_opts {
    const char *host;        /* "127.0.0.1" */
    int port;                /* 7400 */
    const char *client;      /* the client name (required): 1-64 bytes */
    const char *token;       /* NULL: none */
    uint32_t batch_size;     /* records per batch before it seals: 1000 */
    int linger_ms;           /* seal an open batch this long after its first record: 5 */
    uint32_t window;         /* batches in flight: 32 */
    size_t max_buffered;     /* bytes of sealed batches not yet acknowledged: 64 MiB */
    const char *spool;       /* spool file path (docs/clients.md), NULL: none */
    int spool_sync;          /* fsync each sealed batch into the spool: 1 */
    int backoff_min_ms;      /* reconnect / transient retry back-off: 50 */
    int backoff_max_ms;      /* 2000 */
    int retry_timeout_ms;    /* retry budget: 60000 */
    int nonblocking;         /* 0: blocking sender; 1: driven by slotd_sender_process */
    /* A batch was stored (also: found stored after a reconnect). batch_user
     * is what slotd_send_raw was given, NULL for batches of records. */
    void (*on_ack)(void *user, uint64_t seq, uint32_t ntrades, void *batch_user);
    /* A batch was given up (e->code SLOTD_EBATCH), or the sender stopped. */
    void (*on_error)(void *user, const slotd_batch_error *e);
    /* The socket changed: open = 0 just before fd is closed, 1 once a new
     * one exists (non-blocking mode: stop / start watching it). */
    void (*on_socket)(void *user, int fd, int open);
    void *user;
    /* TLS (a slotd --tls-port): 1 to use it. The server's certificate is
     * checked against tls_ca (NULL: the system's CAs) and tls_server_name
     * (NULL: host; an IP address is checked against the certificate's IP
     * names). tls_cert/tls_key: a client certificate for mutual TLS (NULL:
     * none; tls_key NULL: the key is in tls_cert's file). The files are read
     * by slotd_sender_new. The TLS runs through memory buffers on the
     * sender's own socket, so slotd_sender_fd/events/process work alike. A
     * failed handshake stops the sender with SLOTD_ETLS. */
    int tls;
    const char *tls_ca, *tls_cert, *tls_key, *tls_server_name;
    /* Where slotd_sender_new says why it failed (the spool's file and
     * offset, ...), if not NULL. */
    char *errbuf;
    size_t errbuf_len;
} slotd_sender_opts;

/* Defaults as listed above; host, port and everything else but client. */
SLOTD_API void slotd_sender_opts_init(slotd_sender_opts *o);

/* Creates a sender (and opens, locks and reads back its spool) and starts
 * connecting. SLOTD_EINVAL, SLOTD_ENOMEM, SLOTD_ESPOOL, SLOTD_ELOCKED,
 * SLOTD_ETLS (a TLS file unusable: errbuf names it). */
SLOTD_API int slotd_sender_new(const slotd_sender_opts *o, slotd_sender **out);

/* A `trade`: px and qty as doubles (the server rounds to 1e-8), side 0
 * (unknown), 'B' or 'S', id the trade id. */
SLOTD_API int slotd_trade(slotd_sender *s, const char *sym, int64_t ts_ns, double px, double qty,
                          int side, uint64_t id);
/* The same with px and qty in exact fixed-point units of 1e-8. */
SLOTD_API int slotd_trade_fixed(slotd_sender *s, const char *sym, int64_t ts_ns, int64_t px_e8,
                                int64_t qty_e8, int side, uint64_t id);

/* Any declared kind, slot by slot (map form): begin, one call per slot,
 * end. A kind other than the open batch's seals it first. */
SLOTD_API int slotd_record_begin(slotd_sender *s, const char *kind, const char *sym);
SLOTD_API int slotd_record_i64(slotd_sender *s, const char *slot, int64_t v);
SLOTD_API int slotd_record_u64(slotd_sender *s, const char *slot, uint64_t v);
SLOTD_API int slotd_record_f64(slotd_sender *s, const char *slot, double v);
SLOTD_API int slotd_record_str(slotd_sender *s, const char *slot, const char *v);
/* An exact decimal ("187.25"): how fixed-point slots travel exactly. */
SLOTD_API int slotd_record_decimal(slotd_sender *s, const char *slot, const char *v);
SLOTD_API int slotd_record_end(slotd_sender *s);

/* A pre-encoded msgpack array of `ntrades` records as one sealed batch of
 * kind `kind` (NULL: trade). The bytes are copied; batch_user comes back
 * in on_ack. Seals the open batch first. */
SLOTD_API int slotd_send_raw(slotd_sender *s, const char *kind, const void *trades, size_t len,
                             uint32_t ntrades, void *batch_user);

/* Seals the open batch and waits until everything sealed before is done.
 * 0: all stored. SLOTD_EBATCH: a batch was given up since the last flush
 * (slotd_sender_last_error, on_error). SLOTD_ETIMEDOUT: nothing was
 * acknowledged for the retry budget (the message says what blocked); the
 * batches stay queued. SLOTD_EAGAIN: timeout_ms passed first (-1: no
 * timeout; 0: only what can be done without waiting, as a non-blocking
 * loop wants). A fatal code once the sender stopped. */
SLOTD_API int slotd_flush(slotd_sender *s, int timeout_ms);

/* slotd_flush(s, timeout_ms), then frees the sender (always). */
SLOTD_API int slotd_sender_close(slotd_sender *s, int timeout_ms);

/* Non-blocking mode: watch slotd_sender_fd (-1 while disconnected) for
 * slotd_sender_events (POLLIN / POLLOUT), wake after slotd_sender_timeout_ms
 * (-1: no timer), then call slotd_sender_process with what poll() returned
 * (0 after a timeout). Re-read all three after every call into the
 * sender: sealing a batch may want POLLOUT. process returns 0 or the fatal
 * code that stopped the sender. */
SLOTD_API int slotd_sender_fd(const slotd_sender *s);
SLOTD_API int slotd_sender_events(const slotd_sender *s);
SLOTD_API int slotd_sender_timeout_ms(const slotd_sender *s);
SLOTD_API int slotd_sender_process(slotd_sender *s, int revents);

/* Records ever sealed into batches under this spool (docs/clients.md): the
 * application resumes its source at this record number. Without a spool,
 * records sealed by this sender. */
SLOTD_API uint64_t slotd_sender_sealed(const slotd_sender *s);

/* The last error (a refused batch, the stop, the timeout); code 0 if none. */
SLOTD_API const slotd_batch_error *slotd_sender_last_error(const slotd_sender *s);

typedef struct slotd_sender_stats {
    uint64_t acked_batches, acked_trades; /* stored (and found stored after reconnects) */
    uint64_t failed_batches;              /* given up: refused permanently */
    uint64_t resent_batches;              /* sent again after a refusal or a reconnect */
    uint64_t reconnects;                  /* connections lost or refused */
    uint64_t queued_batches, queued_bytes; /* sealed, not yet done */
    uint64_t inflight;                    /* sent, awaiting a reply */
} slotd_sender_stats;
SLOTD_API void slotd_sender_stats_get(const slotd_sender *s, slotd_sender_stats *out);

/* ---- Subscriptions (PROTOCOL.md §11) --------------------------------------
 * A subscriber receives trades as they become durable, one push (a run of
 * up to 10,000 trades of one symbol) per slotd_sub_next, and keeps the
 * subscription's cursor: for every symbol the position after the last
 * trade handed out. The cursor travels as text (slotd_sub_cursor), so a
 * program saves it with what it processed and, after a lost connection,
 * a server restart or its own restart, opens again with `from` = that
 * text: it continues exactly after the last trade it was given, nothing
 * lost or repeated. Reconnecting is the caller's choice (SLOTD_EDISCONNECTED
 * says the connection is gone); the library never reconnects by itself.
 *
 *   slotd_sub_opts o;
 *   slotd_sub_opts_init(&o);
 *   o.port = 7400; o.client = "reader-1"; o.from = saved_or_NULL;
 *   slotd_sub *sub;
 *   slotd_batch_error err;
 *   if (slotd_sub_open(&o, &sub, &err) == 0) {
 *       slotd_sub_event ev;
 *       while (slotd_sub_next(sub, &ev, 1000) >= 0) {
 *           for (uint32_t i = 0; i < ev.ntrades; i++)
 *               handle(ev.sym, slotd_sub_slot(&ev, i, "px")->text);
 *           slotd_sub_cursor(sub, buf, sizeof buf);   // save with the work
 *       }
 *       slotd_sub_close(sub, 5000);
 *   }
 *
 * Threads: one thread at a time per subscription. Blocking: the calls wait
 * (up to their timeout) inside; slotd_sub_fd can be polled to serve many
 * subscriptions from one loop (then slotd_sub_next(sub, &ev, 0) until it
 * returns 0). */
typedef struct slotd_sub slotd_sub;

typedef struct slotd_sub_opts {
    const char *host;          /* "127.0.0.1" */
    int port;                  /* 7400 */
    const char *client;        /* the client name (required): 1-64 bytes */
    const char *token;         /* NULL: none (--auth-file: perms subscribe, and query if names) */
    const char *const *syms;   /* nsyms symbols (1-31 bytes each), or NULL: "*" (every symbol) */
    size_t nsyms;
    /* NULL or "now": trades stored from now on; "start": everything still
     * stored, then live; anything else is cursor text from slotd_sub_cursor
     * (with a symbol list: naming only listed symbols). */
    const char *from;
    int gaps;                  /* 0: CURSOR_GONE ends the subscription; 1: a GAP event instead */
    /* 1: ask the server's schema first (a `Q` op "schema", which needs the
     * query perm under --auth-file) so every event carries slot names. 0:
     * values only, in the kind's slot order (GET /schema). Default 1. */
    int names;
    int timeout_ms;            /* connect, TLS, HELLO and SUBOK, and close: 10000 */
    int tls;                   /* TLS options as slotd_sender_opts' */
    const char *tls_ca, *tls_cert, *tls_key, *tls_server_name;
} slotd_sub_opts;

SLOTD_API void slotd_sub_opts_init(slotd_sub_opts *o);

/* Connects, says HELLO, subscribes and waits for SUBOK. 0, or SLOTD_EINVAL
 * (bad options or cursor text), SLOTD_ENOMEM, SLOTD_ETLS, SLOTD_ESUB (the
 * server's BAD_SUB: err->wire_code and message say which key),
 * SLOTD_ECURSOR_GONE, SLOTD_EUNAUTHORIZED, SLOTD_EFENCED, SLOTD_EPROTOCOL,
 * SLOTD_EDISCONNECTED (cannot connect, closed, or timeout_ms passed). err
 * (may be NULL) is filled as slotd_sender_last_error would be. */
SLOTD_API int slotd_sub_open(const slotd_sub_opts *o, slotd_sub **out, slotd_batch_error *err);

/* A value of a pushed trade. Fixed-point slots (px, qty, strike) and
 * side/right come as SLOTD_TEXT ("187.25", "B", "" for side unknown);
 * ts, id, expiry as SLOTD_UINT (i64 holds them too if <= INT64_MAX). */
enum { SLOTD_TEXT = 1, SLOTD_UINT, SLOTD_INT };
typedef struct slotd_value {
    int type;
    uint64_t u;                /* SLOTD_UINT */
    int64_t i;                 /* SLOTD_INT, and SLOTD_UINT values up to INT64_MAX */
    const char *text;          /* SLOTD_TEXT: NUL-terminated; else NULL */
    size_t len;                /* SLOTD_TEXT: bytes before the NUL */
} slotd_value;

enum { SLOTD_SUB_TRADES = 1, SLOTD_SUB_GAP };
/* One push. Every pointer stays valid until the next call on the
 * subscription. */
typedef struct slotd_sub_event {
    int type;                  /* SLOTD_SUB_TRADES or SLOTD_SUB_GAP */
    const char *sym;           /* NUL-terminated */
    const char *kind;          /* TRADES: "trade", "option_trade", ... */
    uint32_t ntrades, nslots;  /* TRADES */
    const char *const *slot_names; /* nslots names (names = 1), else NULL */
    const slotd_value *values; /* trade i's slot j: values[i * nslots + j] */
    /* TRADES: exact = 1 when the run has no holes (no deletes): trade i is
     * at position first + i. next: the symbol's position after the run
     * (the cursor's new value). GAP: trades first .. next-1 were dropped by
     * retention unread (gaps = 1); the cursor moves to next. */
    int exact;
    uint64_t first, next;
} slotd_sub_event;

/* Waits up to timeout_ms (-1: forever, 0: only what has arrived) for the
 * next push. 1: *ev holds it and the cursor already covers it. 0: none in
 * time. Negative: the subscription is over (every later call returns the
 * same code): SLOTD_ECURSOR_GONE (retention passed the cursor: the message
 * names the symbol and the first position still stored), SLOTD_ESUB
 * (another ERR for it; wire code in slotd_sub_last_error), SLOTD_EFENCED,
 * SLOTD_EUNAUTHORIZED, SLOTD_EPROTOCOL (a push the library cannot read:
 * the message says what), SLOTD_ETLS, SLOTD_EDISCONNECTED (the server
 * closed, e.g. a restart, or dropped a stalled reader), SLOTD_ECLOSED
 * (after slotd_sub_unsub). */
SLOTD_API int slotd_sub_next(slotd_sub *sub, slotd_sub_event *ev, int timeout_ms);

/* The value of slot `name` of trade i of a TRADES event, NULL if the event
 * has no such slot (or no names). */
SLOTD_API const slotd_value *slotd_sub_slot(const slotd_sub_event *ev, uint32_t i,
                                            const char *name);

/* The cursor as text ("sym:pos,sym:pos", '%', ',', ':' and bytes below
 * 0x21 in symbols percent-encoded; "" when empty, meaning every symbol
 * from position 0), as slotd_sub_opts.from takes it. Writes at most cap
 * bytes with a NUL (like snprintf) and returns the length of the whole
 * text; negative on error. The server takes cursors of up to 1,024
 * symbols. */
SLOTD_API int64_t slotd_sub_cursor(const slotd_sub *sub, char *buf, size_t cap);
/* The position of sym in the cursor; 0 if absent (where it would start). */
SLOTD_API uint64_t slotd_sub_position(const slotd_sub *sub, const char *sym);

/* UNSUB and wait up to timeout_ms for UNSUBOK, handing out nothing more
 * (pushes already on the way are read and dropped, the cursor does not
 * move). 0, or the code that ended the subscription first. */
SLOTD_API int slotd_sub_unsub(slotd_sub *sub, int timeout_ms);
/* slotd_sub_unsub if still open, then closes the connection and frees
 * (always; NULL is fine). Returns what slotd_sub_unsub returned. */
SLOTD_API int slotd_sub_close(slotd_sub *sub, int timeout_ms);

/* For a poll() loop: the socket (POLLIN). */
SLOTD_API int slotd_sub_fd(const slotd_sub *sub);
/* What ended the subscription (code 0 while it runs). */
SLOTD_API const slotd_batch_error *slotd_sub_last_error(const slotd_sub *sub);
/* Trades and pushes handed out since open. */
SLOTD_API uint64_t slotd_sub_trades(const slotd_sub *sub);

#ifdef __cplusplus
}
#endif
#endif
