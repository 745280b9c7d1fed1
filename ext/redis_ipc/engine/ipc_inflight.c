#include "ipc_inflight.h"
#include "ipc_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Answered but not yet acknowledged: the id stays (a re-read of the entry
 * must not hand it out again) until the outbox has its XACK. */
static void *const ANSWERED = (void *)1;

/* A taken request's value: NULL, or when a handler took it, in microseconds
 * of ripc_now() plus 2 (never NULL, never ANSWERED). */
static void *stamp(double now)
{
    return sizeof(void *) >= 8 ? (void *)(uintptr_t)((unsigned long long)(now * 1e6) + 2) : NULL;
}

static double unstamp(void *value)
{
    return value && value != ANSWERED ? (double)((uintptr_t)value - 2) / 1e6 : 0;
}

void ripc_inflight_init(ripc_inflight *f, size_t capacity)
{
    pthread_mutex_init(&f->mutex, NULL);
    ripc_cond_init(&f->room);
    ripc_map_init(&f->ids);
    f->taken = 0;
    f->reserved = 0;
    f->capacity = capacity > 0 ? capacity : 1;
    f->closed = 0;
    ripc_recent_ids_init(&f->acked, RIPC_ACKED_IDS, RIPC_ACKED_ID_MAX);
    ripc_map_init(&f->forgotten);
    f->forgotten_overflow = 0;
    ripc_recent_ids_init(&f->again, RIPC_AGAIN_IDS, RIPC_AGAIN_ID_MAX);
}

void ripc_inflight_destroy(ripc_inflight *f)
{
    ripc_map_destroy(&f->ids);
    ripc_recent_ids_destroy(&f->acked);
    ripc_map_destroy(&f->forgotten);
    ripc_recent_ids_destroy(&f->again);
    pthread_cond_destroy(&f->room);
    pthread_mutex_destroy(&f->mutex);
}

void ripc_inflight_reset(ripc_inflight *f, size_t capacity)
{
    pthread_mutex_lock(&f->mutex);
    f->capacity = capacity > 0 ? capacity : 1;
    ripc_map_destroy(&f->ids);
    ripc_map_init(&f->ids);
    ripc_recent_ids_clear(&f->acked);
    ripc_map_destroy(&f->forgotten);
    ripc_map_init(&f->forgotten);
    f->forgotten_overflow = 0;
    ripc_recent_ids_clear(&f->again);
    f->taken = 0;
    f->reserved = 0;
    f->closed = 0;
    pthread_mutex_unlock(&f->mutex);
}

void ripc_inflight_forget_acked(ripc_inflight *f)
{
    pthread_mutex_lock(&f->mutex);
    ripc_recent_ids_clear(&f->acked);
    pthread_mutex_unlock(&f->mutex);
}

void ripc_inflight_close(ripc_inflight *f)
{
    pthread_mutex_lock(&f->mutex);
    f->closed = 1;
    pthread_cond_broadcast(&f->room);
    pthread_mutex_unlock(&f->mutex);
}

int ripc_inflight_take(ripc_inflight *f, const char *redis_id, int bounded)
{
    int found, rc;
    pthread_mutex_lock(&f->mutex);
    ripc_map_get(&f->ids, redis_id, &found);
    if (!found) found = ripc_recent_ids_has(&f->acked, redis_id);
    int forgotten = 0;
    if (!found) ripc_map_get(&f->forgotten, redis_id, &forgotten);
    if (found) rc = RIPC_TAKE_ALREADY;
    else if (bounded && f->taken >= f->capacity) rc = RIPC_TAKE_FULL;
    else {
        if (forgotten) ripc_map_remove(&f->forgotten, redis_id, NULL);
        ripc_map_put(&f->ids, redis_id, NULL);
        f->taken++;
        rc = forgotten ? RIPC_TAKE_FORGOTTEN : RIPC_TAKE_OK;
    }
    pthread_mutex_unlock(&f->mutex);
    return rc;
}

/* Room left, reservations counted. Mutex held. */
static size_t room_left(const ripc_inflight *f)
{
    size_t used = f->taken + f->reserved;
    return used < f->capacity ? f->capacity - used : 0;
}

/* One fewer taken: a dispatcher waiting for room may go on. Mutex held. */
static void release_one(ripc_inflight *f)
{
    if (f->taken == 0) return;
    int was_full = room_left(f) == 0;
    f->taken--;
    if (was_full && room_left(f) > 0) pthread_cond_broadcast(&f->room);
}

int ripc_inflight_mark_answered(ripc_inflight *f, const char *redis_id)
{
    return ripc_inflight_answer(f, redis_id, NULL);
}

