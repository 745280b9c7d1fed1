/* The ledger: requests this instance sent and still waits on, by request id.
 * Dispatchers deliver replies into it; senders wait on their own slot. */
#ifndef RIPC_LEDGER_H
#define RIPC_LEDGER_H

#include <pthread.h>
#include "ipc_map.h"
#include "ipc_notifier.h"
#include "redis_ipc.h"

enum { RIPC_REQUEST_ID_LEN = 21 };
/* Ids remembered as answered: a second reply (at-least-once delivery, e.g.
 * after a takeover) up to this many answers later is ignored quietly. */
enum { RIPC_RECENT_IDS = 16384, RIPC_SPARE_BELLS = 256 };

typedef struct ripc_ledger {
    pthread_mutex_t mutex;
    ripc_map slots;        /* id -> ripc_request */
    int closed;
    /* Ids answered lately, so a second reply (at-least-once delivery) is
     * ignored quietly instead of reported as unknown. */
    ripc_map recent;
    char (*recent_ring)[RIPC_REQUEST_ID_LEN + 1]; /* RIPC_RECENT_IDS slots */
    int recent_next;
    /* Doorbells of released slots, reused so a request costs no open/close. */
    ripc_notifier spare_bells[RIPC_SPARE_BELLS];
    int spare_count;
} ripc_ledger;

struct ripc_request {
    ripc_ledger *ledger;
    struct ripc_stream *stream; /* kept alive while the request lives (see ripc_stream_unref) */
    char id[RIPC_REQUEST_ID_LEN + 1];
    double deadline;
    int state;              /* see ipc_ledger.c */
    int woken;              /* ripc_request_wake was called */
    int error_code;         /* why the slot failed */
    char *error_message;    /* RIPC_COMMAND: Redis's answer to the request's XADD (owned, freed on release) */
    ripc_entry *reply;
    ripc_notifier bell;     /* readable once the slot has an outcome */
};

void ripc_ledger_init(ripc_ledger *l);
void ripc_ledger_destroy(ripc_ledger *l);

/* A new slot with a fresh id, registered, waiting until deadline. NULL when
 * closed (RIPC_CLOSED in *code) or out of descriptors (RIPC_STATE). */
ripc_request *ripc_ledger_open(ripc_ledger *l, double deadline, int *code);
/* Marks the slot of request `id` failed (its request could not be written);
 * nothing happens when the slot is gone already. */
void ripc_ledger_fail_id(ripc_ledger *l, const char *id, int code);
/* The same with RIPC_COMMAND: Redis refused the request's XADD with message. */
void ripc_ledger_refuse_id(ripc_ledger *l, const char *id, const char *message);

enum { RIPC_DELIVERED, RIPC_DUPLICATE, RIPC_UNKNOWN };
/* Hands a reply to its waiting slot; on RIPC_DELIVERED the ledger owns reply. */
int ripc_ledger_deliver(ripc_ledger *l, ripc_entry *reply);

/* The outcome so far: RIPC_OK (*reply is the caller's), RIPC_AGAIN (still
 * waiting), RIPC_TIMEOUT, RIPC_CLOSED or RIPC_CONNECTION. */
int ripc_ledger_try(ripc_request *r, ripc_entry **reply);
/* Blocks until there is an outcome or ripc_ledger_wake (RIPC_WOKEN). */
int ripc_ledger_wait(ripc_request *r, ripc_entry **reply);
void ripc_ledger_wake(ripc_request *r);
void ripc_ledger_release(ripc_request *r);

/* Ends slots whose deadline passed with RIPC_TIMEOUT. */
void ripc_ledger_sweep(ripc_ledger *l, double now);
/* Fails every waiting slot with RIPC_CLOSED and refuses new ones until reopened. */
void ripc_ledger_close(ripc_ledger *l);
void ripc_ledger_reopen(ripc_ledger *l);
size_t ripc_ledger_size(ripc_ledger *l);

#endif
