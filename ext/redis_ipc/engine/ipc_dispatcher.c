/* Dispatchers: native threads that block in XREADGROUP ... > on their own
 * connection (never polling) and route what they read. On a lost connection
 * they reconnect with capped backoff and re-join the group. */
#include "ipc_stream_internal.h"
#include "ipc_conn.h"
#include "ipc_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { READ_COUNT = 128 };
static const double BACKOFF_FIRST = 0.01, BACKOFF_MAX = 0.25;

static void set_conn(ripc_dispatcher *d, redisContext *c)
{
    ripc_conn_swap(&d->mutex, &d->conn, c);
}

/* Opens a connection and (re)joins the group; NULL while Redis is away. */
/* Opens a dispatcher connection and learns its CLIENT ID (see interrupt). */
static redisContext *open_conn(ripc_dispatcher *d, ripc_error *err)
{
    redisContext *c = ripc_conn_open(&d->stream->options.redis, d->stream->options.block_timeout, err);
    if (!c) return NULL;
    redisReply *id = redisCommand(c, "CLIENT ID");
    d->client_id = id && id->type == REDIS_REPLY_INTEGER ? id->integer : 0;
    if (id) freeReplyObject(id);
    return c;
}

/* Routes what Redis delivered to this dispatcher and it never routed: a
 * connection cut (CLIENT KILL, a timeout) can lose a reply already sent,
 * leaving its entries pending here. Pages through this consumer's history;
 * requests already handed out are skipped by the router. */
static void catch_up(ripc_dispatcher *d, redisContext *c, ripc_error *err)
{
    ripc_stream *s = d->stream;
    char from[80] = "0";
    for (int page = 0; page < 64 && !c->err; page++) {
        redisReply *r = redisCommand(c, "XREADGROUP GROUP %b %s COUNT 128 STREAMS %b %s", s->group, strlen(s->group),
                                     d->name, s->stream, strlen(s->stream), from);
        const redisReply *entries = r && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
                                    r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2
                                    ? r->element[0]->element[1] : NULL;
        int done = !entries || entries->type != REDIS_REPLY_ARRAY || entries->elements == 0;
        if (!done) {
            const redisReply *last = entries->element[entries->elements - 1];
            done = last->type != REDIS_REPLY_ARRAY || last->elements < 1 || last->element[0]->type != REDIS_REPLY_STRING;
            if (!done) snprintf(from, sizeof(from), "%s", last->element[0]->str);
            ripc_route_and_ack(s, c, entries, 0, err);
        }
        if (r) freeReplyObject(r);
        if (done) return;
    }
}

static redisContext *reconnect(ripc_dispatcher *d, ripc_error *err)
{
    ripc_stream *s = d->stream;
    redisContext *c = open_conn(d, err);
    if (!c) return NULL;
    if (ripc_membership_join(s, c, err) != RIPC_OK) {
        ripc_conn_close(c);
        return NULL;
    }
    ripc_stream_accepted(s, RIPC_REFUSAL_JOIN);
    catch_up(d, c, err);
    if (c->err) {
        ripc_conn_close(c);
        return NULL;
    }
    return c;
}

static void *dispatcher_main(void *arg)
{
    ripc_dispatcher *d = arg;
    ripc_stream *s = d->stream;
    char block_ms[32], count[16];
    snprintf(block_ms, sizeof(block_ms), "%lld", (long long)(s->options.block_timeout * 1000));
    snprintf(count, sizeof(count), "%d", READ_COUNT);
    const char *argv[] = { "XREADGROUP", "GROUP", s->group, d->name, "COUNT", count, "BLOCK", block_ms, "STREAMS", s->stream, ">" };
    size_t lens[11];
    for (int i = 0; i < 11; i++) lens[i] = strlen(argv[i]);
    double backoff = BACKOFF_FIRST;
    ripc_error err;

    while (!atomic_load(&s->stopping)) {
        if (!d->conn) {
            redisContext *c = reconnect(d, &err);
            if (!c) {
                ripc_stream_outage(s, &err);
                if (ripc_stream_sleep(s, backoff, 0)) break;
                backoff = backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : backoff * 2;
                continue;
            }
            set_conn(d, c);
            /* ripc_stream_stop may have run before the connection was visible to it. */
            if (atomic_load(&s->stopping)) break;
        }
        /* Stop may interrupt the blocking read, never the routing after it:
         * entries read are always routed and acknowledged. */
        pthread_mutex_lock(&d->mutex);
        int stopping = atomic_load(&s->stopping);
        d->reading = !stopping;
        pthread_mutex_unlock(&d->mutex);
        if (stopping) break;
        double issued = ripc_now();
        redisReply *reply = ripc_conn_run(d->conn, 11, argv, lens, &err);
        pthread_mutex_lock(&d->mutex);
        d->reading = 0;
        pthread_mutex_unlock(&d->mutex);
        if (!reply) {
            if (atomic_load(&s->stopping)) break;
            ripc_stream_outage(s, &err);
            set_conn(d, NULL);
            continue;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
            /* The stream or group was deleted (FLUSHALL, DEL, XGROUP DESTROY):
             * NOGROUP, or UNBLOCKED for a read that was waiting. Re-join. */
            int nogroup = ripc_reply_error_starts(reply, "NOGROUP") || ripc_reply_error_starts(reply, "UNBLOCKED");
            if (!nogroup) ripc_stream_refused(s, "XREADGROUP", reply->str, "Redis refused XREADGROUP on stream %s: %s", s->stream, reply->str);
            freeReplyObject(reply);
            if (ripc_membership_join(s, d->conn, &err) != RIPC_OK) set_conn(d, NULL);
            if (!nogroup && ripc_stream_sleep(s, BACKOFF_MAX, 0)) break;
            continue;
        }
        backoff = BACKOFF_FIRST;
        ripc_stream_outage_over(s);
        ripc_stream_accepted_since(s, "XREADGROUP", issued);
        /* [[stream, entries]]: we read one stream. */
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 && reply->element[0]->type == REDIS_REPLY_ARRAY &&
            reply->element[0]->elements == 2) {
            ripc_route_and_ack(s, d->conn, reply->element[0]->element[1], 0, &err);
            if (d->conn->err && !atomic_load(&s->stopping)) {
                ripc_stream_outage(s, &err);
                set_conn(d, NULL);
            }
        }
        freeReplyObject(reply);
    }
    set_conn(d, NULL);
    return NULL;
}

