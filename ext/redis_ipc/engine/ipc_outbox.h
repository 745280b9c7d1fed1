/* The outbox: batched, pipelined writes shared by all threads (ipc_outbox.c). */
#ifndef RIPC_OUTBOX_H
#define RIPC_OUTBOX_H

#include <pthread.h>
#include <stddef.h>
#include <hiredis/hiredis.h>
#include "ipc_host.h"
#include "ipc_util.h"

struct ripc_stream;
typedef struct ripc_outbox_cmd ripc_outbox_cmd;

typedef struct ripc_outbox {
    struct ripc_stream *stream;
    pthread_mutex_t mutex;      /* guards the queue and the writer's flags */
    ripc_outbox_cmd *head, *tail;
    ripc_outbox_cmd *retry;     /* replies whose write failed, for the writer to try again */
    ripc_outbox_cmd *acks;      /* replies written, whose requests' XACK and XDEL ride with the next write */
    pthread_mutex_t write_lock; /* held by the one thread flushing (on a connection of the stream's pool) */
    /* The writer thread runs only while there is deferred work: it starts
     * on demand and ends after WRITER_IDLE seconds without any. */
    ripc_thread writer;
    pthread_mutex_t writer_start; /* serializes starting (and joining) it */
    pthread_cond_t writer_cond;
    int writer_wanted, writer_stop, writer_running;
} ripc_outbox;

void ripc_outbox_init(ripc_outbox *o, struct ripc_stream *s);
/* Opens the outbox for a connect; its writer starts when first needed. */
void ripc_outbox_start(ripc_outbox *o);
/* Writes what is queued, then stops the writer. */
void ripc_outbox_stop(ripc_outbox *o);
void ripc_outbox_drain(ripc_outbox *o);
void ripc_outbox_destroy(ripc_outbox *o);

/* How a command gets written (RIPC_WRITE_* in redis_ipc.h): NOW, by the
 * caller unless another thread is writing already; DEFER, by the writer
 * thread, the caller returning at once; QUEUE, queued, returning 1 when no
 * write is under way and the caller must call ripc_outbox_flush. */

/* A request's XADD, on the lane ipc_routes.c picks for its destination
 * group; if it cannot be written, the ledger slot request_id fails. */
int ripc_outbox_request(ripc_outbox *o, const char *request_id, const char *const values[RIPC_FIELD_COUNT],
                        const size_t lens[RIPC_FIELD_COUNT], int mode);
/* The reply to a request read from the stream (WIRE.md: its id and
 * instance_id, the groups swapped): its XADD, on the lane the request
 * calls for (ipc_lanes.h), and the request's XACK and XDEL (batched).
 * RIPC_COMMAND (err set) when this thread wrote it (RIPC_WRITE_NOW) and
 * Redis refused it; a refusal met by another thread's write goes to the
 * stream's events (RIPC_EVENT_COMMAND). */
int ripc_outbox_answer(ripc_outbox *o, const ripc_entry *request, int fulfilled, const char *content, size_t len,
                       int mode, ripc_error *err);
/* Writes what is queued (see RIPC_WRITE_QUEUE). */
void ripc_outbox_flush(ripc_outbox *o);
/* Writes the acknowledgements of answered requests that no write took
 * along, if any wait (the service thread, nudged by the writer of their
 * replies); none when another thread is writing, which takes them. */
void ripc_outbox_flush_acks(ripc_outbox *o);
/* The same after this thread queued a reply and was told to flush:
 * RIPC_COMMAND (err set) when that reply was written here and refused. */
int ripc_outbox_flush_reply(ripc_outbox *o, ripc_error *err);
/* After a failover (ripc_server_epoch moved on): writes again, on the new
 * primary and under the same id, every request written before it whose
 * sender still waits, marked as possibly handled already (for groups with
 * no 1.x member). Nothing on a server that does not fail over. */
void ripc_outbox_resend_lost(ripc_outbox *o);

#endif
