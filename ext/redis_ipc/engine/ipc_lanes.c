#include "ipc_lanes.h"

#include <stdio.h>

const char *ripc_lane_slot(int lane, const char *redis_id, char *buf, size_t size)
{
    if (lane == RIPC_LANE_SHARED) return redis_id;
    snprintf(buf, size, "%d/%s", lane, redis_id);
    return buf;
}

const char *ripc_lane_name(int lane)
{
    switch (lane) {
    case RIPC_LANE_REQUESTS: return "requests lane";
    case RIPC_LANE_REPLIES: return "replies lane";
    default: return "stream";
    }
}

#include "redis_ipc.h"
_Static_assert(RIPC_MAX_LANE == RIPC_LANES - 1, "ripc_entry.lane holds every lane");
