/* http — the operator endpoints on the server's loop, parsed by http-parser.
 *
 *   GET /healthz /readyz /stats /metrics /schema /symbols?top=N&by=...
 *       /symbols/{sym} /symbols/{sym}/trades?from=&to=&limit=&cursor=
 *       /symbols/{sym}/bars?interval=&from=&to=
 *
 * Queries go through query.h (the same code as the TCP Q message); only the
 * parameter syntax and the JSON encoding live here. Keep-alive; requests
 * beyond the header/URL limits are refused, never buffered.
 *
 * Files: http.c (listener, lifecycle, connection budgets), http_conn.c
 * (connection I/O, parser callbacks, keep-alive, the reserve),
 * http_routes.c (endpoint table, handlers, auth), http_stats.c (/stats,
 * /metrics bodies); http_internal.h is private to them.
 *
 * Loop thread only: http_start, http_stop and every callback run on the
 * thread that called http_start (asserted in debug builds).
 */
#ifndef SLOTD_HTTP_H
#define SLOTD_HTTP_H

#include "server.h"

/* Bind srv->cfg.http_host:http_port on srv->loop and serve; sets
 * srv->http_port to the bound port. 0 or -errno (a libuv error). */
int http_start(server *srv);
/* Stop accepting, close every HTTP connection (handles close on the loop). */
void http_stop(server *srv);

/* Bodies of /stats (JSON) and /metrics (Prometheus text 0.0.4), appended
 * to out; in http_stats.c, exposed for tests. 0, or -1 when out of memory.
 * Neither touches the store while srv->replaying. */
int http_render_stats(server *srv, proto_buf *out);
int http_render_metrics(server *srv, proto_buf *out);

/* One client connection's bytes `in` served without a socket (fuzzing,
 * tests): the same http-parser callbacks and limits, parse/answer loop,
 * routing, queries and response formatting as a real connection, with the
 * input arriving in reads of at most read_size bytes (0 = the read buffer's
 * 16 KiB). Each answer's bytes, as they would be written, are appended to
 * out. No libuv handle, timer or loop is involved, so neither the 408
 * timeout nor write backpressure applies. Needs srv->store (unless
 * srv->replaying) and srv->metrics; counts srv->metrics.http_requests_total.
 * Returns 1 when the server would close the connection after its last
 * answer (a refused request, Connection: close), 0 when it would wait for
 * more bytes, -1 when out of memory. */
int http_serve_bytes(server *srv, const char *in, size_t len, size_t read_size, proto_buf *out);

#endif
