/* Dispatchers (ipc_dispatcher.c): the threads that read a stream for its
 * group (XREADGROUP) and hand what they read to the router. */
#ifndef RIPC_DISPATCHER_H
#define RIPC_DISPATCHER_H

#include <pthread.h>
#include <stddef.h>
#include <hiredis/hiredis.h>
#include "redis_ipc.h"
#include "ipc_router.h"
#include "ipc_util.h"

struct ripc_stream;

typedef struct ripc_dispatcher {
    struct ripc_stream *stream;
    const char *name;       /* dispatcher_<instance_id>_<n> (the stream's dispatcher_names) */
    ripc_thread thread;
    pthread_mutex_t mutex;  /* guards conn and reading against ripc_stream_stop */
    redisContext *conn;
    int reading;            /* in XREADGROUP: the only time stop may interrupt it */
    long long client_id;    /* CLIENT ID of conn, for CLIENT UNBLOCK; 0 unknown */
    /* Owned by the dispatcher's thread: */
    int parked;             /* requests wait parked on this consumer (no room when read) */
    int count;              /* entries the next read asks for at most (ipc_dispatcher.c plan_next_read) */
    int cap;                /* the plan's limit besides the room: the entries' size, READ_COUNT */
    size_t others;          /* entries the last read brought that were not requests for us */
    size_t largest;         /* bytes of the largest entry read lately */
    unsigned long epoch;    /* the server's failovers seen by its last connection (ripc_conn_epoch) */
    int running;            /* its thread runs (dispatchers_mutex): the first always, others under load */
    ripc_ack_batch held[RIPC_LANES]; /* the last read's XACK and XDEL, sent with the next read */
} ripc_dispatcher;

int ripc_dispatchers_start(struct ripc_stream *s, ripc_error *err);
void ripc_dispatchers_interrupt(struct ripc_stream *s);
/* Cuts the dispatchers' connections to a replaced primary
 * (ripc_server_replaced): their reads end and they reconnect. */
void ripc_dispatchers_cut(struct ripc_stream *s);
void ripc_dispatchers_join(struct ripc_stream *s);

#endif
