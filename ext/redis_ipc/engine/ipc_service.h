/* The service: one native thread per process that runs the periodic work of
 * every connected stream, their heartbeats (ipc_liveness.c) and their chores
 * (ipc_housekeeper.c), instead of two threads per stream. */
#ifndef RIPC_SERVICE_H
#define RIPC_SERVICE_H

#include <hiredis/hiredis.h>
#include "redis_ipc.h"

struct ripc_stream;
struct pollfd;

/* What the thread runs, given by the streams' owner (ipc_stream.c), so
 * that the service knows no module above it. Every stream passes the
 * same; the descriptor hooks are the process's (the waker's subscriber
 * connections, ipc_waker.c). */
typedef struct ripc_service_hooks {
    double (*beat)(struct ripc_stream *s);   /* a heartbeat; returns when the next is due */
    double (*chores)(struct ripc_stream *s); /* a round of chores; returns when the next is due */
    void (*attach)(struct ripc_stream *s);   /* at register and unregister, outside the service's lock */
    void (*detach)(struct ripc_stream *s);
    int (*prepare)(struct pollfd *fds, int max); /* lists descriptors to wait on */
    double (*next_retry)(void);              /* when prepare wants to run again (0: no need) */
    void (*read)(int fd);                    /* one of them is readable */
    void (*shutdown)(void);                  /* the thread ends */
} ripc_service_hooks;

/* A stream's place in the service; guarded by the service's lock. */
typedef struct ripc_service_task {
    struct ripc_service_task *next;
    struct ripc_stream *stream;
    double beat_due;        /* ripc_now() of its next heartbeat */
    double chores_due;      /* ripc_now() of its next chores round */
    int nudged;             /* a nudge came while its chores ran */
    int registered;
    const ripc_service_hooks *hooks;
    /* Its beats and chores use the stream's pool; this connection only when
     * the pool had none free (service thread only). */
    redisContext *conn;
} ripc_service_task;

/* Registers the stream's beats and chores (connect, after its first beat).
 * The service thread starts with the first stream registered. */
int ripc_service_register(struct ripc_stream *s, const ripc_service_hooks *hooks, ripc_error *err);
/* Unregisters them, waiting until none of them runs, and closes the task's
 * connection; the thread ends with the last stream. Safe to call again. */
void ripc_service_unregister(struct ripc_stream *s);
/* Runs the stream's chores now when they would otherwise wait past `within`
 * seconds (a reply handed to us, a sender starting to wait, lazy acks). */
void ripc_service_nudge(struct ripc_stream *s, double within);
/* True when some stream's heartbeat is due: chores stop at the next step
 * and leave the thread to it. */
int ripc_service_beat_waiting(void);
/* A connection for the stream's beats and chores: one of its pool, taken
 * without waiting, else the task's own (opened when the pool has none free,
 * and kept). NULL with err set when Redis cannot be reached. */
redisContext *ripc_service_checkout(struct ripc_stream *s, ripc_error *err);
/* Gives it back; a broken one (c->err) is closed. */
void ripc_service_checkin(struct ripc_stream *s, redisContext *c);

#endif
