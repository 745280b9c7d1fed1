/* The waker: replies for this instance that another instance of our group
 * reads are XCLAIMed to our inbox consumer (WIRE.md step 2). Nothing in
 * Redis streams wakes us for that, so an instance of this engine that hands
 * a reply over also publishes on <stream>:<group>:<instance>:wake, and this
 * thread, subscribed there on a connection of its own, has the housekeeper
 * sweep the inbox at once. (1.x peers do not publish; for them the inbox is
 * swept every 20 ms while a sender waits.) No command is sent while idle. */
#include "ipc_stream_internal.h"
#include "ipc_conn.h"
#include "ipc_util.h"

#include <stdio.h>
#include <string.h>

static void set_conn(ripc_stream *s, redisContext *c)
{
    ripc_conn_swap(&s->waker_mutex, &s->waker_conn, c);
}

static void *waker_main(void *arg)
{
    ripc_stream *s = arg;
    char channel[600];
    snprintf(channel, sizeof(channel), "%s:%s:%s:wake", s->stream, s->group, s->instance_id);
    ripc_error err;
    while (!atomic_load(&s->stopping)) {
        /* No read timeout beyond a long one: subscribers wait for pushes. */
        redisContext *c = ripc_conn_open(&s->options.redis, 3600.0, &err);
        if (!c) {
            if (ripc_stream_sleep(s, 0.25, 0)) break;
            continue;
        }
        set_conn(s, c);
        if (atomic_load(&s->stopping)) break;
        redisReply *r = redisCommand(c, "SUBSCRIBE %s", channel);
        if (r) freeReplyObject(r);
        void *message;
        while (!atomic_load(&s->stopping) && redisGetReply(c, &message) == REDIS_OK) {
            freeReplyObject(message);
            atomic_store(&s->inbox_rung, 1);
            ripc_stream_nudge_housekeeper(s, 0);
        }
        set_conn(s, NULL);
        if (!atomic_load(&s->stopping)) ripc_stream_sleep(s, 0.05, 0);
    }
    set_conn(s, NULL);
    return NULL;
}

int ripc_waker_start(ripc_stream *s, ripc_error *err)
{
    if (ripc_thread_start(&s->waker, "ripc waker", waker_main, s) == 0) return RIPC_OK;
    ripc_error_set(err, RIPC_STATE, "could not start the waker thread");
    return RIPC_STATE;
}

void ripc_waker_stop(ripc_stream *s)
{
    pthread_mutex_lock(&s->waker_mutex);
    ripc_conn_interrupt(s->waker_conn);
    pthread_mutex_unlock(&s->waker_mutex);
    ripc_thread_join(&s->waker);
}

void ripc_waker_ring(ripc_stream *s, redisContext *c, const char *instance_id)
{
    redisReply *r = redisCommand(c, "PUBLISH %s:%s:%s:wake 1", s->stream, s->group, instance_id);
    if (r) freeReplyObject(r);
}
