/* http_export — GET /export streamed as chunks (export.h, http__stream).
 *
 * The request was checked by http_routes.c; here it becomes a stream whose
 * pieces export_fill produces, EXPORT_PIECE bytes or so each, one at a time
 * as the client reads them (http_conn.c): memory per export is the request,
 * one piece and the socket buffers, whatever the range.
 */
#include "http_internal.h"

#include <stdlib.h>

#include "export.h"

#define EXPORT_PIECE (256u << 10)

typedef struct http_export {
    server *srv;
    export_req *req;
    export_cursor cur;
} http_export;

static int export_next(void *ctx, proto_buf *buf, int *done)
{
    http_export *x = ctx;
    if (export_fill(x->srv->store, x->req, &x->cur, buf, EXPORT_PIECE) < 0)
        return -1;
    *done = x->cur.done;
    x->srv->metrics.export_trades_total += x->cur.trades;
    x->cur.trades = 0;
    return 0;
}

static void export_done(void *ctx)
{
    http_export *x = ctx;
    free(x->req);
    free(x);
}

int http__export_stream(server *srv, export_req *q, http__answer *a)
{
    http_export *x = calloc(1, sizeof *x);
    if (!x) {
        free(q);
        return -1;
    }
    x->srv = srv;
    x->req = q;
    srv->metrics.exports_total++;
    a->status = 200;
    a->ctype = export_content_type(q);
    a->stream = (http__stream){export_next, export_done, x};
    return 0;
}
