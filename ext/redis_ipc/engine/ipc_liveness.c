/* Liveness and takeover. Each instance of this engine beats into the sorted
 * set <stream>:<group>:instances (member: instance id, score: wall-clock ms
 * of its last beat). An instance whose beat is older than dead_after is dead:
 * the live instance that removes it from the set takes over the entries its
 * consumers had taken and not answered, long before the 10 s after which
 * 1.x peers would reclaim them. Instances of 1.x do not beat and are never
 * taken over here; the XAUTOCLAIM of the housekeeper covers them. */
#include "ipc_stream_internal.h"
#include "ipc_conn.h"
#include "ipc_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Consumers are named dispatcher_<instance>_<n> and consumer_<instance>_<n>. */
static int is_consumer_of(const char *name, const char *iid)
{
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "dispatcher_%s_", iid);
    if (strncmp(name, prefix, strlen(prefix)) == 0) return 1;
    snprintf(prefix, sizeof(prefix), "consumer_%s_", iid);
    return strncmp(name, prefix, strlen(prefix)) == 0;
}

static long long pending_of(ripc_stream *s, redisContext *c, const char *consumer)
{
    redisReply *r = redisCommand(c, "XPENDING %s %s - + 1 %s", s->stream, s->group, consumer);
    long long n = r && r->type == REDIS_REPLY_ARRAY ? (long long)r->elements : -1;
    if (r) freeReplyObject(r);
    return n;
}

/* Moves every entry pending on `consumer` to our inbox and routes it:
 * requests are served here, replies go where they belong. */
