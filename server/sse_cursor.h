/* sse_cursor — the cursor of a "*" subscription over Server-Sent Events
 * (GET /subscribe?syms=*), short enough to be every event's id.
 *
 * The full cursor of "*" has one position per symbol: with 10,000 symbols
 * some 200 KB, too much for each `id:` line and for a Last-Event-ID header
 * (4,096 bytes here, and browsers resend the last id verbatim). So the id
 * is a base plus what moved since:
 *
 *   *                            base: every symbol at 0 (from=start)
 *   *@9f3a0c1d2e4b5a67           base: the positions stored in the file
 *                                <data>/sse/9f3a0c1d2e4b5a67.cur
 *   *@9f3a0c1d2e4b5a67,AAPL:42   that base, AAPL moved to 42 since
 *
 * A symbol the id does not place (neither in the base nor after it) is at
 * 0: it is new since, as with TCP's "*" cursor. from=now writes a base
 * (the ends of every symbol) when the subscription opens; a resumed one
 * goes on from the base its id names. When the moved entries would pass
 * SSECUR_DELTA_MAX bytes, the subscription writes its whole cursor as a
 * new base and its ids start over from it ("rebase"): a base costs one
 * file write (~12 bytes a symbol) per ~300 distinct symbols moved (W1's
 * names; ~10 bytes an entry). SSECUR_KEEP bases of ~300 events each are
 * far more of the stream than socket buffers hold, so an id a client
 * received still names a kept base.
 *
 * A base file is "slotd-sse-base 1 LEN CRC32C\n" then LEN bytes of
 * "sym:pos,..." (subproto.h's entries), written to a temporary name and
 * renamed, without fsync: it outlives a slotd restart (the page cache
 * does), a torn or lost one after a machine crash fails its check and the
 * resume is refused (CURSOR_GONE), never served from wrong positions. A
 * subscription keeps the last SSECUR_KEEP bases it wrote (ids in flight
 * may name them); any base unused for SSECUR_TTL_S is removed when a "*"
 * stream opens. Loop thread only (blocking file I/O, bounded as above).
 */
#ifndef SLOTD_SSE_CURSOR_H
#define SLOTD_SSE_CURSOR_H

#include <stdint.h>

#include "subscribe.h"

#define SSECUR_DELTA_MAX 3072       /* bytes of ",sym:pos" entries in an id, at most */
#define SSECUR_KEEP 32              /* bases a subscription keeps of its own */
#define SSECUR_TTL_S (24 * 3600)    /* a base unused this long is removed */
#define SSECUR_TOKEN 16             /* hex digits naming a base */

typedef struct ssecur_syms {
    subproto_sym *v;
    uint32_t n, cap;
} ssecur_syms;

typedef struct ssecur {
    const char *dir;                     /* the data directory */
    char base[SSECUR_TOKEN + 1];         /* "": every position 0 */
    ssecur_syms moved;                   /* since the base, in the id's order */
    size_t moved_bytes;                  /* their text's length */
    char own[SSECUR_KEEP][SSECUR_TOKEN + 1]; /* bases written here, a ring */
    uint32_t nown;
} ssecur;

/* Start with base "" and nothing moved; remove bases past SSECUR_TTL_S. */
void ssecur_init(ssecur *c, const char *data_dir);
void ssecur_free(ssecur *c);
/* Is text a "*" cursor (starts with '*')? */
int ssecur_is(const char *text, size_t n);
/* Take a "*" cursor: c's base and moved entries from it, and *map (malloc'd,
 * sorted by subproto_sym_cmp, for subproto_req.fromx) the positions it
 * stands for. 0, or -1 with err: BAD_QUERY (malformed, a symbol twice
 * after the base), CURSOR_GONE (the base is not stored here: removed, or
 * written by another server, or damaged). */
int ssecur_parse(ssecur *c, const char *text, size_t n, subproto_sym **map, uint32_t *nmap,
                 proto_error *err);
/* The subscription s moved sym to pos (an event about to be written):
 * recorded, or a rebase if it would not fit. 0, or -1 with err (BAD_SUB:
 * a base could not be written or memory ran out). */
int ssecur_moved(ssecur *c, const sub *s, const char *sym, size_t len, uint64_t pos,
                 proto_error *err);
/* Write s's whole cursor as the new base (nothing to write when every
 * position is 0: base ""). 0, or -1 with err (BAD_SUB). */
int ssecur_rebase(ssecur *c, const sub *s, proto_error *err);
/* Append the id text. 0 or -1 (memory). */
int ssecur_text(const ssecur *c, proto_buf *out);

#endif
