/* The service: one native thread per process that runs the periodic work of
 * every connected stream, their heartbeats (ipc_liveness.c) and their chores
 * (ipc_housekeeper.c), instead of two threads per stream. */
#ifndef RIPC_SERVICE_H
#define RIPC_SERVICE_H

#include <hiredis/hiredis.h>
#include "redis_ipc.h"

struct ripc_stream;

/* A stream's place in the service; guarded by the service's lock. */
typedef struct ripc_service_task {
    struct ripc_service_task *next;
    struct ripc_stream *stream;
    double beat_due;        /* ripc_now() of its next heartbeat */
    double chores_due;      /* ripc_now() of its next chores round */
    int nudged;             /* a nudge came while its chores ran */
    int registered;
    /* The one command connection of its beats and chores, used by the
     * service thread alone (opened lazily, replaced when broken). */
    redisContext *conn;
} ripc_service_task;

/* Registers the stream's beats and chores (connect, after its first beat).
 * The service thread starts with the first stream registered. */
int ripc_service_register(struct ripc_stream *s, ripc_error *err);
/* Unregisters them, waiting until none of them runs, and closes the task's
 * connection; the thread ends with the last stream. Safe to call again. */
void ripc_service_unregister(struct ripc_stream *s);
/* Runs the stream's chores now when they would otherwise wait past `within`
 * seconds (a reply handed to us, a sender starting to wait, lazy acks). */
void ripc_service_nudge(struct ripc_stream *s, double within);
/* True when some stream's heartbeat is due: chores stop at the next step
 * and leave the thread to it. */
int ripc_service_beat_waiting(void);
/* The task's connection, healthy, opened if needed (NULL with err set). */
redisContext *ripc_service_conn(struct ripc_stream *s, ripc_error *err);
/* Closes the task's connection after a failure; the next use reopens it. */
void ripc_service_conn_drop(struct ripc_stream *s);

#endif