static size_t claim_all(ripc_stream *s, redisContext *c, const char *consumer, ripc_error *err)
{
    size_t claimed = 0;
    for (int round = 0; round < 1000; round++) {
        redisReply *pending = redisCommand(c, "XPENDING %s %s - + 128 %s", s->stream, s->group, consumer);
        if (!pending || pending->type != REDIS_REPLY_ARRAY || pending->elements == 0) {
            if (pending) freeReplyObject(pending);
            break;
        }
        size_t n = pending->elements;
        const char **argv = ripc_xmalloc((n + 5) * sizeof(*argv));
        size_t *lens = ripc_xmalloc((n + 5) * sizeof(*lens));
        argv[0] = "XCLAIM"; argv[1] = s->stream; argv[2] = s->group; argv[3] = s->inbox; argv[4] = "0";
        size_t argc = 5;
        for (size_t i = 0; i < n; i++) {
            const redisReply *row = pending->element[i];
            if (row->type == REDIS_REPLY_ARRAY && row->elements >= 1 && row->element[0]->type == REDIS_REPLY_STRING)
                argv[argc++] = row->element[0]->str;
        }
        for (size_t i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
        redisReply *entries = redisCommandArgv(c, (int)argc, argv, lens);
        free(argv);
        free(lens);
        freeReplyObject(pending);
        if (!entries) return claimed;
        if (entries->type == REDIS_REPLY_ARRAY) {
            claimed += entries->elements;
            ripc_route_and_ack(s, c, entries, err);
        }
        freeReplyObject(entries);
        if (c->err) break;
    }
    return claimed;
}

static void take_over(ripc_stream *s, redisContext *c, const char *key, const char *iid, ripc_error *err)
{
    /* ZREM is the lock: of the live instances that saw the death, only the
     * one whose ZREM removed the member goes on. */
    redisReply *r = redisCommand(c, "ZREM %s %s", key, iid);
    int won = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    if (r) freeReplyObject(r);
    if (!won) return;
    /* Unlist it first, so no peer hands it anything more. */
    r = redisCommand(c, "DEL %s:%s:%s:consumers", s->stream, s->group, iid);
    if (r) freeReplyObject(r);

    redisReply *info = redisCommand(c, "XINFO CONSUMERS %s %s", s->stream, s->group);
    if (!info || info->type != REDIS_REPLY_ARRAY) {
        if (info) freeReplyObject(info);
        return;
    }
    size_t claimed = 0;
    for (size_t i = 0; i < info->elements; i++) {
        const redisReply *row = info->element[i];
        const char *name = NULL;
        for (size_t j = 0; row->type == REDIS_REPLY_ARRAY && j + 1 < row->elements; j += 2) {
            if (row->element[j]->type == REDIS_REPLY_STRING && strcmp(row->element[j]->str, "name") == 0 &&
                row->element[j + 1]->type == REDIS_REPLY_STRING)
                name = row->element[j + 1]->str;
        }
        if (!name || !is_consumer_of(name, iid)) continue;
        claimed += claim_all(s, c, name, err);
        /* A consumer is removed only once it holds nothing: deleting one
         * with pending entries would orphan them. */
        if (pending_of(s, c, name) == 0) {
            redisReply *del = redisCommand(c, "XGROUP DELCONSUMER %s %s %s", s->stream, s->group, name);
            if (del) freeReplyObject(del);
        }
    }
    freeReplyObject(info);
    atomic_fetch_add(&s->takeovers, 1);
    atomic_fetch_add(&s->taken_over_entries, claimed);
}

/* Dead instances seen by the beat, for the housekeeper to take over: the
 * beat itself must never wait behind a takeover. */
static void note_dead(ripc_stream *s, const char *iid)
{
    pthread_mutex_lock(&s->liveness_mutex);
    int known = 0;
    for (int i = 0; i < s->dead_count; i++) known |= strcmp(s->dead[i], iid) == 0;
    if (!known && s->dead_count < RIPC_MAX_DEAD) snprintf(s->dead[s->dead_count++], sizeof(s->dead[0]), "%s", iid);
    pthread_mutex_unlock(&s->liveness_mutex);
    ripc_stream_nudge_housekeeper(s, 0);
}

void ripc_liveness_take_overs(ripc_stream *s, redisContext *c, ripc_error *err)
{
    char key[512];
    snprintf(key, sizeof(key), "%s:%s:instances", s->stream, s->group);
    for (;;) {
        char iid[RIPC_INSTANCE_ID_LEN + 32];
        pthread_mutex_lock(&s->liveness_mutex);
        int have = s->dead_count > 0;
        if (have) snprintf(iid, sizeof(iid), "%s", s->dead[--s->dead_count]);
        pthread_mutex_unlock(&s->liveness_mutex);
        if (!have || c->err || atomic_load(&s->stopping)) return;
        take_over(s, c, key, iid, err);
    }
}

int ripc_liveness_pending(ripc_stream *s)
{
    pthread_mutex_lock(&s->liveness_mutex);
    int n = s->dead_count;
    pthread_mutex_unlock(&s->liveness_mutex);
    return n;
}

static void *liveness_main(void *arg)
{
    ripc_stream *s = arg;
    ripc_error err;
    redisContext *c = NULL;
    /* Its own thread and connection, so no chore can delay a beat past
     * dead_after and get this live instance taken for dead. */
    while (!ripc_stream_sleep(s, s->options.heartbeat_interval, 0)) {
        if (!c) c = ripc_conn_open(&s->options.redis, 0, &err);
        if (!c) {
            ripc_stream_outage(s, &err);
            continue;
        }
        if (ripc_liveness_beat(s, c, &err) != RIPC_OK || c->err) {
            ripc_stream_outage(s, &err);
            ripc_conn_close(c);
            c = NULL;
        }
    }
    ripc_conn_close(c);
    return NULL;
}

int ripc_liveness_start(ripc_stream *s, ripc_error *err)
{
    if (ripc_thread_start(&s->liveness, "ripc heartbeat", liveness_main, s) == 0) return RIPC_OK;
    ripc_error_set(err, RIPC_STATE, "could not start the heartbeat thread");
    return RIPC_STATE;
}

void ripc_liveness_join(ripc_stream *s)
{
    ripc_thread_join(&s->liveness);
}

int ripc_liveness_beat(ripc_stream *s, redisContext *c, ripc_error *err)
{
    char key[512], now[32], dead_before[32];
    snprintf(key, sizeof(key), "%s:%s:instances", s->stream, s->group);
    long long ms = wall_ms();
    snprintf(now, sizeof(now), "%lld", ms);
    snprintf(dead_before, sizeof(dead_before), "(%lld", ms - (long long)(s->options.dead_after * 1000));

    const char *zadd[] = { "ZADD", key, now, s->instance_id };
    size_t zadd_len[] = { 4, strlen(key), strlen(now), strlen(s->instance_id) };
    const char *dead[] = { "ZRANGEBYSCORE", key, "-inf", dead_before, "LIMIT", "0", "16" };
    size_t dead_len[7];
    for (int i = 0; i < 7; i++) dead_len[i] = strlen(dead[i]);
    int argcs[] = { 4, 7 };
    const char **argvs[] = { zadd, dead };
    const size_t *lens[] = { zadd_len, dead_len };
    redisReply *replies[2];
    if (ripc_conn_pipeline(c, 2, argcs, argvs, lens, replies, err) != 0) return RIPC_CONNECTION;

    /* A refused beat (OOM, NOPERM...) gets this live instance taken for dead. */
    if (replies[0]->type == REDIS_REPLY_ERROR)
        ripc_stream_refused(s, "ZADD", replies[0]->str, "Redis refused this instance's heartbeat (ZADD on %s): %s "
                            "(other instances of the group will take it for dead)", key, replies[0]->str);
    else
        ripc_stream_accepted(s, "ZADD");
    /* ZADD answering 1 means we were not in the set: someone took us for
     * dead (or Redis lost its data). List ourselves again. */
    if (replies[0]->type == REDIS_REPLY_INTEGER && replies[0]->integer == 1 && atomic_exchange(&s->beaten, 1))
        ripc_membership_join(s, c, err);
    if (replies[1]->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < replies[1]->elements && !atomic_load(&s->stopping); i++) {
            const redisReply *iid = replies[1]->element[i];
            if (iid->type == REDIS_REPLY_STRING && strcmp(iid->str, s->instance_id) != 0) note_dead(s, iid->str);
        }
    }
    freeReplyObject(replies[0]);
    freeReplyObject(replies[1]);
    return c->err ? RIPC_CONNECTION : RIPC_OK;
}

void ripc_liveness_leave(ripc_stream *s, redisContext *c, int holds_pending)
{
    /* With entries still pending on our consumers, we mark ourselves dead so
     * that a live instance takes them over at its next beat; otherwise we
     * simply leave the set. */
    char key[512];
    snprintf(key, sizeof(key), "%s:%s:instances", s->stream, s->group);
    redisReply *r = holds_pending ? redisCommand(c, "ZADD %s 0 %s", key, s->instance_id)
                                  : redisCommand(c, "ZREM %s %s", key, s->instance_id);
    if (r) freeReplyObject(r);
}