void ripc_inflight_begin(ripc_inflight *f, const char *redis_id)
{
    int found;
    pthread_mutex_lock(&f->mutex);
    void *state = ripc_map_get(&f->ids, redis_id, &found);
    if (found && state != ANSWERED) ripc_map_replace(&f->ids, redis_id, stamp(ripc_now()));
    pthread_mutex_unlock(&f->mutex);
}

int ripc_inflight_answer(ripc_inflight *f, const char *redis_id, double *started)
{
    int found;
    pthread_mutex_lock(&f->mutex);
    void *state = ripc_map_get(&f->ids, redis_id, &found);
    int marked = found && state != ANSWERED;
    if (started) *started = marked ? unstamp(state) : 0;
    if (marked) {
        ripc_map_remove(&f->ids, redis_id, NULL);
        ripc_map_put(&f->ids, redis_id, ANSWERED);
        release_one(f);
    }
    pthread_mutex_unlock(&f->mutex);
    return marked;
}

static int leave(ripc_inflight *f, const char *redis_id, int acked)
{
    int found;
    pthread_mutex_lock(&f->mutex);
    void *state = ripc_map_get(&f->ids, redis_id, &found);
    if (found) {
        ripc_map_remove(&f->ids, redis_id, NULL);
        if (state != ANSWERED) release_one(f);
        if (acked) ripc_recent_ids_add(&f->acked, redis_id);
        if (!acked && f->forgotten.size < RIPC_ACKED_IDS) ripc_map_put(&f->forgotten, redis_id, NULL);
        else if (!acked) f->forgotten_overflow = 1;
    }
    pthread_mutex_unlock(&f->mutex);
    return found;
}

int ripc_inflight_acked(ripc_inflight *f, const char *redis_id) { return leave(f, redis_id, 1); }
int ripc_inflight_remove(ripc_inflight *f, const char *redis_id) { return leave(f, redis_id, 0); }

int ripc_inflight_again(ripc_inflight *f, const char *request_id)
{
    if (!request_id || !*request_id) return 0;
    pthread_mutex_lock(&f->mutex);
    int seen = ripc_recent_ids_add(&f->again, request_id);
    pthread_mutex_unlock(&f->mutex);
    return seen;
}

int ripc_inflight_state(ripc_inflight *f, const char *redis_id)
{
    int found;
    pthread_mutex_lock(&f->mutex);
    void *state = ripc_map_get(&f->ids, redis_id, &found);
    if (!found) {
        found = ripc_recent_ids_has(&f->acked, redis_id);
        state = ANSWERED;
    }
    int forgotten = 0;
    if (!found) ripc_map_get(&f->forgotten, redis_id, &forgotten);
    pthread_mutex_unlock(&f->mutex);
    if (forgotten) return RIPC_INFLIGHT_FORGOTTEN;
    return !found ? RIPC_INFLIGHT_NONE : state == ANSWERED ? RIPC_INFLIGHT_ANSWERED : RIPC_INFLIGHT_TAKEN;
}

int ripc_inflight_take_overflow(ripc_inflight *f)
{
    pthread_mutex_lock(&f->mutex);
    int overflow = f->forgotten_overflow;
    f->forgotten_overflow = 0;
    pthread_mutex_unlock(&f->mutex);
    return overflow;
}

size_t ripc_inflight_room(ripc_inflight *f)
{
    pthread_mutex_lock(&f->mutex);
    size_t room = room_left(f);
    pthread_mutex_unlock(&f->mutex);
    return room;
}

size_t ripc_inflight_reserve(ripc_inflight *f, size_t want)
{
    pthread_mutex_lock(&f->mutex);
    size_t room = room_left(f), granted = want < room ? want : room;
    f->reserved += granted;
    pthread_mutex_unlock(&f->mutex);
    return granted;
}

void ripc_inflight_unreserve(ripc_inflight *f, size_t n)
{
    pthread_mutex_lock(&f->mutex);
    int was_full = room_left(f) == 0;
    f->reserved -= n < f->reserved ? n : f->reserved;
    if (was_full && room_left(f) > 0) pthread_cond_broadcast(&f->room);
    pthread_mutex_unlock(&f->mutex);
}

void ripc_inflight_wait_room(ripc_inflight *f, double deadline)
{
    pthread_mutex_lock(&f->mutex);
    while (!f->closed && room_left(f) == 0 && ripc_now() < deadline)
        ripc_cond_wait_until(&f->room, &f->mutex, deadline);
    pthread_mutex_unlock(&f->mutex);
}

size_t ripc_inflight_unanswered(ripc_inflight *f)
{
    pthread_mutex_lock(&f->mutex);
    size_t n = f->taken;
    pthread_mutex_unlock(&f->mutex);
    return n;
}

size_t ripc_inflight_size(ripc_inflight *f)
{
    pthread_mutex_lock(&f->mutex);
    size_t n = f->ids.size;
    pthread_mutex_unlock(&f->mutex);
    return n;
}
