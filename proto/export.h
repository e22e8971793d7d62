/* export — bulk export of trades as CSV or JSON Lines, produced piece by
 * piece so the caller can stream it with bounded memory.
 *
 *   export_req r;  export_req_init(&r);
 *   export_set_param(&r, "syms", 4, "AAPL,MSFT", 9, &err);  ... from, to, format
 *   export_check(store, &r, &err);          every named symbol exists
 *   export_cursor c = {0};
 *   while (!c.done) export_fill(store, &r, &c, &buf, 256 << 10);  ... send buf
 *
 * Order: symbol by symbol (the order given, or symbol id order for "*"),
 * each symbol's trades with from <= ts < to in arrival order, exactly as
 * GET /symbols/{sym}/trades pages them. The cursor is a symbol position and
 * an absolute record index (store_scan), so the store may change between
 * calls: trades stored meanwhile may appear, deleted ones do not, nothing
 * stored throughout is skipped or repeated. A symbol removed meanwhile
 * ends early.
 *
 * Formats: JSONL — one object per line, the map of a trade in a trades
 * answer preceded by "symbol" and "kind" (query_emit_trade); CSV — a header
 * line "symbol,kind," then every slot key of every kind (base slots first),
 * one row per trade, slots a kind does not have empty, fixed point as exact
 * decimal text, symbols quoted (RFC 4180) when they hold , " CR or LF.
 *
 * No I/O, no threads: runs on the store's thread.
 */
#ifndef SLOTD_EXPORT_H
#define SLOTD_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "emit.h"
#include "proto.h"
#include "store.h"

#define EXPORT_MAX_SYMS 1024 /* named in one request (a URL holds ~2 KiB) */

typedef enum export_format { EXPORT_CSV = 0, EXPORT_JSONL } export_format;

typedef struct export_req {
    export_format format;  /* default CSV */
    int all;               /* syms=* */
    uint32_t nsyms;        /* named symbols (all == 0) */
    char syms[EXPORT_MAX_SYMS][STORE_SYM_MAX + 1];
    uint8_t symlen[EXPORT_MAX_SYMS];
    int has_syms;
    int64_t from, to;      /* default everything */
} export_req;

typedef struct export_cursor {
    uint32_t pos;          /* index into syms, or the symbol id for "*" */
    uint64_t rec;          /* absolute record index within that symbol */
    int header_done;
    int done;              /* everything produced */
    uint64_t trades;       /* produced so far */
} export_cursor;

void export_req_init(export_req *r);
/* One parameter: syms (comma-separated, or "*"), from, to (query times),
 * format (csv | jsonl). 0, or -1 with err (BAD_QUERY naming it). */
int export_set_param(export_req *r, const char *name, size_t nlen, const char *val, size_t vlen,
                     proto_error *err);
/* Is the request complete and are its symbols there? 0, or -1 with err:
 * BAD_QUERY (syms missing, from >= to), NOT_FOUND (a named symbol holds no
 * trade). */
int export_check(const store *s, const export_req *r, proto_error *err);
/* Append to out until it holds at least `want` bytes or the export is
 * complete (c->done). 0, or -1 when memory ran out (out is then partial). */
int export_fill(const store *s, const export_req *r, export_cursor *c, proto_buf *out,
                size_t want);
/* "text/csv; charset=utf-8" or "application/x-ndjson". */
const char *export_content_type(const export_req *r);

#endif
