/* A stream endpoint (ripc_stream, opaque in redis_ipc.h): what one
 * stream + group + instance holds. Each part is a module of its own, with
 * its state and functions in its header; this struct puts them together,
 * and ipc_stream.c runs its lifecycle (connect, stop, close), sends and
 * answers. Not part of the public API. */
#ifndef RIPC_STREAM_H
#define RIPC_STREAM_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "redis_ipc.h"
#include "ipc_dispatcher.h"
#include "ipc_housekeeper.h"
#include "ipc_lazy_acks.h"
#include "ipc_ledger.h"
#include "ipc_inflight.h"
#include "ipc_lanes.h"
#include "ipc_liveness.h"
#include "ipc_metrics.h"
#include "ipc_outbox.h"
#include "ipc_pool.h"
#include "ipc_queue.h"
#include "ipc_reports.h"
#include "ipc_routes.h"
#include "ipc_server.h"
#include "ipc_service.h"
#include "ipc_signing.h"
#include "ipc_telemetry.h"
#include "ipc_util.h"

enum { RIPC_INSTANCE_ID_LEN = 6 };

struct ripc_stream {
    char *stream;
    char *group;
    char instance_id[RIPC_INSTANCE_ID_LEN + 1];
    char *inbox;            /* consumer_<instance_id>_1: the one name this instance lists */
    char *consumers_key;    /* <stream>:<group>:<instance_id>:consumers */
    char *instances_key;    /* <stream>:<group>:instances */
    char *wake_channel;     /* <stream>:<group>:<instance_id>:wake */
    char *metrics_key;      /* <stream>:<group>:<instance_id>:metrics */
    char **dispatcher_names;/* dispatcher_<instance_id>_<n>, one per dispatcher */
    char *lanes[RIPC_LANES];/* the keys of the lanes this instance reads (ipc_lanes.h); [SHARED] is stream */

    ripc_options options;   /* its redis strings are the server's copies */
    ripc_server *server;    /* where every connection goes (ipc_server.c) */
    unsigned long seen_epoch; /* the server's failovers this stream has followed (ipc_failover.c) */
    atomic_llong failover_mark_ms; /* requests stamped up to then may have run on an old primary (ipc_failover.c) */
    atomic_ulong marked_epoch;     /* the failover that set it */
    ripc_signing signing;   /* the keys of a signed stream (ipc_signing.c); options.signing_keys is NULL */

    ripc_pool pool;
    ripc_outbox outbox;     /* every XADD, and the acks of answered requests */
    ripc_lazy_acks lazy_acks; /* XACKs of entries for other groups, waiting for company */
    ripc_ledger ledger;
    ripc_routes routes;     /* which lane a request to each group takes */
    ripc_queue requests;    /* requests read, waiting for a consumer */
    ripc_queue events;      /* background errors, waiting for a reporter */
    ripc_refusals refusals; /* refused commands reported and not accepted since */

    ripc_inflight inflight; /* requests taken and not yet acknowledged; bounds prefetch */
    ripc_metrics_recorder metrics; /* ipc_metrics.c; published by ipc_telemetry.c */
    ripc_published published;      /* the last publication (ipc_telemetry.c) */

    pthread_mutex_t lifecycle_mutex; /* connect/stop/close */
    pthread_cond_t stop_cond;        /* wakes sleeping background threads on stop */
    pthread_mutex_t stop_mutex;
    atomic_int connected;
    atomic_int stopping;
    atomic_int closing;              /* close has begun: no more writes */
    atomic_int outage;               /* an outage was reported and has not ended */
    atomic_int inbox_rung;           /* the waker asks for an inbox sweep now (ipc_waker.c) */
    atomic_int routes_wanted;        /* a sender met a group whose route is not known (ipc_routes.c) */
    atomic_size_t takeovers, taken_over_entries;
    pid_t pid;                       /* the process that connected */
    /* One reference for the owner, one per unreleased request: a request
     * handle may outlive ripc_stream_free (a garbage collector frees in any
     * order), so the memory goes with the last reference. */
    atomic_int refs;

    /* Callback threads for C programs (ipc_callbacks.c). */
    ripc_request_fn request_fn;
    void *request_userdata;
    int handler_count;
    pthread_t *handlers;
    ripc_error_fn error_fn;
    void *error_userdata;
    pthread_t reporter;
    int reporter_started;

    ripc_dispatcher *dispatchers;
    pthread_mutex_t dispatchers_mutex; /* starting and retiring the dispatchers beyond the first */
    ripc_liveness liveness;          /* ipc_liveness.c */
    ripc_service_task service;       /* its beats and chores in the service (ipc_service.c) */
    ripc_chores chores;              /* when each chore is due (service thread only) */
};

/* Sleeps for seconds or until the stream stops (stop_cond); returns 1 when stopping. */
static inline int ripc_stream_sleep(ripc_stream *s, double seconds)
{
    double deadline = ripc_now() + seconds;
    pthread_mutex_lock(&s->stop_mutex);
    while (!atomic_load(&s->stopping) && ripc_now() < deadline)
        ripc_cond_wait_until(&s->stop_cond, &s->stop_mutex, deadline);
    pthread_mutex_unlock(&s->stop_mutex);
    return atomic_load(&s->stopping);
}

#endif
