/* A FIFO between native threads (producers) and the threads that serve
 * requests or report errors (Ruby threads in the gem). Its doorbell is
 * readable exactly while an item is queued or the queue is closed, so any
 * number of waiters can poll it. Items embed ripc_qnode first. */
#ifndef RIPC_QUEUE_H
#define RIPC_QUEUE_H

#include <pthread.h>
#include <stddef.h>
#include "ipc_notifier.h"

typedef struct ripc_qnode {
    struct ripc_qnode *next;
} ripc_qnode;

typedef struct ripc_queue {
    pthread_mutex_t mutex;
    ripc_qnode *head, *tail;
    size_t length;
    int closed;
    ripc_notifier bell;
} ripc_queue;

int ripc_queue_init(ripc_queue *q);
void ripc_queue_destroy(ripc_queue *q, void (*free_item)(ripc_qnode *));
/* Returns 0, or -1 when the queue is closed (the item stays the caller's). */
int ripc_queue_push(ripc_queue *q, ripc_qnode *item);
/* Takes the first item without waiting: RIPC_OK, RIPC_AGAIN (empty) or
 * RIPC_CLOSED (closed and empty). */
int ripc_queue_try_pop(ripc_queue *q, ripc_qnode **out);
/* Waits for an item until deadline (0: none): RIPC_OK, RIPC_TIMEOUT, RIPC_CLOSED. */
int ripc_queue_pop(ripc_queue *q, double deadline, ripc_qnode **out);
int ripc_queue_fd(ripc_queue *q);
/* Closing makes every waiter return RIPC_CLOSED once the queue is empty. */
void ripc_queue_close(ripc_queue *q);
void ripc_queue_reopen(ripc_queue *q);
ripc_qnode *ripc_queue_drain(ripc_queue *q); /* takes the whole list */
size_t ripc_queue_length(ripc_queue *q);

#endif
