/* Lazy acknowledgements. Every group reads every entry (WIRE.md), so each
 * entry meant for another group costs this group an XACK that nobody waits
 * for. Rather than one XACK per read, those ids wait here and ride along
 * with the next XACK this instance sends anyway (a reply's, or the
 * acknowledgement of a reply it received), which takes a sequential round
 * trip from 12 Redis commands to 10. The housekeeper sends what is left
 * after RIPC_LAZY_ACKS_DELAY, and close sends the rest: ids wait well
 * under the 10 s after which 1.x instances reclaim pending entries, and
 * an id lost with a failed write is reclaimed and acknowledged again. */
#include "ipc_lazy_acks.h"
#include "ipc_util.h"

#include <stdlib.h>

void ripc_lazy_acks_init(ripc_lazy_acks *a)
{
    a->ids = NULL;
    a->count = a->capacity = 0;
    a->oldest = 0;
    pthread_mutex_init(&a->mutex, NULL);
}

void ripc_lazy_acks_destroy(ripc_lazy_acks *a)
{
    ripc_lazy_acks_free(a->ids, a->count);
    a->ids = NULL;
    a->count = a->capacity = 0;
    pthread_mutex_destroy(&a->mutex);
}

int ripc_lazy_acks_add(ripc_lazy_acks *a, const char *redis_id)
{
    char *id = ripc_strdup(redis_id);
    pthread_mutex_lock(&a->mutex);
    if (a->count == a->capacity) {
        a->capacity = a->capacity ? a->capacity * 2 : 64;
        a->ids = realloc(a->ids, a->capacity * sizeof(*a->ids));
        if (!a->ids) abort();
    }
    a->ids[a->count++] = id;
    int first = a->count == 1;
    if (first) a->oldest = ripc_now();
    pthread_mutex_unlock(&a->mutex);
    return first;
}

size_t ripc_lazy_acks_count(ripc_lazy_acks *a)
{
    pthread_mutex_lock(&a->mutex);
    size_t n = a->count;
    pthread_mutex_unlock(&a->mutex);
    return n;
}

double ripc_lazy_acks_due(ripc_lazy_acks *a)
{
    pthread_mutex_lock(&a->mutex);
    double due = a->count ? a->oldest + RIPC_LAZY_ACKS_DELAY : 0;
    pthread_mutex_unlock(&a->mutex);
    return due;
}

char **ripc_lazy_acks_take(ripc_lazy_acks *a, size_t *count)
{
    pthread_mutex_lock(&a->mutex);
    char **ids = a->ids;
    *count = a->count;
    a->ids = NULL;
    a->count = a->capacity = 0;
    a->oldest = 0;
    pthread_mutex_unlock(&a->mutex);
    return ids;
}

void ripc_lazy_acks_free(char **ids, size_t count)
{
    for (size_t i = 0; i < count; i++) free(ids[i]);
    free(ids);
}
