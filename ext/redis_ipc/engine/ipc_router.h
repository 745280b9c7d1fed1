/* The router (ipc_router.c): what a group does with each entry it reads
 * (WIRE.md "Flow"): requests for us to the consumers, replies to the
 * ledger, everything else acknowledged. */
#ifndef RIPC_ROUTER_H
#define RIPC_ROUTER_H

#include <stddef.h>
#include <hiredis/hiredis.h>
#include "redis_ipc.h"
#include "ipc_ack_batch.h"
#include "ipc_lanes.h"

struct ripc_stream;

/* What routing found among the entries it was given. */
typedef struct ripc_routed {
    size_t requests; /* requests for this group among the entries (taken, parked or handed out before) */
    size_t parked;   /* of those, left pending in Redis for lack of room */
} ripc_routed;

/* Routes every entry of an entries array ([[id, fields], ...]) read from lane, marking
 * requests redelivered when they were claimed from another consumer, then sends
 * the acknowledgements and deletes they call for in one round trip (a
 * connection failure leaves c->err set), or, with held (one batch per lane),
 * leaves them there for the caller to send. Returns how many entries were
 * taken, not counting requests already handed out or parked (requests
 * left pending in Redis because the instance holds as many as it may),
 * and adds to *routed when not NULL. */
size_t ripc_route_and_ack(struct ripc_stream *s, redisContext *c, int lane, const redisReply *entries, int redelivered,
                          ripc_routed *routed, ripc_ack_batch *held, ripc_error *err);
/* Routes what waits on one of this instance's consumers on lane, its history
 * (entries delivered to it and never acknowledged: requests parked for
 * lack of room, entries sent to a connection that was cut, what a takeover
 * or reclaim claimed), page by page from the oldest, `count` entries a
 * page and at most ripc_read_budget bytes of them; entries over the entry
 * limit come measured, not read, and are refused or removed; requests
 * already handed out are skipped. Stops at the first page
 * that parked requests (no room left). Adds to *routed; returns how many
 * entries were taken, and sets *complete when it read the whole history. */
size_t ripc_route_history(struct ripc_stream *s, redisContext *c, int lane, const char *consumer, int count, int redelivered,
                          ripc_routed *routed, int *complete, ripc_error *err);
/* What a read may hold: about RIPC_READ_BUDGET x max_content_bytes of
 * entries (the budget); an entry over the entry limit is never read
 * whole (ipc_scripts.h), a read of new entries that brings more than the
 * budget is abandoned and its entries read again as history. */
enum { RIPC_READ_BUDGET = 4 };
size_t ripc_read_budget(const struct ripc_stream *s);
size_t ripc_read_entry_limit(const struct ripc_stream *s);
/* The entries of an XREADGROUP reply ([[key, entries], ...]) by the lane
 * they come from (NULL for a lane with none); 0 when there are none at all. */
int ripc_read_lanes(const struct ripc_stream *s, const redisReply *r, const redisReply *by_lane[RIPC_LANES]);
/* Sends the lazy acknowledgements waiting (ipc_lazy_acks.c) now. */
void ripc_send_lazy_acks(struct ripc_stream *s, redisContext *c, ripc_error *err);

#endif
