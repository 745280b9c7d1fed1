/* The ledger: requests this instance sent and still waits on, by request id.
 * Dispatchers deliver replies into it; senders wait on their own slot.
 * Doorbells (descriptors) belong to waiters, not to requests: a thread that
 * waits borrows one from the ledger's pool and attaches it to the request it
 * waits for, so a process needs as many descriptors as threads waiting at
 * the same moment, however many requests are in flight.
 *
 * With a wake limit, at most that many watchers are woken and not yet back
 * from their wait; an outcome that comes while that many are awake waits
 * its turn in the wake queue, and each watcher that stops watching wakes the
 * next. For threads that run one at a time (Ruby's GVL): a herd woken at
 * once only queues for the lock, each thread woken twice, by its doorbell
 * and then by the lock. */
#ifndef RIPC_LEDGER_H
#define RIPC_LEDGER_H

#include <pthread.h>
#include "ipc_map.h"
#include "ipc_notifier.h"
#include "ipc_recent_ids.h"
#include "redis_ipc.h"

enum { RIPC_REQUEST_ID_LEN = 21 };
/* Ids remembered as answered: a second reply (at-least-once delivery, e.g.
 * after a takeover) up to this many answers later is ignored quietly. */
enum { RIPC_RECENT_IDS = 16384 };
/* Doorbells kept open for the next waiter; more waiters than this at once
 * open and close their own. */
enum { RIPC_SPARE_BELLS = 64 };

typedef struct ripc_ledger {
    pthread_mutex_t mutex;
    ripc_map slots;        /* id -> ripc_request */
    int closed;
    /* Ids answered lately, so a second reply (at-least-once delivery) is
     * ignored quietly instead of reported as unknown. */
    ripc_recent_ids recent;
    /* Doorbells given back by waiters, reused so a wait costs no open/close. */
    ripc_notifier spare_bells[RIPC_SPARE_BELLS];
    int spare_count;
    int lent_bells; /* doorbells attached to slots now: one per watcher */
    void (*free_written)(void *written); /* see ripc_ledger_keep_written */
    int wake_limit;        /* 0: none (ripc_options.reply_wake_limit) */
    int awake;             /* watchers woken and not yet back from the wait */
    struct ripc_request *wake_head, *wake_tail; /* watched slots with an outcome, waiting for their turn */
    struct ripc_metrics_recorder *metrics; /* told each slot's outcome (ipc_metrics.h) */
} ripc_ledger;

struct ripc_request {
    ripc_ledger *ledger;
    struct ripc_stream *stream; /* kept alive while the request lives (see ripc_stream_unref) */
    char id[RIPC_REQUEST_ID_LEN + 1];
    const char *to;         /* the group it was sent to, the only one whose reply counts (same block) */
    double deadline;
    double opened_at;       /* ripc_now() when the slot opened, before the request was written */
    int state;              /* see ipc_ledger.c */
    int error_code;         /* why the slot failed */
    char *error_message;    /* RIPC_COMMAND: Redis's answer to the request's XADD (owned, freed on release) */
    ripc_entry *reply;
    /* The doorbell of the thread watching this slot (read_fd < 0: nobody
     * watches); rung when the slot gets its outcome. */
    ripc_notifier bell;
    struct ripc_request *wake_next; /* in the wake queue */
    int wake_queued;        /* in the wake queue */
    int woken;              /* its watcher was woken and counts in awake */
    /* On a server that may fail over: the request as written (the
     * outbox's), and the epoch of the connection that wrote it, kept while
     * it waits so that it can be written again after a failover. */
    void *written;
    unsigned long written_epoch;
};

void ripc_ledger_init(ripc_ledger *l);
void ripc_ledger_destroy(ripc_ledger *l);

/* A new slot with a fresh id for a request to group `to`, registered,
 * waiting until deadline; NULL when the ledger is closed. It holds no
 * descriptor. */
ripc_request *ripc_ledger_open(ripc_ledger *l, double deadline, const char *to);
/* Marks the slot of request `id` failed (its request could not be written);
 * nothing happens when the slot is gone already. */
void ripc_ledger_fail_id(ripc_ledger *l, const char *id, int code);
/* The same with RIPC_COMMAND: Redis refused the request's XADD with message. */
void ripc_ledger_refuse_id(ripc_ledger *l, const char *id, const char *message);

enum { RIPC_DELIVERED, RIPC_DUPLICATE, RIPC_UNKNOWN, RIPC_WRONG_GROUP };
/* Hands a reply to its waiting slot; on RIPC_DELIVERED the ledger owns reply.
 * RIPC_WRONG_GROUP: a reply from a group the request was not sent to (a
 * forgery, or a peer's bug), which never reaches the sender. */
int ripc_ledger_deliver(ripc_ledger *l, ripc_entry *reply);

/* The outcome so far: RIPC_OK (*reply is the caller's), RIPC_AGAIN (still
 * waiting), RIPC_TIMEOUT, RIPC_CLOSED or RIPC_CONNECTION. */
int ripc_ledger_try(ripc_request *r, ripc_entry **reply);
/* 1 when ripc_ledger_try would not return RIPC_AGAIN; takes nothing. */
int ripc_ledger_ready(ripc_request *r);
/* Blocks until there is an outcome (or the deadline passes). RIPC_STATE
 * when another thread watches the slot or no doorbell could be had. */
int ripc_ledger_wait(ripc_request *r, ripc_entry **reply);
/* Lends the slot a doorbell from the pool and returns its descriptor,
 * readable once the slot has an outcome (at once when it has one already).
 * -1 with RIPC_STATE in *code (errno EBUSY) when another thread watches the
 * slot, or RIPC_AGAIN (errno from opening one) when no descriptor is left. */
int ripc_ledger_watch(ripc_request *r, int *code);
/* Gives the doorbell back (drained); nothing when the slot has none. */
void ripc_ledger_unwatch(ripc_request *r);
/* Keeps `written` (freed with free_written) in the slot of request id
 * while it waits; 0 when it waits no more (the caller keeps `written`). */
int ripc_ledger_keep_written(ripc_ledger *l, const char *id, void *written, unsigned long epoch);
/* 1 while request id waits for its reply. */
int ripc_ledger_waiting(ripc_ledger *l, const char *id);
/* Hands take() (under the ledger's lock) every request kept by a waiting
 * slot and written before epoch; the slots give them up. */
void ripc_ledger_take_written(ripc_ledger *l, unsigned long epoch, void (*take)(void *written, void *arg), void *arg);
/* Unregisters and frees the slot, giving back any doorbell it holds. */
void ripc_ledger_release(ripc_request *r);

/* Ends slots whose deadline passed with RIPC_TIMEOUT. */
void ripc_ledger_sweep(ripc_ledger *l, double now);
/* Fails every waiting slot with RIPC_CLOSED and refuses new ones until reopened. */
void ripc_ledger_close(ripc_ledger *l);
void ripc_ledger_reopen(ripc_ledger *l);
size_t ripc_ledger_size(ripc_ledger *l);
/* Doorbells lent to watchers now, and kept spare. */
void ripc_ledger_bells(ripc_ledger *l, size_t *lent, size_t *spare);

#endif
