#include "ipc_inflight.h"
#include "ipc_util.h"

/* Answered but not yet acknowledged: the id stays (a re-read of the entry
 * must not hand it out again) until the outbox has its XACK. */
static void *const ANSWERED = (void *)1;

void ripc_inflight_init(ripc_inflight *f, size_t capacity)
{
    pthread_mutex_init(&f->mutex, NULL);
    ripc_cond_init(&f->room);
    ripc_map_init(&f->ids);
    f->taken = 0;
    f->capacity = capacity > 0 ? capacity : 1;
    f->closed = 0;
}

void ripc_inflight_destroy(ripc_inflight *f)
{
    ripc_map_destroy(&f->ids);
    pthread_cond_destroy(&f->room);
    pthread_mutex_destroy(&f->mutex);
}

void ripc_inflight_reset(ripc_inflight *f, size_t capacity)
{
    pthread_mutex_lock(&f->mutex);
    f->capacity = capacity > 0 ? capacity : 1;
    ripc_map_destroy(&f->ids);
    ripc_map_init(&f->ids);
    f->taken = 0;
    f->closed = 0;
    pthread_mutex_unlock(&f->mutex);
}

void ripc_inflight_close(ripc_inflight *f)
{
    pthread_mutex_lock(&f->mutex);
    f->closed = 1;
    pthread_cond_broadcast(&f->room);
    pthread_mutex_unlock(&f->mutex);
}

int ripc_inflight_take(ripc_inflight *f, const char *redis_id)
{
    int found, rc;
    pthread_mutex_lock(&f->mutex);
    ripc_map_get(&f->ids, redis_id, &found);
    if (found) rc = RIPC_TAKE_ALREADY;
    else if (f->taken >= f->capacity) rc = RIPC_TAKE_FULL;
    else {
        ripc_map_put(&f->ids, redis_id, NULL);
        f->taken++;
        rc = RIPC_TAKE_OK;
    }
    pthread_mutex_unlock(&f->mutex);
    return rc;
}

/* One fewer taken: a dispatcher waiting for room may go on. Mutex held. */
static void release_one(ripc_inflight *f)
{
    if (f->taken > 0 && f->taken-- == f->capacity) pthread_cond_broadcast(&f->room);
}

int ripc_inflight_mark_answered(ripc_inflight *f, const char *redis_id)
{
    int found;
    pthread_mutex_lock(&f->mutex);
    void *state = ripc_map_get(&f->ids, redis_id, &found);
    int marked = found && state != ANSWERED;
    if (marked) {
        ripc_map_remove(&f->ids, redis_id, NULL);
        ripc_map_put(&f->ids, redis_id, ANSWERED);
        release_one(f);
    }
    pthread_mutex_unlock(&f->mutex);
    return marked;
}

int ripc_inflight_remove(ripc_inflight *f, const char *redis_id)
{
    int found;
    pthread_mutex_lock(&f->mutex);
    void *state = ripc_map_get(&f->ids, redis_id, &found);
    if (found) {
        ripc_map_remove(&f->ids, redis_id, NULL);
        if (state != ANSWERED) release_one(f);
    }
    pthread_mutex_unlock(&f->mutex);
    return found;
}

int ripc_inflight_state(ripc_inflight *f, const char *redis_id)
{
    int found;
    pthread_mutex_lock(&f->mutex);
    void *state = ripc_map_get(&f->ids, redis_id, &found);
    pthread_mutex_unlock(&f->mutex);
    return !found ? RIPC_INFLIGHT_NONE : state == ANSWERED ? RIPC_INFLIGHT_ANSWERED : RIPC_INFLIGHT_TAKEN;
}

size_t ripc_inflight_room(ripc_inflight *f)
{
    pthread_mutex_lock(&f->mutex);
    size_t room = f->taken < f->capacity ? f->capacity - f->taken : 0;
    pthread_mutex_unlock(&f->mutex);
    return room;
}

void ripc_inflight_wait_room(ripc_inflight *f, double deadline)
{
    pthread_mutex_lock(&f->mutex);
    while (!f->closed && f->taken >= f->capacity && ripc_now() < deadline)
        ripc_cond_wait_until(&f->room, &f->mutex, deadline);
    pthread_mutex_unlock(&f->mutex);
}

size_t ripc_inflight_size(ripc_inflight *f)
{
    pthread_mutex_lock(&f->mutex);
    size_t n = f->ids.size;
    pthread_mutex_unlock(&f->mutex);
    return n;
}
