/* Where the primary of a server that fails over is (ipc_topology.c): the
 * primary that Redis Sentinel names, or the cluster node that owns the
 * slot of a stream's keys. A server (ipc_server.c) with Sentinel or
 * Cluster settings opens its connections through one. */
#ifndef RIPC_TOPOLOGY_H
#define RIPC_TOPOLOGY_H

#include <hiredis/hiredis.h>
#include "redis_ipc.h"

typedef struct ripc_topology ripc_topology;
struct ripc_tls_context;

/* 1 when cfg names sentinels or cluster nodes. */
int ripc_topology_wanted(const ripc_redis_config *cfg);
/* For cfg (kept, not copied: the server's own) and a stream named key.
 * NULL with err (RIPC_ARGUMENT) for settings that cannot work: an address
 * that is not host:port, sentinels without master_name, both kinds at
 * once, a cluster with a db other than 0, a key without a hash tag on a
 * cluster. Nothing is connected yet. */
ripc_topology *ripc_topology_new(const ripc_redis_config *cfg, const char *key, ripc_error *err);
void ripc_topology_free(ripc_topology *t);
void ripc_topology_after_fork(ripc_topology *t);

/* The hash tag of the stream's keys on a cluster ("{orders}"), else NULL. */
const char *ripc_topology_hash_tag(const ripc_topology *t);
int ripc_topology_cluster(const ripc_topology *t);
/* Counts the failovers seen: a primary replaced by another (a replica
 * promoted). Writes made before one may be lost (replication is
 * asynchronous), so whoever wrote them compares epochs. A slot that moved
 * to another primary by migration loses nothing and counts no failover. */
unsigned long ripc_topology_epoch(ripc_topology *t);

/* How often ripc_topology_poll asks the sentinels, at most. */
#define RIPC_TOPOLOGY_POLL 0.25
/* Sentinel: asks every sentinel which primary is current (at most every
 * RIPC_TOPOLOGY_POLL seconds, whoever calls) and, when it is not the one
 * known, counts a failover (ripc_topology_epoch). After SENTINEL FAILOVER
 * the old primary keeps taking writes until the sentinels reconfigure it,
 * seconds later: no reply tells its clients before. Nothing on a cluster,
 * whose old primary refuses at once (MOVED). */
void ripc_topology_poll(ripc_topology *t, struct ripc_tls_context *tls);

/* Opens a connection to the primary, finding it first when it is not
 * known (or was given up: a connection failed, a reply said the data is
 * elsewhere). The connection is watched (ripc_conn_watch): such a reply
 * fails it and makes the next connect look again. */
redisContext *ripc_topology_connect(ripc_topology *t, struct ripc_tls_context *tls, double extra_read_timeout,
                                    ripc_error *err);

#endif
