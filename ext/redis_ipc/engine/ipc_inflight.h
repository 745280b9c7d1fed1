/* Requests this instance took from the stream and has not yet seen
 * acknowledged, by Redis entry id. A re-read of an entry (inbox sweep, a
 * dispatcher catching up, a reclaim) never hands a request out twice, and
 * the number taken but not answered is bounded: past `capacity` the router
 * leaves requests parked in Redis, pending on the consumer that read them,
 * until a consumer frees room (bounded prefetch). */
#ifndef RIPC_INFLIGHT_H
#define RIPC_INFLIGHT_H

#include <pthread.h>
#include <stddef.h>
#include "ipc_map.h"
#include "ipc_recent_ids.h"

enum { RIPC_ACKED_IDS = 1024, RIPC_ACKED_ID_MAX = 48 };
/* Request ids remembered by ripc_inflight_again, and their longest. */
enum { RIPC_AGAIN_IDS = 8192, RIPC_AGAIN_ID_MAX = 32 };

typedef struct ripc_inflight {
    pthread_mutex_t mutex;
    pthread_cond_t room;  /* signalled when the number taken drops below capacity */
    ripc_map ids;         /* redis id -> NULL (taken) or ANSWERED */
    size_t taken;         /* queued or being handled: not answered yet */
    size_t reserved;      /* room the dispatchers' reads under way may fill (ripc_inflight_reserve) */
    size_t capacity;
    int closed;
    /* Ids acknowledged lately. A re-read of history (a dispatcher catching
     * up, the inbox sweep) can return an entry whose XACK was on its way:
     * read before the XACK, routed after it. It must not be taken again. */
    ripc_recent_ids acked;
    /* Ids handled whose reply was given up or refused: they stay pending
     * in Redis, and the reclaim hands them out again, flagged redelivered
     * (they ran). At most RIPC_ACKED_IDS; past that, forgotten_overflow
     * makes the next reclaim take every untracked entry of ours instead. */
    ripc_map forgotten;
    int forgotten_overflow;
    /* Request ids (the entry's id field, not its Redis id) taken lately,
     * once ripc_inflight_again is called (servers that fail over): a copy
     * written again under the same id is a new entry. */
    ripc_recent_ids again;
} ripc_inflight;

enum { RIPC_INFLIGHT_NONE, RIPC_INFLIGHT_TAKEN, RIPC_INFLIGHT_ANSWERED, RIPC_INFLIGHT_FORGOTTEN };
/* RIPC_TAKE_FORGOTTEN: taken now, and it was handled before (forgotten). */
enum { RIPC_TAKE_OK, RIPC_TAKE_ALREADY, RIPC_TAKE_FULL, RIPC_TAKE_FORGOTTEN };

void ripc_inflight_init(ripc_inflight *f, size_t capacity);
void ripc_inflight_destroy(ripc_inflight *f);
/* Forgets every id and opens again with a new capacity (each connect). */
void ripc_inflight_reset(ripc_inflight *f, size_t capacity);
/* Forgets the ids acknowledged lately: a stream deleted and made again
 * (FLUSHALL, DEL, a lane gone with its last reader) gives its new entries
 * ids its old ones had, which must not be taken for re-reads. */
void ripc_inflight_forget_acked(ripc_inflight *f);
/* Wakes room waiters for good (stop). */
void ripc_inflight_close(ripc_inflight *f);

/* RIPC_TAKE_OK: taken now; RIPC_TAKE_ALREADY: handed out before;
 * RIPC_TAKE_FULL: no room, leave it parked (only when bounded: a request
 * the engine answers itself needs no consumer). */
int ripc_inflight_take(ripc_inflight *f, const char *redis_id, int bounded);
/* Taken -> answered (its XACK not yet confirmed). Returns 1 when it was
 * taken and not answered before. */
int ripc_inflight_mark_answered(ripc_inflight *f, const char *redis_id);
/* The same, and *started gets when a handler took it (ripc_inflight_begin;
 * 0 when unknown), for the handler time. */
int ripc_inflight_answer(ripc_inflight *f, const char *redis_id, double *started);
/* A handler takes the request now (it left the queue). */
void ripc_inflight_begin(ripc_inflight *f, const char *redis_id);
/* Leaves our hands: acknowledged (remembered for a while as such), or
 * given up, its reply unwritten (remembered as forgotten, to be reclaimed).
 * Returns 1 when it was there. */
int ripc_inflight_acked(ripc_inflight *f, const char *redis_id);
int ripc_inflight_remove(ripc_inflight *f, const char *redis_id);
/* 1 when a request with this id (its id field) was taken lately, the last
 * RIPC_AGAIN_IDS ids this instance took: a copy of it. Remembers the id. */
int ripc_inflight_again(ripc_inflight *f, const char *request_id);
/* RIPC_INFLIGHT_ANSWERED also for an id acknowledged lately. */
int ripc_inflight_state(ripc_inflight *f, const char *redis_id);
/* 1 once after more were forgotten than remembered (see forgotten). */
int ripc_inflight_take_overflow(ripc_inflight *f);
/* How many more requests may be taken now, less the room reserved. */
size_t ripc_inflight_room(ripc_inflight *f);
/* A dispatcher's read keeps up to `want` of the room (what it gets, which
 * it returns with ripc_inflight_unreserve once its requests are taken):
 * two dispatchers reading on the same room would leave the surplus parked,
 * to be read again. Takes go on counting against the capacity alone. */
size_t ripc_inflight_reserve(ripc_inflight *f, size_t want);
void ripc_inflight_unreserve(ripc_inflight *f, size_t n);
/* Waits until there is room, the deadline (monotonic) passes or close. */
void ripc_inflight_wait_room(ripc_inflight *f, double deadline);
size_t ripc_inflight_size(ripc_inflight *f);
/* Taken and not answered: queued, or held by a handler. */
size_t ripc_inflight_unanswered(ripc_inflight *f);

#endif
