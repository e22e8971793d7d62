/* delete — removing a symbol's trades in a time range, as a write: the
 * request is journaled first (a ["D", {sym, from, to}] record, query.h),
 * applied to the store (store_delete_range) only once the journal says it
 * is durable, and answered with the count deleted. Journal order is apply
 * order: batches appended before the delete commit before it, those after
 * it commit after, and replay applies the record at the same place, so a
 * restart reaches the state the live server had.
 *
 * Both transports come here: HTTP `DELETE /symbols/{sym}/trades?from=&to=`
 * and the TCP Q op "delete". Authentication is theirs (HTTP Bearer token,
 * the TCP connection's HELLO token).
 */
#ifndef SLOTD_DELETE_H
#define SLOTD_DELETE_H

#include <stdint.h>

#include "query.h"
#include "server.h"

/* Called once, on the loop thread: err NULL and `deleted` records removed,
 * or err set (NOT_READY, NOT_FOUND, BAD_QUERY, JOURNAL) and nothing done. */
typedef void (*delete_done_fn)(void *ctx, const query_req *q, uint64_t deleted,
                               const proto_error *err);

/* Check q (a QUERY_DELETE), journal it, apply it once durable, then call
 * done — possibly before returning (errors, --no-journal). */
void delete_submit(server *srv, const query_req *q, delete_done_fn done, void *ctx);

/* Replay: is this journal record a delete? */
int delete_is_record(const uint8_t *msg, size_t len);
/* Replay: apply a journaled delete. 0, or -1 after logging why. */
int delete_replay(server *srv, const uint8_t *msg, size_t len);

#endif
