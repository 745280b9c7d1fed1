/* Which lane a request to a group takes (ipc_lanes.h, docs/wire.md). The
 * direct lane, <stream>:<group>:requests, only when every consumer the
 * group has on the shared stream belongs to an instance that reads that
 * lane too: a 1.x member, or an instance of an older version of this gem,
 * reads only the shared stream and must get the group's requests there.
 * Redis is asked by the service thread (ripc_routes_refresh), off the
 * senders' way but for the first request to a group: a group not checked
 * lately takes the shared stream meanwhile, which every member reads. */
#ifndef RIPC_ROUTES_H
#define RIPC_ROUTES_H

#include <pthread.h>
#include <hiredis/hiredis.h>
#include "ipc_map.h"
#include "redis_ipc.h"

struct ripc_stream;

typedef struct ripc_routes {
    pthread_mutex_t mutex;
    ripc_map groups; /* destination group -> struct route (ipc_routes.c) */
} ripc_routes;

void ripc_routes_init(ripc_routes *r);
void ripc_routes_destroy(ripc_routes *r);
/* Forgets every group (each connect: the members may have changed). */
void ripc_routes_reset(ripc_routes *r);
/* 1 when a request to group goes on the group's direct lane. A group met
 * for the first time is asked about here when may_ask and a connection of
 * the pool is free (one round trip, once), else by the service thread. */
int ripc_routes_direct(struct ripc_stream *s, const char *group, int may_ask);
/* Whether group is remembered (asked about, or being asked about). */
int ripc_routes_known(ripc_routes *r, const char *group);
/* The group's direct lane is gone (a write there found no stream): its
 * requests take the shared stream until the next check. */
void ripc_routes_lost(ripc_routes *r, const char *group, size_t len);
/* The service thread: asks Redis about the groups senders used lately and
 * whose answer is getting old (one round trip for all), forgets the groups
 * no longer used. Returns when it wants to run again (ripc_now()). */
double ripc_routes_refresh(struct ripc_stream *s, redisContext *c, ripc_error *err);

#endif
