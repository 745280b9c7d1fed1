/* A Redis server as the process sees it (ipc_server.c): where it is and
 * how to log in, the one place that opens connections to it, and whether
 * it is reachable now. Streams with the same settings share one, and every
 * connection of theirs (dispatchers, pools, the service, the waker's
 * subscriber) is opened here, so what changes where connections go
 * (Sentinel, Cluster, TLS) changes one place. */
#ifndef RIPC_SERVER_H
#define RIPC_SERVER_H

#include <hiredis/hiredis.h>
#include "redis_ipc.h"

typedef struct ripc_server ripc_server;

/* The server for these settings, shared by every stream that has the same
 * (the strings are copied, TLS files loaded once here); release what you
 * acquire. key is the stream's name (on a cluster, its hash tag picks the
 * primary). NULL with err when its TLS files do not load
 * (RIPC_CONFIGURATION) or its Sentinel or Cluster settings cannot work
 * (RIPC_ARGUMENT, ipc_topology.h). */
ripc_server *ripc_server_acquire(const ripc_redis_config *cfg, const char *key, ripc_error *err);
/* One more holder of srv (release it too). */
void ripc_server_retain(ripc_server *srv);
void ripc_server_release(ripc_server *srv);
const ripc_redis_config *ripc_server_config(const ripc_server *srv);

/* 1 with Sentinel or Cluster settings: the primary may change. */
int ripc_server_fails_over(const ripc_server *srv);
/* 1 on a Redis Cluster (shard channels: SPUBLISH, SSUBSCRIBE). */
int ripc_server_cluster(const ripc_server *srv);
/* The failovers seen so far (ripc_topology_epoch); 0 when it cannot fail
 * over. A write made on a connection of an older epoch (ripc_conn_epoch)
 * may have been lost. */
unsigned long ripc_server_epoch(const ripc_server *srv);
/* 1 when c was opened to a primary that has been replaced since (a
 * failover): it must be closed, not used. */
int ripc_server_replaced(const ripc_server *srv, const redisContext *c);

/* Sentinel: looks whether the sentinels name another primary now
 * (ripc_topology_poll); cheap to call often. */
void ripc_server_poll(ripc_server *srv);

/* Opens a connection, authenticated and on its db, whose reads may wait
 * timeout + extra_read_timeout seconds; NULL with err set when the server
 * cannot be reached, which makes it unreachable until a connect works. */
redisContext *ripc_server_connect(ripc_server *srv, double extra_read_timeout, ripc_error *err);

/* Reconnecting after a failure, shared by every holder of a connection to
 * the server: 0 while it is reachable (the last connect worked: try now),
 * else when the next attempt is due (ripc_now()), backing off from 10 ms
 * to 250 ms as attempts fail. */
double ripc_server_retry_at(ripc_server *srv);

#endif
