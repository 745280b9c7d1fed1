/* The endpoint's state, shared by the engine's files (not part of the public API). */
#ifndef RIPC_STREAM_INTERNAL_H
#define RIPC_STREAM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>
#include <hiredis/hiredis.h>

#include "redis_ipc.h"
#include "ipc_lazy_acks.h"
#include "ipc_ledger.h"
#include "ipc_inflight.h"
#include "ipc_liveness.h"
#include "ipc_map.h"
#include "ipc_outbox.h"
#include "ipc_pool.h"
#include "ipc_queue.h"
#include "ipc_refusals.h"
#include "ipc_service.h"
#include "ipc_util.h"

enum { RIPC_INSTANCE_ID_LEN = 6, RIPC_MAX_EVENTS = 1000 };

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
    int count;              /* entries the next read asks for (ipc_dispatcher.c plan_next_read) */
    size_t largest;         /* bytes of the largest entry read lately */
    int running;            /* its thread runs (dispatchers_mutex): the first always, others under load */
} ripc_dispatcher;

/* When each of the housekeeper's chores is next due (ripc_now()). */
typedef struct ripc_chores {
    double ledger, inbox, reclaim, trim;
} ripc_chores;

struct ripc_stream {
    char *stream;
    char *group;
    char instance_id[RIPC_INSTANCE_ID_LEN + 1];
    char *inbox;            /* consumer_<instance_id>_1: the one name this instance lists */
    char *consumers_key;    /* <stream>:<group>:<instance_id>:consumers */
    char *instances_key;    /* <stream>:<group>:instances */
    char *wake_channel;     /* <stream>:<group>:<instance_id>:wake */
    char **dispatcher_names;/* dispatcher_<instance_id>_<n>, one per dispatcher */

    ripc_options options;   /* its strings point at the copies below */
    struct ripc_tls_context *tls; /* held for the stream's life when TLS is on: its connections share it */

    ripc_pool pool;
    ripc_outbox outbox;     /* every XADD, and the acks of answered requests */
    ripc_lazy_acks lazy_acks; /* XACKs of entries for other groups, waiting for company */
    ripc_ledger ledger;
    ripc_queue requests;    /* requests read, waiting for a consumer */
    ripc_queue events;      /* background errors, waiting for a reporter */
    ripc_refusals refusals; /* refused commands reported and not accepted since */

    ripc_inflight inflight; /* requests taken and not yet acknowledged; bounds prefetch */

