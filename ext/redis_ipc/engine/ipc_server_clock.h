/* Redis's clock, as every instance sees it. Hosts' wall clocks may differ by
 * seconds or minutes; liveness scores and retention cut-offs are compared
 * across hosts, so they use the one clock all instances share: the server's
 * TIME, read now and then and carried forward on the monotonic clock. */
#ifndef RIPC_SERVER_CLOCK_H
#define RIPC_SERVER_CLOCK_H

#include <pthread.h>
#include <hiredis/hiredis.h>
#include "redis_ipc.h"

typedef struct ripc_server_clock {
    pthread_mutex_t mutex;
    double offset;     /* server seconds minus ripc_now() */
    double checked_at; /* ripc_now() of the last TIME; 0: never */
} ripc_server_clock;

void ripc_server_clock_init(ripc_server_clock *k);
void ripc_server_clock_destroy(ripc_server_clock *k);
/* Forgets the estimate (a new connection may reach another server). */
void ripc_server_clock_reset(ripc_server_clock *k);
/* The server's time in milliseconds: asks TIME on c when the estimate is
 * older than max_age seconds (or missing), else extrapolates. Returns -1
 * (err set) when c failed. */
long long ripc_server_clock_ms(ripc_server_clock *k, redisContext *c, double max_age, ripc_error *err);
/* The estimate without asking (for a thread with no connection at hand);
 * the local wall clock before the first TIME. */
long long ripc_server_clock_estimate_ms(ripc_server_clock *k);
/* How old an estimate may get before TIME is asked again; the monotonic clock carries it between. */
#define RIPC_SERVER_CLOCK_MAX_AGE 10.0

#endif
