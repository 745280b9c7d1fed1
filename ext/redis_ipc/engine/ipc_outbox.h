/* The outbox: batched, pipelined writes shared by all threads (ipc_outbox.c). */
#ifndef RIPC_OUTBOX_H
#define RIPC_OUTBOX_H

#include <pthread.h>
#include <stddef.h>
#include <hiredis/hiredis.h>
#include "redis_ipc.h"
#include "ipc_util.h"

struct ripc_stream;
typedef struct ripc_outbox_cmd ripc_outbox_cmd;

typedef struct ripc_outbox {
    struct ripc_stream *stream;
    pthread_mutex_t mutex;      /* guards the queue and the writer's flags */
    ripc_outbox_cmd *head, *tail;
    pthread_mutex_t write_lock; /* held by the one thread flushing; guards conn */
    redisContext *conn;
    ripc_thread writer;
    pthread_cond_t writer_cond;
    int writer_wanted, writer_stop;
} ripc_outbox;

void ripc_outbox_init(ripc_outbox *o, struct ripc_stream *s);
int ripc_outbox_start(ripc_outbox *o);
/* Writes what is queued, then stops the writer and closes the connection. */
void ripc_outbox_stop(ripc_outbox *o);
void ripc_outbox_drain(ripc_outbox *o);
void ripc_outbox_destroy(ripc_outbox *o);

/* A request's XADD; if it cannot be written, the ledger slot request_id fails.
 * With `defer`, the writer thread writes it and the caller returns at once
 * (a caller that keeps many requests in flight wants that); otherwise the
 * caller writes it itself unless another thread is writing already. */
void ripc_outbox_request(ripc_outbox *o, const char *request_id, const char *const values[RIPC_FIELD_COUNT],
                         const size_t lens[RIPC_FIELD_COUNT], int defer);
/* A reply's XADD, and the answered request's XACK and XDEL (batched). */
void ripc_outbox_reply(ripc_outbox *o, const char *answered_redis_id, const char *const values[RIPC_FIELD_COUNT],
                       const size_t lens[RIPC_FIELD_COUNT]);

#endif