int ripc_dispatchers_start(ripc_stream *s, ripc_error *err)
{
    int n = s->options.dispatcher_count;
    free(s->dispatchers);
    s->dispatchers = ripc_xcalloc((size_t)n, sizeof(*s->dispatchers));
    for (int i = 0; i < n; i++) {
        ripc_dispatcher *d = &s->dispatchers[i];
        d->stream = s;
        snprintf(d->name, sizeof(d->name), "dispatcher_%s_%d", s->instance_id, i + 1);
        pthread_mutex_init(&d->mutex, NULL);
        /* Connect here so connect() fails fast, with the address, when Redis is away. */
        d->conn = open_conn(d, err);
        if (!d->conn) return RIPC_CONNECTION;
        if (ripc_thread_start(&d->thread, "ripc dispatcher", dispatcher_main, d) != 0) {
            ripc_error_set(err, RIPC_STATE, "could not start a dispatcher thread");
            return RIPC_STATE;
        }
    }
    return RIPC_OK;
}

static int still_reading(ripc_dispatcher *d)
{
    pthread_mutex_lock(&d->mutex);
    int reading = d->reading;
    pthread_mutex_unlock(&d->mutex);
    return reading;
}

/* Ends blocked reads. CLIENT UNBLOCK makes Redis answer the read with
 * nothing, atomically: either entries were delivered (and arrive whole, to
 * be routed) or none were. Cutting the socket instead could lose a reply
 * already on its way, leaving its entries pending on a consumer that is
 * going away. The socket is cut only when Redis cannot be asked. */
void ripc_dispatchers_interrupt(ripc_stream *s)
{
    redisContext *c = NULL;
    ripc_error err;
    int have_conn = ripc_pool_checkout(&s->pool, ripc_now() + 0.5, &c, &err) == RIPC_OK;
    for (int i = 0; s->dispatchers && i < s->options.dispatcher_count; i++) {
        ripc_dispatcher *d = &s->dispatchers[i];
        /* A read sent but not yet blocked in Redis answers 0: ask again
         * until the thread is out of its read, for up to a second. */
        double give_up = ripc_now() + 1.0;
        while (have_conn && d->client_id && still_reading(d) && ripc_now() < give_up) {
            redisReply *r = redisCommand(c, "CLIENT UNBLOCK %lld", d->client_id);
            int unblocked = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
            if (r) freeReplyObject(r);
            if (!r) have_conn = 0;
            if (!unblocked && still_reading(d)) {
                struct timespec pause = { 0, 5 * 1000 * 1000 };
                nanosleep(&pause, NULL);
            }
        }
        pthread_mutex_lock(&d->mutex);
        if (d->reading) ripc_conn_interrupt(d->conn);
        pthread_mutex_unlock(&d->mutex);
    }
    if (c) ripc_pool_checkin(&s->pool, c, !have_conn || c->err);
}

void ripc_dispatchers_join(ripc_stream *s)
{
    for (int i = 0; s->dispatchers && i < s->options.dispatcher_count; i++) {
        ripc_dispatcher *d = &s->dispatchers[i];
        ripc_thread_join(&d->thread);
        set_conn(d, NULL);
        pthread_mutex_destroy(&d->mutex);
    }
}
