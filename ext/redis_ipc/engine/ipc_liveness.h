/* Liveness: heartbeats on the server's clock, judging peers dead, taking
 * over what dead instances held, and reclaiming what nobody alive holds. */
#ifndef RIPC_LIVENESS_H
#define RIPC_LIVENESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <hiredis/hiredis.h>
#include "redis_ipc.h"
#include "ipc_server_clock.h"
#include "ipc_util.h"

enum { RIPC_MAX_DEAD = 16, RIPC_INSTANCE_NAME_MAX = 64 };

typedef struct ripc_liveness {
    ripc_server_clock clock;
    /* Owned by whoever beats (connect, then the service thread alone). */
    double watch_since;        /* ripc_now() since which our beats went through promptly; 0: not now */
    double last_beat;          /* ripc_now() when the last beat went through */
    atomic_int beaten;         /* the first heartbeat was sent */
    atomic_int judging;        /* the last beat may judge others (read by other threads: ipc_responders.c) */
    pthread_mutex_t mutex;     /* guards dead[]: the beat finds, the housekeeper takes over */
    char dead[RIPC_MAX_DEAD][RIPC_INSTANCE_NAME_MAX];
    int dead_count;
} ripc_liveness;

struct ripc_stream;

void ripc_liveness_init(ripc_liveness *lv);
void ripc_liveness_destroy(ripc_liveness *lv);
/* Forgets what a previous connect learnt. */
void ripc_liveness_reset(ripc_liveness *lv);

int ripc_liveness_beat(struct ripc_stream *s, redisContext *c, ripc_error *err);
/* The service's heartbeat task (ipc_service.c): beats on the stream's
 * service connection; returns when the next beat is due. */
double ripc_liveness_tick(struct ripc_stream *s);
/* On the housekeeper: takes over one of the dead instances the beat found. */
void ripc_liveness_take_over_one(struct ripc_stream *s, redisContext *c, ripc_error *err);
int ripc_liveness_pending(struct ripc_stream *s);
/* On the housekeeper: claims entries idle past reclaim_idle on consumers of
 * instances that are not alive (1.x peers, which do not beat, included). */
void ripc_liveness_reclaim(struct ripc_stream *s, redisContext *c, ripc_error *err);
void ripc_liveness_leave(struct ripc_stream *s, redisContext *c, int holds_pending);
/* The server's time in ms (ipc_server_clock.h), for anything compared across hosts. */
long long ripc_liveness_server_ms(struct ripc_stream *s, redisContext *c, ripc_error *err);

#endif
