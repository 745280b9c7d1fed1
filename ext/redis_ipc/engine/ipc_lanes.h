/* The lanes an instance reads (docs/wire.md). Every entry travels on one
 * of them, each a Redis stream with a consumer group named after the group:
 *   SHARED    <stream>, the 1.x wire: every group reads every entry;
 *   REQUESTS  <stream>:<group>:requests, requests to this group from
 *             instances of this gem, when the group has no other kind of
 *             member (ipc_routes.c);
 *   REPLIES   <stream>:<group>:<instance_id>:replies, the replies to those
 *             requests, read by the instance that sent them alone.
 * Only the addressee wakes for an entry on a direct lane, so the cost of a
 * message does not grow with the groups that share the stream. */
#ifndef RIPC_LANES_H
#define RIPC_LANES_H

#include <stddef.h>

enum { RIPC_LANE_SHARED, RIPC_LANE_REQUESTS, RIPC_LANE_REPLIES, RIPC_LANES };

/* Entry ids of two lanes may be equal: an entry's name in the in-flight
 * set (ipc_inflight.h) carries its lane. Returns redis_id itself on the
 * shared lane, else writes "<lane>/<redis_id>" into buf. */
enum { RIPC_LANE_SLOT_MAX = 48 };
const char *ripc_lane_slot(int lane, const char *redis_id, char *buf, size_t size);
/* "stream", "requests lane", "replies lane": for messages. */
const char *ripc_lane_name(int lane);

#endif
