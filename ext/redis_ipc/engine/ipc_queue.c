#include "ipc_queue.h"
#include "ipc_util.h"
#include "redis_ipc.h"

int ripc_queue_init(ripc_queue *q)
{
    pthread_mutex_init(&q->mutex, NULL);
    q->head = q->tail = NULL;
    q->length = 0;
    q->closed = 0;
    return ripc_notifier_open(&q->bell);
}

void ripc_queue_destroy(ripc_queue *q, void (*free_item)(ripc_qnode *))
{
    ripc_qnode *node = ripc_queue_drain(q);
    while (node) {
        ripc_qnode *next = node->next;
        free_item(node);
        node = next;
    }
    ripc_notifier_close(&q->bell);
    pthread_mutex_destroy(&q->mutex);
}

/* Keeps the doorbell readable exactly while there is something to take
 * (an item, or the news that the queue closed). Called with the mutex held. */
static void update_bell(ripc_queue *q, int was_ready)
{
    int ready = q->length > 0 || q->closed;
    if (ready && !was_ready) ripc_notifier_ring(&q->bell);
    else if (!ready && was_ready) ripc_notifier_drain(&q->bell);
}

int ripc_queue_push(ripc_queue *q, ripc_qnode *item)
{
    pthread_mutex_lock(&q->mutex);
    if (q->closed) {
        pthread_mutex_unlock(&q->mutex);
        return -1;
    }
    int was_ready = q->length > 0;
    item->next = NULL;
    if (q->tail) q->tail->next = item;
    else q->head = item;
    q->tail = item;
    q->length++;
    update_bell(q, was_ready);
    pthread_mutex_unlock(&q->mutex);
    return 0;
}

int ripc_queue_try_pop(ripc_queue *q, ripc_qnode **out)
{
    int rc;
    *out = NULL;
    pthread_mutex_lock(&q->mutex);
    if (q->head) {
        int was_ready = 1;
        ripc_qnode *node = q->head;
        q->head = node->next;
        if (!q->head) q->tail = NULL;
        q->length--;
        node->next = NULL;
        *out = node;
        update_bell(q, was_ready);
        rc = RIPC_OK;
    } else {
        rc = q->closed ? RIPC_CLOSED : RIPC_AGAIN;
    }
    pthread_mutex_unlock(&q->mutex);
    return rc;
}

int ripc_queue_pop(ripc_queue *q, double deadline, ripc_qnode **out)
{
    for (;;) {
        int rc = ripc_queue_try_pop(q, out);
        if (rc != RIPC_AGAIN) return rc;
        if (!ripc_notifier_wait(&q->bell, deadline)) return RIPC_TIMEOUT;
    }
}

int ripc_queue_fd(ripc_queue *q) { return q->bell.read_fd; }

void ripc_queue_close(ripc_queue *q)
{
    pthread_mutex_lock(&q->mutex);
    int was_ready = q->length > 0 || q->closed;
    q->closed = 1;
    update_bell(q, was_ready);
    pthread_mutex_unlock(&q->mutex);
}

void ripc_queue_reopen(ripc_queue *q)
{
    pthread_mutex_lock(&q->mutex);
    int was_ready = q->length > 0 || q->closed;
    q->closed = 0;
    update_bell(q, was_ready);
    pthread_mutex_unlock(&q->mutex);
}

ripc_qnode *ripc_queue_drain(ripc_queue *q)
{
    pthread_mutex_lock(&q->mutex);
    int was_ready = q->length > 0 || q->closed;
    ripc_qnode *head = q->head;
    q->head = q->tail = NULL;
    q->length = 0;
    update_bell(q, was_ready);
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