    pthread_mutex_t lifecycle_mutex; /* connect/stop/close */
    pthread_cond_t stop_cond;        /* wakes sleeping background threads on stop */
    pthread_mutex_t stop_mutex;
    atomic_int connected;
    atomic_int stopping;
    atomic_int closing;              /* close has begun: no more writes */
    atomic_int outage;               /* an outage was reported and has not ended */
    atomic_int inbox_rung;           /* the waker asks for an inbox sweep now (ipc_waker.c) */
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

/* Pushes a background error for the reporter (dropped past RIPC_MAX_EVENTS). */
void ripc_stream_emit(ripc_stream *s, int kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Connection trouble in a background thread: reported once per outage
 * (an err of RIPC_COMMAND, a refusal while re-joining, once per cause). */
void ripc_stream_outage(ripc_stream *s, const ripc_error *err);
void ripc_stream_outage_over(ripc_stream *s);
/* Sleeps for seconds or until the stream stops; returns 1 when stopping. */
int ripc_stream_sleep(ripc_stream *s, double seconds);
/* Makes the housekeeper run its chores within `within` seconds (0: now). */
void ripc_stream_nudge_housekeeper(ripc_stream *s, double within);
/* While a sender waits, replies handed to our inbox must be seen this quickly. */
#define RIPC_INBOX_BUSY 0.02

/* ipc_membership.c: creates the group and registers this instance (idempotent,
 * so it runs again after Redis lost its data). */
int ripc_membership_join(ripc_stream *s, redisContext *c, ripc_error *err);
void ripc_membership_leave(ripc_stream *s, redisContext *c);

/* ipc_retention.c: trims entries no group will ever handle. */
void ripc_retention_trim(ripc_stream *s, redisContext *c);

/* ipc_router.c: what a group does with each entry it reads (WIRE.md "Flow").
 * Routes every entry of an entries array ([[id, fields], ...]), marking
 * requests redelivered when they were claimed from another consumer, then sends
 * the acknowledgements and deletes they call for in one round trip (a
 * connection failure leaves c->err set). Returns how many entries were
 * taken, not counting requests already handed out or parked (requests
 * left pending in Redis because the instance holds as many as it may),
 * and adds to *routed when not NULL. */
typedef struct ripc_routed {
    size_t requests; /* requests for this group among the entries (taken, parked or handed out before) */
    size_t parked;   /* of those, left pending in Redis for lack of room */
} ripc_routed;
size_t ripc_route_and_ack(ripc_stream *s, redisContext *c, const redisReply *entries, int redelivered,
                          ripc_routed *routed, ripc_error *err);
/* Routes what waits on one of this instance's consumers, its history
 * (entries delivered to it and never acknowledged: requests parked for
 * lack of room, entries sent to a connection that was cut, what a takeover
 * or reclaim claimed), page by page from the oldest, `count` entries a
 * page; requests already handed out are skipped. Stops at the first page
 * that parked requests (no room left). Adds to *routed; returns how many
 * entries were taken, and sets *complete when it read the whole history. */
/* The entries of an XREADGROUP reply on one stream ([[stream, entries]]), or NULL. */
const redisReply *ripc_read_entries(const redisReply *r);
size_t ripc_route_history(ripc_stream *s, redisContext *c, const char *consumer, int count, int redelivered,
                          ripc_routed *routed, int *complete, ripc_error *err);
/* Sends the lazy acknowledgements waiting (ipc_lazy_acks.c) now. */
void ripc_send_lazy_acks(ripc_stream *s, redisContext *c, ripc_error *err);

/* ipc_dispatcher.c */
int ripc_dispatchers_start(ripc_stream *s, ripc_error *err);
void ripc_dispatchers_interrupt(ripc_stream *s);
void ripc_dispatchers_join(ripc_stream *s);

/* ipc_housekeeper.c: ledger sweeps, the inbox sweep and reclaiming stale
 * entries, run by the service thread. reset: every chore due afresh (connect);
 * tick: runs what is due, returns when to run again. */
void ripc_housekeeper_reset(ripc_stream *s);
double ripc_housekeeper_tick(ripc_stream *s);

/* ipc_waker.c: wakes our inbox sweep when another instance hands us a reply,
 * through one subscriber connection per Redis server, which the service
 * thread reads (ipc_service.c). attach/detach: at register/unregister. */
enum { RIPC_MAX_SUBSCRIBERS = 64 };
struct pollfd;
void ripc_waker_attach(ripc_stream *s);
void ripc_waker_detach(ripc_stream *s);
/* Service thread only: connects and subscribes what waits, frees the
 * subscribers no stream uses, and lists their sockets for poll(). */
int ripc_waker_prepare(struct pollfd *fds, int max);
/* When a disconnected subscriber tries again (0: none waits). */
double ripc_waker_next_retry(void);
/* Service thread only: reads a subscriber's socket and rings the streams named. */
void ripc_waker_read(int fd);
/* Closes the subscribers no stream uses (the service thread, as it ends). */
void ripc_waker_shutdown(void);
/* In a forked child: forgets the parent's subscribers. */
void ripc_waker_after_fork(void);
void ripc_waker_ring(ripc_stream *s, redisContext *c, const char *instance_id);

/* ipc_callbacks.c */
int ripc_callbacks_start(ripc_stream *s, ripc_error *err);
/* lifecycle_held: the caller holds lifecycle_mutex (a failed connect). */
void ripc_callbacks_join(ripc_stream *s, int lifecycle_held);

#endif
