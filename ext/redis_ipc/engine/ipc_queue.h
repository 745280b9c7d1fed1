/* A blocking FIFO between native threads (producers) and the threads that
 * serve requests or report errors (consumers, Ruby threads in the gem).
 * Items embed ripc_qnode as their first member. */
#ifndef RIPC_QUEUE_H
#define RIPC_QUEUE_H

#include <pthread.h>
#include <stddef.h>
#include "redis_ipc.h"

typedef struct ripc_qnode {
    struct ripc_qnode *next;
} ripc_qnode;

typedef struct ripc_queue {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    ripc_qnode *head, *tail;
    size_t length;
    unsigned long wake_seq; /* bumped by ripc_queue_wake: waiters return RIPC_WOKEN */
    int closed;
} ripc_queue;

void ripc_queue_init(ripc_queue *q);
void ripc_queue_destroy(ripc_queue *q, void (*free_item)(ripc_qnode *));
/* Returns 0, or -1 when the queue is closed (the item stays the caller's). */
int ripc_queue_push(ripc_queue *q, ripc_qnode *item);
/* Blocks until an item arrives (RIPC_OK), the deadline passes (RIPC_TIMEOUT),
 * ripc_queue_wake is called (RIPC_WOKEN) or the queue is closed and empty (RIPC_CLOSED). */
int ripc_queue_pop(ripc_queue *q, double deadline, ripc_waiter *waiter, ripc_qnode **out);
/* Makes the waiter's pop return RIPC_WOKEN, even when it has not started
 * waiting yet (the flag is sticky); a NULL waiter wakes every current waiter. */
void ripc_queue_wake(ripc_queue *q, ripc_waiter *waiter);
/* Closing wakes waiters; items still queued are discarded by ripc_queue_drain. */
void ripc_queue_close(ripc_queue *q);
void ripc_queue_reopen(ripc_queue *q);
ripc_qnode *ripc_queue_drain(ripc_queue *q); /* takes the whole list */
size_t ripc_queue_length(ripc_queue *q);

#endif
