/* The pool of command connections shared by senders, responders and the
 * housekeeper. Connections open lazily up to `max`; a broken one is dropped
 * and replaced on the next checkout. */
#ifndef RIPC_POOL_H
#define RIPC_POOL_H

#include <pthread.h>
#include <sys/types.h>
#include <hiredis/hiredis.h>
#include "redis_ipc.h"
#include "ipc_server.h"

typedef struct ripc_pool {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    ripc_server *server;
    redisContext **idle;
    int idle_count;
    int open_count; /* idle + checked out */
    int max;
    pid_t pid;      /* the process that opened the sockets */
} ripc_pool;

void ripc_pool_init(ripc_pool *p, ripc_server *server, int max);
/* Checks a connection out, waiting for one until deadline (0: wait up to the
 * command timeout). RIPC_CONNECTION when none can be opened. */
int ripc_pool_checkout(ripc_pool *p, double deadline, redisContext **out, ripc_error *err);
/* Gives it back; broken ones are closed. */
void ripc_pool_checkin(ripc_pool *p, redisContext *c, int broken);
/* Closes idle connections (all of them once nothing is checked out). */
void ripc_pool_close_idle(ripc_pool *p);
int ripc_pool_open_count(ripc_pool *p);
void ripc_pool_destroy(ripc_pool *p);

#endif
