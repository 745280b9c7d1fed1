/* Every Redis key, channel and consumer name the engine uses, built in this
 * one place, for stream and group names of any length. Each returns a
 * malloc'd string the caller frees. WIRE.md fixes the 1.x ones (the
 * consumers list, the consumer names); the others are this gem's own. */
#ifndef RIPC_KEYS_H
#define RIPC_KEYS_H

#include <stddef.h>

/* <stream>:<group>:<instance_id>:consumers: the list of an instance's consumers (1.x). */
char *ripc_key_consumers(const char *stream, const char *group, const char *instance_id);
/* <stream>:<group>:instances: heartbeats, a sorted set by server time. */
char *ripc_key_instances(const char *stream, const char *group);
/* <stream>:<group>:<instance_id>:wake: published when a reply is handed to that instance. */
char *ripc_key_wake(const char *stream, const char *group, const char *instance_id);
/* <stream>:<group>:requests: the direct lane of requests to a group all of whose
 * members are instances of this gem (ipc_routes.c), a stream read by that group. */
char *ripc_key_requests(const char *stream, const char *group);
/* <stream>:<group>:<instance_id>:replies: the direct lane of replies to one instance
 * of this gem, a stream read by that instance only. */
char *ripc_key_replies(const char *stream, const char *group, const char *instance_id);
/* <stream>:<group>:seen:<request id>: a signed request's replay marker (ipc_signing.c). */
char *ripc_key_seen(const char *stream, const char *group, const char *request_id);

/* <stream>:<group>:<instance_id>:metrics: the instance's metrics (ipc_telemetry.c), a
 * string that expires unless the instance's heartbeat writes it again. */
char *ripc_key_metrics(const char *stream, const char *group, const char *instance_id);

/* consumer_<instance_id>_1: the consumer an instance lists (its inbox), as 1.x names them. */
char *ripc_name_inbox(const char *instance_id);
/* dispatcher_<instance_id>_<n>, as 1.x names them. */
char *ripc_name_dispatcher(const char *instance_id, int n);
/* The instance id inside a consumer name of either kind, into iid (size
 * bytes); 0 when the name is not one of them or does not fit. */
int ripc_name_instance(const char *consumer, char *iid, size_t size);

#endif
