#include "ipc_queue.h"
#include "ipc_util.h"
#include "redis_ipc.h"

#include <errno.h>

void ripc_queue_init(ripc_queue *q)
{
    pthread_mutex_init(&q->mutex, NULL);
    ripc_cond_init(&q->cond);
    q->head = q->tail = NULL;
    q->length = 0;
    q->wake_seq = 0;
    q->closed = 0;
}

void ripc_queue_destroy(ripc_queue *q, void (*free_item)(ripc_qnode *))
{
    ripc_qnode *node = ripc_queue_drain(q);
    while (node) {
        ripc_qnode *next = node->next;
        free_item(node);
        node = next;
    }
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->mutex);
}

int ripc_queue_push(ripc_queue *q, ripc_qnode *item)
{
    pthread_mutex_lock(&q->mutex);
    if (q->closed) {
        pthread_mutex_unlock(&q->mutex);
        return -1;
    }
    item->next = NULL;
    if (q->tail) q->tail->next = item;
    else q->head = item;
    q->tail = item;
    q->length++;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->mutex);
    return 0;
}

int ripc_queue_pop(ripc_queue *q, double deadline, ripc_waiter *waiter, ripc_qnode **out)
{
    int rc;
    *out = NULL;
    pthread_mutex_lock(&q->mutex);
    unsigned long seq = q->wake_seq;
    for (;;) {
        if (q->head) {
            ripc_qnode *node = q->head;
            q->head = node->next;
            if (!q->head) q->tail = NULL;
            q->length--;
            node->next = NULL;
            *out = node;
            rc = RIPC_OK;
            break;
        }
        if (q->closed) { rc = RIPC_CLOSED; break; }
        if (q->wake_seq != seq || (waiter && waiter->woken)) {
            if (waiter) waiter->woken = 0;
            rc = RIPC_WOKEN;
            break;
        }
        if (deadline > 0 && ripc_now() >= deadline) { rc = RIPC_TIMEOUT; break; }
        ripc_cond_wait_until(&q->cond, &q->mutex, deadline);
    }
    pthread_mutex_unlock(&q->mutex);
    return rc;
}

void ripc_queue_wake(ripc_queue *q, ripc_waiter *waiter)
{
    pthread_mutex_lock(&q->mutex);
    if (waiter) waiter->woken = 1;
    else q->wake_seq++;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->mutex);
}

void ripc_queue_close(ripc_queue *q)
{
    pthread_mutex_lock(&q->mutex);
    q->closed = 1;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->mutex);
}

void ripc_queue_reopen(ripc_queue *q)
{
    pthread_mutex_lock(&q->mutex);
    q->closed = 0;
    pthread_mutex_unlock(&q->mutex);
}

ripc_qnode *ripc_queue_drain(ripc_queue *q)
{
    pthread_mutex_lock(&q->mutex);
    ripc_qnode *head = q->head;
    q->head = q->tail = NULL;
    q->length = 0;
    pthread_mutex_unlock(&q->mutex);
    return head;
}

size_t ripc_queue_length(ripc_queue *q)
{
    pthread_mutex_lock(&q->mutex);
    size_t n = q->length;
    pthread_mutex_unlock(&q->mutex);
    return n;
}
