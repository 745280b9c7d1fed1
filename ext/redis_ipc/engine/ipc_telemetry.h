/* Telemetry: a stream's metrics as its users see them (ripc_stream_metrics:
 * the counters of ipc_metrics.c with the gauges read from the ledger, the
 * request queue and the in-flight set), and the snapshot each instance
 * publishes into <stream>:<group>:<instance_id>:metrics at each heartbeat,
 * where `redis-ipc stats` reads other processes' figures. */
#ifndef RIPC_TELEMETRY_H
#define RIPC_TELEMETRY_H

#include <hiredis/hiredis.h>
#include "redis_ipc.h"
#include "ipc_metrics.h"

struct ripc_stream;

/* What the last publication wrote, past its clock reading, and when: an
 * instance whose figures did not change (an idle one) writes them again
 * only when its key is halfway to expiring. */
typedef struct ripc_published {
    char figures[RIPC_METRICS_TEXT_MAX];
    double at; /* ripc_now(); 0: nothing published since connect */
} ripc_published;

/* A handler took this request from the queue (ripc_stream_next_request,
 * the callback threads). */
void ripc_telemetry_taken(struct ripc_stream *s, const ripc_entry *request);
/* On the heartbeat's connection, after a beat that went through: one SET
 * with an expiry, so an instance that dies stops being listed; none when
 * nothing changed since the last one and its key has time left. */
void ripc_telemetry_publish(struct ripc_stream *s, redisContext *c);

#endif
